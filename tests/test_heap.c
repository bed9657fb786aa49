/*
 * The shared-memory heap (duet/heap.h): what the driver side's buffers
 * come from. Its arguments are checked at each limit; a free of anything
 * it did not hand out changes nothing; and a long random run of allocations
 * and frees, checked against a model of the region, never hands out bytes
 * twice, outside the region or misaligned, and gets every byte back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <duet/heap.h>

#include "../src/port/posix/port_posix.h"

#define GRAN 64u
#define NGRAN 64u
#define SIZE (GRAN * NGRAN)

/* The region, aligned well past any granule used here. */
static _Alignas(4096) uint8_t region[SIZE + 4096];

static void test_create_checks_each_argument(void **state)
{
	struct duet_heap *h;

	(void)state;
	assert_int_equal(duet_heap_create(NULL, region, SIZE, GRAN), -EINVAL);
	assert_int_equal(duet_heap_create(&h, NULL, SIZE, GRAN), -EINVAL);
	assert_int_equal(duet_heap_create(&h, region, SIZE, 4), -EINVAL);   /* below 8 */
	assert_int_equal(duet_heap_create(&h, region, SIZE, 24), -EINVAL);  /* not a power of two */
	assert_int_equal(duet_heap_create(&h, region + 8, SIZE, GRAN), -EINVAL); /* misaligned */
	assert_int_equal(duet_heap_create(&h, region, GRAN - 1, GRAN), -EINVAL); /* under a granule */
	/* A region running past the end of the address space, and one that
	 * ends right at it (only the heap's bookkeeping is touched). */
	assert_int_equal(duet_heap_create(&h, (void *)(UINTPTR_MAX - 4095), 4097, 8), -EINVAL);
	assert_int_equal(duet_heap_create(&h, (void *)(UINTPTR_MAX - 4095), 4096, 8), 0);
	assert_int_equal(duet_heap_available(h), 4096);
	duet_heap_destroy(h);
	assert_int_equal(duet_heap_create(&h, (void *)(UINTPTR_MAX - 4095), 8192, 8), -EINVAL);
	assert_int_equal(duet_heap_create(&h, (void *)(UINTPTR_MAX - 4095), SIZE_MAX, 8), -EINVAL);
	assert_int_equal(duet_heap_available(NULL), 0);
	assert_false(duet_heap_contains(NULL, region, 1));
	/* The limits themselves are fine: granule 8, one granule of region. */
	assert_int_equal(duet_heap_create(&h, region, 8, 8), 0);
	assert_int_equal(duet_heap_available(h), 8);
	assert_ptr_equal(duet_heap_alloc(h, 8, 0), region);
	assert_null(duet_heap_alloc(h, 1, 0));
	duet_heap_destroy(h);
	duet_heap_destroy(NULL);
}

/* Each of create's four allocations (the heap, its two bitmaps, its
 * lock) failing gives -ENOMEM and keeps nothing (LeakSanitizer sees the
 * rest); then it works. */
static void test_create_without_memory(void **state)
{
	struct duet_heap *h = NULL;

	(void)state;
	for (uint32_t k = 0; k < 4; k++) {
		duet_port_fail_allocs(k, 1);
		assert_int_equal(duet_heap_create(&h, region, SIZE, GRAN), -ENOMEM);
		assert_null(h);
		assert_int_equal(duet_port_allocs_left_to_fail(), 0);
	}
	duet_port_fail_allocs(0, 0);
	assert_int_equal(duet_heap_create(&h, region, SIZE, GRAN), 0);
	assert_int_equal(duet_heap_available(h), SIZE);
	duet_heap_destroy(h);
}

static void test_alloc_fits_exactly_and_no_more(void **state)
{
	struct duet_heap *h;
	void *p;

	(void)state;
	assert_int_equal(duet_heap_create(&h, region, SIZE, GRAN), 0);
	assert_null(duet_heap_alloc(h, SIZE + 1, 0));
	assert_null(duet_heap_alloc(h, 0, 0));
	assert_null(duet_heap_alloc(h, 8, 3)); /* alignment not a power of two */
	assert_null(duet_heap_alloc(NULL, 8, 0));
	p = duet_heap_alloc(h, SIZE, 0); /* the whole region */
	assert_ptr_equal(p, region);
	assert_int_equal(duet_heap_available(h), 0);
	assert_null(duet_heap_alloc(h, 1, 0));
	assert_int_equal(duet_heap_free(h, p), 0);
	assert_int_equal(duet_heap_available(h), SIZE);
	/* A size rounds up to whole granules. */
	p = duet_heap_alloc(h, GRAN + 1, 0);
	assert_non_null(p);
	assert_int_equal(duet_heap_available(h), SIZE - 2 * GRAN);
	assert_int_equal(duet_heap_free(h, p), 0);
	/* An alignment above the granule skips to an aligned run. */
	p = duet_heap_alloc(h, GRAN, 0);
	assert_ptr_equal(p, region);
	{
		uint8_t *q = duet_heap_alloc(h, GRAN, 4 * GRAN);

		assert_ptr_equal(q, region + 4 * GRAN);
		assert_int_equal(duet_heap_free(h, q), 0);
	}
	assert_int_equal(duet_heap_free(h, p), 0);
	duet_heap_destroy(h);
}

/* A free of a pointer the heap did not hand out, or no longer holds, is
 * refused and changes nothing. */
static void test_free_refuses_what_it_did_not_hand_out(void **state)
{
	struct duet_heap *h;
	uint8_t *a, *b;

	(void)state;
	assert_int_equal(duet_heap_create(&h, region, SIZE, GRAN), 0);
	a = duet_heap_alloc(h, 3 * GRAN, 0);
	b = duet_heap_alloc(h, GRAN, 0);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(duet_heap_available(h), SIZE - 4 * GRAN);
	assert_int_equal(duet_heap_free(h, NULL), -EINVAL);
	assert_int_equal(duet_heap_free(NULL, a), -EINVAL);
	assert_int_equal(duet_heap_free(h, (void *)((uintptr_t)region - GRAN)), -EINVAL); /* before the region */
	assert_int_equal(duet_heap_free(h, region + SIZE), -EINVAL);  /* just past it */
	assert_int_equal(duet_heap_free(h, a + 8), -EINVAL);         /* inside, misaligned */
	assert_int_equal(duet_heap_free(h, a + GRAN), -EINVAL);      /* inside, not a start */
	assert_int_equal(duet_heap_free(h, region + 10 * GRAN), -EINVAL); /* never handed out */
	assert_int_equal(duet_heap_available(h), SIZE - 4 * GRAN);
	/* Freeing a frees its three granules, not b's. */
	assert_int_equal(duet_heap_free(h, a), 0);
	assert_int_equal(duet_heap_available(h), SIZE - GRAN);
	assert_int_equal(duet_heap_free(h, a), -EINVAL); /* twice */
	assert_int_equal(duet_heap_available(h), SIZE - GRAN);
	/* The hole a left takes a run of its size, not one larger. */
	assert_ptr_equal(duet_heap_alloc(h, 3 * GRAN, 0), a);
	assert_ptr_not_equal(duet_heap_alloc(h, GRAN, 0), a);
	duet_heap_destroy(h);
}

static void test_contains_is_exact(void **state)
{
	struct duet_heap *h;

	(void)state;
	assert_int_equal(duet_heap_create(&h, region, SIZE, GRAN), 0);
	assert_true(duet_heap_contains(h, region, SIZE));
	assert_true(duet_heap_contains(h, region + SIZE - 1, 1));
	assert_true(duet_heap_contains(h, region + SIZE, 0));
	assert_false(duet_heap_contains(h, region + SIZE - 1, 2));
	assert_false(duet_heap_contains(h, region + SIZE + 1, 0));
	assert_false(duet_heap_contains(h, (void *)((uintptr_t)region - 1), 1));
	assert_false(duet_heap_contains(h, region, SIZE + 1));
	assert_false(duet_heap_contains(h, region + 1, SIZE_MAX)); /* would wrap */
	duet_heap_destroy(h);
}

/* Random allocations and frees against a map of which granule belongs to
 * which live block: no granule is handed out twice, every block lies in
 * the region at its alignment, the free count agrees, and every byte
 * comes back. */
static void test_random_run_against_a_model(void **state)
{
	struct duet_heap *h;
	int owner[NGRAN];
	uint8_t *live[NGRAN];
	size_t nlive = 0, used = 0;
	uint64_t x = 0x9e3779b97f4a7c15ull;

	(void)state;
	assert_int_equal(duet_heap_create(&h, region, SIZE, GRAN), 0);
	memset(owner, 0, sizeof(owner));
	for (int round = 0; round < 20000; round++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		if (nlive && (x & 3) == 0) {
			size_t k = (size_t)(x >> 8) % nlive;
			size_t g = (size_t)(live[k] - region) / GRAN, n = 0;

			assert_int_equal(duet_heap_free(h, live[k]), 0);
			for (size_t i = g; i < NGRAN && owner[i] == (int)g + 1; i++, n++)
				owner[i] = 0;
			used -= n;
			live[k] = live[--nlive];
		} else {
			size_t size = 1 + (size_t)(x >> 16) % (6 * GRAN);
			size_t align = (size_t)GRAN << ((x >> 40) % 3);
			uint8_t *p = duet_heap_alloc(h, size, (x >> 44) & 1 ? align : 0);
			size_t n = (size + GRAN - 1) / GRAN;

			if (!p)
				continue;
			assert_true(p >= region && p + n * GRAN <= region + SIZE);
			if ((x >> 44) & 1)
				assert_int_equal((uintptr_t)p % align, 0);
			for (size_t i = (size_t)(p - region) / GRAN, k = 0; k < n; i++, k++) {
				assert_int_equal(owner[i], 0);
				owner[i] = (int)((size_t)(p - region) / GRAN) + 1;
			}
			used += n;
			live[nlive++] = p;
		}
		assert_int_equal(duet_heap_available(h), SIZE - used * GRAN);
	}
	while (nlive)
		assert_int_equal(duet_heap_free(h, live[--nlive]), 0);
	assert_int_equal(duet_heap_available(h), SIZE);
	assert_ptr_equal(duet_heap_alloc(h, SIZE, 0), region);
	duet_heap_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_checks_each_argument),
		cmocka_unit_test(test_create_without_memory),
		cmocka_unit_test(test_alloc_fits_exactly_and_no_more),
		cmocka_unit_test(test_free_refuses_what_it_did_not_hand_out),
		cmocka_unit_test(test_contains_is_exact),
		cmocka_unit_test(test_random_run_against_a_model),
	};

	return cmocka_run_group_tests_name("shared-memory heap", tests, NULL, NULL);
}
