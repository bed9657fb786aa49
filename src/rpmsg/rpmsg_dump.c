/*
 * rpmsg_dump.c - NuttX's `rpmsg dump` for one device, as text. Formats
 * with a few local helpers: the core has no stdio when freestanding.
 */
#include <string.h>

#include "rpmsg_internal.h"

struct out {
	char *buf;
	size_t len, n;
};

static void put(struct out *o, const char *s)
{
	while (*s) {
		if (o->n + 1 < o->len)
			o->buf[o->n] = *s;
		o->n++;
		s++;
	}
	if (o->len)
		o->buf[o->n < o->len ? o->n : o->len - 1] = '\0';
}

static void put_u(struct out *o, uint64_t v, unsigned int base)
{
	char tmp[24];
	int i = (int)sizeof(tmp) - 1;

	tmp[i] = '\0';
	do {
		tmp[--i] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v && i > 0);
	if (base == 16)
		put(o, "0x");
	put(o, &tmp[i]);
}

static void put_vq(struct out *o, const char *what, struct virtqueue *vq)
{
	struct virtqueue_state s;

	virtqueue_get_state(vq, &s);
	put(o, "rpmsg vq ");
	put(o, what);
	put(o, ":\n  VQ: ");
	put(o, vq->vq_name ? vq->vq_name : "?");
	put(o, " - size=");
	put_u(o, s.size, 10);
	put(o, "; free=");
	put_u(o, s.free, 10);
	put(o, "; queued=");
	put_u(o, s.queued, 10);
	put(o, "; desc_head_idx=");
	put_u(o, s.desc_head_idx, 10);
	put(o, "; available_idx=");
	put_u(o, s.available_idx, 10);
	put(o, "; avail.idx=");
	put_u(o, s.avail_idx, 10);
	put(o, "; used_cons_idx=");
	put_u(o, s.used_cons_idx, 10);
	put(o, "; used.idx=");
	put_u(o, s.used_idx, 10);
	put(o, "; avail.flags=");
	put_u(o, s.avail_flags, 16);
	put(o, "; used.flags=");
	put_u(o, s.used_flags, 16);
	put(o, "\n");
}

/* Everything of a device that is still there. Under its lock. */
static void put_device(struct out *o, struct rpmsg_device *rdev)
{
	struct duet_list *l;
	unsigned int lent = 0, ring_held = 0;

	/* Used send buffers not yet taken back are not pending any more. */
	if (rdev->role->reclaim_tx)
		rdev->role->reclaim_tx(rdev);
	put(o, "Dump rpmsg info between cpu (master: ");
	put(o, rdev->role->driver ? "yes" : "no");
	put(o, ") ");
	put(o, rdev->vdev->local_cpuname ? rdev->vdev->local_cpuname : "?");
	put(o, " <==> ");
	put(o, rpmsg_get_cpuname(rdev));
	put(o, rdev->role->driver ? " (virtio-rpmsg)\n" : " (vhost-rpmsg)\n");
	put_vq(o, "RX", rdev->rvq);
	put_vq(o, "TX", rdev->svq);
	put(o, "  rpmsg ept list:\n");
	for (l = rdev->epts.prev; l != &rdev->epts; l = l->prev) { /* in creation order */
		struct rpmsg_endpoint *e = duet_container_of(l, struct rpmsg_endpoint, node);

		put(o, "    ept ");
		put(o, e->addr == RPMSG_NS_EPT_ADDR ? "NS" : e->name);
		put(o, " addr ");
		put_u(o, e->addr, 10);
		put(o, " dest ");
		if (e->dest_addr == RPMSG_ADDR_ANY)
			put(o, "any");
		else
			put_u(o, e->dest_addr, 10);
		put(o, "\n");
	}
	for (unsigned int i = 0; i < rdev->nslots; i++)
		ring_held += rdev->rx_held[i].buf && !rdev->rx_held[i].stashed;
	put(o, "  rpmsg buffer list:\n    RX buffer, total ");
	put_u(o, virtqueue_get_vring_size(rdev->rvq), 10);
	put(o, ", pending ");
	put_u(o, rdev->role->driver ? (unsigned int)(rdev->nrx - rdev->rx_out) : ring_held, 10);
	put(o, ", held ");
	put_u(o, rdev->nheld, 10);
	put(o, ", stashed ");
	put_u(o, rdev->nstash, 10);
	put(o, "\n");
	for (unsigned int i = 0; i < rdev->nslots; i++) {
		if (!rdev->rx_held[i].buf)
			continue;
		put(o, "      held by ");
		put(o, rdev->rx_held[i].ept->name);
		put(o, "\n");
	}
	for (unsigned int i = 0; i < rdev->nslots; i++)
		lent += rdev->tx_out[i].buf != NULL;
	put(o, "    TX buffer, total ");
	put_u(o, virtqueue_get_vring_size(rdev->svq), 10);
	put(o, ", pending ");
	put_u(o,
	      rdev->role->driver ? (unsigned int)(rdev->ntx - (rdev->tx_end - rdev->tx_first) - lent)
				 : 0,
	      10);
	put(o, ", lent ");
	put_u(o, lent, 10);
	put(o, "\n  dropped: length ");
	put_u(o, rdev->stats.dropped_len, 10);
	put(o, ", destination ");
	put_u(o, rdev->stats.dropped_dst, 10);
	put(o, ", name service ");
	put_u(o, rdev->stats.dropped_ns, 10);
	put(o, ", other ");
	put_u(o, rdev->stats.dropped_other, 10);
	put(o, "\n");
}

int rpmsg_dump(struct rpmsg_device *rdev, char *buf, size_t len)
{
	struct out o = { buf, len, 0 };

	if (!rdev || (!buf && len)) {
		if (buf && len)
			buf[0] = '\0';
		return 0;
	}
	duet_mutex_lock(rdev->lock);
	if (rpmsg_gone(rdev)) /* an endpoint's rdev after removal: no rings */
		put(&o, "Dump rpmsg info: device gone\n");
	else
		put_device(&o, rdev);
	duet_mutex_unlock(rdev->lock);
	return (int)(o.n < len ? o.n : (len ? len - 1 : 0));
}
