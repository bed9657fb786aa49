/* vq_internal.h - shared by the two roles of the virtqueue core. */
#ifndef DUET_VQ_INTERNAL_H
#define DUET_VQ_INTERNAL_H

#include <errno.h>

#include <duet/virtqueue.h>

#include "../core/compiler.h"
#include "vq_mem.h"

/* End of a chain for diagnostics, as NuttX prints it. */
#define VQ_CHAIN_END 32768u

/*
 * Record a peer fault: the queue is broken from now on, the fault counted
 * and reported. Returns `err` so callers can `return duet_vq_fault(...)`.
 */
int duet_vq_fault(struct virtqueue *vq, enum virtqueue_fault fault, int err,
	     uint64_t value, uint64_t limit);

/* vq->fast_role for `role`: the short paths check this one byte instead
 * of the role, the broken flag and the accessors. */
static inline uint8_t vq_fast_role(enum virtqueue_role role)
{
	return (uint8_t)(role + 1);
}

/* Heads out: driver added and not yet used, device taken and not yet
 * consumed. Each add or take moves avail_idx, each use moves used_idx. */
static inline uint16_t vq_inflight(const struct virtqueue *vq)
{
	return (uint16_t)(vq->avail_idx - vq->used_idx);
}

/*
 * Entries the peer has published past `taken`, this side's own index:
 * those the last look at the peer's index (seen_idx) saw, the index read
 * again only once they run out. It is a line the peer writes on every add
 * or return; reading it no more often than needed leaves it with the peer.
 * The peer's word: the caller checks the count against what is in flight.
 */
static inline uint16_t vq_ready(struct virtqueue *vq, struct virtqueue_io io, uint16_t *peer_idx,
				uint16_t taken)
{
	uint16_t seen = vq->seen_idx;

	if (seen == taken)
		seen = vq->seen_idx = vq_load_idx(io, peer_idx);
	return (uint16_t)(seen - taken);
}

/* The checks a batch call makes first: a queue of `role`, its array
 * (NULL allowed only for an empty batch), not broken. 0, -EINVAL or -EIO. */
static inline int vq_batch_args(const struct virtqueue *vq, enum virtqueue_role role,
				const void *array, uint16_t n)
{
	if (!vq || vq->role != role || (!array && n))
		return -EINVAL;
	return vq->broken ? -EIO : 0;
}

/* Accessors for plain shared memory, as a constant: a function called
 * with it has every `if (io.ops)` folded away. */
#define VQ_IO_PLAIN ((struct virtqueue_io){ NULL, NULL })

/* Record why [addr, addr + len) failed the window check. Out of line: the
 * check itself stays one comparison pair on the common path. */
void *duet_vq_bad_addr(struct virtqueue *vq, uint64_t addr, uint32_t len);

/*
 * Whether a buffer of `len` bytes at offset `off` into the window (the
 * peer's address minus win.da) leaves it. An address below the window, or
 * one so high that addr + len wraps, gives an offset beyond the window and
 * fails the same test.
 */
static inline bool vq_outside_window(const struct virtqueue *vq, uint64_t off, uint32_t len)
{
	/* Past the first test the offset fits a size_t: the second is then
	 * one 32-bit comparison on a 32-bit core, not a 64-bit one. */
	return off > vq->win.size || len > vq->win.size - (size_t)off;
}

/* Local address of the peer's buffer [addr, addr + len), or NULL after
 * recording the fault when it is not wholly inside the window. */
static inline void *vq_to_local(struct virtqueue *vq, uint64_t addr, uint32_t len)
{
	uint64_t off = addr - vq->win.da;

	if (vq_outside_window(vq, off, len))
		return duet_vq_bad_addr(vq, addr, len);
	return (uint8_t *)vq->win.va + off;
}

/*
 * Walk the chain at `head`, whose first descriptor `d` the caller already
 * copied: store up to `vbsize` buffers in vb, count all of them in *count
 * and their writable bytes in *wlen. Returns 0, or the negative errno of the
 * fault that broke the queue.
 */
int duet_vq_walk_chain(struct virtqueue *vq, uint16_t head, struct vring_desc d,
		  struct virtqueue_buf *vb, size_t vbsize, size_t *count,
		  uint32_t *wlen);

/*
 * Where the buffer the peer publishes next at ring position `pos` (its
 * index, as virtqueue_poll last saw it) most likely lies: the head the
 * avail ring holds there, through its descriptor. A device takes avail
 * entries in order, rpmsg's driver gets its receive buffers back in the
 * order it posted them, and a recycled buffer keeps its entry and its
 * descriptor (docs/virtqueue.md), so last lap's words usually hold. Only a
 * guess, read from words either side can write and checked as a take
 * checks them (the head inside the table, the buffer inside the window):
 * NULL when it fails. Plain memory; nothing but a prefetch may use it.
 */
const void *duet_vq_poll_guess(const struct virtqueue *vq, uint16_t pos);

#endif /* DUET_VQ_INTERNAL_H */
