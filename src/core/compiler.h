/* compiler.h - hints to the compiler, with a plain fallback for others. */
#ifndef DUET_COMPILER_H
#define DUET_COMPILER_H

/*
 * DUET_OUT_OF_LINE keeps a less common path out of line so that the common
 * one stays small: otherwise the compiler saves every register the big path
 * needs on each call.
 *
 * DUET_ALWAYS_INLINE marks a body written once and compiled into each
 * caller with the caller's constants (rpmsg's message path, once per role),
 * inlined even where -Os would not.
 *
 * Only hints; other compilers ignore them.
 */
#if defined(__GNUC__)
#define DUET_OUT_OF_LINE __attribute__((noinline))
#define DUET_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define DUET_OUT_OF_LINE
#define DUET_ALWAYS_INLINE inline
#endif

#endif /* DUET_COMPILER_H */
