/* vq_internal.h - shared by the two roles of the virtqueue core. */
#ifndef DUET_VQ_INTERNAL_H
#define DUET_VQ_INTERNAL_H

#include <duet/virtqueue.h>

#include "vq_mem.h"

/* End of a chain for diagnostics, as NuttX prints it. */
#define VQ_CHAIN_END 32768u

/*
 * Record a peer fault: the queue is broken from now on, the fault counted
 * and reported. Returns `err` so callers can `return vq_fault(...)`.
 */
int vq_fault(struct virtqueue *vq, enum virtqueue_fault fault, int err,
	     uint64_t value, uint64_t limit);

#endif /* DUET_VQ_INTERNAL_H */
