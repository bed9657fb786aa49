/*
 * The buses under concurrent use: threads register drivers and loopback
 * device pairs on both buses at once, while probes themselves register
 * further devices and drivers (nested registration under the bus lock).
 * Nothing may deadlock or be lost: every device ends up bound on both
 * sides, and every probe is matched by one remove. Run under TSan too.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include <duet/loopback.h>
#include <duet/port.h>
#include <duet/vhost.h>

#define THREADS 4
#define PER_THREAD 16
#define BASE_ID 100u
#define NESTED_ID 300u

struct pair {
	struct duet_loopback *lb;
};

static struct pair pairs[THREADS][PER_THREAD];
static struct pair nested_pair; /* registered from inside a probe */
static _Atomic int virtio_probes, virtio_removes, vhost_probes, vhost_removes;
static _Atomic int nested_probes, nested_done;

static int nested_probe(struct virtio_device *vdev)
{
	(void)vdev;
	nested_probes++;
	return 0;
}

static struct virtio_driver nested_drv = { .device = NESTED_ID, .probe = nested_probe };

static int virtio_probe(struct virtio_device *vdev)
{
	virtio_probes++;
	/* The first probe of id BASE_ID registers a device and its driver. */
	if (vdev->id.device == BASE_ID && atomic_exchange(&nested_done, 1) == 0) {
		if (virtio_register_device(duet_loopback_driver(nested_pair.lb)) ||
		    virtio_register_driver(&nested_drv))
			return -EIO;
	}
	return 0;
}

static void virtio_remove(struct virtio_device *vdev)
{
	(void)vdev;
	virtio_removes++;
}

static int vhost_probe(struct vhost_device *hdev)
{
	(void)hdev;
	vhost_probes++;
	return 0;
}

static void vhost_remove(struct vhost_device *hdev)
{
	(void)hdev;
	vhost_removes++;
}

static struct virtio_driver vdrivers[THREADS];
static struct vhost_driver hdrivers[THREADS];

static void make_pair(struct pair *p, uint32_t id)
{
	struct duet_loopback_config cfg = {
		.device_id = id, .num_vrings = 1, .vring_num = 4, .vring_align = 16,
	};

	if (duet_loopback_create(&p->lb, &cfg))
		abort();
}

static void *registrar(void *arg)
{
	int t = (int)(intptr_t)arg;
	long errors = 0;

	for (int i = 0; i < PER_THREAD; i++) {
		struct pair *p = &pairs[t][i];

		/* Half the drivers come before their devices, half after. */
		if (i == PER_THREAD / 2) {
			errors += virtio_register_driver(&vdrivers[t]) != 0;
			errors += vhost_register_driver(&hdrivers[t]) != 0;
		}
		errors += vhost_register_device(duet_loopback_device(p->lb)) != 0;
		errors += virtio_register_device(duet_loopback_driver(p->lb)) != 0;
	}
	return (void *)errors;
}

static void *unregistrar(void *arg)
{
	int t = (int)(intptr_t)arg;
	long errors = 0;

	for (int i = 0; i < PER_THREAD; i++) {
		struct pair *p = &pairs[t][i];

		errors += virtio_unregister_device(duet_loopback_driver(p->lb)) != 0;
		if (i == PER_THREAD / 2) {
			errors += vhost_unregister_driver(&hdrivers[t]) != 0;
			errors += virtio_unregister_driver(&vdrivers[t]) != 0;
		}
		errors += vhost_unregister_device(duet_loopback_device(p->lb)) != 0;
	}
	return (void *)errors;
}

static void run(void *(*fn)(void *))
{
	pthread_t th[THREADS];
	void *ret;

	for (int t = 0; t < THREADS; t++)
		assert_int_equal(pthread_create(&th[t], NULL, fn, (void *)(intptr_t)t), 0);
	for (int t = 0; t < THREADS; t++) {
		assert_int_equal(pthread_join(th[t], &ret), 0);
		assert_int_equal((long)ret, 0);
	}
}

static void test_concurrent_registration(void **state)
{
	uint64_t end;

	(void)state;
	vhost_set_probe_period(5);
	make_pair(&nested_pair, NESTED_ID);
	for (int t = 0; t < THREADS; t++) {
		vdrivers[t] = (struct virtio_driver){ .device = BASE_ID + (uint32_t)t,
						      .probe = virtio_probe,
						      .remove = virtio_remove };
		hdrivers[t] = (struct vhost_driver){ .device = BASE_ID + (uint32_t)t,
						     .probe = vhost_probe, .remove = vhost_remove };
		for (int i = 0; i < PER_THREAD; i++)
			make_pair(&pairs[t][i], BASE_ID + (uint32_t)t);
	}

	run(registrar);
	/* Every virtio device is bound now; vhost ones within a few periods. */
	assert_int_equal(virtio_probes, THREADS * PER_THREAD);
	assert_int_equal(nested_probes, 1);
	end = duet_clock_ms() + 5000;
	while (vhost_probes < THREADS * PER_THREAD && duet_clock_ms() < end) {
		struct timespec ts = { 0, 1000000 };

		nanosleep(&ts, NULL);
	}
	assert_int_equal(vhost_probes, THREADS * PER_THREAD);
	for (int t = 0; t < THREADS; t++)
		for (int i = 0; i < PER_THREAD; i++) {
			struct virtio_device *drv = duet_loopback_driver(pairs[t][i].lb);
			struct vhost_device *dev = duet_loopback_device(pairs[t][i].lb);

			assert_ptr_equal(drv ? atomic_load(&drv->bus_driver) : NULL, &vdrivers[t]);
			assert_ptr_equal(dev ? atomic_load(&dev->bus_driver) : NULL, &hdrivers[t]);
		}

	run(unregistrar);
	assert_int_equal(virtio_removes, THREADS * PER_THREAD);
	assert_int_equal(vhost_removes, THREADS * PER_THREAD);
	assert_int_equal(virtio_unregister_driver(&nested_drv), 0);
	assert_int_equal(virtio_unregister_device(duet_loopback_driver(nested_pair.lb)), 0);
	for (int t = 0; t < THREADS; t++)
		for (int i = 0; i < PER_THREAD; i++)
			duet_loopback_destroy(pairs[t][i].lb);
	duet_loopback_destroy(nested_pair.lb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_registration),
	};

	return cmocka_run_group_tests_name("buses under threads", tests, NULL, NULL);
}
