/*
 * rpmsg_internal.h - the rpmsg device, shared by the core (rpmsg_virtio.c),
 * the two roles (rpmsg_driver.c, rpmsg_device.c), ping and dump.
 */
#ifndef DUET_RPMSG_INTERNAL_H
#define DUET_RPMSG_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>

#include <duet/byteorder.h>
#include <duet/port.h>
#include <duet/rpmsg.h>

#include "../core/compiler.h"

struct rpmsg_ping_state;
struct rpmsg_device;

/* The wire header before each payload (DESIGN.md section 3). */
struct rpmsg_hdr {
	uint32_t src;
	uint32_t dst;
	uint32_t reserved;
	uint16_t len;
	uint16_t flags;
};

_Static_assert(sizeof(struct rpmsg_hdr) == RPMSG_HDR_SIZE, "rpmsg header is 16 bytes");

/* Write the header of a message of len bytes from src to dst at buf, a
 * store a field: built on the stack and copied whole, it was a loop of two
 * 8-byte moves at -Os on a Cortex-M4. */
static inline void rpmsg_write_hdr(uint8_t *buf, uint32_t src, uint32_t dst, uint16_t len)
{
	const uint32_t zero = 0;
	const uint16_t flags = 0;

	src = duet_le32(src); /* the wire's order: duet/byteorder.h */
	dst = duet_le32(dst);
	len = duet_le16(len);

	DUET_COPY(buf + offsetof(struct rpmsg_hdr, src), &src, sizeof(src));
	DUET_COPY(buf + offsetof(struct rpmsg_hdr, dst), &dst, sizeof(dst));
	DUET_COPY(buf + offsetof(struct rpmsg_hdr, reserved), &zero, sizeof(zero));
	DUET_COPY(buf + offsetof(struct rpmsg_hdr, len), &len, sizeof(len));
	DUET_COPY(buf + offsetof(struct rpmsg_hdr, flags), &flags, sizeof(flags));
}

/* Read the fields of the header at buf that rpmsg uses (not reserved and
 * flags), each once: the peer may rewrite them. A load a field, as
 * rpmsg_write_hdr stores: the whole header through memcpy cost a Cortex-M4
 * 14 instructions a message more at -Os. */
static inline void rpmsg_read_hdr(struct rpmsg_hdr *hdr, const uint8_t *buf)
{
	DUET_COPY(&hdr->src, buf + offsetof(struct rpmsg_hdr, src), sizeof(hdr->src));
	DUET_COPY(&hdr->dst, buf + offsetof(struct rpmsg_hdr, dst), sizeof(hdr->dst));
	DUET_COPY(&hdr->len, buf + offsetof(struct rpmsg_hdr, len), sizeof(hdr->len));
	hdr->src = duet_le32(hdr->src);
	hdr->dst = duet_le32(hdr->dst);
	hdr->len = duet_le16(hdr->len);
}

/* How a send goes (rpmsg_send_path's `how`). */
#define SEND_WAIT 1u /* wait for a buffer, up to the device's timeout */
#define SEND_MORE 2u /* hold the doorbell: more follows (rpmsg_send_more) */
#define SEND_HELD 4u /* the caller holds the lock (an announcement): no queue flush */

/* Chains of the endpoint table by address (a power of two): a device with
 * up to about this many endpoints finds a destination in one or two looks. */
#define RPMSG_ADDR_BITS 4
#define RPMSG_ADDR_BUCKETS (1u << RPMSG_ADDR_BITS)

/*
 * What differs between the roles: where buffers come from and where they
 * go. One constant table per role, in its own file, so a build with one
 * role links only that role's code. Everything here runs under the device
 * lock and never waits.
 */
struct rpmsg_role {
	bool driver; /* virtio-rpmsg: owns the buffers; else vhost-rpmsg */
	/* A free send buffer, its capacity in *cap; or NULL. */
	uint8_t *(*take_tx)(struct rpmsg_device *rdev, uint16_t *head, uint32_t *cap);
	/* Put a filled send buffer in the ring (rpmsg_submit_tx notifies). */
	int (*submit_tx)(struct rpmsg_device *rdev, uint8_t *buf, uint16_t head, uint32_t len);
	/* Give a send buffer back unused. */
	void (*untake_tx)(struct rpmsg_device *rdev, uint8_t *buf, uint16_t head);
	/* The next buffer the peer filled for us, or NULL. */
	uint8_t *(*next_rx)(struct rpmsg_device *rdev, uint32_t *len, uint16_t *head);
	/* Give a received buffer back (returned to the ring by its batch). */
	void (*recycle_rx)(struct rpmsg_device *rdev, uint8_t *buf, uint16_t head);
	/* Put the first n given back in the ring in one call (driver:
	 * re-post rx_bufs; device: return rx_heads used); how many went, or
	 * a negative errno. */
	int (*return_batch)(struct rpmsg_device *rdev, uint16_t n);
	/* Put them all back now (rpmsg_return_rx with this table). */
	void (*return_rx)(struct rpmsg_device *rdev);
	/* A copy send, the arguments checked: rpmsg_send_entry compiled with
	 * this table. The lock is taken there, so the public call before it
	 * needs no frame. */
	int (*send)(struct rpmsg_device *rdev, uint32_t src, uint32_t dst, const void *data,
		    int len, unsigned int how);
	/* The receive queue's callback: rpmsg_rx_pass compiled with this table. */
	void (*rx_notified)(struct virtqueue *vq);
	/* Driver side: the buffer pools, and taking back used send buffers
	 * (see rpmsg_reclaim_tx). NULL on the device side. */
	int (*setup)(struct rpmsg_device *rdev);
	void (*reclaim_tx)(struct rpmsg_device *rdev);
};

/* A buffer lent to the user: a send buffer not yet sent, or a held
 * receive buffer. */
struct held {
	uint8_t *buf; /* the buffer, header included */
	uint16_t head;
	/* A send buffer's payload bytes: the device side may be lent one
	 * smaller than agreed (the driver chose it), so a send checks this,
	 * not the agreed size. */
	uint16_t room;
	struct rpmsg_endpoint *ept;
	bool stashed; /* a copy on the heap, not a ring buffer */
};

/* A received message copied out of its ring buffer (see stash_rx). */
struct stashed_rx {
	struct duet_list node;
	_Alignas(8) uint8_t data[]; /* header and payload */
};

struct rpmsg_device {
	struct virtio_device *vdev; /* NULL once rpmsg_remove let go of it */
	const struct rpmsg_role *role; /* role->driver: this side is virtio-rpmsg */
	bool ns;                 /* VIRTIO_RPMSG_F_NS negotiated */
	struct virtqueue *rvq;   /* where this side receives */
	struct virtqueue *svq;   /* where it sends */
	uint32_t tx_size;        /* whole send buffer, header included */
	uint32_t rx_size;
	uint32_t timeout_ms;
	struct duet_mutex *lock; /* recursive: everything below and the rings */
	struct duet_event *tx_event;
	_Atomic bool gone;       /* removed: see rpmsg_gone */
	/* The peer's cpu name, the transport's string (or NULL) as the vdev
	 * had it at probe: read without the lock by whoever holds the device,
	 * also while it goes, when vdev may not be (rpmsg_get_cpuname). */
	const char *peer_cpu;
	unsigned int orphans;    /* endpoints that outlived it: the last one frees it */
	unsigned int holds;      /* rpmsg_hold_device's not yet released: as orphans */
	struct duet_list epts;    /* newest first */
	struct duet_list pending; /* the peer's announced services */
	unsigned int npending;
	struct duet_list ns_out;  /* our announcements not sent yet, oldest first */
	_Atomic unsigned int nns_out; /* its length, read unlocked by tx_notified */
	struct rpmsg_endpoint ns_ept;
	struct duet_list stash;   /* received, copied out, not yet delivered */
	unsigned int nstash;      /* its length */
	/* Copies held by a receiver. With the stash's, at most stash_max, so
	 * that every held buffer has a slot (alloc_slots). */
	unsigned int nheld_copies, stash_max;
	/* driver side: the buffer pools */
	uint8_t *rx_pool, *tx_pool;
	uint16_t nrx, ntx;
	void **tx_free;           /* free send buffers: a queue, [tx_first, tx_end) */
	uint16_t tx_first, tx_end;
	/* zero copy: send buffers lent out, receive buffers held */
	unsigned int nslots;
	struct held *tx_out;
	struct held *rx_held;
	unsigned int nheld;
	struct held cur;  /* the buffer being delivered (buf NULL: none) */
	bool cur_held;    /* ... and its receiver holds it */
	/* Receive buffers given back, not yet returned to the ring: they go
	 * rx_batch at a time (rpmsg_rx_back), each role keeping what its
	 * ring call takes: the driver the buffers, the device the heads. */
	void **rx_bufs;
	uint16_t *rx_heads;
	uint16_t nrx_back, rx_batch;
	uint16_t rx_out;          /* taken from the ring and not returned */
	uint16_t rx_half;         /* half the receive ring */
	/* Sends whose doorbell "more" held back since the last one it rang,
	 * and how many it holds at most: half the send ring. */
	uint16_t tx_held, tx_hold_max;
	bool offer;       /* announcements to offer to the listeners */
	int depth;        /* deliveries in progress on this thread */
	int tx_sleepers;  /* senders asleep on tx_event (they need its notification,
			   * as do announcements queued in ns_out) */
	/* What rpmsg_take_tx_wait took, or why it took nothing: here, under
	 * the lock, not in the sender's outputs, which passed out of line
	 * would be kept in memory on every send (9 instructions a round trip). */
	struct {
		uint16_t head;
		uint32_t cap;
		int err;
	} took;
	struct rpmsg_stats stats;
	struct rpmsg_ping_state *ping; /* with rpmsg_ping_register: the service */
	struct duet_list node;
	/* The endpoints by address, for each delivery's lookup: chains through
	 * ept->addr_next (see addr_chain). Last: the fields above keep the
	 * short offsets a Cortex-M's 16-bit loads reach. */
	struct rpmsg_endpoint *by_addr[RPMSG_ADDR_BUCKETS];
};

/*
 * Whether rpmsg_remove has begun. It sets the flag before it takes the
 * lock, so that a sender asleep without the lock and a receive pass
 * running under it stop early; the flag publishes no data (what remove
 * tears down, it tears down under the lock), so a relaxed load serves
 * everywhere: on a weakly ordered core a sequentially consistent one
 * costs two barriers per send and per received message.
 */
static inline bool rpmsg_gone(struct rpmsg_device *rdev)
{
	return atomic_load_explicit(&rdev->gone, memory_order_relaxed);
}

/* ---- the core's side of the roles (rpmsg_virtio.c) ---- */

/* Probe and remove for either role. */
int rpmsg_probe(struct virtio_device *vdev, const struct rpmsg_role *role);
void rpmsg_remove(struct virtio_device *vdev);

/*
 * Why a message (or ring entry) was dropped, as a code: its text, which the
 * drop callback gets, is linked only with rpmsg_set_drop_cb (a firmware
 * that never asks does not carry the sentences), and the code orders the
 * reasons: each code up to the next reason's first belongs to one
 * rpmsg_stats counter (drop_reason_of in rpmsg_virtio.c). Keep drop_texts in
 * order.
 */
enum rpmsg_drop_why {
	/* RPMSG_DROP_LEN */
	DROP_SHORT,          /* buffer shorter than a header */
	DROP_HDR_LEN,        /* header length past its buffer */
	/* RPMSG_DROP_DST */
	DROP_NO_EPT,         /* no endpoint at the destination */
	/* RPMSG_DROP_NS */
	DROP_NS_SIZE,        /* name-service message of the wrong size */
	DROP_NS_NUL,         /* name-service name without NUL */
	DROP_NS_EMPTY,       /* name-service name empty */
	DROP_NS_FLAGS,       /* name-service flags unknown */
	DROP_NS_ADDR,        /* name-service address reserved */
	DROP_NS_NOMEM,       /* no memory to remember an announcement */
	DROP_NS_FULL,        /* too many announcements */
	/* RPMSG_DROP_OTHER */
	DROP_RX_NOT_BACK,    /* receive buffer not given back (ring broken) */
	DROP_RX_WRITABLE,    /* received a writable buffer */
	DROP_TX_SMALL,       /* send buffer too small */
	DROP_TX_READONLY,    /* send buffer not writable */
	DROP_TX_CHAIN,       /* send buffer is a chain, not one buffer */
	DROP_RX_CHAIN,       /* received a chain, not one buffer */
	DROP_NONE            /* not a drop: what a check returns for a good input */
};

/* Count a dropped message (or ring entry) and tell the drop callback. */
void rpmsg_drop(struct rpmsg_device *rdev, enum rpmsg_drop_why why, uint32_t src, uint32_t dst,
		uint32_t len);

/* No send buffer was free: wait for one (see the definition). Its head
 * and capacity go to rdev->took; NULL with rdev->took.err set when
 * none came. */
uint8_t *rpmsg_take_tx_wait(struct rpmsg_device *rdev, bool wait);

/* A buffer the role's next_rx returned: check its header and deliver it.
 * True when the caller gives the buffer back now (delivered and not held,
 * or dropped). */
bool rpmsg_dispatch(struct rpmsg_device *rdev, uint8_t *buf, uint32_t len, uint16_t head);

/* Deliver the oldest stashed message (there is one). */
void rpmsg_serve_stash(struct rpmsg_device *rdev);

/* Send the queued announcements, oldest first, while buffers last. Under
 * the lock; the queue is not empty. */
void rpmsg_flush_ns_now(struct rpmsg_device *rdev);

/* rpmsg_flush_ns_now, as one test on every send when nothing is queued. */
static inline void rpmsg_flush_ns(struct rpmsg_device *rdev)
{
	if (!duet_list_empty(&rdev->ns_out))
		rpmsg_flush_ns_now(rdev);
}

/*
 * Count a receive buffer given back, which the role's recycle_rx stored
 * at rx_bufs or rx_heads[nrx_back]; true when the batch is due. Returning
 * a buffer to the ring publishes an index the peer reads in its next
 * kick, and the kick after it fences and reads the peer's flags: a
 * cache-line round trip per message. So buffers go back
 * rx_batch at a time (an eighth of the ring, up to 32), unless this side
 * has more than half the ring out (its user holds buffers): then each
 * goes back at once and the peer is never left short.
 */
static inline bool rpmsg_rx_back(struct rpmsg_device *rdev)
{
	return ++rdev->nrx_back >= rdev->rx_batch || rdev->rx_out > rdev->rx_half;
}

/* Offer new announcements to the listeners, after a receive pass. */
void rpmsg_offer_pending(struct rpmsg_device *rdev);

#endif /* DUET_RPMSG_INTERNAL_H */
