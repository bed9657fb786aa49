/*
 * Allocation failures, each in turn: a whole life of an rpmsg channel, over
 * the loopback and over rptun beside an rng (create, bind both
 * sides, an endpoint each, messages both ways, teardown), is run again and again with the port failing its k-th
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
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <duet/loopback.h>
#include <duet/rng.h>
#include <duet/rpmsg.h>
#include <duet/rptun.h>

#include "../src/port/posix/port_posix.h"

#define MESSAGES 24 /* each way: more than a ring of 8, so buffers come back */

/* Buffers of 256 bytes both ways, header included. */
static const struct rpmsg_virtio_config sizes = { 256, 256 };

/* How far a life got. */
enum stage { NO_TRANSPORT, NO_DRIVER_SIDE, NO_DEVICE_SIDE, NO_ENDPOINTS, DELIVERED };

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

/* Runs every pending notification of a transport, until none is left. */
typedef void (*pump_fn)(void *transport);

static void pump_loopback(void *lb)
{
	while (duet_loopback_poll(lb) > 0)
		;
}

/* Send MESSAGES from `from`, pumping whenever the ring is full; true when
 * every one went. */
static bool send_all(pump_fn pump, void *t, struct rpmsg_endpoint *from)
{
	for (uint32_t seq = 0; seq < MESSAGES; seq++) {
		int ret, tries = 0;

		while ((ret = rpmsg_trysend(from, &seq, sizeof(seq))) == -EAGAIN && tries++ < 100)
			pump(t);
		if (ret != (int)sizeof(seq))
			return false;
	}
	pump(t);
	return true;
}

/* The two endpoints over a bound pair, messages both ways. */
static enum stage talk(pump_fn pump, void *t, struct rpmsg_device *drv, struct rpmsg_device *dev)
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
	pump(t);
	/* The name service binds them: an announcement that could not be
	 * queued was sent at once, and nothing here fills the ring first. */
	assert_true(rpmsg_is_ept_ready(&a));
	assert_true(rpmsg_is_ept_ready(&b));
	assert_true(send_all(pump, t, &a));
	assert_true(send_all(pump, t, &b));
	assert_int_equal(at_b.got, MESSAGES);
	assert_int_equal(at_a.got, MESSAGES);
	rpmsg_destroy_ept(&a);
	rpmsg_destroy_ept(&b);
	pump(t);
	return DELIVERED;
}

/*
 * One life. The driver side registers first, so that the device side,
 * seeing DRIVER_OK, probes at once in this thread: every allocation of a
 * life comes in the same order.
 */
static enum stage loopback_life(void)
{
	const struct duet_loopback_config lc = {
		.device_id = VIRTIO_ID_RPMSG, .features = 1u << VIRTIO_RPMSG_F_NS, .num_vrings = 2,
		.vring_num = 8, .vring_align = 16, .config_len = sizeof(sizes), .config = &sizes,
		.heap_size = 16 * 1024,
	};
	struct duet_loopback *lb = NULL;
	struct rpmsg_device *drv, *dev;
	enum stage reached;
	int ret;

	ret = duet_loopback_create(&lb, &lc);
	if (ret) {
		assert_int_equal(ret, -ENOMEM);
		return NO_TRANSPORT;
	}
	assert_int_equal(virtio_register_device(duet_loopback_driver(lb)), 0);
	assert_int_equal(vhost_register_device(duet_loopback_device(lb)), 0);
	pump_loopback(lb);
	drv = duet_loopback_driver(lb)->priv;
	dev = duet_loopback_device(lb)->priv;
	if (!drv)
		reached = NO_DRIVER_SIDE;
	else if (!dev)
		reached = NO_DEVICE_SIDE;
	else
		reached = talk(pump_loopback, lb, drv, dev);
	/* A side whose probe failed is unbound: its state is gone already. */
	assert_true(drv || !duet_loopback_driver(lb)->bus_driver);
	assert_true(dev || !duet_loopback_device(lb)->bus_driver);
	assert_int_equal(vhost_unregister_device(duet_loopback_device(lb)), 0);
	assert_int_equal(virtio_unregister_device(duet_loopback_driver(lb)), 0);
	duet_loopback_destroy(lb);
	return reached;
}

/* ---- the same over rptun: both sides of one region, in this thread ---- */

#define TABLE_SIZE 4096u
#define ALL_ID 127u /* this test's doorbell bit for "every vring" */

/*
 * rpmsg, and an rng: its probes and removals meet the failures too (it is
 * not read: that needs a second thread). Both driven by the server, which
 * starts first, so that every probe runs in this thread, in one order.
 */
static const struct duet_vdev_desc vdevs[2] = {
	{ .id = VIRTIO_ID_RPMSG, .driver = DUET_SERVER, .features = 1u << VIRTIO_RPMSG_F_NS,
	  .num_vrings = 2, .vring_num = 8, .vring_align = 16, .config_len = sizeof(sizes),
	  .config = &sizes, .carveout_size = 32 * 1024 },
	{ .id = VIRTIO_ID_ENTROPY, .driver = DUET_SERVER, .num_vrings = 1, .vring_num = 8,
	  .vring_align = 16, .carveout_size = 8 * 1024 },
};

/* One side of the region: the notify ids its peer rang, served by
 * pump_rptun. */
struct side {
	struct duet_rptun *rptun;
	uint8_t *region;
	uint32_t rung[4];
	struct side *peer;
};

static void ring(struct duet_rptun *rptun, uint32_t notifyid)
{
	struct side *me = duet_rptun_priv(rptun);
	uint32_t id = notifyid == DUET_RPTUN_NOTIFY_ALL ? ALL_ID : notifyid;

	me->peer->rung[id / 32] |= 1u << (id % 32);
}

static void *table_of(struct duet_rptun *rptun, size_t *size)
{
	*size = TABLE_SIZE;
	return ((struct side *)duet_rptun_priv(rptun))->region;
}

static const struct duet_rptun_ops ops = { .get_resource = table_of, .notify = ring };

/* Serve both sides' doorbells until neither has anything rung. */
static void pump_rptun(void *sides)
{
	struct side *side = sides;
	bool any = true;

	while (any) {
		any = false;
		for (int i = 0; i < 2; i++)
			for (uint32_t w = 0; w < 4; w++) {
				uint32_t bits = side[i].rung[w];

				side[i].rung[w] = 0;
				for (uint32_t b = 0; bits; b++, bits >>= 1) {
					uint32_t id = w * 32 + b;

					if (!(bits & 1u))
						continue;
					duet_rptun_notified(side[i].rptun,
							    id == ALL_ID ? DUET_RPTUN_NOTIFY_ALL : id);
					any = true;
				}
			}
	}
}

/* A side over the region; false when it could not be made (-ENOMEM). */
static bool make_side(struct side *side, enum duet_side which, size_t region_size)
{
	struct duet_rptun_config cfg = {
		.side = which, .region = side->region, .region_size = region_size,
		.ops = &ops, .priv = side,
	};
	int ret = duet_rptun_create(&side->rptun, &cfg, NULL);

	assert_true(ret == 0 || ret == -ENOMEM);
	if (ret)
		side->rptun = NULL;
	return ret == 0;
}

/*
 * One life over rptun: the table, both sides, the driver side started
 * first (so the device side probes at once, in this thread), then the
 * same talk as over the loopback, and both sides destroyed.
 */
static enum stage rptun_life(void)
{
	size_t region_size = TABLE_SIZE + duet_rsc_carveouts_size(vdevs, 2);
	uint8_t *region = aligned_alloc(4096, region_size);
	struct side side[2] = { { .region = region }, { .region = region } };
	struct rpmsg_device *drv = NULL, *dev = NULL;
	enum stage reached = NO_TRANSPORT;
	int ret;

	assert_non_null(region);
	memset(region, 0, region_size);
	assert_true(duet_rsc_build(region, TABLE_SIZE, vdevs, 2, TABLE_SIZE) > 0);
	side[0].peer = &side[1];
	side[1].peer = &side[0];
	if (make_side(&side[0], DUET_SERVER, region_size) &&
	    make_side(&side[1], DUET_PROXY, region_size)) {
		ret = duet_rptun_start(side[0].rptun);
		assert_true(ret == 0 || ret == -ENOMEM);
		ret = ret ? ret : duet_rptun_start(side[1].rptun);
		assert_true(ret == 0 || ret == -ENOMEM);
		pump_rptun(side);
		drv = duet_rptun_vdev(side[0].rptun, 0)->priv;
		dev = duet_rptun_vdev(side[1].rptun, 0)->priv;
		if (ret || !drv)
			reached = NO_DRIVER_SIDE;
		else if (!dev)
			reached = NO_DEVICE_SIDE;
		else
			reached = talk(pump_rptun, side, drv, dev);
	}
	for (int i = 0; i < 2; i++)
		if (side[i].rptun)
			duet_rptun_destroy(side[i].rptun);
	free(region);
	return reached;
}

typedef enum stage (*life_fn)(void);

static int setup(void **state)
{
	(void)state;
	virtio_register_drivers(); /* rpmsg and rng, both roles */
	vhost_register_drivers();
	rpmsg_set_drop_cb(NULL, NULL);
	/* The first lives make the buses' locks, which stay: the lives
	 * counted below allocate the same things in the same order. */
	assert_int_equal(loopback_life(), DELIVERED);
	assert_int_equal(rptun_life(), DELIVERED);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	duet_port_fail_allocs(0, 0);
	virtio_unregister_driver(&virtio_rpmsg_driver);
	vhost_unregister_driver(&vhost_rpmsg_driver);
	virtio_unregister_driver(&virtio_rng_driver);
	vhost_unregister_driver(&vhost_rng_driver);
	return 0;
}

/* The allocations a life makes: the first k that fails no allocation. */
static uint32_t allocations_of(life_fn life)
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

/* Every allocation of a life failing alone, in turn. */
static void each_failing_alone(life_fn life)
{
	uint32_t k, n = allocations_of(life);
	unsigned int reached[DELIVERED + 1] = { 0 };

	print_message("%u allocations a life\n", (unsigned int)n);
	/* Every step of a life allocates: each kind of failure was met. */
	assert_true(n >= 8 && n < 10000);
	for (k = 0; k < n; k++) {
		duet_port_fail_allocs(k, 1);
		reached[life()]++;
		assert_int_equal(duet_port_allocs_left_to_fail(), 0);
	}
	duet_port_fail_allocs(0, 0);
	assert_true(reached[NO_TRANSPORT] > 0);
	assert_true(reached[NO_DRIVER_SIDE] > 0);
	assert_true(reached[NO_DEVICE_SIDE] > 0);
	/* And after all of them, a life goes as the first one did. */
	assert_int_equal(life(), DELIVERED);
}

/* Every allocation from the k-th on failing, for each k. */
static void all_failing_from_some_point(life_fn life)
{
	uint32_t k, n = allocations_of(life);

	for (k = 0; k < n; k++) {
		duet_port_fail_allocs(k, UINT32_MAX);
		(void)life();
	}
	duet_port_fail_allocs(0, 0);
	assert_int_equal(life(), DELIVERED);
}

static void test_loopback_each_allocation_failing_alone(void **state)
{
	(void)state;
	each_failing_alone(loopback_life);
}

static void test_loopback_every_allocation_failing_from_some_point(void **state)
{
	(void)state;
	all_failing_from_some_point(loopback_life);
}

static void test_rptun_each_allocation_failing_alone(void **state)
{
	(void)state;
	each_failing_alone(rptun_life);
}

static void test_rptun_every_allocation_failing_from_some_point(void **state)
{
	(void)state;
	all_failing_from_some_point(rptun_life);
}

static void count_created(struct rpmsg_device *rdev, void *priv)
{
	(void)rdev;
	(*(unsigned int *)priv)++;
}

/*
 * A listener whose registration meets a failed allocation: -ENOMEM, and
 * nothing registered (a device appearing later is not told to it). Once
 * its allocations succeed, it is told of both devices of a life.
 */
static void test_listener_registration_failing(void **state)
{
	(void)state;
	for (uint32_t k = 0; k < 100; k++) {
		unsigned int created = 0;
		bool failed;
		int ret;

		duet_port_fail_allocs(k, 1);
		ret = rpmsg_register_callback(&created, count_created, NULL, NULL, NULL);
		failed = duet_port_allocs_left_to_fail() == 0;
		duet_port_fail_allocs(0, 0);
		assert_int_equal(loopback_life(), DELIVERED);
		if (failed) {
			assert_int_equal(ret, -ENOMEM);
			assert_int_equal(created, 0);
			continue;
		}
		assert_int_equal(ret, 0);
		assert_int_equal(created, 2); /* the driver side and the device side */
		rpmsg_unregister_callback(&created);
		print_message("registering a listener: %u allocations\n", k);
		return;
	}
	fail_msg("registering a listener never stopped allocating");
}

/*
 * Run before anything else in the process: rpmsg's device list has no
 * lock yet, and the first to register a listener creates it. That
 * allocation failing is -ENOMEM too, with nothing registered; the next
 * registration creates the lock and works.
 */
static void test_listener_registration_creating_the_lock_failing(void **state)
{
	unsigned int created = 0;
	int ret;

	(void)state;
	duet_port_fail_allocs(1, 1); /* the listener's allocation, then the lock's */
	ret = rpmsg_register_callback(&created, count_created, NULL, NULL, NULL);
	assert_int_equal(duet_port_allocs_left_to_fail(), 0);
	duet_port_fail_allocs(0, 0);
	assert_int_equal(ret, -ENOMEM);
	assert_int_equal(rpmsg_register_callback(&created, count_created, NULL, NULL, NULL), 0);
	rpmsg_unregister_callback(&created);
	rpmsg_unregister_callback(&created); /* none left: no effect */
}

int main(void)
{
	const struct CMUnitTest fresh[] = {
		cmocka_unit_test(test_listener_registration_creating_the_lock_failing),
	};
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loopback_each_allocation_failing_alone),
		cmocka_unit_test(test_loopback_every_allocation_failing_from_some_point),
		cmocka_unit_test(test_rptun_each_allocation_failing_alone),
		cmocka_unit_test(test_rptun_every_allocation_failing_from_some_point),
		cmocka_unit_test(test_listener_registration_failing),
	};

	/* The fresh process's group first: the other group's setup makes the
	 * locks that stay. */
	return cmocka_run_group_tests_name("a fresh process", fresh, NULL, NULL) +
	       cmocka_run_group_tests_name("allocation failures", tests, setup, teardown);
}
