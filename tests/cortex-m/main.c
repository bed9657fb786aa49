/*
 * main.c - the core on a Cortex-M4 with no OS (QEMU's mps2-an386): both
 * sides of an rptun link in one image over one region, as two cores would
 * share it, served by one main loop through the bare-metal port
 * (src/port/bare). What runs: the resource table, both buses with the
 * vhost side's deferred probe, rpmsg both roles with the name service,
 * messages of every size checked byte by byte, a burst, a blocking send,
 * the ping service, virtio-rng reads that wait through the port's idle
 * turn (one of them while its device is removed under it, and a ping the
 * same way), a peer's bad ring index refused, then stop and destroy.
 * Prints a line per part and "cortex-m: N checks, all passed"; the first
 * failed check prints its line and exits 1 (QEMU's status: the test's).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duet/byteorder.h>
#include <duet/rng.h>
#include <duet/rpmsg.h>
#include <duet/rpmsg_ping.h>
#include <duet/rptun.h>
#include <duet/virtio.h>

#include "rig.h"

static unsigned int checks;

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (!(cond)) {                                                         \
			printf("cortex-m: FAILED at line %d: %s\n", __LINE__, #cond); \
			exit(1);                                                       \
		}                                                                      \
		checks++;                                                              \
	} while (0)

/* ---- rpmsg ---- */

static uint8_t expect[256];
static size_t got_len;
static unsigned int got, bad;

static int echo_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	(void)src;
	(void)priv;
	/* A callback never waits: the loop that would return a buffer is
	 * the one running it. */
	if (rpmsg_trysend(ept, data, (int)len) != (int)len)
		bad++;
	return 0;
}

static int reply_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	(void)ept;
	(void)src;
	(void)priv;
	if (len != got_len || memcmp(data, expect, len))
		bad++;
	got++;
	return 0;
}

/* Whether a message is the one little-endian word `want`: what this
 * test's own messages carry, in the wire's order as duet's are. */
static bool is_word(const void *data, size_t len, uint32_t want)
{
	uint32_t v;

	if (len != sizeof(v))
		return false;
	memcpy(&v, data, sizeof(v));
	return duet_le32(v) == want;
}

/* Messages numbered 0, 1, 2...: how many came, how many out of order,
 * and how many are awaited (all_in). */
struct in_order {
	unsigned int seen, bad, want;
};

static struct in_order burst, fanin;

static int in_order_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src,
		       void *priv)
{
	struct in_order *o = priv;

	(void)ept;
	(void)src;
	if (!is_word(data, len, o->seen))
		o->bad++;
	o->seen++;
	return 0;
}

static int all_in(void *arg)
{
	const struct in_order *o = arg;

	return o->seen == o->want;
}

static int bound(void *arg)
{
	struct virtio_device *v = arg;

	return v->priv != NULL;
}

static int ept_ready(void *arg)
{
	return rpmsg_is_ept_ready(arg);
}

static int replied(void *arg)
{
	return got == *(unsigned int *)arg;
}

static void test_rpmsg(void)
{
	struct virtio_device *drv_vdev = duet_rptun_vdev(rig_side(0), 0);
	struct virtio_device *dev_vdev = duet_rptun_vdev(rig_side(1), 0);
	struct rpmsg_endpoint a, b, c, d;
	unsigned int want;
	int max;

	CHECK(rig_until(bound, drv_vdev, 2000) && rig_until(bound, dev_vdev, 2000));
	CHECK(rpmsg_create_ept(&a, drv_vdev->priv, "bare-echo", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
			       reply_cb, NULL) == 0);
	CHECK(rpmsg_create_ept(&b, dev_vdev->priv, "bare-echo", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
			       echo_cb, NULL) == 0);
	CHECK(rig_until(ept_ready, &a, 2000) && rig_until(ept_ready, &b, 2000));
	max = rpmsg_get_tx_buffer_size(&a);
	CHECK(max == 256 - 16);
	printf("cortex-m: rpmsg bound by the name service, largest payload %d B\n", max);

	/* Every size, the payload different each time, checked on return. */
	for (int len = 1; len <= max; len++) {
		for (int i = 0; i < len; i++)
			expect[i] = (uint8_t)(len * 7 + i);
		got_len = (size_t)len;
		want = got + 1;
		CHECK(rpmsg_send(&a, expect, len) == len);
		CHECK(rig_until(replied, &want, 1000));
	}
	CHECK(bad == 0);
	printf("cortex-m: %d round trips, 1 to %d B, every byte back\n", max, max);

	/* Sends that outrun the echo: the ring fills and rpmsg_send waits
	 * for buffers through the port's idle turn. */
	memset(expect, 0x5a, 17);
	got_len = 17;
	want = got + 200;
	rig_idles = 0;
	for (int i = 0; i < 200; i++)
		CHECK(rpmsg_send(&a, expect, 17) == 17);
	CHECK(rig_idles > 0);
	CHECK(rig_until(replied, &want, 2000) && bad == 0);
	printf("cortex-m: 200 sends ahead of their echoes, waiting for buffers in %u turns\n",
	       rig_idles);

	/* A burst, in order, on another pair. */
	CHECK(rpmsg_create_ept(&c, drv_vdev->priv, "bare-burst", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
			       reply_cb, NULL) == 0);
	d.priv = &burst; /* before create: the callback may run at once */
	CHECK(rpmsg_create_ept(&d, dev_vdev->priv, "bare-burst", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
			       in_order_cb, NULL) == 0);
	CHECK(rig_until(ept_ready, &c, 2000));
	{
		static uint32_t seq[12];
		const void *datas[12];
		int lens[12];

		for (unsigned int i = 0; i < 12; i++) {
			seq[i] = duet_le32(i); /* as duet's own wire: any core reads it */
			datas[i] = &seq[i];
			lens[i] = 4;
		}
		CHECK(rpmsg_trysend_burst(&c, datas, lens, 12) == 12);
		burst.want = 12;
		CHECK(rig_until(all_in, &burst, 1000) && burst.bad == 0);
	}
	printf("cortex-m: a burst of 12 in order\n");

	/* Too long a message is refused, and nothing is lost by it. */
	CHECK(rpmsg_send(&a, expect, max + 1) == -EMSGSIZE);
	rpmsg_destroy_ept(&d);
	rpmsg_destroy_ept(&c);
	rpmsg_destroy_ept(&b);
	rpmsg_destroy_ept(&a);
}

/* ---- a callback's sends outrun the ring: the stash ---- */

#define STASH_MSGS 4u
#define STASH_FANOUT 24u /* replies to each, more than the 16-entry ring holds */

static unsigned int stash_in, stash_bad;

/* Device side: each message (its number, a little-endian u32) is answered
 * with STASH_FANOUT numbered replies, sent from this callback: the ring
 * fills, the send waits, and the messages behind this one are copied out
 * of the ring (stashed) and delivered after it. */
static int fanout_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	(void)src;
	(void)priv;
	if (!is_word(data, len, stash_in))
		stash_bad++;
	for (uint32_t k = 0; k < STASH_FANOUT; k++) {
		uint32_t v = duet_le32(stash_in * STASH_FANOUT + k);

		if (rpmsg_send(ept, &v, sizeof(v)) != (int)sizeof(v))
			stash_bad++;
	}
	stash_in++;
	return 0;
}

static void test_stash(void)
{
	struct virtio_device *drv_vdev = duet_rptun_vdev(rig_side(0), 0);
	struct virtio_device *dev_vdev = duet_rptun_vdev(rig_side(1), 0);
	struct rpmsg_endpoint e, f;
	struct rpmsg_stats st;

	e.priv = &fanin; /* before create: the callback may run at once */
	CHECK(rpmsg_create_ept(&e, drv_vdev->priv, "bare-stash", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
			       in_order_cb, NULL) == 0);
	CHECK(rpmsg_create_ept(&f, dev_vdev->priv, "bare-stash", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
			       fanout_cb, NULL) == 0);
	CHECK(rig_until(ept_ready, &e, 2000));
	/* All sent before the device side runs: they wait in its ring. */
	for (uint32_t m = 0; m < STASH_MSGS; m++) {
		uint32_t v = duet_le32(m);

		CHECK(rpmsg_trysend(&e, &v, sizeof(v)) == (int)sizeof(v));
	}
	fanin.want = STASH_MSGS * STASH_FANOUT; /* the replies, in order */
	CHECK(rig_until(all_in, &fanin, 2000));
	CHECK(stash_bad == 0 && fanin.bad == 0 && stash_in == STASH_MSGS);
	rpmsg_get_stats(dev_vdev->priv, &st);
	CHECK(st.rx_stashed > 0 && st.dropped_dst == 0 && st.dropped_len == 0);
	rpmsg_destroy_ept(&f);
	rpmsg_destroy_ept(&e);
	printf("cortex-m: %u messages answered %u times each from their callbacks, %lu stashed\n",
	       STASH_MSGS, STASH_FANOUT, (unsigned long)st.rx_stashed);
}

/* ---- the ping service on a 32-bit core ---- */

static void test_ping(void)
{
	struct virtio_device *v = duet_rptun_vdev(rig_side(0), 0);
	struct rpmsg_ping_result res;

	CHECK(rpmsg_ping_register() == 0);
	CHECK(rpmsg_ping(v->priv, 8, RPMSG_PING_HDR + 7, RPMSG_PING_ACK | RPMSG_PING_CHECK, 0,
			 &res) == 0);
	CHECK(res.times == 8 && res.failed == 0 && res.bytes == 8 * (RPMSG_PING_HDR + 7));
	printf("cortex-m: 8 pings echoed and checked\n");
}

/* A count whose times do not fit in 32-bit memory: refused, where a
 * wrapped size would have kept 8 bytes for them. Only on a 32-bit core: a
 * 64-bit one (the rig as a Linux program) has the memory, and would ping. */
static void test_ping_count_past_memory(void)
{
	struct virtio_device *v = duet_rptun_vdev(rig_side(0), 0);
	struct rpmsg_ping_result res;

	if (SIZE_MAX > UINT32_MAX)
		return;
	CHECK(rpmsg_ping(v->priv, 0x20000001u, RPMSG_PING_HDR, RPMSG_PING_ACK, 0, &res) ==
	      -ENOMEM);
	printf("cortex-m: a ping count past memory refused\n");
}

/* ---- rng both ways, waiting through the idle turn ---- */

static void test_rng(void)
{
	static uint8_t buf[1024];

	for (int s = 0; s < 2; s++) {
		struct virtio_device *v = duet_rptun_vdev(rig_side(s), 1 + (unsigned int)s);
		unsigned int zeros = 0;

		CHECK(rig_until(bound, v, 2000));
		memset(buf, 0, sizeof(buf));
		CHECK(virtio_rng_read(v, buf, sizeof(buf), 2000) == (int)sizeof(buf));
		for (size_t i = 0; i < sizeof(buf); i++)
			zeros += buf[i] == 0;
		CHECK(zeros < 32);
	}
	printf("cortex-m: virtio-rng, 1024 B read each way\n");
}

/* ---- a removal from inside a read's wait ---- */

/* The vdev whose device side asks for a reset in the next wait's turn. */
static unsigned int reset_vdev;

/* The first turn a wait runs: the device side of reset_vdev asks for a
 * reset and the driver side restarts, removing its driver under the wait
 * (as a main loop's peer check would). */
static void reset_under_the_wait(void)
{
	rig_idle_hook = NULL;
	virtio_set_status(duet_rptun_vdev(rig_side(1), reset_vdev),
			  VIRTIO_CONFIG_STATUS_NEEDS_RESET);
	duet_rptun_check_peer(rig_side(0));
}

static void test_rng_removed_during_read(void)
{
	struct virtio_device *v = duet_rptun_vdev(rig_side(0), 1);
	uint8_t buf[16];

	CHECK(rig_until(bound, v, 2000));
	reset_vdev = 1;
	rig_idle_hook = reset_under_the_wait;
	CHECK(virtio_rng_read(v, buf, sizeof(buf), 2000) == -ENODEV);
	CHECK(rig_idle_hook == NULL);
	/* Restarted: bound again, and reads work. */
	CHECK(rig_until(bound, v, 2000));
	CHECK(virtio_rng_read(v, buf, sizeof(buf), 2000) == (int)sizeof(buf));
	printf("cortex-m: virtio-rng removed under a waiting read: -ENODEV, then bound again\n");
}

/* The same for rpmsg: the device goes while a ping waits for its echo. */
static void test_rpmsg_removed_during_ping(void)
{
	struct virtio_device *v = duet_rptun_vdev(rig_side(0), 0);
	struct rpmsg_ping_result res;

	CHECK(rig_until(bound, v, 2000));
	reset_vdev = 0;
	rig_idle_hook = reset_under_the_wait;
	CHECK(rpmsg_ping(v->priv, 4, RPMSG_PING_HDR, RPMSG_PING_ACK, 0, &res) == -ENODEV);
	CHECK(rig_idle_hook == NULL);
	/* Restarted: bound again, and pings are echoed. */
	CHECK(rig_until(bound, v, 2000));
	CHECK(rpmsg_ping(v->priv, 4, RPMSG_PING_HDR, RPMSG_PING_ACK, 0, &res) == 0);
	CHECK(res.times == 4 && res.failed == 0);
	printf("cortex-m: rpmsg removed under a waiting ping: -ENODEV, then pinged again\n");
}

/* ---- a peer's bad used index ---- */

static void test_broken_peer(void)
{
	struct virtio_device *v = duet_rptun_vdev(rig_side(0), 1);
	struct virtqueue *vq = v->vrings_info[0].vq;
	uint8_t buf[16];

	/* The device side says 100 buffers were used on an 8-entry ring. */
	CHECK(vq != NULL);
	vq->used->idx = duet_le16((uint16_t)(duet_le16(vq->used->idx) + 100));
	CHECK(virtio_rng_read(v, buf, sizeof(buf), 300) < 0);
	CHECK(virtqueue_is_broken(vq));
	printf("cortex-m: a used index 100 ahead on an 8-entry ring: the queue is broken\n");
}

/* The region's bytes after a part, as a digest: the same on every core,
 * little-endian or big, if all of the wire has one byte order, as
 * tests/cortex-m/run-linux.sh checks. After the rpmsg part the same
 * on the Cortex-M4 too; after the later ones only where the clock is the
 * same read by read (board_linux.c's): the ping's session comes from it. */
static void wire_digest(const char *after)
{
	printf("cortex-m: wire digest after %s: %08lx\n", after, (unsigned long)rig_digest());
}

int main(void)
{
	CHECK(rig_start(16) == 0); /* small rings: sends fill them */
	printf("cortex-m: two rptun sides over one region, started\n");
	test_rpmsg();
	wire_digest("rpmsg");
	test_stash();
	wire_digest("stash");
	test_ping();
	wire_digest("ping");
	test_rng();
	wire_digest("rng");
	test_rng_removed_during_read();
	wire_digest("rng removed");
	test_rpmsg_removed_during_ping();
	wire_digest("rpmsg removed");
	test_broken_peer();
	wire_digest("broken ring");
	test_ping_count_past_memory();
	CHECK(rig_stop() == 0);
	printf("cortex-m: %u checks, all passed\n", checks);
	return 0;
}
