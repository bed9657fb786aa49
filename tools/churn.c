/*
 * churn.c - endpoints that come and go over the name service: the client
 * behind `rpmsg churn` and the echo service that answers it.
 *
 * A client endpoint is named "duet-churn-<tag>-<seq>", <tag> this
 * process's random tag. The peer's echo service takes the announcement and
 * creates an endpoint of the same name bound to it, whose own announcement
 * binds the client's; it echoes each message back and is destroyed when
 * the client's endpoint is (NS DESTROY) or the device goes. Both sides run
 * the service, so each must decline its own names: the echo endpoint's
 * announcement, reaching a client whose endpoint is already gone, is
 * offered to the client's listeners too, and taking it would bind echo to
 * echo, each side announcing a new endpoint to the other without end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "churn.h"

#define PREFIX "duet-churn-"
#define PREFIX_LEN (sizeof(PREFIX) - 1)
#define TAG_LEN 8
#define TIMEOUT_MS 5000
#define MAX_MSGS 4

static pthread_once_t tag_once = PTHREAD_ONCE_INIT;
static char own_tag[TAG_LEN + 1];
static _Atomic uint32_t next_seq;

static void make_tag(void)
{
	uint32_t x;

	if (getrandom(&x, sizeof(x), 0) != (ssize_t)sizeof(x))
		x = (uint32_t)getpid() * 2654435761u ^ (uint32_t)time(NULL);
	snprintf(own_tag, sizeof(own_tag), "%08x", x);
}

static const char *tag(void)
{
	pthread_once(&tag_once, make_tag);
	return own_tag;
}

/* ---- the echo service ---- */

static int echo_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	int ret = rpmsg_sendto(ept, data, (int)len, src);

	(void)priv;
	/* -ENODEV: the device goes, and the client learns it from its own. */
	if (ret < 0 && ret != -ENODEV)
		fprintf(stderr, "churn echo %s: %s\n", ept->name, strerror(-ret));
	return 0;
}

/* The client destroyed its endpoint, or the device goes: this one goes
 * too (rpmsg lets an unbind callback destroy its endpoint). */
static void echo_unbind(struct rpmsg_endpoint *ept)
{
	rpmsg_destroy_ept(ept);
	free(ept);
}

/* A churn client's name, and not one of ours. */
static bool echo_match(struct rpmsg_device *rdev, const char *name, uint32_t dest, void *priv)
{
	(void)rdev;
	(void)dest;
	(void)priv;
	return !strncmp(name, PREFIX, PREFIX_LEN) && strncmp(name + PREFIX_LEN, tag(), TAG_LEN);
}

static void echo_bind(struct rpmsg_device *rdev, const char *name, uint32_t dest, void *priv)
{
	struct rpmsg_endpoint *ept = calloc(1, sizeof(*ept));
	int ret;

	(void)priv;
	if (!ept) {
		fprintf(stderr, "churn echo %s: no memory\n", name);
		return;
	}
	ret = rpmsg_create_ept(ept, rdev, name, RPMSG_ADDR_ANY, dest, echo_cb, echo_unbind);
	if (ret < 0) {
		/* -ENODEV: the device went meanwhile, as the client will see. */
		if (ret != -ENODEV)
			fprintf(stderr, "churn echo %s: %s\n", name, strerror(-ret));
		free(ept);
	}
}

static int service_key;

int churn_service_register(void)
{
	return rpmsg_register_callback(&service_key, NULL, NULL, echo_match, echo_bind);
}

void churn_service_unregister(void)
{
	rpmsg_unregister_callback(&service_key);
}

/* ---- the client ---- */

struct churn;

struct slot {
	struct rpmsg_endpoint ept;
	struct churn *c;
	uint32_t seq;            /* names it and makes its data */
	uint16_t lens[MAX_MSGS]; /* of the messages sent, in order */
	unsigned int sent, got;  /* messages sent; echoes come back in order */
	bool bad;                /* an echo came back wrong */
	bool unbound;            /* the echo endpoint went, or the device */
	bool open;
};

struct churn {
	pthread_mutex_t lock; /* the slots' counts and flags */
	pthread_cond_t cond;
	struct slot slots[CHURN_MAX_OPEN];
	uint32_t rng;
	const char **why;
};

static uint32_t next_rand(struct churn *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 17;
	c->rng ^= c->rng << 5;
	return c->rng;
}

static uint8_t pattern(uint32_t seq, unsigned int msg, size_t k)
{
	return (uint8_t)(seq * 31u + msg * 7u + k);
}

/* An echo, on the transport's thread (with the device locked: no rpmsg
 * call here, and c->lock is never held around one). */
static int slot_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	struct slot *s = priv;
	const uint8_t *p = data;

	(void)ept;
	(void)src;
	pthread_mutex_lock(&s->c->lock);
	if (s->got >= s->sent || len != s->lens[s->got]) {
		s->bad = true;
	} else {
		for (size_t k = 0; k < len; k++)
			if (p[k] != pattern(s->seq, s->got, k))
				s->bad = true;
		s->got++;
	}
	pthread_cond_broadcast(&s->c->cond);
	pthread_mutex_unlock(&s->c->lock);
	return 0;
}

static void slot_unbind(struct rpmsg_endpoint *ept)
{
	struct slot *s = ept->priv;

	pthread_mutex_lock(&s->c->lock);
	s->unbound = true;
	pthread_cond_broadcast(&s->c->cond);
	pthread_mutex_unlock(&s->c->lock);
}

static int fail(struct churn *c, int err, const char *why)
{
	*c->why = why;
	return err;
}

static int slot_open(struct churn *c, struct slot *s, struct rpmsg_device *rdev)
{
	char name[RPMSG_NAME_SIZE];
	int ret;

	s->c = c;
	s->seq = atomic_fetch_add(&next_seq, 1);
	s->sent = s->got = 0;
	s->bad = s->unbound = false;
	snprintf(name, sizeof(name), PREFIX "%s-%x", tag(), (unsigned int)s->seq);
	s->ept.priv = s; /* before create: the callback may run at once */
	ret = rpmsg_create_ept(&s->ept, rdev, name, RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, slot_cb,
			       slot_unbind);
	if (ret < 0)
		return fail(c, ret, "an endpoint could not be created");
	s->open = true;
	return 0;
}

static void slot_close(struct slot *s)
{
	if (s->open)
		rpmsg_destroy_ept(&s->ept);
	s->open = false;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Every open slot bound. Binding sets no flag we could wait on (it is
 * the device's), so this looks every 100 us. */
static int wait_bound(struct churn *c, unsigned int n)
{
	uint64_t end = now_ms() + TIMEOUT_MS;

	for (unsigned int i = 0; i < n; i++) {
		struct slot *s = &c->slots[i];

		while (s->open && !rpmsg_is_ept_ready(&s->ept)) {
			bool unbound;

			pthread_mutex_lock(&c->lock);
			unbound = s->unbound;
			pthread_mutex_unlock(&c->lock);
			if (unbound)
				return fail(c, -ENODEV, "the device went before an endpoint bound");
			if (now_ms() >= end)
				return fail(c, -ETIMEDOUT, "an endpoint not bound within 5 s");
			usleep(100);
		}
	}
	return 0;
}

static int slot_send(struct churn *c, struct slot *s, uint32_t room)
{
	unsigned int msgs = 1 + next_rand(c) % MAX_MSGS;
	uint8_t buf[UINT16_MAX];

	for (unsigned int m = 0; m < msgs; m++) {
		uint16_t len = (uint16_t)(1 + next_rand(c) % room);
		int ret;

		for (size_t k = 0; k < len; k++)
			buf[k] = pattern(s->seq, m, k);
		pthread_mutex_lock(&c->lock);
		s->lens[m] = len; /* before the send: the echo may beat its return */
		s->sent = m + 1;
		pthread_mutex_unlock(&c->lock);
		ret = rpmsg_send(&s->ept, buf, len);
		if (ret != len)
			return fail(c, ret < 0 ? ret : -EIO, ret == -ENODEV ? "the device went during a send"
								   : "a send failed");
	}
	return 0;
}

/* Every open slot's echoes back, or the first one wrong; the echoes
 * counted into *echoes, under the lock the callbacks count them with. */
static int wait_echoes(struct churn *c, unsigned int n, uint32_t *echoes)
{
	struct timespec end;
	int ret = 0;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += TIMEOUT_MS / 1000;
	pthread_mutex_lock(&c->lock);
	for (unsigned int i = 0; i < n && ret == 0; i++) {
		struct slot *s = &c->slots[i];

		while (s->open && s->got < s->sent && !s->bad && !s->unbound && ret == 0)
			if (pthread_cond_timedwait(&c->cond, &c->lock, &end) == ETIMEDOUT)
				ret = fail(c, -ETIMEDOUT, "an echo missing after 5 s");
		if (ret == 0 && s->open && s->bad)
			ret = fail(c, -EIO, "an echo came back wrong");
		else if (ret == 0 && s->open && s->got < s->sent)
			ret = fail(c, -ENODEV, "the echo endpoint or the device went before the echoes came");
		else if (ret == 0 && s->open)
			*echoes += s->got;
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* One group: n endpoints created, echoed and destroyed. */
static int churn_group(struct churn *c, struct rpmsg_device *rdev, unsigned int n,
		       struct churn_result *res)
{
	unsigned int order[CHURN_MAX_OPEN];
	uint32_t room;
	int ret;

	for (unsigned int i = 0; i < n; i++) {
		ret = slot_open(c, &c->slots[i], rdev);
		if (ret < 0)
			return ret;
		res->created++;
		if (next_rand(c) % 8 == 0) {
			/* Gone before the peer could bind it: its announcement
			 * may still be queued, or met by the peer's. */
			slot_close(&c->slots[i]);
			res->abandoned++;
		}
	}
	ret = wait_bound(c, n);
	for (unsigned int i = 0; i < n && ret == 0; i++) {
		struct slot *s = &c->slots[i];
		int tx = rpmsg_get_tx_buffer_size(&s->ept), rx = rpmsg_get_rx_buffer_size(&s->ept);

		if (!s->open)
			continue;
		if (tx <= 0 || rx <= 0)
			return fail(c, -ENODEV, "the device went before a send");
		room = (uint32_t)(tx < rx ? tx : rx);
		if (room > UINT16_MAX)
			room = UINT16_MAX;
		ret = slot_send(c, s, room);
	}
	if (ret == 0)
		ret = wait_echoes(c, n, &res->echoes);
	if (ret < 0)
		return ret;
	for (unsigned int i = 0; i < n; i++)
		order[i] = i;
	for (unsigned int i = n; i > 1; i--) {
		unsigned int j = next_rand(c) % i, t = order[i - 1];

		order[i - 1] = order[j];
		order[j] = t;
	}
	for (unsigned int i = 0; i < n; i++)
		slot_close(&c->slots[order[i]]);
	return 0;
}

int churn_run(struct rpmsg_device *rdev, uint32_t rounds, uint32_t open,
	      struct churn_result *res, const char **why)
{
	pthread_condattr_t attr;
	struct churn *c;
	int ret = 0;

	memset(res, 0, sizeof(*res));
	*why = "";
	if (!rounds || !open || open > CHURN_MAX_OPEN) {
		*why = "ROUNDS must be at least 1, OPEN 1 to 64";
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		*why = "no memory";
		return -ENOMEM;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* wait_echoes' deadline */
	pthread_cond_init(&c->cond, &attr);
	pthread_condattr_destroy(&attr);
	c->why = why;
	c->rng = (uint32_t)strtoul(tag(), NULL, 16) ^ atomic_load(&next_seq) ^ 0x9e3779b9u;
	if (!c->rng)
		c->rng = 1;
	for (uint32_t done = 0; done < rounds && ret == 0;) {
		unsigned int n = rounds - done < open ? rounds - done : open;

		ret = churn_group(c, rdev, n, res);
		/* After a failure the group's endpoints still go. */
		for (unsigned int i = 0; i < n; i++)
			slot_close(&c->slots[i]);
		done += n;
	}
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return ret;
}
