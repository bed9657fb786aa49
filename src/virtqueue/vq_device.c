/*
 * vq_device.c - the device (vhost) role: take available chains, return them
 * consumed.
 *
 * Everything read here was written by the driver and is untrusted: the
 * avail index, each head, each descriptor. Indices are checked against the
 * queue, each descriptor is copied once to the stack and only the copy is
 * used, every buffer must lie wholly inside the window, and each walk is
 * bounded by the size of the table it walks, so a loop ends as -ELOOP.
 */
#include <errno.h>

#include "vq_internal.h"

/* Local address of [addr, addr + len), which must lie inside the window. */
static int to_local(struct virtqueue *vq, uint64_t addr, uint32_t len, void **va)
{
	uint64_t off;

	if (addr > UINT64_MAX - len)
		return vq_fault(vq, VIRTQUEUE_FAULT_ADDR_OVERFLOW, -EOVERFLOW, addr, len);
	off = addr - vq->win.da;
	if (addr < vq->win.da || off > vq->win.size || len > vq->win.size - off)
		return vq_fault(vq, VIRTQUEUE_FAULT_ADDR_RANGE, -EFAULT, addr, len);
	*va = (uint8_t *)vq->win.va + off;
	return 0;
}

/* Switch a walk to the indirect table `d` points at. */
static int enter_indirect(struct virtqueue *vq, const struct vring_desc *d,
			  struct vring_desc **table, uint16_t *size)
{
	void *va;
	int ret;

	if (!vq->indirect_ok)
		return vq_fault(vq, VIRTQUEUE_FAULT_INDIRECT, -EINVAL, d->flags, 0);
	if (d->flags & VRING_DESC_F_NEXT)
		return vq_fault(vq, VIRTQUEUE_FAULT_INDIRECT, -EINVAL, d->flags, 0);
	if (!d->len || d->len % sizeof(struct vring_desc) ||
	    d->len / sizeof(struct vring_desc) > vq->num)
		return vq_fault(vq, VIRTQUEUE_FAULT_INDIRECT, -EINVAL, d->len,
				(uint64_t)vq->num * sizeof(struct vring_desc));
	ret = to_local(vq, d->addr, d->len, &va);
	if (ret < 0)
		return ret;
	if ((uintptr_t)va % 16)
		return vq_fault(vq, VIRTQUEUE_FAULT_INDIRECT, -EINVAL, d->addr, 16);
	*table = va;
	*size = (uint16_t)(d->len / sizeof(struct vring_desc));
	return 0;
}

/*
 * Walk the chain at `head`: store up to `vbsize` buffers in vb, count all
 * of them in *count and their writable bytes in *wlen. Returns 0 or the
 * negative errno of the fault (the queue is then broken).
 */
static int walk_chain(struct virtqueue *vq, uint16_t head, struct virtqueue_buf *vb,
		      size_t vbsize, size_t *count, uint32_t *wlen)
{
	struct vring_desc *table = vq->desc;
	uint16_t size = vq->num;
	uint32_t budget = vq->num;
	bool in_indirect = false, seen_write = false;
	uint64_t wbytes = 0;
	size_t n = 0;
	uint16_t i = head;
	struct vring_desc d;
	int ret;

	for (;;) {
		bool writable;
		void *va;

		if (budget-- == 0)
			return vq_fault(vq, VIRTQUEUE_FAULT_LOOP, -ELOOP, head, size);
		vq_read_desc(vq, &d, &table[i]);
		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (in_indirect)
				return vq_fault(vq, VIRTQUEUE_FAULT_INDIRECT, -EINVAL,
						d.flags, 0);
			ret = enter_indirect(vq, &d, &table, &size);
			if (ret < 0)
				return ret;
			in_indirect = true;
			budget = size;
			i = 0;
			continue;
		}
		ret = to_local(vq, d.addr, d.len, &va);
		if (ret < 0)
			return ret;
		writable = d.flags & VRING_DESC_F_WRITE;
		if (writable) {
			seen_write = true;
			wbytes += d.len;
		} else if (seen_write) {
			return vq_fault(vq, VIRTQUEUE_FAULT_WRITE_ORDER, -EINVAL, i, n);
		}
		if (n < vbsize) {
			vb[n].buf = va;
			vb[n].len = d.len;
			vb[n].writable = writable;
		}
		n++;
		if (!(d.flags & VRING_DESC_F_NEXT))
			break;
		if (d.next >= size)
			return vq_fault(vq, VIRTQUEUE_FAULT_NEXT_RANGE, -EINVAL, d.next, size);
		i = d.next;
	}
	*count = n;
	*wlen = wbytes > UINT32_MAX ? UINT32_MAX : (uint32_t)wbytes;
	return 0;
}

/* The head of the next available chain, checked; -ENOMEM when none. */
static int peek_head(struct virtqueue *vq)
{
	uint16_t avail, ready, head;

	/* avail.idx is the driver's word: a jump of more than num means it is
	 * lying or broken, not that num entries are ready. */
	avail = vq_load_idx(vq, &vq->avail->idx);
	ready = (uint16_t)(avail - vq->avail_idx);
	if (!ready)
		return -ENOMEM;
	if (ready > vq->num)
		return vq_fault(vq, VIRTQUEUE_FAULT_AVAIL_JUMP, -EINVAL, ready, vq->num);
	head = vq_load16(vq, &vq->avail->ring[vq->avail_idx & vq->mask]);
	if (head >= vq->num)
		return vq_fault(vq, VIRTQUEUE_FAULT_HEAD_RANGE, -EINVAL, head, vq->num);
	if (vq->slots[head].ndesc)
		return vq_fault(vq, VIRTQUEUE_FAULT_HEAD_INFLIGHT, -EBUSY, head, 0);
	return head;
}

/* Mark the chain at `head` taken. */
static void take_chain(struct virtqueue *vq, uint16_t head, size_t count, uint32_t wlen)
{
	vq->slots[head].ndesc = count > UINT16_MAX ? UINT16_MAX : (uint16_t)count;
	vq->slots[head].wlen = wlen;
	vq->inflight++;
	vq->avail_idx++;
	/* See virtqueue_get_buffer: keep EVENT_IDX notifications flowing. */
	if (vq->event_idx && vq->cb_enabled)
		vq_store16(vq, vq->avail_event, vq->avail_idx);
}

int vhost_get_vq_buffers(struct virtqueue *vq, struct virtqueue_buf *vb,
			 size_t vbsize, size_t *vbcnt)
{
	size_t count = 0;
	uint32_t wlen;
	int head, ret;

	if (!vq || vq->role != VIRTQUEUE_ROLE_DEVICE || (!vb && vbsize) || !vbcnt)
		return -EINVAL;
	if (vq->broken)
		return -EIO;
	head = peek_head(vq);
	if (head < 0)
		return head;
	ret = walk_chain(vq, (uint16_t)head, vb, vbsize, &count, &wlen);
	if (ret < 0)
		return ret;
	*vbcnt = count;
	/* Too small an array takes nothing: the chain stays available. */
	if (count > vbsize)
		return -EINVAL;
	take_chain(vq, (uint16_t)head, count, wlen);
	return head;
}

void *virtqueue_get_available_buffer(struct virtqueue *vq, uint16_t *avail_idx,
				     uint32_t *len)
{
	struct virtqueue_buf first;
	size_t count = 0;
	uint32_t wlen;
	int head;

	if (!vq || vq->role != VIRTQUEUE_ROLE_DEVICE || vq->broken)
		return NULL;
	head = peek_head(vq);
	if (head < 0)
		return NULL;
	if (walk_chain(vq, (uint16_t)head, &first, 1, &count, &wlen) < 0)
		return NULL;
	take_chain(vq, (uint16_t)head, count, wlen);
	if (avail_idx)
		*avail_idx = (uint16_t)head;
	if (len)
		*len = first.len;
	return first.buf;
}

int virtqueue_add_consumed_buffer(struct virtqueue *vq, uint16_t head_idx, uint32_t len)
{
	struct vring_used_elem *e;
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

	e = &vq->used->ring[vq->used_idx & vq->mask];
	vq_store32(vq, &e->id, head_idx);
	vq_store32(vq, &e->len, len);
	vq->used_idx++;
	vq_store_idx(vq, &vq->used->idx, vq->used_idx);
	s->ndesc = 0;
	vq->inflight--;
	return 0;
}
