/*
 * duet/vhost.h - the device side: vhost devices, drivers and bus.
 *
 * A vhost_device is a virtio_device seen from the device side (role
 * VIRTIO_DEV_DEVICE): its status byte is the one the peer's virtio driver
 * writes. A vhost driver implements a device (vhost-rng fills the buffers
 * virtio-rng posts).
 *
 * Deferred probe: a device registered while its peer's status lacks
 * DRIVER_OK waits on a deferred list. A work item looks again every probe
 * period and probes it once the peer is ready; a peer status with
 * NEEDS_RESET makes the bus reset the device, which stays deferred. A device
 * is never probed before its peer is ready.
 */
#ifndef DUET_VHOST_H
#define DUET_VHOST_H

#include <stdint.h>

#include <duet/api.h>
#include <duet/virtio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The same structures, named for the device side. */
#define vhost_device virtio_device
#define vhost_driver virtio_driver

/* Default deferred-probe period; CMake DUET_VHOST_PROBE_PERIOD_MS sets it. */
#ifndef DUET_VHOST_PROBE_PERIOD_MS
#define DUET_VHOST_PROBE_PERIOD_MS 100
#endif

/* The virtio calls under their vhost names (NuttX's macros). */
#define vhost_create_virtqueues virtio_create_virtqueues
#define vhost_delete_virtqueues virtio_delete_virtqueues
#define vhost_set_status virtio_set_status
#define vhost_get_status virtio_get_status
#define vhost_set_features virtio_set_features
#define vhost_get_features virtio_get_features
#define vhost_read_config virtio_read_config
#define vhost_write_config virtio_write_config
#define vhost_reset_device virtio_reset_device
#define vhost_has_feature virtio_has_feature
#define vhost_read_config_member virtio_read_config_member
#define vhost_write_config_member virtio_write_config_member

/* Register a vhost driver; it is probed on every ready, unbound device with
 * its id. Returns 0, -EEXIST if already registered, -EINVAL. */
DUET_API int vhost_register_driver(struct vhost_driver *driver);

/* Unregister a vhost driver: remove() runs for each device bound to it
 * first. -ENOENT if unknown. */
DUET_API int vhost_unregister_driver(struct vhost_driver *driver);

/*
 * Register a vhost device (a transport calls this). If the peer's status has
 * DRIVER_OK it is matched at once; otherwise it is deferred (see above).
 * The peer's accepted features must be a subset of the offer, or the device
 * gets NEEDS_RESET and is not probed. Returns 0, -EEXIST, -EINVAL.
 */
DUET_API int vhost_register_device(struct vhost_device *hdev);

/* Unregister a vhost device, deferred or bound (remove() runs first).
 * -ENOENT if unknown. */
DUET_API int vhost_unregister_device(struct vhost_device *hdev);

/* Register the vhost drivers this build enabled (CMake DUET_DRIVER_*). */
DUET_API void vhost_register_drivers(void);

/* True when a vhost driver for device id `id` is registered. */
DUET_API bool vhost_has_driver(uint32_t id);

/* Set the deferred-probe period in milliseconds (>= 1); returns the old one. */
DUET_API uint32_t vhost_set_probe_period(uint32_t ms);

#ifdef __cplusplus
}
#endif

#endif /* DUET_VHOST_H */
