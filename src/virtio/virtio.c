/*
 * virtio.c - the driver-side bus and feature negotiation (VIRTIO 1.2, 3.1).
 *
 * Binding follows the spec's sequence: reset, ACKNOWLEDGE, DRIVER, then the
 * driver's probe negotiates features (virtio_negotiate_features) and sets
 * up its queues; DRIVER_OK follows a successful probe. A failed probe sets
 * FAILED; the next driver starts again from reset.
 */
#include <errno.h>

#include "bus.h"

static int virtio_prepare(struct virtio_device *vdev)
{
	int ret = virtio_set_status(vdev, VIRTIO_CONFIG_STATUS_RESET);

	if (ret == 0)
		ret = virtio_set_status(vdev, VIRTIO_CONFIG_STATUS_ACK);
	if (ret == 0)
		ret = virtio_set_status(vdev, VIRTIO_CONFIG_STATUS_ACK |
						      VIRTIO_CONFIG_STATUS_DRIVER);
	return ret;
}

static void virtio_probed(struct virtio_device *vdev)
{
	uint8_t status = 0;

	if (virtio_get_status(vdev, &status) == 0 &&
	    !(status & VIRTIO_CONFIG_STATUS_DRIVER_OK))
		virtio_set_status(vdev, status | VIRTIO_CONFIG_STATUS_DRIVER_OK);
}

static void virtio_failed(struct virtio_device *vdev)
{
	uint8_t status = 0;

	virtio_get_status(vdev, &status);
	virtio_set_status(vdev, status | VIRTIO_CONFIG_STATUS_FAILED);
}

static void virtio_unbound(struct virtio_device *vdev)
{
	virtio_reset_device(vdev);
}

static struct duet_bus virtio_bus = BUS_INIT(virtio_bus, virtio_prepare, virtio_probed,
					     virtio_failed, virtio_unbound);

int virtio_negotiate_features(struct virtio_device *vdev, uint64_t driver_features,
			      uint64_t *final)
{
	uint64_t offered = 0;
	uint8_t status = 0;
	int ret;

	if (!vdev)
		return -EINVAL;
	ret = virtio_get_features(vdev, &offered);
	if (ret < 0)
		return ret;
	ret = virtio_set_features(vdev, offered & driver_features);
	if (ret < 0)
		return ret;
	ret = virtio_get_status(vdev, &status);
	if (ret == 0)
		ret = virtio_set_status(vdev, status | VIRTIO_CONFIG_FEATURES_OK);
	if (ret == 0)
		ret = virtio_get_status(vdev, &status);
	if (ret < 0)
		return ret;
	/* The device may refuse the set: then FEATURES_OK does not stick. */
	if (!(status & VIRTIO_CONFIG_FEATURES_OK)) {
		virtio_set_status(vdev, status | VIRTIO_CONFIG_STATUS_FAILED);
		return -ENODEV;
	}
	vdev->features = offered & driver_features;
	if (final)
		*final = vdev->features;
	return 0;
}

int virtio_register_driver(struct virtio_driver *driver)
{
	return duet_bus_register_driver(&virtio_bus, driver);
}

int virtio_unregister_driver(struct virtio_driver *driver)
{
	return duet_bus_unregister_driver(&virtio_bus, driver);
}

int virtio_register_device(struct virtio_device *vdev)
{
	if (vdev && vdev->role != VIRTIO_DEV_DRIVER)
		return -EINVAL;
	return duet_bus_register_device(&virtio_bus, vdev, true);
}

int virtio_unregister_device(struct virtio_device *vdev)
{
	return duet_bus_unregister_device(&virtio_bus, vdev);
}

bool virtio_has_driver(uint32_t id)
{
	return duet_bus_has_driver(&virtio_bus, id);
}

/* The build's virtio drivers, as an X-macro list from CMake (DUET_DRIVERS). */
#ifndef DUET_VIRTIO_DRIVERS
#define DUET_VIRTIO_DRIVERS
#endif
#define X(drv) extern struct virtio_driver drv;
DUET_VIRTIO_DRIVERS
#undef X

void virtio_register_drivers(void)
{
#define X(drv) virtio_register_driver(&drv);
	DUET_VIRTIO_DRIVERS
#undef X
}
