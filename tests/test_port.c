/*
 * The port's recursive mutex: its holder may take it again, nobody else
 * gets in until the last unlock, and under contention (threads spinning
 * and sleeping on it) no update made under the lock is ever lost.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <time.h>

#include <cmocka.h>

#include <duet/port.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_holder_may_lock_again_others_wait),
		cmocka_unit_test(test_contention_loses_no_update),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
