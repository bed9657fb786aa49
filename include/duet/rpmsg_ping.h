/*
 * duet/rpmsg_ping.h - the ping service, on every rpmsg device once
 * registered, and its client (NuttX's `rpmsg ping`).
 */
#ifndef DUET_RPMSG_PING_H
#define DUET_RPMSG_PING_H

#include <stdint.h>

#include <duet/api.h>
#include <duet/rpmsg.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RPMSG_PING_NAME "rpmsg-ping"
#define RPMSG_PING_ACK 1u    /* cmd bit 0: wait for the echo */
#define RPMSG_PING_CHECK 2u  /* cmd bit 1: check the data */
#define RPMSG_PING_RANDOM 4u /* cmd bit 2: random length up to len */
#define RPMSG_PING_ECHO 8u   /* cmd bit 3 (duet): echo each, do not wait */
#define RPMSG_PING_CMDS 15u  /* every cmd bit there is: a ping with another is refused */
#define RPMSG_PING_HDR 16u   /* bytes of ping header inside the payload */

struct rpmsg_ping_result {
	uint32_t times;      /* pings sent */
	uint32_t buffer_len; /* payload room of a send buffer */
	uint32_t send_len;   /* the requested length */
	uint64_t bytes;      /* payload bytes sent */
	uint64_t total_ns, min_ns, max_ns, p50_ns, p99_ns;
	uint32_t failed;     /* echo missing or wrong */
};

/*
 * Give every rpmsg device, present and to come, the ping service: an
 * endpoint named RPMSG_PING_NAME that echoes (both sides need it for
 * rpmsg_ping). Optional, so that a build without it carries none of its
 * code. Calling it again does nothing. Returns 0 or -ENOMEM.
 */
DUET_API int rpmsg_ping_register(void);

/*
 * Ping the peer `times` times with `len` payload bytes (at least the 16-byte
 * ping header, at most the buffer; UINT32_MAX: the largest), `cmd` as above, sleeping sleep_ms
 * between pings. Times are per ping (the round trip with ACK); each is kept
 * (8 bytes a ping) for the percentiles. Returns 0, or a negative errno
 * (-EINVAL: no times, a len outside the range, a cmd bit not above;
 * -ENOTCONN: the peer's ping endpoint never bound; -EBUSY: another
 * rpmsg_ping runs on this device; -ENOMEM: no memory for the times;
 * -ENODEV: the device went, which ends a ping asleep between pings or
 * waiting for an echo at once; *res then counts the pings sent).
 */
DUET_API int rpmsg_ping(struct rpmsg_device *rdev, uint32_t times, uint32_t len, uint32_t cmd,
			uint32_t sleep_ms, struct rpmsg_ping_result *res);

/* What the ping service received: requests, those out of order (a lost or
 * reordered message), and data-check failures. */
struct rpmsg_ping_counters {
	uint64_t received;
	uint64_t out_of_order;
	uint64_t bad_data;
};

/* A copy of the ping service's counters on rdev, taken under its lock (all
 * zero for a NULL rdev or one without the service; nothing for a NULL c). */
DUET_API void rpmsg_ping_counters(struct rpmsg_device *rdev, struct rpmsg_ping_counters *c);

#ifdef __cplusplus
}
#endif

#endif /* DUET_RPMSG_PING_H */
