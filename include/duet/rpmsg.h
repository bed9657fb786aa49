/*
 * duet/rpmsg.h - rpmsg over virtio, for both roles.
 *
 * One core serves virtio-rpmsg (the driver side: it owns the buffers, in
 * its carveout heap, and keeps the peer's receive ring filled) and
 * vhost-rpmsg (the device side: it uses the driver's buffers through the
 * rings). Endpoints, the name service at address 53 and the send and
 * zero-copy calls keep OpenAMP's names and signatures.
 *
 * Wire format (DESIGN.md section 3): a 16-byte header {src, dst, reserved,
 * len, flags} before each payload; name-service messages {name[32], addr,
 * flags} with CREATE 0 and DESTROY 1; addresses below 1024 reserved.
 *
 * Trust: every received header is copied out of shared memory once and
 * checked (length within its buffer, known destination, name-service names
 * NUL-terminated) before anything is dispatched; a bad message is dropped,
 * counted and the channel goes on. A payload pointer handed to a receive
 * callback points into shared memory: the peer could still write there.
 *
 * Threading: receive callbacks run on the transport's service thread.
 * Sends may come from any thread, also from receive callbacks.
 */
#ifndef DUET_RPMSG_H
#define DUET_RPMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <duet/api.h>
#include <duet/list.h>
#include <duet/vhost.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RPMSG_ADDR_ANY 0xffffffffu
#define RPMSG_NS_EPT_ADDR 53u
#define RPMSG_RESERVED_ADDRESSES 1024u
#define RPMSG_NAME_SIZE 32
#define VIRTIO_RPMSG_F_NS 0 /* feature bit: name service */

#define RPMSG_NS_CREATE 0u
#define RPMSG_NS_DESTROY 1u

#define RPMSG_HDR_SIZE 16u
#define RPMSG_DEFAULT_BUF_SIZE 512u
#define RPMSG_MAX_BUF_SIZE 65536u

/* The rpmsg vdev's config space: buffer sizes per direction, in bytes, each
 * little-endian as all of the wire (DUET_LE32 in duet/byteorder.h). */
struct rpmsg_virtio_config {
	uint32_t txbuf_size; /* driver to device */
	uint32_t rxbuf_size; /* device to driver */
};

struct rpmsg_device;
struct rpmsg_endpoint;

/* A message for `ept` from `src`. Return 0 (other values are ignored). */
typedef int (*rpmsg_ept_cb)(struct rpmsg_endpoint *ept, void *data, size_t len,
			    uint32_t src, void *priv);
/* The peer destroyed the endpoint this one was bound to. */
typedef void (*rpmsg_ns_unbind_cb)(struct rpmsg_endpoint *ept);
/* The peer announced `name` at `dest` and no local endpoint has it. */
typedef void (*rpmsg_ns_bind_cb)(struct rpmsg_device *rdev, const char *name, uint32_t dest,
				 void *priv);
/* True to take such an announcement (ns_bind is then called). */
typedef bool (*rpmsg_ns_match_cb)(struct rpmsg_device *rdev, const char *name, uint32_t dest,
				  void *priv);
/* An rpmsg device appeared or goes (when it goes, it is already marked
 * gone: sends on it return -ENODEV). */
typedef void (*rpmsg_dev_cb)(struct rpmsg_device *rdev, void *priv);

struct rpmsg_endpoint {
	char name[RPMSG_NAME_SIZE];
	struct rpmsg_device *rdev;
	uint32_t addr;
	/* RPMSG_ADDR_ANY until bound. The name service moves it on the thread
	 * that dispatches (the peer binds or unbinds): elsewhere ask
	 * rpmsg_is_ept_ready rather than read it. */
	uint32_t dest_addr;
	rpmsg_ept_cb cb;
	rpmsg_ns_unbind_cb ns_unbind_cb;
	void *priv;
	/* the library's: the device's list, and its chain of endpoints by address */
	struct duet_list node;
	struct rpmsg_endpoint *addr_next;
};

/* ---- endpoints ---- */

/*
 * Create an endpoint on rdev: `src` its address (RPMSG_ADDR_ANY: the next
 * free one from 1024 up), `dest` the peer's (or RPMSG_ADDR_ANY: bound when
 * the peer announces the same name). With a name and the name service on,
 * the peer is told (NS CREATE), never waiting: without a free send buffer
 * the announcement is queued. Returns 0, -EINVAL, -EBUSY (address in use,
 * or ept is already an endpoint of rdev), -ENODEV (device gone), -ENOMEM
 * (no send buffer free and no memory to queue the announcement: nothing
 * was created or sent). An endpoint must be destroyed before its struct is
 * created again.
 *
 * Set ept->priv before calling: it is kept, and cb may run on the transport's
 * thread as soon as the endpoint exists, before this call returns.
 */
DUET_API int rpmsg_create_ept(struct rpmsg_endpoint *ept, struct rpmsg_device *rdev,
			      const char *name, uint32_t src, uint32_t dest, rpmsg_ept_cb cb,
			      rpmsg_ns_unbind_cb ns_unbind_cb);

/*
 * Destroy it (the peer is told: NS DESTROY, queued as a create's is; only
 * with no memory to queue it does this wait for a send buffer, as
 * rpmsg_send does). Receive buffers it holds and
 * send buffers lent to it go back, as if released; pointers to them are
 * stale from then on. Safe on an unregistered one, and twice. An endpoint
 * outlives its device: when the device goes, its
 * ns_unbind_cb is called and every call on it returns -ENODEV (or does
 * nothing) until it is destroyed, and what is left of the device (its
 * lock, a few hundred bytes) is freed with the last such endpoint: destroy
 * every endpoint you create, also after its device went.
 */
DUET_API void rpmsg_destroy_ept(struct rpmsg_endpoint *ept);

/* True once the endpoint knows its peer address. */
DUET_API bool rpmsg_is_ept_ready(struct rpmsg_endpoint *ept);

/* ---- sending: >= 0 is the payload length sent, < 0 an errno ---- */

/*
 * Send len bytes (<= rpmsg_get_tx_buffer_size) to the bound peer, to `dst`,
 * or from `src` to `dst`. Without a free buffer, wait for the peer to return
 * one (woken by its notification) up to the device's send timeout
 * (-ETIMEDOUT). The try forms return -EAGAIN instead of waiting. -ENODEV,
 * waiting or not, once the device went, or when no buffer is free and the
 * send ring is broken (the peer wrote what no ring allows): none will
 * come back.
 */
DUET_API int rpmsg_send(struct rpmsg_endpoint *ept, const void *data, int len);
DUET_API int rpmsg_sendto(struct rpmsg_endpoint *ept, const void *data, int len, uint32_t dst);
DUET_API int rpmsg_send_offchannel(struct rpmsg_endpoint *ept, uint32_t src, uint32_t dst,
				   const void *data, int len);
DUET_API int rpmsg_trysend(struct rpmsg_endpoint *ept, const void *data, int len);
DUET_API int rpmsg_trysendto(struct rpmsg_endpoint *ept, const void *data, int len, uint32_t dst);
DUET_API int rpmsg_trysend_offchannel(struct rpmsg_endpoint *ept, uint32_t src, uint32_t dst,
				      const void *data, int len);

/*
 * Send to the bound peer as rpmsg_send / rpmsg_trysend do, but hold the
 * doorbell back because more follows: a stream then costs the peer one
 * notification per batch instead of one per message. The message is in the
 * ring at once (a polling peer sees it); the peer is notified by the next
 * send without "more", by rpmsg_flush, or when a send finds no free buffer,
 * and by every send that leaves half the send ring held back since the
 * last of those: a peer asleep on its notification then works on the
 * first half while the second is filled. End every batch with one of
 * those, or its tail waits for the next one.
 */
DUET_API int rpmsg_send_more(struct rpmsg_endpoint *ept, const void *data, int len);
DUET_API int rpmsg_trysend_more(struct rpmsg_endpoint *ept, const void *data, int len);

/* Notify the peer of what rpmsg_send_more left unannounced. 0, -EINVAL, or
 * -ENODEV (the device went). */
DUET_API int rpmsg_flush(struct rpmsg_endpoint *ept);

/*
 * Send n messages to the bound peer, copied, in order, without waiting:
 * message i is datas[i], lens[i] bytes. One call takes the device's lock
 * once and notifies the peer once, after the last: what a stream of small
 * messages spends per message on the lock and the call goes to the burst.
 * Every message is checked before any is sent: a negative length, a NULL
 * datas[i] with a length, or one too long for a send buffer sends none
 * (-EINVAL, -EMSGSIZE). Returns how many were sent, the first ones: fewer
 * than n when the send buffers ran out, the rest for a later call; 0 for
 * n == 0; -EAGAIN when not one buffer was free; -EINVAL, -ENOTCONN (not
 * bound) or -ENODEV (the device went, or the send ring broke: nothing of
 * the messages taken so far went).
 */
DUET_API int rpmsg_trysend_burst(struct rpmsg_endpoint *ept, const void *const datas[],
				 const int lens[], int n);

/*
 * rpmsg_trysend_burst that waits for send buffers as rpmsg_send does: what
 * is filled goes into the ring and is announced before each wait, so the
 * peer can return buffers meanwhile. Returns n; or, when a wait timed out
 * (rpmsg_set_send_timeout) or the device went, how many went before, or
 * -ETIMEDOUT / -ENODEV when none did; -EINVAL, -EMSGSIZE, -ENOTCONN as the
 * try variant, nothing sent.
 */
DUET_API int rpmsg_send_burst(struct rpmsg_endpoint *ept, const void *const datas[],
			      const int lens[], int n);

/* ---- zero copy ----
 *
 * Lent and held buffers are the device's: when it goes (the endpoint's
 * ns_unbind_cb runs), they go with its rings, and the calls that would
 * give them back return -ENODEV or do nothing. Stop using them then.
 */

/*
 * A send buffer's payload area, *len bytes; wait as rpmsg_send does when
 * `wait` is non-zero. NULL on timeout or error. Give it back with
 * rpmsg_send_nocopy / rpmsg_sendto_nocopy, or rpmsg_release_tx_buffer.
 */
DUET_API void *rpmsg_get_tx_payload_buffer(struct rpmsg_endpoint *ept, uint32_t *len, int wait);
/*
 * Send `len` bytes written into the lent payload buffer `data`, to the
 * endpoint's destination (or `dst`); the buffer is the peer's from then
 * on. Returns len; -EMSGSIZE past the *len the buffer was lent with (it
 * stays lent: send less, or give it back); -EINVAL for a pointer not
 * lent or a negative len; -ENOTCONN without a destination; -ENODEV once
 * the device went.
 */
DUET_API int rpmsg_send_nocopy(struct rpmsg_endpoint *ept, const void *data, int len);
DUET_API int rpmsg_sendto_nocopy(struct rpmsg_endpoint *ept, const void *data, int len,
				 uint32_t dst);
/* rpmsg_send_nocopy holding the doorbell back as rpmsg_send_more does:
 * a zero-copy stream costs the peer one notification per batch. End the
 * batch with a plain send or rpmsg_flush. */
DUET_API int rpmsg_send_nocopy_more(struct rpmsg_endpoint *ept, const void *data, int len);
/* Give back an unused payload buffer. -EINVAL for a pointer that is not
 * one the library handed out (nothing changes then), -ENODEV once the
 * device went. */
DUET_API int rpmsg_release_tx_buffer(struct rpmsg_endpoint *ept, void *txbuf);

/* From a receive callback: keep `rxbuf` (the data pointer) after the
 * callback returns, until rpmsg_release_rx_buffer. A pointer that is not a
 * received payload is refused (nothing happens). */
DUET_API void rpmsg_hold_rx_buffer(struct rpmsg_endpoint *ept, void *rxbuf);
DUET_API void rpmsg_release_rx_buffer(struct rpmsg_endpoint *ept, void *rxbuf);

/* Payload bytes of a send / receive buffer (buffer size minus header). */
DUET_API int rpmsg_get_tx_buffer_size(struct rpmsg_endpoint *ept);
DUET_API int rpmsg_get_rx_buffer_size(struct rpmsg_endpoint *ept);

/* ---- devices ---- */

/*
 * Be told of rpmsg devices appearing and going, and of announcements no
 * local endpoint takes (ns_match decides, ns_bind acts). Announcements
 * that arrived before this registration are offered at once; so are the
 * devices already there. Returns 0 or -ENOMEM.
 */
DUET_API int rpmsg_register_callback(void *priv, rpmsg_dev_cb device_created,
				     rpmsg_dev_cb device_destroyed, rpmsg_ns_match_cb ns_match,
				     rpmsg_ns_bind_cb ns_bind);
DUET_API void rpmsg_unregister_callback(void *priv);

/* The index-th rpmsg device (in probe order), or NULL. The pointer holds
 * no reference: it is good until the device goes, which a listener's
 * device_destroyed tells (endpoints created on it keep what they need). */
DUET_API struct rpmsg_device *rpmsg_get_device(unsigned int index);

/*
 * The same, held: the pointer stays good until rpmsg_release_device, even
 * if the device goes meanwhile (its calls then answer as for a device that
 * went: -ENODEV, "", zeros), so that a thread working on a device while
 * another may remove it meets no freed memory. Release each hold once.
 */
DUET_API struct rpmsg_device *rpmsg_hold_device(unsigned int index);
DUET_API void rpmsg_release_device(struct rpmsg_device *rdev);

/* The peer's cpu name ("" when the transport did not say). */
DUET_API const char *rpmsg_get_cpuname(struct rpmsg_device *rdev);

/* How long a blocking send waits for a buffer (default 5000 ms; 0: it
 * fails with -ETIMEDOUT at once when none is free). NULL: nothing. */
DUET_API void rpmsg_set_send_timeout(struct rpmsg_device *rdev, uint32_t ms);

struct rpmsg_stats {
	uint32_t rx_msgs, tx_msgs;
	uint32_t dropped_len;   /* header length past its buffer */
	uint32_t dropped_dst;   /* no endpoint at the destination */
	uint32_t dropped_ns;    /* malformed name-service message */
	uint32_t dropped_other; /* anything else (ring trouble) */
	uint32_t tx_waits;      /* sends that had to wait for a buffer */
	uint32_t rx_stashed;    /* copied out of the ring while a callback's send waited */
	uint32_t ns_deferred;   /* announcements queued: no send buffer at the time */
};

/* A copy of rdev's counters, taken under its lock (all zero for NULL). */
DUET_API void rpmsg_get_stats(struct rpmsg_device *rdev, struct rpmsg_stats *st);

/* Why a message was dropped: which rpmsg_stats counter it went to. */
enum rpmsg_drop_reason { RPMSG_DROP_LEN, RPMSG_DROP_DST, RPMSG_DROP_NS, RPMSG_DROP_OTHER };

struct rpmsg_drop {
	enum rpmsg_drop_reason reason;
	const char *why;   /* one line, e.g. "header length past its buffer" */
	uint32_t src, dst; /* from the header, when there was one (else 0) */
	uint32_t len;      /* the length at fault */
};

typedef void (*rpmsg_drop_cb)(struct rpmsg_device *rdev, const struct rpmsg_drop *drop,
			      void *priv);

/*
 * Have every dropped message reported to cb (NULL: counted only), for
 * every device. cb runs on the receiving thread with the device locked:
 * log and return; no rpmsg calls from it.
 */
DUET_API void rpmsg_set_drop_cb(rpmsg_drop_cb cb, void *priv);

/*
 * Write NuttX's `rpmsg dump` for the device into buf: cpu names and
 * master flag, one line per vq (size, free, queued, desc_head_idx,
 * available_idx, avail.idx, used_cons_idx, used.idx, avail.flags,
 * used.flags), the endpoints with their addresses, the buffers (total,
 * pending, held). The text is cut to fit len with its NUL. Returns the
 * length written: the whole text's, or len - 1 when it was cut. A NULL
 * rdev writes an empty text; a NULL buf with a len writes nothing (0).
 */
DUET_API int rpmsg_dump(struct rpmsg_device *rdev, char *buf, size_t len);

/* The drivers: virtio-rpmsg (driver side), vhost-rpmsg (device side). */
DUET_API extern struct virtio_driver virtio_rpmsg_driver;
DUET_API extern struct vhost_driver vhost_rpmsg_driver;

#ifdef __cplusplus
}
#endif

#endif /* DUET_RPMSG_H */
