/* compiler.h - hints to the compiler, with a plain fallback for others. */
#ifndef DUET_COMPILER_H
#define DUET_COMPILER_H

#include <stdint.h>
#include <string.h> /* DUET_COPY's fallback */

/*
 * DUET_FAST_PATHS: whether the short paths are compiled. The virtqueue's
 * busiest calls (one buffer on a healthy queue in plain memory) have a
 * short path beside the checked body that serves every case; it buys
 * speed with a second copy of the work. A build for size (-Os) leaves it
 * out and the checked body serves every call: the same checks, the same
 * results, less code. Define it to 0 or 1 to choose otherwise.
 *
 * DUET_OUT_OF_LINE keeps a less common path out of line so that the common
 * one stays small: otherwise the compiler saves every register the big path
 * needs on each call.
 *
 * DUET_SHORT_FALLBACK marks the checked body that a short path inlined
 * into other files falls back to (src/virtqueue/vq_short.h): out of line
 * where the short paths are compiled. Where they are not, its one caller
 * is the public call in its own file, and it is inlined there as it was
 * when it was static: its external copy, which nothing calls, is the
 * linker's to drop.
 *
 * DUET_ALWAYS_INLINE marks a body written once and compiled into each
 * caller with the caller's constants (rpmsg's message path, once per role),
 * inlined even where -Os would not.
 *
 * The two hints serve speed; a build for size leaves them to the compiler.
 * Other compilers ignore them.
 *
 * DUET_INLINE marks a body inlined in every build, a build for size too,
 * because -Os chose worse there, in code and in instructions:
 * - what touches ring memory (vq_mem.h): a load or a store and a test of
 *   the queue's accessors. Out of line, the call and its arguments took
 *   more code than the body and cost instructions on every ring access;
 * - the driver's adds and the kick's and the look's index reads
 *   (vq_driver.c, virtqueue.c). Out of line beside the checked body that
 *   is their one caller at -Os, they took 98 B more of the rpmsg driver
 *   role's text and 8 more instructions a Cortex-M4 round trip
 *   (bench/size.sh, bench/cortex-m.sh). The device's short take
 *   (vq_take_short) is not one of them: it has several callers, and
 *   inlined in each it grew the device role by 256 B;
 * - the public calls' bodies in vq_short.h, which in a build for size are
 *   the argument tests and the checked call: left to -Os, the compiler
 *   kept some apart: a Cortex-M4 round trip took 1,983.9 instructions
 *   against 1,967.8 (bench/cortex-m.sh at -Os) and the rpmsg driver role
 *   8,718 B against 8,676 (bench/size.sh). The device's take and return
 *   under them (vq_take, put_used) too: left to -Os with the bodies in
 *   the calls, the device role took 9,783 B against 9,757 and the round
 *   trip 1,979.6 instructions.
 *
 * DUET_PREFETCH(p) asks for the cache line at p ahead of its use, without
 * waiting for it and without faulting: a hint, so it is no access for the
 * program, and nothing where the compiler has no such builtin or the core
 * no cache.
 */
#ifndef DUET_FAST_PATHS
#if defined(__OPTIMIZE_SIZE__)
#define DUET_FAST_PATHS 0
#else
#define DUET_FAST_PATHS 1
#endif
#endif

#if defined(__GNUC__) && DUET_FAST_PATHS
#define DUET_OUT_OF_LINE __attribute__((noinline))
#define DUET_SHORT_FALLBACK __attribute__((noinline))
#define DUET_ALWAYS_INLINE inline __attribute__((always_inline))
#elif defined(__GNUC__)
#define DUET_OUT_OF_LINE
#define DUET_SHORT_FALLBACK inline __attribute__((always_inline))
#define DUET_ALWAYS_INLINE inline
#else
#define DUET_OUT_OF_LINE
#define DUET_SHORT_FALLBACK
#define DUET_ALWAYS_INLINE inline
#endif

#if defined(__GNUC__)
#define DUET_INLINE inline __attribute__((always_inline))
#else
#define DUET_INLINE inline
#endif

/* DUET_COPY(d, s, n): memcpy of a small constant size, as loads and
 * stores even where memcpy is no builtin (-ffreestanding): there each
 * memcpy is a call. */
#if defined(__GNUC__)
#define DUET_COPY(d, s, n) __builtin_memcpy(d, s, n)
#else
#define DUET_COPY(d, s, n) memcpy(d, s, n)
#endif

#if defined(__GNUC__)
#define DUET_PREFETCH(p) __builtin_prefetch(p)
#else
#define DUET_PREFETCH(p) ((void)(p))
#endif

/* The index of the lowest set bit of x, which is not 0. */
static inline unsigned int duet_lowest_bit(uint32_t x)
{
#if defined(__GNUC__)
	return (unsigned int)__builtin_ctz(x);
#else
	unsigned int i = 0;

	while (!(x & 1u)) {
		x >>= 1;
		i++;
	}
	return i;
#endif
}

#endif /* DUET_COMPILER_H */
