/*
 * rpmsg_path.h - the message path, written once and compiled once per role
 * (rpmsg_driver.c, rpmsg_device.c) with that role's table a constant: its
 * buffer functions then inline, so a message pays neither a test of the
 * role nor a call per buffer step. The core (rpmsg_virtio.c) runs the same
 * bodies through rdev->role on its rarer paths (announcements, zero copy).
 */
#ifndef DUET_RPMSG_PATH_H
#define DUET_RPMSG_PATH_H

#include <stdatomic.h>
#include <string.h>

#include "../core/compiler.h"
#include "../virtqueue/vq_short.h"
#include "rpmsg_internal.h"

/* Returned send buffers need no notification unless a sender sleeps
 * waiting for one or an announcement is queued for one. Under the lock,
 * which every change of nns_out holds: a relaxed load serves. */
static inline void rpmsg_quiet_tx_cb(struct rpmsg_device *rdev)
{
	if (atomic_load_explicit(&rdev->svq->cb_enabled, memory_order_relaxed) &&
	    !rdev->tx_sleepers && !atomic_load_explicit(&rdev->nns_out, memory_order_relaxed))
		virtqueue_disable_cb(rdev->svq);
}

/* A send buffer, waiting for one (rpmsg_take_tx_wait) when none is free;
 * NULL with *err set when none came. Under the lock. */
static DUET_ALWAYS_INLINE uint8_t *rpmsg_take_tx(struct rpmsg_device *rdev,
						 const struct rpmsg_role *role, bool wait,
						 uint16_t *head, uint32_t *cap, int *err)
{
	uint8_t *buf = role->take_tx(rdev, head, cap);

	if (!buf) {
		buf = rpmsg_take_tx_wait(rdev, wait);
		if (!buf) {
			*err = rdev->took.err;
			return NULL;
		}
		*head = rdev->took.head;
		*cap = rdev->took.cap;
	}
	rpmsg_quiet_tx_cb(rdev);
	return buf;
}

/* Hand a filled send buffer (header written) to the peer. */
static DUET_ALWAYS_INLINE int rpmsg_submit_tx(struct rpmsg_device *rdev,
					      const struct rpmsg_role *role, uint8_t *buf,
					      uint16_t head, uint32_t len, bool kick)
{
	int ret = role->submit_tx(rdev, buf, head, len);

	if (ret == 0) {
		rdev->stats.tx_msgs++;
		/* Held back ("more"), the doorbell still rings every half
		 * ring: a sleeping peer then starts on the batch while this
		 * side fills the rest, rather than after it blocked. (A plain
		 * send's kick leaves the count alone, so that path stores
		 * nothing more; an early ring costs a look at the peer's wish.) */
		if (kick) {
			VQ_SHORT(vq_inline_kick, virtqueue_kick, rdev->svq);
		} else if (++rdev->tx_held >= rdev->tx_hold_max) {
			rdev->tx_held = 0;
			VQ_SHORT(vq_inline_kick, virtqueue_kick, rdev->svq);
		}
	}
	return ret;
}

/* Send one message from src to dst, under the lock (`how`: SEND_*).
 * Returns len, or a negative errno. */
static DUET_ALWAYS_INLINE int rpmsg_send_path(struct rpmsg_device *rdev,
					      const struct rpmsg_role *role, uint32_t src,
					      uint32_t dst, const void *data, int len,
					      unsigned int how)
{
	uint32_t cap;
	uint16_t head;
	uint8_t *buf;
	int err = 0;

	buf = rpmsg_take_tx(rdev, role, how & SEND_WAIT, &head, &cap, &err);
	if (!buf)
		return err;
	if ((uint32_t)len > cap - RPMSG_HDR_SIZE) {
		role->untake_tx(rdev, buf, head); /* a smaller buffer than agreed */
		return -EMSGSIZE;
	}
	rpmsg_write_hdr(buf, src, dst, (uint16_t)len);
	memcpy(buf + RPMSG_HDR_SIZE, data, (size_t)len); /* data: never NULL (send_common) */
	err = rpmsg_submit_tx(rdev, role, buf, head, RPMSG_HDR_SIZE + (uint32_t)len,
			      !(how & SEND_MORE));
	return err < 0 ? err : len;
}

/* A copy send, its arguments checked (`how`: SEND_*): under the lock,
 * taken here unless the caller holds it, queued announcements first.
 * Returns len, or a negative errno. */
static DUET_ALWAYS_INLINE int rpmsg_send_entry(struct rpmsg_device *rdev,
					       const struct rpmsg_role *role, uint32_t src,
					       uint32_t dst, const void *data, int len,
					       unsigned int how)
{
	bool lock = !(how & SEND_HELD);
	int ret;

	if (lock) {
		duet_mutex_lock(rdev->lock);
		if (rpmsg_gone(rdev)) {
			duet_mutex_unlock(rdev->lock);
			return -ENODEV;
		}
		rpmsg_flush_ns(rdev); /* queued announcements go first */
	}
	ret = rpmsg_send_path(rdev, role, src, dst, data, len, how);
	if (lock)
		duet_mutex_unlock(rdev->lock);
	return ret;
}

/* Return the received buffers given back to the ring, in the order they
 * came (rpmsg_rx_back), in one ring call, and tell the peer at once: a
 * sender asleep for buffers wakes while the rest of a long pass is still
 * delivered, instead of after it (the blocking streams' overlap). The
 * kick costs a look at the peer's wish per batch, not per message. */
static DUET_ALWAYS_INLINE void rpmsg_return_rx(struct rpmsg_device *rdev,
					       const struct rpmsg_role *role)
{
	uint16_t n = rdev->nrx_back;
	int done = role->return_batch(rdev, n);

	if (done < 0)
		done = 0;
	/* Only a broken ring refuses what this side took from it. */
	for (int i = done; i < n; i++)
		rpmsg_drop(rdev, DROP_RX_NOT_BACK, 0, 0, 0);
	rdev->rx_out = (uint16_t)(rdev->rx_out - done);
	rdev->nrx_back = 0;
	VQ_SHORT(vq_inline_kick, virtqueue_kick, rdev->rvq);
}

/* Serve the stash, then the receive queue, up to `budget` buffers; returns
 * how many it took (delivered or dropped). Fewer than budget: it ran dry,
 * or took all the last look at the ring saw (the caller has callbacks on
 * or looks again with virtqueue_enable_cb): a ping-pong pass then costs
 * one look, not a second one that finds nothing. */
static DUET_ALWAYS_INLINE unsigned int rpmsg_drain_rx(struct rpmsg_device *rdev,
						      const struct rpmsg_role *role,
						      unsigned int budget)
{
	unsigned int taken = 0;

	for (; taken < budget && !rpmsg_gone(rdev); taken++) {
		uint32_t len;
		uint16_t head;
		uint8_t *buf;

		if (!duet_list_empty(&rdev->stash)) {
			rpmsg_serve_stash(rdev);
			continue;
		}
		buf = role->next_rx(rdev, &len, &head);
		if (!buf)
			break;
		if (rpmsg_dispatch(rdev, buf, len, head))
			role->recycle_rx(rdev, buf, head);
		if (!virtqueue_seen_more(rdev->rvq) && duet_list_empty(&rdev->stash)) {
			taken++;
			break;
		}
	}
	return taken;
}

/* The receive queue's callback. */
static DUET_ALWAYS_INLINE void rpmsg_rx_pass(struct virtqueue *vq, const struct rpmsg_role *role)
{
	struct rpmsg_device *rdev = vq->priv;
	bool offer;

	duet_mutex_lock(rdev->lock);
	/* A ping-pong pass finds one message: it is served with notifications
	 * left on, so the pass stores nothing to the ring's flags or event
	 * word and needs no second look. A second message means a stream:
	 * notifications go off while the rest is drained, then back on, and
	 * the ring is looked at again, or work that came in between would
	 * wait for a notification that never comes. */
	if (rpmsg_drain_rx(rdev, role, 2) == 2) {
		do {
			virtqueue_disable_cb(vq);
			rpmsg_drain_rx(rdev, role, virtqueue_get_vring_size(vq));
		} while (!rpmsg_gone(rdev) &&
			 (!duet_list_empty(&rdev->stash) || virtqueue_enable_cb(vq) > 0));
	}
	offer = rdev->offer && rdev->depth == 0;
	duet_mutex_unlock(rdev->lock);
	if (offer)
		rpmsg_offer_pending(rdev);
}

#endif /* DUET_RPMSG_PATH_H */
