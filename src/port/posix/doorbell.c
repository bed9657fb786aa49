/*
 * doorbell.c - the doorbell on Linux futexes (shared, not private: the
 * word lives in memory two processes map).
 */
#define _GNU_SOURCE
#include <duet/doorbell.h>

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <duet/port.h>

static void futex_wake(_Atomic uint32_t *word)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* Sleep while *word == val, for at most timeout_ms unless that is
 * DUET_DOORBELL_FOREVER: then no timer, which the kernel would arm and
 * cancel on every sleep. */
static void futex_wait(_Atomic uint32_t *word, uint32_t val, uint32_t timeout_ms)
{
	struct timespec ts = { (time_t)(timeout_ms / 1000u), (long)(timeout_ms % 1000u) * 1000000L };

	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, val,
		timeout_ms == DUET_DOORBELL_FOREVER ? NULL : &ts, NULL, 0);
}

bool duet_doorbell_ring(struct duet_doorbell *bell, uint32_t id)
{
	uint32_t old, bit;

	if (!bell)
		return false;
	id %= DUET_DOORBELL_IDS;
	bit = 1u << (id % 32);
	/* Still pending: the ring that set it moved seq after the waiter read
	 * its `seen`, so the waiter takes the id again and, by this RMW
	 * chain, sees what was published before this ring. */
	if (atomic_fetch_or(&bell->pending[id / 32], bit) & bit)
		return false;
	old = atomic_fetch_add(&bell->seq, 1);
	/* seq's move must be visible before we look at armed (seq_cst RMW
	 * and load order it); the waiter does the mirror image. */
	if (atomic_load(&bell->armed) == old) {
		atomic_fetch_add_explicit(&bell->wakes, 1, memory_order_relaxed);
		futex_wake(&bell->seq);
	}
	return true;
}

bool duet_doorbell_wake(struct duet_doorbell *bell, uint32_t id)
{
	if (!bell)
		return false;
	id %= DUET_DOORBELL_IDS;
	atomic_fetch_or(&bell->pending[id / 32], 1u << (id % 32));
	/* Moved even when the bit was set: a bit a dead ringer set moved
	 * nothing, and the waiter leaves its wait only once seq moves. */
	atomic_fetch_add(&bell->seq, 1);
	atomic_fetch_add_explicit(&bell->wakes, 1, memory_order_relaxed);
	futex_wake(&bell->seq);
	return true;
}

unsigned int duet_doorbell_take(struct duet_doorbell *bell, uint32_t *ids)
{
	unsigned int n = 0;

	if (!bell || !ids)
		return 0;
	for (uint32_t w = 0; w < DUET_DOORBELL_IDS / 32; w++) {
		uint32_t bits;

		/* An empty word is not exchanged: a read-modify-write fewer
		 * each, and a bit set after this look moved seq after the
		 * waiter's `seen`, so its next wait returns at once. */
		if (!atomic_load_explicit(&bell->pending[w], memory_order_relaxed))
			continue;
		bits = atomic_exchange(&bell->pending[w], 0);
		/* Lowest set bit first: one step per id, not per bit. */
		for (; bits; bits &= bits - 1u)
			ids[n++] = w * 32 + (uint32_t)__builtin_ctz(bits);
	}
	return n;
}

bool duet_doorbell_wait(struct duet_doorbell *bell, uint32_t seen, uint32_t spin_us,
			uint32_t timeout_ms)
{
	uint64_t end;

	if (!bell)
		return false;
	/* Spin unarmed: a ringer makes no system call for a waiter that is
	 * awake anyway. */
	if (spin_us) {
		struct timespec t0, t;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		do {
			if (atomic_load_explicit(&bell->seq, memory_order_acquire) != seen)
				return true;
			clock_gettime(CLOCK_MONOTONIC, &t);
		} while ((uint64_t)(t.tv_sec - t0.tv_sec) * 1000000u +
				 (uint64_t)((t.tv_nsec - t0.tv_nsec) / 1000) < spin_us);
	}
	atomic_store(&bell->armed, seen);
	/* Published before we look again: a ring after this sees armed. */
	if (atomic_load(&bell->seq) != seen)
		return true;
	if (timeout_ms == DUET_DOORBELL_FOREVER) {
		while (atomic_load(&bell->seq) == seen)
			futex_wait(&bell->seq, seen, DUET_DOORBELL_FOREVER);
		return true;
	}
	/* In nanoseconds, each sleep rounded up to a millisecond: a
	 * millisecond clock let a wait end up to 1 ms short of timeout_ms
	 * (its start rounded down), which test_idle_waiter_blocks caught. */
	end = duet_clock_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		uint64_t now = duet_clock_ns();

		if (atomic_load(&bell->seq) != seen)
			return true;
		if (now >= end)
			return false;
		futex_wait(&bell->seq, seen, (uint32_t)((end - now + 999999u) / 1000000u));
	}
}
