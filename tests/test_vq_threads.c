/*
 * Two threads on one ring, as two cores would be: the driver thread adds
 * buffers carrying a sequence number and gets them back; the device thread
 * takes, checks, answers and consumes. Both poll. Run under
 * ThreadSanitizer this checks the ring's acquire/release ordering: every
 * data byte written before an index store is seen after the index load.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vq_harness.h"

#define MSGS 200000u
#define SLOTSZ 64

struct ctx {
	struct harness h;
	unsigned int device_seen;
	int device_error;
};

static void *device_thread(void *arg)
{
	struct ctx *c = arg;
	uint32_t expect = 0;

	while (expect < MSGS) {
		struct virtqueue_buf vb[2];
		size_t cnt;
		uint32_t v;
		int head = vhost_get_vq_buffers(c->h.dev, vb, 2, &cnt);

		if (head == -ENOMEM) {
			sched_yield(); /* on one CPU, let the driver fill the ring */
			continue;
		}
		if (head < 0 || cnt != 2 || vb[0].writable || !vb[1].writable) {
			c->device_error = head < 0 ? head : -EPROTO;
			return NULL;
		}
		memcpy(&v, vb[0].buf, sizeof(v));
		if (v != expect) { /* in order, with the bytes the driver wrote */
			c->device_error = -EILSEQ;
			return NULL;
		}
		v = ~v;
		memcpy(vb[1].buf, &v, sizeof(v));
		if (virtqueue_add_consumed_buffer(c->h.dev, (uint16_t)head, sizeof(v))) {
			c->device_error = -EIO;
			return NULL;
		}
		expect++;
	}
	c->device_seen = expect;
	return NULL;
}

static void test_two_threads_stream(void **state)
{
	static struct ctx c;
	uint8_t *slot[32];
	uint32_t sent = 0, got = 0;
	pthread_t t;
	int i;

	(void)state;
	harness_init(&c.h, 32, 1ull << VIRTIO_RING_F_EVENT_IDX, 0, 32 * 2 * SLOTSZ, 3);
	for (i = 0; i < 32; i++)
		slot[i] = c.h.bufs + (size_t)i * 2 * SLOTSZ;
	assert_int_equal(pthread_create(&t, NULL, device_thread, &c), 0);
	while (got < MSGS) {
		uint32_t len, v;
		uint8_t *p;

		while (sent < MSGS && !virtqueue_full(c.h.drv)) {
			struct virtqueue_buf b[2];

			p = slot[sent % 32];
			memcpy(p, &sent, sizeof(sent));
			b[0] = (struct virtqueue_buf){ p, sizeof(sent), false };
			b[1] = (struct virtqueue_buf){ p + SLOTSZ, SLOTSZ, true };
			assert_int_equal(virtqueue_add_buffer(c.h.drv, b, 1, 1, p), 0);
			sent++;
		}
		p = virtqueue_get_buffer(c.h.drv, &len, NULL);
		if (!p) {
			assert_false(virtqueue_is_broken(c.h.drv));
			sched_yield();
			continue;
		}
		assert_int_equal(len, sizeof(v));
		memcpy(&v, p + SLOTSZ, sizeof(v));
		assert_int_equal(~v, got); /* answers come back in order */
		got++;
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(c.device_error, 0);
	assert_int_equal(c.device_seen, MSGS);
	harness_fini(&c.h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_threads_stream),
	};

	return cmocka_run_group_tests_name("virtqueue threads", tests, NULL, NULL);
}
