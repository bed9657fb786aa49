/*
 * Unit tests: each virtqueue call in each role, over one ring between guard
 * pages, including notification suppression with and without EVENT_IDX.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include <duet/byteorder.h>

#include "vq_harness.h"

#define EVENT_IDX (1ull << VIRTIO_RING_F_EVENT_IDX)
#define INDIRECT (1ull << VIRTIO_RING_F_INDIRECT_DESC)

static int setup_plain(void **state)
{
	struct harness *h = malloc(sizeof(*h));

	harness_init(h, 8, 0, 0, 4096, 3);
	*state = h;
	return 0;
}

static int setup_event(void **state)
{
	struct harness *h = malloc(sizeof(*h));

	harness_init(h, 8, EVENT_IDX, 0, 4096, 3);
	*state = h;
	return 0;
}

static int teardown(void **state)
{
	harness_fini(*state);
	free(*state);
	return 0;
}

/* ---- init ---- */

static void test_init_rejects_bad_config(void **state)
{
	struct harness *h = *state;
	struct virtqueue_config good = {
		.role = VIRTQUEUE_ROLE_DRIVER,
		.num = 8,
		.ring = h->ring,
		.align = 64,
		.window = { .va = h->region, .da = 0, .size = h->size },
	};
	struct virtqueue_config c;
	struct virtqueue *vq;
	_Alignas(void *) uint8_t mem[VIRTQUEUE_FOOTPRINT(8)];

	assert_int_equal(virtqueue_init(mem, sizeof(mem), &good, &vq), 0);

	c = good; c.num = 6;
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	c = good; c.num = 0;
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	c = good; c.align = 2;
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	c = good; c.align = 48;
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	c = good; c.ring = h->ring + 8; /* misaligned */
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	c = good; c.window.size = 64; /* ring does not fit in the window */
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	c = good; c.ring = h->region + h->size - 64; /* ring runs off the window */
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	c = good; c.window.da = UINT64_MAX - 10; /* window wraps */
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	c = good; c.role = (enum virtqueue_role)7;
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	assert_int_equal(virtqueue_init(mem, sizeof(mem) - 1, &good, &vq), -EINVAL);
	assert_int_equal(virtqueue_init(mem, sizeof(mem), NULL, &vq), -EINVAL);
	c = good; c.indirect = h->bufs + 8; c.indirect_num = 4; /* misaligned */
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	c = good; c.indirect = h->bufs; c.indirect_num = 1;
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	c = good; c.role = VIRTQUEUE_ROLE_DEVICE; c.indirect = h->bufs; c.indirect_num = 2;
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	c = good; c.indirect = h->bufs; c.indirect_num = VIRTQUEUE_MAX_SIZE + 1u; /* no chain is longer */
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	c = good; c.indirect = h->region + h->size - 16; c.indirect_num = 2; /* runs off the window */
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	c = good; c.indirect = (void *)((uintptr_t)h->region - 64u); c.indirect_num = 2; /* below the window */
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	c = good; c.window.va = NULL;
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	c = good; c.window.size = 0;
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	c = good; c.ring = NULL;
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &c, &vq), -EINVAL);
	assert_int_equal(virtqueue_init(NULL, sizeof(mem), &good, &vq), -EINVAL);
	assert_int_equal(virtqueue_init(mem + 1, sizeof(mem) - 1, &good, &vq), -EINVAL);
	/* Nothing was taken: the good configuration still is. */
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &good, &vq), 0);
}

/* Whether virtqueue_init takes c (memory for its state allocated here). */
static int init_with(const struct virtqueue_config *c)
{
	size_t size = virtqueue_footprint(c->num);
	void *mem = aligned_alloc(64, (size + 63u) & ~(size_t)63u);
	struct virtqueue *vq;
	int ret;

	assert_non_null(mem);
	ret = virtqueue_init(mem, size, c, &vq);
	free(mem);
	return ret;
}

/* Each limit of the configuration is itself accepted: the largest queue,
 * the smallest and largest alignment, a ring ending at the window's last
 * byte, a window ending at the last device address, the fewest and most
 * indirect descriptors. One past each is refused (above, and here). */
static void test_init_accepts_each_limit(void **state)
{
	/* The largest ring and the most indirect tables, with room to spare,
	 * in whole 64 KiB units (aligned_alloc wants a multiple). */
	const size_t big = (vring_size(VIRTQUEUE_MAX_SIZE, 64) + 8u * VIRTQUEUE_MAX_SIZE * 16u +
			    3u * 65536u) & ~(size_t)65535u;
	uint8_t *region = aligned_alloc(65536, big);
	struct virtqueue_config good = {
		.role = VIRTQUEUE_ROLE_DRIVER, .num = 8, .ring = region, .align = 64,
		.window = { .va = region, .da = 0, .size = big },
	};
	struct virtqueue_config c;
	_Alignas(void *) uint8_t mem[VIRTQUEUE_FOOTPRINT(8)];
	size_t ringsize = vring_size(8, 64);

	(void)state;
	assert_non_null(region);
	assert_int_equal(virtqueue_init(mem, sizeof(mem), &good, NULL), -EINVAL);
	c = good; c.num = VIRTQUEUE_MAX_SIZE;
	assert_int_equal(init_with(&c), 0);
	c = good; c.align = 4;
	assert_int_equal(init_with(&c), 0);
	c = good; c.align = 65536;
	assert_int_equal(init_with(&c), 0);
	c = good; c.align = 131072;
	assert_int_equal(init_with(&c), -EINVAL);
	c = good; c.ring = region + 65536;
	c.window.size = 65536 + ringsize; /* the ring's last byte is the window's */
	assert_int_equal(init_with(&c), 0);
	c.window.size--;
	assert_int_equal(init_with(&c), -EINVAL);
	c = good; c.window.da = UINT64_MAX - (good.window.size - 1u); /* ends at the last address */
	assert_int_equal(init_with(&c), 0);
	c.window.da++;
	assert_int_equal(init_with(&c), -EINVAL);
	/* Locally too: a window may end at the last address, not past it
	 * (then any pointer would look inside it). */
	c = good; c.window.size = (uint64_t)(UINTPTR_MAX - (uintptr_t)region) + 1u;
	assert_int_equal(init_with(&c), 0);
	c.window.size++;
	assert_int_equal(init_with(&c), -EINVAL);
	c = good; c.indirect = region + 65536; c.indirect_num = 2;
	assert_int_equal(init_with(&c), 0);
	c.indirect_num = VIRTQUEUE_MAX_SIZE;
	assert_int_equal(init_with(&c), 0);
	c.indirect_num++; /* its tables would still fit: refused for the length alone */
	assert_true(65536u + (size_t)c.num * c.indirect_num * 16u <= big);
	assert_int_equal(init_with(&c), -EINVAL);
	free(region);
}

static void test_footprint_macro_matches_function(void **state)
{
	(void)state;
	assert_int_equal(VIRTQUEUE_FOOTPRINT(256), virtqueue_footprint(256));
	assert_true(virtqueue_footprint(256) > virtqueue_footprint(8));
}

static void test_ring_layout_is_the_wire_format(void **state)
{
	(void)state;
	/* VIRTIO 1.2 2.7: desc 16*num, avail 6+2*num, used at align, 6+8*num. */
	assert_int_equal(sizeof(struct vring_desc), 16);
	assert_int_equal(vring_used_offset(256, 4096), 8192);
	assert_int_equal(vring_size(256, 4096), 8192 + 6 + 8 * 256);
	assert_int_equal(vring_used_offset(8, 4), 152); /* 150 rounded up to 4 */
	assert_int_equal(vring_size(8, 4), 152 + 6 + 64);
}

/* ---- driver role ---- */

static void test_add_and_get_one_buffer(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b = { .buf = h->bufs, .len = 64 };
	struct virtqueue_buf vb[4];
	size_t cnt = 0;
	uint32_t len = 0;
	uint16_t idx = 99;
	int cookie, head;

	memcpy(h->bufs, "hello", 6);
	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &cookie), 0);
	/* The descriptor carries the device address, not the local one. */
	assert_int_equal(((struct vring_desc *)(void *)h->ring)[0].addr, harness_da(h, h->bufs));

	head = vhost_get_vq_buffers(h->dev, vb, 4, &cnt);
	assert_int_equal(head, 0);
	assert_int_equal(cnt, 1);
	assert_ptr_equal(vb[0].buf, h->bufs);
	assert_int_equal(vb[0].len, 64);
	assert_false(vb[0].writable);
	assert_string_equal(vb[0].buf, "hello");

	assert_null(virtqueue_get_buffer(h->drv, &len, &idx)); /* not used yet */
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, (uint16_t)head, 0), 0);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, &len, &idx), &cookie);
	assert_int_equal(len, 0);
	assert_int_equal(idx, head);
	assert_null(virtqueue_get_buffer(h->drv, &len, &idx));
}

static void test_sg_list_directions_and_used_len(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b[3] = {
		{ .buf = h->bufs, .len = 16 },
		{ .buf = h->bufs + 16, .len = 32 },
		{ .buf = h->bufs + 48, .len = 100 },
	};
	struct virtqueue_buf vb[3];
	size_t cnt;
	uint32_t len;
	int cookie, head;

	assert_int_equal(virtqueue_add_buffer(h->drv, b, 1, 2, &cookie), 0);
	head = vhost_get_vq_buffers(h->dev, vb, 3, &cnt);
	assert_true(head >= 0);
	assert_int_equal(cnt, 3);
	assert_false(vb[0].writable);
	assert_true(vb[1].writable);
	assert_true(vb[2].writable);
	assert_ptr_equal(vb[2].buf, h->bufs + 48);
	/* The device may report at most the writable bytes: 132. */
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, (uint16_t)head, 133), -EINVAL);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, (uint16_t)head, 132), 0);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, &len, NULL), &cookie);
	assert_int_equal(len, 132);
}

static void test_add_fails_cleanly_when_full(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b[2] = { { h->bufs, 8, false }, { h->bufs + 8, 8, false } };
	struct virtqueue_state st;
	int c[8];
	int i;

	for (i = 0; i < 4; i++)
		assert_int_equal(virtqueue_add_buffer(h->drv, b, 2, 0, &c[i]), 0);
	assert_true(virtqueue_full(h->drv));
	assert_int_equal(virtqueue_add_buffer(h->drv, b, 1, 0, &c[4]), -ENOSPC);
	virtqueue_get_state(h->drv, &st);
	assert_int_equal(st.free, 0);
	assert_int_equal(st.inflight, 4);
	assert_int_equal(st.avail_idx, 4);
	/* More buffers than the ring has descriptors can never fit. */
	{
		struct virtqueue_buf many[9];

		for (i = 0; i < 9; i++)
			many[i] = (struct virtqueue_buf){ h->bufs, 1, false };
		assert_int_equal(virtqueue_add_buffer(h->drv, many, 9, 0, &c[5]), -ENOSPC);
		/* Nor the longest chain any ring could hold (a count past it
		 * is a bad argument: test_add_rejects_bad_arguments...). */
		assert_int_equal(virtqueue_add_buffer(h->drv, many, VIRTQUEUE_MAX_SIZE, 0, &c[5]),
				 -ENOSPC);
		assert_int_equal(virtqueue_add_buffer(h->drv, many, 0, VIRTQUEUE_MAX_SIZE, &c[5]),
				 -ENOSPC);
	}
}

static void test_add_rejects_bad_arguments_and_loses_nothing(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf ok = { h->bufs, 8, false };
	struct virtqueue_buf outside[2] = { { h->bufs, 8, false },
					    { h->bufs + h->bufsize - 4, 8, false } };
	uint8_t local[8];
	struct virtqueue_buf notshared = { local, sizeof(local), false };
	struct virtqueue_state st;
	int cookie;

	assert_int_equal(virtqueue_add_buffer(h->drv, &ok, 1, 0, NULL), -EINVAL);
	assert_int_equal(virtqueue_add_buffer(h->drv, NULL, 1, 0, &cookie), -EINVAL);
	assert_int_equal(virtqueue_add_buffer(h->drv, &ok, 0, 0, &cookie), -EINVAL);
	assert_int_equal(virtqueue_add_buffer(h->drv, &ok, -1, 2, &cookie), -EINVAL);
	assert_int_equal(virtqueue_add_buffer(h->drv, &ok, VIRTQUEUE_MAX_SIZE + 1, 0, &cookie),
			 -EINVAL);
	assert_int_equal(virtqueue_add_buffer(h->drv, &ok, 0, VIRTQUEUE_MAX_SIZE + 1, &cookie),
			 -EINVAL);
	assert_int_equal(virtqueue_add_buffer(h->drv, outside, 2, 0, &cookie), -EINVAL);
	assert_int_equal(virtqueue_add_buffer(h->drv, &notshared, 1, 0, &cookie), -EINVAL);
	assert_int_equal(virtqueue_add_buffer(h->dev, &ok, 1, 0, &cookie), -EINVAL);
	virtqueue_get_state(h->drv, &st);
	assert_int_equal(st.free, 8);
	assert_int_equal(st.avail_idx, 0);
	assert_false(st.broken);
	/* And the queue still works, up to the window's last byte. */
	assert_int_equal(virtqueue_add_buffer(h->drv, &ok, 1, 0, &cookie), 0);
	assert_int_equal(raw_avail_idx(h), 1);
	outside[1].buf = h->bufs + h->bufsize - 8;
	assert_int_equal(virtqueue_add_buffer(h->drv, outside, 2, 0, &cookie), 0);
	assert_int_equal(raw_avail_idx(h), 2);
}

/* A take without a place for the head takes nothing: the chain could never
 * be returned, and the driver's buffer would be lost. */
static void test_get_available_without_head_takes_nothing(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b = { h->bufs, 8, false };
	struct virtqueue_state st;
	uint32_t len = 0;
	uint16_t head;
	int cookie;

	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &cookie), 0);
	assert_null(virtqueue_get_available_buffer(h->dev, NULL, &len));
	assert_null(virtqueue_get_available_buffer(h->dev, NULL, NULL));
	virtqueue_get_state(h->dev, &st);
	assert_false(st.broken);
	assert_ptr_equal(virtqueue_get_available_buffer(h->dev, &head, &len), h->bufs);
	assert_int_equal(len, 8);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, head, 0), 0);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &cookie);
}

/* virtqueue_add_one: both directions, the writable length bound, every bad
 * argument refused with nothing queued, and -ENOSPC when full. */
static void test_add_one(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf vb[2];
	struct virtqueue_state st;
	uint8_t local[8];
	size_t cnt;
	uint32_t len;
	uint16_t head;
	int c[9], h1, h2, i;

	assert_int_equal(virtqueue_add_one(h->drv, h->bufs, 64, false, &c[0]), 0);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs + 64, 32, true, &c[1]), 0);
	h1 = vhost_get_vq_buffers(h->dev, vb, 2, &cnt);
	assert_true(h1 >= 0);
	assert_int_equal(cnt, 1);
	assert_ptr_equal(vb[0].buf, h->bufs);
	assert_int_equal(vb[0].len, 64);
	assert_false(vb[0].writable);
	h2 = vhost_get_vq_buffers(h->dev, vb, 2, &cnt);
	assert_true(h2 >= 0);
	assert_ptr_equal(vb[0].buf, h->bufs + 64);
	assert_int_equal(vb[0].len, 32);
	assert_true(vb[0].writable);
	/* Nothing writable in the first; at most 32 bytes in the second. */
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, (uint16_t)h1, 1), -EINVAL);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, (uint16_t)h2, 33), -EINVAL);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, (uint16_t)h1, 0), 0);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, (uint16_t)h2, 32), 0);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, &len, NULL), &c[0]);
	assert_int_equal(len, 0);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, &len, NULL), &c[1]);
	assert_int_equal(len, 32);

	assert_int_equal(virtqueue_add_one(NULL, h->bufs, 8, false, &c[0]), -EINVAL);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs, 8, false, NULL), -EINVAL);
	assert_int_equal(virtqueue_add_one(h->drv, NULL, 8, false, &c[0]), -EINVAL);
	assert_int_equal(virtqueue_add_one(h->drv, local, sizeof(local), true, &c[0]), -EINVAL);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs + h->bufsize - 4, 8, false, &c[0]),
			 -EINVAL);
	assert_int_equal(virtqueue_add_one(h->dev, h->bufs, 8, false, &c[0]), -EINVAL);
	/* The window's edge: an empty buffer at its end is inside it (the
	 * same rule as the batch adds and the device's take); a byte past
	 * its end is not. Taken back at once. */
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs + h->bufsize + 1, 0, false, &c[0]),
			 -EINVAL);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs + h->bufsize, 0, false, &c[0]), 0);
	assert_ptr_equal(virtqueue_get_available_buffer(h->dev, &head, &len), h->bufs + h->bufsize);
	assert_int_equal(len, 0);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, head, 0), 0);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &c[0]);
	virtqueue_get_state(h->drv, &st);
	assert_int_equal(st.free, 8);
	assert_int_equal(st.avail_idx, 3);
	assert_false(st.broken);
	/* The batch add, the same edge. */
	{
		void *edge[2] = { h->bufs + h->bufsize + 1, h->bufs + h->bufsize };

		assert_int_equal(virtqueue_add_bufs(h->drv, edge, 1, 0, false), -EINVAL);
		assert_int_equal(virtqueue_add_bufs(h->drv, edge + 1, 1, 0, false), 1);
		assert_ptr_equal(virtqueue_get_available_buffer(h->dev, &head, &len), edge[1]);
		assert_int_equal(virtqueue_add_consumed_buffer(h->dev, head, 0), 0);
		assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), edge[1]);
	}

	for (i = 0; i < 8; i++)
		assert_int_equal(virtqueue_add_one(h->drv, h->bufs + 8 * i, 8, i & 1, &c[i]), 0);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs, 8, false, &c[8]), -ENOSPC);
	assert_int_equal(raw_avail_idx(h), 12);
}

static void test_descriptors_are_recycled(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b = { h->bufs, 8, false };
	int cookie, i;

	/* Far more than num cycles, across the 16-bit index wrap. */
	for (i = 0; i < 70000; i++) {
		uint16_t head;

		assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &cookie), 0);
		assert_non_null(virtqueue_get_available_buffer(h->dev, &head, NULL));
		assert_int_equal(virtqueue_add_consumed_buffer(h->dev, head, 0), 0);
		assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &cookie);
	}
	assert_false(virtqueue_is_broken(h->drv));
	assert_false(virtqueue_is_broken(h->dev));
	assert_int_equal(raw_avail_idx(h), (uint16_t)70000);
}

/* The driver leaves a descriptor that already says the right thing
 * untouched; one the device scribbled on must be written again. */
static void test_descriptor_rewritten_after_device_scribbles(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b = { h->bufs, 8, false };
	struct vring_desc *d = (struct vring_desc *)(void *)h->ring;
	uint16_t head, first = 0;
	uint32_t len;
	int cookie;

	/* The same buffer comes back through the same slot every num rounds
	 * (the free list is first in, first out). */
	for (int round = 0; round <= 2 * h->num; round++) {
		assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &cookie), 0);
		assert_ptr_equal(virtqueue_get_available_buffer(h->dev, &head, &len), h->bufs);
		assert_int_equal(len, 8);
		assert_int_equal(virtqueue_add_consumed_buffer(h->dev, head, 0), 0);
		assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &cookie);
		if (round == 0) {
			first = head;
			d[head].len = 4096;
		}
		if (round == h->num) {
			assert_int_equal(head, first);
			d[head].flags = VRING_DESC_F_WRITE;
		}
	}
	assert_int_equal(head, first);
	assert_int_equal(d[head].len, 8);
	assert_int_equal(d[head].flags, 0);
	assert_false(virtqueue_is_broken(h->dev));
}

/*
 * Heads come back first in, first out: buffers used in the order they
 * were added are added again at the same avail entries with the same
 * heads, so the entries (and, for the same buffer, the descriptors) keep
 * their values and the driver need not store them again, which would take
 * the lines from the device's cache on every message. A stack of free
 * heads would reverse the order each time it refilled.
 */
static void test_in_order_use_keeps_avail_entries(void **state)
{
	struct harness *h = *state;
	struct vring_avail *avail = harness_avail(h);
	uint16_t first[64];
	int cookie[64];

	assert_true(h->num <= 64);
	for (int round = 0; round < 3; round++) {
		for (uint16_t i = 0; i < h->num; i++) {
			struct virtqueue_buf b = { h->bufs + 16u * i, 16, false };

			assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &cookie[i]), 0);
		}
		for (uint16_t i = 0; i < h->num; i++) {
			uint16_t head;

			assert_non_null(virtqueue_get_available_buffer(h->dev, &head, NULL));
			assert_int_equal(virtqueue_add_consumed_buffer(h->dev, head, 0), 0);
		}
		for (uint16_t i = 0; i < h->num; i++) {
			assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &cookie[i]);
			if (round == 0)
				first[i] = avail->ring[i];
			else
				assert_int_equal(avail->ring[i], first[i]);
		}
	}
	/* Used out of order, heads come back in the order they were used. */
	for (uint16_t i = 0; i < 2; i++) {
		struct virtqueue_buf b = { h->bufs + 16u * i, 16, false };

		assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &cookie[i]), 0);
	}
	{
		uint16_t h0, h1;

		assert_non_null(virtqueue_get_available_buffer(h->dev, &h0, NULL));
		assert_non_null(virtqueue_get_available_buffer(h->dev, &h1, NULL));
		assert_int_equal(virtqueue_add_consumed_buffer(h->dev, h1, 0), 0);
		assert_int_equal(virtqueue_add_consumed_buffer(h->dev, h0, 0), 0);
		assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &cookie[1]);
		assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &cookie[0]);
		/* num - 2 heads were free before these two came back. */
		for (uint16_t i = 0; i + 2 < h->num; i++) {
			struct virtqueue_buf b = { h->bufs, 16, false };
			uint16_t head;

			assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &cookie[2]), 0);
			assert_non_null(virtqueue_get_available_buffer(h->dev, &head, NULL));
			assert_true(head != h0 && head != h1);
		}
		{
			struct virtqueue_buf b = { h->bufs, 16, false };
			uint16_t head;

			assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &cookie[2]), 0);
			assert_non_null(virtqueue_get_available_buffer(h->dev, &head, NULL));
			assert_int_equal(head, h1);
		}
	}
	assert_false(virtqueue_is_broken(h->drv));
	assert_false(virtqueue_is_broken(h->dev));
}

static void test_out_of_order_completion(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b = { h->bufs, 8, true };
	int c[3];
	uint16_t heads[3];
	int i;

	for (i = 0; i < 3; i++) {
		assert_int_equal(virtqueue_add_buffer(h->drv, &b, 0, 1, &c[i]), 0);
		assert_non_null(virtqueue_get_available_buffer(h->dev, &heads[i], NULL));
	}
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[2], 1), 0);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[0], 2), 0);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &c[2]);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &c[0]);
	assert_null(virtqueue_get_buffer(h->drv, NULL, NULL));
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[1], 3), 0);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &c[1]);
}

/* Take every available chain on the device side; heads in order. */
static void take_all(struct harness *h, uint16_t *heads, int n)
{
	struct virtqueue_buf vb[4];
	size_t cnt;

	for (int i = 0; i < n; i++) {
		int head = vhost_get_vq_buffers(h->dev, vb, 4, &cnt);

		assert_true(head >= 0);
		heads[i] = (uint16_t)head;
	}
}

static void test_get_buffers_takes_a_batch_in_used_order(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf chain[2] = { { h->bufs + 256, 8, true }, { h->bufs + 264, 8, true } };
	struct virtqueue_state st;
	uint32_t lens[8];
	uint16_t heads[6];
	void *got[8];
	int c[9];

	/* Five lone buffers and, fourth, a chain of two: seven descriptors. */
	for (int i = 0; i < 6; i++) {
		if (i == 3)
			assert_int_equal(virtqueue_add_buffer(h->drv, chain, 0, 2, &c[i]), 0);
		else
			assert_int_equal(virtqueue_add_one(h->drv, h->bufs + 16 * i, 16, true, &c[i]), 0);
	}
	take_all(h, heads, 6);
	assert_int_equal(virtqueue_get_buffers(h->drv, got, lens, 8), 0); /* none used yet */
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[1], 1), 0);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[0], 2), 0);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[3], 16), 0);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[2], 4), 0);

	/* As many as asked for, in the order the device used them, the chain
	 * among them; then the rest. */
	assert_int_equal(virtqueue_get_buffers(h->drv, got, lens, 3), 3);
	assert_ptr_equal(got[0], &c[1]);
	assert_ptr_equal(got[1], &c[0]);
	assert_ptr_equal(got[2], &c[3]);
	assert_int_equal(lens[0], 1);
	assert_int_equal(lens[1], 2);
	assert_int_equal(lens[2], 16);
	assert_int_equal(virtqueue_get_buffers(h->drv, got, lens, 8), 1);
	assert_ptr_equal(got[0], &c[2]);
	assert_int_equal(lens[0], 4);
	assert_int_equal(virtqueue_get_buffers(h->drv, got, lens, 8), 0);

	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[4], 0), 0);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[5], 0), 0);
	assert_int_equal(virtqueue_get_buffers(h->drv, got, NULL, 0), 0); /* room for none */
	assert_int_equal(virtqueue_get_buffers(h->drv, got, NULL, 8), 2);
	assert_ptr_equal(got[0], &c[4]);
	assert_ptr_equal(got[1], &c[5]);

	/* Every descriptor came back: eight lone buffers fit, a ninth not. */
	virtqueue_get_state(h->drv, &st);
	assert_int_equal(st.free, 8);
	assert_false(st.broken);
	for (int i = 0; i < 8; i++)
		assert_int_equal(virtqueue_add_one(h->drv, h->bufs + 16 * i, 16, true, &c[i]), 0);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs, 8, false, &c[8]), -ENOSPC);
	/* Under EVENT_IDX the driver still asks to hear of the next entry. */
	if (h->features & EVENT_IDX)
		assert_int_equal(raw_used_event(h), 6);
}

static void test_get_buffers_rejects_bad_arguments(void **state)
{
	struct harness *h = *state;
	void *got[2];
	int c;

	assert_int_equal(virtqueue_add_one(h->drv, h->bufs, 16, false, &c), 0);
	assert_int_equal(virtqueue_get_buffers(NULL, got, NULL, 2), -EINVAL);
	assert_int_equal(virtqueue_get_buffers(h->dev, got, NULL, 2), -EINVAL);
	assert_int_equal(virtqueue_get_buffers(h->drv, NULL, NULL, 2), -EINVAL);
	assert_false(virtqueue_is_broken(h->drv));
}

static void test_add_bufs_adds_each_its_own_cookie(void **state)
{
	struct harness *h = *state;
	void *bufs[10];
	uint8_t local[8];
	struct virtqueue_buf vb[2];
	struct virtqueue_state st;
	uint16_t head;
	size_t cnt;

	for (int i = 0; i < 10; i++)
		bufs[i] = h->bufs + 32 * i;
	assert_int_equal(virtqueue_add_bufs(h->drv, bufs, 0, 32, true), 0);
	assert_int_equal(virtqueue_add_bufs(h->drv, bufs, 3, 32, true), 3);
	assert_int_equal(raw_avail_idx(h), 3);
	for (int i = 0; i < 3; i++) {
		int head = vhost_get_vq_buffers(h->dev, vb, 2, &cnt);

		assert_true(head >= 0);
		assert_int_equal(cnt, 1);
		assert_ptr_equal(vb[0].buf, bufs[i]);
		assert_int_equal(vb[0].len, 32);
		assert_true(vb[0].writable);
		assert_int_equal(virtqueue_add_consumed_buffer(h->dev, (uint16_t)head, 32), 0);
		assert_int_equal(virtqueue_add_consumed_buffer(h->dev, (uint16_t)head, 0), -EINVAL);
	}
	for (int i = 0; i < 3; i++)
		assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), bufs[i]);
	/* One that ends at the window's last byte goes; a byte longer does
	 * not. Taken and given back at once. */
	bufs[0] = h->bufs + h->bufsize - 32;
	assert_int_equal(virtqueue_add_bufs(h->drv, bufs, 1, 33, false), -EINVAL);
	assert_int_equal(virtqueue_add_bufs(h->drv, bufs, 1, 32, false), 1);
	assert_ptr_equal(virtqueue_get_available_buffer(h->dev, &head, NULL), bufs[0]);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, head, 0), 0);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), bufs[0]);
	bufs[0] = h->bufs;

	/* A buffer that cannot go ends the batch; those before it went, it
	 * and those after did not. */
	bufs[1] = local;
	assert_int_equal(virtqueue_add_bufs(h->drv, bufs, 3, 32, false), 1);
	bufs[1] = NULL;
	assert_int_equal(virtqueue_add_bufs(h->drv, bufs + 1, 2, 32, false), -EINVAL);
	bufs[1] = h->bufs + 32;
	assert_int_equal(virtqueue_add_bufs(h->drv, bufs, 1, (uint32_t)h->bufsize + 1, false),
			 -EINVAL); /* runs past the window */
	virtqueue_get_state(h->drv, &st);
	assert_int_equal(st.free, 7);
	assert_int_equal(st.avail_idx, 5);
	assert_false(st.broken);
	/* Seven free: seven of nine go, then none. */
	assert_int_equal(virtqueue_add_bufs(h->drv, bufs + 1, 9, 32, false), 7);
	assert_int_equal(virtqueue_add_bufs(h->drv, bufs, 1, 32, false), -ENOSPC);
	assert_int_equal(raw_avail_idx(h), 12);
	for (int i = 0; i < 8; i++) {
		assert_non_null(virtqueue_get_available_buffer(h->dev, &(uint16_t){ 0 }, NULL));
	}
	assert_null(virtqueue_get_available_buffer(h->dev, &(uint16_t){ 0 }, NULL));

	assert_int_equal(virtqueue_add_bufs(NULL, bufs, 1, 32, false), -EINVAL);
	assert_int_equal(virtqueue_add_bufs(h->dev, bufs, 1, 32, false), -EINVAL);
	assert_int_equal(virtqueue_add_bufs(h->drv, NULL, 1, 32, false), -EINVAL);
	assert_int_equal(virtqueue_add_bufs(h->drv, NULL, 0, 32, false), 0);
}

static void test_add_consumed_buffers_returns_a_batch(void **state)
{
	struct harness *h = *state;
	uint16_t heads[5], batch[3];
	uint32_t lens[3] = { 5, 0, 16 }, len;
	int c[5];

	for (int i = 0; i < 5; i++)
		assert_int_equal(virtqueue_add_one(h->drv, h->bufs + 16 * i, 16, i != 1, &c[i]), 0);
	take_all(h, heads, 5);

	/* In the order given, each with its length. */
	batch[0] = heads[2];
	batch[1] = heads[1];
	batch[2] = heads[0];
	assert_int_equal(virtqueue_add_consumed_buffers(h->dev, batch, lens, 0), 0);
	/* Only heads[0..n) go back, though the next is one this side took. */
	assert_int_equal(virtqueue_add_consumed_buffers(h->dev, batch, lens, 2), 2);
	assert_int_equal(harness_used(h)->idx, 2);
	assert_int_equal(virtqueue_add_consumed_buffers(h->dev, batch + 2, lens + 2, 1), 1);
	assert_int_equal(harness_used(h)->idx, 3);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, &len, NULL), &c[2]);
	assert_int_equal(len, 5);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, &len, NULL), &c[1]);
	assert_int_equal(len, 0);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, &len, NULL), &c[0]);
	assert_int_equal(len, 16);

	/* A head refused ends the batch: one returned twice, one never
	 * taken, a length past the buffer. */
	batch[0] = heads[3];
	batch[1] = heads[3];
	assert_int_equal(virtqueue_add_consumed_buffers(h->dev, batch, NULL, 2), 1);
	assert_int_equal(virtqueue_add_consumed_buffers(h->dev, batch, NULL, 1), -EINVAL);
	batch[0] = 7;
	assert_int_equal(virtqueue_add_consumed_buffers(h->dev, batch, NULL, 1), -EINVAL);
	batch[0] = 200;
	assert_int_equal(virtqueue_add_consumed_buffers(h->dev, batch, NULL, 1), -EINVAL);
	batch[0] = 8; /* num: one past the table */
	assert_int_equal(virtqueue_add_consumed_buffers(h->dev, batch, NULL, 1), -EINVAL);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, 8, 0), -EINVAL);
	batch[0] = heads[4];
	lens[0] = 17;
	assert_int_equal(virtqueue_add_consumed_buffers(h->dev, batch, lens, 1), -EINVAL);
	assert_int_equal(harness_used(h)->idx, 4);
	assert_false(virtqueue_is_broken(h->dev));
	lens[0] = 16;
	assert_int_equal(virtqueue_add_consumed_buffers(h->dev, batch, lens, 1), 1);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, &len, NULL), &c[3]);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, &len, NULL), &c[4]);
	assert_int_equal(len, 16);

	assert_int_equal(virtqueue_add_consumed_buffers(NULL, batch, NULL, 1), -EINVAL);
	assert_int_equal(virtqueue_add_consumed_buffers(h->drv, batch, NULL, 1), -EINVAL);
	assert_int_equal(virtqueue_add_consumed_buffers(h->dev, NULL, NULL, 1), -EINVAL);
}

/* A batch of sized buffers: each reaches the device with its own length,
 * and the device may write no more than it; a length that leaves the
 * window ends the batch there. */
static void test_add_bufs_sized_gives_each_its_length(void **state)
{
	struct harness *h = *state;
	void *bufs[4];
	uint32_t lens[4] = { 17, 1, 100, 32 };
	struct virtqueue_buf vb[1];
	size_t cnt;

	for (int i = 0; i < 4; i++)
		bufs[i] = h->bufs + 128 * i;
	assert_int_equal(virtqueue_add_bufs_sized(h->drv, bufs, NULL, 4, false), -EINVAL);
	assert_int_equal(virtqueue_add_bufs_sized(h->drv, bufs, lens, 0, false), 0);
	assert_int_equal(virtqueue_add_bufs_sized(h->drv, bufs, lens, 4, true), 4);
	assert_int_equal(raw_avail_idx(h), 4);
	for (int i = 0; i < 4; i++) {
		int head = vhost_get_vq_buffers(h->dev, vb, 1, &cnt);

		assert_true(head >= 0);
		assert_ptr_equal(vb[0].buf, bufs[i]);
		assert_int_equal(vb[0].len, lens[i]);
		assert_int_equal(virtqueue_add_consumed_buffer(h->dev, (uint16_t)head, lens[i] + 1),
				 -EINVAL);
		assert_int_equal(virtqueue_add_consumed_buffer(h->dev, (uint16_t)head, lens[i]), 0);
	}
	for (int i = 0; i < 4; i++)
		assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), bufs[i]);
	lens[2] = UINT32_MAX; /* past the window */
	assert_int_equal(virtqueue_add_bufs_sized(h->drv, bufs, lens, 4, false), 2);
	assert_int_equal(virtqueue_add_bufs_sized(h->drv, bufs + 2, lens + 2, 2, false), -EINVAL);
	assert_int_equal(raw_avail_idx(h), 6);
}

/* The index each side publishes moves with each add or return, and only
 * then: a take or a get publishes nothing. */
static void test_published_idx_moves_with_what_each_side_gives(void **state)
{
	struct harness *h = *state;
	uint16_t heads[2];
	int c[2];

	assert_int_equal(virtqueue_published_idx(h->drv), 0);
	assert_int_equal(virtqueue_published_idx(h->dev), 0);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs, 16, true, &c[0]), 0);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs + 16, 16, true, &c[1]), 0);
	assert_int_equal(virtqueue_published_idx(h->drv), 2);
	take_all(h, heads, 2);
	assert_int_equal(virtqueue_published_idx(h->dev), 0);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[0], 4), 0);
	assert_int_equal(virtqueue_published_idx(h->dev), 1);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &c[0]);
	assert_int_equal(virtqueue_published_idx(h->drv), 2);
	assert_int_equal(virtqueue_published_idx(h->dev), 1);
}

/* Where each side takes from moves with each take or get, and only then:
 * an add or a return takes nothing. */
static void test_taken_idx_moves_with_what_each_side_takes(void **state)
{
	struct harness *h = *state;
	uint16_t heads[2];
	int c[2];

	assert_int_equal(virtqueue_taken_idx(h->drv), 0);
	assert_int_equal(virtqueue_taken_idx(h->dev), 0);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs, 16, true, &c[0]), 0);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs + 16, 16, true, &c[1]), 0);
	assert_int_equal(virtqueue_taken_idx(h->drv), 0);
	assert_int_equal(virtqueue_taken_idx(h->dev), 0);
	take_all(h, heads, 2);
	assert_int_equal(virtqueue_taken_idx(h->dev), 2);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[0], 4), 0);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[1], 4), 0);
	assert_int_equal(virtqueue_taken_idx(h->dev), 2);
	assert_int_equal(virtqueue_taken_idx(h->drv), 0);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &c[0]);
	assert_int_equal(virtqueue_taken_idx(h->drv), 1);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &c[1]);
	assert_int_equal(virtqueue_taken_idx(h->drv), 2);
	assert_null(virtqueue_get_buffer(h->drv, NULL, NULL)); /* none left */
	assert_int_equal(virtqueue_taken_idx(h->drv), 2);
}

/* Each side reads the other's index as the other publishes it. */
static void test_peer_idx_is_what_the_other_side_published(void **state)
{
	struct harness *h = *state;
	uint16_t heads[1];
	int c;

	assert_int_equal(virtqueue_peer_idx(h->drv), 0);
	assert_int_equal(virtqueue_peer_idx(h->dev), 0);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs, 16, true, &c), 0);
	assert_int_equal(virtqueue_peer_idx(h->dev), 1);
	assert_int_equal(virtqueue_peer_idx(h->drv), 0);
	take_all(h, heads, 1);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[0], 4), 0);
	assert_int_equal(virtqueue_peer_idx(h->drv), 1);
	assert_int_equal(virtqueue_peer_idx(h->drv), virtqueue_published_idx(h->dev));
	assert_int_equal(virtqueue_peer_idx(h->dev), virtqueue_published_idx(h->drv));
}

/* ---- device role ---- */

static void test_get_vq_buffers_empty_is_enomem(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf vb[2];
	size_t cnt;

	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 2, &cnt), -ENOMEM);
	assert_null(virtqueue_get_available_buffer(h->dev, &(uint16_t){ 0 }, NULL));
	assert_false(virtqueue_is_broken(h->dev));
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 2, NULL), -EINVAL);
	assert_int_equal(vhost_get_vq_buffers(h->drv, vb, 2, &cnt), -EINVAL);
}

static void test_get_available_buffers_takes_lone_buffers(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf chain[2] = { { h->bufs + 256, 8, false }, { h->bufs + 264, 8, true } };
	struct virtqueue_buf vb[8];
	uint16_t heads[8], chain_head;
	size_t cnt;
	int c[5], head;

	for (int i = 0; i < 3; i++)
		assert_int_equal(virtqueue_add_one(h->drv, h->bufs + 16 * i, 16, i == 1, &c[i]), 0);
	assert_int_equal(virtqueue_add_buffer(h->drv, chain, 1, 1, &c[3]), 0);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs + 48, 16, true, &c[4]), 0);

	assert_int_equal(virtqueue_get_available_buffers(h->dev, vb, heads, 0), 0);
	assert_int_equal(virtqueue_get_available_buffers(h->dev, vb, heads, 8), 3);
	for (int i = 0; i < 3; i++) {
		assert_ptr_equal(vb[i].buf, h->bufs + 16 * i);
		assert_int_equal(vb[i].len, 16);
		assert_int_equal(vb[i].writable, i == 1);
	}
	/* The chain stops the batch and stays for the single take. */
	assert_int_equal(virtqueue_get_available_buffers(h->dev, vb, heads + 3, 8), 0);
	assert_false(virtqueue_is_broken(h->dev));
	head = vhost_get_vq_buffers(h->dev, vb, 8, &cnt);
	assert_true(head >= 0);
	assert_int_equal(cnt, 2);
	chain_head = (uint16_t)head;
	assert_int_equal(virtqueue_get_available_buffers(h->dev, vb, heads + 3, 8), 1);
	assert_ptr_equal(vb[0].buf, h->bufs + 48);
	assert_int_equal(virtqueue_get_available_buffers(h->dev, vb, heads, 8), 0);

	/* Taken means in flight: each goes back once, and the driver gets all. */
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[0], 0), 0);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[0], 0), -EINVAL);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[1], 16), 0);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[2], 0), 0);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, chain_head, 8), 0);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[3], 16), 0);
	for (int i = 0; i < 5; i++)
		assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &c[i]);

	assert_int_equal(virtqueue_get_available_buffers(NULL, vb, heads, 8), -EINVAL);
	assert_int_equal(virtqueue_get_available_buffers(h->drv, vb, heads, 8), -EINVAL);
	assert_int_equal(virtqueue_get_available_buffers(h->dev, NULL, heads, 8), -EINVAL);
	assert_int_equal(virtqueue_get_available_buffers(h->dev, vb, NULL, 8), -EINVAL);
}

static void test_get_vq_buffers_small_array_loses_nothing(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b[3] = { { h->bufs, 1, false }, { h->bufs + 1, 2, false },
				      { h->bufs + 3, 3, false } };
	struct virtqueue_buf vb[3];
	size_t cnt = 0;
	int cookie, head;

	assert_int_equal(virtqueue_add_buffer(h->drv, b, 2, 1, &cookie), 0);
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 2, &cnt), -EINVAL);
	assert_int_equal(cnt, 3); /* says how many it needs */
	assert_false(virtqueue_is_broken(h->dev));
	head = vhost_get_vq_buffers(h->dev, vb, 3, &cnt);
	assert_int_equal(head, 0);
	assert_int_equal(cnt, 3);
	assert_int_equal(vb[1].len, 2);
	assert_int_equal(vb[2].len, 3);
	assert_true(vb[2].writable);
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 3, &cnt), -ENOMEM);
}

static void test_get_available_buffer_takes_whole_chain(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b[2] = { { h->bufs, 5, false }, { h->bufs + 5, 7, false } };
	uint16_t head = 77;
	uint32_t len = 0;
	int cookie;
	void *p;

	assert_int_equal(virtqueue_add_buffer(h->drv, b, 1, 1, &cookie), 0);
	p = virtqueue_get_available_buffer(h->dev, &head, &len);
	assert_ptr_equal(p, h->bufs);
	assert_int_equal(len, 5);
	assert_int_equal(head, 0);
	assert_null(virtqueue_get_available_buffer(h->dev, &head, &len));
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, 0, 7), 0);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, &len, NULL), &cookie);
	assert_int_equal(len, 7);
}

static void test_add_consumed_rejects_heads_not_taken(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b = { h->bufs, 8, true };
	uint16_t head;
	int cookie;

	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, 0, 0), -EINVAL);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, 8, 0), -EINVAL);
	assert_int_equal(virtqueue_add_consumed_buffer(h->drv, 0, 0), -EINVAL);
	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 0, 1, &cookie), 0);
	assert_non_null(virtqueue_get_available_buffer(h->dev, &head, NULL));
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, head, 8), 0);
	/* Returning it twice is a caller bug, refused. */
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, head, 8), -EINVAL);
	assert_false(virtqueue_is_broken(h->dev));
	assert_int_equal(harness_used(h)->idx, 1);
}

/* ---- indirect ---- */

static void test_indirect_chain_round_trip(void **state)
{
	struct harness h;
	struct virtqueue_buf b[4], vb[4];
	struct virtqueue_state st;
	size_t cnt;
	uint32_t len;
	int cookie, head, i;

	(void)state;
	harness_init(&h, 4, INDIRECT, 8, 4096, 3);
	for (i = 0; i < 4; i++)
		b[i] = (struct virtqueue_buf){ h.bufs + 100 * i, 10u + (uint32_t)i, false };
	assert_int_equal(virtqueue_add_buffer(h.drv, b, 2, 2, &cookie), 0);
	virtqueue_get_state(h.drv, &st);
	assert_int_equal(st.free, 3); /* one ring descriptor for four buffers */
	assert_int_equal(((struct vring_desc *)(void *)h.ring)[0].flags, VRING_DESC_F_INDIRECT);
	head = vhost_get_vq_buffers(h.dev, vb, 4, &cnt);
	assert_int_equal(head, 0);
	assert_int_equal(cnt, 4);
	for (i = 0; i < 4; i++) {
		assert_ptr_equal(vb[i].buf, h.bufs + 100 * i);
		assert_int_equal(vb[i].len, 10 + i);
		assert_int_equal(vb[i].writable, i >= 2);
	}
	assert_int_equal(virtqueue_add_consumed_buffer(h.dev, 0, 25), 0);
	assert_ptr_equal(virtqueue_get_buffer(h.drv, &len, NULL), &cookie);
	assert_int_equal(len, 25);
	virtqueue_get_state(h.drv, &st);
	assert_int_equal(st.free, 4);
	/* A lone buffer is a direct descriptor: a table of one would cost the
	 * device a second read for nothing. */
	assert_int_equal(virtqueue_add_buffer(h.drv, b, 1, 0, &cookie), 0);
	head = vhost_get_vq_buffers(h.dev, vb, 4, &cnt);
	assert_true(head >= 0);
	assert_int_equal(cnt, 1);
	assert_int_equal(((struct vring_desc *)(void *)h.ring)[head].flags, 0);
	assert_ptr_equal(vb[0].buf, h.bufs);
	assert_int_equal(virtqueue_add_consumed_buffer(h.dev, (uint16_t)head, 0), 0);
	assert_ptr_equal(virtqueue_get_buffer(h.drv, &len, NULL), &cookie);
	/* A buffer outside the window refuses the whole indirect chain, and
	 * nothing is taken or published. */
	b[3].buf = h.bufs + h.bufsize - 4;
	assert_int_equal(virtqueue_add_buffer(h.drv, b, 2, 2, &cookie), -EINVAL);
	virtqueue_get_state(h.drv, &st);
	assert_int_equal(st.free, 4);
	assert_int_equal(st.avail_idx, 2);
	harness_fini(&h);
}

/* A ring set up over memory that held anything (a region reused, a
 * heap that is not zeroed): each queue writes every word it reads before
 * the peer has, and the chains, direct and indirect, and the notifications
 * come out as over zeroed memory. Under MemorySanitizer the region is
 * marked unwritten, so a read of it ahead of any write is reported. */
static void test_ring_over_dirty_memory(void **state)
{
	const uint64_t features[] = { INDIRECT, INDIRECT | EVENT_IDX };
	size_t f;

	(void)state;
	for (f = 0; f < sizeof(features) / sizeof(features[0]); f++) {
		struct harness h;
		struct virtqueue_buf b[10], vb[10];
		size_t cnt;
		uint32_t len;
		int cookie[3], head, i, round;

		harness_init_dirty(&h, 16, features[f], 8, 4096, 3);
		for (i = 0; i < 10; i++)
			b[i] = (struct virtqueue_buf){ h.bufs + 64 * i, 8u + (uint32_t)i, false };
		/* Twice: the second time through, each slot is rewritten. */
		for (round = 0; round < 2; round++) {
			assert_int_equal(virtqueue_add_buffer(h.drv, b, 2, 2, &cookie[0]), 0);
			assert_int_equal(virtqueue_add_buffer(h.drv, b, 1, 0, &cookie[1]), 0);
			/* Longer than a table: a direct chain. */
			assert_int_equal(virtqueue_add_buffer(h.drv, b, 6, 4, &cookie[2]), 0);
			virtqueue_kick(h.drv);
			assert_int_equal(h.drv_notified, (unsigned int)round + 1u);
			for (i = 0; i < 3; i++) {
				size_t want = i == 0 ? 4 : i == 1 ? 1 : 10;
				size_t k;

				head = vhost_get_vq_buffers(h.dev, vb, 10, &cnt);
				assert_true(head >= 0);
				assert_int_equal(cnt, want);
				for (k = 0; k < want; k++) {
					assert_ptr_equal(vb[k].buf, b[k].buf);
					assert_int_equal(vb[k].len, b[k].len);
					assert_int_equal(vb[k].writable,
							 k >= (i == 0 ? 2u : i == 1 ? 1u : 6u));
				}
				/* The lone buffer is readable: nothing written to it. */
				assert_int_equal(virtqueue_add_consumed_buffer(h.dev, (uint16_t)head,
									     i == 1 ? 0u : 5u + (uint32_t)i), 0);
			}
			assert_int_equal(vhost_get_vq_buffers(h.dev, vb, 10, &cnt), -ENOMEM);
			virtqueue_kick(h.dev);
			assert_int_equal(h.dev_notified, (unsigned int)round + 1u);
			for (i = 0; i < 3; i++) {
				assert_ptr_equal(virtqueue_get_buffer(h.drv, &len, NULL), &cookie[i]);
				assert_int_equal(len, i == 1 ? 0 : 5 + i);
			}
			assert_null(virtqueue_get_buffer(h.drv, &len, NULL));
		}
		assert_int_equal(h.faults, 0);
		harness_fini(&h);
	}
}

static void test_indirect_unused_without_feature(void **state)
{
	struct harness h;
	struct virtqueue_buf b[2];
	struct virtqueue_state st;
	int cookie;

	(void)state;
	/* An indirect area is configured, but the feature was not negotiated. */
	harness_init(&h, 4, 0, 8, 4096, 3);
	b[0] = (struct virtqueue_buf){ h.bufs, 4, false };
	b[1] = (struct virtqueue_buf){ h.bufs + 4, 4, false };
	assert_int_equal(virtqueue_add_buffer(h.drv, b, 2, 0, &cookie), 0);
	virtqueue_get_state(h.drv, &st);
	assert_int_equal(st.free, 2);
	harness_fini(&h);
}

/* ---- notification suppression ---- */

/* The hint a callback stops on: true while the last look saw more than was
 * taken, false once a take empties it; buffers that came after the look are
 * not claimed (a look finds them), and a wild peer index only costs a look
 * that refuses it. */
static void test_seen_more_tracks_the_last_look(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf vb;
	size_t cnt = 0;
	int c[3];

	assert_false(virtqueue_seen_more(h->drv));
	assert_false(virtqueue_seen_more(h->dev));
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs, 64, false, &c[0]), 0);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs + 64, 64, false, &c[1]), 0);
	assert_false(virtqueue_seen_more(h->dev)); /* not looked yet */
	assert_int_equal(vhost_get_vq_buffers(h->dev, &vb, 1, &cnt), 0);
	assert_true(virtqueue_seen_more(h->dev));
	assert_int_equal(vhost_get_vq_buffers(h->dev, &vb, 1, &cnt), 1);
	assert_false(virtqueue_seen_more(h->dev));
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs + 128, 64, false, &c[2]), 0);
	assert_false(virtqueue_seen_more(h->dev)); /* came after the look */
	assert_int_equal(virtqueue_enable_cb(h->dev), 1); /* a look finds it */
	assert_true(virtqueue_seen_more(h->dev));
	assert_int_equal(vhost_get_vq_buffers(h->dev, &vb, 1, &cnt), 2);
	assert_false(virtqueue_seen_more(h->dev));

	for (uint16_t head = 0; head < 3; head++)
		assert_int_equal(virtqueue_add_consumed_buffer(h->dev, head, 0), 0);
	assert_false(virtqueue_seen_more(h->drv));
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &c[0]);
	assert_true(virtqueue_seen_more(h->drv));
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &c[1]);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &c[2]);
	assert_false(virtqueue_seen_more(h->drv));

	/* A used index far ahead of anything added: seen, then refused. */
	raw_used_set_idx(h, 200);
	assert_null(virtqueue_get_buffer(h->drv, NULL, NULL));
	assert_true(virtqueue_is_broken(h->drv));
}

static void test_kick_honours_no_notify(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b = { h->bufs, 8, false };
	int cookie;

	virtqueue_kick(h->drv); /* nothing added: no notification */
	assert_int_equal(h->drv_notified, 0);
	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &cookie), 0);
	virtqueue_kick(h->drv);
	assert_int_equal(h->drv_notified, 1);
	virtqueue_kick(h->drv); /* nothing new */
	assert_int_equal(h->drv_notified, 1);

	virtqueue_disable_cb(h->dev); /* device sets VRING_USED_F_NO_NOTIFY */
	assert_int_equal(harness_used(h)->flags, VRING_USED_F_NO_NOTIFY);
	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &cookie), 0);
	virtqueue_kick(h->drv);
	assert_int_equal(h->drv_notified, 1);
	/* Re-enabling reports the buffer that came while notifications were off. */
	assert_int_equal(virtqueue_enable_cb(h->dev), 1);
	assert_int_equal(harness_used(h)->flags, 0);
	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &cookie), 0);
	virtqueue_kick(h->drv);
	assert_int_equal(h->drv_notified, 2);
}

static void test_device_kick_honours_no_interrupt(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b = { h->bufs, 8, true };
	uint16_t head;
	int cookie;

	assert_int_equal(virtqueue_enable_cb(h->drv), 0);
	virtqueue_disable_cb(h->drv);
	assert_int_equal(harness_avail(h)->flags, VRING_AVAIL_F_NO_INTERRUPT);
	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 0, 1, &cookie), 0);
	assert_non_null(virtqueue_get_available_buffer(h->dev, &head, NULL));
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, head, 1), 0);
	virtqueue_kick(h->dev);
	assert_int_equal(h->dev_notified, 0);
	/* The race: used arrived while callbacks were off, so enable says so. */
	assert_int_equal(virtqueue_enable_cb(h->drv), 1);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &cookie);
	assert_int_equal(virtqueue_enable_cb(h->drv), 0);

	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 0, 1, &cookie), 0);
	assert_non_null(virtqueue_get_available_buffer(h->dev, &head, NULL));
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, head, 1), 0);
	virtqueue_kick(h->dev);
	assert_int_equal(h->dev_notified, 1);
}

static void test_event_idx_driver_kick(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b = { h->bufs, 8, false };
	struct virtqueue_state st;
	uint16_t head;
	int c[6];
	int i;

	/* The device asks to be woken when avail passes 0 (its avail_event). */
	assert_int_equal(virtqueue_enable_cb(h->dev), 0);
	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &c[0]), 0);
	virtqueue_kick(h->drv);
	assert_int_equal(h->drv_notified, 1);
	/* Device has not taken it: its event word still says 0, so more adds
	 * need no further notification. */
	for (i = 1; i < 4; i++)
		assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &c[i]), 0);
	virtqueue_kick(h->drv);
	assert_int_equal(h->drv_notified, 1);
	virtqueue_get_state(h->drv, &st);
	assert_int_equal(st.stats.kicks_saved, 1);
	/* The device drains all four; taking them moves its event word to 4. */
	for (i = 0; i < 4; i++)
		assert_non_null(virtqueue_get_available_buffer(h->dev, &head, NULL));
	assert_int_equal(raw_avail_event(h), 4);
	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &c[4]), 0);
	virtqueue_kick(h->drv);
	assert_int_equal(h->drv_notified, 2);
	/* With callbacks off the device stops moving its event word. */
	virtqueue_disable_cb(h->dev);
	assert_non_null(virtqueue_get_available_buffer(h->dev, &head, NULL));
	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &c[5]), 0);
	virtqueue_kick(h->drv);
	assert_int_equal(h->drv_notified, 2);
	assert_int_equal(virtqueue_enable_cb(h->dev), 1);
}

static void test_event_idx_device_kick(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b = { h->bufs, 8, true };
	uint16_t heads[4];
	int c[4];
	int i;

	for (i = 0; i < 4; i++) {
		assert_int_equal(virtqueue_add_buffer(h->drv, &b, 0, 1, &c[i]), 0);
		assert_non_null(virtqueue_get_available_buffer(h->dev, &heads[i], NULL));
	}
	/* Driver wants a notification when used passes 0. */
	assert_int_equal(virtqueue_enable_cb(h->drv), 0);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[0], 1), 0);
	virtqueue_kick(h->dev);
	assert_int_equal(h->dev_notified, 1);
	/* Driver has not caught up: no more notifications until it does. */
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[1], 1), 0);
	virtqueue_kick(h->dev);
	assert_int_equal(h->dev_notified, 1);
	/* Driver takes both; its used_event moves to 2. */
	assert_non_null(virtqueue_get_buffer(h->drv, NULL, NULL));
	assert_non_null(virtqueue_get_buffer(h->drv, NULL, NULL));
	assert_int_equal(raw_used_event(h), 2);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[2], 1), 0);
	virtqueue_kick(h->dev);
	assert_int_equal(h->dev_notified, 2);
	/* Disabled: the event word stays behind; no notification. */
	virtqueue_disable_cb(h->drv);
	assert_non_null(virtqueue_get_buffer(h->drv, NULL, NULL));
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, heads[3], 1), 0);
	virtqueue_kick(h->dev);
	assert_int_equal(h->dev_notified, 2);
	assert_int_equal(virtqueue_enable_cb(h->drv), 1);
}

static void notification_cb(struct virtqueue *vq)
{
	(*(int *)vq->priv)++;
}

static void test_notification_runs_callback(void **state)
{
	struct harness *h = *state;
	int calls = 0;
	void *saved = h->drv->priv;

	h->drv->priv = &calls;
	h->drv->callback = notification_cb;
	virtqueue_notification(h->drv);
	virtqueue_notification(h->drv);
	assert_int_equal(calls, 2);
	h->drv->callback = NULL;
	virtqueue_notification(h->drv); /* no callback: nothing happens */
	h->drv->priv = saved;
}

static int poll_calls;

static void poll_cb(struct virtqueue *vq)
{
	(void)vq;
	poll_calls++;
}

/*
 * A side woken by its peer asks for the buffer at the entry it takes next,
 * not at the last look's: each case makes the entry at the other position
 * sound and the one at the right position faulty, or the reverse. No ask
 * for an entry naming no descriptor or one outside the window, with
 * callbacks off, or without a queue. Device role first, then driver role.
 */
static void test_prefetch_arrived_looks_where_this_side_takes_next(void **state)
{
	struct harness *h = *state;
	struct vring_avail *avail = harness_avail(h);
	uint16_t head, h0;
	int c;

	poll_calls = 0;
	h->drv->callback = poll_cb;
	h->dev->callback = poll_cb;
	assert_false(virtqueue_prefetch_arrived(NULL));
	/* Device: the driver's first buffer is at the position it takes from. */
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs, 64, false, &c), 0);
	h0 = duet_le16(avail->ring[0]);
	assert_true(virtqueue_prefetch_arrived(h->dev));
	virtqueue_disable_cb(h->dev);
	assert_false(virtqueue_prefetch_arrived(h->dev));
	virtqueue_enable_cb(h->dev);
	/* Taken: the next position is 1, whatever entry 0 still says. */
	assert_non_null(virtqueue_get_available_buffer(h->dev, &head, NULL));
	avail->ring[1] = duet_le16(0xffff);
	assert_false(virtqueue_prefetch_arrived(h->dev));
	avail->ring[1] = duet_le16(h0);
	assert_true(virtqueue_prefetch_arrived(h->dev));
	raw_desc(h, (uint16_t)(h->num - 1), harness_da(h, h->region) + h->size + 4096, 64, 0, 0);
	avail->ring[1] = duet_le16((uint16_t)(h->num - 1));
	assert_false(virtqueue_prefetch_arrived(h->dev));
	/* Driver: its buffer came back at used position 0 and was taken, so
	 * it takes from position 1 next, the avail entry there naming the
	 * buffer the device fills next (used in order). */
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, head, 0), 0);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &c);
	avail->ring[1] = duet_le16(h0);
	avail->ring[0] = duet_le16(0xffff);
	assert_true(virtqueue_prefetch_arrived(h->drv));
	avail->ring[0] = duet_le16(h0);
	avail->ring[1] = duet_le16(0xffff);
	assert_false(virtqueue_prefetch_arrived(h->drv));
	assert_int_equal(poll_calls, 0); /* asking runs nothing */
	h->drv->callback = NULL;
	h->dev->callback = NULL;
}

/* A side that polls its rings runs the callback exactly when a
 * notification would be due: callbacks on and the peer's index moved since
 * the callback last ran from here, once per move, as a doorbell rings once
 * per kick; a move while callbacks were off is found once they are on;
 * never on a broken queue. */
static void test_poll_runs_the_callback_for_untaken_work(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf vb;
	size_t cnt = 0;
	int c;

	poll_calls = 0;
	h->drv->callback = poll_cb;
	h->dev->callback = poll_cb;
	assert_false(virtqueue_poll(h->dev));
	assert_false(virtqueue_poll(h->drv));
	assert_int_equal(poll_calls, 0);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs, 64, false, &c), 0);
	assert_true(virtqueue_poll(h->dev));
	assert_false(virtqueue_poll(h->dev)); /* not taken, but rung for already */
	assert_int_equal(poll_calls, 1);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs + 64, 64, false, &c), 0);
	assert_true(virtqueue_poll(h->dev)); /* a new one: rung again */
	assert_int_equal(poll_calls, 2);
	assert_int_equal(vhost_get_vq_buffers(h->dev, &vb, 1, &cnt), 0);
	assert_int_equal(vhost_get_vq_buffers(h->dev, &vb, 1, &cnt), 1);
	assert_false(virtqueue_poll(h->dev));
	virtqueue_disable_cb(h->drv);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, 0, 0), 0);
	assert_false(virtqueue_poll(h->drv)); /* callbacks off: the owner looks */
	assert_int_equal(poll_calls, 2);
	assert_int_equal(virtqueue_enable_cb(h->drv), 1);
	assert_true(virtqueue_poll(h->drv)); /* the move it did not ring for */
	assert_int_equal(poll_calls, 3);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &c);
	assert_false(virtqueue_poll(h->drv));
	/* A lying used index breaks the queue when taken; then never again,
	 * though the index moves again. */
	raw_used_set_idx(h, 200);
	assert_true(virtqueue_poll(h->drv));
	assert_null(virtqueue_get_buffer(h->drv, NULL, NULL));
	assert_true(virtqueue_is_broken(h->drv));
	raw_used_set_idx(h, 201);
	assert_false(virtqueue_poll(h->drv));
	assert_int_equal(poll_calls, 4);
	h->drv->callback = NULL;
	h->dev->callback = NULL;
}

/* virtqueue_poll_many's table, and what its device callback does. */
static _Atomic(struct virtqueue *) poll_table[3];
static bool answer_and_withdraw;

/* The device side's callback: count, and (when asked) answer at once on
 * the ring, which moves what the driver polls, and withdraw the driver's
 * queue from the table, as a transport deleting its queues would. */
static void answering_cb(struct virtqueue *vq)
{
	struct virtqueue_buf vb;
	size_t cnt = 0;
	int h;

	poll_calls++;
	if (!answer_and_withdraw)
		return;
	h = vhost_get_vq_buffers(vq, &vb, 1, &cnt);
	assert_true(h >= 0);
	assert_int_equal(virtqueue_add_consumed_buffer(vq, (uint16_t)h, 0), 0);
	atomic_store(&poll_table[2], NULL);
}

/* One call looks at a table of queues as virtqueue_poll would at each:
 * entries NULL skipped, each loaded afresh (a queue withdrawn by an
 * earlier callback of the same look is not run), and this side's
 * published indices summed before any callback, so that an answer given
 * in a callback shows on the next look, not in this one's sum.
 * virtqueue_poll_pending says whether such a look would run anything,
 * and changes nothing. */
static void test_poll_many_looks_at_a_table(void **state)
{
	struct harness *h = *state;
	uint32_t published = 12345;
	int c;

	poll_calls = 0;
	answer_and_withdraw = false;
	h->drv->callback = poll_cb;
	h->dev->callback = answering_cb;
	atomic_store(&poll_table[0], h->dev);
	atomic_store(&poll_table[1], NULL);
	atomic_store(&poll_table[2], h->drv);
	assert_int_equal(virtqueue_poll_many(poll_table, 3, &published), 0);
	assert_int_equal(published, 0);
	assert_false(virtqueue_poll_pending(poll_table, 3));
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs, 64, false, &c), 0);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs + 64, 64, false, &c), 0);
	/* The device's queue has news; the driver's has none. Asking whether
	 * a look would run anything changes nothing: twice yes, then the look
	 * runs it, then no. */
	assert_true(virtqueue_poll_pending(poll_table, 3));
	assert_true(virtqueue_poll_pending(poll_table, 3));
	assert_int_equal(poll_calls, 0);
	assert_int_equal(virtqueue_poll_many(poll_table, 3, &published), 1);
	assert_false(virtqueue_poll_pending(poll_table, 3));
	assert_int_equal(poll_calls, 1);
	assert_int_equal(published, virtqueue_published_idx(h->drv) + virtqueue_published_idx(h->dev));
	assert_int_equal(published, 2);
	/* Nothing new: nothing runs, the sum is the same. */
	assert_int_equal(virtqueue_poll_many(poll_table, 3, &published), 0);
	assert_int_equal(published, 2);
	/* The device's callback answers, which is news for the driver's
	 * queue, and withdraws it: the sum is from before the answer, and the
	 * withdrawn queue's callback does not run. */
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs + 128, 64, false, &c), 0);
	answer_and_withdraw = true;
	assert_int_equal(virtqueue_poll_many(poll_table, 3, &published), 1);
	assert_int_equal(poll_calls, 2);
	assert_int_equal(published, 3);
	assert_int_equal(virtqueue_published_idx(h->dev), 1);
	/* Back in the table, the driver's queue finds the answer; with its
	 * callbacks off, nothing is pending for it. */
	answer_and_withdraw = false;
	atomic_store(&poll_table[2], h->drv);
	virtqueue_disable_cb(h->drv);
	assert_false(virtqueue_poll_pending(poll_table, 3));
	assert_int_equal(virtqueue_enable_cb(h->drv), 1);
	assert_true(virtqueue_poll_pending(poll_table, 3));
	assert_int_equal(virtqueue_poll_many(poll_table, 3, &published), 1);
	assert_int_equal(poll_calls, 3);
	assert_int_equal(published, 4);
	/* Only vqs[0..n) is read: news for the driver's queue, just past a
	 * table of two, is neither pending, nor run, nor summed. */
	{
		struct virtqueue_buf vb;
		size_t cnt = 0;
		int head = vhost_get_vq_buffers(h->dev, &vb, 1, &cnt);

		assert_true(head >= 0);
		assert_int_equal(virtqueue_add_consumed_buffer(h->dev, (uint16_t)head, 0), 0);
	}
	assert_false(virtqueue_poll_pending(poll_table, 2));
	assert_int_equal(virtqueue_poll_many(poll_table, 2, &published), 0);
	assert_int_equal(published, virtqueue_published_idx(h->dev));
	assert_int_equal(poll_calls, 3);
	assert_true(virtqueue_poll_pending(poll_table, 3));
	/* A table of exactly n entries on the heap: AddressSanitizer reports
	 * a read past it, as of one whose queues change nothing seen here. */
	{
		_Atomic(struct virtqueue *) *tbl = malloc(3 * sizeof(*tbl));

		assert_non_null(tbl);
		for (int i = 0; i < 3; i++)
			atomic_store(&tbl[i], atomic_load(&poll_table[i]));
		virtqueue_prefetch_many(tbl, 3);
		assert_true(virtqueue_poll_pending(tbl, 3));
		assert_int_equal(virtqueue_poll_many(tbl, 3, &published), 1);
		assert_int_equal(poll_calls, 4);
		free(tbl);
	}
	h->drv->callback = NULL;
	h->dev->callback = NULL;
}

/* ---- state, reset, broken ---- */

static void test_state_view(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b = { h->bufs, 8, false };
	struct virtqueue_state st;
	uint16_t head;
	int c[2];

	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &c[0]), 0);
	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &c[1]), 0);
	assert_non_null(virtqueue_get_available_buffer(h->dev, &head, NULL));
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, head, 0), 0);
	virtqueue_disable_cb(h->drv);

	virtqueue_get_state(h->drv, &st);
	assert_int_equal(st.size, 8);
	assert_int_equal(st.free, 6);
	assert_int_equal(st.queued, 2);
	assert_int_equal(st.desc_head_idx, 2);
	assert_int_equal(st.avail_idx, 2);
	assert_int_equal(st.used_cons_idx, 0);
	assert_int_equal(st.used_idx, 1);
	assert_int_equal(st.avail_flags, VRING_AVAIL_F_NO_INTERRUPT);
	assert_int_equal(st.inflight, 2);

	virtqueue_get_state(h->dev, &st);
	assert_int_equal(st.available_idx, 1);
	assert_int_equal(st.avail_idx, 2);
	assert_int_equal(st.used_idx, 1);
	assert_int_equal(st.avail_flags, VRING_AVAIL_F_NO_INTERRUPT);
	assert_int_equal(st.inflight, 0);
	assert_false(st.broken);
}

/* A broken queue never rings its peer, either role, though its index
 * moved since its last kick (which would ring on a healthy queue): the
 * peer would only be sent to a ring this side no longer trusts. */
static void test_broken_queue_never_rings(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf vb[1];
	unsigned int rang;
	size_t cnt;
	int c[2];

	/* The driver: a buffer out, not yet announced by a kick; then the
	 * device lies about its used index and the driver breaks. */
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs, 8, false, &c[0]), 0);
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 1, &cnt), 0);
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, 0, 0), 0);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs + 8, 8, false, &c[1]), 0);
	raw_used_set_idx(h, 200);
	assert_null(virtqueue_get_buffer(h->drv, NULL, NULL));
	assert_true(virtqueue_is_broken(h->drv));
	rang = h->drv_notified;
	virtqueue_kick(h->drv);
	assert_int_equal(h->drv_notified, rang);
	/* The device: its used index moved (above), then, past the driver's
	 * second buffer, a head out of range breaks it. */
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 1, &cnt), 1);
	raw_avail_push(h, 200);
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 1, &cnt), -EINVAL);
	assert_true(virtqueue_is_broken(h->dev));
	rang = h->dev_notified;
	virtqueue_kick(h->dev);
	assert_int_equal(h->dev_notified, rang);
}

static void test_broken_queue_refuses_until_reset(void **state)
{
	struct harness *h = *state;
	struct virtqueue_buf b = { h->bufs, 8, false };
	struct virtqueue_buf vb[1];
	size_t cnt;
	int cookie;

	raw_avail_push(h, 200); /* head out of range */
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 1, &cnt), -EINVAL);
	assert_true(virtqueue_is_broken(h->dev));
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 1, &cnt), -EIO);
	assert_null(virtqueue_get_available_buffer(h->dev, &(uint16_t){ 0 }, NULL));
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, 0, 0), -EIO);
	{
		uint16_t heads[1] = { 0 };

		assert_int_equal(virtqueue_add_consumed_buffers(h->dev, heads, NULL, 1), -EIO);
	}
	assert_int_equal(virtqueue_enable_cb(h->dev), -EIO);
	assert_string_equal(virtqueue_fault_str(virtqueue_get_fault(h->dev)),
			    "avail ring head out of range");
	/* A value past the table (a caller's bad cast) gets a string too. */
	assert_string_equal(virtqueue_fault_str(VIRTQUEUE_FAULT_COUNT), "unknown fault");
	assert_string_equal(virtqueue_fault_str((enum virtqueue_fault)-1), "unknown fault");

	/* Reset both sides: the queue works again, the fault count stays. */
	virtqueue_reset(h->drv);
	virtqueue_reset(h->dev);
	assert_false(virtqueue_is_broken(h->dev));
	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &cookie), 0);
	assert_int_equal(vhost_get_vq_buffers(h->dev, vb, 1, &cnt), 0);
	{
		struct virtqueue_state st;

		virtqueue_get_state(h->dev, &st);
		assert_int_equal(st.stats.faults, 1);
	}
	/* ... through every call's short path, which the reset opened again. */
	assert_int_equal(virtqueue_add_consumed_buffer(h->dev, 0, 0), 0);
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &cookie);
	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &cookie), 0);
	{
		uint16_t head = 0xffff;
		uint32_t len = 0;

		assert_ptr_equal(virtqueue_get_available_buffer(h->dev, &head, &len), h->bufs);
		assert_int_equal(head, 1); /* the slot just freed queues behind the free ones */
		assert_int_equal(len, 8);
		assert_int_equal(virtqueue_add_consumed_buffer(h->dev, head, 0), 0);
	}
	assert_ptr_equal(virtqueue_get_buffer(h->drv, NULL, NULL), &cookie);

	/* The driver side: a used id never added breaks it, and every add
	 * (one buffer or a chain) is refused until reset, with nothing taken. */
	raw_used_push(h, 5, 0);
	assert_null(virtqueue_get_buffer(h->drv, NULL, NULL));
	assert_true(virtqueue_is_broken(h->drv));
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs, 8, false, &cookie), -EIO);
	assert_int_equal(virtqueue_add_buffer(h->drv, &b, 1, 0, &cookie), -EIO);
	{
		struct virtqueue_buf two[2] = { { h->bufs, 8, false }, { h->bufs + 8, 8, true } };

		assert_int_equal(virtqueue_add_buffer(h->drv, two, 1, 1, &cookie), -EIO);
	}
	virtqueue_reset(h->drv);
	virtqueue_reset(h->dev);
	assert_int_equal(virtqueue_add_one(h->drv, h->bufs, 8, false, &cookie), 0);
}

/* ---- accessors ---- */

struct counting_mem {
	unsigned int calls;
};

static uint16_t cm_read16(void *ctx, uint16_t *p)
{
	((struct counting_mem *)ctx)->calls++;
	return *(volatile uint16_t *)p;
}

static void cm_write16(void *ctx, uint16_t *p, uint16_t v)
{
	((struct counting_mem *)ctx)->calls++;
	*(volatile uint16_t *)p = v;
}

static uint32_t cm_read32(void *ctx, uint32_t *p)
{
	((struct counting_mem *)ctx)->calls++;
	return *(volatile uint32_t *)p;
}

static void cm_write32(void *ctx, uint32_t *p, uint32_t v)
{
	((struct counting_mem *)ctx)->calls++;
	*(volatile uint32_t *)p = v;
}

static void cm_read_desc(void *ctx, struct vring_desc *dst, const struct vring_desc *src)
{
	((struct counting_mem *)ctx)->calls++;
	memcpy(dst, src, sizeof(*dst));
}

static void cm_write_desc(void *ctx, struct vring_desc *dst, const struct vring_desc *src)
{
	((struct counting_mem *)ctx)->calls++;
	memcpy(dst, src, sizeof(*dst));
}

static void cm_fence(void *ctx)
{
	((struct counting_mem *)ctx)->calls++;
	__sync_synchronize();
}

static void test_mem_ops_carry_every_ring_access(void **state)
{
	struct harness *h = *state;
	static const struct virtqueue_mem_ops ops = {
		cm_read16, cm_write16, cm_read32, cm_write32,
		cm_read_desc, cm_write_desc, cm_fence,
	};
	struct counting_mem dm = { 0 }, vm = { 0 };
	struct virtqueue *drv, *dev;
	_Alignas(void *) uint8_t m1[VIRTQUEUE_FOOTPRINT(8)], m2[VIRTQUEUE_FOOTPRINT(8)];
	struct virtqueue_config cfg = {
		.role = VIRTQUEUE_ROLE_DRIVER, .num = 8, .ring = h->ring, .align = 64,
		.window = { h->region, 0, h->size }, .mem_ops = &ops, .mem_ctx = &dm,
	};
	struct virtqueue_buf b = { h->bufs, 8, false };
	uint16_t head;
	uint32_t len;
	int cookie;
	unsigned int before;

	assert_int_equal(virtqueue_init(m1, sizeof(m1), &cfg, &drv), 0);
	cfg.role = VIRTQUEUE_ROLE_DEVICE;
	cfg.mem_ctx = &vm;
	assert_int_equal(virtqueue_init(m2, sizeof(m2), &cfg, &dev), 0);
	/* A table with a hole, any of its seven, is refused up front: each is
	 * called on some path, and a NULL one would be found only there. */
	for (unsigned int hole = 0; hole < 7; hole++) {
		struct virtqueue_mem_ops holed = ops;
		struct virtqueue *x;

		switch (hole) {
		case 0: holed.read16 = NULL; break;
		case 1: holed.write16 = NULL; break;
		case 2: holed.read32 = NULL; break;
		case 3: holed.write32 = NULL; break;
		case 4: holed.read_desc = NULL; break;
		case 5: holed.write_desc = NULL; break;
		default: holed.fence = NULL; break;
		}
		cfg.mem_ops = &holed;
		assert_int_equal(virtqueue_init(m2, sizeof(m2), &cfg, &x), -EINVAL);
	}
	cfg.mem_ops = &ops;
	assert_int_equal(virtqueue_init(m2, sizeof(m2), &cfg, &dev), 0);

	before = dm.calls;
	assert_int_equal(virtqueue_add_buffer(drv, &b, 1, 0, &cookie), 0);
	assert_true(dm.calls >= before + 3); /* descriptor, ring entry, index */
	before = vm.calls;
	assert_ptr_equal(virtqueue_get_available_buffer(dev, &head, &len), h->bufs);
	assert_true(vm.calls >= before + 3);
	assert_int_equal(virtqueue_add_consumed_buffer(dev, head, 0), 0);
	assert_ptr_equal(virtqueue_get_buffer(drv, NULL, NULL), &cookie);
	/* virtqueue_add_one takes the accessors too. */
	before = dm.calls;
	assert_int_equal(virtqueue_add_one(drv, h->bufs + 8, 16, true, &cookie), 0);
	assert_true(dm.calls >= before + 3);
	assert_ptr_equal(virtqueue_get_available_buffer(dev, &head, &len), h->bufs + 8);
	assert_int_equal(len, 16);
	/* The accessor path checks what it returns as the plain one does. */
	assert_int_equal(virtqueue_add_consumed_buffer(dev, head, 17), -EINVAL); /* past it */
	assert_int_equal(virtqueue_add_consumed_buffer(dev, (uint16_t)(head + 1u), 0), -EINVAL);
	assert_int_equal(virtqueue_add_consumed_buffer(dev, head, 16), 0);
	assert_ptr_equal(virtqueue_get_buffer(drv, &len, NULL), &cookie);
	assert_int_equal(len, 16);

	/* Each word the peer wrote is read once, chains included: taking a
	 * two-buffer chain is avail.idx, the ring entry and two descriptors;
	 * getting it back used is used.idx and the entry's id and len. */
	{
		struct virtqueue_buf two[2] = { { h->bufs, 8, false }, { h->bufs + 64, 16, true } };
		struct virtqueue_buf vb[2];
		size_t cnt;
		int h2;

		assert_int_equal(virtqueue_add_buffer(drv, two, 1, 1, &cookie), 0);
		before = vm.calls;
		h2 = vhost_get_vq_buffers(dev, vb, 2, &cnt);
		assert_true(h2 >= 0);
		assert_int_equal(cnt, 2);
		assert_int_equal(vm.calls - before, 4);
		assert_int_equal(virtqueue_add_consumed_buffer(dev, (uint16_t)h2, 16), 0);
		before = dm.calls;
		assert_ptr_equal(virtqueue_get_buffer(drv, &len, NULL), &cookie);
		assert_int_equal(len, 16);
		assert_int_equal(dm.calls - before, 3);
	}
	/* The index is read again only when what the last look saw is
	 * taken: the second of two entries seen together costs its ring entry
	 * and descriptor (device) or its id and len (driver), and the look
	 * after the last one reads the index. */
	{
		int c2;

		assert_int_equal(virtqueue_add_one(drv, h->bufs, 8, false, &cookie), 0);
		assert_int_equal(virtqueue_add_one(drv, h->bufs + 8, 8, false, &c2), 0);
		before = vm.calls;
		assert_ptr_equal(virtqueue_get_available_buffer(dev, &head, NULL), h->bufs);
		assert_int_equal(vm.calls - before, 3);
		assert_int_equal(virtqueue_add_consumed_buffer(dev, head, 0), 0);
		before = vm.calls;
		assert_ptr_equal(virtqueue_get_available_buffer(dev, &head, NULL), h->bufs + 8);
		assert_int_equal(vm.calls - before, 2);
		assert_int_equal(virtqueue_add_consumed_buffer(dev, head, 0), 0);
		before = vm.calls;
		assert_null(virtqueue_get_available_buffer(dev, &head, NULL));
		assert_int_equal(vm.calls - before, 1);
		before = dm.calls;
		assert_ptr_equal(virtqueue_get_buffer(drv, NULL, NULL), &cookie);
		assert_int_equal(dm.calls - before, 3);
		before = dm.calls;
		assert_ptr_equal(virtqueue_get_buffer(drv, NULL, NULL), &c2);
		assert_int_equal(dm.calls - before, 2);
		before = dm.calls;
		assert_null(virtqueue_get_buffer(drv, NULL, NULL));
		assert_int_equal(dm.calls - before, 1);
	}
	/* A batch returned through the accessors: each head checked as the
	 * single call checks it, the array read no further than n (exactly
	 * n here, so that a read past it is one AddressSanitizer sees). */
	{
		uint16_t *got = malloc(2 * sizeof(*got));
		uint32_t lens2[2] = { 0, 8 };
		int c2;

		assert_non_null(got);
		assert_int_equal(virtqueue_add_one(drv, h->bufs, 8, true, &cookie), 0);
		assert_int_equal(virtqueue_add_one(drv, h->bufs + 8, 8, true, &c2), 0);
		assert_non_null(virtqueue_get_available_buffer(dev, &got[0], NULL));
		assert_non_null(virtqueue_get_available_buffer(dev, &got[1], NULL));
		assert_int_equal(virtqueue_add_consumed_buffer(dev, 8, 0), -EINVAL);
		assert_int_equal(virtqueue_add_consumed_buffers(dev, got, lens2, 2), 2);
		assert_ptr_equal(virtqueue_get_buffer(drv, &len, NULL), &cookie);
		assert_int_equal(len, 0);
		assert_ptr_equal(virtqueue_get_buffer(drv, &len, NULL), &c2);
		assert_int_equal(len, 8);
		free(got);
	}
	/* A look's pending test reads the index through the accessors too,
	 * after a plain queue earlier in the table (one it skips: no
	 * callback). */
	{
		atomic_store(&poll_table[0], h->drv);
		atomic_store(&poll_table[1], dev);
		atomic_store(&poll_table[2], NULL);
		h->drv->callback = NULL;
		dev->callback = poll_cb;
		/* Never looked at: everything the driver ever added is news. */
		assert_true(virtqueue_poll_pending(poll_table, 3));
		assert_int_equal(virtqueue_poll(dev), true);
		before = vm.calls;
		assert_false(virtqueue_poll_pending(poll_table, 3));
		assert_int_equal(vm.calls - before, 1);
		assert_int_equal(virtqueue_add_one(drv, h->bufs, 8, false, &cookie), 0);
		assert_true(virtqueue_poll_pending(poll_table, 3));
		assert_int_equal(vm.calls - before, 2);
		atomic_store(&poll_table[0], NULL);
		atomic_store(&poll_table[1], NULL);
	}
}

/* ---- ordering of the event word ---- */

/* Each ring access as one letter: r read, w write, f fence. */
struct trace_mem {
	char log[64];
	unsigned int n;
};

static void trace(void *ctx, char c)
{
	struct trace_mem *t = ctx;

	if (t->n < sizeof(t->log) - 1)
		t->log[t->n++] = c;
}

static uint16_t tm_read16(void *ctx, uint16_t *p)
{
	trace(ctx, 'r');
	return *(volatile uint16_t *)p;
}

static void tm_write16(void *ctx, uint16_t *p, uint16_t v)
{
	trace(ctx, 'w');
	*(volatile uint16_t *)p = v;
}

static uint32_t tm_read32(void *ctx, uint32_t *p)
{
	trace(ctx, 'r');
	return *(volatile uint32_t *)p;
}

static void tm_write32(void *ctx, uint32_t *p, uint32_t v)
{
	trace(ctx, 'w');
	*(volatile uint32_t *)p = v;
}

static void tm_read_desc(void *ctx, struct vring_desc *dst, const struct vring_desc *src)
{
	trace(ctx, 'r');
	memcpy(dst, src, sizeof(*dst));
}

static void tm_write_desc(void *ctx, struct vring_desc *dst, const struct vring_desc *src)
{
	trace(ctx, 'w');
	memcpy(dst, src, sizeof(*dst));
}

static void tm_fence(void *ctx)
{
	trace(ctx, 'f');
	__sync_synchronize();
}

/* The accesses one call made: the log since `from`, as a string. */
static const char *trace_since(struct trace_mem *t, unsigned int from)
{
	t->log[t->n] = '\0';
	return t->log + from;
}

/* ---- accessors: the only way to the ring ---- */

/* The ring's page is unreadable to the program; the accessors keep its
 * bytes in a shadow. A ring access that bypasses them faults. */
struct shadow_mem {
	uint8_t *page;    /* the ring's page, PROT_NONE */
	uint8_t *shadow;  /* what it holds */
	unsigned int calls;
};

static struct shadow_mem *sm_of(void *ctx)
{
	struct shadow_mem *m = ctx;

	m->calls++;
	return m;
}

static void *sm_at(struct shadow_mem *m, const void *p)
{
	const uint8_t *b = p;

	return b >= m->page && b < m->page + 4096 ? m->shadow + (b - m->page) : (void *)(uintptr_t)p;
}

static uint16_t sm_read16(void *ctx, uint16_t *p)
{
	uint16_t v;

	memcpy(&v, sm_at(sm_of(ctx), p), sizeof(v));
	return v;
}

static void sm_write16(void *ctx, uint16_t *p, uint16_t v)
{
	memcpy(sm_at(sm_of(ctx), p), &v, sizeof(v));
}

static uint32_t sm_read32(void *ctx, uint32_t *p)
{
	uint32_t v;

	memcpy(&v, sm_at(sm_of(ctx), p), sizeof(v));
	return v;
}

static void sm_write32(void *ctx, uint32_t *p, uint32_t v)
{
	memcpy(sm_at(sm_of(ctx), p), &v, sizeof(v));
}

static void sm_read_desc(void *ctx, struct vring_desc *dst, const struct vring_desc *src)
{
	memcpy(dst, sm_at(sm_of(ctx), src), sizeof(*dst));
}

static void sm_write_desc(void *ctx, struct vring_desc *dst, const struct vring_desc *src)
{
	memcpy(sm_at(sm_of(ctx), dst), src, sizeof(*dst));
}

static void sm_fence(void *ctx)
{
	(void)sm_of(ctx);
	__sync_synchronize();
}

static unsigned int sm_callbacks, sm_kicks;

static void sm_callback(struct virtqueue *vq)
{
	(void)vq;
	sm_callbacks++;
}

static void sm_notify(struct virtqueue *vq)
{
	(void)vq;
	sm_kicks++;
}

/* Both roles over a ring on a page the program cannot touch, with and
 * without event indices: every call that reaches the ring, the batch
 * calls, kicks and notification control included, goes through the
 * accessors (a direct access would fault), and the results are those of
 * plain memory. */
static void mem_ops_only(uint64_t features, bool plain)
{
	static const struct virtqueue_mem_ops ops = {
		sm_read16, sm_write16, sm_read32, sm_write32, sm_read_desc, sm_write_desc, sm_fence,
	};
	static uint8_t shadow[4096];
	size_t size = 3 * 4096;
	uint8_t *win = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct shadow_mem m = { win, shadow, 0 };
	_Alignas(void *) uint8_t m1[VIRTQUEUE_FOOTPRINT(8)], m2[VIRTQUEUE_FOOTPRINT(8)];
	struct virtqueue_config cfg = {
		.role = VIRTQUEUE_ROLE_DRIVER, .num = 8, .ring = win, .align = 64,
		.features = features, .window = { win, 0x10000, size }, .mem_ops = &ops, .mem_ctx = &m,
		.callback = sm_callback, .notify = sm_notify,
	};
	uint8_t *bufs = win + 4096;
	void *cookies[8] = { NULL };
	void *in[4] = { bufs, bufs + 64, bufs + 128, bufs + 192 };
	uint32_t lens[8] = { 0 };
	uint16_t heads[8] = { 0 };
	struct virtqueue_buf vb[8];
	struct virtqueue_state st;
	struct virtqueue *drv, *dev;
	size_t cnt;
	int head, n;

	assert_true(win != MAP_FAILED);
	memset(shadow, 0, sizeof(shadow));
	if (plain)
		cfg.mem_ops = NULL;
	else
		assert_int_equal(mprotect(win, 4096, PROT_NONE), 0);
	assert_int_equal(virtqueue_init(m1, sizeof(m1), &cfg, &drv), 0);
	cfg.role = VIRTQUEUE_ROLE_DEVICE;
	assert_int_equal(virtqueue_init(m2, sizeof(m2), &cfg, &dev), 0);
	assert_int_equal(virtqueue_enable_cb(drv), 0);
	assert_int_equal(virtqueue_enable_cb(dev), 0);
	/* One at a time, both ways, kicked. */
	sm_callbacks = sm_kicks = 0;
	assert_int_equal(virtqueue_add_one(drv, bufs, 16, true, bufs), 0);
	virtqueue_kick(drv);
	assert_int_equal(sm_kicks, 1); /* the device asked for it */
	assert_true(virtqueue_poll(dev));
	assert_int_equal(sm_callbacks, 1);
	head = vhost_get_vq_buffers(dev, vb, 8, &cnt);
	assert_true(head >= 0);
	assert_int_equal(cnt, 1);
	assert_ptr_equal(vb[0].buf, bufs);
	assert_int_equal(virtqueue_add_consumed_buffer(dev, (uint16_t)head, 16), 0);
	virtqueue_kick(dev);
	assert_int_equal(sm_kicks, 2);
	assert_ptr_equal(virtqueue_get_buffer(drv, &lens[0], NULL), bufs);
	assert_int_equal(lens[0], 16);
	/* In batches. */
	assert_int_equal(virtqueue_add_bufs(drv, in, 4, 32, false), 4);
	virtqueue_kick(drv);
	n = virtqueue_get_available_buffers(dev, vb, heads, 8);
	assert_int_equal(n, 4);
	for (int i = 0; i < 4; i++)
		assert_ptr_equal(vb[i].buf, in[i]);
	assert_int_equal(virtqueue_add_consumed_buffers(dev, heads, NULL, 4), 4);
	virtqueue_kick(dev);
	assert_int_equal(virtqueue_get_buffers(drv, cookies, lens, 8), 4);
	for (int i = 0; i < 4; i++)
		assert_ptr_equal(cookies[i], in[i]);
	/* Notifications off: the peer's kick is saved (under EVENT_IDX the
	 * word left as it was still asks for the next entry); on again. */
	virtqueue_disable_cb(drv);
	virtqueue_disable_cb(dev);
	n = (int)sm_kicks;
	assert_int_equal(virtqueue_add_one(drv, bufs, 8, false, bufs), 0);
	virtqueue_kick(drv);
	assert_int_equal(sm_kicks, (unsigned int)n + (features ? 1u : 0u));
	assert_ptr_equal(virtqueue_get_available_buffer(dev, &heads[0], &lens[0]), bufs);
	assert_int_equal(virtqueue_add_consumed_buffer(dev, heads[0], 0), 0);
	assert_int_equal(virtqueue_enable_cb(drv), 1); /* one came meanwhile */
	assert_ptr_equal(virtqueue_get_buffer(drv, NULL, NULL), bufs);
	assert_int_equal(virtqueue_peer_idx(dev), 6);
	assert_false(virtqueue_poll(dev));
	virtqueue_get_state(drv, &st);
	assert_false(st.broken);
	assert_int_equal(st.used_idx, 6);
	virtqueue_reset(drv);
	virtqueue_reset(dev);
	assert_int_equal(virtqueue_add_one(drv, bufs, 8, false, bufs), 0);
	assert_ptr_equal(virtqueue_get_available_buffer(dev, &heads[0], &lens[0]), bufs);
	assert_true(plain ? m.calls == 0 : m.calls > 0);
	assert_int_equal(mprotect(win, 4096, PROT_READ | PROT_WRITE), 0);
	munmap(win, size);
}

static void test_mem_ops_are_the_only_way_to_the_ring(void **state)
{
	(void)state;
	mem_ops_only(0, true);
	mem_ops_only(EVENT_IDX, true);
	mem_ops_only(0, false);
	mem_ops_only(EVENT_IDX, false);
}

/*
 * Under EVENT_IDX with callbacks on, taking an entry moves the event word
 * to the next one: "notify me for the entry after this". The peer writes
 * its index, fences, then reads that word; so this side must fence between
 * its event store and its next look at the peer's index, or both can miss
 * each other (the store still in a store buffer, the look reading the old
 * index) and the next entry waits for a notification that never comes.
 * Every take that writes the event word therefore ends with a fence.
 */
static void test_event_word_is_fenced_before_the_next_look(void **state)
{
	struct harness *h = *state;
	static const struct virtqueue_mem_ops ops = {
		tm_read16, tm_write16, tm_read32, tm_write32,
		tm_read_desc, tm_write_desc, tm_fence,
	};
	struct trace_mem dm = { { 0 }, 0 }, vm = { { 0 }, 0 };
	struct virtqueue *drv, *dev;
	_Alignas(void *) uint8_t m1[VIRTQUEUE_FOOTPRINT(8)], m2[VIRTQUEUE_FOOTPRINT(8)];
	struct virtqueue_config cfg = {
		.role = VIRTQUEUE_ROLE_DRIVER, .num = 8, .ring = h->ring, .align = 64,
		.features = EVENT_IDX, .window = { h->region, 0, h->size }, .mem_ops = &ops,
		.mem_ctx = &dm,
	};
	struct virtqueue_buf vb;
	unsigned int from;
	size_t cnt;
	const char *seen;
	int cookie, head;

	assert_int_equal(virtqueue_init(m1, sizeof(m1), &cfg, &drv), 0);
	cfg.role = VIRTQUEUE_ROLE_DEVICE;
	cfg.mem_ctx = &vm;
	assert_int_equal(virtqueue_init(m2, sizeof(m2), &cfg, &dev), 0);
	assert_int_equal(virtqueue_enable_cb(drv), 0);
	assert_int_equal(virtqueue_enable_cb(dev), 0);

	assert_int_equal(virtqueue_add_one(drv, h->bufs, 8, false, &cookie), 0);
	from = vm.n;
	head = vhost_get_vq_buffers(dev, &vb, 1, &cnt);
	assert_true(head >= 0);
	seen = trace_since(&vm, from);
	assert_non_null(strchr(seen, 'w'));             /* the event word moved */
	assert_non_null(strchr(strrchr(seen, 'w'), 'f')); /* and was fenced */

	assert_int_equal(virtqueue_add_consumed_buffer(dev, (uint16_t)head, 0), 0);
	from = dm.n;
	assert_ptr_equal(virtqueue_get_buffer(drv, NULL, NULL), &cookie);
	seen = trace_since(&dm, from);
	assert_non_null(strchr(seen, 'w'));
	assert_non_null(strchr(strrchr(seen, 'w'), 'f'));

	/* With callbacks off nothing is written, so nothing needs a fence. */
	virtqueue_disable_cb(dev);
	assert_int_equal(virtqueue_add_one(drv, h->bufs, 8, false, &cookie), 0);
	from = vm.n;
	assert_true(vhost_get_vq_buffers(dev, &vb, 1, &cnt) >= 0);
	assert_string_equal(trace_since(&vm, from), "rrr");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_rejects_bad_config, setup_plain, teardown),
		cmocka_unit_test(test_init_accepts_each_limit),
		cmocka_unit_test(test_footprint_macro_matches_function),
		cmocka_unit_test(test_ring_layout_is_the_wire_format),
		cmocka_unit_test_setup_teardown(test_add_and_get_one_buffer, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_seen_more_tracks_the_last_look, setup_plain,
						teardown),
		cmocka_unit_test_setup_teardown(test_seen_more_tracks_the_last_look, setup_event,
						teardown),
		cmocka_unit_test_setup_teardown(test_poll_runs_the_callback_for_untaken_work,
						setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_poll_runs_the_callback_for_untaken_work,
						setup_event, teardown),
		cmocka_unit_test_setup_teardown(test_prefetch_arrived_looks_where_this_side_takes_next,
						setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_poll_many_looks_at_a_table, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_poll_many_looks_at_a_table, setup_event, teardown),
		cmocka_unit_test_setup_teardown(test_sg_list_directions_and_used_len, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_add_fails_cleanly_when_full, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_add_rejects_bad_arguments_and_loses_nothing, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_get_available_without_head_takes_nothing, setup_plain,
						teardown),
		cmocka_unit_test_setup_teardown(test_add_one, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_descriptors_are_recycled, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_descriptors_are_recycled, setup_event, teardown),
		cmocka_unit_test_setup_teardown(test_descriptor_rewritten_after_device_scribbles, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_in_order_use_keeps_avail_entries, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_in_order_use_keeps_avail_entries, setup_event, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_order_completion, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_get_buffers_takes_a_batch_in_used_order,
						setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_get_buffers_takes_a_batch_in_used_order,
						setup_event, teardown),
		cmocka_unit_test_setup_teardown(test_get_buffers_rejects_bad_arguments, setup_plain,
						teardown),
		cmocka_unit_test_setup_teardown(test_add_bufs_adds_each_its_own_cookie, setup_plain,
						teardown),
		cmocka_unit_test_setup_teardown(test_add_bufs_sized_gives_each_its_length, setup_plain,
						teardown),
		cmocka_unit_test_setup_teardown(test_add_bufs_sized_gives_each_its_length, setup_event,
						teardown),
		cmocka_unit_test_setup_teardown(test_published_idx_moves_with_what_each_side_gives,
						setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_peer_idx_is_what_the_other_side_published,
						setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_taken_idx_moves_with_what_each_side_takes,
						setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_get_available_buffers_takes_lone_buffers,
						setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_get_available_buffers_takes_lone_buffers,
						setup_event, teardown),
		cmocka_unit_test_setup_teardown(test_add_consumed_buffers_returns_a_batch,
						setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_add_consumed_buffers_returns_a_batch,
						setup_event, teardown),
		cmocka_unit_test_setup_teardown(test_get_vq_buffers_empty_is_enomem, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_get_vq_buffers_small_array_loses_nothing, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_get_available_buffer_takes_whole_chain, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_add_consumed_rejects_heads_not_taken, setup_plain, teardown),
		cmocka_unit_test(test_indirect_chain_round_trip),
		cmocka_unit_test(test_indirect_unused_without_feature),
		cmocka_unit_test(test_ring_over_dirty_memory),
		cmocka_unit_test_setup_teardown(test_kick_honours_no_notify, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_device_kick_honours_no_interrupt, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_event_idx_driver_kick, setup_event, teardown),
		cmocka_unit_test_setup_teardown(test_event_idx_device_kick, setup_event, teardown),
		cmocka_unit_test_setup_teardown(test_notification_runs_callback, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_state_view, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_broken_queue_refuses_until_reset, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_broken_queue_never_rings, setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_mem_ops_carry_every_ring_access, setup_plain, teardown),
		cmocka_unit_test(test_mem_ops_are_the_only_way_to_the_ring),
		cmocka_unit_test_setup_teardown(test_event_word_is_fenced_before_the_next_look, setup_plain, teardown),
	};

	return cmocka_run_group_tests_name("virtqueue", tests, NULL, NULL);
}
