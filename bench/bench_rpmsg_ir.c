/*
 * bench_rpmsg_ir - rpmsg in one thread over the loopback (the same vdev
 * layout and code as the shared-memory link, both sides in this process),
 * for counting instructions under callgrind: no waiting, so every
 * instruction is work one of the two sides does.
 * bench/callgrind-rpmsg.sh runs it.
 *   bench_rpmsg_ir N          N round trips of 17 bytes
 *   bench_rpmsg_ir N rings    the same, each side finding its message by
 *                             polling its rings as the link's polling loop
 *                             does (duet_loopback_poll_rings), not through
 *                             the loopback's doorbell bits
 *   bench_rpmsg_ir N rtt E    the same with E more endpoints on each side,
 *                             created after the measured pair (so newer:
 *                             a lookup that walks a list meets them first)
 *   bench_rpmsg_ir N stream   N messages of 17 bytes one way, driver to
 *                             device, sent with rpmsg_trysend_more in
 *                             bursts of 64 (send_burst) and received by
 *                             polling the device (receive_burst)
 *   bench_rpmsg_ir N burst    the same, each 64 sent by two calls of
 *                             rpmsg_trysend_burst (32 messages each)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include <duet/loopback.h>
#include <duet/rpmsg.h>

static int replies;
static unsigned int received, out_of_order;

static int echo_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	(void)src;
	(void)priv;
	return rpmsg_send(ept, data, (int)len) < 0;
}

static int reply_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	(void)ept;
	(void)data;
	(void)len;
	(void)src;
	(void)priv;
	replies++;
	return 0;
}

/* The stream's receiver: counts and checks the sequence number. */
static int count_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	unsigned int seq;

	(void)ept;
	(void)src;
	(void)priv;
	memcpy(&seq, data, sizeof(seq));
	if (len != 17 || seq != received)
		out_of_order++;
	received++;
	return 0;
}

/* One burst of the stream, sender's side: separate functions so that
 * callgrind's inclusive cost splits the stream by side. */
static bool bursts; /* send with rpmsg_trysend_burst, 32 a call */
static bool rings;  /* round trips found by polling the rings */

static __attribute__((noinline)) int send_burst(struct rpmsg_endpoint *ept, unsigned int *seq,
						 unsigned int n)
{
	static char msgs[64][17];
	const void *datas[64];
	int lens[64];

	if (!bursts) {
		char msg[17] = { 0 };

		for (unsigned int i = 0; i < n; i++, (*seq)++) {
			memcpy(msg, seq, sizeof(*seq));
			if (rpmsg_trysend_more(ept, msg, sizeof(msg)) != sizeof(msg))
				return -1;
		}
		return rpmsg_flush(ept);
	}
	for (unsigned int i = 0; i < n; i++, (*seq)++) {
		memcpy(msgs[i], seq, sizeof(*seq));
		datas[i] = msgs[i];
		lens[i] = 17;
	}
	for (unsigned int i = 0; i < n; i += 32) {
		int m = n - i < 32 ? (int)(n - i) : 32;

		if (rpmsg_trysend_burst(ept, datas + i, lens + i, m) != m)
			return -1;
	}
	return 0;
}

static __attribute__((noinline)) void receive_burst(struct duet_loopback *lb)
{
	duet_loopback_poll_side(lb, VIRTIO_DEV_DEVICE);
}

/* The sender's side of a stream also takes its send buffers back when the
 * device says they are used. */
static __attribute__((noinline)) void reclaim_burst(struct duet_loopback *lb)
{
	duet_loopback_poll_side(lb, VIRTIO_DEV_DRIVER);
}

static int stream(struct duet_loopback *lb, struct rpmsg_endpoint *a, long n)
{
	unsigned int seq = 0;

	while (seq < (unsigned long)n) {
		unsigned int burst = n - seq < 64 ? (unsigned int)(n - seq) : 64;

		if (send_burst(a, &seq, burst) < 0) {
			fprintf(stderr, "bench_rpmsg_ir: stream send failed at %u\n", seq);
			return 1;
		}
		receive_burst(lb);
		reclaim_burst(lb);
	}
	if (received != seq || out_of_order) {
		fprintf(stderr, "bench_rpmsg_ir: %u of %u received, %u out of order\n", received, seq,
			out_of_order);
		return 1;
	}
	printf("%u messages streamed\n", received);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct rpmsg_virtio_config cfg = { 512, 512 };
	struct duet_loopback_config lc = {
		.device_id = VIRTIO_ID_RPMSG, .features = 1u << VIRTIO_RPMSG_F_NS, .num_vrings = 2,
		.vring_num = 256, .vring_align = 64, .config_len = sizeof(cfg), .config = &cfg,
		.heap_size = 512 * 1024,
	};
	struct rpmsg_endpoint a, b, *more = NULL;
	struct rpmsg_device *drv, *dev;
	struct duet_loopback *lb;
	long n = argc > 1 ? atol(argv[1]) : 1000;
	char msg[17] = "ping";

	vhost_set_probe_period(1);
	if (duet_loopback_create(&lb, &lc) || virtio_register_driver(&virtio_rpmsg_driver) ||
	    vhost_register_driver(&vhost_rpmsg_driver) ||
	    virtio_register_device(duet_loopback_driver(lb)) ||
	    vhost_register_device(duet_loopback_device(lb)))
		return 1;
	/* The vhost side probes from the port's work queue: give it time. */
	for (int i = 0; i < 5000 && !duet_loopback_device(lb)->priv; i++) {
		struct timespec ts = { 0, 1000000 };

		duet_loopback_poll(lb);
		nanosleep(&ts, NULL);
	}
	drv = duet_loopback_driver(lb)->priv;
	dev = duet_loopback_device(lb)->priv;
	if (!drv || !dev || rpmsg_create_ept(&a, drv, "ir", 2000, 2001, reply_cb, NULL) ||
	    rpmsg_create_ept(&b, dev, "ir", 2001, 2000,
			     argc > 2 && strcmp(argv[2], "rtt") && strcmp(argv[2], "rings") ? count_cb : echo_cb, NULL)) {
		fprintf(stderr, "bench_rpmsg_ir: no rpmsg device pair\n");
		return 1;
	}
	if (argc > 3) {
		int extra = atoi(argv[3]);

		more = calloc((size_t)(extra > 0 ? extra : 1) * 2, sizeof(*more));
		for (int i = 0; more && i < extra; i++)
			if (rpmsg_create_ept(&more[2 * i], drv, "more", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
					     reply_cb, NULL) ||
			    rpmsg_create_ept(&more[2 * i + 1], dev, "more", RPMSG_ADDR_ANY,
					     RPMSG_ADDR_ANY, reply_cb, NULL))
				more = NULL;
		if (!more) {
			fprintf(stderr, "bench_rpmsg_ir: cannot create %d more endpoints\n", extra);
			return 1;
		}
	}
	while (duet_loopback_poll(lb) > 0)
		;
	bursts = argc > 2 && !strcmp(argv[2], "burst");
	rings = argc > 2 && !strcmp(argv[2], "rings");
	if (argc > 2 && (!strcmp(argv[2], "stream") || bursts))
		return stream(lb, &a, n);
	for (long i = 0; i < n; i++) {
		int before = replies;

		int ret = rpmsg_send(&a, msg, sizeof(msg));

		if (ret != sizeof(msg)) {
			fprintf(stderr, "bench_rpmsg_ir: send: %d\n", ret);
			return 1;
		}
		if (rings) {
			duet_loopback_poll_rings(lb, VIRTIO_DEV_DEVICE);
			duet_loopback_poll_rings(lb, VIRTIO_DEV_DRIVER);
		} else {
			duet_loopback_poll_side(lb, VIRTIO_DEV_DEVICE); /* the echo */
			duet_loopback_poll_side(lb, VIRTIO_DEV_DRIVER); /* the reply */
		}
		if (replies != before + 1) {
			fprintf(stderr, "bench_rpmsg_ir: no reply\n");
			return 1;
		}
	}
	printf("%ld round trips\n", n);
	return 0;
}
