/*
 * The doorbell between two processes (fork, shared mapping): a producer
 * rings two million times without waiting while the consumer takes, sleeps
 * and wakes. A wait that times out although the producer moved on would be
 * a lost wake-up; it must never happen. An idle waiter must block, not spin.
 * A ringer killed between its steps must not leave the waiter asleep for
 * good once the survivor wakes it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <duet/doorbell.h>

#define RINGS 2000000u
#define END_ID 100u /* the producer's last ring; the stream uses ids 0-7 */

struct shared {
	struct duet_doorbell bell;
	_Atomic uint64_t produced;
};

static struct shared *map_shared(void)
{
	void *p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	assert_true(p != MAP_FAILED);
	return p;
}

static uint64_t thread_cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void consume_stream(uint32_t spin_us, uint32_t timeout_ms)
{
	struct shared *sh = map_shared();
	uint32_t ids[DUET_DOORBELL_IDS] = { 0 };
	uint64_t waits = 0, sleeps_ok = 0, seen_ids = 0;
	pid_t child;
	int st;

	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		for (uint32_t i = 1; i <= RINGS; i++) {
			atomic_store(&sh->produced, i);
			duet_doorbell_ring(&sh->bell, i % 8);
		}
		duet_doorbell_ring(&sh->bell, END_ID); /* rung once: never merged */
		_exit(0);
	}
	for (;;) {
		uint32_t seen = atomic_load(&sh->bell.seq);
		unsigned int n = duet_doorbell_take(&sh->bell, ids);
		uint64_t before;
		bool end = false;

		seen_ids += n;
		for (unsigned int k = 0; k < n; k++)
			end |= ids[k] == END_ID;
		if (end)
			break;
		before = atomic_load(&sh->produced);
		waits++;
		if (duet_doorbell_wait(&sh->bell, seen, spin_us, timeout_ms)) {
			sleeps_ok++;
			continue;
		}
		assert_int_not_equal(timeout_ms, DUET_DOORBELL_FOREVER);
		/* Two seconds without a wake-up: the producer must not have
		 * rung meanwhile. */
		assert_int_equal(atomic_load(&sh->produced), before);
	}
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* Each ring moved seq or merged into a pending one the consumer took. */
	assert_true(atomic_load(&sh->bell.seq) <= RINGS + 1);
	assert_true(seen_ids > 0 && seen_ids <= atomic_load(&sh->bell.seq));
	print_message("spin %u us: %u rings, %u moved seq, %llu waits, %u wake-up calls "
		      "(%.4f per ring)\n",
		      spin_us, RINGS, atomic_load(&sh->bell.seq), (unsigned long long)waits,
		      atomic_load(&sh->bell.wakes), (double)atomic_load(&sh->bell.wakes) / RINGS);
	assert_true(atomic_load(&sh->bell.wakes) < RINGS); /* suppressed, not one per ring */
	munmap(sh, sizeof(*sh));
}

static void test_stream_blocking(void **state)
{
	(void)state;
	consume_stream(0, 2000);
}

/* The same without a timeout: a lost wake-up would sleep for ever, so an
 * alarm ends the test as a failure instead. */
static void test_stream_blocking_forever(void **state)
{
	(void)state;
	alarm(120);
	consume_stream(0, DUET_DOORBELL_FOREVER);
	alarm(0);
}

static void test_stream_spinning(void **state)
{
	(void)state;
	consume_stream(50, 2000);
}

static void test_idle_waiter_blocks(void **state)
{
	struct shared *sh = map_shared();
	uint64_t cpu0 = thread_cpu_us(), cpu;
	struct timespec t0, t1;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_false(duet_doorbell_wait(&sh->bell, 0, 0, 300));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cpu = thread_cpu_us() - cpu0;
	print_message("idle wait of 300 ms used %llu us of CPU\n", (unsigned long long)cpu);
	assert_true((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 >= 300);
	assert_true(cpu < 20000); /* blocked in the kernel, not spinning */
	munmap(sh, sizeof(*sh));
}

/* A ring for an id not yet taken merges into the pending one: seq moves
 * once, the id is taken once; after the take, a ring moves seq again. */
static void test_ring_merges_into_a_pending_one(void **state)
{
	struct shared *sh = map_shared();
	uint32_t ids[DUET_DOORBELL_IDS] = { 0 };

	(void)state;
	assert_true(duet_doorbell_ring(&sh->bell, 5));
	assert_false(duet_doorbell_ring(&sh->bell, 5));
	assert_true(duet_doorbell_ring(&sh->bell, 6)); /* another id is its own */
	assert_int_equal(atomic_load(&sh->bell.seq), 2);
	assert_int_equal(duet_doorbell_take(&sh->bell, ids), 2);
	assert_int_equal(ids[0], 5);
	assert_int_equal(ids[1], 6);
	assert_true(duet_doorbell_ring(&sh->bell, 5));
	assert_int_equal(atomic_load(&sh->bell.seq), 3);
	assert_true(duet_doorbell_wait(&sh->bell, 2, 0, 0)); /* the waiter sees it move */
	munmap(sh, sizeof(*sh));
}

static void test_wake_from_other_process(void **state)
{
	struct shared *sh = map_shared();
	uint32_t ids[DUET_DOORBELL_IDS] = { 0 };
	pid_t child;
	int st;

	(void)state;
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		usleep(100000);
		duet_doorbell_ring(&sh->bell, 5);
		duet_doorbell_ring(&sh->bell, 70);
		_exit(0);
	}
	assert_true(duet_doorbell_wait(&sh->bell, 0, 0, 5000));
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_int_equal(duet_doorbell_take(&sh->bell, ids), 2);
	assert_int_equal(ids[0], 5);
	assert_int_equal(ids[1], 70);
	assert_int_equal(duet_doorbell_take(&sh->bell, ids), 0);
	munmap(sh, sizeof(*sh));
}

/*
 * A ringer killed between its steps (a peer process killed in a ring)
 * leaves its bit set, or seq moved, without the wake-up call: the waiter,
 * asleep without a timeout, stays asleep. duet_doorbell_wake, which the
 * survivor makes once it knows its peer is dead, must end that sleep and
 * leave the ids to take. moved_seq: killed after seq moved (before the
 * call), or before (after the bit). `id`: the wake's, the dead ringer's
 * (3) or another.
 */
static void wake_after_a_ringer_died(bool moved_seq, uint32_t id)
{
	struct shared *sh = map_shared();
	uint32_t ids[DUET_DOORBELL_IDS] = { 0 };
	int st = -1;
	pid_t child;

	atomic_store(&sh->bell.seq, 7);
	child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(duet_doorbell_wait(&sh->bell, 7, 0, DUET_DOORBELL_FOREVER) ? 0 : 1);
	/* The waiter armed, and then some: asleep in the kernel. */
	for (int i = 0; i < 5000 && atomic_load(&sh->bell.armed) != 7; i++)
		usleep(1000);
	assert_int_equal(atomic_load(&sh->bell.armed), 7);
	usleep(50000);
	/* The dead ringer's steps, as far as it got. */
	atomic_fetch_or(&sh->bell.pending[0], 1u << 3);
	if (moved_seq)
		atomic_fetch_add(&sh->bell.seq, 1);
	assert_true(duet_doorbell_wake(&sh->bell, id));
	for (int i = 0; i < 5000 && waitpid(child, &st, WNOHANG) == 0; i++)
		usleep(1000);
	if (st == -1) {
		kill(child, SIGKILL);
		waitpid(child, &st, 0);
		fail_msg("the waiter still sleeps 5 s after the wake");
	}
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(duet_doorbell_take(&sh->bell, ids), id == 3 ? 1 : 2);
	assert_int_equal(ids[0], 3);
	if (id != 3)
		assert_int_equal(ids[1], id);
	munmap(sh, sizeof(*sh));
}

/* Then every later ring moves seq from a value the waiter does not sleep
 * on, and makes no call. */
static void test_wake_after_a_ringer_died_before_its_call(void **state)
{
	(void)state;
	wake_after_a_ringer_died(true, 9);
}

/* Then every later ring of its id merges into its bit, the wake's too. */
static void test_wake_after_a_ringer_died_before_seq_moved(void **state)
{
	(void)state;
	wake_after_a_ringer_died(false, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring_merges_into_a_pending_one),
		cmocka_unit_test(test_wake_from_other_process),
		cmocka_unit_test(test_wake_after_a_ringer_died_before_its_call),
		cmocka_unit_test(test_wake_after_a_ringer_died_before_seq_moved),
		cmocka_unit_test(test_idle_waiter_blocks),
		cmocka_unit_test(test_stream_blocking),
		cmocka_unit_test(test_stream_blocking_forever),
		cmocka_unit_test(test_stream_spinning),
	};

	return cmocka_run_group_tests_name("doorbell", tests, NULL, NULL);
}
