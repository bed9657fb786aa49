/*
 * string.h for toolchains without a C library. The port links its own
 * memcpy/memset/memcmp/memchr/strncmp/strlen (compilers emit calls to
 * some of them anyway).
 */
#ifndef DUET_FREESTANDING_STRING_H
#define DUET_FREESTANDING_STRING_H

#include <stddef.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
void *memchr(const void *s, int c, size_t n);
int strncmp(const char *a, const char *b, size_t n);
size_t strlen(const char *s);

#endif
