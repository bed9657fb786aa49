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
 */
#ifndef DUET_RPTUN_H
#define DUET_RPTUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <duet/rsc.h>
#include <duet/virtio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct duet_rptun;

struct duet_rptun_ops {
	/* Ring the peer's doorbell for vring `notifyid`. */
	void (*notify)(struct duet_rptun *rptun, uint32_t notifyid);
};

struct duet_rptun_config {
	enum duet_side side;
	void *region;          /* the shared region, mapped anywhere */
	size_t region_size;
	uint32_t table_offset; /* of the resource table in the region */
	uint32_t table_size;
	const struct duet_rptun_ops *ops;
	void *priv;
};

/*
 * Check the table (on a local copy) and create this side's devices, not
 * yet registered. Returns 0, -EINVAL (the table was refused: *err says
 * why), -ENOMEM.
 */
int duet_rptun_create(struct duet_rptun **rptun, const struct duet_rptun_config *cfg,
		      struct duet_rsc_error *err);

/* Register every device on its bus. Returns 0 or the first error. */
int duet_rptun_start(struct duet_rptun *rptun);

/* Unregister every device (their drivers' remove() run). */
void duet_rptun_stop(struct duet_rptun *rptun);

/* Stop, then free. */
void duet_rptun_destroy(struct duet_rptun *rptun);

/* The peer rang for vring `notifyid`: run that virtqueue's callback. An
 * unknown id is ignored (counted). */
void duet_rptun_notified(struct duet_rptun *rptun, uint32_t notifyid);

/*
 * For the device side: a vdev whose peer dropped DRIVER_OK (a driver reset)
 * is unregistered and registered again, so it waits for the peer anew.
 * Call it from the service loop. Returns how many were restarted.
 */
int duet_rptun_check_peer(struct duet_rptun *rptun);

/* The platform's pointer given in the config. */
void *duet_rptun_priv(const struct duet_rptun *rptun);

/* Number of vdevs, and the device of vdev i (NULL past the end). */
unsigned int duet_rptun_num_vdevs(const struct duet_rptun *rptun);
struct virtio_device *duet_rptun_vdev(struct duet_rptun *rptun, unsigned int i);

/* Notifications that named no known vring. */
uint32_t duet_rptun_unknown_notifies(const struct duet_rptun *rptun);

#ifdef __cplusplus
}
#endif

#endif /* DUET_RPTUN_H */
