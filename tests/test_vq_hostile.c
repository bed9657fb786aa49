/*
 * Hostile-peer suite: one test per validation rule of DESIGN.md section 4.
 * Each corrupts the ring in one specific way and asserts the exact fault and
 * errno, that the queue is broken and counted, and that nothing outside the
 * region was touched (the ring sits between PROT_NONE guard pages: a stray
 * access would kill the test).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vq_harness.h"
#include "../src/virtqueue/vq_internal.h" /* duet_vq_poll_guess */

#define INDIRECT (1ull << VIRTIO_RING_F_INDIRECT_DESC)

static int setup_dev(void **state)
{
	struct harness *h = malloc(sizeof(*h));

	harness_init(h, 8, INDIRECT, 0, 4096, 2); /* device role only */
	*state = h;
	return 0;
}

static int setup_drv(void **state)
{
	struct harness *h = malloc(sizeof(*h));

	harness_init(h, 8, 0, 0, 4096, 1); /* driver role only */
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	harness_fini(*state);
	free(*state);
	return 0;
}

/* Take one chain and expect the fault; then check it is sticky and counted. */
static void expect_dev_fault(struct harness *h, enum virtqueue_fault fault, int err)
{
	struct virtqueue_buf vb[16];
	struct virtqueue_state st;
	size_t cnt;

	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 16, &cnt), err);
	assert_int_equal(virtqueue_get_fault(h->dev), fault);
	assert_true(virtqueue_is_broken(h->dev));
	assert_int_equal(h->faults, 1);
	assert_int_equal(h->last_fault, fault);
	assert_int_equal(h->last_err, err);
	virtqueue_get_state(h->dev, &st);
	assert_int_equal(st.error, err);
	assert_int_equal(st.stats.faults, 1);
	/* Broken means broken: not trusted again. */
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 16, &cnt), -EIO);
	assert_null(virtqueue_get_available_buffer(h->dev, &(uint16_t){ 0 }, NULL));
}

static uint64_t buf_da(struct harness *h, size_t off)
{
	return harness_da(h, h->bufs + off);
}

static void test_head_out_of_range(void **state)
{
	struct harness *h = *state;

	raw_avail_push(h, 8);
	expect_dev_fault(h, VIRTQUEUE_FAULT_HEAD_RANGE, -EINVAL);
}

static void test_head_out_of_range_via_get_available_buffer(void **state)
{
	struct harness *h = *state;

	raw_avail_push(h, 0xffff);
	assert_null(virtqueue_get_available_buffer(h->dev, &(uint16_t){ 0 }, NULL));
	assert_int_equal(virtqueue_get_fault(h->dev), VIRTQUEUE_FAULT_HEAD_RANGE);
}

static void test_next_out_of_range(void **state)
{
	struct harness *h = *state;

	raw_desc(h, 0, buf_da(h, 0), 8, VRING_DESC_F_NEXT, 8);
	raw_avail_push(h, 0);
	expect_dev_fault(h, VIRTQUEUE_FAULT_NEXT_RANGE, -EINVAL);
}

/* A chain's fault met through virtqueue_get_available_buffer (which
 * takes a chain whole, returning its first buffer): NULL, and broken. */
static void test_chain_loop_via_get_available_buffer(void **state)
{
	struct harness *h = *state;

	raw_desc(h, 0, buf_da(h, 0), 16, VRING_DESC_F_NEXT, 1);
	raw_desc(h, 1, buf_da(h, 64), 16, VRING_DESC_F_NEXT, 0);
	raw_avail_push(h, 0);
	assert_null(virtqueue_get_available_buffer(h->dev, &(uint16_t){ 0 }, NULL));
	assert_int_equal(virtqueue_get_fault(h->dev), VIRTQUEUE_FAULT_LOOP);
	assert_true(virtqueue_is_broken(h->dev));
}

static void test_chain_loop(void **state)
{
	struct harness *h = *state;

	raw_desc(h, 0, buf_da(h, 0), 8, VRING_DESC_F_NEXT, 1);
	raw_desc(h, 1, buf_da(h, 8), 8, VRING_DESC_F_NEXT, 2);
	raw_desc(h, 2, buf_da(h, 16), 8, VRING_DESC_F_NEXT, 0);
	raw_avail_push(h, 0);
	expect_dev_fault(h, VIRTQUEUE_FAULT_LOOP, -ELOOP);
}

static void test_self_loop(void **state)
{
	struct harness *h = *state;

	raw_desc(h, 3, buf_da(h, 0), 8, VRING_DESC_F_NEXT, 3);
	raw_avail_push(h, 3);
	expect_dev_fault(h, VIRTQUEUE_FAULT_LOOP, -ELOOP);
}

static void test_longest_legal_chain_is_accepted(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf vb[8];
	size_t cnt;
	uint16_t i;

	/* num descriptors chained once each: the bound is exact, not off by one. */
	for (i = 0; i < 8; i++)
		raw_desc(h, i, buf_da(h, i), 1, i < 7 ? VRING_DESC_F_NEXT : 0,
			 (uint16_t)(i + 1));
	raw_avail_push(h, 0);
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 8, &cnt), 0);
	assert_int_equal(cnt, 8);
}

static void test_avail_index_jump(void **state)
{
	struct harness *h = *state;

	raw_desc(h, 0, buf_da(h, 0), 8, 0, 0);
	raw_avail_set_idx(h, 9); /* 9 ready in a ring of 8 */
	expect_dev_fault(h, VIRTQUEUE_FAULT_AVAIL_JUMP, -EINVAL);
}

/* A full ring (num entries announced) is legal: a bad head in it is a
 * head fault, not an index jump. */
static void test_full_ring_with_a_bad_head_is_a_head_fault(void **state)
{
	struct harness *h = *state;

	raw_avail_push(h, 8);
	for (uint16_t i = 1; i < 8; i++)
		raw_avail_push(h, i);
	expect_dev_fault(h, VIRTQUEUE_FAULT_HEAD_RANGE, -EINVAL);
}

static void test_avail_index_backwards(void **state)
{
	struct harness *h = *state;

	raw_avail_set_idx(h, 0xffff); /* "65535 ready": a step backwards */
	expect_dev_fault(h, VIRTQUEUE_FAULT_AVAIL_JUMP, -EINVAL);
}

static void test_head_in_flight_twice(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf vb[2];
	size_t cnt;

	raw_desc(h, 2, buf_da(h, 0), 8, 0, 0);
	raw_avail_push(h, 2);
	raw_avail_push(h, 2);
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 2, &cnt), 2);
	expect_dev_fault(h, VIRTQUEUE_FAULT_HEAD_INFLIGHT, -EBUSY);
}

static void test_head_reuse_after_return_is_fine(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf vb[2];
	size_t cnt;

	raw_desc(h, 2, buf_da(h, 0), 8, VRING_DESC_F_WRITE, 0);
	raw_avail_push(h, 2);
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 2, &cnt), 2);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, 2, 8), 0);
	raw_avail_push(h, 2);
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 2, &cnt), 2);
	assert_false(virtqueue_is_broken(h->dev));
}

static void test_writable_before_readable(void **state)
{
	struct harness *h = *state;

	raw_desc(h, 0, buf_da(h, 0), 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	raw_desc(h, 1, buf_da(h, 8), 8, 0, 0);
	raw_avail_push(h, 0);
	expect_dev_fault(h, VIRTQUEUE_FAULT_WRITE_ORDER, -EINVAL);
}

static void test_address_below_window(void **state)
{
	struct harness *h = *state;

	raw_desc(h, 0, HARNESS_DA_BASE - 1, 8, 0, 0);
	raw_avail_push(h, 0);
	expect_dev_fault(h, VIRTQUEUE_FAULT_ADDR_RANGE, -EFAULT);
}

static void test_length_past_window_end(void **state)
{
	struct harness *h = *state;

	/* Starts inside, ends one byte into the guard page. */
	raw_desc(h, 0, buf_da(h, h->bufsize - 8), 9, 0, 0);
	raw_avail_push(h, 0);
	expect_dev_fault(h, VIRTQUEUE_FAULT_ADDR_RANGE, -EFAULT);
}

static void test_address_far_outside(void **state)
{
	struct harness *h = *state;

	raw_desc(h, 0, HARNESS_DA_BASE + h->size, 1, 0, 0);
	raw_avail_push(h, 0);
	expect_dev_fault(h, VIRTQUEUE_FAULT_ADDR_RANGE, -EFAULT);
}

static void test_buffer_ending_at_window_end_is_fine(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf vb[1];
	size_t cnt;

	raw_desc(h, 0, buf_da(h, h->bufsize - 8), 8, VRING_DESC_F_WRITE, 0);
	raw_avail_push(h, 0);
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 1, &cnt), 0);
	memset(vb[0].buf, 0xab, vb[0].len); /* the last 8 bytes before the guard */
}

/* An empty buffer is inside the window up to its very end, and one byte
 * past the end is outside. */
static void test_empty_buffer_at_window_end_is_fine(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf vb[1];
	size_t cnt;

	raw_desc(h, 0, buf_da(h, h->bufsize), 0, VRING_DESC_F_WRITE, 0);
	raw_avail_push(h, 0);
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 1, &cnt), 0);
	assert_ptr_equal(vb[0].buf, h->bufs + h->bufsize);
	assert_int_equal(vb[0].len, 0);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, 0, 0), 0);
	raw_desc(h, 1, buf_da(h, h->bufsize + 1), 0, VRING_DESC_F_WRITE, 0);
	raw_avail_push(h, 1);
	expect_dev_fault(h, VIRTQUEUE_FAULT_ADDR_RANGE, -EFAULT);
}

static void test_address_plus_length_overflows(void **state)
{
	struct harness *h = *state;

	raw_desc(h, 0, UINT64_MAX - 4, 16, 0, 0);
	raw_avail_push(h, 0);
	expect_dev_fault(h, VIRTQUEUE_FAULT_ADDR_OVERFLOW, -EOVERFLOW);
}

/* Ending at the last device address, addr + len does not wrap: outside the
 * window, but not an overflow. */
static void test_address_ending_at_the_top_is_a_range_fault(void **state)
{
	struct harness *h = *state;

	raw_desc(h, 0, UINT64_MAX - 16, 16, 0, 0);
	raw_avail_push(h, 0);
	expect_dev_fault(h, VIRTQUEUE_FAULT_ADDR_RANGE, -EFAULT);
}

/* An indirect table in the buffer area, `n` entries, pointed to by desc 0. */
static struct vring_desc *indirect_table(struct harness *h, uint16_t n, uint16_t flags)
{
	struct vring_desc *t = (struct vring_desc *)(void *)(h->bufs + 1024);

	raw_desc(h, 0, harness_da(h, t), (uint32_t)n * 16u, flags, 0);
	raw_avail_push(h, 0);
	return t;
}

static void test_indirect_accepted_when_well_formed(void **state)
{
	struct harness *h = *state;
	struct vring_desc *t = indirect_table(h, 2, VRING_DESC_F_INDIRECT);
	struct virtqueue_buf vb[2];
	size_t cnt;

	raw_desc_at(t, 0, buf_da(h, 0), 4, VRING_DESC_F_NEXT, 1);
	raw_desc_at(t, 1, buf_da(h, 4), 4, VRING_DESC_F_WRITE, 0);
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 2, &cnt), 0);
	assert_int_equal(cnt, 2);
	assert_true(vb[1].writable);
}

static void test_indirect_len_not_multiple_of_desc(void **state)
{
	struct harness *h = *state;

	raw_desc(h, 0, buf_da(h, 1024), 24, VRING_DESC_F_INDIRECT, 0);
	raw_avail_push(h, 0);
	expect_dev_fault(h, VIRTQUEUE_FAULT_INDIRECT, -EINVAL);
}

static void test_indirect_empty(void **state)
{
	struct harness *h = *state;

	raw_desc(h, 0, buf_da(h, 1024), 0, VRING_DESC_F_INDIRECT, 0);
	raw_avail_push(h, 0);
	expect_dev_fault(h, VIRTQUEUE_FAULT_INDIRECT, -EINVAL);
}

static void test_indirect_too_big(void **state)
{
	struct harness *h = *state;

	indirect_table(h, 9, VRING_DESC_F_INDIRECT); /* more entries than num */
	expect_dev_fault(h, VIRTQUEUE_FAULT_INDIRECT, -EINVAL);
}

static void test_indirect_nested(void **state)
{
	struct harness *h = *state;
	struct vring_desc *t = indirect_table(h, 2, VRING_DESC_F_INDIRECT);

	raw_desc_at(t, 0, buf_da(h, 0), 32, VRING_DESC_F_INDIRECT, 0);
	expect_dev_fault(h, VIRTQUEUE_FAULT_INDIRECT, -EINVAL);
}

static void test_indirect_with_next(void **state)
{
	struct harness *h = *state;

	indirect_table(h, 2, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT);
	expect_dev_fault(h, VIRTQUEUE_FAULT_INDIRECT, -EINVAL);
}

/* An indirect table is read as descriptors: one not on a 16-byte
 * boundary (the descriptor table's alignment) is refused, never read. */
static void test_indirect_table_misaligned(void **state)
{
	struct harness *h = *state;

	raw_desc(h, 0, buf_da(h, 1024 + 8), 32, VRING_DESC_F_INDIRECT, 0);
	raw_avail_push(h, 0);
	expect_dev_fault(h, VIRTQUEUE_FAULT_INDIRECT, -EINVAL);
}

static void test_indirect_table_outside_window(void **state)
{
	struct harness *h = *state;

	raw_desc(h, 0, buf_da(h, h->bufsize - 16), 32, VRING_DESC_F_INDIRECT, 0);
	raw_avail_push(h, 0);
	expect_dev_fault(h, VIRTQUEUE_FAULT_ADDR_RANGE, -EFAULT);
}

static void test_indirect_loop(void **state)
{
	struct harness *h = *state;
	struct vring_desc *t = indirect_table(h, 2, VRING_DESC_F_INDIRECT);

	raw_desc_at(t, 0, buf_da(h, 0), 4, VRING_DESC_F_NEXT, 1);
	raw_desc_at(t, 1, buf_da(h, 4), 4, VRING_DESC_F_NEXT, 0);
	expect_dev_fault(h, VIRTQUEUE_FAULT_LOOP, -ELOOP);
}

static void test_indirect_next_out_of_range(void **state)
{
	struct harness *h = *state;
	struct vring_desc *t = indirect_table(h, 2, VRING_DESC_F_INDIRECT);

	raw_desc_at(t, 0, buf_da(h, 0), 4, VRING_DESC_F_NEXT, 2);
	expect_dev_fault(h, VIRTQUEUE_FAULT_NEXT_RANGE, -EINVAL);
}

static void test_indirect_entry_outside_window(void **state)
{
	struct harness *h = *state;
	struct vring_desc *t = indirect_table(h, 1, VRING_DESC_F_INDIRECT);

	raw_desc_at(t, 0, HARNESS_DA_BASE + h->size, 4, 0, 0);
	expect_dev_fault(h, VIRTQUEUE_FAULT_ADDR_RANGE, -EFAULT);
}

static void test_indirect_not_negotiated(void **state)
{
	struct harness h;
	struct virtqueue_buf vb[2];
	size_t cnt;

	(void)state;
	harness_init(&h, 8, 0, 0, 4096, 2);
	raw_desc(&h, 0, harness_da(&h, h.bufs), 16, VRING_DESC_F_INDIRECT, 0);
	raw_avail_push(&h, 0);
	assert_int_equal(vhost_get_vq_buffers(h.dev, vb, 2, &cnt), -EINVAL);
	assert_int_equal(virtqueue_get_fault(h.dev), VIRTQUEUE_FAULT_INDIRECT);
	harness_fini(&h);
}

/* A batch take leaves a bad entry for the single take, which reports it:
 * the good entries before it are taken, nothing is broken until then. */
static void expect_batch_leaves(struct harness *h, int good, enum virtqueue_fault fault, int err)
{
	struct virtqueue_buf vb[8];
	uint16_t heads[8];

	assert_int_equal(virtqueue_get_available_buffers(h->dev, vb, heads, 8), good);
	for (int i = 0; i < good; i++) {
		assert_int_equal(heads[i], i);
		assert_ptr_equal(vb[i].buf, h->bufs + 8 * i);
	}
	assert_int_equal(virtqueue_get_available_buffers(h->dev, vb, heads, 8), 0);
	assert_false(virtqueue_is_broken(h->dev));
	assert_int_equal(h->faults, 0);
	expect_dev_fault(h, fault, err);
	assert_int_equal(virtqueue_get_available_buffers(h->dev, vb, heads, 8), -EIO);
}

static void push_good(struct harness *h, int n)
{
	for (int i = 0; i < n; i++) {
		raw_desc(h, (uint16_t)i, harness_da(h, h->bufs + 8 * i), 8, 0, 0);
		raw_avail_push(h, (uint16_t)i);
	}
}

static void test_batch_take_leaves_a_head_out_of_range(void **state)
{
	struct harness *h = *state;

	push_good(h, 2);
	raw_avail_push(h, 200);
	expect_batch_leaves(h, 2, VIRTQUEUE_FAULT_HEAD_RANGE, -EINVAL);
}

static void test_batch_take_leaves_a_buffer_outside_the_window(void **state)
{
	struct harness *h = *state;

	push_good(h, 3);
	raw_desc(h, 3, HARNESS_DA_BASE - 1, 8, 0, 0);
	raw_avail_push(h, 3);
	expect_batch_leaves(h, 3, VIRTQUEUE_FAULT_ADDR_RANGE, -EFAULT);
}

static void test_batch_take_leaves_a_head_in_flight(void **state)
{
	struct harness *h = *state;

	push_good(h, 2);
	raw_avail_push(h, 1); /* taken just before, not returned */
	expect_batch_leaves(h, 2, VIRTQUEUE_FAULT_HEAD_INFLIGHT, -EBUSY);
}

static void test_batch_take_leaves_an_index_jump(void **state)
{
	struct harness *h = *state;

	raw_avail_set_idx(h, 9); /* nine announced on an eight-entry ring */
	expect_batch_leaves(h, 0, VIRTQUEUE_FAULT_AVAIL_JUMP, -EINVAL);
}

/* ---- the driver role against a hostile device ---- */

static void expect_drv_fault(struct harness *h, enum virtqueue_fault fault)
{
	struct virtqueue_state st;

	assert_null(virtqueue_get_buffer(h->drv, NULL, NULL));
	assert_int_equal(virtqueue_get_fault(h->drv), fault);
	assert_true(virtqueue_is_broken(h->drv));
	virtqueue_get_state(h->drv, &st);
	assert_int_equal(st.error, -EINVAL);
	assert_int_equal(st.stats.faults, 1);
	assert_int_equal(h->faults, 1);
	/* No cookie comes back from a broken queue, and nothing new goes in. */
	assert_null(virtqueue_get_buffer(h->drv, NULL, NULL));
	{
		struct virtqueue_buf b = { h->bufs, 1, false };
		int c;

		assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &c), -EIO);
	}
}

static int cookies[8];

static void add_n(struct harness *h, int n, uint32_t wlen)
{
	struct virtqueue_buf b = { h->bufs, wlen, true };
	int i;

	for (i = 0; i < n; i++)
		assert_int_equal(virtqueue_add_buffer(h->drv, &b, 0, 1, &cookies[i]), 0);
}

static void test_used_id_out_of_range(void **state)
{
	struct harness *h = *state;

	add_n(h, 1, 8);
	raw_used_push(h, 8, 0);
	expect_drv_fault(h, VIRTQUEUE_FAULT_USED_ID);
}

static void test_used_id_not_in_flight(void **state)
{
	struct harness *h = *state;

	add_n(h, 2, 8); /* heads 0 and 1 in flight */
	raw_used_push(h, 5, 0);
	expect_drv_fault(h, VIRTQUEUE_FAULT_USED_ID);
}

static void test_used_id_returned_twice(void **state)
{
	struct harness *h = *state;

	add_n(h, 2, 8);
	raw_used_push(h, 0, 0);
	raw_used_push(h, 0, 0);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &cookies[0]);
	expect_drv_fault(h, VIRTQUEUE_FAULT_USED_ID);
}

static void test_used_id_not_a_head(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b[2] = { { h->bufs, 4, false }, { h->bufs + 4, 4, true } };

	assert_int_equal(virtqueue_add_buffer(h->drv, b, 1, 1, &cookies[0]), 0);
	raw_used_push(h, 1, 0); /* descriptor 1 is the chain's tail */
	expect_drv_fault(h, VIRTQUEUE_FAULT_USED_ID);
}

static void test_used_len_beyond_writable(void **state)
{
	struct harness *h = *state;

	add_n(h, 1, 8);
	raw_used_push(h, 0, 9);
	expect_drv_fault(h, VIRTQUEUE_FAULT_USED_LEN);
}

static void test_used_len_on_readable_only_chain(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b = { h->bufs, 64, false };

	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &cookies[0]), 0);
	raw_used_push(h, 0, 1); /* nothing was writable */
	expect_drv_fault(h, VIRTQUEUE_FAULT_USED_LEN);
}

static void test_used_index_jump(void **state)
{
	struct harness *h = *state;

	add_n(h, 2, 8);
	raw_used_set_idx(h, 3); /* three used, two in flight */
	expect_drv_fault(h, VIRTQUEUE_FAULT_USED_JUMP);
}

/* A batch ends at the first impossible entry: the good ones before it
 * come back, the queue breaks, and the next batch finds it broken. */
static void expect_batch_fault(struct harness *h, int good, enum virtqueue_fault fault)
{
	uint32_t lens[8];
	void *got[8];

	assert_int_equal(virtqueue_get_buffers(h->drv, got, lens, 8), good ? good : -EIO);
	for (int i = 0; i < good; i++) {
		assert_ptr_equal(got[i], &cookies[i]);
		assert_int_equal(lens[i], (uint32_t)i + 1);
	}
	assert_int_equal(virtqueue_get_fault(h->drv), fault);
	assert_true(virtqueue_is_broken(h->drv));
	assert_int_equal(h->faults, 1);
	assert_int_equal(virtqueue_get_buffers(h->drv, got, lens, 8), -EIO);
}

static void test_batch_stops_at_an_id_not_in_flight(void **state)
{
	struct harness *h = *state;

	add_n(h, 4, 8);
	raw_used_push(h, 0, 1);
	raw_used_push(h, 1, 2);
	raw_used_push(h, 6, 0); /* never added */
	raw_used_push(h, 2, 3);
	expect_batch_fault(h, 2, VIRTQUEUE_FAULT_USED_ID);
}

static void test_batch_stops_at_an_id_out_of_range(void **state)
{
	struct harness *h = *state;

	add_n(h, 3, 8);
	raw_used_push(h, 0, 1);
	raw_used_push(h, 0xffffu, 0);
	expect_batch_fault(h, 1, VIRTQUEUE_FAULT_USED_ID);
}

/* The first id past the table, the off-by-one a bound check can miss. */
static void test_batch_stops_at_the_id_equal_to_num(void **state)
{
	struct harness *h = *state;

	add_n(h, 3, 8);
	raw_used_push(h, 0, 1);
	raw_used_push(h, 8, 0); /* num is 8 */
	expect_batch_fault(h, 1, VIRTQUEUE_FAULT_USED_ID);
}

static void test_batch_stops_at_a_length_too_long(void **state)
{
	struct harness *h = *state;

	add_n(h, 3, 8);
	raw_used_push(h, 0, 1);
	raw_used_push(h, 1, 2);
	raw_used_push(h, 2, 9);
	expect_batch_fault(h, 2, VIRTQUEUE_FAULT_USED_LEN);
}

static void test_batch_stops_at_an_id_returned_twice(void **state)
{
	struct harness *h = *state;

	add_n(h, 3, 8);
	raw_used_push(h, 0, 1);
	raw_used_push(h, 0, 1);
	expect_batch_fault(h, 1, VIRTQUEUE_FAULT_USED_ID);
}

static void test_batch_refuses_an_index_jump(void **state)
{
	struct harness *h = *state;

	add_n(h, 2, 8);
	raw_used_push(h, 0, 1);
	raw_used_push(h, 1, 2);
	raw_used_set_idx(h, 3); /* three used, two in flight: nothing taken */
	expect_batch_fault(h, 0, VIRTQUEUE_FAULT_USED_JUMP);
}

/* ---- the polling look's guess (duet_vq_poll_guess, virtqueue_prefetch_next) ---- */

static void poll_cb(struct virtqueue *vq)
{
	(void)vq;
}

/* A look that finds nothing prefetches where the next buffer most likely
 * is, read from words the driver wrote: a head outside the table or a
 * buffer outside the window gives no guess (and reads nothing more), and
 * polling over such words neither faults the queue nor runs a callback
 * more than once per move. The guard pages catch a stray read. */
static void test_poll_guess_is_checked_as_a_take(void **state)
{
	struct harness *h = *state;
	uint8_t *last = h->region + h->size - 1;

	raw_desc(h, 0, harness_da(h, h->bufs), 64, 0, 0);
	raw_desc(h, 1, HARNESS_DA_BASE - 1, 64, 0, 0);          /* below */
	raw_desc(h, 2, HARNESS_DA_BASE + h->size, 64, 0, 0);    /* the end */
	raw_desc(h, 3, UINT64_MAX, 64, 0, 0);                   /* wraps */
	raw_desc(h, 4, harness_da(h, last), 1, 0, 0);           /* last byte */
	raw_avail_push(h, 0);
	raw_avail_push(h, 8); /* num is 8 */
	raw_avail_push(h, 0xffff);
	raw_avail_push(h, 1);
	raw_avail_push(h, 2);
	raw_avail_push(h, 3);
	raw_avail_push(h, 4);
	assert_ptr_equal(duet_vq_poll_guess(h->dev, 0), h->bufs);
	assert_null(duet_vq_poll_guess(h->dev, 1));
	assert_null(duet_vq_poll_guess(h->dev, 2));
	assert_null(duet_vq_poll_guess(h->dev, 3));
	assert_null(duet_vq_poll_guess(h->dev, 4));
	assert_null(duet_vq_poll_guess(h->dev, 5));
	assert_ptr_equal(duet_vq_poll_guess(h->dev, 6), last);
	assert_ptr_equal(duet_vq_poll_guess(h->dev, 8), h->bufs); /* a lap later */
	/* Polling over each of them, prefetching each guess: one run of the
	 * callback per move, the queue whole. */
	h->dev->callback = poll_cb;
	raw_avail_set_idx(h, 0);
	for (uint16_t i = 0; i < 7; i++) {
		assert_false(virtqueue_poll(h->dev));
		virtqueue_prefetch_next(h->dev); /* the guess at i */
		raw_avail_set_idx(h, (uint16_t)(i + 1));
		assert_true(virtqueue_poll(h->dev));
	}
	assert_false(virtqueue_poll(h->dev));
	assert_false(virtqueue_is_broken(h->dev));
	assert_int_equal(h->faults, 0);
	h->dev->callback = NULL;
}

/* A driver's guess is the buffer of its own avail entry (the device
 * usually returns them in order), checked all the same: the device can
 * scribble on the descriptor table. */
static void test_poll_guess_on_the_driver_side(void **state)
{
	struct harness *h = *state;
	int c;

	assert_int_equal(virtqueue_add_one(h->drv, h->bufs, 64, true, &c), 0);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs + 64, 64, true, &c), 0);
	assert_ptr_equal(duet_vq_poll_guess(h->drv, 0), h->bufs);
	assert_ptr_equal(duet_vq_poll_guess(h->drv, 1), h->bufs + 64);
	raw_desc(h, harness_avail(h)->ring[1], HARNESS_DA_BASE + h->size + 4096, 64,
		 VRING_DESC_F_WRITE, 0);
	assert_null(duet_vq_poll_guess(h->drv, 1));
	assert_ptr_equal(duet_vq_poll_guess(h->drv, 0), h->bufs);
}

int main(void)
{
#define DEV(t) cmocka_unit_test_setup_teardown(t, setup_dev, teardown)
#define DRV(t) cmocka_unit_test_setup_teardown(t, setup_drv, teardown)
	const struct CMUnitTest tests[] = {
		DEV(test_head_out_of_range),
		DEV(test_head_out_of_range_via_get_available_buffer),
		DEV(test_chain_loop_via_get_available_buffer),
		DEV(test_next_out_of_range),
		DEV(test_chain_loop),
		DEV(test_self_loop),
		DEV(test_longest_legal_chain_is_accepted),
		DEV(test_avail_index_jump),
		DEV(test_full_ring_with_a_bad_head_is_a_head_fault),
		DEV(test_avail_index_backwards),
		DEV(test_head_in_flight_twice),
		DEV(test_head_reuse_after_return_is_fine),
		DEV(test_writable_before_readable),
		DEV(test_address_below_window),
		DEV(test_length_past_window_end),
		DEV(test_address_far_outside),
		DEV(test_buffer_ending_at_window_end_is_fine),
		DEV(test_empty_buffer_at_window_end_is_fine),
		DEV(test_address_plus_length_overflows),
		DEV(test_address_ending_at_the_top_is_a_range_fault),
		DEV(test_indirect_accepted_when_well_formed),
		DEV(test_indirect_len_not_multiple_of_desc),
		DEV(test_indirect_empty),
		DEV(test_indirect_too_big),
		DEV(test_indirect_nested),
		DEV(test_indirect_with_next),
		DEV(test_indirect_table_outside_window),
		DEV(test_indirect_table_misaligned),
		DEV(test_indirect_loop),
		DEV(test_indirect_next_out_of_range),
		DEV(test_indirect_entry_outside_window),
		cmocka_unit_test(test_indirect_not_negotiated),
		DEV(test_batch_take_leaves_a_head_out_of_range),
		DEV(test_batch_take_leaves_a_buffer_outside_the_window),
		DEV(test_batch_take_leaves_a_head_in_flight),
		DEV(test_batch_take_leaves_an_index_jump),
		DRV(test_used_id_out_of_range),
		DRV(test_used_id_not_in_flight),
		DRV(test_used_id_returned_twice),
		DRV(test_used_id_not_a_head),
		DRV(test_used_len_beyond_writable),
		DRV(test_used_len_on_readable_only_chain),
		DRV(test_used_index_jump),
		DRV(test_batch_stops_at_an_id_not_in_flight),
		DRV(test_batch_stops_at_an_id_out_of_range),
		DRV(test_batch_stops_at_the_id_equal_to_num),
		DEV(test_poll_guess_is_checked_as_a_take),
		DRV(test_poll_guess_on_the_driver_side),
		DRV(test_batch_stops_at_a_length_too_long),
		DRV(test_batch_stops_at_an_id_returned_twice),
		DRV(test_batch_refuses_an_index_jump),
	};

	return cmocka_run_group_tests_name("virtqueue hostile peer", tests, NULL, NULL);
}
