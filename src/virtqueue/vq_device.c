/*
 * vq_device.c - the device (vhost) role: take available chains, return them
 * consumed.
 *
 * Everything read here was written by the driver and is untrusted: the
 * avail index, each head, each descriptor. Indices are checked against the
 * queue here; chains are checked by vq_chain.c.
 */
#include <errno.h>

#include "vq_short.h"

/* See vq_short.h. Out of line: only a broken driver gets here. */
DUET_OUT_OF_LINE int duet_vq_head_fault(struct virtqueue *vq, uint16_t ready, uint16_t head)
{
	/* avail.idx is the driver's word: a jump of more than num means it is
	 * lying or broken, not that num entries are ready. */
	if (ready > vq->num)
		return duet_vq_fault(vq, VIRTQUEUE_FAULT_AVAIL_JUMP, -EINVAL, ready, vq->num);
	if (head >= vq->num)
		return duet_vq_fault(vq, VIRTQUEUE_FAULT_HEAD_RANGE, -EINVAL, head, vq->num);
	return duet_vq_fault(vq, VIRTQUEUE_FAULT_HEAD_INFLIGHT, -EBUSY, head, 0);
}

/* See vq_short.h. Out of line: the lone descriptor does without it. */
DUET_OUT_OF_LINE int duet_vq_take_chain(struct virtqueue *vq, uint16_t head, uint64_t addr,
				   uint64_t word, struct virtqueue_buf *vb, size_t vbsize,
				   size_t *count, bool whole)
{
	uint32_t wlen = 0; /* set on success; gcc cannot always see it */
	int ret;

	ret = duet_vq_walk_chain(vq, head, vq_desc_from(addr, word), vb, vbsize, count, &wlen);
	if (ret < 0)
		return ret;
	/* Too small an array takes nothing: the chain stays available. */
	if (*count > vbsize && !whole)
		return -EINVAL;
	vq_mark_taken(vq, vq->io, head, *count, wlen, (uint16_t)(vq->avail_idx + 1u));
	return head;
}

/* vhost_get_vq_buffers with every argument checked, for any queue. */
DUET_SHORT_FALLBACK int duet_vq_get_vq_buffers_checked(struct virtqueue *vq,
						  struct virtqueue_buf *vb, size_t vbsize, size_t *vbcnt)
{
	if (!vq || vq->role != VIRTQUEUE_ROLE_DEVICE || (!vb && vbsize) || !vbcnt)
		return -EINVAL;
	if (vq->broken)
		return -EIO;
	*vbcnt = 0;
	return vq_take(vq, vq->io, vb, vbsize, vbcnt);
}

int vhost_get_vq_buffers(struct virtqueue *vq, struct virtqueue_buf *vb,
			 size_t vbsize, size_t *vbcnt)
{
	return vq_inline_get_vq_buffers(vq, vb, vbsize, vbcnt);
}

/* get_available for an entry vq_take_short left as VQ_TAKE_CHAIN: the chain
 * taken whole, its first buffer returned. */
static DUET_OUT_OF_LINE void *get_available_chain(struct virtqueue *vq, uint16_t head,
						  uint64_t addr, uint64_t word,
						  uint16_t *avail_idx, uint32_t *len)
{
	struct virtqueue_buf first;
	size_t count;

	if (duet_vq_take_chain(vq, head, addr, word, &first, 1, &count, true) < 0)
		return NULL;
	*avail_idx = head;
	if (len)
		*len = first.len;
	return first.buf;
}

/* get_available for an entry vq_take_short left as VQ_TAKE_FAULT. */
static DUET_OUT_OF_LINE void *get_available_fault(struct virtqueue *vq, uint16_t ready,
						  uint16_t head)
{
	duet_vq_head_fault(vq, ready, head);
	return NULL;
}

/* The buffer of the next available chain, whole. */
static DUET_ALWAYS_INLINE void *get_available(struct virtqueue *vq, struct virtqueue_io io,
					      uint16_t *avail_idx, uint32_t *len)
{
	struct virtqueue_buf first;
	struct vq_avail_entry e;
	int ret = vq_take_short(vq, io, &first, true, &e);

	if (ret == VQ_TAKE_DONE) {
		*avail_idx = e.head;
		if (len)
			*len = first.len;
		return first.buf;
	}
	if (ret == VQ_TAKE_CHAIN)
		return get_available_chain(vq, e.head, e.addr, e.word, avail_idx, len);
	if (ret == VQ_TAKE_FAULT)
		return get_available_fault(vq, e.ready, e.head);
	return NULL;
}

/* virtqueue_get_available_buffer with every argument checked, any queue.
 * No avail_idx, nothing taken: a chain whose head the caller cannot know
 * could never be returned, and the driver would lose its buffers. */
static DUET_OUT_OF_LINE void *get_available_checked(struct virtqueue *vq, uint16_t *avail_idx,
						    uint32_t *len)
{
	if (!vq || !avail_idx || vq->role != VIRTQUEUE_ROLE_DEVICE || vq->broken)
		return NULL;
	return get_available(vq, vq->io, avail_idx, len);
}

void *virtqueue_get_available_buffer(struct virtqueue *vq, uint16_t *avail_idx,
				     uint32_t *len)
{
	if (!DUET_FAST_PATHS || !vq || !avail_idx ||
	    vq->fast_role != vq_fast_role(VIRTQUEUE_ROLE_DEVICE))
		return get_available_checked(vq, avail_idx, len);
	return get_available(vq, VQ_IO_PLAIN, avail_idx, len);
}

/* virtqueue_get_available_buffers past its argument checks: vq_take_short
 * while it takes, so each entry is read and checked by the one take there
 * is (`io` as for vq_take_short). */
static DUET_ALWAYS_INLINE uint16_t take_batch(struct virtqueue *vq, struct virtqueue_io io,
					      struct virtqueue_buf *vb, uint16_t *heads,
					      uint16_t max)
{
	struct vq_avail_entry e;
	uint16_t n = 0;

	while (n < max && vq_take_short(vq, io, &vb[n], true, &e) == VQ_TAKE_DONE)
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

static DUET_INLINE void put_used(struct virtqueue *vq, struct virtqueue_io io, uint16_t head,
				 uint32_t len)
{
	struct vring_used_elem *e = &vq->used->ring[vq->used_idx & vq->mask];

	vq_update32(io, &e->id, head);
	vq_update32(io, &e->len, len);
	vq->used_idx++;
	vq_store_idx(io, &vq->used->idx, vq->used_idx);
}

/* virtqueue_add_consumed_buffer on any queue but a healthy plain one. */
DUET_SHORT_FALLBACK int duet_vq_add_consumed_checked(struct virtqueue *vq, uint16_t head,
						uint32_t len)
{
	struct virtqueue_slot *s;

	if (!vq || vq->role != VIRTQUEUE_ROLE_DEVICE)
		return -EINVAL;
	if (vq->broken)
		return -EIO;
	s = vq_consumable(vq, head, len);
	if (!s)
		return -EINVAL;
	s->ndesc = 0;
	put_used(vq, vq->io, head, len);
	return 0;
}

int virtqueue_add_consumed_buffer(struct virtqueue *vq, uint16_t head_idx, uint32_t len)
{
	return vq_inline_add_consumed_buffer(vq, head_idx, len);
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
		struct virtqueue_slot *s = vq_consumable(vq, head, len);
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
