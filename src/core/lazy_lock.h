/*
 * lazy_lock.h - a recursive lock created on first use, for library state
 * that has no init call (the buses, the device lists of drivers).
 */
#ifndef DUET_LAZY_LOCK_H
#define DUET_LAZY_LOCK_H

#include <errno.h>
#include <stdatomic.h>

#include <duet/port.h>

typedef _Atomic(struct duet_mutex *) duet_lazy_lock;

/* Lock, creating the mutex if this is the first use. 0 or -ENOMEM. */
static inline int duet_lazy_lock_take(duet_lazy_lock *l)
{
	struct duet_mutex *m = atomic_load_explicit(l, memory_order_acquire);

	if (!m) {
		struct duet_mutex *fresh;

		if (duet_mutex_create(&fresh) < 0)
			return -ENOMEM;
		if (atomic_compare_exchange_strong(l, &m, fresh))
			m = fresh;
		else
			duet_mutex_destroy(fresh); /* another thread won */
	}
	duet_mutex_lock(m);
	return 0;
}

static inline void duet_lazy_lock_give(duet_lazy_lock *l)
{
	duet_mutex_unlock(atomic_load_explicit(l, memory_order_relaxed));
}

#endif /* DUET_LAZY_LOCK_H */
