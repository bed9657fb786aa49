/* board.h - what board.c gives the test: the clock the port reads. */
#ifndef BOARD_H
#define BOARD_H

#include <stdint.h>

/* Nanoseconds since reset, from the 1 ms SysTick and its counter. */
uint64_t board_clock_ns(void);

/* Milliseconds since reset: the SysTick's count. */
uint64_t board_clock_ms(void);

#endif
