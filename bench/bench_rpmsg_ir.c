/*
 * bench_rpmsg_ir - N rpmsg round trips of 17 bytes in one thread over the
 * loopback (the same vdev layout and code as the shared-memory link, both
 * sides in this process), for counting instructions under callgrind: no
 * waiting, so every instruction is work one of the two sides does.
 * bench/callgrind-rpmsg.sh runs it.
 *   bench_rpmsg_ir N
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include <duet/loopback.h>
#include <duet/rpmsg.h>

static int replies;

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

int main(int argc, char **argv)
{
	static const struct rpmsg_virtio_config cfg = { 512, 512 };
	struct duet_loopback_config lc = {
		.device_id = VIRTIO_ID_RPMSG, .features = 1u << VIRTIO_RPMSG_F_NS, .num_vrings = 2,
		.vring_num = 256, .vring_align = 64, .config_len = sizeof(cfg), .config = &cfg,
		.heap_size = 512 * 1024,
	};
	struct rpmsg_endpoint a, b;
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
	    rpmsg_create_ept(&b, dev, "ir", 2001, 2000, echo_cb, NULL)) {
		fprintf(stderr, "bench_rpmsg_ir: no rpmsg device pair\n");
		return 1;
	}
	while (duet_loopback_poll(lb) > 0)
		;
	for (long i = 0; i < n; i++) {
		int before = replies;

		int ret = rpmsg_send(&a, msg, sizeof(msg));

		if (ret != sizeof(msg)) {
			fprintf(stderr, "bench_rpmsg_ir: send: %d\n", ret);
			return 1;
		}
		duet_loopback_poll_side(lb, VIRTIO_DEV_DEVICE); /* the echo */
		duet_loopback_poll_side(lb, VIRTIO_DEV_DRIVER); /* the reply */
		if (replies != before + 1) {
			fprintf(stderr, "bench_rpmsg_ir: no reply\n");
			return 1;
		}
	}
	printf("%ld round trips\n", n);
	return 0;
}
