/*
 * rptun in one process: a server and a proxy instance over one region with
 * the demo's three vdevs (rpmsg and rng driven by the server, a second rng
 * driven by the proxy). Doorbells are pending masks served by one thread
 * per side. Checks: every vdev lands on the right bus on the right side,
 * rng reads work in both directions, a driver reset is noticed by the
 * device side, a vring placed outside its carveout is refused, and the
 * peer checks restart exactly the devices they must.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
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

#include <duet/port.h>
#include <duet/rng.h>
#include <duet/rptun.h>

#include "dirty.h"

#define TABLE_SIZE 4096u
#define CARVE_DA 4096u

static const struct duet_vdev_desc demo[3] = {
	{ .id = VIRTIO_ID_RPMSG, .driver = DUET_SERVER, .features = 1, .num_vrings = 2,
	  .vring_num = 8, .vring_align = 16, .config_len = 8, .carveout_size = 64 * 1024 },
	{ .id = VIRTIO_ID_ENTROPY, .driver = DUET_SERVER, .num_vrings = 1, .vring_num = 8,
	  .vring_align = 16, .carveout_size = 96 * 1024 },
	{ .id = VIRTIO_ID_ENTROPY, .driver = DUET_PROXY, .num_vrings = 1, .vring_num = 8,
	  .vring_align = 16, .carveout_size = 96 * 1024 },
};

struct side {
	struct duet_rptun *rptun;
	_Atomic uint32_t pending[4]; /* notify ids this side must serve */
	pthread_t thread;
	struct side *peer;
};

static struct side sides[2];
static _Atomic bool stop_threads;
static uint8_t *region;

static size_t region_size;

#define ALL_BIT 127u /* this platform's signal for "every vring" */

static void ring(struct duet_rptun *rptun, uint32_t notifyid)
{
	struct side *me = duet_rptun_priv(rptun);

	if (notifyid == DUET_RPTUN_NOTIFY_ALL)
		notifyid = ALL_BIT;
	atomic_fetch_or(&me->peer->pending[notifyid / 32], 1u << (notifyid % 32));
}

static void *table_of(struct duet_rptun *rptun, size_t *size)
{
	(void)rptun;
	*size = TABLE_SIZE;
	return region;
}

static const struct duet_rptun_ops ops = { .get_resource = table_of, .notify = ring };

static void *serve_side(void *arg)
{
	struct side *s = arg;

	while (!atomic_load(&stop_threads)) {
		bool any = false;

		for (uint32_t w = 0; w < 4; w++) {
			uint32_t bits = atomic_exchange(&s->pending[w], 0);

			for (uint32_t b = 0; bits; b++, bits >>= 1)
				if (bits & 1u) {
					uint32_t id = w * 32 + b;

					duet_rptun_notified(s->rptun, id == ALL_BIT ? DUET_RPTUN_NOTIFY_ALL : id);
					any = true;
				}
		}
		duet_rptun_check_peer(s->rptun);
		if (!any) {
			struct timespec ts = { 0, 50000 };

			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

/* The reset epochs both sides share (in the link, beside the table). */
static _Atomic uint32_t epochs[DUET_MAX_VDEVS];
/* Whether setup starts the threads that serve doorbells and check the
 * peer; without them the test thread calls duet_rptun_check_peer alone. */
static bool serving;

/* The devices setup_sides builds the table of: demo, unless a setup says. */
static const struct duet_vdev_desc *table_vdevs = demo;
static unsigned int table_num = 3;

/* Both sides over a fresh region; `serve`: with their threads. */
static int setup_sides(bool serve)
{
	struct duet_rsc_error err;

	memset(epochs, 0, sizeof(epochs));
	region_size = CARVE_DA + duet_rsc_carveouts_size(table_vdevs, table_num);
	region = aligned_alloc(4096, region_size);
	/* As a shared RAM holds anything at boot: whatever either side reads
	 * of it, the table's builder or a side wrote first. */
	dirty(region, region_size);
	assert_true(duet_rsc_build(region, TABLE_SIZE, table_vdevs, table_num, CARVE_DA) > 0);
	sides[0].peer = &sides[1];
	sides[1].peer = &sides[0];
	for (int i = 0; i < 2; i++) {
		struct duet_rptun_config cfg = {
			.side = (enum duet_side)i, .region = region, .region_size = region_size,
			.ops = &ops, .priv = &sides[i], .reset_epochs = epochs,
		};

		assert_int_equal(duet_rptun_create(&sides[i].rptun, &cfg, &err), 0);
	}
	virtio_register_drivers();
	vhost_register_drivers();
	vhost_set_probe_period(5);
	atomic_store(&stop_threads, false);
	serving = serve;
	for (int i = 0; serve && i < 2; i++)
		assert_int_equal(pthread_create(&sides[i].thread, NULL, serve_side, &sides[i]), 0);
	return 0;
}

static int setup(void **state)
{
	(void)state;
	return setup_sides(true);
}

static int setup_still(void **state)
{
	(void)state;
	return setup_sides(false);
}

/* DUET_MAX_VDEVS rng devices, their drivers on alternate sides. */
static struct duet_vdev_desc many_rngs[DUET_MAX_VDEVS];

static int setup_max(void **state)
{
	(void)state;
	for (unsigned int i = 0; i < DUET_MAX_VDEVS; i++)
		many_rngs[i] = (struct duet_vdev_desc){
			.id = VIRTIO_ID_ENTROPY, .driver = i % 2 ? DUET_PROXY : DUET_SERVER,
			.num_vrings = 1, .vring_num = 8, .vring_align = 16,
			.carveout_size = 16 * 1024,
		};
	table_vdevs = many_rngs;
	table_num = DUET_MAX_VDEVS;
	return setup_sides(true);
}

static int teardown(void **state)
{
	(void)state;
	table_vdevs = demo;
	table_num = 3;
	atomic_store(&stop_threads, true);
	for (int i = 0; serving && i < 2; i++)
		pthread_join(sides[i].thread, NULL);
	for (int i = 0; i < 2; i++)
		duet_rptun_destroy(sides[i].rptun);
	virtio_unregister_driver(&virtio_rng_driver);
	vhost_unregister_driver(&vhost_rng_driver);
	free(region);
	return 0;
}

static void wait_bound(struct virtio_device *vdev)
{
	uint64_t end = duet_clock_ms() + 3000;

	while (!vdev->bus_driver && duet_clock_ms() < end) {
		struct timespec ts = { 0, 1000000 };

		nanosleep(&ts, NULL);
	}
	assert_non_null(vdev->bus_driver);
}

static void test_devices_on_the_right_buses(void **state)
{
	(void)state;
	assert_int_equal(duet_rptun_num_vdevs(sides[0].rptun), 3);
	for (unsigned int i = 0; i < 3; i++) {
		unsigned int want = demo[i].driver == DUET_SERVER ? VIRTIO_DEV_DRIVER
								  : VIRTIO_DEV_DEVICE;

		assert_int_equal(duet_rptun_vdev(sides[0].rptun, i)->role, want);
		assert_int_equal(duet_rptun_vdev(sides[1].rptun, i)->role,
				 want == VIRTIO_DEV_DRIVER ? VIRTIO_DEV_DEVICE : VIRTIO_DEV_DRIVER);
		assert_int_equal(duet_rptun_vdev(sides[0].rptun, i)->id.device, demo[i].id);
	}
	assert_null(duet_rptun_vdev(sides[0].rptun, 3));
}

static void test_lifecycle(void **state)
{
	(void)state;
	assert_false(duet_rptun_running(sides[0].rptun));
	assert_int_equal(duet_rptun_stop(sides[0].rptun), -EINVAL); /* not running */
	assert_int_equal(duet_rptun_start(sides[0].rptun), 0);
	assert_int_equal(duet_rptun_start(sides[0].rptun), 0); /* twice: harmless */
	assert_true(duet_rptun_running(sides[0].rptun));
	assert_int_equal(duet_rptun_stop(sides[0].rptun), 0);
	assert_int_equal(duet_rptun_stop(sides[0].rptun), -EINVAL);
	assert_int_equal(duet_rptun_start(sides[0].rptun), 0); /* and again */
	assert_true(duet_rptun_running(sides[0].rptun));
}

/*
 * A start that cannot register one of its devices registers none: a vdev
 * already on the virtio bus (here by hand, a misuse) makes it fail with
 * -EEXIST, and the others, registered before it, are taken off again.
 * Once the bus is free, the start works.
 */
static void test_start_is_all_or_nothing(void **state)
{
	struct virtio_device *v0 = duet_rptun_vdev(sides[0].rptun, 0);
	struct virtio_device *v1 = duet_rptun_vdev(sides[0].rptun, 1);

	(void)state;
	assert_non_null(v0);
	assert_non_null(v1);
	assert_int_equal(v1->role, VIRTIO_DEV_DRIVER);
	assert_int_equal(virtio_register_device(v1), 0);
	assert_int_equal(duet_rptun_start(sides[0].rptun), -EEXIST);
	assert_false(duet_rptun_running(sides[0].rptun));
	assert_int_equal(virtio_unregister_device(v0), -ENOENT); /* taken off again */
	assert_int_equal(virtio_unregister_device(v1), 0);
	assert_int_equal(duet_rptun_start(sides[0].rptun), 0);
	assert_true(duet_rptun_running(sides[0].rptun));
	assert_int_equal(duet_rptun_stop(sides[0].rptun), 0);
}

/* A platform that records what rptun asks of it. */
static int calls_start, calls_stop, calls_reset, calls_register;
static duet_rptun_callback registered_cb;

static int start_err;
static int rec_start(struct duet_rptun *r) { (void)r; calls_start++; return start_err; }
static int rec_stop(struct duet_rptun *r) { (void)r; calls_stop++; return 0; }
static int rec_reset(struct duet_rptun *r) { (void)r; calls_reset++; return 0; }
static const char *rec_local(struct duet_rptun *r) { (void)r; return "ap"; }
static const char *rec_remote(struct duet_rptun *r) { (void)r; return "mcu"; }
static int rec_register(struct duet_rptun *r, duet_rptun_callback cb)
{
	(void)r;
	calls_register++;
	registered_cb = cb;
	return 0;
}

static void test_platform_ops(void **state)
{
	static const struct duet_rptun_ops rec = {
		.get_resource = table_of, .notify = ring, .get_local_cpuname = rec_local,
		.get_remote_cpuname = rec_remote, .register_callback = rec_register,
		.start = rec_start, .stop = rec_stop, .reset = rec_reset,
	};
	struct duet_rptun_config cfg = {
		.side = DUET_SERVER, .region = region, .region_size = region_size, .ops = &rec,
		.priv = &sides[0],
	};
	struct duet_rptun *master, *slave;

	(void)state;
	calls_start = calls_stop = calls_reset = calls_register = 0;
	assert_int_equal(duet_rptun_create(&master, &cfg, NULL), 0);
	assert_int_equal(calls_register, 1);
	assert_ptr_equal(registered_cb, duet_rptun_notified);
	assert_string_equal(duet_rptun_local_cpuname(master), "ap");
	assert_string_equal(duet_rptun_remote_cpuname(master), "mcu");
	assert_int_equal(duet_rptun_shutdown(master), -EINVAL); /* not running */
	/* A remote that does not start: its error, and nothing registered. */
	start_err = -EIO;
	assert_int_equal(duet_rptun_boot(master), -EIO);
	assert_false(duet_rptun_running(master));
	assert_null(duet_rptun_vdev(master, 1)->bus_driver);
	assert_int_equal(duet_rptun_shutdown(master), -EINVAL);
	start_err = 0;
	calls_start = 0;
	assert_int_equal(duet_rptun_boot(master), 0);
	assert_int_equal(duet_rptun_boot(master), 0); /* twice: harmless */
	assert_int_equal(calls_start, 1);
	assert_int_equal(duet_rptun_reset(master), 0);
	assert_int_equal(calls_reset, 1);
	assert_int_equal(duet_rptun_panic(master), -ENOTSUP);
	assert_int_equal(duet_rptun_shutdown(master), 0);
	assert_int_equal(calls_stop, 1);
	assert_int_equal(duet_rptun_shutdown(master), -EINVAL);
	duet_rptun_destroy(master);

	cfg.side = DUET_PROXY; /* not the master: may not reset the other */
	cfg.priv = &sides[1];
	assert_int_equal(duet_rptun_create(&slave, &cfg, NULL), 0);
	assert_int_equal(duet_rptun_reset(slave), -EPERM);
	assert_int_equal(duet_rptun_boot(slave), 0);
	assert_int_equal(calls_start, 1); /* a slave boots nobody */
	duet_rptun_destroy(slave);
	/* The platform must give the table. */
	{
		struct duet_rptun_ops bad = rec;
		struct duet_rptun *x;

		bad.get_resource = NULL;
		cfg.ops = &bad;
		assert_int_equal(duet_rptun_create(&x, &cfg, NULL), -EINVAL);
	}
}

static void test_notify_all(void **state)
{
	struct virtio_device *s_rng = duet_rptun_vdev(sides[0].rptun, 1);
	uint8_t buf[16];

	(void)state;
	assert_int_equal(duet_rptun_start(sides[1].rptun), 0);
	assert_int_equal(duet_rptun_start(sides[0].rptun), 0);
	wait_bound(s_rng);
	wait_bound(duet_rptun_vdev(sides[1].rptun, 1));
	/* Every vring at once: served, none of it counted as unknown. */
	duet_rptun_notify_all(sides[0].rptun);
	duet_rptun_notify_all(sides[1].rptun);
	assert_int_equal(duet_rptun_unknown_notifies(sides[0].rptun), 0);
	assert_int_equal(duet_rptun_unknown_notifies(sides[1].rptun), 0);
	assert_int_equal(virtio_rng_read(s_rng, buf, sizeof(buf), 2000), (int)sizeof(buf));
}

static void test_rng_both_directions(void **state)
{
	static uint8_t buf[65536];
	struct virtio_device *s_rng = duet_rptun_vdev(sides[0].rptun, 1);
	struct virtio_device *p_rng = duet_rptun_vdev(sides[1].rptun, 2);

	(void)state;
	/* A woken side's prefetch: no live queue yet, nothing to ask for. */
	assert_int_equal(duet_rptun_prefetch_arrived(sides[0].rptun), 0);
	assert_int_equal(duet_rptun_start(sides[1].rptun), 0);
	assert_int_equal(duet_rptun_start(sides[0].rptun), 0);
	wait_bound(s_rng);
	wait_bound(p_rng);
	wait_bound(duet_rptun_vdev(sides[1].rptun, 1)); /* the vhost-rng serving s_rng */
	wait_bound(duet_rptun_vdev(sides[0].rptun, 2));
	/* The vring lives in the vdev's carveout, placed by its driver side. */
	assert_int_equal(((struct fw_rsc_vdev *)(void *)(region + ((struct resource_table *)(void *)region)->offset[3]))->vring[0].da,
			 CARVE_DA + 64 * 1024);
	for (size_t n = 1; n <= sizeof(buf); n *= 4) {
		assert_int_equal(virtio_rng_read(s_rng, buf, n, 2000), (int)n);
		assert_int_equal(virtio_rng_read(p_rng, buf, n, 2000), (int)n);
	}
	assert_int_equal(virtio_rng_read(s_rng, buf, sizeof(buf), 2000), (int)sizeof(buf));
	/* Its rings have gone round many times: the entry each queue takes
	 * from next names a buffer of its window, and the prefetch asks. */
	assert_true(duet_rptun_prefetch_arrived(sides[0].rptun) >= 1);
	assert_true(duet_rptun_prefetch_arrived(sides[1].rptun) >= 1);
	/* A request moves what the driver side publishes and what its peer,
	 * reading the same rings, counts as published by the other. */
	{
		uint32_t mine = duet_rptun_published(sides[0].rptun);
		uint32_t theirs = duet_rptun_peer_published(sides[1].rptun);

		assert_int_equal(virtio_rng_read(s_rng, buf, 16, 2000), 16);
		assert_true(duet_rptun_published(sides[0].rptun) - mine >= 1);
		assert_true(duet_rptun_peer_published(sides[1].rptun) - theirs >= 1);
		mine = duet_rptun_peer_published(sides[0].rptun);
		assert_int_equal(virtio_rng_read(s_rng, buf, 16, 2000), 16);
		assert_true(duet_rptun_peer_published(sides[0].rptun) - mine >= 1);
		/* The request's return is taken by the driver side, the
		 * request by the device side: each moves where it takes from. */
		mine = duet_rptun_taken(sides[0].rptun);
		theirs = duet_rptun_taken(sides[1].rptun);
		assert_int_equal(virtio_rng_read(s_rng, buf, 16, 2000), 16);
		assert_true(duet_rptun_taken(sides[0].rptun) - mine >= 1);
		assert_true(duet_rptun_taken(sides[1].rptun) - theirs >= 1);
	}
	assert_int_equal(duet_rptun_unknown_notifies(sides[0].rptun), 0);
	duet_rptun_notified(sides[0].rptun, 127);
	duet_rptun_notified(sides[0].rptun, 100000);
	assert_int_equal(duet_rptun_unknown_notifies(sides[0].rptun), 2);
}

/* A table of DUET_MAX_VDEVS devices, the most rptun takes: each is
 * created on the right bus, binds, carries data, and goes at stop. */
static void test_most_vdevs(void **state)
{
	uint8_t buf[64];

	(void)state;
	for (int s = 0; s < 2; s++) {
		assert_int_equal(duet_rptun_num_vdevs(sides[s].rptun), DUET_MAX_VDEVS);
		assert_null(duet_rptun_vdev(sides[s].rptun, DUET_MAX_VDEVS));
	}
	assert_int_equal(duet_rptun_start(sides[1].rptun), 0);
	assert_int_equal(duet_rptun_start(sides[0].rptun), 0);
	for (unsigned int i = 0; i < DUET_MAX_VDEVS; i++) {
		struct virtio_device *drv = duet_rptun_vdev(sides[i % 2].rptun, i);
		struct virtio_device *dev = duet_rptun_vdev(sides[1 - i % 2].rptun, i);

		assert_int_equal(drv->role, VIRTIO_DEV_DRIVER);
		assert_int_equal(dev->role, VIRTIO_DEV_DEVICE);
		wait_bound(drv);
		wait_bound(dev);
		assert_int_equal(virtio_rng_read(drv, buf, sizeof(buf), 2000), (int)sizeof(buf));
	}
	/* Ready, and counted over all of them, and only them. (Not polled:
	 * the serving threads dispatch, and a poll must not run beside.) */
	for (int s = 0; s < 2; s++) {
		uint32_t mine = duet_rptun_published(sides[s].rptun);

		assert_true(duet_rptun_ready(sides[s].rptun));
		assert_true(mine >= DUET_MAX_VDEVS / 2); /* a read each driver made */
		assert_int_equal(duet_rptun_peer_published(sides[1 - s].rptun), mine);
	}
	/* Ready counts only the vdevs a driver on this side serves: with
	 * vhost-rng gone, the device sides are left out. */
	assert_int_equal(vhost_unregister_driver(&vhost_rng_driver), 0);
	assert_true(duet_rptun_ready(sides[0].rptun));
	assert_true(duet_rptun_ready(sides[1].rptun));
	assert_int_equal(vhost_register_driver(&vhost_rng_driver), 0);
	/* "Every vring" reaches each of the most vdevs, and only them. */
	duet_rptun_notified(sides[0].rptun, DUET_RPTUN_NOTIFY_ALL);
	duet_rptun_notified(sides[1].rptun, DUET_RPTUN_NOTIFY_ALL);
	assert_int_equal(virtio_rng_read(duet_rptun_vdev(sides[1].rptun, DUET_MAX_VDEVS - 1), buf,
					 sizeof(buf), 2000),
			 (int)sizeof(buf));
	for (int s = 0; s < 2; s++) {
		assert_int_equal(duet_rptun_stop(sides[s].rptun), 0);
		for (unsigned int i = 0; i < DUET_MAX_VDEVS; i++) {
			struct virtio_device *v = duet_rptun_vdev(sides[s].rptun, i);

			/* Checked apart: gcc's LTO sees the NULL return path. */
			assert_non_null(v);
			if (v)
				assert_null(atomic_load(&v->bus_driver));
		}
	}
	assert_int_equal(duet_rptun_unknown_notifies(sides[0].rptun), 0);
	assert_int_equal(duet_rptun_unknown_notifies(sides[1].rptun), 0);
}

/* Both sides started; vdev 1 (rng, the server's driver) bound on both. */
static void start_rng(struct virtio_device **s_rng, struct virtio_device **host)
{
	*s_rng = duet_rptun_vdev(sides[0].rptun, 1);
	*host = duet_rptun_vdev(sides[1].rptun, 1);
	assert_int_equal(duet_rptun_start(sides[1].rptun), 0);
	assert_int_equal(duet_rptun_start(sides[0].rptun), 0);
	wait_bound(*s_rng);
	wait_bound(*host);
}

static void test_device_side_notices_driver_reset(void **state)
{
	struct virtio_device *s_rng, *host;
	uint8_t buf[32];

	(void)state;
	start_rng(&s_rng, &host);
	/* The server takes its driver away and back: the device is reset. */
	assert_int_equal(virtio_unregister_driver(&virtio_rng_driver), 0);
	{
		uint64_t end = duet_clock_ms() + 3000;

		while (host->bus_driver && duet_clock_ms() < end) {
			struct timespec ts = { 0, 1000000 };

			nanosleep(&ts, NULL);
		}
	}
	assert_null(host->bus_driver); /* vhost-rng removed, device deferred */
	assert_int_equal(virtio_register_driver(&virtio_rng_driver), 0);
	wait_bound(s_rng);
	wait_bound(host);
	assert_int_equal(virtio_rng_read(s_rng, buf, sizeof(buf), 2000), (int)sizeof(buf));
}

/* The device side asks for a reset after rings were used (used.idx is
 * not 0): both sides restart, each on a clean ring, and the device works
 * again. Before, the driver's new queue read the old used.idx (a jump:
 * broken for good, -EIO), or the device side's old queue took from the
 * new ring with old indices (a fault: another reset). */
static void test_needs_reset_restarts_on_clean_rings(void **state)
{
	struct virtio_device *s_rng, *host;
	uint8_t buf[32];

	(void)state;
	start_rng(&s_rng, &host);
	for (int round = 0; round < 3; round++) {
		uint32_t epoch = atomic_load(&epochs[1]);
		uint64_t end = duet_clock_ms() + 3000;
		uint8_t st = 0;

		for (int i = 0; i < 5; i++)
			assert_int_equal(virtio_rng_read(s_rng, buf, sizeof(buf), 2000), (int)sizeof(buf));
		assert_int_equal(virtio_set_status(host, VIRTIO_CONFIG_STATUS_NEEDS_RESET), 0);
		/* The driver side has reset and probed again. */
		do {
			struct timespec ts = { 0, 1000000 };

			nanosleep(&ts, NULL);
			virtio_get_status(s_rng, &st);
		} while ((atomic_load(&epochs[1]) == epoch || !(st & VIRTIO_CONFIG_STATUS_DRIVER_OK) ||
			  (st & VIRTIO_CONFIG_STATUS_NEEDS_RESET) || !s_rng->bus_driver) &&
			 duet_clock_ms() < end);
		assert_true(atomic_load(&epochs[1]) != epoch);
		assert_int_equal(virtio_rng_read(s_rng, buf, sizeof(buf), 2000), (int)sizeof(buf));
	}
}

/* vdev 2 (the rng the proxy drives): its entry and its carveout. */
static struct fw_rsc_vdev *vdev2_entry(void)
{
	return (struct fw_rsc_vdev *)(void *)(region +
		((struct resource_table *)(void *)region)->offset[5]);
}

static struct fw_rsc_carveout *vdev2_carveout(void)
{
	return (struct fw_rsc_carveout *)(void *)(region +
		((struct resource_table *)(void *)region)->offset[6]);
}

/*
 * The proxy, by hand, places vdev 2's vring at `da` and says DRIVER_OK
 * without creating anything; then the server starts. Returns the server's
 * device side of vdev 2.
 */
static struct virtio_device *vring_placed(uint32_t da)
{
	struct virtio_device *host = duet_rptun_vdev(sides[0].rptun, 2);
	struct fw_rsc_vdev *v = vdev2_entry();

	/* The return also shows gcc's LTO that the NULL path ends here; it
	 * warned of an 8-byte write to a region of size 0 without it. */
	if (!host) {
		fail();
		return NULL;
	}
	atomic_store((_Atomic uint32_t *)&v->vring[0].da, da);
	atomic_store((_Atomic uint8_t *)&v->status,
		     VIRTIO_CONFIG_STATUS_ACK | VIRTIO_CONFIG_STATUS_DRIVER |
			     VIRTIO_CONFIG_FEATURES_OK | VIRTIO_CONFIG_STATUS_DRIVER_OK);
	assert_int_equal(duet_rptun_start(sides[0].rptun), 0);
	return host;
}

/* A hostile proxy's place for the vring: the server's device side must
 * refuse to make a queue there. */
static void vring_placed_refused(uint32_t da)
{
	struct virtio_device *host = vring_placed(da);

	if (!host)
		return;
	{
		struct timespec ts = { 0, 50000000 };

		nanosleep(&ts, NULL);
	}
	/* vhost-rng's probe could not create its queue there. */
	assert_null(host->bus_driver);
	assert_null(host->vrings_info[0].vq);
}

/* In another vdev's carveout: the server's rpmsg rings. */
static void test_vring_outside_carveout_refused(void **state)
{
	(void)state;
	vring_placed_refused(CARVE_DA);
}

/* Inside its carveout at first, past its end at last: 64 bytes before the
 * end, for a ring longer than that. */
static void test_vring_running_off_its_carveout_refused(void **state)
{
	struct fw_rsc_vdev *v = vdev2_entry();
	struct fw_rsc_carveout *c = vdev2_carveout();

	(void)state;
	assert_int_equal(c->type, RSC_CARVEOUT);
	assert_true(vring_size(v->vring[0].num, v->vring[0].align) > 64u);
	vring_placed_refused(c->da + c->len - 64u);
}

/* The demo's devices, vdev 2's carveout 6 bytes longer than a multiple of
 * 16: its ring of 8 (230 bytes) can then start 16-aligned and end exactly
 * where the carveout does. */
static struct duet_vdev_desc odd_end[3];

static int setup_odd_end(void **state)
{
	(void)state;
	memcpy(odd_end, demo, sizeof(odd_end));
	odd_end[2].carveout_size += 6;
	table_vdevs = odd_end;
	table_num = 3;
	return setup_sides(true);
}

/* Ending exactly at its carveout's end: every byte is the carveout's, so
 * the device side takes the place. (A bound one byte tighter refused it.) */
static void test_vring_ending_at_its_carveout_end_accepted(void **state)
{
	struct fw_rsc_vdev *v = vdev2_entry();
	struct fw_rsc_carveout *c = vdev2_carveout();
	size_t size = vring_size(v->vring[0].num, v->vring[0].align);
	uint32_t da = c->da + c->len - (uint32_t)size;
	size_t used = vring_used_offset(v->vring[0].num, v->vring[0].align);
	struct virtio_device *host;

	(void)state;
	assert_int_equal(c->type, RSC_CARVEOUT);
	assert_int_equal(da % 16u, 0);
	/* What a driver writes before DRIVER_OK: nothing on the ring. The
	 * used ring is the device side's to write when its queue starts. */
	memset(region + da, 0, used);
	memset(region + da + used, 0xee, size - used);
	host = vring_placed(da);
	if (!host)
		return;
	wait_bound(host);
	assert_non_null(host->vrings_info[0].vq);
	/* The queue is there: its start wrote the used ring's index. */
	assert_int_equal(((struct vring_used *)(void *)(region + da + used))->idx, 0);
}

/* Nowhere: the table's "any address", never placed. */
static void test_vring_never_placed_refused(void **state)
{
	(void)state;
	vring_placed_refused(FW_RSC_ADDR_ANY);
}

/* vdev 1, the rng the server drives: its driver side and its device side;
 * false if either is missing. */
static bool rng_vdev1(struct virtio_device **driver, struct virtio_device **device)
{
	*driver = duet_rptun_vdev(sides[0].rptun, 1);
	*device = duet_rptun_vdev(sides[1].rptun, 1);
	return *driver && *device;
}

/* rng_vdev1, with both sides started and both of its sides bound. */
static bool start_rng_vdev1(struct virtio_device **driver, struct virtio_device **device)
{
	if (!rng_vdev1(driver, device))
		return false;
	assert_int_equal(duet_rptun_start(sides[0].rptun), 0);
	assert_int_equal(duet_rptun_start(sides[1].rptun), 0);
	wait_bound(*driver);
	wait_bound(*device);
	return true;
}

/*
 * The driver side places its vrings itself, at every probe. A hostile
 * device rewrote the address of vdev 1's vring in the live table to the
 * start of vdev 0's carveout (rpmsg's rings), then asked for a reset: the
 * driver side's new probe cleared and used a ring there, over rpmsg's.
 */
static void test_driver_places_its_vrings_whatever_the_table_says(void **state)
{
	struct virtio_device *s_rng, *host;
	struct fw_rsc_vdev *v = (struct fw_rsc_vdev *)(void *)(region +
		((struct resource_table *)(void *)region)->offset[3]);
	uint8_t before[512];
	uint32_t placed;

	(void)state;
	if (!start_rng_vdev1(&s_rng, &host)) { /* the return also tells gcc's LTO (see above) */
		fail();
		return;
	}
	placed = atomic_load((_Atomic uint32_t *)&v->vring[0].da);
	assert_int_not_equal(placed, CARVE_DA);
	memcpy(before, region + CARVE_DA, sizeof(before));

	atomic_store((_Atomic uint32_t *)&v->vring[0].da, CARVE_DA);
	assert_int_equal(virtio_set_status(host, VIRTIO_CONFIG_STATUS_NEEDS_RESET), 0);
	assert_int_equal(duet_rptun_check_peer(sides[0].rptun), 1);
	wait_bound(s_rng);
	assert_non_null(s_rng->vrings_info[0].vq);
	assert_int_equal(atomic_load((_Atomic uint32_t *)&v->vring[0].da), placed);
	assert_memory_equal(before, region + CARVE_DA, sizeof(before));
}

/*
 * A driver's descriptor names memory outside its vdev's carveout: the
 * resource table. The device side must refuse it (the ring is broken,
 * NEEDS_RESET asked) and write nothing there: its window is the vdev's
 * carveout, not the whole region (vhost-rng wrote its random bytes over
 * the table before).
 */
static void test_device_writes_only_inside_its_carveout(void **state)
{
	struct virtio_device *s_rng, *host;
	struct fw_rsc_vdev *v = (struct fw_rsc_vdev *)(void *)(region +
		((struct resource_table *)(void *)region)->offset[3]);
	struct vring_desc *desc;
	uint8_t before[64], st = 0;
	struct virtqueue_buf vb;
	uint8_t *buf;
	int found = 0;

	(void)state;
	if (!start_rng_vdev1(&s_rng, &host)) { /* the return also tells gcc's LTO (see above) */
		fail();
		return;
	}
	buf = virtio_alloc_buf(s_rng, sizeof(before), 16);
	assert_non_null(buf);
	vb = (struct virtqueue_buf){ buf, sizeof(before), true };
	assert_int_equal(virtqueue_add_buffer(s_rng->vrings_info[0].vq, &vb, 0, 1, buf), 0);
	/* The hostile part: the posted descriptor now names the table. */
	desc = (struct vring_desc *)(void *)(region + v->vring[0].da);
	for (unsigned int i = 0; i < v->vring[0].num; i++) {
		if (desc[i].addr == (uint64_t)(buf - region)) {
			desc[i].addr = 256;
			found++;
		}
	}
	assert_int_equal(found, 1);
	memcpy(before, region + 256, sizeof(before));
	duet_rptun_notified(sides[1].rptun, v->vring[0].notifyid);
	assert_memory_equal(before, region + 256, sizeof(before));
	assert_int_equal(virtio_get_status(s_rng, &st), 0);
	assert_true(st & VIRTIO_CONFIG_STATUS_NEEDS_RESET);
}


/*
 * What duet_rptun_check_peer decides on, one thing at a time, with only
 * the test thread checking: a reset epoch that moved while the status
 * stayed DRIVER_OK (the driver reset the device and came back between two
 * checks), a device with no driver bound (nothing to restart), and a
 * device's request for a reset (the driver side probes again).
 */
static void test_check_peer_sees_each_change(void **state)
{
	struct virtio_device *s_rng, *host;

	(void)state;
	if (!start_rng_vdev1(&s_rng, &host)) { /* the return also tells gcc's LTO (see above) */
		fail();
		return;
	}
	assert_int_equal(duet_rptun_check_peer(sides[1].rptun), 0);
	assert_int_equal(duet_rptun_check_peer(sides[1].rptun), 0);
	assert_int_equal(duet_rptun_check_peer(sides[0].rptun), 0);

	/* A reset too quick for the status to show it: the epoch alone. */
	atomic_fetch_add(&epochs[1], 1);
	assert_int_equal(duet_rptun_check_peer(sides[1].rptun), 1);
	wait_bound(host); /* the driver is at DRIVER_OK: bound again at once */
	assert_int_equal(duet_rptun_check_peer(sides[1].rptun), 0);

	/* No device driver bound: a driver reset restarts nothing. */
	assert_int_equal(vhost_unregister_driver(&vhost_rng_driver), 0);
	assert_null(host->bus_driver);
	assert_int_equal(duet_rptun_check_peer(sides[1].rptun), 0);
	assert_int_equal(virtio_unregister_driver(&virtio_rng_driver), 0); /* resets vdev 1 */
	assert_int_equal(duet_rptun_check_peer(sides[1].rptun), 0);

	/* The driver back, then the device's: its queues are made after
	 * every reset, and it stays. (Bound the other way round, its queues
	 * would predate the driver's probe, and the next check would restart
	 * it: the epoch moved.) */
	assert_int_equal(virtio_register_driver(&virtio_rng_driver), 0);
	wait_bound(s_rng);
	assert_int_equal(vhost_register_driver(&vhost_rng_driver), 0);
	wait_bound(host);
	assert_int_equal(duet_rptun_check_peer(sides[1].rptun), 0);

	/* The device side asks for a reset (a ring broke): the driver side
	 * probes again. */
	assert_int_equal(virtio_set_status(host, VIRTIO_CONFIG_STATUS_NEEDS_RESET), 0);
	assert_int_equal(duet_rptun_check_peer(sides[0].rptun), 1);
	wait_bound(s_rng);
	assert_int_equal(duet_rptun_check_peer(sides[0].rptun), 0);
}

/* start_rng_vdev1, then its driver side gives up on the device, as when
 * a ring breaks on that side: FAILED, DRIVER_OK kept. */
static bool rng_vdev1_given_up(struct virtio_device **driver, struct virtio_device **device)
{
	uint8_t st = 0;

	if (!start_rng_vdev1(driver, device))
		return false;
	assert_int_equal(virtio_get_status(*driver, &st), 0);
	assert_int_equal(virtio_set_status(*driver, st | VIRTIO_CONFIG_STATUS_FAILED), 0);
	return true;
}

/*
 * The driver side gives up on the device: the device side removes its
 * driver and waits, deferred, not probed again while the status says so;
 * the driver side's start-over at its own check brings it back. Before,
 * the device side stayed bound to a driver that takes nothing more, and a
 * ping from that side waited 5 s for each echo that could not come
 * (scripts/soak.py --faults scribble, session 47).
 */
static void test_device_side_leaves_a_driver_that_gave_up(void **state)
{
	struct virtio_device *s_rng, *host;

	(void)state;
	if (!rng_vdev1_given_up(&s_rng, &host)) { /* the return also tells gcc's LTO (see above) */
		fail();
		return;
	}
	assert_int_equal(duet_rptun_check_peer(sides[1].rptun), 1);
	assert_null(host->bus_driver);
	{ /* ten looks of the deferred probe (every 5 ms here) */
		struct timespec ts = { 0, 50 * 1000000L };

		nanosleep(&ts, NULL);
	}
	assert_null(host->bus_driver);
	assert_int_equal(duet_rptun_check_peer(sides[1].rptun), 0);
	/* The driver side's own check starts it over (a reset of vdev 1
	 * alone: unbinding the rng driver would reset vdev 2 too, whose device
	 * side no check here restarts, and its old queue's reads would meet
	 * the new ring's clearing). */
	assert_int_equal(duet_rptun_check_peer(sides[0].rptun), 1);
	wait_bound(s_rng);
	wait_bound(host);
	assert_int_equal(duet_rptun_check_peer(sides[1].rptun), 0);
	assert_non_null(host->bus_driver);
}

/*
 * A ring broke on the driver's side (FAILED): at its next peer check the
 * driver side starts over, probing again on clean rings, and the device
 * side sees the reset (the epoch moved) and comes back too. Before, the
 * driver stayed FAILED and bound, and its users waited out each send and
 * echo on a device that takes nothing more (the scribble soak's server,
 * 5 s an echo, session 47).
 */
static void test_driver_side_starts_over_after_giving_up(void **state)
{
	struct virtio_device *s_rng, *host;
	uint32_t epoch;
	uint8_t st = 0;

	(void)state;
	if (!rng_vdev1_given_up(&s_rng, &host)) { /* the return also tells gcc's LTO (see above) */
		fail();
		return;
	}
	epoch = atomic_load(&epochs[1]); /* giving up is no reset */
	assert_int_equal(duet_rptun_check_peer(sides[0].rptun), 1);
	wait_bound(s_rng);
	assert_int_equal(virtio_get_status(s_rng, &st), 0);
	assert_false(st & VIRTIO_CONFIG_STATUS_FAILED);
	assert_true(st & VIRTIO_CONFIG_STATUS_DRIVER_OK);
	assert_true(atomic_load(&epochs[1]) != epoch);
	assert_int_equal(duet_rptun_check_peer(sides[0].rptun), 0);
	assert_int_equal(duet_rptun_check_peer(sides[1].rptun), 1);
	wait_bound(host);
	assert_int_equal(duet_rptun_check_peer(sides[1].rptun), 0);
}

/*
 * A device driver whose probe of vdev 1's device side waits for the test
 * (at most 300 ms) before it makes its queues: the window in which the
 * device is bound (bus_driver set) but has read nothing of the rings yet.
 */
static struct virtio_device *slow_target;
static _Atomic int slow_probes, slow_removes;
static _Atomic bool slow_entered, slow_go, slow_done;

static void nap_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000 };

	nanosleep(&ts, NULL);
}

static void no_callback(struct virtqueue *vq)
{
	(void)vq;
}

static int slow_probe(struct vhost_device *hdev)
{
	const char *names[] = { "requestq" };
	vq_callback cbs[] = { no_callback };
	void *args[] = { NULL };
	uint64_t end = duet_clock_ms() + 300;
	int ret;

	if (hdev != slow_target)
		return -ENODEV;
	atomic_fetch_add(&slow_probes, 1);
	atomic_store(&slow_entered, true);
	while (!atomic_load(&slow_go) && duet_clock_ms() < end)
		nap_ms(1);
	ret = vhost_create_virtqueues(hdev, 0, 1, names, cbs, args);
	atomic_store(&slow_done, true);
	return ret;
}

static void slow_remove(struct vhost_device *hdev)
{
	atomic_fetch_add(&slow_removes, 1);
	vhost_delete_virtqueues(hdev);
}

static struct vhost_driver slow_driver = {
	.device = VIRTIO_ID_ENTROPY, .probe = slow_probe, .remove = slow_remove, .name = "slow",
};

static bool wait_flag(_Atomic bool *flag)
{
	for (int i = 0; i < 3000 && !atomic_load(flag); i++)
		nap_ms(1);
	return atomic_load(flag);
}

/*
 * The device side's peer check runs beside the deferred probe. A probe in
 * progress has bound the device but not yet noted the driver's reset epoch;
 * the check must not take that for a reset. (It did: it removed the device
 * and probed it again over rings the first probe had served, and the new
 * queue served the driver's old requests a second time, into buffers the
 * driver had already taken back.)
 */
static void test_check_peer_leaves_a_probe_in_progress(void **state)
{
	struct virtio_device *s_rng, *host;

	(void)state;
	if (!rng_vdev1(&s_rng, &host)) { /* the return also tells gcc's LTO (see above) */
		fail();
		return;
	}
	assert_int_equal(vhost_unregister_driver(&vhost_rng_driver), 0);
	assert_int_equal(vhost_register_driver(&slow_driver), 0);
	slow_target = host;
	atomic_store(&slow_probes, 0);
	atomic_store(&slow_removes, 0);
	atomic_store(&slow_entered, false);
	atomic_store(&slow_go, false);
	atomic_store(&slow_done, false);
	/* The device side first: its device waits for DRIVER_OK, deferred,
	 * and is probed on the work queue's thread. */
	assert_int_equal(duet_rptun_start(sides[1].rptun), 0);
	assert_int_equal(duet_rptun_start(sides[0].rptun), 0);
	wait_bound(s_rng);
	assert_true(wait_flag(&slow_entered));
	assert_int_equal(duet_rptun_check_peer(sides[1].rptun), 0);
	atomic_store(&slow_go, true);
	assert_true(wait_flag(&slow_done));
	wait_bound(host);
	assert_int_equal(duet_rptun_check_peer(sides[1].rptun), 0);
	assert_int_equal(atomic_load(&slow_probes), 1);
	assert_int_equal(atomic_load(&slow_removes), 0);

	/* A reset after the queues exist is still one. */
	atomic_fetch_add(&epochs[1], 1);
	assert_int_equal(duet_rptun_check_peer(sides[1].rptun), 1);
	assert_int_equal(atomic_load(&slow_removes), 1);
	assert_int_equal(atomic_load(&slow_probes), 2);
	assert_int_equal(vhost_unregister_driver(&slow_driver), 0);
	assert_int_equal(vhost_register_driver(&vhost_rng_driver), 0);
}

/*
 * A driver's calls on a vdev are checked against the table's description:
 * queues only within its vring count and only once, the 32 feature bits
 * the entry holds, config reads inside the config space. The rng vdev
 * (vdev 1) is unbound and reset here, so that features may still change.
 */
static void test_vdev_calls_out_of_bounds_are_refused(void **state)
{
	struct virtio_device *s_rng = duet_rptun_vdev(sides[0].rptun, 1);
	struct virtio_device *host = duet_rptun_vdev(sides[1].rptun, 1);
	struct virtio_device *s_rpmsg = duet_rptun_vdev(sides[0].rptun, 0);
	const char *names[2] = { "a", "b" };
	vq_callback cbs[2] = { NULL, NULL };
	void *args[2] = { NULL, NULL };
	uint8_t cfg[16];

	(void)state;
	if (!s_rng || !host || !s_rpmsg) {
		fail();
		return;
	}
	assert_int_equal(duet_rptun_start(sides[0].rptun), 0);
	assert_int_equal(duet_rptun_start(sides[1].rptun), 0);
	wait_bound(s_rng);
	/* Bound: its one queue exists already. */
	assert_int_equal(virtio_create_virtqueues(s_rng, 0, 1, names, cbs, args), -EINVAL);
	assert_int_equal(vhost_unregister_driver(&vhost_rng_driver), 0);
	assert_int_equal(virtio_unregister_driver(&virtio_rng_driver), 0);
	assert_int_equal(virtio_create_virtqueues(s_rng, 0, 0, names, cbs, args), -EINVAL);
	assert_int_equal(virtio_create_virtqueues(s_rng, 0, 2, names, cbs, args), -EINVAL);
	assert_int_equal(virtio_set_features(s_rng, 1ull << 32), -EINVAL);
	assert_int_equal(virtio_set_features(host, 1ull << 32), -EINVAL);
	/* rpmsg's config space is 8 bytes: reads end inside it. */
	assert_int_equal(virtio_read_config(s_rpmsg, 0, cfg, 8), 0);
	assert_int_equal(virtio_read_config(s_rpmsg, 8, cfg, 0), 0);
	assert_int_equal(virtio_read_config(s_rpmsg, 0, cfg, 9), -EINVAL);
	assert_int_equal(virtio_read_config(s_rpmsg, 9, cfg, 0), -EINVAL);
	assert_int_equal(virtio_read_config(s_rpmsg, 4, cfg, -1), -EINVAL);
	assert_int_equal(vhost_register_driver(&vhost_rng_driver), 0);
	assert_int_equal(virtio_register_driver(&virtio_rng_driver), 0);
}

/* ---- the offer ---- */

#define OFFER_ID 0x7e57u

/* One device of a test id, offering bits 0 and 1, its driver on the server. */
static const struct duet_vdev_desc offer_table[1] = {
	{ .id = OFFER_ID, .driver = DUET_SERVER, .features = 3, .num_vrings = 1, .vring_num = 8,
	  .vring_align = 16, .carveout_size = 16 * 1024 },
};

static int setup_offer(void **state)
{
	(void)state;
	table_vdevs = offer_table;
	table_num = 1;
	return setup_sides(true);
}

/* A driver that accepts both bits when offered; a device that takes
 * whatever was negotiated. Neither needs a queue to be bound. */
static int offer_probe(struct virtio_device *vdev)
{
	return virtio_negotiate_features(vdev, 3, NULL);
}

static int offer_host_probe(struct vhost_device *hdev)
{
	(void)hdev;
	return 0;
}

static void offer_remove(struct virtio_device *vdev)
{
	(void)vdev;
}

static struct virtio_driver offer_driver = {
	.device = OFFER_ID, .probe = offer_probe, .remove = offer_remove, .name = "offer",
};
static struct vhost_driver offer_host_driver = {
	.device = OFFER_ID, .probe = offer_host_probe, .remove = offer_remove, .name = "offer",
};

/*
 * The device side may change its offer until the driver sets FEATURES_OK
 * (virtio_set_features on a vhost device): the driver side negotiates
 * with the offer in the table, not the one it parsed at create. Before,
 * a withdrawn feature was still accepted, the device side refused the
 * set and asked for a reset, and the driver side accepted it again: the
 * device never came up.
 */
static void test_device_side_changes_its_offer(void **state)
{
	struct virtio_device *drv = duet_rptun_vdev(sides[0].rptun, 0);
	struct virtio_device *host = duet_rptun_vdev(sides[1].rptun, 0);
	uint64_t offer = 99;

	(void)state;
	if (!drv || !host) {
		fail();
		return;
	}
	assert_int_equal(virtio_register_driver(&offer_driver), 0);
	assert_int_equal(vhost_register_driver(&offer_host_driver), 0);
	assert_int_equal(virtio_get_features(drv, &offer), 0);
	assert_int_equal(offer, 3);
	/* Bit 1 withdrawn. */
	assert_int_equal(virtio_set_features(host, 1), 0);
	assert_int_equal(virtio_get_features(drv, &offer), 0);
	assert_int_equal(offer, 1);
	assert_int_equal(duet_rptun_start(sides[1].rptun), 0);
	assert_int_equal(duet_rptun_start(sides[0].rptun), 0);
	wait_bound(drv);
	wait_bound(host);
	assert_int_equal(drv->features, 1);
	assert_int_equal(host->features, 1);
	/* Negotiated: the offer is fixed until the driver resets. */
	assert_int_equal(virtio_set_features(host, 3), -EBUSY);
	assert_int_equal(virtio_unregister_driver(&offer_driver), 0);
	assert_int_equal(vhost_unregister_driver(&offer_host_driver), 0);
}

/* The driver side's heap is the carveout past its vrings, placed at
 * 64-byte steps: 64 bytes left over make a heap of one 64-byte buffer,
 * fewer make none (the vdev then has no shared buffers to give). */
static void test_heap_from_the_carveout_rest(void **state)
{
	size_t vrings = (vring_size(8, 16) + 63) / 64 * 64;

	(void)state;
	for (size_t rest = 63; rest <= 64; rest++) {
		struct duet_vdev_desc d = {
			.id = VIRTIO_ID_ENTROPY, .driver = DUET_SERVER, .num_vrings = 1,
			.vring_num = 8, .vring_align = 16, .carveout_size = (uint32_t)(vrings + rest),
		};
		struct duet_rptun_config cfg = {
			.side = DUET_SERVER, .ops = &ops, .priv = &sides[0],
		};
		struct duet_rsc_error err;
		struct duet_rptun *rptun;
		void *buf;

		region_size = CARVE_DA + duet_rsc_carveouts_size(&d, 1);
		region = aligned_alloc(4096, (region_size + 4095) / 4096 * 4096);
		memset(region, 0, region_size);
		assert_true(duet_rsc_build(region, TABLE_SIZE, &d, 1, CARVE_DA) > 0);
		cfg.region = region;
		cfg.region_size = region_size;
		assert_int_equal(duet_rptun_create(&rptun, &cfg, &err), 0);
		buf = virtio_alloc_buf(duet_rptun_vdev(rptun, 0), 64, 0);
		if (rest < 64) {
			assert_null(buf);
		} else {
			assert_non_null(buf);
			assert_true((uint8_t *)buf >= region + CARVE_DA + vrings);
			assert_true((uint8_t *)buf + 64 <= region + region_size);
			assert_null(virtio_alloc_buf(duet_rptun_vdev(rptun, 0), 1, 0));
			virtio_free_buf(duet_rptun_vdev(rptun, 0), buf);
		}
		duet_rptun_destroy(rptun);
		free(region);
	}
}

/* ---- what duet_rptun_create refuses ---- */

static size_t odd_table_size;
static uint8_t *odd_table;

static void *odd_table_of(struct duet_rptun *rptun, size_t *size)
{
	(void)rptun;
	*size = odd_table_size;
	return odd_table;
}

static const struct duet_rptun_ops odd_ops = { .get_resource = odd_table_of, .notify = ring };

static int create_with(uint8_t *t, size_t size, struct duet_rsc_error *err)
{
	struct duet_rptun_config cfg = {
		.side = DUET_SERVER, .region = region, .region_size = region_size, .ops = &odd_ops,
		.priv = &sides[0],
	};
	struct duet_rptun *r = NULL;
	int ret;

	odd_table = t;
	odd_table_size = size;
	ret = duet_rptun_create(&r, &cfg, err);
	if (ret == 0)
		duet_rptun_destroy(r);
	return ret;
}

/*
 * The configuration is checked before anything is made; the table must lie
 * in the region, and each carveout must hold its vrings. A notify id at
 * the table's limit is unknown, not an index, and stop on nothing is an
 * error.
 */
static void test_create_refuses_bad_configurations(void **state)
{
	struct duet_rptun_config cfg;
	struct duet_rptun_ops no_notify = { .get_resource = table_of };
	struct duet_rptun_ops no_table = { .notify = ring };
	struct duet_rsc_error err = { 0 };
	struct duet_rptun *r;
	struct fw_rsc_carveout *c;
	struct fw_rsc_vdev *v;

	(void)state;
	region_size = CARVE_DA + duet_rsc_carveouts_size(demo, 3);
	region = aligned_alloc(4096, region_size);
	memset(region, 0, region_size);
	assert_true(duet_rsc_build(region, TABLE_SIZE, demo, 3, CARVE_DA) > 0);
	cfg = (struct duet_rptun_config){ .side = DUET_SERVER, .region = region,
					  .region_size = region_size, .ops = &ops };
	assert_int_equal(duet_rptun_create(NULL, &cfg, NULL), -EINVAL);
	assert_int_equal(duet_rptun_create(&r, NULL, NULL), -EINVAL);
	cfg.region = NULL;
	assert_int_equal(duet_rptun_create(&r, &cfg, NULL), -EINVAL);
	cfg.region = region + 32; /* not 64-byte aligned */
	assert_int_equal(duet_rptun_create(&r, &cfg, NULL), -EINVAL);
	cfg.region = region;
	cfg.ops = NULL;
	assert_int_equal(duet_rptun_create(&r, &cfg, NULL), -EINVAL);
	cfg.ops = &no_notify;
	assert_int_equal(duet_rptun_create(&r, &cfg, NULL), -EINVAL);
	cfg.ops = &no_table;
	assert_int_equal(duet_rptun_create(&r, &cfg, NULL), -EINVAL);
	cfg.ops = &ops;
	cfg.side = (enum duet_side)7;
	assert_int_equal(duet_rptun_create(&r, &cfg, NULL), -EINVAL);

	/* The table where the platform says, checked against the region. */
	assert_int_equal(create_with(region, TABLE_SIZE, &err), 0);
	assert_int_equal(create_with(NULL, TABLE_SIZE, &err), -EINVAL);
	assert_string_equal(duet_rsc_reason(err.fault), "table outside the region");
	assert_int_equal(create_with(region, 0, &err), -EINVAL);
	assert_int_equal(create_with(region, region_size, &err), 0); /* ends at the end */
	assert_int_equal(create_with(region, region_size + 1, &err), -EINVAL);
	assert_string_equal(duet_rsc_reason(err.fault), "table outside the region");
	assert_int_equal(create_with(region + region_size - 8, 64, &err), -EINVAL);
	assert_string_equal(duet_rsc_reason(err.fault), "table outside the region");

	/* A carveout exactly its vrings (placed at 64-byte steps): taken,
	 * with no room for buffers; one byte short of the ring: refused. */
	c = (struct fw_rsc_carveout *)(void *)(region +
		((struct resource_table *)(void *)region)->offset[4]);
	c->len = (uint32_t)((vring_size(demo[1].vring_num, demo[1].vring_align) + 63u) & ~63u);
	assert_int_equal(create_with(region, TABLE_SIZE, &err), 0);
	c->len = (uint32_t)(vring_size(demo[1].vring_num, demo[1].vring_align) - 1);
	err.fault = DUET_RSC_OK;
	assert_int_equal(create_with(region, TABLE_SIZE, &err), -EINVAL);
	assert_string_equal(duet_rsc_reason(err.fault), "carveout too small for its vrings");
	assert_int_equal(err.entry, 1);

	/* A vring address already in the table: only where the driver side
	 * places it (a table written back by a running link) is taken. At any
	 * other address the driver's buffers, from the carveout after the
	 * vrings' place, could overlap its ring. */
	c->len = demo[1].carveout_size;
	v = (struct fw_rsc_vdev *)(void *)(region +
		((struct resource_table *)(void *)region)->offset[3]);
	v->vring[0].da = c->da;
	assert_int_equal(create_with(region, TABLE_SIZE, &err), 0);
	v->vring[0].da = c->da + 64u;
	err.fault = DUET_RSC_OK;
	assert_int_equal(create_with(region, TABLE_SIZE, &err), -EINVAL);
	assert_string_equal(duet_rsc_reason(err.fault), "vring not where the driver side places it");
	assert_int_equal(err.entry, 1);
	assert_int_equal(err.value, c->da + 64u);
	v->vring[0].da = FW_RSC_ADDR_ANY;
	assert_int_equal(create_with(region, TABLE_SIZE, &err), 0);

	assert_int_equal(duet_rptun_stop(NULL), -EINVAL);
	free(region);
}

/* The last notify id there is, and the first past it, on a running link. */
static void test_notify_id_limit_is_unknown(void **state)
{
	struct duet_rsc_info info;

	(void)state;
	assert_int_equal(duet_rptun_unknown_notifies(sides[0].rptun), 0);
	/* Every vring of the table is known, the first (route 0) too. */
	assert_int_equal(duet_rsc_parse(region, TABLE_SIZE, region_size, &info, NULL), 0);
	for (unsigned int i = 0; i < info.num_vdevs; i++)
		for (unsigned int k = 0; k < info.vdev[i].num_vrings; k++)
			duet_rptun_notified(sides[0].rptun, info.vdev[i].vring[k].notifyid);
	assert_int_equal(duet_rptun_unknown_notifies(sides[0].rptun), 0);
	duet_rptun_notified(sides[0].rptun, DUET_MAX_NOTIFYID - 1); /* in range, unrouted */
	assert_int_equal(duet_rptun_unknown_notifies(sides[0].rptun), 1);
	duet_rptun_notified(sides[0].rptun, DUET_MAX_NOTIFYID);
	assert_int_equal(duet_rptun_unknown_notifies(sides[0].rptun), 2);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_devices_on_the_right_buses),
		T(test_lifecycle),
		T(test_start_is_all_or_nothing),
		T(test_platform_ops),
		T(test_notify_all),
		T(test_rng_both_directions),
		T(test_device_side_notices_driver_reset),
		T(test_needs_reset_restarts_on_clean_rings),
		T(test_vring_outside_carveout_refused),
		T(test_vring_running_off_its_carveout_refused),
		T(test_vring_never_placed_refused),
		cmocka_unit_test_setup_teardown(test_vring_ending_at_its_carveout_end_accepted,
						setup_odd_end, teardown),
		cmocka_unit_test_setup_teardown(test_check_peer_sees_each_change, setup_still,
						teardown),
		cmocka_unit_test_setup_teardown(test_device_side_leaves_a_driver_that_gave_up, setup_still,
						teardown),
		cmocka_unit_test_setup_teardown(test_driver_side_starts_over_after_giving_up, setup_still,
						teardown),
		cmocka_unit_test_setup_teardown(test_check_peer_leaves_a_probe_in_progress,
						setup_still, teardown),
		cmocka_unit_test_setup_teardown(test_vdev_calls_out_of_bounds_are_refused, setup_still,
						teardown),
		cmocka_unit_test_setup_teardown(test_driver_places_its_vrings_whatever_the_table_says,
						setup_still, teardown),
		cmocka_unit_test_setup_teardown(test_device_writes_only_inside_its_carveout,
						setup_still, teardown),
		cmocka_unit_test(test_create_refuses_bad_configurations),
		cmocka_unit_test_setup_teardown(test_most_vdevs, setup_max, teardown),
		cmocka_unit_test_setup_teardown(test_device_side_changes_its_offer, setup_offer, teardown),
		cmocka_unit_test(test_heap_from_the_carveout_rest),
		T(test_notify_id_limit_is_unknown),
	};

	return cmocka_run_group_tests_name("rptun in one process", tests, NULL, NULL);
}
