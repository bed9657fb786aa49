/*
 * The virtio and vhost buses over the loopback transport: matching in both
 * registration orders, probe failure and fallback, remove ordering,
 * feature negotiation, deferred probe and its period, NEEDS_RESET, and an
 * end-to-end device whose two sides talk through the rings.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <duet/loopback.h>
#include <duet/port.h>
#include <duet/vhost.h>

#define TEST_ID 42u

struct lbdev {
	struct duet_loopback *lb;
};

static struct lbdev *lbdev_new(uint32_t id, uint32_t features)
{
	struct duet_loopback_config cfg = {
		.device_id = id, .features = features, .num_vrings = 2, .vring_num = 8,
		.vring_align = 16, .config_len = 8, .config = "config!", .heap_size = 4096,
	};
	struct lbdev *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	assert_int_equal(duet_loopback_create(&d->lb, &cfg), 0);
	return d;
}

static void lbdev_free(struct lbdev *d)
{
	duet_loopback_destroy(d->lb);
	free(d);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- recording drivers ---- */

#define MAXLOG 32
static char event_log[MAXLOG][32];
static int nlog;

static void logf_(const char *what, const char *who)
{
	if (nlog < MAXLOG)
		snprintf(event_log[nlog++], sizeof(event_log[0]), "%s %s", what, who);
}

static uint8_t status_at_probe;
static int probe_result_a = 0, probe_result_b = 0;

static int probe_a(struct virtio_device *vdev)
{
	virtio_get_status(vdev, &status_at_probe);
	logf_("probe", "a");
	return probe_result_a;
}

static void remove_a(struct virtio_device *vdev)
{
	uint8_t st;

	/* At remove the device is still alive and still bound. */
	assert_int_equal(virtio_get_status(vdev, &st), 0);
	logf_("remove", "a");
}

static int probe_b(struct virtio_device *vdev)
{
	virtio_get_status(vdev, &status_at_probe);
	logf_("probe", "b");
	return probe_result_b;
}

static void remove_b(struct virtio_device *vdev)
{
	(void)vdev;
	logf_("remove", "b");
}

static struct virtio_driver drv_a = { .device = TEST_ID, .probe = probe_a, .remove = remove_a };
static struct virtio_driver drv_b = { .device = TEST_ID, .probe = probe_b, .remove = remove_b };
static struct virtio_driver drv_other = { .device = TEST_ID + 1, .probe = probe_b };

static int reset_log(void **state)
{
	(void)state;
	nlog = 0;
	probe_result_a = probe_result_b = 0;
	status_at_probe = 0;
	return 0;
}

static void expect_log(const char *const *want, int n)
{
	assert_int_equal(nlog, n);
	for (int i = 0; i < n; i++)
		assert_string_equal(event_log[i], want[i]);
}

/* ---- virtio bus ---- */

static void test_virtio_device_then_driver(void **state)
{
	struct lbdev *d = lbdev_new(TEST_ID, 0);
	struct virtio_device *vdev = duet_loopback_driver(d->lb);
	uint8_t st;

	(void)state;
	assert_int_equal(virtio_register_device(vdev), 0);
	assert_int_equal(nlog, 0);
	assert_int_equal(virtio_register_driver(&drv_other), 0); /* other id: no probe */
	assert_int_equal(nlog, 0);
	assert_int_equal(virtio_register_driver(&drv_a), 0);
	expect_log((const char *const[]){ "probe a" }, 1);
	/* VIRTIO 3.1: ACKNOWLEDGE and DRIVER before probe, DRIVER_OK after. */
	assert_int_equal(status_at_probe, VIRTIO_CONFIG_STATUS_ACK | VIRTIO_CONFIG_STATUS_DRIVER);
	virtio_get_status(vdev, &st);
	assert_true(st & VIRTIO_CONFIG_STATUS_DRIVER_OK);
	assert_ptr_equal(vdev->bus_driver, &drv_a);

	assert_int_equal(virtio_unregister_device(vdev), 0);
	expect_log((const char *const[]){ "probe a", "remove a" }, 2);
	virtio_get_status(vdev, &st);
	assert_int_equal(st, 0); /* reset after remove */
	assert_int_equal(virtio_unregister_driver(&drv_a), 0);
	assert_int_equal(virtio_unregister_driver(&drv_other), 0);
	lbdev_free(d);
}

static void test_virtio_driver_then_device(void **state)
{
	struct lbdev *d = lbdev_new(TEST_ID, 0);
	struct virtio_device *vdev = duet_loopback_driver(d->lb);

	(void)state;
	assert_int_equal(virtio_register_driver(&drv_a), 0);
	assert_int_equal(nlog, 0);
	assert_int_equal(virtio_register_device(vdev), 0);
	expect_log((const char *const[]){ "probe a" }, 1);
	/* Unregistering the driver removes it from its device first. */
	assert_int_equal(virtio_unregister_driver(&drv_a), 0);
	expect_log((const char *const[]){ "probe a", "remove a" }, 2);
	assert_null(vdev->bus_driver);
	assert_int_equal(virtio_unregister_device(vdev), 0);
	assert_int_equal(nlog, 2); /* an unbound device is just dropped */
	lbdev_free(d);
}

static void test_virtio_fallback_device_path(void **state)
{
	struct lbdev *d = lbdev_new(TEST_ID, 0);
	struct virtio_device *vdev = duet_loopback_driver(d->lb);

	(void)state;
	probe_result_a = -EIO;
	assert_int_equal(virtio_register_driver(&drv_a), 0);
	assert_int_equal(virtio_register_driver(&drv_b), 0);
	assert_int_equal(virtio_register_device(vdev), 0);
	expect_log((const char *const[]){ "probe a", "probe b" }, 2);
	/* b starts from a reset device, not from a's FAILED. */
	assert_int_equal(status_at_probe, VIRTIO_CONFIG_STATUS_ACK | VIRTIO_CONFIG_STATUS_DRIVER);
	assert_ptr_equal(vdev->bus_driver, &drv_b);
	assert_int_equal(virtio_unregister_device(vdev), 0);
	assert_int_equal(virtio_unregister_driver(&drv_a), 0);
	assert_int_equal(virtio_unregister_driver(&drv_b), 0);
	lbdev_free(d);
}

static void test_virtio_fallback_driver_path(void **state)
{
	struct lbdev *d = lbdev_new(TEST_ID, 0);
	struct virtio_device *vdev = duet_loopback_driver(d->lb);
	uint8_t st;

	(void)state;
	probe_result_a = -EIO;
	assert_int_equal(virtio_register_device(vdev), 0);
	assert_int_equal(virtio_register_driver(&drv_a), 0);
	expect_log((const char *const[]){ "probe a" }, 1);
	virtio_get_status(vdev, &st);
	assert_true(st & VIRTIO_CONFIG_STATUS_FAILED); /* nobody could drive it */
	/* A new driver: the same walk as on the device path, a then b. */
	assert_int_equal(virtio_register_driver(&drv_b), 0);
	expect_log((const char *const[]){ "probe a", "probe a", "probe b" }, 3);
	assert_ptr_equal(vdev->bus_driver, &drv_b);
	virtio_get_status(vdev, &st);
	assert_int_equal(st, VIRTIO_CONFIG_STATUS_ACK | VIRTIO_CONFIG_STATUS_DRIVER |
				     VIRTIO_CONFIG_STATUS_DRIVER_OK);
	assert_int_equal(virtio_unregister_driver(&drv_b), 0);
	/* b's device goes back to the bus and a is tried again (and fails). */
	expect_log((const char *const[]){ "probe a", "probe a", "probe b", "remove b", "probe a" }, 5);
	assert_int_equal(virtio_unregister_driver(&drv_a), 0);
	assert_int_equal(virtio_unregister_device(vdev), 0);
	lbdev_free(d);
}

static void test_unregister_driver_hands_devices_over(void **state)
{
	struct lbdev *d = lbdev_new(TEST_ID, 0);
	struct virtio_device *vdev = duet_loopback_driver(d->lb);

	(void)state;
	assert_int_equal(virtio_register_driver(&drv_a), 0);
	assert_int_equal(virtio_register_driver(&drv_b), 0);
	assert_int_equal(virtio_register_device(vdev), 0);
	assert_ptr_equal(vdev->bus_driver, &drv_a);
	assert_int_equal(virtio_unregister_driver(&drv_a), 0);
	expect_log((const char *const[]){ "probe a", "remove a", "probe b" }, 3);
	assert_ptr_equal(vdev->bus_driver, &drv_b);
	assert_int_equal(virtio_unregister_device(vdev), 0);
	assert_int_equal(virtio_unregister_driver(&drv_b), 0);
	lbdev_free(d);
}

static void test_register_errors(void **state)
{
	struct lbdev *d = lbdev_new(TEST_ID, 0);
	struct virtio_device *vdev = duet_loopback_driver(d->lb);
	struct virtio_driver noprobe = { .device = TEST_ID };

	(void)state;
	assert_int_equal(virtio_unregister_driver(&drv_a), -ENOENT);
	assert_int_equal(virtio_unregister_device(vdev), -ENOENT);
	assert_int_equal(vhost_unregister_device(duet_loopback_device(d->lb)), -ENOENT);
	assert_int_equal(virtio_register_driver(NULL), -EINVAL);
	assert_int_equal(virtio_register_driver(&noprobe), -EINVAL);
	assert_int_equal(virtio_register_device(NULL), -EINVAL);
	assert_int_equal(virtio_unregister_driver(NULL), -EINVAL);
	assert_int_equal(virtio_unregister_device(NULL), -EINVAL);
	assert_int_equal(vhost_unregister_driver(NULL), -EINVAL);
	assert_int_equal(vhost_unregister_device(NULL), -EINVAL);
	/* Each side goes on its own bus only. */
	assert_int_equal(virtio_register_device(duet_loopback_device(d->lb)), -EINVAL);
	assert_int_equal(vhost_register_device(vdev), -EINVAL);
	/* A device side waiting for its driver (deferred: its driver side is
	 * not registered yet) is on its bus all the same: a second
	 * registration would link it into the bus's lists twice. */
	assert_int_equal(vhost_register_device(duet_loopback_device(d->lb)), 0);
	assert_int_equal(vhost_register_device(duet_loopback_device(d->lb)), -EEXIST);
	assert_int_equal(vhost_unregister_device(duet_loopback_device(d->lb)), 0);
	assert_int_equal(vhost_unregister_device(duet_loopback_device(d->lb)), -ENOENT);
	assert_false(virtio_has_driver(TEST_ID));
	assert_int_equal(virtio_register_driver(&drv_a), 0);
	assert_true(virtio_has_driver(TEST_ID)); /* its bus only, its id only */
	assert_false(virtio_has_driver(TEST_ID + 1));
	assert_false(vhost_has_driver(TEST_ID));
	assert_int_equal(virtio_register_driver(&drv_a), -EEXIST);
	assert_int_equal(virtio_register_device(vdev), 0);
	assert_int_equal(virtio_register_device(vdev), -EEXIST);
	/* A device without its transport's functions goes on no bus. */
	{
		struct virtio_device bare;

		memset(&bare, 0, sizeof(bare));
		bare.role = VIRTIO_DEV_DRIVER;
		assert_int_equal(virtio_register_device(&bare), -EINVAL);
		bare.role = VIRTIO_DEV_DEVICE;
		assert_int_equal(vhost_register_device(&bare), -EINVAL);
	}
	assert_int_equal(nlog, 1);
	assert_int_equal(virtio_unregister_device(vdev), 0);
	assert_int_equal(virtio_unregister_device(vdev), -ENOENT);
	assert_int_equal(virtio_unregister_driver(&drv_a), 0);
	assert_false(virtio_has_driver(TEST_ID));
	lbdev_free(d);
}

/* ---- negotiation ---- */

static uint64_t negotiated;
static int negotiate_ret;

static int probe_negotiates(struct virtio_device *vdev)
{
	negotiate_ret = virtio_negotiate_features(vdev, 0x5, &negotiated);
	return negotiate_ret;
}

static struct virtio_driver drv_neg = { .device = TEST_ID, .probe = probe_negotiates };

static void test_negotiation_takes_the_common_subset(void **state)
{
	struct lbdev *d = lbdev_new(TEST_ID, 0x6);
	struct virtio_device *vdev = duet_loopback_driver(d->lb);
	uint8_t st;

	(void)state;
	assert_int_equal(virtio_register_driver(&drv_neg), 0);
	assert_int_equal(virtio_register_device(vdev), 0);
	assert_int_equal(negotiate_ret, 0);
	assert_int_equal(negotiated, 0x4); /* offered 0x6, wanted 0x5 */
	assert_true(virtio_has_feature(vdev, 2) && !virtio_has_feature(vdev, 0));
	virtio_get_status(vdev, &st);
	assert_true(st & VIRTIO_CONFIG_FEATURES_OK);
	assert_true(st & VIRTIO_CONFIG_STATUS_DRIVER_OK);
	assert_int_equal(duet_loopback_rsc(d->lb)->gfeatures, 0x4);
	assert_int_equal(virtio_unregister_device(vdev), 0);
	assert_int_equal(virtio_unregister_driver(&drv_neg), 0);
	lbdev_free(d);
}

static void test_device_refuses_unoffered_features(void **state)
{
	struct lbdev *d = lbdev_new(TEST_ID, 0x6);
	struct virtio_device *vdev = duet_loopback_driver(d->lb);
	uint8_t st;

	(void)state;
	assert_int_equal(virtio_set_status(vdev, VIRTIO_CONFIG_STATUS_ACK |
							 VIRTIO_CONFIG_STATUS_DRIVER), 0);
	assert_int_equal(virtio_set_features(vdev, 0x1), 0); /* not offered */
	assert_int_equal(virtio_set_status(vdev, VIRTIO_CONFIG_STATUS_ACK |
							 VIRTIO_CONFIG_STATUS_DRIVER |
							 VIRTIO_CONFIG_FEATURES_OK), 0);
	virtio_get_status(vdev, &st);
	assert_false(st & VIRTIO_CONFIG_FEATURES_OK); /* did not stick */
	/* After FEATURES_OK the offer and the acceptance are frozen. */
	assert_int_equal(virtio_set_features(vdev, 0x2), 0);
	assert_int_equal(virtio_set_status(vdev, VIRTIO_CONFIG_STATUS_ACK |
							 VIRTIO_CONFIG_STATUS_DRIVER |
							 VIRTIO_CONFIG_FEATURES_OK), 0);
	assert_int_equal(virtio_set_features(vdev, 0x4), -EBUSY);
	assert_int_equal(virtio_set_features(duet_loopback_device(d->lb), 0xff), -EBUSY);
	lbdev_free(d);
}

/* A transport whose device refuses every feature set: FEATURES_OK never
 * sticks, as a device that cannot work with the driver's choice says. */
static uint8_t stubborn_status;

static int stubborn_get_status(struct virtio_device *vdev, uint8_t *status)
{
	(void)vdev;
	*status = stubborn_status;
	return 0;
}

static int stubborn_set_status(struct virtio_device *vdev, uint8_t status)
{
	(void)vdev;
	stubborn_status = (uint8_t)(status & ~VIRTIO_CONFIG_FEATURES_OK);
	return 0;
}

static int stubborn_get_features(struct virtio_device *vdev, uint64_t *features)
{
	(void)vdev;
	*features = 0x6;
	return 0;
}

static int stubborn_set_features(struct virtio_device *vdev, uint64_t features)
{
	(void)vdev;
	(void)features;
	return 0;
}

static void test_negotiation_fails_when_the_device_refuses(void **state)
{
	static const struct virtio_dispatch stubborn = {
		.get_status = stubborn_get_status, .set_status = stubborn_set_status,
		.get_features = stubborn_get_features, .set_features = stubborn_set_features,
	};
	struct virtio_device vdev = { .role = VIRTIO_DEV_DRIVER, .func = &stubborn };
	uint64_t final = 99;

	(void)state;
	stubborn_status = VIRTIO_CONFIG_STATUS_ACK | VIRTIO_CONFIG_STATUS_DRIVER;
	assert_int_equal(virtio_negotiate_features(&vdev, 0x4, &final), -ENODEV);
	assert_true(stubborn_status & VIRTIO_CONFIG_STATUS_FAILED);
	assert_int_equal(vdev.features, 0); /* nothing negotiated */
	assert_int_equal(final, 99);
}

/* A transport whose status and feature calls fail (a link that went
 * down: -EIO), call by call, in front of the loopback's. */
static const struct virtio_dispatch *real_ops;
static int failing_call;  /* 1 get_status, 2 set_status, 3 get_features, 4 set_features */

static int f_get_status(struct virtio_device *vdev, uint8_t *status)
{
	return failing_call == 1 ? -EIO : real_ops->get_status(vdev, status);
}

static int f_set_status(struct virtio_device *vdev, uint8_t status)
{
	return failing_call == 2 ? -EIO : real_ops->set_status(vdev, status);
}

static int f_get_features(struct virtio_device *vdev, uint64_t *features)
{
	return failing_call == 3 ? -EIO : real_ops->get_features(vdev, features);
}

static int f_set_features(struct virtio_device *vdev, uint64_t features)
{
	return failing_call == 4 ? -EIO : real_ops->set_features(vdev, features);
}

/*
 * Each failing call: the negotiation returns its error and negotiates
 * nothing; a device whose reset or acknowledgement fails is registered
 * but not probed, and binds once the transport works and a driver comes.
 */
static void test_a_failing_transport_binds_nothing(void **state)
{
	struct lbdev *d = lbdev_new(TEST_ID, 0x6);
	struct virtio_device *vdev = duet_loopback_driver(d->lb);
	struct virtio_dispatch ops;
	uint64_t final = 99;

	(void)state;
	real_ops = vdev->func;
	ops = *real_ops;
	ops.get_status = f_get_status;
	ops.set_status = f_set_status;
	ops.get_features = f_get_features;
	ops.set_features = f_set_features;
	vdev->func = &ops;
	for (failing_call = 1; failing_call <= 4; failing_call++) {
		real_ops->set_status(vdev, VIRTIO_CONFIG_STATUS_ACK | VIRTIO_CONFIG_STATUS_DRIVER);
		vdev->features = 0;
		assert_int_equal(virtio_negotiate_features(vdev, 0x4, &final), -EIO);
		assert_int_equal(vdev->features, 0);
		assert_int_equal(final, 99);
	}
	/* The reset before a probe fails: nothing probed, nothing bound. */
	failing_call = 2;
	assert_int_equal(virtio_register_driver(&drv_a), 0);
	assert_int_equal(virtio_register_device(vdev), 0);
	assert_int_equal(nlog, 0);
	assert_null(vdev->bus_driver);
	assert_int_equal(virtio_unregister_driver(&drv_a), 0);
	/* The link is back: the next driver binds it. */
	failing_call = 0;
	assert_int_equal(virtio_register_driver(&drv_a), 0);
	expect_log((const char *const[]){ "probe a" }, 1);
	assert_ptr_equal(vdev->bus_driver, &drv_a);
	assert_int_equal(virtio_unregister_device(vdev), 0);
	assert_int_equal(virtio_unregister_driver(&drv_a), 0);
	vdev->func = real_ops;
	lbdev_free(d);
}

static void test_config_access_and_expressions(void **state)
{
	struct lbdev *d = lbdev_new(TEST_ID, 0);
	struct virtio_device *vdev = duet_loopback_driver(d->lb);
	struct virtio_device *hdev = duet_loopback_device(d->lb);
	struct cfg {
		uint32_t a;
		uint32_t b;
	};
	uint32_t v = 0;
	char buf[8];

	(void)state;
	assert_int_equal(virtio_read_config(vdev, 0, buf, 8), 0);
	assert_memory_equal(buf, "config!", 8);
	assert_int_equal(virtio_read_config(vdev, 4, buf, 5), -EINVAL);
	assert_int_equal(virtio_read_config(vdev, 0xffffffffu, buf, 1), -EINVAL);
	assert_int_equal(virtio_read_config(vdev, 0, buf, -1), -EINVAL);
	v = 0x11223344;
	/* The member macros are expressions: usable in conditions. */
	if (vhost_write_config_member(hdev, struct cfg, b, &v) != 0 ||
	    virtio_read_config_member(vdev, struct cfg, b, &v) != 0 || vhost_has_feature(hdev, 3))
		fail();
	assert_int_equal(v, 0x11223344);
	lbdev_free(d);
}

/* ---- vhost bus and deferred probe ---- */

static _Atomic int vhost_probes, vhost_removes, probed_unready;
static _Atomic uint64_t probed_at_ms;

/* Runs on the work queue's thread for deferred probes: no cmocka asserts
 * here (they longjmp); record, and let the test thread assert. */
static int vhost_probe(struct vhost_device *hdev)
{
	uint8_t st = 0;

	vhost_get_status(hdev, &st);
	if (!(st & VIRTIO_CONFIG_STATUS_DRIVER_OK))
		probed_unready++; /* never before the peer is ready */
	probed_at_ms = duet_clock_ms();
	vhost_probes++;
	return 0;
}

static void vhost_remove(struct vhost_device *hdev)
{
	(void)hdev;
	vhost_removes++;
}

static struct vhost_driver vdrv = { .device = TEST_ID, .probe = vhost_probe, .remove = vhost_remove };

static int reset_vhost(void **state)
{
	(void)state;
	vhost_probes = vhost_removes = probed_unready = 0;
	vhost_set_probe_period(20);
	return 0;
}

static void driver_ready(struct lbdev *d)
{
	struct virtio_device *vdev = duet_loopback_driver(d->lb);

	virtio_set_status(vdev, VIRTIO_CONFIG_STATUS_ACK | VIRTIO_CONFIG_STATUS_DRIVER |
					VIRTIO_CONFIG_FEATURES_OK | VIRTIO_CONFIG_STATUS_DRIVER_OK);
}

static void wait_for(_Atomic int *counter, int want, unsigned int max_ms)
{
	uint64_t end = duet_clock_ms() + max_ms;

	while (*counter < want && duet_clock_ms() < end)
		sleep_ms(1);
}

static void test_vhost_ready_peer_probes_at_once(void **state)
{
	struct lbdev *d = lbdev_new(TEST_ID, 0);
	struct vhost_device *hdev = duet_loopback_device(d->lb);

	(void)state;
	driver_ready(d);
	assert_int_equal(vhost_register_driver(&vdrv), 0);
	assert_true(vhost_has_driver(TEST_ID));
	assert_false(virtio_has_driver(TEST_ID));
	assert_int_equal(vhost_register_device(hdev), 0);
	assert_int_equal(vhost_probes, 1); /* synchronously */
	assert_int_equal(vhost_unregister_device(hdev), 0);
	assert_int_equal(vhost_removes, 1);
	assert_int_equal(vhost_unregister_driver(&vdrv), 0);
	lbdev_free(d);
}

static void test_vhost_deferred_until_driver_ok(void **state)
{
	struct lbdev *d = lbdev_new(TEST_ID, 0);
	struct vhost_device *hdev = duet_loopback_device(d->lb);
	uint64_t ready_at;

	(void)state;
	assert_int_equal(vhost_register_device(hdev), 0);
	assert_int_equal(vhost_register_driver(&vdrv), 0);
	sleep_ms(110); /* 5.5 periods with the peer not ready: off the tick */
	assert_int_equal(vhost_probes, 0);

	ready_at = duet_clock_ms();
	driver_ready(d);
	wait_for(&vhost_probes, 1, 2000);
	assert_int_equal(vhost_probes, 1);
	print_message("probed %llu ms after DRIVER_OK (period 20 ms)\n",
		      (unsigned long long)(probed_at_ms - ready_at));
	/* "About two periods": allow scheduling noise on a shared machine. */
	assert_true(probed_at_ms - ready_at <= 2 * 20 + 100);

	assert_int_equal(vhost_unregister_driver(&vdrv), 0);
	assert_int_equal(vhost_removes, 1);
	assert_int_equal(vhost_unregister_device(hdev), 0);
	assert_int_equal(vhost_removes, 1);
	lbdev_free(d);
}

static void test_vhost_unregister_while_deferred(void **state)
{
	struct lbdev *d = lbdev_new(TEST_ID, 0);
	struct vhost_device *hdev = duet_loopback_device(d->lb);

	(void)state;
	assert_int_equal(vhost_register_driver(&vdrv), 0);
	assert_int_equal(vhost_register_device(hdev), 0);
	assert_int_equal(vhost_unregister_device(hdev), 0);
	driver_ready(d);
	sleep_ms(100);
	assert_int_equal(vhost_probes, 0);
	assert_int_equal(vhost_removes, 0);
	assert_int_equal(vhost_unregister_device(hdev), -ENOENT);
	assert_int_equal(vhost_unregister_driver(&vdrv), 0);
	lbdev_free(d);
}

static _Atomic int resets;

static int counting_reset(struct virtio_device *vdev)
{
	(void)vdev;
	resets++;
	return 0;
}

static void test_vhost_needs_reset_is_reset_and_stays_deferred(void **state)
{
	struct lbdev *d = lbdev_new(TEST_ID, 0);
	struct vhost_device *hdev = duet_loopback_device(d->lb);
	struct virtio_dispatch ops = *hdev->func;
	const struct virtio_dispatch *saved = hdev->func;

	(void)state;
	ops.reset_device = counting_reset;
	hdev->func = &ops;
	resets = 0;
	driver_ready(d);
	atomic_fetch_or((_Atomic uint8_t *)&duet_loopback_rsc(d->lb)->status, VIRTIO_CONFIG_STATUS_NEEDS_RESET);
	assert_int_equal(vhost_register_driver(&vdrv), 0);
	assert_int_equal(vhost_register_device(hdev), 0);
	wait_for(&resets, 2, 2000);
	assert_true(resets >= 2); /* reset each period while it lasts */
	assert_int_equal(vhost_probes, 0);
	/* The driver resets and starts over: now the device comes up. */
	virtio_reset_device(duet_loopback_driver(d->lb));
	driver_ready(d);
	wait_for(&vhost_probes, 1, 2000);
	assert_int_equal(vhost_probes, 1);
	assert_int_equal(vhost_unregister_device(hdev), 0);
	assert_int_equal(vhost_unregister_driver(&vdrv), 0);
	hdev->func = saved;
	lbdev_free(d);
}

static void test_vhost_refuses_peer_with_unoffered_features(void **state)
{
	struct lbdev *d = lbdev_new(TEST_ID, 0x1);
	struct vhost_device *hdev = duet_loopback_device(d->lb);
	uint8_t st;

	(void)state;
	/* A hostile driver writes gfeatures and DRIVER_OK behind the API. */
	duet_loopback_rsc(d->lb)->gfeatures = 0x3;
	duet_loopback_rsc(d->lb)->status = VIRTIO_CONFIG_STATUS_ACK | VIRTIO_CONFIG_STATUS_DRIVER |
			    VIRTIO_CONFIG_FEATURES_OK | VIRTIO_CONFIG_STATUS_DRIVER_OK;
	assert_int_equal(vhost_register_driver(&vdrv), 0);
	assert_int_equal(vhost_register_device(hdev), 0);
	sleep_ms(60);
	assert_int_equal(vhost_probes, 0);
	vhost_get_status(hdev, &st);
	assert_true(st & VIRTIO_CONFIG_STATUS_NEEDS_RESET);
	assert_int_equal(vhost_unregister_device(hdev), 0);
	assert_int_equal(vhost_unregister_driver(&vdrv), 0);
	lbdev_free(d);
}

static void test_vhost_device_may_only_request_reset(void **state)
{
	struct lbdev *d = lbdev_new(TEST_ID, 0);
	struct vhost_device *hdev = duet_loopback_device(d->lb);
	uint8_t st;

	(void)state;
	assert_int_equal(vhost_set_status(hdev, VIRTIO_CONFIG_STATUS_DRIVER_OK), -EPERM);
	assert_int_equal(vhost_set_status(hdev, VIRTIO_CONFIG_STATUS_NEEDS_RESET), 0);
	vhost_get_status(hdev, &st);
	assert_int_equal(st, VIRTIO_CONFIG_STATUS_NEEDS_RESET);
	lbdev_free(d);
}

/* ---- end to end: an echo device ---- */

struct echo {
	struct virtqueue *tx, *rx;
	int echoed;
};

static struct echo host_echo;
static _Atomic int host_echo_up; /* set by the probe, after host_echo */

static void host_tx_ready(struct virtqueue *vq)
{
	struct echo *e = vq->priv;
	struct virtqueue_buf in[2], out[2];
	size_t n, m;
	int h, r;

	/* Take what the driver sent on tx, copy it into an rx buffer. */
	while ((h = vhost_get_vq_buffers(e->tx, in, 2, &n)) >= 0) {
		r = vhost_get_vq_buffers(e->rx, out, 2, &m);
		assert_true(r >= 0);
		assert_false(in[0].writable);
		assert_true(out[0].writable && out[0].len >= in[0].len);
		memcpy(out[0].buf, in[0].buf, in[0].len);
		assert_int_equal(virtqueue_add_consumed_buffer(e->tx, (uint16_t)h, 0), 0);
		assert_int_equal(virtqueue_add_consumed_buffer(e->rx, (uint16_t)r, in[0].len), 0);
		e->echoed++;
	}
	virtqueue_kick(e->tx);
	virtqueue_kick(e->rx);
}

static int echo_host_probe(struct vhost_device *hdev)
{
	const char *names[] = { "tx", "rx" };
	vq_callback cbs[] = { host_tx_ready, NULL };
	void *args[] = { &host_echo, &host_echo };
	int ret = vhost_create_virtqueues(hdev, 0, 2, names, cbs, args);

	if (ret < 0)
		return ret;
	host_echo.tx = hdev->vrings_info[0].vq;
	host_echo.rx = hdev->vrings_info[1].vq;
	host_echo_up = 1;
	return 0;
}

static void echo_host_remove(struct vhost_device *hdev)
{
	host_echo_up = 0;
	vhost_delete_virtqueues(hdev);
}

static struct vhost_driver echo_host = { .device = VIRTIO_ID_CONSOLE, .probe = echo_host_probe,
					 .remove = echo_host_remove };

static struct echo guest_echo;
static char guest_rx[64];
static uint32_t guest_got;

static void guest_rx_done(struct virtqueue *vq)
{
	uint32_t len;

	while (virtqueue_get_buffer(vq, &len, NULL))
		guest_got = len;
}

static int echo_guest_probe(struct virtio_device *vdev)
{
	const char *names[] = { "tx", "rx" };
	vq_callback cbs[] = { NULL, guest_rx_done };
	int ret = virtio_negotiate_features(vdev, 1ull << VIRTIO_RING_F_EVENT_IDX, NULL);

	if (ret == 0)
		ret = virtio_create_virtqueues(vdev, 0, 2, names, cbs, NULL);
	if (ret < 0)
		return ret;
	guest_echo.tx = vdev->vrings_info[0].vq;
	guest_echo.rx = vdev->vrings_info[1].vq;
	return 0;
}

static void echo_guest_remove(struct virtio_device *vdev)
{
	virtio_delete_virtqueues(vdev);
}

static struct virtio_driver echo_guest = { .device = VIRTIO_ID_CONSOLE,
					   .probe = echo_guest_probe,
					   .remove = echo_guest_remove };

static void test_loopback_end_to_end(void **state)
{
	struct lbdev *d = lbdev_new(VIRTIO_ID_CONSOLE, 1u << VIRTIO_RING_F_EVENT_IDX);
	struct virtio_device *vdev = duet_loopback_driver(d->lb);
	struct vhost_device *hdev = duet_loopback_device(d->lb);
	char *tx = virtio_alloc_buf(duet_loopback_driver(d->lb), 64, 16);
	char *rx = virtio_alloc_buf(duet_loopback_driver(d->lb), 64, 16);
	struct virtqueue_buf b;
	int i;

	(void)state;
	assert_int_equal(vhost_register_driver(&echo_host), 0);
	assert_int_equal(vhost_register_device(hdev), 0); /* deferred: no driver yet */
	assert_int_equal(virtio_register_driver(&echo_guest), 0);
	assert_int_equal(virtio_register_device(vdev), 0);
	assert_true(virtio_has_feature(vdev, VIRTIO_RING_F_EVENT_IDX));
	for (i = 0; i < 200 && !host_echo_up; i++)
		sleep_ms(5);
	assert_true(host_echo_up); /* the deferred probe ran */
	assert_true(vhost_has_feature(hdev, VIRTIO_RING_F_EVENT_IDX));

	for (i = 0; i < 100; i++) {
		int n = snprintf(tx, 64, "message %d", i) + 1;

		guest_got = 0;
		b = (struct virtqueue_buf){ rx, 64, true };
		assert_int_equal(virtqueue_add_buffer(guest_echo.rx, &b, 0, 1, rx), 0);
		b = (struct virtqueue_buf){ tx, (uint32_t)n, false };
		assert_int_equal(virtqueue_add_buffer(guest_echo.tx, &b, 1, 0, tx), 0);
		virtqueue_kick(guest_echo.rx);
		virtqueue_kick(guest_echo.tx);
		while (duet_loopback_poll(d->lb) > 0)
			;
		assert_int_equal(guest_got, (uint32_t)n);
		assert_string_equal(rx, tx);
		while (virtqueue_get_buffer(guest_echo.tx, NULL, NULL))
			;
	}
	assert_int_equal(host_echo.echoed, 100);
	(void)guest_rx;

	assert_int_equal(virtio_unregister_device(vdev), 0);
	assert_int_equal(vhost_unregister_device(hdev), 0);
	assert_int_equal(virtio_unregister_driver(&echo_guest), 0);
	assert_int_equal(vhost_unregister_driver(&echo_host), 0);
	lbdev_free(d);
}

static void test_ring_fault_sets_needs_reset(void **state)
{
	struct lbdev *d = lbdev_new(VIRTIO_ID_CONSOLE, 0);
	struct virtio_device *vdev = duet_loopback_driver(d->lb);
	struct vhost_device *hdev = duet_loopback_device(d->lb);
	struct virtqueue *tx;
	uint8_t st;

	(void)state;
	host_echo_up = 0;
	assert_int_equal(virtio_register_driver(&echo_guest), 0);
	assert_int_equal(vhost_register_driver(&echo_host), 0);
	assert_int_equal(virtio_register_device(vdev), 0);
	assert_int_equal(vhost_register_device(hdev), 0);
	assert_true(host_echo_up); /* peer ready: probed at once */
	/* The driver side's tx ring gets a head out of range. */
	tx = guest_echo.tx;
	tx->avail->ring[0] = 200;
	tx->avail->idx = 1;
	virtio_get_status(vdev, &st);
	assert_false(st & VIRTIO_CONFIG_STATUS_NEEDS_RESET);
	host_tx_ready(host_echo.tx);
	assert_true(virtqueue_is_broken(host_echo.tx));
	virtio_get_status(vdev, &st);
	assert_true(st & VIRTIO_CONFIG_STATUS_NEEDS_RESET);

	assert_int_equal(virtio_unregister_device(vdev), 0);
	assert_int_equal(vhost_unregister_device(hdev), 0);
	assert_int_equal(virtio_unregister_driver(&echo_guest), 0);
	assert_int_equal(vhost_unregister_driver(&echo_host), 0);
	lbdev_free(d);
}

static int check_vhost(void **state)
{
	(void)state;
	assert_int_equal(probed_unready, 0);
	return 0;
}

int main(void)
{
#define T(t) cmocka_unit_test_setup(t, reset_log)
#define V(t) cmocka_unit_test_setup_teardown(t, reset_vhost, check_vhost)
	const struct CMUnitTest tests[] = {
		T(test_virtio_device_then_driver),
		T(test_virtio_driver_then_device),
		T(test_virtio_fallback_device_path),
		T(test_virtio_fallback_driver_path),
		T(test_unregister_driver_hands_devices_over),
		T(test_register_errors),
		T(test_negotiation_takes_the_common_subset),
		T(test_negotiation_fails_when_the_device_refuses),
		T(test_a_failing_transport_binds_nothing),
		T(test_device_refuses_unoffered_features),
		T(test_config_access_and_expressions),
		V(test_vhost_ready_peer_probes_at_once),
		V(test_vhost_deferred_until_driver_ok),
		V(test_vhost_unregister_while_deferred),
		V(test_vhost_needs_reset_is_reset_and_stays_deferred),
		V(test_vhost_refuses_peer_with_unoffered_features),
		V(test_vhost_device_may_only_request_reset),
		V(test_loopback_end_to_end),
		V(test_ring_fault_sets_needs_reset),
	};

	return cmocka_run_group_tests_name("virtio and vhost buses", tests, NULL, NULL);
}
