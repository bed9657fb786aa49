/*
 * The heapsort the ping service's percentiles use (src/core/sort_u64.h),
 * against qsort as the model: every length from 0 to 70 and some larger,
 * random values, runs of equal values, already sorted and reversed input.
 * Each array is a heap block of exactly its length, so AddressSanitizer
 * catches a read or write past it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../src/core/sort_u64.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t next_random(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

enum shape { RANDOM, FEW_VALUES, SORTED, REVERSED, SHAPES };

/* Sort n values of `shape` both ways; they must agree. */
static void check(size_t n, enum shape shape)
{
	uint64_t *a = malloc(n ? n * sizeof(*a) : 1), *model = malloc(n ? n * sizeof(*a) : 1);

	assert_non_null(a);
	assert_non_null(model);
	for (size_t i = 0; i < n; i++) {
		switch (shape) {
		case RANDOM: a[i] = next_random(); break;
		case FEW_VALUES: a[i] = next_random() % 3; break;
		case SORTED: a[i] = i; break;
		default: a[i] = UINT64_MAX - i; break;
		}
	}
	memcpy(model, a, n * sizeof(*a));
	qsort(model, n, sizeof(*model), cmp_u64);
	duet_sort_u64(a, n);
	assert_memory_equal(a, model, n * sizeof(*a));
	free(a);
	free(model);
}

static void test_sort_agrees_with_qsort(void **state)
{
	static const size_t larger[] = { 127, 128, 129, 1000, 4097 };

	(void)state;
	for (int s = 0; s < SHAPES; s++) {
		for (size_t n = 0; n <= 70; n++)
			for (int round = 0; round < 4; round++)
				check(n, (enum shape)s);
		for (size_t i = 0; i < sizeof(larger) / sizeof(larger[0]); i++)
			check(larger[i], (enum shape)s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sort_agrees_with_qsort),
	};

	return cmocka_run_group_tests_name("sort", tests, NULL, NULL);
}
