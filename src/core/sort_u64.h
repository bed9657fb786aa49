/*
 * sort_u64.h - an in-place heapsort of 64-bit values, ascending: the ping
 * service's percentiles need a sort, and a freestanding build has no
 * qsort. Header-only so that the one user compiles it in and a test can
 * check it against a model (tests/test_sort.c).
 */
#ifndef DUET_SORT_U64_H
#define DUET_SORT_U64_H

#include <stddef.h>
#include <stdint.h>

/* Sift a[i] down the max-heap a[0..n). */
static inline void duet_sift_u64(uint64_t *a, size_t i, size_t n)
{
	for (;;) {
		size_t c = 2 * i + 1;
		uint64_t t;

		if (c >= n)
			return;
		if (c + 1 < n && a[c + 1] > a[c])
			c++;
		if (a[i] >= a[c])
			return;
		t = a[i];
		a[i] = a[c];
		a[c] = t;
		i = c;
	}
}

/* Sort a[0..n) ascending, in place. */
static inline void duet_sort_u64(uint64_t *a, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		duet_sift_u64(a, i, n);
	for (size_t end = n; end-- > 1;) {
		uint64_t t = a[0];

		a[0] = a[end];
		a[end] = t;
		duet_sift_u64(a, 0, end);
	}
}

#endif /* DUET_SORT_U64_H */
