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
	vq->inflight++;
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
 * take_next for plain memory, with a lone direct descriptor, the common
 * case, taken here: the only rule that applies is the window check. A
 * chain goes on to take_chain with the descriptor already copied, so
 * nothing is read from the ring twice.
 */
static inline int take_lone(struct virtqueue *vq, struct virtqueue_buf *vb,
			    size_t vbsize, size_t *count, bool whole)
{
	struct vring_desc d;
	void *va;
	int head;

	head = peek_head(vq, VQ_IO_PLAIN, &d);
	if (head < 0)
		return head;
	if (d.flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT))
		return take_chain(vq, head, d, vb, vbsize, count, whole);
	va = vq_to_local(vq, d.addr, d.len);
	if (!va)
		return vq->error;
	vb->buf = va;
	vb->len = d.len;
	vb->writable = d.flags & VRING_DESC_F_WRITE;
	*count = 1;
	mark_taken(vq, VQ_IO_PLAIN, (uint16_t)head, 1, vb->writable ? d.len : 0);
	return head;
}

int vhost_get_vq_buffers(struct virtqueue *vq, struct virtqueue_buf *vb,
			 size_t vbsize, size_t *vbcnt)
{
	if (!vq || vq->role != VIRTQUEUE_ROLE_DEVICE || (!vb && vbsize) || !vbcnt)
		return -EINVAL;
	if (vq->broken)
		return -EIO;
	*vbcnt = 0;
	if (!vq->io.ops && vbsize)
		return take_lone(vq, vb, vbsize, vbcnt, false);
	return take_next(vq, vb, vbsize, vbcnt, false);
}

void *virtqueue_get_available_buffer(struct virtqueue *vq, uint16_t *avail_idx,
				     uint32_t *len)
{
	struct virtqueue_buf first;
	size_t count;
	int head;

	if (!vq || vq->role != VIRTQUEUE_ROLE_DEVICE || vq->broken)
		return NULL;
	if (!vq->io.ops)
		head = take_lone(vq, &first, 1, &count, true);
	else
		head = take_next(vq, &first, 1, &count, true);
	if (head < 0)
		return NULL;
	if (avail_idx)
		*avail_idx = (uint16_t)head;
	if (len)
		*len = first.len;
	return first.buf;
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

static VQ_OUT_OF_LINE void put_used_io(struct virtqueue *vq, uint16_t head,
				       uint32_t len)
{
	put_used(vq, vq->io, head, len);
}

int virtqueue_add_consumed_buffer(struct virtqueue *vq, uint16_t head_idx, uint32_t len)
{
	struct virtqueue_slot *s;

	if (!vq || vq->role != VIRTQUEUE_ROLE_DEVICE)
		return -EINVAL;
	if (vq->broken)
		return -EIO;
	if (head_idx >= vq->num || !vq->slots[head_idx].ndesc)
		return -EINVAL;
	s = &vq->slots[head_idx];
	if (len > s->wlen)
		return -EINVAL;
	s->ndesc = 0;
	vq->inflight--;
	if (vq->io.ops)
		put_used_io(vq, head_idx, len);
	else
		put_used(vq, VQ_IO_PLAIN, head_idx, len);
	return 0;
}
