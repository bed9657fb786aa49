/*
 * duet/rng.h - virtio-rng (driver side) and vhost-rng (device side).
 *
 * virtio-rng reads entropy from the peer: it posts writable buffers from
 * the transport's buffer heap, waits for them to come back and copies out
 * exactly what the device filled. vhost-rng serves such requests from the
 * host's entropy (duet_port_random), writing only writable buffers and
 * reporting exactly the bytes it wrote.
 */
#ifndef DUET_RNG_H
#define DUET_RNG_H

#include <stddef.h>
#include <stdint.h>

#include <duet/api.h>
#include <duet/vhost.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The drivers, for virtio_register_driver / vhost_register_driver (the
 * *_register_drivers() calls register them when the build enables them). */
DUET_API extern struct virtio_driver virtio_rng_driver;
DUET_API extern struct vhost_driver vhost_rng_driver;

/* The index-th virtio-rng device bound now (in probe order), or NULL. Valid
 * until that device is unregistered. */
DUET_API struct virtio_device *virtio_rng_get(unsigned int index);

/*
 * Read `len` bytes (<= INT_MAX) of entropy from the device into buf, within
 * timeout_ms. Returns len; or the bytes read so far if the time ran out or
 * the device went away after some arrived; or -ETIMEDOUT, -ENODEV (not a
 * bound virtio-rng device, or removed), -ENOMEM (no buffer memory),
 * -ENOSPC (the device still holds a ring's worth of requests that timed
 * out, or 64 of them on a longer ring), -EIO (the device broke the ring),
 * -EINVAL.
 * A buffer still with the device at a timeout is reclaimed when it returns
 * or when the device is removed: nothing leaks. One reader at a time per
 * device; others wait their turn, each within its own timeout, and a
 * removal ends every read in progress or waiting with what it has.
 */
DUET_API int virtio_rng_read(struct virtio_device *vdev, void *buf, size_t len,
			     uint32_t timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* DUET_RNG_H */
