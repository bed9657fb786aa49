/*
 * duet/rptun.h - any virtio device over one shared region.
 *
 * An rptun instance is one side (server or proxy) of a link. It reads the
 * region's resource table (duet/rsc.h), and for each vdev creates a
 * virtio_device and registers it on the virtio bus when this side is that
 * vdev's driver, on the vhost bus otherwise (where it waits, deferred, for
 * the peer's DRIVER_OK). The driver side places the vdev's vrings at the
 * start of its carveout and writes their addresses back; the rest of the
 * carveout is its buffer heap (virtio_alloc_buf), bookkept locally.
 *
 * The platform supplies doorbells through duet_rptun_ops; whatever
 * receives the peer's doorbell calls duet_rptun_notified().
 *
 * A NULL handle is refused by every call: it returns -EINVAL, NULL, false
 * or 0, and does nothing.
 */
#ifndef DUET_RPTUN_H
#define DUET_RPTUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <duet/api.h>
#include <duet/atomic.h>
#include <duet/rsc.h>
#include <duet/virtio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct duet_rptun;

/* notify id meaning every vring */
#define DUET_RPTUN_NOTIFY_ALL UINT32_MAX

typedef void (*duet_rptun_callback)(struct duet_rptun *rptun, uint32_t notifyid);

/*
 * What a platform provides, in the spirit of NuttX's rptun_ops_s. The
 * first two are required; the others may be NULL (the calls that need them
 * then return -ENOTSUP). "Master" is the side that boots the other.
 */
struct duet_rptun_ops {
	/* The resource table, inside the region, and its size. */
	void *(*get_resource)(struct duet_rptun *rptun, size_t *size);
	/* Ring the peer's doorbell for vring `notifyid` (or NOTIFY_ALL). */
	void (*notify)(struct duet_rptun *rptun, uint32_t notifyid);
	const char *(*get_local_cpuname)(struct duet_rptun *rptun);
	const char *(*get_remote_cpuname)(struct duet_rptun *rptun);
	/* Where incoming notifications go: the platform calls cb(rptun, id). */
	int (*register_callback)(struct duet_rptun *rptun, duet_rptun_callback cb);
	bool (*is_master)(struct duet_rptun *rptun);
	int (*start)(struct duet_rptun *rptun); /* master: boot the remote */
	int (*stop)(struct duet_rptun *rptun);  /* master: stop the remote */
	int (*reset)(struct duet_rptun *rptun); /* master: reset the remote */
	int (*panic)(struct duet_rptun *rptun); /* master: make the remote panic */
	/* True once the remote is known gone (died, stopped), before the
	 * platform's thread has removed its devices: see the virtio
	 * transport's peer_gone. No locks, no waiting. */
	bool (*peer_gone)(struct duet_rptun *rptun);
};

struct duet_rptun_config {
	enum duet_side side;
	void *region;          /* the shared region, mapped anywhere */
	size_t region_size;
	const struct duet_rptun_ops *ops;
	void *priv;
	/* Optional: DUET_MAX_VDEVS counters in shared memory, outside the
	 * table, that count each vdev's driver resets (see check_peer). */
	DUET_ATOMIC(uint32_t) *reset_epochs;
};

/*
 * Check the table (on a local copy) and create this side's devices, not
 * yet registered. Returns 0, -EINVAL (the table was refused: *err says
 * why), -ENOMEM.
 */
DUET_API int duet_rptun_create(struct duet_rptun **rptun, const struct duet_rptun_config *cfg,
			       struct duet_rsc_error *err);

/* Register every device on its bus, all or none: returns 0, or the first
 * error with none of them left registered (e.g. -EEXIST for a vdev already
 * on its bus). A second start of a running rptun is harmless (0). */
DUET_API int duet_rptun_start(struct duet_rptun *rptun);

/* Unregister every device (their drivers' remove() run); a device-side
 * vdev the driver was using gets NEEDS_RESET so the peer starts over.
 * -EINVAL when it is not running. */
DUET_API int duet_rptun_stop(struct duet_rptun *rptun);

/* True between a successful start and a stop. */
DUET_API bool duet_rptun_running(struct duet_rptun *rptun);

/* True when every vdev that has a driver for its id on this side's bus is
 * bound with its queues made and its status healthy (DRIVER_OK, no
 * NEEDS_RESET or FAILED). */
DUET_API bool duet_rptun_ready(struct duet_rptun *rptun);

/* Stop, then free. */
DUET_API void duet_rptun_destroy(struct duet_rptun *rptun);

/*
 * Life cycle with the remote: boot starts the remote (master, ops->start)
 * and registers the devices; booting a running rptun is harmless (0).
 * shutdown unregisters the devices and stops the remote (master,
 * ops->stop); -EINVAL when not running. reset and panic ask the remote
 * (master only: -EPERM otherwise; -ENOTSUP without the op).
 */
DUET_API int duet_rptun_boot(struct duet_rptun *rptun);
DUET_API int duet_rptun_shutdown(struct duet_rptun *rptun);
DUET_API int duet_rptun_reset(struct duet_rptun *rptun);
DUET_API int duet_rptun_panic(struct duet_rptun *rptun);

/* The cpu names from the platform ("" when it has none). */
DUET_API const char *duet_rptun_local_cpuname(struct duet_rptun *rptun);
DUET_API const char *duet_rptun_remote_cpuname(struct duet_rptun *rptun);

/* Notify the peer of every vring of this side. */
DUET_API void duet_rptun_notify_all(struct duet_rptun *rptun);

/* The peer rang for vring `notifyid` (or NOTIFY_ALL): run that virtqueue's
 * callback. An unknown id is ignored (counted). This is the callback given
 * to ops->register_callback. */
DUET_API void duet_rptun_notified(struct duet_rptun *rptun, uint32_t notifyid);

/*
 * Restart devices the peer reset or that a broken ring stopped: on the
 * device side a vdev whose driver dropped DRIVER_OK, reset it at all since
 * the queues were made (the reset epoch) or gave up on it (FAILED), or
 * whose ring broke, is registered again and waits for the driver anew; on
 * the driver side a vdev whose device asked for a reset (NEEDS_RESET), or
 * whose ring broke here (FAILED), is probed again from scratch. Call it
 * from the service loop. Returns how many were restarted.
 */
DUET_API int duet_rptun_check_peer(struct duet_rptun *rptun);

/*
 * Look at the rings of every vdev instead of waiting for the peer's
 * notifications: each virtqueue with callbacks on and work published runs
 * its callback (virtqueue_poll). A look at a vdev that finds nothing after
 * this side answered on it, or after a quiet spell, prefetches what its
 * peer most likely sends next (duet_rptun_prefetches). For a platform
 * whose loop polls; call it where notifications are dispatched, never
 * concurrently with them. Returns how many callbacks ran.
 */
DUET_API int duet_rptun_poll(struct duet_rptun *rptun);

/*
 * For a platform woken by the peer's notification (an interrupt, a futex
 * wake), before it dispatches the notification: on every live virtqueue
 * with callbacks on, ask the cache for the buffer the peer most likely
 * just filled (virtqueue_prefetch_arrived), so that its lines come while
 * the dispatch reads the doorbell and the ring indices. Call it where
 * notifications are dispatched, never concurrently with them. Returns how
 * many buffers it asked for, or -EINVAL.
 */
DUET_API int duet_rptun_prefetch_arrived(struct duet_rptun *rptun);

/*
 * The sum of the indices this side has published on every live virtqueue
 * (virtqueue_published_idx): it moves whenever this side sends or gives a
 * buffer back. A loop compares it across looks to tell traffic that only
 * comes in from traffic it answers. Safe from any thread.
 */
DUET_API uint32_t duet_rptun_published(struct duet_rptun *rptun);

/*
 * The same sum of the indices the peer publishes (virtqueue_peer_idx): it
 * moves whenever the peer sends or gives a buffer back. The peer's words,
 * unchecked: a measure of its activity, nothing more. Safe from any thread.
 */
DUET_API uint32_t duet_rptun_peer_published(struct duet_rptun *rptun);

/*
 * The same sum of the positions this side takes the peer's entries from
 * (virtqueue_taken_idx): it moves whenever this side takes work in. A
 * look whose callbacks ran and left it unmoved found its work taken
 * already (by a pass that drained past what the look before saw). Safe
 * from any thread.
 */
DUET_API uint32_t duet_rptun_taken(struct duet_rptun *rptun);

/* The platform's pointer given in the config. */
DUET_API void *duet_rptun_priv(const struct duet_rptun *rptun);

/* Number of vdevs, and the device of vdev i (NULL past the end). */
DUET_API unsigned int duet_rptun_num_vdevs(const struct duet_rptun *rptun);
DUET_API struct virtio_device *duet_rptun_vdev(struct duet_rptun *rptun, unsigned int i);

/*
 * Spells of polling looks (duet_rptun_poll) that prefetched: after this
 * side answered (published since a look last found work), or once a few
 * hundred looks in a row found nothing (the peer is quiet), looks that
 * find nothing fetch the buffers the peer most likely fills next
 * (virtqueue_prefetch_next); a look that finds work ends the spell. About
 * one per message of a ping-pong or of sparse traffic, one per batch of
 * returned buffers at most in a dense one-way stream. Safe from any thread.
 */
DUET_API uint32_t duet_rptun_prefetches(const struct duet_rptun *rptun);

/* Notifications that named no vring of the table. */
DUET_API uint32_t duet_rptun_unknown_notifies(const struct duet_rptun *rptun);

#ifdef __cplusplus
}
#endif

#endif /* DUET_RPTUN_H */
