/*
 * duet/virtqueue.h - split virtqueue for both roles, hardened.
 *
 * One ring core serves the driver role (virtio: adds buffers, gets them back
 * used) and the device role (vhost: takes available chains, returns them
 * consumed). The call names and signatures follow OpenAMP's virtqueue API as
 * used by NuttX drivers, so such drivers port with little change.
 *
 * Trust: everything in ring memory is written by the peer. The device role
 * validates every index, descriptor and address before use, copies each
 * descriptor once to local memory and uses only the copy; the driver role
 * validates every used entry. A violation marks the queue broken: it records
 * the fault, counts it, reports it through the fault hook and every later
 * call fails with -EIO until virtqueue_reset().
 *
 * Threading: a virtqueue is not locked. One thread at a time may drive it
 * (the transport's service thread, or the caller's own lock).
 *
 * A NULL handle is refused by every function: it returns -EINVAL, NULL,
 * false or 0, and does nothing. The inline hint virtqueue_seen_more, which
 * compiles into its callers' receive loops, takes a queue that exists.
 */
#ifndef DUET_VIRTQUEUE_H
#define DUET_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <duet/api.h>
#include <duet/atomic.h>
#include <duet/virtio_ring.h>

#ifdef __cplusplus
extern "C" {
#endif

struct virtqueue;
struct virtio_device;

/* One buffer of a scatter-gather list. */
struct virtqueue_buf {
	void *buf;
	uint32_t len;
	/* Device role output: the device may write this buffer (VRING_DESC_F_WRITE);
	 * false means it is readable only. Ignored by virtqueue_add_buffer, which
	 * takes direction from the readable/writable counts. */
	bool writable;
};

enum virtqueue_role {
	VIRTQUEUE_ROLE_DRIVER, /* virtio side: owns descriptors and avail ring */
	VIRTQUEUE_ROLE_DEVICE, /* vhost side: owns the used ring */
};

/* What a peer did wrong. Each fault comes with the errno shown. */
enum virtqueue_fault {
	VIRTQUEUE_FAULT_NONE = 0,
	VIRTQUEUE_FAULT_AVAIL_JUMP,    /* -EINVAL: avail idx moved > num ahead */
	VIRTQUEUE_FAULT_HEAD_RANGE,    /* -EINVAL: avail ring entry >= num */
	VIRTQUEUE_FAULT_HEAD_INFLIGHT, /* -EBUSY: head already taken, not returned */
	VIRTQUEUE_FAULT_NEXT_RANGE,    /* -EINVAL: desc.next >= table size */
	VIRTQUEUE_FAULT_LOOP,          /* -ELOOP: chain longer than its table */
	VIRTQUEUE_FAULT_WRITE_ORDER,   /* -EINVAL: readable desc after writable */
	VIRTQUEUE_FAULT_ADDR_RANGE,    /* -EFAULT: buffer not inside the window */
	VIRTQUEUE_FAULT_ADDR_OVERFLOW, /* -EOVERFLOW: addr + len wraps */
	VIRTQUEUE_FAULT_INDIRECT,      /* -EINVAL: bad indirect descriptor/table */
	VIRTQUEUE_FAULT_USED_JUMP,     /* -EINVAL: used idx moved past in-flight */
	VIRTQUEUE_FAULT_USED_ID,       /* -EINVAL: used id not a head in flight */
	VIRTQUEUE_FAULT_USED_LEN,      /* -EINVAL: used len > writable bytes */
	VIRTQUEUE_FAULT_COUNT
};

/*
 * The memory that descriptor addresses refer to: device address `da` maps to
 * local address `va`, for `size` bytes. Every buffer must lie wholly inside.
 * With rptun `da` is the offset in the shared region, so each side may map
 * the region anywhere.
 */
struct virtqueue_window {
	void *va;
	uint64_t da;
	size_t size;
};

/*
 * Ring memory accessors, for memory that plain loads and stores cannot reach
 * (MMIO, a PCIe BAR) or that needs cache maintenance. Values are raw memory
 * contents (little-endian on the wire); the core converts. read16 must give
 * acquire ordering and write16 release ordering (they carry the indices);
 * fence is a full barrier. Leave virtqueue_config.mem_ops NULL for ordinary
 * shared memory: the core then uses inline C11 atomics.
 */
struct virtqueue_mem_ops {
	uint16_t (*read16)(void *ctx, uint16_t *p);
	void (*write16)(void *ctx, uint16_t *p, uint16_t v);
	uint32_t (*read32)(void *ctx, uint32_t *p);
	void (*write32)(void *ctx, uint32_t *p, uint32_t v);
	void (*read_desc)(void *ctx, struct vring_desc *dst, const struct vring_desc *src);
	void (*write_desc)(void *ctx, struct vring_desc *dst, const struct vring_desc *src);
	void (*fence)(void *ctx);
};

typedef void (*virtqueue_callback)(struct virtqueue *vq);
typedef void (*virtqueue_notify)(struct virtqueue *vq);
/* Called once per fault with the fault, its negative errno and two values
 * that locate it (e.g. the bad index and the limit it broke). */
typedef void (*virtqueue_fault_hook)(struct virtqueue *vq, enum virtqueue_fault fault,
				     int err, uint64_t value, uint64_t limit);

struct virtqueue_config {
	const char *name;
	enum virtqueue_role role;
	uint16_t num;      /* entries: a power of two, 1..32768 */
	void *ring;        /* local address of the descriptor table, 16-aligned */
	size_t align;      /* used ring alignment: power of two >= 4 */
	uint64_t features; /* negotiated: VIRTIO_RING_F_EVENT_IDX, _INDIRECT_DESC */
	struct virtqueue_window window; /* must contain the ring */
	/* Driver role, optional: indirect tables, `indirect_num` descriptors per
	 * head (num * indirect_num * 16 bytes, 16-aligned, inside the window).
	 * Used for chains of 2..indirect_num buffers when INDIRECT_DESC is set. */
	void *indirect;
	uint16_t indirect_num;
	const struct virtqueue_mem_ops *mem_ops; /* NULL: plain shared memory */
	void *mem_ctx;
	virtqueue_callback callback; /* run by virtqueue_notification() */
	virtqueue_notify notify;     /* rings the peer's doorbell */
	virtqueue_fault_hook fault;  /* optional */
	void *priv;
	uint16_t index; /* queue index within its device */
};

struct virtqueue_stats {
	uint32_t faults;      /* peer faults seen, across resets */
	uint32_t kicks;       /* notifications sent to the peer */
	uint32_t kicks_saved; /* kicks the peer's suppression made unnecessary */
};

/* Diagnostic view: the fields NuttX's `rpmsg dump` prints for a vq. */
struct virtqueue_state {
	uint16_t size;          /* num */
	uint16_t free;          /* driver: free descriptors */
	uint16_t queued;        /* driver: added since the last kick */
	uint16_t desc_head_idx; /* driver: next free descriptor; 32768 when none */
	uint16_t available_idx; /* device: next avail entry to take */
	uint16_t avail_idx;     /* avail.idx (driver: own copy; device: read) */
	uint16_t used_cons_idx; /* driver: next used entry to take */
	uint16_t used_idx;      /* used.idx (device: own copy; driver: read) */
	uint16_t avail_flags;
	uint16_t used_flags;
	uint16_t inflight;      /* heads out: driver not yet used, device not consumed */
	bool broken;
	enum virtqueue_fault fault;
	int error;
	struct virtqueue_stats stats;
};

/* Per-descriptor local state. Never in shared memory. */
struct virtqueue_slot {
	void *cookie;  /* driver: caller's cookie while the head is in flight */
	uint32_t wlen; /* writable bytes of the chain headed here */
	uint16_t next; /* driver: free-list link */
	uint16_t ndesc; /* descriptors the chain holds; device: 0 = not in flight */
};

/*
 * The virtqueue object. Its fields are the library's; use the functions
 * below. It is public so that it can be placed statically (see
 * VIRTQUEUE_FOOTPRINT); only vq_name, vq_queue_index, vq_dev and priv may be
 * read and priv/vq_dev written by users.
 */
struct virtqueue {
	const char *vq_name;
	uint16_t vq_queue_index;
	struct virtio_device *vq_dev;
	void *priv;

	/* configuration */
	enum virtqueue_role role;
	uint16_t num;
	uint16_t mask;
	bool event_idx;
	bool indirect_ok;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t *used_event;  /* avail->ring[num] */
	uint16_t *avail_event; /* used->ring[num] */
	uint16_t *peer_wish;   /* what a kick reads: the peer's event word
				* under EVENT_IDX, else its flags */
	uint16_t *own_idx;     /* the index this side publishes (avail.idx
				* for a driver, used.idx for a device) */
	uint16_t *peer_idx;    /* the index the peer publishes */
	struct virtqueue_window win;
	struct vring_desc *indirect;
	uint16_t indirect_num;
	struct virtqueue_io {
		const struct virtqueue_mem_ops *ops; /* NULL: plain memory */
		void *ctx;
	} io;
	virtqueue_callback callback;
	virtqueue_notify notify;
	virtqueue_fault_hook fault_hook;

	/* local state, never read back from shared memory */
	uint16_t avail_idx;   /* driver: next avail.idx; device: next to take */
	uint16_t used_idx;    /* device: next used.idx; driver: next to take */
	uint16_t kicked_idx;  /* own index at the last kick */
	uint16_t seen_idx;    /* the peer's index at the last look */
	uint16_t poll_seen;   /* virtqueue_poll's alone: the peer's index when
			       * it last ran the callback */
	/* The next position this side takes from (avail_idx or used_idx
	 * above), stored as each take ends: read from another thread by
	 * virtqueue_prefetch_arrived and virtqueue_taken_idx, which must
	 * not read those two. */
	DUET_ATOMIC(uint16_t) taken_at;
	uint16_t own_flags;   /* shadow of the flags word this side owns */
	uint16_t free_head;   /* driver: first free descriptor */
	uint16_t free_tail;   /* driver: last free one, while any is free */
	uint16_t num_free;    /* driver */
	uint8_t fast_role;    /* role + 1 while on plain memory and not broken */
	/* Callbacks wanted; false once broken. Written by the owner, read by
	 * virtqueue_poll on the thread that polls, hence atomic. */
	DUET_ATOMIC(bool) cb_enabled;
	bool track_event;     /* event_idx && cb_enabled: each take republishes
			       * this side's event word */
	bool broken;
	enum virtqueue_fault fault;
	int error;
	struct virtqueue_stats stats;
	struct virtqueue_slot slots[];
};

/* Bytes a virtqueue of `num` entries needs (for virtqueue_init's memory). */
#define VIRTQUEUE_FOOTPRINT(num) \
	(sizeof(struct virtqueue) + (size_t)(num) * sizeof(struct virtqueue_slot))

/* Same as VIRTQUEUE_FOOTPRINT, as a function. */
DUET_API size_t virtqueue_footprint(uint16_t num);

/*
 * Validate `cfg` and build a virtqueue in `mem` (`memsize` bytes, aligned for
 * a pointer, at least virtqueue_footprint(cfg->num)). The ring memory this
 * side owns is written in full, whatever it held (driver: descriptors,
 * avail ring and indirect area; device: used ring). The peer's part must
 * be written before this side reads it: the transport's job (rptun zeroes
 * the rings at each reset). Returns 0 and the queue in *vqp, or -EINVAL
 * naming nothing: every field is checked up front (size power of two <=
 * 32768, ring aligned and wholly inside the window, align a power of two
 * >= 4, indirect area aligned and inside the window).
 */
DUET_API int virtqueue_init(void *mem, size_t memsize, const struct virtqueue_config *cfg,
			    struct virtqueue **vqp);

/*
 * Return the queue to its state just after virtqueue_init (for a device
 * reset): indices to zero, nothing in flight, not broken. Fault counters
 * survive. Driver cookies still in flight are dropped: reclaim them first.
 */
DUET_API void virtqueue_reset(struct virtqueue *vq);

/* ---- driver role ---- */

/*
 * Expose `readable` device-readable buffers followed by `writable`
 * device-writable ones, as one chain, with `cookie` (non-NULL) to get back.
 * Returns 0; -ENOSPC when not enough descriptors are free; -EINVAL for a bad
 * argument or a buffer not wholly inside the window (nothing is queued then);
 * -EIO on a broken queue. Does not notify: call virtqueue_kick().
 */
DUET_API int virtqueue_add_buffer(struct virtqueue *vq, struct virtqueue_buf *buf_list,
				  int readable, int writable, void *cookie);

/*
 * virtqueue_add_buffer for one buffer of `len` bytes at `buf`, readable by
 * the device, or writable when `writable`: the commonest shape, without a
 * list to fill and check. Same returns.
 */
DUET_API int virtqueue_add_one(struct virtqueue *vq, void *buf, uint32_t len, bool writable,
			       void *cookie);

/*
 * virtqueue_add_one for bufs[0..n), each `len` bytes and its own cookie,
 * in order, the avail index published once. Stops at the first that
 * cannot go (no free descriptor, or a buffer outside the window): returns
 * how many went, or that one's negative errno when it was the first (0
 * for n == 0; -EIO on a broken queue). How a driver re-posts a batch of
 * receive buffers in one call.
 */
DUET_API int virtqueue_add_bufs(struct virtqueue *vq, void *const bufs[], uint16_t n, uint32_t len,
				bool writable);

/* virtqueue_add_bufs with a length per buffer, bufs[i] of lens[i] bytes:
 * how a driver sends a burst of messages of different sizes. */
DUET_API int virtqueue_add_bufs_sized(struct virtqueue *vq, void *const bufs[],
				      const uint32_t lens[], uint16_t n, bool writable);

/*
 * Take the next used chain. Returns its cookie, the bytes the device wrote
 * in *len and the head in *idx (both optional), or NULL when none is used
 * or the device wrote an impossible entry (then the queue is broken).
 */
DUET_API void *virtqueue_get_buffer(struct virtqueue *vq, uint32_t *len, uint16_t *idx);

/*
 * Take up to `max` used chains at once: their cookies to cookies[0..n) and,
 * when lens is not NULL, the bytes the device wrote to lens[0..n), in ring
 * order. Each entry is checked as virtqueue_get_buffer checks it; an
 * impossible one breaks the queue and ends the batch, the chains before it
 * still returned. Returns n (0 when none is used), -EINVAL for bad
 * arguments, -EIO when the queue is broken and nothing was taken. One
 * call per batch: how a driver takes back many buffers (rpmsg's send
 * buffers) without a call and its checks per buffer.
 */
DUET_API int virtqueue_get_buffers(struct virtqueue *vq, void *cookies[], uint32_t lens[],
				   uint16_t max);

/* ---- device role ---- */

/*
 * Take the next available chain, validated whole. Returns the first buffer
 * and its length in *len (len may be NULL) and the head in *avail_idx, or
 * NULL when nothing is available or the chain is invalid (then the queue is
 * broken). The whole chain is taken: return it with
 * virtqueue_add_consumed_buffer(). A NULL avail_idx takes nothing and gives
 * NULL: the chain could never be returned without its head. Use
 * vhost_get_vq_buffers() to see every buffer of a chain.
 */
DUET_API void *virtqueue_get_available_buffer(struct virtqueue *vq, uint16_t *avail_idx,
					      uint32_t *len);

/*
 * Take up to `max` available chains that are each one buffer inside the
 * window, the shape rpmsg posts: the buffer to vb[i] and the head to
 * heads[i], in ring order, each checked as vhost_get_vq_buffers checks it.
 * Stops before the first entry that is anything else, a chain or a bad
 * entry alike, and leaves it available: vhost_get_vq_buffers then takes
 * it or reports the fault. Returns how many were taken (0: none, or the
 * next is not a lone buffer), -EINVAL for bad arguments, -EIO on a broken
 * queue. One call per batch: how a device takes many buffers without a
 * call and its checks per buffer.
 */
DUET_API int virtqueue_get_available_buffers(struct virtqueue *vq, struct virtqueue_buf vb[],
					     uint16_t heads[], uint16_t max);

/*
 * Walk the next available chain into vb[0..vbsize) and return its head
 * (>= 0), with the number of buffers in *vbcnt. Returns -ENOMEM when nothing
 * is available; -EINVAL when vbsize is too small: nothing is taken and
 * *vbcnt says how many entries the chain needs; another negative errno when
 * the peer wrote an invalid chain (the queue is then broken, see
 * virtqueue_get_fault()). Directions are in vb[i].writable; readable buffers
 * always come first.
 */
DUET_API int vhost_get_vq_buffers(struct virtqueue *vq, struct virtqueue_buf *vb, size_t vbsize,
				  size_t *vbcnt);

/*
 * Return the chain at `head_idx` to the driver with `len` bytes written.
 * Returns 0; -EINVAL when the head is not one this side took or `len`
 * exceeds the chain's writable bytes; -EIO on a broken queue. Does not
 * notify: call virtqueue_kick().
 */
DUET_API int virtqueue_add_consumed_buffer(struct virtqueue *vq, uint16_t head_idx, uint32_t len);

/*
 * virtqueue_add_consumed_buffer for heads[0..n), with lens[i] bytes
 * written (lens NULL: none), in order, the used index published once.
 * Stops at the first head it refuses: returns how many went back, or that
 * one's negative errno when it was the first (0 for n == 0). How a device
 * returns a batch of chains in one call.
 */
DUET_API int virtqueue_add_consumed_buffers(struct virtqueue *vq, const uint16_t heads[],
					    const uint32_t lens[], uint16_t n);

/* ---- both roles ---- */

/*
 * Notify the peer of what was added (driver) or consumed (device) since the
 * last kick, unless the peer suppressed it (its NO_NOTIFY/NO_INTERRUPT flag,
 * or its event index under VIRTIO_RING_F_EVENT_IDX). Calls the notify hook at
 * most once.
 */
DUET_API void virtqueue_kick(struct virtqueue *vq);

/*
 * Ask the peer to notify this side again, then re-check: returns 1 when work
 * arrived while callbacks were off (process it: no notification will come
 * for it), 0 when none, -EIO on a broken queue.
 */
DUET_API int virtqueue_enable_cb(struct virtqueue *vq);

/*
 * Whether the last look at the peer's index saw buffers this side has not
 * taken yet (driver: used ones; device: available ones): a hint from local
 * state, no read of shared memory. False after a take means the take
 * emptied what was seen; with callbacks on, what comes later is notified,
 * so a callback can stop without another look.
 */
static inline bool virtqueue_seen_more(const struct virtqueue *vq)
{
	return vq->seen_idx != (vq->role == VIRTQUEUE_ROLE_DRIVER ? vq->used_idx : vq->avail_idx);
}

/* Ask the peer not to notify this side (a hint: the peer may still). */
DUET_API void virtqueue_disable_cb(struct virtqueue *vq);

/*
 * The index this side last published (driver: avail.idx; device:
 * used.idx), read from the ring: it moves whenever this side adds or
 * returns a buffer. One atomic load of a word only this side writes, so
 * any thread may ask, a loop included, while others send (on a queue with
 * accessors, as far as they allow it).
 */
DUET_API uint16_t virtqueue_published_idx(const struct virtqueue *vq);

/*
 * The index the peer last published (driver: used.idx; device:
 * avail.idx), read from the ring as virtqueue_published_idx reads this
 * side's: it moves whenever the peer sends or gives a buffer back. The
 * peer's word, unchecked: fit for counting its activity (a polling loop's
 * backoff), never for taking buffers.
 */
DUET_API uint16_t virtqueue_peer_idx(const struct virtqueue *vq);

/*
 * Where this side takes the peer's next entry (driver: the next used
 * entry; device: the next avail entry): it moves whenever this side takes
 * what the peer published. Any thread may ask, as with
 * virtqueue_published_idx; a loop compares it across looks to tell a
 * callback that took work from one that found its work already taken.
 */
DUET_API uint16_t virtqueue_taken_idx(const struct virtqueue *vq);

/* Transport entry point for an incoming notification: runs the callback. */
DUET_API void virtqueue_notification(struct virtqueue *vq);

/*
 * A notification found by looking, for a side that polls its rings instead
 * of waiting for the peer's doorbell: when callbacks are on and the peer
 * has published since the callback last ran from here, run it (as
 * virtqueue_notification) and return true: once per move of the peer's
 * index, as a doorbell rings once per kick. One read of the peer's index,
 * untrusted like every other: what it claims is checked when the callback
 * takes it. False on a broken queue, with callbacks off (the owner looks
 * for itself when it turns them on: virtqueue_enable_cb), or with nothing
 * new. It reads no state the owner writes but the callbacks flag, so the
 * thread that polls needs none of the owner's locks; the callback takes
 * them.
 */
DUET_API bool virtqueue_poll(struct virtqueue *vq);

/*
 * For a side that polls, after virtqueue_poll found nothing: ask the cache
 * for the buffer the peer most likely fills next (the head the avail ring
 * holds at the peer's index, through its descriptor; a buffer recycled
 * through the same entry and descriptor is found there again). When the
 * peer then publishes, the look that sees its index move finds the buffer
 * already on its way instead of fetching it only then, after the index.
 * Worth it while the peer is waiting for this side (a request answered)
 * or idle; not during a stream the peer keeps writing, whose lines it
 * would take from the writer. Every word is checked as a take checks it;
 * nothing is read on a queue with callbacks off or memory accessors
 * (mem_ops). Call it from the thread that calls virtqueue_poll.
 */
DUET_API void virtqueue_prefetch_next(struct virtqueue *vq);

/*
 * For a side woken by its peer's notification, before the notification
 * is dispatched: ask the cache for the buffer of the entry this side
 * takes next, the one the peer most likely just filled, so that its lines
 * come while the dispatch reads the doorbell and the ring index instead of
 * after them. The same guess and checks as virtqueue_prefetch_next, from
 * the position this side takes from rather than the last look's; nothing
 * is read on a queue with callbacks off or memory accessors. Returns true
 * when it asked for a buffer. Safe from a thread other than the one taking
 * from vq (the transport's, while a sender takes): the position is then
 * one take old at worst, and checked as any.
 */
DUET_API bool virtqueue_prefetch_arrived(struct virtqueue *vq);

/*
 * A polling loop's look at the queues of one device, vqs[0..n): a table
 * the transport fills as it creates queues and empties (NULL) before it
 * deletes them. Each entry is loaded afresh (acquire) before its use,
 * never kept across a callback. First *published gets the sum of this
 * side's published indices (virtqueue_published_idx) over the table, read
 * before any callback runs; then each queue runs as virtqueue_poll runs
 * it. Returns how many callbacks ran. The same work as those calls, in
 * one call: a loop looks many times per message, and the calls were most
 * of a look's cost (bench/callgrind-rpmsg.sh, "polling the rings").
 * Compare *published on a later look to tell whether this side published
 * (answered) since.
 */
DUET_API unsigned int virtqueue_poll_many(DUET_ATOMIC(struct virtqueue *) *vqs, unsigned int n,
					  uint32_t *published);

/*
 * Whether virtqueue_poll_many on the same table would run a callback now:
 * a queue with callbacks on whose peer published since its callback last
 * ran from a look. Reads the peer's indices and changes nothing: a loop
 * can look at a device that has long been idle this cheaply, and take the
 * full look only when it says so.
 */
DUET_API bool virtqueue_poll_pending(DUET_ATOMIC(struct virtqueue *) *vqs, unsigned int n);

/* virtqueue_prefetch_next for each queue of such a table. */
DUET_API void virtqueue_prefetch_many(DUET_ATOMIC(struct virtqueue *) *vqs, unsigned int n);

/* virtqueue_prefetch_arrived for each queue of such a table; how many asked. */
DUET_API unsigned int virtqueue_prefetch_arrived_many(DUET_ATOMIC(struct virtqueue *) *vqs,
						      unsigned int n);

/* Fill *st with the queue's diagnostic state. */
DUET_API void virtqueue_get_state(const struct virtqueue *vq, struct virtqueue_state *st);

/* The fault that broke the queue (VIRTQUEUE_FAULT_NONE if not broken). */
DUET_API enum virtqueue_fault virtqueue_get_fault(const struct virtqueue *vq);

/* True once a peer fault broke the queue. */
DUET_API bool virtqueue_is_broken(const struct virtqueue *vq);

/* A short English description of a fault. */
DUET_API const char *virtqueue_fault_str(enum virtqueue_fault fault);

/* Number of entries of the queue. */
DUET_API uint16_t virtqueue_get_vring_size(const struct virtqueue *vq);

/* True when the driver role has no free descriptor. */
DUET_API bool virtqueue_full(const struct virtqueue *vq);

/* True when nothing is pending for this side (driver: no used entry;
 * device: no available entry). Reads the peer's index once. */
DUET_API bool virtqueue_empty(struct virtqueue *vq);

#ifdef __cplusplus
}
#endif

#endif /* DUET_VIRTQUEUE_H */
