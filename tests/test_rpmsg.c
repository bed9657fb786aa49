/*
 * rpmsg over the loopback: virtio-rpmsg and vhost-rpmsg in one process,
 * a poll thread delivering notifications. Name service both ways, data
 * both ways, buffer exhaustion (trysend, timeout, recovery), zero copy
 * (and a foreign pointer refused), held receive buffers, hostile messages
 * dropped and counted with the channel going on, a late listener, unbind,
 * endpoint churn, and ping.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <duet/loopback.h>
#include <duet/port.h>
#include <duet/rpmsg.h>
#include <duet/rpmsg_ping.h>

#include "../src/port/posix/port_posix.h"
#include "timed_send.h"

#define RING 8

static struct duet_loopback *lb;
static pthread_t poller;
static _Atomic bool stop, polling;
static struct rpmsg_device *drv_dev, *dev_dev; /* driver side, device side */

static void *poll_loop(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		if (duet_loopback_poll(lb) == 0) {
			struct timespec ts = { 0, 20000 };

			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

static void start_polling(void)
{
	atomic_store(&stop, false);
	assert_int_equal(pthread_create(&poller, NULL, poll_loop, NULL), 0);
	atomic_store(&polling, true);
}

static void stop_polling(void)
{
	if (!atomic_load(&polling))
		return;
	atomic_store(&stop, true);
	pthread_join(poller, NULL);
	atomic_store(&polling, false);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static bool wait_until(bool (*cond)(void *), void *arg, unsigned int ms)
{
	uint64_t end = duet_clock_ms() + ms;

	while (!cond(arg)) {
		if (duet_clock_ms() >= end)
			return false;
		sleep_ms(1);
	}
	return true;
}

static bool ept_ready(void *arg)
{
	return rpmsg_is_ept_ready(arg);
}

/* Wait up to 5 s for *count to reach n (the callbacks run on the poll
 * thread); the caller asserts the count it expects. */
static void wait_count(_Atomic int *count, int n)
{
	for (int i = 0; i < 2500 && atomic_load(count) < n; i++)
		sleep_ms(2);
}

/* The features the rig's device offers: the name service, unless a
 * setup says otherwise. */
static uint32_t rig_features = 1u << VIRTIO_RPMSG_F_NS;

/* Both sides over a loopback of `num`-entry rings, served by a thread. */
static int setup_ring(uint16_t num)
{
	static const struct rpmsg_virtio_config cfg = { 512, 256 }; /* sizes differ per way */
	struct duet_loopback_config lc = {
		.device_id = VIRTIO_ID_RPMSG, .features = rig_features, .num_vrings = 2,
		.vring_num = num, .vring_align = 16, .config_len = sizeof(cfg), .config = &cfg,
		.heap_size = num * 1024u + 64 * 1024,
	};

	assert_int_equal(duet_loopback_create(&lb, &lc), 0);
	assert_int_equal(rpmsg_ping_register(), 0);
	assert_int_equal(virtio_register_driver(&virtio_rpmsg_driver), 0);
	assert_int_equal(vhost_register_driver(&vhost_rpmsg_driver), 0);
	vhost_set_probe_period(5);
	start_polling();
	assert_int_equal(virtio_register_device(duet_loopback_driver(lb)), 0);
	assert_int_equal(vhost_register_device(duet_loopback_device(lb)), 0);
	for (int i = 0; i < 1000 && !rpmsg_get_device(1); i++)
		sleep_ms(2);
	drv_dev = duet_loopback_driver(lb)->priv;
	dev_dev = duet_loopback_device(lb)->priv;
	assert_non_null(drv_dev);
	assert_non_null(dev_dev);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	return setup_ring(RING);
}

static int setup_no_ns(void **state)
{
	(void)state;
	rig_features = 0;
	setup_ring(RING);
	rig_features = 1u << VIRTIO_RPMSG_F_NS;
	return 0;
}

static int setup_64(void **state)
{
	(void)state;
	return setup_ring(64);
}

static int teardown(void **state)
{
	(void)state;
	stop_polling();
	virtio_unregister_device(duet_loopback_driver(lb));
	vhost_unregister_device(duet_loopback_device(lb));
	assert_null(rpmsg_get_device(0));
	virtio_unregister_driver(&virtio_rpmsg_driver);
	vhost_unregister_driver(&vhost_rpmsg_driver);
	duet_loopback_destroy(lb);
	return 0;
}

/* ---- a recording endpoint ---- */

struct box {
	struct rpmsg_endpoint ept;
	_Atomic int count;
	char last[600];
	_Atomic size_t last_len;
	_Atomic uint32_t last_src;
	bool hold;
	_Atomic(void *) held;
	_Atomic int unbound;
};

static int box_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	struct box *b = priv;

	memcpy(b->last, data, len < sizeof(b->last) ? len : sizeof(b->last));
	atomic_store(&b->last_len, len);
	atomic_store(&b->last_src, src);
	if (b->hold) {
		rpmsg_hold_rx_buffer(ept, data);
		atomic_store(&b->held, data);
	}
	atomic_fetch_add(&b->count, 1);
	return 0;
}

static void box_unbind(struct rpmsg_endpoint *ept)
{
	struct box *b = ept->priv;

	atomic_fetch_add(&b->unbound, 1);
}

static void box_open(struct box *b, struct rpmsg_device *rdev, const char *name)
{
	memset(b, 0, sizeof(*b));
	b->ept.priv = b; /* before create: the callback may run at once */
	assert_int_equal(rpmsg_create_ept(&b->ept, rdev, name, RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
					  box_cb, box_unbind), 0);
}

static bool got(void *arg)
{
	struct box *b = arg;

	return atomic_load(&b->count) > 0;
}

/* An endpoint of `name` on each side, bound to each other. */
static void pair_open(struct box *drv_box, struct box *dev_box, const char *name)
{
	box_open(drv_box, drv_dev, name);
	box_open(dev_box, dev_dev, name);
	assert_true(wait_until(ept_ready, &drv_box->ept, 2000));
	assert_true(wait_until(ept_ready, &dev_box->ept, 2000));
}

/*
 * A device without the name service (VIRTIO_RPMSG_F_NS not offered):
 * endpoints with both addresses given talk at once; nothing is announced,
 * so one waiting for a name stays unbound; a message the peer sends to the
 * name-service address is ignored, and the channel goes on.
 */
static void test_without_the_name_service(void **state)
{
	struct rpmsg_stats st0, st;
	struct box a, b, lonely_a, lonely_b;

	(void)state;
	rpmsg_get_stats(drv_dev, &st0);
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	a.ept.priv = &a;
	b.ept.priv = &b;
	assert_int_equal(rpmsg_create_ept(&a.ept, drv_dev, "fixed", 0x500, 0x501, box_cb, NULL), 0);
	assert_int_equal(rpmsg_create_ept(&b.ept, dev_dev, "fixed", 0x501, 0x500, box_cb, NULL), 0);
	assert_true(rpmsg_is_ept_ready(&a.ept));
	assert_true(rpmsg_is_ept_ready(&b.ept));
	assert_int_equal(rpmsg_send(&a.ept, "there", 6), 6);
	wait_count(&b.count, 1);
	assert_string_equal(b.last, "there");
	assert_int_equal(b.last_src, 0x500);
	assert_int_equal(rpmsg_send(&b.ept, "back", 5), 5);
	wait_count(&a.count, 1);
	assert_string_equal(a.last, "back");
	/* Nothing announced: a name alone binds nothing. */
	box_open(&lonely_a, drv_dev, "lonely");
	box_open(&lonely_b, dev_dev, "lonely");
	sleep_ms(50);
	assert_false(rpmsg_is_ept_ready(&lonely_a.ept));
	assert_false(rpmsg_is_ept_ready(&lonely_b.ept));
	/* An announcement anyway, from a peer that ignores the feature. */
	{
		struct { char name[32]; uint32_t addr, flags; } m = { "lonely", 0x501, 0 };

		assert_int_equal(rpmsg_sendto(&b.ept, &m, sizeof(m), RPMSG_NS_EPT_ADDR),
				 (int)sizeof(m));
	}
	assert_int_equal(rpmsg_send(&b.ept, "after", 6), 6);
	wait_count(&a.count, 2);
	assert_string_equal(a.last, "after");
	assert_false(rpmsg_is_ept_ready(&lonely_a.ept));
	rpmsg_get_stats(drv_dev, &st);
	assert_int_equal(st.ns_deferred, st0.ns_deferred);
	rpmsg_destroy_ept(&lonely_a.ept);
	rpmsg_destroy_ept(&lonely_b.ept);
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

static void test_name_service_binds_both_ways_and_data_flows(void **state)
{
	struct box a, b;
	char big[600];

	(void)state;
	pair_open(&a, &b, "echo-svc");
	assert_int_equal(a.ept.dest_addr, b.ept.addr);
	assert_int_equal(b.ept.dest_addr, a.ept.addr);
	assert_true(a.ept.addr >= RPMSG_RESERVED_ADDRESSES);

	/* Buffer sizes per direction come from the config space. */
	assert_int_equal(rpmsg_get_tx_buffer_size(&a.ept), 512 - 16);
	assert_int_equal(rpmsg_get_rx_buffer_size(&a.ept), 256 - 16);
	assert_int_equal(rpmsg_get_tx_buffer_size(&b.ept), 256 - 16);
	assert_int_equal(rpmsg_get_rx_buffer_size(&b.ept), 512 - 16);

	assert_int_equal(rpmsg_send(&a.ept, "hello device", 13), 13);
	assert_true(wait_until(got, &b, 2000));
	assert_string_equal(b.last, "hello device");
	assert_int_equal(b.last_src, a.ept.addr);
	assert_int_equal(rpmsg_send(&b.ept, "hello driver", 13), 13);
	assert_true(wait_until(got, &a, 2000));
	assert_string_equal(a.last, "hello driver");

	/* An endpoint already made on the device is refused a second create
	 * there (it rewrote the endpoint while linked: the device's list and
	 * lookup chain were corrupt); it keeps working. */
	{
		uint32_t addr = a.ept.addr;

		assert_int_equal(rpmsg_create_ept(&a.ept, drv_dev, "again", RPMSG_ADDR_ANY,
						  RPMSG_ADDR_ANY, box_cb, NULL), -EBUSY);
		assert_int_equal(a.ept.addr, addr);
		assert_string_equal(a.ept.name, "echo-svc");
		atomic_store(&b.count, 0);
		assert_int_equal(rpmsg_send(&a.ept, "still", 6), 6);
		assert_true(wait_until(got, &b, 2000));
		assert_string_equal(b.last, "still");
	}

	/* The largest payload each way, byte for byte; one more is refused. */
	for (int i = 0; i < (int)sizeof(big); i++)
		big[i] = (char)(i * 13);
	atomic_store(&b.count, 0);
	assert_int_equal(rpmsg_send(&a.ept, big, 496), 496);
	assert_true(wait_until(got, &b, 2000));
	assert_int_equal(b.last_len, 496);
	assert_memory_equal(b.last, big, 496);
	assert_int_equal(rpmsg_send(&a.ept, big, 497), -EMSGSIZE);
	assert_int_equal(rpmsg_send(&b.ept, big, 241), -EMSGSIZE);
	assert_int_equal(rpmsg_send(&a.ept, NULL, 4), -EINVAL);

	/* Destroying one side unbinds the other (NS DESTROY). */
	rpmsg_destroy_ept(&b.ept);
	for (int i = 0; i < 1000 && !atomic_load(&a.unbound); i++)
		sleep_ms(2);
	assert_int_equal(a.unbound, 1);
	assert_false(rpmsg_is_ept_ready(&a.ept));
	assert_int_equal(rpmsg_send(&a.ept, "x", 1), -ENOTCONN);
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&a.ept); /* twice: harmless */
}

struct racing_sender {
	struct rpmsg_endpoint *ept;
	_Atomic bool stop;
	_Atomic int sent, refused, full, other;
};

/* Sends until told to stop, whatever the binding is at the moment. */
static void *send_while_rebound(void *arg)
{
	struct racing_sender *r = arg;

	while (!atomic_load(&r->stop)) {
		int ret = rpmsg_trysend(r->ept, "race", 5);

		atomic_fetch_add(ret == 5 ? &r->sent : ret == -ENOTCONN ? &r->refused :
				 ret == -EAGAIN ? &r->full : &r->other, 1);
		if (ret != 5)
			sched_yield();
	}
	return NULL;
}

/* The peer's endpoint goes and comes back (NS DESTROY, then CREATE) while
 * this side sends: the name service moves the sender's peer address on
 * the poll thread as the send reads it. Each send either goes (to the old
 * address or the new), is refused as unbound (-ENOTCONN) or finds no free
 * buffer (-EAGAIN); nothing else,
 * and, under ThreadSanitizer, no data race (there was one: the sends read
 * the address without the lock or an atomic load; the scribble soak of
 * session 47 reported it). */
static void test_send_races_the_peers_unbind(void **state)
{
	struct racing_sender r = { 0 };
	struct box a, b;
	pthread_t t;

	(void)state;
	pair_open(&a, &b, "racy");
	r.ept = &a.ept;
	assert_int_equal(pthread_create(&t, NULL, send_while_rebound, &r), 0);
	for (int round = 1; round <= 20; round++) {
		rpmsg_destroy_ept(&b.ept);
		for (int i = 0; i < 1000 && atomic_load(&a.unbound) < round; i++)
			sleep_ms(1);
		assert_int_equal(atomic_load(&a.unbound), round);
		box_open(&b, dev_dev, "racy");
		assert_true(wait_until(ept_ready, &a.ept, 2000));
	}
	atomic_store(&r.stop, true);
	pthread_join(t, NULL);
	assert_true(atomic_load(&r.sent) > 0);
	assert_int_equal(atomic_load(&r.other), 0);
	rpmsg_destroy_ept(&b.ept);
	rpmsg_destroy_ept(&a.ept);
}

/* Messages of one endpoint sent one after another: each send buffer keeps
 * its descriptor and each descriptor its avail entry, ring after ring, so
 * the driver stores neither again (a store would take the line from the
 * peer's cache, one more miss per message). */
static void test_send_buffers_keep_their_descriptors(void **state)
{
	struct virtqueue *tx = duet_loopback_driver(lb)->vrings_info[1].vq;
	uint64_t addr[RING];
	uint16_t entry[RING];
	struct box a, b;

	(void)state;
	pair_open(&a, &b, "steady");
	for (int n = 1; n <= 4 * RING; n++) {
		assert_int_equal(rpmsg_send(&a.ept, "tick", 5), 5);
		wait_count(&b.count, n);
		assert_int_equal(atomic_load(&b.count), n);
		for (int i = 0; n > 2 * RING && i < RING; i++) {
			assert_int_equal(tx->desc[i].addr, addr[i]);
			assert_int_equal(tx->avail->ring[i], entry[i]);
		}
		for (int i = 0; n == 2 * RING && i < RING; i++) {
			addr[i] = tx->desc[i].addr;
			entry[i] = tx->avail->ring[i];
		}
	}
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/* Avail index the driver side has published on its receive ring, read as
 * the device reads it (the poller thread drives the queue meanwhile). */
static uint16_t rx_avail_idx(void)
{
	struct virtqueue *vq = duet_loopback_driver(lb)->vrings_info[0].vq;

	return atomic_load_explicit((_Atomic uint16_t *)&vq->avail->idx, memory_order_acquire);
}

/* Used index the device side has published on the driver's send ring. */
static uint16_t tx_used_idx(void)
{
	struct virtqueue *vq = duet_loopback_driver(lb)->vrings_info[1].vq;

	return atomic_load_explicit((_Atomic uint16_t *)&vq->used->idx, memory_order_acquire);
}

/* Send n messages from `from`, one at a time, each received by `to`
 * (whose count starts at 0); count in steps of 8 how an index the receiver
 * publishes moves. Returns the number of moves, or -1 for another step. */
static int count_batches(struct box *from, struct box *to, int n, uint16_t (*idx)(void))
{
	uint16_t prev = idx();
	int moves = 0;

	for (int k = 1; k <= n; k++) {
		uint16_t now;

		assert_int_equal(rpmsg_send(&from->ept, "up", 3), 3);
		wait_count(&to->count, k);
		assert_int_equal(atomic_load(&to->count), k);
		sleep_ms(5); /* the pass gives the buffer back after the callback */
		now = idx();
		if (now != prev && (uint16_t)(now - prev) != 8)
			return -1;
		moves += now != prev;
		prev = now;
	}
	return moves;
}

/* With 64-entry rings each side gives receive buffers back eight at a time
 * (an eighth of the ring): one index store and one kick for eight
 * messages, not one each. */
/*
 * The rule for prefetching while polling (duet_rvdev_poll, docs/link.md),
 * driven look by look from one thread: a look that finds nothing prefetches
 * after this side published (it answered, or gave buffers back) and after
 * RVDEV_QUIET_LOOKS empty looks, and not otherwise: not during a dense
 * one-way stream, whose next buffer the sender is writing, nor once the
 * peer has been idle for RVDEV_IDLE_LOOKS. Spells of
 * prefetching looks are counted (duet_loopback_prefetches). Ring of 64:
 * the receiver gives buffers back 8 at a time.
 */
static void test_polling_prefetches_by_the_rule(void **state)
{
	const unsigned int dev = VIRTIO_DEV_DEVICE;
	unsigned int s0, s1, s2;
	struct box a, b;

	(void)state;
	pair_open(&a, &b, "rule");
	stop_polling();
	while (duet_loopback_poll(lb) > 0)
		;
	/* A dense stream: each message taken by a look, one empty look after
	 * it. Spells start only after the batched returns: 640 / 8. (A build
	 * that prefetched after every look that took work: 640; one without
	 * the answer rule: 0.) */
	s0 = duet_loopback_prefetches(lb, dev);
	for (int i = 0; i < 640; i++) {
		assert_int_equal(rpmsg_trysend(&a.ept, "d", 2), 2);
		assert_int_equal(duet_loopback_poll_rings(lb, dev), 1);
		assert_int_equal(duet_loopback_poll_rings(lb, dev), 0);
	}
	s1 = duet_loopback_prefetches(lb, dev);
	assert_int_equal(atomic_load(&b.count), 640);
	assert_in_range(s1 - s0, 78, 82);
	/* Sparse messages, 300 empty looks after each: the quiet before each
	 * next one starts a spell, one per message. (Without the quiet rule:
	 * 2, at the batched returns.) */
	for (int i = 0; i < 16; i++) {
		assert_int_equal(rpmsg_trysend(&a.ept, "s", 2), 2);
		assert_int_equal(duet_loopback_poll_rings(lb, dev), 1);
		for (int k = 0; k < 300; k++)
			assert_int_equal(duet_loopback_poll_rings(lb, dev), 0);
	}
	s2 = duet_loopback_prefetches(lb, dev);
	assert_int_equal(s2 - s1, 16);
	/* An idle peer: the looks prefetch until RVDEV_IDLE_LOOKS (65,536)
	 * found nothing, and no more (a device nobody uses would otherwise
	 * cost every look a prefetch, forever); the next message starts it
	 * over. (A build without the idle stop still prefetches at 70,000.) */
	assert_true(duet_loopback_prefetching(lb, dev));
	for (int k = 300; k < 65530; k++)
		assert_int_equal(duet_loopback_poll_rings(lb, dev), 0);
	assert_true(duet_loopback_prefetching(lb, dev));
	for (int k = 65530; k < 70000; k++)
		assert_int_equal(duet_loopback_poll_rings(lb, dev), 0);
	assert_false(duet_loopback_prefetching(lb, dev));
	assert_int_equal(duet_loopback_prefetches(lb, dev), s2);
	assert_int_equal(rpmsg_trysend(&a.ept, "s", 2), 2);
	assert_int_equal(duet_loopback_poll_rings(lb, dev), 1);
	assert_false(duet_loopback_prefetching(lb, dev));
	for (int k = 0; k < 300; k++)
		assert_int_equal(duet_loopback_poll_rings(lb, dev), 0);
	assert_true(duet_loopback_prefetching(lb, dev));
	assert_int_equal(duet_loopback_prefetches(lb, dev), s2 + 1);
	assert_false(duet_loopback_prefetching(lb, 7));
	assert_int_equal(duet_loopback_poll_rings(lb, 7), -EINVAL);
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

static void test_receive_buffers_go_back_in_batches(void **state)
{
	struct box a, b;

	(void)state;
	pair_open(&a, &b, "batch");
	/* The driver side re-posts (announcements before may have left part
	 * of a batch, so 24 messages make three batches)... */
	assert_int_equal(count_batches(&b, &a, 24, rx_avail_idx), 3);
	/* ... and the device side returns the driver's send buffers. */
	assert_int_equal(count_batches(&a, &b, 24, tx_used_idx), 3);
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/* A receiver that, at its 17th message (past two batches of eight given
 * back), waits up to two seconds for a blocked sender's send to return. */
struct early_box {
	struct rpmsg_endpoint ept;
	_Atomic int count;
	_Atomic bool sent;       /* the blocked send returned */
	_Atomic bool sent_early; /* ... while the receive pass still ran */
};

static int early_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	struct early_box *b = priv;

	(void)ept, (void)data, (void)len, (void)src;
	if (atomic_fetch_add(&b->count, 1) + 1 == 17) {
		for (int i = 0; i < 2000 && !atomic_load(&b->sent); i++)
			sleep_ms(1);
		atomic_store(&b->sent_early, atomic_load(&b->sent));
	}
	return 0;
}

struct blocked_send {
	struct rpmsg_endpoint *ept;
	struct early_box *to;
	int ret;
};

static void *send_blocked(void *arg)
{
	struct blocked_send *bs = arg;

	bs->ret = rpmsg_send(bs->ept, "late", 5);
	atomic_store(&bs->to->sent, true);
	return NULL;
}

static _Atomic bool side_stop;

/* One side of the loopback served alone (arg: its role), on its own
 * thread, until side_stop. */
static void *poll_side(void *arg)
{
	unsigned int role = (unsigned int)(uintptr_t)arg;

	while (!atomic_load(&side_stop))
		if (duet_loopback_poll_side(lb, role) == 0)
			sched_yield();
	return NULL;
}

/*
 * A sender asleep for a send buffer is woken as soon as the receiving
 * side gives back a batch, not once its whole pass is done: each side
 * served by its own thread, the receiver stalls at its 17th message of a
 * full ring until the blocked send returns, which it does.
 */
static void test_sleeping_sender_wakes_within_a_receive_pass(void **state)
{
	struct early_box b = { 0 };
	struct rpmsg_stats st0, st;
	struct blocked_send bs;
	pthread_t sender, side[2];
	struct box a;
	int sent = 0;

	(void)state;
	box_open(&a, drv_dev, "early");
	b.ept.priv = &b;
	assert_int_equal(rpmsg_create_ept(&b.ept, dev_dev, "early", RPMSG_ADDR_ANY,
					  RPMSG_ADDR_ANY, early_cb, NULL), 0);
	assert_true(wait_until(ept_ready, &a.ept, 2000));
	assert_true(wait_until(ept_ready, &b.ept, 2000));
	stop_polling();
	/* A full ring: the announcements' buffers may still be out. */
	while (rpmsg_trysend(&a.ept, "f", 1) == 1)
		sent++;
	assert_true(sent >= 48);
	bs = (struct blocked_send){ .ept = &a.ept, .to = &b };
	rpmsg_get_stats(drv_dev, &st0);
	assert_int_equal(pthread_create(&sender, NULL, send_blocked, &bs), 0);
	/* Only once it waits: a send that found a buffer already given back
	 * would pass whenever the receiver announced it. */
	for (int i = 0; i < 2000; i++, sleep_ms(1)) {
		rpmsg_get_stats(drv_dev, &st);
		if (st.tx_waits > st0.tx_waits)
			break;
	}
	assert_true(st.tx_waits > st0.tx_waits);
	atomic_store(&side_stop, false);
	for (uintptr_t i = 0; i < 2; i++) /* the driver's side, the device's */
		assert_int_equal(pthread_create(&side[i], NULL, poll_side, (void *)i), 0);
	wait_count(&b.count, sent + 1);
	assert_int_equal(pthread_join(sender, NULL), 0);
	atomic_store(&side_stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(side[i], NULL);
	assert_int_equal(bs.ret, 5);
	assert_int_equal(atomic_load(&b.count), sent + 1);
	assert_true(atomic_load(&b.sent_early));
	start_polling();
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/* The device side leaving alone (its vhost device unregistered while the
 * driver side stays) returns the send buffers it was batching: the
 * driver's used ring accounts for every message. */
static void test_device_leaving_returns_its_batch(void **state)
{
	struct box a, b;
	uint16_t used0;

	(void)state;
	pair_open(&a, &b, "leave");
	used0 = tx_used_idx();
	for (int n = 1; n <= 3; n++) {
		assert_int_equal(rpmsg_send(&a.ept, "bye", 4), 4);
		wait_count(&b.count, n);
		assert_int_equal(atomic_load(&b.count), n);
	}
	sleep_ms(5);
	assert_true((uint16_t)(tx_used_idx() - used0) < 3); /* part of a batch */
	stop_polling();
	rpmsg_destroy_ept(&b.ept);
	assert_int_equal(vhost_unregister_device(duet_loopback_device(lb)), 0);
	assert_true((uint16_t)(tx_used_idx() - used0) >= 3);
	rpmsg_destroy_ept(&a.ept);
}

/*
 * Batching never starves the sender: the receiving side's user holds all
 * but four of the receive buffers, those four come back one by one (more
 * than half the ring is out), and a stream of many rings' worth arrives
 * whole and in order; once the held ones are released, batches resume and
 * another stream arrives whole. A starved send would time out.
 */
static void stream_past_held_buffers(struct rpmsg_device *from, struct rpmsg_device *to)
{
	void *held[60];
	struct box s, r;

	box_open(&s, from, "starve");
	box_open(&r, to, "starve");
	assert_true(wait_until(ept_ready, &s.ept, 2000) && wait_until(ept_ready, &r.ept, 2000));
	rpmsg_set_send_timeout(from, 1000); /* a starved send fails fast */
	r.hold = true;
	for (int n = 1; n <= 60; n++) {
		assert_int_equal(rpmsg_send(&s.ept, "hold", 5), 5);
		wait_count(&r.count, n);
		assert_int_equal(atomic_load(&r.count), n);
		held[n - 1] = atomic_load(&r.held);
	}
	r.hold = false;
	for (int n = 0; n < 500; n++) {
		char m[16];

		snprintf(m, sizeof(m), "s%d", n);
		assert_int_equal(rpmsg_send(&s.ept, m, (int)strlen(m) + 1), (int)strlen(m) + 1);
	}
	wait_count(&r.count, 560);
	assert_int_equal(atomic_load(&r.count), 560);
	assert_string_equal(r.last, "s499");
	for (int i = 0; i < 60; i++)
		rpmsg_release_rx_buffer(&r.ept, held[i]);
	for (int n = 0; n < 500; n++)
		assert_int_equal(rpmsg_send(&s.ept, "again", 6), 6);
	wait_count(&r.count, 1060);
	assert_int_equal(atomic_load(&r.count), 1060);
	rpmsg_destroy_ept(&s.ept);
	rpmsg_destroy_ept(&r.ept);
}

/* The driver side holds its receive buffers; the device streams. */
static void test_receive_batches_never_starve_the_device(void **state)
{
	(void)state;
	stream_past_held_buffers(dev_dev, drv_dev);
}

/* The device side holds the driver's send buffers; the driver streams. */
static void test_receive_batches_never_starve_the_driver(void **state)
{
	(void)state;
	stream_past_held_buffers(drv_dev, dev_dev);
}

/* Two endpoints of one name wait for the peer: its announcement binds the
 * one created first, the other keeps waiting; messages reach each by its
 * own address. */
static void test_announcement_binds_the_oldest_of_a_name(void **state)
{
	struct box a1, a2, b;

	(void)state;
	box_open(&a1, drv_dev, "twin");
	box_open(&a2, drv_dev, "twin");
	box_open(&b, dev_dev, "twin");
	assert_true(wait_until(ept_ready, &a1.ept, 2000));
	assert_true(wait_until(ept_ready, &b.ept, 2000));
	sleep_ms(50);
	assert_false(rpmsg_is_ept_ready(&a2.ept));
	assert_int_equal(rpmsg_send(&a1.ept, "one", 4), 4);
	assert_true(wait_until(got, &b, 2000));
	assert_int_equal(rpmsg_sendto(&b.ept, "two", 4, a2.ept.addr), 4);
	assert_true(wait_until(got, &a2, 2000));
	assert_string_equal(a2.last, "two");
	assert_int_equal(atomic_load(&a1.count), 0);
	rpmsg_destroy_ept(&a1.ept);
	rpmsg_destroy_ept(&a2.ept);
	rpmsg_destroy_ept(&b.ept);
}

/* With nobody serving the rings, send from `from` until the ring is full
 * (exactly RING messages; `more`: with rpmsg_trysend_more, so a full ring
 * must notify by itself); then serve again: `to`, which had `before`,
 * gets every one. */
static void fill_ring_then_serve(struct box *from, struct box *to, bool more, int before)
{
	int sent = 0, ret;

	stop_polling();
	while ((ret = more ? rpmsg_trysend_more(&from->ept, "f", 1)
			   : rpmsg_trysend(&from->ept, "f", 1)) == 1)
		sent++;
	assert_int_equal(ret, -EAGAIN);
	assert_int_equal(sent, RING);
	start_polling();
	wait_count(&to->count, before + RING);
	assert_int_equal(atomic_load(&to->count), before + RING);
}

/* A send buffer lent out (zero copy) and given back unsent after the free
 * queue was refilled and compacted (dump takes used buffers back first)
 * goes back to the queue: every buffer is still there, once. */
static void test_lent_send_buffer_returns_after_a_refill(void **state)
{
	char dump[2048];
	struct box a, b;
	uint32_t len;
	void *lent;

	(void)state;
	pair_open(&a, &b, "lend");
	lent = rpmsg_get_tx_payload_buffer(&a.ept, &len, 0);
	assert_non_null(lent);
	for (int n = 1; n <= 3; n++)
		assert_int_equal(rpmsg_send(&a.ept, "m", 1), 1);
	wait_count(&b.count, 3);
	assert_int_equal(atomic_load(&b.count), 3);
	sleep_ms(10); /* the device side returns the three */
	assert_true(rpmsg_dump(drv_dev, dump, sizeof(dump)) > 0);
	assert_int_equal(rpmsg_release_tx_buffer(&a.ept, lent), 0);
	fill_ring_then_serve(&a, &b, false, 3);
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/*
 * A send ring the peer broke (a used index past every buffer out): a send
 * that finds no free buffer returns -ENODEV at once, instead of waiting
 * out its timeout for buffers that will never come back; a try send the
 * same, not -EAGAIN, which would have its caller try again for ever.
 */
static void test_send_on_a_broken_ring_does_not_wait(void **state)
{
	struct virtqueue *tx = duet_loopback_driver(lb)->vrings_info[1].vq;
	struct box a, b;
	uint64_t t0;
	int ret, sent = 0;

	(void)state;
	pair_open(&a, &b, "broken-tx");
	stop_polling();
	rpmsg_set_send_timeout(drv_dev, 2000);
	while (rpmsg_trysend(&a.ept, "x", 2) == 2)
		sent++;
	assert_int_equal(sent, RING);
	/* The hostile device: used.idx jumps far past what is out. */
	atomic_store((_Atomic uint16_t *)&tx->used->idx, (uint16_t)(tx->used->idx + 3 * RING));
	t0 = duet_clock_ms();
	ret = rpmsg_send(&a.ept, "y", 2);
	assert_int_equal(ret, -ENODEV);
	assert_true(duet_clock_ms() - t0 < 1000);
	assert_true(virtqueue_is_broken(tx));
	assert_int_equal(rpmsg_trysend(&a.ept, "y", 2), -ENODEV);
	start_polling();
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

static void test_exhaustion_trysend_timeout_recovery(void **state)
{
	struct box a, b;
	int sent = 0, ret;
	uint64_t t0;

	(void)state;
	pair_open(&a, &b, "flow");
	/* The device side stops serving: the driver's send buffers run out. */
	stop_polling();
	while ((ret = rpmsg_trysend(&a.ept, "m", 1)) == 1)
		sent++;
	assert_int_equal(ret, -EAGAIN);
	assert_int_equal(sent, RING);
	rpmsg_set_send_timeout(drv_dev, 100);
	t0 = duet_clock_ms();
	assert_int_equal(rpmsg_send(&a.ept, "m", 1), -ETIMEDOUT);
	assert_true(duet_clock_ms() - t0 >= 100);
	/* A timeout of 0: no wait at all, so none counted. */
	{
		struct rpmsg_stats st0, st;

		rpmsg_set_send_timeout(drv_dev, 0);
		rpmsg_get_stats(drv_dev, &st0);
		assert_int_equal(rpmsg_send(&a.ept, "m", 1), -ETIMEDOUT);
		rpmsg_get_stats(drv_dev, &st);
		assert_int_equal(st.tx_waits, st0.tx_waits);
	}
	/* Serving again frees buffers; a blocking send gets one. */
	rpmsg_set_send_timeout(drv_dev, 5000);
	start_polling();
	assert_int_equal(rpmsg_send(&a.ept, "m", 1), 1);
	wait_count(&b.count, RING + 1);
	assert_int_equal(b.count, RING + 1);
	/* Many more than the ring holds, blocking: all arrive. */
	for (int i = 0; i < 200; i++)
		assert_int_equal(rpmsg_send(&a.ept, "n", 1), 1);
	wait_count(&b.count, RING + 201);
	assert_int_equal(b.count, RING + 201);
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/* ---- batches: send_more holds the doorbell ---- */

static void test_send_more_notifies_once_per_batch(void **state)
{
	struct box a, b;

	(void)state;
	pair_open(&a, &b, "batch");
	/* In the ring but not announced: the peer, woken only by
	 * notifications, sees nothing while less than half the ring waits. */
	for (int i = 0; i < RING / 2 - 1; i++)
		assert_int_equal(rpmsg_send_more(&a.ept, "m", 1), 1);
	sleep_ms(50);
	assert_int_equal(atomic_load(&b.count), 0);
	/* One flush: all of them. */
	assert_int_equal(rpmsg_flush(&a.ept), 0);
	wait_count(&b.count, RING / 2 - 1);
	assert_int_equal(b.count, RING / 2 - 1);
	/* A plain send announces the batch before it. */
	assert_int_equal(rpmsg_send_more(&a.ept, "m", 1), 1);
	assert_int_equal(rpmsg_send_more(&a.ept, "m", 1), 1);
	assert_int_equal(rpmsg_send(&a.ept, "end", 4), 4);
	wait_count(&b.count, RING / 2 + 2);
	assert_int_equal(b.count, RING / 2 + 2);
	assert_string_equal(b.last, "end");
	/* A full ring never strands a batch: finding no buffer notifies. */
	fill_ring_then_serve(&a, &b, true, RING / 2 + 2);
	/* Blocking "more" sends past the ring's size all arrive. */
	for (int i = 0; i < 100; i++)
		assert_int_equal(rpmsg_send_more(&a.ept, "g", 1), 1);
	assert_int_equal(rpmsg_flush(&a.ept), 0);
	wait_count(&b.count, RING / 2 + 102 + RING);
	assert_int_equal(b.count, RING / 2 + 102 + RING);
	assert_int_equal(rpmsg_flush(NULL), -EINVAL);
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/*
 * The addressed forms: sendto and trysendto send from the endpoint's
 * address to `dst`; the offchannel forms from `src` to `dst`, whatever the
 * endpoint's own; each refuses RPMSG_ADDR_ANY there (-ENOTCONN). The try
 * forms return -EAGAIN once the ring is full, where the others wait.
 */
static void test_addressed_and_try_forms(void **state)
{
	struct box a, b;

	(void)state;
	pair_open(&a, &b, "addressed");
	assert_int_equal(rpmsg_send_offchannel(&a.ept, 5000, b.ept.addr, "off", 4), 4);
	wait_count(&b.count, 1);
	assert_string_equal(b.last, "off");
	assert_int_equal(b.last_src, 5000);
	assert_int_equal(rpmsg_trysendto(&a.ept, "tto", 4, b.ept.addr), 4);
	wait_count(&b.count, 2);
	assert_string_equal(b.last, "tto");
	assert_int_equal(b.last_src, a.ept.addr);
	assert_int_equal(rpmsg_trysend_offchannel(&a.ept, 5001, b.ept.addr, "tof", 4), 4);
	wait_count(&b.count, 3);
	assert_string_equal(b.last, "tof");
	assert_int_equal(b.last_src, 5001);
	/* The device side's forms too. */
	assert_int_equal(rpmsg_send_offchannel(&b.ept, 6000, a.ept.addr, "back", 5), 5);
	wait_count(&a.count, 1);
	assert_string_equal(a.last, "back");
	assert_int_equal(a.last_src, 6000);
	assert_int_equal(rpmsg_trysend_offchannel(&b.ept, 6001, a.ept.addr, "b2", 3), 3);
	wait_count(&a.count, 2);
	assert_int_equal(a.last_src, 6001);
	/* No address. */
	assert_int_equal(rpmsg_trysendto(&a.ept, "x", 1, RPMSG_ADDR_ANY), -ENOTCONN);
	assert_int_equal(rpmsg_send_offchannel(&a.ept, RPMSG_ADDR_ANY, b.ept.addr, "x", 1),
			 -ENOTCONN);
	assert_int_equal(rpmsg_trysend_offchannel(&a.ept, 5000, RPMSG_ADDR_ANY, "x", 1),
			 -ENOTCONN);
	assert_int_equal(rpmsg_trysend_offchannel(NULL, 5000, 5000, "x", 1), -EINVAL);
	assert_int_equal(rpmsg_trysendto(&a.ept, "x", -1, b.ept.addr), -EINVAL);
	/* A full ring: the try forms do not wait. */
	stop_polling();
	for (int i = 0; i < RING; i++)
		assert_int_equal(rpmsg_trysendto(&a.ept, "f", 2, b.ept.addr), 2);
	assert_int_equal(rpmsg_trysendto(&a.ept, "f", 2, b.ept.addr), -EAGAIN);
	assert_int_equal(rpmsg_trysend_offchannel(&a.ept, 5000, b.ept.addr, "f", 2), -EAGAIN);
	start_polling();
	wait_count(&b.count, 3 + RING);
	assert_int_equal(b.count, 3 + RING);
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/* Zero copy in batches: rpmsg_send_nocopy_more holds the doorbell as
 * rpmsg_send_more does, and a flush announces the batch. */
static void test_send_nocopy_more_holds_the_doorbell(void **state)
{
	struct box a, b;
	char not_lent[8];

	(void)state;
	pair_open(&a, &b, "zc-batch");
	for (int i = 0; i < RING / 2 - 1; i++) {
		uint32_t room;
		char *p = rpmsg_get_tx_payload_buffer(&a.ept, &room, 1);

		assert_non_null(p);
		p[0] = (char)('0' + i);
		assert_int_equal(rpmsg_send_nocopy_more(&a.ept, p, 1), 1);
	}
	sleep_ms(50);
	assert_int_equal(atomic_load(&b.count), 0);
	assert_int_equal(rpmsg_flush(&a.ept), 0);
	wait_count(&b.count, RING / 2 - 1);
	assert_int_equal(b.count, RING / 2 - 1);
	assert_int_equal(b.last[0], '0' + RING / 2 - 2);
	/* Its checks are rpmsg_send_nocopy's. */
	assert_int_equal(rpmsg_send_nocopy_more(&a.ept, not_lent, 1), -EINVAL);
	assert_int_equal(rpmsg_send_nocopy_more(NULL, not_lent, 1), -EINVAL);
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/* Half the send ring held back by "more" rings the doorbell by itself:
 * a sleeping peer starts on a long batch before the sender ends it, and
 * the count starts again after each ring. */
static void more_rings_every_half_ring(struct box *from, struct box *to)
{
	for (int round = 1; round <= 3; round++) {
		for (int i = 0; i < RING / 2 - 1; i++)
			assert_int_equal(rpmsg_send_more(&from->ept, "h", 1), 1);
		sleep_ms(30);
		assert_int_equal(atomic_load(&to->count), (round - 1) * (RING / 2));
		/* The half: announced with no flush. */
		assert_int_equal(rpmsg_send_more(&from->ept, "h", 1), 1);
		wait_count(&to->count, round * (RING / 2));
		assert_int_equal(to->count, round * (RING / 2));
	}
}

static void test_send_more_rings_every_half_ring(void **state)
{
	struct box a, b;

	(void)state;
	pair_open(&a, &b, "half");
	more_rings_every_half_ring(&a, &b); /* driver to device */
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
	pair_open(&a, &b, "half-back");
	more_rings_every_half_ring(&b, &a); /* device to driver */
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/* ---- bursts ---- */

/* An endpoint that records every payload it gets, in order. */
struct seq_box {
	struct rpmsg_endpoint ept;
	char got[64][8];
	_Atomic int count;
};

static int seq_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	struct seq_box *b = priv;
	int i;

	(void)ept;
	(void)src;
	if (!b)
		return 0; /* a sending end: nothing is recorded */
	i = atomic_load(&b->count);
	if (i < 64) {
		memset(b->got[i], 0, sizeof(b->got[i]));
		memcpy(b->got[i], data, len < sizeof(b->got[i]) ? len : sizeof(b->got[i]) - 1);
	}
	atomic_fetch_add(&b->count, 1);
	return 0;
}

static bool seq_count_is(struct seq_box *b, int n)
{
	wait_count(&b->count, n);
	return atomic_load(&b->count) == n;
}

/* BURST_MSGS numbered messages ("<prefix><i>") in datas/lens, and a bound
 * pair of endpoints `name`: a on `from`, the recording b on `to`. */
#define BURST_MSGS 64
static char burst_text[BURST_MSGS][8];

static void burst_pair(struct rpmsg_device *from, struct rpmsg_device *to, const char *name,
		       char prefix, struct rpmsg_endpoint *a, struct seq_box *b,
		       const void *datas[BURST_MSGS], int lens[BURST_MSGS])
{
	memset(b, 0, sizeof(*b));
	for (int i = 0; i < BURST_MSGS; i++) {
		snprintf(burst_text[i], sizeof(burst_text[i]), "%c%d", prefix, i);
		datas[i] = burst_text[i];
		lens[i] = (int)strlen(burst_text[i]) + 1;
	}
	b->ept.priv = b;
	assert_int_equal(rpmsg_create_ept(&b->ept, to, name, RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
					  seq_cb, NULL), 0);
	a->priv = NULL;
	assert_int_equal(rpmsg_create_ept(a, from, name, RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, seq_cb,
					  NULL), 0);
	assert_true(wait_until(ept_ready, a, 2000));
	assert_true(wait_until(ept_ready, &b->ept, 2000));
}

/*
 * A burst from `from` to a recording endpoint on `to`: all its messages
 * arrive, in order, the peer notified at the end (the loopback's server
 * delivers only what it is notified of). With the peer not serving, a
 * burst longer than the ring sends a ring's worth, the first ones, and
 * the next finds no buffer; served again, the rest go.
 */
static void burst_arrives_in_order(struct rpmsg_device *from, struct rpmsg_device *to)
{
	static struct rpmsg_endpoint a; /* static: a failed test leaves them */
	static struct seq_box b;
	const void *datas[BURST_MSGS];
	int lens[BURST_MSGS];

	burst_pair(from, to, "burst", 'b', &a, &b, datas, lens);
	assert_int_equal(rpmsg_trysend_burst(&a, datas, lens, 5), 5);
	assert_true(seq_count_is(&b, 5));
	stop_polling();
	assert_int_equal(rpmsg_trysend_burst(&a, datas + 5, lens + 5, 19), RING);
	assert_int_equal(rpmsg_trysend_burst(&a, datas + 5 + RING, lens + 5 + RING, 19 - RING),
			 -EAGAIN);
	start_polling();
	assert_true(seq_count_is(&b, 5 + RING));
	/* The rest, more than a ring's worth, in as many bursts as it takes. */
	for (int sent = 5 + RING, i = 0; sent < 24 && i < 1000; i++) {
		int ret = rpmsg_trysend_burst(&a, datas + sent, lens + sent, 24 - sent);

		if (ret == -EAGAIN) {
			sleep_ms(1);
			continue;
		}
		assert_true(ret > 0 && ret <= RING);
		sent += ret;
	}
	assert_true(seq_count_is(&b, 24));
	for (int i = 0; i < 24; i++)
		assert_string_equal(b.got[i], burst_text[i]);
	rpmsg_destroy_ept(&a);
	rpmsg_destroy_ept(&b.ept);
}

static void test_burst_from_the_driver_arrives_in_order(void **state)
{
	(void)state;
	burst_arrives_in_order(drv_dev, dev_dev);
}

static void test_burst_from_the_device_arrives_in_order(void **state)
{
	(void)state;
	burst_arrives_in_order(dev_dev, drv_dev);
}

/*
 * A burst longer than the chunk rpmsg fills per ring call (32) goes whole
 * when there are buffers for it (64-entry rings, the peer not serving):
 * the first chunk being full is no sign the buffers ran out. Served
 * again, the peer gets every message, in order.
 */
static void burst_spans_chunks(struct rpmsg_device *from, struct rpmsg_device *to)
{
	static struct rpmsg_endpoint a; /* static: a failed test leaves them */
	static struct seq_box b;
	const void *datas[BURST_MSGS];
	int lens[BURST_MSGS];

	burst_pair(from, to, "chunks", 'c', &a, &b, datas, lens);
	stop_polling();
	assert_int_equal(rpmsg_trysend_burst(&a, datas, lens, 50), 50);
	start_polling();
	assert_true(seq_count_is(&b, 50));
	for (int i = 0; i < 50; i++)
		assert_string_equal(b.got[i], burst_text[i]);
	rpmsg_destroy_ept(&a);
	rpmsg_destroy_ept(&b.ept);
}

static void test_burst_from_the_driver_spans_chunks(void **state)
{
	(void)state;
	burst_spans_chunks(drv_dev, dev_dev);
}

static void test_burst_from_the_device_spans_chunks(void **state)
{
	(void)state;
	burst_spans_chunks(dev_dev, drv_dev);
}

/* Starts polling again after 50 ms, from another thread. */
static void *serve_later(void *arg)
{
	(void)arg;
	sleep_ms(50);
	start_polling();
	return NULL;
}

/*
 * rpmsg_send_burst waits for buffers: 24 messages from `from` while the
 * peer is not served (8-entry rings) all go once it is served again, in
 * order; with nobody serving, the wait times out after the ring's worth
 * went, and a burst that gets no buffer at all says -ETIMEDOUT.
 */
static void send_burst_waits(struct rpmsg_device *from, struct rpmsg_device *to)
{
	static struct rpmsg_endpoint a; /* static: a failed test leaves them */
	static struct seq_box b;
	const void *datas[BURST_MSGS];
	int lens[BURST_MSGS];
	pthread_t t;
	uint64_t t0;

	burst_pair(from, to, "wburst", 'w', &a, &b, datas, lens);
	stop_polling();
	assert_int_equal(pthread_create(&t, NULL, serve_later, NULL), 0);
	assert_int_equal(rpmsg_send_burst(&a, datas, lens, 24), 24);
	pthread_join(t, NULL);
	assert_true(seq_count_is(&b, 24));
	for (int i = 0; i < 24; i++)
		assert_string_equal(b.got[i], burst_text[i]);
	/* Nobody serving: a ring's worth, then the timeout. */
	stop_polling();
	rpmsg_set_send_timeout(from, 100);
	t0 = duet_clock_ms();
	assert_int_equal(rpmsg_send_burst(&a, datas, lens, 12), RING);
	assert_true(duet_clock_ms() - t0 >= 100);
	assert_int_equal(rpmsg_send_burst(&a, datas, lens, 1), -ETIMEDOUT);
	rpmsg_set_send_timeout(from, 5000);
	start_polling();
	assert_true(seq_count_is(&b, 24 + RING));
	rpmsg_destroy_ept(&a);
	rpmsg_destroy_ept(&b.ept);
}

static void test_send_burst_from_the_driver_waits_for_buffers(void **state)
{
	(void)state;
	send_burst_waits(drv_dev, dev_dev);
}

static void test_send_burst_from_the_device_waits_for_buffers(void **state)
{
	(void)state;
	send_burst_waits(dev_dev, drv_dev);
}

/*
 * The ring breaks under a burst: the device side takes two receive
 * buffers the driver posted, then meets an entry no ring allows (a head
 * past the ring). Nothing of the chunk goes (what was taken stays with
 * the broken ring), and the burst says -ENODEV, as a send on a broken
 * ring does; later sends say the same.
 */
static void test_burst_on_a_ring_that_breaks(void **state)
{
	struct virtqueue *rx = duet_loopback_driver(lb)->vrings_info[0].vq;
	const void *datas[5] = { "a", "b", "c", "d", "e" };
	const int lens[5] = { 2, 2, 2, 2, 2 };
	struct box a, b;
	uint16_t idx;

	(void)state;
	pair_open(&a, &b, "burst-broken");
	stop_polling();
	for (int i = 0; i < RING - 2; i++)
		assert_int_equal(rpmsg_trysend(&b.ept, "m", 2), 2);
	/* The hostile driver: one more avail entry, head 0xffff. */
	idx = rx->avail->idx;
	rx->avail->ring[idx % RING] = 0xffff;
	atomic_store((_Atomic uint16_t *)&rx->avail->idx, (uint16_t)(idx + 1));
	assert_int_equal(rpmsg_trysend_burst(&b.ept, datas, lens, 5), -ENODEV);
	assert_true(virtqueue_is_broken(duet_loopback_device(lb)->vrings_info[0].vq));
	assert_int_equal(rpmsg_trysend(&b.ept, "m", 2), -ENODEV);
	start_polling();
	wait_count(&a.count, RING - 2);
	assert_int_equal(a.count, RING - 2); /* what went before the break */
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/* A burst with one bad message sends none of it; bad arguments, an
 * endpoint not bound and an empty burst send nothing either. */
static void test_bad_burst_sends_nothing(void **state)
{
	static char big[600];
	const void *datas[4] = { "a", "b", "c", "d" };
	int lens[4] = { 2, 2, 2, 2 };
	static struct rpmsg_endpoint lone; /* static: a failed test leaves them */
	static struct box a, b;

	(void)state;
	pair_open(&a, &b, "badburst");
	lens[2] = -1;
	assert_int_equal(rpmsg_trysend_burst(&a.ept, datas, lens, 4), -EINVAL);
	lens[2] = 2;
	datas[1] = NULL;
	assert_int_equal(rpmsg_trysend_burst(&a.ept, datas, lens, 4), -EINVAL);
	datas[1] = big;
	lens[1] = 512 - 16 + 1; /* one past the driver's send buffer */
	assert_int_equal(rpmsg_trysend_burst(&a.ept, datas, lens, 4), -EMSGSIZE);
	lens[1] = 0;
	datas[1] = NULL; /* no bytes need no data */
	assert_int_equal(rpmsg_trysend_burst(NULL, datas, lens, 4), -EINVAL);
	assert_int_equal(rpmsg_trysend_burst(&a.ept, NULL, lens, 4), -EINVAL);
	assert_int_equal(rpmsg_trysend_burst(&a.ept, datas, NULL, 4), -EINVAL);
	assert_int_equal(rpmsg_trysend_burst(&a.ept, datas, lens, -1), -EINVAL);
	assert_int_equal(rpmsg_trysend_burst(&a.ept, NULL, NULL, 0), 0);
	lone.priv = NULL;
	assert_int_equal(rpmsg_create_ept(&lone, drv_dev, NULL, RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
					  seq_cb, NULL), 0);
	assert_int_equal(rpmsg_trysend_burst(&lone, datas, lens, 4), -ENOTCONN);
	rpmsg_destroy_ept(&lone);
	sleep_ms(20);
	assert_int_equal(atomic_load(&b.count), 0);
	/* The same burst, made good, goes whole: an empty message included. */
	assert_int_equal(rpmsg_trysend_burst(&a.ept, datas, lens, 4), 4);
	wait_count(&b.count, 4);
	assert_int_equal(atomic_load(&b.count), 4);
	assert_string_equal(b.last, "d");
	/* A lone empty message with no data, too. */
	assert_int_equal(rpmsg_send(&a.ept, NULL, 0), 0);
	wait_count(&b.count, 5);
	assert_int_equal(atomic_load(&b.count), 5);
	assert_int_equal(atomic_load(&b.last_len), 0);
	/* The largest payload goes in a burst as in a lone send. */
	datas[0] = big;
	lens[0] = 512 - 16;
	assert_int_equal(rpmsg_trysend_burst(&a.ept, datas, lens, 1), 1);
	wait_count(&b.count, 6);
	assert_int_equal(atomic_load(&b.count), 6);
	assert_int_equal(atomic_load(&b.last_len), 512 - 16);
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/* ---- announcements without a send buffer ---- */

/* Nothing serves the rings any more, and a sends until every send buffer
 * of its side is in flight (RING). */
static void stop_and_fill(struct box *a)
{
	int ret, sent = 0;

	stop_polling();
	while ((ret = rpmsg_trysend(&a->ept, "m", 1)) == 1)
		sent++;
	assert_int_equal(ret, -EAGAIN);
	assert_int_equal(sent, RING);
}

/* A listener that counts the offers of one name (priv: its struct). */
struct offers {
	const char *name;
	_Atomic int count;
};

static bool match_offers(struct rpmsg_device *rdev, const char *name, uint32_t dest, void *priv)
{
	(void)rdev;
	(void)dest;
	return !strcmp(name, ((struct offers *)priv)->name);
}

static void count_offer(struct rpmsg_device *rdev, const char *name, uint32_t dest, void *priv)
{
	(void)rdev;
	(void)name;
	(void)dest;
	atomic_fetch_add(&((struct offers *)priv)->count, 1);
}

static void test_announcements_wait_for_buffers_without_blocking(void **state)
{
	struct box a, b, peer[3], mine[4];
	const char *names[] = { "q-one", "q-two", "q-gone", "q-last" };
	struct offers gone = { "q-gone", 0 };
	struct rpmsg_stats st0, st;

	(void)state;
	assert_int_equal(rpmsg_register_callback(&gone, NULL, NULL, match_offers, count_offer),
			 0);
	box_open(&a, drv_dev, "flow");
	box_open(&b, dev_dev, "flow");
	box_open(&peer[0], dev_dev, "q-one");
	box_open(&peer[1], dev_dev, "q-two");
	box_open(&peer[2], dev_dev, "q-last");
	assert_true(wait_until(ept_ready, &a.ept, 2000));
	stop_and_fill(&a);
	/* Creating and destroying endpoints neither waits nor fails; what
	 * cannot go yet is queued, and a create destroyed before it went out
	 * is never sent at all. Were they waiting, this would take 4 x 5 s. */
	rpmsg_get_stats(drv_dev, &st0);
	for (int i = 0; i < 4; i++)
		box_open(&mine[i], drv_dev, names[i]);
	rpmsg_destroy_ept(&mine[2].ept);
	rpmsg_get_stats(drv_dev, &st);
	assert_int_equal(st.ns_deferred - st0.ns_deferred, 4);
	assert_false(rpmsg_is_ept_ready(&peer[0].ept));
	/* Buffers come back: the announcements go, in order, and the data
	 * that waited arrives too. */
	start_polling();
	assert_true(wait_until(ept_ready, &peer[0].ept, 2000));
	assert_true(wait_until(ept_ready, &peer[1].ept, 2000));
	assert_true(wait_until(ept_ready, &peer[2].ept, 2000));
	assert_int_equal(peer[0].ept.dest_addr, mine[0].ept.addr);
	assert_int_equal(peer[2].ept.dest_addr, mine[3].ept.addr);
	assert_true(wait_until(got, &b, 2000));
	wait_count(&b.count, RING);
	assert_int_equal(b.count, RING);
	/* q-last was announced after q-gone would have been: q-gone never was. */
	assert_int_equal(gone.count, 0);
	rpmsg_unregister_callback(&gone);
	for (int i = 0; i < 4; i++)
		if (i != 2)
			rpmsg_destroy_ept(&mine[i].ept);
	for (int i = 0; i < 3; i++)
		rpmsg_destroy_ept(&peer[i].ept);
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/*
 * With the ring full and no memory to queue its announcement, a create is
 * refused with -ENOMEM at once (before: it waited for a buffer, up to the
 * send timeout, and lost the announcement when none came): the endpoint is
 * not there, the peer never hears of it, and the same create works once
 * memory is back.
 */
static void test_create_without_memory_to_queue_its_announcement(void **state)
{
	struct offers offers = { "nomem-svc", 0 };
	struct rpmsg_stats st0, st;
	struct box a, b, peer, x;
	int ret;

	(void)state;
	/* peer announces before b: once a is bound by b's announcement, this
	 * side has peer's too, waiting for an endpoint of its name. */
	box_open(&a, drv_dev, "nomem-flow");
	box_open(&peer, dev_dev, "nomem-svc");
	box_open(&b, dev_dev, "nomem-flow");
	assert_true(wait_until(ept_ready, &a.ept, 2000));
	stop_and_fill(&a);
	rpmsg_get_stats(drv_dev, &st0);
	memset(&x, 0, sizeof(x));
	x.ept.priv = &x;
	/* Refused twice, and neither time does it change who has peer's
	 * announcement: the first leaves it for a listener registered after,
	 * which takes it; the second does not hand it out again. */
	for (int round = 0; round < 2; round++) {
		duet_port_fail_allocs(0, 1);
		ret = rpmsg_create_ept(&x.ept, drv_dev, "nomem-svc", RPMSG_ADDR_ANY,
				       RPMSG_ADDR_ANY, box_cb, box_unbind);
		duet_port_fail_allocs(0, 0);
		assert_int_equal(ret, -ENOMEM);
		assert_int_equal(rpmsg_register_callback(&offers, NULL, NULL, match_offers,
							 count_offer),
				 0);
		assert_int_equal(offers.count, 1);
		rpmsg_unregister_callback(&offers);
	}
	rpmsg_get_stats(drv_dev, &st);
	assert_int_equal(st.ns_deferred, st0.ns_deferred);
	/* The ring drains; a message sent after it would follow any queued
	 * announcement: once it is in, the peer would have heard. */
	start_polling();
	wait_count(&b.count, RING);
	assert_int_equal(b.count, RING);
	assert_int_equal(rpmsg_send(&a.ept, "after", 6), 6);
	wait_count(&b.count, RING + 1);
	assert_int_equal(b.count, RING + 1);
	assert_false(rpmsg_is_ept_ready(&peer.ept));
	/* Nothing of it was left: the same struct is created again, and binds
	 * at once to peer's announcement, which the refused create had not
	 * used up. */
	assert_int_equal(rpmsg_create_ept(&x.ept, drv_dev, "nomem-svc", RPMSG_ADDR_ANY,
					  RPMSG_ADDR_ANY, box_cb, box_unbind),
			 0);
	assert_int_equal(x.ept.dest_addr, peer.ept.addr);
	assert_true(wait_until(ept_ready, &peer.ept, 2000));
	assert_int_equal(peer.ept.dest_addr, x.ept.addr);
	rpmsg_destroy_ept(&x.ept);
	rpmsg_destroy_ept(&peer.ept);
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/* A pair of `name`, a on `from` and b on `to`, bound; b keeps every
 * buffer it receives, and a sends until its buffers run out (RING). */
static void run_dry(struct box *a, struct rpmsg_device *from, struct box *b,
		    struct rpmsg_device *to, const char *name)
{
	int sent = 0, ret;

	box_open(a, from, name);
	box_open(b, to, name);
	b->hold = true;
	assert_true(wait_until(ept_ready, &a->ept, 2000));
	assert_true(wait_until(ept_ready, &b->ept, 2000));
	while ((ret = rpmsg_trysend(&a->ept, "m", 1)) == 1)
		sent++;
	assert_int_equal(ret, -EAGAIN);
	assert_int_equal(sent, RING);
}

static void test_sleeping_sender_is_woken_after_another_takes_a_buffer(void **state)
{
	struct virtqueue *tx = duet_loopback_driver(lb)->vrings_info[1].vq;
	struct timed_send sl = { 0 };
	struct box a, b;
	pthread_t t;

	(void)state;
	run_dry(&a, drv_dev, &b, dev_dev, "nap");
	wait_count(&b.count, RING);
	/* One sender sleeps for a buffer; another takes the one that comes
	 * back first. The sleeper must still be told about the next. */
	rpmsg_set_send_timeout(drv_dev, 3000);
	sl.ept = &a.ept;
	assert_int_equal(pthread_create(&t, NULL, timed_send, &sl), 0);
	sleep_ms(50);
	stop_polling();
	rpmsg_release_rx_buffer(&b.ept, atomic_load(&b.held));
	assert_int_equal(rpmsg_trysend(&a.ept, "m", 1), 1);
	assert_true(tx->cb_enabled);
	b.hold = false;
	start_polling();
	pthread_join(t, NULL);
	assert_int_equal(sl.ret, 2);
	assert_true(sl.ms < 1500); /* woken by the notification, not the timeout */
	rpmsg_set_send_timeout(drv_dev, 5000);
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/* A send asleep for a buffer when its device goes returns -ENODEV, and
 * removal waits for it to leave before the device's lock and event are
 * freed (under AddressSanitizer, a removal that did not wait is a use after
 * free). `driver`: the sender is on the driver side, else the device side. */
static void sender_leaves_when_the_device_goes(bool driver)
{
	struct rpmsg_device *from = driver ? drv_dev : dev_dev, *to = driver ? dev_dev : drv_dev;
	struct timed_send sl[2] = { { 0 }, { 0 } };
	struct box a, b, queued;
	struct rpmsg_stats st0, st;
	pthread_t t[2];

	run_dry(&a, from, &b, to, "bye");
	/* An announcement queued for want of a buffer goes with the device
	 * (the sanitizer build's leak check). */
	rpmsg_get_stats(from, &st0);
	box_open(&queued, from, "queued");
	rpmsg_get_stats(from, &st);
	assert_int_equal(st.ns_deferred - st0.ns_deferred, 1);
	/* Two asleep: the removal wakes one, which wakes the next. */
	for (int i = 0; i < 2; i++) {
		sl[i].ept = &a.ept;
		assert_int_equal(pthread_create(&t[i], NULL, timed_send, &sl[i]), 0);
	}
	sleep_ms(50);
	stop_polling();
	if (driver)
		virtio_unregister_device(duet_loopback_driver(lb));
	else
		vhost_unregister_device(duet_loopback_device(lb));
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(sl[i].ret, -ENODEV);
		assert_true(sl[i].ms < 3000); /* told at once, not at the 5 s timeout */
	}
	/* The endpoint outlived its device: every call says so, until it is
	 * destroyed, which frees what is left of the device (LeakSanitizer
	 * checks it under ASan). */
	assert_non_null(a.ept.rdev);
	assert_int_equal(rpmsg_send(&a.ept, "m", 1), -ENODEV);
	assert_int_equal(rpmsg_trysend(&a.ept, "m", 1), -ENODEV);
	assert_int_equal(rpmsg_sendto(&a.ept, "m", 1, 5000), -ENODEV);
	assert_int_equal(rpmsg_trysendto(&a.ept, "m", 1, 5000), -ENODEV);
	assert_int_equal(rpmsg_send_more(&a.ept, "m", 1), -ENODEV);
	assert_int_equal(rpmsg_flush(&a.ept), -ENODEV);
	{
		const void *datas[1] = { "m" };
		const int lens[1] = { 1 };
		uint32_t room = 7;

		assert_int_equal(rpmsg_trysend_burst(&a.ept, datas, lens, 1), -ENODEV);
		assert_int_equal(rpmsg_send_burst(&a.ept, datas, lens, 1), -ENODEV);
		assert_null(rpmsg_get_tx_payload_buffer(&a.ept, &room, 0));
	}
	assert_false(rpmsg_is_ept_ready(&a.ept));
	/* No new endpoint on a device that went. */
	{
		struct rpmsg_endpoint late;

		assert_int_equal(rpmsg_create_ept(&late, a.ept.rdev, "late", RPMSG_ADDR_ANY,
						  RPMSG_ADDR_ANY, box_cb, NULL),
				 -ENODEV);
	}
	assert_int_equal(atomic_load(&a.unbound), 1);
	{
		char dump[128];

		assert_true(rpmsg_dump(a.ept.rdev, dump, sizeof(dump)) > 0);
		assert_non_null(strstr(dump, "device gone"));
	}
	rpmsg_destroy_ept(&a.ept);
	assert_null(a.ept.rdev);
	rpmsg_destroy_ept(&a.ept); /* twice: nothing */
	rpmsg_destroy_ept(&b.ept);
	rpmsg_destroy_ept(&queued.ept);
}

/* Sends racing the removal: each thread sends until its endpoint says the
 * device went. Under AddressSanitizer and ThreadSanitizer no call may meet
 * freed memory or race, also a call that read ept->rdev just before. */
struct racer {
	struct rpmsg_endpoint *ept;
	_Atomic unsigned long calls;
	int last;
};

static void *send_until_gone(void *arg)
{
	struct racer *r = arg;

	do {
		r->last = rpmsg_trysend(r->ept, "r", 1);
		atomic_fetch_add(&r->calls, 1);
	} while (r->last != -ENODEV && r->last != -EINVAL); /* EINVAL: no device */
	return NULL;
}

static void test_senders_racing_the_removal_meet_no_freed_memory(void **state)
{
	struct racer r[2] = { { 0 }, { 0 } };
	pthread_t t[2];
	struct box a, b;

	(void)state;
	pair_open(&a, &b, "race");
	for (int i = 0; i < 2; i++) {
		r[i].ept = &a.ept;
		assert_int_equal(pthread_create(&t[i], NULL, send_until_gone, &r[i]), 0);
	}
	/* Both busy and messages flowing, then the device goes under them. */
	for (int i = 0; i < 5000 && (atomic_load(&r[0].calls) < 100 ||
				      atomic_load(&r[1].calls) < 100 || atomic_load(&b.count) == 0);
	     i++)
		sleep_ms(1);
	assert_true(atomic_load(&b.count) > 0);
	stop_polling();
	virtio_unregister_device(duet_loopback_driver(lb));
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].last, -ENODEV);
	}
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

static void test_sleeping_sender_returns_when_the_driver_goes(void **state)
{
	(void)state;
	sender_leaves_when_the_device_goes(true);
}

static void test_sleeping_sender_returns_when_the_device_goes(void **state)
{
	(void)state;
	sender_leaves_when_the_device_goes(false);
}

/* Probe rpmsg's driver role over a loopback whose config space gives
 * these buffer sizes; whether it bound. */
static bool probe_with_sizes(uint32_t txbuf, uint32_t rxbuf)
{
	struct rpmsg_virtio_config cfg = { txbuf, rxbuf };
	struct duet_loopback_config lc = {
		.device_id = VIRTIO_ID_RPMSG, .features = 1u << VIRTIO_RPMSG_F_NS, .num_vrings = 2,
		.vring_num = 4, .vring_align = 16, .config_len = sizeof(cfg), .config = &cfg,
		.heap_size = 2u * 4u * RPMSG_MAX_BUF_SIZE + 64u * 1024u,
	};
	struct duet_loopback *l;
	struct virtio_device *vdev;
	bool bound;

	assert_int_equal(duet_loopback_create(&l, &lc), 0);
	vdev = duet_loopback_driver(l);
	assert_int_equal(virtio_register_device(vdev), 0);
	bound = atomic_load(&vdev->bus_driver) != NULL;
	virtio_unregister_device(vdev);
	duet_loopback_destroy(l);
	return bound;
}

/* The buffer sizes in the config space are the device side's word: each
 * must exceed a header and stay within RPMSG_MAX_BUF_SIZE, or the probe
 * fails before anything is allocated from them. */
static void test_peer_buffer_sizes_are_checked(void **state)
{
	(void)state;
	assert_int_equal(virtio_register_driver(&virtio_rpmsg_driver), 0);
	assert_true(probe_with_sizes(512, 256));
	assert_true(probe_with_sizes(RPMSG_HDR_SIZE + 1, RPMSG_MAX_BUF_SIZE));
	assert_true(probe_with_sizes(RPMSG_MAX_BUF_SIZE, RPMSG_HDR_SIZE + 1));
	assert_false(probe_with_sizes(RPMSG_HDR_SIZE, 256));
	assert_false(probe_with_sizes(512, RPMSG_HDR_SIZE));
	assert_false(probe_with_sizes(RPMSG_MAX_BUF_SIZE + 1, 256));
	assert_false(probe_with_sizes(512, RPMSG_MAX_BUF_SIZE + 1));
	assert_false(probe_with_sizes(0xffffffffu, 0));
	assert_int_equal(virtio_unregister_driver(&virtio_rpmsg_driver), 0);
}

/* The device side reads the same sizes: bound with a driver side bound on
 * good sizes, then the sizes changed under it (a driver rewriting its
 * config space). Whether the device side's probe took it. */
static bool device_probes_with_sizes(uint32_t txbuf, uint32_t rxbuf)
{
	static const struct rpmsg_virtio_config good = { 512, 256 };
	struct rpmsg_virtio_config bad = { txbuf, rxbuf };
	struct duet_loopback_config lc = {
		.device_id = VIRTIO_ID_RPMSG, .features = 1u << VIRTIO_RPMSG_F_NS, .num_vrings = 2,
		.vring_num = 4, .vring_align = 16, .config_len = sizeof(good), .config = &good,
		.heap_size = 64u * 1024u,
	};
	struct duet_loopback *l;
	struct fw_rsc_vdev *rsc;
	struct virtio_device *vdev, *hdev;
	bool bound;

	assert_int_equal(duet_loopback_create(&l, &lc), 0);
	vdev = duet_loopback_driver(l);
	hdev = duet_loopback_device(l);
	assert_int_equal(virtio_register_device(vdev), 0);
	assert_non_null(atomic_load(&vdev->bus_driver));
	rsc = duet_loopback_rsc(l);
	memcpy(&rsc->vring[rsc->num_of_vrings], &bad, sizeof(bad));
	assert_int_equal(vhost_register_device(hdev), 0); /* the driver side is ready: at once */
	bound = atomic_load(&hdev->bus_driver) != NULL;
	vhost_unregister_device(hdev);
	virtio_unregister_device(vdev);
	duet_loopback_destroy(l);
	return bound;
}

static void test_device_side_checks_the_buffer_sizes(void **state)
{
	(void)state;
	assert_int_equal(virtio_register_driver(&virtio_rpmsg_driver), 0);
	assert_int_equal(vhost_register_driver(&vhost_rpmsg_driver), 0);
	assert_true(device_probes_with_sizes(512, 256));
	assert_true(device_probes_with_sizes(RPMSG_HDR_SIZE + 1, RPMSG_MAX_BUF_SIZE));
	assert_false(device_probes_with_sizes(RPMSG_HDR_SIZE, 256));
	assert_false(device_probes_with_sizes(512, RPMSG_HDR_SIZE));
	assert_false(device_probes_with_sizes(RPMSG_MAX_BUF_SIZE + 1, 256));
	assert_false(device_probes_with_sizes(512, RPMSG_MAX_BUF_SIZE + 1));
	assert_false(device_probes_with_sizes(0, 0));
	assert_int_equal(vhost_unregister_driver(&vhost_rpmsg_driver), 0);
	assert_int_equal(virtio_unregister_driver(&virtio_rpmsg_driver), 0);
}

/* What a user passes is checked before anything happens: an endpoint
 * needs a device, a callback and a name that fits with its terminator;
 * a send needs an endpoint. */
static void test_bad_endpoint_arguments_are_refused(void **state)
{
	struct rpmsg_endpoint e;
	char name[RPMSG_NAME_SIZE + 1];

	(void)state;
	memset(name, 'n', RPMSG_NAME_SIZE);
	name[RPMSG_NAME_SIZE] = '\0';
	assert_int_equal(rpmsg_create_ept(NULL, drv_dev, "x", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
					  box_cb, NULL),
			 -EINVAL);
	assert_int_equal(rpmsg_create_ept(&e, NULL, "x", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, box_cb,
					  NULL),
			 -EINVAL);
	assert_int_equal(rpmsg_create_ept(&e, drv_dev, "x", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, NULL,
					  NULL),
			 -EINVAL);
	assert_int_equal(rpmsg_create_ept(&e, drv_dev, name, RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
					  box_cb, NULL),
			 -EINVAL); /* 32 characters: no room for the terminator */
	/* Not terminated within RPMSG_NAME_SIZE: refused without a read past
	 * it (the heap block ends there, for AddressSanitizer). */
	{
		char *unterminated = malloc(RPMSG_NAME_SIZE);

		assert_non_null(unterminated);
		memset(unterminated, 'u', RPMSG_NAME_SIZE);
		assert_int_equal(rpmsg_create_ept(&e, drv_dev, unterminated, RPMSG_ADDR_ANY,
						  RPMSG_ADDR_ANY, box_cb, NULL),
				 -EINVAL);
		free(unterminated);
	}
	/* Longer still: refused as well, however long. */
	{
		char longer[RPMSG_NAME_SIZE + 9];

		memset(longer, 'l', sizeof(longer) - 1);
		longer[sizeof(longer) - 1] = '\0';
		assert_int_equal(rpmsg_create_ept(&e, drv_dev, longer, RPMSG_ADDR_ANY,
						  RPMSG_ADDR_ANY, box_cb, NULL),
				 -EINVAL);
	}
	name[RPMSG_NAME_SIZE - 1] = '\0'; /* 31: the longest that fits */
	assert_int_equal(rpmsg_create_ept(&e, drv_dev, name, RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
					  box_cb, NULL),
			 0);
	assert_string_equal(e.name, name);
	/* A lend needs somewhere to say the room: none without. */
	assert_null(rpmsg_get_tx_payload_buffer(&e, NULL, 0));
	rpmsg_destroy_ept(&e);
	assert_int_equal(rpmsg_send(NULL, "m", 1), -EINVAL);
	assert_int_equal(rpmsg_trysend(NULL, "m", 1), -EINVAL);
	/* Every other call through no endpoint: its "nothing" answer. */
	rpmsg_destroy_ept(NULL);
	assert_false(rpmsg_is_ept_ready(NULL));
	assert_int_equal(rpmsg_sendto(NULL, "m", 1, 5000), -EINVAL);
	assert_int_equal(rpmsg_trysendto(NULL, "m", 1, 5000), -EINVAL);
	assert_int_equal(rpmsg_send_offchannel(NULL, 5000, 5000, "m", 1), -EINVAL);
	assert_int_equal(rpmsg_send_more(NULL, "m", 1), -EINVAL);
	assert_int_equal(rpmsg_trysend_more(NULL, "m", 1), -EINVAL);
	assert_int_equal(rpmsg_get_tx_buffer_size(NULL), -EINVAL);
	assert_int_equal(rpmsg_get_rx_buffer_size(NULL), -EINVAL);
	{
		uint32_t room = 7;

		assert_null(rpmsg_get_tx_payload_buffer(NULL, &room, 0));
	}
	assert_int_equal(rpmsg_sendto_nocopy(NULL, name, 1, 5000), -EINVAL);
	/* Holding through no endpoint, or a destroyed one: nothing. */
	rpmsg_hold_rx_buffer(NULL, name);
	rpmsg_release_rx_buffer(NULL, name);
	rpmsg_hold_rx_buffer(&e, name);
	rpmsg_release_rx_buffer(&e, name);
	/* A release without a hold lets go of nothing: the device stays, and
	 * a hold and its release still pair. */
	rpmsg_release_device(drv_dev);
	assert_ptr_equal(rpmsg_hold_device(0), drv_dev);
	rpmsg_release_device(drv_dev);
	assert_ptr_equal(rpmsg_get_device(0), drv_dev);
	/* The refused lend lent nothing: every send buffer is there. */
	{
		uint32_t room;
		struct box a, b;

		pair_open(&a, &b, "after-bad-args");
		for (int i = 0; i < RING; i++)
			assert_non_null(rpmsg_get_tx_payload_buffer(&a.ept, &room, 0));
		rpmsg_destroy_ept(&a.ept);
		rpmsg_destroy_ept(&b.ept);
	}
	/* The device calls take no device as nothing. */
	{
		struct rpmsg_stats st;
		char text[16] = "old text";

		memset(&st, 0xff, sizeof(st));
		rpmsg_get_stats(NULL, &st);
		assert_int_equal(st.rx_msgs, 0);
		assert_int_equal(st.ns_deferred, 0);
		rpmsg_get_stats(drv_dev, NULL);
		rpmsg_set_send_timeout(NULL, 1);
		assert_int_equal(rpmsg_dump(NULL, NULL, 0), 0);
		/* No text, not the buffer's old bytes; and a NULL buffer with
		 * a length is not written. */
		assert_int_equal(rpmsg_dump(NULL, text, sizeof(text)), 0);
		assert_string_equal(text, "");
		assert_int_equal(rpmsg_dump(drv_dev, NULL, 64), 0);
		assert_true(rpmsg_dump(drv_dev, text, sizeof(text)) == sizeof(text) - 1);
	}
}

/* The drops reported to the drop callback, as "reason why". */
static char drops[16][64];
static _Atomic int ndrops;

static void record_drop(struct rpmsg_device *rdev, const struct rpmsg_drop *d, void *priv)
{
	int i = atomic_fetch_add(&ndrops, 1);

	(void)rdev;
	(void)priv;
	if (i < 16)
		snprintf(drops[i], sizeof(drops[i]), "%d %s", (int)d->reason, d->why);
}

static void test_zero_copy(void **state)
{
	struct box a, b;
	uint32_t room = 0;
	char local[32];
	char *p;

	(void)state;
	pair_open(&a, &b, "zc");
	p = rpmsg_get_tx_payload_buffer(&a.ept, &room, 1);
	assert_non_null(p);
	assert_int_equal(room, 496);
	strcpy(p, "written in place");
	assert_int_equal(rpmsg_send_nocopy(&a.ept, p, 17), 17);
	assert_true(wait_until(got, &b, 2000));
	assert_string_equal(b.last, "written in place");
	/* A pointer the library did not hand out is refused. */
	assert_int_equal(rpmsg_send_nocopy(&a.ept, local, 4), -EINVAL);
	assert_int_equal(rpmsg_send_nocopy(&a.ept, p, 4), -EINVAL); /* already sent */
	assert_int_equal(rpmsg_release_tx_buffer(&a.ept, local), -EINVAL);
	/* An unused one goes back. The device side gives it to the driver
	 * empty, which the driver takes as no message, not as a fault: no
	 * drop is counted or reported (the message after it syncs). */
	{
		struct rpmsg_stats st0, st;

		rpmsg_get_stats(drv_dev, &st0);
		atomic_store(&ndrops, 0);
		rpmsg_set_drop_cb(record_drop, NULL);
		atomic_store(&a.count, 0);
		p = rpmsg_get_tx_payload_buffer(&b.ept, &room, 1);
		assert_non_null(p);
		assert_int_equal(room, 240);
		assert_int_equal(rpmsg_release_tx_buffer(&b.ept, p), 0);
		assert_int_equal(rpmsg_release_tx_buffer(&b.ept, p), -EINVAL);
		assert_int_equal(rpmsg_release_tx_buffer(NULL, p), -EINVAL);
		assert_int_equal(rpmsg_send(&b.ept, "sync", 5), 5);
		assert_true(wait_until(got, &a, 2000));
		rpmsg_set_drop_cb(NULL, NULL);
		rpmsg_get_stats(drv_dev, &st);
		assert_int_equal(st.dropped_len, st0.dropped_len);
		assert_int_equal(atomic_load(&ndrops), 0);
	}
	/* A refused zero-copy send leaves the buffer lent: a length past the
	 * room or below zero, or no endpoint, sends nothing, and the buffer
	 * can still go. */
	p = rpmsg_get_tx_payload_buffer(&a.ept, &room, 1);
	assert_non_null(p);
	atomic_store(&b.count, 0);
	assert_int_equal(rpmsg_send_nocopy(&a.ept, p, (int)room + 1), -EMSGSIZE);
	assert_int_equal(rpmsg_send_nocopy(&a.ept, p, -1), -EINVAL);
	assert_int_equal(rpmsg_send_nocopy(NULL, p, 4), -EINVAL);
	assert_int_equal(rpmsg_sendto_nocopy(&a.ept, p, 4, RPMSG_ADDR_ANY), -ENOTCONN);
	strcpy(p, "room");
	assert_int_equal(rpmsg_send_nocopy(&a.ept, p, (int)room), (int)room);
	assert_true(wait_until(got, &b, 2000));
	assert_int_equal(atomic_load(&b.count), 1);
	assert_int_equal(atomic_load(&b.last_len), room);
	assert_string_equal(b.last, "room");
	/* An empty message goes without a copy too. */
	p = rpmsg_get_tx_payload_buffer(&a.ept, &room, 1);
	assert_non_null(p);
	assert_int_equal(rpmsg_send_nocopy(&a.ept, p, 0), 0);
	wait_count(&b.count, 2);
	assert_int_equal(atomic_load(&b.count), 2);
	assert_int_equal(atomic_load(&b.last_len), 0);

	/* A held receive buffer stays out of the ring until released. */
	b.hold = true;
	atomic_store(&b.count, 0);
	assert_int_equal(rpmsg_send(&a.ept, "keep me", 8), 8);
	assert_true(wait_until(got, &b, 2000));
	{
		char dump[4096];

		rpmsg_dump(dev_dev, dump, sizeof(dump));
		assert_non_null(strstr(dump, "held 1"));
		assert_non_null(strstr(dump, "held by zc"));
		assert_string_equal((char *)atomic_load(&b.held), "keep me");
		/* A received buffer is no send buffer: refused, still held. */
		assert_int_equal(rpmsg_release_tx_buffer(&b.ept, atomic_load(&b.held)), -EINVAL);
		assert_int_equal(rpmsg_send_nocopy(&b.ept, atomic_load(&b.held), 4), -EINVAL);
		rpmsg_dump(dev_dev, dump, sizeof(dump));
		assert_non_null(strstr(dump, "held 1"));
		rpmsg_release_rx_buffer(&b.ept, local); /* not held: ignored */
		rpmsg_release_rx_buffer(&b.ept, atomic_load(&b.held));
		rpmsg_dump(dev_dev, dump, sizeof(dump));
		assert_non_null(strstr(dump, "held 0"));
	}
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

static _Atomic int left;

/* Holds what it is given, then destroys and frees its endpoint, all
 * within the callback. */
static int hold_and_leave(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src,
			  void *priv)
{
	(void)len;
	(void)src;
	(void)priv;
	rpmsg_hold_rx_buffer(ept, data);
	rpmsg_destroy_ept(ept);
	free(ept);
	atomic_fetch_add(&left, 1);
	return 0;
}

/* Every send buffer of a's side lent to a (the driver side's RING). */
static void lend_every_buffer(struct box *a, char *lent[RING])
{
	uint32_t room;

	for (int i = 0; i < RING; i++) {
		lent[i] = rpmsg_get_tx_payload_buffer(&a->ept, &room, 0);
		assert_non_null(lent[i]);
	}
	assert_null(rpmsg_get_tx_payload_buffer(&a->ept, &room, 0));
}

/* A zero-copy sender that waits for a buffer, then, once the other has
 * one too, sends in it. */
struct lender {
	struct rpmsg_endpoint *ept;
	pthread_barrier_t *both;
	pthread_t thread;
	int sent;
	uint64_t waited_ms;
};

static void *lend_and_send(void *arg)
{
	struct lender *l = arg;
	uint64_t start = duet_clock_ms();
	uint32_t room;
	char *p = rpmsg_get_tx_payload_buffer(l->ept, &room, 1);

	l->waited_ms = duet_clock_ms() - start;
	pthread_barrier_wait(l->both);
	l->sent = p ? rpmsg_send_nocopy(l->ept, memcpy(p, "lent", 5), 5) : -ENOMEM;
	return NULL;
}

/*
 * Two zero-copy senders asleep for a buffer, and two lent buffers given
 * back unused: each sender wakes at once with a buffer of its own (not
 * at its timeout, and not both in one slot, where one buffer would be
 * lost to the other), and both sends go.
 */
static void test_released_buffers_wake_waiting_lenders(void **state)
{
	struct lender l[2];
	pthread_barrier_t both;
	struct rpmsg_stats st0, st;
	char *lent[RING];
	struct box a, b;

	(void)state;
	pair_open(&a, &b, "lenders");
	lend_every_buffer(&a, lent);
	rpmsg_set_send_timeout(drv_dev, 3000);
	rpmsg_get_stats(drv_dev, &st0);
	assert_int_equal(pthread_barrier_init(&both, NULL, 2), 0);
	for (int i = 0; i < 2; i++) {
		l[i] = (struct lender){ .ept = &a.ept, .both = &both };
		assert_int_equal(pthread_create(&l[i].thread, NULL, lend_and_send, &l[i]), 0);
	}
	/* Both asleep (each counts its wait before it sleeps). */
	do {
		sleep_ms(1);
		rpmsg_get_stats(drv_dev, &st);
	} while (st.tx_waits - st0.tx_waits < 2);
	sleep_ms(20);
	assert_int_equal(rpmsg_release_tx_buffer(&a.ept, lent[0]), 0);
	assert_int_equal(rpmsg_release_tx_buffer(&a.ept, lent[1]), 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(l[i].thread, NULL);
		assert_int_equal(l[i].sent, 5);
		assert_true(l[i].waited_ms < 1500);
	}
	pthread_barrier_destroy(&both);
	wait_count(&b.count, 2);
	assert_int_equal(atomic_load(&b.count), 2);
	for (int i = 2; i < RING; i++)
		assert_int_equal(rpmsg_release_tx_buffer(&a.ept, lent[i]), 0);
	rpmsg_set_send_timeout(drv_dev, 5000);
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/* An announcement queued because every send buffer was lent goes as soon
 * as one is given back: nothing else would send it while nobody sends. */
static void test_released_buffer_carries_a_queued_announcement(void **state)
{
	struct rpmsg_stats st0, st;
	char *lent[RING];
	struct box a, b, late, drv_late;

	(void)state;
	pair_open(&a, &b, "lender");
	lend_every_buffer(&a, lent);
	rpmsg_get_stats(drv_dev, &st0);
	box_open(&late, dev_dev, "late");
	box_open(&drv_late, drv_dev, "late");
	rpmsg_get_stats(drv_dev, &st);
	assert_int_equal(st.ns_deferred - st0.ns_deferred, 1);
	sleep_ms(20);
	assert_false(rpmsg_is_ept_ready(&late.ept)); /* the device has not heard */
	assert_int_equal(rpmsg_release_tx_buffer(&a.ept, lent[0]), 0);
	assert_true(wait_until(ept_ready, &late.ept, 2000));
	for (int i = 1; i < RING; i++)
		assert_int_equal(rpmsg_release_tx_buffer(&a.ept, lent[i]), 0);
	rpmsg_destroy_ept(&late.ept);
	rpmsg_destroy_ept(&drv_late.ept);
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/* Destroying an endpoint gives back what it holds: a held receive buffer
 * and a lent send buffer go back to the ring, and nothing of the device
 * points at the endpoint after (its memory is freed here: ASan sees any
 * use). On each side in turn. */
static void test_destroyed_endpoint_gives_back_its_buffers(void **state)
{
	struct rpmsg_device *rdevs[2] = { dev_dev, drv_dev };
	char dump[4096];

	(void)state;
	for (int side = 0; side < 2; side++) {
		struct box *keeper = calloc(1, sizeof(*keeper)), other;
		struct box *a = side ? keeper : &other, *b = side ? &other : keeper;
		struct rpmsg_device *rdev = rdevs[side];
		uint32_t room;

		assert_non_null(keeper);
		pair_open(a, b, "keeper");
		keeper->hold = true;
		assert_int_equal(rpmsg_send(&(side ? b : a)->ept, "keep me", 8), 8);
		assert_true(wait_until(got, keeper, 2000));
		assert_non_null(rpmsg_get_tx_payload_buffer(&keeper->ept, &room, 1));
		rpmsg_dump(rdev, dump, sizeof(dump));
		assert_non_null(strstr(dump, "held 1"));
		assert_non_null(strstr(dump, "lent 1"));
		rpmsg_destroy_ept(&keeper->ept);
		free(keeper);
		rpmsg_dump(rdev, dump, sizeof(dump));
		assert_non_null(strstr(dump, "held 0"));
		assert_non_null(strstr(dump, "lent 0"));
		assert_null(strstr(dump, "held by"));
		rpmsg_destroy_ept(&other.ept);
	}
	/* The same from the endpoint's own callback, the hold taken in it. */
	{
		struct rpmsg_endpoint *leaver = calloc(1, sizeof(*leaver));
		struct box a;

		assert_non_null(leaver);
		box_open(&a, drv_dev, "leaver");
		assert_int_equal(rpmsg_create_ept(leaver, dev_dev, "leaver", RPMSG_ADDR_ANY,
						  RPMSG_ADDR_ANY, hold_and_leave, NULL),
				 0);
		assert_true(wait_until(ept_ready, &a.ept, 2000));
		assert_int_equal(rpmsg_send(&a.ept, "bye", 4), 4);
		for (int i = 0; i < 1000 && !atomic_load(&left); i++)
			sleep_ms(2);
		assert_int_equal(atomic_load(&left), 1);
		rpmsg_dump(dev_dev, dump, sizeof(dump));
		assert_non_null(strstr(dump, "held 0"));
		assert_null(strstr(dump, "held by"));
		rpmsg_destroy_ept(&a.ept);
	}
	/* The driver's lent send buffer is back on its free list: it fills
	 * the whole ring again. */
	{
		struct box a, b;
		int sent = 0;

		pair_open(&a, &b, "after");
		stop_polling();
		while (rpmsg_trysend(&a.ept, "x", 2) == 2)
			sent++;
		start_polling();
		assert_int_equal(sent, RING);
		wait_count(&b.count, RING);
		assert_int_equal(atomic_load(&b.count), RING);
		rpmsg_destroy_ept(&a.ept);
		rpmsg_destroy_ept(&b.ept);
	}
}

/* ---- the peer's services remembered, at most 256 ---- */

/* With the fixture's own service, rpmsg-ping, one past what a device
 * remembers. */
#define SERVICES 256
static struct rpmsg_endpoint services[SERVICES];
static char service_names[SERVICES][RPMSG_NAME_SIZE];

static int quiet_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	(void)ept;
	(void)data;
	(void)len;
	(void)src;
	(void)priv;
	return 0;
}

static bool ns_dropped(void *arg)
{
	struct rpmsg_stats st;

	rpmsg_get_stats(drv_dev, &st);
	return st.dropped_ns >= *(uint32_t *)arg;
}

/* Announce service i (again) from the device side. */
static void announce_service(int i)
{
	assert_int_equal(rpmsg_create_ept(&services[i], dev_dev, service_names[i], RPMSG_ADDR_ANY,
					  RPMSG_ADDR_ANY, quiet_cb, NULL),
			 0);
}

/*
 * The driver side remembers 256 of the device's announced services: the
 * 257th (rpmsg-ping and 256 more) is dropped and counted, so an endpoint created for it later waits,
 * where one for the 256th binds at once. Announced again while waited for,
 * it binds all the same (a waiting endpoint needs no record). Services
 * withdrawn make room again. Announcements are handled in order, so a
 * later one arriving means the earlier ones did.
 */
static void test_at_most_256_services_are_remembered(void **state)
{
	static struct box remembered, forgotten, marker;
	struct rpmsg_stats st;
	uint32_t want;

	(void)state;
	rpmsg_get_stats(drv_dev, &st);
	want = st.dropped_ns + 1;
	atomic_store(&ndrops, 0);
	rpmsg_set_drop_cb(record_drop, NULL);
	for (int i = 0; i < SERVICES; i++) {
		snprintf(service_names[i], sizeof(service_names[i]), "svc-%d", i);
		announce_service(i);
	}
	assert_true(wait_until(ns_dropped, &want, 5000)); /* the last one */
	rpmsg_set_drop_cb(NULL, NULL);
	assert_int_equal(ndrops, 1);
	assert_string_equal(drops[0], "2 too many announcements");
	box_open(&remembered, drv_dev, service_names[SERVICES - 2]);
	assert_true(rpmsg_is_ept_ready(&remembered.ept)); /* at once: remembered */
	assert_int_equal(remembered.ept.dest_addr, services[SERVICES - 2].addr);
	box_open(&forgotten, drv_dev, service_names[SERVICES - 1]);
	sleep_ms(50);
	assert_false(rpmsg_is_ept_ready(&forgotten.ept));
	rpmsg_get_stats(drv_dev, &st);
	assert_int_equal(st.dropped_ns, want); /* that one alone */
	/* Announced again while waited for: bound, though not remembered. */
	rpmsg_destroy_ept(&services[SERVICES - 1]);
	announce_service(SERVICES - 1);
	assert_true(wait_until(ept_ready, &forgotten.ept, 2000));
	assert_int_equal(forgotten.ept.dest_addr, services[SERVICES - 1].addr);
	rpmsg_get_stats(drv_dev, &st);
	assert_int_equal(st.dropped_ns, ++want); /* the record, counted as lost */
	rpmsg_destroy_ept(&forgotten.ept);
	/* Two withdrawn: room for two, the 257th announced again and a marker
	 * after it that a waiting endpoint sees arrive. */
	rpmsg_destroy_ept(&services[0]);
	rpmsg_destroy_ept(&services[1]);
	rpmsg_destroy_ept(&services[SERVICES - 1]);
	box_open(&marker, drv_dev, "svc-marker");
	announce_service(SERVICES - 1);
	snprintf(service_names[0], sizeof(service_names[0]), "svc-marker");
	announce_service(0);
	assert_true(wait_until(ept_ready, &marker.ept, 2000));
	box_open(&forgotten, drv_dev, service_names[SERVICES - 1]);
	assert_true(rpmsg_is_ept_ready(&forgotten.ept)); /* remembered this time */
	rpmsg_get_stats(drv_dev, &st);
	assert_int_equal(st.dropped_ns, want); /* the marker fitted too */
	rpmsg_destroy_ept(&forgotten.ept);
	rpmsg_destroy_ept(&remembered.ept);
	rpmsg_destroy_ept(&marker.ept);
	rpmsg_destroy_ept(&services[0]);
	for (int i = 2; i < SERVICES; i++)
		rpmsg_destroy_ept(&services[i]);
}

/* ---- the stash, bounded ---- */

#define STASH_MSGS 40
static struct box stash_a;         /* the driver's end: sends STASH_MSGS */
static struct rpmsg_endpoint stash_b; /* the device's end: answers the first */
static _Atomic int stash_got, stash_bad, stash_answered, stash_answer_err;

static int stash_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src,
		    void *priv)
{
	int n = atomic_fetch_add(&stash_got, 1);
	int ret = 0;

	(void)src;
	(void)priv;
	if (len != sizeof(int) || memcmp(data, &n, sizeof(n)))
		atomic_fetch_add(&stash_bad, 1); /* out of order, or mangled */
	if (n != 0)
		return 0;
	/* The driver side is not served: its receive ring fills, then this
	 * send waits, stashing what the driver keeps sending, until the
	 * device's timeout. */
	while ((ret = rpmsg_send(ept, "answer", 7)) == 7)
		atomic_fetch_add(&stash_answered, 1);
	atomic_store(&stash_answer_err, ret);
	return 0;
}

/* The driver's sender: trysend, which takes its used buffers back from the
 * ring itself, where a waiting send would sleep until a notification that
 * only the driver side's poll delivers. */
static void *stash_sender(void *arg)
{
	uint64_t end = duet_clock_ms() + 20000;
	struct timespec pause = { 0, 50000 };

	(void)arg;
	for (int i = 0; i < STASH_MSGS;) {
		int ret = rpmsg_trysend(&stash_a.ept, &i, sizeof(i));

		if (ret == sizeof(i))
			i++;
		else if (ret != -EAGAIN || duet_clock_ms() > end)
			return (void *)1;
		else
			nanosleep(&pause, NULL);
	}
	return NULL;
}

/*
 * A send from a receive callback that waits copies what arrives meanwhile
 * out of the ring (the stash), at most twice the receive ring (16 here),
 * then just waits. Everything stashed is delivered afterwards, in order,
 * before anything newer.
 */
static void test_stash_is_bounded(void **state)
{
	struct rpmsg_stats st;
	pthread_t t;
	void *sender_ret;

	(void)state;
	atomic_store(&stash_got, 0);
	atomic_store(&stash_bad, 0);
	atomic_store(&stash_answered, 0);
	box_open(&stash_a, drv_dev, "stash");
	assert_int_equal(rpmsg_create_ept(&stash_b, dev_dev, "stash", RPMSG_ADDR_ANY,
					  RPMSG_ADDR_ANY, stash_cb, NULL),
			 0);
	assert_true(wait_until(ept_ready, &stash_a.ept, 2000));
	assert_true(wait_until(ept_ready, &stash_b, 2000));
	stop_polling();
	rpmsg_set_send_timeout(dev_dev, 300);
	assert_int_equal(pthread_create(&t, NULL, stash_sender, NULL), 0);
	/* The device side on this thread: the first message's callback runs
	 * here, and returns after its send timed out. */
	while (atomic_load(&stash_got) == 0)
		duet_loopback_poll_side(lb, VIRTIO_DEV_DEVICE);
	assert_int_equal(atomic_load(&stash_answer_err), -ETIMEDOUT);
	assert_int_equal(atomic_load(&stash_answered), RING);
	rpmsg_get_stats(dev_dev, &st);
	assert_int_equal(st.rx_stashed, 2 * RING);
	start_polling();
	assert_int_equal(pthread_join(t, &sender_ret), 0);
	assert_null(sender_ret);
	for (int i = 0; i < 2000 && atomic_load(&stash_got) < STASH_MSGS; i++)
		sleep_ms(1);
	assert_int_equal(atomic_load(&stash_got), STASH_MSGS);
	assert_int_equal(atomic_load(&stash_bad), 0);
	rpmsg_get_stats(dev_dev, &st);
	assert_int_equal(st.rx_stashed, 2 * RING); /* none since: nobody waited */
	assert_true(wait_until(got, &stash_a, 2000)); /* the answers came */
	rpmsg_destroy_ept(&stash_a.ept);
	rpmsg_destroy_ept(&stash_b);
}

/* ---- holding what the stash delivered ---- */

#define HOLD_ROUNDS 6
static struct rpmsg_endpoint hold_b;
static int hold_trigger;     /* the payload of this round's first message */
static _Atomic int hold_next, hold_bad; /* read by this thread while polled */
static int hold_answered, nheld_msgs;
static bool hold_done;       /* afterwards: count, hold nothing */
static _Atomic bool hold_sending; /* a round's first is in its send */
static int *held_at[HOLD_ROUNDS * RING];
static int held_val[HOLD_ROUNDS * RING];

/* Each round's first message sends until its send times out (stashing
 * what comes meanwhile); every other message is held. */
static int stash_hold_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src,
			 void *priv)
{
	int n;

	(void)src;
	(void)priv;
	memcpy(&n, data, sizeof(n));
	if (len != sizeof(n) || n != atomic_fetch_add(&hold_next, 1))
		atomic_fetch_add(&hold_bad, 1);
	if (hold_done)
		return 0;
	if (n == hold_trigger) {
		atomic_store(&hold_sending, true);
		while (rpmsg_send(ept, "answer", 7) == 7)
			hold_answered++;
		return 0;
	}
	rpmsg_hold_rx_buffer(ept, data);
	held_at[nheld_msgs] = data;
	held_val[nheld_msgs++] = n;
	return 0;
}

/* Both ends of a stash-holding pair, the device's stash_hold_cb, the
 * counts reset and the poll thread stopped: the test serves the device
 * side itself. */
static void hold_pair_open(struct box *a, const char *name)
{
	atomic_store(&hold_next, 0);
	atomic_store(&hold_bad, 0);
	atomic_store(&hold_sending, false);
	hold_answered = nheld_msgs = 0;
	hold_done = false;
	box_open(a, drv_dev, name);
	assert_int_equal(rpmsg_create_ept(&hold_b, dev_dev, name, RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
					  stash_hold_cb, NULL),
			 0);
	assert_true(wait_until(ept_ready, &a->ept, 2000));
	assert_true(wait_until(ept_ready, &hold_b, 2000));
	stop_polling();
}

/* One round: the driver sends what buffers it has (up to a ring, from
 * *sent on, the first the trigger), the device side takes them; how many
 * went. */
static int hold_round(struct box *a, int *sent)
{
	int first = *sent;

	hold_trigger = first;
	while (*sent - first < RING && rpmsg_trysend(&a->ept, sent, sizeof(*sent)) == sizeof(*sent))
		(*sent)++;
	for (int i = 0; i < 100 && hold_next < *sent && rpmsg_get_device(1); i++)
		duet_loopback_poll_side(lb, VIRTIO_DEV_DEVICE);
	return *sent - first;
}

/*
 * A receiver that holds every message, some of them delivered from the
 * stash: round after round, a callback's send waits and stashes, and the
 * copies are held. Every hold keeps its buffer (none is given back under
 * the receiver, which could not tell), and holding more than the stash's
 * bound leaves the rest in the ring, where the driver sees it.
 */
static void test_held_stash_copies_stay_held(void **state)
{
	struct rpmsg_stats st;
	struct box a;
	int sent = 0;

	(void)state;
	hold_pair_open(&a, "stash-hold");
	rpmsg_set_send_timeout(dev_dev, 20);
	for (int round = 0; round < HOLD_ROUNDS; round++) {
		if (!hold_round(&a, &sent))
			break; /* every send buffer is with the device, held */
		assert_int_equal(hold_next, sent);
	}
	assert_int_equal(hold_bad, 0);
	assert_int_equal(hold_answered, RING); /* the driver's receive ring, once */
	rpmsg_get_stats(dev_dev, &st);
	assert_true(st.rx_stashed > 0);
	/* Every held payload is still what it was. */
	for (int i = 0; i < nheld_msgs; i++)
		assert_int_equal(*held_at[i], held_val[i]);
	for (int i = 0; i < nheld_msgs; i++)
		rpmsg_release_rx_buffer(&hold_b, held_at[i]);
	hold_done = true;
	start_polling();
	/* Everything given back: the channel runs both ways again. */
	wait_count(&a.count, RING);
	assert_int_equal(a.count, RING);
	assert_int_equal(rpmsg_send(&a.ept, &sent, sizeof(sent)), sizeof(sent));
	sent++;
	for (int i = 0; i < 2000 && hold_next < sent; i++)
		sleep_ms(1);
	assert_int_equal(hold_next, sent);
	assert_int_equal(hold_bad, 0);
	assert_int_equal(rpmsg_send(&hold_b, "back", 5), 5);
	wait_count(&a.count, RING + 1);
	assert_string_equal(a.last, "back");
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&hold_b);
}

/* Takes the device side away once a round's callback is in its send;
 * how long that took. */
static _Atomic uint64_t removal_ms;

static void *remove_device_side(void *arg)
{
	uint64_t t0;

	(void)arg;
	while (!atomic_load(&hold_sending))
		sleep_ms(1);
	sleep_ms(20); /* its send is waiting, stashing */
	t0 = duet_clock_ms();
	vhost_unregister_device(duet_loopback_device(lb));
	atomic_store(&removal_ms, duet_clock_ms() - t0);
	return NULL;
}

/*
 * The device goes while a callback's send waits: the send says -ENODEV
 * at once, not at its timeout (2 s here; the removal used to wait for it,
 * in the ping service's listener, for the device's lock), the copies
 * still in the stash and those the receiver holds are freed with the
 * device (the sanitizer build's leak check), and releasing a held one
 * afterwards does nothing.
 */
static void test_removal_frees_stashed_and_held_copies(void **state)
{
	pthread_t remover;
	struct box a;
	int sent = 0;

	(void)state;
	hold_pair_open(&a, "stash-gone");
	/* A first round leaves copies held. */
	rpmsg_set_send_timeout(dev_dev, 20);
	hold_round(&a, &sent);
	assert_int_equal(hold_next, sent);
	assert_true(nheld_msgs > 0);
	/* In the second, the device goes while the callback's send waits. */
	rpmsg_set_send_timeout(dev_dev, 2000);
	atomic_store(&hold_sending, false);
	assert_int_equal(pthread_create(&remover, NULL, remove_device_side, NULL), 0);
	hold_round(&a, &sent);
	pthread_join(remover, NULL);
	assert_true(atomic_load(&removal_ms) < 1000);
	assert_null(rpmsg_get_device(1)); /* the device side went */
	assert_true(hold_next < sent);     /* with copies undelivered */
	assert_int_equal(hold_bad, 0);
	for (int i = 0; i < nheld_msgs; i++)
		rpmsg_release_rx_buffer(&hold_b, held_at[i]); /* nothing: they went */
	rpmsg_destroy_ept(&hold_b);
	start_polling();
	rpmsg_destroy_ept(&a.ept);
}

/* ---- a bad message met while stashing ---- */

/* Whether every receive buffer of the driver side rdev is posted (none
 * lost), as its dump says. */
static bool rx_all_posted(struct rpmsg_device *rdev)
{
	char text[4096], want[64];

	assert_true(rpmsg_dump(rdev, text, sizeof(text)) > 0);
	snprintf(want, sizeof(want), "RX buffer, total %d, pending %d,", RING, RING);
	return strstr(text, want) != NULL;
}

static struct box stash_drop_a;
static _Atomic int stash_drop_sent, stash_drop_err;

/* On "go": send until the send times out, stashing meanwhile. */
static int stash_drop_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src,
			 void *priv)
{
	int ret;

	box_cb(ept, data, len, src, priv);
	if (strcmp(data, "go"))
		return 0;
	while ((ret = rpmsg_send(ept, "x", 1)) == 1)
		atomic_fetch_add(&stash_drop_sent, 1);
	atomic_store(&stash_drop_err, ret);
	return 0;
}

/* A raw message from the device side's ring: the `size` bytes at data
 * after a header claiming `len`, `used` reported (a hostile device can make
 * them disagree). */
static void raw_bytes_to_driver(struct virtqueue *to_driver, uint32_t src, uint32_t dst,
				const void *data, size_t size, uint16_t len, uint32_t used)
{
	struct { uint32_t src, dst, res; uint16_t len, flags; } hdr = { src, dst, 0, len, 0 };
	struct virtqueue_buf vb;
	size_t n;
	int h = vhost_get_vq_buffers(to_driver, &vb, 1, &n);

	assert_true(h >= 0 && vb.writable);
	memcpy(vb.buf, &hdr, sizeof(hdr));
	memcpy((char *)vb.buf + sizeof(hdr), data, size);
	assert_int_equal(virtqueue_add_consumed_buffer(to_driver, (uint16_t)h, used), 0);
}

/* raw_bytes_to_driver with a text, its NUL included. */
static void raw_to_driver(struct virtqueue *to_driver, uint32_t src, uint32_t dst,
			  const char *text, uint16_t len, uint32_t used)
{
	raw_bytes_to_driver(to_driver, src, dst, text, strlen(text) + 1, len, used);
}

/* The device side, played on its raw ring: announce `name` at `addr`. */
static void raw_announce(struct virtqueue *to_driver, const char *name, uint32_t addr)
{
	struct { char name[32]; uint32_t addr, flags; } m = { "", addr, RPMSG_NS_CREATE };

	strcpy(m.name, name);
	raw_bytes_to_driver(to_driver, addr, RPMSG_NS_EPT_ADDR, &m, sizeof(m), sizeof(m),
			    16u + sizeof(m));
}

/*
 * A message with a bad header that arrives while a callback's send waits
 * is dropped and counted by the stash as by a delivery, its buffer goes
 * back, and the good message behind it is stashed and delivered after.
 */
static void test_stash_drops_a_bad_message(void **state)
{
	struct virtqueue *to_driver = duet_loopback_device(lb)->vrings_info[0].vq;
	struct rpmsg_stats st0, st;
	struct box b;

	(void)state;
	atomic_store(&stash_drop_sent, 0);
	memset(&stash_drop_a, 0, sizeof(stash_drop_a));
	stash_drop_a.ept.priv = &stash_drop_a;
	assert_int_equal(rpmsg_create_ept(&stash_drop_a.ept, drv_dev, "stash-drop", RPMSG_ADDR_ANY,
					  RPMSG_ADDR_ANY, stash_drop_cb, NULL),
			 0);
	box_open(&b, dev_dev, "stash-drop");
	assert_true(wait_until(ept_ready, &stash_drop_a.ept, 2000));
	assert_true(wait_until(ept_ready, &b.ept, 2000));
	stop_polling();
	rpmsg_get_stats(drv_dev, &st0);
	rpmsg_set_send_timeout(drv_dev, 20);
	/* The device side, played on its raw ring: "go", a header whose
	 * length is past its buffer, then a good message. */
	raw_to_driver(to_driver, b.ept.addr, stash_drop_a.ept.addr, "go", 3, 16 + 3);
	raw_to_driver(to_driver, b.ept.addr, stash_drop_a.ept.addr, "bad", 600, 16 + 4);
	raw_to_driver(to_driver, b.ept.addr, stash_drop_a.ept.addr, "after", 6, 16 + 6);
	virtqueue_kick(to_driver);
	for (int i = 0; i < 100 && atomic_load(&stash_drop_a.count) < 2; i++)
		duet_loopback_poll_side(lb, VIRTIO_DEV_DRIVER);
	assert_int_equal(atomic_load(&stash_drop_err), -ETIMEDOUT);
	assert_int_equal(atomic_load(&stash_drop_sent), RING);
	assert_int_equal(atomic_load(&stash_drop_a.count), 2);
	assert_string_equal(stash_drop_a.last, "after");
	rpmsg_get_stats(drv_dev, &st);
	assert_int_equal(st.rx_stashed - st0.rx_stashed, 1);
	assert_int_equal(st.dropped_len - st0.dropped_len, 1);
	/* Every receive buffer is back: the channel goes on both ways. */
	rpmsg_set_send_timeout(drv_dev, 1000);
	start_polling();
	wait_count(&b.count, RING);
	assert_int_equal(b.count, RING);
	assert_int_equal(rpmsg_send(&stash_drop_a.ept, "still here", 11), 11);
	wait_count(&b.count, RING + 1);
	assert_string_equal(b.last, "still here");
	assert_int_equal(rpmsg_send(&b.ept, "and back", 9), 9);
	wait_count(&stash_drop_a.count, 3);
	assert_string_equal(stash_drop_a.last, "and back");
	stop_polling();
	assert_true(rx_all_posted(drv_dev)); /* the dropped one's buffer too */
	start_polling();
	rpmsg_destroy_ept(&stash_drop_a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/* The dump fills what room it is given, NUL-terminated, and returns what
 * it wrote: the whole text's length when it fits, one less than the room
 * when it does not (snprintf's room, strlcpy's return). */
static void test_dump_truncates_to_its_buffer(void **state)
{
	static char whole[8192], part[8192];
	int n;

	(void)state;
	/* Nothing moving, so that every dump is the same text: the setup's
	 * announcements served to the end, then nobody serving. */
	stop_polling();
	while (duet_loopback_poll(lb) > 0)
		;
	n = rpmsg_dump(drv_dev, whole, sizeof(whole));
	assert_true(n > 100 && (size_t)n < sizeof(whole) - 1);
	assert_int_equal(strlen(whole), n);
	memset(part, 'x', sizeof(part));
	assert_int_equal(rpmsg_dump(drv_dev, part, (size_t)n + 1), n); /* just fits */
	assert_string_equal(part, whole);
	memset(part, 'x', sizeof(part));
	assert_int_equal(rpmsg_dump(drv_dev, part, (size_t)n), n - 1); /* one short */
	assert_int_equal(strlen(part), n - 1);
	assert_memory_equal(part, whole, (size_t)n - 1);
	assert_int_equal(part[n], 'x'); /* nothing past the room */
	assert_int_equal(rpmsg_dump(drv_dev, part, 0), 0);
	start_polling();
}

static void test_hostile_messages_are_dropped_and_counted(void **state)
{
	struct virtqueue *to_driver = duet_loopback_device(lb)->vrings_info[0].vq;
	struct rpmsg_stats st0, st;
	struct box a, b;
	struct virtqueue_buf vb;
	size_t n;
	int h;

	(void)state;
	pair_open(&a, &b, "victim");
	rpmsg_get_stats(drv_dev, &st0);
	atomic_store(&ndrops, 0);
	rpmsg_set_drop_cb(record_drop, NULL);
	/* Play a hostile device on the raw ring: stop the rpmsg core first. */
	stop_polling();
	{
		struct raw_hdr { uint32_t src, dst, res; uint16_t len, flags; } hdr;
		char ns[40];

		/* 1: a length past its buffer */
		h = vhost_get_vq_buffers(to_driver, &vb, 1, &n);
		assert_true(h >= 0 && vb.writable);
		hdr = (struct raw_hdr){ b.ept.addr, a.ept.addr, 0, 600, 0 };
		memcpy(vb.buf, &hdr, sizeof(hdr));
		assert_int_equal(virtqueue_add_consumed_buffer(to_driver, (uint16_t)h, 256), 0);
		/* 2: an unknown destination */
		h = vhost_get_vq_buffers(to_driver, &vb, 1, &n);
		hdr = (struct raw_hdr){ b.ept.addr, 4000, 0, 4, 0 };
		memcpy(vb.buf, &hdr, sizeof(hdr));
		assert_int_equal(virtqueue_add_consumed_buffer(to_driver, (uint16_t)h, 20), 0);
		/* 3: a name-service message without a NUL */
		h = vhost_get_vq_buffers(to_driver, &vb, 1, &n);
		hdr = (struct raw_hdr){ 1024, RPMSG_NS_EPT_ADDR, 0, 40, 0 };
		memset(ns, 'A', sizeof(ns));
		memcpy(vb.buf, &hdr, sizeof(hdr));
		memcpy((char *)vb.buf + 16, ns, sizeof(ns));
		assert_int_equal(virtqueue_add_consumed_buffer(to_driver, (uint16_t)h, 56), 0);
		/* 4: a used length shorter than a header */
		h = vhost_get_vq_buffers(to_driver, &vb, 1, &n);
		assert_int_equal(virtqueue_add_consumed_buffer(to_driver, (uint16_t)h, 3), 0);
		/* 5-8: name-service messages one byte short, with an empty
		 * name, with unknown flags, from a reserved address */
		for (int k = 0; k < 4; k++) {
			struct { char name[32]; uint32_t addr, flags; } m = { "svc", 1024, 0 };
			uint16_t len = k == 0 ? sizeof(m) - 1 : sizeof(m);

			m.name[0] = k == 1 ? '\0' : m.name[0];
			m.flags = k == 2 ? 2 : m.flags;
			m.addr = k == 3 ? 5 : m.addr;
			h = vhost_get_vq_buffers(to_driver, &vb, 1, &n);
			assert_true(h >= 0);
			hdr = (struct raw_hdr){ 1024, RPMSG_NS_EPT_ADDR, 0, len, 0 };
			memcpy(vb.buf, &hdr, sizeof(hdr));
			memcpy((char *)vb.buf + 16, &m, sizeof(m));
			assert_int_equal(virtqueue_add_consumed_buffer(to_driver, (uint16_t)h,
								       16u + len),
					 0);
		}
		virtqueue_kick(to_driver);
	}
	start_polling();
	/* The channel goes on: a good message after the bad ones arrives. */
	assert_int_equal(rpmsg_send(&b.ept, "still here", 11), 11);
	assert_true(wait_until(got, &a, 2000));
	assert_string_equal(a.last, "still here");
	assert_int_equal(a.count, 1);
	/* 9, once the ring has buffers again: a service at RPMSG_ADDR_ANY,
	 * which no endpoint can have. */
	stop_polling();
	raw_announce(to_driver, "svc", RPMSG_ADDR_ANY);
	virtqueue_kick(to_driver);
	start_polling();
	{
		uint32_t want = st0.dropped_ns + 6;

		assert_true(wait_until(ns_dropped, &want, 2000));
	}
	rpmsg_get_stats(drv_dev, &st);
	assert_int_equal(st.dropped_len - st0.dropped_len, 2);
	assert_int_equal(st.dropped_dst - st0.dropped_dst, 1);
	assert_int_equal(st.dropped_ns - st0.dropped_ns, 6);
	/* Each was reported, in order, with what was wrong. */
	assert_int_equal(ndrops, 9);
	assert_string_equal(drops[0], "0 header length past its buffer");
	assert_string_equal(drops[1], "1 no endpoint at the destination");
	assert_string_equal(drops[2], "2 name-service name without NUL");
	assert_string_equal(drops[3], "0 buffer shorter than a header");
	assert_string_equal(drops[4], "2 name-service message of the wrong size");
	assert_string_equal(drops[5], "2 name-service name empty");
	assert_string_equal(drops[6], "2 name-service flags unknown");
	assert_string_equal(drops[7], "2 name-service address reserved");
	assert_string_equal(drops[8], "2 name-service address reserved");
	/* A flood to nowhere: every one dropped, the channel still works. */
	rpmsg_set_drop_cb(NULL, NULL);
	for (int i = 0; i < 10000; i++)
		assert_int_equal(rpmsg_sendto(&b.ept, "x", 1, 4000), 1);
	assert_int_equal(rpmsg_send(&b.ept, "after", 6), 6);
	wait_count(&a.count, 2);
	assert_int_equal(a.count, 2);
	assert_string_equal(a.last, "after");
	rpmsg_get_stats(drv_dev, &st0);
	assert_int_equal(st0.dropped_dst - st.dropped_dst, 10000);
	assert_int_equal(ndrops, 9); /* none more: the callback was cleared */
	rpmsg_destroy_ept(&a.ept);
	rpmsg_destroy_ept(&b.ept);
}

/* After a hostile peer's turn: the channel goes on, both ways; then the
 * test's buffer and endpoints go. */
static void channel_goes_on(struct box *a, struct box *b, struct virtio_device *vdev, void *mem)
{
	assert_int_equal(rpmsg_send(&a->ept, "still here", 11), 11);
	assert_true(wait_until(got, b, 2000));
	assert_string_equal(b->last, "still here");
	assert_int_equal(rpmsg_send(&b->ept, "and back", 9), 9);
	assert_true(wait_until(got, a, 2000));
	assert_string_equal(a->last, "and back");
	virtio_free_buf(vdev, mem);
	rpmsg_destroy_ept(&a->ept);
	rpmsg_destroy_ept(&b->ept);
}

/*
 * A hostile driver: on the device's receive queue, a lone writable buffer,
 * a chain of two, neither of which rpmsg sends, and an empty message. The
 * device returns each unused, counts and reports each, and the channel
 * goes on.
 */
static void test_hostile_driver_buffers_are_returned_and_counted(void **state)
{
	struct virtio_device *vdev = duet_loopback_driver(lb);
	struct virtqueue *to_device = vdev->vrings_info[1].vq;
	struct rpmsg_stats st0, st;
	struct box a, b;
	char dump[2048];
	uint8_t *mem;
	uint32_t len;
	int c1, c2, c3;

	(void)state;
	pair_open(&a, &b, "victim2");
	rpmsg_get_stats(dev_dev, &st0);
	atomic_store(&ndrops, 0);
	rpmsg_set_drop_cb(record_drop, NULL);
	/* Play the hostile driver on its raw ring, rpmsg stopped. Let what is
	 * under way finish and the driver take back its used send buffers
	 * (dump does), so that what comes back next is ours. */
	stop_polling();
	while (duet_loopback_poll(lb) > 0)
		;
	rpmsg_dump(drv_dev, dump, sizeof(dump));
	mem = virtio_alloc_buf(vdev, 64, 16);
	assert_non_null(mem);
	{
		struct virtqueue_buf chain[2] = { { mem, 16, false }, { mem + 16, 16, false } };

		assert_int_equal(virtqueue_add_one(to_device, mem + 32, 32, true, &c1), 0);
		assert_int_equal(virtqueue_add_buffer(to_device, chain, 2, 0, &c2), 0);
		/* An empty message: on this side no message, and a fault (on
		 * the driver side an empty buffer is a lent one given back). */
		assert_int_equal(virtqueue_add_one(to_device, mem + 48, 0, false, &c3), 0);
		virtqueue_kick(to_device);
	}
	while (duet_loopback_poll_side(lb, VIRTIO_DEV_DEVICE) > 0)
		;
	/* Both came back unused, in order, and nothing else did. */
	len = 99;
	assert_ptr_equal(virtqueue_get_buffer(to_device, &len, NULL), &c1);
	assert_int_equal(len, 0);
	assert_ptr_equal(virtqueue_get_buffer(to_device, &len, NULL), &c2);
	assert_int_equal(len, 0);
	assert_ptr_equal(virtqueue_get_buffer(to_device, &len, NULL), &c3);
	assert_int_equal(len, 0);
	assert_null(virtqueue_get_buffer(to_device, NULL, NULL));
	start_polling();
	rpmsg_set_drop_cb(NULL, NULL);
	rpmsg_get_stats(dev_dev, &st);
	assert_int_equal(st.dropped_other - st0.dropped_other, 2);
	assert_int_equal(st.dropped_len - st0.dropped_len, 1);
	assert_int_equal(ndrops, 3);
	assert_string_equal(drops[0], "3 received a writable buffer");
	assert_string_equal(drops[1], "3 received a chain, not one buffer");
	assert_string_equal(drops[2], "0 buffer shorter than a header");
	channel_goes_on(&a, &b, vdev, mem);
}

/* Play the hostile driver on the device's send queue (the driver's
 * receive queue, to_driver): rpmsg stopped, every receive buffer it posted
 * used by device sends from b and taken off the used ring into stolen[].
 * Returns how many. */
static int steal_receive_buffers(struct box *b, struct virtqueue *to_driver, void *stolen[RING])
{
	int n = 0, k = 0, ret;

	stop_polling();
	while (duet_loopback_poll(lb) > 0)
		;
	while ((ret = rpmsg_trysend(&b->ept, "lost", 5)) == 5)
		n++;
	assert_int_equal(ret, -EAGAIN);
	assert_true(n > 0);
	while (k < RING && (stolen[k] = virtqueue_get_buffer(to_driver, NULL, NULL)))
		k++;
	assert_int_equal(k, n);
	return k;
}

/* ... and rpmsg's own buffers back where they were, polling again: the
 * channel goes on (a is the driver's endpoint). */
static void return_receive_buffers(struct box *a, struct virtqueue *to_driver,
				   void *const stolen[], int k)
{
	for (int i = 0; i < k; i++)
		assert_int_equal(virtqueue_add_one(to_driver, stolen[i],
						   (uint32_t)rpmsg_get_rx_buffer_size(&a->ept) +
							   RPMSG_HDR_SIZE,
						   true, stolen[i]),
				 0);
	virtqueue_kick(to_driver);
	start_polling();
}

/*
 * A hostile driver on the device's send queue: a readable buffer, one too
 * small for a header, and a chain, posted where rpmsg's receive buffers
 * were. The device's send skips all three, returns each unused and counts
 * it, and finds no buffer; with rpmsg's buffers posted again it sends.
 */
static void test_hostile_send_buffers_are_returned_and_counted(void **state)
{
	struct virtio_device *vdev = duet_loopback_driver(lb);
	struct virtqueue *to_driver = vdev->vrings_info[0].vq;
	void *stolen[RING];
	struct rpmsg_stats st0, st;
	struct box a, b;
	uint8_t *mem;
	uint32_t len;
	int c[3], k;

	(void)state;
	pair_open(&a, &b, "victim3");
	atomic_store(&ndrops, 0);
	rpmsg_set_drop_cb(record_drop, NULL);
	k = steal_receive_buffers(&b, to_driver, stolen);
	rpmsg_get_stats(dev_dev, &st0);
	mem = virtio_alloc_buf(vdev, 128, 16);
	assert_non_null(mem);
	{
		struct virtqueue_buf chain[2] = { { mem + 64, 32, true }, { mem + 96, 32, true } };

		assert_int_equal(virtqueue_add_one(to_driver, mem, 64, false, &c[0]), 0);
		assert_int_equal(virtqueue_add_one(to_driver, mem + 32, 16, true, &c[1]), 0);
		assert_int_equal(virtqueue_add_buffer(to_driver, chain, 0, 2, &c[2]), 0);
		virtqueue_kick(to_driver);
	}
	assert_int_equal(rpmsg_trysend(&b.ept, "no room", 8), -EAGAIN);
	/* All three came back unused, in order, each counted once. */
	for (int i = 0; i < 3; i++) {
		len = 99;
		assert_ptr_equal(virtqueue_get_buffer(to_driver, &len, NULL), &c[i]);
		assert_int_equal(len, 0);
	}
	assert_null(virtqueue_get_buffer(to_driver, NULL, NULL));
	rpmsg_get_stats(dev_dev, &st);
	assert_int_equal(st.dropped_other - st0.dropped_other, 3);
	assert_int_equal(ndrops, 3);
	assert_string_equal(drops[0], "3 send buffer not writable");
	assert_string_equal(drops[1], "3 send buffer too small");
	assert_string_equal(drops[2], "3 send buffer is a chain, not one buffer");
	/* Under every head of the ring, head 0 among them, a read-only buffer
	 * comes back unused and counted: the free heads go round in order. */
	{
		bool head0 = false;

		for (int i = 0; i < RING; i++) {
			uint16_t head = UINT16_MAX;

			assert_int_equal(virtqueue_add_one(to_driver, mem, 64, false, &c[0]), 0);
			virtqueue_kick(to_driver);
			assert_int_equal(rpmsg_trysend(&b.ept, "no room", 8), -EAGAIN);
			len = 99;
			assert_ptr_equal(virtqueue_get_buffer(to_driver, &len, &head), &c[0]);
			assert_int_equal(len, 0);
			head0 |= head == 0;
		}
		assert_true(head0);
		rpmsg_get_stats(dev_dev, &st);
		assert_int_equal(st.dropped_other - st0.dropped_other, 3 + RING);
	}
	/* A burst into buffers smaller than agreed: what fits goes; the first
	 * message that does not fit ends the burst, its buffer given back
	 * unused; nothing is left taken. */
	{
		const void *datas[2] = { "burst", "too long for 16 B" };
		int lens[2] = { 6, 18 };

		assert_int_equal(virtqueue_add_one(to_driver, mem, 32, true, &c[0]), 0);
		assert_int_equal(virtqueue_add_one(to_driver, mem + 32, 32, true, &c[1]), 0);
		assert_int_equal(rpmsg_trysend_burst(&b.ept, datas, lens, 2), 1);
		len = 99;
		assert_ptr_equal(virtqueue_get_buffer(to_driver, &len, NULL), &c[0]);
		assert_int_equal(len, RPMSG_HDR_SIZE + 6);
		assert_memory_equal(mem + RPMSG_HDR_SIZE, "burst", 6);
		assert_ptr_equal(virtqueue_get_buffer(to_driver, &len, NULL), &c[1]);
		assert_int_equal(len, 0);
		assert_null(virtqueue_get_buffer(to_driver, NULL, NULL));
		assert_int_equal(rpmsg_trysend_burst(&b.ept, datas, lens, 2), -EAGAIN);
	}
	/* A lone send the same: refused, the buffer given back unused, and
	 * the next buffer still used by a message that fits it exactly. */
	assert_int_equal(virtqueue_add_one(to_driver, mem, 32, true, &c[0]), 0);
	assert_int_equal(rpmsg_trysend(&b.ept, "too long for 16 B", 18), -EMSGSIZE);
	len = 99;
	assert_ptr_equal(virtqueue_get_buffer(to_driver, &len, NULL), &c[0]);
	assert_int_equal(len, 0);
	assert_int_equal(virtqueue_add_one(to_driver, mem + 32, 32, true, &c[1]), 0);
	assert_int_equal(rpmsg_trysend(&b.ept, "0123456789abcdef", 16), 16);
	assert_ptr_equal(virtqueue_get_buffer(to_driver, &len, NULL), &c[1]);
	assert_int_equal(len, RPMSG_HDR_SIZE + 16);
	assert_memory_equal(mem + 32 + RPMSG_HDR_SIZE, "0123456789abcdef", 16);
	assert_null(virtqueue_get_buffer(to_driver, NULL, NULL));
	/* Zero copy the same: the small buffer is lent with its own room, a
	 * send past that room is refused and leaves it lent, and one that
	 * fits it goes. */
	assert_int_equal(virtqueue_add_one(to_driver, mem, 32, true, &c[0]), 0);
	{
		uint32_t room = 0;
		char *p = rpmsg_get_tx_payload_buffer(&b.ept, &room, 0);

		assert_non_null(p);
		assert_int_equal(room, 32 - RPMSG_HDR_SIZE);
		assert_int_equal(rpmsg_send_nocopy(&b.ept, p, (int)room + 1), -EMSGSIZE);
		memcpy(p, "fedcba9876543210", 16);
		assert_int_equal(rpmsg_send_nocopy(&b.ept, p, 16), 16);
	}
	len = 99;
	assert_ptr_equal(virtqueue_get_buffer(to_driver, &len, NULL), &c[0]);
	assert_int_equal(len, RPMSG_HDR_SIZE + 16);
	assert_memory_equal(mem + RPMSG_HDR_SIZE, "fedcba9876543210", 16);
	assert_null(virtqueue_get_buffer(to_driver, NULL, NULL));
	rpmsg_set_drop_cb(NULL, NULL);
	return_receive_buffers(&a, to_driver, stolen, k);
	channel_goes_on(&a, &b, vdev, mem);
}

/* A hostile driver that posts each refused buffer again the moment the
 * device gives it back: from the drop callback, which the device calls for
 * each, so the next look finds it. Up to 10,000 times. */
static struct virtqueue *refeed_vq;
static _Atomic int refeeds;

static void refeed_drop(struct rpmsg_device *rdev, const struct rpmsg_drop *d, void *priv)
{
	uint8_t *c;

	(void)rdev;
	(void)d;
	(void)priv;
	if (atomic_fetch_add(&refeeds, 1) >= 10000)
		return;
	c = virtqueue_get_buffer(refeed_vq, NULL, NULL);
	if (c)
		virtqueue_add_one(refeed_vq, c, 64, false, c);
}

/*
 * A ring that holds only buffers rpmsg refuses, each posted again as soon
 * as it is given back, does not keep a send looking: the device looks at
 * no more than a ring of refused buffers per take, then the send fails or
 * waits as with no buffer, and a timed one ends at its timeout.
 */
static void test_refused_buffers_do_not_keep_a_send_looking(void **state)
{
	struct virtio_device *vdev = duet_loopback_driver(lb);
	struct virtqueue *to_driver = vdev->vrings_info[0].vq;
	void *stolen[RING];
	struct box a, b;
	uint8_t *mem;
	int k;

	(void)state;
	pair_open(&a, &b, "victim5");
	k = steal_receive_buffers(&b, to_driver, stolen);
	mem = virtio_alloc_buf(vdev, 64, 16);
	assert_non_null(mem);
	assert_int_equal(virtqueue_add_one(to_driver, mem, 64, false, mem), 0);
	refeed_vq = to_driver;
	atomic_store(&refeeds, 0);
	rpmsg_set_drop_cb(refeed_drop, NULL);
	assert_int_equal(rpmsg_trysend(&b.ept, "no room", 8), -EAGAIN);
	assert_true(atomic_load(&refeeds) > 0);
	assert_true(atomic_load(&refeeds) <= RING);
	atomic_store(&refeeds, 0);
	rpmsg_set_send_timeout(dev_dev, 50);
	assert_int_equal(rpmsg_send(&b.ept, "no room", 8), -ETIMEDOUT);
	assert_true(atomic_load(&refeeds) < 10000);
	rpmsg_set_send_timeout(dev_dev, 5000);
	rpmsg_set_drop_cb(NULL, NULL);
	/* The refused buffer back here, then rpmsg's own: the channel goes on. */
	assert_int_equal(rpmsg_trysend(&b.ept, "no room", 8), -EAGAIN);
	assert_ptr_equal(virtqueue_get_buffer(to_driver, NULL, NULL), mem);
	return_receive_buffers(&a, to_driver, stolen, k);
	channel_goes_on(&a, &b, vdev, mem);
}

/* ---- listeners ---- */

static _Atomic int created, destroyed, bound;
static char bound_name[RPMSG_NAME_SIZE];

static void on_created(struct rpmsg_device *rdev, void *priv)
{
	(void)rdev;
	(void)priv;
	created++;
}

static void on_destroyed(struct rpmsg_device *rdev, void *priv)
{
	(void)rdev;
	(void)priv;
	destroyed++;
}

static bool on_match(struct rpmsg_device *rdev, const char *name, uint32_t dest, void *priv)
{
	(void)rdev;
	(void)dest;
	(void)priv;
	return !strcmp(name, "late-service");
}

static void on_bind(struct rpmsg_device *rdev, const char *name, uint32_t dest, void *priv)
{
	(void)rdev;
	(void)dest;
	(void)priv;
	strcpy(bound_name, name);
	bound++;
}

static void test_late_listener_gets_the_announcement(void **state)
{
	struct box b;

	(void)state;
	created = destroyed = bound = 0;
	/* The device side announces a name nobody on the driver side has. */
	box_open(&b, dev_dev, "late-service");
	sleep_ms(100);
	assert_int_equal(bound, 0);
	/* A listener registered afterwards still hears of it, and of the
	 * devices already there. */
	assert_int_equal(rpmsg_register_callback(&created, on_created, on_destroyed, on_match,
						 on_bind), 0);
	assert_int_equal(created, 2);
	assert_int_equal(bound, 1);
	assert_string_equal(bound_name, "late-service");
	rpmsg_unregister_callback(&created);
	rpmsg_destroy_ept(&b.ept);
}

/* The binds of announced_once's listener, in order. */
static char binds[4][RPMSG_NAME_SIZE];
static _Atomic int nbinds;

/* The driver side's offers only: the device side hears the driver
 * side's announcements (the endpoint the test creates). */
static bool match_once(struct rpmsg_device *rdev, const char *name, uint32_t dest, void *priv)
{
	(void)dest;
	(void)priv;
	return rdev == drv_dev && !strncmp(name, "once-", 5);
}

static void bind_once(struct rpmsg_device *rdev, const char *name, uint32_t dest, void *priv)
{
	(void)rdev;
	(void)dest;
	(void)priv;
	if (nbinds < 4)
		strcpy(binds[nbinds], name);
	nbinds++;
}

static bool binds_reach(void *arg)
{
	return nbinds >= *(int *)arg;
}

/*
 * A listener is offered each service once: not again when the peer
 * announces it a second time at the same address (a peer may repeat
 * itself), and not at all when an endpoint here already has its name and
 * address. Each step ends with a marker announcement, which is handled
 * after the one before it.
 */
static void test_service_offered_once(void **state)
{
	struct virtqueue *to_driver = duet_loopback_device(lb)->vrings_info[0].vq;
	struct rpmsg_endpoint mine;
	int want;

	(void)state;
	nbinds = 0;
	assert_int_equal(rpmsg_register_callback(&nbinds, NULL, NULL, match_once, bind_once), 0);
	stop_polling();
	raw_announce(to_driver, "once-svc", 1500);
	virtqueue_kick(to_driver);
	start_polling();
	want = 1;
	assert_true(wait_until(binds_reach, &want, 2000));
	/* Again, once it was offered and taken. */
	stop_polling();
	raw_announce(to_driver, "once-svc", 1500);
	raw_announce(to_driver, "once-marker", 1501);
	virtqueue_kick(to_driver);
	start_polling();
	want = 2;
	assert_true(wait_until(binds_reach, &want, 2000));
	/* An endpoint here with the name, bound to the address already. */
	assert_int_equal(rpmsg_create_ept(&mine, drv_dev, "once-mine", RPMSG_ADDR_ANY, 1502,
					  quiet_cb, NULL),
			 0);
	stop_polling();
	raw_announce(to_driver, "once-mine", 1502);
	raw_announce(to_driver, "once-marker2", 1503);
	virtqueue_kick(to_driver);
	start_polling();
	want = 3;
	assert_true(wait_until(binds_reach, &want, 2000));
	sleep_ms(50); /* time for a wrong bind to show */
	assert_int_equal(nbinds, 3);
	assert_string_equal(binds[0], "once-svc");
	assert_string_equal(binds[1], "once-marker");
	assert_string_equal(binds[2], "once-marker2");
	rpmsg_unregister_callback(&nbinds);
	rpmsg_destroy_ept(&mine);
}

static void test_listener_sees_devices_go(void **state)
{
	(void)state;
	/* teardown unregisters the devices: destroyed runs for each. */
	created = destroyed = 0;
	assert_int_equal(rpmsg_register_callback(&destroyed, on_created, on_destroyed, NULL, NULL), 0);
	assert_int_equal(created, 2);
	stop_polling();
	virtio_unregister_device(duet_loopback_driver(lb));
	vhost_unregister_device(duet_loopback_device(lb));
	assert_int_equal(destroyed, 2);
	rpmsg_unregister_callback(&destroyed);
}

static void test_endpoint_churn(void **state)
{
	char dump[4096];
	struct box peer;

	(void)state;
	box_open(&peer, dev_dev, "churn");
	for (int i = 0; i < 10000; i++) {
		struct rpmsg_endpoint e;

		e.priv = &peer;
		assert_int_equal(rpmsg_create_ept(&e, drv_dev, "churn", RPMSG_ADDR_ANY,
						  RPMSG_ADDR_ANY, box_cb, NULL), 0);
		rpmsg_destroy_ept(&e);
	}
	/* Every create and destroy reached the peer; nothing is left over. */
	sleep_ms(200);
	rpmsg_dump(drv_dev, dump, sizeof(dump));
	assert_null(strstr(dump, "ept churn"));
	/* 20,000 announcements sent, all consumed: none pending any more. */
	assert_non_null(strstr(dump, "TX buffer, total "));
	assert_non_null(strstr(dump, ", pending 0, lent 0\n"));
	rpmsg_dump(dev_dev, dump, sizeof(dump));
	assert_non_null(strstr(dump, "ept churn"));
	assert_non_null(strstr(dump, "dest any"));
	assert_int_equal(peer.unbound > 0, 1);
	rpmsg_destroy_ept(&peer.ept);
}

/* ---- many endpoints on one device ---- */

#define MANY 48

static struct box many[MANY];
static int many_want[MANY]; /* messages each box should have by now */

static bool many_got_all(void *arg)
{
	(void)arg;
	for (int i = 0; i < MANY; i++)
		if (atomic_load(&many[i].count) < many_want[i])
			return false;
	return true;
}

/* Send "to <address>" from `from` to each open box, every one expecting it. */
static void send_to_each(struct rpmsg_endpoint *from, const bool open[])
{
	for (int i = 0; i < MANY; i++) {
		char msg[32];
		int len = snprintf(msg, sizeof(msg), "to %u", (unsigned int)many[i].ept.addr);

		assert_int_equal(rpmsg_sendto(from, msg, len + 1, many[i].ept.addr), len + 1);
		many_want[i] += open[i];
	}
	assert_true(wait_until(many_got_all, NULL, 3000));
}

/* Each box got exactly what it was sent, the last being to its address. */
static void check_each(void)
{
	for (int i = 0; i < MANY; i++) {
		char want[32];

		snprintf(want, sizeof(want), "to %u", (unsigned int)many[i].ept.addr);
		assert_int_equal(atomic_load(&many[i].count), many_want[i]);
		if (many_want[i])
			assert_string_equal(many[i].last, want);
	}
}

static void many_open(int i)
{
	/* Half at free addresses (given out in order), half at addresses 16
	 * apart: both must spread over the lookup's chains, and neither may
	 * reach another endpoint's messages. */
	uint32_t addr = i % 2 ? 5000u + 16u * (uint32_t)i : RPMSG_ADDR_ANY;

	memset(&many[i], 0, sizeof(many[i]));
	many[i].ept.priv = &many[i];
	assert_int_equal(rpmsg_create_ept(&many[i].ept, dev_dev, NULL, addr, RPMSG_ADDR_ANY,
					  box_cb, NULL), 0);
	many_want[i] = 0;
}

static void test_many_endpoints_each_get_their_own_messages(void **state)
{
	struct rpmsg_stats st0, st;
	struct rpmsg_endpoint dup;
	struct box src;
	bool open[MANY];

	(void)state;
	box_open(&src, drv_dev, NULL);
	for (int i = 0; i < MANY; i++) {
		many_open(i);
		open[i] = true;
	}
	send_to_each(&src.ept, open);
	check_each();
	/* An address in use stays its owner's. */
	dup.priv = NULL;
	assert_int_equal(rpmsg_create_ept(&dup, dev_dev, NULL, many[7].ept.addr, RPMSG_ADDR_ANY,
					  box_cb, NULL), -EBUSY);
	/* Close every third, from the middle of the chains as well as their
	 * ends: what they are sent is dropped, the rest still arrives. */
	for (int i = 0; i < MANY; i += 3) {
		rpmsg_destroy_ept(&many[i].ept);
		open[i] = false;
	}
	rpmsg_get_stats(dev_dev, &st0);
	send_to_each(&src.ept, open);
	sleep_ms(50); /* a message to a closed one would arrive by now */
	rpmsg_get_stats(dev_dev, &st);
	assert_int_equal(st.dropped_dst - st0.dropped_dst, (MANY + 2) / 3);
	check_each();
	/* Their addresses are free again: opened anew, each gets its own. */
	for (int i = 0; i < MANY; i += 3) {
		uint32_t addr = many[i].ept.addr;

		many_open(i);
		if (i % 2)
			assert_int_equal(many[i].ept.addr, addr);
		open[i] = true;
	}
	send_to_each(&src.ept, open);
	check_each();
	for (int i = 0; i < MANY; i++)
		rpmsg_destroy_ept(&many[i].ept);
	rpmsg_destroy_ept(&src.ept);
}

/* Three acknowledged pings 100 ms apart, on the driver side. */
static _Atomic bool slow_ping_started;
static struct rpmsg_ping_result slow_ping_res;
static int slow_ping_ret;

static void *slow_ping(void *arg)
{
	(void)arg;
	atomic_store(&slow_ping_started, true);
	slow_ping_ret = rpmsg_ping(drv_dev, 3, 16, RPMSG_PING_ACK | RPMSG_PING_CHECK, 100,
				   &slow_ping_res);
	return NULL;
}

/* The address of rdev's own ping endpoint, as its dump lists it. */
static uint32_t ping_addr(struct rpmsg_device *rdev)
{
	static char text[8192];
	unsigned int addr = 0;
	const char *p;

	assert_true(rpmsg_dump(rdev, text, sizeof(text)) > 0);
	p = strstr(text, "ept " RPMSG_PING_NAME " addr ");
	assert_non_null(p);
	if (p)
		assert_int_equal(sscanf(p, "ept " RPMSG_PING_NAME " addr %u", &addr), 1);
	return addr;
}

/* A ping request as a peer might send one: {cmd, seq, session, 0}, then
 * the pattern of seq, one byte of it wrong when `spoil`. */
static void raw_ping(struct rpmsg_endpoint *from, uint32_t to, uint32_t cmd, uint32_t seq,
		     uint32_t session, bool spoil)
{
	uint32_t msg[8] = { cmd, seq, session, 0 };
	uint8_t *bytes = (uint8_t *)msg;

	for (uint32_t k = RPMSG_PING_HDR; k < sizeof(msg); k++)
		bytes[k] = (uint8_t)(seq * 7u + k);
	if (spoil)
		bytes[20] ^= 1;
	assert_int_equal(rpmsg_sendto(from, msg, sizeof(msg), to), (int)sizeof(msg));
}

/*
 * What the ping service takes from the peer: a message shorter than the
 * header is ignored; a gap in a session's sequence counts as out of order
 * (a new session starts the count again); a pattern that does not match
 * counts as bad data when the request asks for the check; an unasked
 * reply is ignored. The service goes on serving pings after all of them.
 */
static void test_ping_service_counts_what_the_peer_sends(void **state)
{
	struct rpmsg_ping_counters c0, c;
	struct rpmsg_ping_result r;
	struct box a;
	uint32_t to = ping_addr(dev_dev);

	(void)state;
	box_open(&a, drv_dev, "ping-raw");
	rpmsg_ping_counters(dev_dev, &c0);
	assert_int_equal(rpmsg_sendto(&a.ept, "short", 6, to), 6);
	raw_ping(&a.ept, to, RPMSG_PING_CHECK, 1, 77, false);
	raw_ping(&a.ept, to, RPMSG_PING_CHECK, 2, 77, false);
	raw_ping(&a.ept, to, RPMSG_PING_CHECK, 4, 77, false);  /* 3 lost */
	raw_ping(&a.ept, to, RPMSG_PING_CHECK, 5, 77, true);   /* spoiled */
	raw_ping(&a.ept, to, 0, 6, 77, true);                  /* not checked */
	raw_ping(&a.ept, to, RPMSG_PING_CHECK, 9, 78, false);  /* a new session */
	raw_ping(&a.ept, to, 0x80000000u, 10, 78, false);      /* a reply nobody awaits */
	for (int i = 0; i < 1000; i++) {
		rpmsg_ping_counters(dev_dev, &c);
		if (c.received - c0.received >= 6)
			break;
		sleep_ms(2);
	}
	sleep_ms(20); /* nothing more comes */
	rpmsg_ping_counters(dev_dev, &c);
	assert_int_equal(c.received - c0.received, 6);
	assert_int_equal(c.out_of_order - c0.out_of_order, 1);
	assert_int_equal(c.bad_data - c0.bad_data, 1);
	assert_int_equal(rpmsg_ping(drv_dev, 3, 64, RPMSG_PING_ACK | RPMSG_PING_CHECK, 0, &r), 0);
	assert_int_equal(r.failed, 0);
	rpmsg_destroy_ept(&a.ept);
}

/* One acknowledged, checked ping of 32 bytes on the driver side. */
static struct rpmsg_ping_result lone_ping_res;
static int lone_ping_ret;

static void *lone_ping(void *arg)
{
	(void)arg;
	lone_ping_ret = rpmsg_ping(drv_dev, 1, 32, RPMSG_PING_ACK | RPMSG_PING_CHECK, 0,
				   &lone_ping_res);
	return NULL;
}

/* The payload of the buffer the device side returned last on vq, in the
 * driver's memory: what the driver side is about to receive. */
static uint8_t *last_returned_payload(struct virtqueue *vq)
{
	struct vring_used_elem *e = &vq->used->ring[(uint16_t)(vq->used_idx - 1u) & vq->mask];
	uint64_t da = vq->desc[e->id].addr;

	return (uint8_t *)vq->win.va + (da - vq->win.da) + 16;
}

/*
 * A ping whose echo comes back wrong counts as failed: `spoil` changes a
 * byte of the echoed pattern, else the echo's sequence number, which
 * makes it an echo of no ping sent, ignored, so that the ping's wait runs
 * out (5 s) and it fails for the echo missing. The echo is spoiled in the
 * ring, between the device side's send and the driver side's receive.
 */
static void ping_with_echo_spoiled(bool spoil)
{
	struct virtqueue *to_driver = duet_loopback_device(lb)->vrings_info[0].vq;
	uint16_t before;
	pthread_t t;
	int i;

	stop_polling();
	while (duet_loopback_poll(lb) > 0)
		;
	before = to_driver->used_idx;
	assert_int_equal(pthread_create(&t, NULL, lone_ping, NULL), 0);
	/* The device side answers when the ping arrives. */
	for (i = 0; i < 2000 && to_driver->used_idx == before; i++) {
		duet_loopback_poll_side(lb, VIRTIO_DEV_DEVICE);
		sleep_ms(1);
	}
	assert_int_equal((uint16_t)(to_driver->used_idx - before), 1);
	{
		uint8_t *echo = last_returned_payload(to_driver);
		uint32_t seq;

		if (spoil) {
			echo[20] ^= 1;
		} else {
			memcpy(&seq, echo + 4, sizeof(seq));
			seq += 1000;
			memcpy(echo + 4, &seq, sizeof(seq));
		}
	}
	duet_loopback_poll_side(lb, VIRTIO_DEV_DRIVER);
	assert_int_equal(pthread_join(t, NULL), 0);
	start_polling();
	assert_int_equal(lone_ping_ret, 0);
	assert_int_equal(lone_ping_res.times, 1);
	assert_int_equal(lone_ping_res.failed, 1);
	/* The service goes on: a ping answered right does not fail. */
	assert_int_equal(rpmsg_ping(drv_dev, 3, 32, RPMSG_PING_ACK | RPMSG_PING_CHECK, 0,
				    &lone_ping_res), 0);
	assert_int_equal(lone_ping_res.failed, 0);
}

static void test_ping_fails_on_a_wrong_echo(void **state)
{
	(void)state;
	ping_with_echo_spoiled(true);
}

static void test_ping_fails_on_a_missing_echo(void **state)
{
	(void)state;
	ping_with_echo_spoiled(false);
}

static void *ping_unbound(void *arg)
{
	*(int *)arg = rpmsg_ping(drv_dev, 1, 16, RPMSG_PING_ACK, 0, &lone_ping_res);
	return NULL;
}

/*
 * Without the name service the peer's ping endpoint is never announced,
 * so this side's never binds: a ping waits for it (3 s), then says
 * -ENOTCONN. One waiting so when the device goes says -ENODEV, woken by
 * the removal rather than at the end of its wait.
 */
static void test_ping_without_the_name_service(void **state)
{
	struct rpmsg_ping_result r;
	pthread_t t;
	int ret = 1;

	(void)state;
	assert_int_equal(rpmsg_ping(drv_dev, 1, 16, RPMSG_PING_ACK, 0, &r), -ENOTCONN);
	assert_int_equal(r.times, 0);
	assert_int_equal(pthread_create(&t, NULL, ping_unbound, &ret), 0);
	sleep_ms(100);
	stop_polling();
	virtio_unregister_device(duet_loopback_driver(lb));
	vhost_unregister_device(duet_loopback_device(lb));
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(ret, -ENODEV);
}

/*
 * A ping with no memory for its buffer, or for its times, says -ENOMEM
 * and sends nothing; the next one works. Unacknowledged and with nothing
 * polling, so that no other allocation (the peer's echo) comes between.
 */
static void test_ping_without_memory(void **state)
{
	struct rpmsg_ping_counters c0, c;
	struct rpmsg_ping_result r;

	(void)state;
	stop_polling();
	while (duet_loopback_poll(lb) > 0)
		;
	rpmsg_ping_counters(dev_dev, &c0);
	for (uint32_t skip = 0; skip < 2; skip++) {
		duet_port_fail_allocs(skip, 1);
		assert_int_equal(rpmsg_ping(drv_dev, 4, 32, 0, 0, &r), -ENOMEM);
		duet_port_fail_allocs(0, 0);
		assert_int_equal(r.times, 0);
	}
	while (duet_loopback_poll(lb) > 0)
		;
	rpmsg_ping_counters(dev_dev, &c);
	assert_int_equal(c.received, c0.received); /* nothing went */
	start_polling();
	assert_int_equal(rpmsg_ping(drv_dev, 4, 32, RPMSG_PING_ACK | RPMSG_PING_CHECK, 0, &r), 0);
	assert_int_equal(r.times, 4);
	assert_int_equal(r.failed, 0);
}

static void test_ping_both_ways(void **state)
{
	struct rpmsg_ping_result r;
	struct rpmsg_ping_counters c;

	(void)state;
	assert_int_equal(rpmsg_ping(drv_dev, 200, 100, RPMSG_PING_ACK | RPMSG_PING_CHECK, 0, &r), 0);
	assert_int_equal(r.times, 200);
	assert_int_equal(r.failed, 0);
	assert_true(r.min_ns <= r.p50_ns && r.p50_ns <= r.p99_ns && r.p99_ns <= r.max_ns);
	assert_int_equal(rpmsg_ping(dev_dev, 200, 240,
				    RPMSG_PING_ACK | RPMSG_PING_CHECK | RPMSG_PING_RANDOM, 0, &r), 0);
	assert_int_equal(r.failed, 0);
	/* No echo: a stream; the peer counts every one, in order. */
	assert_int_equal(rpmsg_ping(drv_dev, 5000, 496, RPMSG_PING_CHECK, 0, &r), 0);
	for (int i = 0; i < 1000; i++) {
		rpmsg_ping_counters(dev_dev, &c);
		if (c.received >= 5200)
			break;
		sleep_ms(2);
	}
	assert_int_equal(c.received, 5200);
	assert_int_equal(c.out_of_order, 0);
	assert_int_equal(c.bad_data, 0);
	assert_int_equal(rpmsg_ping(drv_dev, 1, 8, 0, 0, &r), -EINVAL);  /* shorter than a header */
	assert_int_equal(rpmsg_ping(drv_dev, 1, 497, 0, 0, &r), -EINVAL); /* longer than a buffer */
	assert_int_equal(rpmsg_ping(drv_dev, 3, 16, RPMSG_PING_ACK | RPMSG_PING_CHECK, 0, &r), 0);
	assert_int_equal(r.times, 3); /* a bare header is a ping */
	assert_int_equal(r.failed, 0);
	assert_int_equal(rpmsg_ping(NULL, 1, 16, 0, 0, &r), -EINVAL);
	assert_int_equal(rpmsg_ping(drv_dev, 1, 16, 0, 0, NULL), -EINVAL);
	rpmsg_ping_counters(dev_dev, NULL); /* nothing to write: no crash */
	memset(&c, 0xa5, sizeof(c));
	rpmsg_ping_counters(NULL, &c);
	assert_true(c.received == 0 && c.out_of_order == 0 && c.bad_data == 0);
	assert_int_equal(rpmsg_ping(drv_dev, 0, 16, 0, 0, &r), -EINVAL);
	assert_int_equal(rpmsg_ping(drv_dev, 1, 16, RPMSG_PING_CMDS + 1u, 0, &r), -EINVAL);
	/* One ping at a time per device: a second, while the first runs, is
	 * refused, and the first is not disturbed. */
	{
		pthread_t t;

		assert_int_equal(pthread_create(&t, NULL, slow_ping, NULL), 0);
		while (!atomic_load(&slow_ping_started))
			sleep_ms(1);
		sleep_ms(20);
		assert_int_equal(rpmsg_ping(drv_dev, 1, 16, RPMSG_PING_ACK, 0, &r), -EBUSY);
		pthread_join(t, NULL);
		assert_int_equal(slow_ping_ret, 0);
		assert_int_equal(slow_ping_res.times, 3);
		assert_int_equal(slow_ping_res.failed, 0);
		assert_int_equal(rpmsg_ping(drv_dev, 1, 16, RPMSG_PING_ACK, 0, &r), 0);
	}
}

/* rpmsg_ping on drv_dev from a thread: its arguments, then what it gave. */
struct ping_call {
	uint32_t times, len, cmd, sleep_ms;
	_Atomic int ret;
	struct rpmsg_ping_result res;
};

static void *ping_thread(void *arg)
{
	struct ping_call *c = arg;

	atomic_store(&c->ret, rpmsg_ping(drv_dev, c->times, c->len, c->cmd, c->sleep_ms, &c->res));
	return NULL;
}

/* A ping asleep between its pings (SLEEP_MS) when its device goes ends
 * at once with -ENODEV: the removal does not wait out the sleep. */

static void test_napping_ping_ends_when_the_device_goes(void **state)
{
	static struct ping_call napping = { .times = 3, .len = 16, .cmd = RPMSG_PING_ACK,
					    .sleep_ms = 5000, .ret = 1 };
	struct rpmsg_ping_result r;
	uint64_t t0;
	pthread_t t;

	(void)state;
	/* Bound first, so that the ping starts at once. */
	assert_int_equal(rpmsg_ping(drv_dev, 1, 16, RPMSG_PING_ACK, 0, &r), 0);
	assert_int_equal(pthread_create(&t, NULL, ping_thread, &napping), 0);
	sleep_ms(300); /* the first echo is back: asleep for 5 s */
	stop_polling();
	t0 = duet_clock_ms();
	assert_int_equal(virtio_unregister_device(duet_loopback_driver(lb)), 0);
	assert_true(duet_clock_ms() - t0 < 2000);
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&napping.ret), -ENODEV);
	assert_int_equal(napping.res.times, 1);
	assert_int_equal(napping.res.failed, 0);
}

/* A ping in the middle of its sends when its device goes, asleep for a
 * send buffer (the peer takes none): it ends at once with -ENODEV, and
 * nothing it touches is freed under it. The service leaves its endpoint
 * to the ping, as an endpoint that outlives its device, and the ping
 * destroys it as it ends; destroyed by the removal, the endpoint let the
 * device be freed under the ping's send (ASan) and had its device word
 * cleared under it (TSan). */

static void test_sending_ping_ends_when_the_device_goes(void **state)
{
	static struct ping_call sending = { .times = 100000, .len = 496, .cmd = RPMSG_PING_CHECK,
					    .ret = 1 };
	struct rpmsg_ping_result r;
	struct rpmsg_stats st0, st;
	uint64_t t0;
	pthread_t t;

	(void)state;
	assert_int_equal(rpmsg_ping(drv_dev, 1, 16, RPMSG_PING_ACK, 0, &r), 0);
	stop_polling(); /* the peer takes nothing from now on */
	rpmsg_get_stats(drv_dev, &st0);
	assert_int_equal(pthread_create(&t, NULL, ping_thread, &sending), 0);
	for (int i = 0; i < 2500; i++) {
		rpmsg_get_stats(drv_dev, &st);
		if (st.tx_waits > st0.tx_waits)
			break;
		sleep_ms(2);
	}
	assert_true(st.tx_waits > st0.tx_waits); /* asleep in a send */
	t0 = duet_clock_ms();
	assert_int_equal(virtio_unregister_device(duet_loopback_driver(lb)), 0);
	pthread_join(t, NULL);
	assert_true(duet_clock_ms() - t0 < 2000); /* told, not timed out */
	assert_int_equal(atomic_load(&sending.ret), -ENODEV);
	assert_int_equal(sending.res.times, RING); /* the ring's worth went */
}

/* A held device outlives its removal: every call on it answers as for a
 * device that went, nothing freed is touched (ASan), and the last
 * release frees it (LeakSanitizer). */
static void test_held_device_outlives_its_removal(void **state)
{
	struct rpmsg_device *held[2];
	struct rpmsg_ping_result r;
	struct rpmsg_endpoint e;
	char buf[256];

	(void)state;
	held[0] = rpmsg_hold_device(0);
	held[1] = rpmsg_hold_device(1);
	assert_non_null(held[0]);
	assert_non_null(held[1]);
	assert_null(rpmsg_hold_device(2));
	assert_ptr_equal(rpmsg_hold_device(0), held[0]); /* a second hold */
	rpmsg_release_device(held[0]);
	stop_polling();
	assert_int_equal(virtio_unregister_device(duet_loopback_driver(lb)), 0);
	assert_int_equal(vhost_unregister_device(duet_loopback_device(lb)), 0);
	assert_null(rpmsg_get_device(0));
	for (int i = 0; i < 2; i++) {
		rpmsg_dump(held[i], buf, sizeof(buf));
		assert_non_null(strstr(buf, "device gone"));
		assert_int_equal(rpmsg_ping(held[i], 1, 16, RPMSG_PING_ACK, 0, &r), -ENODEV);
		assert_int_equal(rpmsg_create_ept(&e, held[i], "late", RPMSG_ADDR_ANY,
						  RPMSG_ADDR_ANY, box_cb, NULL), -ENODEV);
		assert_string_equal(rpmsg_get_cpuname(held[i]), "");
		rpmsg_release_device(held[i]);
	}
	rpmsg_release_device(NULL);
}

static _Atomic bool stop_reading, cpuname_bad;

/* Reads the held device's cpu name until told to stop: the transport's
 * name, or "" once the device went. */
static void *read_cpuname(void *arg)
{
	while (!atomic_load(&stop_reading)) {
		const char *n = rpmsg_get_cpuname(arg);

		if (strcmp(n, "far-cpu") != 0 && n[0] != '\0')
			atomic_store(&cpuname_bad, true);
	}
	return NULL;
}

/*
 * The peer's cpu name is read without the device's lock, by a tool
 * listing the devices while another thread may remove one. It used to be
 * read through the transport's vdev, which the removal lets go of: a race
 * ThreadSanitizer saw in the duet command (test_link's flood), which this
 * test shows to it every run.
 */
static void test_cpuname_read_while_the_device_goes(void **state)
{
	struct rpmsg_device *held;
	pthread_t t;

	(void)state;
	stop_polling();
	assert_int_equal(virtio_unregister_device(duet_loopback_driver(lb)), 0);
	assert_int_equal(vhost_unregister_device(duet_loopback_device(lb)), 0);
	duet_loopback_driver(lb)->peer_cpuname = "far-cpu";
	duet_loopback_device(lb)->peer_cpuname = "far-cpu";
	start_polling();
	assert_int_equal(virtio_register_device(duet_loopback_driver(lb)), 0);
	assert_int_equal(vhost_register_device(duet_loopback_device(lb)), 0);
	for (int i = 0; i < 1000 && !rpmsg_get_device(1); i++)
		sleep_ms(2);
	held = rpmsg_hold_device(0);
	assert_non_null(held);
	assert_string_equal(rpmsg_get_cpuname(held), "far-cpu");
	atomic_store(&stop_reading, false);
	atomic_store(&cpuname_bad, false);
	assert_int_equal(pthread_create(&t, NULL, read_cpuname, held), 0);
	sleep_ms(5);
	stop_polling();
	assert_int_equal(virtio_unregister_device(duet_loopback_driver(lb)), 0);
	assert_int_equal(vhost_unregister_device(duet_loopback_device(lb)), 0);
	atomic_store(&stop_reading, true);
	pthread_join(t, NULL);
	assert_false(atomic_load(&cpuname_bad));
	assert_string_equal(rpmsg_get_cpuname(held), "");
	rpmsg_release_device(held);
}

/* ---- both sides sending from their callbacks ---- */

#define RELAY_N 20000

struct relay {
	struct rpmsg_endpoint ept;
	_Atomic uint32_t requests, replies;
	uint32_t next_req, next_rep; /* expected sequence numbers */
	_Atomic int bad;
	void *held;                  /* a received payload kept for a while */
	_Atomic int held_total;
};

static int relay_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	struct relay *r = priv;
	uint32_t m[2];

	(void)src;
	if (len != sizeof(m)) {
		atomic_fetch_add(&r->bad, 1);
		return 0;
	}
	memcpy(m, data, sizeof(m));
	if (m[0] == 1) { /* a reply */
		if (m[1] != r->next_rep++)
			atomic_fetch_add(&r->bad, 1);
		atomic_fetch_add(&r->replies, 1);
		return 0;
	}
	if (m[1] != r->next_req++)
		atomic_fetch_add(&r->bad, 1);
	atomic_fetch_add(&r->requests, 1);
	/* Keep every 7th request until the next one: held buffers, stashed
	 * copies among them, go back out of order and nothing is lost. */
	if (r->held) {
		uint32_t h[2];

		memcpy(h, r->held, sizeof(h));
		if (h[0] != 0 || h[1] + 1 != m[1])
			atomic_fetch_add(&r->bad, 1);
		rpmsg_release_rx_buffer(ept, r->held);
		r->held = NULL;
	}
	if (m[1] % 7 == 0) {
		rpmsg_hold_rx_buffer(ept, data);
		r->held = data;
		atomic_fetch_add(&r->held_total, 1);
	}
	m[0] = 1;
	if (rpmsg_send(ept, m, sizeof(m)) != sizeof(m))
		atomic_fetch_add(&r->bad, 1);
	return 0;
}

struct flood_arg {
	struct relay *r;
	int err;
};

static void *flood(void *arg)
{
	struct flood_arg *a = arg;

	for (uint32_t i = 0; i < RELAY_N && !a->err; i++) {
		uint32_t m[2] = { 0, i };
		int ret = rpmsg_send(&a->r->ept, m, sizeof(m));

		if (ret != sizeof(m))
			a->err = ret;
	}
	return NULL;
}

static bool relays_done(void *arg)
{
	struct relay *r = arg;

	for (int i = 0; i < 2; i++)
		if (atomic_load(&r[i].requests) < RELAY_N || atomic_load(&r[i].replies) < RELAY_N)
			return false;
	return true;
}

static void test_both_sides_send_from_callbacks(void **state)
{
	struct rpmsg_device *devs[2] = { drv_dev, dev_dev };
	struct flood_arg fa[2];
	struct relay r[2];
	pthread_t pollers[2], senders[2];
	struct rpmsg_stats st[2];

	(void)state;
	/* One poll thread per side, as two cores would run. */
	stop_polling();
	atomic_store(&side_stop, false);
	for (unsigned int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&pollers[i], NULL, poll_side, (void *)(uintptr_t)i), 0);
	for (int i = 0; i < 2; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].ept.priv = &r[i];
		assert_int_equal(rpmsg_create_ept(&r[i].ept, devs[i], "relay", RPMSG_ADDR_ANY,
						  RPMSG_ADDR_ANY, relay_cb, NULL), 0);
	}
	assert_true(wait_until(ept_ready, &r[0].ept, 2000));
	assert_true(wait_until(ept_ready, &r[1].ept, 2000));
	/* Both flood with a ring of 8 while every request is answered from
	 * a receive callback: each side's callbacks wait for buffers that
	 * only the other side's callbacks can give back. */
	for (int i = 0; i < 2; i++) {
		fa[i] = (struct flood_arg){ &r[i], 0 };
		assert_int_equal(pthread_create(&senders[i], NULL, flood, &fa[i]), 0);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(senders[i], NULL);
	if (!wait_until(relays_done, r, 20000)) {
		char dump[4096];

		for (int i = 0; i < 2; i++) {
			rpmsg_get_stats(devs[i], &st[i]);
			rpmsg_dump(devs[i], dump, sizeof(dump));
			print_message("side %d stuck: %u requests, %u replies, bad %d, stashed %u, "
				      "waits %u, send error %d\n%s\n", i, r[i].requests,
				      r[i].replies, r[i].bad, st[i].rx_stashed, st[i].tx_waits,
				      fa[i].err, dump);
		}
		fail();
	}
	atomic_store(&side_stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(pollers[i], NULL);
	for (int i = 0; i < 2; i++) {
		rpmsg_get_stats(devs[i], &st[i]);
		print_message("side %d: %u requests, %u replies, %u stashed, %u waits, %d held\n", i,
			      r[i].requests, r[i].replies, st[i].rx_stashed, st[i].tx_waits,
			      r[i].held_total);
		assert_int_equal(fa[i].err, 0);
		assert_int_equal(r[i].bad, 0);
		assert_int_equal(r[i].requests, RELAY_N);
		assert_int_equal(r[i].replies, RELAY_N);
		assert_int_equal(st[i].dropped_len + st[i].dropped_dst + st[i].dropped_other, 0);
	}
	/* The cycle really formed and the stash broke it. */
	assert_true(st[0].rx_stashed + st[1].rx_stashed > 0);
	for (int i = 0; i < 2; i++) {
		if (r[i].held)
			rpmsg_release_rx_buffer(&r[i].ept, r[i].held);
		rpmsg_destroy_ept(&r[i].ept);
	}
	start_polling();
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_name_service_binds_both_ways_and_data_flows),
		T(test_send_races_the_peers_unbind),
		cmocka_unit_test_setup_teardown(test_without_the_name_service, setup_no_ns, teardown),
		cmocka_unit_test_setup_teardown(test_ping_without_the_name_service, setup_no_ns,
						teardown),
		T(test_announcement_binds_the_oldest_of_a_name),
		T(test_at_most_256_services_are_remembered),
		T(test_dump_truncates_to_its_buffer),
		T(test_stash_is_bounded),
		T(test_held_stash_copies_stay_held),
		T(test_removal_frees_stashed_and_held_copies),
		T(test_stash_drops_a_bad_message),
		T(test_send_buffers_keep_their_descriptors),
		cmocka_unit_test_setup_teardown(test_polling_prefetches_by_the_rule, setup_64, teardown),
		cmocka_unit_test_setup_teardown(test_receive_buffers_go_back_in_batches, setup_64, teardown),
		cmocka_unit_test_setup_teardown(test_burst_from_the_driver_spans_chunks, setup_64, teardown),
		cmocka_unit_test_setup_teardown(test_burst_from_the_device_spans_chunks, setup_64, teardown),
		cmocka_unit_test_setup_teardown(test_device_leaving_returns_its_batch, setup_64, teardown),
		cmocka_unit_test_setup_teardown(test_sleeping_sender_wakes_within_a_receive_pass, setup_64,
						teardown),
		cmocka_unit_test_setup_teardown(test_receive_batches_never_starve_the_device, setup_64, teardown),
		cmocka_unit_test_setup_teardown(test_receive_batches_never_starve_the_driver, setup_64, teardown),
		T(test_exhaustion_trysend_timeout_recovery),
		T(test_send_on_a_broken_ring_does_not_wait),
		T(test_lent_send_buffer_returns_after_a_refill),
		T(test_sleeping_sender_is_woken_after_another_takes_a_buffer),
		T(test_announcements_wait_for_buffers_without_blocking),
		T(test_create_without_memory_to_queue_its_announcement),
		T(test_addressed_and_try_forms),
		T(test_send_more_notifies_once_per_batch),
		T(test_send_more_rings_every_half_ring),
		T(test_send_nocopy_more_holds_the_doorbell),
		T(test_burst_from_the_driver_arrives_in_order),
		T(test_burst_from_the_device_arrives_in_order),
		T(test_bad_burst_sends_nothing),
		T(test_burst_on_a_ring_that_breaks),
		T(test_send_burst_from_the_driver_waits_for_buffers),
		T(test_send_burst_from_the_device_waits_for_buffers),
		T(test_sleeping_sender_returns_when_the_driver_goes),
		T(test_senders_racing_the_removal_meet_no_freed_memory),
		T(test_sleeping_sender_returns_when_the_device_goes),
		T(test_bad_endpoint_arguments_are_refused),
		cmocka_unit_test(test_peer_buffer_sizes_are_checked),
		cmocka_unit_test(test_device_side_checks_the_buffer_sizes),
		T(test_zero_copy),
		T(test_destroyed_endpoint_gives_back_its_buffers),
		T(test_released_buffers_wake_waiting_lenders),
		T(test_released_buffer_carries_a_queued_announcement),
		T(test_hostile_messages_are_dropped_and_counted),
		T(test_hostile_driver_buffers_are_returned_and_counted),
		T(test_hostile_send_buffers_are_returned_and_counted),
		T(test_refused_buffers_do_not_keep_a_send_looking),
		T(test_late_listener_gets_the_announcement),
		T(test_service_offered_once),
		T(test_listener_sees_devices_go),
		T(test_endpoint_churn),
		T(test_many_endpoints_each_get_their_own_messages),
		T(test_ping_both_ways),
		T(test_ping_service_counts_what_the_peer_sends),
		T(test_ping_fails_on_a_wrong_echo),
		T(test_ping_fails_on_a_missing_echo),
		T(test_ping_without_memory),
		T(test_napping_ping_ends_when_the_device_goes),
		T(test_sending_ping_ends_when_the_device_goes),
		T(test_held_device_outlives_its_removal),
		T(test_cpuname_read_while_the_device_goes),
		T(test_both_sides_send_from_callbacks),
	};

	return cmocka_run_group_tests_name("rpmsg over loopback", tests, NULL, NULL);
}
