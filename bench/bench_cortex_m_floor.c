/*
 * bench_cortex_m_floor.c - the protocol's floor (floor.c) on a Cortex-M4,
 * counted as bench_cortex_m.c counts duet's round trip: under QEMU with
 * -icount shift=0 the board's clock advances a nanosecond an instruction,
 * so the clock around ROUNDS round trips gives instructions per round
 * trip, both sides (the mean: exact, unlike a single trip's count, which
 * steps by 40). bench/cortex-m-floor.sh builds and runs it.
 */
#include <stdint.h>
#include <stdio.h>

#include "../tests/cortex-m/board.h"
#include "floor.h"

#define ROUNDS 20000

/*
 * The floor's lock marks its owner with a thread-local's address; a
 * bare-metal image resolves it through this ABI call, which may change r0
 * alone. One thread here, so one thread pointer: any fixed block.
 */
uint32_t floor_tp[8];
__asm__(".global __aeabi_read_tp\n"
	".type __aeabi_read_tp, %function\n"
	".thumb_func\n"
	"__aeabi_read_tp:\n"
	"\tldr r0, =floor_tp\n"
	"\tbx lr\n");

/* 2 * n instructions: a subtract and a branch each time round. */
static void __attribute__((noinline)) spin(uint32_t n)
{
	__asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
}

/* 1,000 round trips to warm up, then `rounds` more: the instructions
 * those took, or 0 when one went wrong. */
static uint64_t instructions_of(struct floor_pair *p, long rounds)
{
	uint64_t t0;

	if (floor_run(p, 1000) != 1000)
		return 0;
	t0 = board_clock_ns();
	if (floor_run(p, rounds) != rounds)
		return 0;
	return board_clock_ns() - t0;
}

int main(void)
{
	struct floor_pair *p;
	uint64_t t0, cal, small, big;

	t0 = board_clock_ns();
	spin(1000000);
	cal = board_clock_ns() - t0;
	if (floor_hostile() != 0) {
		printf("bench_cortex_m_floor: a check of the floor failed\n");
		return 1;
	}
	p = floor_open();
	if (!p) {
		printf("bench_cortex_m_floor: no memory\n");
		return 1;
	}
	/* Two runs that differ in length: what is not per round trip cancels. */
	small = instructions_of(p, ROUNDS / 10);
	big = instructions_of(p, ROUNDS);
	if (!small || !big || floor_faults(p)) {
		printf("bench_cortex_m_floor: a round trip went wrong\n");
		return 1;
	}
	printf("Cortex-M4 (QEMU mps2-an386, -icount shift=0), instructions as virtual ns;\n"
	       "calibration: a loop of 2,000,000 instructions measured %llu\n"
	       "the protocol's floor, 17 B round trip, both sides: %.1f instructions\n",
	       (unsigned long long)cal,
	       (double)(big - small) / (double)(ROUNDS - ROUNDS / 10));
	floor_close(p);
	return 0;
}
