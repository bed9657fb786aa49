/*
 * libFuzzer target: arbitrary buffers as a hostile driver posts them to
 * the device side of rpmsg (vhost-rpmsg): lone or chained, readable or
 * writable, of any length up to twice the agreed size, their bytes the
 * header and payload the device parses (the buffer checks of
 * rpmsg_device.c, the header checks, the endpoint lookup, the name
 * service). fuzz_rpmsg plays the other way round; fuzz_vq_device covers
 * the ring words themselves.
 *
 * Both rpmsg roles run over the loopback in this one thread; the fuzzer
 * plays the driver on the device's receive queue through the driver's
 * ring calls, with the driver's rpmsg left aside meanwhile, as
 * test_rpmsg's hostile-driver test does. What must hold: every buffer
 * posted comes back (nothing is lost or kept), unwritten, and a good
 * message still reaches the device's endpoint afterwards. The input is a
 * list of records:
 *   [kind] [length, 2 bytes LE] [count] [count bytes]
 * kind & 3 steers the header as in fuzz_rpmsg (0 as given, 1 to the
 * endpoint, 2 to the name service with an announcement's length, 3 the
 * same announcing or withdrawing "fuzz"); kind & 4: writable; kind & 8:
 * a chain of two descriptors.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <duet/loopback.h>
#include <duet/rpmsg.h>

#define AGREED 512u           /* the driver's send buffers: the device receives in them */
#define SCRATCH (2u * AGREED) /* the largest buffer a record posts */

struct target {
	struct duet_loopback *lb;
	struct rpmsg_device *drv;
	struct rpmsg_endpoint a, b; /* a on the driver side, b on the device side */
	uint8_t *mem;               /* the fuzzer's buffers, in the shared heap */
	unsigned int got;
	char last[8];
	volatile uint8_t sink;
};

static struct target t;

/* What the device's receiver relies on: the message lies in its buffer
 * (every byte read, for AddressSanitizer) and within the agreed size. */
static int b_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	uint8_t sum = 0;

	(void)ept;
	(void)src;
	(void)priv;
	if (len > AGREED - 16u)
		abort();
	for (size_t i = 0; i < len; i++)
		sum += ((const uint8_t *)data)[i];
	t.sink += sum;
	memcpy(t.last, data, len < sizeof(t.last) ? len : sizeof(t.last));
	t.got++;
	return 0;
}

static int a_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	(void)ept;
	(void)data;
	(void)len;
	(void)src;
	(void)priv;
	return 0;
}

static void quiet_drop(struct rpmsg_device *rdev, const struct rpmsg_drop *drop, void *priv)
{
	(void)rdev;
	(void)drop;
	(void)priv;
}

static void poll_all(void)
{
	while (duet_loopback_poll(t.lb) > 0)
		;
}

/* The driver's rpmsg takes back its used send buffers (the dump does),
 * so that what the device returns next is the fuzzer's. */
static void drain_driver(void)
{
	static char dump[2048];

	poll_all();
	rpmsg_dump(t.drv, dump, sizeof(dump));
}

static void setup(void)
{
	static const struct rpmsg_virtio_config cfg = { AGREED, 256 };
	struct duet_loopback_config lc = {
		.device_id = VIRTIO_ID_RPMSG, .features = 1u << VIRTIO_RPMSG_F_NS, .num_vrings = 2,
		.vring_num = 8, .vring_align = 16, .config_len = sizeof(cfg), .config = &cfg,
		.heap_size = 64 * 1024,
	};
	struct rpmsg_device *dev;

	vhost_set_probe_period(1);
	if (duet_loopback_create(&t.lb, &lc) || virtio_register_driver(&virtio_rpmsg_driver) ||
	    vhost_register_driver(&vhost_rpmsg_driver) ||
	    virtio_register_device(duet_loopback_driver(t.lb)) ||
	    vhost_register_device(duet_loopback_device(t.lb)))
		abort();
	for (int i = 0; i < 5000 && !duet_loopback_device(t.lb)->priv; i++) {
		struct timespec ts = { 0, 1000000 };

		duet_loopback_poll(t.lb);
		nanosleep(&ts, NULL);
	}
	t.drv = duet_loopback_driver(t.lb)->priv;
	dev = duet_loopback_device(t.lb)->priv;
	t.mem = virtio_alloc_buf(duet_loopback_driver(t.lb), SCRATCH, 16);
	if (!t.drv || !dev || !t.mem ||
	    rpmsg_create_ept(&t.a, t.drv, "fuzz", 2000, RPMSG_ADDR_ANY, a_cb, NULL) ||
	    rpmsg_create_ept(&t.b, dev, "fuzz", 2001, RPMSG_ADDR_ANY, b_cb, NULL))
		abort();
	poll_all();
	rpmsg_set_drop_cb(quiet_drop, NULL);
}

/* Steer the header in buf (len bytes) as kind & 3 says (see the top). */
static void steer(uint8_t *buf, uint32_t len, uint8_t kind)
{
	uint32_t dst = (kind & 3) == 1 ? t.b.addr : RPMSG_NS_EPT_ADDR;

	if (!(kind & 3) || len < 56)
		return;
	memcpy(buf + 4, &dst, sizeof(dst));
	if ((kind & 3) >= 2) {
		uint16_t n = 40; /* name[32], addr, flags */

		memcpy(buf + 12, &n, sizeof(n));
	}
	if ((kind & 3) == 3)
		memcpy(buf + 16, "fuzz", 5);
}

/* One record posted to the device's receive queue; false when the input
 * ran out. */
static bool play_record(const uint8_t **p, size_t *left)
{
	struct virtqueue *to_device = duet_loopback_driver(t.lb)->vrings_info[1].vq;
	bool writable, chain;
	uint32_t len, count, used = 1;
	uint8_t kind;
	int cookie, ret;

	if (*left < 4)
		return false;
	kind = (*p)[0];
	len = (uint32_t)(*p)[1] | (uint32_t)(*p)[2] << 8;
	count = (*p)[3];
	*p += 4;
	*left -= 4;
	len = len % SCRATCH + 1u;
	if (count > *left)
		count = (uint32_t)*left;
	if (count > len)
		count = len;
	writable = kind & 4;
	chain = (kind & 8) && len >= 2;
	memset(t.mem, 0, len); /* nothing left from an earlier record */
	memcpy(t.mem, *p, count);
	*p += count;
	*left -= count;
	steer(t.mem, len, kind);
	if (chain) {
		struct virtqueue_buf two[2] = { { t.mem, len / 2, writable },
						{ t.mem + len / 2, len - len / 2, writable } };

		ret = virtqueue_add_buffer(to_device, two, writable ? 0 : 2, writable ? 2 : 0,
					   &cookie);
	} else {
		ret = virtqueue_add_one(to_device, t.mem, len, writable, &cookie);
	}
	if (ret)
		abort(); /* the fuzzer takes each back: there is always room */
	virtqueue_kick(to_device);
	while (duet_loopback_poll_side(t.lb, VIRTIO_DEV_DEVICE) > 0)
		;
	/* It came back, whatever it held, with nothing written into it. */
	if (virtqueue_get_buffer(to_device, &used, NULL) != &cookie || used != 0 ||
	    virtqueue_get_buffer(to_device, NULL, NULL))
		abort();
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned int before;

	if (!t.lb)
		setup();
	drain_driver();
	while (play_record(&data, &size))
		;
	/* Whatever came before, a good message still arrives. */
	before = t.got;
	memset(t.last, 0, sizeof(t.last));
	if (rpmsg_sendto(&t.a, "alive", 6, t.b.addr) != 6)
		abort();
	poll_all();
	if (t.got != before + 1 || memcmp(t.last, "alive", 6))
		abort();
	return 0;
}
