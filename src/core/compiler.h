/* compiler.h - hints to the compiler, with a plain fallback for others. */
#ifndef DUET_COMPILER_H
#define DUET_COMPILER_H

/* Keeps a less common path out of line so that the common one stays
 * small: otherwise the compiler saves every register the big path needs
 * on each call. Only a hint; other compilers ignore it. */
#if defined(__GNUC__)
#define DUET_OUT_OF_LINE __attribute__((noinline))
#else
#define DUET_OUT_OF_LINE
#endif

#endif /* DUET_COMPILER_H */
