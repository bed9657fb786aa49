/*
 * virtio_rng.c - the entropy device's driver side (VIRTIO 1.2, 5.4).
 *
 * One request queue. A read posts one writable buffer at a time from the
 * transport's heap, kicks, and sleeps on an event the queue's callback
 * posts; the device may fill less than asked, so it loops until done or
 * the deadline. Buffers in flight are tracked locally so that none leaks:
 * one that comes back after its reader gave up is freed then, and all
 * still out are freed when the device is removed.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include <duet/port.h>
#include <duet/rng.h>

#include "../core/lazy_lock.h"

#define RNG_CHUNK 4096u  /* bytes per request buffer */
#define RNG_TRACK 64u    /* requests out at once (only one per reader) */

struct virtio_rng {
	struct virtio_device *vdev;
	struct virtqueue *vq;
	struct duet_event *done;
	/* `lock` covers every use of the queue and the buffers, and is
	 * never held across a wait: removal takes it to tear them down, so a
	 * reader asleep (even one whose wait runs the main loop that
	 * removes, on one core with no OS) is never waited for. One reader
	 * at a time: `busy` (under `lock`) says one reads; the others wait
	 * on `turn` with their own deadlines. */
	struct duet_mutex *lock;
	struct duet_event *turn;
	bool busy;
	_Atomic bool gone; /* set before removal takes `lock` */
	/* Readers between finding this device and leaving it, and whether
	 * it was removed meanwhile (both under rngs_lock): the last one out
	 * frees it. */
	unsigned int users;
	bool removed;
	void *out[RNG_TRACK]; /* buffers the device holds */
	struct duet_list node;
};

static struct duet_list rngs = DUET_LIST_INIT(rngs);
static duet_lazy_lock rngs_lock;

static void rng_used(struct virtqueue *vq)
{
	struct virtio_rng *rng = vq->priv;

	duet_event_post(rng->done);
}

static bool track(struct virtio_rng *rng, void *buf, bool add)
{
	for (unsigned int i = 0; i < RNG_TRACK; i++) {
		if (rng->out[i] == (add ? NULL : buf)) {
			rng->out[i] = add ? buf : NULL;
			return true;
		}
	}
	return false;
}

/* Drain the used ring: free buffers nobody waits for; true when `mine`
 * came back, with its filled length. */
static bool collect(struct virtio_rng *rng, void *mine, uint32_t *filled)
{
	bool got = false;
	uint32_t len;
	void *buf;

	while ((buf = virtqueue_get_buffer(rng->vq, &len, NULL))) {
		track(rng, buf, false);
		if (buf == mine) {
			got = true;
			*filled = len;
		} else {
			virtio_free_buf(rng->vdev, buf);
		}
	}
	return got;
}

/* Post one buffer of `chunk` bytes: it, or NULL with *err. Under lock.
 * Late buffers the device returned are taken back first: each holds a
 * descriptor and memory, and after a ring's worth of timed-out reads
 * nothing else would free them (every post would find the ring full). */
static void *post(struct virtio_rng *rng, uint32_t chunk, int *err)
{
	struct virtqueue_buf vb;
	uint32_t filled;
	void *buf;

	collect(rng, NULL, &filled);
	buf = virtio_alloc_buf(rng->vdev, chunk, 16);
	if (!buf) {
		*err = -ENOMEM;
		return NULL;
	}
	vb = (struct virtqueue_buf){ buf, chunk, true };
	/* Either way the device holds too many requests that timed out. */
	*err = track(rng, buf, true) ? virtqueue_add_buffer(rng->vq, &vb, 0, 1, buf) : -ENOSPC;
	if (*err < 0) {
		track(rng, buf, false);
		virtio_free_buf(rng->vdev, buf);
		return NULL;
	}
	virtqueue_kick(rng->vq);
	return buf;
}

/* Post one request of `chunk` bytes and wait for it. Returns the bytes
 * filled (copied to dst), or a negative errno; at a timeout the buffer
 * stays tracked and is reclaimed later, or by the removal. The queue and
 * the buffer are touched only under `lock`, after a look at `gone`. */
static int request(struct virtio_rng *rng, uint8_t *dst, uint32_t chunk, uint64_t deadline)
{
	uint32_t filled = 0;
	int ret = -ENODEV;
	void *buf;

	duet_mutex_lock(rng->lock);
	buf = atomic_load(&rng->gone) ? NULL : post(rng, chunk, &ret);
	if (!buf) {
		duet_mutex_unlock(rng->lock);
		return ret;
	}
	for (;;) {
		uint64_t now = duet_clock_ms();

		if (atomic_load(&rng->gone))
			ret = -ENODEV; /* the removal freed the buffer */
		else if (collect(rng, buf, &filled))
			break;
		else if (virtqueue_is_broken(rng->vq))
			ret = -EIO;
		else if (now >= deadline)
			ret = -ETIMEDOUT;
		else
			ret = 0;
		duet_mutex_unlock(rng->lock);
		if (ret < 0)
			return ret;
		duet_event_wait(rng->done, (uint32_t)(deadline - now));
		duet_mutex_lock(rng->lock);
	}
	/* The ring checked filled <= chunk (a longer claim breaks the queue). */
	memcpy(dst, buf, filled);
	virtio_free_buf(rng->vdev, buf);
	duet_mutex_unlock(rng->lock);
	return (int)filled;
}

/* The rng state of `vdev`, or NULL (rngs_lock held). */
static struct virtio_rng *find_rng(const struct virtio_device *vdev)
{
	struct duet_list *l;

	for (l = rngs.next; l != &rngs; l = l->next) {
		struct virtio_rng *rng = duet_container_of(l, struct virtio_rng, node);

		if (rng->vdev == vdev)
			return rng;
	}
	return NULL;
}

static void rng_free(struct virtio_rng *rng);

/*
 * Become the reader of `rng`, waiting for the one before until `deadline`.
 * 0, or -ETIMEDOUT, or -ENODEV once the device is going.
 */
static int enter(struct virtio_rng *rng, uint64_t deadline)
{
	duet_mutex_lock(rng->lock);
	while (rng->busy && !atomic_load(&rng->gone)) {
		uint64_t now = duet_clock_ms();

		duet_mutex_unlock(rng->lock);
		if (now >= deadline)
			return -ETIMEDOUT;
		duet_event_wait(rng->turn, (uint32_t)(deadline - now));
		duet_mutex_lock(rng->lock);
	}
	if (atomic_load(&rng->gone)) {
		duet_mutex_unlock(rng->lock);
		/* One post wakes one waiter: pass it on to the next. */
		duet_event_post(rng->turn);
		return -ENODEV;
	}
	rng->busy = true;
	duet_mutex_unlock(rng->lock);
	return 0;
}

static void leave(struct virtio_rng *rng)
{
	duet_mutex_lock(rng->lock);
	rng->busy = false;
	duet_mutex_unlock(rng->lock);
	duet_event_post(rng->turn);
}

/* Done with `rng`: free it if it was removed and this was its last user. */
static void put(struct virtio_rng *rng)
{
	bool last;

	duet_lazy_lock_take(&rngs_lock); /* made at probe: cannot fail now */
	last = !--rng->users && rng->removed;
	duet_lazy_lock_give(&rngs_lock);
	if (last)
		rng_free(rng);
}

int virtio_rng_read(struct virtio_device *vdev, void *buf, size_t len, uint32_t timeout_ms)
{
	uint64_t deadline = duet_clock_ms() + timeout_ms;
	struct virtio_rng *rng;
	size_t done = 0;
	int ret;

	if (!vdev || (!buf && len) || len > INT_MAX)
		return -EINVAL;
	if (duet_lazy_lock_take(&rngs_lock) < 0)
		return -ENOMEM;
	/* Found on the list, not through vdev->priv: remove() takes it off
	 * the list under this lock, and frees it only after its last user. */
	rng = find_rng(vdev);
	if (rng)
		rng->users++;
	duet_lazy_lock_give(&rngs_lock);
	if (!rng)
		return -ENODEV;

	ret = enter(rng, deadline);
	if (ret == 0) {
		while (done < len && ret >= 0) {
			size_t chunk = len - done < RNG_CHUNK ? len - done : RNG_CHUNK;

			ret = request(rng, (uint8_t *)buf + done, (uint32_t)chunk, deadline);
			if (ret > 0)
				done += (size_t)ret;
			/* After every answer, not only when request() must
			 * wait: a device may answer before it looks, with
			 * nothing or a byte, and keep the read going. */
			if (ret >= 0 && done < len && duet_clock_ms() >= deadline)
				ret = -ETIMEDOUT;
		}
		leave(rng);
	}
	put(rng);
	return done ? (int)done : ret;
}

struct virtio_device *virtio_rng_get(unsigned int index)
{
	struct virtio_device *found = NULL;
	struct duet_list *l;

	if (duet_lazy_lock_take(&rngs_lock) < 0)
		return NULL;
	for (l = rngs.next; l != &rngs; l = l->next) {
		if (index-- == 0) {
			found = duet_container_of(l, struct virtio_rng, node)->vdev;
			break;
		}
	}
	duet_lazy_lock_give(&rngs_lock);
	return found;
}

static void rng_free(struct virtio_rng *rng)
{
	duet_event_destroy(rng->done);
	duet_event_destroy(rng->turn);
	duet_mutex_destroy(rng->lock);
	duet_port_free(rng);
}

static int virtio_rng_probe(struct virtio_device *vdev)
{
	const char *names[] = { "requestq" };
	vq_callback cbs[] = { rng_used };
	struct virtio_rng *rng = duet_port_alloc(sizeof(*rng));
	void *args[1] = { rng };
	int ret;

	if (!rng)
		return -ENOMEM;
	rng->vdev = vdev;
	ret = duet_event_create(&rng->done);
	if (ret == 0)
		ret = duet_event_create(&rng->turn);
	if (ret == 0)
		ret = duet_mutex_create(&rng->lock);
	if (ret == 0)
		ret = virtio_negotiate_features(vdev, 0, NULL);
	if (ret == 0)
		ret = virtio_create_virtqueues(vdev, 0, 1, names, cbs, args);
	if (ret == 0)
		ret = duet_lazy_lock_take(&rngs_lock);
	if (ret < 0) {
		virtio_delete_virtqueues(vdev);
		rng_free(rng);
		return ret;
	}
	rng->vq = vdev->vrings_info[0].vq;
	vdev->priv = rng;
	duet_list_add_tail(&rngs, &rng->node);
	duet_lazy_lock_give(&rngs_lock);
	return 0;
}

static void virtio_rng_remove(struct virtio_device *vdev)
{
	struct virtio_rng *rng = vdev->priv;
	bool last;

	/* Off the list first: no new reader can find it. `gone` before the
	 * lock: a reader that holds it finishes its use of the queue, and
	 * every later look sees `gone`. Readers asleep are not waited for:
	 * they wake, see it and leave. */
	duet_lazy_lock_take(&rngs_lock); /* made at probe: cannot fail now */
	duet_list_del(&rng->node);
	atomic_store(&rng->gone, true);
	duet_lazy_lock_give(&rngs_lock);
	duet_mutex_lock(rng->lock);
	/* The device is going away: what it still holds comes home now,
	 * a waiting reader's buffer among them. */
	virtio_reset_device(vdev);
	for (unsigned int i = 0; i < RNG_TRACK; i++)
		if (rng->out[i])
			virtio_free_buf(vdev, rng->out[i]);
	virtio_delete_virtqueues(vdev);
	rng->vq = NULL;
	duet_mutex_unlock(rng->lock);
	duet_event_post(rng->done);
	duet_event_post(rng->turn);
	vdev->priv = NULL;
	/* Readers still on their way out free it last. */
	duet_lazy_lock_take(&rngs_lock);
	rng->removed = true;
	last = !rng->users;
	duet_lazy_lock_give(&rngs_lock);
	if (last)
		rng_free(rng);
}

struct virtio_driver virtio_rng_driver = {
	.device = VIRTIO_ID_ENTROPY,
	.probe = virtio_rng_probe,
	.remove = virtio_rng_remove,
	.name = "virtio-rng",
};
