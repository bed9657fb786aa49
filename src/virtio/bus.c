/*
 * bus.c - matching drivers and devices by id.
 *
 * Everything runs under one recursive lock per bus, probe and remove
 * included, so a probe may register or unregister other devices and drivers
 * (not the one it was called for). Because a callback may change the lists,
 * no walk keeps a pointer across a callback: each step searches again from
 * the head, with a stamp or a count saying what was already visited.
 */
#include <errno.h>

#include "bus.h"

int duet_bus_lock(struct duet_bus *bus)
{
	return duet_lazy_lock_take(&bus->lock);
}

void duet_bus_unlock(struct duet_bus *bus)
{
	duet_lazy_lock_give(&bus->lock);
}

static bool on_list(const struct duet_list *head, const struct duet_list *node)
{
	const struct duet_list *n;

	for (n = head->next; n != head; n = n->next)
		if (n == node)
			return true;
	return false;
}

/* The n-th driver (from 0) registered for `id`, or NULL. */
static struct virtio_driver *nth_driver(struct duet_bus *bus, uint32_t id, unsigned int n)
{
	struct duet_list *l;

	for (l = bus->drivers.next; l != &bus->drivers; l = l->next) {
		struct virtio_driver *drv = duet_container_of(l, struct virtio_driver, node);

		if (drv->device == id && n-- == 0)
			return drv;
	}
	return NULL;
}

void duet_bus_bind(struct duet_bus *bus, struct virtio_device *vdev)
{
	unsigned int tried;

	for (tried = 0; vdev->bus_state == BUS_READY && !vdev->bus_driver; tried++) {
		struct virtio_driver *drv = nth_driver(bus, vdev->id.device, tried);

		if (!drv)
			return;
		if (bus->prepare && bus->prepare(vdev) < 0)
			return;
		vdev->bus_driver = drv;
		if (drv->probe(vdev) >= 0) {
			if (bus->probed)
				bus->probed(vdev);
			return;
		}
		vdev->bus_driver = NULL;
		if (bus->failed)
			bus->failed(vdev);
	}
}

/* Take a device away from its driver. */
static void unbind(struct duet_bus *bus, struct virtio_device *vdev)
{
	struct virtio_driver *drv = vdev->bus_driver;

	if (!drv)
		return;
	if (drv->remove)
		drv->remove(vdev);
	vdev->bus_driver = NULL;
	if (bus->unbound)
		bus->unbound(vdev);
}

/* The first unbound device for `id` not yet stamped by this pass. */
static struct virtio_device *next_unbound(struct duet_bus *bus, uint32_t id,
					  unsigned int stamp)
{
	struct duet_list *l;

	for (l = bus->devices.next; l != &bus->devices; l = l->next) {
		struct virtio_device *v = duet_container_of(l, struct virtio_device, bus_node);

		if (!v->bus_driver && v->id.device == id && v->bus_scan != stamp)
			return v;
	}
	return NULL;
}

int duet_bus_register_driver(struct duet_bus *bus, struct virtio_driver *drv)
{
	struct virtio_device *vdev;
	unsigned int stamp;
	int ret;

	if (!drv || !drv->probe)
		return -EINVAL;
	ret = duet_bus_lock(bus);
	if (ret < 0)
		return ret;
	if (on_list(&bus->drivers, &drv->node)) {
		duet_bus_unlock(bus);
		return -EEXIST;
	}
	duet_list_add_tail(&bus->drivers, &drv->node);
	/* Each waiting device gets one duet_bus_bind, the same as on the device
	 * path: every matching driver in order, the new one included. */
	stamp = ++bus->scan;
	while ((vdev = next_unbound(bus, drv->device, stamp))) {
		vdev->bus_scan = stamp;
		duet_bus_bind(bus, vdev);
	}
	duet_bus_unlock(bus);
	return 0;
}

/* The first device bound to `drv`, or NULL. */
static struct virtio_device *bound_to(struct duet_bus *bus, struct virtio_driver *drv)
{
	struct duet_list *l;

	for (l = bus->devices.next; l != &bus->devices; l = l->next) {
		struct virtio_device *v = duet_container_of(l, struct virtio_device, bus_node);

		if (v->bus_driver == drv)
			return v;
	}
	return NULL;
}

int duet_bus_unregister_driver(struct duet_bus *bus, struct virtio_driver *drv)
{
	struct virtio_device *vdev;
	int ret;

	if (!drv)
		return -EINVAL;
	ret = duet_bus_lock(bus);
	if (ret < 0)
		return ret;
	if (!on_list(&bus->drivers, &drv->node)) {
		duet_bus_unlock(bus);
		return -ENOENT;
	}
	/* Off the list first, so the devices it leaves are not offered back. */
	duet_list_del(&drv->node);
	while ((vdev = bound_to(bus, drv))) {
		unbind(bus, vdev);
		duet_bus_bind(bus, vdev);
	}
	duet_bus_unlock(bus);
	return 0;
}

void duet_bus_add_ready(struct duet_bus *bus, struct virtio_device *vdev)
{
	vdev->bus_state = BUS_READY;
	duet_list_add_tail(&bus->devices, &vdev->bus_node);
	duet_bus_bind(bus, vdev);
}

int duet_bus_register_device(struct duet_bus *bus, struct virtio_device *vdev, bool ready)
{
	int ret;

	if (!vdev || !vdev->func)
		return -EINVAL;
	ret = duet_bus_lock(bus);
	if (ret < 0)
		return ret;
	if (on_list(&bus->devices, &vdev->bus_node) ||
	    on_list(&bus->deferred, &vdev->bus_node)) {
		duet_bus_unlock(bus);
		return -EEXIST;
	}
	vdev->bus_driver = NULL;
	vdev->bus_scan = 0;
	if (ready) {
		duet_bus_add_ready(bus, vdev);
	} else {
		vdev->bus_state = BUS_DEFERRED;
		duet_list_add_tail(&bus->deferred, &vdev->bus_node);
	}
	duet_bus_unlock(bus);
	return 0;
}

int duet_bus_unregister_device(struct duet_bus *bus, struct virtio_device *vdev)
{
	int ret;

	if (!vdev)
		return -EINVAL;
	ret = duet_bus_lock(bus);
	if (ret < 0)
		return ret;
	if (!on_list(&bus->devices, &vdev->bus_node) &&
	    !on_list(&bus->deferred, &vdev->bus_node)) {
		duet_bus_unlock(bus);
		return -ENOENT;
	}
	unbind(bus, vdev);
	duet_list_del(&vdev->bus_node);
	vdev->bus_state = BUS_NONE;
	duet_bus_unlock(bus);
	return 0;
}

bool duet_bus_has_driver(struct duet_bus *bus, uint32_t id)
{
	bool found;

	if (duet_bus_lock(bus) < 0)
		return false;
	found = nth_driver(bus, id, 0) != NULL;
	duet_bus_unlock(bus);
	return found;
}
