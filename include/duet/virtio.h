/*
 * duet/virtio.h - virtio devices and the virtio (driver-side) bus.
 *
 * A virtio_device is one device as a transport presents it: an id, features
 * offered and accepted, a status byte, a config space and virtqueues, all
 * reached through the transport's ops table (`func`). The same structure
 * serves the device side, where duet calls it vhost_device (duet/vhost.h).
 *
 * Names and signatures follow OpenAMP/NuttX (virtio_create_virtqueues,
 * virtio_get_status, ...), so NuttX virtio drivers port with little change.
 */
#ifndef DUET_VIRTIO_H
#define DUET_VIRTIO_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include <duet/api.h>
#include <duet/atomic.h>
#include <duet/list.h>
#include <duet/virtqueue.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Device ids */
#define VIRTIO_ID_NETWORK 1u
#define VIRTIO_ID_BLOCK 2u
#define VIRTIO_ID_CONSOLE 3u
#define VIRTIO_ID_ENTROPY 4u
#define VIRTIO_ID_RPMSG 7u

/* Status bits (VIRTIO 1.2, 2.1) */
#define VIRTIO_CONFIG_STATUS_RESET 0x00u
#define VIRTIO_CONFIG_STATUS_ACK 0x01u
#define VIRTIO_CONFIG_STATUS_DRIVER 0x02u
#define VIRTIO_CONFIG_STATUS_DRIVER_OK 0x04u
#define VIRTIO_CONFIG_FEATURES_OK 0x08u
#define VIRTIO_CONFIG_STATUS_NEEDS_RESET 0x40u
#define VIRTIO_CONFIG_STATUS_FAILED 0x80u

/* Which side of the device this struct is. */
#define VIRTIO_DEV_DRIVER 0u /* virtio: the driver, uses the device */
#define VIRTIO_DEV_DEVICE 1u /* vhost: implements the device */

struct virtio_device;

struct virtio_device_id {
	uint32_t device;
	uint32_t vendor;
};

typedef void (*vq_callback)(struct virtqueue *vq);

struct virtio_vring_info {
	struct virtqueue *vq;
};

/*
 * Transport operations. Every one returns 0 or a negative errno.
 * Features, by role: on the driver side get_features reads what the device
 * offers and set_features writes what the driver accepts; on the device side
 * get_features reads what the driver accepted and set_features writes the
 * offer (refused with -EBUSY once the driver set FEATURES_OK).
 */
struct virtio_dispatch {
	int (*create_virtqueues)(struct virtio_device *vdev, unsigned int flags,
				 unsigned int nvqs, const char *names[],
				 vq_callback callbacks[], void *callback_args[]);
	void (*delete_virtqueues)(struct virtio_device *vdev);
	int (*get_status)(struct virtio_device *vdev, uint8_t *status);
	int (*set_status)(struct virtio_device *vdev, uint8_t status);
	int (*get_features)(struct virtio_device *vdev, uint64_t *features);
	int (*set_features)(struct virtio_device *vdev, uint64_t features);
	int (*read_config)(struct virtio_device *vdev, uint32_t offset, void *dst,
			   int length);
	int (*write_config)(struct virtio_device *vdev, uint32_t offset,
			    const void *src, int length);
	int (*reset_device)(struct virtio_device *vdev);
	void (*notify)(struct virtqueue *vq);
	/* Buffer memory the peer can reach (the carveout heap under rptun). */
	void *(*alloc_buf)(struct virtio_device *vdev, size_t size, size_t align);
	int (*free_buf)(struct virtio_device *vdev, void *buf);
	/* Optional: true once the transport knows the other side went (died
	 * or stopped), or no longer serves the device (a reset asked for or
	 * made, a ring broken), though the device is not removed yet. A driver asks it
	 * while it waits on the thread that would see the peer go and remove
	 * the device (a receive callback's send waiting for a buffer), so as
	 * not to wait out its timeout. Cheap, and called with the driver's
	 * lock held: it must not take a transport lock or wait. */
	bool (*peer_gone)(struct virtio_device *vdev);
};

struct virtio_device {
	uint32_t notifyid;
	struct virtio_device_id id;
	uint64_t features; /* negotiated: what both sides use */
	unsigned int role; /* VIRTIO_DEV_DRIVER or VIRTIO_DEV_DEVICE */
	const struct virtio_dispatch *func;
	void *priv; /* the bound driver's */
	unsigned int vrings_num;
	struct virtio_vring_info *vrings_info;
	const char *local_cpuname; /* set by the transport when it knows them */
	const char *peer_cpuname;

	/* bus bookkeeping, owned by the library */
	struct duet_list bus_node;
	/* Bound driver, or NULL: written under the bus lock, readable by any
	 * thread. */
	DUET_ATOMIC(struct virtio_driver *) bus_driver;
	int bus_state;
	unsigned int bus_scan;
};

/* A driver for devices with id `device`. Its node is the bus's. */
struct virtio_driver {
	uint32_t device;
	int (*probe)(struct virtio_device *vdev);
	void (*remove)(struct virtio_device *vdev);
	struct duet_list node;
	const char *name; /* optional, for status displays */
};

/* ---- transport calls, as OpenAMP names them: inline, on the device a
 * driver was given in probe, which they do not check ---- */

/* Create `nvqs` virtqueues; callbacks[i] runs on a notification for queue i
 * with vq->priv = callback_args[i] (both arrays may be NULL). */
static inline int virtio_create_virtqueues(struct virtio_device *vdev, unsigned int flags,
					   unsigned int nvqs, const char *names[],
					   vq_callback callbacks[], void *callback_args[])
{
	return vdev->func->create_virtqueues(vdev, flags, nvqs, names, callbacks,
					     callback_args);
}

/* Delete the device's virtqueues. */
static inline void virtio_delete_virtqueues(struct virtio_device *vdev)
{
	vdev->func->delete_virtqueues(vdev);
}

/* Read the status byte. */
static inline int virtio_get_status(struct virtio_device *vdev, uint8_t *status)
{
	return vdev->func->get_status(vdev, status);
}

/* Write the status byte (0 resets the device). */
static inline int virtio_set_status(struct virtio_device *vdev, uint8_t status)
{
	return vdev->func->set_status(vdev, status);
}

/* Features: see struct virtio_dispatch for what each role reads. */
static inline int virtio_get_features(struct virtio_device *vdev, uint64_t *features)
{
	return vdev->func->get_features(vdev, features);
}

/* Features: see struct virtio_dispatch for what each role writes. */
static inline int virtio_set_features(struct virtio_device *vdev, uint64_t features)
{
	return vdev->func->set_features(vdev, features);
}

/* Copy `length` bytes of config space at `offset` to dst; -EINVAL past its end.
 * Raw bytes: config fields are little-endian (VIRTIO 1.2), duet_le32() them. */
static inline int virtio_read_config(struct virtio_device *vdev, uint32_t offset,
				     void *dst, int length)
{
	return vdev->func->read_config(vdev, offset, dst, length);
}

/* Copy `length` bytes from src to config space at `offset`, little-endian fields. */
static inline int virtio_write_config(struct virtio_device *vdev, uint32_t offset,
				      const void *src, int length)
{
	return vdev->func->write_config(vdev, offset, src, length);
}

/* Reset the device: status 0, queues forgotten. */
static inline int virtio_reset_device(struct virtio_device *vdev)
{
	return vdev->func->reset_device(vdev);
}

/* Memory for buffers, inside what the peer can reach; NULL when none is
 * left or the transport has none. `align` a power of two (0: default). */
static inline void *virtio_alloc_buf(struct virtio_device *vdev, size_t size, size_t align)
{
	return vdev->func->alloc_buf ? vdev->func->alloc_buf(vdev, size, align) : NULL;
}

/* Give back what virtio_alloc_buf returned; -EINVAL for anything else. */
static inline int virtio_free_buf(struct virtio_device *vdev, void *buf)
{
	return vdev->func->free_buf ? vdev->func->free_buf(vdev, buf) : -EINVAL;
}

/* True when feature bit `fbit` was negotiated. An expression. */
#define virtio_has_feature(vdev, fbit) ((((vdev)->features) >> (fbit)) & 1u)

/* Read or write one member of a config structure. Expressions. */
#define virtio_read_config_member(vdev, structname, member, ptr)                   \
	virtio_read_config((vdev), (uint32_t)offsetof(structname, member), (ptr),  \
			   (int)sizeof(((structname *)0)->member))
#define virtio_write_config_member(vdev, structname, member, ptr)                  \
	virtio_write_config((vdev), (uint32_t)offsetof(structname, member), (ptr), \
			    (int)sizeof(((structname *)0)->member))

/*
 * Driver side, in probe: read the device's offer, accept `driver_features`
 * of it, set FEATURES_OK and check that it stuck (VIRTIO 1.2, 3.1.1).
 * Stores the result in vdev->features and *final (optional). Returns 0, or
 * -ENODEV when the device refused (status then has FAILED set).
 */
DUET_API int virtio_negotiate_features(struct virtio_device *vdev, uint64_t driver_features,
				       uint64_t *final);

/* ---- the virtio bus ---- */

/*
 * Register a driver; it is probed on every registered, unbound device with
 * its id. Returns 0, -EEXIST if already registered, -EINVAL.
 */
DUET_API int virtio_register_driver(struct virtio_driver *driver);

/* Unregister a driver: remove() runs for each device bound to it first, and
 * those devices are offered to the remaining drivers. -ENOENT if unknown. */
DUET_API int virtio_unregister_driver(struct virtio_driver *driver);

/*
 * Register a device (a transport calls this). The bus resets it, sets
 * ACKNOWLEDGE and DRIVER and probes the matching drivers in registration
 * order until one succeeds; after a successful probe it sets DRIVER_OK if
 * the driver did not. A failed probe resets the device before the next
 * driver. Returns 0 (also when no driver matches yet), -EEXIST, -EINVAL.
 */
DUET_API int virtio_register_device(struct virtio_device *vdev);

/* Unregister a device: the bound driver's remove() runs first. -ENOENT if
 * unknown. */
DUET_API int virtio_unregister_device(struct virtio_device *vdev);

/* Register the virtio drivers this build enabled (CMake DUET_DRIVER_*). */
DUET_API void virtio_register_drivers(void);

/* True when a virtio driver for device id `id` is registered. */
DUET_API bool virtio_has_driver(uint32_t id);

#ifdef __cplusplus
}
#endif

#endif /* DUET_VIRTIO_H */
