/*
 * loopback.c - both sides of a virtio device over one local memory block.
 *
 * The block is laid out like shared memory under rptun, and each side reads
 * the other's words only through the vdev entry and the rings, so what
 * passes here passes over a real link. The ring addresses in the entry are
 * checked by virtqueue_init like any peer input.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include <duet/heap.h>
#include <duet/loopback.h>
#include <duet/port.h>

#define RING_FEATURES ((1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC))

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1u) & ~(a - 1u);
}

static bool valid_config(const struct duet_loopback_config *cfg)
{
	return cfg && cfg->num_vrings >= 1 && cfg->num_vrings <= DUET_LOOPBACK_MAX_VRINGS &&
	       cfg->vring_num && !(cfg->vring_num & (cfg->vring_num - 1u)) &&
	       cfg->vring_num <= VIRTQUEUE_MAX_SIZE && cfg->vring_align >= 4 &&
	       !(cfg->vring_align & (cfg->vring_align - 1u)) && cfg->vring_align <= 65536 &&
	       cfg->config_len <= 65536;
}

/* Offset of the first vring, and the bytes one vring takes. */
static size_t vrings_offset(const struct duet_loopback_config *cfg)
{
	return align_up(sizeof(struct fw_rsc_vdev) +
				cfg->num_vrings * sizeof(struct fw_rsc_vdev_vring) +
				cfg->config_len,
			cfg->vring_align > 64 ? cfg->vring_align : 64);
}

static size_t vring_stride(const struct duet_loopback_config *cfg)
{
	return align_up(vring_size(cfg->vring_num, cfg->vring_align),
			cfg->vring_align > 64 ? cfg->vring_align : 64);
}

size_t duet_loopback_size(const struct duet_loopback_config *cfg)
{
	if (!valid_config(cfg))
		return 0;
	return vrings_offset(cfg) + cfg->num_vrings * vring_stride(cfg) +
	       align_up(cfg->heap_size, 64);
}

static struct duet_loopback_side *side_of(struct virtio_device *vdev)
{
	return duet_container_of(vdev, struct duet_loopback_side, vdev);
}

static uint8_t load_status(struct duet_loopback *lb)
{
	return atomic_load((_Atomic uint8_t *)&lb->rsc->status);
}

static void store_status(struct duet_loopback *lb, uint8_t status)
{
	atomic_store((_Atomic uint8_t *)&lb->rsc->status, status);
}

static uint32_t load32(uint32_t *p)
{
	return atomic_load((_Atomic uint32_t *)p);
}

static void store32(uint32_t *p, uint32_t v)
{
	atomic_store((_Atomic uint32_t *)p, v);
}

/* ---- notifications ---- */

static void lb_notify(struct virtqueue *vq)
{
	struct duet_loopback_side *me = side_of(vq->vq_dev);
	struct duet_loopback_side *peer = &me->lb->side[!me->vdev.role];

	atomic_fetch_or(&peer->pending, 1u << vq->vq_queue_index);
}

static void lb_dispatch_notify(struct virtqueue *vq)
{
	lb_notify(vq);
}

/* A peer broke a ring: the device side asks for a reset, the driver side
 * gives up on the device (VIRTIO 1.2, 2.1.1 and 2.1.2). */
static void lb_fault(struct virtqueue *vq, enum virtqueue_fault fault, int err,
		     uint64_t value, uint64_t limit)
{
	struct duet_loopback *lb = side_of(vq->vq_dev)->lb;
	uint8_t bit = vq->vq_dev->role == VIRTIO_DEV_DEVICE ? VIRTIO_CONFIG_STATUS_NEEDS_RESET
							     : VIRTIO_CONFIG_STATUS_FAILED;

	(void)fault;
	(void)err;
	(void)value;
	(void)limit;
	atomic_fetch_or((_Atomic uint8_t *)&lb->rsc->status, bit);
}

int duet_loopback_poll(struct duet_loopback *lb)
{
	int ran = 0;

	for (int s = 0; s < 2; s++) {
		struct duet_loopback_side *side = &lb->side[s];
		uint32_t bits = atomic_exchange(&side->pending, 0);

		for (unsigned int i = 0; bits && i < DUET_LOOPBACK_MAX_VRINGS; i++, bits >>= 1) {
			struct virtqueue *vq = atomic_load_explicit(&side->live[i],
								    memory_order_acquire);

			if ((bits & 1u) && vq) {
				virtqueue_notification(vq);
				ran++;
			}
		}
	}
	return ran;
}

/* ---- virtqueues ---- */

static void lb_delete_virtqueues(struct virtio_device *vdev)
{
	struct duet_loopback_side *side = side_of(vdev);

	for (unsigned int i = 0; i < DUET_LOOPBACK_MAX_VRINGS; i++) {
		atomic_store_explicit(&side->live[i], NULL, memory_order_release);
		side->vrings[i].vq = NULL;
		duet_port_free(side->vq_mem[i]);
		side->vq_mem[i] = NULL;
	}
	vdev->vrings_num = 0;
}

static int lb_create_virtqueues(struct virtio_device *vdev, unsigned int flags,
				unsigned int nvqs, const char *names[], vq_callback callbacks[],
				void *callback_args[])
{
	struct duet_loopback_side *side = side_of(vdev);
	struct duet_loopback *lb = side->lb;
	int ret = 0;

	(void)flags;
	if (nvqs == 0 || nvqs > lb->rsc->num_of_vrings || side->vrings[0].vq)
		return -EINVAL;
	for (unsigned int i = 0; i < nvqs; i++) {
		struct fw_rsc_vdev_vring *vr = &lb->rsc->vring[i];
		uint32_t da = load32(&vr->da), num = load32(&vr->num);
		struct virtqueue_config cfg = {
			.name = names ? names[i] : NULL,
			.role = vdev->role == VIRTIO_DEV_DRIVER ? VIRTQUEUE_ROLE_DRIVER
								: VIRTQUEUE_ROLE_DEVICE,
			.num = (uint16_t)num,
			.ring = da < lb->size ? lb->mem + da : NULL,
			.align = load32(&vr->align),
			.features = vdev->features & RING_FEATURES,
			.window = { lb->mem, 0, lb->size },
			.notify = lb_notify,
			.callback = callbacks ? callbacks[i] : NULL,
			.fault = lb_fault,
			.priv = callback_args ? callback_args[i] : NULL,
			.index = (uint16_t)i,
		};
		struct virtqueue *vq;

		/* The table is peer-written: num must fit before it is used. */
		if (num > VIRTQUEUE_MAX_SIZE) {
			ret = -EINVAL;
			break;
		}
		side->vq_mem[i] = duet_port_alloc(virtqueue_footprint((uint16_t)num));
		if (!side->vq_mem[i]) {
			ret = -ENOMEM;
			break;
		}
		ret = virtqueue_init(side->vq_mem[i], virtqueue_footprint((uint16_t)num),
				     &cfg, &vq);
		if (ret < 0)
			break;
		vq->vq_dev = vdev;
		side->vrings[i].vq = vq;
	}
	if (ret < 0) {
		lb_delete_virtqueues(vdev);
		return ret;
	}
	vdev->vrings_num = nvqs;
	for (unsigned int i = 0; i < nvqs; i++)
		atomic_store_explicit(&side->live[i], side->vrings[i].vq, memory_order_release);
	return 0;
}

/* ---- status, features, config ---- */

static int lb_get_status(struct virtio_device *vdev, uint8_t *status)
{
	*status = load_status(side_of(vdev)->lb);
	return 0;
}

static int drv_set_status(struct virtio_device *vdev, uint8_t status)
{
	struct duet_loopback *lb = side_of(vdev)->lb;

	if (status == VIRTIO_CONFIG_STATUS_RESET) {
		store32(&lb->rsc->gfeatures, 0);
		store_status(lb, 0);
		return 0;
	}
	/* The device accepts FEATURES_OK only for a subset of its offer. */
	if ((status & VIRTIO_CONFIG_FEATURES_OK) &&
	    (load32(&lb->rsc->gfeatures) & ~load32(&lb->rsc->dfeatures)))
		status &= (uint8_t)~VIRTIO_CONFIG_FEATURES_OK;
	store_status(lb, status);
	return 0;
}

static int dev_set_status(struct virtio_device *vdev, uint8_t status)
{
	struct duet_loopback *lb = side_of(vdev)->lb;

	/* The status byte is the driver's; a device may only ask for a reset. */
	if (status != VIRTIO_CONFIG_STATUS_NEEDS_RESET)
		return -EPERM;
	atomic_fetch_or((_Atomic uint8_t *)&lb->rsc->status, status);
	return 0;
}

static int drv_get_features(struct virtio_device *vdev, uint64_t *features)
{
	*features = load32(&side_of(vdev)->lb->rsc->dfeatures);
	return 0;
}

static int drv_set_features(struct virtio_device *vdev, uint64_t features)
{
	struct duet_loopback *lb = side_of(vdev)->lb;

	if (load_status(lb) & VIRTIO_CONFIG_FEATURES_OK)
		return -EBUSY;
	if (features >> 32)
		return -EINVAL; /* the vdev entry holds 32 feature bits */
	store32(&lb->rsc->gfeatures, (uint32_t)features);
	return 0;
}

static int dev_get_features(struct virtio_device *vdev, uint64_t *features)
{
	struct duet_loopback *lb = side_of(vdev)->lb;
	uint32_t accepted = load32(&lb->rsc->gfeatures);

	if (accepted & ~load32(&lb->rsc->dfeatures))
		return -EPROTO;
	*features = accepted;
	return 0;
}

static int dev_set_features(struct virtio_device *vdev, uint64_t features)
{
	struct duet_loopback *lb = side_of(vdev)->lb;

	if (load_status(lb) & VIRTIO_CONFIG_FEATURES_OK)
		return -EBUSY;
	if (features >> 32)
		return -EINVAL;
	store32(&lb->rsc->dfeatures, (uint32_t)features);
	return 0;
}

static int lb_config_range(struct duet_loopback *lb, uint32_t offset, int length)
{
	if (length < 0 || offset > lb->rsc->config_len ||
	    (uint32_t)length > lb->rsc->config_len - offset)
		return -EINVAL;
	return 0;
}

static int lb_read_config(struct virtio_device *vdev, uint32_t offset, void *dst, int length)
{
	struct duet_loopback *lb = side_of(vdev)->lb;
	int ret = lb_config_range(lb, offset, length);

	if (ret == 0)
		memcpy(dst, lb->config + offset, (size_t)length);
	return ret;
}

static int lb_write_config(struct virtio_device *vdev, uint32_t offset, const void *src,
			   int length)
{
	struct duet_loopback *lb = side_of(vdev)->lb;
	int ret = lb_config_range(lb, offset, length);

	if (ret == 0)
		memcpy(lb->config + offset, src, (size_t)length);
	return ret;
}

static int drv_reset(struct virtio_device *vdev)
{
	lb_delete_virtqueues(vdev);
	return drv_set_status(vdev, VIRTIO_CONFIG_STATUS_RESET);
}

/* The device side forgets its queues; the status stays the driver's. */
static int dev_reset(struct virtio_device *vdev)
{
	lb_delete_virtqueues(vdev);
	vdev->features = 0;
	return 0;
}

static void *lb_alloc_buf(struct virtio_device *vdev, size_t size, size_t align)
{
	struct duet_loopback *lb = side_of(vdev)->lb;

	return lb->bufs ? duet_heap_alloc(lb->bufs, size, align) : NULL;
}

static int lb_free_buf(struct virtio_device *vdev, void *buf)
{
	return duet_heap_free(side_of(vdev)->lb->bufs, buf);
}

static const struct virtio_dispatch driver_ops = {
	.create_virtqueues = lb_create_virtqueues,
	.delete_virtqueues = lb_delete_virtqueues,
	.get_status = lb_get_status,
	.set_status = drv_set_status,
	.get_features = drv_get_features,
	.set_features = drv_set_features,
	.read_config = lb_read_config,
	.write_config = lb_write_config,
	.reset_device = drv_reset,
	.notify = lb_dispatch_notify,
	.alloc_buf = lb_alloc_buf,
	.free_buf = lb_free_buf,
};

static const struct virtio_dispatch device_ops = {
	.create_virtqueues = lb_create_virtqueues,
	.delete_virtqueues = lb_delete_virtqueues,
	.get_status = lb_get_status,
	.set_status = dev_set_status,
	.get_features = dev_get_features,
	.set_features = dev_set_features,
	.read_config = lb_read_config,
	.write_config = lb_write_config,
	.reset_device = dev_reset,
	.notify = lb_dispatch_notify,
	.alloc_buf = lb_alloc_buf,
	.free_buf = lb_free_buf,
};

int duet_loopback_init(struct duet_loopback *lb, void *mem, size_t size,
		       const struct duet_loopback_config *cfg)
{
	size_t need = duet_loopback_size(cfg), off;

	if (!lb || !mem || !need || size < need || ((uintptr_t)mem % 64))
		return -EINVAL;
	memset(lb, 0, sizeof(*lb));
	memset(mem, 0, need);
	lb->mem = mem;
	lb->size = size;
	lb->rsc = mem;
	lb->rsc->type = RSC_VDEV;
	lb->rsc->id = cfg->device_id;
	lb->rsc->dfeatures = cfg->features;
	lb->rsc->config_len = cfg->config_len;
	lb->rsc->num_of_vrings = (uint8_t)cfg->num_vrings;
	lb->config = (uint8_t *)&lb->rsc->vring[cfg->num_vrings];
	if (cfg->config)
		memcpy(lb->config, cfg->config, cfg->config_len);
	off = vrings_offset(cfg);
	for (unsigned int i = 0; i < cfg->num_vrings; i++) {
		lb->rsc->vring[i].da = (uint32_t)off;
		lb->rsc->vring[i].align = cfg->vring_align;
		lb->rsc->vring[i].num = cfg->vring_num;
		lb->rsc->vring[i].notifyid = i;
		off += vring_stride(cfg);
	}
	lb->heap = lb->mem + off;
	lb->heap_size = size - off;
	if (lb->heap_size >= 64 && duet_heap_create(&lb->bufs, lb->heap, lb->heap_size, 64) < 0)
		return -ENOMEM;
	for (int s = 0; s < 2; s++) {
		struct duet_loopback_side *side = &lb->side[s];

		side->lb = lb;
		side->vdev.id.device = cfg->device_id;
		side->vdev.role = (unsigned int)s;
		side->vdev.func = s == VIRTIO_DEV_DRIVER ? &driver_ops : &device_ops;
		side->vdev.vrings_info = side->vrings;
	}
	return 0;
}

void duet_loopback_deinit(struct duet_loopback *lb)
{
	lb_delete_virtqueues(&lb->side[0].vdev);
	lb_delete_virtqueues(&lb->side[1].vdev);
	duet_heap_destroy(lb->bufs);
	lb->bufs = NULL;
}

struct virtio_device *duet_loopback_driver(struct duet_loopback *lb)
{
	return &lb->side[VIRTIO_DEV_DRIVER].vdev;
}

struct virtio_device *duet_loopback_device(struct duet_loopback *lb)
{
	return &lb->side[VIRTIO_DEV_DEVICE].vdev;
}
