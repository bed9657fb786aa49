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

#include "../core/compiler.h"
#include "rpmsg_internal.h"
#include "rpmsg_path.h"

/* Whether a buffer the driver posted is one rpmsg uses here: `tx`, a send
 * buffer, writable and more than a header; else a received one, readable. */
static inline bool fits(const struct virtqueue_buf *vb, bool tx)
{
	return vb->writable == tx && (!tx || vb->len > RPMSG_HDR_SIZE);
}

/* Why a buffer that does not fit is refused. */
static enum rpmsg_drop_why misfit(const struct virtqueue_buf *vb, bool tx)
{
	if (!tx)
		return DROP_RX_WRITABLE;
	return vb->writable ? DROP_TX_SMALL : DROP_TX_READONLY;
}

/*
 * take_single past its first look (h, n: what vhost_get_vq_buffers said):
 * anything that does not fit, a lone buffer of the wrong kind or a chain
 * (legal, but not what rpmsg sends), is given back unused and counted, and
 * the next one is looked at; -1 after a ring's worth of them, as if none
 * were available: a driver that posts each again the moment it comes back
 * must not keep a send looking past its timeout. Out of line: only a
 * driver that posts what rpmsg does not use gets here.
 */
static DUET_OUT_OF_LINE int take_single_slow(struct rpmsg_device *rdev, struct virtqueue *vq,
					     bool tx, struct virtqueue_buf *vb, int h, size_t n)
{
	for (unsigned int left = virtqueue_get_vring_size(vq);;) {
		uint16_t hh;

		if (h >= 0) {
			if (fits(vb, tx))
				return h;
			virtqueue_add_consumed_buffer(vq, (uint16_t)h, 0);
			rpmsg_drop(rdev, misfit(vb, tx), 0, 0, vb->len);
		} else if (h == -EINVAL && n > 1) {
			if (virtqueue_get_available_buffer(vq, &hh, NULL))
				virtqueue_add_consumed_buffer(vq, hh, 0);
			rpmsg_drop(rdev, tx ? DROP_TX_CHAIN : DROP_RX_CHAIN, 0, 0, (uint32_t)n);
		} else {
			return -1; /* none available, or the ring is broken */
		}
		if (--left == 0)
			return -1; /* before the next take: it would be lost */
		n = 0;
		h = vhost_get_vq_buffers(vq, vb, 1, &n);
	}
}

/* The head of the next available buffer of the kind rpmsg uses (see
 * fits), described in *vb; or -1. Inlined into both takes where the short
 * paths are: gcc 12 for a Cortex-M4 at -O2 called it, 17 instructions a
 * round trip there (bench/cortex-m.sh). */
static DUET_ALWAYS_INLINE int take_single(struct rpmsg_device *rdev, struct virtqueue *vq,
					  bool tx, struct virtqueue_buf *vb)
{
	size_t n = 0;
	int h = VQ_SHORT(vq_inline_get_vq_buffers, vhost_get_vq_buffers, vq, vb, 1, &n);

	if (h >= 0 && fits(vb, tx))
		return h;
	if (h == -ENOMEM)
		return -1; /* nothing available: the common miss */
	return take_single_slow(rdev, vq, tx, vb, h, n);
}

static DUET_ALWAYS_INLINE uint8_t *dev_take_tx(struct rpmsg_device *rdev, uint16_t *head,
					       uint32_t *cap)
{
	struct virtqueue_buf vb;
	int h = take_single(rdev, rdev->svq, true, &vb);

	if (h < 0)
		return NULL;
	*head = (uint16_t)h;
	*cap = vb.len < rdev->tx_size ? vb.len : rdev->tx_size;
	return vb.buf;
}

static DUET_ALWAYS_INLINE int dev_submit_tx(struct rpmsg_device *rdev, uint8_t *buf, uint16_t head,
					    uint32_t len)
{
	(void)buf;
	return VQ_SHORT(vq_inline_add_consumed_buffer, virtqueue_add_consumed_buffer, rdev->svq,
			head, len);
}

/* Unused: returned with nothing written, and the driver told. */
static void dev_untake_tx(struct rpmsg_device *rdev, uint8_t *buf, uint16_t head)
{
	(void)buf;
	if (virtqueue_add_consumed_buffer(rdev->svq, head, 0) == 0)
		virtqueue_kick(rdev->svq);
}

static DUET_ALWAYS_INLINE uint8_t *dev_next_rx(struct rpmsg_device *rdev, uint32_t *len,
					       uint16_t *head)
{
	struct virtqueue_buf vb;
	int h = take_single(rdev, rdev->rvq, false, &vb);

	if (h < 0)
		return NULL;
	rdev->rx_out++;
	*len = vb.len;
	*head = (uint16_t)h;
	return vb.buf;
}

/* Return the received buffers given back to the driver, used, nothing
 * written (rpmsg_return_rx). */
static int dev_return_batch(struct rpmsg_device *rdev, uint16_t n)
{
	return virtqueue_add_consumed_buffers(rdev->rvq, rdev->rx_heads, NULL, n);
}

static void dev_post_rx(struct rpmsg_device *rdev);

static inline void dev_recycle_rx(struct rpmsg_device *rdev, uint8_t *buf, uint16_t head)
{
	(void)buf;
	rdev->rx_heads[rdev->nrx_back] = head;
	if (rpmsg_rx_back(rdev))
		dev_post_rx(rdev);
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
	.return_batch = dev_return_batch,
	.return_rx = dev_post_rx,
	.send = dev_send,
	.rx_notified = dev_rx_notified,
};

static int dev_send(struct rpmsg_device *rdev, uint32_t src, uint32_t dst, const void *data,
		    int len, unsigned int how)
{
	return rpmsg_send_entry(rdev, &device_role, src, dst, data, len, how);
}

static void dev_rx_notified(struct virtqueue *vq)
{
	rpmsg_rx_pass(vq, &device_role);
}

/* Return the received buffers given back to the driver, in order. */
static DUET_OUT_OF_LINE void dev_post_rx(struct rpmsg_device *rdev)
{
	rpmsg_return_rx(rdev, &device_role);
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
