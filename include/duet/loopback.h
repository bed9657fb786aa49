/*
 * duet/loopback.h - both sides of one virtio device in one process.
 *
 * A plain memory block holds what shared memory would: a vdev resource
 * entry (status, features offered and accepted, vring descriptions), the
 * config space and the vrings, in the rptun wire layout. One virtio_device
 * is the driver side, one the device side; register them on the virtio and
 * vhost buses and your driver and device talk as across cores.
 *
 * Notifications are queued, not delivered inside virtqueue_kick: call
 * duet_loopback_poll() from your loop (or a thread) to run the callbacks.
 * That keeps a ping-pong from recursing and leaves the event loop to you.
 * Poll from one thread at a time, and stop polling before deinit.
 */
#ifndef DUET_LOOPBACK_H
#define DUET_LOOPBACK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <duet/rsc_table.h>
#include <duet/virtio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DUET_LOOPBACK_MAX_VRINGS 8

struct duet_loopback_config {
	uint32_t device_id;      /* e.g. VIRTIO_ID_ENTROPY */
	uint32_t features;       /* offered by the device side */
	unsigned int num_vrings; /* 1..DUET_LOOPBACK_MAX_VRINGS */
	uint16_t vring_num;      /* entries per vring, power of two */
	uint32_t vring_align;    /* used ring alignment, power of two >= 4 */
	uint32_t config_len;     /* bytes of config space */
	const void *config;      /* its initial contents, or NULL for zeros */
	size_t heap_size;        /* bytes left after the vrings for buffers */
};

struct duet_loopback_side {
	struct virtio_device vdev;
	struct virtio_vring_info vrings[DUET_LOOPBACK_MAX_VRINGS];
	void *vq_mem[DUET_LOOPBACK_MAX_VRINGS];
	/* Queues poll may dispatch to: published after creation, withdrawn
	 * before deletion, so a poll thread never sees a half-made queue. */
	_Atomic(struct virtqueue *) live[DUET_LOOPBACK_MAX_VRINGS];
	_Atomic uint32_t pending; /* bit i: queue i was notified */
	struct duet_loopback *lb;
};

struct duet_loopback {
	uint8_t *mem;
	size_t size;
	struct fw_rsc_vdev *rsc;
	uint8_t *config;
	uint8_t *heap; /* buffer memory inside the window */
	size_t heap_size;
	struct duet_heap *bufs; /* virtio_alloc_buf draws from heap */
	struct duet_loopback_side side[2]; /* [VIRTIO_DEV_DRIVER], [VIRTIO_DEV_DEVICE] */
};

/* Bytes of memory block `cfg` needs. 0 when cfg is invalid. */
size_t duet_loopback_size(const struct duet_loopback_config *cfg);

/*
 * Lay out the block `mem` (`size` >= duet_loopback_size(cfg), 64-aligned)
 * and set up both sides. virtio_alloc_buf on either side draws from the
 * buffer area (cfg->heap_size bytes). Returns 0, -EINVAL or -ENOMEM.
 */
int duet_loopback_init(struct duet_loopback *lb, void *mem, size_t size,
		       const struct duet_loopback_config *cfg);

/* Delete both sides' virtqueues and the buffer heap (unregister the
 * devices first). */
void duet_loopback_deinit(struct duet_loopback *lb);

/* The driver side (register with virtio_register_device). */
struct virtio_device *duet_loopback_driver(struct duet_loopback *lb);

/* The device side (register with vhost_register_device). */
struct virtio_device *duet_loopback_device(struct duet_loopback *lb);

/* Run the callbacks of every queued notification; returns how many ran. */
int duet_loopback_poll(struct duet_loopback *lb);

#ifdef __cplusplus
}
#endif

#endif /* DUET_LOOPBACK_H */
