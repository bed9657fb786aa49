/*
 * The Cortex-M rig's clock (tests/cortex-m/systick_clock.h): every way the
 * SysTick has shown a wrap under QEMU, each reading checked against the
 * true time. The rig times its round trips with this clock, so a reading a
 * millisecond off is a round trip a millisecond long in the figures.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cortex-m/systick_clock.h"

#define TICKS 25000u /* the rig's: 25 MHz, 1 ms */
#define NS 40u

/* How a reading at a true tick shows the SysTick. */
enum view {
	SETTLED,        /* the interrupt taken at the wrap, as on a core */
	PENDING,        /* after a wrap, the interrupt pending, not taken */
	NO_PENDING_YET, /* after a wrap, reloaded, the pending bit not yet set */
	VIEWS
};

/* What the registers show at true tick k (the counter reached 0 at every
 * multiple of TICKS) under `view`. */
static void show(uint64_t k, enum view view, uint32_t *ms, uint32_t *left, bool *pending)
{
	uint32_t into = (uint32_t)(k % TICKS);

	*ms = (uint32_t)(k / TICKS);
	*left = into ? TICKS - into : 0;
	*pending = false;
	if (view != SETTLED && *ms > 0) {
		*ms -= 1; /* the interrupt has not counted this wrap yet */
		*pending = view == PENDING;
	}
}

/* Whether `view` can show tick k: the late views only shortly after a
 * wrap, and the one with no hint only when the last reading was less than
 * a millisecond ago (the clock has nothing else to go by: the rig reads it
 * every few microseconds). */
static bool possible(uint64_t k, enum view view, uint64_t since_last)
{
	if (view == SETTLED)
		return true;
	if (k < TICKS || k % TICKS > TICKS / 4)
		return false;
	return view == PENDING || since_last < TICKS;
}

static uint64_t rng_state = 0x2545f4914f6cdd1du;

static uint32_t next_random(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 32);
}

/* A sequence of readings and the first of them. */
struct clock {
	uint64_t last; /* systick_clock_ns's */
	bool started;
	uint64_t k0, t0;
};

/* One reading at tick k under `view`: the time since the first reading
 * must be the true one (what a round trip's figure is), to the tick. */
static void check_reading(struct clock *c, uint64_t k, enum view view)
{
	uint32_t ms, left;
	bool pending;
	uint64_t t;

	show(k, view, &ms, &left, &pending);
	t = systick_clock_ns(ms, left, pending, TICKS, NS, &c->last);
	if (!c->started) {
		c->started = true;
		c->k0 = k;
		c->t0 = t;
	}
	if (t - c->t0 != (k - c->k0) * NS)
		fail_msg("tick %llu (ms %u, counter %u, pending %d, view %d): %lld ns since tick "
			 "%llu, not %llu",
			 (unsigned long long)k, ms, left, pending, view,
			 (long long)(t - c->t0), (unsigned long long)c->k0,
			 (unsigned long long)((k - c->k0) * NS));
}

/* The counter at 0 after the interrupt was taken (QEMU): the start of the
 * new millisecond, not the end of the old one. This reading once timed a
 * round trip of 1,280 ns as 1,001,280. */
static void test_zero_after_the_interrupt(void **state)
{
	struct clock c = { 0 };

	(void)state;
	check_reading(&c, 5 * TICKS - 7, SETTLED);
	check_reading(&c, 5 * TICKS, SETTLED);
	check_reading(&c, 5 * TICKS + 25, SETTLED);
}

/* The counter at 0 with the interrupt pending: the same instant. And a
 * reading with the interrupt pending after a wrap, either way, the last
 * reading two milliseconds before: the pending bit alone must tell. */
static void test_pending(void **state)
{
	struct clock c = { 0 };

	(void)state;
	check_reading(&c, 3 * TICKS + 100, SETTLED);
	check_reading(&c, 5 * TICKS, PENDING);
	check_reading(&c, 7 * TICKS + 25, PENDING);
	check_reading(&c, 7 * TICKS + 26, SETTLED);
}

/* Reloaded, not yet pending: only the last reading tells. */
static void test_reloaded_before_pending(void **state)
{
	struct clock c = { 0 };

	(void)state;
	check_reading(&c, 5 * TICKS - 7, SETTLED);
	check_reading(&c, 5 * TICKS + 3, NO_PENDING_YET);
	check_reading(&c, 5 * TICKS + 9, PENDING);
	check_reading(&c, 5 * TICKS + 12, SETTLED);
}

/* Readings one to three ticks apart across a hundred wraps, each shown in
 * any view possible at its tick, chosen at random. */
static void test_every_view_across_wraps(void **state)
{
	struct clock c = { 0 };
	uint64_t prev = 0;

	(void)state;
	for (uint64_t k = 0; k < 100u * TICKS; k += 1 + next_random() % 3) {
		enum view view = (enum view)(next_random() % VIEWS);

		if (!possible(k, view, k - prev))
			view = SETTLED;
		check_reading(&c, k, view);
		prev = k;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zero_after_the_interrupt),
		cmocka_unit_test(test_pending),
		cmocka_unit_test(test_reloaded_before_pending),
		cmocka_unit_test(test_every_view_across_wraps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
