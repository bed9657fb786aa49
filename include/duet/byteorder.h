/*
 * duet/byteorder.h - the wire's byte order.
 *
 * Everything duet puts in shared memory is little-endian, whatever the
 * core: the rings (VIRTIO 1.2), the resource table, rpmsg's header, name
 * service message and config space, and the ping service's messages. So a
 * big-endian core and a little-endian one share a link. On a little-endian
 * core these are the value itself and compile to nothing.
 *
 * A user writes in this order what duet copies to the wire unread: a vdev's
 * config space (struct duet_vdev_desc's `config`), e.g.
 *   static const struct rpmsg_virtio_config cfg = { DUET_LE32(512), DUET_LE32(512) };
 */
#ifndef DUET_BYTEORDER_H
#define DUET_BYTEORDER_H

#include <stdint.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
/* The constant v in little-endian order: for initializers. */
#define DUET_LE32(v)                                                                    \
	((uint32_t)((((uint32_t)(v) & 0xffu) << 24) | (((uint32_t)(v) & 0xff00u) << 8) | \
		    (((uint32_t)(v) >> 8) & 0xff00u) | ((uint32_t)(v) >> 24)))

/* The value v in little-endian order, or back: the same swap either way. */
static inline uint16_t duet_le16(uint16_t v)
{
	return (uint16_t)((v >> 8) | (v << 8));
}

/* The value v in little-endian order, or back. */
static inline uint32_t duet_le32(uint32_t v)
{
	return DUET_LE32(v);
}

/* The value v in little-endian order, or back. */
static inline uint64_t duet_le64(uint64_t v)
{
	return ((uint64_t)duet_le32((uint32_t)v) << 32) | duet_le32((uint32_t)(v >> 32));
}
#else
/* The constant v in little-endian order: for initializers. */
#define DUET_LE32(v) ((uint32_t)(v))

/* The value v in little-endian order, or back: on this core, v. */
static inline uint16_t duet_le16(uint16_t v)
{
	return v;
}

/* The value v in little-endian order, or back: on this core, v. */
static inline uint32_t duet_le32(uint32_t v)
{
	return v;
}

/* The value v in little-endian order, or back: on this core, v. */
static inline uint64_t duet_le64(uint64_t v)
{
	return v;
}
#endif

#endif /* DUET_BYTEORDER_H */
