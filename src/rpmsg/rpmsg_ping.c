/*
 * rpmsg_ping.c - the "rpmsg-ping" endpoint of every rpmsg device, and the
 * client that measures round trips through it.
 *
 * A ping payload starts with {cmd, seq, session, 0}, little-endian u32s as
 * all of duet's wire (duet/byteorder.h); the rest is a pattern
 * derived from seq. The service counts requests and checks their order
 * within a session (a gap is a lost or reordered message), checks the data
 * when asked, and echoes the whole payload back when asked.
 */
#include <errno.h>
#include <string.h>

#include <duet/port.h>
#include <duet/rpmsg_ping.h>

#include "../core/sort_u64.h"
#include "rpmsg_internal.h"

#define REPLY 0x80000000u
#define ECHO_TIMEOUT_MS 5000u
#define BIND_TIMEOUT_MS 3000u

struct ping_hdr {
	uint32_t cmd;
	uint32_t seq;
	uint32_t session;
	uint32_t zero;
};

struct rpmsg_ping_state {
	struct rpmsg_endpoint ept;
	struct duet_event *echo;  /* the echo we wait for came */
	struct duet_event *nap;   /* sleeping between pings; ended by detach */
	struct duet_mutex *lock;  /* the fields below */
	uint32_t waiting_seq, session;
	bool echo_ok;
	uint32_t peer_session, next_seq;
	struct rpmsg_ping_counters counters;
	/* Users of this state: a rpmsg_ping in progress (at most one, taken
	 * under the device lock) and ping_detach while it wakes it. The last
	 * to leave once `closing` destroys the endpoint and frees the state
	 * (put_state): detach never waits for a ping, which on one core with
	 * no OS may be below it on the stack (the ping's wait runs the main
	 * loop that removes the device). */
	int active;
	bool closing; /* the device goes: pings give up */
};

static uint8_t pattern(uint32_t seq, uint32_t k)
{
	return (uint8_t)(seq * 7u + k);
}

static bool pattern_ok(const uint8_t *data, uint32_t len, uint32_t seq)
{
	for (uint32_t k = sizeof(struct ping_hdr); k < len; k++)
		if (data[k] != pattern(seq, k))
			return false;
	return true;
}

static int ping_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	struct rpmsg_ping_state *st = priv;
	struct ping_hdr h;

	(void)src;
	if (len < sizeof(h))
		return 0;
	memcpy(&h, data, sizeof(h));
	h.cmd = duet_le32(h.cmd);
	h.seq = duet_le32(h.seq);
	h.session = duet_le32(h.session);
	duet_mutex_lock(st->lock);
	if (h.cmd & REPLY) {
		if (h.seq == st->waiting_seq && h.session == st->session) {
			st->echo_ok = !(h.cmd & RPMSG_PING_CHECK) ||
				      pattern_ok(data, (uint32_t)len, h.seq);
			st->waiting_seq = 0;
			duet_event_post(st->echo);
		}
		duet_mutex_unlock(st->lock);
		return 0;
	}
	st->counters.received++;
	if (h.session != st->peer_session) {
		st->peer_session = h.session;
		st->next_seq = h.seq;
	}
	if (h.seq != st->next_seq)
		st->counters.out_of_order++;
	st->next_seq = h.seq + 1;
	if ((h.cmd & RPMSG_PING_CHECK) && !pattern_ok(data, (uint32_t)len, h.seq))
		st->counters.bad_data++;
	duet_mutex_unlock(st->lock);
	if (h.cmd & RPMSG_PING_ACK) {
		/* Echo the whole payload: the sender checks what came back. */
		uint8_t *copy = duet_port_alloc(len);

		if (copy) {
			memcpy(copy, data, len);
			((struct ping_hdr *)(void *)copy)->cmd = duet_le32(h.cmd | REPLY);
			rpmsg_send(ept, copy, (int)len);
			duet_port_free(copy);
		}
	}
	return 0;
}

static void free_state(struct rpmsg_ping_state *st)
{
	duet_event_destroy(st->echo);
	duet_event_destroy(st->nap);
	duet_mutex_destroy(st->lock);
	duet_port_free(st);
}

static void ping_attach(struct rpmsg_device *rdev, void *priv)
{
	struct rpmsg_ping_state *st = duet_port_alloc(sizeof(*st));

	(void)priv;
	if (!st)
		return;
	st->ept.priv = st; /* before create: ping_cb may run at once */
	if (duet_event_create(&st->echo) || duet_event_create(&st->nap) ||
	    duet_mutex_create(&st->lock) ||
	    rpmsg_create_ept(&st->ept, rdev, RPMSG_PING_NAME, RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
			     ping_cb, NULL)) {
		free_state(st);
		return;
	}
	rdev->ping = st;
}

/* Leave `st` as one of its users; the last once it is closing destroys
 * the endpoint and frees it. */
static void put_state(struct rpmsg_ping_state *st)
{
	bool last;

	duet_mutex_lock(st->lock);
	last = !--st->active && st->closing;
	duet_mutex_unlock(st->lock);
	if (last) {
		rpmsg_destroy_ept(&st->ept);
		free_state(st);
	}
}

static void ping_detach(struct rpmsg_device *rdev, void *priv)
{
	struct rpmsg_ping_state *st;

	(void)priv;
	duet_mutex_lock(rdev->lock);
	st = rdev->ping;
	rdev->ping = NULL;
	duet_mutex_unlock(rdev->lock);
	if (!st)
		return;
	/* A ping in progress gives up, waiting for an echo or asleep between
	 * pings: it is woken, not waited for. Its endpoint is left to the
	 * last user (put_state): a ping may be inside a send on it, which
	 * only the endpoint's owner may destroy it against, and an endpoint
	 * that outlives its device keeps what the send still touches. */
	duet_mutex_lock(st->lock);
	st->closing = true;
	st->active++; /* this call's own use, while it wakes the ping */
	duet_mutex_unlock(st->lock);
	duet_event_post(st->echo);
	duet_event_post(st->nap);
	put_state(st);
}

/* The listener's key: one registration per process. */
static _Atomic int registered;

int rpmsg_ping_register(void)
{
	int expected = 0, ret;

	if (!atomic_compare_exchange_strong(&registered, &expected, 1))
		return 0;
	ret = rpmsg_register_callback((void *)&registered, ping_attach, ping_detach, NULL, NULL);
	if (ret < 0)
		atomic_store(&registered, 0);
	return ret;
}

void rpmsg_ping_counters(struct rpmsg_device *rdev, struct rpmsg_ping_counters *c)
{
	struct rpmsg_ping_state *st;

	if (!c)
		return;
	memset(c, 0, sizeof(*c));
	if (!rdev)
		return;
	/* Under the device's lock: the service leaves (ping_detach) and its
	 * state may be freed as soon as rdev->ping is cleared. */
	duet_mutex_lock(rdev->lock);
	st = rdev->ping;
	if (st) {
		duet_mutex_lock(st->lock);
		*c = st->counters;
		duet_mutex_unlock(st->lock);
	}
	duet_mutex_unlock(rdev->lock);
}

static bool closing(struct rpmsg_ping_state *st)
{
	bool c;

	duet_mutex_lock(st->lock);
	c = st->closing;
	duet_mutex_unlock(st->lock);
	return c;
}

/* Wait for the echo of `seq`; true when it came back right. */
static bool wait_echo(struct rpmsg_ping_state *st, uint32_t seq)
{
	uint64_t end = duet_clock_ms() + ECHO_TIMEOUT_MS;

	for (;;) {
		bool done, ok;
		uint64_t now;

		duet_mutex_lock(st->lock);
		done = st->waiting_seq != seq || st->closing;
		ok = st->echo_ok && !st->closing;
		duet_mutex_unlock(st->lock);
		if (done)
			return ok;
		now = duet_clock_ms();
		if (now >= end)
			return false;
		duet_event_wait(st->echo, (uint32_t)(end - now));
	}
}

static int ping_run(struct rpmsg_ping_state *st, uint32_t times, uint32_t len, uint32_t cmd,
		    uint32_t sleep_ms, struct rpmsg_ping_result *res);

int rpmsg_ping(struct rpmsg_device *rdev, uint32_t times, uint32_t len, uint32_t cmd,
	       uint32_t sleep_ms, struct rpmsg_ping_result *res)
{
	struct rpmsg_ping_state *st;
	bool busy = false;
	int ret;

	if (!rdev)
		return -EINVAL;
	/* Pin the service: it stays until this call leaves it (put_state).
	 * One ping at a time: the session and the echo awaited are the
	 * service's, not the call's. */
	duet_mutex_lock(rdev->lock);
	st = rdev->ping;
	if (st) {
		duet_mutex_lock(st->lock);
		busy = st->active > 0;
		if (!busy)
			st->active++;
		duet_mutex_unlock(st->lock);
	}
	duet_mutex_unlock(rdev->lock);
	if (!st)
		return -ENODEV;
	if (busy)
		return -EBUSY;
	ret = ping_run(st, times, len, cmd, sleep_ms, res);
	put_state(st);
	return ret;
}

static int ping_run(struct rpmsg_ping_state *st, uint32_t times, uint32_t len, uint32_t cmd,
		    uint32_t sleep_ms, struct rpmsg_ping_result *res)
{
	uint64_t bind_end = duet_clock_ms() + BIND_TIMEOUT_MS, rnd, *ns;
	uint32_t room;
	size_t ns_size;
	uint8_t *buf;
	int ret = 0;

	if (!res || !times || (cmd & ~RPMSG_PING_CMDS))
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	while (!rpmsg_is_ept_ready(&st->ept)) {
		if (closing(st))
			return -ENODEV;
		if (duet_clock_ms() >= bind_end)
			return -ENOTCONN;
		duet_event_wait(st->nap, 5);
	}
	room = (uint32_t)rpmsg_get_tx_buffer_size(&st->ept);
	if (len == UINT32_MAX)
		len = room; /* the largest payload */
	if (len < sizeof(struct ping_hdr) || len > room)
		return -EINVAL;
	/* A time a ping: on a 32-bit core the size can wrap. */
	ns_size = (size_t)times * sizeof(*ns);
	if (ns_size / sizeof(*ns) != times)
		return -ENOMEM;
	buf = duet_port_alloc(room);
	ns = duet_port_alloc(ns_size);
	if (!buf || !ns) {
		duet_port_free(buf);
		duet_port_free(ns);
		return -ENOMEM;
	}
	rnd = duet_clock_ns() | 1u;
	duet_mutex_lock(st->lock);
	st->session = (uint32_t)(duet_clock_ns() >> 10) | 1u;
	duet_mutex_unlock(st->lock);
	res->buffer_len = room;
	res->send_len = len;
	for (uint32_t i = 0; i < times; i++) {
		uint32_t seq = i + 1, l = len;
		/* ECHO: the peer echoes (ACK on the wire) but we do not wait. */
		uint32_t wire = (cmd & ~(RPMSG_PING_RANDOM | RPMSG_PING_ECHO)) |
				(cmd & RPMSG_PING_ECHO ? RPMSG_PING_ACK : 0);
		struct ping_hdr h = { duet_le32(wire), duet_le32(seq), duet_le32(st->session), 0 };
		uint64_t t0;

		if (cmd & RPMSG_PING_RANDOM) {
			rnd ^= rnd << 13;
			rnd ^= rnd >> 7;
			rnd ^= rnd << 17;
			l = (uint32_t)sizeof(h) + (uint32_t)(rnd % (len - sizeof(h) + 1));
		}
		memcpy(buf, &h, sizeof(h));
		for (uint32_t k = sizeof(h); k < l; k++)
			buf[k] = pattern(seq, k);
		if (cmd & RPMSG_PING_ACK) {
			duet_mutex_lock(st->lock);
			st->waiting_seq = seq;
			st->echo_ok = false;
			duet_mutex_unlock(st->lock);
		}
		t0 = duet_clock_ns();
		ret = rpmsg_send(&st->ept, buf, (int)l);
		if (ret < 0)
			break;
		if ((cmd & RPMSG_PING_ACK) && !wait_echo(st, seq))
			res->failed++;
		ns[i] = duet_clock_ns() - t0;
		res->times++;
		res->bytes += l;
		res->total_ns += ns[i];
		if (sleep_ms && i + 1 < times)
			duet_event_wait(st->nap, sleep_ms);
		if (closing(st)) {
			ret = -ENODEV; /* the device goes: the echoes will not come */
			break;
		}
	}
	if (res->times) {
		duet_sort_u64(ns, res->times);
		res->min_ns = ns[0];
		res->max_ns = ns[res->times - 1];
		res->p50_ns = ns[res->times / 2];
		res->p99_ns = ns[(uint64_t)res->times * 99 / 100];
	}
	duet_port_free(ns);
	duet_port_free(buf);
	return ret < 0 ? ret : 0;
}
