/*
 * port_bare.c - the port contract for one core with no OS (port_bare.h).
 *
 * One thread runs everything, so a mutex only counts its holder's depth
 * (catching an unlock too many), and work runs from the main loop. Events
 * may be posted from an interrupt: their flag is atomic.
 */
#include <duet/port.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "port_bare.h"

static struct duet_bare_board board;

int duet_bare_init(const struct duet_bare_board *b)
{
	if (!b || !b->clock_ns)
		return -EINVAL;
	board = *b;
	return 0;
}

static void fatal(const char *why)
{
	if (board.fatal)
		board.fatal(why);
	for (;;)
		;
}

void *duet_port_alloc(size_t size)
{
	return calloc(1, size ? size : 1);
}

void duet_port_free(void *p)
{
	free(p);
}

uint64_t duet_clock_ns(void)
{
	return board.clock_ns();
}

uint64_t duet_clock_ms(void)
{
	return board.clock_ms ? board.clock_ms() : board.clock_ns() / 1000000u;
}

int duet_port_random(void *buf, size_t len)
{
	return board.random ? board.random(buf, len) : -ENOTSUP;
}

/* ---- mutex: one thread, so only the depth ---- */

struct duet_mutex {
	unsigned int depth;
};

int duet_mutex_create(struct duet_mutex **m)
{
	*m = duet_port_alloc(sizeof(**m));
	return *m ? 0 : -ENOMEM;
}

void duet_mutex_destroy(struct duet_mutex *m)
{
	duet_port_free(m);
}

void duet_mutex_lock(struct duet_mutex *m)
{
	m->depth++;
}

void duet_mutex_unlock(struct duet_mutex *m)
{
	if (!m->depth)
		fatal("duet: mutex unlocked while not held");
	m->depth--;
}

/* ---- events: a flag, and the board's idle turn while waiting ---- */

struct duet_event {
	/* A word, not a bool: a byte-wide exchange is a library call on
	 * some cores (RISC-V, gcc 12), which a bare-metal image may lack. */
	atomic_uint posted;
};

int duet_event_create(struct duet_event **ev)
{
	*ev = duet_port_alloc(sizeof(**ev));
	return *ev ? 0 : -ENOMEM;
}

void duet_event_destroy(struct duet_event *ev)
{
	duet_port_free(ev);
}

void duet_event_post(struct duet_event *ev)
{
	atomic_store(&ev->posted, 1u);
}

int duet_event_wait(struct duet_event *ev, uint32_t timeout_ms)
{
	uint64_t end = duet_clock_ms() + timeout_ms;

	for (;;) {
		if (atomic_exchange(&ev->posted, 0u))
			return 0;
		if (duet_clock_ms() >= end)
			return -ETIMEDOUT;
		if (board.idle)
			board.idle(board.idle_arg);
	}
}

/* ---- deferred work: a list the main loop runs ---- */

/* WORK_LATER: queued while duet_bare_run_work runs, for its next call,
 * so that an item queueing itself again at once cannot keep it busy. */
enum { WORK_IDLE, WORK_QUEUED, WORK_RUNNING, WORK_LATER };

static struct duet_work *queued;
static bool running_work;

static void unlink_work(struct duet_work *w)
{
	for (struct duet_work **p = &queued; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			w->next = NULL;
			return;
		}
}

int duet_work_queue(struct duet_work *w, uint32_t delay_ms)
{
	if (!w || !w->fn)
		return -EINVAL;
	if (w->state == WORK_QUEUED || w->state == WORK_LATER)
		unlink_work(w);
	w->due_ms = duet_clock_ms() + delay_ms;
	w->next = queued;
	queued = w;
	w->state = running_work ? WORK_LATER : WORK_QUEUED;
	return 0;
}

/* One thread: a running item can only be cancelled from inside itself,
 * which needs no wait. */
void duet_work_cancel(struct duet_work *w)
{
	if (w && (w->state == WORK_QUEUED || w->state == WORK_LATER)) {
		unlink_work(w);
		w->state = WORK_IDLE;
	}
}

int duet_bare_run_work(void)
{
	int ran = 0;
	bool again = true;

	/* Not inside an item (one that waits turns the loop through the
	 * idle hook): the items run one at a time. */
	if (!queued || running_work)
		return 0; /* most turns of a loop: not even a look at the clock */
	/* An item may queue or cancel others: look from the start after each. */
	running_work = true;
	while (again) {
		uint64_t now = duet_clock_ms();

		again = false;
		for (struct duet_work *w = queued; w; w = w->next) {
			if (w->state != WORK_QUEUED || w->due_ms > now)
				continue;
			unlink_work(w);
			w->state = WORK_RUNNING;
			w->fn(w);
			if (w->state == WORK_RUNNING)
				w->state = WORK_IDLE;
			ran++;
			again = true;
			break;
		}
	}
	running_work = false;
	for (struct duet_work *w = queued; w; w = w->next)
		w->state = WORK_QUEUED;
	return ran;
}
