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
int duet_lazy_lock_take(duet_lazy_lock *l);

/* Unlock what duet_lazy_lock_take locked. */
void duet_lazy_lock_give(duet_lazy_lock *l);

#endif /* DUET_LAZY_LOCK_H */
