/*
 * duet/doorbell.h - a doorbell in shared memory with event-index semantics.
 *
 * The notifier sets the pending bit of a notify id, then moves `seq` on; the
 * waiter publishes in `armed` the seq value it will sleep on ("wake me when
 * seq leaves this value"). A ring for an id already pending merges into the
 * one that set it. The notifier makes the wake-up call only when it
 * moved seq from exactly that value, so a stream of notifications costs one
 * system call per sleep, not one per notification, and none is lost: each
 * side publishes, fences, then reads the other's word (the Dekker pattern).
 * A simple "waiting" flag loses wake-ups under streaming; this does not.
 *
 * A NULL handle is refused by every call: it returns -EINVAL, NULL, false
 * or 0, and does nothing.
 */
#ifndef DUET_DOORBELL_H
#define DUET_DOORBELL_H

#include <stdbool.h>
#include <stdint.h>

#include <duet/api.h>
#include <duet/atomic.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DUET_DOORBELL_IDS 128u

struct duet_doorbell {
	DUET_ATOMIC(uint32_t) seq;   /* moves once per notification; the futex word */
	DUET_ATOMIC(uint32_t) armed; /* the waiter sleeps while seq == armed */
	DUET_ATOMIC(uint32_t) pending[DUET_DOORBELL_IDS / 32];
	DUET_ATOMIC(uint32_t) wakes; /* wake-up calls made (statistics) */
	/* Set by the doorbell's owner while it polls its rings itself: its
	 * peer need not ring for them. Read by the peer only (a hint from
	 * the owner about the owner; see duet_link_poll). */
	DUET_ATOMIC(uint32_t) polled;
	uint32_t pad[8];        /* one 64-byte line per doorbell */
};

/*
 * Ring: mark `id` pending and wake the waiter if it sleeps. A ring for an
 * id still pending since an earlier one (the waiter has not taken it yet)
 * merges into it: nothing moves, and false is returned; the waiter takes
 * the id once and sees all that was published before either ring.
 */
DUET_API bool duet_doorbell_ring(struct duet_doorbell *bell, uint32_t id);

/*
 * Ring `id` and make the wake-up call whatever the waiter published: for
 * the doorbell's owner, after its peer died. A ringer killed between its
 * steps can leave the waiter asleep for good: killed after it moved seq
 * and before its call, the waiter sleeps on a value seq has left, and no
 * later ring calls (each moved seq from a value the waiter does not sleep
 * on); killed after it set the pending bit and before it moved seq, every
 * later ring of that id merges into it and moves nothing. This moves seq
 * and calls, so the waiter wakes and takes every pending id. It costs a
 * system call each time: not for the message path. Returns false only for
 * a NULL bell.
 */
DUET_API bool duet_doorbell_wake(struct duet_doorbell *bell, uint32_t id);

/*
 * Take all pending ids into ids[] (up to DUET_DOORBELL_IDS), in ascending
 * order; returns how many.
 */
DUET_API unsigned int duet_doorbell_take(struct duet_doorbell *bell, uint32_t *ids);

/* A timeout that never ends: the wait blocks without a timer. */
#define DUET_DOORBELL_FOREVER UINT32_MAX

/*
 * Wait until seq leaves `seen` (the value read before the last take), for
 * at most timeout_ms (DUET_DOORBELL_FOREVER: no limit, and no timer armed,
 * which makes each sleep cheaper): spin for spin_us first, then block.
 * Returns true when it moved, false on timeout.
 */
DUET_API bool duet_doorbell_wait(struct duet_doorbell *bell, uint32_t seen, uint32_t spin_us,
				 uint32_t timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* DUET_DOORBELL_H */
