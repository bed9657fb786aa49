/*
 * test_port_bare.c - the bare-metal port (src/port/bare) on the host, with
 * a clock the test moves: deferred work runs once, when due, in the loop's
 * call; a re-queue moves it, a cancel drops it, an item that queues itself
 * again waits for the next call; an event wait turns the board's idle
 * function until posted or timed out; an unlock too many is reported.
 * (tests/cortex-m runs the whole core on it.)
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <duet/port.h>

#include "../src/port/bare/port_bare.h"

static uint64_t now_ns;

static uint64_t test_clock(void)
{
	return now_ns;
}

static void advance_ms(uint64_t ms)
{
	now_ns += ms * 1000000u;
}

/* The idle turn of event waits: time passes, and after `post_after`
 * turns the event is posted, as a callback of the loop would. */
static struct duet_event *idle_event;
static int idle_turns, post_after;

static void idle(void *arg)
{
	(void)arg;
	idle_turns++;
	advance_ms(1);
	if (idle_event && idle_turns == post_after)
		duet_event_post(idle_event);
}

static const char *fatal_why;
static jmp_buf fatal_jump;

static void fatal(const char *why)
{
	fatal_why = why;
	longjmp(fatal_jump, 1);
}

static int setup(void **state)
{
	static const struct duet_bare_board board = {
		.clock_ns = test_clock, .idle = idle, .fatal = fatal,
	};

	(void)state;
	now_ns = 1000000000u;
	idle_event = NULL;
	idle_turns = post_after = 0;
	return duet_bare_init(&board);
}

static void test_init_needs_a_clock(void **state)
{
	struct duet_bare_board none = { 0 };

	(void)state;
	assert_int_equal(duet_bare_init(NULL), -EINVAL);
	assert_int_equal(duet_bare_init(&none), -EINVAL);
	assert_int_equal(duet_clock_ms(), 1000); /* the board before stays */
	assert_int_equal(duet_port_random((uint8_t[4]){ 0 }, 4), -ENOTSUP);
}

struct counted {
	struct duet_work w; /* first: the callback gets &w */
	int runs;
	int requeue_ms;     /* >= 0: queue itself again from its run */
};

static void count_run(struct duet_work *w)
{
	struct counted *c = (struct counted *)(void *)w;

	c->runs++;
	if (c->requeue_ms >= 0)
		assert_int_equal(duet_work_queue(w, (uint32_t)c->requeue_ms), 0);
}

static void test_work_runs_once_when_due(void **state)
{
	struct counted a = { .w.fn = count_run, .requeue_ms = -1 };
	struct counted b = { .w.fn = count_run, .requeue_ms = -1 };
	struct duet_work nofn = { 0 };

	(void)state;
	assert_int_equal(duet_work_queue(NULL, 0), -EINVAL);
	assert_int_equal(duet_work_queue(&nofn, 0), -EINVAL);
	assert_int_equal(duet_work_queue(&a.w, 10), 0);
	assert_int_equal(duet_work_queue(&b.w, 20), 0);
	assert_int_equal(duet_bare_run_work(), 0);
	advance_ms(9);
	assert_int_equal(duet_bare_run_work(), 0);
	advance_ms(1);
	assert_int_equal(duet_bare_run_work(), 1);
	assert_int_equal(a.runs, 1);
	assert_int_equal(b.runs, 0);
	/* Queued again while pending: the deadline moves, it runs once. */
	assert_int_equal(duet_work_queue(&b.w, 50), 0);
	advance_ms(30);
	assert_int_equal(duet_bare_run_work(), 0);
	advance_ms(20);
	assert_int_equal(duet_bare_run_work(), 1);
	assert_int_equal(b.runs, 1);
	advance_ms(1000);
	assert_int_equal(duet_bare_run_work(), 0);
	assert_int_equal(a.runs + b.runs, 2);
}

static void test_cancel_drops_pending_work(void **state)
{
	struct counted a = { .w.fn = count_run, .requeue_ms = -1 };
	struct counted b = { .w.fn = count_run, .requeue_ms = -1 };

	(void)state;
	assert_int_equal(duet_work_queue(&a.w, 0), 0);
	assert_int_equal(duet_work_queue(&b.w, 0), 0);
	duet_work_cancel(&a.w);
	duet_work_cancel(&a.w); /* twice: harmless */
	duet_work_cancel(NULL);
	assert_int_equal(duet_bare_run_work(), 1);
	assert_int_equal(a.runs, 0);
	assert_int_equal(b.runs, 1);
	duet_work_cancel(&b.w); /* after it ran: nothing to do */
	assert_int_equal(duet_work_queue(&a.w, 0), 0); /* and it can come back */
	assert_int_equal(duet_bare_run_work(), 1);
	assert_int_equal(a.runs, 1);
}

/* The vhost bus's deferred probe queues itself again from its run: with
 * no delay, it must wait for the loop's next call, not spin in this one. */
static void test_work_queued_from_its_run_waits_for_the_next_call(void **state)
{
	struct counted a = { .w.fn = count_run, .requeue_ms = 0 };
	struct counted b = { .w.fn = count_run, .requeue_ms = -1 };

	(void)state;
	assert_int_equal(duet_work_queue(&a.w, 0), 0);
	assert_int_equal(duet_work_queue(&b.w, 0), 0);
	assert_int_equal(duet_bare_run_work(), 2);
	assert_int_equal(a.runs, 1);
	assert_int_equal(duet_bare_run_work(), 1);
	assert_int_equal(a.runs, 2);
	a.requeue_ms = -1;
	assert_int_equal(duet_bare_run_work(), 1);
	assert_int_equal(duet_bare_run_work(), 0);
	assert_int_equal(a.runs, 3);
	assert_int_equal(b.runs, 1);
}

/* An item that waits turns the loop (the idle hook), and the loop's turn
 * calls run_work again: inside an item that runs nothing. */
static int nested_ran;

static void nested_run(struct duet_work *w)
{
	(void)w;
	nested_ran = duet_bare_run_work();
}

static void test_work_does_not_run_inside_work(void **state)
{
	struct duet_work outer = { .fn = nested_run };
	struct counted other = { .w.fn = count_run, .requeue_ms = -1 };

	(void)state;
	nested_ran = -1;
	assert_int_equal(duet_work_queue(&other.w, 0), 0);
	assert_int_equal(duet_work_queue(&outer, 0), 0);
	/* outer, queued last, runs first, other still queued: other runs
	 * after it, not inside it. */
	assert_int_equal(duet_bare_run_work(), 2);
	assert_int_equal(nested_ran, 0);
	assert_int_equal(other.runs, 1);
}

static void test_event_wait_turns_the_loop(void **state)
{
	struct duet_event *ev;

	(void)state;
	assert_int_equal(duet_event_create(&ev), 0);
	/* Posted before the wait: taken at once, no turn. */
	duet_event_post(ev);
	duet_event_post(ev); /* a binary semaphore: one post */
	assert_int_equal(duet_event_wait(ev, 100), 0);
	assert_int_equal(idle_turns, 0);
	/* Posted by the loop on its fifth turn. */
	idle_event = ev;
	post_after = 5;
	assert_int_equal(duet_event_wait(ev, 100), 0);
	assert_int_equal(idle_turns, 5);
	/* Never posted: the loop turns until the timeout (1 ms a turn). */
	idle_turns = 0;
	post_after = -1;
	assert_int_equal(duet_event_wait(ev, 20), -ETIMEDOUT);
	assert_int_equal(idle_turns, 20);
	assert_int_equal(duet_event_wait(ev, 0), -ETIMEDOUT);
	duet_event_destroy(ev);
}

static void test_mutex_counts_its_depth(void **state)
{
	struct duet_mutex *m;

	(void)state;
	assert_int_equal(duet_mutex_create(&m), 0);
	duet_mutex_lock(m);
	duet_mutex_lock(m); /* recursive */
	duet_mutex_unlock(m);
	duet_mutex_unlock(m);
	fatal_why = NULL;
	if (!setjmp(fatal_jump))
		duet_mutex_unlock(m);
	assert_non_null(fatal_why);
	assert_non_null(strstr(fatal_why, "unlocked while not held"));
	duet_mutex_destroy(m);
}

static void test_alloc_is_zeroed(void **state)
{
	uint8_t *p = duet_port_alloc(64);

	(void)state;
	assert_non_null(p);
	for (int i = 0; i < 64; i++)
		assert_int_equal(p[i], 0);
	duet_port_free(p);
	p = duet_port_alloc(0); /* a pointer all the same */
	assert_non_null(p);
	duet_port_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_init_needs_a_clock, setup),
		cmocka_unit_test_setup(test_work_runs_once_when_due, setup),
		cmocka_unit_test_setup(test_cancel_drops_pending_work, setup),
		cmocka_unit_test_setup(test_work_queued_from_its_run_waits_for_the_next_call, setup),
		cmocka_unit_test_setup(test_work_does_not_run_inside_work, setup),
		cmocka_unit_test_setup(test_event_wait_turns_the_loop, setup),
		cmocka_unit_test_setup(test_mutex_counts_its_depth, setup),
		cmocka_unit_test_setup(test_alloc_is_zeroed, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
