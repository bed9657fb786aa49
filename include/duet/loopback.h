/*
 * duet/loopback.h - both sides of one virtio device in one process.
 *
 * A memory block holds what shared memory would under rptun: a resource
 * table with one vdev entry (status, features offered and accepted, config
 * space, vring descriptions) and its carveout (the vrings, then a buffer
 * heap). One virtio_device is the driver side, one the device side; register
 * them on the virtio and vhost buses and your driver and device talk as
 * across cores, through the same code as a real link.
 *
 * Notifications are queued, not delivered inside virtqueue_kick: call
 * duet_loopback_poll() from your loop (or a thread) to run the callbacks.
 * That keeps a ping-pong from recursing and leaves the event loop to you.
 * Poll each side from one thread at a time, and stop polling before
 * destroying.
 *
 * A NULL handle is refused by every call: it returns -EINVAL, NULL, false
 * or 0, and does nothing.
 */
#ifndef DUET_LOOPBACK_H
#define DUET_LOOPBACK_H

#include <stddef.h>
#include <stdint.h>

#include <duet/api.h>
#include <duet/rsc_table.h>
#include <duet/virtio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct duet_loopback;

struct duet_loopback_config {
	uint32_t device_id;      /* e.g. VIRTIO_ID_ENTROPY */
	uint32_t features;       /* offered by the device side */
	unsigned int num_vrings; /* 1..8 */
	uint16_t vring_num;      /* entries per vring, power of two */
	uint32_t vring_align;    /* used ring alignment, power of two 4..65536 */
	uint32_t config_len;     /* bytes of config space, <= 4096 */
	const void *config;      /* its initial contents, or NULL for zeros: little-endian */
	size_t heap_size;        /* bytes for buffers (virtio_alloc_buf) */
};

/* Build the block and both sides. Returns 0, -EINVAL or -ENOMEM. */
DUET_API int duet_loopback_create(struct duet_loopback **lb,
				  const struct duet_loopback_config *cfg);

/* Free it all; devices still registered are unregistered first (their
 * drivers' remove runs). Stop polling first. */
DUET_API void duet_loopback_destroy(struct duet_loopback *lb);

/* The driver side (register with virtio_register_device). */
DUET_API struct virtio_device *duet_loopback_driver(struct duet_loopback *lb);

/* The device side (register with vhost_register_device). */
DUET_API struct virtio_device *duet_loopback_device(struct duet_loopback *lb);

/* Run the callbacks of every queued notification; returns how many ran. */
DUET_API int duet_loopback_poll(struct duet_loopback *lb);

/*
 * Start a side over whose peer reset it, as duet_rptun_check_peer does
 * over a link: the device side after a driver reset (the driver side
 * unregistered and registered again, or its driver changed) or a broken
 * ring, the driver side when the device asked for a reset (NEEDS_RESET).
 * Until then the device side keeps the queues it had, whose indices the
 * driver's new rings no longer match. Call it from the loop that polls,
 * never concurrently with a poll. Returns how many sides started over
 * (0-2), or -EINVAL.
 */
DUET_API int duet_loopback_check_peer(struct duet_loopback *lb);

/*
 * The same for one side (VIRTIO_DEV_DRIVER or VIRTIO_DEV_DEVICE): two
 * threads, one per side, stand in for two cores. Returns how many ran,
 * or -EINVAL for another role.
 */
DUET_API int duet_loopback_poll_side(struct duet_loopback *lb, unsigned int role);

/*
 * One side polling its rings instead of its notifications, as a polling
 * loop over rptun does (duet_rptun_poll): every queue with callbacks on
 * whose peer index moved runs its callback, and looks that find nothing
 * prefetch what comes next by the same rule (docs/link.md). Returns how
 * many callbacks ran, or -EINVAL. Queued notifications stay queued.
 */
DUET_API int duet_loopback_poll_rings(struct duet_loopback *lb, unsigned int role);

/* Spells of prefetching looks one side's duet_loopback_poll_rings has
 * started (duet_rptun_prefetches for the loopback). */
DUET_API unsigned int duet_loopback_prefetches(struct duet_loopback *lb, unsigned int role);

/* Whether one side's last duet_loopback_poll_rings look prefetched: false
 * after a look that found work, and once the peer has been idle for
 * RVDEV_IDLE_LOOKS (65,536) looks. */
DUET_API bool duet_loopback_prefetching(struct duet_loopback *lb, unsigned int role);

/* The vdev entry in the block, for tests that play a hostile peer. */
DUET_API struct fw_rsc_vdev *duet_loopback_rsc(struct duet_loopback *lb);

/* Bytes of the buffer heap not allocated. */
DUET_API size_t duet_loopback_heap_available(struct duet_loopback *lb);

#ifdef __cplusplus
}
#endif

#endif /* DUET_LOOPBACK_H */
