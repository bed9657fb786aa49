/*
 * rpmsg_driver.c - virtio-rpmsg, the driver side of rpmsg over virtio.
 *
 * This side owns every buffer, from its carveout heap. It receives on vq 0,
 * where it keeps writable buffers posted and re-posts consumed ones in
 * batches (rpmsg_rx_back); it sends on vq 1, from a queue of free send
 * buffers that is refilled from the used ring only when it runs dry.
 * Endpoints, the name service and the rest are the shared core's
 * (rpmsg_virtio.c).
 */
#include <errno.h>

#include <duet/port.h>
#include <duet/rpmsg.h>

#include "../core/compiler.h"
#include "rpmsg_internal.h"
#include "rpmsg_path.h"

/*
 * The most send buffers a send takes back at once. A send that finds the
 * free list empty pays for every buffer it takes back: a ring's worth at
 * once made one message in 256 some 10,000 instructions longer on a
 * Cortex-M4 (bench/cortex-m.sh, the max column), a stall a real-time
 * loop would see. Up to 32 keeps the calls few and the stall short.
 */
#define RECLAIM_MAX 32u

/*
 * Take back up to `max` of the send buffers the device has used. Sending
 * does it only when its free list is empty. The free list is a queue,
 * tx_free[tx_first .. tx_end): buffers go out in the order they came back,
 * as the virtqueue reuses its heads, so each keeps its descriptor and
 * avail entry and neither is stored again (docs/virtqueue.md).
 */
static void reclaim_tx(struct rpmsg_device *rdev, uint16_t max)
{
	uint16_t n = (uint16_t)(rdev->tx_end - rdev->tx_first);
	uint16_t room;
	int got;

	if (rdev->tx_first) { /* room at the end for every buffer out */
		for (uint16_t i = 0; i < n; i++)
			rdev->tx_free[i] = rdev->tx_free[rdev->tx_first + i];
		rdev->tx_first = 0;
		rdev->tx_end = n;
	}
	room = (uint16_t)(rdev->ntx - n);
	got = virtqueue_get_buffers(rdev->svq, rdev->tx_free + n, NULL, room < max ? room : max);
	if (got > 0)
		rdev->tx_end = (uint16_t)(n + got);
}

/* Every used send buffer back: what counts buffers in flight (dump)
 * calls it first. */
static void drv_reclaim_tx(struct rpmsg_device *rdev)
{
	reclaim_tx(rdev, rdev->ntx);
}

static DUET_ALWAYS_INLINE uint8_t *drv_take_tx(struct rpmsg_device *rdev, uint16_t *head,
					       uint32_t *cap)
{
	/* Used send buffers are taken back only when the free list runs dry,
	 * up to RECLAIM_MAX at a time: not a look at the used ring per
	 * message. */
	if (rdev->tx_first == rdev->tx_end)
		reclaim_tx(rdev, RECLAIM_MAX);
	if (rdev->tx_first == rdev->tx_end)
		return NULL;
	*head = 0;
	*cap = rdev->tx_size;
	return rdev->tx_free[rdev->tx_first++];
}

static DUET_ALWAYS_INLINE int drv_submit_tx(struct rpmsg_device *rdev, uint8_t *buf, uint16_t head,
					    uint32_t len)
{
	(void)head;
	return VQ_SHORT(vq_inline_add_one, virtqueue_add_one, rdev->svq, buf, len, false, buf);
}

/* A buffer taken and not sent goes back to the front when it can (the
 * next send reuses it), else to the end: there is room for every buffer. */
static void drv_untake_tx(struct rpmsg_device *rdev, uint8_t *buf, uint16_t head)
{
	(void)head;
	if (rdev->tx_first)
		rdev->tx_free[--rdev->tx_first] = buf;
	else
		rdev->tx_free[rdev->tx_end++] = buf;
}

/* The used ring checks what the device reports: the buffer is one this
 * side posted, the length within it. */
static DUET_ALWAYS_INLINE uint8_t *drv_next_rx(struct rpmsg_device *rdev, uint32_t *len,
					       uint16_t *head)
{
	uint8_t *buf = VQ_SHORT(vq_inline_get_buffer, virtqueue_get_buffer, rdev->rvq, len, NULL);

	*head = 0;
	if (buf)
		rdev->rx_out++;
	return buf;
}

/* Re-post the receive buffers given back (rpmsg_return_rx). */
static int drv_return_batch(struct rpmsg_device *rdev, uint16_t n)
{
	return virtqueue_add_bufs(rdev->rvq, rdev->rx_bufs, n, rdev->rx_size, true);
}

static void drv_post_rx(struct rpmsg_device *rdev);

static inline void drv_recycle_rx(struct rpmsg_device *rdev, uint8_t *buf, uint16_t head)
{
	(void)head;
	rdev->rx_bufs[rdev->nrx_back] = buf;
	if (rpmsg_rx_back(rdev))
		drv_post_rx(rdev);
}

/* The buffer pools, every receive buffer posted. */
static int drv_setup(struct rpmsg_device *rdev)
{
	uint16_t nrx = virtqueue_get_vring_size(rdev->rvq);
	uint16_t ntx = virtqueue_get_vring_size(rdev->svq);

	rdev->rx_pool = virtio_alloc_buf(rdev->vdev, (size_t)nrx * rdev->rx_size, 16);
	rdev->tx_pool = virtio_alloc_buf(rdev->vdev, (size_t)ntx * rdev->tx_size, 16);
	rdev->tx_free = duet_port_alloc(ntx * sizeof(void *));
	if (!rdev->rx_pool || !rdev->tx_pool || !rdev->tx_free)
		return -ENOMEM;
	for (uint16_t i = 0; i < ntx; i++)
		rdev->tx_free[rdev->tx_end++] = rdev->tx_pool + (size_t)i * rdev->tx_size;
	rdev->nrx = nrx;
	rdev->ntx = ntx;
	rdev->rx_out = nrx; /* none posted yet */
	for (uint16_t i = 0; i < nrx; i++)
		drv_recycle_rx(rdev, rdev->rx_pool + (size_t)i * rdev->rx_size, 0);
	if (rdev->nrx_back)
		drv_post_rx(rdev);
	return 0;
}

static int drv_send(struct rpmsg_device *rdev, uint32_t src, uint32_t dst, const void *data,
		    int len, unsigned int how);
static void drv_rx_notified(struct virtqueue *vq);

static const struct rpmsg_role driver_role = {
	.driver = true,
	.take_tx = drv_take_tx,
	.submit_tx = drv_submit_tx,
	.untake_tx = drv_untake_tx,
	.next_rx = drv_next_rx,
	.recycle_rx = drv_recycle_rx,
	.return_batch = drv_return_batch,
	.return_rx = drv_post_rx,
	.send = drv_send,
	.rx_notified = drv_rx_notified,
	.setup = drv_setup,
	.reclaim_tx = drv_reclaim_tx,
};

static int drv_send(struct rpmsg_device *rdev, uint32_t src, uint32_t dst, const void *data,
		    int len, unsigned int how)
{
	return rpmsg_send_entry(rdev, &driver_role, src, dst, data, len, how);
}

static void drv_rx_notified(struct virtqueue *vq)
{
	rpmsg_rx_pass(vq, &driver_role);
}

/* Re-post the receive buffers given back, in the order they came: each
 * then meets its descriptor and avail entry of a ring ago. */
static DUET_OUT_OF_LINE void drv_post_rx(struct rpmsg_device *rdev)
{
	rpmsg_return_rx(rdev, &driver_role);
}

static int virtio_rpmsg_probe(struct virtio_device *vdev)
{
	return rpmsg_probe(vdev, &driver_role);
}

struct virtio_driver virtio_rpmsg_driver = {
	.device = VIRTIO_ID_RPMSG,
	.probe = virtio_rpmsg_probe,
	.remove = rpmsg_remove,
	.name = "virtio-rpmsg",
};
