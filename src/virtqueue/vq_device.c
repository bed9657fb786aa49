/*
 * vq_device.c - the device (vhost) role: take available chains, return them
 * consumed.
 *
 * Everything read here was written by the driver and is untrusted: the
 * avail index, each head, each descriptor. Indices are checked against the
 * queue here; chains are checked by vq_chain.c.
 */
#include <errno.h>

#include "vq_internal.h"

/* Record a taken chain at `head` as in flight on this side; `next` is the
 * next avail entry to take, as the caller already knows it. */
static DUET_ALWAYS_INLINE void mark_taken(struct virtqueue *vq, struct virtqueue_io io,
					  uint16_t head, size_t count, uint32_t wlen, uint16_t next)
{
	/* The index first: the slot stores could alias it for the compiler. */
	vq->avail_idx = next;
	vq->slots[head].ndesc = count > UINT16_MAX ? UINT16_MAX : (uint16_t)count;
	vq->slots[head].wlen = wlen;
	/* See virtqueue_get_buffer: keep EVENT_IDX notifications flowing. */
	if (vq->track_event)
		vq_move_event(io, vq->avail_event, next);
}

/*
 * Record the fault of an avail entry that failed the short test in
 * take_short: `ready` entries announced, `head` read at the next. Returns
 * its errno. Out of line: only a broken driver gets here.
 */
static DUET_OUT_OF_LINE int head_fault(struct virtqueue *vq, uint16_t ready, uint16_t head)
{
	/* avail.idx is the driver's word: a jump of more than num means it is
	 * lying or broken, not that num entries are ready. */
	if (ready > vq->num)
		return vq_fault(vq, VIRTQUEUE_FAULT_AVAIL_JUMP, -EINVAL, ready, vq->num);
	if (head >= vq->num)
		return vq_fault(vq, VIRTQUEUE_FAULT_HEAD_RANGE, -EINVAL, head, vq->num);
	return vq_fault(vq, VIRTQUEUE_FAULT_HEAD_INFLIGHT, -EBUSY, head, 0);
}

/*
 * Take the chain at `head`, whose first descriptor (addr, word) is already
 * copied, into vb[0..vbsize): returns the head, with the number of buffers
 * in *count; -EINVAL when it needs more than vbsize entries and !whole
 * (then nothing is taken); another negative errno for a peer fault. With
 * `whole`, a longer chain is taken all the same and vb holds its first
 * vbsize buffers. Out of line: the lone descriptor does without it.
 */
static DUET_OUT_OF_LINE int take_chain(struct virtqueue *vq, uint16_t head, uint64_t addr,
				     uint64_t word, struct virtqueue_buf *vb, size_t vbsize,
				     size_t *count, bool whole)
{
	uint32_t wlen = 0; /* set on success; gcc cannot always see it */
	int ret;

	ret = vq_walk_chain(vq, head, vq_desc_from(addr, word), vb, vbsize, count, &wlen);
	if (ret < 0)
		return ret;
	/* Too small an array takes nothing: the chain stays available. */
	if (*count > vbsize && !whole)
		return -EINVAL;
	mark_taken(vq, vq->io, head, *count, wlen, (uint16_t)(vq->avail_idx + 1u));
	return head;
}

/* What take_short read of an entry it did not take, for the slow paths. */
struct avail_entry {
	uint16_t ready; /* entries announced */
	uint16_t head;
	uint64_t addr;  /* head descriptor, as vq_read_desc_words() */
	uint64_t word;
};

/* take_short's results besides -ENOMEM. */
enum { TAKE_DONE, TAKE_CHAIN, TAKE_FAULT };

/*
 * Take the next available entry if it is a lone direct descriptor inside
 * the window (every rpmsg message): it goes to *vb, and TAKE_DONE is
 * returned. Otherwise, what was read goes to *e: TAKE_FAULT for a bad
 * index or head, for head_fault; TAKE_CHAIN for anything else (or any
 * entry, when !fits), for take_chain. -ENOMEM when none is available.
 *
 * Every word read from the ring is the driver's and untrusted, and each
 * is read once: the slow paths get what was read here. Inlined, *vb and
 * *e stay in registers until a caller hands them to its slow path.
 * (Handing vhost_get_vq_buffers' slow cases over with its own arguments
 * instead, the checked path reading the entry again, saved 10
 * instructions a round trip and broke this rule: not kept.)
 */
static DUET_ALWAYS_INLINE int take_short(struct virtqueue *vq, struct virtqueue_io io,
					 struct virtqueue_buf *vb, bool fits, struct avail_entry *e)
{
	/* Read before the acquire load, which would force a second read. */
	struct vring_avail *avail = vq->avail;
	uint16_t aidx = vq->avail_idx;
	uint64_t addr, word, off;
	uint32_t len, flags;

	e->ready = vq_ready(vq, io, &avail->idx, aidx);
	if (!e->ready)
		return -ENOMEM;
	e->head = vq_load16(io, &avail->ring[aidx & vq->mask]);
	if (e->ready > vq->num || e->head >= vq->num || vq->slots[e->head].ndesc)
		return TAKE_FAULT;
	vq_read_desc_words(io, &vq->desc[e->head], &addr, &word);
	off = addr - vq->win.da;
	len = (uint32_t)word;
	flags = (uint32_t)(word >> 32);
	if (!fits || vq_outside_window(vq, off, len) ||
	    (flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT))) {
		e->addr = addr;
		e->word = word;
		return TAKE_CHAIN;
	}
	vb->buf = (uint8_t *)vq->win.va + off;
	vb->len = len;
	vb->writable = flags & VRING_DESC_F_WRITE;
	mark_taken(vq, io, e->head, 1, vb->writable ? len : 0, (uint16_t)(aidx + 1u));
	return TAKE_DONE;
}

/* The next available chain into vb[0..vbsize) (see take_chain). */
static DUET_ALWAYS_INLINE int take(struct virtqueue *vq, struct virtqueue_io io,
				   struct virtqueue_buf *vb, size_t vbsize, size_t *count)
{
	struct avail_entry e;
	int ret = take_short(vq, io, vb, vbsize != 0, &e);

	if (ret == TAKE_DONE) {
		*count = 1;
		return e.head;
	}
	if (ret == TAKE_CHAIN)
		return take_chain(vq, e.head, e.addr, e.word, vb, vbsize, count, false);
	if (ret == TAKE_FAULT)
		return head_fault(vq, e.ready, e.head);
	return ret;
}

/* vhost_get_vq_buffers with every argument checked, for any queue. */
static DUET_OUT_OF_LINE int get_vq_buffers_checked(struct virtqueue *vq, struct virtqueue_buf *vb,
						 size_t vbsize, size_t *vbcnt)
{
	if (!vq || vq->role != VIRTQUEUE_ROLE_DEVICE || (!vb && vbsize) || !vbcnt)
		return -EINVAL;
	if (vq->broken)
		return -EIO;
	*vbcnt = 0;
	return take(vq, vq->io, vb, vbsize, vbcnt);
}

int vhost_get_vq_buffers(struct virtqueue *vq, struct virtqueue_buf *vb,
			 size_t vbsize, size_t *vbcnt)
{
	if (DUET_FAST_PATHS && vq && vq->fast_role == vq_fast_role(VIRTQUEUE_ROLE_DEVICE) && vb &&
	    vbsize && vbcnt) {
		*vbcnt = 0;
		return take(vq, VQ_IO_PLAIN, vb, vbsize, vbcnt);
	}
	return get_vq_buffers_checked(vq, vb, vbsize, vbcnt);
}

/* get_available for an entry take_short left as TAKE_CHAIN: the chain
 * taken whole, its first buffer returned. */
static DUET_OUT_OF_LINE void *get_available_chain(struct virtqueue *vq, uint16_t head,
						uint64_t addr, uint64_t word,
						uint16_t *avail_idx, uint32_t *len)
{
	struct virtqueue_buf first;
	size_t count;

	if (take_chain(vq, head, addr, word, &first, 1, &count, true) < 0)
		return NULL;
	if (avail_idx)
		*avail_idx = head;
	if (len)
		*len = first.len;
	return first.buf;
}

/* get_available for an entry take_short left as TAKE_FAULT. */
static DUET_OUT_OF_LINE void *get_available_fault(struct virtqueue *vq, uint16_t ready,
						uint16_t head)
{
	head_fault(vq, ready, head);
	return NULL;
}

/* The buffer of the next available chain, whole. */
static DUET_ALWAYS_INLINE void *get_available(struct virtqueue *vq, struct virtqueue_io io,
					      uint16_t *avail_idx, uint32_t *len)
{
	struct virtqueue_buf first;
	struct avail_entry e;
	int ret = take_short(vq, io, &first, true, &e);

	if (ret == TAKE_DONE) {
		if (avail_idx)
			*avail_idx = e.head;
		if (len)
			*len = first.len;
		return first.buf;
	}
	if (ret == TAKE_CHAIN)
		return get_available_chain(vq, e.head, e.addr, e.word, avail_idx, len);
	if (ret == TAKE_FAULT)
		return get_available_fault(vq, e.ready, e.head);
	return NULL;
}

/* virtqueue_get_available_buffer with every argument checked, any queue. */
static DUET_OUT_OF_LINE void *get_available_checked(struct virtqueue *vq, uint16_t *avail_idx,
						  uint32_t *len)
{
	if (!vq || vq->role != VIRTQUEUE_ROLE_DEVICE || vq->broken)
		return NULL;
	return get_available(vq, vq->io, avail_idx, len);
}

void *virtqueue_get_available_buffer(struct virtqueue *vq, uint16_t *avail_idx,
				     uint32_t *len)
{
	if (!DUET_FAST_PATHS || !vq || vq->fast_role != vq_fast_role(VIRTQUEUE_ROLE_DEVICE))
		return get_available_checked(vq, avail_idx, len);
	return get_available(vq, VQ_IO_PLAIN, avail_idx, len);
}

/* virtqueue_get_available_buffers past its argument checks: take_short
 * while it takes, so each entry is read and checked by the one take there
 * is (`io` as for take_short). */
static DUET_ALWAYS_INLINE uint16_t take_batch(struct virtqueue *vq, struct virtqueue_io io,
					      struct virtqueue_buf *vb, uint16_t *heads,
					      uint16_t max)
{
	struct avail_entry e;
	uint16_t n = 0;

	while (n < max && take_short(vq, io, &vb[n], true, &e) == TAKE_DONE)
		heads[n++] = e.head;
	return n;
}

int virtqueue_get_available_buffers(struct virtqueue *vq, struct virtqueue_buf vb[],
				    uint16_t heads[], uint16_t max)
{
	int ret = vq_batch_args(vq, VIRTQUEUE_ROLE_DEVICE, vb && heads ? vb : NULL, max);

	if (ret < 0)
		return ret;
	if (DUET_FAST_PATHS && vq->fast_role == vq_fast_role(VIRTQUEUE_ROLE_DEVICE))
		return take_batch(vq, VQ_IO_PLAIN, vb, heads, max);
	return take_batch(vq, vq->io, vb, heads, max);
}

static DUET_ALWAYS_INLINE void put_used(struct virtqueue *vq, struct virtqueue_io io, uint16_t head,
					uint32_t len)
{
	struct vring_used_elem *e = &vq->used->ring[vq->used_idx & vq->mask];

	vq_update32(io, &e->id, head);
	vq_update32(io, &e->len, len);
	vq->used_idx++;
	vq_store_idx(io, &vq->used->idx, vq->used_idx);
}

/* The slot of `head` when it is one this side took and has not returned,
 * with room for `len` written bytes, else NULL: what every return checks. */
static inline struct virtqueue_slot *consumable(struct virtqueue *vq, uint16_t head,
						uint32_t len)
{
	struct virtqueue_slot *s;

	if (head >= vq->num)
		return NULL;
	s = &vq->slots[head];
	return s->ndesc && len <= s->wlen ? s : NULL;
}

/* virtqueue_add_consumed_buffer on any queue but a healthy plain one. */
static DUET_OUT_OF_LINE int add_consumed_checked(struct virtqueue *vq, uint16_t head,
					       uint32_t len)
{
	struct virtqueue_slot *s;

	if (!vq || vq->role != VIRTQUEUE_ROLE_DEVICE)
		return -EINVAL;
	if (vq->broken)
		return -EIO;
	s = consumable(vq, head, len);
	if (!s)
		return -EINVAL;
	s->ndesc = 0;
	put_used(vq, vq->io, head, len);
	return 0;
}

int virtqueue_add_consumed_buffer(struct virtqueue *vq, uint16_t head_idx, uint32_t len)
{
	struct virtqueue_slot *s;
	struct vring_used_elem *e;
	struct vring_used *used;
	uint16_t uidx;

	if (!DUET_FAST_PATHS || !vq || vq->fast_role != vq_fast_role(VIRTQUEUE_ROLE_DEVICE))
		return add_consumed_checked(vq, head_idx, len);
	s = consumable(vq, head_idx, len);
	if (!s)
		return -EINVAL;
	/* Local state first: the stores below may alias *vq as far as the
	 * compiler knows. */
	s->ndesc = 0;
	uidx = vq->used_idx;
	used = vq->used;
	e = &used->ring[uidx & vq->mask];
	vq->used_idx = (uint16_t)(uidx + 1u);
	vq_update32(VQ_IO_PLAIN, &e->id, head_idx);
	vq_update32(VQ_IO_PLAIN, &e->len, len);
	vq_store_idx(VQ_IO_PLAIN, &used->idx, (uint16_t)(uidx + 1u));
	return 0;
}

/*
 * The short path of virtqueue_add_consumed_buffers, on a healthy plain
 * queue: the single call's checks for each head, the entries stored as
 * they change, the index once. The queue's state stays in locals across
 * the slot and ring stores. Returns how many it put back before the first
 * it refuses.
 */
static uint16_t put_used_batch(struct virtqueue *vq, const uint16_t *heads, const uint32_t *lens,
			       uint16_t n)
{
	struct vring_used *used = vq->used;
	uint16_t uidx = vq->used_idx, mask = vq->mask;
	uint16_t k;

	for (k = 0; k < n; k++) {
		uint16_t head = heads[k];
		uint32_t len = lens ? lens[k] : 0;
		struct virtqueue_slot *s = consumable(vq, head, len);
		struct vring_used_elem *e;

		if (!s)
			break;
		s->ndesc = 0;
		e = &used->ring[(uint16_t)(uidx + k) & mask];
		vq_update32(VQ_IO_PLAIN, &e->id, head);
		vq_update32(VQ_IO_PLAIN, &e->len, len);
	}
	if (k) {
		vq->used_idx = (uint16_t)(uidx + k);
		vq_store_idx(VQ_IO_PLAIN, &used->idx, (uint16_t)(uidx + k));
	}
	return k;
}

int virtqueue_add_consumed_buffers(struct virtqueue *vq, const uint16_t heads[],
				   const uint32_t lens[], uint16_t n)
{
	uint16_t k = 0;
	int ret = vq_batch_args(vq, VIRTQUEUE_ROLE_DEVICE, heads, n);

	if (ret < 0)
		return ret;
	if (DUET_FAST_PATHS && vq->fast_role == vq_fast_role(VIRTQUEUE_ROLE_DEVICE)) {
		k = put_used_batch(vq, heads, lens, n);
		ret = -EINVAL; /* what stopped it, if anything did */
	} else {
		while (k < n && (ret = virtqueue_add_consumed_buffer(vq, heads[k],
								     lens ? lens[k] : 0)) == 0)
			k++;
	}
	return k == n || k ? k : ret;
}
