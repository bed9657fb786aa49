/*
 * vq_chain.c - walking a descriptor chain the driver wrote, as the device.
 *
 * The chain is untrusted: each descriptor is copied once and only the copy
 * used, every buffer must lie wholly inside the window, readable buffers
 * come before writable ones, and each walk is bounded by the size of the
 * table it walks, so a loop ends as -ELOOP instead of spinning.
 */
#include <errno.h>

#include "vq_internal.h"

/* Switch a walk to the indirect table `d` points at. */
static int enter_indirect(struct virtqueue *vq, const struct vring_desc *d,
			  struct vring_desc **table, uint16_t *size)
{
	void *va;

	if (!vq->indirect_ok)
		return duet_vq_fault(vq, VIRTQUEUE_FAULT_INDIRECT, -EINVAL, d->flags, 0);
	if (d->flags & VRING_DESC_F_NEXT)
		return duet_vq_fault(vq, VIRTQUEUE_FAULT_INDIRECT, -EINVAL, d->flags, 0);
	if (!d->len || d->len % sizeof(struct vring_desc) ||
	    d->len / sizeof(struct vring_desc) > vq->num)
		return duet_vq_fault(vq, VIRTQUEUE_FAULT_INDIRECT, -EINVAL, d->len,
				(uint64_t)vq->num * sizeof(struct vring_desc));
	va = vq_to_local(vq, d->addr, d->len);
	if (!va)
		return vq->error;
	if ((uintptr_t)va % 16)
		return duet_vq_fault(vq, VIRTQUEUE_FAULT_INDIRECT, -EINVAL, d->addr, 16);
	*table = va;
	*size = (uint16_t)(d->len / sizeof(struct vring_desc));
	return 0;
}

/*
 * Walk the chain whose head descriptor `d` was already copied: store up to
 * `vbsize` buffers in vb, count all of them in *count and their writable
 * bytes in *wlen. Returns 0 or the negative errno of the fault (the queue
 * is then broken).
 */
int duet_vq_walk_chain(struct virtqueue *vq, uint16_t head, struct vring_desc d,
		      struct virtqueue_buf *vb, size_t vbsize, size_t *count,
		      uint32_t *wlen)
{
	const struct virtqueue_io io = vq->io;
	struct vring_desc *table = vq->desc;
	uint16_t size = vq->num;
	uint32_t budget = vq->num - 1u; /* the head is already read */
	bool in_indirect = false, seen_write = false;
	uint64_t wbytes = 0;
	size_t n = 0;
	uint16_t i = head;
	int ret;

	for (;;) {
		bool writable;
		void *va;

		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (in_indirect)
				return duet_vq_fault(vq, VIRTQUEUE_FAULT_INDIRECT, -EINVAL,
						d.flags, 0);
			ret = enter_indirect(vq, &d, &table, &size);
			if (ret < 0)
				return ret;
			in_indirect = true;
			budget = size - 1u;
			i = 0;
			vq_read_desc(io, &d, &table[0]);
			continue;
		}
		va = vq_to_local(vq, d.addr, d.len);
		if (!va)
			return vq->error;
		writable = d.flags & VRING_DESC_F_WRITE;
		if (writable) {
			seen_write = true;
			wbytes += d.len;
		} else if (seen_write) {
			return duet_vq_fault(vq, VIRTQUEUE_FAULT_WRITE_ORDER, -EINVAL, i, n);
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
			return duet_vq_fault(vq, VIRTQUEUE_FAULT_NEXT_RANGE, -EINVAL, d.next, size);
		if (budget-- == 0)
			return duet_vq_fault(vq, VIRTQUEUE_FAULT_LOOP, -ELOOP, head, size);
		i = d.next;
		vq_read_desc(io, &d, &table[i]);
	}
	*count = n;
	*wlen = wbytes > UINT32_MAX ? UINT32_MAX : (uint32_t)wbytes;
	return 0;
}
