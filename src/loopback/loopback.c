/*
 * loopback.c - both sides of a virtio device over one local memory block.
 *
 * The block is a one-vdev link region: a resource table from duet_rsc_build,
 * checked by duet_rsc_parse like any peer's, then the carveout. Both sides
 * are the rvdev transport that rptun uses, so what passes here passes over
 * a real link; only the doorbell differs (a pending mask and a poll call).
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include <duet/heap.h>
#include <duet/loopback.h>
#include <duet/vhost.h>
#include <duet/port.h>

#include "../core/compiler.h"
#include "../rptun/rvdev.h"

#define TABLE_SPACE 8192u /* table room; the carveout starts after it */

struct duet_loopback_side {
	struct duet_rvdev rv;
	_Atomic uint32_t pending; /* bit i: queue i was notified */
};

struct duet_loopback {
	void *alloc;  /* what the port gave; mem is it aligned */
	uint8_t *mem;
	size_t size;
	struct duet_heap *bufs;
	struct duet_loopback_side side[2]; /* [VIRTIO_DEV_DRIVER], [VIRTIO_DEV_DEVICE] */
	_Atomic uint32_t epoch; /* the driver's resets (duet_loopback_check_peer) */
};

/* A side's priv is the side it notifies. */
static void lb_notify(struct duet_rvdev *rv, uint32_t notifyid)
{
	struct duet_loopback_side *peer = rv->priv;

	/* Queue i of a one-vdev table has notify id i. */
	atomic_fetch_or(&peer->pending, 1u << notifyid);
}

/* The side of `role`, or NULL for a bad argument. */
static struct duet_loopback_side *side_of(struct duet_loopback *lb, unsigned int role)
{
	return lb && (role == VIRTIO_DEV_DRIVER || role == VIRTIO_DEV_DEVICE) ? &lb->side[role]
									     : NULL;
}

int duet_loopback_poll_side(struct duet_loopback *lb, unsigned int role)
{
	struct duet_loopback_side *side = side_of(lb, role);
	uint32_t bits;
	int ran = 0;

	if (!side)
		return -EINVAL;
	bits = atomic_exchange(&side->pending, 0);
	/* One step per notified queue, not per bit. */
	for (; bits; bits &= bits - 1u)
		ran += duet_rvdev_dispatch(&side->rv, duet_lowest_bit(bits));
	return ran;
}

int duet_loopback_poll_rings(struct duet_loopback *lb, unsigned int role)
{
	struct duet_loopback_side *side = side_of(lb, role);

	return side ? (int)duet_rvdev_poll(&side->rv) : -EINVAL;
}

unsigned int duet_loopback_prefetches(struct duet_loopback *lb, unsigned int role)
{
	struct duet_loopback_side *side = side_of(lb, role);

	return side ? atomic_load_explicit(&side->rv.prefetch_spells, memory_order_relaxed) : 0;
}

bool duet_loopback_prefetching(struct duet_loopback *lb, unsigned int role)
{
	struct duet_loopback_side *side = side_of(lb, role);

	return side && atomic_load_explicit(&side->rv.prefetching, memory_order_relaxed);
}

int duet_loopback_poll(struct duet_loopback *lb)
{
	if (!lb)
		return -EINVAL;
	return duet_loopback_poll_side(lb, VIRTIO_DEV_DRIVER) +
	       duet_loopback_poll_side(lb, VIRTIO_DEV_DEVICE);
}

int duet_loopback_check_peer(struct duet_loopback *lb)
{
	int restarted = 0;

	if (!lb)
		return -EINVAL;
	for (unsigned int s = 0; s < 2; s++)
		restarted += duet_rvdev_restart_if_reset(&lb->side[s].rv) != 0;
	return restarted;
}

int duet_loopback_create(struct duet_loopback **lbp, const struct duet_loopback_config *cfg)
{
	struct duet_vdev_desc desc;
	struct duet_rsc_info info;
	struct duet_loopback *lb;
	size_t vrings;
	int ret;

	if (!lbp || !cfg || cfg->num_vrings < 1 || cfg->num_vrings > DUET_MAX_VRINGS ||
	    cfg->vring_num == 0 || cfg->vring_num > VIRTQUEUE_MAX_SIZE || cfg->heap_size > (1u << 30))
		return -EINVAL;
	desc = (struct duet_vdev_desc){
		.id = cfg->device_id, .driver = DUET_SERVER, .features = cfg->features,
		.num_vrings = (uint8_t)cfg->num_vrings, .vring_num = cfg->vring_num,
		.vring_align = cfg->vring_align, .config_len = cfg->config_len,
		.config = cfg->config,
	};
	vrings = (size_t)cfg->num_vrings * ((vring_size(cfg->vring_num, cfg->vring_align) + 63u) & ~(size_t)63u);
	desc.carveout_size = (uint32_t)(vrings + ((cfg->heap_size + 63u) & ~(size_t)63u));

	lb = duet_port_alloc(sizeof(*lb));
	if (!lb)
		return -ENOMEM;
	lb->size = TABLE_SPACE + duet_rsc_carveouts_size(&desc, 1);
	lb->alloc = duet_port_alloc(lb->size + 4096);
	if (!lb->alloc) {
		duet_port_free(lb);
		return -ENOMEM;
	}
	lb->mem = (uint8_t *)(((uintptr_t)lb->alloc + 4095u) & ~(uintptr_t)4095u);
	ret = duet_rsc_build(lb->mem, TABLE_SPACE, &desc, 1, TABLE_SPACE);
	/* The table's size, or an error: nothing is known of it otherwise. */
	if (ret >= 0)
		ret = ret ? duet_rsc_parse(lb->mem, TABLE_SPACE, lb->size, &info, NULL) : -EINVAL;
	if (ret == 0 && cfg->heap_size)
		ret = duet_heap_create(&lb->bufs, lb->mem + info.vdev[0].carveout_da + vrings,
				       info.vdev[0].carveout_len - vrings, 64);
	if (ret < 0) {
		duet_port_free(lb->alloc);
		duet_port_free(lb);
		return ret;
	}
	for (unsigned int s = 0; s < 2; s++)
		duet_rvdev_init(&lb->side[s].rv, s, lb->mem, lb->size, lb->mem, &info.vdev[0],
				lb->bufs, lb_notify, &lb->side[!s], &lb->epoch);
	*lbp = lb;
	return 0;
}

void duet_loopback_destroy(struct duet_loopback *lb)
{
	if (!lb)
		return;
	/* Still registered, the buses would keep pointers into the block:
	 * take them off first (-ENOENT when they were not on). */
	virtio_unregister_device(&lb->side[VIRTIO_DEV_DRIVER].rv.vdev);
	vhost_unregister_device(&lb->side[VIRTIO_DEV_DEVICE].rv.vdev);
	duet_rvdev_deinit(&lb->side[0].rv);
	duet_rvdev_deinit(&lb->side[1].rv);
	duet_heap_destroy(lb->bufs);
	duet_port_free(lb->alloc);
	duet_port_free(lb);
}

struct virtio_device *duet_loopback_driver(struct duet_loopback *lb)
{
	return lb ? &lb->side[VIRTIO_DEV_DRIVER].rv.vdev : NULL;
}

struct virtio_device *duet_loopback_device(struct duet_loopback *lb)
{
	return lb ? &lb->side[VIRTIO_DEV_DEVICE].rv.vdev : NULL;
}

struct fw_rsc_vdev *duet_loopback_rsc(struct duet_loopback *lb)
{
	return lb ? lb->side[0].rv.rsc : NULL;
}

size_t duet_loopback_heap_available(struct duet_loopback *lb)
{
	return lb && lb->bufs ? duet_heap_available(lb->bufs) : 0;
}
