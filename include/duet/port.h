/*
 * duet/port.h - what the core needs from the platform.
 *
 * The core calls only these functions for anything an OS provides. A port
 * implements them once (src/port/posix for Linux and other POSIX hosts); an
 * RTOS or bare-metal port maps them to its own primitives.
 */
#ifndef DUET_PORT_H
#define DUET_PORT_H

#include <stddef.h>
#include <stdint.h>

#include <duet/api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Zeroed memory for library objects; NULL when none is left. */
DUET_API void *duet_port_alloc(size_t size);
DUET_API void duet_port_free(void *p);

/*
 * A recursive mutex: the thread holding it may lock it again (a probe that
 * registers another device runs under the bus lock). Created at run time so
 * the port chooses its storage.
 */
struct duet_mutex;
DUET_API int duet_mutex_create(struct duet_mutex **m);
DUET_API void duet_mutex_destroy(struct duet_mutex *m);
DUET_API void duet_mutex_lock(struct duet_mutex *m);
DUET_API void duet_mutex_unlock(struct duet_mutex *m);

/* Monotonic milliseconds, and nanoseconds. */
DUET_API uint64_t duet_clock_ms(void);
DUET_API uint64_t duet_clock_ns(void);

/*
 * Deferred work: `fn` runs once in the port's work context after at least
 * `delay_ms`. Queueing a pending item again moves its deadline. The struct
 * belongs to the caller; the port keeps its bookkeeping in it.
 */
struct duet_work {
	void (*fn)(struct duet_work *work);
	/* port bookkeeping */
	uint64_t due_ms;
	struct duet_work *next;
	int state;
};

/* Schedule `work` (work->fn set) to run after delay_ms. Returns 0 or -errno. */
DUET_API int duet_work_queue(struct duet_work *work, uint32_t delay_ms);

/*
 * Unschedule `work`. When it is running, wait until it returns, unless the
 * caller is that work itself. Afterwards it runs only if queued again.
 */
DUET_API void duet_work_cancel(struct duet_work *work);

/*
 * An event a thread waits for: post() wakes one waiter, or the next one if
 * none waits yet (a binary semaphore). wait() returns 0 or -ETIMEDOUT.
 */
struct duet_event;
DUET_API int duet_event_create(struct duet_event **ev);
DUET_API void duet_event_destroy(struct duet_event *ev);
DUET_API void duet_event_post(struct duet_event *ev);
DUET_API int duet_event_wait(struct duet_event *ev, uint32_t timeout_ms);

/* Fill buf with `len` bytes of entropy. Returns 0 or -errno. */
DUET_API int duet_port_random(void *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* DUET_PORT_H */
