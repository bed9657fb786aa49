/*
 * systick_clock.h - nanoseconds from a 1 ms SysTick: the millisecond count
 * its interrupt keeps, its down-counter and its pending bit, read together.
 * Pure arithmetic, so that tests/test_systick_clock.c proves it on the host
 * against every reading board.c has met under QEMU.
 *
 * The counter runs ticks - 1 .. 0 and reloads with the next tick; the
 * interrupt pends as it reaches 0. Three readings are not what they seem,
 * and each once timed a round trip a millisecond long or negative:
 *  - the counter reloaded (high), the interrupt pending, not yet taken:
 *    the count is a millisecond behind (on a core, for a few cycles; in
 *    QEMU, until the block ends);
 *  - the counter at 0: its millisecond has ended, but QEMU can show 0
 *    after the interrupt was taken and the count moved on, so 0 read as
 *    "the end of this millisecond" is a millisecond ahead. 0 is the start
 *    of the next one, counted like the pending case above;
 *  - QEMU can show the counter reloaded before it sets the pending bit
 *    (a timer callback run between blocks): the count is a millisecond
 *    behind and nothing says so but the reading being earlier than the
 *    last. The clock never goes back, so such a reading is that one.
 */
#ifndef SYSTICK_CLOCK_H
#define SYSTICK_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

/*
 * The time of one reading (ms: the interrupt's count; left: the counter;
 * pending: the interrupt's pending bit; ticks per ms; ns per tick), given
 * the last time returned, *last, which it updates.
 */
static inline uint64_t systick_clock_ns(uint32_t ms, uint32_t left, bool pending,
					uint32_t ticks, uint32_t ns_per_tick, uint64_t *last)
{
	uint64_t t;

	if (left == 0)
		left = ticks; /* a millisecond's end is the next one's start */
	if (pending && left > ticks / 2)
		ms++;
	/* Ticks since the millisecond began at the counter's 0. */
	t = (uint64_t)ms * 1000000u + (uint64_t)(ticks - left) * ns_per_tick;
	if (t < *last)
		t += 1000000u;
	*last = t;
	return t;
}

#endif
