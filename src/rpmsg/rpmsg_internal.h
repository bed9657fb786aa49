/* rpmsg_internal.h - the rpmsg device, shared by the core, ping and dump. */
#ifndef DUET_RPMSG_INTERNAL_H
#define DUET_RPMSG_INTERNAL_H

#include <stdatomic.h>

#include <duet/port.h>
#include <duet/rpmsg.h>

struct rpmsg_ping_state;

/* A buffer lent to the user: a send buffer not yet sent, or a held
 * receive buffer. */
struct held {
	uint8_t *buf; /* the buffer, header included */
	uint16_t head;
	struct rpmsg_endpoint *ept;
	bool stashed; /* a copy on the heap, not a ring buffer */
};

/* A received message copied out of its ring buffer (see stash_rx). */
struct stashed_rx {
	struct duet_list node;
	_Alignas(8) uint8_t data[]; /* header and payload */
};

struct rpmsg_device {
	struct virtio_device *vdev;
	bool driver;             /* this side is virtio-rpmsg */
	bool ns;                 /* VIRTIO_RPMSG_F_NS negotiated */
	struct virtqueue *rvq;   /* where this side receives */
	struct virtqueue *svq;   /* where it sends */
	uint32_t tx_size;        /* whole send buffer, header included */
	uint32_t rx_size;
	uint32_t timeout_ms;
	struct duet_mutex *lock; /* recursive: everything below and the rings */
	struct duet_event *tx_event;
	_Atomic bool gone;
	struct duet_list epts;
	struct duet_list pending; /* the peer's announced services */
	unsigned int npending;
	struct duet_list ns_out;  /* our announcements not sent yet, oldest first */
	_Atomic unsigned int nns_out; /* its length, read unlocked by tx_notified */
	struct rpmsg_endpoint ns_ept;
	struct duet_list stash;   /* received, copied out, not yet delivered */
	unsigned int nstash, stash_max;
	/* driver side: the buffer pools */
	uint8_t *rx_pool, *tx_pool;
	uint16_t nrx, ntx;
	void **tx_free;
	uint16_t ntx_free;
	/* zero copy: send buffers lent out, receive buffers held */
	unsigned int nslots;
	struct held *tx_out;
	struct held *rx_held;
	unsigned int nheld;
	uint8_t *cur_rx;  /* the buffer being delivered */
	bool cur_held;
	bool rx_kick;
	bool offer;       /* announcements to offer to the listeners */
	int depth;        /* deliveries in progress on this thread */
	int tx_sleepers;  /* senders asleep on tx_event (they need its notification,
			   * as do announcements queued in ns_out) */
	struct rpmsg_stats stats;
	struct rpmsg_ping_state *ping; /* with rpmsg_ping_register: the service */
	struct duet_list node;
};

/* Driver side, under the device lock: take back the send buffers the
 * device has used. Sending does it only when its free list is empty, so
 * anything that counts buffers in flight calls it first. */
void rpmsg_reclaim_tx(struct rpmsg_device *rdev);

#endif /* DUET_RPMSG_INTERNAL_H */
