/*
 * port_posix.c - the port contract on POSIX threads.
 *
 * The work queue is one thread, started on first use, sleeping on a
 * condition variable until the earliest deadline. It holds its own lock
 * only around its list, never while running an item, so an item may queue
 * or cancel work.
 */
#define _GNU_SOURCE /* getrandom */
#include <duet/port.h>

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../../core/compiler.h"
#include "deadline.h"
#include "port_posix.h"

/* Allocation failures on demand, for tests (port_posix.h): allocations
 * to let through first, then allocations to fail. Both 0 almost always:
 * one relaxed load on the way to calloc. */
static _Atomic uint32_t fail_skip, fail_count;

void duet_port_fail_allocs(uint32_t skip, uint32_t count)
{
	atomic_store(&fail_count, 0);
	atomic_store(&fail_skip, skip);
	atomic_store(&fail_count, count);
}

uint32_t duet_port_allocs_left_to_fail(void)
{
	return atomic_load(&fail_count);
}

/* Whether this allocation is one to fail; takes one from the right count. */
static bool fail_now(void)
{
	uint32_t n = atomic_load(&fail_skip);

	while (n)
		if (atomic_compare_exchange_weak(&fail_skip, &n, n - 1))
			return false;
	n = atomic_load(&fail_count);
	while (n)
		if (atomic_compare_exchange_weak(&fail_count, &n, n - 1))
			return true;
	return false;
}

/* Every allocation of the port goes through here. */
static void *port_calloc(size_t size)
{
	if (atomic_load_explicit(&fail_count, memory_order_relaxed) && fail_now())
		return NULL;
	return calloc(1, size ? size : 1);
}

void *duet_port_alloc(size_t size)
{
	return port_calloc(size);
}

void duet_port_free(void *p)
{
	free(p);
}

/*
 * The recursive mutex, on a private futex: the lock is taken twice per
 * message on each side, and glibc's recursive pthread mutex cost ~65
 * instructions a lock/unlock pair there (bench/callgrind-rpmsg.sh). `word`
 * is 0 free, 1 held, 2 held with a possible sleeper (the classic
 * three-state futex mutex). `owner` and `depth` make it recursive: only the
 * holder ever finds its own id in `owner`, since it clears it before
 * letting go.
 */
struct duet_mutex {
	_Atomic uint32_t word;
	_Atomic uintptr_t owner;
	unsigned int depth; /* the holder's */
};

/* Polls of a held lock before sleeping: a holder on another CPU usually
 * lets go within a message's time, far less than a futex round trip. */
#define MUTEX_SPIN 100

int duet_mutex_create(struct duet_mutex **mp)
{
	struct duet_mutex *m = port_calloc(sizeof(*m));

	if (!m)
		return -ENOMEM;
	*mp = m;
	return 0;
}

void duet_mutex_destroy(struct duet_mutex *m)
{
	free(m);
}

/* A thread's id for `owner`: the address of a thread-local byte, unique
 * among live threads, read without a call (pthread_self is one). The
 * initial-exec model keeps it a register read in the shared library too,
 * where the default would call __tls_get_addr. */
static _Thread_local char self_tag __attribute__((tls_model("initial-exec")));

static uintptr_t self_id(void)
{
	return (uintptr_t)&self_tag;
}

static void mutex_wait(struct duet_mutex *m, uint32_t c)
{
	for (int i = 0; i < MUTEX_SPIN && c; i++) {
		if (atomic_load_explicit(&m->word, memory_order_relaxed) == 0) {
			c = 0;
			if (atomic_compare_exchange_strong_explicit(&m->word, &c, 1,
								    memory_order_acquire,
								    memory_order_relaxed))
				return;
		}
	}
	/* Sleep with the word at 2, so the holder knows to wake someone. */
	while (atomic_exchange_explicit(&m->word, 2, memory_order_acquire) != 0)
		syscall(SYS_futex, (uint32_t *)&m->word, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
}

/* A lock becoming ours. */
static inline void mutex_own(struct duet_mutex *m, uintptr_t me)
{
	atomic_store_explicit(&m->owner, me, memory_order_relaxed);
	m->depth = 1;
}

/* The lock was held: wait for it. Apart, so that the free case, which
 * tail-calls nothing, saves no registers. */
static DUET_OUT_OF_LINE void mutex_lock_held(struct duet_mutex *m, uint32_t c)
{
	mutex_wait(m, c);
	mutex_own(m, self_id());
}

void duet_mutex_lock(struct duet_mutex *m)
{
	uintptr_t me = self_id();
	uint32_t c = 0;

	if (atomic_load_explicit(&m->owner, memory_order_relaxed) == me) {
		m->depth++;
		return;
	}
	if (!atomic_compare_exchange_strong_explicit(&m->word, &c, 1, memory_order_acquire,
						     memory_order_relaxed)) {
		mutex_lock_held(m, c);
		return;
	}
	mutex_own(m, me);
}

/* A lock let go more often than it was taken is duet's own bug, not a
 * peer's: stop at once, where a silent wrap of the depth would leave the
 * lock unheld under code that relies on it. */
static DUET_OUT_OF_LINE _Noreturn void mutex_not_held(void)
{
	static const char msg[] = "duet: mutex unlocked while not held\n";

	(void)!write(2, msg, sizeof(msg) - 1);
	abort();
}

/* Wake one thread asleep on the lock. Apart, like mutex_lock_held: the
 * common unlock then calls nothing and needs no stack frame. */
static DUET_OUT_OF_LINE void mutex_wake(struct duet_mutex *m)
{
	syscall(SYS_futex, (uint32_t *)&m->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void duet_mutex_unlock(struct duet_mutex *m)
{
	if (--m->depth) {
		/* Still held, unless the count wrapped: tested on this rarer
		 * path only, so the last unlock makes no extra test. */
		if (m->depth == UINT_MAX)
			mutex_not_held();
		return;
	}
	atomic_store_explicit(&m->owner, 0, memory_order_relaxed);
	if (atomic_exchange_explicit(&m->word, 0, memory_order_release) == 2)
		mutex_wake(m);
}

uint64_t duet_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t duet_clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- work queue ---- */

enum { WORK_IDLE, WORK_PENDING };

static pthread_mutex_t wq_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wq_cond; /* CLOCK_MONOTONIC, set up with the thread */
static pthread_cond_t wq_done = PTHREAD_COND_INITIALIZER;
static struct duet_work *wq_head; /* sorted by due_ms */
static struct duet_work *wq_running;
static pthread_t wq_thread;
static bool wq_started;

static void unlink_work(struct duet_work *work)
{
	struct duet_work **pp;

	for (pp = &wq_head; *pp; pp = &(*pp)->next) {
		if (*pp == work) {
			*pp = work->next;
			break;
		}
	}
	work->next = NULL;
	work->state = WORK_IDLE;
}

static void *wq_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&wq_lock);
	for (;;) {
		struct duet_work *w = wq_head;
		uint64_t now = duet_clock_ms();

		if (!w) {
			pthread_cond_wait(&wq_cond, &wq_lock);
			continue;
		}
		if (w->due_ms > now) {
			struct timespec ts = deadline_after_ms(CLOCK_MONOTONIC, w->due_ms - now);

			pthread_cond_timedwait(&wq_cond, &wq_lock, &ts);
			continue;
		}
		unlink_work(w);
		wq_running = w;
		pthread_mutex_unlock(&wq_lock);
		w->fn(w);
		pthread_mutex_lock(&wq_lock);
		wq_running = NULL;
		pthread_cond_broadcast(&wq_done);
	}
	return NULL;
}

static int wq_start(void)
{
	pthread_condattr_t a;
	int ret;

	if (wq_started)
		return 0;
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&wq_cond, &a);
	pthread_condattr_destroy(&a);
	ret = pthread_create(&wq_thread, NULL, wq_main, NULL);
	if (ret)
		return -ret;
	pthread_detach(wq_thread);
	wq_started = true;
	return 0;
}

int duet_work_queue(struct duet_work *work, uint32_t delay_ms)
{
	struct duet_work **pp;
	int ret;

	if (!work || !work->fn)
		return -EINVAL;
	pthread_mutex_lock(&wq_lock);
	ret = wq_start();
	if (ret == 0) {
		if (work->state == WORK_PENDING)
			unlink_work(work);
		work->due_ms = duet_clock_ms() + delay_ms;
		for (pp = &wq_head; *pp && (*pp)->due_ms <= work->due_ms; pp = &(*pp)->next)
			;
		work->next = *pp;
		*pp = work;
		work->state = WORK_PENDING;
		pthread_cond_signal(&wq_cond);
	}
	pthread_mutex_unlock(&wq_lock);
	return ret;
}

void duet_work_cancel(struct duet_work *work)
{
	if (!work)
		return;
	pthread_mutex_lock(&wq_lock);
	if (work->state == WORK_PENDING)
		unlink_work(work);
	while (wq_running == work && !pthread_equal(pthread_self(), wq_thread))
		pthread_cond_wait(&wq_done, &wq_lock);
	pthread_mutex_unlock(&wq_lock);
}

/* ---- events ---- */

struct duet_event {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool set;
};

int duet_event_create(struct duet_event **evp)
{
	struct duet_event *ev = port_calloc(sizeof(*ev));
	pthread_condattr_t a;

	if (!ev)
		return -ENOMEM;
	pthread_mutex_init(&ev->m, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&ev->c, &a);
	pthread_condattr_destroy(&a);
	*evp = ev;
	return 0;
}

void duet_event_destroy(struct duet_event *ev)
{
	if (!ev)
		return;
	pthread_cond_destroy(&ev->c);
	pthread_mutex_destroy(&ev->m);
	free(ev);
}

void duet_event_post(struct duet_event *ev)
{
	pthread_mutex_lock(&ev->m);
	ev->set = true;
	pthread_cond_signal(&ev->c);
	pthread_mutex_unlock(&ev->m);
}

int duet_event_wait(struct duet_event *ev, uint32_t timeout_ms)
{
	struct timespec ts = deadline_after_ms(CLOCK_MONOTONIC, timeout_ms);
	int ret = 0;

	pthread_mutex_lock(&ev->m);
	while (!ev->set && ret == 0)
		ret = pthread_cond_timedwait(&ev->c, &ev->m, &ts);
	if (ev->set) {
		ev->set = false;
		ret = 0;
	}
	pthread_mutex_unlock(&ev->m);
	return ret ? -ETIMEDOUT : 0;
}

int duet_port_random(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len) {
		ssize_t n = getrandom(p, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}
