/*
 * board_linux.c - the rig's board as a Linux program, for running the
 * Cortex-M test on another architecture under QEMU's user mode
 * (tests/cortex-m/run-big-endian.sh): the port's clock from the monotonic
 * clock, output unbuffered so a hang still shows the last part passed.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <time.h>

#include "board.h"

uint64_t board_clock_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t board_clock_ms(void)
{
	return board_clock_ns() / 1000000u;
}

__attribute__((constructor)) static void unbuffered_output(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
}
