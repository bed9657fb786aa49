/*
 * duet/virtio_ring.h - the split virtqueue wire format (VIRTIO 1.2, 2.7).
 *
 * Every field is little-endian in memory. These structures describe shared
 * memory written by both sides; duet never dereferences them directly but
 * through the accessors of the virtqueue core, so they are documentation of
 * the layout as much as types.
 */
#ifndef DUET_VIRTIO_RING_H
#define DUET_VIRTIO_RING_H

#include <stddef.h>
#include <stdint.h>

#define VRING_DESC_F_NEXT 1u     /* chain continues at `next` */
#define VRING_DESC_F_WRITE 2u    /* buffer is write-only for the device */
#define VRING_DESC_F_INDIRECT 4u /* buffer holds a table of descriptors */

#define VRING_AVAIL_F_NO_INTERRUPT 1u /* driver: do not notify me on used */
#define VRING_USED_F_NO_NOTIFY 1u     /* device: do not notify me on avail */

#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29

/* The largest queue size VIRTIO allows for a split ring. */
#define VIRTQUEUE_MAX_SIZE 32768u

struct vring_desc {
	uint64_t addr; /* device address of the buffer */
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* num entries, then used_event */
};

struct vring_used_elem {
	uint32_t id; /* head of the returned chain */
	uint32_t len; /* bytes the device wrote into it */
};

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[]; /* num entries, then avail_event */
};

/* Bytes of the descriptor table and the avail ring, event word included. */
static inline size_t vring_avail_end(unsigned int num)
{
	return 16u * (size_t)num + 2u * (3u + (size_t)num);
}

/* Offset of the used ring: the next `align` boundary after the avail ring. */
static inline size_t vring_used_offset(unsigned int num, size_t align)
{
	return (vring_avail_end(num) + align - 1u) & ~(align - 1u);
}

/* Total bytes of a split ring of `num` entries with used ring aligned to
 * `align` (a power of two). */
static inline size_t vring_size(unsigned int num, size_t align)
{
	return vring_used_offset(num, align) + 6u + 8u * (size_t)num;
}

/*
 * Event-index rule: a side that moved its index from `old_idx` to `new_idx`
 * notifies only when the peer's published `event_idx` lies in
 * [old_idx, new_idx), i.e. the peer asked to be woken when it is passed.
 */
static inline int vring_need_event(uint16_t event_idx, uint16_t new_idx,
				   uint16_t old_idx)
{
	return (uint16_t)(new_idx - event_idx - 1u) <
	       (uint16_t)(new_idx - old_idx);
}

#endif /* DUET_VIRTIO_RING_H */
