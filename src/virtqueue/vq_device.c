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

/*
 * Take the next available chain into vb[0..vbsize): returns its head, with
 * the number of buffers in *count; -ENOMEM when none is available; -EINVAL
 * when it needs more than vbsize entries and !whole (then nothing is taken);
 * another negative errno for a peer fault. With `whole`, a longer chain is
 * taken all the same and vb holds its first vbsize buffers. `io` is the
 * queue's accessors or VQ_IO_PLAIN, folded at compile time.
 */
static inline int take_next(struct virtqueue *vq, struct virtqueue_io io,
			    struct virtqueue_buf *vb, size_t vbsize, size_t *count,
			    bool whole)
{
	uint16_t avail, ready, head;
	struct vring_desc d;
	uint32_t wlen = 0;
	int ret;

	/* avail.idx is the driver's word: a jump of more than num means it is
	 * lying or broken, not that num entries are ready. */
	avail = vq_load_idx(io, &vq->avail->idx);
	ready = (uint16_t)(avail - vq->avail_idx);
	if (!ready)
		return -ENOMEM;
	if (ready > vq->num)
		return vq_fault(vq, VIRTQUEUE_FAULT_AVAIL_JUMP, -EINVAL, ready, vq->num);
	head = vq_load16(io, &vq->avail->ring[vq->avail_idx & vq->mask]);
	if (head >= vq->num)
		return vq_fault(vq, VIRTQUEUE_FAULT_HEAD_RANGE, -EINVAL, head, vq->num);
	if (vq->slots[head].ndesc)
		return vq_fault(vq, VIRTQUEUE_FAULT_HEAD_INFLIGHT, -EBUSY, head, 0);

	vq_read_desc(io, &d, &vq->desc[head]);
	if (!(d.flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) && vbsize) {
		/* A lone direct descriptor, the common case: the only rule
		 * that applies is the window check. */
		void *va = vq_to_local(vq, d.addr, d.len);

		if (!va)
			return vq->error;
		vb[0].buf = va;
		vb[0].len = d.len;
		vb[0].writable = d.flags & VRING_DESC_F_WRITE;
		*count = 1;
		if (vb[0].writable)
			wlen = d.len;
	} else {
		ret = vq_walk_chain(vq, head, d, vb, vbsize, count, &wlen);
		if (ret < 0)
			return ret;
		/* Too small an array takes nothing: the chain stays available. */
		if (*count > vbsize && !whole)
			return -EINVAL;
	}

	vq->slots[head].ndesc = *count > UINT16_MAX ? UINT16_MAX : (uint16_t)*count;
	vq->slots[head].wlen = wlen;
	vq->inflight++;
	vq->avail_idx++;
	/* See virtqueue_get_buffer: keep EVENT_IDX notifications flowing. */
	if (vq->event_idx && vq->cb_enabled)
		vq_store16(io, vq->avail_event, vq->avail_idx);
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
	if (vq->io.ops)
		return take_next(vq, vq->io, vb, vbsize, vbcnt, false);
	return take_next(vq, VQ_IO_PLAIN, vb, vbsize, vbcnt, false);
}

void *virtqueue_get_available_buffer(struct virtqueue *vq, uint16_t *avail_idx,
				     uint32_t *len)
{
	struct virtqueue_buf first;
	size_t count;
	int head;

	if (!vq || vq->role != VIRTQUEUE_ROLE_DEVICE || vq->broken)
		return NULL;
	if (vq->io.ops)
		head = take_next(vq, vq->io, &first, 1, &count, true);
	else
		head = take_next(vq, VQ_IO_PLAIN, &first, 1, &count, true);
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
		put_used(vq, vq->io, head_idx, len);
	else
		put_used(vq, VQ_IO_PLAIN, head_idx, len);
	return 0;
}
