/*
 * virtqueue.c - what both roles share: set-up, faults, notification
 * suppression and the diagnostic view.
 */
#include <errno.h>
#include <string.h>

#include "vq_short.h"

static const char *const fault_names[VIRTQUEUE_FAULT_COUNT] = {
	[VIRTQUEUE_FAULT_NONE] = "no fault",
	[VIRTQUEUE_FAULT_AVAIL_JUMP] = "avail index moved more than the queue size",
	[VIRTQUEUE_FAULT_HEAD_RANGE] = "avail ring head out of range",
	[VIRTQUEUE_FAULT_HEAD_INFLIGHT] = "head made available while already in flight",
	[VIRTQUEUE_FAULT_NEXT_RANGE] = "descriptor next out of range",
	[VIRTQUEUE_FAULT_LOOP] = "descriptor chain loops",
	[VIRTQUEUE_FAULT_WRITE_ORDER] = "readable descriptor after a writable one",
	[VIRTQUEUE_FAULT_ADDR_RANGE] = "buffer outside the shared window",
	[VIRTQUEUE_FAULT_ADDR_OVERFLOW] = "buffer address plus length overflows",
	[VIRTQUEUE_FAULT_INDIRECT] = "bad indirect descriptor",
	[VIRTQUEUE_FAULT_USED_JUMP] = "used index moved past the buffers in flight",
	[VIRTQUEUE_FAULT_USED_ID] = "used id is not a head in flight",
	[VIRTQUEUE_FAULT_USED_LEN] = "used length exceeds the writable bytes",
};

const char *virtqueue_fault_str(enum virtqueue_fault fault)
{
	if ((unsigned int)fault >= VIRTQUEUE_FAULT_COUNT)
		return "unknown fault";
	return fault_names[fault];
}

int duet_vq_fault(struct virtqueue *vq, enum virtqueue_fault fault, int err,
	     uint64_t value, uint64_t limit)
{
	if (!vq->broken) {
		vq->broken = true;
		atomic_store_explicit(&vq->cb_enabled, false, memory_order_relaxed);
		vq->fast_role = 0;
		vq->fault = fault;
		vq->error = err;
	}
	vq->stats.faults++;
	if (vq->fault_hook)
		vq->fault_hook(vq, fault, err, value, limit);
	return err;
}

void *duet_vq_bad_addr(struct virtqueue *vq, uint64_t addr, uint32_t len)
{
	if (addr > UINT64_MAX - len)
		duet_vq_fault(vq, VIRTQUEUE_FAULT_ADDR_OVERFLOW, -EOVERFLOW, addr, len);
	else
		duet_vq_fault(vq, VIRTQUEUE_FAULT_ADDR_RANGE, -EFAULT, addr, len);
	return NULL;
}

size_t virtqueue_footprint(uint16_t num)
{
	return VIRTQUEUE_FOOTPRINT(num);
}

static bool is_pow2(size_t v)
{
	return v && !(v & (v - 1));
}

/* True when [p, p + len) lies inside the window. */
static bool in_window(const struct virtqueue_window *win, const void *p, size_t len)
{
	uintptr_t base = (uintptr_t)win->va;
	uintptr_t a = (uintptr_t)p;

	return a >= base && a - base <= win->size && len <= win->size - (a - base);
}

static int check_config(void *mem, size_t memsize, const struct virtqueue_config *cfg)
{
	size_t ringsize;

	if (!mem || !cfg || ((uintptr_t)mem % sizeof(void *)))
		return -EINVAL;
	if (cfg->role != VIRTQUEUE_ROLE_DRIVER && cfg->role != VIRTQUEUE_ROLE_DEVICE)
		return -EINVAL;
	if (!is_pow2(cfg->num) || cfg->num > VIRTQUEUE_MAX_SIZE)
		return -EINVAL;
	if (memsize < virtqueue_footprint(cfg->num))
		return -EINVAL;
	if (!is_pow2(cfg->align) || cfg->align < 4 || cfg->align > 65536 || !cfg->ring ||
	    ((uintptr_t)cfg->ring % 16))
		return -EINVAL;
	/* The window is local memory at va and device addresses at da: each
	 * range must end before its address space does. A local one that ran
	 * past would hold every pointer, to the driver's checks (vq_window_da). */
	if (!cfg->window.va || !cfg->window.size ||
	    cfg->window.da > UINT64_MAX - (cfg->window.size - 1) ||
	    cfg->window.size - 1 > UINTPTR_MAX - (uintptr_t)cfg->window.va)
		return -EINVAL;
	ringsize = vring_size(cfg->num, cfg->align);
	if (!in_window(&cfg->window, cfg->ring, ringsize))
		return -EINVAL;
	if (cfg->mem_ops && (!cfg->mem_ops->read16 || !cfg->mem_ops->write16 ||
			     !cfg->mem_ops->read32 || !cfg->mem_ops->write32 ||
			     !cfg->mem_ops->read_desc || !cfg->mem_ops->write_desc ||
			     !cfg->mem_ops->fence))
		return -EINVAL;
	if (cfg->indirect) {
		size_t isize = (size_t)cfg->num * cfg->indirect_num * sizeof(struct vring_desc);

		if (cfg->role != VIRTQUEUE_ROLE_DRIVER || cfg->indirect_num < 2 ||
		    cfg->indirect_num > VIRTQUEUE_MAX_SIZE ||
		    ((uintptr_t)cfg->indirect % 16) ||
		    !in_window(&cfg->window, cfg->indirect, isize))
			return -EINVAL;
	}
	return 0;
}

/* Zero what this side owns of the ring, word by word in the types the
 * message path reads them with, through the accessors if any. */
static void clear_descs(struct virtqueue_io io, struct vring_desc *d, size_t n)
{
	while (n--)
		vq_store_desc(io, d++, 0, 0, 0, 0);
}

static void clear16(struct virtqueue_io io, uint16_t *p, size_t n)
{
	while (n--)
		vq_store16(io, p++, 0);
}

static void clear_used(struct virtqueue_io io, struct vring_used_elem *e, size_t n)
{
	for (; n--; e++) {
		vq_store32(io, &e->id, 0);
		vq_store32(io, &e->len, 0);
	}
}

/* Initialise the part of the ring this side owns, and the local state. */
static void vq_start(struct virtqueue *vq)
{
	const struct virtqueue_io io = vq->io;
	uint16_t i;

	vq->avail_idx = 0;
	vq->used_idx = 0;
	vq->kicked_idx = 0;
	vq->seen_idx = 0;
	vq->poll_seen = 0;
	atomic_store_explicit(&vq->taken_at, 0, memory_order_relaxed);
	vq->own_flags = 0;
	atomic_store_explicit(&vq->cb_enabled, true, memory_order_relaxed);
	vq->track_event = vq->event_idx;
	vq->broken = false;
	vq->fast_role = vq->io.ops ? 0 : vq_fast_role(vq->role);
	vq->fault = VIRTQUEUE_FAULT_NONE;
	vq->error = 0;
	vq->free_head = 0;
	vq->free_tail = (uint16_t)(vq->num - 1u);
	vq->num_free = vq->role == VIRTQUEUE_ROLE_DRIVER ? vq->num : 0;
	for (i = 0; i < vq->num; i++) {
		vq->slots[i].cookie = NULL;
		vq->slots[i].wlen = 0;
		vq->slots[i].ndesc = 0;
		vq->slots[i].next = (uint16_t)(i + 1u);
	}

	/* Every word this side owns is written here, ring entries included:
	 * the message path reads an entry before it rewrites it (vq_update16),
	 * and the region may hold anything before the first start. */
	if (vq->role == VIRTQUEUE_ROLE_DRIVER) {
		clear_descs(io, vq->desc, vq->num);
		clear_descs(io, vq->indirect, (size_t)vq->num * vq->indirect_num);
		/* The entries, then used_event just past them. */
		clear16(io, vq->avail->ring, vq->num + 1u);
		vq_store16(io, &vq->avail->flags, 0);
		vq_store_idx(io, &vq->avail->idx, 0);
	} else {
		clear_used(io, vq->used->ring, vq->num);
		vq_store16(io, &vq->used->flags, 0);
		vq_store16(io, vq->avail_event, 0);
		vq_store_idx(io, &vq->used->idx, 0);
	}
}

int virtqueue_init(void *mem, size_t memsize, const struct virtqueue_config *cfg,
		   struct virtqueue **vqp)
{
	struct virtqueue *vq = mem;
	uint8_t *ring;
	int ret;

	if (!vqp)
		return -EINVAL;
	ret = check_config(mem, memsize, cfg);
	if (ret < 0)
		return ret;

	memset(vq, 0, sizeof(*vq));
	ring = cfg->ring;
	vq->vq_name = cfg->name;
	vq->vq_queue_index = cfg->index;
	vq->priv = cfg->priv;
	vq->role = cfg->role;
	vq->num = cfg->num;
	vq->mask = (uint16_t)(cfg->num - 1u);
	vq->event_idx = (cfg->features >> VIRTIO_RING_F_EVENT_IDX) & 1u;
	vq->indirect_ok = (cfg->features >> VIRTIO_RING_F_INDIRECT_DESC) & 1u;
	vq->desc = (struct vring_desc *)(void *)ring;
	vq->avail = (struct vring_avail *)(void *)(ring + 16u * (size_t)cfg->num);
	vq->used = (struct vring_used *)(void *)(ring + vring_used_offset(cfg->num, cfg->align));
	vq->used_event = &vq->avail->ring[cfg->num];
	vq->avail_event = (uint16_t *)(void *)&vq->used->ring[cfg->num];
	if (cfg->role == VIRTQUEUE_ROLE_DRIVER) {
		vq->peer_wish = vq->event_idx ? vq->avail_event : &vq->used->flags;
		vq->own_idx = &vq->avail->idx;
		vq->peer_idx = &vq->used->idx;
	} else {
		vq->peer_wish = vq->event_idx ? vq->used_event : &vq->avail->flags;
		vq->own_idx = &vq->used->idx;
		vq->peer_idx = &vq->avail->idx;
	}
	vq->win = cfg->window;
	vq->indirect = vq->indirect_ok ? cfg->indirect : NULL;
	vq->indirect_num = vq->indirect ? cfg->indirect_num : 0;
	vq->io.ops = cfg->mem_ops;
	vq->io.ctx = cfg->mem_ctx;
	vq->callback = cfg->callback;
	vq->notify = cfg->notify;
	vq->fault_hook = cfg->fault;
	vq_start(vq);
	*vqp = vq;
	return 0;
}

void virtqueue_reset(struct virtqueue *vq)
{
	if (vq)
		vq_start(vq);
}

/* virtqueue_kick on a broken queue or one with accessors. Out of line:
 * the short path needs no frame. */
DUET_SHORT_FALLBACK void duet_vq_kick_checked(struct virtqueue *vq, uint16_t now)
{
	if (vq->broken)
		return;
	vq_kick_done(vq, now, vq_peer_wants_kick(vq, vq->io, now));
}

void virtqueue_kick(struct virtqueue *vq)
{
	vq_inline_kick(vq);
}

/* The flags word this side owns and the event word it publishes. */
static uint16_t *own_flags_word(struct virtqueue *vq)
{
	return vq->role == VIRTQUEUE_ROLE_DRIVER ? &vq->avail->flags : &vq->used->flags;
}

static uint16_t *own_event_word(struct virtqueue *vq)
{
	return vq->role == VIRTQUEUE_ROLE_DRIVER ? vq->used_event : vq->avail_event;
}

/* The peer index that brings this side work, and how far we have taken it. */
static bool work_pending(struct virtqueue *vq)
{
	vq->seen_idx = virtqueue_peer_idx(vq);
	return virtqueue_seen_more(vq);
}

static uint16_t own_taken_idx(const struct virtqueue *vq)
{
	return vq->role == VIRTQUEUE_ROLE_DRIVER ? vq->used_idx : vq->avail_idx;
}

int virtqueue_enable_cb(struct virtqueue *vq)
{
	struct virtqueue_io io;

	if (!vq)
		return -EINVAL;
	if (vq->broken)
		return -EIO;
	io = vq->io;
	atomic_store_explicit(&vq->cb_enabled, true, memory_order_relaxed);
	vq->track_event = vq->event_idx;
	if (vq->event_idx) {
		vq_store16(io, own_event_word(vq), own_taken_idx(vq));
	} else if (vq->own_flags) {
		/* Stored only on a change: the word shares a cache line the
		 * peer reads on every kick. */
		vq->own_flags = 0;
		vq_store16(io, own_flags_word(vq), 0);
	}
	/* The peer may have added work before it saw our request: look again
	 * after the request is visible, or that work waits for a notification
	 * that never comes. */
	vq_fence(io);
	return work_pending(vq) ? 1 : 0;
}

void virtqueue_disable_cb(struct virtqueue *vq)
{
	struct virtqueue_io io;

	if (!vq)
		return;
	io = vq->io;
	atomic_store_explicit(&vq->cb_enabled, false, memory_order_relaxed);
	vq->track_event = false;
	/* Under EVENT_IDX the stale event word already stops notifications
	 * once the peer has passed it; the flag is only for the other mode. */
	if (!vq->event_idx && !vq->own_flags) {
		vq->own_flags = 1; /* NO_INTERRUPT and NO_NOTIFY are both bit 0 */
		vq_store16(io, own_flags_word(vq), 1);
	}
}

void virtqueue_notification(struct virtqueue *vq)
{
	if (vq && vq->callback)
		vq->callback(vq);
}

const void *duet_vq_poll_guess(const struct virtqueue *vq, uint16_t pos)
{
	struct virtqueue *v = (struct virtqueue *)vq; /* reads only */
	uint16_t head = vq_load16(VQ_IO_PLAIN, &v->avail->ring[pos & vq->mask]);
	uint64_t off;

	if (head >= vq->num)
		return NULL;
	off = vq_load64(&v->desc[head].addr) - vq->win.da;
	return vq_outside_window(vq, off, 1) ? NULL : (const uint8_t *)vq->win.va + off;
}

/* The bodies of virtqueue_published_idx and virtqueue_peer_idx, inline:
 * exported functions the compiler may not inline, and a polling look
 * reads these indices at every look, through pointers set at init: a
 * test of the role on each read cost a polled round trip 24 instructions
 * (1,415 -> 1,391, bench/callgrind-rpmsg.sh). */
static inline uint16_t own_idx(const struct virtqueue *vq)
{
	return vq_load_idx(vq->io, vq->own_idx);
}

/* The peer's index read through `io` (vq->io, or VQ_IO_PLAIN where the
 * caller knows the memory is plain). */
static DUET_INLINE uint16_t peer_idx_io(const struct virtqueue *vq, struct virtqueue_io io)
{
	return vq_load_idx(io, vq->peer_idx);
}

static inline uint16_t peer_idx(const struct virtqueue *vq)
{
	return peer_idx_io(vq, vq->io);
}

/* Whether a look would run vq's callback: callbacks on, and the peer's
 * index (in *peer, read through `io`) moved since the callback last ran
 * from a look. */
static DUET_INLINE bool poll_news_io(const struct virtqueue *vq, struct virtqueue_io io,
				     uint16_t *peer)
{
	/* The flag before the index: work the owner missed when it turned
	 * callbacks on (its own look then saw none) comes after, and is seen
	 * here as new. The index moves only when the flag was seen on, so a
	 * move seen with callbacks off is not lost. */
	if (!vq->callback || !atomic_load_explicit(&vq->cb_enabled, memory_order_acquire))
		return false;
	*peer = peer_idx_io(vq, io);
	return *peer != vq->poll_seen;
}

static inline bool poll_news(const struct virtqueue *vq, uint16_t *peer)
{
	return poll_news_io(vq, vq->io, peer);
}

/* virtqueue_poll's body, compiled into virtqueue_poll_many as well. */
static inline bool poll_one(struct virtqueue *vq)
{
	uint16_t peer;

	if (!poll_news(vq, &peer))
		return false;
	vq->poll_seen = peer;
	vq->callback(vq);
	return true;
}

bool virtqueue_poll(struct virtqueue *vq)
{
	return vq && poll_one(vq);
}

/* Whether a prefetch may look at vq: plain memory only (accessors stand
 * for memory that a prefetch may not reach coherently), and a queue whose
 * owner waits for what comes (callbacks on). */
static inline bool prefetchable(struct virtqueue *vq)
{
	return !vq->io.ops && vq->callback &&
	       atomic_load_explicit(&vq->cb_enabled, memory_order_relaxed);
}

/* Ask for the buffer the entry at `pos` most likely names; whether it
 * asked (the guess is checked as a take checks it). */
static inline bool prefetch_at(struct virtqueue *vq, uint16_t pos)
{
	const void *next = duet_vq_poll_guess(vq, pos);

	if (next)
		DUET_PREFETCH(next);
	return next != NULL;
}

/* virtqueue_prefetch_next's body, compiled into virtqueue_prefetch_many too.
 * poll_seen is the peer's index as the last virtqueue_poll saw it, so this
 * is the entry it publishes next. */
static inline void prefetch_one(struct virtqueue *vq)
{
	if (prefetchable(vq))
		(void)prefetch_at(vq, vq->poll_seen);
}

void virtqueue_prefetch_next(struct virtqueue *vq)
{
	if (vq)
		prefetch_one(vq);
}

/* virtqueue_prefetch_arrived's body, compiled into its table form too.
 * The entry this side takes next: the device's next avail entry, the
 * driver's next used one (used in order: the avail entry at that position
 * holds its head). From taken_at, not the taker's own index: another
 * thread may be taking (rpmsg's senders take send buffers back). */
static inline bool prefetch_arrived(struct virtqueue *vq)
{
	return prefetchable(vq) &&
	       prefetch_at(vq, atomic_load_explicit(&vq->taken_at, memory_order_relaxed));
}

bool virtqueue_prefetch_arrived(struct virtqueue *vq)
{
	return vq && prefetch_arrived(vq);
}

/*
 * One look at a table that a transport fills and empties while others
 * read it. Each entry is loaded afresh before its use, never kept across
 * a callback: a callback may withdraw any queue of the table.
 */
static inline struct virtqueue *table_at(_Atomic(struct virtqueue *) *vqs, unsigned int i)
{
	return atomic_load_explicit(&vqs[i], memory_order_acquire);
}

unsigned int virtqueue_poll_many(_Atomic(struct virtqueue *) *vqs, unsigned int n,
				 uint32_t *published)
{
	uint32_t sum = 0;
	unsigned int ran = 0;

	if (!vqs)
		n = 0;
	/* Every index before any callback: a callback may answer on another
	 * queue of the table. */
	for (unsigned int i = 0; i < n; i++) {
		struct virtqueue *vq = table_at(vqs, i);

		if (vq)
			sum += own_idx(vq);
	}
	if (published)
		*published = sum;
	for (unsigned int i = 0; i < n; i++) {
		struct virtqueue *vq = table_at(vqs, i);

		if (vq && poll_one(vq))
			ran++;
	}
	return ran;
}

/* virtqueue_poll_pending from entry i on, for any queue. */
static DUET_OUT_OF_LINE bool poll_pending_from(_Atomic(struct virtqueue *) *vqs, unsigned int i,
					       unsigned int n)
{
	for (; i < n; i++) {
		struct virtqueue *vq = table_at(vqs, i);
		uint16_t peer;

		if (vq && poll_news(vq, &peer))
			return true;
	}
	return false;
}

bool virtqueue_poll_pending(_Atomic(struct virtqueue *) *vqs, unsigned int n)
{
	if (!vqs)
		return false;
	if (!DUET_FAST_PATHS)
		return poll_pending_from(vqs, 0, n);
	/* Plain memory: the test inline, no call, so no frame: a loop asks
	 * this of every idle device at every look. The first queue with
	 * accessors hands the rest to the general loop. */
	for (unsigned int i = 0; i < n; i++) {
		struct virtqueue *vq = table_at(vqs, i);
		uint16_t peer;

		if (!vq)
			continue;
		if (vq->io.ops)
			return poll_pending_from(vqs, i, n);
		if (poll_news_io(vq, VQ_IO_PLAIN, &peer))
			return true;
	}
	return false;
}

void virtqueue_prefetch_many(_Atomic(struct virtqueue *) *vqs, unsigned int n)
{
	for (unsigned int i = 0; vqs && i < n; i++) {
		struct virtqueue *vq = table_at(vqs, i);

		if (vq)
			prefetch_one(vq);
	}
}

unsigned int virtqueue_prefetch_arrived_many(_Atomic(struct virtqueue *) *vqs, unsigned int n)
{
	unsigned int asked = 0;

	for (unsigned int i = 0; vqs && i < n; i++) {
		struct virtqueue *vq = table_at(vqs, i);

		if (vq)
			asked += prefetch_arrived(vq);
	}
	return asked;
}

uint16_t virtqueue_published_idx(const struct virtqueue *vq)
{
	return vq ? own_idx(vq) : 0;
}

uint16_t virtqueue_taken_idx(const struct virtqueue *vq)
{
	return vq ? atomic_load_explicit(&vq->taken_at, memory_order_relaxed) : 0;
}

uint16_t virtqueue_peer_idx(const struct virtqueue *vq)
{
	return vq ? peer_idx(vq) : 0;
}

void virtqueue_get_state(const struct virtqueue *vq, struct virtqueue_state *st)
{
	struct virtqueue *v = (struct virtqueue *)vq; /* reads only */
	struct virtqueue_io io;
	bool driver;

	if (!st)
		return;
	memset(st, 0, sizeof(*st));
	if (!vq)
		return;
	io = vq->io;
	driver = vq->role == VIRTQUEUE_ROLE_DRIVER;
	st->size = vq->num;
	st->free = vq->num_free;
	st->queued = (uint16_t)(driver ? vq->avail_idx - vq->kicked_idx : 0);
	st->desc_head_idx = driver && vq->num_free ? vq->free_head : VQ_CHAIN_END;
	st->available_idx = driver ? 0 : vq->avail_idx;
	st->avail_idx = driver ? vq->avail_idx : vq_load16(io, &v->avail->idx);
	st->used_cons_idx = driver ? vq->used_idx : 0;
	st->used_idx = driver ? vq_load16(io, &v->used->idx) : vq->used_idx;
	st->avail_flags = driver ? vq->own_flags : vq_load16(io, &v->avail->flags);
	st->used_flags = driver ? vq_load16(io, &v->used->flags) : vq->own_flags;
	st->inflight = vq_inflight(vq);
	st->broken = vq->broken;
	st->fault = vq->fault;
	st->error = vq->error;
	st->stats = vq->stats;
}

enum virtqueue_fault virtqueue_get_fault(const struct virtqueue *vq)
{
	return vq ? vq->fault : VIRTQUEUE_FAULT_NONE;
}

bool virtqueue_is_broken(const struct virtqueue *vq)
{
	return vq && vq->broken;
}

uint16_t virtqueue_get_vring_size(const struct virtqueue *vq)
{
	return vq ? vq->num : 0;
}

bool virtqueue_full(const struct virtqueue *vq)
{
	return vq && vq->role == VIRTQUEUE_ROLE_DRIVER && vq->num_free == 0;
}

bool virtqueue_empty(struct virtqueue *vq)
{
	return !vq || vq->broken || !work_pending(vq);
}
