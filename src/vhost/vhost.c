/*
 * vhost.c - the device-side bus, with deferred probe.
 *
 * A vhost device is ready when the peer's status has DRIVER_OK, not
 * NEEDS_RESET nor FAILED, and the features it accepted are a subset of the offer (the
 * transport's get_features checks that). Until then it waits on the
 * deferred list; one work item looks at the list every period while it is
 * not empty.
 */
#include <errno.h>

#include <duet/vhost.h>

#include "../virtio/bus.h"

static _Atomic uint32_t probe_period_ms = DUET_VHOST_PROBE_PERIOD_MS;

static int vhost_prepare(struct vhost_device *hdev)
{
	return virtio_get_features(hdev, &hdev->features);
}

static void deferred_probe(struct duet_work *work);

static struct duet_bus vhost_bus = BUS_INIT(vhost_bus, vhost_prepare, NULL, NULL, NULL);
static struct duet_work deferred_work = { .fn = deferred_probe };
static bool deferred_armed; /* under the bus lock */

enum peer { PEER_WAIT, PEER_READY, PEER_RESET };

/* What the peer's status says about this device now. */
static enum peer peer_state(struct vhost_device *hdev)
{
	uint64_t features;
	uint8_t status = 0;

	if (virtio_get_status(hdev, &status) < 0)
		return PEER_WAIT;
	if (status & VIRTIO_CONFIG_STATUS_NEEDS_RESET)
		return PEER_RESET;
	/* FAILED: the driver gave up on the device (a ring broke on its
	 * side); it keeps DRIVER_OK until it resets the device. */
	if (!(status & VIRTIO_CONFIG_STATUS_DRIVER_OK) || (status & VIRTIO_CONFIG_STATUS_FAILED))
		return PEER_WAIT;
	if (virtio_get_features(hdev, &features) < 0) {
		/* Accepted more than offered: the driver must start over. */
		virtio_set_status(hdev, VIRTIO_CONFIG_STATUS_NEEDS_RESET);
		return PEER_RESET;
	}
	return PEER_READY;
}

static void arm_deferred(void)
{
	if (!deferred_armed && !duet_list_empty(&vhost_bus.deferred) &&
	    duet_work_queue(&deferred_work, atomic_load(&probe_period_ms)) == 0)
		deferred_armed = true;
}

/* The first deferred device this pass has not looked at. */
static struct vhost_device *next_deferred(unsigned int stamp)
{
	struct duet_list *l;

	for (l = vhost_bus.deferred.next; l != &vhost_bus.deferred; l = l->next) {
		struct vhost_device *h = duet_container_of(l, struct vhost_device, bus_node);

		if (h->bus_scan != stamp)
			return h;
	}
	return NULL;
}

static void deferred_probe(struct duet_work *work)
{
	struct vhost_device *hdev;
	unsigned int stamp;

	(void)work;
	if (duet_bus_lock(&vhost_bus) < 0)
		return;
	deferred_armed = false;
	stamp = ++vhost_bus.scan;
	while ((hdev = next_deferred(stamp))) {
		hdev->bus_scan = stamp;
		switch (peer_state(hdev)) {
		case PEER_RESET:
			virtio_reset_device(hdev);
			break;
		case PEER_READY:
			duet_list_del(&hdev->bus_node);
			duet_bus_add_ready(&vhost_bus, hdev);
			break;
		case PEER_WAIT:
			break;
		}
	}
	arm_deferred();
	duet_bus_unlock(&vhost_bus);
}

int vhost_register_driver(struct vhost_driver *driver)
{
	return duet_bus_register_driver(&vhost_bus, driver);
}

int vhost_unregister_driver(struct vhost_driver *driver)
{
	return duet_bus_unregister_driver(&vhost_bus, driver);
}

int vhost_register_device(struct vhost_device *hdev)
{
	int ret;

	if (!hdev || !hdev->func || hdev->role != VIRTIO_DEV_DEVICE)
		return -EINVAL;
	ret = duet_bus_lock(&vhost_bus);
	if (ret < 0)
		return ret;
	ret = duet_bus_register_device(&vhost_bus, hdev, peer_state(hdev) == PEER_READY);
	if (ret == 0)
		arm_deferred();
	duet_bus_unlock(&vhost_bus);
	return ret;
}

int vhost_unregister_device(struct vhost_device *hdev)
{
	return duet_bus_unregister_device(&vhost_bus, hdev);
}

bool vhost_has_driver(uint32_t id)
{
	return duet_bus_has_driver(&vhost_bus, id);
}

uint32_t vhost_set_probe_period(uint32_t ms)
{
	return atomic_exchange(&probe_period_ms, ms ? ms : 1u);
}

/* The build's vhost drivers, as an X-macro list from CMake (DUET_DRIVERS). */
#ifndef DUET_VHOST_DRIVERS
#define DUET_VHOST_DRIVERS
#endif
#define X(drv) extern struct vhost_driver drv;
DUET_VHOST_DRIVERS
#undef X

void vhost_register_drivers(void)
{
#define X(drv) vhost_register_driver(&drv);
	DUET_VHOST_DRIVERS
#undef X
}
