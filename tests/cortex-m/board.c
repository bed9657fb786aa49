/*
 * board.c - QEMU's mps2-an386 for the Cortex-M test: the vector table, a
 * 1 ms SysTick for the port's clock, output and exit through semihosting.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "board.h"
#include "systick_clock.h"

#define SYSCLK_HZ 25000000u
#define TICKS_PER_MS (SYSCLK_HZ / 1000u)

#define SYST_CSR (*(volatile uint32_t *)0xe000e010u)
#define SYST_RVR (*(volatile uint32_t *)0xe000e014u)
#define SYST_CVR (*(volatile uint32_t *)0xe000e018u)
#define SCB_ICSR (*(volatile uint32_t *)0xe000ed04u)
#define ICSR_PENDSTSET (1u << 26) /* SysTick's interrupt pending */

extern uint32_t __bss_start__[], __bss_end__[], __stack_top[];
extern void initialise_monitor_handles(void);
int main(void);

static volatile uint32_t ms_ticks;

static void systick_handler(void)
{
	ms_ticks++;
}

/* A fault (an unaligned doubleword access, say, which the M4 never
 * allows) ends the run with a status of its own: 128 + the exception. */
static void fault_handler(void)
{
	uint32_t ipsr;

	__asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
	_exit(128 + (int)(ipsr & 0x1ff));
}

void reset_handler(void);

__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
	(void (*)(void))(uintptr_t)__stack_top,
	reset_handler,
	fault_handler, /* NMI */
	fault_handler, /* HardFault */
	fault_handler, /* MemManage */
	fault_handler, /* BusFault */
	fault_handler, /* UsageFault */
	0, 0, 0, 0,
	fault_handler, /* SVCall */
	0, 0,
	fault_handler, /* PendSV */
	systick_handler,
};

void reset_handler(void)
{
	memset(__bss_start__, 0, (size_t)((uintptr_t)__bss_end__ - (uintptr_t)__bss_start__));
	SYST_RVR = TICKS_PER_MS - 1;
	SYST_CVR = 0;
	SYST_CSR = 7; /* processor clock, interrupt, on */
	initialise_monitor_handles();
	exit(main());
}

uint64_t board_clock_ns(void)
{
	static uint64_t last; /* one caller at a time: the main loop */
	uint32_t ms, left, pending;

	do {
		ms = ms_ticks;
		left = SYST_CVR;
		pending = SCB_ICSR & ICSR_PENDSTSET;
	} while (ms != ms_ticks);
	return systick_clock_ns(ms, left, pending != 0, TICKS_PER_MS, 1000000000u / SYSCLK_HZ,
				&last);
}

uint64_t board_clock_ms(void)
{
	return ms_ticks;
}
