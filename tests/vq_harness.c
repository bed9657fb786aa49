#define _GNU_SOURCE
#include "vq_harness.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dirty.h"

static _Noreturn void die(const char *what)
{
	perror(what);
	abort();
}

static size_t round_up(size_t v, size_t a)
{
	return (v + a - 1) / a * a;
}

static void on_drv_notify(struct virtqueue *vq)
{
	((struct harness *)vq->priv)->drv_notified++;
}

static void on_dev_notify(struct virtqueue *vq)
{
	((struct harness *)vq->priv)->dev_notified++;
}

static void on_fault(struct virtqueue *vq, enum virtqueue_fault fault, int err,
		     uint64_t value, uint64_t limit)
{
	struct harness *h = vq->priv;

	(void)value;
	(void)limit;
	h->faults++;
	h->last_fault = fault;
	h->last_err = err;
}

static struct virtqueue *make_vq(struct harness *h, enum virtqueue_role role,
				 void **mem, uint16_t indirect_num)
{
	struct virtqueue_config cfg = {
		.name = role == VIRTQUEUE_ROLE_DRIVER ? "drv" : "dev",
		.role = role,
		.num = h->num,
		.ring = h->ring,
		.align = h->align,
		.features = h->features,
		.window = { .va = h->region, .da = HARNESS_DA_BASE, .size = h->size },
		.indirect = role == VIRTQUEUE_ROLE_DRIVER ? h->indirect : NULL,
		.indirect_num = role == VIRTQUEUE_ROLE_DRIVER ? indirect_num : 0,
		.notify = role == VIRTQUEUE_ROLE_DRIVER ? on_drv_notify : on_dev_notify,
		.fault = on_fault,
		.priv = h,
	};
	struct virtqueue *vq;
	size_t sz = virtqueue_footprint(h->num);

	*mem = malloc(sz);
	if (!*mem || virtqueue_init(*mem, sz, &cfg, &vq) != 0)
		die("virtqueue_init");
	return vq;
}

static void init(struct harness *h, uint16_t num, uint64_t features,
		 uint16_t indirect_num, size_t bufsize, int which, bool dirty_first)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t ringsz, indsz;

	memset(h, 0, sizeof(*h));
	h->num = num;
	h->align = 64;
	h->features = features;
	ringsz = round_up(vring_size(num, h->align), 64);
	indsz = indirect_num ? (size_t)num * indirect_num * sizeof(struct vring_desc) : 0;
	h->size = round_up(ringsz + indsz + bufsize, page);
	h->maplen = h->size + 2 * page;
	h->map = mmap(NULL, h->maplen, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (h->map == MAP_FAILED)
		die("mmap");
	h->region = h->map + page;
	if (mprotect(h->region, h->size, PROT_READ | PROT_WRITE))
		die("mprotect");
	h->ring = h->region;
	h->indirect = indirect_num ? h->region + ringsz : NULL;
	/* Buffers end exactly at the trailing guard page. */
	h->bufsize = h->size - ringsz - indsz;
	h->bufs = h->region + h->size - h->bufsize;
	if (dirty_first)
		dirty(h->region, h->size);
	if (which & 1)
		h->drv = make_vq(h, VIRTQUEUE_ROLE_DRIVER, &h->drv_mem, indirect_num);
	if (which & 2)
		h->dev = make_vq(h, VIRTQUEUE_ROLE_DEVICE, &h->dev_mem, 0);
}

void harness_init(struct harness *h, uint16_t num, uint64_t features,
		  uint16_t indirect_num, size_t bufsize, int which)
{
	init(h, num, features, indirect_num, bufsize, which, false);
}

void harness_init_dirty(struct harness *h, uint16_t num, uint64_t features,
			uint16_t indirect_num, size_t bufsize, int which)
{
	init(h, num, features, indirect_num, bufsize, which, true);
}

void harness_fini(struct harness *h)
{
	free(h->drv_mem);
	free(h->dev_mem);
	munmap(h->map, h->maplen);
}

uint64_t harness_da(const struct harness *h, const void *p)
{
	return HARNESS_DA_BASE + (uint64_t)((const uint8_t *)p - h->region);
}

struct vring_avail *harness_avail(const struct harness *h)
{
	return (struct vring_avail *)(void *)(h->ring + 16u * (size_t)h->num);
}

struct vring_used *harness_used(const struct harness *h)
{
	return (struct vring_used *)(void *)(h->ring + vring_used_offset(h->num, h->align));
}

void raw_desc_at(struct vring_desc *table, uint16_t i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next)
{
	table[i].addr = addr;
	table[i].len = len;
	table[i].flags = flags;
	table[i].next = next;
}

void raw_desc(struct harness *h, uint16_t i, uint64_t addr, uint32_t len,
	      uint16_t flags, uint16_t next)
{
	raw_desc_at((struct vring_desc *)(void *)h->ring, i, addr, len, flags, next);
}

uint16_t raw_avail_idx(const struct harness *h)
{
	return harness_avail(h)->idx;
}

void raw_avail_set_idx(struct harness *h, uint16_t idx)
{
	harness_avail(h)->idx = idx;
}

void raw_avail_push(struct harness *h, uint16_t head)
{
	struct vring_avail *a = harness_avail(h);

	a->ring[a->idx & (h->num - 1)] = head;
	a->idx++;
}

void raw_used_set_idx(struct harness *h, uint16_t idx)
{
	harness_used(h)->idx = idx;
}

void raw_used_push(struct harness *h, uint32_t id, uint32_t len)
{
	struct vring_used *u = harness_used(h);

	u->ring[u->idx & (h->num - 1)].id = id;
	u->ring[u->idx & (h->num - 1)].len = len;
	u->idx++;
}

uint16_t raw_avail_event(const struct harness *h)
{
	uint16_t v;

	memcpy(&v, &harness_used(h)->ring[h->num], sizeof(v));
	return v;
}

uint16_t raw_used_event(const struct harness *h)
{
	return harness_avail(h)->ring[h->num];
}
