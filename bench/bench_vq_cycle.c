/*
 * bench_vq_cycle - one buffer cycled through one queue in one thread:
 * add (driver), take (device), consume (device), get used (driver).
 * Both roles, validation included, no notifications.
 *
 *   bench_vq_cycle [--runs R] [--cycles N]
 *
 * Prints ns per cycle over R runs of N cycles each (median, p99, min, max).
 * Time on a shared machine is noisy: compare ratios within one run, and use
 * bench/callgrind-cycle.sh for the stable figure, instructions per cycle.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <duet/virtqueue.h>

#define NUM 256

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The measured loop; kept out of line so callgrind can name it. */
__attribute__((noinline)) static unsigned long cycle(struct virtqueue *drv,
						     struct virtqueue *dev,
						     struct virtqueue_buf *b,
						     unsigned long n)
{
	unsigned long ok = 0;
	int cookie;

	for (unsigned long i = 0; i < n; i++) {
		uint16_t head;
		uint32_t len;

		virtqueue_add_one(drv, b->buf, b->len, false, &cookie);
		virtqueue_get_available_buffer(dev, &head, &len);
		virtqueue_add_consumed_buffer(dev, head, 0);
		ok += virtqueue_get_buffer(drv, &len, NULL) == &cookie;
	}
	return ok;
}

int main(int argc, char **argv)
{
	unsigned long cycles = 1000000;
	int runs = 15;
	size_t ringsz = vring_size(NUM, 64), regsz = ringsz + 4096;
	void *region = aligned_alloc(4096, regsz);
	void *m1 = malloc(virtqueue_footprint(NUM)), *m2 = malloc(virtqueue_footprint(NUM));
	struct virtqueue *drv, *dev;
	struct virtqueue_config cfg = {
		.role = VIRTQUEUE_ROLE_DRIVER, .num = NUM, .align = 64,
	};
	struct virtqueue_buf b;
	double *ns;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--runs"))
			runs = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--cycles"))
			cycles = strtoul(argv[i + 1], NULL, 0);
	}
	if (!region || !m1 || !m2 || runs < 1)
		return 1;
	memset(region, 0, regsz);
	cfg.ring = region;
	cfg.window = (struct virtqueue_window){ region, 0, regsz };
	if (virtqueue_init(m1, virtqueue_footprint(NUM), &cfg, &drv))
		return 1;
	cfg.role = VIRTQUEUE_ROLE_DEVICE;
	if (virtqueue_init(m2, virtqueue_footprint(NUM), &cfg, &dev))
		return 1;
	b = (struct virtqueue_buf){ (char *)region + ringsz, 64, false };

	ns = calloc((size_t)runs, sizeof(*ns));
	for (int r = 0; r < runs; r++) {
		double t0 = now_ns();

		if (cycle(drv, dev, &b, cycles) != cycles) {
			fprintf(stderr, "bench_vq_cycle: a cycle failed\n");
			return 1;
		}
		ns[r] = (now_ns() - t0) / (double)cycles;
	}
	qsort(ns, (size_t)runs, sizeof(*ns), cmp_double);
	printf("virtqueue cycle (add, take, consume, get; 1 descriptor; %d runs x %lu)\n",
	       runs, cycles);
	printf("  ns/cycle  median %.1f  p99 %.1f  min %.1f  max %.1f\n",
	       ns[runs / 2], ns[(runs * 99) / 100 < runs ? (runs * 99) / 100 : runs - 1],
	       ns[0], ns[runs - 1]);
	free(ns);
	free(m1);
	free(m2);
	free(region);
	return 0;
}
