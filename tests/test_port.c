/*
 * The port's recursive mutex: its holder may take it again, nobody else
 * gets in until the last unlock, and under contention (threads spinning
 * and sleeping on it) no update made under the lock is ever lost. And the
 * polling loop's backoff rule (backoff.h) on made-up timelines.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <duet/port.h>

#include "../src/port/posix/backoff.h"

struct shared {
	struct duet_mutex *m;
	unsigned long counter; /* only under m */
	_Atomic bool got;
};

static void nap_us(long us)
{
	struct timespec ts = { 0, us * 1000L };

	nanosleep(&ts, NULL);
}

static void *take_once(void *arg)
{
	struct shared *s = arg;

	duet_mutex_lock(s->m);
	atomic_store(&s->got, true);
	duet_mutex_unlock(s->m);
	return NULL;
}

static void test_holder_may_lock_again_others_wait(void **state)
{
	struct shared s = { 0 };
	pthread_t t;

	(void)state;
	assert_int_equal(duet_mutex_create(&s.m), 0);
	duet_mutex_lock(s.m);
	duet_mutex_lock(s.m); /* recursive: must not deadlock */
	assert_int_equal(pthread_create(&t, NULL, take_once, &s), 0);
	duet_mutex_unlock(s.m);
	nap_us(20000);
	/* Still held once: the other thread must be kept out. */
	assert_false(atomic_load(&s.got));
	duet_mutex_unlock(s.m);
	pthread_join(t, NULL);
	assert_true(atomic_load(&s.got));
	duet_mutex_destroy(s.m);
}

#define THREADS 4
#define ROUNDS 100000

static void *hammer(void *arg)
{
	struct shared *s = arg;

	for (int i = 0; i < ROUNDS; i++) {
		duet_mutex_lock(s->m);
		if (i % 1000 == 0) {
			/* Nested, and long enough for waiters to go to sleep. */
			duet_mutex_lock(s->m);
			nap_us(50);
			s->counter++;
			duet_mutex_unlock(s->m);
		} else {
			s->counter++;
		}
		duet_mutex_unlock(s->m);
	}
	return NULL;
}

static void test_contention_loses_no_update(void **state)
{
	struct shared s = { 0 };
	pthread_t t[THREADS];

	(void)state;
	assert_int_equal(duet_mutex_create(&s.m), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &s), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(s.counter, (unsigned long)THREADS * ROUNDS);
	duet_mutex_destroy(s.m);
}

/* How a child running `body` on a new mutex ended: its wait status. */
static int child_status(void (*body)(struct duet_mutex *m))
{
	pid_t pid = fork();
	int status = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct duet_mutex *m;

		if (duet_mutex_create(&m) != 0)
			_exit(2);
		body(m);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void unlock_twice(struct duet_mutex *m)
{
	duet_mutex_lock(m);
	duet_mutex_lock(m);
	duet_mutex_unlock(m);
	duet_mutex_unlock(m);
	duet_mutex_unlock(m); /* one more than taken */
}

static void unlock_untaken(struct duet_mutex *m)
{
	duet_mutex_unlock(m);
}

static void lock_and_let_go(struct duet_mutex *m)
{
	duet_mutex_lock(m);
	duet_mutex_unlock(m);
}

/* A mutex let go more often than it was taken stops the program, where
 * the count of takes would otherwise wrap and leave it unheld. */
static void test_unlock_not_held_stops(void **state)
{
	int status;

	(void)state;
	status = child_status(unlock_twice);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
	status = child_status(unlock_untaken);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
	status = child_status(lock_and_let_go);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* ---- deferred work ---- */

struct timed_work {
	struct duet_work w;
	_Atomic int runs;
	_Atomic uint64_t ran_at_ms;
};

static void note_run(struct duet_work *w)
{
	struct timed_work *t = (struct timed_work *)(void *)w; /* w is its first member */

	atomic_store(&t->ran_at_ms, duet_clock_ms());
	atomic_fetch_add(&t->runs, 1);
}

static void wait_runs(struct timed_work *t, int n)
{
	for (int i = 0; i < 2000 && atomic_load(&t->runs) < n; i++)
		nap_us(1000);
}

/*
 * Work runs once, after at least its delay; queueing it again while it is
 * pending moves its deadline (it still runs once); cancelled, it does not
 * run. Work without a function, or none, is refused.
 */
static void test_work_runs_once_after_its_delay(void **state)
{
	static struct timed_work a = { .w = { .fn = note_run } }, b = { .w = { .fn = note_run } };
	struct duet_work nofn = { 0 };
	uint64_t t0;

	(void)state;
	assert_int_equal(duet_work_queue(NULL, 0), -EINVAL);
	assert_int_equal(duet_work_queue(&nofn, 0), -EINVAL);
	t0 = duet_clock_ms();
	assert_int_equal(duet_work_queue(&a.w, 30), 0);
	wait_runs(&a, 1);
	assert_int_equal(atomic_load(&a.runs), 1);
	assert_true(atomic_load(&a.ran_at_ms) >= t0 + 30);
	/* Queued again while pending: the new deadline, one run (the first
	 * is far enough off that no stall between the calls reaches it). */
	t0 = duet_clock_ms();
	assert_int_equal(duet_work_queue(&a.w, 5000), 0);
	assert_int_equal(duet_work_queue(&a.w, 60), 0);
	wait_runs(&a, 2);
	assert_int_equal(atomic_load(&a.runs), 2);
	assert_true(atomic_load(&a.ran_at_ms) >= t0 + 60);
	nap_us(100000);
	assert_int_equal(atomic_load(&a.runs), 2);
	/* Cancelled before its time: never runs. */
	assert_int_equal(duet_work_queue(&b.w, 50), 0);
	duet_work_cancel(&b.w);
	nap_us(150000);
	assert_int_equal(atomic_load(&b.runs), 0);
	duet_work_cancel(NULL); /* nothing to cancel */
	assert_int_equal(duet_work_queue(NULL, 0), -EINVAL);
}

/* A work item that takes a while: it says when it starts and ends. */
static _Atomic bool slow_started, slow_ended;

static void slow_run(struct duet_work *w)
{
	(void)w;
	atomic_store(&slow_started, true);
	nap_us(100000);
	atomic_store(&slow_ended, true);
}

/* duet_work_cancel of a running item returns only once it has returned:
 * its owner may free it then. (Its own run may cancel it: covered by the
 * vhost bus, whose deferred probe requeues itself.) */
static void test_cancel_waits_for_a_running_work(void **state)
{
	static struct duet_work w = { .fn = slow_run };

	(void)state;
	atomic_store(&slow_started, false);
	atomic_store(&slow_ended, false);
	assert_int_equal(duet_work_queue(&w, 0), 0);
	for (int i = 0; i < 2000 && !atomic_load(&slow_started); i++)
		nap_us(1000);
	assert_true(atomic_load(&slow_started));
	duet_work_cancel(&w);
	assert_true(atomic_load(&slow_ended));
}

/* The made-up clock backoff_took reads, and how often it was read. */
static uint64_t fake_ns;
static unsigned int clock_reads;

static uint64_t fake_clock(void)
{
	clock_reads++;
	return fake_ns;
}

/* A look that took work in at `us` (an entry more than the last),
 * with this side having published `pub`. */
static void took(struct poll_backoff *b, uint32_t pub, uint64_t us)
{
	fake_ns = us * 1000u;
	backoff_took(b, b->taken + 1u, pub, fake_clock);
}

/* A look at `us` whose callback ran and took nothing: its entries were
 * taken by the pass before it. */
static void ran_dry(struct poll_backoff *b, uint32_t pub, uint64_t us)
{
	fake_ns = us * 1000u;
	backoff_took(b, b->taken, pub, fake_clock);
}

/* An empty look: whether it waits (backoff_maybe first, as the link asks). */
static bool empty(struct poll_backoff *b, uint32_t pub)
{
	return backoff_maybe(b) && backoff_empty(b, pub);
}

/* A ping-pong publishes between its looks: it never waits, and never
 * reads the clock. */
static void test_backoff_never_in_a_ping_pong(void **state)
{
	struct poll_backoff b = { .wait_ns = 20000 };

	(void)state;
	clock_reads = 0;
	for (uint32_t i = 1; i < 100; i++) {
		took(&b, i, i);
		assert_false(empty(&b, i));
	}
	assert_int_equal(clock_reads, 0);
}

/* A dense stream that only comes in waits once per empty spell from its
 * third look on, goes on waiting while the stream does, and stops at the
 * first empty look after a wait: the stream has ended. */
static void test_backoff_in_a_dense_one_way_stream(void **state)
{
	struct poll_backoff b = { .wait_ns = 20000 };

	(void)state;
	took(&b, 7, 100);
	assert_false(empty(&b, 7)); /* one look is not a stream */
	took(&b, 7, 105);
	assert_false(empty(&b, 7)); /* nor two: the first gave no time */
	took(&b, 7, 110);
	assert_true(empty(&b, 7));
	/* A look that gives buffers back, then one after a whole wait:
	 * still the stream, without a clock. */
	clock_reads = 0;
	took(&b, 8, 120);
	took(&b, 8, 141);
	assert_int_equal(clock_reads, 0);
	assert_true(empty(&b, 8));
	assert_false(empty(&b, 8)); /* the wait found nothing: ended */
	assert_false(empty(&b, 8));
	took(&b, 8, 150); /* it comes back: two close looks make it dense */
	assert_false(empty(&b, 8));
	took(&b, 8, 155);
	assert_true(empty(&b, 8));
}

/* One-way messages further apart than twice the wait never wait: a wait
 * would only make the next one late. */
static void test_backoff_never_for_sparse_messages(void **state)
{
	struct poll_backoff b = { .wait_ns = 20000 };
	uint64_t t;

	(void)state;
	for (t = 1000; t < 100000; t += 41) {
		took(&b, 3, t);
		assert_false(empty(&b, 3));
	}
	took(&b, 3, t - 41 + 39); /* 39 us after the last: dense */
	assert_true(empty(&b, 3));
}

/* This side publishing (a send, a buffer given back) ends the rule's
 * grounds, between looks or in the look itself; and wait 0 never waits. */
static void test_backoff_not_after_publishing(void **state)
{
	struct poll_backoff b = { .wait_ns = 20000 }, off = { 0 };

	(void)state;
	took(&b, 1, 10);
	took(&b, 1, 11);
	assert_false(empty(&b, 2)); /* sent since the last look */
	took(&b, 2, 12);
	took(&b, 3, 13); /* gave buffers back in this look */
	assert_false(empty(&b, 3));
	took(&off, 1, 10);
	took(&off, 1, 11);
	assert_false(empty(&off, 1));
}

/* Echoes both ways (a pipeline of requests): each look that takes a
 * message answers it, and between them looks whose callback finds its
 * messages taken by the pass before. Those are no looks that took work:
 * they make no stream, and no empty look waits (they did, and an echo
 * window of 32 ran at a third of polling's rate). In a one-way stream
 * they change nothing either. */
static void test_backoff_not_for_looks_that_took_nothing(void **state)
{
	struct poll_backoff b = { .wait_ns = 20000 };
	uint32_t pub = 0;

	(void)state;
	for (uint64_t t = 100; t < 2000; t += 3) {
		took(&b, pub += 2, t);
		ran_dry(&b, pub, t + 1);
		ran_dry(&b, pub, t + 2);
		assert_false(empty(&b, pub));
	}
	b = (struct poll_backoff){ .wait_ns = 20000 };
	took(&b, 7, 100);
	ran_dry(&b, 7, 101);
	took(&b, 7, 105);
	ran_dry(&b, 7, 106);
	assert_false(empty(&b, 7)); /* two looks that took: not yet */
	took(&b, 7, 110);
	ran_dry(&b, 7, 111);
	assert_true(empty(&b, 7)); /* the third: a stream, as without them */
	ran_dry(&b, 7, 131);
	assert_false(empty(&b, 7)); /* a wait, then nothing taken: ended */
}

/* A wait that ended at `us`, having lasted the whole 20 us and the peer
 * having published `got` entries during it. */
static void waited(struct poll_backoff *b, uint32_t got, uint64_t us)
{
	backoff_waited(b, got, 20000, us * 1000u);
}

/* The three looks that find the dense stream, from `us` on. */
static void dense(struct poll_backoff *b, uint64_t us)
{
	took(b, 5, us);
	took(b, 5, us + 2);
	took(b, 5, us + 4);
}

/* A wait that collects a message every microsecond or more pays: the
 * stream goes on, with a wait in each empty spell. */
static void test_backoff_goes_on_while_waits_pay(void **state)
{
	struct poll_backoff b = { .wait_ns = 20000 };

	(void)state;
	dense(&b, 1000);
	for (uint64_t t = 1004; t < 2000; t += 21) {
		assert_true(empty(&b, 5));
		waited(&b, 20, t + 20);
		took(&b, 5, t + 21);
	}
}

/* A paced stream (a message every 2 us: 10 per 20 us wait) is dense by
 * the look test, but its waits collect too little: each thin wait ends it
 * and no stream is found for a hold of 8 waits, then 16, doubling up to
 * 1024, so that it pays one wait per hold; a wait that pays again starts
 * the hold over. */
static void test_backoff_holds_off_a_paced_stream(void **state)
{
	struct poll_backoff b = { .wait_ns = 20000 };
	uint64_t t = 1000, hold_us = 160;
	unsigned int waits = 0;

	(void)state;
	dense(&b, t);
	assert_true(empty(&b, 5));
	waited(&b, 10, t + 24);
	assert_false(empty(&b, 5)); /* ended */
	for (t += 26; t < 1024 + hold_us; t += 2) {
		took(&b, 5, t);
		assert_false(empty(&b, 5)); /* held */
	}
	took(&b, 5, t);
	assert_true(empty(&b, 5)); /* the hold is over: found at once */
	waited(&b, 10, t + 20);
	/* The next hold is twice as long, and so on up to the longest. */
	for (int k = 0; k < 12; k++) {
		uint64_t start = t + 20;

		hold_us *= 2u;
		if (hold_us > 1024u * 20u)
			hold_us = 1024u * 20u;
		for (t = start + 2; t < start + hold_us; t += 2) {
			took(&b, 5, t);
			waits += empty(&b, 5);
		}
		assert_int_equal(waits, 0);
		took(&b, 5, t);
		assert_true(empty(&b, 5));
		waited(&b, 10, t + 20);
	}
	/* A wait that pays starts it over: the next thin wait holds 8 waits. */
	dense(&b, t + 20 + 1024u * 20u);
	assert_true(empty(&b, 5));
	waited(&b, 100, t + 20 + 1024u * 20u + 24);
	t += 20 + 1024u * 20u + 25;
	took(&b, 5, t);
	assert_true(empty(&b, 5));
	waited(&b, 1, t + 20);
	took(&b, 5, t + 20 + 158);
	assert_false(empty(&b, 5));
	took(&b, 5, t + 20 + 161);
	assert_true(empty(&b, 5));
}

/* A peer that inflates its indices makes every wait look paid: the waits
 * are then exactly those of the rule without the hold (a twin fed the
 * same looks and never told what a wait collected), one per empty spell. */
static void test_backoff_inflated_counts_buy_no_more_waits(void **state)
{
	struct poll_backoff b = { .wait_ns = 20000 }, twin = { .wait_ns = 20000 };
	unsigned int waits = 0;

	(void)state;
	for (uint64_t t = 1000; t < 5000; t += 7) {
		bool w;

		took(&b, 5, t);
		took(&twin, 5, t);
		w = empty(&b, 5);
		assert_int_equal(w, empty(&twin, 5));
		if (w) {
			waits++;
			waited(&b, UINT32_MAX, t + 3);
		}
		/* Every third spell has a second empty look. */
		if (t % 3 == 0)
			assert_int_equal(empty(&b, 5), empty(&twin, 5));
	}
	assert_true(waits > 0);
}

/* Bursts: a wait that collects nothing is the end of one, not a paced
 * stream. The empty look after it ends the stream, no hold: the next
 * burst, 100 us later, waits from its third look as the first did. */
static void test_backoff_does_not_hold_between_bursts(void **state)
{
	struct poll_backoff b = { .wait_ns = 20000 };

	(void)state;
	for (uint64_t t = 1000; t < 10000; t += 100) {
		dense(&b, t);
		assert_true(empty(&b, 5));
		waited(&b, 0, t + 24);
		assert_false(empty(&b, 5)); /* ended */
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_holder_may_lock_again_others_wait),
		cmocka_unit_test(test_contention_loses_no_update),
		cmocka_unit_test(test_unlock_not_held_stops),
		cmocka_unit_test(test_work_runs_once_after_its_delay),
		cmocka_unit_test(test_cancel_waits_for_a_running_work),
		cmocka_unit_test(test_backoff_never_in_a_ping_pong),
		cmocka_unit_test(test_backoff_in_a_dense_one_way_stream),
		cmocka_unit_test(test_backoff_never_for_sparse_messages),
		cmocka_unit_test(test_backoff_not_after_publishing),
		cmocka_unit_test(test_backoff_not_for_looks_that_took_nothing),
		cmocka_unit_test(test_backoff_goes_on_while_waits_pay),
		cmocka_unit_test(test_backoff_holds_off_a_paced_stream),
		cmocka_unit_test(test_backoff_does_not_hold_between_bursts),
		cmocka_unit_test(test_backoff_inflated_counts_buy_no_more_waits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
