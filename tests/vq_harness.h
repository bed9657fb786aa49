/*
 * vq_harness.h - a split ring in a mapping fenced by PROT_NONE guard pages,
 * with a driver-role and a device-role virtqueue on it, and raw writers so a
 * test can play a hostile peer. Any access outside the region faults.
 */
#ifndef DUET_TEST_VQ_HARNESS_H
#define DUET_TEST_VQ_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include <duet/virtqueue.h>

/* Device address of the region's first byte: deliberately not 0, so a mix-up
 * of device and local addresses shows. */
#define HARNESS_DA_BASE 0x40000000ull

struct harness {
	uint8_t *map;      /* whole mapping, guards included */
	size_t maplen;
	uint8_t *region;   /* the shared window */
	size_t size;
	uint8_t *ring;
	uint8_t *indirect; /* driver indirect tables, if any */
	uint8_t *bufs;     /* buffer area: ends at the trailing guard page */
	size_t bufsize;
	uint16_t num;
	size_t align;
	uint64_t features;
	struct virtqueue *drv;
	struct virtqueue *dev;
	void *drv_mem, *dev_mem;
	/* observed by the hooks */
	unsigned int drv_notified; /* driver rang the device */
	unsigned int dev_notified; /* device rang the driver */
	unsigned int faults;
	enum virtqueue_fault last_fault;
	int last_err;
};

/* Build the region. which: 1 driver vq, 2 device vq, 3 both. */
void harness_init(struct harness *h, uint16_t num, uint64_t features,
		  uint16_t indirect_num, size_t bufsize, int which);
/* The same over a region that held anything before the queues were set
 * up (tests/vq_harness.c: dirty): a ring must not rely on zeroed memory. */
void harness_init_dirty(struct harness *h, uint16_t num, uint64_t features,
			uint16_t indirect_num, size_t bufsize, int which);
void harness_fini(struct harness *h);

/* Device address of a pointer inside the region. */
uint64_t harness_da(const struct harness *h, const void *p);

/* Raw ring writes, as a (possibly hostile) peer would do them. */
void raw_desc(struct harness *h, uint16_t i, uint64_t addr, uint32_t len,
	      uint16_t flags, uint16_t next);
void raw_desc_at(struct vring_desc *table, uint16_t i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next);
/* Put `head` in the avail ring at the current raw avail.idx and bump it. */
void raw_avail_push(struct harness *h, uint16_t head);
void raw_avail_set_idx(struct harness *h, uint16_t idx);
uint16_t raw_avail_idx(const struct harness *h);
void raw_used_push(struct harness *h, uint32_t id, uint32_t len);
void raw_used_set_idx(struct harness *h, uint16_t idx);
/* The event words: the device's avail_event and the driver's used_event. */
uint16_t raw_avail_event(const struct harness *h);
uint16_t raw_used_event(const struct harness *h);
struct vring_avail *harness_avail(const struct harness *h);
struct vring_used *harness_used(const struct harness *h);

#endif
