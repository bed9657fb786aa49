/*
 * Allocation failures, each in turn: a whole life of an rpmsg channel over
 * the loopback (create, bind both sides, an endpoint each, messages both
 * ways, teardown) is run again and again with the port failing its k-th
 * allocation, for every k until a life makes no allocation k, and then
 * with every allocation from the k-th on failing. Each step must meet a
 * failure with a clean error (-ENOMEM, or a device left unbound), a
 * channel that comes up must deliver every message, and teardown must
 * free everything (the AddressSanitizer build's leak check at exit).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <duet/loopback.h>
#include <duet/rpmsg.h>

#include "../src/port/posix/port_posix.h"

#define MESSAGES 24 /* each way: more than a ring of 8, so buffers come back */

/* How far a life got. */
enum stage { NO_LOOPBACK, NO_DRIVER_SIDE, NO_DEVICE_SIDE, NO_ENDPOINTS, DELIVERED };

struct inbox {
	unsigned int got;
	uint32_t next; /* the sequence number expected next */
};

static int count_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	struct inbox *in = priv;
	uint32_t seq;

	(void)ept;
	(void)src;
	assert_int_equal(len, sizeof(seq));
	memcpy(&seq, data, sizeof(seq));
	assert_int_equal(seq, in->next); /* in order, none lost */
	in->next++;
	in->got++;
	return 0;
}

static void poll_all(struct duet_loopback *lb)
{
	while (duet_loopback_poll(lb) > 0)
		;
}

/* Send MESSAGES from `from`, polling whenever the ring is full; true when
 * every one went. */
static bool send_all(struct duet_loopback *lb, struct rpmsg_endpoint *from)
{
	for (uint32_t seq = 0; seq < MESSAGES; seq++) {
		int ret, tries = 0;

		while ((ret = rpmsg_trysend(from, &seq, sizeof(seq))) == -EAGAIN && tries++ < 100)
			poll_all(lb);
		if (ret != (int)sizeof(seq))
			return false;
	}
	poll_all(lb);
	return true;
}

/* The two endpoints over a bound pair, messages both ways. */
static enum stage talk(struct duet_loopback *lb, struct rpmsg_device *drv, struct rpmsg_device *dev)
{
	struct rpmsg_endpoint a, b;
	struct inbox at_a = { 0 }, at_b = { 0 };
	int ra, rb;

	ra = rpmsg_create_ept(&a, drv, "alloc", 3000, RPMSG_ADDR_ANY, count_cb, NULL);
	rb = rpmsg_create_ept(&b, dev, "alloc", 3001, RPMSG_ADDR_ANY, count_cb, NULL);
	assert_true(ra == 0 || ra == -ENOMEM);
	assert_true(rb == 0 || rb == -ENOMEM);
	if (ra || rb) {
		if (!ra)
			rpmsg_destroy_ept(&a);
		if (!rb)
			rpmsg_destroy_ept(&b);
		return NO_ENDPOINTS;
	}
	a.priv = &at_a;
	b.priv = &at_b;
	poll_all(lb);
	/* The name service binds them: an announcement that could not be
	 * queued was sent at once, and nothing here fills the ring first. */
	assert_true(rpmsg_is_ept_ready(&a));
	assert_true(rpmsg_is_ept_ready(&b));
	assert_true(send_all(lb, &a));
	assert_true(send_all(lb, &b));
	assert_int_equal(at_b.got, MESSAGES);
	assert_int_equal(at_a.got, MESSAGES);
	rpmsg_destroy_ept(&a);
	rpmsg_destroy_ept(&b);
	poll_all(lb);
	return DELIVERED;
}

/*
 * One life. The driver side registers first, so that the device side,
 * seeing DRIVER_OK, probes at once in this thread: every allocation of a
 * life comes in the same order.
 */
static enum stage life(void)
{
	static const struct rpmsg_virtio_config cfg = { 256, 256 };
	const struct duet_loopback_config lc = {
		.device_id = VIRTIO_ID_RPMSG, .features = 1u << VIRTIO_RPMSG_F_NS, .num_vrings = 2,
		.vring_num = 8, .vring_align = 16, .config_len = sizeof(cfg), .config = &cfg,
		.heap_size = 16 * 1024,
	};
	struct duet_loopback *lb = NULL;
	struct rpmsg_device *drv, *dev;
	enum stage reached;
	int ret;

	ret = duet_loopback_create(&lb, &lc);
	if (ret) {
		assert_int_equal(ret, -ENOMEM);
		return NO_LOOPBACK;
	}
	assert_int_equal(virtio_register_device(duet_loopback_driver(lb)), 0);
	assert_int_equal(vhost_register_device(duet_loopback_device(lb)), 0);
	poll_all(lb);
	drv = duet_loopback_driver(lb)->priv;
	dev = duet_loopback_device(lb)->priv;
	if (!drv)
		reached = NO_DRIVER_SIDE;
	else if (!dev)
		reached = NO_DEVICE_SIDE;
	else
		reached = talk(lb, drv, dev);
	/* A side whose probe failed is unbound: its state is gone already. */
	assert_true(drv || !duet_loopback_driver(lb)->bus_driver);
	assert_true(dev || !duet_loopback_device(lb)->bus_driver);
	assert_int_equal(vhost_unregister_device(duet_loopback_device(lb)), 0);
	assert_int_equal(virtio_unregister_device(duet_loopback_driver(lb)), 0);
	duet_loopback_destroy(lb);
	return reached;
}

static int setup(void **state)
{
	(void)state;
	assert_int_equal(virtio_register_driver(&virtio_rpmsg_driver), 0);
	assert_int_equal(vhost_register_driver(&vhost_rpmsg_driver), 0);
	rpmsg_set_drop_cb(NULL, NULL);
	/* The first life makes the buses' locks, which stay: the lives
	 * counted below allocate the same things in the same order. */
	assert_int_equal(life(), DELIVERED);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	duet_port_fail_allocs(0, 0);
	virtio_unregister_driver(&virtio_rpmsg_driver);
	vhost_unregister_driver(&vhost_rpmsg_driver);
	return 0;
}

/* The allocations a life makes: the first k that fails no allocation. */
static uint32_t allocations_of_a_life(void)
{
	uint32_t k;

	for (k = 0; k < 10000; k++) {
		duet_port_fail_allocs(k, 1);
		(void)life();
		if (duet_port_allocs_left_to_fail())
			break;
	}
	duet_port_fail_allocs(0, 0);
	return k;
}

static void test_each_allocation_failing_alone(void **state)
{
	uint32_t k, n = allocations_of_a_life();
	unsigned int reached[DELIVERED + 1] = { 0 };

	(void)state;
	/* Every step of a life allocates: each kind of failure was met. */
	assert_true(n >= 8 && n < 10000);
	for (k = 0; k < n; k++) {
		duet_port_fail_allocs(k, 1);
		reached[life()]++;
		assert_int_equal(duet_port_allocs_left_to_fail(), 0);
	}
	duet_port_fail_allocs(0, 0);
	assert_true(reached[NO_LOOPBACK] > 0);
	assert_true(reached[NO_DRIVER_SIDE] > 0);
	assert_true(reached[NO_DEVICE_SIDE] > 0);
	/* And after all of them, a life goes as the first one did. */
	assert_int_equal(life(), DELIVERED);
}

static void test_every_allocation_failing_from_some_point(void **state)
{
	uint32_t k, n = allocations_of_a_life();

	(void)state;
	for (k = 0; k < n; k++) {
		duet_port_fail_allocs(k, UINT32_MAX);
		(void)life();
	}
	duet_port_fail_allocs(0, 0);
	assert_int_equal(life(), DELIVERED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_allocation_failing_alone),
		cmocka_unit_test(test_every_allocation_failing_from_some_point),
	};

	return cmocka_run_group_tests_name("allocation failures", tests, setup, teardown);
}
