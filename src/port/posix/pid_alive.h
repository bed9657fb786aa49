/*
 * pid_alive.h - whether a pid the peer wrote into the shared header names
 * a live process. The pid is the peer's word, so it is checked before it
 * reaches kill(): 0 and anything past INT_MAX (a negative pid_t, which
 * kill() takes for a process group, -1 for every process) name none.
 * Header-only, for link.c and its test.
 */
#ifndef DUET_PID_ALIVE_H
#define DUET_PID_ALIVE_H

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

static inline bool duet_pid_alive(uint32_t pid)
{
	return pid && pid <= (uint32_t)INT_MAX && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

#endif /* DUET_PID_ALIVE_H */
