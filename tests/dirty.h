/*
 * dirty.h - memory as a board's RAM is at boot: it held anything. A pattern
 * no field takes by chance, and, under MemorySanitizer, marked never
 * written, so any read of a byte before something wrote it is reported.
 * For the tests: the virtqueue harness, rptun in one process, the
 * Cortex-M rig.
 */
#ifndef DUET_TEST_DIRTY_H
#define DUET_TEST_DIRTY_H

#include <stddef.h>
#include <string.h>

#if defined(__has_feature)
#if __has_feature(memory_sanitizer)
#include <sanitizer/msan_interface.h>
#define DIRTY_MSAN 1
#endif
#endif

static inline void dirty(void *p, size_t n)
{
	memset(p, 0xa5, n);
#ifdef DIRTY_MSAN
	__msan_poison(p, n);
#endif
}

#endif
