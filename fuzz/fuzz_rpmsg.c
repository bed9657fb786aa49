/*
 * libFuzzer target: arbitrary bytes as what a hostile device writes into
 * the driver's receive buffers, header and payload, and the used length it
 * reports; the rpmsg core parses them (header checks, endpoint lookup, the
 * name service and its list of announced services). After each input the
 * channel must still carry a good message to the endpoint.
 *
 * Both rpmsg roles run over the loopback in this one thread; the fuzzer
 * plays the device on the raw ring of the device-to-driver queue, as
 * test_rpmsg's hostile test does. The input is a list of records:
 *   [kind] [used length, 2 bytes LE] [count] [count bytes]
 * kind & 3 steers the header so that the fuzzer reaches deep code soon:
 *   0 as given; 1 to the endpoint; 2 to the name service, its length that
 *   of an announcement; 3 the same, announcing or withdrawing "fuzz".
 */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <duet/loopback.h>
#include <duet/rpmsg.h>

/* The driver's receive buffers (cfg below: txbuf 512, rxbuf 256) less
 * the 16-byte header. */
#define RX_PAYLOAD (256u - 16u)

struct target {
	struct duet_loopback *lb;
	struct rpmsg_endpoint a, b; /* a on the driver side, b on the device side */
	unsigned int got;
	char last[8];
	volatile uint8_t sink; /* keeps the read of every byte */
};

static struct target t;

/* What a receiver relies on: the message lies in its buffer (every byte
 * is read, for AddressSanitizer) and fits the payload size agreed. */
static int a_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	uint8_t sum = 0;

	(void)ept;
	(void)src;
	(void)priv;
	if (len > RX_PAYLOAD)
		abort();
	for (size_t i = 0; i < len; i++)
		sum += ((const uint8_t *)data)[i];
	t.sink += sum;
	memcpy(t.last, data, len < sizeof(t.last) ? len : sizeof(t.last));
	t.got++;
	return 0;
}

static int b_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	(void)ept;
	(void)data;
	(void)len;
	(void)src;
	(void)priv;
	return 0;
}

/* Every input drops messages: counting them is enough. */
static void quiet_drop(struct rpmsg_device *rdev, const struct rpmsg_drop *drop, void *priv)
{
	(void)rdev;
	(void)drop;
	(void)priv;
}

static void setup(void)
{
	static const struct rpmsg_virtio_config cfg = { 512, 256 };
	struct duet_loopback_config lc = {
		.device_id = VIRTIO_ID_RPMSG, .features = 1u << VIRTIO_RPMSG_F_NS, .num_vrings = 2,
		.vring_num = 8, .vring_align = 16, .config_len = sizeof(cfg), .config = &cfg,
		.heap_size = 64 * 1024,
	};
	struct rpmsg_device *drv, *dev;

	vhost_set_probe_period(1);
	if (duet_loopback_create(&t.lb, &lc) || virtio_register_driver(&virtio_rpmsg_driver) ||
	    vhost_register_driver(&vhost_rpmsg_driver) ||
	    virtio_register_device(duet_loopback_driver(t.lb)) ||
	    vhost_register_device(duet_loopback_device(t.lb)))
		abort();
	/* The vhost side probes from the port's work queue. */
	for (int i = 0; i < 5000 && !duet_loopback_device(t.lb)->priv; i++) {
		struct timespec ts = { 0, 1000000 };

		duet_loopback_poll(t.lb);
		nanosleep(&ts, NULL);
	}
	drv = duet_loopback_driver(t.lb)->priv;
	dev = duet_loopback_device(t.lb)->priv;
	if (!drv || !dev ||
	    rpmsg_create_ept(&t.a, drv, "fuzz", 2000, RPMSG_ADDR_ANY, a_cb, NULL) ||
	    rpmsg_create_ept(&t.b, dev, "fuzz", 2001, RPMSG_ADDR_ANY, b_cb, NULL))
		abort();
	while (duet_loopback_poll(t.lb) > 0)
		;
	rpmsg_set_drop_cb(quiet_drop, NULL);
}

/* One record into the next receive buffer the driver posted; false when
 * the input ran out. */
static bool play_record(const uint8_t **p, size_t *left)
{
	struct virtqueue *to_driver = duet_loopback_device(t.lb)->vrings_info[0].vq;
	struct virtqueue_buf vb;
	uint32_t used, count;
	uint8_t kind;
	size_t n;
	int h;

	if (*left < 4)
		return false;
	kind = (*p)[0];
	used = (uint32_t)(*p)[1] | (uint32_t)(*p)[2] << 8;
	count = (*p)[3];
	*p += 4;
	*left -= 4;
	if (count > *left)
		count = (uint32_t)*left;
	h = vhost_get_vq_buffers(to_driver, &vb, 1, &n);
	if (h < 0 || !vb.writable)
		abort(); /* the driver keeps its receive ring full */
	if (count > vb.len)
		count = vb.len;
	memset(vb.buf, 0, vb.len); /* nothing left from an earlier input */
	memcpy(vb.buf, *p, count);
	*p += count;
	*left -= count;
	if ((kind & 3) && vb.len >= 56) {
		uint32_t dst = (kind & 3) == 1 ? t.a.addr : RPMSG_NS_EPT_ADDR;

		memcpy((uint8_t *)vb.buf + 4, &dst, sizeof(dst));
		if ((kind & 3) >= 2) {
			uint16_t len = 40; /* name[32], addr, flags */

			memcpy((uint8_t *)vb.buf + 12, &len, sizeof(len));
		}
		if ((kind & 3) == 3)
			memcpy((uint8_t *)vb.buf + 16, "fuzz", 5);
	}
	/* The used length as reported, within the buffer (the ring refuses
	 * more; test_vq_hostile and fuzz_vq_device cover that). */
	if (used > vb.len)
		used = vb.len;
	if (virtqueue_add_consumed_buffer(to_driver, (uint16_t)h, used))
		abort();
	virtqueue_kick(to_driver);
	while (duet_loopback_poll(t.lb) > 0)
		;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned int before;

	if (!t.lb)
		setup();
	while (play_record(&data, &size))
		;
	/* Whatever came before, a good message still arrives. */
	before = t.got;
	memset(t.last, 0, sizeof(t.last));
	if (rpmsg_sendto(&t.b, "alive", 6, t.a.addr) != 6)
		abort();
	while (duet_loopback_poll(t.lb) > 0)
		;
	if (t.got != before + 1 || memcmp(t.last, "alive", 6))
		abort();
	return 0;
}
