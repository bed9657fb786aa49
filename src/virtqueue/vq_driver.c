/*
 * vq_driver.c - the driver (virtio) role: add buffers, take them back used.
 *
 * The driver owns the descriptor table and the avail ring. Its free list
 * lives in local memory (slots[].next), so a device scribbling on the
 * descriptor table cannot corrupt it; the used ring is the only peer input
 * and each entry is checked against what this side has in flight.
 */
#include <errno.h>

#include "vq_short.h"

/*
 * Write buffers bl[0..n) as a chain into `table`, starting at descriptor
 * `first` and linking through `link` (local free list, or NULL for a fresh
 * indirect table linked 0,1,2...). Returns the last descriptor's index, or
 * -EINVAL for a buffer outside the window: the descriptors written so far
 * are free ones nobody can see yet, so nothing is lost.
 */
static inline int write_chain(struct virtqueue *vq, struct virtqueue_io io,
			      struct vring_desc *table, const struct virtqueue_slot *link,
			      uint16_t first, const struct virtqueue_buf *bl,
			      int readable, int n, uint32_t *wlen)
{
	uint32_t wbytes = 0;
	uint16_t i = first;
	int k;

	for (k = 0;; k++) {
		uint16_t flags = k + 1 < n ? VRING_DESC_F_NEXT : 0;
		uint16_t next = 0;
		uint64_t da;

		if (!bl[k].buf || !vq_window_da(&vq->win, bl[k].buf, bl[k].len, &da))
			return -EINVAL;
		if (k >= readable) {
			flags |= VRING_DESC_F_WRITE;
			/* Saturate: the device can never report more anyway. */
			wbytes = bl[k].len > UINT32_MAX - wbytes ? UINT32_MAX
								 : wbytes + bl[k].len;
		}
		if (flags & VRING_DESC_F_NEXT)
			next = link ? link[i].next : (uint16_t)(i + 1u);
		vq_write_desc(io, &table[i], da, bl[k].len, flags, next);
		if (!(flags & VRING_DESC_F_NEXT)) {
			*wlen = wbytes;
			return i;
		}
		i = next;
	}
}

/* Body of virtqueue_add_buffer once the arguments are checked; `io` is
 * either the queue's accessors or VQ_IO_PLAIN, folded at compile time. */
static inline int add_chain(struct virtqueue *vq, struct virtqueue_io io,
			    const struct virtqueue_buf *bl, int readable, int n,
			    void *cookie)
{
	bool indirect = n > 1 && n <= vq->indirect_num;
	uint16_t need = indirect ? 1 : (uint16_t)n;
	uint16_t head = vq->free_head;
	struct virtqueue_slot *slot;
	uint32_t wlen;
	int last;

	if (need > vq->num_free)
		return -ENOSPC;
	if (!indirect) {
		last = write_chain(vq, io, vq->desc, vq->slots, head, bl, readable, n, &wlen);
		if (last < 0)
			return last;
	} else {
		struct vring_desc *table = vq->indirect + (size_t)head * vq->indirect_num;
		/* virtqueue_init checked the whole indirect area is in the window. */
		uint64_t table_da = vq->win.da +
				    (uint64_t)((uintptr_t)table - (uintptr_t)vq->win.va);

		if (write_chain(vq, io, table, NULL, 0, bl, readable, n, &wlen) < 0)
			return -EINVAL;
		vq_write_desc(io, &vq->desc[head], table_da, (uint32_t)n * 16u,
			      VRING_DESC_F_INDIRECT, 0);
		last = head;
	}

	vq->free_head = vq->slots[last].next;
	vq->num_free = (uint16_t)(vq->num_free - need);
	slot = &vq->slots[head];
	slot->cookie = cookie;
	slot->ndesc = need;
	slot->wlen = wlen;

	vq_update16(io, &vq->avail->ring[vq->avail_idx & vq->mask], head);
	vq->avail_idx++;
	vq_store_idx(io, &vq->avail->idx, vq->avail_idx);
	return 0;
}

/* Everything but one buffer on a healthy queue in plain memory: all the
 * argument checks, then the general path. */
static DUET_OUT_OF_LINE int add_checked(struct virtqueue *vq, const struct virtqueue_buf *bl,
					 int readable, int writable, void *cookie)
{
	int n;

	/* The casts make negative counts huge: one test each. */
	if (!vq || vq->role != VIRTQUEUE_ROLE_DRIVER || !bl || !cookie ||
	    (unsigned int)readable > VIRTQUEUE_MAX_SIZE ||
	    (unsigned int)writable > VIRTQUEUE_MAX_SIZE)
		return -EINVAL;
	if (vq->broken)
		return -EIO;
	n = readable + writable;
	if (n == 0 || n > vq->num)
		return n ? -ENOSPC : -EINVAL;
	/* One body for every shape, with the accessors chosen at run time:
	 * the common case never comes here, so size matters more than speed. */
	return add_chain(vq, vq->io, bl, readable, n, cookie);
}

int virtqueue_add_buffer(struct virtqueue *vq, struct virtqueue_buf *buf_list,
			 int readable, int writable, void *cookie)
{
	/* One buffer, readable or writable: writable is 0 or 1 and readable
	 * the other, compared unsigned so that no negative int can fake it. */
	if (DUET_FAST_PATHS && vq && vq->fast_role == vq_fast_role(VIRTQUEUE_ROLE_DRIVER) &&
	    (unsigned int)writable <= 1u &&
	    (unsigned int)readable == 1u - (unsigned int)writable && buf_list && cookie)
		return vq_add_one_io(vq, VQ_IO_PLAIN, buf_list->buf, buf_list->len,
				     (unsigned int)writable, cookie);
	return add_checked(vq, buf_list, readable, writable, cookie);
}

/* virtqueue_add_one on any queue but a healthy plain one: the checks of
 * add_checked, then the one-buffer body with the queue's accessors (not
 * add_chain: a build that adds only single buffers, rpmsg's, links no
 * chain code). Out of line and taking its arguments as they came, so that
 * the short path needs no frame. */
DUET_SHORT_FALLBACK int duet_vq_add_one_checked(struct virtqueue *vq, void *buf, uint32_t len,
					   bool writable, void *cookie)
{
	if (!vq || vq->role != VIRTQUEUE_ROLE_DRIVER || !cookie)
		return -EINVAL;
	if (vq->broken)
		return -EIO;
	return vq_add_one_io(vq, vq->io, buf, len, writable, cookie);
}

int virtqueue_add_one(struct virtqueue *vq, void *buf, uint32_t len, bool writable,
		      void *cookie)
{
	return vq_inline_add_one(vq, buf, len, writable, cookie);
}

/*
 * The short path of virtqueue_add_bufs, on a healthy plain queue: add_one
 * for each buffer, with the queue's state in locals across the slot, table
 * and ring stores, and the index stored once. Returns how many it added
 * before the first that cannot go.
 */
static DUET_INLINE uint16_t add_batch(struct virtqueue *vq, void *const *bufs, uint16_t n,
				      uint32_t len, const uint32_t *lens, bool writable)
{
	struct virtqueue_slot *slots = vq->slots;
	struct vring_desc *table = vq->desc;
	uint16_t *ring = vq->avail->ring;
	uintptr_t va = (uintptr_t)vq->win.va;
	uint64_t size = vq->win.size, da = vq->win.da;
	uint16_t aidx = vq->avail_idx, head = vq->free_head, mask = vq->mask;
	uint16_t m = n < vq->num_free ? n : vq->num_free;
	uint16_t flags = writable ? VRING_DESC_F_WRITE : 0;
	uint16_t k;

	for (k = 0; k < m; k++) {
		struct virtqueue_slot *s = &slots[head];
		uint16_t next = s->next;
		uint32_t l = lens ? lens[k] : len;
		uintptr_t off = (uintptr_t)bufs[k] - va;

		/* vq_window_da's test, on the locals. Written out: through a
		 * helper (vq_window_da on a copy of the window, or the test alone)
		 * gcc 12 spills more in this loop, 9-10 instructions a buffer. */
		if (!bufs[k] || off > size || l > size - off)
			break;
		s->cookie = bufs[k];
		s->ndesc = 1;
		s->wlen = writable ? l : 0;
		vq_write_desc(VQ_IO_PLAIN, &table[head], da + off, l, flags, 0);
		vq_update16(VQ_IO_PLAIN, &ring[(uint16_t)(aidx + k) & mask], head);
		head = next;
	}
	vq->free_head = head;
	vq->num_free = (uint16_t)(vq->num_free - k);
	if (k) {
		vq->avail_idx = (uint16_t)(aidx + k);
		vq_store_idx(VQ_IO_PLAIN, &vq->avail->idx, (uint16_t)(aidx + k));
	}
	return k;
}

/* virtqueue_add_bufs and its sized twin: lens NULL, every buffer len.
 * Inlined into each, so that the uniform one tests no lens. */
static DUET_INLINE int add_bufs(struct virtqueue *vq, void *const bufs[], uint16_t n,
				uint32_t len, const uint32_t *lens, bool writable)
{
	uint16_t k = 0;
	int ret = vq_batch_args(vq, VIRTQUEUE_ROLE_DRIVER, bufs, n);

	if (ret < 0)
		return ret;
	if (DUET_FAST_PATHS && vq->fast_role == vq_fast_role(VIRTQUEUE_ROLE_DRIVER)) {
		k = add_batch(vq, bufs, n, len, lens, writable);
		/* what stopped it, if anything did */
		ret = vq->num_free ? -EINVAL : -ENOSPC;
	} else {
		while (k < n && (ret = virtqueue_add_one(vq, bufs[k], lens ? lens[k] : len, writable,
							 bufs[k])) == 0)
			k++;
	}
	return k == n || k ? k : ret;
}

int virtqueue_add_bufs(struct virtqueue *vq, void *const bufs[], uint16_t n, uint32_t len,
		       bool writable)
{
	return add_bufs(vq, bufs, n, len, NULL, writable);
}

int virtqueue_add_bufs_sized(struct virtqueue *vq, void *const bufs[], const uint32_t lens[],
			     uint16_t n, bool writable)
{
	if (!lens && n)
		return -EINVAL;
	return add_bufs(vq, bufs, n, 0, lens, writable);
}

/* Put the chain at `head` back on the local free list. Only the cookie
 * marks a driver head in flight; ndesc is left for the next add to set. */
static inline void free_chain(struct virtqueue *vq, struct virtqueue_slot *s,
			      uint16_t head)
{
	uint16_t tail = head;
	uint16_t k;

	for (k = 1; k < s->ndesc; k++)
		tail = vq->slots[tail].next;
	vq_append_free(vq, head, tail, s->ndesc);
	s->cookie = NULL;
}

/* See vq_short.h. Out of line: the short path in virtqueue_get_buffer
 * comes here only for a chain or a fault. */
DUET_SHORT_FALLBACK void *duet_vq_take_used(struct virtqueue *vq, uint16_t ready, uint32_t id,
				       uint32_t ulen, uint32_t *len, uint16_t *idx)
{
	struct virtqueue_slot *s;
	void *cookie;

	if (ready > vq_inflight(vq)) {
		duet_vq_fault(vq, VIRTQUEUE_FAULT_USED_JUMP, -EINVAL, ready, vq_inflight(vq));
		return NULL;
	}
	if (id >= vq->num || !vq->slots[id].cookie) {
		duet_vq_fault(vq, VIRTQUEUE_FAULT_USED_ID, -EINVAL, id, vq->num);
		return NULL;
	}
	s = &vq->slots[id];
	if (ulen > s->wlen) {
		duet_vq_fault(vq, VIRTQUEUE_FAULT_USED_LEN, -EINVAL, ulen, s->wlen);
		return NULL;
	}

	cookie = s->cookie;
	free_chain(vq, s, (uint16_t)id);
	vq->used_idx++;
	atomic_store_explicit(&vq->taken_at, vq->used_idx, memory_order_relaxed);
	/* Keep asking for a notification at the next entry, so that under
	 * EVENT_IDX a consumer that never disables callbacks still gets them. */
	if (vq->track_event)
		vq_move_event(vq->io, vq->used_event, vq->used_idx);
	if (len)
		*len = ulen;
	if (idx)
		*idx = (uint16_t)id;
	return cookie;
}

/* virtqueue_get_buffer with every argument checked, any queue. */
DUET_SHORT_FALLBACK void *duet_vq_get_used_checked(struct virtqueue *vq, uint32_t *len,
					      uint16_t *idx)
{
	struct vring_used_elem *e;
	uint16_t ready;

	if (!vq || vq->role != VIRTQUEUE_ROLE_DRIVER || vq->broken)
		return NULL;
	/* used.idx is the device's word: untrusted until duet_vq_take_used checks it. */
	ready = vq_ready(vq, vq->io, &vq->used->idx, vq->used_idx);
	if (!ready)
		return NULL;
	e = &vq->used->ring[vq->used_idx & vq->mask];
	return duet_vq_take_used(vq, ready, vq_load32(vq->io, &e->id), vq_load32(vq->io, &e->len), len,
			    idx);
}

void *virtqueue_get_buffer(struct virtqueue *vq, uint32_t *len, uint16_t *idx)
{
	return vq_inline_get_buffer(vq, len, idx);
}

/*
 * The short path of virtqueue_get_buffers: plain memory, `ready` entries
 * announced (the caller saw at least one), up to `max` taken. The queue's
 * state is copied into locals and written back once, so that the stores
 * to slots and to the caller's arrays, which could alias *vq for the
 * compiler, reload nothing. An entry that is not a plain head (a chain, or
 * a fault) goes, as read, to duet_vq_take_used: each entry is read once. Returns
 * how many it took; 0 only when the first entry broke the queue.
 */
static uint16_t get_batch_short(struct virtqueue *vq, uint16_t ready, void **cookies,
				uint32_t *lens, uint16_t max)
{
	struct vring_used_elem *ring = vq->used->ring;
	struct virtqueue_slot *slots = vq->slots;
	uint16_t uidx = vq->used_idx, mask = vq->mask, num = vq->num;
	uint16_t head = vq->free_head, tail = vq->free_tail, nfree = vq->num_free;
	uint16_t want = ready < max ? ready : max, n;
	uint32_t id = 0, ulen = 0;
	void *cookie;

	if (ready > vq_inflight(vq)) {
		duet_vq_fault(vq, VIRTQUEUE_FAULT_USED_JUMP, -EINVAL, ready, vq_inflight(vq));
		return 0;
	}
	for (n = 0; n < want; n++) {
		struct vring_used_elem *e = &ring[(uint16_t)(uidx + n) & mask];
		struct virtqueue_slot *s;

		id = vq_load32(VQ_IO_PLAIN, &e->id);
		ulen = vq_load32(VQ_IO_PLAIN, &e->len);
		if (id >= num || !vq_used_plain(s = &slots[id], ulen))
			break;
		cookies[n] = s->cookie;
		s->cookie = NULL;
		if (lens)
			lens[n] = ulen;
		/* vq_append_free, on the locals */
		if (nfree)
			slots[tail].next = (uint16_t)id;
		else
			head = (uint16_t)id;
		tail = (uint16_t)id;
		nfree++;
	}
	vq->free_head = head;
	vq->free_tail = tail;
	vq->num_free = nfree;
	vq->used_idx = (uint16_t)(uidx + n);
	atomic_store_explicit(&vq->taken_at, vq->used_idx, memory_order_relaxed);
	if (n && vq->track_event)
		vq_move_event(VQ_IO_PLAIN, vq->used_event, vq->used_idx);
	if (n == want)
		return n;
	cookie = duet_vq_take_used(vq, (uint16_t)(ready - n), id, ulen, lens ? &lens[n] : NULL, NULL);
	if (cookie)
		cookies[n++] = cookie;
	return n;
}

int virtqueue_get_buffers(struct virtqueue *vq, void *cookies[], uint32_t lens[], uint16_t max)
{
	uint16_t n = 0;
	int ret = vq_batch_args(vq, VIRTQUEUE_ROLE_DRIVER, cookies, max);

	if (ret < 0)
		return ret;
	while (n < max) {
		void *cookie;

		if (DUET_FAST_PATHS && vq->fast_role == vq_fast_role(VIRTQUEUE_ROLE_DRIVER)) {
			uint16_t ready = vq_ready(vq, VQ_IO_PLAIN, &vq->used->idx, vq->used_idx), k;

			if (!ready)
				break;
			k = get_batch_short(vq, ready, cookies + n, lens ? lens + n : NULL,
					    (uint16_t)(max - n));
			if (!k)
				break; /* the queue broke */
			n = (uint16_t)(n + k);
			continue;
		}
		/* A queue the short path does not serve: one entry at a time. */
		cookie = virtqueue_get_buffer(vq, lens ? &lens[n] : NULL, NULL);
		if (!cookie)
			break;
		cookies[n++] = cookie;
	}
	return n || !vq->broken ? n : -EIO;
}
