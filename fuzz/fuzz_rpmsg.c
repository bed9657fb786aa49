/*
 * libFuzzer target: arbitrary bytes as what a hostile device writes into
 * the driver's receive buffers, header and payload, and the used length it
 * reports; the rpmsg core parses them (header checks, endpoint lookup, the
 * name service and its list of announced services), and so does the ping
 * service (its request header, the data check, the echo). After each input
 * the channel must still carry a good message to the endpoint.
 *
 * Both rpmsg roles run over the loopback in this one thread; the fuzzer
 * plays the device on the raw ring of the device-to-driver queue, as
 * test_rpmsg's hostile test does. The input is a list of records:
 *   [kind] [used length, 2 bytes LE] [count] [count bytes]
 * kind & 3 steers the header so that the fuzzer reaches deep code soon:
 *   0 as given; 1 to the endpoint, or with kind & 4 to the ping service;
 *   2 to the name service, its length that of an announcement; 3 the same,
 *   announcing or withdrawing "fuzz".
 */
#define _POSIX_C_SOURCE 200809L
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpmsg_pair.h"

static struct rpmsg_pair pair;
/* The driver's endpoint: its receive buffers less the 16-byte header. */
static struct pair_inbox inbox = { .max = PAIR_RXBUF - 16u };
/* The driver side's ping service, at an address it chose itself. */
static uint32_t ping_addr;

/* One record into the next receive buffer the driver posted; false when
 * the input ran out. */
static bool play_record(const uint8_t **p, size_t *left)
{
	struct virtqueue *to_driver = duet_loopback_device(pair.lb)->vrings_info[0].vq;
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
	pair_steer(vb.buf, vb.len, kind, kind & 4 ? ping_addr : pair.a.addr);
	/* The used length as reported, within the buffer (the ring refuses
	 * more; test_vq_hostile and fuzz_vq_device cover that). */
	if (used > vb.len)
		used = vb.len;
	if (virtqueue_add_consumed_buffer(to_driver, (uint16_t)h, used))
		abort();
	virtqueue_kick(to_driver);
	pair_poll(&pair);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!pair.lb) {
		if (rpmsg_ping_register())
			abort();
		rpmsg_pair_open(&pair, &inbox, NULL);
		ping_addr = pair_find_ping(&pair, &pair.b, pair.drv);
	}
	while (play_record(&data, &size))
		;
	pair_check_alive(&pair, &pair.b, &pair.a, &inbox);
	return 0;
}
