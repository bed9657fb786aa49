/*
 * floor.c - the protocol's floor in instructions: rpmsg round trips of
 * 17 bytes over two split rings, both sides in one thread, written as
 * tightly as we could with every check of the peer that duet makes
 * (DESIGN.md section 4) and none of duet's layers: no buses, no transport
 * table, no accessors for other memory, no zero copy, no stash, no name
 * service, no waiting for buffers. Not library code, and not a ring anyone
 * should use: a yardstick, like bench_rpmsg's raw futex ping-pong, that
 * bench/callgrind-rpmsg.sh counts next to bench_rpmsg_ir. The difference
 * is what duet's design adds to what the protocol itself costs.
 *
 * What it keeps, as duet does it:
 *  - the same wire: rpmsg's 16-byte header, the driver owning every buffer
 *    (vq 0 the driver's receive ring, vq 1 its send ring), 256-entry rings;
 *  - every word of the peer read once and checked before use: an index
 *    that jumps past what is out, a head outside the table or not out, a
 *    chain or indirect entry, a buffer outside the window or of the wrong
 *    direction, a used length past its buffer, a header length past its
 *    buffer, a destination with no endpoint. A fault marks the side broken;
 *  - the batching duet does: receive buffers go back 32 at a time, used
 *    send buffers are taken back 32 at a time when the free list is empty;
 *  - notifications by the flags protocol: a kick fences, then reads the
 *    peer's flag; a doorbell is a bit in a word the peer exchanges to 0;
 *  - endpoints found by address in 16 chains; a lock on each side taken by
 *    every send and receive pass, recursive as a callback's send needs.
 *
 * floor.h is what the benches call: bench_floor.c on this machine,
 * bench_cortex_m_floor.c on a Cortex-M4 under QEMU.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duet/virtio_ring.h>

#include "floor.h"

#define NUM 256u
#define MASK (NUM - 1u)
#define ALIGN 64u
#define BUF 512u
#define HDR 16u
#define BATCH 32u
#define ADDR_ANY 0xffffffffu
#define NOINLINE __attribute__((noinline))

struct hdr {
	uint32_t src, dst, reserved;
	uint16_t len, flags;
};

/* ---- what both sides share: two rings, the buffers, the doorbells ---- */

struct ring {
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
};

struct shared {
	struct ring vq[2];       /* [0]: the driver receives; [1]: it sends */
	uint8_t *window;         /* every buffer; device addresses count from 0 */
	size_t window_size;
	_Atomic uint32_t bell[2]; /* [0] the driver's, [1] the device's: bit = vq */
};

/* ---- a lock as a callback's send needs it: recursive, futex-shaped ---- */

struct lock {
	_Atomic int state; /* 0 free, 1 taken, 2 taken with sleepers */
	const void *owner;
	unsigned int depth;
};

static _Thread_local char self;

static inline void lock_take(struct lock *l)
{
	int free_ = 0;

	if (l->owner == &self) {
		l->depth++;
		return;
	}
	while (!atomic_compare_exchange_weak_explicit(&l->state, &free_, 1, memory_order_acquire,
						      memory_order_relaxed))
		free_ = 0; /* a real lock would sleep here; one thread never gets here */
	l->owner = &self;
}

static inline void lock_give(struct lock *l)
{
	if (l->depth) {
		l->depth--;
		return;
	}
	l->owner = NULL;
	if (atomic_exchange_explicit(&l->state, 0, memory_order_release) == 2)
		abort(); /* a real lock would wake a sleeper */
}

/* ---- endpoints ---- */

struct ept;
typedef void (*ept_cb)(struct ept *ept, const uint8_t *data, uint32_t len, uint32_t src);

struct ept {
	uint32_t addr, dest;
	ept_cb cb;
	struct ept *next; /* its address chain */
	struct side *side;
};

struct side {
	struct shared *sh;
	struct lock lock;
	bool broken;
	struct ept *chain[16];
	unsigned int drops, faults;
};

static struct ept *find_ept(struct side *s, uint32_t addr)
{
	struct ept *e = s->chain[addr & 15u];

	while (e && e->addr != addr)
		e = e->next;
	return e;
}

static void add_ept(struct side *s, struct ept *e)
{
	e->side = s;
	e->next = s->chain[e->addr & 15u];
	s->chain[e->addr & 15u] = e;
}

/* The header of a received buffer of len bytes, checked; false: dropped. */
static inline bool check_msg(struct side *s, const uint8_t *buf, uint32_t len, struct hdr *h)
{
	if (len < HDR)
		goto drop;
	memcpy(&h->src, buf, 4);
	memcpy(&h->dst, buf + 4, 4);
	memcpy(&h->len, buf + 12, 2);
	if (h->len > len - HDR || h->len > BUF - HDR)
		goto drop;
	return true;
drop:
	s->drops++;
	return false;
}

static inline void deliver(struct side *s, const uint8_t *buf, uint32_t len)
{
	struct hdr h;
	struct ept *e;

	if (!check_msg(s, buf, len, &h))
		return;
	e = find_ept(s, h.dst);
	if (!e) {
		s->drops++;
		return;
	}
	e->cb(e, buf + HDR, h.len, h.src);
}

/* A message from src to dst in buf: the header, then len bytes. */
static inline void write_msg(uint8_t *buf, uint32_t src, uint32_t dst, const void *data,
			     uint16_t len)
{
	const uint32_t zero = 0;

	memcpy(buf, &src, 4);
	memcpy(buf + 4, &dst, 4);
	memcpy(buf + 8, &zero, 4);
	memcpy(buf + 12, &len, 2);
	memcpy(buf + 14, &zero, 2);
	memcpy(buf + HDR, data, len);
}

static inline void ring_bell(struct shared *sh, unsigned int peer, unsigned int vq)
{
	atomic_fetch_or_explicit(&sh->bell[peer], 1u << vq, memory_order_release);
}

static inline uint16_t load_idx(uint16_t *p)
{
	return atomic_load_explicit((_Atomic uint16_t *)p, memory_order_acquire);
}

static inline void store_idx(uint16_t *p, uint16_t v)
{
	atomic_store_explicit((_Atomic uint16_t *)p, v, memory_order_release);
}

static inline uint16_t load16(uint16_t *p)
{
	return atomic_load_explicit((_Atomic uint16_t *)p, memory_order_relaxed);
}

static inline uint32_t load32(uint32_t *p)
{
	return atomic_load_explicit((_Atomic uint32_t *)p, memory_order_relaxed);
}

/* A descriptor word, as duet reads it: one access where the target has
 * lock-free 64-bit atomics, else two 32-bit halves (a Cortex-M4); a torn
 * value is just another value to check. */
static inline uint64_t load64(uint64_t *p)
{
#if ATOMIC_LLONG_LOCK_FREE == 2
	return atomic_load_explicit((_Atomic uint64_t *)p, memory_order_relaxed);
#else
	uint32_t *w = (uint32_t *)(void *)p;

	return (uint64_t)load32(&w[0]) | (uint64_t)load32(&w[1]) << 32;
#endif
}

static inline void store64(uint64_t *p, uint64_t v)
{
#if ATOMIC_LLONG_LOCK_FREE == 2
	atomic_store_explicit((_Atomic uint64_t *)p, v, memory_order_relaxed);
#else
	uint32_t *w = (uint32_t *)(void *)p;

	atomic_store_explicit((_Atomic uint32_t *)&w[0], (uint32_t)v, memory_order_relaxed);
	atomic_store_explicit((_Atomic uint32_t *)&w[1], (uint32_t)(v >> 32), memory_order_relaxed);
#endif
}

/* Stores that leave a line alone when it already holds the value, as duet
 * does for recycled entries. */
static inline void update16(uint16_t *p, uint16_t v)
{
	if (load16(p) != v)
		atomic_store_explicit((_Atomic uint16_t *)p, v, memory_order_relaxed);
}

static inline void update32(uint32_t *p, uint32_t v)
{
	if (load32(p) != v)
		atomic_store_explicit((_Atomic uint32_t *)p, v, memory_order_relaxed);
}

/* ---- the driver side ---- */

struct drv_vq {
	struct ring r;
	uint16_t avail_idx, used_idx, seen_used, kicked;
	uint8_t *out; /* [NUM]: posted, not used yet */
};

struct drv {
	struct side s;
	struct drv_vq rx, tx;
	uint16_t free[NUM], nfree;  /* send heads: head i is buffer i */
	uint8_t *rx_pool, *tx_pool; /* NUM buffers each, in the window */
	uint16_t back[BATCH], nback; /* receive heads given back */
};

/* Kick: the peer's flag read after our index is visible. */
static inline void drv_kick(struct drv *d, struct drv_vq *q, unsigned int vq)
{
	if (q->kicked == q->avail_idx)
		return;
	q->kicked = q->avail_idx;
	atomic_thread_fence(memory_order_seq_cst);
	if (!(load16(&q->r.used->flags) & VRING_USED_F_NO_NOTIFY))
		ring_bell(d->s.sh, 1, vq);
}

static inline void drv_post(struct drv_vq *q, uint16_t head, uint8_t *buf, uint8_t *window,
			    uint32_t len, uint16_t flags)
{
	struct vring_desc *dsc = &q->r.desc[head];
	uint64_t word = len | (uint64_t)flags << 32;

	if (load64(&dsc->addr) != (uint64_t)(buf - window))
		store64(&dsc->addr, (uint64_t)(buf - window));
	if (load64((uint64_t *)(void *)&dsc->len) != word)
		store64((uint64_t *)(void *)&dsc->len, word);
	update16(&q->r.avail->ring[q->avail_idx & MASK], head);
	q->out[head] = 1;
	q->avail_idx++;
}

static NOINLINE void drv_fault(struct drv *d)
{
	d->s.broken = true;
	d->s.faults++;
}

/* The next used entry: its head, the length in *len; -1 when none (or a
 * fault, which breaks the side). */
static inline int drv_get_used(struct drv *d, struct drv_vq *q, uint32_t *len)
{
	uint16_t ready = (uint16_t)(q->seen_used - q->used_idx);
	struct vring_used_elem *e;
	uint32_t id;

	if (!ready) {
		q->seen_used = load_idx(&q->r.used->idx);
		ready = (uint16_t)(q->seen_used - q->used_idx);
		if (!ready)
			return -1;
		if (ready > (uint16_t)(q->avail_idx - q->used_idx))
			goto fault;
	}
	e = &q->r.used->ring[q->used_idx & MASK];
	id = load32(&e->id);
	*len = load32(&e->len);
	if (id >= NUM || !q->out[id] || *len > BUF)
		goto fault;
	q->out[id] = 0;
	q->used_idx++;
	return (int)id;
fault:
	drv_fault(d);
	return -1;
}

static NOINLINE void drv_reclaim(struct drv *d)
{
	uint32_t len;
	int h;

	while (d->nfree < BATCH && (h = drv_get_used(d, &d->tx, &len)) >= 0)
		d->free[d->nfree++] = (uint16_t)h;
}

static NOINLINE int drv_send(struct ept *e, const void *data, int len)
{
	struct drv *d = (struct drv *)(void *)e->side;
	uint16_t head;
	uint8_t *buf;

	if (len < 0 || (uint32_t)len > BUF - HDR || e->dest == ADDR_ANY)
		return -1;
	lock_take(&d->s.lock);
	if (d->s.broken)
		goto fail;
	if (!d->nfree)
		drv_reclaim(d);
	if (!d->nfree)
		goto fail; /* a real send would wait */
	head = d->free[--d->nfree];
	buf = d->tx_pool + (size_t)head * BUF;
	write_msg(buf, e->addr, e->dest, data, (uint16_t)len);
	drv_post(&d->tx, head, buf, d->s.sh->window, HDR + (uint32_t)len, 0);
	store_idx(&d->tx.r.avail->idx, d->tx.avail_idx);
	drv_kick(d, &d->tx, 1);
	lock_give(&d->s.lock);
	return len;
fail:
	lock_give(&d->s.lock);
	return -1;
}

static NOINLINE void drv_repost(struct drv *d)
{
	for (uint16_t i = 0; i < d->nback; i++) {
		uint16_t h = d->back[i];

		drv_post(&d->rx, h, d->rx_pool + (size_t)h * BUF, d->s.sh->window, BUF,
			 VRING_DESC_F_WRITE);
	}
	d->nback = 0;
	store_idx(&d->rx.r.avail->idx, d->rx.avail_idx);
	drv_kick(d, &d->rx, 0);
}

static NOINLINE void drv_rx_pass(struct drv *d)
{
	uint32_t len;
	int h;

	lock_take(&d->s.lock);
	while (!d->s.broken && (h = drv_get_used(d, &d->rx, &len)) >= 0) {
		deliver(&d->s, d->rx_pool + (size_t)h * BUF, len);
		d->back[d->nback++] = (uint16_t)h;
		if (d->nback == BATCH)
			drv_repost(d);
	}
	lock_give(&d->s.lock);
}

/* ---- the device side ---- */

struct dev_vq {
	struct ring r;
	uint16_t last_avail, seen_avail, used_idx, kicked;
	uint32_t *wlen; /* [NUM]: taken: writable bytes + 1; 0: not taken */
};

struct dev {
	struct side s;
	struct dev_vq rx, tx; /* rx: vq 1 (the driver sends); tx: vq 0 */
	uint16_t back[BATCH], nback;
};

static NOINLINE void dev_fault(struct dev *v)
{
	v->s.broken = true;
	v->s.faults++;
}

/* Take the next available buffer: a lone descriptor of the wanted
 * direction inside the window. Its head, the buffer in *buf and *len; -1
 * when none (or a fault, which breaks the side). */
static inline int dev_take(struct dev *v, struct dev_vq *q, bool writable, uint8_t **buf,
			   uint32_t *len)
{
	uint16_t ready = (uint16_t)(q->seen_avail - q->last_avail);
	struct vring_desc *dsc;
	uint64_t addr, word;
	uint16_t head;
	uint32_t flags;

	if (!ready) {
		q->seen_avail = load_idx(&q->r.avail->idx);
		ready = (uint16_t)(q->seen_avail - q->last_avail);
		if (!ready)
			return -1;
		if (ready > NUM)
			goto fault;
	}
	head = load16(&q->r.avail->ring[q->last_avail & MASK]);
	if (head >= NUM || q->wlen[head])
		goto fault;
	dsc = &q->r.desc[head];
	addr = load64(&dsc->addr);
	word = load64((uint64_t *)(void *)&dsc->len);
	*len = (uint32_t)word;
	flags = (uint32_t)(word >> 32) & 0xffffu;
	if ((flags & (VRING_DESC_F_NEXT | VRING_DESC_F_INDIRECT)) ||
	    !(flags & VRING_DESC_F_WRITE) != !writable || addr > v->s.sh->window_size ||
	    *len > v->s.sh->window_size - addr || (writable && *len <= HDR))
		goto fault;
	*buf = v->s.sh->window + addr;
	q->wlen[head] = (writable ? *len : 0) + 1u;
	q->last_avail++;
	return head;
fault:
	dev_fault(v);
	return -1;
}

static inline void dev_put_used(struct dev_vq *q, uint16_t head, uint32_t len)
{
	struct vring_used_elem *e = &q->r.used->ring[q->used_idx & MASK];

	q->wlen[head] = 0;
	update32(&e->id, head);
	update32(&e->len, len);
	q->used_idx++;
}

static inline void dev_kick(struct dev *v, struct dev_vq *q, unsigned int vq)
{
	if (q->kicked == q->used_idx)
		return;
	q->kicked = q->used_idx;
	atomic_thread_fence(memory_order_seq_cst);
	if (!(load16(&q->r.avail->flags) & VRING_AVAIL_F_NO_INTERRUPT))
		ring_bell(v->s.sh, 0, vq);
}

static NOINLINE int dev_send(struct ept *e, const void *data, int len)
{
	struct dev *v = (struct dev *)(void *)e->side;
	uint32_t cap;
	uint8_t *buf;
	int head;

	if (len < 0 || (uint32_t)len > BUF - HDR || e->dest == ADDR_ANY)
		return -1;
	lock_take(&v->s.lock);
	if (v->s.broken)
		goto fail;
	head = dev_take(v, &v->tx, true, &buf, &cap);
	if (head < 0 || (uint32_t)len > cap - HDR)
		goto fail; /* a real send would wait, or give a short one back */
	write_msg(buf, e->addr, e->dest, data, (uint16_t)len);
	dev_put_used(&v->tx, (uint16_t)head, HDR + (uint32_t)len);
	store_idx(&v->tx.r.used->idx, v->tx.used_idx);
	dev_kick(v, &v->tx, 0);
	lock_give(&v->s.lock);
	return len;
fail:
	lock_give(&v->s.lock);
	return -1;
}

static NOINLINE void dev_return(struct dev *v)
{
	for (uint16_t i = 0; i < v->nback; i++)
		dev_put_used(&v->rx, v->back[i], 0);
	v->nback = 0;
	store_idx(&v->rx.r.used->idx, v->rx.used_idx);
	dev_kick(v, &v->rx, 1);
}

static NOINLINE void dev_rx_pass(struct dev *v)
{
	uint32_t len;
	uint8_t *buf;
	int h;

	lock_take(&v->s.lock);
	while (!v->s.broken && (h = dev_take(v, &v->rx, false, &buf, &len)) >= 0) {
		deliver(&v->s, buf, len);
		v->back[v->nback++] = (uint16_t)h;
		if (v->nback == BATCH)
			dev_return(v);
	}
	lock_give(&v->s.lock);
}

/* ---- the doorbells: each side exchanges its word and runs its queues ---- */

static NOINLINE void drv_poll(struct drv *d)
{
	uint32_t bits = atomic_exchange_explicit(&d->s.sh->bell[0], 0, memory_order_acquire);

	if (bits & 1u)
		drv_rx_pass(d);
	/* bit 1, used send buffers: taken back when the free list is empty */
}

static NOINLINE void dev_poll(struct dev *v)
{
	uint32_t bits = atomic_exchange_explicit(&v->s.sh->bell[1], 0, memory_order_acquire);

	if (bits & 2u)
		dev_rx_pass(v);
	/* bit 0, receive buffers posted: taken when a send needs one */
}

/* ---- the bench ---- */

/* What a library's caller gives at run time: called through these, the
 * sends and polls are not compiled for the bench's constants (a length of
 * 17 would turn the copy into two moves, which a library never sees). */
static int (*volatile send_fn)(struct ept *e, const void *data, int len) = drv_send;
static void (*volatile dev_poll_fn)(struct dev *v) = dev_poll;
static void (*volatile drv_poll_fn)(struct drv *d) = drv_poll;
static volatile int msg_len = 17;

static unsigned int replies;

static void echo_cb(struct ept *e, const uint8_t *data, uint32_t len, uint32_t src)
{
	(void)src;
	if (dev_send(e, data, (int)len) < 0)
		abort();
}

static void reply_cb(struct ept *e, const uint8_t *data, uint32_t len, uint32_t src)
{
	(void)e;
	(void)data;
	(void)len;
	(void)src;
	replies++;
}

static void ring_at(uint8_t *mem, struct ring *r)
{
	r->desc = (struct vring_desc *)(void *)mem;
	r->avail = (struct vring_avail *)(void *)(mem + 16u * NUM);
	r->used = (struct vring_used *)(void *)(mem + vring_used_offset(NUM, ALIGN));
}

/* Both sides, fresh, over fresh rings: every receive buffer posted, an
 * endpoint on each side (a replies to b, which echoes). */
struct floor_pair {
	struct shared sh;
	struct drv d;
	struct dev v;
	struct ept a, b;
	uint8_t *rings;
	void *rings_mem, *window_mem; /* as allocated: rings and window 64-aligned in them */
};

static size_t ring_span(void)
{
	return (vring_size(NUM, ALIGN) + 4095u) & ~(size_t)4095u;
}

/* size bytes at a 64-byte boundary inside a block of *mem, or NULL.
 * (newlib's aligned_alloc needs posix_memalign, which a Cortex-M lacks.) */
static uint8_t *alloc64(size_t size, void **mem)
{
	*mem = malloc(size + 63u);
	return *mem ? (uint8_t *)(((uintptr_t)*mem + 63u) & ~(uintptr_t)63u) : NULL;
}

static int pair_init(struct floor_pair *p)
{
	memset(p, 0, sizeof(*p));
	/* The bookkeeping apart from the rest, as duet's slots are: a check
	 * left out shows as a read outside it under ASan. */
	p->rings = alloc64(2 * ring_span(), &p->rings_mem);
	p->sh.window_size = 2u * NUM * BUF;
	p->sh.window = alloc64(p->sh.window_size, &p->window_mem);
	p->d.rx.out = calloc(NUM, 1);
	p->d.tx.out = calloc(NUM, 1);
	p->v.rx.wlen = calloc(NUM, sizeof(uint32_t));
	p->v.tx.wlen = calloc(NUM, sizeof(uint32_t));
	if (!p->rings || !p->sh.window || !p->d.rx.out || !p->d.tx.out || !p->v.rx.wlen ||
	    !p->v.tx.wlen)
		return -1;
	memset(p->rings, 0, 2 * ring_span());
	memset(p->sh.window, 0, p->sh.window_size);
	for (unsigned int i = 0; i < 2; i++)
		ring_at(p->rings + i * ring_span(), &p->sh.vq[i]);
	p->d.s.sh = p->v.s.sh = &p->sh;
	p->d.rx.r = p->v.tx.r = p->sh.vq[0];
	p->d.tx.r = p->v.rx.r = p->sh.vq[1];
	p->d.rx_pool = p->sh.window;
	p->d.tx_pool = p->sh.window + NUM * BUF;
	for (uint16_t i = 0; i < NUM; i++)
		p->d.free[p->d.nfree++] = (uint16_t)(NUM - 1u - i);
	for (uint16_t i = 0; i < NUM; i++) {
		p->d.back[p->d.nback++] = i;
		if (p->d.nback == BATCH)
			drv_repost(&p->d);
	}
	p->a = (struct ept){ .addr = 2000, .dest = 2001, .cb = reply_cb };
	p->b = (struct ept){ .addr = 2001, .dest = 2000, .cb = echo_cb };
	add_ept(&p->d.s, &p->a);
	add_ept(&p->v.s, &p->b);
	drv_poll(&p->d);
	dev_poll(&p->v);
	return 0;
}

static void pair_free(struct floor_pair *p)
{
	free(p->rings_mem);
	free(p->window_mem);
	free(p->d.rx.out);
	free(p->d.tx.out);
	free(p->v.rx.wlen);
	free(p->v.tx.wlen);
}

/* One round trip; false when the reply did not come. */
static bool round_trip(struct floor_pair *p)
{
	static const char msg[17] = "ping";
	unsigned int before = replies;

	if (send_fn(&p->a, msg, msg_len) != (int)sizeof(msg))
		return false;
	dev_poll_fn(&p->v);
	drv_poll_fn(&p->d);
	return replies == before + 1;
}

/*
 * The checks at work, so that the floor is known to pay for them: each
 * case breaks one word of the peer's between a send and the poll that
 * reads it, and expects the side reading it to count a fault (or a drop,
 * for a message's header), after round trips that counted none.
 */
enum hit { TX_DESC, TX_USED, MSG };

struct hostile {
	const char *what;
	enum hit where;    /* after the driver's send, or after the device's echo */
	bool device_fault; /* else the driver's fault, or a drop (MSG) */
	unsigned int replies; /* the step's messages that still got through */
	void (*spoil)(struct floor_pair *p);
};

static uint16_t last_avail_head(struct floor_pair *p)
{
	return p->sh.vq[1].avail->ring[(uint16_t)(p->d.tx.avail_idx - 1u) & MASK];
}

static void avail_jump(struct floor_pair *p)
{
	p->sh.vq[1].avail->idx = (uint16_t)(p->d.tx.avail_idx + NUM + 1u);
}

static void head_range(struct floor_pair *p)
{
	p->sh.vq[1].avail->ring[(uint16_t)(p->d.tx.avail_idx - 1u) & MASK] = NUM + 5u;
}

static void head_twice(struct floor_pair *p)
{
	/* the same head again, while the device still has it */
	uint16_t h = last_avail_head(p);

	p->sh.vq[1].avail->ring[p->d.tx.avail_idx & MASK] = h;
	p->sh.vq[1].avail->idx = (uint16_t)(p->d.tx.avail_idx + 1u);
}

static void desc_outside(struct floor_pair *p)
{
	p->sh.vq[1].desc[last_avail_head(p)].addr = p->sh.window_size - 8u;
}

static void desc_far(struct floor_pair *p)
{
	p->sh.vq[1].desc[last_avail_head(p)].addr = (uint64_t)1 << 40;
}

static void desc_chain(struct floor_pair *p)
{
	p->sh.vq[1].desc[last_avail_head(p)].flags = VRING_DESC_F_NEXT;
}

static void desc_direction(struct floor_pair *p)
{
	p->sh.vq[1].desc[last_avail_head(p)].flags = VRING_DESC_F_WRITE;
}

static struct vring_used_elem *last_used(struct floor_pair *p)
{
	return &p->sh.vq[0].used->ring[(uint16_t)(p->v.tx.used_idx - 1u) & MASK];
}

static void used_id(struct floor_pair *p)
{
	last_used(p)->id = NUM;
}

static void used_not_out(struct floor_pair *p)
{
	/* the buffer of the round trip before, which the driver has back */
	last_used(p)->id = p->sh.vq[0].used->ring[(uint16_t)(p->v.tx.used_idx - 2u) & MASK].id;
}

static void used_len(struct floor_pair *p)
{
	last_used(p)->len = BUF + 1u;
}

static void used_jump(struct floor_pair *p)
{
	p->sh.vq[0].used->idx = (uint16_t)(p->v.tx.used_idx + NUM + 1u);
}

static void msg_len_past(struct floor_pair *p)
{
	uint16_t len = BUF;

	memcpy(p->d.tx_pool + (size_t)last_avail_head(p) * BUF + 12, &len, 2);
}

static void msg_nobody(struct floor_pair *p)
{
	uint32_t dst = 7;

	memcpy(p->d.tx_pool + (size_t)last_avail_head(p) * BUF + 4, &dst, 4);
}

static const struct hostile hostiles[] = {
	{ "avail index past the ring", TX_DESC, true, 0, avail_jump },
	{ "head outside the table", TX_DESC, true, 0, head_range },
	{ "head the device still has", TX_DESC, true, 1, head_twice },
	{ "buffer crossing the window's end", TX_DESC, true, 0, desc_outside },
	{ "buffer far past the window", TX_DESC, true, 0, desc_far },
	{ "chained descriptor", TX_DESC, true, 0, desc_chain },
	{ "writable send buffer", TX_DESC, true, 0, desc_direction },
	{ "used id outside the table", TX_USED, false, 0, used_id },
	{ "used id the driver has back", TX_USED, false, 0, used_not_out },
	{ "used length past the buffer", TX_USED, false, 0, used_len },
	{ "used index past what is out", TX_USED, false, 0, used_jump },
	{ "header length past the buffer", MSG, true, 0, msg_len_past },
	{ "no endpoint at the destination", MSG, true, 0, msg_nobody },
};

static int run_hostile(void)
{
	static const char msg[17] = "ping";
	int bad = 0;

	for (size_t i = 0; i < sizeof(hostiles) / sizeof(hostiles[0]); i++) {
		const struct hostile *h = &hostiles[i];
		static struct floor_pair p;
		unsigned int *count, before;
		bool ok;

		if (pair_init(&p) < 0)
			return 1;
		ok = round_trip(&p) && round_trip(&p) && !p.d.s.faults && !p.v.s.faults;
		if (h->where == MSG)
			count = &p.v.s.drops;
		else
			count = h->device_fault ? &p.v.s.faults : &p.d.s.faults;
		before = replies;
		ok = ok && drv_send(&p.a, msg, sizeof(msg)) == sizeof(msg);
		if (h->where != TX_USED)
			h->spoil(&p);
		dev_poll(&p.v);
		if (h->where == TX_USED)
			h->spoil(&p);
		drv_poll(&p.d);
		ok = ok && *count == 1 && replies - before == h->replies;
		printf("  %-32s %s\n", h->what, ok ? "caught" : "MISSED");
		bad += !ok;
		pair_free(&p);
	}
	return bad != 0;
}

struct floor_pair *floor_open(void)
{
	static struct floor_pair p;

	return pair_init(&p) < 0 ? NULL : &p;
}

unsigned int floor_faults(const struct floor_pair *p)
{
	return p->d.s.faults + p->v.s.faults + p->d.s.drops + p->v.s.drops;
}

long floor_run(struct floor_pair *p, long n)
{
	long i;

	for (i = 0; i < n && round_trip(p); i++)
		;
	return i;
}

void floor_close(struct floor_pair *p)
{
	pair_free(p);
}

int floor_hostile(void)
{
	return run_hostile();
}
