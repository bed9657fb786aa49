/*
 * rvdev.h - one side of a virtio device described by a fw_rsc_vdev entry in
 * shared memory. The loopback (both sides in one block) and rptun (one side
 * per process) are both built from it.
 *
 * What the peer can rewrite is read fresh from shared memory and checked at
 * each use (status, accepted features, vring addresses); what must not change
 * (vring sizes, config length, the offer) comes from the checked copy taken
 * when the table was parsed.
 */
#ifndef DUET_RVDEV_H
#define DUET_RVDEV_H

#include <stdatomic.h>

#include <duet/heap.h>
#include <duet/rsc.h>
#include <duet/virtio.h>

#include "../core/compiler.h"

struct duet_rvdev;

typedef void (*duet_rvdev_notify)(struct duet_rvdev *rv, uint32_t notifyid);

/* Looks in a row that find nothing after which duet_rvdev_poll counts the
 * peer as quiet and prefetches: some 15-20 us of looks on a PC, longer
 * than the gaps of a stream that prefetching would slow (a batch of 64
 * written before its index is published takes about 6 us). */
#define RVDEV_QUIET_LOOKS 256u

/* Looks in a row that find nothing after which the peer counts as idle
 * and the looks stop prefetching, whatever the rule said: some 5 ms here.
 * A device nobody uses (an rng while rpmsg works) would otherwise
 * prefetch at every look of every loop, forever; traffic sparser than
 * this loses the prefetch, one line's transfer per message. */
#define RVDEV_IDLE_LOOKS 65536u

struct duet_rvdev {
	struct virtio_device vdev;
	struct fw_rsc_vdev *rsc;   /* the entry, in shared memory */
	uint8_t *config;           /* its config space, in shared memory */
	uint8_t *window;           /* the region: device address = offset */
	size_t window_size;
	struct duet_rsc_vdev desc; /* checked copy of the entry */
	struct duet_heap *heap;    /* buffers (driver side), or NULL */
	duet_rvdev_notify notify;
	/* The transport's peer_gone (NULL: never known): set by the owner. */
	bool (*peer_gone)(struct duet_rvdev *rv);
	void *priv;
	/* Shared counter the driver side bumps at each reset (optional): the
	 * device side cannot miss a reset that comes and goes between two
	 * looks at the status byte. */
	_Atomic uint32_t *epoch;
	_Atomic uint32_t epoch_seen; /* device side: at queue creation */
	/* The device side's epoch, NULL elsewhere: its queues are stale once
	 * it moves past epoch_seen, and run no callback until restarted. */
	_Atomic uint32_t *stale_unless;
	struct virtio_vring_info vrings[DUET_MAX_VRINGS];
	void *vq_mem[DUET_MAX_VRINGS];
	/* Queues a dispatcher may call: published after creation and
	 * withdrawn before deletion. */
	_Atomic(struct virtqueue *) live[DUET_MAX_VRINGS];
	/* duet_rvdev_poll's alone: the sum of this side's published indices
	 * when a look last found work; the looks since that found nothing;
	 * whether the last one prefetched; how many spells of such looks
	 * there were (written by the poller only, read by anyone:
	 * duet_rptun_prefetches, duet_loopback_prefetching). */
	uint32_t poll_mine;
	uint32_t empty_looks;
	_Atomic bool prefetching;
	_Atomic uint32_t prefetch_spells;
};

/*
 * Set up `rv` as `role` (VIRTIO_DEV_DRIVER / _DEVICE) of the vdev entry at
 * table offset desc->entry_offset, the table being at `table` inside
 * `window`. The driver side places unplaced vrings at the start of the
 * carveout (desc->carveout_da) when it creates its queues. `epoch` (in
 * shared memory, or NULL) counts the driver side's resets.
 */
void duet_rvdev_init(struct duet_rvdev *rv, unsigned int role, uint8_t *window,
		     size_t window_size, uint8_t *table, const struct duet_rsc_vdev *desc,
		     struct duet_heap *heap, duet_rvdev_notify notify, void *priv,
		     _Atomic uint32_t *epoch);

/* Delete the queues. */
void duet_rvdev_deinit(struct duet_rvdev *rv);

/* Run the callback of queue `index` if it exists. False when it does not. */
bool duet_rvdev_dispatch(struct duet_rvdev *rv, unsigned int index);

/* Look at every queue (virtqueue_poll); returns how many callbacks ran.
 * A look that finds nothing after this side answered, or once the peer
 * has been quiet for RVDEV_QUIET_LOOKS looks, prefetches what the queues
 * guess comes next (virtqueue_prefetch_next), until RVDEV_IDLE_LOOKS. */
unsigned int duet_rvdev_poll(struct duet_rvdev *rv);

/* How many entries of rv->live its vdev can use (the table's vrings,
 * within the array whatever the table says). */
static inline unsigned int duet_rvdev_num_live(const struct duet_rvdev *rv)
{
	return rv->desc.num_vrings < DUET_MAX_VRINGS ? rv->desc.num_vrings : DUET_MAX_VRINGS;
}

/* virtqueue_prefetch_arrived on each of rv's live queues; how many asked. */
static inline unsigned int duet_rvdev_prefetch_arrived(struct duet_rvdev *rv)
{
	return virtqueue_prefetch_arrived_many(rv->live, duet_rvdev_num_live(rv));
}

/*
 * Whether the driver reset the device since this device side made its
 * queues (the reset epoch moved; false without one, and on the driver
 * side): then the rings are the driver's new ones, or being made, and the
 * queues' indices stale. Taking from them would read a new ring with old
 * indices (a fault that asks for another reset) and write into it, so
 * rptun runs nothing on them until duet_rptun_check_peer restarts the
 * side. Relaxed: the driver may reset just after any look; the peer check
 * makes the restart right.
 */
static DUET_INLINE bool duet_rvdev_stale(const struct duet_rvdev *rv)
{
	return rv->stale_unless &&
	       atomic_load_explicit(rv->stale_unless, memory_order_relaxed) !=
		       atomic_load_explicit(&rv->epoch_seen, memory_order_relaxed);
}

/* The sum of idx(vq) over rv's live queues (virtqueue_published_idx,
 * virtqueue_peer_idx). */
uint32_t duet_rvdev_sum_idx(struct duet_rvdev *rv, uint16_t (*idx)(const struct virtqueue *));

/* Where the driver side places vring i: its offset from the start of the
 * carveout, the vrings before it back to back at 64-byte steps. */
size_t duet_rvdev_vring_offset(const struct duet_rsc_vdev *desc, unsigned int i);

/* Bytes the driver side's vrings take at the start of the carveout. */
size_t duet_rvdev_vrings_size(const struct duet_rsc_vdev *desc);

/* The peer's status byte (the driver's). */
uint8_t duet_rvdev_status(const struct duet_rvdev *rv);

/* True once the queues exist (published) and until they are deleted. */
bool duet_rvdev_has_queues(const struct duet_rvdev *rv);

/* Device side: true when the driver reset the device since this side
 * began creating its queues; false while it has none (a probe in
 * progress has nothing stale to start over from). */
bool duet_rvdev_reset_since(const struct duet_rvdev *rv);

/* Whether the peer serves the device now: its status says in use, with no
 * reset asked for and not given up on (FAILED), and on the device side the
 * driver has not reset it since this side made its queues. */
bool duet_rvdev_served(const struct duet_rvdev *rv);

/*
 * Start rv's side over if its peer reset it (rvdev_restart.c, built with
 * the vhost framework): a bound device side whose driver dropped
 * DRIVER_OK, reset it since its queues were made or gave up on it (FAILED),
 * or whose ring broke (NEEDS_RESET) registers again, deferred until the
 * driver is back; a bound driver side whose device asked for a reset, or
 * that gave up on it (FAILED), probes again. Returns 0 (nothing to do),
 * 1 (restarted), -1 (restarted, but registering again failed: it is off
 * its bus). Never concurrently with its dispatch.
 */
int duet_rvdev_restart_if_reset(struct duet_rvdev *rv);

#endif /* DUET_RVDEV_H */
