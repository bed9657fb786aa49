/*
 * rpmsg_device.c - vhost-rpmsg, the device side of rpmsg over virtio.
 *
 * This side owns no buffer: it receives on vq 1, in buffers the driver
 * filled, and sends on vq 0, into writable buffers the driver posted,
 * returning each buffer through the used ring. Whatever the driver posts
 * is checked before use: a buffer that is not what rpmsg sends (a chain, a
 * send buffer that is not writable or too small, a receive buffer that is
 * writable) is returned unused and counted. Endpoints, the name service
 * and the rest are the shared core's (rpmsg_virtio.c).
 */
#include <errno.h>

#include <duet/port.h>
#include <duet/rpmsg.h>

#include "rpmsg_internal.h"
#include "rpmsg_path.h"

/*
 * The head of the next available chain of exactly one buffer, described in
 * *vb, or -1. A longer chain (legal, but not what rpmsg sends) is given
 * back unused and counted as `why`.
 */
static int take_one(struct rpmsg_device *rdev, struct virtqueue *vq, struct virtqueue_buf *vb,
		    const char *why)
{
	for (;;) {
		size_t n = 0;
		int h = vhost_get_vq_buffers(vq, vb, 1, &n);
		uint16_t hh;

		if (h >= 0)
			return h;
		if (h != -EINVAL || n <= 1)
			return -1;
		if (virtqueue_get_available_buffer(vq, &hh, NULL))
			virtqueue_add_consumed_buffer(vq, hh, 0);
		rpmsg_drop(rdev, RPMSG_DROP_OTHER, why, 0, 0, (uint32_t)n);
	}
}

/* The next writable buffer the driver posted, at least a header plus one
 * byte. */
static uint8_t *dev_take_tx(struct rpmsg_device *rdev, uint16_t *head, uint32_t *cap)
{
	for (;;) {
		struct virtqueue_buf vb;
		int h = take_one(rdev, rdev->svq, &vb, "send buffer is a chain, not one buffer");

		if (h < 0)
			return NULL;
		if (!vb.writable || vb.len <= RPMSG_HDR_SIZE) {
			virtqueue_add_consumed_buffer(rdev->svq, (uint16_t)h, 0);
			rpmsg_drop(rdev, RPMSG_DROP_OTHER,
				   vb.writable ? "send buffer too small" : "send buffer not writable",
				   0, 0, vb.len);
			continue;
		}
		*head = (uint16_t)h;
		*cap = vb.len < rdev->tx_size ? vb.len : rdev->tx_size;
		return vb.buf;
	}
}

static int dev_submit_tx(struct rpmsg_device *rdev, uint8_t *buf, uint16_t head, uint32_t len)
{
	(void)buf;
	return virtqueue_add_consumed_buffer(rdev->svq, head, len);
}

/* Unused: returned with nothing written, and the driver told. */
static void dev_untake_tx(struct rpmsg_device *rdev, uint8_t *buf, uint16_t head)
{
	(void)buf;
	if (virtqueue_add_consumed_buffer(rdev->svq, head, 0) == 0)
		virtqueue_kick(rdev->svq);
}

/* The next single readable buffer the driver filled. */
static uint8_t *dev_next_rx(struct rpmsg_device *rdev, uint32_t *len, uint16_t *head)
{
	for (;;) {
		struct virtqueue_buf vb;
		int h = take_one(rdev, rdev->rvq, &vb, "received a chain, not one buffer");

		if (h < 0)
			return NULL;
		if (vb.writable) {
			virtqueue_add_consumed_buffer(rdev->rvq, (uint16_t)h, 0);
			rpmsg_drop(rdev, RPMSG_DROP_OTHER, "received a writable buffer", 0, 0, vb.len);
			continue;
		}
		*len = vb.len;
		*head = (uint16_t)h;
		return vb.buf;
	}
}

/* Return a received buffer to the driver. */
static void dev_recycle_rx(struct rpmsg_device *rdev, uint8_t *buf, uint16_t head)
{
	(void)buf;
	if (virtqueue_add_consumed_buffer(rdev->rvq, head, 0) < 0)
		rpmsg_drop(rdev, RPMSG_DROP_OTHER, "receive buffer not returned (ring broken)", 0, 0,
			   0);
	rdev->rx_kick = true;
}

static int dev_send(struct rpmsg_device *rdev, uint32_t src, uint32_t dst, const void *data,
		    int len, unsigned int how);
static void dev_rx_notified(struct virtqueue *vq);

static const struct rpmsg_role device_role = {
	.driver = false,
	.take_tx = dev_take_tx,
	.submit_tx = dev_submit_tx,
	.untake_tx = dev_untake_tx,
	.next_rx = dev_next_rx,
	.recycle_rx = dev_recycle_rx,
	.send = dev_send,
	.rx_notified = dev_rx_notified,
};

static int dev_send(struct rpmsg_device *rdev, uint32_t src, uint32_t dst, const void *data,
		    int len, unsigned int how)
{
	return rpmsg_send_path(rdev, &device_role, src, dst, data, len, how);
}

static void dev_rx_notified(struct virtqueue *vq)
{
	rpmsg_rx_pass(vq, &device_role);
}

static int vhost_rpmsg_probe(struct vhost_device *hdev)
{
	return rpmsg_probe(hdev, &device_role);
}

struct vhost_driver vhost_rpmsg_driver = {
	.device = VIRTIO_ID_RPMSG,
	.probe = vhost_rpmsg_probe,
	.remove = rpmsg_remove,
	.name = "vhost-rpmsg",
};
