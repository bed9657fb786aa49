/*
 * rvdev_restart.c - start a vdev's side over when its peer reset it: what
 * rptun's and the loopback's peer checks share. Built with the vhost
 * framework, whose bus a device side registers on again.
 */
#include <duet/vhost.h>

#include "rvdev.h"

int duet_rvdev_restart_if_reset(struct duet_rvdev *rv)
{
	struct virtio_device *vdev = &rv->vdev;

	if (!atomic_load(&vdev->bus_driver))
		return 0; /* nothing bound: a new probe starts clean anyway */
	if (vdev->role == VIRTIO_DEV_DRIVER) {
		/* The device asked for a reset, or this side gave up on it (a
		 * ring broke here: FAILED): probe again from scratch, on clean
		 * rings. Left FAILED, the driver's users would wait out each
		 * send and answer on a device that takes nothing more. Not
		 * for a missing DRIVER_OK: a probe in progress has none yet. */
		if (!(duet_rvdev_status(rv) &
		      (VIRTIO_CONFIG_STATUS_NEEDS_RESET | VIRTIO_CONFIG_STATUS_FAILED)))
			return 0;
		virtio_unregister_device(vdev);
		duet_rvdev_deinit(rv);
		return virtio_register_device(vdev) < 0 ? -1 : 1;
	}
	if (duet_rvdev_served(rv))
		return 0;
	/* The driver reset it, a ring broke, or the driver gave up on it
	 * (FAILED: it takes nothing more until it resets the device, so a
	 * user of this side would wait on it for nothing): start over,
	 * deferred until the driver is back. */
	vhost_unregister_device(vdev);
	duet_rvdev_deinit(rv);
	return vhost_register_device(vdev) < 0 ? -1 : 1;
}
