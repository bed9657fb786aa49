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

/* Record a taken chain at `head` as in flight on this side. */
static inline void mark_taken(struct virtqueue *vq, struct virtqueue_io io,
			      uint16_t head, size_t count, uint32_t wlen)
{
	vq->slots[head].ndesc = count > UINT16_MAX ? UINT16_MAX : (uint16_t)count;
	vq->slots[head].wlen = wlen;
	vq->avail_idx++;
	/* See virtqueue_get_buffer: keep EVENT_IDX notifications flowing. */
	if (vq->event_idx && vq->cb_enabled)
		vq_store16(io, vq->avail_event, vq->avail_idx);
}

/*
 * The next available head, checked against the queue, with its first
 * descriptor copied to *d: returns the head, -ENOMEM when none is
 * available, or the negative errno of a peer fault.
 */
static inline int peek_head(struct virtqueue *vq, struct virtqueue_io io,
			    struct vring_desc *d)
{
	uint16_t avail, ready, head;

	/* avail.idx is the driver's word: a jump of more than num means it is
	 * lying or broken, not that num entries are ready. */
	avail = vq_load_idx(io, &vq->avail->idx);
	ready = (uint16_t)(avail - vq->avail_idx);
	if (!ready)
		return -ENOMEM;
	/* Each fault returns its errno as a constant, so the compiler sees
	 * that *d is set whenever the result is a head. */
	if (ready > vq->num) {
		vq_fault(vq, VIRTQUEUE_FAULT_AVAIL_JUMP, -EINVAL, ready, vq->num);
		return -EINVAL;
	}
	head = vq_load16(io, &vq->avail->ring[vq->avail_idx & vq->mask]);
	if (head >= vq->num) {
		vq_fault(vq, VIRTQUEUE_FAULT_HEAD_RANGE, -EINVAL, head, vq->num);
		return -EINVAL;
	}
	if (vq->slots[head].ndesc) {
		vq_fault(vq, VIRTQUEUE_FAULT_HEAD_INFLIGHT, -EBUSY, head, 0);
		return -EBUSY;
	}
	vq_read_desc(io, d, &vq->desc[head]);
	return head;
}

/*
 * Take the chain at `head`, whose first descriptor `d` peek_head already
 * copied, into vb[0..vbsize): returns the head, with the number of buffers
 * in *count; -EINVAL when it needs more than vbsize entries and !whole
 * (then nothing is taken); another negative errno for a peer fault. With
 * `whole`, a longer chain is taken all the same and vb holds its first
 * vbsize buffers. Out of line: the quick path below does without it.
 */
static VQ_OUT_OF_LINE int take_chain(struct virtqueue *vq, int head, struct vring_desc d,
				     struct virtqueue_buf *vb, size_t vbsize, size_t *count,
				     bool whole)
{
	uint32_t wlen;
	int ret;

	ret = vq_walk_chain(vq, (uint16_t)head, d, vb, vbsize, count, &wlen);
	if (ret < 0)
		return ret;
	/* Too small an array takes nothing: the chain stays available. */
	if (*count > vbsize && !whole)
		return -EINVAL;
	mark_taken(vq, vq->io, (uint16_t)head, *count, wlen);
	return head;
}

/* The next available chain, any memory, any shape (see take_chain);
 * -ENOMEM when none is available. */
static VQ_OUT_OF_LINE int take_next(struct virtqueue *vq, struct virtqueue_buf *vb,
				    size_t vbsize, size_t *count, bool whole)
{
	struct vring_desc d;
	int head = peek_head(vq, vq->io, &d);

	if (head < 0)
		return head;
	return take_chain(vq, head, d, vb, vbsize, count, whole);
}

/*
 * The short path of both take calls: plain memory, a lone direct
 * descriptor. Returns the head with the buffer in *vb, -ENOMEM when none
 * is available, or -EAGAIN for anything else: a chain, or a value that
 * breaks a rule. Every word read from the ring is the driver's and
 * untrusted; the caller's checked path reads it again under the full
 * rules and reports the fault, so nothing here needs to. The queue's own
 * fields are read before the acquire load, which would force them to be
 * read again after it.
 */
static inline int take_plain(struct virtqueue *vq, struct virtqueue_buf *vb)
{
	struct vring_avail *avail = vq->avail;
	uint16_t aidx = vq->avail_idx, ready, head;
	struct vring_desc d;
	uint64_t off;

	ready = (uint16_t)(vq_load_idx(VQ_IO_PLAIN, &avail->idx) - aidx);
	if (!ready)
		return -ENOMEM;
	head = vq_load16(VQ_IO_PLAIN, &avail->ring[aidx & vq->mask]);
	if (ready > vq->num || head >= vq->num)
		return -EAGAIN;
	vq_read_desc(VQ_IO_PLAIN, &d, &vq->desc[head]);
	off = d.addr - vq->win.da;
	if ((d.flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) ||
	    off > vq->win.size || d.len > vq->win.size - off || vq->slots[head].ndesc)
		return -EAGAIN;
	vb->buf = (uint8_t *)vq->win.va + off;
	vb->len = d.len;
	vb->writable = d.flags & VRING_DESC_F_WRITE;
	vq->slots[head].ndesc = 1;
	vq->slots[head].wlen = vb->writable ? d.len : 0;
	/* Read again rather than kept from above: one value fewer held
	 * across the checks, which spares saving registers on every call. */
	aidx = (uint16_t)(vq->avail_idx + 1u);
	vq->avail_idx = aidx;
	if (vq->event_idx && vq->cb_enabled)
		vq_store16(VQ_IO_PLAIN, vq->avail_event, aidx);
	return head;
}

/* vhost_get_vq_buffers on any queue or chain the short path does not
 * take, and for every fault. */
static VQ_OUT_OF_LINE int get_vq_buffers_checked(struct virtqueue *vq, struct virtqueue_buf *vb,
						 size_t vbsize, size_t *vbcnt)
{
	if (!vq || vq->role != VIRTQUEUE_ROLE_DEVICE || (!vb && vbsize) || !vbcnt)
		return -EINVAL;
	if (vq->broken)
		return -EIO;
	*vbcnt = 0;
	return take_next(vq, vb, vbsize, vbcnt, false);
}

int vhost_get_vq_buffers(struct virtqueue *vq, struct virtqueue_buf *vb,
			 size_t vbsize, size_t *vbcnt)
{
	if (vq && vq->fast_role == vq_fast_role(VIRTQUEUE_ROLE_DEVICE) && vb && vbsize &&
	    vbcnt) {
		int head = take_plain(vq, vb);

		if (head != -EAGAIN) {
			*vbcnt = head >= 0;
			return head;
		}
	}
	return get_vq_buffers_checked(vq, vb, vbsize, vbcnt);
}

/* virtqueue_get_available_buffer on any queue the short path does not
 * take: accessors, chains, and every fault, which it reads afresh. */
static VQ_OUT_OF_LINE void *get_available_checked(struct virtqueue *vq,
						  uint16_t *avail_idx, uint32_t *len)
{
	struct virtqueue_buf first;
	size_t count;
	int head;

	if (!vq || vq->role != VIRTQUEUE_ROLE_DEVICE || vq->broken)
		return NULL;
	head = take_next(vq, &first, 1, &count, true);
	if (head < 0)
		return NULL;
	if (avail_idx)
		*avail_idx = (uint16_t)head;
	if (len)
		*len = first.len;
	return first.buf;
}

void *virtqueue_get_available_buffer(struct virtqueue *vq, uint16_t *avail_idx,
				     uint32_t *len)
{
	struct virtqueue_buf vb;
	int head;

	if (!vq || vq->fast_role != vq_fast_role(VIRTQUEUE_ROLE_DEVICE))
		return get_available_checked(vq, avail_idx, len);
	head = take_plain(vq, &vb);
	if (head == -ENOMEM)
		return NULL;
	if (head < 0)
		return get_available_checked(vq, avail_idx, len);
	if (avail_idx)
		*avail_idx = (uint16_t)head;
	if (len)
		*len = vb.len;
	return vb.buf;
}

static inline void put_used(struct virtqueue *vq, struct virtqueue_io io,
			    uint16_t head, uint32_t len)
{
	struct vring_used_elem *e = &vq->used->ring[vq->used_idx & vq->mask];

	vq_store32(io, &e->id, head);
	vq_store32(io, &e->len, len);
	vq->used_idx++;
	vq_store_idx(io, &vq->used->idx, vq->used_idx);
}

/* virtqueue_add_consumed_buffer on any queue but a healthy plain one. */
static VQ_OUT_OF_LINE int add_consumed_checked(struct virtqueue *vq, uint16_t head,
					       uint32_t len)
{
	struct virtqueue_slot *s;

	if (!vq || vq->role != VIRTQUEUE_ROLE_DEVICE)
		return -EINVAL;
	if (vq->broken)
		return -EIO;
	if (head >= vq->num || !vq->slots[head].ndesc)
		return -EINVAL;
	s = &vq->slots[head];
	if (len > s->wlen)
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

	if (!vq || vq->fast_role != vq_fast_role(VIRTQUEUE_ROLE_DEVICE))
		return add_consumed_checked(vq, head_idx, len);
	if (head_idx >= vq->num)
		return -EINVAL;
	s = &vq->slots[head_idx];
	if (!s->ndesc || len > s->wlen)
		return -EINVAL;
	/* Local state first: the stores below may alias *vq as far as the
	 * compiler knows. */
	s->ndesc = 0;
	uidx = vq->used_idx;
	used = vq->used;
	e = &used->ring[uidx & vq->mask];
	vq->used_idx = (uint16_t)(uidx + 1u);
	vq_store32(VQ_IO_PLAIN, &e->id, head_idx);
	vq_store32(VQ_IO_PLAIN, &e->len, len);
	vq_store_idx(VQ_IO_PLAIN, &used->idx, (uint16_t)(uidx + 1u));
	return 0;
}
