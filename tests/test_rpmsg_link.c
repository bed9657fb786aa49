/*
 * rpmsg between two real processes over the shared-memory link: this
 * binary is the server (virtio-rpmsg, the driver side) and runs itself
 * again as the proxy (vhost-rpmsg) with --child. Name service both ways,
 * endpoint churn, tx-buffer exhaustion (trysend, timeout, a blocking send
 * woken when the peer gives buffers back) both ways, and hostile rpmsg
 * input from each side played by a raw driver in the other process.
 *
 * The two talk through the child's stdin and stdout, one word per line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <duet/doorbell.h>
#include <duet/link.h>
#include <duet/port.h>
#include <duet/rpmsg.h>
#include <duet/rpmsg_ping.h>
#include <duet/rptun.h>
#include <duet/virtio.h>

#include "proc.h"
#include "timed_send.h"

#define RING 8

static const char *self;
static const uint8_t sizes[8] = { 0, 2, 0, 0, 0, 2, 0, 0 }; /* 512 both ways */
static const struct duet_vdev_desc vdevs[] = {
	{ .id = VIRTIO_ID_RPMSG, .driver = DUET_SERVER, .features = 1, .num_vrings = 2,
	  .vring_num = RING, .vring_align = 16, .config_len = sizeof(sizes), .config = sizes,
	  .carveout_size = 64 * 1024 },
};

/* Rings of 64: received buffers go back in batches of eight, which lets a
 * receiving side tell traffic that only comes in (poll_backoff_us). */
static const struct duet_vdev_desc vdevs64[] = {
	{ .id = VIRTIO_ID_RPMSG, .driver = DUET_SERVER, .features = 1, .num_vrings = 2,
	  .vring_num = 64, .vring_align = 16, .config_len = sizeof(sizes), .config = sizes,
	  .carveout_size = 128 * 1024 },
};

static void nap(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static struct duet_link *open_side(enum duet_side side, const char *name)
{
	struct duet_link_config cfg = { .name = name, .side = side };
	struct duet_link *l = NULL;
	char err[256];

	if (side == DUET_SERVER) {
		cfg.vdevs = vdevs;
		cfg.num_vdevs = 1;
	}
	if (duet_link_open(&l, &cfg, 5000, err, sizeof(err)) < 0) {
		fprintf(stderr, "open: %s\n", err);
		return NULL;
	}
	return l;
}

static void close_side(struct duet_link *l)
{
	char err[256];

	duet_link_close(l, 3000, err, sizeof(err));
}

static struct rpmsg_device *wait_device(void)
{
	for (int i = 0; i < 2500; i++) {
		struct rpmsg_device *d = rpmsg_get_device(0);

		if (d)
			return d;
		nap(2);
	}
	return NULL;
}

/* ---- an endpoint that records, and may hold what it gets ---- */

struct box {
	struct rpmsg_endpoint ept;
	_Atomic int count, unbound;
	char last[64];
	_Atomic bool hold;
	void *held[2 * RING];
	_Atomic int nheld;
	int mark; /* count before a question (ask) */
	/* Answer the first message from the callback: the send, its result
	 * and how long it took (ms). */
	_Atomic bool relay, relaying, relayed;
	_Atomic int relay_ret;
	_Atomic unsigned int relay_ms;
};

static int box_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	struct box *b = priv;

	(void)src;
	memset(b->last, 0, sizeof(b->last));
	memcpy(b->last, data, len < sizeof(b->last) - 1 ? len : sizeof(b->last) - 1);
	if (atomic_load(&b->hold) && atomic_load(&b->nheld) < 2 * RING) {
		rpmsg_hold_rx_buffer(ept, data);
		b->held[atomic_fetch_add(&b->nheld, 1)] = data;
	}
	if (atomic_load(&b->relay) && !atomic_load(&b->relayed)) {
		uint64_t t0 = duet_clock_ms();

		atomic_store(&b->relaying, true);
		atomic_store(&b->relay_ret, rpmsg_send(ept, "relay", 6));
		atomic_store(&b->relay_ms, (unsigned int)(duet_clock_ms() - t0));
		atomic_store(&b->relayed, true);
	}
	atomic_fetch_add(&b->count, 1);
	return 0;
}

static void box_unbind(struct rpmsg_endpoint *ept)
{
	atomic_fetch_add(&((struct box *)ept->priv)->unbound, 1);
}

static int box_open(struct box *b, struct rpmsg_device *rdev, const char *name, uint32_t dest)
{
	int ret;

	memset(b, 0, sizeof(*b));
	b->ept.priv = b; /* before create: the callback may run at once */
	ret = rpmsg_create_ept(&b->ept, rdev, name, RPMSG_ADDR_ANY, dest, box_cb, box_unbind);
	return ret;
}

static void box_release(struct box *b)
{
	int n = atomic_exchange(&b->nheld, 0);

	atomic_store(&b->hold, false);
	for (int i = 0; i < n; i++)
		rpmsg_release_rx_buffer(&b->ept, b->held[i]);
}

static bool until(bool (*cond)(void *), void *arg, unsigned int ms)
{
	uint64_t end = duet_clock_ms() + ms;

	while (!cond(arg)) {
		if (duet_clock_ms() >= end)
			return false;
		nap(1);
	}
	return true;
}

static bool ready(void *arg)
{
	return rpmsg_is_ept_ready(arg);
}

static bool unready(void *arg)
{
	return !rpmsg_is_ept_ready(arg);
}

static bool got_one(void *arg)
{
	return atomic_load(&((struct box *)arg)->count) > 0;
}

static bool got_unbind(void *arg)
{
	return atomic_load(&((struct box *)arg)->unbound) > 0;
}

/* A listener that remembers the last announcement offered to it. */
static char offered[RPMSG_NAME_SIZE];
static _Atomic uint32_t offered_addr;

static bool match_any(struct rpmsg_device *rdev, const char *name, uint32_t dest, void *priv)
{
	(void)rdev;
	(void)dest;
	(void)priv;
	return !strncmp(name, "from-", 5);
}

static void bind_any(struct rpmsg_device *rdev, const char *name, uint32_t dest, void *priv)
{
	(void)rdev;
	(void)priv;
	snprintf(offered, sizeof(offered), "%s", name);
	atomic_store(&offered_addr, dest);
}

static bool was_offered(void *arg)
{
	(void)arg;
	return atomic_load(&offered_addr) != 0;
}

/* Send until -EAGAIN; how many went. */
static int fill_up(struct rpmsg_endpoint *ept)
{
	int n = 0, ret;

	while ((ret = rpmsg_trysend(ept, "fill", 5)) == 5 && n < 1000)
		n++;
	return ret == -EAGAIN ? n : -1000 + ret;
}

/* ---- the child (proxy) side ---- */

static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* The next line from the parent, or "" after ms. */
static const char *hear(unsigned int ms)
{
	static char line[128];
	struct pollfd pfd = { .fd = 0, .events = POLLIN };
	size_t n = 0;

	while (n < sizeof(line) - 1 && poll(&pfd, 1, (int)ms) > 0) {
		if (read(0, &line[n], 1) != 1 || line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	return line;
}

#define CHECK(c)                                                                        \
	do {                                                                            \
		if (!(c)) {                                                             \
			say("FAIL line %d: %s", __LINE__, #c);                          \
			_exit(1);                                                       \
		}                                                                       \
	} while (0)

static void child_ns(struct rpmsg_device *rdev)
{
	struct box a, b;

	/* The server's announcement is offered to a listener; we bind. */
	CHECK(rpmsg_register_callback(&a, NULL, NULL, match_any, bind_any) == 0);
	CHECK(until(was_offered, NULL, 3000));
	CHECK(!strcmp(offered, "from-server"));
	CHECK(box_open(&a, rdev, offered, atomic_load(&offered_addr)) == 0);
	CHECK(rpmsg_send(&a.ept, "hello from proxy", 17) == 17);
	CHECK(until(got_one, &a, 3000));
	CHECK(!strcmp(a.last, "hello from server"));
	/* The server destroys its endpoint: ours is unbound. */
	CHECK(until(got_unbind, &a, 3000));
	CHECK(!rpmsg_is_ept_ready(&a.ept));
	rpmsg_destroy_ept(&a.ept);
	say("server-destroy-seen");
	/* Now ours announces, the server binds, and we destroy it. */
	CHECK(box_open(&b, rdev, "from-proxy", RPMSG_ADDR_ANY) == 0);
	CHECK(until(ready, &b.ept, 3000));
	CHECK(until(got_one, &b, 3000));
	CHECK(!strcmp(b.last, "hello from server"));
	CHECK(rpmsg_send(&b.ept, "hello from proxy", 17) == 17);
	CHECK(!strcmp(hear(3000), "destroy"));
	rpmsg_destroy_ept(&b.ept);
	rpmsg_unregister_callback(&a);
	say("done");
}

static void child_churn(struct rpmsg_device *rdev)
{
	struct box keep;
	char dump[4096];

	/* Only once the server's "churn" endpoint exists: churning sooner,
	 * the announcements could all be over before it is there to see one. */
	CHECK(!strcmp(hear(30000), "go"));
	for (int i = 0; i < 10000; i++) {
		struct rpmsg_endpoint e;

		CHECK(rpmsg_create_ept(&e, rdev, "churn", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, box_cb,
				       NULL) == 0);
		rpmsg_destroy_ept(&e);
	}
	say("churned");
	/* The server churns one of ours; afterwards ours is unbound, and a
	 * message still gets through. */
	CHECK(box_open(&keep, rdev, "churn-back", RPMSG_ADDR_ANY) == 0);
	say("kept");
	CHECK(!strcmp(hear(30000), "churned"));
	CHECK(until(unready, &keep.ept, 3000));
	CHECK(atomic_load(&keep.unbound) > 0);
	CHECK(until(got_one, &keep, 3000)); /* one message from the last endpoint */
	rpmsg_dump(rdev, dump, sizeof(dump));
	CHECK(strstr(dump, "ept churn ") == NULL);
	rpmsg_destroy_ept(&keep.ept);
	say("done");
}

static void child_exhaust(struct rpmsg_device *rdev)
{
	struct box sink;
	uint64_t t0;
	int n, ret;

	/* We hold whatever the server sends until told to let go. */
	CHECK(box_open(&sink, rdev, "sink", RPMSG_ADDR_ANY) == 0);
	atomic_store(&sink.hold, true);
	CHECK(until(ready, &sink.ept, 3000));
	say("holding");
	CHECK(!strcmp(hear(10000), "release-later"));
	nap(200);
	box_release(&sink);
	CHECK(!strcmp(hear(10000), "your-turn"));
	/* The device side sends into the driver's buffers: RING of them. */
	n = fill_up(&sink.ept);
	say("filled %d", n);
	CHECK(n == RING);
	rpmsg_set_send_timeout(rdev, 300);
	t0 = duet_clock_ms();
	ret = rpmsg_send(&sink.ept, "late", 5);
	say("timeout %d after %u ms", ret, (unsigned int)(duet_clock_ms() - t0));
	CHECK(ret == -ETIMEDOUT);
	rpmsg_set_send_timeout(rdev, 5000);
	say("blocking");
	t0 = duet_clock_ms();
	ret = rpmsg_send(&sink.ept, "woken", 6);
	say("sent %d after %u ms", ret, (unsigned int)(duet_clock_ms() - t0));
	CHECK(ret == 6);
	CHECK(!strcmp(hear(10000), "bye"));
	rpmsg_destroy_ept(&sink.ept);
	say("done");
}

/* A raw device-side rpmsg: writes what a hostile device would. */
static _Atomic(struct virtqueue *) raw_rx;

static void raw_cb(struct virtqueue *vq)
{
	(void)vq;
}

static int raw_probe(struct vhost_device *hdev)
{
	const char *names[] = { "rx", "tx" };
	vq_callback cbs[] = { raw_cb, raw_cb };
	void *args[] = { NULL, NULL };
	int ret = vhost_create_virtqueues(hdev, 0, 2, names, cbs, args);

	if (ret == 0)
		atomic_store(&raw_rx, hdev->vrings_info[0].vq);
	return ret;
}

static void raw_remove(struct vhost_device *hdev)
{
	atomic_store(&raw_rx, NULL);
	vhost_delete_virtqueues(hdev);
}

static struct vhost_driver raw_device = {
	.device = VIRTIO_ID_RPMSG, .probe = raw_probe, .remove = raw_remove, .name = "raw",
};

struct raw_hdr {
	uint32_t src, dst, res;
	uint16_t len, flags;
};

/* One message into the driver's next receive buffer, used length `used`. */
static bool raw_put(struct raw_hdr h, const void *payload, size_t plen, uint32_t used)
{
	for (int i = 0; i < 5000; i++) {
		struct virtqueue_buf vb;
		size_t n = 0;
		int head = vhost_get_vq_buffers(atomic_load(&raw_rx), &vb, 1, &n);

		if (head >= 0) {
			if (!vb.writable || vb.len < sizeof(h) + plen)
				return false;
			memcpy(vb.buf, &h, sizeof(h));
			memcpy((uint8_t *)vb.buf + sizeof(h), payload, plen);
			virtqueue_add_consumed_buffer(atomic_load(&raw_rx), (uint16_t)head, used);
			virtqueue_kick(atomic_load(&raw_rx));
			return true;
		}
		nap(1);
	}
	return false;
}

static void child_hostile_device(struct rpmsg_device *rdev)
{
	char ns[40];
	uint32_t dst;

	(void)rdev;
	for (int i = 0; i < 2500 && !atomic_load(&raw_rx); i++)
		nap(2);
	CHECK(atomic_load(&raw_rx) != NULL);
	CHECK(sscanf(hear(5000), "victim %u", &dst) == 1);
	/* a header length past its buffer */
	CHECK(raw_put((struct raw_hdr){ 1024, dst, 0, 600, 0 }, "x", 1, 512));
	/* a header length past the used length */
	CHECK(raw_put((struct raw_hdr){ 1024, dst, 0, 100, 0 }, "x", 1, 40));
	/* shorter than a header */
	CHECK(raw_put((struct raw_hdr){ 1024, dst, 0, 1, 0 }, "x", 1, 3));
	/* an unknown destination */
	CHECK(raw_put((struct raw_hdr){ 1024, 4000, 0, 1, 0 }, "x", 1, 17));
	/* name service: no NUL, then unknown flags, then the wrong size */
	memset(ns, 'A', sizeof(ns));
	CHECK(raw_put((struct raw_hdr){ 1024, RPMSG_NS_EPT_ADDR, 0, 40, 0 }, ns, 40, 56));
	memset(ns, 0, sizeof(ns));
	strcpy(ns, "evil");
	ns[36] = 7;
	CHECK(raw_put((struct raw_hdr){ 1024, RPMSG_NS_EPT_ADDR, 0, 40, 0 }, ns, 40, 56));
	CHECK(raw_put((struct raw_hdr){ 1024, RPMSG_NS_EPT_ADDR, 0, 12, 0 }, ns, 12, 28));
	/* a flood to nowhere */
	for (int i = 0; i < 10000; i++)
		CHECK(raw_put((struct raw_hdr){ 1024, 4000, 0, 1, 0 }, "x", 1, 17));
	/* and a good message after all that */
	CHECK(raw_put((struct raw_hdr){ 1024, dst, 0, 6, 0 }, "after", 6, 22));
	say("sent");
	CHECK(!strcmp(hear(10000), "bye"));
	say("done");
}

static void child_stats(struct rpmsg_device *rdev)
{
	struct rpmsg_stats st;

	rpmsg_get_stats(rdev, &st);
	say("stats len %u dst %u ns %u other %u deferred %u", st.dropped_len, st.dropped_dst,
	    st.dropped_ns, st.dropped_other, st.ns_deferred);
}

/* The device side under a hostile driver: we answer, then report drops. */
static void child_victim(struct rpmsg_device *rdev)
{
	struct box v;

	/* Bound by address: the raw driver speaks no name service. */
	CHECK(box_open(&v, rdev, "", 2000) == 0);
	say("victim %u", v.ept.addr);
	CHECK(until(got_one, &v, 10000));
	CHECK(!strcmp(v.last, "after"));
	CHECK(rpmsg_send(&v.ept, "reply", 6) == 6);
	child_stats(rdev);
	CHECK(!strcmp(hear(10000), "bye"));
	rpmsg_destroy_ept(&v.ept);
	say("done");
}

/* Wait for the server to go, by a stop command or its leaving. */
static void child_left(struct duet_link *l)
{
	while (!duet_link_stop_requested(l) && duet_link_peer_up(l))
		nap(5);
	say("server gone");
}

/* We hold whatever the server sends, and send it four messages when told.
 * Still holding as we leave: the endpoint outlives the link, and goes
 * after it (child_main). */
static struct box holder_sink;

static void child_holder(struct rpmsg_device *rdev)
{
	struct box *sink = &holder_sink;

	CHECK(box_open(sink, rdev, "sink", RPMSG_ADDR_ANY) == 0);
	atomic_store(&sink->hold, true);
	CHECK(until(ready, &sink->ept, 3000));
	say("holding");
	CHECK(!strcmp(hear(10000), "send"));
	for (int i = 0; i < 4; i++)
		CHECK(rpmsg_send(&sink->ept, "ping", 5) == 5);
	say("sent");
}

/* A proxy that dies while its devices start: vhost-rpmsg's own probe,
 * which takes what the server's driver offered, then three announcements
 * into the server's receive buffers, then gone, inside duet_link_open,
 * before the link has said it is up. */
static struct box dying_boxes[3];

static int dying_probe(struct vhost_device *hdev)
{
	CHECK(vhost_rpmsg_driver.probe(hdev) == 0);
	for (int i = 0; i < 3; i++) {
		char name[RPMSG_NAME_SIZE];

		snprintf(name, sizeof(name), "dying-%d", i);
		CHECK(box_open(&dying_boxes[i], hdev->priv, name, RPMSG_ADDR_ANY) == 0);
	}
	say("dying");
	_exit(0);
}

static struct vhost_driver dying_device = {
	.device = VIRTIO_ID_RPMSG, .probe = dying_probe, .name = "dying",
};

static int child_main(const char *name, const char *scenario)
{
	bool hostile = !strcmp(scenario, "hostile-device");
	bool dying = !strcmp(scenario, "dies-attaching");
	struct rpmsg_device *rdev = NULL;
	struct duet_link *l;

	CHECK(vhost_register_driver(hostile ? &raw_device
				    : dying ? &dying_device
					    : &vhost_rpmsg_driver) == 0);
	l = open_side(DUET_PROXY, name);
	CHECK(l != NULL);
	CHECK(!dying); /* its probe ran inside the attach, and never returned */
	if (!hostile) {
		rdev = wait_device();
		CHECK(rdev != NULL);
	}
	say("up");
	if (!strcmp(scenario, "ns"))
		child_ns(rdev);
	else if (!strcmp(scenario, "churn"))
		child_churn(rdev);
	else if (!strcmp(scenario, "exhaust"))
		child_exhaust(rdev);
	else if (!strcmp(scenario, "holder"))
		child_holder(rdev);
	else if (hostile)
		child_hostile_device(rdev);
	else if (!strcmp(scenario, "victim"))
		child_victim(rdev);
	else if (!strcmp(scenario, "left"))
		child_left(l);
	else
		CHECK(!"known scenario");
	while (!duet_link_stop_requested(l)) {
		const char *line = hear(100);

		if (!strcmp(line, "quit"))
			break;
		if (!strcmp(line, "needs-reset")) /* as its ring broke: the server must reset it */
			CHECK(virtio_set_status(duet_rptun_vdev(duet_link_rptun(l), 0),
						VIRTIO_CONFIG_STATUS_NEEDS_RESET) == 0);
	}
	say("closing");
	close_side(l);
	rpmsg_destroy_ept(&holder_sink.ept); /* the holder's, if any */
	say("closed");
	return 0;
}

/* ---- the parent (server) side ---- */

struct pair {
	char name[64];
	struct duet_link *link;
	struct rpmsg_device *rdev;
	struct proc child;
};

/* The server's side of link "trl-<pid>-<tag>". */
static void pair_open(struct pair *p, const char *tag)
{
	snprintf(p->name, sizeof(p->name), "trl-%d-%s", (int)getpid(), tag);
	p->link = open_side(DUET_SERVER, p->name);
	assert_non_null(p->link);
}

/* The proxy child playing `scenario`, up; with_rpmsg: and our device. */
static void pair_child(struct pair *p, const char *scenario, bool with_rpmsg)
{
	proc_start(&p->child, (const char *const[]){ self, "--child", p->name, scenario, NULL });
	assert_true(proc_expect(&p->child, "up", 8000));
	p->rdev = with_rpmsg ? wait_device() : NULL;
	assert_true(!with_rpmsg || p->rdev);
}

static void pair_start(struct pair *p, const char *scenario, bool with_rpmsg)
{
	pair_open(p, scenario);
	pair_child(p, scenario, with_rpmsg);
}

static void pair_stop(struct pair *p)
{
	assert_true(proc_expect(&p->child, "done", 30000));
	proc_send(&p->child, "quit\n");
	close_side(p->link);
	/* Generous: sanitizer builds on a loaded machine are slow to tear down. */
	assert_int_equal(proc_wait(&p->child, 20000), 0);
}

/* The child "ns" (child_ns) and the server announce to each other, bind,
 * talk and unbind. */
static void name_service_both_ways(struct pair *p)
{
	struct box s, t;

	/* Ours announces; the proxy binds from its listener and writes first. */
	assert_int_equal(box_open(&s, p->rdev, "from-server", RPMSG_ADDR_ANY), 0);
	assert_true(until(got_one, &s, 5000));
	assert_string_equal(s.last, "hello from proxy");
	assert_true(rpmsg_is_ept_ready(&s.ept));
	assert_int_equal(rpmsg_send(&s.ept, "hello from server", 18), 18);
	rpmsg_destroy_ept(&s.ept);
	assert_true(proc_expect(&p->child, "server-destroy-seen", 5000));
	/* Theirs announces; our listener is offered it; we bind and talk. */
	atomic_store(&offered_addr, 0);
	assert_int_equal(rpmsg_register_callback(&t, NULL, NULL, match_any, bind_any), 0);
	assert_true(until(was_offered, NULL, 5000));
	assert_string_equal(offered, "from-proxy");
	assert_int_equal(box_open(&t, p->rdev, offered, atomic_load(&offered_addr)), 0);
	assert_int_equal(rpmsg_send(&t.ept, "hello from server", 18), 18);
	assert_true(until(got_one, &t, 5000));
	assert_string_equal(t.last, "hello from proxy");
	proc_send(&p->child, "destroy\n");
	assert_true(until(got_unbind, &t, 5000));
	assert_false(rpmsg_is_ept_ready(&t.ept));
	rpmsg_destroy_ept(&t.ept);
	rpmsg_unregister_callback(&t);
}

static void test_name_service_both_ways(void **state)
{
	struct pair p;

	(void)state;
	pair_start(&p, "ns", true);
	name_service_both_ways(&p);
	pair_stop(&p);
}

/*
 * A proxy killed after its devices began on the server's rings but before
 * it said it was up: the server must see it went and start its devices
 * over, and the next proxy then works. Before session 45 a proxy said
 * nothing in the header until it was up, the server never knew, and the
 * next proxy's device started over rings the dead one had half used:
 * what it sent the server was lost, and the ring soon failed for good
 * (status 0x8f; scripts/soak.py found it, one run in three).
 */
static void test_proxy_killed_as_its_devices_start(void **state)
{
	struct pair p;
	struct proc dying;

	(void)state;
	pair_open(&p, "dying");
	proc_start(&dying, (const char *const[]){ self, "--child", p.name, "dies-attaching", NULL });
	assert_int_equal(proc_wait(&dying, 10000), 0);
	assert_true(proc_expect(&dying, "dying", 0));
	/* The next proxy attaches once the server has started over, so the
	 * device found here is the new one. */
	pair_child(&p, "ns", true);
	name_service_both_ways(&p);
	pair_stop(&p);
}

static void test_endpoint_churn_both_ways(void **state)
{
	struct box keep;
	struct pair p;
	char dump[4096];

	(void)state;
	pair_start(&p, "churn", true);
	assert_int_equal(box_open(&keep, p.rdev, "churn", RPMSG_ADDR_ANY), 0);
	proc_send(&p.child, "go\n");
	assert_true(proc_expect(&p.child, "churned", 60000));
	/* 10,000 creates and destroys from the proxy: ours ends unbound. */
	assert_true(until(got_unbind, &keep, 5000));
	assert_true(until(unready, &keep.ept, 5000));
	rpmsg_destroy_ept(&keep.ept);
	assert_true(proc_expect(&p.child, "kept", 5000));
	for (int i = 0; i < 10000; i++) {
		struct rpmsg_endpoint e;

		assert_int_equal(rpmsg_create_ept(&e, p.rdev, "churn-back", RPMSG_ADDR_ANY,
						  RPMSG_ADDR_ANY, box_cb, NULL), 0);
		rpmsg_destroy_ept(&e);
	}
	/* One more that stays long enough to say something, then goes. */
	assert_int_equal(box_open(&keep, p.rdev, "churn-back", RPMSG_ADDR_ANY), 0);
	assert_true(until(ready, &keep.ept, 5000));
	assert_int_equal(rpmsg_send(&keep.ept, "still", 6), 6);
	rpmsg_destroy_ept(&keep.ept);
	proc_send(&p.child, "churned\n");
	rpmsg_dump(p.rdev, dump, sizeof(dump));
	assert_null(strstr(dump, "ept churn"));
	pair_stop(&p);
}

/* A proxy ("exhaust") that holds whatever we send, and our "sink"
 * endpoint to it with every send buffer sent: RING of them, then -EAGAIN. */
static void fill_the_holder(struct pair *p, struct box *sink)
{
	pair_start(p, "exhaust", true);
	assert_int_equal(box_open(sink, p->rdev, "sink", RPMSG_ADDR_ANY), 0);
	assert_true(proc_expect(&p->child, "holding", 5000));
	assert_true(until(ready, &sink->ept, 5000));
	assert_int_equal(fill_up(&sink->ept), RING);
}

static void test_tx_exhaustion_both_ways(void **state)
{
	struct box sink;
	struct pair p;
	uint64_t t0, dt;

	(void)state;
	fill_the_holder(&p, &sink);
	rpmsg_set_send_timeout(p.rdev, 300);
	t0 = duet_clock_ms();
	assert_int_equal(rpmsg_send(&sink.ept, "late", 5), -ETIMEDOUT);
	dt = duet_clock_ms() - t0;
	assert_true(dt >= 300 && dt < 3000);
	/* A blocking send returns once the proxy lets go, 200 ms from now:
	 * woken by its notification, not after the 5 s timeout. */
	rpmsg_set_send_timeout(p.rdev, 5000);
	proc_send(&p.child, "release-later\n");
	t0 = duet_clock_ms();
	assert_int_equal(rpmsg_send(&sink.ept, "woken", 6), 6);
	dt = duet_clock_ms() - t0;
	print_message("driver side: blocking send woken after %u ms\n", (unsigned int)dt);
	assert_true(dt >= 150 && dt < 2000);
	/* The other way: we hold; the proxy fills up, times out, then waits. */
	atomic_store(&sink.hold, true);
	proc_send(&p.child, "your-turn\n");
	assert_true(proc_expect(&p.child, "filled 8", 5000));
	assert_true(proc_expect(&p.child, "timeout -110", 5000));
	assert_true(proc_expect(&p.child, "blocking", 5000));
	nap(200);
	box_release(&sink);
	assert_true(proc_expect(&p.child, "sent 6 after", 5000));
	proc_send(&p.child, "bye\n");
	rpmsg_destroy_ept(&sink.ept);
	pair_stop(&p);
}

/* A send of the server's, asleep for a buffer (the proxy holds them all),
 * when the proxy is killed: the link's watch notices and removes the
 * device, and the send returns -ENODEV then, not at its 5 s timeout, with
 * no access to the freed rings (ASan). The endpoint outlives the device
 * and its destroy frees the rest. */
static void test_send_asleep_when_the_peer_dies(void **state)
{
	struct timed_send bs = { 0 };
	struct box sink;
	struct pair p;
	pthread_t t;

	(void)state;
	fill_the_holder(&p, &sink);
	bs.ept = &sink.ept;
	assert_int_equal(pthread_create(&t, NULL, timed_send, &bs), 0);
	nap(200);
	proc_kill9(&p.child);
	pthread_join(t, NULL);
	print_message("send asleep when the proxy died: %d after %u ms\n", bs.ret,
		      (unsigned int)bs.ms);
	assert_int_equal(bs.ret, -ENODEV);
	assert_true(bs.ms < 3000);
	assert_int_equal(rpmsg_send(&sink.ept, "x", 2), -ENODEV);
	rpmsg_destroy_ept(&sink.ept);
	close_side(p.link);
	proc_wait(&p.child, 20000);
}

static bool relaying(void *arg)
{
	return atomic_load(&((struct box *)arg)->relaying);
}

static bool relayed(void *arg)
{
	return atomic_load(&((struct box *)arg)->relayed);
}

enum going { KILLED, LEFT, ASKS_RESET };

/* A receive callback's send, waiting for a buffer (the proxy holds them
 * all) on the link's own thread when the proxy is killed, leaves, or asks
 * for a reset of the device (NEEDS_RESET, as when a ring broke on its
 * side: it gives nothing more back). That thread is the one whose watch
 * would see the proxy go, or whose peer check would reset the device: the
 * send asks the transport whether the peer is gone and returns -ENODEV at
 * once, rather than -ETIMEDOUT after 5 s (and again 5 s for each message
 * stashed behind it; before session 47, so for a reset, which the scribble
 * soak found). */
static void callback_send_when_the_peer_goes(enum going how)
{
	static const char *const said[] = { "died", "left", "asked for a reset" };
	struct box sink;
	struct pair p;

	pair_start(&p, "holder", true);
	assert_int_equal(box_open(&sink, p.rdev, "sink", RPMSG_ADDR_ANY), 0);
	assert_true(proc_expect(&p.child, "holding", 5000));
	assert_true(until(ready, &sink.ept, 5000));
	assert_int_equal(fill_up(&sink.ept), RING);
	atomic_store(&sink.relay, true);
	proc_send(&p.child, "send\n"); /* its messages come to our sink */
	assert_true(until(relaying, &sink, 5000));
	nap(200);
	assert_false(atomic_load(&sink.relayed)); /* still waiting */
	if (how == KILLED)
		proc_kill9(&p.child);
	else
		proc_send(&p.child, how == LEFT ? "quit\n" : "needs-reset\n");
	assert_true(until(relayed, &sink, 10000));
	print_message("callback's send when the proxy %s: %d after %u ms\n", said[how],
		      atomic_load(&sink.relay_ret), atomic_load(&sink.relay_ms));
	assert_int_equal(atomic_load(&sink.relay_ret), -ENODEV);
	assert_true(atomic_load(&sink.relay_ms) < 3000);
	rpmsg_destroy_ept(&sink.ept);
	if (how == ASKS_RESET)
		proc_send(&p.child, "quit\n");
	close_side(p.link);
	if (how == KILLED)
		proc_wait(&p.child, 20000);
	else
		assert_int_equal(proc_wait(&p.child, 20000), 0);
}

static void test_callback_send_when_the_peer_dies(void **state)
{
	(void)state;
	callback_send_when_the_peer_goes(KILLED);
}

static void test_callback_send_when_the_peer_leaves(void **state)
{
	(void)state;
	callback_send_when_the_peer_goes(LEFT);
}

static void test_callback_send_when_the_peer_asks_for_a_reset(void **state)
{
	(void)state;
	callback_send_when_the_peer_goes(ASKS_RESET);
}

static void test_hostile_device_input(void **state)
{
	struct rpmsg_stats st0, st;
	struct box v;
	struct pair p;
	char line[64];

	(void)state;
	pair_start(&p, "hostile-device", true);
	rpmsg_get_stats(p.rdev, &st0);
	assert_int_equal(box_open(&v, p.rdev, "victim", RPMSG_ADDR_ANY), 0);
	snprintf(line, sizeof(line), "victim %u\n", v.ept.addr);
	proc_send(&p.child, line);
	assert_true(proc_expect(&p.child, "sent", 30000));
	assert_true(until(got_one, &v, 5000));
	/* Only the good message came through, and every bad one is counted. */
	assert_int_equal(v.count, 1);
	assert_string_equal(v.last, "after");
	rpmsg_get_stats(p.rdev, &st);
	assert_int_equal(st.dropped_len - st0.dropped_len, 3);
	assert_int_equal(st.dropped_dst - st0.dropped_dst, 10001);
	assert_int_equal(st.dropped_ns - st0.dropped_ns, 3);
	proc_send(&p.child, "bye\n");
	rpmsg_destroy_ept(&v.ept);
	pair_stop(&p);
}

/* A raw driver-side rpmsg, for the hostile-driver test. */
static _Atomic(struct virtio_device *) raw_vdev;
/* The test uses the queues from its own thread; removal, on the link's
 * thread when the peer goes, waits until it is done with them. */
static pthread_mutex_t raw_lock = PTHREAD_MUTEX_INITIALIZER;

static int raw_driver_probe(struct virtio_device *vdev)
{
	const char *names[] = { "rx", "tx" };
	vq_callback cbs[] = { raw_cb, raw_cb };
	void *args[] = { NULL, NULL };
	int ret = virtio_negotiate_features(vdev, 1u << VIRTIO_RPMSG_F_NS, NULL);

	if (ret == 0)
		ret = virtio_create_virtqueues(vdev, 0, 2, names, cbs, args);
	if (ret == 0)
		atomic_store(&raw_vdev, vdev);
	return ret;
}

static void raw_driver_remove(struct virtio_device *vdev)
{
	pthread_mutex_lock(&raw_lock);
	atomic_store(&raw_vdev, NULL);
	virtio_delete_virtqueues(vdev);
	pthread_mutex_unlock(&raw_lock);
}

static struct virtio_driver raw_driver = {
	.device = VIRTIO_ID_RPMSG, .probe = raw_driver_probe, .remove = raw_driver_remove,
	.name = "raw",
};

/* Post one buffer (or a chain of two) to the proxy's receive queue. */
static void raw_post(struct virtqueue *vq, struct virtqueue_buf *vb, int readable, int writable)
{
	assert_int_equal(virtqueue_add_buffer(vq, vb, readable, writable, vb[0].buf), 0);
	virtqueue_kick(vq);
}

static void *raw_msg(uint32_t src, uint32_t dst, uint16_t len, const char *payload)
{
	uint8_t *b = virtio_alloc_buf(atomic_load(&raw_vdev), 512, 16);
	struct raw_hdr h = { src, dst, 0, len, 0 };

	assert_non_null(b);
	memcpy(b, &h, sizeof(h));
	memcpy(b + sizeof(h), payload, strlen(payload) + 1);
	return b;
}

static void test_hostile_driver_input(void **state)
{
	struct virtqueue *to_dev, *from_dev;
	unsigned int len_, dst_, ns_, other_;
	struct virtqueue_buf vb[2];
	unsigned int victim;
	struct pair p;
	char *line;
	uint32_t len;
	void *b;

	(void)state;
	virtio_unregister_driver(&virtio_rpmsg_driver);
	assert_int_equal(virtio_register_driver(&raw_driver), 0);
	pair_start(&p, "victim", false);
	for (int i = 0; i < 2500 && !atomic_load(&raw_vdev); i++)
		nap(2);
	pthread_mutex_lock(&raw_lock);
	assert_non_null(atomic_load(&raw_vdev));
	from_dev = atomic_load(&raw_vdev)->vrings_info[0].vq;
	to_dev = atomic_load(&raw_vdev)->vrings_info[1].vq;
	assert_true(proc_expect(&p.child, "victim ", 5000));
	line = p.child.buf + p.child.cursor;
	assert_int_equal(sscanf(line, "%u", &victim), 1);
	/* Receive buffers for the proxy's sends: first one it cannot use
	 * (readable), then a tiny one, then two good ones: the first takes the
	 * announcement the proxy queued at probe, when there were none. */
	vb[0] = (struct virtqueue_buf){ virtio_alloc_buf(atomic_load(&raw_vdev), 512, 16), 512, false };
	raw_post(from_dev, vb, 1, 0);
	vb[0] = (struct virtqueue_buf){ virtio_alloc_buf(atomic_load(&raw_vdev), 512, 16), 8, true };
	raw_post(from_dev, vb, 0, 1);
	vb[0] = (struct virtqueue_buf){ virtio_alloc_buf(atomic_load(&raw_vdev), 512, 16), 512, true };
	raw_post(from_dev, vb, 0, 1);
	vb[0] = (struct virtqueue_buf){ virtio_alloc_buf(atomic_load(&raw_vdev), 512, 16), 512, true };
	raw_post(from_dev, vb, 0, 1);
	/* Messages to the proxy, one bad in each way, then a good one. */
	vb[0] = (struct virtqueue_buf){ raw_msg(2000, victim, 5, "evil"), 512, true };
	raw_post(to_dev, vb, 0, 1); /* writable: not a message */
	vb[0] = (struct virtqueue_buf){ raw_msg(2000, victim, 5, "evil"), 256, false };
	vb[1] = (struct virtqueue_buf){ virtio_alloc_buf(atomic_load(&raw_vdev), 256, 16), 256, false };
	raw_post(to_dev, vb, 2, 0); /* a chain */
	vb[0] = (struct virtqueue_buf){ raw_msg(2000, victim, 600, "evil"), 512, false };
	raw_post(to_dev, vb, 1, 0); /* length past the buffer */
	vb[0] = (struct virtqueue_buf){ raw_msg(2000, victim, 5, "evil"), 10, false };
	raw_post(to_dev, vb, 1, 0); /* shorter than a header */
	vb[0] = (struct virtqueue_buf){ raw_msg(2000, 4000, 5, "evil"), 512, false };
	raw_post(to_dev, vb, 1, 0); /* nobody there */
	vb[0] = (struct virtqueue_buf){ raw_msg(2000, victim, 6, "after"), 512, false };
	raw_post(to_dev, vb, 1, 0);
	/* The proxy answers into the good buffer, then reports its drops. */
	assert_true(proc_expect(&p.child, "stats ", 10000));
	line = p.child.buf + p.child.cursor;
	assert_int_equal(sscanf(line, "len %u dst %u ns %u other %u", &len_, &dst_, &ns_, &other_), 4);
	assert_int_equal(len_, 2);
	assert_int_equal(dst_, 1);
	assert_int_equal(ns_, 0);
	assert_int_equal(other_, 4); /* writable, chain, readable rx buffer, tiny rx buffer */
	/* The ping service's announcement found no buffer at probe: queued. */
	assert_true(proc_expect(&p.child, "deferred 1", 5000));
	/* First the queued announcement, then the reply. */
	for (int n = 0; n < 2; n++) {
		b = NULL;
		for (int i = 0; i < 2000 && !b; i++) {
			b = virtqueue_get_buffer(from_dev, &len, NULL);
			if (b && len == 0)
				b = NULL; /* one it gave back unused */
			if (!b)
				nap(1);
		}
		assert_non_null(b);
		if (n == 0) {
			struct raw_hdr h;

			memcpy(&h, b, sizeof(h));
			assert_int_equal(h.dst, RPMSG_NS_EPT_ADDR);
			assert_int_equal(len, 16 + RPMSG_NAME_SIZE + 8);
			assert_string_equal((char *)b + 16, RPMSG_PING_NAME);
		} else {
			assert_int_equal(len, 16 + 6);
			assert_string_equal((char *)b + 16, "reply");
		}
	}
	pthread_mutex_unlock(&raw_lock);
	proc_send(&p.child, "bye\n");
	pair_stop(&p);
	virtio_unregister_driver(&raw_driver);
	assert_int_equal(virtio_register_driver(&virtio_rpmsg_driver), 0);
}

struct pump {
	struct duet_link *link;
	_Atomic bool stop;
	bool forever;          /* wait without a timeout; stopped by duet_link_wake */
	/* 0: wait only; -1: poll only (duet_link_poll, never waiting); n > 0:
	 * poll a burst of up to n looks (its length varies), then wait. */
	int poll;
	_Atomic unsigned turns; /* waits that returned */
	unsigned mark;          /* turns at a point a test looks from */
};

static void *pump_main(void *arg)
{
	struct pump *pm = arg;
	unsigned int burst = 0;

	while (!atomic_load(&pm->stop)) {
		if (pm->poll < 0) {
			duet_link_poll(pm->link);
			continue;
		}
		/* Bursts of 0 .. poll-1 looks: the switch to waiting falls at
		 * every point of the peer's send. */
		burst = pm->poll ? (burst * 7u + 3u) % (unsigned int)pm->poll : 0;
		for (unsigned int i = 0; i < burst && !atomic_load(&pm->stop); i++)
			duet_link_poll(pm->link);
		/* Still saying it polls, but not looking: what the peer sends
		 * now is not rung for, and the wait must find it. */
		if (burst)
			nap(1);
		duet_link_wait(pm->link, pm->forever ? DUET_LINK_FOREVER : 10);
		atomic_fetch_add(&pm->turns, 1);
	}
	return NULL;
}

static int echo_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	(void)src;
	(void)priv;
	rpmsg_send(ept, data, (int)len);
	return 0;
}

static bool until_peer(struct duet_link *l, bool up, unsigned int ms)
{
	for (unsigned int waited = 0; duet_link_peer_up(l) != up; waited += 5) {
		if (waited >= ms)
			return false;
		nap(5);
	}
	return true;
}

/* Echo, but answer "rung?" with how many doorbell rings this side sent. */
static struct duet_link *echo_link;

static int echo_stats_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src,
			 void *priv)
{
	if (len == 6 && !memcmp(data, "rung?", 6)) {
		char r[32];
		uint32_t rung, wakes;

		duet_link_stats(echo_link, &rung, &wakes);
		snprintf(r, sizeof(r), "rung %u", rung);
		rpmsg_send(ept, r, (int)strlen(r) + 1);
		return 0;
	}
	return echo_cb(ept, data, len, src, priv);
}

/* Echo, but sink "s:<i>" messages (a one-way stream: counted and their
 * order checked, no answer) and answer "backoffs?" with this side's
 * duet_link_backoffs, the sunk count and how many came out of order. */
static unsigned int sunk, last_sunk, misordered;

static int sink_stats_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src,
			 void *priv)
{
	if (len >= 3 && len < 16 && !memcmp(data, "s:", 2)) {
		char text[16];
		unsigned long i;

		memcpy(text, data, len);
		text[len - 1] = '\0';
		i = strtoul(text + 2, NULL, 10);
		/* Each run numbers from 0: anything else must follow the last. */
		if (i != 0 && i != (unsigned long)last_sunk + 1)
			misordered++;
		last_sunk = (unsigned int)i;
		sunk++;
		return 0;
	}
	if (len == 10 && !memcmp(data, "backoffs?", 10)) {
		char r[64];

		snprintf(r, sizeof(r), "backoffs %u sunk %u misordered %u prefetches %u",
			 duet_link_backoffs(echo_link), sunk, misordered,
			 duet_rptun_prefetches(duet_link_rptun(echo_link)));
		rpmsg_send(ept, r, (int)strlen(r) + 1);
		return 0;
	}
	return echo_stats_cb(ept, data, len, src, priv);
}

/* The end of a pumped child: on "quit" or when the server is gone (hear()
 * returns at once on a closed stdin: a parent that failed must not leave
 * this child spinning), stop the pump thread `t` (NULL: none), close. */
static int child_end(struct pump *pm, pthread_t *t, struct rpmsg_endpoint *ept)
{
	while (duet_link_peer_up(pm->link) && strcmp(hear(100), "quit"))
		;
	if (t) {
		atomic_store(&pm->stop, true);
		CHECK(duet_link_wake(pm->link) == 0);
		pthread_join(*t, NULL);
	}
	rpmsg_destroy_ept(ept);
	close_side(pm->link);
	say("closed");
	return 0;
}

/*
 * The child of the polling tests, echoing on endpoint "polled": a proxy on
 * a user loop that polls ("poll-loop"), mixes polling bursts with waits
 * without a timeout ("mixed-loop"), or only waits, spinning 20 us first
 * ("hybrid-loop"); or served by its service thread, spinning 50 us
 * ("service-spin"); or, with poll_backoff_us 200 and sinking one-way
 * messages too, a user loop that polls ("backoff-loop") or waits spinning
 * 5 ms first ("backoff-hybrid-loop").
 */
static int child_poll_loop(const char *name, const char *scenario)
{
	bool user = strcmp(scenario, "service-spin") != 0;
	bool backoff = !strncmp(scenario, "backoff-", 8);
	bool hybrid = !strcmp(scenario, "backoff-hybrid-loop");
	struct duet_link_config cfg = {
		.name = name, .side = DUET_PROXY, .user_loop = user,
		.spin_us = !strcmp(scenario, "hybrid-loop") ? 20 : hybrid ? 5000 : user ? 0 : 50,
		.poll_backoff_us = backoff ? 200 : 0,
	};
	static struct pump pm = { .forever = true };
	static struct rpmsg_endpoint ept;
	struct rpmsg_device *rdev;
	char err[256];
	pthread_t t;

	pm.poll = !strcmp(scenario, "poll-loop") || (backoff && !hybrid) ? -1
		  : !strcmp(scenario, "mixed-loop")       ? 64
							  : 0;
	CHECK(vhost_register_driver(&vhost_rpmsg_driver) == 0);
	CHECK(duet_link_open(&pm.link, &cfg, 5000, err, sizeof(err)) == 0);
	echo_link = pm.link;
	CHECK(!user || pthread_create(&t, NULL, pump_main, &pm) == 0);
	rdev = wait_device();
	CHECK(rdev != NULL);
	CHECK(rpmsg_create_ept(&ept, rdev, "polled", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
			       backoff ? sink_stats_cb : echo_stats_cb, NULL) == 0);
	say("up");
	return child_end(&pm, user ? &t : NULL, &ept);
}

static bool got_more(void *arg)
{
	struct box *b = arg;

	return atomic_load(&b->count) > b->mark;
}

/* Send `msg` on b and wait for the answer; false when none came in 3 s. */
static bool ask(struct box *b, const char *msg)
{
	b->mark = atomic_load(&b->count);
	return rpmsg_send(&b->ept, msg, (int)strlen(msg) + 1) == (int)strlen(msg) + 1 &&
	       until(got_more, b, 3000);
}

/* n questions "m0".. on b, each answered with itself; pause_ms before each. */
static void echoes(struct box *b, int n, unsigned int pause_ms)
{
	for (int i = 0; i < n; i++) {
		char msg[16];

		snprintf(msg, sizeof(msg), "m%d", i);
		if (pause_ms)
			nap(pause_ms);
		assert_true(ask(b, msg));
		assert_string_equal(b->last, msg);
	}
}

/* The pair polled_pair started and polled_pair_end has not ended (their
 * callers keep pm, child and b static, so they outlive a failed test): a
 * test that fails in between leaves it to pair_teardown, or its pump
 * thread and child would run on into the next test. */
static struct {
	struct pump *pm;
	pthread_t t;
	struct proc *child;
	struct box *b; /* once its endpoint exists */
} live_pair;

static int pair_teardown(void **state)
{
	char err[256];

	(void)state;
	if (!live_pair.pm)
		return 0;
	if (live_pair.b)
		rpmsg_destroy_ept(&live_pair.b->ept);
	proc_kill9(live_pair.child);
	proc_wait(live_pair.child, 5000);
	atomic_store(&live_pair.pm->stop, true);
	duet_link_wake(live_pair.pm->link);
	pthread_join(live_pair.t, NULL);
	duet_link_close(live_pair.pm->link, 1000, err, sizeof(err));
	memset(&live_pair, 0, sizeof(live_pair));
	return 0;
}

/* Start a proxy child in `scenario` and a server user loop pumped as `poll`
 * says, with a bound endpoint "polled" on b. */
static void polled_pair(struct pump *pm, pthread_t *t, struct proc *child, struct box *b,
			const char *scenario, int poll)
{
	struct duet_link_config cfg = {
		.side = DUET_SERVER, .user_loop = true, .vdevs = vdevs, .num_vdevs = 1,
	};
	static char name[64];
	char err[256];
	struct rpmsg_device *rdev;

	snprintf(name, sizeof(name), "trl-%d-%s", (int)getpid(), scenario);
	cfg.name = name;
	if (!strncmp(scenario, "backoff-", 8))
		cfg.vdevs = vdevs64;
	*pm = (struct pump){ .forever = true, .poll = poll };
	assert_int_equal(duet_link_open(&pm->link, &cfg, 5000, err, sizeof(err)), 0);
	assert_int_equal(pthread_create(t, NULL, pump_main, pm), 0);
	proc_start(child, (const char *const[]){ self, "--child", name, scenario, NULL });
	live_pair.pm = pm;
	live_pair.t = *t;
	live_pair.child = child;
	assert_true(proc_expect(child, "up", 8000));
	rdev = wait_device();
	assert_non_null(rdev);
	assert_int_equal(box_open(b, rdev, "polled", RPMSG_ADDR_ANY), 0);
	live_pair.b = b;
	assert_true(until(ready, &b->ept, 5000));
}

static void polled_pair_end(struct pump *pm, pthread_t t, struct proc *child, struct box *b)
{
	char err[256];

	rpmsg_destroy_ept(&b->ept);
	live_pair.b = NULL;
	proc_send(child, "quit\n");
	assert_true(proc_expect(child, "closed", 5000));
	atomic_store(&pm->stop, true);
	assert_int_equal(duet_link_wake(pm->link), 0);
	pthread_join(t, NULL);
	memset(&live_pair, 0, sizeof(live_pair));
	duet_link_close(pm->link, 3000, err, sizeof(err));
	assert_int_equal(proc_wait(child, 20000), 0);
}

/*
 * Both user loops poll (duet_link_poll): each looks at its rings, says so
 * in its doorbell, and the other stops ringing. 500 round trips then cost
 * no doorbell ring either way, and every echo comes.
 */
static void test_polling_loops_ring_no_doorbell(void **state)
{
	static struct pump pm; /* static: see live_pair */
	static struct proc child;
	static struct box b;
	uint32_t rung0, rung1, wakes;
	unsigned int peer0, peer1;
	pthread_t t;

	(void)state;
	polled_pair(&pm, &t, &child, &b, "poll-loop", -1);
	assert_true(ask(&b, "warm"));
	duet_link_stats(pm.link, &rung0, &wakes);
	assert_true(ask(&b, "rung?"));
	assert_int_equal(sscanf(b.last, "rung %u", &peer0), 1);
	echoes(&b, 500, 0);
	assert_true(ask(&b, "rung?"));
	assert_int_equal(sscanf(b.last, "rung %u", &peer1), 1);
	duet_link_stats(pm.link, &rung1, &wakes);
	assert_int_equal(rung1 - rung0, 0);
	assert_int_equal(peer1 - peer0, 0);
	polled_pair_end(&pm, t, &child, &b);
}

/* The polled child's backoff count and the one-way messages it sank. */
static void backoffs_of(struct box *b, unsigned int *backoffs, unsigned int *got)
{
	assert_true(ask(b, "backoffs?"));
	assert_int_equal(sscanf(b->last, "backoffs %u sunk %u", backoffs, got), 2);
}

/* n echoes with up to `window` of them in flight: both directions stream
 * at once, as a pipeline of requests does. */
static void windowed_echoes(struct box *b, int n, int window)
{
	int base = atomic_load(&b->count), sent = 0, got = 0;
	uint64_t end = duet_clock_ms() + 30000;

	while (got < n && duet_clock_ms() < end) {
		if (sent < n && sent - got < window && rpmsg_trysend(&b->ept, "w", 2) == 2)
			sent++;
		else
			sched_yield(); /* the pump thread answers on this CPU too */
		got = atomic_load(&b->count) - base;
	}
	assert_int_equal(got, n);
}

/* Send `n` one-way messages "s:<i>" to the child, a sleep of `gap_us`
 * between them (asleep, not spinning: the child needs a CPU to keep up). */
static void one_way(struct box *b, int n, unsigned int gap_us)
{
	for (int i = 0; i < n; i++) {
		struct timespec ts = { gap_us / 1000000u, (long)(gap_us % 1000000u) * 1000L };
		char msg[16];

		snprintf(msg, sizeof(msg), "s:%d", i);
		assert_int_equal(rpmsg_send(&b->ept, msg, (int)strlen(msg) + 1), (int)strlen(msg) + 1);
		nanosleep(&ts, NULL);
	}
}

/*
 * poll_backoff_us: a polling side waits after an empty look only while a
 * dense stream just comes in. The child in `scenario` polls with a 200 us
 * backoff. 300 echoes (it answers each in the look that received it) make
 * it wait not once; nor do 20,000 with 32 in flight, whose looks answer
 * what they take too, though many find their messages taken by the pass
 * of the look before (counted as looks that took work, they made it wait,
 * 0.006 times per echo in bench_rpmsg duplex); one-way messages 4 ms
 * apart (each taken by a look of its own, most of them with no buffer
 * going back) hardly ever: they are too far apart for a wait to help, it
 * would only make them late; one-way messages 50 us apart (sleeps of
 * 50 us, a little longer in practice) make it wait, but only now and
 * then: a wait collects too few of them to be worth its delay. Every
 * message arrives. (The rule itself is tested on made-up timelines in
 * test_port.)
 */
static void backs_off_only_for_one_way_traffic(const char *scenario)
{
	unsigned int back0, back1, back2, back3, got0, got1, got2, got3;
	static struct pump pm; /* static: see live_pair */
	static struct proc child;
	static struct box b;
	pthread_t t;

	polled_pair(&pm, &t, &child, &b, scenario, -1);
	assert_true(ask(&b, "warm"));
	backoffs_of(&b, &back0, &got0);
	echoes(&b, 300, 0);
	backoffs_of(&b, &back1, &got1);
	assert_int_equal(back1, back0);
	windowed_echoes(&b, 20000, 32);
	backoffs_of(&b, &back1, &got1);
	assert_int_equal(back1, back0);
	one_way(&b, 50, 4000);
	backoffs_of(&b, &back2, &got2);
	assert_int_equal(got2 - got1, 50);
	/* Most would wait once without the density rule; a loaded machine
	 * that stalls the child may still bunch a few. */
	assert_true(back2 - back1 <= 10);
	/* A child descheduled for long stretches takes the stream in big
	 * batches, giving buffers back each time, and rightly never waits:
	 * up to five tries for a stretch where it keeps up. */
	for (int i = 0; i < 5; i++) {
		one_way(&b, 400, 50);
		backoffs_of(&b, &back3, &got3);
		assert_int_equal(got3 - got2, 400);
		got2 = got3;
		if (back3 > back2)
			break;
	}
	assert_true(back3 > back2);
	/* But each wait collects only about four messages: too few for one
	 * per microsecond waited, so the stream counts as paced and is held
	 * off, longer each time: about 5 waits. Waiting on with it (a build
	 * without the hold) costs a wait per two messages, about 200. */
	assert_true(back3 - back2 <= 40);
	polled_pair_end(&pm, t, &child, &b);
}

/*
 * Bursts (rpmsg_trysend_burst, 32 a call) between two processes: 3,000
 * one-way messages, each burst retried from where the ring filled up, all
 * arrive in order at a child that polls with backoff or, in the hybrid
 * loop, sleeps after a 5 ms spin (the notification at the end of a burst
 * wakes it).
 */
static void bursts_cross_the_link_in_order(const char *scenario)
{
	static char text[3000][12];
	static struct pump pm; /* static: see live_pair */
	static struct proc child;
	static struct box b;
	const void *datas[3000];
	int lens[3000];
	unsigned int back0, back1, got0, got1, bad;
	pthread_t t;

	for (int i = 0; i < 3000; i++) {
		snprintf(text[i], sizeof(text[i]), "s:%d", i);
		datas[i] = text[i];
		lens[i] = (int)strlen(text[i]) + 1;
	}
	polled_pair(&pm, &t, &child, &b, scenario, -1);
	assert_true(ask(&b, "warm"));
	backoffs_of(&b, &back0, &got0);
	for (int sent = 0, tries = 0; sent < 3000; tries++) {
		int n = 3000 - sent < 32 ? 3000 - sent : 32;
		int ret = rpmsg_trysend_burst(&b.ept, datas + sent, lens + sent, n);

		assert_true(tries < 1000000);
		if (ret == -EAGAIN) {
			nap(0);
			continue;
		}
		assert_true(ret > 0 && ret <= n);
		sent += ret;
	}
	/* The question goes as a burst of its own once the hybrid child has
	 * gone to sleep: only the burst's notification can wake it. */
	nap(20);
	b.mark = atomic_load(&b.count);
	assert_int_equal(rpmsg_trysend_burst(&b.ept, (const void *const[]){ "backoffs?" },
					     (const int[]){ 10 }, 1),
			 1);
	assert_true(until(got_more, &b, 3000));
	assert_int_equal(sscanf(b.last, "backoffs %u sunk %u misordered %u", &back1, &got1, &bad),
			 3);
	assert_int_equal(got1 - got0, 3000);
	assert_int_equal(bad, 0);
	polled_pair_end(&pm, t, &child, &b);
}

static void test_bursts_cross_the_link_in_order(void **state)
{
	(void)state;
	bursts_cross_the_link_in_order("backoff-loop");
}

static void test_bursts_wake_a_sleeping_receiver(void **state)
{
	(void)state;
	bursts_cross_the_link_in_order("backoff-hybrid-loop");
}

static void test_polling_backs_off_only_for_one_way_traffic(void **state)
{
	(void)state;
	backs_off_only_for_one_way_traffic("backoff-loop");
}

/* The same in the spin of a hybrid wait (duet_link_wait, 5 ms spin). */
static void test_hybrid_spin_backs_off_only_for_one_way_traffic(void **state)
{
	(void)state;
	backs_off_only_for_one_way_traffic("backoff-hybrid-loop");
}

/* The polled child's prefetching spells (duet_rptun_prefetches). */
static unsigned int prefetches_of(struct box *b)
{
	unsigned int back, got, bad, spells;

	assert_true(ask(b, "backoffs?"));
	assert_int_equal(sscanf(b->last, "backoffs %u sunk %u misordered %u prefetches %u", &back,
				&got, &bad, &spells),
			 4);
	return spells;
}

/*
 * A polling side prefetches the buffer its peer most likely fills next
 * when the peer is not writing it yet: after this side answered, or once
 * the peer has been quiet for RVDEV_QUIET_LOOKS looks (some microseconds).
 * The child polls; each of 300 echoes, answered in the look that took it,
 * starts a spell of prefetching looks, ended by the next question (nearly
 * every one: a child descheduled right after answering may find the next
 * question at its next look): 301 counted. So does each of 50 one-way
 * messages 10 ms apart, by the quiet before it: 51 (a build that waits for
 * an answer only: 7, one per batch of eight buffers given back). Dense
 * streams, where a prefetch would take from the sender the line it is
 * writing, start spells only at the receiver's batched returns and the
 * sender's pauses: bench_rpmsg stream prints them per message.
 */
static void test_polling_prefetches_after_answers_and_quiet(void **state)
{
	static struct pump pm; /* static: see live_pair */
	static struct proc child;
	static struct box b;
	unsigned int p0, p1, p2;
	pthread_t t;

	(void)state;
	polled_pair(&pm, &t, &child, &b, "backoff-loop", -1);
	assert_true(ask(&b, "warm"));
	p0 = prefetches_of(&b);
	echoes(&b, 300, 0);
	p1 = prefetches_of(&b);
	assert_in_range(p1 - p0, 150, 10000);
	one_way(&b, 50, 10000);
	p2 = prefetches_of(&b);
	/* Half or more: a child starved of CPU (a machine busy with builds)
	 * may take two messages in one look; 40 failed once that way. */
	assert_in_range(p2 - p1, 25, 1000);
	polled_pair_end(&pm, t, &child, &b);
}

/* 300 echoes from a proxy child in `scenario`; the server's loop polls in
 * bursts of 0-63 looks between waits. */
static void echoes_with(const char *scenario)
{
	static struct pump pm; /* static: see live_pair */
	static struct proc child;
	static struct box b;
	pthread_t t;

	polled_pair(&pm, &t, &child, &b, scenario, 64);
	echoes(&b, 300, 0);
	polled_pair_end(&pm, t, &child, &b);
}

/*
 * Both user loops switch between polling bursts and waiting without a
 * timeout, at varying points. A loop that stops polling must hear of
 * everything the peer sent while it did not ring (it looks at its rings
 * once more after saying it no longer polls); a lost message would leave
 * both sides waiting forever and the echo would not come.
 */
static void test_loops_switching_between_poll_and_wait_lose_nothing(void **state)
{
	(void)state;
	echoes_with("mixed-loop");
}

/*
 * A hybrid loop (spin 20 us, then sleep without a timeout) spins by
 * polling its rings, then says it no longer polls and sleeps; a server
 * loop mixing polls and waits talks to it. Every echo comes. (That a
 * spinning side is not rung is timing on a shared machine: bench_rpmsg
 * prints the rings per round trip.)
 */
static void test_hybrid_loop_spins_on_its_rings(void **state)
{
	(void)state;
	echoes_with("hybrid-loop");
}

/*
 * Links served by their service threads, both spinning 50 us before they
 * block: the spin polls the rings (the peer stops ringing), and a thread
 * that stops spinning says so and looks once more. 300 echoes all come.
 * The server looks for each answer only every millisecond, so each
 * question finds the proxy asleep, and the proxy must have said it no
 * longer polls: the server rings it (a proxy asleep while still "polling"
 * would be found only by its 100 ms watch, which the 3 s answer timeout
 * would not notice).
 */
static void test_service_threads_spin_on_their_rings(void **state)
{
	struct duet_link_config cfg = {
		.side = DUET_SERVER, .vdevs = vdevs, .num_vdevs = 1, .spin_us = 50,
	};
	struct rpmsg_device *rdev;
	struct duet_link *l;
	struct proc child;
	char name[64], err[256];
	uint32_t rung0, rung1, wakes;
	struct box b;

	(void)state;
	snprintf(name, sizeof(name), "trl-%d-svcspin", (int)getpid());
	cfg.name = name;
	assert_int_equal(duet_link_open(&l, &cfg, 5000, err, sizeof(err)), 0);
	proc_start(&child, (const char *const[]){ self, "--child", name, "service-spin", NULL });
	assert_true(proc_expect(&child, "up", 8000));
	rdev = wait_device();
	assert_non_null(rdev);
	assert_int_equal(box_open(&b, rdev, "polled", RPMSG_ADDR_ANY), 0);
	assert_true(until(ready, &b.ept, 5000));
	duet_link_stats(l, &rung0, &wakes);
	echoes(&b, 300, 1); /* after each pause the proxy has stopped spinning */
	duet_link_stats(l, &rung1, &wakes);
	/* Some may still find it spinning on a busy machine. */
	assert_true(rung1 - rung0 >= 150);
	rpmsg_destroy_ept(&b.ept);
	proc_send(&child, "quit\n");
	assert_true(proc_expect(&child, "closed", 5000));
	close_side(l);
	assert_int_equal(proc_wait(&child, 20000), 0);
}

/* Where a link's region holds its two doorbells, the server's first
 * (docs/link.md, "The region"). */
#define BELL_OFFSET 1024u
_Static_assert(sizeof(struct duet_doorbell) == 64, "one 64-byte line per doorbell");

/*
 * Leave side `who`'s doorbell as its peer leaves it when killed in the
 * middle of a ring: once the side's loop sleeps on it (armed at seq), seq
 * moved and no wake-up call made. Every ring after that moves seq from a
 * value the loop does not sleep on, and makes no call either.
 */
static void ring_without_waking(const char *name, enum duet_side who)
{
	char path[96];
	struct duet_doorbell *bell;
	uint8_t *map;
	int fd;

	snprintf(path, sizeof(path), "/duet-%s", name);
	fd = shm_open(path, O_RDWR, 0);
	assert_true(fd >= 0);
	map = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	assert_true(map != MAP_FAILED);
	bell = (struct duet_doorbell *)(void *)(map + BELL_OFFSET) + who;
	for (int i = 0; i < 1000 && atomic_load(&bell->armed) != atomic_load(&bell->seq); i++)
		nap(5);
	assert_int_equal(atomic_load(&bell->armed), atomic_load(&bell->seq));
	nap(50); /* from armed to asleep */
	atomic_fetch_add(&bell->seq, 1);
	munmap(map, 4096);
}

/* The servers test_user_loop_waits_forever_through_server_loss has in turn. */
#define USER_LOOP_SERVERS 3

/*
 * The child of test_user_loop_waits_forever_through_server_loss: a proxy
 * whose loop thread waits without a timeout. It echoes on endpoint
 * "user-loop", loses its server, and must serve the next one, and so on.
 */
static int child_user_loop(const char *name)
{
	struct duet_link_config cfg = { .name = name, .side = DUET_PROXY, .user_loop = true };
	static struct pump pm = { .forever = true };
	static struct rpmsg_endpoint ept;
	char err[256];
	pthread_t t;

	CHECK(vhost_register_driver(&vhost_rpmsg_driver) == 0);
	CHECK(duet_link_open(&pm.link, &cfg, 5000, err, sizeof(err)) == 0);
	CHECK(pthread_create(&t, NULL, pump_main, &pm) == 0);
	for (int round = 0;; round++) {
		struct rpmsg_device *rdev = wait_device();

		CHECK(rdev != NULL);
		CHECK(rpmsg_create_ept(&ept, rdev, "user-loop", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
				       echo_cb, NULL) == 0);
		say(round ? "back" : "up");
		if (round == USER_LOOP_SERVERS - 1)
			break;
		CHECK(until_peer(pm.link, false, 10000));
		say("lost");
		rpmsg_destroy_ept(&ept);
		CHECK(until_peer(pm.link, true, 10000));
	}
	return child_end(&pm, &t, &ept);
}

/*
 * A proxy's user loop waits on its doorbell in the shared region, with no
 * timeout. When the server leaves, the loop must be woken, and the region
 * must not be unmapped under it (that faulted); then the proxy attaches
 * to the next server and its loop serves it. Over three servers in turn;
 * the second leaves the proxy's doorbell as a server killed in the middle
 * of a ring would (ring_without_waking), and the proxy's loop must still
 * wake and let go of the region.
 */
static void test_user_loop_waits_forever_through_server_loss(void **state)
{
	struct duet_link *l = NULL;
	struct proc child;
	struct box b;
	char name[64];

	(void)state;
	snprintf(name, sizeof(name), "trl-%d-uloop", (int)getpid());
	for (int round = 0; round < USER_LOOP_SERVERS; round++) {
		struct rpmsg_device *rdev;

		l = open_side(DUET_SERVER, name);
		assert_non_null(l);
		if (!round)
			proc_start(&child, (const char *const[]){ self, "--child", name, "user-loop",
								 NULL });
		assert_true(proc_expect(&child, round ? "back" : "up", 8000));
		rdev = wait_device();
		assert_non_null(rdev);
		assert_int_equal(box_open(&b, rdev, "user-loop", RPMSG_ADDR_ANY), 0);
		assert_true(until(ready, &b.ept, 5000));
		assert_int_equal(rpmsg_send(&b.ept, "echo", 5), 5);
		assert_true(until(got_one, &b, 5000));
		assert_string_equal(b.last, "echo");
		rpmsg_destroy_ept(&b.ept);
		if (round < USER_LOOP_SERVERS - 1) {
			if (round == 1)
				ring_without_waking(name, DUET_PROXY);
			close_side(l);
			assert_true(proc_expect(&child, "lost", 5000));
		}
	}
	proc_send(&child, "quit\n");
	assert_true(proc_expect(&child, "closed", 5000));
	close_side(l);
	assert_int_equal(proc_wait(&child, 20000), 0);
}

/*
 * A server on a user loop notices a proxy only at its next watch, up to
 * 100 ms after the proxy came. One that closes sooner sends no stop
 * command; the proxy must still see it go rather than wait forever.
 */
static void test_proxy_sees_server_close_before_noticed(void **state)
{
	struct duet_link_config cfg = {
		.side = DUET_SERVER, .user_loop = true, .vdevs = vdevs, .num_vdevs = 1,
	};
	struct pump pm = { 0 };
	struct proc child;
	char name[64], err[256];
	pthread_t t;

	(void)state;
	for (int round = 0; round < 3; round++) {
		snprintf(name, sizeof(name), "trl-%d-left-%d", (int)getpid(), round);
		cfg.name = name;
		assert_int_equal(duet_link_open(&pm.link, &cfg, 5000, err, sizeof(err)), 0);
		atomic_store(&pm.stop, false);
		assert_int_equal(pthread_create(&t, NULL, pump_main, &pm), 0);
		proc_start(&child, (const char *const[]){ self, "--child", name, "left", NULL });
		assert_true(proc_expect(&child, "up", 8000));
		atomic_store(&pm.stop, true);
		pthread_join(t, NULL);
		duet_link_close(pm.link, 3000, err, sizeof(err));
		assert_true(proc_expect(&child, "server gone", 3000));
		proc_send(&child, "quit\n");
		assert_int_equal(proc_wait(&child, 20000), 0);
	}
}

/*
 * The rptun calls a master makes of its remote, on a link's rptun
 * (duet_link_rptun): reset and panic are the link's commands. Each is
 * acknowledged by the proxy and carried out; before, no test made them.
 * (Its start and stop are the link's: a shutdown raced the link's own
 * teardown of the rptun once the proxy left, which ThreadSanitizer saw.)
 */
static void test_rptun_calls_command_the_proxy(void **state)
{
	struct duet_rptun *rptun;
	struct pair p;

	(void)state;
	pair_start(&p, "left", true);
	/* Its devices may bind before the link's watch has seen the proxy
	 * attach: commands wait for that. */
	assert_true(duet_link_wait_peer(p.link, 5000));
	rptun = duet_link_rptun(p.link);
	assert_non_null(rptun);
	assert_int_equal(duet_rptun_reset(rptun), 0);
	/* The proxy's devices come back: its rpmsg device binds to ours
	 * again, so a ping is answered. */
	{
		struct rpmsg_ping_result r;
		int ret = -1;

		for (int i = 0; i < 250 && ret != 0; i++) {
			struct rpmsg_device *rdev = wait_device();

			ret = rdev ? rpmsg_ping(rdev, 1, 16, RPMSG_PING_ACK, 0, &r) : -ENODEV;
			if (ret != 0)
				nap(20);
		}
		assert_int_equal(ret, 0);
	}
	proc_send(&p.child, "quit\n");
	close_side(p.link);
	assert_int_equal(proc_wait(&p.child, 20000), 0);

	pair_start(&p, "left", true);
	assert_true(duet_link_wait_peer(p.link, 5000));
	assert_int_equal(duet_rptun_panic(duet_link_rptun(p.link)), 0);
	assert_int_equal(proc_wait(&p.child, 5000), 128 + SIGABRT);
	/* The link notices, and takes the proxy's devices down. */
	for (int i = 0; i < 250 && duet_link_peer_up(p.link); i++)
		nap(20);
	assert_false(duet_link_peer_up(p.link));
	close_side(p.link);
}

static bool turned_since(void *arg)
{
	struct pump *pm = arg;

	return atomic_load(&pm->turns) != pm->mark;
}

/*
 * A server's user loop waiting without a timeout must hear of a proxy that
 * dies: kill -9 sends nothing over the rings, so only the link's own ring
 * on the state change can end the wait. in_a_ring: the proxy is killed in
 * the middle of a ring (ring_without_waking), after it moved the server's
 * doorbell and before its wake-up call. The loop then sleeps on a value the
 * doorbell has left, and the link's ring on the state change, which moved
 * seq from another value, made no call: the loop slept for good, and the
 * next proxy's messages, rung for in vain, waited in the ring (the soak's
 * ENOTCONN, sessions 45-46).
 */
static void user_loop_wakes_on_peer_death(const char *tag, bool in_a_ring)
{
	struct duet_link_config cfg = {
		.side = DUET_SERVER, .user_loop = true, .vdevs = vdevs, .num_vdevs = 1,
	};
	struct pump pm = { .forever = true };
	struct proc child;
	char name[64], err[256];
	pthread_t t;

	snprintf(name, sizeof(name), "trl-%d-%s", (int)getpid(), tag);
	cfg.name = name;
	assert_int_equal(duet_link_open(&pm.link, &cfg, 5000, err, sizeof(err)), 0);
	assert_int_equal(pthread_create(&t, NULL, pump_main, &pm), 0);
	proc_start(&child, (const char *const[]){ self, "--child", name, "left", NULL });
	assert_true(proc_expect(&child, "up", 8000));
	assert_true(duet_link_wait_peer(pm.link, 3000));
	nap(300); /* let the set-up's messages settle */
	if (in_a_ring)
		ring_without_waking(name, DUET_SERVER);
	pm.mark = atomic_load(&pm.turns);
	proc_kill9(&child);
	assert_true(until(turned_since, &pm, 3000));
	assert_false(duet_link_peer_up(pm.link));
	atomic_store(&pm.stop, true);
	assert_int_equal(duet_link_wake(pm.link), 0);
	pthread_join(t, NULL);
	duet_link_close(pm.link, 3000, err, sizeof(err));
}

static void test_user_loop_wakes_on_peer_death(void **state)
{
	(void)state;
	user_loop_wakes_on_peer_death("wake", false);
}

static void test_user_loop_wakes_on_peer_killed_in_a_ring(void **state)
{
	(void)state;
	user_loop_wakes_on_peer_death("halfring", true);
}

/* Whether a server opens on link `name` (and closes again); the
 * refusal's message goes to err. */
static int open_server(const char *name, const struct duet_vdev_desc *vd, unsigned int n,
		       enum duet_side side, char *err, size_t errlen)
{
	struct duet_link_config cfg = { .name = name, .side = side, .vdevs = vd, .num_vdevs = n };
	struct duet_link *l = NULL;
	int ret = duet_link_open(&l, &cfg, 1000, err, errlen);

	if (ret == 0)
		close_side(l);
	return ret;
}

/*
 * What duet_link_open refuses up front, each with -EINVAL and a message
 * that says the rule: a name is 1-40 letters, digits, '-' and '_' (it
 * names a file under /dev/shm); the side is server or proxy; a server
 * has at most DUET_MAX_VDEVS vdevs, and an array when it has any, whose
 * carveouts fit in 32-bit device addresses; a cpu name is 1-31 of those
 * characters.
 */
static void test_open_refuses_bad_configurations(void **state)
{
	static const char *const good[] = { "AZaz09-_", "Z", "a", "9", "_", "-" };
	static const char *const bad[] = { "", "a/b", "a.b", "a b", "a\tb", "@", "[", "`", "{", "/", ":" };
	struct duet_link_config cfg = { .name = "x", .side = DUET_SERVER };
	struct duet_vdev_desc many[DUET_MAX_VDEVS + 1];
	char name[64], err[256];
	struct duet_link *l;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(name, sizeof(name), "%s%d", good[i], (int)getpid() % 1000);
		assert_int_equal(open_server(name, NULL, 0, DUET_SERVER, err, sizeof(err)), 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		assert_int_equal(open_server(bad[i], NULL, 0, DUET_SERVER, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "1-40 letters"));
	}
	/* 40 characters are the most. */
	memset(name, 'n', 40);
	snprintf(name + 34, 7, "%06u", (unsigned int)getpid() % 1000000u);
	assert_int_equal(strlen(name), 40);
	assert_int_equal(open_server(name, NULL, 0, DUET_SERVER, err, sizeof(err)), 0);
	name[40] = 'n';
	name[41] = 0;
	assert_int_equal(open_server(name, NULL, 0, DUET_SERVER, err, sizeof(err)), -EINVAL);
	assert_int_equal(duet_link_open(&l, NULL, 0, err, sizeof(err)), -EINVAL);
	cfg.name = NULL;
	assert_int_equal(duet_link_open(&l, &cfg, 0, err, sizeof(err)), -EINVAL);
	cfg.name = "x";
	assert_int_equal(duet_link_open(NULL, &cfg, 0, err, sizeof(err)), -EINVAL);
	/* The side. */
	snprintf(name, sizeof(name), "trl-%d-badcfg", (int)getpid());
	assert_int_equal(open_server(name, NULL, 0, (enum duet_side)2, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "server or proxy"));
	/* The vdevs: DUET_MAX_VDEVS go, one more does not; none needs no array. */
	for (int i = 0; i <= DUET_MAX_VDEVS; i++)
		many[i] = (struct duet_vdev_desc){
			.id = VIRTIO_ID_ENTROPY, .driver = DUET_SERVER, .num_vrings = 1,
			.vring_num = 8, .vring_align = 16, .carveout_size = 16 * 1024,
		};
	assert_int_equal(open_server(name, many, DUET_MAX_VDEVS + 1, DUET_SERVER, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "at most 16 vdevs"));
	assert_int_equal(open_server(name, NULL, 1, DUET_SERVER, err, sizeof(err)), -EINVAL);
	assert_int_equal(open_server(name, many, DUET_MAX_VDEVS, DUET_SERVER, err, sizeof(err)), 0);
	/* Carveouts past 4 GiB of device addresses, refused before any
	 * region is made. */
	many[0].carveout_size = many[1].carveout_size = 0x80000000u;
	assert_int_equal(open_server(name, many, 2, DUET_SERVER, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "past 4 GiB of device addresses"));
	/* Cpu names: 1-31 of the same characters, not cut short. */
	cfg.name = name;
	cfg.local_cpu = "abcdefghijklmnopqrstuvwxyz01234";
	assert_int_equal(duet_link_open(&l, &cfg, 0, err, sizeof(err)), 0);
	close_side(l);
	cfg.local_cpu = "abcdefghijklmnopqrstuvwxyz012345";
	assert_int_equal(duet_link_open(&l, &cfg, 0, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "a cpu name is 1-31 letters"));
	cfg.local_cpu = NULL;
	cfg.remote_cpu = "";
	assert_int_equal(duet_link_open(&l, &cfg, 0, err, sizeof(err)), -EINVAL);
	cfg.remote_cpu = "a.b";
	assert_int_equal(duet_link_open(&l, &cfg, 0, err, sizeof(err)), -EINVAL);
	/* Closed, each server removed its region. */
	snprintf(err, sizeof(err), "/dev/shm/duet-%s", name);
	assert_int_equal(access(err, F_OK), -1);
}

/*
 * The user loop's calls need a link opened with user_loop (the service
 * thread owns the doorbell otherwise), and only a server sends commands,
 * and only known ones, and only to an attached proxy: each refusal is
 * -EINVAL (-ENOTCONN for no proxy), with the message saying why.
 */
static void test_loop_and_command_calls_refuse_misuse(void **state)
{
	struct duet_link_config cfg = { .side = DUET_SERVER };
	struct duet_link *l;
	char name[64], err[256];

	(void)state;
	snprintf(name, sizeof(name), "trl-%d-misuse", (int)getpid());
	cfg.name = name;
	assert_int_equal(duet_link_open(&l, &cfg, 1000, err, sizeof(err)), 0);
	assert_int_equal(duet_link_poll(l), -EINVAL);
	assert_int_equal(duet_link_wait(l, 0), -EINVAL);
	assert_int_equal(duet_link_wake(l), -EINVAL);
	assert_int_equal(duet_link_poll(NULL), -EINVAL);
	assert_int_equal(duet_link_wait(NULL, 0), -EINVAL);
	assert_int_equal(duet_link_wake(NULL), -EINVAL);
	err[0] = 0;
	assert_int_equal(duet_link_command(l, DUET_LINK_CMD_STOP, 100, err, sizeof(err)), -ENOTCONN);
	assert_non_null(strstr(err, "no proxy attached"));
	assert_int_equal(duet_link_command(l, (enum duet_link_cmd)0, 100, err, sizeof(err)), -EINVAL);
	assert_int_equal(duet_link_command(l, (enum duet_link_cmd)(DUET_LINK_CMD_PANIC + 1), 100, err,
					   sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "only a server sends commands"));
	assert_int_equal(duet_link_command(NULL, DUET_LINK_CMD_STOP, 100, err, sizeof(err)), -EINVAL);
	assert_int_equal(duet_link_close(NULL, 100, err, sizeof(err)), -EINVAL);
	assert_int_equal(duet_link_close(l, 1000, err, sizeof(err)), 0);
	/* With a user loop, the same calls work on an idle link. */
	cfg.user_loop = true;
	assert_int_equal(duet_link_open(&l, &cfg, 1000, err, sizeof(err)), 0);
	assert_true(duet_link_poll(l) >= 0);
	assert_true(duet_link_wait(l, 0) >= 0);
	assert_int_equal(duet_link_wake(l), 0);
	assert_true(duet_link_wait(l, 1000) >= 1); /* the wake rang its doorbell */
	assert_int_equal(duet_link_close(l, 1000, err, sizeof(err)), 0);
}

/* duet_link_describe: a line for the link, one per vdev, one per
 * doorbell, and into a short buffer as much as fits with the length of
 * that (len - 1). */
static void test_describe_truncates_to_the_buffer(void **state)
{
	struct duet_link_config cfg = { .side = DUET_SERVER, .vdevs = vdevs, .num_vdevs = 1 };
	char name[64], err[256], full[1024], part[1024];
	struct duet_link *l;
	int n;

	(void)state;
	snprintf(name, sizeof(name), "trl-%d-describe", (int)getpid());
	cfg.name = name;
	assert_int_equal(duet_link_open(&l, &cfg, 1000, err, sizeof(err)), 0);
	n = duet_link_describe(l, full, sizeof(full));
	assert_int_equal(n, (int)strlen(full));
	assert_non_null(strstr(full, name));
	assert_non_null(strstr(full, "vdev 0 rpmsg"));
	/* Both doorbells' words; nothing has rung this side's yet. */
	assert_non_null(strstr(full, "doorbell of the server: seq 0, armed 0, polled 0, "
				     "wake calls 0, pending none\n"));
	assert_non_null(strstr(full, "doorbell of the proxy: seq "));
	assert_int_equal(full[n - 1], '\n');
	/* Room for all of it and its NUL: all of it. */
	assert_int_equal(duet_link_describe(l, part, (size_t)n + 1), n);
	assert_string_equal(part, full);
	/* One byte short: the last character goes. */
	assert_int_equal(duet_link_describe(l, part, (size_t)n), n - 1);
	assert_int_equal(strlen(part), (size_t)n - 1);
	assert_memory_equal(part, full, (size_t)n - 1);
	assert_int_equal(duet_link_describe(l, part, 1), 0);
	assert_string_equal(part, "");
	part[0] = 'x';
	assert_int_equal(duet_link_describe(l, part, 0), 0);
	assert_int_equal(part[0], 'x'); /* nothing written */
	assert_int_equal(duet_link_close(l, 1000, err, sizeof(err)), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_refuses_bad_configurations),
		cmocka_unit_test(test_loop_and_command_calls_refuse_misuse),
		cmocka_unit_test(test_describe_truncates_to_the_buffer),
		cmocka_unit_test(test_name_service_both_ways),
		cmocka_unit_test(test_proxy_killed_as_its_devices_start),
		cmocka_unit_test(test_endpoint_churn_both_ways),
		cmocka_unit_test(test_tx_exhaustion_both_ways),
		cmocka_unit_test(test_send_asleep_when_the_peer_dies),
		cmocka_unit_test(test_callback_send_when_the_peer_dies),
		cmocka_unit_test(test_callback_send_when_the_peer_leaves),
		cmocka_unit_test(test_callback_send_when_the_peer_asks_for_a_reset),
		cmocka_unit_test(test_hostile_device_input),
		cmocka_unit_test(test_hostile_driver_input),
		cmocka_unit_test(test_proxy_sees_server_close_before_noticed),
		cmocka_unit_test(test_rptun_calls_command_the_proxy),
		cmocka_unit_test(test_user_loop_waits_forever_through_server_loss),
		cmocka_unit_test(test_user_loop_wakes_on_peer_death),
		cmocka_unit_test(test_user_loop_wakes_on_peer_killed_in_a_ring),
		cmocka_unit_test_teardown(test_polling_loops_ring_no_doorbell, pair_teardown),
		cmocka_unit_test_teardown(test_bursts_cross_the_link_in_order, pair_teardown),
		cmocka_unit_test_teardown(test_bursts_wake_a_sleeping_receiver, pair_teardown),
		cmocka_unit_test_teardown(test_polling_backs_off_only_for_one_way_traffic, pair_teardown),
		cmocka_unit_test_teardown(test_hybrid_spin_backs_off_only_for_one_way_traffic, pair_teardown),
		cmocka_unit_test_teardown(test_polling_prefetches_after_answers_and_quiet, pair_teardown),
		cmocka_unit_test_teardown(test_loops_switching_between_poll_and_wait_lose_nothing, pair_teardown),
		cmocka_unit_test_teardown(test_hybrid_loop_spins_on_its_rings, pair_teardown),
		cmocka_unit_test(test_service_threads_spin_on_their_rings),
	};

	self = "/proc/self/exe";
	if (rpmsg_ping_register() < 0)
		return 1;
	if (argc == 4 && !strcmp(argv[1], "--child"))
		return !strcmp(argv[3], "user-loop") ? child_user_loop(argv[2])
		       : strstr(argv[3], "-loop") || !strcmp(argv[3], "service-spin")
			       ? child_poll_loop(argv[2], argv[3])
			       : child_main(argv[2], argv[3]);
	assert_int_equal(virtio_register_driver(&virtio_rpmsg_driver), 0);
	proc_sweep_regions("trl");
	return cmocka_run_group_tests_name("rpmsg between two processes", tests, NULL, NULL);
}
