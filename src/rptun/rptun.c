/*
 * rptun.c - one side of a link: every vdev of the region's table as a
 * virtio device on the bus this side calls for.
 *
 * The table is copied before it is parsed; the copy decides what the
 * devices look like (sizes, roles, carveouts), and only the words the
 * protocol lets the peer change are read from shared memory afterwards.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include <duet/port.h>
#include <duet/rptun.h>
#include <duet/vhost.h>

#include "rvdev.h"

#define MAX_NOTIFYID DUET_MAX_NOTIFYID

struct duet_rptun {
	struct duet_rptun_config cfg;
	uint8_t *table;      /* in the region */
	size_t table_size;
	struct duet_mutex *lock; /* start, stop and check_peer */
	struct duet_rsc_info info;
	struct duet_rvdev rv[DUET_MAX_VDEVS];
	struct duet_heap *heap[DUET_MAX_VDEVS]; /* the driver side's buffers */
	bool registered[DUET_MAX_VDEVS];
	bool running;
	/* notify id -> vdev * DUET_MAX_VRINGS + vring, or -1 */
	int16_t route[MAX_NOTIFYID];
	_Atomic uint32_t unknown;
};

static void rptun_notify(struct duet_rvdev *rv, uint32_t notifyid)
{
	struct duet_rptun *rptun = rv->priv;

	rptun->cfg.ops->notify(rptun, notifyid);
}

static int refuse(struct duet_rsc_error *err, int vdev, enum duet_rsc_fault fault, uint64_t value)
{
	if (err) {
		err->entry = vdev;
		err->fault = fault;
		err->value = value;
	}
	return -EINVAL;
}

/* Parse a local copy of the table the platform points at. */
static int read_table(struct duet_rptun *rptun, struct duet_rsc_error *err)
{
	const struct duet_rptun_config *cfg = &rptun->cfg;
	size_t size = 0;
	uint8_t *t = cfg->ops->get_resource(rptun, &size);
	uintptr_t off = (uintptr_t)t - (uintptr_t)cfg->region;
	void *copy;
	int ret;

	if (!t || off > cfg->region_size || size > cfg->region_size - off || !size)
		return refuse(err, -1, DUET_RSC_TABLE_OUTSIDE, off);
	rptun->table = t;
	rptun->table_size = size;
	copy = duet_port_alloc(size);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, t, size);
	ret = duet_rsc_parse(copy, size, cfg->region_size, &rptun->info, err);
	duet_port_free(copy);
	return ret;
}

static bool rptun_peer_gone(struct duet_rvdev *rv)
{
	struct duet_rptun *rptun = rv->priv;

	return rptun->cfg.ops->peer_gone && rptun->cfg.ops->peer_gone(rptun);
}

static int setup_vdev(struct duet_rptun *rptun, unsigned int i, struct duet_rsc_error *err)
{
	const struct duet_rsc_vdev *d = &rptun->info.vdev[i];
	unsigned int role = d->driver == rptun->cfg.side ? VIRTIO_DEV_DRIVER : VIRTIO_DEV_DEVICE;
	uint8_t *region = rptun->cfg.region;
	size_t vrings = duet_rvdev_vrings_size(d);

	if (vrings > d->carveout_len)
		return refuse(err, (int)i, DUET_RSC_CARVEOUT_SMALL, d->carveout_len);
	for (unsigned int k = 0; k < d->num_vrings; k++) {
		uint32_t da = d->vring[k].da;

		/* Placed already (a table a running link wrote back): only at
		 * the driver's place, or its buffers, from the carveout after
		 * that place, could overlap the ring. */
		if (da != FW_RSC_ADDR_ANY &&
		    da != d->carveout_da + (uint32_t)duet_rvdev_vring_offset(d, k))
			return refuse(err, (int)i, DUET_RSC_VRING_PLACE, da);
		rptun->route[d->vring[k].notifyid] = (int16_t)(i * DUET_MAX_VRINGS + k);
	}
	/* The driver side's buffers: the carveout after the vrings. */
	if (role == VIRTIO_DEV_DRIVER && d->carveout_len - vrings >= 64 &&
	    duet_heap_create(&rptun->heap[i], region + d->carveout_da + vrings,
			     d->carveout_len - vrings, 64) < 0)
		return -ENOMEM;
	duet_rvdev_init(&rptun->rv[i], role, region, rptun->cfg.region_size,
			rptun->table, d, rptun->heap[i], rptun_notify, rptun,
			rptun->cfg.reset_epochs ? &rptun->cfg.reset_epochs[i] : NULL);
	rptun->rv[i].peer_gone = rptun_peer_gone;
	return 0;
}

int duet_rptun_create(struct duet_rptun **rptunp, const struct duet_rptun_config *cfg,
		      struct duet_rsc_error *err)
{
	struct duet_rptun *rptun;
	int ret;

	if (!rptunp || !cfg || !cfg->region || !cfg->ops || !cfg->ops->notify ||
	    !cfg->ops->get_resource ||
	    (cfg->side != DUET_SERVER && cfg->side != DUET_PROXY) || (uintptr_t)cfg->region % 64)
		return -EINVAL;
	rptun = duet_port_alloc(sizeof(*rptun));
	if (!rptun)
		return -ENOMEM;
	rptun->cfg = *cfg;
	memset(rptun->route, 0xff, sizeof(rptun->route));
	ret = duet_mutex_create(&rptun->lock);
	if (ret == 0)
		ret = read_table(rptun, err);
	for (unsigned int i = 0; ret == 0 && i < rptun->info.num_vdevs; i++)
		ret = setup_vdev(rptun, i, err);
	if (ret == 0 && cfg->ops->register_callback)
		ret = cfg->ops->register_callback(rptun, duet_rptun_notified);
	for (unsigned int i = 0; ret == 0 && i < rptun->info.num_vdevs; i++) {
		rptun->rv[i].vdev.local_cpuname = duet_rptun_local_cpuname(rptun);
		rptun->rv[i].vdev.peer_cpuname = duet_rptun_remote_cpuname(rptun);
	}
	if (ret < 0) {
		duet_rptun_destroy(rptun);
		return ret;
	}
	*rptunp = rptun;
	return 0;
}

int duet_rptun_start(struct duet_rptun *rptun)
{
	int ret = 0;

	if (!rptun)
		return -EINVAL;
	duet_mutex_lock(rptun->lock);
	for (unsigned int i = 0; ret == 0 && i < rptun->info.num_vdevs; i++) {
		struct virtio_device *vdev = &rptun->rv[i].vdev;

		if (rptun->registered[i])
			continue;
		ret = vdev->role == VIRTIO_DEV_DRIVER ? virtio_register_device(vdev)
						      : vhost_register_device(vdev);
		rptun->registered[i] = ret == 0;
	}
	rptun->running = ret == 0;
	duet_mutex_unlock(rptun->lock);
	if (ret < 0)
		duet_rptun_stop(rptun); /* all or nothing */
	return ret;
}

bool duet_rptun_running(struct duet_rptun *rptun)
{
	bool running;

	if (!rptun)
		return false;
	duet_mutex_lock(rptun->lock);
	running = rptun->running;
	duet_mutex_unlock(rptun->lock);
	return running;
}

int duet_rptun_stop(struct duet_rptun *rptun)
{
	bool was;

	if (!rptun || !rptun->lock)
		return -EINVAL;
	duet_mutex_lock(rptun->lock);
	was = rptun->running;
	rptun->running = false;
	for (unsigned int i = 0; i < rptun->info.num_vdevs; i++) {
		struct virtio_device *vdev = &rptun->rv[i].vdev;

		if (!rptun->registered[i])
			continue;
		if (vdev->role == VIRTIO_DEV_DRIVER) {
			virtio_unregister_device(vdev);
		} else {
			uint8_t st = duet_rvdev_status(&rptun->rv[i]);

			vhost_unregister_device(vdev);
			/* The device goes away: its driver must start over. */
			if (st & VIRTIO_CONFIG_STATUS_DRIVER_OK)
				virtio_set_status(vdev, VIRTIO_CONFIG_STATUS_NEEDS_RESET);
		}
		rptun->registered[i] = false;
		duet_rvdev_deinit(&rptun->rv[i]);
	}
	duet_mutex_unlock(rptun->lock);
	return was ? 0 : -EINVAL;
}

void duet_rptun_destroy(struct duet_rptun *rptun)
{
	if (!rptun)
		return;
	duet_rptun_stop(rptun); /* -EINVAL when not running: fine here */
	for (unsigned int i = 0; i < DUET_MAX_VDEVS; i++)
		duet_heap_destroy(rptun->heap[i]);
	duet_mutex_destroy(rptun->lock);
	duet_port_free(rptun);
}

void duet_rptun_notified(struct duet_rptun *rptun, uint32_t notifyid)
{
	int route;

	if (!rptun)
		return;
	route = notifyid < MAX_NOTIFYID ? rptun->route[notifyid] : -1;
	if (notifyid == DUET_RPTUN_NOTIFY_ALL) {
		for (unsigned int i = 0; i < rptun->info.num_vdevs; i++) {
			if (duet_rvdev_stale(&rptun->rv[i]))
				continue;
			for (unsigned int k = 0; k < rptun->info.vdev[i].num_vrings; k++)
				duet_rvdev_dispatch(&rptun->rv[i], k);
		}
		return;
	}
	/* A queue not created yet is normal (the peer kicked before this side
	 * probed; the probe looks at the ring): only ids outside the table
	 * are unknown. */
	if (route < 0)
		atomic_fetch_add(&rptun->unknown, 1);
	else if (!duet_rvdev_stale(&rptun->rv[route / DUET_MAX_VRINGS]))
		duet_rvdev_dispatch(&rptun->rv[route / DUET_MAX_VRINGS],
				    (unsigned int)route % DUET_MAX_VRINGS);
}

int duet_rptun_poll(struct duet_rptun *rptun)
{
	unsigned int n, ran = 0;
	struct duet_rvdev *rv;

	if (!rptun)
		return -EINVAL;
	n = rptun->info.num_vdevs;
	rv = rptun->rv;
	for (unsigned int i = 0; i < n; i++)
		if (!duet_rvdev_stale(&rv[i]))
			ran += duet_rvdev_poll(&rv[i]);
	return (int)ran;
}

int duet_rptun_prefetch_arrived(struct duet_rptun *rptun)
{
	unsigned int asked = 0;

	if (!rptun)
		return -EINVAL;
	for (unsigned int i = 0; i < rptun->info.num_vdevs; i++)
		if (!duet_rvdev_stale(&rptun->rv[i]))
			asked += duet_rvdev_prefetch_arrived(&rptun->rv[i]);
	return (int)asked;
}

static uint32_t sum_idx(struct duet_rptun *rptun, uint16_t (*idx)(const struct virtqueue *))
{
	uint32_t sum = 0;

	for (unsigned int i = 0; rptun && i < rptun->info.num_vdevs; i++)
		sum += duet_rvdev_sum_idx(&rptun->rv[i], idx);
	return sum;
}

uint32_t duet_rptun_published(struct duet_rptun *rptun)
{
	return sum_idx(rptun, virtqueue_published_idx);
}

uint32_t duet_rptun_peer_published(struct duet_rptun *rptun)
{
	return sum_idx(rptun, virtqueue_peer_idx);
}

uint32_t duet_rptun_taken(struct duet_rptun *rptun)
{
	return sum_idx(rptun, virtqueue_taken_idx);
}

int duet_rptun_check_peer(struct duet_rptun *rptun)
{
	int restarted = 0;

	if (!rptun)
		return -EINVAL;
	duet_mutex_lock(rptun->lock);
	for (unsigned int i = 0; i < rptun->info.num_vdevs; i++) {
		int ret = rptun->registered[i] ? duet_rvdev_restart_if_reset(&rptun->rv[i]) : 0;

		if (ret < 0)
			rptun->registered[i] = false;
		restarted += ret != 0;
	}
	duet_mutex_unlock(rptun->lock);
	return restarted;
}

static bool is_master(struct duet_rptun *rptun)
{
	return rptun->cfg.ops->is_master ? rptun->cfg.ops->is_master(rptun)
					 : rptun->cfg.side == DUET_SERVER;
}

int duet_rptun_boot(struct duet_rptun *rptun)
{
	int ret;

	if (!rptun)
		return -EINVAL;
	if (duet_rptun_running(rptun))
		return 0;
	if (is_master(rptun) && rptun->cfg.ops->start) {
		ret = rptun->cfg.ops->start(rptun);
		if (ret < 0)
			return ret;
	}
	return duet_rptun_start(rptun);
}

int duet_rptun_shutdown(struct duet_rptun *rptun)
{
	int ret = duet_rptun_stop(rptun); /* -EINVAL for NULL */

	if (ret == 0 && is_master(rptun) && rptun->cfg.ops->stop)
		ret = rptun->cfg.ops->stop(rptun);
	return ret;
}

/* Ask the remote to do something only the master may ask for. */
static int ask_remote(struct duet_rptun *rptun, int (*op)(struct duet_rptun *))
{
	if (!rptun)
		return -EINVAL;
	if (!is_master(rptun))
		return -EPERM;
	return op ? op(rptun) : -ENOTSUP;
}

int duet_rptun_reset(struct duet_rptun *rptun)
{
	return ask_remote(rptun, rptun ? rptun->cfg.ops->reset : NULL);
}

int duet_rptun_panic(struct duet_rptun *rptun)
{
	return ask_remote(rptun, rptun ? rptun->cfg.ops->panic : NULL);
}

const char *duet_rptun_local_cpuname(struct duet_rptun *rptun)
{
	return rptun && rptun->cfg.ops->get_local_cpuname ? rptun->cfg.ops->get_local_cpuname(rptun)
							  : "";
}

const char *duet_rptun_remote_cpuname(struct duet_rptun *rptun)
{
	return rptun && rptun->cfg.ops->get_remote_cpuname ? rptun->cfg.ops->get_remote_cpuname(rptun)
							   : "";
}

void duet_rptun_notify_all(struct duet_rptun *rptun)
{
	if (rptun)
		rptun->cfg.ops->notify(rptun, DUET_RPTUN_NOTIFY_ALL);
}

bool duet_rptun_ready(struct duet_rptun *rptun)
{
	bool ready = true;

	if (!rptun)
		return false;
	duet_mutex_lock(rptun->lock);
	for (unsigned int i = 0; ready && i < rptun->info.num_vdevs; i++) {
		struct duet_rvdev *rv = &rptun->rv[i];
		bool driver = rv->vdev.role == VIRTIO_DEV_DRIVER;

		if (!(driver ? virtio_has_driver(rv->vdev.id.device)
			     : vhost_has_driver(rv->vdev.id.device)))
			continue;
		/* Bound is not enough: its probe may still be making the queues. */
		ready = rptun->registered[i] && atomic_load(&rv->vdev.bus_driver) &&
			duet_rvdev_has_queues(rv) && duet_rvdev_served(rv);
	}
	duet_mutex_unlock(rptun->lock);
	return ready;
}

void *duet_rptun_priv(const struct duet_rptun *rptun)
{
	return rptun ? rptun->cfg.priv : NULL;
}

unsigned int duet_rptun_num_vdevs(const struct duet_rptun *rptun)
{
	return rptun ? rptun->info.num_vdevs : 0;
}

struct virtio_device *duet_rptun_vdev(struct duet_rptun *rptun, unsigned int i)
{
	return rptun && i < rptun->info.num_vdevs ? &rptun->rv[i].vdev : NULL;
}

uint32_t duet_rptun_prefetches(const struct duet_rptun *rptun)
{
	uint32_t sum = 0;

	for (unsigned int i = 0; rptun && i < rptun->info.num_vdevs; i++)
		sum += atomic_load_explicit(&rptun->rv[i].prefetch_spells, memory_order_relaxed);
	return sum;
}

uint32_t duet_rptun_unknown_notifies(const struct duet_rptun *rptun)
{
	return rptun ? atomic_load(&rptun->unknown) : 0;
}
