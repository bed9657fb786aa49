/*
 * rig.c - both rptun sides in one image (rig.h). Each side's doorbell is
 * a word of bits, one per notify id the other side rang; the main loop
 * takes the bits and runs duet_rptun_notified for each, as a mailbox
 * interrupt's task would.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <duet/byteorder.h>
#include <duet/port.h>
#include <duet/rng.h>
#include <duet/rpmsg.h>
#include <duet/vhost.h>
#include <duet/virtio.h>

#include "../../src/port/bare/port_bare.h"
#include "../dirty.h"
#include "board.h"
#include "rig.h"

#define TABLE_SIZE 4096u
#define CARVE_DA 4096u
#define ALL_BIT 31u /* this rig's bit for "every vring" */

static const struct rpmsg_virtio_config rpmsg_cfg = { DUET_LE32(256), DUET_LE32(256) };

static struct duet_vdev_desc vdevs[3] = {
	{ .id = VIRTIO_ID_RPMSG, .driver = DUET_SERVER, .features = 1u << VIRTIO_RPMSG_F_NS,
	  .num_vrings = 2, .vring_align = 16, .config_len = sizeof(rpmsg_cfg),
	  .config = &rpmsg_cfg },
	{ .id = VIRTIO_ID_ENTROPY, .driver = DUET_SERVER, .num_vrings = 1, .vring_num = 8,
	  .vring_align = 16, .carveout_size = 8 * 1024 },
	{ .id = VIRTIO_ID_ENTROPY, .driver = DUET_PROXY, .num_vrings = 1, .vring_num = 8,
	  .vring_align = 16, .carveout_size = 8 * 1024 },
};

/* The shared region: both sides map it (here, at the same address). */
static uint8_t region[192 * 1024] __attribute__((aligned(4096)));
static _Atomic uint32_t epochs[DUET_MAX_VDEVS];

struct side {
	struct duet_rptun *rptun;
	_Atomic uint32_t rung;
	struct side *peer;
};
static struct side sides[2];
static uint64_t checked_ms;
unsigned int rig_idles;
void (*rig_idle_hook)(void);

static void ring(struct duet_rptun *rptun, uint32_t notifyid)
{
	struct side *me = duet_rptun_priv(rptun);
	uint32_t bit = notifyid == DUET_RPTUN_NOTIFY_ALL || notifyid >= ALL_BIT ? ALL_BIT : notifyid;

	atomic_fetch_or(&me->peer->rung, 1u << bit);
}

static void *table_of(struct duet_rptun *rptun, size_t *size)
{
	(void)rptun;
	*size = TABLE_SIZE;
	return region;
}

static const struct duet_rptun_ops ops = { .get_resource = table_of, .notify = ring };

int rig_turn(void)
{
	uint64_t now = duet_clock_ms();
	int ran = 0;

	for (int i = 0; i < 2; i++) {
		uint32_t bits = atomic_exchange(&sides[i].rung, 0);

		for (uint32_t b = 0; bits; b++, bits >>= 1)
			if (bits & 1u) {
				duet_rptun_notified(sides[i].rptun,
						    b == ALL_BIT ? DUET_RPTUN_NOTIFY_ALL : b);
				ran++;
			}
	}
	if (now != checked_ms) {
		checked_ms = now;
		duet_rptun_check_peer(sides[0].rptun);
		duet_rptun_check_peer(sides[1].rptun);
	}
	return ran + duet_bare_run_work();
}

static void idle(void *arg)
{
	(void)arg;
	rig_idles++;
	if (rig_idle_hook)
		rig_idle_hook();
	rig_turn();
}

int rig_until(int (*cond)(void *), void *arg, uint32_t ms)
{
	uint64_t end = duet_clock_ms() + ms;

	while (!cond(arg) && duet_clock_ms() < end)
		rig_turn();
	return cond(arg);
}

static uint32_t rng_state = 0x9e3779b9u;

/* Not entropy: a board would read its TRNG here. */
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

uint32_t rig_digest(void)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < sizeof(region); i++)
		h = (h ^ region[i]) * 16777619u;
	return h;
}

struct duet_rptun *rig_side(int i)
{
	return sides[i].rptun;
}

int rig_start(uint16_t rpmsg_ring)
{
	static const struct duet_bare_board board = {
		.clock_ns = board_clock_ns, .clock_ms = board_clock_ms, .random = board_random, .idle = idle, .fatal = fatal,
	};
	struct duet_rsc_error err;
	int ret;

	ret = duet_bare_init(&board);
	if (ret < 0)
		return ret;
	/* Both rings' buffers, 256 B each, and the rings, rounded up. */
	vdevs[0].vring_num = rpmsg_ring;
	vdevs[0].carveout_size = (uint32_t)rpmsg_ring * 2 * (256 + 32) + 8192;
	if (CARVE_DA + duet_rsc_carveouts_size(vdevs, 3) > sizeof(region))
		return -ENOSPC;
	/* Each start over a region that held anything (../dirty.h): the
	 * same pattern on every core, so the digests still compare; under
	 * MemorySanitizer (the host's run in run-linux.sh) a read of a byte
	 * that neither the table's builder nor a side wrote is reported. */
	dirty(region, sizeof(region));
	ret = duet_rsc_build(region, TABLE_SIZE, vdevs, 3, CARVE_DA);
	if (ret < 0)
		return ret;
	sides[0].peer = &sides[1];
	sides[1].peer = &sides[0];
	for (int i = 0; i < 2; i++) {
		struct duet_rptun_config cfg = {
			.side = (enum duet_side)i, .region = region, .region_size = sizeof(region),
			.ops = &ops, .priv = &sides[i], .reset_epochs = epochs,
		};

		ret = duet_rptun_create(&sides[i].rptun, &cfg, &err);
		if (ret < 0)
			return ret;
	}
	/* This image's drivers, named (a CMake build lists them for
	 * virtio_register_drivers). */
	if ((ret = virtio_register_driver(&virtio_rpmsg_driver)) < 0 ||
	    (ret = virtio_register_driver(&virtio_rng_driver)) < 0 ||
	    (ret = vhost_register_driver(&vhost_rpmsg_driver)) < 0 ||
	    (ret = vhost_register_driver(&vhost_rng_driver)) < 0)
		return ret;
	vhost_set_probe_period(1);
	if ((ret = duet_rptun_start(sides[1].rptun)) < 0)
		return ret;
	return duet_rptun_start(sides[0].rptun);
}

int rig_stop(void)
{
	int ret = 0;

	for (int i = 0; i < 2; i++) {
		int r = duet_rptun_stop(sides[i].rptun);

		if (r < 0 && ret == 0)
			ret = r;
		duet_rptun_destroy(sides[i].rptun);
	}
	return ret;
}
