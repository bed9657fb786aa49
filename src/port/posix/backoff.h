/*
 * backoff.h - when a polling loop waits between looks (poll_backoff_us):
 * the rule alone, fed the looks as they happen and the clock, so that it
 * is tested on made-up timelines (test_port) as well as between processes.
 *
 * A polling receiver faster than its sender finds the ring empty after
 * each message and looks again at once; every look reads lines the sender
 * is writing and takes them from it, so the sender's next stores wait for
 * them. Waiting after an empty look lets the sender fill the ring
 * undisturbed, but makes late whatever arrives during the wait. So a look
 * waits only in a dense stream that only comes in:
 *  - a stream is found when two looks that took work, each with nothing
 *    published by this side (no send, no buffer given back) since the
 *    look before it, came less than twice the wait apart (the clock is
 *    read only at such looks, and only until a stream is found);
 *  - it goes on, through looks that give buffers back, until a wait is
 *    followed by a look that finds nothing: once per empty spell;
 *  - an empty look waits only if this side published nothing since the
 *    last look that took work.
 * A ping-pong publishes its answer, sparse messages come too far apart,
 * a sender's own loop publishes: none of them waits.
 *
 * A look took work only if it took an entry, not if a callback merely
 * ran: a pass drains past the index its look saw, so the next look runs
 * the callback again for entries already taken, and finds none. Counted
 * as a look that took work and published nothing, such looks made a
 * stream of any busy traffic, echoes both ways included, and its empty
 * looks waited while the peer waited for the answers the wait held back
 * (17 B echoes, 32 in flight: a third of polling's rate). They count as
 * no look at all.
 *
 * A stream can be dense by that test and still paced: a sender with a
 * message every few microseconds fills nothing while the receiver waits,
 * and each message that comes during a wait is late by the rest of it.
 * So each wait is judged by what the peer published during it
 * (backoff_waited): under one entry per microsecond waited, the wait
 * bought nothing; the stream counts as ended and none is found again for
 * a hold, which starts at BACKOFF_HOLD_FIRST waits and doubles with each
 * thin wait up to BACKOFF_HOLD_MAX (a paced stream then pays one wait per
 * hold); a wait that pays starts the hold over, and one that collects
 * nothing is left to the look after it (a burst that ended, as above).
 * A sender that fills the ring while the receiver waits, the case the
 * wait is for, publishes far more (several entries per microsecond on
 * this class of machine): with a ring of fewer entries than
 * poll_backoff_us, every wait looks thin.
 *
 * Every call is made under the link's lock; one_way is also read without
 * it first, so that an empty look in a ping-pong costs one load.
 */
#ifndef DUET_POSIX_BACKOFF_H
#define DUET_POSIX_BACKOFF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct poll_backoff {
	uint64_t wait_ns;   /* poll_backoff_us; 0: never wait */
	uint32_t taken;     /* where this side took from at its last look that took work */
	uint32_t published; /* what this side had published at its last look that took work */
	uint64_t quiet_ns;  /* when the last such look that published nothing ran */
	bool waited;        /* an empty look waited since the last look that took work */
	/* A dense stream was found and no wait has found it ended. Looks
	 * that publish leave it set (a ping-pong that follows a stream
	 * never waits, so never clears it): one-way traffic after that
	 * costs at most one wait before the rule looks at the clock again. */
	bool stream;
	_Atomic bool one_way; /* the next empty look may wait */
	uint64_t hold_until; /* no stream is found before this time */
	uint64_t hold_ns;    /* the next hold; 0: the first */
};

/* A hold after a thin wait, in waits: the first, and the longest. */
#define BACKOFF_HOLD_FIRST 8u
#define BACKOFF_HOLD_MAX 1024u

/*
 * A look's callbacks ran. `taken` is where this side takes from now (the
 * sum of the positions of its next entries to take): unmoved since the
 * last look that took work, the look took nothing and changes nothing.
 * `published` is what this side has published now
 * (the sum of the ring indices it writes); `now` is read only when it
 * published nothing since the last such look and no stream is known,
 * so neither a ping-pong nor a stream under way reads the clock; the time
 * compared is that of the last look that read it. A look that publishes
 * (a stream's receiver gives buffers back) does not end a stream; it only
 * keeps the next empty look from waiting.
 */
static inline void backoff_took(struct poll_backoff *b, uint32_t taken, uint32_t published,
				uint64_t (*now)(void))
{
	bool one_way = false;

	if (taken == b->taken)
		return;
	b->taken = taken;
	if (published == b->published) {
		if (!b->stream) {
			uint64_t t = now();

			/* Twice the wait: a whole wait and the look after it
			 * still come within it in a dense stream. */
			b->stream = t - b->quiet_ns < 2u * b->wait_ns &&
				    (int64_t)(t - b->hold_until) >= 0;
			b->quiet_ns = t;
		}
		one_way = b->stream;
	}
	b->published = published;
	b->waited = false;
	atomic_store_explicit(&b->one_way, one_way, memory_order_relaxed);
}

/* A look found nothing, and this side has published `published`: whether
 * to wait now (up to wait_ns). */
static inline bool backoff_empty(struct poll_backoff *b, uint32_t published)
{
	bool wait = published == b->published && !b->waited;

	if (b->waited) { /* a wait, then nothing: the stream has ended */
		b->stream = false;
		atomic_store_explicit(&b->one_way, false, memory_order_relaxed);
	}
	b->waited = wait;
	return wait;
}

/*
 * A wait that backoff_empty asked for ended after `waited_ns`, the peer
 * having published `got` entries meanwhile (the difference of two sums of
 * its indices: the peer's word, unchecked here; an inflated one keeps the
 * waits the rule allows without the hold, no more, and the take that
 * follows checks the index); `now` is the time. Under one entry per
 * microsecond, the stream is taken as paced: it ends, and none is found
 * for the hold (see above).
 */
static inline void backoff_waited(struct poll_backoff *b, uint32_t got, uint64_t waited_ns,
				  uint64_t now)
{
	/* Nothing at all is a burst that ended, not a paced stream: the empty
	 * look after it ends the stream, and the next burst is found at once. */
	if (!got)
		return;
	if ((uint64_t)got * 1000u >= waited_ns) {
		b->hold_ns = 0; /* the wait paid: a later thin one holds briefly */
		return;
	}
	if (!b->hold_ns)
		b->hold_ns = BACKOFF_HOLD_FIRST * b->wait_ns;
	b->hold_until = now + b->hold_ns;
	if (b->hold_ns < BACKOFF_HOLD_MAX * b->wait_ns)
		b->hold_ns *= 2u;
	b->stream = false;
	atomic_store_explicit(&b->one_way, false, memory_order_relaxed);
}

/* Whether an empty look should ask backoff_empty at all (no lock needed). */
static inline bool backoff_maybe(struct poll_backoff *b)
{
	return b->wait_ns && atomic_load_explicit(&b->one_way, memory_order_relaxed);
}

#endif /* DUET_POSIX_BACKOFF_H */
