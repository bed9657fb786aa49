/*
 * board_linux.c - the rig's board as a Linux program, for running the
 * Cortex-M test on another architecture under QEMU's user mode
 * (tests/cortex-m/run-linux.sh). Its clock moves 1 us each time it is
 * read: a run is then the same step by step on every core, waits and
 * timeouts included, so two runs' regions can be compared after every part
 * (the rig has one thread, and nothing else waits on this clock). Output
 * is unbuffered, so a hang still shows the last part passed.
 */
#include <stdio.h>

#include "board.h"

uint64_t board_clock_ns(void)
{
	static uint64_t now;

	return now += 1000u;
}

uint64_t board_clock_ms(void)
{
	return board_clock_ns() / 1000000u;
}

__attribute__((constructor)) static void unbuffered_output(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
}
