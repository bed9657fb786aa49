/*
 * virtio-rng and vhost-rng over the loopback transport, registered through
 * the build's driver table: reads of 1 byte to 64 KiB, short fills, a
 * timeout that leaks nothing, and a device side that writes only writable
 * buffers and reports exactly what it wrote.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <duet/heap.h>
#include <duet/loopback.h>
#include <duet/rsc.h>
#include <duet/port.h>
#include <duet/rng.h>

struct rig {
	struct duet_loopback *lb;
	pthread_t poller;
	_Atomic bool stop;
	bool polling;
	size_t heap_free;
};

static void *poll_loop(void *arg)
{
	struct rig *r = arg;

	while (!atomic_load(&r->stop)) {
		if (duet_loopback_poll(r->lb) == 0) {
			struct timespec ts = { 0, 20000 };

			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

static void start_polling(struct rig *r)
{
	atomic_store(&r->stop, false);
	assert_int_equal(pthread_create(&r->poller, NULL, poll_loop, r), 0);
	r->polling = true;
}

static void stop_polling(struct rig *r)
{
	if (!r->polling)
		return;
	atomic_store(&r->stop, true);
	pthread_join(r->poller, NULL);
	r->polling = false;
}

static uint16_t rig_ring = 16; /* entries of the rig's ring; a setup may say */

static struct rig *rig_new(void)
{
	struct duet_loopback_config cfg = {
		.device_id = VIRTIO_ID_ENTROPY, .num_vrings = 1, .vring_num = rig_ring,
		.vring_align = 16, .heap_size = 128 * 1024,
	};
	struct rig *r = calloc(1, sizeof(*r));

	assert_int_equal(duet_loopback_create(&r->lb, &cfg), 0);
	r->heap_free = duet_loopback_heap_available(r->lb);
	return r;
}

static void rig_free(struct rig *r)
{
	stop_polling(r);
	duet_loopback_destroy(r->lb);
	free(r);
}

static int setup(void **state)
{
	/* The build enables both rng drivers: the tables register them. */
	virtio_register_drivers();
	vhost_register_drivers();
	*state = rig_new();
	return 0;
}

static int setup_big_ring(void **state)
{
	rig_ring = 128;
	setup(state);
	rig_ring = 16;
	return 0;
}

static int teardown(void **state)
{
	struct rig *r = *state;

	stop_polling(r);
	virtio_unregister_device(duet_loopback_driver(r->lb));
	vhost_unregister_device(duet_loopback_device(r->lb));
	/* Every request buffer came home. */
	assert_int_equal(duet_loopback_heap_available(r->lb), r->heap_free);
	rig_free(r);
	assert_int_equal(virtio_unregister_driver(&virtio_rng_driver), 0);
	assert_int_equal(vhost_unregister_driver(&vhost_rng_driver), 0);
	return 0;
}

static void bring_up(struct rig *r)
{
	assert_int_equal(virtio_register_device(duet_loopback_driver(r->lb)), 0);
	assert_int_equal(vhost_register_device(duet_loopback_device(r->lb)), 0);
	start_polling(r);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

static void test_reads_of_every_size(void **state)
{
	static const size_t sizes[] = { 1, 2, 17, 511, 4095, 4096, 4097, 12345, 65536 };
	struct rig *r = *state;
	static uint8_t a[65536], b[65536];
	struct virtio_device *vdev;

	bring_up(r);
	vdev = virtio_rng_get(0);
	assert_ptr_equal(vdev, duet_loopback_driver(r->lb));
	assert_null(virtio_rng_get(1));
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];

		memset(a, 0, n);
		memset(b, 0, n);
		assert_int_equal(virtio_rng_read(vdev, a, n, 2000), (int)n);
		assert_int_equal(virtio_rng_read(vdev, b, n, 2000), (int)n);
		if (n >= 16) {
			assert_false(all_zero(a, n));
			assert_memory_not_equal(a, b, n);
		}
	}
	assert_int_equal(virtio_rng_read(vdev, a, 0, 10), 0);
	assert_int_equal(virtio_rng_read(vdev, NULL, 4, 10), -EINVAL);
	/* More than the int it returns can count: refused before a byte is
	 * asked for (a is never written). */
	assert_int_equal(virtio_rng_read(vdev, a, (size_t)INT_MAX + 1u, 10), -EINVAL);
	assert_int_equal(virtio_rng_read(duet_loopback_device(r->lb), a, 4, 10), -ENODEV);
}

/* With the driver side's shared memory all taken, a read fails at once
 * with -ENOMEM (it has nowhere to ask into), and works once memory is
 * back. */
static void test_read_without_shared_memory(void **state)
{
	struct rig *r = *state;
	struct virtio_device *vdev;
	void *held[64];
	uint8_t a[64];
	uint64_t t0;
	int n = 0;

	bring_up(r);
	vdev = virtio_rng_get(0);
	while (n < 64 && (held[n] = virtio_alloc_buf(vdev, 4096, 16)))
		n++;
	assert_true(n > 0 && n < 64);
	while (n < 64 && (held[n] = virtio_alloc_buf(vdev, 16, 16)))
		n++;
	assert_true(n < 64);
	assert_int_equal(duet_loopback_heap_available(r->lb), 0);
	t0 = duet_clock_ms();
	assert_int_equal(virtio_rng_read(vdev, a, sizeof(a), 5000), -ENOMEM);
	assert_true(duet_clock_ms() - t0 < 2500);
	while (n > 0)
		assert_int_equal(virtio_free_buf(vdev, held[--n]), 0);
	assert_int_equal(virtio_rng_read(vdev, a, sizeof(a), 2000), (int)sizeof(a));
}

/* The device side comes up late: it serves what timed out, a read of
 * 100 bytes gets them, and every request buffer is back in the heap. */
static void late_device_serves(struct rig *r)
{
	uint8_t a[100];

	stop_polling(r);
	assert_int_equal(vhost_register_device(duet_loopback_device(r->lb)), 0);
	start_polling(r);
	assert_int_equal(virtio_rng_read(virtio_rng_get(0), a, sizeof(a), 2000), (int)sizeof(a));
	assert_int_equal(duet_loopback_heap_available(r->lb), r->heap_free);
}

static void test_timeout_then_late_device_leaks_nothing(void **state)
{
	struct rig *r = *state;
	uint8_t a[100];
	uint64_t t0;
	int ret;

	/* No device side yet: the request waits, then times out. */
	assert_int_equal(virtio_register_device(duet_loopback_driver(r->lb)), 0);
	start_polling(r);
	t0 = duet_clock_ms();
	ret = virtio_rng_read(virtio_rng_get(0), a, sizeof(a), 100);
	assert_int_equal(ret, -ETIMEDOUT);
	assert_true(duet_clock_ms() - t0 >= 100);
	assert_true(duet_loopback_heap_available(r->lb) < r->heap_free); /* still out */

	/* The device comes up, serves the orphan; the next read reclaims it. */
	late_device_serves(r);
}

/*
 * A ring's worth of reads time out (no device side yet), so every
 * descriptor is out with a request. Once the device has served them all,
 * a read must work again: the returned buffers are taken back before a
 * new request needs a descriptor. (They were taken back only when memory
 * ran out, so every later read got -ENOSPC for good.)
 */
/* With no device side yet, `n` reads time out, each leaving its request
 * out; the next is refused with -ENOSPC. Then the device comes up late
 * and serves them, and reads work again. */
static void timeouts_then_late_device(struct rig *r, int n)
{
	uint8_t a[100];

	assert_int_equal(virtio_register_device(duet_loopback_driver(r->lb)), 0);
	start_polling(r);
	for (int i = 0; i < n; i++)
		assert_int_equal(virtio_rng_read(virtio_rng_get(0), a, sizeof(a), 0), -ETIMEDOUT);
	assert_int_equal(virtio_rng_read(virtio_rng_get(0), a, sizeof(a), 0), -ENOSPC);
	late_device_serves(r);
}

static void test_a_ring_of_timeouts_then_reads_work_again(void **state)
{
	timeouts_then_late_device(*state, 16); /* the rig's ring has 16 entries */
}

/* On a ring longer than the requests the driver keeps track of (64), the
 * same: -ENOSPC once 64 timed-out requests are out. */
static void test_many_timeouts_on_a_long_ring(void **state)
{
	timeouts_then_late_device(*state, 64);
}

/*
 * The driver side goes and comes back (a driver reset): it makes new
 * rings, and the device side's queue still has the old indices, so it
 * would wait for entries the new ring never reaches and every read would
 * time out. duet_loopback_check_peer starts the device side over.
 */
static void test_device_side_starts_over_after_a_driver_reset(void **state)
{
	struct rig *r = *state;
	uint8_t a[100];

	bring_up(r);
	for (int i = 0; i < 3; i++)
		assert_int_equal(virtio_rng_read(virtio_rng_get(0), a, sizeof(a), 2000), (int)sizeof(a));
	assert_int_equal(duet_loopback_check_peer(r->lb), 0);

	stop_polling(r);
	assert_int_equal(virtio_unregister_device(duet_loopback_driver(r->lb)), 0);
	assert_int_equal(virtio_register_device(duet_loopback_driver(r->lb)), 0);
	assert_int_equal(duet_loopback_check_peer(r->lb), 1);
	assert_int_equal(duet_loopback_check_peer(r->lb), 0);
	start_polling(r);
	assert_int_equal(virtio_rng_read(virtio_rng_get(0), a, sizeof(a), 2000), (int)sizeof(a));
}

static void test_timeout_then_removal_leaks_nothing(void **state)
{
	struct rig *r = *state;
	uint8_t a[100];

	assert_int_equal(virtio_register_device(duet_loopback_driver(r->lb)), 0);
	assert_int_equal(virtio_rng_read(virtio_rng_get(0), a, sizeof(a), 50), -ETIMEDOUT);
	/* teardown removes the device with the request still out, and checks
	 * the heap is whole again */
}

/* ---- test devices in vhost-rng's place ---- */

/* The queue callback of the test device in vhost-rng's place. */
static vq_callback fake_serve;

static int fake_probe(struct vhost_device *hdev)
{
	vq_callback cbs[] = { fake_serve };

	return vhost_create_virtqueues(hdev, 0, 1, NULL, cbs, NULL);
}

static void fake_remove(struct vhost_device *hdev)
{
	vhost_delete_virtqueues(hdev);
}

static struct vhost_driver fake = { .device = VIRTIO_ID_ENTROPY, .probe = fake_probe,
				    .remove = fake_remove };

/* Serve the rig with `serve` instead of vhost-rng, both sides up. */
static void bring_up_with(struct rig *r, vq_callback serve)
{
	fake_serve = serve;
	assert_int_equal(vhost_unregister_driver(&vhost_rng_driver), 0);
	assert_int_equal(vhost_register_driver(&fake), 0);
	bring_up(r);
}

/* Undo bring_up_with: the device side off, vhost-rng back. */
static void put_back_vhost_rng(struct rig *r)
{
	stop_polling(r);
	assert_int_equal(vhost_unregister_device(duet_loopback_device(r->lb)), 0);
	assert_int_equal(vhost_unregister_driver(&fake), 0);
	assert_int_equal(vhost_register_driver(&vhost_rng_driver), 0);
}

/* ---- a stingy device: fills half of each request ---- */

static void stingy_serve(struct virtqueue *vq)
{
	struct virtqueue_buf vb[4];
	size_t n;
	int head;

	while ((head = vhost_get_vq_buffers(vq, vb, 4, &n)) >= 0) {
		uint32_t half = (vb[0].len + 1) / 2;

		memset(vb[0].buf, 0xa5, half);
		virtqueue_add_consumed_buffer(vq, (uint16_t)head, half);
	}
	virtqueue_kick(vq);
}

static void test_short_fills_are_completed(void **state)
{
	struct rig *r = *state;
	static uint8_t a[10000];

	bring_up_with(r, stingy_serve);
	memset(a, 0, sizeof(a));
	assert_int_equal(virtio_rng_read(virtio_rng_get(0), a, sizeof(a), 2000), (int)sizeof(a));
	for (size_t i = 0; i < sizeof(a); i++)
		assert_int_equal(a[i], 0xa5); /* exactly what the device filled */
	put_back_vhost_rng(r);
}

/* ---- an empty device: returns every buffer with nothing written ---- */

/* Answer every request there is, each with at most `most` bytes. */
static void answer_each(struct virtqueue *vq, uint32_t most)
{
	struct virtqueue_buf vb[4];
	size_t n;
	int head;

	while ((head = vhost_get_vq_buffers(vq, vb, 4, &n)) >= 0) {
		uint32_t fill = most < vb[0].len ? most : (uint32_t)vb[0].len;

		memset(vb[0].buf, 0xa5, fill);
		virtqueue_add_consumed_buffer(vq, (uint16_t)head, fill);
	}
	virtqueue_kick(vq);
}

static void empty_serve(struct virtqueue *vq)
{
	answer_each(vq, 0);
}

/* A read from a device that always answers with nothing ends at its
 * timeout: it asks again after each empty answer, each time within the
 * deadline it was given. */
static void test_read_of_an_empty_device_times_out(void **state)
{
	struct rig *r = *state;
	uint8_t a[16];
	uint64_t t0;

	bring_up_with(r, empty_serve);
	t0 = duet_clock_ms();
	assert_int_equal(virtio_rng_read(virtio_rng_get(0), a, sizeof(a), 200), -ETIMEDOUT);
	assert_true(duet_clock_ms() - t0 >= 200);
	assert_true(duet_clock_ms() - t0 < 2500);
	put_back_vhost_rng(r);
}

/* ---- an eager device: answers each request, with `eager_fill` bytes at
 * most, before the driver looks for the answer ---- */

static struct rig *eager_rig;
static virtqueue_notify eager_ring; /* the loopback's own notify */
static uint64_t eager_until;        /* when the device stops answering */
static uint32_t eager_fill;

static void eager_serve(struct virtqueue *vq)
{
	if (duet_clock_ms() < eager_until)
		answer_each(vq, eager_fill);
}

/* The driver's kick: ring as the loopback does, then have the device
 * answer at once, as one on a faster core may before the driver's next
 * instruction: its serve, then the driver's callback it queued. */
static void eager_notify(struct virtqueue *vq)
{
	eager_ring(vq);
	duet_loopback_poll(eager_rig->lb);
	duet_loopback_poll(eager_rig->lb);
}

/* A read of `len` bytes with a 200 ms timeout from an eager device that
 * answers for 3 s with `fill` bytes each: returns what the read did, and
 * checks that it ended at its timeout, not when the device stopped. */
static int read_eager(struct rig *r, uint32_t fill, void *buf, size_t len)
{
	struct virtqueue *vq;
	uint64_t t0;
	int ret;

	eager_fill = fill;
	bring_up_with(r, eager_serve);
	stop_polling(r); /* the kick serves instead */
	vq = virtio_rng_get(0)->vrings_info[0].vq;
	eager_rig = r;
	eager_ring = vq->notify;
	vq->notify = eager_notify;
	t0 = duet_clock_ms();
	eager_until = t0 + 3000;
	ret = virtio_rng_read(virtio_rng_get(0), buf, len, 200);
	assert_true(duet_clock_ms() - t0 >= 200);
	assert_true(duet_clock_ms() - t0 < 2500);
	vq->notify = eager_ring;
	put_back_vhost_rng(r);
	return ret;
}

/* Empty answers, each there at the driver's first look: the read still
 * ends at its timeout. It asked again until the device stopped answering,
 * the deadline looked at only while it waited. */
static void test_read_of_an_eager_empty_device_times_out(void **state)
{
	uint8_t a[16];

	assert_int_equal(read_eager(*state, 0, a, sizeof(a)), -ETIMEDOUT);
}

/* One byte an answer, as eager: a long read ends at its timeout with the
 * bytes it got, each the device's, not after millions of answers. */
static void test_read_of_an_eager_trickle_ends_at_its_timeout(void **state)
{
	size_t len = 8u << 20;
	uint8_t *a = calloc(1, len);
	int got;

	assert_non_null(a);
	got = read_eager(*state, 1, a, len);
	assert_true(got > 0 && (size_t)got < len);
	for (int i = 0; i < got; i++)
		assert_int_equal(a[i], 0xa5);
	assert_int_equal(a[got], 0);
	free(a);
}

/* ---- a lying device: returns a buffer the driver never gave ---- */

static void liar_serve(struct virtqueue *vq)
{
	struct vring_used_elem *e = &vq->used->ring[vq->used_idx & vq->mask];

	/* Straight into the used ring, as a broken or hostile device would. */
	atomic_store((_Atomic uint32_t *)&e->id, 0xffffu);
	atomic_store((_Atomic uint32_t *)&e->len, 4);
	vq->used_idx++;
	atomic_store((_Atomic uint16_t *)&vq->used->idx, vq->used_idx);
	virtqueue_kick(vq);
}

/* A read waiting on a device that breaks the ring ends with -EIO at once,
 * not at its timeout, and so does every read after it. */
static void test_read_ends_when_the_device_breaks_the_ring(void **state)
{
	struct rig *r = *state;
	uint8_t a[16];
	uint64_t t0;

	bring_up_with(r, liar_serve);
	t0 = duet_clock_ms();
	assert_int_equal(virtio_rng_read(virtio_rng_get(0), a, sizeof(a), 5000), -EIO);
	assert_true(duet_clock_ms() - t0 < 2500);
	assert_int_equal(virtio_rng_read(virtio_rng_get(0), a, sizeof(a), 5000), -EIO);
	put_back_vhost_rng(r);
}

/* A read waiting when its device goes returns -ENODEV at once. */
struct pending_read {
	_Atomic int ret;
	uint64_t ms;
};

static void *read_long(void *arg)
{
	struct pending_read *p = arg;
	uint8_t a[16];
	uint64_t t0 = duet_clock_ms();

	atomic_store(&p->ret, virtio_rng_read(virtio_rng_get(0), a, sizeof(a), 5000));
	p->ms = duet_clock_ms() - t0;
	return NULL;
}

static void test_read_ends_when_the_device_goes(void **state)
{
	struct rig *r = *state;
	struct pending_read p = { 1, 0 };
	pthread_t t;

	/* No device side: the request waits. */
	assert_int_equal(virtio_register_device(duet_loopback_driver(r->lb)), 0);
	start_polling(r);
	assert_int_equal(pthread_create(&t, NULL, read_long, &p), 0);
	{
		struct timespec ts = { 0, 50000000 };

		nanosleep(&ts, NULL);
	}
	stop_polling(r);
	assert_int_equal(virtio_unregister_device(duet_loopback_driver(r->lb)), 0);
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&p.ret), -ENODEV);
	assert_true(p.ms < 2500);
	/* The device's struct is still there; it is not an rng any more. */
	assert_int_equal(virtio_rng_read(duet_loopback_driver(r->lb), &p, sizeof(p), 10), -ENODEV);
	assert_int_equal(virtio_rng_read(NULL, &p, sizeof(p), 10), -EINVAL);
}

/* A read that waits behind another, on a device that never answers. */
struct queued_read {
	uint32_t timeout_ms;
	_Atomic int ret;
	_Atomic uint64_t ms;
};

static void *read_queued(void *arg)
{
	struct queued_read *q = arg;
	uint8_t a[16];
	uint64_t t0 = duet_clock_ms();

	atomic_store(&q->ret, virtio_rng_read(virtio_rng_get(0), a, sizeof(a), q->timeout_ms));
	atomic_store(&q->ms, duet_clock_ms() - t0);
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Two reads waiting, one in its request and one for its turn: removing the
 * device ends both at once, and the removal does not wait out either. */
static void test_queued_reads_end_when_the_device_goes(void **state)
{
	struct rig *r = *state;
	struct queued_read q[2] = { { 5000, 1, 0 }, { 5000, 1, 0 } };
	pthread_t t[2];
	uint64_t t0;

	assert_int_equal(virtio_register_device(duet_loopback_driver(r->lb)), 0);
	start_polling(r);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_create(&t[i], NULL, read_queued, &q[i]), 0);
		sleep_ms(50);
	}
	stop_polling(r);
	t0 = duet_clock_ms();
	assert_int_equal(virtio_unregister_device(duet_loopback_driver(r->lb)), 0);
	assert_true(duet_clock_ms() - t0 < 2500);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(atomic_load(&q[i].ret), -ENODEV);
		assert_true(atomic_load(&q[i].ms) < 2500);
	}
}

/* A read waiting for its turn keeps its own timeout, and the one before it
 * still gets its bytes once the device answers. */
static void test_queued_read_keeps_its_timeout(void **state)
{
	struct rig *r = *state;
	struct queued_read first = { 5000, 1, 0 }, second = { 100, 1, 0 };
	size_t heap_with_first;
	pthread_t t[2];

	assert_int_equal(virtio_register_device(duet_loopback_driver(r->lb)), 0);
	start_polling(r);
	assert_int_equal(pthread_create(&t[0], NULL, read_queued, &first), 0);
	sleep_ms(50);
	heap_with_first = duet_loopback_heap_available(r->lb);
	assert_true(heap_with_first < r->heap_free); /* the first's request is out */
	assert_int_equal(pthread_create(&t[1], NULL, read_queued, &second), 0);
	pthread_join(t[1], NULL);
	assert_int_equal(atomic_load(&second.ret), -ETIMEDOUT);
	assert_true(atomic_load(&second.ms) >= 100);
	assert_true(atomic_load(&second.ms) < 2500);
	/* It never had its turn: no request of its own went out. */
	assert_int_equal(duet_loopback_heap_available(r->lb), heap_with_first);
	/* The device comes: the first read is served. */
	stop_polling(r);
	assert_int_equal(vhost_register_device(duet_loopback_device(r->lb)), 0);
	start_polling(r);
	pthread_join(t[0], NULL);
	assert_int_equal(atomic_load(&first.ret), 16);
}

/* Four readers at once on a working device: each gets every byte it asks
 * for, in turn, and none waits out its timeout for a turn that was
 * passed to nobody. */
struct busy_reader {
	_Atomic int short_reads;
	_Atomic uint64_t longest_ms;
};

static void *read_many(void *arg)
{
	struct busy_reader *b = arg;
	uint8_t a[100];

	for (int i = 0; i < 50; i++) {
		uint64_t t0 = duet_clock_ms(), ms;

		if (virtio_rng_read(virtio_rng_get(0), a, sizeof(a), 3000) != (int)sizeof(a))
			atomic_fetch_add(&b->short_reads, 1);
		ms = duet_clock_ms() - t0;
		if (ms > atomic_load(&b->longest_ms))
			atomic_store(&b->longest_ms, ms);
	}
	return NULL;
}

static void test_concurrent_readers_take_turns(void **state)
{
	struct rig *r = *state;
	struct busy_reader b[4] = { { 0, 0 } };
	pthread_t t[4];

	bring_up(r);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, read_many, &b[i]), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(atomic_load(&b[i].short_reads), 0);
		assert_true(atomic_load(&b[i].longest_ms) < 2500);
	}
}

/* ---- the loopback transport's configuration ---- */

static int try_loopback(struct duet_loopback_config cfg)
{
	struct duet_loopback *lb = NULL;
	int ret = duet_loopback_create(&lb, &cfg);

	if (ret == 0)
		duet_loopback_destroy(lb);
	return ret;
}

/* Each limit of a loopback's configuration at its boundary, and a side
 * that does not exist. */
static void test_loopback_refuses_bad_configurations(void **state)
{
	const struct duet_loopback_config good = {
		.device_id = VIRTIO_ID_ENTROPY, .num_vrings = 1, .vring_num = 16,
		.vring_align = 16, .heap_size = 4096,
	};
	struct duet_loopback_config c = good;
	struct duet_loopback *lb;

	(void)state;
	assert_int_equal(try_loopback(good), 0);
	assert_int_equal(duet_loopback_create(NULL, &good), -EINVAL);
	assert_int_equal(duet_loopback_create(&lb, NULL), -EINVAL);
	c.num_vrings = 0;
	assert_int_equal(try_loopback(c), -EINVAL);
	c.num_vrings = DUET_MAX_VRINGS;
	assert_int_equal(try_loopback(c), 0);
	c.num_vrings = DUET_MAX_VRINGS + 1;
	assert_int_equal(try_loopback(c), -EINVAL);
	c = good;
	c.vring_num = 0;
	assert_int_equal(try_loopback(c), -EINVAL);
	c.vring_num = 12; /* not a power of two: the table refuses it */
	assert_int_equal(try_loopback(c), -EINVAL);
	c.vring_num = VIRTQUEUE_MAX_SIZE; /* the largest queue the spec allows */
	assert_int_equal(try_loopback(c), 0);
	c = good;
	c.heap_size = (1u << 30) + 1;
	assert_int_equal(try_loopback(c), -EINVAL);

	assert_int_equal(duet_loopback_create(&lb, &good), 0);
	assert_int_equal(duet_loopback_poll(NULL), -EINVAL);
	assert_int_equal(duet_loopback_poll_side(lb, 2), -EINVAL);
	assert_int_equal(duet_loopback_poll_side(NULL, VIRTIO_DEV_DRIVER), -EINVAL);
	assert_int_equal(duet_loopback_poll_rings(lb, 2), -EINVAL);
	assert_int_equal(duet_loopback_poll(lb), 0); /* nothing registered, nothing pending */
	duet_loopback_destroy(lb);
}

/* A loopback destroyed with its devices still registered takes them off
 * the buses first: the buses keep no pointer into freed memory (ASan),
 * and the other loopback's devices bind and work as before. */
static void test_loopback_destroy_unregisters_its_devices(void **state)
{
	struct rig *r = *state;
	struct rig *other = rig_new();
	uint8_t a[32];

	assert_int_equal(virtio_register_device(duet_loopback_driver(other->lb)), 0);
	assert_int_equal(vhost_register_device(duet_loopback_device(other->lb)), 0);
	assert_non_null(virtio_rng_get(0)); /* bound at once: the driver side */
	rig_free(other);
	assert_null(virtio_rng_get(0));
	bring_up(r);
	assert_int_equal(virtio_rng_read(virtio_rng_get(0), a, sizeof(a), 2000), (int)sizeof(a));
	assert_null(virtio_rng_get(1));
}

/* ---- the device side against a hand-made driver ---- */

static void test_vhost_rng_writes_only_writable_and_reports_exactly(void **state)
{
	struct rig *r = *state;
	struct virtio_device *vdev = duet_loopback_driver(r->lb);
	struct virtqueue *vq;
	struct virtqueue_buf b[10];
	uint8_t *ro, *wo;
	uint32_t len;
	void *cookie;

	/* Drive the driver side by hand: no virtio-rng on it. */
	assert_int_equal(virtio_unregister_driver(&virtio_rng_driver), 0);
	assert_int_equal(virtio_set_status(vdev, VIRTIO_CONFIG_STATUS_ACK |
							 VIRTIO_CONFIG_STATUS_DRIVER |
							 VIRTIO_CONFIG_FEATURES_OK), 0);
	assert_int_equal(virtio_create_virtqueues(vdev, 0, 1, NULL, NULL, NULL), 0);
	vq = vdev->vrings_info[0].vq;
	assert_int_equal(virtio_set_status(vdev, VIRTIO_CONFIG_STATUS_ACK |
							 VIRTIO_CONFIG_STATUS_DRIVER |
							 VIRTIO_CONFIG_FEATURES_OK |
							 VIRTIO_CONFIG_STATUS_DRIVER_OK), 0);
	ro = virtio_alloc_buf(vdev, 16, 16);
	wo = virtio_alloc_buf(vdev, 48, 16);
	memset(ro, 0x11, 16);
	memset(wo, 0, 48);
	b[0] = (struct virtqueue_buf){ ro, 16, false };
	b[1] = (struct virtqueue_buf){ wo, 32, true }; /* 16 spare bytes after */
	assert_int_equal(virtqueue_add_buffer(vq, b, 1, 1, ro), 0);
	assert_int_equal(vhost_register_device(duet_loopback_device(r->lb)), 0);
	/* The probe serves what was already posted. */
	cookie = virtqueue_get_buffer(vq, &len, NULL);
	assert_ptr_equal(cookie, ro);
	assert_int_equal(len, 32);
	assert_true(all_zero(wo + 32, 16)); /* nothing past the buffer */
	assert_false(all_zero(wo, 32));
	for (int i = 0; i < 16; i++)
		assert_int_equal(ro[i], 0x11); /* the readable buffer untouched */

	/* Eight one-byte buffers: each filled, 8 reported. */
	for (int i = 0; i < 10; i++)
		b[i] = (struct virtqueue_buf){ wo + i, 1, true };
	memset(wo, 0, 48);
	assert_int_equal(virtqueue_add_buffer(vq, b, 0, 8, wo), 0);
	virtqueue_kick(vq);
	while (duet_loopback_poll(r->lb) > 0)
		;
	assert_ptr_equal(virtqueue_get_buffer(vq, &len, NULL), wo);
	assert_int_equal(len, 8);
	/* Ten: more than it takes at once; it comes back unfilled, not stuck. */
	memset(wo, 0, 48);
	assert_int_equal(virtqueue_add_buffer(vq, b, 0, 10, wo), 0);
	virtqueue_kick(vq);
	while (duet_loopback_poll(r->lb) > 0)
		;
	assert_ptr_equal(virtqueue_get_buffer(vq, &len, NULL), wo);
	assert_int_equal(len, 0);
	assert_true(all_zero(wo, 10));

	assert_int_equal(vhost_unregister_device(duet_loopback_device(r->lb)), 0);
	virtio_delete_virtqueues(vdev);
	virtio_free_buf(vdev, ro);
	virtio_free_buf(vdev, wo);
	assert_int_equal(virtio_register_driver(&virtio_rng_driver), 0);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_reads_of_every_size),
		T(test_read_without_shared_memory),
		T(test_timeout_then_late_device_leaks_nothing),
		T(test_a_ring_of_timeouts_then_reads_work_again),
		cmocka_unit_test_setup_teardown(test_many_timeouts_on_a_long_ring, setup_big_ring, teardown),
		T(test_device_side_starts_over_after_a_driver_reset),
		T(test_timeout_then_removal_leaks_nothing),
		T(test_short_fills_are_completed),
		T(test_read_of_an_empty_device_times_out),
		T(test_read_of_an_eager_empty_device_times_out),
		T(test_read_of_an_eager_trickle_ends_at_its_timeout),
		T(test_read_ends_when_the_device_breaks_the_ring),
		T(test_read_ends_when_the_device_goes),
		T(test_queued_reads_end_when_the_device_goes),
		T(test_queued_read_keeps_its_timeout),
		T(test_concurrent_readers_take_turns),
		cmocka_unit_test(test_loopback_refuses_bad_configurations),
		T(test_loopback_destroy_unregisters_its_devices),
		T(test_vhost_rng_writes_only_writable_and_reports_exactly),
	};

	return cmocka_run_group_tests_name("rng over loopback", tests, NULL, NULL);
}
