/*
 * vq_short.h - the virtqueue's one-buffer calls as inline bodies.
 *
 * vhost_get_vq_buffers, virtqueue_add_consumed_buffer, virtqueue_add_one,
 * virtqueue_get_buffer and virtqueue_kick are each the vq_inline_ body of
 * the same name here: a short path for a healthy queue in plain memory,
 * and a call of the checked body (vq_device.c, vq_driver.c, virtqueue.c)
 * for everything else. A layer whose message path is the ring's (rpmsg's
 * roles) compiles the same bodies into its own: a message then pays no
 * call, no prologue and no second test of arguments it already knows, for
 * each of the four or five ring steps it takes. One ring core still: the
 * public call and the inlined one are the same code.
 *
 * Inside the library only: the queue's layout they read is no interface.
 */
#ifndef DUET_VQ_SHORT_H
#define DUET_VQ_SHORT_H

#include "vq_internal.h"

/*
 * How a layer above calls one: VQ_SHORT(vq_inline_kick, virtqueue_kick, vq)
 * is the body inlined where the short paths are compiled, and the public
 * call in a build for size (DUET_FAST_PATHS 0), which then links one copy
 * of each: inlined there, every caller would carry the checked call's set-up.
 */
#define VQ_SHORT(body, call, ...) (DUET_FAST_PATHS ? body(__VA_ARGS__) : call(__VA_ARGS__))

/* ---- the device's take ---- */

/* Record a taken chain at `head` as in flight on this side; `next` is the
 * next avail entry to take, as the caller already knows it. */
static DUET_ALWAYS_INLINE void vq_mark_taken(struct virtqueue *vq, struct virtqueue_io io,
					     uint16_t head, size_t count, uint32_t wlen,
					     uint16_t next)
{
	/* The index first: the slot stores could alias it for the compiler. */
	vq->avail_idx = next;
	atomic_store_explicit(&vq->taken_at, next, memory_order_relaxed);
	vq->slots[head].ndesc = count > UINT16_MAX ? UINT16_MAX : (uint16_t)count;
	vq->slots[head].wlen = wlen;
	/* See virtqueue_get_buffer: keep EVENT_IDX notifications flowing. */
	if (vq->track_event)
		vq_move_event(io, vq->avail_event, next);
}

/* What vq_take_short read of an entry it did not take, for the slow paths. */
struct vq_avail_entry {
	uint16_t ready; /* entries announced */
	uint16_t head;
	uint64_t addr;  /* head descriptor, as vq_read_desc_words() */
	uint64_t word;
};

/* vq_take_short's results besides -ENOMEM. */
enum { VQ_TAKE_DONE, VQ_TAKE_CHAIN, VQ_TAKE_FAULT };

/*
 * Record the fault of an avail entry that failed the short test in
 * vq_take_short: `ready` entries announced, `head` read at the next.
 * Returns its errno.
 */
int duet_vq_head_fault(struct virtqueue *vq, uint16_t ready, uint16_t head);

/*
 * Take the chain at `head`, whose first descriptor (addr, word) is already
 * copied, into vb[0..vbsize): returns the head, with the number of buffers
 * in *count; -EINVAL when it needs more than vbsize entries and !whole
 * (then nothing is taken); another negative errno for a peer fault. With
 * `whole`, a longer chain is taken all the same and vb holds its first
 * vbsize buffers.
 */
int duet_vq_take_chain(struct virtqueue *vq, uint16_t head, uint64_t addr, uint64_t word,
		  struct virtqueue_buf *vb, size_t vbsize, size_t *count, bool whole);

/*
 * Take the next available entry if it is a lone direct descriptor inside
 * the window (every rpmsg message): it goes to *vb, and VQ_TAKE_DONE is
 * returned. Otherwise, what was read goes to *e: VQ_TAKE_FAULT for a bad
 * index or head, for duet_vq_head_fault; VQ_TAKE_CHAIN for anything else (or
 * any entry, when !fits), for duet_vq_take_chain. -ENOMEM when none is
 * available.
 *
 * Every word read from the ring is the driver's and untrusted, and each
 * is read once: the slow paths get what was read here. Inlined, *vb and
 * *e stay in registers until a caller hands them to its slow path.
 * (Handing vhost_get_vq_buffers' slow cases over with its own arguments
 * instead, the checked path reading the entry again, saved 10
 * instructions a round trip and broke this rule: not kept.)
 */
static DUET_ALWAYS_INLINE int vq_take_short(struct virtqueue *vq, struct virtqueue_io io,
					    struct virtqueue_buf *vb, bool fits,
					    struct vq_avail_entry *e)
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
		return VQ_TAKE_FAULT;
	vq_read_desc_words(io, &vq->desc[e->head], &addr, &word);
	off = addr - vq->win.da;
	len = (uint32_t)word;
	flags = (uint32_t)(word >> 32);
	if (!fits || vq_outside_window(vq, off, len) ||
	    (flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT))) {
		e->addr = addr;
		e->word = word;
		return VQ_TAKE_CHAIN;
	}
	vb->buf = (uint8_t *)vq->win.va + off;
	vb->len = len;
	vb->writable = flags & VRING_DESC_F_WRITE;
	vq_mark_taken(vq, io, e->head, 1, vb->writable ? len : 0, (uint16_t)(aidx + 1u));
	return VQ_TAKE_DONE;
}

/* The next available chain into vb[0..vbsize) (see duet_vq_take_chain). */
static DUET_INLINE int vq_take(struct virtqueue *vq, struct virtqueue_io io,
			       struct virtqueue_buf *vb, size_t vbsize, size_t *count)
{
	struct vq_avail_entry e;
	int ret = vq_take_short(vq, io, vb, vbsize != 0, &e);

	if (ret == VQ_TAKE_DONE) {
		*count = 1;
		return e.head;
	}
	if (ret == VQ_TAKE_CHAIN)
		return duet_vq_take_chain(vq, e.head, e.addr, e.word, vb, vbsize, count, false);
	if (ret == VQ_TAKE_FAULT)
		return duet_vq_head_fault(vq, e.ready, e.head);
	return ret;
}

/* vhost_get_vq_buffers with every argument checked, for any queue. */
int duet_vq_get_vq_buffers_checked(struct virtqueue *vq, struct virtqueue_buf *vb, size_t vbsize,
			      size_t *vbcnt);

/* vhost_get_vq_buffers. */
static DUET_INLINE int vq_inline_get_vq_buffers(struct virtqueue *vq,
						struct virtqueue_buf *vb, size_t vbsize,
						size_t *vbcnt)
{
	if (DUET_FAST_PATHS && vq && vq->fast_role == vq_fast_role(VIRTQUEUE_ROLE_DEVICE) && vb &&
	    vbsize && vbcnt) {
		*vbcnt = 0;
		return vq_take(vq, VQ_IO_PLAIN, vb, vbsize, vbcnt);
	}
	return duet_vq_get_vq_buffers_checked(vq, vb, vbsize, vbcnt);
}

/* ---- the device's return ---- */

/* The slot of `head` when it is one this side took and has not returned,
 * with room for `len` written bytes, else NULL: what every return checks. */
static inline struct virtqueue_slot *vq_consumable(struct virtqueue *vq, uint16_t head,
						   uint32_t len)
{
	struct virtqueue_slot *s;

	if (head >= vq->num)
		return NULL;
	s = &vq->slots[head];
	return s->ndesc && len <= s->wlen ? s : NULL;
}

/* virtqueue_add_consumed_buffer on any queue but a healthy plain one. */
int duet_vq_add_consumed_checked(struct virtqueue *vq, uint16_t head, uint32_t len);

/* virtqueue_add_consumed_buffer. */
static DUET_INLINE int vq_inline_add_consumed_buffer(struct virtqueue *vq,
						     uint16_t head_idx, uint32_t len)
{
	struct virtqueue_slot *s;
	struct vring_used_elem *e;
	struct vring_used *used;
	uint16_t uidx;

	if (!DUET_FAST_PATHS || !vq || vq->fast_role != vq_fast_role(VIRTQUEUE_ROLE_DEVICE))
		return duet_vq_add_consumed_checked(vq, head_idx, len);
	s = vq_consumable(vq, head_idx, len);
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

/* ---- the driver's add ---- */

/* Device address of a local buffer; false when it is not wholly inside the
 * window (a caller error: such a buffer cannot be shared). A pointer below
 * the window wraps to a huge offset and fails the same test. */
static inline bool vq_window_da(const struct virtqueue_window *win, const void *p, uint32_t len,
				uint64_t *da)
{
	uintptr_t off = (uintptr_t)p - (uintptr_t)win->va;

	if (off > win->size || len > win->size - off)
		return false;
	*da = win->da + (uint64_t)off;
	return true;
}

/*
 * One buffer, the common case (every rpmsg message): no chain, no indirect
 * table; `io` as for the chain's add. All of *vq that it needs is read and
 * updated before the first store to the ring, which the compiler must
 * assume could alias *vq; that keeps few values live and none reloaded.
 */
static DUET_INLINE int vq_add_one_io(struct virtqueue *vq, struct virtqueue_io io, void *buf,
				     uint32_t len, unsigned int writable, void *cookie)
{
	struct virtqueue_slot *slot;
	struct vring_desc *desc;
	uint16_t *entry, *idx;
	uint16_t head, aidx;
	uint64_t da;

	if (!vq->num_free)
		return -ENOSPC;
	if (!buf || !vq_window_da(&vq->win, buf, len, &da))
		return -EINVAL;
	head = vq->free_head;
	slot = &vq->slots[head];
	vq->free_head = slot->next;
	vq->num_free--;
	slot->cookie = cookie;
	slot->ndesc = 1;
	slot->wlen = writable ? len : 0;
	aidx = vq->avail_idx;
	vq->avail_idx = (uint16_t)(aidx + 1u);
	desc = &vq->desc[head];
	entry = &vq->avail->ring[aidx & vq->mask];
	idx = &vq->avail->idx;
	vq_write_desc(io, desc, da, len, writable ? VRING_DESC_F_WRITE : 0, 0);
	vq_update16(io, entry, head);
	vq_store_idx(io, idx, (uint16_t)(aidx + 1u));
	return 0;
}

/* virtqueue_add_one on any queue but a healthy plain one. */
int duet_vq_add_one_checked(struct virtqueue *vq, void *buf, uint32_t len, bool writable,
		       void *cookie);

/* virtqueue_add_one. */
static DUET_INLINE int vq_inline_add_one(struct virtqueue *vq, void *buf, uint32_t len,
					 bool writable, void *cookie)
{
	if (DUET_FAST_PATHS && vq && vq->fast_role == vq_fast_role(VIRTQUEUE_ROLE_DRIVER) && cookie)
		return vq_add_one_io(vq, VQ_IO_PLAIN, buf, len, writable, cookie);
	return duet_vq_add_one_checked(vq, buf, len, writable, cookie);
}

/* ---- the driver's take back ---- */

/*
 * Append descriptors head..tail (linked) to the free list. First in, first
 * out: a driver whose device uses buffers in order then adds each head
 * back at the same avail entry it had a ring ago, so the entry holds its
 * value and is not stored again (vq_update16); a stack would reverse the
 * order every time the list refills.
 */
static inline void vq_append_free(struct virtqueue *vq, uint16_t head, uint16_t tail, uint16_t n)
{
	if (vq->num_free)
		vq->slots[vq->free_tail].next = head;
	else
		vq->free_head = head;
	vq->free_tail = tail;
	vq->num_free = (uint16_t)(vq->num_free + n);
}

/* Whether a used entry naming slot s (its id in range), `ulen` bytes
 * written, is a one-descriptor head in flight that the short paths take
 * as it is; anything else goes to duet_vq_take_used. */
static inline bool vq_used_plain(const struct virtqueue_slot *s, uint32_t ulen)
{
	return s->cookie && ulen <= s->wlen && s->ndesc == 1;
}

/*
 * Take the used entry the caller read: `ready` entries announced, the next
 * one holding `id` and `ulen`, all the device's words and untrusted until
 * checked there, each read once. Returns the cookie, or NULL after
 * recording the fault.
 */
void *duet_vq_take_used(struct virtqueue *vq, uint16_t ready, uint32_t id, uint32_t ulen,
		   uint32_t *len, uint16_t *idx);

/* virtqueue_get_buffer with every argument checked, any queue. */
void *duet_vq_get_used_checked(struct virtqueue *vq, uint32_t *len, uint16_t *idx);

/* virtqueue_get_buffer. */
static DUET_INLINE void *vq_inline_get_buffer(struct virtqueue *vq, uint32_t *len,
					      uint16_t *idx)
{
	struct virtqueue_slot *s;
	struct vring_used *used;
	uint32_t id, ulen;
	uint16_t uidx, ready;
	void *cookie;

	if (!DUET_FAST_PATHS || !vq || vq->fast_role != vq_fast_role(VIRTQUEUE_ROLE_DRIVER))
		return duet_vq_get_used_checked(vq, len, idx);
	/* The short path: plain memory, a one-descriptor head. What it does
	 * not plainly accept, a chain or a fault, goes as read to
	 * duet_vq_take_used. */
	uidx = vq->used_idx;
	used = vq->used;
	ready = vq_ready(vq, VQ_IO_PLAIN, &used->idx, uidx);
	if (!ready)
		return NULL;
	id = vq_load32(VQ_IO_PLAIN, &used->ring[uidx & vq->mask].id);
	ulen = vq_load32(VQ_IO_PLAIN, &used->ring[uidx & vq->mask].len);
	s = &vq->slots[id < vq->num ? id : 0];
	cookie = s->cookie;
	if (ready > (uint16_t)(vq->avail_idx - uidx) || id >= vq->num || !vq_used_plain(s, ulen))
		return duet_vq_take_used(vq, ready, id, ulen, len, idx);
	s->cookie = NULL;
	vq_append_free(vq, (uint16_t)id, (uint16_t)id, 1);
	vq->used_idx = (uint16_t)(uidx + 1u);
	atomic_store_explicit(&vq->taken_at, (uint16_t)(uidx + 1u), memory_order_relaxed);
	if (vq->track_event)
		vq_move_event(VQ_IO_PLAIN, vq->used_event, (uint16_t)(uidx + 1u));
	if (len)
		*len = ulen;
	if (idx)
		*idx = (uint16_t)id;
	return cookie;
}

/* ---- the kick, either role ---- */

/* Whether the peer wants a notification for our index moving from
 * kicked_idx to `now`, as its word says. */
static DUET_INLINE bool vq_peer_wants_kick(struct virtqueue *vq, struct virtqueue_io io,
					   uint16_t now)
{
	uint16_t wish;

	/* Our index store must be visible before we read the peer's wish,
	 * or both sides can decide the other will act. */
	vq_fence(io);
	wish = vq_load16(io, vq->peer_wish);
	if (vq->event_idx)
		return vring_need_event(wish, now, vq->kicked_idx);
	/* VRING_USED_F_NO_NOTIFY and VRING_AVAIL_F_NO_INTERRUPT: both bit 0. */
	return !(wish & 1u);
}

/* The end of a kick: record it, and ring when the peer wants it. */
static inline void vq_kick_done(struct virtqueue *vq, uint16_t now, bool wants)
{
	vq->kicked_idx = now;
	if (!wants) {
		vq->stats.kicks_saved++;
		return;
	}
	vq->stats.kicks++;
	if (vq->notify)
		vq->notify(vq);
}

/* virtqueue_kick on a broken queue or one with accessors. */
void duet_vq_kick_checked(struct virtqueue *vq, uint16_t now);

/* virtqueue_kick. */
static DUET_INLINE void vq_inline_kick(struct virtqueue *vq)
{
	uint16_t now;

	if (!vq)
		return;
	now = vq->role == VIRTQUEUE_ROLE_DRIVER ? vq->avail_idx : vq->used_idx;
	if (now == vq->kicked_idx)
		return;
	if (!DUET_FAST_PATHS || !vq->fast_role) {
		duet_vq_kick_checked(vq, now);
		return;
	}
	vq_kick_done(vq, now, vq_peer_wants_kick(vq, VQ_IO_PLAIN, now));
}

#endif /* DUET_VQ_SHORT_H */
