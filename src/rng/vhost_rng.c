/*
 * vhost_rng.c - the entropy device's device side.
 *
 * Each request chain is filled from the host's entropy: only its writable
 * buffers, each exactly to its length, and the used length reported is
 * exactly what was written. Work per notification is bounded by the queue
 * size, so a driver re-posting without pause cannot pin this side.
 */
#include <errno.h>

#include <duet/port.h>
#include <duet/rng.h>

#define RNG_SG 8 /* buffers of one chain taken at once */

struct vhost_rng {
	struct virtqueue *vq;
	struct duet_mutex *lock; /* the probe and the callback may meet */
};

/* Fill the writable buffers of one chain; the bytes written. */
static uint32_t fill(struct virtqueue_buf *vb, size_t n)
{
	uint32_t written = 0;

	for (size_t i = 0; i < n; i++) {
		if (!vb[i].writable)
			continue;
		if (duet_port_random(vb[i].buf, vb[i].len) < 0)
			break;
		written += vb[i].len;
	}
	return written;
}

static void serve(struct virtqueue *vq)
{
	struct vhost_rng *rng = vq->priv;
	unsigned int budget = virtqueue_get_vring_size(vq);
	struct virtqueue_buf vb[RNG_SG];

	duet_mutex_lock(rng->lock);
	while (budget--) {
		size_t n = 0;
		int head = vhost_get_vq_buffers(vq, vb, RNG_SG, &n);

		if (head == -EINVAL && n > RNG_SG) {
			/* Legal but not what virtio-rng sends: take the chain
			 * whole and return it unfilled, a short fill the
			 * driver handles, rather than leave it blocking. */
			uint16_t h;

			if (!virtqueue_get_available_buffer(vq, &h, NULL))
				break;
			virtqueue_add_consumed_buffer(vq, h, 0);
			continue;
		}
		if (head < 0)
			break;
		virtqueue_add_consumed_buffer(vq, (uint16_t)head, fill(vb, n));
	}
	virtqueue_kick(vq);
	duet_mutex_unlock(rng->lock);
}

static int vhost_rng_probe(struct vhost_device *hdev)
{
	const char *names[] = { "requestq" };
	vq_callback cbs[] = { serve };
	struct vhost_rng *rng = duet_port_alloc(sizeof(*rng));
	void *args[1] = { rng };
	int ret;

	if (!rng)
		return -ENOMEM;
	ret = duet_mutex_create(&rng->lock);
	if (ret == 0)
		ret = vhost_create_virtqueues(hdev, 0, 1, names, cbs, args);
	if (ret < 0) {
		duet_mutex_destroy(rng->lock);
		duet_port_free(rng);
		return ret;
	}
	rng->vq = hdev->vrings_info[0].vq;
	hdev->priv = rng;
	/* Requests may have been posted before this side was ready. */
	serve(rng->vq);
	return 0;
}

static void vhost_rng_remove(struct vhost_device *hdev)
{
	struct vhost_rng *rng = hdev->priv;

	duet_mutex_lock(rng->lock);
	vhost_delete_virtqueues(hdev);
	duet_mutex_unlock(rng->lock);
	duet_mutex_destroy(rng->lock);
	duet_port_free(rng);
	hdev->priv = NULL;
}

struct vhost_driver vhost_rng_driver = {
	.device = VIRTIO_ID_ENTROPY,
	.probe = vhost_rng_probe,
	.remove = vhost_rng_remove,
	.name = "vhost-rng",
};
