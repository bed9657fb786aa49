/*
 * Randomized model test: a driver-role and a device-role queue on one ring,
 * driven by long random sequences of add, take, complete (out of order) and
 * get, with random callback enabling and kicks. Checked against a model:
 * every buffer comes back exactly once, with its cookie, its used length and
 * its data intact in both directions; a side that went to sleep with
 * callbacks enabled is always notified of new work (no lost wake-up).
 *
 * DUET_SEED=<n> replays a run; the seed is printed on failure.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vq_harness.h"

#define EVENT_IDX (1ull << VIRTIO_RING_F_EVENT_IDX)
#define INDIRECT (1ull << VIRTIO_RING_F_INDIRECT_DESC)
#define AREA 512   /* bytes of buffer space per record */
#define MAXBUF 6   /* buffers per chain: up to 3 readable + 3 writable */
#define SLOT 64    /* bytes per buffer slot in an area */

enum rec_state { FREE, AVAIL, TAKEN, USED };

struct record {
	enum rec_state state;
	unsigned int serial;
	int r, w;
	uint32_t lens[MAXBUF];
	uint32_t wtotal;
	uint32_t used_len; /* what the device reported */
	uint16_t head;     /* device's view */
};

struct model {
	struct harness h;
	struct record *rec;
	unsigned int nrec;
	uint64_t rng;
	unsigned int serial;
	unsigned int added, returned;
	int drv_sleeping, dev_sleeping;
	unsigned int wakeups_checked;
};

static uint32_t rnd(struct model *m, uint32_t n)
{
	/* xorshift64*: fast, reproducible from the seed. */
	m->rng ^= m->rng >> 12;
	m->rng ^= m->rng << 25;
	m->rng ^= m->rng >> 27;
	return (uint32_t)((m->rng * 2685821657736338717ull) >> 33) % n;
}

static uint8_t pattern(unsigned int serial, int k, uint32_t j, int dev)
{
	return (uint8_t)(serial * 31u + (unsigned int)k * 7u + j + (dev ? 101u : 0u));
}

static uint8_t *buf_of(struct model *m, unsigned int ri, int k)
{
	return m->h.bufs + (size_t)ri * AREA + (size_t)k * SLOT;
}

static unsigned int rec_of(struct model *m, const void *p)
{
	return (unsigned int)(((const uint8_t *)p - m->h.bufs) / AREA);
}

static void op_add(struct model *m)
{
	struct virtqueue_buf b[MAXBUF];
	struct virtqueue_state st;
	struct record *r = NULL;
	unsigned int ri;
	int n, k, need, ret;

	for (ri = 0; ri < m->nrec; ri++)
		if (m->rec[ri].state == FREE) {
			r = &m->rec[ri];
			break;
		}
	if (!r)
		return;
	r->r = (int)rnd(m, 4);
	r->w = (int)rnd(m, 4);
	if (r->r + r->w == 0)
		r->w = 1;
	n = r->r + r->w;
	r->serial = ++m->serial;
	r->wtotal = 0;
	for (k = 0; k < n; k++) {
		uint32_t j;

		r->lens[k] = 1 + rnd(m, SLOT);
		b[k].buf = buf_of(m, ri, k);
		b[k].len = r->lens[k];
		for (j = 0; j < r->lens[k]; j++)
			((uint8_t *)b[k].buf)[j] = k < r->r ? pattern(r->serial, k, j, 0) : 0;
		if (k >= r->r)
			r->wtotal += r->lens[k];
	}
	virtqueue_get_state(m->h.drv, &st);
	need = (m->h.features & INDIRECT) && n > 1 && n <= 4 ? 1 : n;
	ret = virtqueue_add_buffer(m->h.drv, b, r->r, r->w, r);
	if (need > st.free) {
		assert_int_equal(ret, -ENOSPC);
		return;
	}
	assert_int_equal(ret, 0);
	r->state = AVAIL;
	m->added++;
}

static void op_take(struct model *m)
{
	struct virtqueue_buf vb[MAXBUF];
	struct record *r;
	size_t cnt = 0, small;
	int head, k;
	uint32_t j, left;

	if (m->dev_sleeping)
		return;
	small = rnd(m, 4) == 0 ? rnd(m, 3) : MAXBUF;
	head = vhost_get_vq_buffers(m->h.dev, vb, small, &cnt);
	if (head == -ENOMEM)
		return;
	if (head == -EINVAL) {
		/* Array too small: nothing taken, and the count says why. */
		assert_true(cnt > small);
		head = vhost_get_vq_buffers(m->h.dev, vb, MAXBUF, &cnt);
	}
	assert_true(head >= 0);
	r = &m->rec[rec_of(m, vb[0].buf)];
	assert_int_equal(r->state, AVAIL);
	assert_int_equal(cnt, (size_t)(r->r + r->w));
	for (k = 0; k < (int)cnt; k++) {
		assert_ptr_equal(vb[k].buf, buf_of(m, rec_of(m, vb[0].buf), k));
		assert_int_equal(vb[k].len, r->lens[k]);
		assert_int_equal(vb[k].writable, k >= r->r);
		for (j = 0; j < vb[k].len; j++) {
			uint8_t *p = vb[k].buf;

			if (k < r->r)
				assert_int_equal(p[j], pattern(r->serial, k, j, 0));
		}
	}
	/* Fill a random prefix of the writable bytes, as a device would. */
	r->used_len = rnd(m, r->wtotal + 1);
	left = r->used_len;
	for (k = r->r; k < (int)cnt && left; k++) {
		uint32_t n = vb[k].len < left ? vb[k].len : left;

		for (j = 0; j < n; j++)
			((uint8_t *)vb[k].buf)[j] = pattern(r->serial, k, j, 1);
		left -= n;
	}
	r->head = (uint16_t)head;
	r->state = TAKEN;
}

static void dev_kick(struct model *m)
{
	struct virtqueue_state st;
	unsigned int before = m->h.dev_notified;

	virtqueue_get_state(m->h.drv, &st);
	virtqueue_kick(m->h.dev);
	if (m->drv_sleeping && st.used_idx != st.used_cons_idx) {
		assert_int_equal(m->h.dev_notified, before + 1);
		m->wakeups_checked++;
	}
	if (m->h.dev_notified != before)
		m->drv_sleeping = 0;
}

static void drv_kick(struct model *m)
{
	struct virtqueue_state st;
	unsigned int before = m->h.drv_notified;

	virtqueue_get_state(m->h.dev, &st);
	virtqueue_kick(m->h.drv);
	if (m->dev_sleeping && st.avail_idx != st.available_idx) {
		assert_int_equal(m->h.drv_notified, before + 1);
		m->wakeups_checked++;
	}
	if (m->h.drv_notified != before)
		m->dev_sleeping = 0;
}

/* Return taken chains used: one, or a batch of up to three in one call. */
static void op_complete(struct model *m)
{
	unsigned int start = rnd(m, m->nrec), i, want = rnd(m, 2) ? 1 + rnd(m, 3) : 0, n = 0;
	struct record *batch[3];
	uint16_t heads[3];
	uint32_t lens[3];

	if (m->dev_sleeping)
		return;
	for (i = 0; i < m->nrec; i++) {
		struct record *r = &m->rec[(start + i) % m->nrec];

		if (r->state != TAKEN)
			continue;
		if (!want) {
			assert_int_equal(virtqueue_add_consumed_buffer(m->h.dev, r->head, r->used_len),
					 0);
			r->state = USED;
			break;
		}
		batch[n] = r;
		heads[n] = r->head;
		lens[n] = r->used_len;
		if (++n == want)
			break;
	}
	if (n) {
		assert_int_equal(virtqueue_add_consumed_buffers(m->h.dev, heads, lens, (uint16_t)n),
				 (int)n);
		for (i = 0; i < n; i++)
			batch[i]->state = USED;
	}
	if (rnd(m, 2))
		dev_kick(m);
}

/* A record the driver got back with `len` bytes written: used, once. */
static void check_got(struct model *m, struct record *r, uint32_t len)
{
	uint32_t j, left;
	int k;

	assert_int_equal(r->state, USED); /* exactly once, and only once used */
	assert_int_equal(len, r->used_len);
	left = len;
	for (k = r->r; k < r->r + r->w && left; k++) {
		uint32_t n = r->lens[k] < left ? r->lens[k] : left;
		uint8_t *p = buf_of(m, (unsigned int)(r - m->rec), k);

		for (j = 0; j < n; j++)
			assert_int_equal(p[j], pattern(r->serial, k, j, 1));
		left -= n;
	}
	r->state = FREE;
	m->returned++;
}

/* Take used buffers back: one, or a batch of up to four. */
static void op_get(struct model *m)
{
	uint32_t lens[4], len = 0;
	void *got[4];
	struct record *r;
	uint16_t idx;
	int n;

	if (m->drv_sleeping)
		return;
	if (rnd(m, 2)) {
		n = virtqueue_get_buffers(m->h.drv, got, lens, (uint16_t)(1 + rnd(m, 4)));
		assert_true(n >= 0);
		for (int i = 0; i < n; i++)
			check_got(m, got[i], lens[i]);
		return;
	}
	r = virtqueue_get_buffer(m->h.drv, &len, &idx);
	if (!r) {
		assert_false(virtqueue_is_broken(m->h.drv));
		return;
	}
	check_got(m, r, len);
}

static bool holds_taken(const struct model *m)
{
	for (unsigned int i = 0; i < m->nrec; i++)
		if (m->rec[i].state == TAKEN)
			return true;
	return false;
}

static void op_sleep(struct model *m, int driver)
{
	struct virtqueue *vq = driver ? m->h.drv : m->h.dev;
	int ret;

	if (driver ? m->drv_sleeping : m->dev_sleeping)
		return; /* asleep: only a notification wakes it */
	if (rnd(m, 3) == 0) {
		virtqueue_disable_cb(vq);
		return;
	}
	ret = virtqueue_enable_cb(vq);
	assert_true(ret == 0 || ret == 1);
	/* A side with nothing left to do goes to sleep; it must be woken. A
	 * device still holding chains it took has work of its own. */
	if (ret == 0 && (driver || !holds_taken(m))) {
		if (driver)
			m->drv_sleeping = 1;
		else
			m->dev_sleeping = 1;
	}
}

static void run_model(uint16_t num, uint64_t features, unsigned int steps, uint64_t seed)
{
	struct model m;
	unsigned int s, i;

	memset(&m, 0, sizeof(m));
	m.rng = seed ? seed : 1;
	harness_init(&m.h, num, features, features & INDIRECT ? 4 : 0,
		     (size_t)num * AREA, 3);
	m.nrec = num;
	m.rec = calloc(num, sizeof(*m.rec));
	assert_non_null(m.rec);

	for (s = 0; s < steps; s++) {
		switch (rnd(&m, 8)) {
		case 0: case 1: op_add(&m); break;
		case 2: case 3: op_take(&m); break;
		case 4: op_complete(&m); break;
		case 5: op_get(&m); break;
		case 6: op_sleep(&m, (int)rnd(&m, 2)); break;
		default: rnd(&m, 2) ? drv_kick(&m) : dev_kick(&m); break;
		}
	}
	/* Drain: wake both, finish everything, and count. */
	m.drv_sleeping = m.dev_sleeping = 0;
	for (i = 0; i < 4u * num + 4; i++) {
		op_take(&m);
		op_complete(&m);
		op_get(&m);
	}
	for (i = 0; i < m.nrec; i++) {
		if (m.rec[i].state != FREE)
			fail_msg("record %u never came back (state %d), seed %llu", i,
				 m.rec[i].state, (unsigned long long)seed);
	}
	print_message("added %u returned %u\n", m.added, m.returned);
	assert_int_equal(m.added, m.returned);
	assert_true(m.added > steps / 20); /* the run did real work */
	assert_true(m.wakeups_checked > 0);
	assert_false(virtqueue_is_broken(m.h.drv));
	assert_false(virtqueue_is_broken(m.h.dev));
	print_message("num %u features %#llx: %u buffers round-tripped, %u wake-ups checked\n",
		      num, (unsigned long long)features, m.returned, m.wakeups_checked);
	free(m.rec);
	harness_fini(&m.h);
}

static uint64_t seed_from_env(void)
{
	const char *s = getenv("DUET_SEED");

	return s ? strtoull(s, NULL, 0) : 0x5eed5eedull;
}

#define MODEL_TEST(name, num, feat)                                        \
	static void name(void **state)                                     \
	{                                                                  \
		uint64_t seed = seed_from_env();                           \
		(void)state;                                               \
		print_message("seed %llu\n", (unsigned long long)seed);   \
		run_model(num, feat, 200000, seed);                        \
	}

MODEL_TEST(test_model_plain_8, 8, 0)
MODEL_TEST(test_model_plain_64, 64, 0)
MODEL_TEST(test_model_event_idx, 16, EVENT_IDX)
MODEL_TEST(test_model_indirect, 16, INDIRECT)
MODEL_TEST(test_model_event_idx_indirect, 32, EVENT_IDX | INDIRECT)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model_plain_8),
		cmocka_unit_test(test_model_plain_64),
		cmocka_unit_test(test_model_event_idx),
		cmocka_unit_test(test_model_indirect),
		cmocka_unit_test(test_model_event_idx_indirect),
	};

	return cmocka_run_group_tests_name("virtqueue model", tests, NULL, NULL);
}
