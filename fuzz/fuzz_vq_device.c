/*
 * libFuzzer target: arbitrary ring memory for the device role, and an
 * arbitrary used ring for the driver role.
 *
 * Input: byte 0 picks the queue size (1..64) and features, byte 1 the
 * caller's array size, whether the device takes batches first and the
 * driver's batch size; the rest is the ring and buffer region as the peer
 * wrote it. The region is a heap block of exactly its size, so AddressSanitizer
 * catches any access outside it. Every buffer handed out must lie inside it,
 * and the calls must end (bounded work) without crashing.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <duet/virtqueue.h>

#include "../src/virtqueue/vq_internal.h" /* duet_vq_poll_guess */

#define REGION 8192
#define DA_BASE 0x1000

static void check_inside(const uint8_t *region, const struct virtqueue_buf *vb, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = vb[i].buf;

		if (p < region || p > region + REGION || vb[i].len > (size_t)(region + REGION - p))
			abort();
		if (vb[i].len) /* touch both ends: ASan checks they are ours */
			(void)(*(volatile const uint8_t *)p + *(volatile const uint8_t *)(p + vb[i].len - 1));
	}
}

static void no_callback(struct virtqueue *vq)
{
	(void)vq;
}

/* What a polling look would prefetch at every ring position: nothing, or
 * a byte of the region (touched, so that AddressSanitizer checks it); and
 * the look itself reads nothing outside. */
static void check_guesses(const uint8_t *region, struct virtqueue *vq, uint16_t num)
{
	for (uint16_t pos = 0; pos < num; pos++) {
		const uint8_t *p = duet_vq_poll_guess(vq, pos);

		if (p && (p < region || p >= region + REGION))
			abort();
		if (p)
			(void)*(volatile const uint8_t *)p;
	}
	(void)virtqueue_poll(vq);
	virtqueue_prefetch_next(vq);
	(void)virtqueue_prefetch_arrived(vq);
}

static void run_device(uint8_t *region, uint16_t num, uint64_t features, size_t vbsize,
		       bool batch)
{
	_Alignas(void *) uint8_t mem[VIRTQUEUE_FOOTPRINT(64)];
	struct virtqueue_config cfg = {
		.role = VIRTQUEUE_ROLE_DEVICE, .num = num, .ring = region, .align = 16,
		.features = features, .window = { region, DA_BASE, REGION },
		.callback = no_callback,
	};
	struct virtqueue_buf vb[8];
	struct virtqueue *vq;
	uint8_t saved_used[8 + 8 * 64];
	uint16_t last;
	size_t used_off = vring_used_offset(num, 16), used_len = 6 + 8u * num;

	/* The device initialises the used ring it owns: keep the fuzz bytes. */
	memcpy(saved_used, region + used_off, used_len);
	if (virtqueue_init(mem, sizeof(mem), &cfg, &vq))
		abort();
	memcpy(region + used_off, saved_used, used_len);
	for (int i = 0; i < 3 * num + 3; i++) {
		size_t cnt = 0;
		uint16_t heads[8];
		int head, k;

		check_guesses(region, vq, num);
		/* batch: lone buffers eight at a time first, each returned; the
		 * entry that stops the batch is the single take's below. */
		k = batch ? virtqueue_get_available_buffers(vq, vb, heads, 8) : 0;
		if (k < 0)
			break;
		check_inside(region, vb, (size_t)k);
		for (int j = 0; j < k; j++)
			if (virtqueue_add_consumed_buffer(vq, heads[j], 0))
				abort();
		if (k)
			continue;
		head = vhost_get_vq_buffers(vq, vb, vbsize, &cnt);

		if (head == -EINVAL && cnt > vbsize)
			head = vhost_get_vq_buffers(vq, vb, 8, &cnt);
		if (head < 0)
			break;
		check_inside(region, vb, cnt < 8 ? cnt : 8);
		if (virtqueue_add_consumed_buffer(vq, (uint16_t)head, 0))
			abort();
		virtqueue_enable_cb(vq);
	}
	while (virtqueue_get_available_buffer(vq, &last, NULL))
		;
}

/* A cookie the driver got back: one it added, with a length it allowed. */
static void check_used(const int *c, uint32_t len, const int *cookies, int added)
{
	if (c < cookies || c >= cookies + added || len > 64)
		abort();
}

static void run_driver(uint8_t *region, uint16_t num, const uint8_t *used, size_t n,
		       uint16_t batch)
{
	_Alignas(void *) uint8_t mem[VIRTQUEUE_FOOTPRINT(64)];
	struct virtqueue_config cfg = {
		.role = VIRTQUEUE_ROLE_DRIVER, .num = num, .ring = region, .align = 16,
		.window = { region, DA_BASE, REGION }, .callback = no_callback,
	};
	struct virtqueue_buf b = { region + REGION - 64, 64, true };
	size_t used_off = vring_used_offset(num, 16), used_len = 4 + 8u * num;
	static int cookies[64];
	struct virtqueue *vq;
	int added = 0;

	if (virtqueue_init(mem, sizeof(mem), &cfg, &vq))
		abort();
	while (added < num && virtqueue_add_buffer(vq, &b, 0, 1, &cookies[added]) == 0)
		added++;
	memcpy(region + used_off, used, n < used_len ? n : used_len);
	/* batch 0: one at a time; else virtqueue_get_buffers, `batch` at most
	 * per call. Either way no more than was added comes back. */
	for (int i = 0, got = 0; i < num + 2; i++) {
		uint32_t len, lens[64];
		void *cs[64];
		int k;

		(void)virtqueue_prefetch_arrived(vq); /* a guess read from a hostile ring */
		if (!batch) {
			int *c = virtqueue_get_buffer(vq, &len, NULL);

			if (!c)
				break;
			check_used(c, len, cookies, added);
			continue;
		}
		k = virtqueue_get_buffers(vq, cs, lens, batch);
		if (k <= 0)
			break;
		got += k;
		if (got > added)
			abort();
		for (int j = 0; j < k; j++)
			check_used(cs[j], lens[j], cookies, added);
	}
}

/* How many used entries the driver takes per call; 0: one at a time. */
static const uint16_t batches[8] = { 0, 1, 2, 3, 5, 8, 16, 64 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *region;
	uint16_t num;
	uint64_t features = 0;

	if (size < 2)
		return 0;
	num = (uint16_t)(1u << (data[0] % 7));
	if (data[0] & 0x40)
		features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	if (data[0] & 0x80)
		features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	region = calloc(1, REGION);
	if (!region)
		return 0;
	memcpy(region, data + 2, size - 2 < REGION ? size - 2 : REGION);
	run_device(region, num, features, data[1] % 9, data[1] / 72 % 2);
	memset(region, 0, REGION);
	run_driver(region, num, data + 2, size - 2, batches[data[1] / 9 % 8]);
	free(region);
	return 0;
}
