/*
 * duet/link.h - one link between two processes over a named shared region.
 *
 * The server creates the region (header, resource table, carveouts),
 * registers its devices and waits for a proxy; the proxy attaches by name.
 * Each side runs one service thread that serves its doorbell (virtqueue
 * callbacks), watches the peer, and runs commands. A peer that dies is
 * noticed within DUET_LINK_WATCH_MS: its devices are removed (their
 * drivers' remove() run) and the survivor waits for a new peer; a new one
 * re-attaches and the devices come back. The region is unlinked when the
 * link ends cleanly, and a region left by a crashed run is reclaimed.
 *
 * A NULL handle is refused by every call: it returns -EINVAL, NULL, false
 * or 0, and does nothing.
 */
#ifndef DUET_LINK_H
#define DUET_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <duet/api.h>
#include <duet/rptun.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DUET_LINK_WATCH_MS 100u /* how often a side looks at its peer */

struct duet_link;

enum duet_link_event {
	DUET_LINK_PEER_UP,      /* the peer attached */
	DUET_LINK_PEER_DOWN,    /* the peer died or left: its devices are gone */
	DUET_LINK_PEER_REFUSED, /* a peer with other cpu names tried to attach */
	DUET_LINK_STOPPED,      /* the server asked this proxy to stop */
	DUET_LINK_ERROR,
};

struct duet_link_config {
	const char *name;       /* link name: the region is /duet-<name> */
	enum duet_side side;
	/* 1-31 letters, digits, '-' or '_' */
	const char *local_cpu;  /* default "server" / "proxy" */
	const char *remote_cpu; /* default the other */
	/* server only: the vdevs of the link */
	const struct duet_vdev_desc *vdevs;
	unsigned int num_vdevs;
	uint32_t spin_us;       /* doorbell spin before blocking; 0: block at once */
	/* Polling (duet_link_poll, and the spin of duet_link_wait or of the
	 * service thread): in a dense stream that only comes in (looks that
	 * took work less than twice this apart, this side publishing nothing
	 * between them; a look whose callbacks found their entries already
	 * taken counts as none), wait up to this long after a look that finds
	 * nothing, once per empty spell, so that the peer streaming to this
	 * side is not slowed by every look taking the lines it writes. Costs
	 * a message of such a stream arriving during a wait up to this much
	 * latency; a ping-pong, and one-way messages further apart, never
	 * wait. A wait during which the peer published fewer entries than
	 * microseconds waited (a paced stream, which gains nothing from it)
	 * ends the stream and holds waiting off, 8 waits at first, doubling
	 * to 1024. Keep it under the ring's entries in microseconds. 0: never
	 * (the default). */
	uint32_t poll_backoff_us;
	/* The user runs the loop (duet_link_poll / duet_link_wait, from one
	 * thread); the link's own thread then only watches the peer. */
	bool user_loop;
	/* Called from the service thread (and from open/close) with a line of
	 * text for the user. */
	void (*event)(void *arg, enum duet_link_event ev, const char *msg);
	void *arg;
};

/*
 * Server: create the region and register this side's devices (a stale
 * region from a crashed run is reclaimed; one in use is refused).
 * Proxy: attach to the server's region, waiting up to timeout_ms for it;
 * refused when the cpu names do not match (the message names both).
 * Returns 0 or a negative errno, with a message in err.
 */
DUET_API int duet_link_open(struct duet_link **link, const struct duet_link_config *cfg,
			    uint32_t timeout_ms, char *err, size_t errlen);

/*
 * End the link. The server asks the proxy to stop and waits for its
 * acknowledgement (reported in err if it does not come within timeout_ms),
 * then removes the region. The proxy detaches. Devices are unregistered.
 */
DUET_API int duet_link_close(struct duet_link *link, uint32_t timeout_ms, char *err, size_t errlen);

enum duet_link_cmd {
	DUET_LINK_CMD_STOP = 1,  /* the proxy leaves */
	/* The link starts over: the proxy removes its devices and leaves, the
	 * server removes its own and writes a fresh table, and the proxy
	 * attaches again (both sides see the peer go and come back). Nothing
	 * the peer wrote into the region outlives it. */
	DUET_LINK_CMD_RESET = 2,
	DUET_LINK_CMD_PANIC = 3, /* the proxy aborts (a crash on purpose) */
};

/*
 * Server: send a command to the proxy through the header's command slot and
 * wait for its acknowledgement. Returns 0, -ENOTCONN (no proxy), -EINVAL
 * (not a server), or -ETIMEDOUT with err saying so; a command timed out is
 * withdrawn, and not carried out later, unless the proxy had taken it
 * already (err says which). A reset returns once this side has started
 * over too, so duet_link_wait_peer after it waits for the proxy to attach
 * again; called on the link's own thread, it returns at the
 * acknowledgement, and the thread starts over when the call is done.
 */
DUET_API int duet_link_command(struct duet_link *link, enum duet_link_cmd cmd, uint32_t timeout_ms,
			       char *err, size_t errlen);

/* Wait until a peer is attached; false on timeout. */
DUET_API bool duet_link_wait_peer(struct duet_link *link, uint32_t timeout_ms);

/*
 * With user_loop: run what is pending on the calling thread, without
 * waiting: the link's events from the doorbell, and every virtqueue whose
 * peer published work (virtqueue_poll: its callback runs). The loop looks
 * at the rings itself, so it tells the peer, in its doorbell, not to ring
 * for them until it next calls duet_link_wait. Returns how many notify ids
 * and callbacks ran (0: nothing was pending), -EINVAL without user_loop.
 * Polling: call it in a loop. With poll_backoff_us, a look that finds
 * nothing while traffic only comes in waits before it returns.
 */
DUET_API int duet_link_poll(struct duet_link *link);

/* How many times duet_link_poll waited for poll_backoff_us (or less: the
 * doorbell ends a wait). */
DUET_API uint32_t duet_link_backoffs(struct duet_link *link);

/* A duet_link_wait timeout that never ends. */
#define DUET_LINK_FOREVER UINT32_MAX

/*
 * With user_loop: as duet_link_poll, but when nothing is pending wait for
 * the peer's next notification first, for at most timeout_ms, or with
 * DUET_LINK_FOREVER without a limit (and without arming a timer on each
 * sleep). It polls the rings as duet_link_poll does for spin_us, then tells
 * the peer to ring again, looks once more, and blocks. Any change of the
 * link's state (peer up or down, a stop requested) and duet_link_wake end
 * the wait too, also when a peer killed as it rang left the doorbell where
 * no ring of its own would end it, so a loop can wait forever and test its
 * own conditions after each turn. A proxy that lost its server attaches
 * to the next one only after its loop has turned once more. Returns how
 * many doorbell ids and callbacks ran (a state change or a wake is one; 0
 * after a timeout), -EINVAL without user_loop.
 */
DUET_API int duet_link_wait(struct duet_link *link, uint32_t timeout_ms);

/*
 * With user_loop: end a duet_link_wait in progress on another thread, or
 * the next one, at once. Each call makes a wake-up system call, which is
 * what makes it certain (duet_doorbell_wake): for stopping a loop, not for
 * every message. Returns 0, -EINVAL without user_loop.
 */
DUET_API int duet_link_wake(struct duet_link *link);

/* True while a peer is attached. */
DUET_API bool duet_link_peer_up(struct duet_link *link);

/* The peer's pid, or 0. */
DUET_API int duet_link_peer_pid(struct duet_link *link);

/*
 * This side's rptun (its devices). The link owns it: it makes it anew
 * when the proxy goes (on the server) or when the server asks for a reset
 * (on the proxy), so the pointer is good until then: take it again rather
 * than keep it, and leave its start and stop to the link. On the server,
 * duet_rptun_reset and duet_rptun_panic on it are the link's commands to
 * the proxy (duet_link_command, with a 2 s timeout; -ENOTCONN until the
 * link has seen the proxy attach: duet_link_wait_peer).
 */
DUET_API struct duet_rptun *duet_link_rptun(struct duet_link *link);

/* True once the server asked this proxy to stop. */
DUET_API bool duet_link_stop_requested(struct duet_link *link);

/*
 * True when a peer is attached and every device of this side that has a
 * driver registered for its id is bound.
 */
DUET_API bool duet_link_ready(struct duet_link *link);

/* Write a description of the link, its devices and both doorbells (seq,
 * armed, polled, wake calls, pending ids), one line each, into buf;
 * returns its length (truncated to len - 1). */
DUET_API int duet_link_describe(struct duet_link *link, char *buf, size_t len);

/* Doorbell statistics: notifications this side sent (a ring merged into
 * one the peer has not taken yet is not counted: the peer sees one), and
 * the wake-up system calls they cost. Callable from callbacks. */
DUET_API void duet_link_stats(struct duet_link *link, uint32_t *rung, uint32_t *wakes);

#ifdef __cplusplus
}
#endif

#endif /* DUET_LINK_H */
