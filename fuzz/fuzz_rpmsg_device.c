/*
 * libFuzzer target: arbitrary buffers as a hostile driver posts them to
 * the device side of rpmsg (vhost-rpmsg): lone or chained, readable or
 * writable, of any length up to twice the agreed size, their bytes the
 * header and payload the device parses (the buffer checks of
 * rpmsg_device.c, the header checks, the endpoint lookup, the name
 * service, and the ping service's request header, data check and echo).
 * fuzz_rpmsg plays the other way round; fuzz_vq_device covers
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
 * endpoint, or with kind & 16 to the ping service, 2 to the name service
 * with an announcement's length, 3 the same announcing or withdrawing
 * "fuzz"); kind & 4: writable; kind & 8: a chain of two descriptors.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rpmsg_pair.h"

#define SCRATCH (2u * PAIR_TXBUF) /* the largest buffer a record posts */

static struct rpmsg_pair pair;
/* The device's endpoint: the driver's send buffers less the header. */
static struct pair_inbox inbox = { .max = PAIR_TXBUF - 16u };
static uint8_t *mem; /* the fuzzer's buffers, in the shared heap */
/* The device side's ping service, at an address it chose itself. */
static uint32_t ping_addr;

/* The driver's rpmsg takes back its used send buffers (the dump does),
 * so that what the device returns next is the fuzzer's. */
static void drain_driver(void)
{
	static char dump[2048];

	pair_poll(&pair);
	rpmsg_dump(pair.drv, dump, sizeof(dump));
}

/* One record posted to the device's receive queue; false when the input
 * ran out. */
static bool play_record(const uint8_t **p, size_t *left)
{
	struct virtqueue *to_device = duet_loopback_driver(pair.lb)->vrings_info[1].vq;
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
	memset(mem, 0, len); /* nothing left from an earlier record */
	memcpy(mem, *p, count);
	*p += count;
	*left -= count;
	pair_steer(mem, len, kind, kind & 16 ? ping_addr : pair.b.addr);
	if (chain) {
		struct virtqueue_buf two[2] = { { mem, len / 2, writable },
						{ mem + len / 2, len - len / 2, writable } };

		ret = virtqueue_add_buffer(to_device, two, writable ? 0 : 2, writable ? 2 : 0,
					   &cookie);
	} else {
		ret = virtqueue_add_one(to_device, mem, len, writable, &cookie);
	}
	if (ret)
		abort(); /* the fuzzer takes each back: there is always room */
	virtqueue_kick(to_device);
	while (duet_loopback_poll_side(pair.lb, VIRTIO_DEV_DEVICE) > 0)
		;
	/* It came back, whatever it held, with nothing written into it. */
	if (virtqueue_get_buffer(to_device, &used, NULL) != &cookie || used != 0 ||
	    virtqueue_get_buffer(to_device, NULL, NULL))
		abort();
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!pair.lb) {
		if (rpmsg_ping_register())
			abort();
		rpmsg_pair_open(&pair, NULL, &inbox);
		ping_addr = pair_find_ping(&pair, &pair.a, pair.dev);
		/* The driver's rpmsg takes its receive buffers back only
		 * between inputs (drain_driver): an echo past them fails at
		 * once rather than waiting out the device's timeout. */
		rpmsg_set_send_timeout(pair.dev, 0);
		mem = virtio_alloc_buf(duet_loopback_driver(pair.lb), SCRATCH, 16);
		if (!mem)
			abort();
	}
	drain_driver();
	while (play_record(&data, &size))
		;
	pair_check_alive(&pair, &pair.a, &pair.b, &inbox);
	return 0;
}
