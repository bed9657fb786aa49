/*
 * main.c - the core on a Cortex-M4 with no OS (QEMU's mps2-an386): both
 * sides of an rptun link in one image over one region, as two cores would
 * share it, served by one main loop through the bare-metal port
 * (src/port/bare). What runs: the resource table, both buses with the
 * vhost side's deferred probe, rpmsg both roles with the name service,
 * messages of every size checked byte by byte, a burst, a blocking send and
 * virtio-rng reads that wait through the port's idle turn, a peer's bad
 * ring index refused, then stop and destroy.
 * Prints one line per check and "cortex-m: N checks, all passed"; exits
 * non-zero on the first failure.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duet/port.h>
#include <duet/rng.h>
#include <duet/rpmsg.h>
#include <duet/rptun.h>
#include <duet/vhost.h>
#include <duet/virtio.h>

#include "../../src/port/bare/port_bare.h"
#include "board.h"

#define TABLE_SIZE 4096u
#define CARVE_DA 4096u

static const struct rpmsg_virtio_config rpmsg_cfg = { 256, 256 };

static const struct duet_vdev_desc vdevs[3] = {
	{ .id = VIRTIO_ID_RPMSG, .driver = DUET_SERVER, .features = 1u << VIRTIO_RPMSG_F_NS,
	  .num_vrings = 2, .vring_num = 16, .vring_align = 16, .config_len = sizeof(rpmsg_cfg),
	  .config = &rpmsg_cfg, .carveout_size = 24 * 1024 },
	{ .id = VIRTIO_ID_ENTROPY, .driver = DUET_SERVER, .num_vrings = 1, .vring_num = 8,
	  .vring_align = 16, .carveout_size = 8 * 1024 },
	{ .id = VIRTIO_ID_ENTROPY, .driver = DUET_PROXY, .num_vrings = 1, .vring_num = 8,
	  .vring_align = 16, .carveout_size = 8 * 1024 },
};

/* The shared region: both sides map it (here, at the same address). */
static uint8_t region[64 * 1024] __attribute__((aligned(4096)));
static _Atomic uint32_t epochs[DUET_MAX_VDEVS];

/* Each side's doorbell: notify ids the other side rang, as bits. */
struct side {
	struct duet_rptun *rptun;
	_Atomic uint32_t rung;
	struct side *peer;
};
static struct side sides[2];
static unsigned int checks;

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (!(cond)) {                                                         \
			printf("cortex-m: FAILED at line %d: %s\n", __LINE__, #cond); \
			exit(1);                                                       \
		}                                                                      \
		checks++;                                                              \
	} while (0)

#define ALL_BIT 31u

static void ring(struct duet_rptun *rptun, uint32_t notifyid)
{
	struct side *me = duet_rptun_priv(rptun);

	atomic_fetch_or(&me->peer->rung,
			1u << (notifyid == DUET_RPTUN_NOTIFY_ALL || notifyid >= ALL_BIT ? ALL_BIT
										   : notifyid));
}

static void *table_of(struct duet_rptun *rptun, size_t *size)
{
	(void)rptun;
	*size = TABLE_SIZE;
	return region;
}

static const struct duet_rptun_ops ops = { .get_resource = table_of, .notify = ring };

/* One turn of the main loop: each side's rung ids, its peer check, and
 * the port's due work. Returns how many ids ran. */
static int turn(void)
{
	int ran = 0;

	for (int i = 0; i < 2; i++) {
		uint32_t bits = atomic_exchange(&sides[i].rung, 0);

		for (uint32_t b = 0; bits; b++, bits >>= 1)
			if (bits & 1u) {
				duet_rptun_notified(sides[i].rptun,
						    b == ALL_BIT ? DUET_RPTUN_NOTIFY_ALL : b);
				ran++;
			}
		duet_rptun_check_peer(sides[i].rptun);
	}
	return ran + duet_bare_run_work();
}

static unsigned int idles; /* turns run by waits */

static void idle(void *arg)
{
	(void)arg;
	idles++;
	turn();
}

/* Turn the loop until cond() or `ms` pass. */
static int until(int (*cond)(void *), void *arg, uint32_t ms)
{
	uint64_t end = duet_clock_ms() + ms;

	while (!cond(arg) && duet_clock_ms() < end)
		turn();
	return cond(arg);
}

static uint32_t rng_state = 0x9e3779b9u;

static int board_random(void *buf, size_t len)
{
	uint8_t *p = buf;

	for (size_t i = 0; i < len; i++) {
		rng_state ^= rng_state << 13;
		rng_state ^= rng_state >> 17;
		rng_state ^= rng_state << 5;
		p[i] = (uint8_t)rng_state;
	}
	return 0;
}

static void fatal(const char *why)
{
	printf("cortex-m: %s\n", why);
	exit(2);
}

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

static unsigned int burst_seen, burst_bad;

static int burst_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	(void)ept;
	(void)src;
	(void)priv;
	if (len != 4 || memcmp(data, &burst_seen, 4))
		burst_bad++;
	burst_seen++;
	return 0;
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

static int burst_done(void *arg)
{
	return burst_seen == *(unsigned int *)arg;
}

static void test_rpmsg(void)
{
	struct virtio_device *drv_vdev = duet_rptun_vdev(sides[0].rptun, 0);
	struct virtio_device *dev_vdev = duet_rptun_vdev(sides[1].rptun, 0);
	struct rpmsg_endpoint a, b, c, d;
	unsigned int want;
	int max;

	CHECK(until(bound, drv_vdev, 2000) && until(bound, dev_vdev, 2000));
	CHECK(rpmsg_create_ept(&a, drv_vdev->priv, "bare-echo", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
			       reply_cb, NULL) == 0);
	CHECK(rpmsg_create_ept(&b, dev_vdev->priv, "bare-echo", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
			       echo_cb, NULL) == 0);
	CHECK(until(ept_ready, &a, 2000) && until(ept_ready, &b, 2000));
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
		CHECK(until(replied, &want, 1000));
	}
	CHECK(bad == 0);
	printf("cortex-m: %d round trips, 1 to %d B, every byte back\n", max, max);

	/* Sends that outrun the echo: the ring fills and rpmsg_send waits
	 * for buffers through the port's idle turn. */
	memset(expect, 0x5a, 17);
	got_len = 17;
	want = got + 200;
	idles = 0;
	for (int i = 0; i < 200; i++)
		CHECK(rpmsg_send(&a, expect, 17) == 17);
	CHECK(idles > 0);
	CHECK(until(replied, &want, 2000) && bad == 0);
	printf("cortex-m: 200 sends ahead of their echoes, waiting for buffers in %u turns\n",
	       idles);

	/* A burst, in order, on another pair. */
	CHECK(rpmsg_create_ept(&c, drv_vdev->priv, "bare-burst", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
			       reply_cb, NULL) == 0);
	CHECK(rpmsg_create_ept(&d, dev_vdev->priv, "bare-burst", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
			       burst_cb, NULL) == 0);
	CHECK(until(ept_ready, &c, 2000));
	{
		static uint32_t seq[12];
		const void *datas[12];
		int lens[12];

		for (unsigned int i = 0; i < 12; i++) {
			seq[i] = i;
			datas[i] = &seq[i];
			lens[i] = 4;
		}
		CHECK(rpmsg_trysend_burst(&c, datas, lens, 12) == 12);
		want = 12;
		CHECK(until(burst_done, &want, 1000) && burst_bad == 0);
	}
	printf("cortex-m: a burst of 12 in order\n");

	/* Too long a message is refused, and nothing is lost by it. */
	CHECK(rpmsg_send(&a, expect, max + 1) == -EMSGSIZE);
	rpmsg_destroy_ept(&d);
	rpmsg_destroy_ept(&c);
	rpmsg_destroy_ept(&b);
	rpmsg_destroy_ept(&a);
}

/* ---- rng both ways, waiting through the idle turn ---- */

static void test_rng(void)
{
	static uint8_t buf[1024];

	for (int s = 0; s < 2; s++) {
		struct virtio_device *v = duet_rptun_vdev(sides[s].rptun, 1 + (unsigned int)s);
		unsigned int zeros = 0;

		CHECK(until(bound, v, 2000));
		memset(buf, 0, sizeof(buf));
		CHECK(virtio_rng_read(v, buf, sizeof(buf), 2000) == (int)sizeof(buf));
		for (size_t i = 0; i < sizeof(buf); i++)
			zeros += buf[i] == 0;
		CHECK(zeros < 32);
	}
	printf("cortex-m: virtio-rng, 1024 B read each way\n");
}

/* ---- a peer's bad used index ---- */

static void test_broken_peer(void)
{
	struct virtio_device *v = duet_rptun_vdev(sides[0].rptun, 1);
	struct virtqueue *vq = v->vrings_info[0].vq;
	uint8_t buf[16];

	/* The device side says 100 buffers were used on an 8-entry ring. */
	CHECK(vq != NULL);
	vq->used->idx = (uint16_t)(vq->used->idx + 100);
	CHECK(virtio_rng_read(v, buf, sizeof(buf), 300) < 0);
	CHECK(virtqueue_is_broken(vq));
	printf("cortex-m: a used index 100 ahead on an 8-entry ring: the queue is broken\n");
}

int main(void)
{
	static const struct duet_bare_board board = {
		.clock_ns = board_clock_ns, .random = board_random, .idle = idle, .fatal = fatal,
	};
	struct duet_rsc_error err;

	CHECK(duet_bare_init(&board) == 0);
	CHECK(CARVE_DA + duet_rsc_carveouts_size(vdevs, 3) <= sizeof(region));
	CHECK(duet_rsc_build(region, TABLE_SIZE, vdevs, 3, CARVE_DA) > 0);
	sides[0].peer = &sides[1];
	sides[1].peer = &sides[0];
	for (int i = 0; i < 2; i++) {
		struct duet_rptun_config cfg = {
			.side = (enum duet_side)i, .region = region, .region_size = sizeof(region),
			.ops = &ops, .priv = &sides[i], .reset_epochs = epochs,
		};

		CHECK(duet_rptun_create(&sides[i].rptun, &cfg, &err) == 0);
	}
	/* This image's drivers, named (a CMake build lists them for
	 * virtio_register_drivers). */
	CHECK(virtio_register_driver(&virtio_rpmsg_driver) == 0);
	CHECK(virtio_register_driver(&virtio_rng_driver) == 0);
	CHECK(vhost_register_driver(&vhost_rpmsg_driver) == 0);
	CHECK(vhost_register_driver(&vhost_rng_driver) == 0);
	vhost_set_probe_period(1);
	CHECK(duet_rptun_start(sides[1].rptun) == 0);
	CHECK(duet_rptun_start(sides[0].rptun) == 0);
	printf("cortex-m: two rptun sides over one %u KiB region, started\n",
	       (unsigned int)(sizeof(region) / 1024));
	test_rpmsg();
	test_rng();
	test_broken_peer();
	for (int i = 0; i < 2; i++) {
		CHECK(duet_rptun_stop(sides[i].rptun) == 0);
		duet_rptun_destroy(sides[i].rptun);
	}
	printf("cortex-m: %u checks, all passed\n", checks);
	return 0;
}
