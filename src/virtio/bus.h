/*
 * bus.h - the one bus implementation behind the virtio bus and the vhost
 * bus. They differ only in the hooks below and in the vhost bus's deferred
 * list, which vhost.c drives.
 */
#ifndef DUET_BUS_H
#define DUET_BUS_H

#include <duet/port.h>
#include <duet/virtio.h>

#include "../core/lazy_lock.h"

enum bus_state {
	BUS_NONE = 0,  /* not on this bus */
	BUS_READY,     /* on the device list, bound or waiting for a driver */
	BUS_DEFERRED,  /* vhost: waiting for the peer's DRIVER_OK */
};

struct duet_bus {
	duet_lazy_lock lock; /* recursive; created on first use */
	struct duet_list drivers;
	struct duet_list devices;
	struct duet_list deferred;
	unsigned int scan; /* stamps devices visited by one pass */
	/* Before each probe; a negative return skips probing the device. */
	int (*prepare)(struct virtio_device *vdev);
	/* After a successful probe, and after a failed one. */
	void (*probed)(struct virtio_device *vdev);
	void (*failed)(struct virtio_device *vdev);
	/* After remove(), when a device leaves its driver. */
	void (*unbound)(struct virtio_device *vdev);
};

#define BUS_INIT(name, prep, ok, bad, gone)                                         \
	{                                                                          \
		.drivers = DUET_LIST_INIT(name.drivers),                           \
		.devices = DUET_LIST_INIT(name.devices),                           \
		.deferred = DUET_LIST_INIT(name.deferred), .prepare = (prep),      \
		.probed = (ok), .failed = (bad), .unbound = (gone),                \
	}

/* Take and release the bus lock; duet_bus_lock fails only with -ENOMEM. */
int duet_bus_lock(struct duet_bus *bus);
void duet_bus_unlock(struct duet_bus *bus);

int duet_bus_register_driver(struct duet_bus *bus, struct virtio_driver *drv);
int duet_bus_unregister_driver(struct duet_bus *bus, struct virtio_driver *drv);

/* Put a device on the device list and offer it to the drivers (lock held). */
void duet_bus_add_ready(struct duet_bus *bus, struct virtio_device *vdev);
/* Check and lock, then add to the device list (ready=true) or the deferred
 * list: the caller decides. Returns 0, -EEXIST, -EINVAL, -ENOMEM. */
int duet_bus_register_device(struct duet_bus *bus, struct virtio_device *vdev, bool ready);
int duet_bus_unregister_device(struct duet_bus *bus, struct virtio_device *vdev);

/* True when a driver for `id` is registered. */
bool duet_bus_has_driver(struct duet_bus *bus, uint32_t id);

/* Offer an unbound ready device to matching drivers in order (lock held). */
void duet_bus_bind(struct duet_bus *bus, struct virtio_device *vdev);

#endif /* DUET_BUS_H */
