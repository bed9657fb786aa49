/*
 * rpmsg_virtio.c - rpmsg over a virtio device, one core for both roles.
 *
 * Queues, named as the driver sees them: vq 0 carries device-to-driver
 * messages (the driver posts writable buffers there), vq 1 driver-to-device
 * (the driver posts filled readable buffers). So the driver receives on 0
 * and sends on 1; the device receives on 1 and sends on 0, into the
 * driver's buffers.
 *
 * This file is what both roles share: endpoints, the name service,
 * dispatch, zero copy, waiting for a buffer, devices and listeners. Where
 * buffers come from and go is each role's (rpmsg_driver.c, rpmsg_device.c,
 * through struct rpmsg_role), and so is the per-message path, compiled
 * once per role from rpmsg_path.h.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include <duet/port.h>
#include <duet/rpmsg.h>

#include "../core/compiler.h"
#include "../core/lazy_lock.h"
#include "../core/strtab.h"
#include "rpmsg_internal.h"
#include "rpmsg_path.h"

struct rpmsg_ns_msg {
	char name[RPMSG_NAME_SIZE];
	uint32_t addr;
	uint32_t flags;
};

/* An announcement waiting for a send buffer (see ns_announce). */
struct ns_out {
	struct duet_list node;
	struct rpmsg_ns_msg msg;
};

_Static_assert(sizeof(struct rpmsg_ns_msg) == 40, "name-service message is 40 bytes");

#define DEFAULT_TIMEOUT_MS 5000u
#define MAX_ANNOUNCED 256u /* services of the peer remembered per device */
#define NESTED_SPIN_NS 200000u /* a callback's send polls this long before napping */

/* A service the peer announced and has not withdrawn. */
struct pending_ns {
	char name[RPMSG_NAME_SIZE];
	uint32_t addr;
	bool taken; /* bound by an endpoint here or given to a listener */
	struct duet_list node;
};

struct listener {
	void *priv;
	rpmsg_dev_cb created, destroyed;
	rpmsg_ns_match_cb match;
	rpmsg_ns_bind_cb bind;
	struct duet_list node;
};

static struct duet_list devices = DUET_LIST_INIT(devices);
static struct duet_list listeners = DUET_LIST_INIT(listeners);
static duet_lazy_lock global_lock;

static _Atomic(rpmsg_drop_cb) drop_cb;
static _Atomic(void *) drop_priv;
static const char *(*_Atomic drop_text)(enum rpmsg_drop_why why);

/* The sentence of each rpmsg_drop_why, in its order. */
static const char drop_texts[] =
	"buffer shorter than a header\0"
	"header length past its buffer\0"
	"no endpoint at the destination\0"
	"name-service message of the wrong size\0"
	"name-service name without NUL\0"
	"name-service name empty\0"
	"name-service flags unknown\0"
	"name-service address reserved\0"
	"no memory to remember an announcement\0"
	"too many announcements\0"
	"receive buffer not given back (ring broken)\0"
	"received a writable buffer\0"
	"send buffer too small\0"
	"send buffer not writable\0"
	"send buffer is a chain, not one buffer\0"
	"received a chain, not one buffer";

static const char *drop_text_of(enum rpmsg_drop_why why)
{
	return duet_strtab_at(drop_texts, (unsigned int)why);
}

void rpmsg_set_drop_cb(rpmsg_drop_cb cb, void *priv)
{
	/* The texts are reached only from here: a firmware that never sets
	 * a callback links none of them. priv and the texts first, published
	 * by the callback's release store. */
	atomic_store_explicit(&drop_text, drop_text_of, memory_order_relaxed);
	atomic_store_explicit(&drop_priv, priv, memory_order_relaxed);
	atomic_store_explicit(&drop_cb, cb, memory_order_release);
}

/* The counter a drop goes to, by the order of the codes. */
static enum rpmsg_drop_reason drop_reason_of(enum rpmsg_drop_why why)
{
	if (why <= DROP_HDR_LEN)
		return RPMSG_DROP_LEN;
	if (why == DROP_NO_EPT)
		return RPMSG_DROP_DST;
	return why <= DROP_NS_FULL ? RPMSG_DROP_NS : RPMSG_DROP_OTHER;
}

/* The counter of a reason: the four are consecutive, in the reasons'
 * order. Reached through the struct's bytes, since an index from
 * dropped_len past that member would be undefined. */
_Static_assert(offsetof(struct rpmsg_stats, dropped_other) -
			       offsetof(struct rpmsg_stats, dropped_len) ==
		       RPMSG_DROP_OTHER * sizeof(uint32_t),
	       "drop counters in the order of the reasons");

static uint32_t *drop_counter(struct rpmsg_stats *st, enum rpmsg_drop_reason reason)
{
	return (uint32_t *)(void *)((uint8_t *)st + offsetof(struct rpmsg_stats, dropped_len) +
				    reason * sizeof(uint32_t));
}

/* Out of line: link-time optimisation inlined it into the delivery, whose
 * every message then paid its frame (1,204 -> 1,213 instructions a round
 * trip, build/bench-lto). */
DUET_OUT_OF_LINE void rpmsg_drop(struct rpmsg_device *rdev, enum rpmsg_drop_why why, uint32_t src,
				 uint32_t dst, uint32_t len)
{
	enum rpmsg_drop_reason reason = drop_reason_of(why);
	rpmsg_drop_cb cb = atomic_load_explicit(&drop_cb, memory_order_acquire);

	(*drop_counter(&rdev->stats, reason))++;
	if (cb) {
		struct rpmsg_drop d = { reason, atomic_load_explicit(&drop_text, memory_order_relaxed)(why),
					src, dst, len };

		cb(rdev, &d, atomic_load_explicit(&drop_priv, memory_order_relaxed));
	}
}

/* ---- buffers ---- */

/* Give back a delivered buffer: to the ring, or to the heap if stashed. */
static void finish_rx(struct rpmsg_device *rdev, uint8_t *buf, uint16_t head, bool stashed)
{
	if (stashed)
		duet_port_free(duet_container_of(buf, struct stashed_rx, data));
	else
		rdev->role->recycle_rx(rdev, buf, head);
}

static void stash_rx(struct rpmsg_device *rdev);
static void free_rdev(struct rpmsg_device *rdev);

/* Whether what is left of a removed device (rpmsg_remove is done: vdev
 * NULL) has no endpoint and no hold on it any more: then it is freed.
 * Under its lock. */
static bool rdev_unused(const struct rpmsg_device *rdev)
{
	return !rdev->vdev && !rdev->orphans && !rdev->holds;
}

/* The transport knows the peer went, though the device is not removed yet. */
static bool peer_gone(struct rpmsg_device *rdev)
{
	const struct virtio_dispatch *f = rdev->vdev->func;

	return f->peer_gone && f->peer_gone(rdev->vdev);
}

/*
 * rpmsg_take_tx once no send buffer was free: wait for one up to the
 * device's timeout when `wait`. Called with the lock held once or more. From a
 * receive callback the thread that would see the peer's notification is
 * this one: it then stashes what arrived (giving the peer its buffers
 * back) and polls, briefly spinning first, instead of sleeping on the
 * event. Out of line: a free buffer, the common case, needs none of this.
 */
DUET_OUT_OF_LINE uint8_t *rpmsg_take_tx_wait(struct rpmsg_device *rdev, bool wait)
{
	/* Elapsed times in 32 bits, wrap-safe: a 32-bit core does no 64-bit
	 * arithmetic here, and no timeout comes near 49 days (ms) or the
	 * spin near 4 s (ns). The clock is read only once a buffer is
	 * missing: two reads per message were ~80 instructions of a round trip. */
	uint32_t start = (uint32_t)duet_clock_ms();
	uint32_t spin_start = (uint32_t)duet_clock_ns();
	uint32_t waited = 0;
	bool counted = false;
	uint8_t *buf;

	do {
		/* Messages sent with "more" must not wait behind a full ring:
		 * the peer frees buffers only once it knows of them. */
		rdev->tx_held = 0;
		virtqueue_kick(rdev->svq);
		if (!atomic_load_explicit(&rdev->svq->cb_enabled, memory_order_relaxed)) {
			/* Buffers coming back are worth a notification only now
			 * (also to a trysend caller who will wait for one); look
			 * again after asking: one may have come already. */
			if (virtqueue_enable_cb(rdev->svq) > 0)
				continue;
		}
		/* Before -EAGAIN: a try send must not be told to try again
		 * on a ring that will give nothing back. */
		if (rpmsg_gone(rdev) || virtqueue_is_broken(rdev->svq)) {
			rdev->took.err = -ENODEV;
			return NULL;
		}
		if (!wait) {
			rdev->took.err = -EAGAIN;
			return NULL;
		}
		if (waited >= rdev->timeout_ms) {
			rdev->took.err = -ETIMEDOUT;
			return NULL;
		}
		if (!counted) {
			rdev->stats.tx_waits++;
			counted = true;
		}
		if (rdev->depth > 0) {
			stash_rx(rdev);
			if ((uint32_t)duet_clock_ns() - spin_start > NESTED_SPIN_NS) {
				/* This thread is the transport's: it would see
				 * the peer go and remove the device only after
				 * this wait, and each message the stash holds
				 * would wait again. Ask the transport. */
				if (peer_gone(rdev)) {
					rdev->took.err = -ENODEV;
					return NULL;
				}
				duet_event_wait(rdev->tx_event, 1);
			}
		} else {
			rdev->tx_sleepers++;
			duet_mutex_unlock(rdev->lock);
			duet_event_wait(rdev->tx_event, rdev->timeout_ms - waited);
			duet_mutex_lock(rdev->lock);
			rdev->tx_sleepers--;
			/* Woken by rpmsg_remove: the rings may be gone already
			 * (the endpoint keeps the lock and event). Leave, waking
			 * the next sleeper. */
			if (rpmsg_gone(rdev)) {
				if (rdev->tx_sleepers)
					duet_event_post(rdev->tx_event);
				rdev->took.err = -ENODEV;
				return NULL;
			}
		}
		waited = (uint32_t)duet_clock_ms() - start;
	} while (!(buf = rdev->role->take_tx(rdev, &rdev->took.head, &rdev->took.cap)));
	/* The event wakes one sleeper per post, and posts that meet no new
	 * sleeper merge: with more than one buffer back at once, pass it on.
	 * One that finds none sleeps again. */
	if (rdev->tx_sleepers)
		duet_event_post(rdev->tx_event);
	return buf;
}

/* ---- endpoints ---- */

/*
 * The chain of the endpoints whose address hashes as addr's. Every
 * delivery looks its destination up, so a device serving many endpoints
 * must not walk them all. Multiplicative (Fibonacci) hashing spreads the
 * free addresses, given out in order, and addresses a stride apart alike.
 * The peer chooses the address looked up, but a chain holds only our own
 * endpoints, so it bounds nothing the peer controls.
 */
static struct rpmsg_endpoint **addr_chain(struct rpmsg_device *rdev, uint32_t addr)
{
	return &rdev->by_addr[(uint32_t)(addr * 0x9e3779b1u) >> (32 - RPMSG_ADDR_BITS)];
}

static struct rpmsg_endpoint *find_ept(struct rpmsg_device *rdev, uint32_t addr)
{
	struct rpmsg_endpoint *e = *addr_chain(rdev, addr);

	while (e && e->addr != addr)
		e = e->addr_next;
	return e;
}

/* An endpoint joins the device: newest first in the list, and its chain. */
static void link_ept(struct rpmsg_device *rdev, struct rpmsg_endpoint *ept)
{
	struct rpmsg_endpoint **chain = addr_chain(rdev, ept->addr);

	duet_list_add(&rdev->epts, &ept->node);
	ept->addr_next = *chain;
	*chain = ept;
}

/* ... and leaves both: then its node is empty (see rpmsg_destroy_ept).
 * An endpoint on the list is in its chain: the walk ends at it. */
static void unlink_ept(struct rpmsg_device *rdev, struct rpmsg_endpoint *ept)
{
	struct rpmsg_endpoint **p = addr_chain(rdev, ept->addr);

	while (*p != ept)
		p = &(*p)->addr_next;
	*p = ept->addr_next;
	duet_list_del(&ept->node);
}

static struct rpmsg_endpoint *find_ept_by_name(struct rpmsg_device *rdev, const char *name,
					       uint32_t dest)
{
	struct duet_list *l;

	/* Oldest first (the list is newest first): of two endpoints of one
	 * name, an announcement binds the one created first. */
	for (l = rdev->epts.prev; l != &rdev->epts; l = l->prev) {
		struct rpmsg_endpoint *e = duet_container_of(l, struct rpmsg_endpoint, node);

		if (e->addr != RPMSG_NS_EPT_ADDR && !strncmp(e->name, name, RPMSG_NAME_SIZE) &&
		    e->dest_addr == dest)
			return e;
	}
	return NULL;
}

/* A copy send by one who holds the lock, by the role's path. */
static int send_locked(struct rpmsg_device *rdev, uint32_t src, uint32_t dst,
		       const void *data, int len, unsigned int how)
{
	return rdev->role->send(rdev, src, dst, data, len, how | SEND_HELD);
}

static void forget_ns_out(struct rpmsg_device *rdev, struct ns_out *o)
{
	duet_list_del(&o->node);
	duet_port_free(o);
	atomic_fetch_sub(&rdev->nns_out, 1);
}

/* Out of line: inlined into the send path it made every send save six
 * registers. */
DUET_OUT_OF_LINE void rpmsg_flush_ns_now(struct rpmsg_device *rdev)
{
	while (!duet_list_empty(&rdev->ns_out)) {
		struct ns_out *o = duet_container_of(rdev->ns_out.next, struct ns_out, node);

		/* Any other error is a broken ring: the announcement goes with it. */
		if (send_locked(rdev, o->msg.addr, RPMSG_NS_EPT_ADDR, &o->msg, sizeof(o->msg),
				0) == -EAGAIN)
			return; /* the wait left the notification on: tx_notified comes back */
		forget_ns_out(rdev, o);
	}
}

/* Cancel a queued CREATE of this endpoint; true if there was one. */
static bool cancel_create(struct rpmsg_device *rdev, const struct rpmsg_endpoint *ept)
{
	/* The newest announcement for the address is the one that counts. */
	for (struct duet_list *l = rdev->ns_out.prev; l != &rdev->ns_out; l = l->prev) {
		struct ns_out *o = duet_container_of(l, struct ns_out, node);

		if (o->msg.addr != ept->addr)
			continue;
		if (o->msg.flags != RPMSG_NS_CREATE ||
		    memcmp(o->msg.name, ept->name, RPMSG_NAME_SIZE) != 0)
			return false;
		forget_ns_out(rdev, o);
		return true;
	}
	return false;
}

/*
 * Tell the peer about ept. Never waits: without a send buffer (a peer that
 * has posted none yet, or a full ring) the announcement is queued and sent
 * when one comes back, in order. When even the queue cannot grow, a CREATE
 * is refused (-ENOMEM: the caller takes the endpoint back, and nothing is
 * lost that a retry cannot give), and a DESTROY, which cannot fail, waits
 * for a buffer like a send. Returns 0 or -ENOMEM.
 */
static int ns_announce(struct rpmsg_device *rdev, struct rpmsg_endpoint *ept, uint32_t flags)
{
	struct rpmsg_ns_msg msg = { .addr = duet_le32(ept->addr), .flags = duet_le32(flags) };
	struct ns_out *o;

	/* While the device goes, its rings stay until rpmsg_remove deletes
	 * them: an endpoint a listener destroys is still announced (a free
	 * buffer taken, never waited for). */
	if (!rdev->ns || !ept->name[0] || !rdev->svq)
		return 0;
	if (flags == RPMSG_NS_DESTROY && cancel_create(rdev, ept))
		return 0; /* the peer never heard of it */
	memcpy(msg.name, ept->name, RPMSG_NAME_SIZE);
	rpmsg_flush_ns(rdev);
	if (duet_list_empty(&rdev->ns_out) &&
	    send_locked(rdev, ept->addr, RPMSG_NS_EPT_ADDR, &msg, sizeof(msg), 0) != -EAGAIN)
		return 0;
	o = duet_port_alloc(sizeof(*o));
	if (!o) {
		if (flags == RPMSG_NS_CREATE)
			return -ENOMEM;
		send_locked(rdev, ept->addr, RPMSG_NS_EPT_ADDR, &msg, sizeof(msg), SEND_WAIT);
		return 0;
	}
	o->msg = msg;
	duet_list_add_tail(&rdev->ns_out, &o->node);
	atomic_fetch_add(&rdev->nns_out, 1);
	rdev->stats.ns_deferred++;
	/* A buffer may have come back between the try and the queueing. */
	if (virtqueue_enable_cb(rdev->svq) > 0)
		rpmsg_flush_ns(rdev);
	return 0;
}

static uint32_t free_addr(struct rpmsg_device *rdev)
{
	uint32_t a = RPMSG_RESERVED_ADDRESSES;

	while (find_ept(rdev, a) && a != RPMSG_ADDR_ANY)
		a++;
	return a;
}

static void forget_pending(struct rpmsg_device *rdev, struct pending_ns *p)
{
	duet_list_del(&p->node);
	duet_port_free(p);
	rdev->npending--;
}

static struct pending_ns *find_pending(struct rpmsg_device *rdev, const char *name)
{
	struct duet_list *l;

	for (l = rdev->pending.next; l != &rdev->pending; l = l->next) {
		struct pending_ns *p = duet_container_of(l, struct pending_ns, node);

		if (!strncmp(p->name, name, RPMSG_NAME_SIZE))
			return p;
	}
	return NULL;
}

/* Whether ept is one of rdev's endpoints now: a second create of it would
 * rewrite it while linked. By address only, never reading *ept, which
 * may not be set yet. Creation is rare: a walk of the list serves. */
static bool ept_listed(struct rpmsg_device *rdev, const struct rpmsg_endpoint *ept)
{
	for (struct duet_list *l = rdev->epts.next; l != &rdev->epts; l = l->next)
		if (l == &ept->node)
			return true;
	return false;
}

/* Length of a name, or RPMSG_NAME_SIZE when it does not fit. */
static size_t name_len(const char *name)
{
	size_t n = 0;

	while (n < RPMSG_NAME_SIZE && name[n])
		n++;
	return n;
}

int rpmsg_create_ept(struct rpmsg_endpoint *ept, struct rpmsg_device *rdev, const char *name,
		     uint32_t src, uint32_t dest, rpmsg_ept_cb cb, rpmsg_ns_unbind_cb ns_unbind_cb)
{
	struct pending_ns *p;

	if (!ept || !rdev || !cb || (name && name_len(name) == RPMSG_NAME_SIZE))
		return -EINVAL;
	duet_mutex_lock(rdev->lock);
	if (rpmsg_gone(rdev)) {
		duet_mutex_unlock(rdev->lock);
		return -ENODEV;
	}
	if (src == RPMSG_ADDR_ANY)
		src = free_addr(rdev);
	if (find_ept(rdev, src) || src == RPMSG_ADDR_ANY || ept_listed(rdev, ept)) {
		duet_mutex_unlock(rdev->lock);
		return -EBUSY;
	}
	memset(ept->name, 0, sizeof(ept->name));
	if (name)
		memcpy(ept->name, name, name_len(name));
	ept->rdev = rdev;
	ept->addr = src;
	ept->dest_addr = dest;
	ept->cb = cb;
	ept->ns_unbind_cb = ns_unbind_cb;
	link_ept(rdev, ept);
	/* The lock is held throughout: a refused endpoint was never seen. */
	if (src != RPMSG_NS_EPT_ADDR && ns_announce(rdev, ept, RPMSG_NS_CREATE) < 0) {
		unlink_ept(rdev, ept);
		ept->rdev = NULL;
		duet_mutex_unlock(rdev->lock);
		return -ENOMEM;
	}
	/* The peer may have announced this name already (also to an
	 * endpoint of this name that was destroyed since). Only now: a
	 * refused create takes nothing from the listeners. */
	if (dest == RPMSG_ADDR_ANY && ept->name[0] && (p = find_pending(rdev, ept->name))) {
		ept->dest_addr = p->addr;
		p->taken = true;
	}
	duet_mutex_unlock(rdev->lock);
	return 0;
}

/* Give back slot h: a held receive buffer (`rx`) or a lent send one. */
static void give_back(struct rpmsg_device *rdev, struct held *h, bool rx)
{
	uint8_t *buf = h->buf;

	h->buf = NULL; /* the slot is free before anything below sends */
	if (rx) {
		finish_rx(rdev, buf, h->head, h->stashed);
		rdev->nheld--;
		rdev->nheld_copies -= h->stashed;
		return;
	}
	rdev->role->untake_tx(rdev, buf, h->head);
	/* The peer will not tell anyone of this buffer: it never left this
	 * side. A queued announcement takes it, or a sender asleep for one
	 * is woken. */
	rpmsg_flush_ns(rdev);
	if (rdev->tx_sleepers)
		duet_event_post(rdev->tx_event);
}

/*
 * What ept has of the device goes back with it: its held receive buffers
 * to the ring (or the heap, if stashed), its lent send buffers to the free
 * ones, and a hold its callback took of the buffer being delivered now is
 * dropped (the delivery gives it back). Nothing of the device points at
 * the endpoint after. Under the lock; once the device went, its slots are
 * gone and there is nothing to do.
 */
static void give_back_all(struct rpmsg_device *rdev, const struct rpmsg_endpoint *ept)
{
	for (unsigned int i = 0; i < 2 * rdev->nslots; i++) {
		/* tx_out and rx_held are one array of 2 * nslots (alloc_slots) */
		struct held *h = &rdev->tx_out[i];

		if (h->buf && h->ept == ept)
			give_back(rdev, h, i >= rdev->nslots);
	}
	if (rdev->cur.buf && rdev->cur.ept == ept)
		rdev->cur_held = false;
}

void rpmsg_destroy_ept(struct rpmsg_endpoint *ept)
{
	struct rpmsg_device *rdev;
	bool last = false;

	/* ept->rdev changes only here: its owner's thread reads it safely. */
	if (!ept || !(rdev = ept->rdev))
		return;
	duet_mutex_lock(rdev->lock);
	give_back_all(rdev, ept); /* first: the announcement may use a lent buffer */
	/* The announcement may wait for a buffer, and the device go meanwhile:
	 * whether the endpoint outlived it is known only after. */
	if (!duet_list_empty(&ept->node))
		ns_announce(rdev, ept, RPMSG_NS_DESTROY);
	if (duet_list_empty(&ept->node)) {
		/* It outlived its device (rpmsg_remove): the last such frees it. */
		rdev->orphans--;
		last = rdev_unused(rdev);
	} else {
		unlink_ept(rdev, ept);
	}
	ept->rdev = NULL;
	duet_mutex_unlock(rdev->lock);
	if (last)
		free_rdev(rdev);
}

bool rpmsg_is_ept_ready(struct rpmsg_endpoint *ept)
{
	struct rpmsg_device *rdev = ept ? ept->rdev : NULL;
	bool ready;

	if (!rdev)
		return false;
	/* dest_addr changes under the lock when the peer announces. */
	duet_mutex_lock(rdev->lock);
	ready = !rpmsg_gone(rdev) && ept->dest_addr != RPMSG_ADDR_ANY;
	duet_mutex_unlock(rdev->lock);
	return ready;
}

/* ---- sending ---- */

/* An endpoint's peer address. The name service moves it, under the
 * device's lock, as the peer binds or unbinds, while a send reads it
 * without the lock: both through these. A send that read the old address
 * just before an unbind sends to it once more, as it would have a moment
 * earlier. */
static inline uint32_t ept_dest(struct rpmsg_endpoint *ept)
{
	return atomic_load_explicit((_Atomic uint32_t *)&ept->dest_addr, memory_order_relaxed);
}

static void set_ept_dest(struct rpmsg_endpoint *ept, uint32_t dest)
{
	atomic_store_explicit((_Atomic uint32_t *)&ept->dest_addr, dest, memory_order_relaxed);
}

/* What is wrong with a message of len bytes at *data, for rdev's send
 * buffers: -EINVAL, -EMSGSIZE, or 0. An empty one needs no data: *data
 * then points at an empty string, as memcpy wants a pointer. Every copy
 * send checks each message with it before anything goes. */
static inline int msg_fault(const struct rpmsg_device *rdev, const void **data, int len)
{
	if (len < 0)
		return -EINVAL;
	if (!*data) {
		if (len)
			return -EINVAL;
		*data = "";
	}
	return (uint32_t)len > rdev->tx_size - RPMSG_HDR_SIZE ? -EMSGSIZE : 0;
}

static int send_common(struct rpmsg_endpoint *ept, uint32_t src, uint32_t dst,
		       const void *data, int len, unsigned int how)
{
	struct rpmsg_device *rdev = ept ? ept->rdev : NULL;
	int ret;

	if (!rdev)
		return -EINVAL;
	ret = msg_fault(rdev, &data, len);
	if (ret < 0)
		return ret;
	if (dst == RPMSG_ADDR_ANY || src == RPMSG_ADDR_ANY)
		return -ENOTCONN;
	return rdev->role->send(rdev, src, dst, data, len, how);
}

int rpmsg_send(struct rpmsg_endpoint *ept, const void *data, int len)
{
	return send_common(ept, ept ? ept->addr : 0, ept ? ept_dest(ept) : 0, data, len, SEND_WAIT);
}

int rpmsg_sendto(struct rpmsg_endpoint *ept, const void *data, int len, uint32_t dst)
{
	return send_common(ept, ept ? ept->addr : 0, dst, data, len, SEND_WAIT);
}

int rpmsg_send_offchannel(struct rpmsg_endpoint *ept, uint32_t src, uint32_t dst,
			  const void *data, int len)
{
	return send_common(ept, src, dst, data, len, SEND_WAIT);
}

int rpmsg_trysend(struct rpmsg_endpoint *ept, const void *data, int len)
{
	return send_common(ept, ept ? ept->addr : 0, ept ? ept_dest(ept) : 0, data, len, 0);
}

int rpmsg_trysendto(struct rpmsg_endpoint *ept, const void *data, int len, uint32_t dst)
{
	return send_common(ept, ept ? ept->addr : 0, dst, data, len, 0);
}

int rpmsg_trysend_offchannel(struct rpmsg_endpoint *ept, uint32_t src, uint32_t dst,
			     const void *data, int len)
{
	return send_common(ept, src, dst, data, len, 0);
}

int rpmsg_send_more(struct rpmsg_endpoint *ept, const void *data, int len)
{
	return send_common(ept, ept ? ept->addr : 0, ept ? ept_dest(ept) : 0, data, len,
			   SEND_WAIT | SEND_MORE);
}

int rpmsg_trysend_more(struct rpmsg_endpoint *ept, const void *data, int len)
{
	return send_common(ept, ept ? ept->addr : 0, ept ? ept_dest(ept) : 0, data, len,
			   SEND_MORE);
}

/* Put filled send buffers in the ring in one call, unannounced: the
 * driver side adds bufs[i], the device side returns heads[i], sizes[i]
 * bytes each. How many went, in order, or a negative errno. Here, not in
 * the role table: a build that sends no burst links none of it. */
static int submit_batch(struct rpmsg_device *rdev, uint8_t *const bufs[], const uint16_t heads[],
			const uint32_t sizes[], uint16_t n)
{
	if (rdev->role->driver)
		return virtqueue_add_bufs_sized(rdev->svq, (void *const *)bufs, sizes, n, false);
	return virtqueue_add_consumed_buffers(rdev->svq, heads, sizes, n);
}

/* Messages of a burst taken, filled and put in the ring per call. */
#define RPMSG_BURST_CHUNK 32

/* Take, fill and submit up to RPMSG_BURST_CHUNK messages of a burst, from
 * datas[0], lens[0]; returns how many went, or a negative errno when none
 * did (-EAGAIN: no buffer). With `wait`, only the first take may wait:
 * everything earlier in the burst is in the ring by then. */
static int burst_chunk(struct rpmsg_device *rdev, uint32_t src, uint32_t dst,
		       const void *const datas[], const int lens[], int n, bool wait)
{
	uint8_t *bufs[RPMSG_BURST_CHUNK];
	uint16_t heads[RPMSG_BURST_CHUNK];
	uint32_t sizes[RPMSG_BURST_CHUNK];
	const struct rpmsg_role *role = rdev->role;
	int k, done, err = 0;
	bool misfit = false;

	for (k = 0; k < n && k < RPMSG_BURST_CHUNK; k++) {
		uint32_t cap;

		bufs[k] = rpmsg_take_tx(rdev, role, wait && k == 0, &heads[k], &cap, &err);
		if (!bufs[k])
			break;
		if ((uint32_t)lens[k] > cap - RPMSG_HDR_SIZE) {
			misfit = true; /* a smaller buffer than agreed: back after the rest */
			err = -EMSGSIZE;
			break;
		}
		rpmsg_write_hdr(bufs[k], src, dst, (uint16_t)lens[k]);
		if (lens[k])
			memcpy(bufs[k] + RPMSG_HDR_SIZE, datas[k], (size_t)lens[k]);
		sizes[k] = RPMSG_HDR_SIZE + (uint32_t)lens[k];
	}
	done = k ? submit_batch(rdev, bufs, heads, sizes, (uint16_t)k) : 0;
	if (done < 0)
		done = 0;
	/* Only a broken ring refuses: what it did not take goes back, then
	 * the misfit (the peer sees the messages first). */
	for (int i = done; i < k + misfit; i++)
		role->untake_tx(rdev, bufs[i], heads[i]);
	rdev->stats.tx_msgs += (uint32_t)done;
	if (!k)
		return err;
	return done ? done : -ENODEV; /* the ring broke: as a send on it says */
}

/* A burst of copy sends, under the lock, its arguments checked: in chunks
 * until all went, or, without `wait`, until the buffers run out. Returns
 * how many went, or a negative errno when none did. The caller notifies. */
static int burst_path(struct rpmsg_device *rdev, uint32_t src, uint32_t dst,
		      const void *const datas[], const int lens[], int n, bool wait)
{
	int sent = 0, ret = 0;

	while (sent < n) {
		ret = burst_chunk(rdev, src, dst, datas + sent, lens + sent, n - sent, wait);
		if (ret <= 0)
			break;
		sent += ret;
		if (!wait && ret < RPMSG_BURST_CHUNK)
			break; /* the buffers ran out (or the ring broke) */
	}
	return sent ? sent : ret;
}

/* Whether every message of a burst can go (see rpmsg_trysend_burst): 0 or
 * the errno of the first that cannot. */
static int check_burst(const struct rpmsg_device *rdev, const void *const datas[],
		       const int lens[], int n)
{
	for (int i = 0; i < n; i++) {
		const void *data = datas[i];
		int ret = msg_fault(rdev, &data, lens[i]);

		if (ret < 0)
			return ret;
	}
	return 0;
}

static int burst_entry(struct rpmsg_endpoint *ept, const void *const datas[], const int lens[],
		       int n, bool wait)
{
	struct rpmsg_device *rdev = ept ? ept->rdev : NULL;
	uint32_t dst;
	int ret;

	if (!rdev || n < 0 || (n && (!datas || !lens)))
		return -EINVAL;
	ret = check_burst(rdev, datas, lens, n);
	if (ret < 0 || n == 0)
		return ret;
	duet_mutex_lock(rdev->lock);
	dst = ept->dest_addr; /* the name service moves it under the lock */
	ret = rpmsg_gone(rdev) ? -ENODEV : dst == RPMSG_ADDR_ANY ? -ENOTCONN : 0;
	if (ret < 0) {
		duet_mutex_unlock(rdev->lock);
		return ret;
	}
	rpmsg_flush_ns(rdev); /* queued announcements go first */
	/* The peer hears of the burst at the end, or when a take finds the
	 * ring full (rpmsg_take_tx_wait). */
	ret = burst_path(rdev, ept->addr, dst, datas, lens, n, wait);
	if (ret > 0)
		virtqueue_kick(rdev->svq);
	duet_mutex_unlock(rdev->lock);
	return ret;
}

int rpmsg_trysend_burst(struct rpmsg_endpoint *ept, const void *const datas[], const int lens[],
			int n)
{
	return burst_entry(ept, datas, lens, n, false);
}

int rpmsg_send_burst(struct rpmsg_endpoint *ept, const void *const datas[], const int lens[],
		     int n)
{
	return burst_entry(ept, datas, lens, n, true);
}

int rpmsg_flush(struct rpmsg_endpoint *ept)
{
	struct rpmsg_device *rdev = ept ? ept->rdev : NULL;
	int ret;

	if (!rdev)
		return -EINVAL;
	duet_mutex_lock(rdev->lock);
	ret = rpmsg_gone(rdev) ? -ENODEV : 0;
	if (ret == 0) {
		rdev->tx_held = 0;
		virtqueue_kick(rdev->svq);
	}
	duet_mutex_unlock(rdev->lock);
	return ret;
}

/* ---- zero copy ---- */

/* The slot of a send buffer handed to the user, by payload pointer. */
static struct held *find_tx_out(struct rpmsg_device *rdev, const void *payload)
{
	for (unsigned int i = 0; i < rdev->nslots; i++)
		if (rdev->tx_out[i].buf && rdev->tx_out[i].buf + RPMSG_HDR_SIZE == payload)
			return &rdev->tx_out[i];
	return NULL;
}

void *rpmsg_get_tx_payload_buffer(struct rpmsg_endpoint *ept, uint32_t *len, int wait)
{
	struct rpmsg_device *rdev = ept ? ept->rdev : NULL;
	struct held *slot;
	uint8_t *buf = NULL;
	uint32_t cap = 0;
	uint16_t head = 0;
	int err;

	if (!rdev || !len)
		return NULL;
	duet_mutex_lock(rdev->lock);
	if (!rpmsg_gone(rdev))
		buf = rpmsg_take_tx(rdev, rdev->role, wait != 0, &head, &cap, &err);
	/* The slot after the take, which may wait without the lock: another
	 * lender could fill a slot chosen before. There is one for every
	 * buffer that can be lent (alloc_slots). */
	slot = NULL;
	for (unsigned int i = 0; buf && i < rdev->nslots && !slot; i++)
		if (!rdev->tx_out[i].buf)
			slot = &rdev->tx_out[i];
	if (slot) {
		/* cap is at most the agreed size: no more than 65,536 */
		*len = cap - RPMSG_HDR_SIZE;
		slot->buf = buf;
		slot->head = head;
		slot->room = (uint16_t)*len;
		slot->ept = ept;
	}
	duet_mutex_unlock(rdev->lock);
	return slot ? buf + RPMSG_HDR_SIZE : NULL;
}

static int nocopy(struct rpmsg_endpoint *ept, uint32_t dst, const void *data, int len, bool more)
{
	struct rpmsg_device *rdev = ept ? ept->rdev : NULL;
	struct held *slot;
	int ret;

	if (!rdev || len < 0)
		return -EINVAL;
	if (dst == RPMSG_ADDR_ANY)
		return -ENOTCONN;
	duet_mutex_lock(rdev->lock);
	slot = find_tx_out(rdev, data); /* none once the device went */
	if (!slot) {
		duet_mutex_unlock(rdev->lock);
		/* not a buffer we handed out, or the device went */
		return rpmsg_gone(rdev) ? -ENODEV : -EINVAL;
	}
	if ((uint32_t)len > slot->room) {
		duet_mutex_unlock(rdev->lock); /* still lent: the caller may send less */
		return -EMSGSIZE;
	}
	rpmsg_write_hdr(slot->buf, ept->addr, dst, (uint16_t)len);
	ret = rpmsg_submit_tx(rdev, rdev->role, slot->buf, slot->head,
			      RPMSG_HDR_SIZE + (uint32_t)len, !more);
	slot->buf = NULL;
	duet_mutex_unlock(rdev->lock);
	return ret < 0 ? ret : len;
}

int rpmsg_send_nocopy(struct rpmsg_endpoint *ept, const void *data, int len)
{
	return nocopy(ept, ept ? ept_dest(ept) : 0, data, len, false);
}

int rpmsg_sendto_nocopy(struct rpmsg_endpoint *ept, const void *data, int len, uint32_t dst)
{
	return nocopy(ept, dst, data, len, false);
}

int rpmsg_send_nocopy_more(struct rpmsg_endpoint *ept, const void *data, int len)
{
	return nocopy(ept, ept ? ept_dest(ept) : 0, data, len, true);
}

int rpmsg_release_tx_buffer(struct rpmsg_endpoint *ept, void *txbuf)
{
	struct rpmsg_device *rdev = ept ? ept->rdev : NULL;
	struct held *slot;

	if (!rdev)
		return -EINVAL;
	duet_mutex_lock(rdev->lock);
	slot = find_tx_out(rdev, txbuf); /* none once the device went */
	if (slot)
		give_back(rdev, slot, false);
	duet_mutex_unlock(rdev->lock);
	return slot ? 0 : rpmsg_gone(rdev) ? -ENODEV : -EINVAL;
}

void rpmsg_hold_rx_buffer(struct rpmsg_endpoint *ept, void *rxbuf)
{
	struct rpmsg_device *rdev = ept ? ept->rdev : NULL;

	if (!rdev)
		return;
	duet_mutex_lock(rdev->lock);
	/* Only the payload being delivered now can be held. */
	if (rdev->cur.buf && rdev->cur.buf + RPMSG_HDR_SIZE == rxbuf)
		rdev->cur_held = true;
	duet_mutex_unlock(rdev->lock);
}

void rpmsg_release_rx_buffer(struct rpmsg_endpoint *ept, void *rxbuf)
{
	struct rpmsg_device *rdev = ept ? ept->rdev : NULL;

	if (!rdev)
		return;
	duet_mutex_lock(rdev->lock);
	for (unsigned int i = 0; i < rdev->nslots; i++) {
		struct held *h = &rdev->rx_held[i];

		if (h->buf && h->buf + RPMSG_HDR_SIZE == rxbuf) {
			give_back(rdev, h, true);
			break;
		}
	}
	duet_mutex_unlock(rdev->lock);
}

int rpmsg_get_tx_buffer_size(struct rpmsg_endpoint *ept)
{
	return ept && ept->rdev ? (int)(ept->rdev->tx_size - RPMSG_HDR_SIZE) : -EINVAL;
}

int rpmsg_get_rx_buffer_size(struct rpmsg_endpoint *ept)
{
	return ept && ept->rdev ? (int)(ept->rdev->rx_size - RPMSG_HDR_SIZE) : -EINVAL;
}

/* ---- receiving ---- */

/* Offer an announcement nobody here has to `only`, or to every listener
 * when NULL; true when one took it. Under the global lock and the device's. */
static bool offer_ns(struct rpmsg_device *rdev, struct pending_ns *p, const struct listener *only)
{
	struct duet_list *l;

	for (l = listeners.next; l != &listeners; l = l->next) {
		struct listener *li = duet_container_of(l, struct listener, node);

		if ((!only || li == only) && li->match && li->bind &&
		    li->match(rdev, p->name, p->addr, li->priv)) {
			char name[RPMSG_NAME_SIZE];

			/* Taken before the call, which may create an endpoint
			 * of the name; the copy outlives what it may undo. */
			p->taken = true;
			memcpy(name, p->name, sizeof(name));
			li->bind(rdev, name, p->addr, li->priv);
			return true;
		}
	}
	return false;
}

/* What is wrong with a name-service message (a local copy), or DROP_NONE. */
static enum rpmsg_drop_why ns_fault(const struct rpmsg_ns_msg *msg)
{
	if (!memchr(msg->name, '\0', sizeof(msg->name)))
		return DROP_NS_NUL;
	if (!msg->name[0])
		return DROP_NS_EMPTY;
	if (msg->flags > RPMSG_NS_DESTROY)
		return DROP_NS_FLAGS;
	if (msg->addr < RPMSG_RESERVED_ADDRESSES || msg->addr == RPMSG_ADDR_ANY)
		return DROP_NS_ADDR;
	return DROP_NONE;
}

/* A name-service message. Out of line: inlined, it made every delivery
 * save six registers and set up a frame for the copy. */
static DUET_OUT_OF_LINE void handle_ns(struct rpmsg_device *rdev, const uint8_t *payload,
				       uint16_t len)
{
	struct rpmsg_ns_msg msg;
	enum rpmsg_drop_why why;
	struct rpmsg_endpoint *ept;
	struct pending_ns *p;

	if (len != sizeof(msg)) {
		rpmsg_drop(rdev, DROP_NS_SIZE, 0, RPMSG_NS_EPT_ADDR, len);
		return;
	}
	memcpy(&msg, payload, sizeof(msg)); /* once: the peer may rewrite it */
	msg.addr = duet_le32(msg.addr);
	msg.flags = duet_le32(msg.flags);
	why = ns_fault(&msg);
	if (why != DROP_NONE) {
		rpmsg_drop(rdev, why, msg.addr, RPMSG_NS_EPT_ADDR, len);
		return;
	}
	if (msg.flags == RPMSG_NS_CREATE) {
		/* An endpoint waiting for the service binds first: that needs
		 * no memory, so a failure to remember the announcement below
		 * cannot cost it its peer. */
		ept = find_ept_by_name(rdev, msg.name, RPMSG_ADDR_ANY);
		if (ept)
			set_ept_dest(ept, msg.addr);
		p = find_pending(rdev, msg.name);
		if (!p) {
			bool room = rdev->npending < MAX_ANNOUNCED;

			p = room ? duet_port_alloc(sizeof(*p)) : NULL;
			if (!p) {
				rpmsg_drop(rdev, room ? DROP_NS_NOMEM : DROP_NS_FULL, msg.addr,
					   RPMSG_NS_EPT_ADDR, len);
				return;
			}
			memcpy(p->name, msg.name, sizeof(p->name));
			duet_list_add_tail(&rdev->pending, &p->node);
			rdev->npending++;
		} else if (p->addr != msg.addr) {
			p->taken = false; /* the service moved: a new one */
		}
		p->addr = msg.addr;
		if (ept || find_ept_by_name(rdev, msg.name, msg.addr))
			p->taken = true;
		if (!p->taken)
			rdev->offer = true; /* to the listeners, after this pass */
		return;
	}
	p = find_pending(rdev, msg.name);
	if (p && p->addr == msg.addr)
		forget_pending(rdev, p);
	ept = find_ept_by_name(rdev, msg.name, msg.addr);
	if (ept) {
		set_ept_dest(ept, RPMSG_ADDR_ANY);
		if (ept->ns_unbind_cb)
			ept->ns_unbind_cb(ept);
	}
}

/*
 * The header of a received buffer, checked: false when the message is
 * dropped (counted; the caller gives the buffer back).
 */
static bool check_rx(struct rpmsg_device *rdev, const uint8_t *buf, uint32_t len,
		     struct rpmsg_hdr *hdr)
{
	if (len < RPMSG_HDR_SIZE) {
		/* An empty one is how the device gives back a buffer it took
		 * and did not send in (a lent one released, a refused send):
		 * no message, and no fault. */
		if (len || !rdev->role->driver)
			rpmsg_drop(rdev, DROP_SHORT, 0, 0, len);
		return false;
	}
	rpmsg_read_hdr(hdr, buf);
	if (hdr->len > len - RPMSG_HDR_SIZE || hdr->len > rdev->rx_size - RPMSG_HDR_SIZE) {
		rpmsg_drop(rdev, DROP_HDR_LEN, hdr->src, hdr->dst, hdr->len);
		return false;
	}
	return true;
}

/* The receiver held the buffer just delivered (rpmsg_hold_rx_buffer):
 * move it to a free slot. One is free: the slots outnumber the receive
 * ring's buffers and the stash's copies, held ones included (stash_rx).
 * False only if that bound broke (the buffer is given back). */
static DUET_OUT_OF_LINE bool keep_rx(struct rpmsg_device *rdev)
{
	struct held cur = rdev->cur;

	rdev->cur.buf = NULL;
	for (unsigned int i = 0; i < rdev->nslots; i++) {
		if (!rdev->rx_held[i].buf) {
			rdev->rx_held[i] = cur;
			rdev->nheld++;
			rdev->nheld_copies += cur.stashed;
			return true;
		}
	}
	return false;
}

/* One checked message: dispatch it. True when the caller gives the buffer
 * back now; false when the receiver holds it. */
static bool deliver_rx(struct rpmsg_device *rdev, uint8_t *buf, const struct rpmsg_hdr *hdr,
		       uint16_t head, bool stashed)
{
	struct rpmsg_endpoint *ept;

	if (hdr->dst == RPMSG_NS_EPT_ADDR && rdev->ns) {
		rdev->stats.rx_msgs++;
		handle_ns(rdev, buf + RPMSG_HDR_SIZE, hdr->len);
		return true;
	}
	ept = find_ept(rdev, hdr->dst);
	if (!ept) {
		rpmsg_drop(rdev, DROP_NO_EPT, hdr->src, hdr->dst, hdr->len);
		return true;
	}
	rdev->stats.rx_msgs++;
	/* What is being delivered is kept in rdev, not across the call: the
	 * callback then costs this function no saved registers. Field by
	 * field: as a compound literal, gcc -Os zeroed the struct with a
	 * memset call first (74 instructions a round trip on a Cortex-M4). */
	rdev->cur.buf = buf;
	rdev->cur.head = head;
	rdev->cur.ept = ept;
	rdev->cur.stashed = stashed;
	rdev->cur_held = false;
	rdev->depth++;
	ept->cb(ept, buf + RPMSG_HDR_SIZE, hdr->len, hdr->src, ept->priv);
	rdev->depth--;
	if (rdev->cur_held)
		return !keep_rx(rdev);
	rdev->cur.buf = NULL;
	return true;
}

bool rpmsg_dispatch(struct rpmsg_device *rdev, uint8_t *buf, uint32_t len, uint16_t head)
{
	struct rpmsg_hdr hdr;

	return !check_rx(rdev, buf, len, &hdr) || deliver_rx(rdev, buf, &hdr, head, false);
}

void rpmsg_serve_stash(struct rpmsg_device *rdev)
{
	struct stashed_rx *s = duet_container_of(rdev->stash.next, struct stashed_rx, node);
	struct rpmsg_hdr hdr;

	duet_list_del(&s->node);
	rdev->nstash--;
	rpmsg_read_hdr(&hdr, s->data); /* our copy, written as the wire is (stash_rx) */
	if (deliver_rx(rdev, s->data, &hdr, 0, true))
		finish_rx(rdev, s->data, 0, true);
}

/*
 * A send from a receive callback waits for a buffer the peer may only
 * return once it can send to us, and the peer's callbacks may be waiting
 * the same way. Copying what has arrived out of the ring and giving the
 * buffers back breaks that cycle; the copies are delivered, in order,
 * before anything newer. Bounded: past stash_max copies, those held by a
 * receiver counted too, the sender just waits.
 */
static void stash_rx(struct rpmsg_device *rdev)
{
	while (rdev->nstash + rdev->nheld_copies < rdev->stash_max && !rpmsg_gone(rdev)) {
		struct stashed_rx *s = duet_port_alloc(sizeof(*s) + rdev->rx_size);
		struct rpmsg_hdr hdr;
		uint32_t len;
		uint16_t head;
		uint8_t *buf;

		if (!s)
			break;
		buf = rdev->role->next_rx(rdev, &len, &head);
		if (!buf) {
			duet_port_free(s);
			break;
		}
		if (!check_rx(rdev, buf, len, &hdr)) {
			duet_port_free(s);
			rdev->role->recycle_rx(rdev, buf, head);
			continue;
		}
		rpmsg_write_hdr(s->data, hdr.src, hdr.dst, hdr.len); /* as checked */
		memcpy(s->data + RPMSG_HDR_SIZE, buf + RPMSG_HDR_SIZE, hdr.len);
		rdev->role->recycle_rx(rdev, buf, head);
		duet_list_add_tail(&rdev->stash, &s->node);
		rdev->nstash++;
		rdev->stats.rx_stashed++;
	}
}

/* The announcements of rdev nobody took, offered as offer_ns does. Under
 * the global lock. */
static void offer_untaken(struct rpmsg_device *rdev, const struct listener *only)
{
	struct duet_list *l, *next;

	duet_mutex_lock(rdev->lock);
	if (!only)
		rdev->offer = false;
	for (l = rdev->pending.next; l != &rdev->pending; l = next) {
		struct pending_ns *p = duet_container_of(l, struct pending_ns, node);

		next = l->next;
		if (!p->taken)
			offer_ns(rdev, p, only);
	}
	duet_mutex_unlock(rdev->lock);
}

/*
 * Offer new announcements to the listeners. Locks go global, then device,
 * everywhere: so this runs after a receive pass, not inside it.
 */
void rpmsg_offer_pending(struct rpmsg_device *rdev)
{
	if (duet_lazy_lock_take(&global_lock) < 0)
		return;
	offer_untaken(rdev, NULL);
	duet_lazy_lock_give(&global_lock);
}

static void tx_notified(struct virtqueue *vq)
{
	struct rpmsg_device *rdev = vq->priv;

	if (atomic_load(&rdev->nns_out)) {
		duet_mutex_lock(rdev->lock);
		rpmsg_flush_ns(rdev);
		rpmsg_quiet_tx_cb(rdev);
		duet_mutex_unlock(rdev->lock);
	}
	duet_event_post(rdev->tx_event);
}

/* ---- devices ---- */

static int read_sizes(struct rpmsg_device *rdev)
{
	struct rpmsg_virtio_config cfg = { duet_le32(RPMSG_DEFAULT_BUF_SIZE),
					   duet_le32(RPMSG_DEFAULT_BUF_SIZE) };

	/* A shorter config space keeps the defaults. */
	virtio_read_config(rdev->vdev, 0, &cfg, sizeof(cfg));
	cfg.txbuf_size = duet_le32(cfg.txbuf_size);
	cfg.rxbuf_size = duet_le32(cfg.rxbuf_size);
	if (cfg.txbuf_size <= RPMSG_HDR_SIZE || cfg.txbuf_size > RPMSG_MAX_BUF_SIZE ||
	    cfg.rxbuf_size <= RPMSG_HDR_SIZE || cfg.rxbuf_size > RPMSG_MAX_BUF_SIZE)
		return -EINVAL;
	rdev->tx_size = rdev->role->driver ? cfg.txbuf_size : cfg.rxbuf_size;
	rdev->rx_size = rdev->role->driver ? cfg.rxbuf_size : cfg.txbuf_size;
	return 0;
}

/* Let go of what the device holds besides its struct, lock and event:
 * the pools (the transport's), the stash, queued announcements, the
 * slots; then of the transport itself (vdev NULL: released). */
static void release_rdev(struct rpmsg_device *rdev)
{
	struct virtio_device *vdev = rdev->vdev;

	if (rdev->rx_pool)
		virtio_free_buf(vdev, rdev->rx_pool);
	if (rdev->tx_pool)
		virtio_free_buf(vdev, rdev->tx_pool);
	while (!duet_list_empty(&rdev->stash)) {
		struct duet_list *l = rdev->stash.next;

		duet_list_del(l);
		duet_port_free(duet_container_of(l, struct stashed_rx, node));
	}
	while (!duet_list_empty(&rdev->ns_out))
		forget_ns_out(rdev, duet_container_of(rdev->ns_out.next, struct ns_out, node));
	for (unsigned int i = 0; rdev->rx_held && i < rdev->nslots; i++)
		if (rdev->rx_held[i].buf && rdev->rx_held[i].stashed)
			finish_rx(rdev, rdev->rx_held[i].buf, 0, true);
	duet_port_free(rdev->tx_free);
	duet_port_free(rdev->tx_out); /* and rx_held, rx_bufs, rx_heads */
	rdev->tx_out = rdev->rx_held = NULL;
	rdev->nslots = 0;
	rdev->vdev = NULL;
}

static void free_rdev(struct rpmsg_device *rdev)
{
	if (rdev->vdev)
		release_rdev(rdev); /* unless rpmsg_remove did */
	duet_event_destroy(rdev->tx_event);
	duet_mutex_destroy(rdev->lock);
	duet_port_free(rdev);
}

static int ns_ept_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	(void)ept;
	(void)data;
	(void)len;
	(void)src;
	(void)priv;
	return 0; /* handled in deliver_rx before endpoints */
}

/* Put rdev on the device list (`created`) or take it off, and tell the
 * listeners. */
static void list_device(struct rpmsg_device *rdev, bool created)
{
	struct duet_list *l;

	if (duet_lazy_lock_take(&global_lock) < 0)
		return;
	if (created)
		duet_list_add_tail(&devices, &rdev->node);
	else
		duet_list_del(&rdev->node);
	for (l = listeners.next; l != &listeners; l = l->next) {
		struct listener *li = duet_container_of(l, struct listener, node);
		rpmsg_dev_cb cb = created ? li->created : li->destroyed;

		if (cb)
			cb(rdev, li->priv);
	}
	duet_lazy_lock_give(&global_lock);
}

/* Size and allocate the bookkeeping of rdev's queues, in one block: the
 * lent and held slots, then the receive batch's buffers and heads (a
 * role uses one of the two). */
static int alloc_slots(struct rpmsg_device *rdev)
{
	unsigned int nrx = virtqueue_get_vring_size(rdev->rvq);
	unsigned int ntx = virtqueue_get_vring_size(rdev->svq);

	rdev->stash_max = 2u * nrx;
	/* Every buffer that can be lent out at once has a slot: the send
	 * ring's; the receive ring's and the stash's copies, held ones too. */
	rdev->nslots = nrx + ntx + rdev->stash_max;
	rdev->rx_half = (uint16_t)(nrx / 2u);
	/* "more" holds the doorbell for half the send ring at most (a
	 * one-entry ring: not at all). */
	rdev->tx_hold_max = (uint16_t)(ntx / 2u ? ntx / 2u : 1u);
	/* An eighth of the ring, up to 32: a ring under 16 entries returns
	 * each buffer at once. */
	rdev->rx_batch = (uint16_t)(nrx / 8u > 32u ? 32u : nrx / 8u ? nrx / 8u : 1u);
	rdev->tx_out = duet_port_alloc((size_t)2 * rdev->nslots * sizeof(struct held) +
				       rdev->rx_batch * (sizeof(void *) + sizeof(uint16_t)));
	if (!rdev->tx_out)
		return -ENOMEM;
	rdev->rx_held = rdev->tx_out + rdev->nslots;
	rdev->rx_bufs = (void **)(void *)(rdev->rx_held + rdev->nslots);
	rdev->rx_heads = (uint16_t *)(void *)(rdev->rx_bufs + rdev->rx_batch);
	return 0;
}

int rpmsg_probe(struct virtio_device *vdev, const struct rpmsg_role *role)
{
	bool driver = role->driver;
	const char *names[] = { "rx", "tx" };
	vq_callback cbs[2];
	struct rpmsg_device *rdev = duet_port_alloc(sizeof(*rdev));
	void *args[2] = { rdev, rdev };
	int ret;

	if (!rdev)
		return -ENOMEM;
	rdev->vdev = vdev;
	rdev->role = role;
	rdev->timeout_ms = DEFAULT_TIMEOUT_MS;
	rdev->peer_cpu = vdev->peer_cpuname;
	duet_list_init(&rdev->epts);
	duet_list_init(&rdev->pending);
	duet_list_init(&rdev->ns_out);
	duet_list_init(&rdev->stash);
	/* vq 0 is device-to-driver, vq 1 driver-to-device. */
	cbs[0] = driver ? role->rx_notified : tx_notified;
	cbs[1] = driver ? tx_notified : role->rx_notified;
	ret = duet_mutex_create(&rdev->lock);
	if (ret == 0)
		ret = duet_event_create(&rdev->tx_event);
	if (ret == 0 && driver)
		ret = virtio_negotiate_features(vdev, 1ull << VIRTIO_RPMSG_F_NS, NULL);
	if (ret == 0)
		ret = read_sizes(rdev);
	/* Callbacks may run as soon as the queues exist: they lock first. */
	if (ret == 0) {
		duet_mutex_lock(rdev->lock);
		ret = virtio_create_virtqueues(vdev, 0, 2, names, cbs, args);
		if (ret < 0)
			duet_mutex_unlock(rdev->lock);
	}
	if (ret < 0) {
		free_rdev(rdev);
		return ret;
	}
	rdev->ns = virtio_has_feature(vdev, VIRTIO_RPMSG_F_NS);
	rdev->rvq = vdev->vrings_info[driver ? 0 : 1].vq;
	rdev->svq = vdev->vrings_info[driver ? 1 : 0].vq;
	/* Send buffers coming back need no notification until a sender
	 * waits for one (rpmsg_take_tx_wait asks then): half the wake-ups of a round
	 * trip, and nearly all of a stream's. */
	virtqueue_disable_cb(rdev->svq);
	ret = alloc_slots(rdev);
	if (ret == 0 && role->setup)
		ret = role->setup(rdev);
	if (ret == 0)
		ret = rpmsg_create_ept(&rdev->ns_ept, rdev, NULL, RPMSG_NS_EPT_ADDR,
				       RPMSG_NS_EPT_ADDR, ns_ept_cb, NULL);
	duet_mutex_unlock(rdev->lock);
	if (ret < 0) {
		virtio_reset_device(vdev);
		virtio_delete_virtqueues(vdev);
		free_rdev(rdev);
		return ret;
	}
	vdev->priv = rdev;
	list_device(rdev, true);
	/* Messages may have come before this side was ready. */
	role->rx_notified(rdev->rvq);
	return 0;
}

/*
 * The device goes: its transport unbinds it (or the peer went). What came
 * from the transport (rings, pools) goes now. Endpoints still open keep
 * their rdev, which answers -ENODEV (or nothing) from now on, and its
 * struct, lock and event stay until the last of them is destroyed: a
 * thread sending on one, even one that read ept->rdev just before, or one
 * asleep for a buffer, never meets freed memory.
 */
void rpmsg_remove(struct virtio_device *vdev)
{
	struct rpmsg_device *rdev = vdev->priv;
	bool last;

	/* Gone before the listeners are told: one of them may take the
	 * device's lock (the ping service does), which a callback's send
	 * waiting for a buffer holds until it sees `gone`. */
	atomic_store(&rdev->gone, true);
	list_device(rdev, false);
	duet_mutex_lock(rdev->lock);
	/* Senders asleep for a buffer wake one by one, each seeing `gone`
	 * (rpmsg_take_tx_wait): their endpoints keep the lock and event. */
	duet_event_post(rdev->tx_event);
	/* The endpoints lose their device and their owners are told. Each
	 * leaves the list and its chain first: an unbind callback may destroy
	 * any of the others. */
	while (!duet_list_empty(&rdev->epts)) {
		struct rpmsg_endpoint *e = duet_container_of(rdev->epts.next, struct rpmsg_endpoint, node);

		unlink_ept(rdev, e);
		if (e == &rdev->ns_ept) {
			e->rdev = NULL;
			continue;
		}
		rdev->orphans++;
		if (e->ns_unbind_cb)
			e->ns_unbind_cb(e);
	}
	while (!duet_list_empty(&rdev->pending))
		forget_pending(rdev, duet_container_of(rdev->pending.next, struct pending_ns, node));
	/* Received buffers still waiting for their batch go back: a peer
	 * that keeps its rings (the device side leaving alone) gets every
	 * one, as it would have before batches. */
	if (rdev->nrx_back)
		rdev->role->return_rx(rdev);
	/* The peer stops using the buffers before they are freed. */
	if (rdev->role->driver)
		virtio_reset_device(vdev);
	virtio_delete_virtqueues(vdev);
	rdev->rvq = rdev->svq = NULL;
	/* The transport may go before the endpoints: nothing of it is kept. */
	release_rdev(rdev);
	last = rdev_unused(rdev); /* release_rdev let go of vdev */
	duet_mutex_unlock(rdev->lock);
	vdev->priv = NULL;
	if (last)
		free_rdev(rdev);
}

/* ---- listeners and lookup ---- */

int rpmsg_register_callback(void *priv, rpmsg_dev_cb device_created,
			    rpmsg_dev_cb device_destroyed, rpmsg_ns_match_cb ns_match,
			    rpmsg_ns_bind_cb ns_bind)
{
	struct listener *li = duet_port_alloc(sizeof(*li));
	struct duet_list *d;

	if (!li)
		return -ENOMEM;
	*li = (struct listener){ priv, device_created, device_destroyed, ns_match, ns_bind, { 0 } };
	if (duet_lazy_lock_take(&global_lock) < 0) {
		duet_port_free(li);
		return -ENOMEM;
	}
	duet_list_add_tail(&listeners, &li->node);
	for (d = devices.next; d != &devices; d = d->next) {
		struct rpmsg_device *rdev = duet_container_of(d, struct rpmsg_device, node);

		if (device_created)
			device_created(rdev, priv);
		offer_untaken(rdev, li); /* what came before this listener */
	}
	duet_lazy_lock_give(&global_lock);
	return 0;
}

void rpmsg_unregister_callback(void *priv)
{
	struct duet_list *l;

	if (duet_lazy_lock_take(&global_lock) < 0)
		return;
	for (l = listeners.next; l != &listeners; l = l->next) {
		struct listener *li = duet_container_of(l, struct listener, node);

		if (li->priv == priv) {
			duet_list_del(&li->node);
			duet_port_free(li);
			break;
		}
	}
	duet_lazy_lock_give(&global_lock);
}

/* The index-th device on the list, `hold` taken on it; under the list's
 * lock, which its removal takes first. */
static struct rpmsg_device *nth_device(unsigned int index, bool hold)
{
	struct rpmsg_device *found = NULL;
	struct duet_list *l;

	if (duet_lazy_lock_take(&global_lock) < 0)
		return NULL;
	for (l = devices.next; l != &devices; l = l->next)
		if (index-- == 0) {
			found = duet_container_of(l, struct rpmsg_device, node);
			break;
		}
	if (found && hold) {
		duet_mutex_lock(found->lock);
		found->holds++;
		duet_mutex_unlock(found->lock);
	}
	duet_lazy_lock_give(&global_lock);
	return found;
}

struct rpmsg_device *rpmsg_get_device(unsigned int index)
{
	return nth_device(index, false);
}

struct rpmsg_device *rpmsg_hold_device(unsigned int index)
{
	return nth_device(index, true);
}

void rpmsg_release_device(struct rpmsg_device *rdev)
{
	bool last;

	if (!rdev)
		return;
	duet_mutex_lock(rdev->lock);
	if (!rdev->holds) {
		duet_mutex_unlock(rdev->lock); /* not held: nothing to let go */
		return;
	}
	rdev->holds--;
	last = rdev_unused(rdev);
	duet_mutex_unlock(rdev->lock);
	if (last)
		free_rdev(rdev);
}

const char *rpmsg_get_cpuname(struct rpmsg_device *rdev)
{
	/* Not through vdev, which rpmsg_remove lets go of under the lock: a
	 * listing of the devices (the duet command's) reads this while another
	 * thread may remove one. */
	return rdev && !rpmsg_gone(rdev) && rdev->peer_cpu ? rdev->peer_cpu : "";
}

void rpmsg_set_send_timeout(struct rpmsg_device *rdev, uint32_t ms)
{
	if (!rdev)
		return;
	duet_mutex_lock(rdev->lock);
	rdev->timeout_ms = ms;
	duet_mutex_unlock(rdev->lock);
}

void rpmsg_get_stats(struct rpmsg_device *rdev, struct rpmsg_stats *st)
{
	if (!st)
		return;
	if (!rdev) {
		memset(st, 0, sizeof(*st));
		return;
	}
	duet_mutex_lock(rdev->lock);
	*st = rdev->stats;
	duet_mutex_unlock(rdev->lock);
}
