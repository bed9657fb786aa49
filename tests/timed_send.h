/*
 * timed_send.h - for the rpmsg suites: a send on its own thread, timed,
 * for tests of what wakes a sender asleep for a buffer.
 */
#ifndef TESTS_TIMED_SEND_H
#define TESTS_TIMED_SEND_H

#include <stdint.h>

#include <duet/port.h>
#include <duet/rpmsg.h>

struct timed_send {
	struct rpmsg_endpoint *ept; /* set before the thread starts */
	int ret;                    /* what rpmsg_send returned */
	uint64_t ms;                /* how long it took */
};

/* A pthread start routine: one rpmsg_send of 2 bytes on arg's endpoint. */
static inline void *timed_send(void *arg)
{
	struct timed_send *ts = arg;
	uint64_t t0 = duet_clock_ms();

	ts->ret = rpmsg_send(ts->ept, "t", 2);
	ts->ms = duet_clock_ms() - t0;
	return NULL;
}

#endif /* TESTS_TIMED_SEND_H */
