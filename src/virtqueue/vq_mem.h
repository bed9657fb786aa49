/*
 * vq_mem.h - the only code that touches ring memory.
 *
 * Every load and store of the descriptor table, avail ring and used ring
 * goes through these functions. They take the queue's `io` by value: a
 * caller copies vq->io into a local once, so the choice of accessor stays in
 * a register instead of being reloaded after every atomic access. With no mem_ops they compile to single
 * atomic accesses on plain shared memory; with mem_ops (MMIO, cache
 * maintenance) they call the user's accessors. Byte order is converted here.
 *
 * Indices carry the data: a side publishes an index with release ordering
 * after writing what it covers, and the peer reads it with acquire ordering
 * before reading what it covers. Flags and event words are hints, accessed
 * relaxed and ordered by an explicit full fence where a store must be
 * visible before a load (vq_fence).
 */
#ifndef DUET_VQ_MEM_H
#define DUET_VQ_MEM_H

#include <stdatomic.h>
#include <stdint.h>

#include <duet/byteorder.h>
#include <duet/virtqueue.h>

#include "../core/compiler.h"

/* Read an index the peer publishes. */
static DUET_INLINE uint16_t vq_load_idx(struct virtqueue_io io, uint16_t *p)
{
	if (io.ops)
		return duet_le16(io.ops->read16(io.ctx, p));
	return duet_le16(atomic_load_explicit((_Atomic uint16_t *)p, memory_order_acquire));
}

/* Publish an index after what it covers. */
static DUET_INLINE void vq_store_idx(struct virtqueue_io io, uint16_t *p, uint16_t v)
{
	if (io.ops)
		io.ops->write16(io.ctx, p, duet_le16(v));
	else
		atomic_store_explicit((_Atomic uint16_t *)p, duet_le16(v), memory_order_release);
}

static DUET_INLINE uint16_t vq_load16(struct virtqueue_io io, uint16_t *p)
{
	if (io.ops)
		return duet_le16(io.ops->read16(io.ctx, p));
	return duet_le16(atomic_load_explicit((_Atomic uint16_t *)p, memory_order_relaxed));
}

static DUET_INLINE void vq_store16(struct virtqueue_io io, uint16_t *p, uint16_t v)
{
	if (io.ops)
		io.ops->write16(io.ctx, p, duet_le16(v));
	else
		atomic_store_explicit((_Atomic uint16_t *)p, duet_le16(v), memory_order_relaxed);
}

static DUET_INLINE uint32_t vq_load32(struct virtqueue_io io, uint32_t *p)
{
	if (io.ops)
		return duet_le32(io.ops->read32(io.ctx, p));
	return duet_le32(atomic_load_explicit((_Atomic uint32_t *)p, memory_order_relaxed));
}

static DUET_INLINE void vq_store32(struct virtqueue_io io, uint32_t *p, uint32_t v)
{
	if (io.ops)
		io.ops->write32(io.ctx, p, duet_le32(v));
	else
		atomic_store_explicit((_Atomic uint32_t *)p, duet_le32(v), memory_order_relaxed);
}

/*
 * Store a ring entry only when it changes. The peer reads the line each
 * time it takes the entry; a store takes the line from the peer's cache
 * and its next read must fetch it back, one more cache miss on every
 * message. A recycled buffer usually lands in the same entry with the
 * same head (and the same length), so the line can stay shared. Reading
 * it is local: only this side should write it (a peer that scribbles on it
 * gets the store again, as with descriptors). Accessors get every store.
 */
static DUET_INLINE void vq_update16(struct virtqueue_io io, uint16_t *p, uint16_t v)
{
	if (io.ops || vq_load16(io, p) != v)
		vq_store16(io, p, v);
}

static DUET_INLINE void vq_update32(struct virtqueue_io io, uint32_t *p, uint32_t v)
{
	if (io.ops || vq_load32(io, p) != v)
		vq_store32(io, p, v);
}

/* Full barrier: our store is visible before our next load of a peer word. */
static DUET_INLINE void vq_fence(struct virtqueue_io io)
{
	if (io.ops)
		io.ops->fence(io.ctx);
	else
		atomic_thread_fence(memory_order_seq_cst);
}

/*
 * After taking an entry under EVENT_IDX with callbacks on: ask to be
 * notified for the next one. The peer publishes its index, fences, then
 * reads this word; so the store is fenced before this side looks at the
 * peer's index again. Without it the look may read the old index while the
 * store still sits in a store buffer, the peer read the old word, and the
 * next entry waits for a notification that never comes.
 */
static DUET_INLINE void vq_move_event(struct virtqueue_io io, uint16_t *event, uint16_t next)
{
	vq_store16(io, event, next);
	vq_fence(io);
}

/*
 * A descriptor in plain memory is accessed as two 64-bit words: its address,
 * and len | flags << 32 | next << 48, which is bytes 8-15 of the wire
 * layout read as one little-endian word. Each is one access where the target
 * has lock-free 64-bit atomics, else two 32-bit halves, so no target needs a
 * 64-bit atomic library. A torn value is just another value to validate:
 * only the copy is used. Descriptor tables are 16-byte aligned (checked at
 * init, and for each indirect table the peer names).
 */
static DUET_INLINE uint64_t vq_load64(uint64_t *p)
{
#if ATOMIC_LLONG_LOCK_FREE == 2
	return duet_le64(atomic_load_explicit((_Atomic uint64_t *)p, memory_order_relaxed));
#else
	uint32_t *w = (uint32_t *)(void *)p;

	return (uint64_t)duet_le32(atomic_load_explicit((_Atomic uint32_t *)&w[0],
						        memory_order_relaxed)) |
	       (uint64_t)duet_le32(atomic_load_explicit((_Atomic uint32_t *)&w[1],
						        memory_order_relaxed)) << 32;
#endif
}

static DUET_INLINE void vq_store64(uint64_t *p, uint64_t v)
{
#if ATOMIC_LLONG_LOCK_FREE == 2
	atomic_store_explicit((_Atomic uint64_t *)p, duet_le64(v), memory_order_relaxed);
#else
	uint32_t *w = (uint32_t *)(void *)p;

	atomic_store_explicit((_Atomic uint32_t *)&w[0], duet_le32((uint32_t)v),
			      memory_order_relaxed);
	atomic_store_explicit((_Atomic uint32_t *)&w[1], duet_le32((uint32_t)(v >> 32)),
			      memory_order_relaxed);
#endif
}

/* The second word of a descriptor (see vq_load64). */
static DUET_INLINE uint64_t *vq_desc_word_ptr(struct vring_desc *d)
{
	return (uint64_t *)(void *)&d->len;
}

/* A descriptor's second word from its fields. */
static DUET_INLINE uint64_t vq_desc_word(uint32_t len, uint16_t flags, uint16_t next)
{
	return len | (uint64_t)flags << 32 | (uint64_t)next << 48;
}

static DUET_INLINE struct vring_desc vq_desc_from(uint64_t addr, uint64_t word)
{
	return (struct vring_desc){ addr, (uint32_t)word, (uint16_t)(word >> 32),
				    (uint16_t)(word >> 48) };
}

/* Copy one descriptor out of shared memory, once, as its two words; callers
 * use only the copy. */
static DUET_INLINE void vq_read_desc_words(struct virtqueue_io io, struct vring_desc *src,
					   uint64_t *addr, uint64_t *word)
{
	if (io.ops) {
		struct vring_desc raw;

		io.ops->read_desc(io.ctx, &raw, src);
		*addr = duet_le64(raw.addr);
		*word = vq_desc_word(duet_le32(raw.len), duet_le16(raw.flags), duet_le16(raw.next));
		return;
	}
	*addr = vq_load64(&src->addr);
	*word = vq_load64(vq_desc_word_ptr(src));
}

/* Copy one descriptor out of shared memory, once; callers use only *dst. */
static DUET_INLINE void vq_read_desc(struct virtqueue_io io, struct vring_desc *dst,
				     struct vring_desc *src)
{
	uint64_t addr, word;

	vq_read_desc_words(io, src, &addr, &word);
	*dst = vq_desc_from(addr, word);
}

/* Store one descriptor, whatever it held: for memory not yet written
 * (a ring being set up), whose old contents are not to be read. */
static DUET_INLINE void vq_store_desc(struct virtqueue_io io, struct vring_desc *dst,
				      uint64_t addr, uint32_t len, uint16_t flags,
				      uint16_t next)
{
	if (io.ops) {
		struct vring_desc raw = {
			.addr = duet_le64(addr),
			.len = duet_le32(len),
			.flags = duet_le16(flags),
			.next = duet_le16(next),
		};

		io.ops->write_desc(io.ctx, dst, &raw);
		return;
	}
	vq_store64(&dst->addr, addr);
	vq_store64(vq_desc_word_ptr(dst), vq_desc_word(len, flags, next));
}

static DUET_INLINE void vq_write_desc(struct virtqueue_io io, struct vring_desc *dst,
				      uint64_t addr, uint32_t len, uint16_t flags,
				      uint16_t next)
{
	/* A descriptor rewritten with what it already holds (the same buffer
	 * recycled through the same slot, the rpmsg case) is left alone: a
	 * store would take the cache line from the peer, and the peer's next
	 * read would have to fetch it back. Reading it is local. */
	if (!io.ops && vq_load64(&dst->addr) == addr &&
	    vq_load64(vq_desc_word_ptr(dst)) == vq_desc_word(len, flags, next))
		return;
	vq_store_desc(io, dst, addr, len, flags, next);
}

#endif /* DUET_VQ_MEM_H */
