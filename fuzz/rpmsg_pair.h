/*
 * rpmsg_pair.h - for the rpmsg fuzz targets: both roles of rpmsg over the
 * loopback in this one thread, an endpoint "fuzz" on each side, and the
 * check a receiver of hostile messages makes. Header-only: each target is
 * one program.
 */
#ifndef FUZZ_RPMSG_PAIR_H
#define FUZZ_RPMSG_PAIR_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <duet/loopback.h>
#include <duet/rpmsg.h>
#include <duet/rpmsg_ping.h>

/* Buffers of 512 bytes driver to device, 256 back (header included). */
#define PAIR_TXBUF 512u
#define PAIR_RXBUF 256u

struct rpmsg_pair {
	struct duet_loopback *lb;
	struct rpmsg_device *drv, *dev;
	struct rpmsg_endpoint a, b; /* a on the driver side (2000), b on the device side (2001) */
};

/* Every input drops messages: counting them is enough. */
static inline void pair_quiet_drop(struct rpmsg_device *rdev, const struct rpmsg_drop *drop,
				   void *priv)
{
	(void)rdev;
	(void)drop;
	(void)priv;
}

/*
 * What a receiver of hostile messages relies on, checked: the message
 * lies in its buffer (every byte is read, for AddressSanitizer) and fits
 * `max` bytes, the payload size agreed; else abort. The endpoint's priv.
 */
struct pair_inbox {
	size_t max;
	unsigned int got;
	char last[8];
	volatile uint8_t sink; /* keeps the reads */
};

static inline int pair_inbox_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src,
			 void *priv)
{
	struct pair_inbox *in = priv;
	uint8_t sum = 0;

	(void)ept;
	(void)src;
	if (len > in->max)
		abort();
	for (size_t i = 0; i < len; i++)
		sum += ((const uint8_t *)data)[i];
	in->sink += sum;
	memcpy(in->last, data, len < sizeof(in->last) ? len : sizeof(in->last));
	in->got++;
	return 0;
}

static inline int pair_ignore_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src,
			  void *priv)
{
	(void)ept;
	(void)data;
	(void)len;
	(void)src;
	(void)priv;
	return 0;
}

static inline void pair_poll(struct rpmsg_pair *p)
{
	while (duet_loopback_poll(p->lb) > 0)
		;
}

/*
 * Both sides up, bound and quiet, the driver side's endpoint receiving
 * into `a_in` and the device side's into `b_in` (either NULL: it ignores
 * what it gets); aborts on any failure (a fuzz target has no other way
 * to say so).
 */
static inline void rpmsg_pair_open(struct rpmsg_pair *p, struct pair_inbox *a_in,
			    struct pair_inbox *b_in)
{
	static const struct rpmsg_virtio_config cfg = { PAIR_TXBUF, PAIR_RXBUF };
	struct duet_loopback_config lc = {
		.device_id = VIRTIO_ID_RPMSG, .features = 1u << VIRTIO_RPMSG_F_NS, .num_vrings = 2,
		.vring_num = 8, .vring_align = 16, .config_len = sizeof(cfg), .config = &cfg,
		.heap_size = 64 * 1024,
	};

	vhost_set_probe_period(1);
	if (duet_loopback_create(&p->lb, &lc) || virtio_register_driver(&virtio_rpmsg_driver) ||
	    vhost_register_driver(&vhost_rpmsg_driver) ||
	    virtio_register_device(duet_loopback_driver(p->lb)) ||
	    vhost_register_device(duet_loopback_device(p->lb)))
		abort();
	/* The vhost side probes from the port's work queue. */
	for (int i = 0; i < 5000 && !duet_loopback_device(p->lb)->priv; i++) {
		struct timespec ts = { 0, 1000000 };

		duet_loopback_poll(p->lb);
		nanosleep(&ts, NULL);
	}
	p->drv = duet_loopback_driver(p->lb)->priv;
	p->dev = duet_loopback_device(p->lb)->priv;
	p->a.priv = a_in;
	p->b.priv = b_in;
	if (!p->drv || !p->dev ||
	    rpmsg_create_ept(&p->a, p->drv, "fuzz", 2000, RPMSG_ADDR_ANY,
			     a_in ? pair_inbox_cb : pair_ignore_cb, NULL) ||
	    rpmsg_create_ept(&p->b, p->dev, "fuzz", 2001, RPMSG_ADDR_ANY,
			     b_in ? pair_inbox_cb : pair_ignore_cb, NULL))
		abort();
	pair_poll(p);
	rpmsg_set_drop_cb(pair_quiet_drop, NULL);
}

/* Point the header in buf (len bytes) where kind & 3 says: 0 as given,
 * 1 to the endpoint at `ept_addr`, 2 to the name service with an
 * announcement's length, 3 the same announcing or withdrawing "fuzz". */
static inline void pair_steer(uint8_t *buf, uint32_t len, uint8_t kind, uint32_t ept_addr)
{
	uint32_t dst = (kind & 3) == 1 ? ept_addr : RPMSG_NS_EPT_ADDR;

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

/* Whatever came before, a good message from `from` still arrives at `to`,
 * whose inbox is `in`; else abort. */
static inline void pair_check_alive(struct rpmsg_pair *p, struct rpmsg_endpoint *from,
			     struct rpmsg_endpoint *to, struct pair_inbox *in)
{
	unsigned int before = in->got;

	memset(in->last, 0, sizeof(in->last));
	if (rpmsg_sendto(from, "alive", 6, to->addr) != 6)
		abort();
	pair_poll(p);
	if (in->got != before + 1 || memcmp(in->last, "alive", 6))
		abort();
}

/* The address of `rdev`'s ping service (rpmsg_ping_register before the
 * pair opens), learnt as a peer without the name service would: a ping
 * request from `from`, on the other device, to each dynamic address in
 * turn, until the service counts one; aborts if none does (the target
 * would not test it). */
static inline uint32_t pair_find_ping(struct rpmsg_pair *p, struct rpmsg_endpoint *from,
				      struct rpmsg_device *rdev)
{
	static const uint8_t req[16] = { 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0 }; /* seq 1, session 1 */

	for (uint32_t addr = 1024; addr < 1024 + 64; addr++) {
		struct rpmsg_ping_counters before, after;

		rpmsg_ping_counters(rdev, &before);
		if (rpmsg_sendto(from, req, sizeof(req), addr) != (int)sizeof(req))
			abort();
		pair_poll(p);
		rpmsg_ping_counters(rdev, &after);
		if (after.received != before.received)
			return addr;
	}
	abort();
}

#endif /* FUZZ_RPMSG_PAIR_H */
