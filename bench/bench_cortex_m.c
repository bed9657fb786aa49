/*
 * bench_cortex_m.c - instructions per rpmsg round trip on a Cortex-M4
 * (Thumb-2, -Os), both sides summed: the rig of tests/cortex-m (both
 * rptun sides in one image, one main loop, the bare-metal port) under
 * QEMU with -icount shift=0, where virtual time advances one nanosecond
 * per instruction, so the board's clock counts instructions (in steps of
 * 40: the 25 MHz SysTick). A calibration loop of known length checks that.
 *   bench/cortex-m.sh
 * A round trip: the server's rpmsg_send, its doorbell bit, the loop's turn
 * that finds it, the proxy's receive and its echo with rpmsg_trysend, the
 * next turn, the server's receive: every instruction between, the loop's
 * included.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duet/port.h>
#include <duet/rpmsg.h>
#include <duet/virtio.h>

#include "../src/core/sort_u64.h"
#include "../tests/cortex-m/rig.h"

#define ROUNDS 1000

static unsigned int replies;

static int echo_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	(void)src;
	(void)priv;
	return rpmsg_trysend(ept, data, (int)len) == (int)len ? 0 : -1;
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

static int bound(void *arg)
{
	return ((struct virtio_device *)arg)->priv != NULL;
}

static int ready(void *arg)
{
	return rpmsg_is_ept_ready(arg);
}

static void die(const char *what)
{
	printf("bench_cortex_m: %s\n", what);
	exit(1);
}

/* 2 * n instructions: a subtract and a branch each time round. */
static void __attribute__((noinline)) spin(uint32_t n)
{
	__asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
}

static uint64_t counts[ROUNDS];

/* Where bench/cortex-m-profile.sh starts and stops counting: calls it
 * finds in QEMU's trace. Out of line, and each with a store of its own,
 * so that the compiler neither drops them nor folds the two into one. */
static volatile int profiling;

static void __attribute__((noinline)) profile_from(void)
{
	profiling = 1;
}

static void __attribute__((noinline)) profile_to(void)
{
	profiling = 0;
}

/* ROUNDS round trips of `len` bytes: p50, p99, min, max and the mean
 * (exact: the total over ROUNDS) of instructions per round trip. */
static void round_trips(struct rpmsg_endpoint *a, int len)
{
	static uint8_t msg[256];
	uint64_t t0, total = 0;

	memset(msg, 0x3c, sizeof(msg));
	profile_from();
	for (int i = 0; i < ROUNDS; i++) {
		unsigned int want = replies + 1;

		t0 = duet_clock_ns();
		if (rpmsg_send(a, msg, len) != len)
			die("send failed");
		while (replies != want)
			rig_turn();
		counts[i] = duet_clock_ns() - t0;
		total += counts[i];
	}
	profile_to();
	duet_sort_u64(counts, ROUNDS);
	printf("| %3d B round trip | %6llu | %6llu | %6llu | %6llu | %8.1f |\n", len,
	       (unsigned long long)counts[ROUNDS / 2], (unsigned long long)counts[ROUNDS * 99 / 100],
	       (unsigned long long)counts[0], (unsigned long long)counts[ROUNDS - 1],
	       (double)total / ROUNDS);
}

/* What a turn of the loop costs when nothing came. */
static void empty_turns(void)
{
	uint64_t t0 = duet_clock_ns(), t;

	for (int i = 0; i < ROUNDS; i++)
		rig_turn();
	t = duet_clock_ns() - t0;
	printf("| empty loop turn | | | | | %8.1f |\n", (double)t / ROUNDS);
}

int main(void)
{
	struct rpmsg_endpoint a, b;
	struct virtio_device *drv, *dev;
	uint64_t t0, cal;

	/* 256-entry rings, as bench_rpmsg_ir's on x86: receive buffers go
	 * back in the same batches. */
	if (rig_start(256) < 0)
		die("no rig");
	drv = duet_rptun_vdev(rig_side(0), 0);
	dev = duet_rptun_vdev(rig_side(1), 0);
	if (!rig_until(bound, drv, 2000) || !rig_until(bound, dev, 2000))
		die("rpmsg not bound");
	if (rpmsg_create_ept(&a, drv->priv, "bench", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, reply_cb,
			     NULL) ||
	    rpmsg_create_ept(&b, dev->priv, "bench", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, echo_cb,
			     NULL) ||
	    !rig_until(ready, &a, 2000) || !rig_until(ready, &b, 2000))
		die("endpoints not bound");
	t0 = duet_clock_ns();
	spin(1000000);
	cal = duet_clock_ns() - t0;
	printf("Cortex-M4 (QEMU mps2-an386, -icount shift=0), instructions as virtual ns;\n"
	       "calibration: a loop of 2,000,000 instructions measured %llu\n\n",
	       (unsigned long long)cal);
	printf("| instructions, both sides | p50 | p99 | min | max | mean |\n"
	       "|---|---|---|---|---|---|\n");
	round_trips(&a, 17);
	round_trips(&a, rpmsg_get_tx_buffer_size(&a));
	empty_turns();
	printf("\nPer-round-trip figures step by 40 (the SysTick's 25 MHz); the mean is exact.\n"
	       "A round trip includes two turns of the loop that find a doorbell bit.\n");
	rpmsg_destroy_ept(&b);
	rpmsg_destroy_ept(&a);
	return rig_stop() < 0;
}
