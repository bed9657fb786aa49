/*
 * rvdev.c - the virtio transport over a fw_rsc_vdev entry in shared memory.
 *
 * The driver side writes status and accepted features and places vrings;
 * the device side reads them and may only ask for a reset (NEEDS_RESET).
 * FEATURES_OK does not stick for a set outside the offer, and the device
 * side refuses such a set when it reads it.
 */
#include <errno.h>
#include <string.h>

#include <duet/byteorder.h>
#include <duet/port.h>

#include "../core/compiler.h"
#include "rvdev.h"

#define RING_FEATURES \
	((1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC))
#define VRING_PLACE_ALIGN 64u

static struct duet_rvdev *rv_of(struct virtio_device *vdev)
{
	return duet_container_of(vdev, struct duet_rvdev, vdev);
}

/* A live word of the table (little-endian: duet/byteorder.h). */
static uint32_t load32(uint32_t *p)
{
	return duet_le32(atomic_load((_Atomic uint32_t *)p));
}

static void store32(uint32_t *p, uint32_t v)
{
	atomic_store((_Atomic uint32_t *)p, duet_le32(v));
}

uint8_t duet_rvdev_status(const struct duet_rvdev *rv)
{
	return atomic_load((_Atomic uint8_t *)&rv->rsc->status);
}

bool duet_rvdev_has_queues(const struct duet_rvdev *rv)
{
	return atomic_load_explicit(&rv->live[0], memory_order_acquire) != NULL;
}

bool duet_rvdev_reset_since(const struct duet_rvdev *rv)
{
	/* A device bound but still in its probe, queues not yet made, has
	 * read nothing a reset could make stale, and its mark is not set:
	 * no reset to see yet (the mark is stored before the queues go live). */
	return rv->epoch && duet_rvdev_has_queues(rv) &&
	       atomic_load(rv->epoch) != atomic_load(&rv->epoch_seen);
}

bool duet_rvdev_served(const struct duet_rvdev *rv)
{
	uint8_t st = duet_rvdev_status(rv); /* read once: the peer writes it */

	if (!(st & VIRTIO_CONFIG_STATUS_DRIVER_OK) ||
	    (st & (VIRTIO_CONFIG_STATUS_NEEDS_RESET | VIRTIO_CONFIG_STATUS_FAILED)))
		return false;
	return rv->vdev.role != VIRTIO_DEV_DEVICE || !duet_rvdev_reset_since(rv);
}

static void store_status(struct duet_rvdev *rv, uint8_t status)
{
	atomic_store((_Atomic uint8_t *)&rv->rsc->status, status);
}

_Static_assert(offsetof(struct fw_rsc_vdev, status) % 4 == 0, "status starts a word");

/*
 * Set `bit` in the status byte, whatever the peer writes to it meanwhile.
 * Through the 32-bit word that starts with it (status, num_of_vrings,
 * reserved[2]; only status changes), as the other live words are reached:
 * a byte-wide atomic OR is a library call on some cores (RISC-V, gcc 12),
 * which need not be lock-free across two cores, or link at all.
 */
static void status_or(struct duet_rvdev *rv, uint8_t bit)
{
	_Atomic uint32_t *word = (_Atomic uint32_t *)(void *)&rv->rsc->status;
	uint32_t old = atomic_load(word);

	/* The word is little-endian: status is its low byte on any core. */
	while (!atomic_compare_exchange_weak(word, &old, duet_le32(duet_le32(old) | bit)))
		;
}

static size_t align_up(size_t v, size_t a)
{
	return (v + a - 1u) & ~(a - 1u);
}

size_t duet_rvdev_vring_offset(const struct duet_rsc_vdev *desc, unsigned int i)
{
	size_t off = 0;

	for (unsigned int k = 0; k < i; k++)
		off += align_up(vring_size(desc->vring[k].num, desc->vring[k].align),
				VRING_PLACE_ALIGN);
	return off;
}

size_t duet_rvdev_vrings_size(const struct duet_rsc_vdev *desc)
{
	return duet_rvdev_vring_offset(desc, desc->num_vrings);
}

/* ---- notifications and faults ---- */

static void rv_vq_notify(struct virtqueue *vq)
{
	struct duet_rvdev *rv = rv_of(vq->vq_dev);

	rv->notify(rv, rv->desc.vring[vq->vq_queue_index].notifyid);
}

/* A peer broke a ring: the device side asks for a reset, the driver side
 * gives up on the device (VIRTIO 1.2, 2.1.1 and 2.1.2). */
static void rv_fault(struct virtqueue *vq, enum virtqueue_fault fault, int err,
		     uint64_t value, uint64_t limit)
{
	struct duet_rvdev *rv = rv_of(vq->vq_dev);
	uint8_t bit = vq->vq_dev->role == VIRTIO_DEV_DEVICE ? VIRTIO_CONFIG_STATUS_NEEDS_RESET
							     : VIRTIO_CONFIG_STATUS_FAILED;

	(void)fault;
	(void)err;
	(void)value;
	(void)limit;
	status_or(rv, bit);
}

bool duet_rvdev_dispatch(struct duet_rvdev *rv, unsigned int index)
{
	struct virtqueue *vq;

	if (index >= DUET_MAX_VRINGS)
		return false;
	vq = atomic_load_explicit(&rv->live[index], memory_order_acquire);
	if (!vq)
		return false;
	/* virtqueue_notification's body: the queue is known here, and every
	 * message passes this way (a call and a check fewer). */
	if (vq->callback)
		vq->callback(vq);
	return true;
}

/* Out of line even where link-time optimisation could inline it: inlined
 * into the loopback's look, it made the look that finds a message longer
 * (1,348 -> 1,366 instructions per polled round trip, LTO build of
 * bench/callgrind-rpmsg.sh). */
DUET_OUT_OF_LINE unsigned int duet_rvdev_poll(struct duet_rvdev *rv)
{
	unsigned int n = duet_rvdev_num_live(rv);
	uint32_t mine;
	unsigned int ran;

	/* Idle (see below): nothing to prefetch, so nothing to sum; the
	 * full look only once something came. */
	if (rv->empty_looks >= RVDEV_IDLE_LOOKS && !virtqueue_poll_pending(rv->live, n))
		return 0;
	ran = virtqueue_poll_many(rv->live, n, &mine);

	if (ran) {
		rv->poll_mine = mine; /* as it was before the callbacks answered */
		atomic_store_explicit(&rv->prefetching, false, memory_order_relaxed);
		rv->empty_looks = 0;
		return ran;
	}
	/* Nothing came. When this side has published since something last
	 * came (it answered), the peer is most likely waiting for that
	 * answer; when nothing has come for RVDEV_QUIET_LOOKS looks, the
	 * peer is idle or sends sparsely. Either way its next message will
	 * land where the queues guess, and is not being written yet: fetch
	 * those lines ahead. During a dense one-way stream neither holds:
	 * this side publishes only its batched returns, every few looks find
	 * work, and the peer is writing the guessed lines now: taking them
	 * from it would slow the stream. */
	if (rv->empty_looks < RVDEV_IDLE_LOOKS)
		rv->empty_looks++;
	if (rv->empty_looks >= RVDEV_IDLE_LOOKS) {
		/* Idle: no more prefetching, whatever the rule says. */
		atomic_store_explicit(&rv->prefetching, false, memory_order_relaxed);
		return 0;
	}
	if (mine != rv->poll_mine || rv->empty_looks >= RVDEV_QUIET_LOOKS) {
		virtqueue_prefetch_many(rv->live, n);
		if (!atomic_load_explicit(&rv->prefetching, memory_order_relaxed)) {
			atomic_store_explicit(&rv->prefetching, true, memory_order_relaxed);
			atomic_store_explicit(&rv->prefetch_spells,
					      atomic_load_explicit(&rv->prefetch_spells,
								   memory_order_relaxed) + 1u,
					      memory_order_relaxed);
		}
	}
	return 0;
}

uint32_t duet_rvdev_sum_idx(struct duet_rvdev *rv, uint16_t (*idx)(const struct virtqueue *))
{
	uint32_t sum = 0;

	for (unsigned int i = 0; i < duet_rvdev_num_live(rv); i++) {
		struct virtqueue *vq = atomic_load_explicit(&rv->live[i], memory_order_acquire);

		if (vq)
			sum += idx(vq);
	}
	return sum;
}

/* ---- virtqueues ---- */

static void rv_delete_virtqueues(struct virtio_device *vdev)
{
	struct duet_rvdev *rv = rv_of(vdev);

	for (unsigned int i = 0; i < DUET_MAX_VRINGS; i++) {
		atomic_store_explicit(&rv->live[i], NULL, memory_order_release);
		rv->vrings[i].vq = NULL;
		duet_port_free(rv->vq_mem[i]);
		rv->vq_mem[i] = NULL;
	}
	vdev->vrings_num = 0;
}

/* Where vring i lives. The device side takes the driver's address only
 * inside the vdev's carveout (and virtqueue_init checks its alignment).
 * The driver side places it from the table it checked at create, never
 * from the live one: the peer may have rewritten the address since, and
 * the driver would clear and use whatever memory it names. NULL when the
 * device side cannot use the driver's address. */
static uint8_t *vring_at(struct duet_rvdev *rv, unsigned int i)
{
	uint32_t *da = &rv->rsc->vring[i].da;
	uint32_t addr;
	size_t len = vring_size(rv->desc.vring[i].num, rv->desc.vring[i].align);

	if (rv->vdev.role == VIRTIO_DEV_DEVICE) {
		uint32_t off;

		addr = load32(da);
		off = addr - rv->desc.carveout_da;
		if (addr == FW_RSC_ADDR_ANY || off > rv->desc.carveout_len ||
		    len > rv->desc.carveout_len - off)
			return NULL;
		return rv->window + addr;
	}

	/* The table said ANY, or this very place (duet_rptun_create refuses
	 * any other). Inside the carveout: create checked that the vrings'
	 * place fits it, and the parse that the carveout lies in the region. */
	addr = rv->desc.carveout_da + (uint32_t)duet_rvdev_vring_offset(&rv->desc, i);
	store32(da, addr);
	/* The driver starts each life of the device on a clean ring, the
	 * device side's words too (used.idx above all): the device is in
	 * reset now, and a device side that has not restarted yet leaves its
	 * stale queues alone (duet_rvdev_stale). */
	memset(rv->window + addr, 0, len);
	return rv->window + addr;
}

static int rv_create_virtqueues(struct virtio_device *vdev, unsigned int flags,
				unsigned int nvqs, const char *names[], vq_callback callbacks[],
				void *callback_args[])
{
	struct duet_rvdev *rv = rv_of(vdev);
	/* Read before the rings are: a reset after this moment is seen. */
	uint32_t epoch = rv->epoch ? atomic_load(rv->epoch) : 0;
	int ret = 0;

	(void)flags;
	if (nvqs == 0 || nvqs > rv->desc.num_vrings || rv->vrings[0].vq)
		return -EINVAL;
	for (unsigned int i = 0; i < nvqs; i++) {
		uint16_t num = (uint16_t)rv->desc.vring[i].num;
		struct virtqueue_config cfg = {
			.name = names ? names[i] : NULL,
			.role = vdev->role == VIRTIO_DEV_DRIVER ? VIRTQUEUE_ROLE_DRIVER
								: VIRTQUEUE_ROLE_DEVICE,
			.num = num,
			.ring = vring_at(rv, i),
			.align = rv->desc.vring[i].align,
			.features = vdev->features & RING_FEATURES,
			/* The vdev's carveout, not the region: a driver's
			 * descriptors (peer words) may name only its own
			 * vdev's memory, never the table or another vdev's. */
			.window = { rv->window + rv->desc.carveout_da, rv->desc.carveout_da,
				    rv->desc.carveout_len },
			.notify = rv_vq_notify,
			.callback = callbacks ? callbacks[i] : NULL,
			.fault = rv_fault,
			.priv = callback_args ? callback_args[i] : NULL,
			.index = (uint16_t)i,
		};
		struct virtqueue *vq;

		rv->vq_mem[i] = duet_port_alloc(virtqueue_footprint(num));
		if (!rv->vq_mem[i]) {
			ret = -ENOMEM;
			break;
		}
		ret = virtqueue_init(rv->vq_mem[i], virtqueue_footprint(num), &cfg, &vq);
		if (ret < 0)
			break;
		vq->vq_dev = vdev;
		rv->vrings[i].vq = vq;
	}
	if (ret < 0) {
		rv_delete_virtqueues(vdev);
		return ret;
	}
	vdev->vrings_num = nvqs;
	if (vdev->role == VIRTIO_DEV_DEVICE)
		atomic_store(&rv->epoch_seen, epoch);
	for (unsigned int i = 0; i < nvqs; i++)
		atomic_store_explicit(&rv->live[i], rv->vrings[i].vq, memory_order_release);
	return 0;
}

/* ---- status, features, config ---- */

static int rv_get_status(struct virtio_device *vdev, uint8_t *status)
{
	*status = duet_rvdev_status(rv_of(vdev));
	return 0;
}

static int drv_set_status(struct virtio_device *vdev, uint8_t status)
{
	struct duet_rvdev *rv = rv_of(vdev);

	if (status == VIRTIO_CONFIG_STATUS_RESET) {
		store32(&rv->rsc->gfeatures, 0);
		store_status(rv, 0);
		if (rv->epoch)
			atomic_fetch_add(rv->epoch, 1);
		return 0;
	}
	/* The device accepts FEATURES_OK only for a subset of its offer. */
	if ((status & VIRTIO_CONFIG_FEATURES_OK) &&
	    (load32(&rv->rsc->gfeatures) & ~load32(&rv->rsc->dfeatures)))
		status &= (uint8_t)~VIRTIO_CONFIG_FEATURES_OK;
	store_status(rv, status);
	return 0;
}

static int dev_set_status(struct virtio_device *vdev, uint8_t status)
{
	/* The status byte is the driver's; a device may only ask for a reset. */
	if (status != VIRTIO_CONFIG_STATUS_NEEDS_RESET)
		return -EPERM;
	status_or(rv_of(vdev), status);
	return 0;
}

/* The offer as the table has it now: the device side may change it until
 * FEATURES_OK (dev_set_features). Any value is safe to read: the driver
 * accepts only bits it knows, and the device side checks what it accepted
 * against its own copy (dev_get_features). */
static int drv_get_features(struct virtio_device *vdev, uint64_t *features)
{
	*features = load32(&rv_of(vdev)->rsc->dfeatures);
	return 0;
}

static int drv_set_features(struct virtio_device *vdev, uint64_t features)
{
	struct duet_rvdev *rv = rv_of(vdev);

	if (duet_rvdev_status(rv) & VIRTIO_CONFIG_FEATURES_OK)
		return -EBUSY;
	if (features >> 32)
		return -EINVAL; /* the vdev entry holds 32 feature bits */
	store32(&rv->rsc->gfeatures, (uint32_t)features);
	return 0;
}

static int dev_get_features(struct virtio_device *vdev, uint64_t *features)
{
	struct duet_rvdev *rv = rv_of(vdev);
	uint32_t accepted = load32(&rv->rsc->gfeatures);

	if (accepted & ~rv->desc.dfeatures)
		return -EPROTO;
	*features = accepted;
	return 0;
}

/* The offer, until the driver sets FEATURES_OK: its copy here is what the
 * driver's acceptance is checked against; the table's is what it reads. */
static int dev_set_features(struct virtio_device *vdev, uint64_t features)
{
	struct duet_rvdev *rv = rv_of(vdev);

	if (duet_rvdev_status(rv) & VIRTIO_CONFIG_FEATURES_OK)
		return -EBUSY;
	if (features >> 32)
		return -EINVAL;
	rv->desc.dfeatures = (uint32_t)features;
	store32(&rv->rsc->dfeatures, (uint32_t)features);
	return 0;
}

static int rv_config_range(const struct duet_rvdev *rv, uint32_t offset, int length)
{
	if (length < 0 || offset > rv->desc.config_len ||
	    (uint32_t)length > rv->desc.config_len - offset)
		return -EINVAL;
	return 0;
}

static int rv_read_config(struct virtio_device *vdev, uint32_t offset, void *dst, int length)
{
	struct duet_rvdev *rv = rv_of(vdev);
	int ret = rv_config_range(rv, offset, length);

	if (ret == 0)
		memcpy(dst, rv->config + offset, (size_t)length);
	return ret;
}

static int rv_write_config(struct virtio_device *vdev, uint32_t offset, const void *src,
			   int length)
{
	struct duet_rvdev *rv = rv_of(vdev);
	int ret = rv_config_range(rv, offset, length);

	if (ret == 0)
		memcpy(rv->config + offset, src, (size_t)length);
	return ret;
}

static int drv_reset(struct virtio_device *vdev)
{
	rv_delete_virtqueues(vdev);
	return drv_set_status(vdev, VIRTIO_CONFIG_STATUS_RESET);
}

/* The device side forgets its queues; the status stays the driver's. */
static int dev_reset(struct virtio_device *vdev)
{
	rv_delete_virtqueues(vdev);
	vdev->features = 0;
	return 0;
}

static void *rv_alloc_buf(struct virtio_device *vdev, size_t size, size_t align)
{
	struct duet_rvdev *rv = rv_of(vdev);

	return rv->heap ? duet_heap_alloc(rv->heap, size, align) : NULL;
}

static int rv_free_buf(struct virtio_device *vdev, void *buf)
{
	struct duet_rvdev *rv = rv_of(vdev);

	return rv->heap ? duet_heap_free(rv->heap, buf) : -EINVAL;
}

/* The peer went, or no longer serves this device: it asked for a reset,
 * its driver reset the device or gave up on it, or this side's ring broke.
 * Either way nothing more comes back until the peer check starts the
 * device over, and that check runs on the thread a receive callback's
 * send waits on. */
static bool rv_peer_gone(struct virtio_device *vdev)
{
	struct duet_rvdev *rv = duet_container_of(vdev, struct duet_rvdev, vdev);

	return !duet_rvdev_served(rv) || (rv->peer_gone && rv->peer_gone(rv));
}

static const struct virtio_dispatch driver_ops = {
	.create_virtqueues = rv_create_virtqueues,
	.delete_virtqueues = rv_delete_virtqueues,
	.get_status = rv_get_status,
	.set_status = drv_set_status,
	.get_features = drv_get_features,
	.set_features = drv_set_features,
	.read_config = rv_read_config,
	.write_config = rv_write_config,
	.reset_device = drv_reset,
	.notify = rv_vq_notify,
	.alloc_buf = rv_alloc_buf,
	.free_buf = rv_free_buf,
	.peer_gone = rv_peer_gone,
};

static const struct virtio_dispatch device_ops = {
	.create_virtqueues = rv_create_virtqueues,
	.delete_virtqueues = rv_delete_virtqueues,
	.get_status = rv_get_status,
	.set_status = dev_set_status,
	.get_features = dev_get_features,
	.set_features = dev_set_features,
	.read_config = rv_read_config,
	.write_config = rv_write_config,
	.reset_device = dev_reset,
	.notify = rv_vq_notify,
	.alloc_buf = rv_alloc_buf,
	.free_buf = rv_free_buf,
	.peer_gone = rv_peer_gone,
};

void duet_rvdev_init(struct duet_rvdev *rv, unsigned int role, uint8_t *window,
		     size_t window_size, uint8_t *table, const struct duet_rsc_vdev *desc,
		     struct duet_heap *heap, duet_rvdev_notify notify, void *priv,
		     _Atomic uint32_t *epoch)
{
	memset(rv, 0, sizeof(*rv));
	rv->epoch = epoch;
	rv->stale_unless = role == VIRTIO_DEV_DEVICE ? epoch : NULL;
	rv->rsc = (struct fw_rsc_vdev *)(void *)(table + desc->entry_offset);
	rv->config = table + desc->config_offset;
	rv->window = window;
	rv->window_size = window_size;
	rv->desc = *desc;
	rv->heap = heap;
	rv->notify = notify;
	rv->priv = priv;
	rv->vdev.id.device = desc->id;
	rv->vdev.notifyid = desc->notifyid;
	rv->vdev.role = role;
	rv->vdev.func = role == VIRTIO_DEV_DRIVER ? &driver_ops : &device_ops;
	rv->vdev.vrings_info = rv->vrings;
}

void duet_rvdev_deinit(struct duet_rvdev *rv)
{
	rv_delete_virtqueues(&rv->vdev);
}
