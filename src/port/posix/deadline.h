/* deadline.h - absolute times for pthread_cond_timedwait, one body for the
 * POSIX port. */
#ifndef DUET_POSIX_DEADLINE_H
#define DUET_POSIX_DEADLINE_H

#include <stdint.h>
#include <time.h>

/* `ms` from now on `clock` (the clock the condition variable waits on). */
static inline struct timespec deadline_after_ms(clockid_t clock, uint64_t ms)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	ts.tv_sec += (time_t)(ms / 1000u);
	ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

#endif /* DUET_POSIX_DEADLINE_H */
