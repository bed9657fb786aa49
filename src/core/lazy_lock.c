/*
 * lazy_lock.c - the lock of lazy_lock.h, in one place: inlined, every file
 * that takes one carried its own copy (two in rpmsg, one per bus).
 */
#include "lazy_lock.h"

int duet_lazy_lock_take(duet_lazy_lock *l)
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

void duet_lazy_lock_give(duet_lazy_lock *l)
{
	duet_mutex_unlock(atomic_load_explicit(l, memory_order_relaxed));
}
