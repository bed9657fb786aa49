/*
 * port_bare.h - the port contract for one core with no OS: a single
 * thread (the main loop, plus interrupts that only set flags), memory
 * from the C library's calloc, time from a counter the board supplies.
 *
 * What the board gives the port, at start (duet_bare_init), and what the
 * main loop owes it: call duet_bare_run_work() on every turn, beside
 * duet_rptun_notified() / duet_rptun_poll() and duet_rptun_check_peer().
 *
 * A wait (duet_event_wait: a blocking rpmsg send, virtio_rng_read) has no
 * other thread to wake it, so it calls the board's idle function until it
 * is posted or times out: that function runs one turn of the main loop.
 * Waiting is then only for the main loop's own code, never for a callback
 * (an endpoint callback sends with rpmsg_trysend), since the turn it runs
 * would call callbacks inside a callback.
 */
#ifndef DUET_PORT_BARE_H
#define DUET_PORT_BARE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct duet_bare_board {
	/* Monotonic nanoseconds (a free-running timer, scaled). Required. */
	uint64_t (*clock_ns)(void);
	/* Monotonic milliseconds (a tick count), or NULL: clock_ns / 10^6,
	 * which on a 32-bit core is a 64-bit division, a library call of some
	 * hundred instructions, at every look at the work queue. */
	uint64_t (*clock_ms)(void);
	/* Entropy for duet_port_random (vhost-rng only); NULL: -ENOTSUP. */
	int (*random)(void *buf, size_t len);
	/* One turn of the main loop, for a wait; NULL: a wait only watches
	 * the clock (an interrupt may still post). */
	void (*idle)(void *arg);
	void *idle_arg;
	/* A bug of the caller's (a mutex unlocked more than locked): report
	 * it and stop. NULL: the port spins forever. */
	void (*fatal)(const char *why);
};

/* Use `board` (copied) from now on. Returns 0, or -EINVAL without
 * clock_ns. */
int duet_bare_init(const struct duet_bare_board *board);

/* Run every queued work item whose time has come (the vhost bus's
 * deferred probe); returns how many ran. */
int duet_bare_run_work(void);

#ifdef __cplusplus
}
#endif

#endif /* DUET_PORT_BARE_H */
