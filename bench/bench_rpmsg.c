/*
 * bench_rpmsg - rpmsg between two real processes over the shared-memory
 * link, in four waiting modes:
 *   polling  both sides run duet_link_poll() in a loop (no system calls)
 *   backoff  the same with poll_backoff_us = --backoff (default 20): a side
 *            that only receives waits that long after a look finds nothing
 *   hybrid   duet_link_wait() spinning up to --spin us (default 50), then blocking
 *   blocking duet_link_wait() blocking at once (futex)
 * The server (this process) runs the link's loop on its main thread
 * (user_loop); the proxy is this binary again (--proxy), doing the same.
 *
 *   bench_rpmsg rtt     round trips, 17 bytes and the largest payload, with
 *                       a raw futex and a raw spin ping-pong between the same
 *                       two kinds of processes as yardsticks (at 17 B, one
 *                       before each polling and each blocking run: their
 *                       ratios run by run), and a spin ping-pong carrying
 *                       a 17 B message's data line, read as it comes and
 *                       prefetched while waiting as polling looks do: the
 *                       floor of duet's polling
 *   bench_rpmsg stream  one-way streams, 17 bytes and the largest payload,
 *                       copy and zero copy: MB/s, messages/s, notifications
 *   bench_rpmsg idle    CPU used by both sides of an idle link over 10 s
 *   bench_rpmsg loop N  N round trips, polling (for callgrind); with
 *                       --blocking, both sides blocking at once
 *   bench_rpmsg looks N N looks at an idle polled link (for callgrind:
 *                       bench/callgrind-link.sh)
 * --rng adds the demo's two rng devices, idle: what a look pays for devices
 * that carry nothing while rpmsg does. --mode NAME runs rtt, stream, duplex
 * and oneway in that waiting mode only (for A/B runs of one row:
 * bench/ab-stream.sh).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <duet/link.h>
#include <duet/port.h>
#include <duet/rng.h>
#include <duet/rpmsg.h>

enum mode { POLL, HYBRID, BLOCK, BACKOFF };
static const char *const mode_names[] = { "polling", "hybrid", "blocking", "backoff" };

static const uint8_t sizes[8] = { 0, 2, 0, 0, 0, 2, 0, 0 }; /* 512-byte buffers */
static const struct duet_vdev_desc vdevs[] = {
	{ .id = VIRTIO_ID_RPMSG, .driver = DUET_SERVER, .features = 1, .num_vrings = 2,
	  .vring_num = 256, .vring_align = 64, .config_len = sizeof(sizes), .config = sizes,
	  .carveout_size = 512 * 1024 },
	/* With --rng: the demo's two rng devices besides, idle, as a product
	 * has devices that are not in use while rpmsg is. */
	{ .id = VIRTIO_ID_ENTROPY, .driver = DUET_SERVER, .num_vrings = 1, .vring_num = 8,
	  .vring_align = 16, .carveout_size = 64 * 1024 },
	{ .id = VIRTIO_ID_ENTROPY, .driver = DUET_PROXY, .num_vrings = 1, .vring_num = 8,
	  .vring_align = 16, .carveout_size = 64 * 1024 },
};
static unsigned int num_vdevs = 1; /* 3 with --rng */
static bool loop_blocking; /* loop N --blocking */

static uint32_t spin_budget_us = 50;
static uint32_t backoff_us = 20; /* the backoff mode's poll_backoff_us */
static int runs = 7;
static const char *only_mode; /* --mode: rtt and stream in that mode only */
/* The CPUs the server and the proxy (or the yardstick's child) run on, so
 * that every figure is cross-core, as on the hardware this stands in for:
 * unpinned, a futex wake-up is ~5 us when both land on one CPU and ~11 us
 * across two, and the yardstick and rpmsg could each get either. -1: not
 * pinned (--no-pin, or fewer than two CPUs allowed). */
static int cpu_of[2] = { -1, -1 };

static void pick_cpus(void)
{
	cpu_set_t set;
	int n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return;
	for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &set))
			cpu_of[n++] = c;
	if (n < 2)
		cpu_of[0] = cpu_of[1] = -1;
}

/* Pin the calling process (and the threads it starts later) to one CPU. */
static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

static uint64_t now_ns(void)
{
	return duet_clock_ns();
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* median, p99, min, max of n samples (sorted in place), in us. */
static void row(const char *what, uint64_t *ns, size_t n, const char *extra)
{
	qsort(ns, n, sizeof(*ns), cmp_u64);
	printf("| %-34s | %8.2f | %8.2f | %8.2f | %9.2f | %s\n", what, ns[n / 2] / 1e3,
	       ns[n * 99 / 100] / 1e3, ns[0] / 1e3, ns[n - 1] / 1e3, extra ? extra : "");
	fflush(stdout);
}

/* ---- both sides ---- */

struct side {
	struct duet_link *link;
	struct rpmsg_device *rdev;
	struct rpmsg_endpoint ept;
	enum mode mode;
	/* server: the last reply */
	_Atomic uint32_t replies;
	uint32_t reply_len;
	char reply[64];
	/* proxy: the stream it received */
	uint64_t count, next_seq, bad;
	/* proxy: one-way latencies of 'L' messages, ns (see bench_oneway) */
	uint64_t *lat;
	uint32_t nlat;
};

#define ONEWAY_MAX 20000u /* latencies the proxy keeps per pattern */

static struct duet_link *open_link(enum duet_side who, const char *name, enum mode mode)
{
	struct duet_link_config cfg = {
		.name = name, .side = who, .user_loop = true,
		.spin_us = mode == HYBRID ? spin_budget_us : 0,
		.poll_backoff_us = mode == BACKOFF ? backoff_us : 0,
	};
	struct duet_link *l;
	char err[256];

	if (who == DUET_SERVER) {
		cfg.vdevs = vdevs;
		cfg.num_vdevs = num_vdevs;
	}
	if (duet_link_open(&l, &cfg, 5000, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_rpmsg: %s\n", err);
		exit(1);
	}
	return l;
}

/* One turn of the loop. Waiting needs no timeout: a notification, or a
 * change of the link's state, ends it, and every caller tests its own
 * condition after each turn. No timer is armed per sleep. */
static void pump(struct side *s)
{
	if (s->mode == POLL || s->mode == BACKOFF)
		duet_link_poll(s->link);
	else
		duet_link_wait(s->link, DUET_LINK_FOREVER);
}

static struct rpmsg_device *wait_device(struct side *s)
{
	uint64_t end = duet_clock_ms() + 5000;
	struct rpmsg_device *d;

	while (!(d = rpmsg_get_device(0)) && duet_clock_ms() < end)
		duet_link_wait(s->link, 10);
	if (!d) {
		fprintf(stderr, "bench_rpmsg: no rpmsg device\n");
		exit(1);
	}
	return d;
}

/* ---- the proxy ---- */

static int proxy_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	struct side *s = priv;
	const uint8_t *m = data;

	(void)src;
	if (len && m[0] == 'E') { /* echo */
		rpmsg_send(ept, data, (int)len);
	} else if (len >= 8 && m[0] == 'S') { /* stream: in order? */
		uint32_t seq;

		memcpy(&seq, m + 4, sizeof(seq));
		s->bad += seq != (uint32_t)s->next_seq;
		s->next_seq = seq + 1u;
		s->count++;
	} else if (len >= 16 && m[0] == 'L') { /* one-way latency: sent at m[8..16) */
		uint64_t sent, now = now_ns();

		memcpy(&sent, m + 8, sizeof(sent));
		if (s->lat && s->nlat < ONEWAY_MAX)
			s->lat[s->nlat++] = now - sent;
	} else if (len && m[0] == 'P') { /* the latencies so far, then forget them */
		char r[96];
		uint32_t n = s->nlat;

		if (n)
			qsort(s->lat, n, sizeof(*s->lat), cmp_u64);
		snprintf(r, sizeof(r), "P %u %llu %llu %llu %u", n,
			 n ? (unsigned long long)s->lat[n / 2] : 0ull,
			 n ? (unsigned long long)s->lat[n * 99 / 100] : 0ull,
			 n ? (unsigned long long)s->lat[n - 1] : 0ull, duet_link_backoffs(s->link));
		s->nlat = 0;
		rpmsg_send(ept, r, (int)strlen(r) + 1);
	} else if (len && m[0] == 'Q') { /* how many, and the doorbell counts */
		char r[64];
		uint32_t rung, wakes;

		duet_link_stats(s->link, &rung, &wakes);
		snprintf(r, sizeof(r), "R %llu %llu %u %u %u %u", (unsigned long long)s->count,
			 (unsigned long long)s->bad, rung, wakes, duet_link_backoffs(s->link),
			 duet_rptun_prefetches(duet_link_rptun(s->link)));
		s->count = s->bad = s->next_seq = 0;
		rpmsg_send(ept, r, (int)strlen(r) + 1);
	}
	return 0;
}

static int proxy_main(const char *name, enum mode mode)
{
	static struct side s;

	s.mode = mode;
	s.lat = malloc(ONEWAY_MAX * sizeof(*s.lat));
	vhost_register_driver(&vhost_rpmsg_driver);
	virtio_register_driver(&virtio_rng_driver);
	vhost_register_driver(&vhost_rng_driver);
	s.link = open_link(DUET_PROXY, name, mode);
	s.rdev = wait_device(&s);
	s.ept.priv = &s;
	if (rpmsg_create_ept(&s.ept, s.rdev, "bench", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, proxy_cb,
			     NULL) < 0)
		return 1;
	while (!duet_link_stop_requested(s.link) && duet_link_peer_up(s.link))
		pump(&s);
	duet_link_close(s.link, 1000, NULL, 0);
	return 0;
}

/* ---- the server ---- */

static int server_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	struct side *s = priv;

	(void)ept;
	(void)src;
	s->reply_len = (uint32_t)len;
	memcpy(s->reply, data, len < sizeof(s->reply) - 1 ? len : sizeof(s->reply) - 1);
	s->reply[sizeof(s->reply) - 1] = '\0';
	atomic_fetch_add_explicit(&s->replies, 1, memory_order_relaxed);
	return 0;
}

/* This program's path, resolved once: under valgrind, /proc/self/exe
 * itself would name valgrind, and the proxy must run natively while the
 * server is counted (bench_rpmsg loop N under callgrind). */
static char self_path[4096] = "/proc/self/exe";

static pid_t spawn_proxy(const char *name, enum mode mode)
{
	pid_t pid = fork();

	if (pid == 0) {
		char spin[16], backoff[16];

		/* The proxy waits as the server does. */
		snprintf(spin, sizeof(spin), "%u", spin_budget_us);
		snprintf(backoff, sizeof(backoff), "%u", backoff_us);
		pin(cpu_of[1]);
		execl(self_path, "bench_rpmsg", "--proxy", name, mode_names[mode], spin, backoff,
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void server_open(struct side *s, enum mode mode, pid_t *child)
{
	static unsigned int seq;
	char name[64];
	uint64_t end;

	memset(s, 0, sizeof(*s));
	s->mode = mode;
	snprintf(name, sizeof(name), "bench-%d-%u", (int)getpid(), seq++);
	s->link = open_link(DUET_SERVER, name, mode);
	*child = spawn_proxy(name, mode);
	s->rdev = wait_device(s);
	s->ept.priv = s;
	if (rpmsg_create_ept(&s->ept, s->rdev, "bench", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, server_cb,
			     NULL) < 0)
		exit(1);
	end = duet_clock_ms() + 5000;
	while (!rpmsg_is_ept_ready(&s->ept) && duet_clock_ms() < end)
		duet_link_wait(s->link, 10);
	if (!rpmsg_is_ept_ready(&s->ept)) {
		fprintf(stderr, "bench_rpmsg: the proxy's endpoint never bound\n");
		exit(1);
	}
}

static void server_close(struct side *s, pid_t child)
{
	int st;

	rpmsg_destroy_ept(&s->ept);
	duet_link_close(s->link, 2000, NULL, 0);
	waitpid(child, &st, 0);
}

/* Send the proxy a one-letter question and wait for its answer (in
 * s->reply). It travels behind whatever was sent before it. */
static void ask_proxy(struct side *s, const char *q)
{
	uint32_t before = atomic_load(&s->replies);

	while (rpmsg_trysend(&s->ept, q, 2) == -EAGAIN)
		pump(s);
	while (atomic_load(&s->replies) == before)
		pump(s);
}

/* Both sides' doorbell counts, backoffs (duet_link_backoffs) and
 * prefetching spells (duet_rptun_prefetches), summed. */
static void both_stats(struct side *s, uint32_t *rung, uint32_t *wakes, uint32_t *backoffs,
		       uint32_t *spells)
{
	uint32_t pr = 0, pw = 0, pb = 0, ps = 0;
	unsigned long long got, bad;

	ask_proxy(s, "Q");
	sscanf(s->reply, "R %llu %llu %u %u %u %u", &got, &bad, &pr, &pw, &pb, &ps);
	duet_link_stats(s->link, rung, wakes);
	*rung += pr;
	*wakes += pw;
	*backoffs = duet_link_backoffs(s->link) + pb;
	*spells = duet_rptun_prefetches(duet_link_rptun(s->link)) + ps;
}

/* One round trip of len bytes; its time in ns. */
static uint64_t round_trip(struct side *s, char *msg, uint32_t len)
{
	uint32_t before = atomic_load_explicit(&s->replies, memory_order_relaxed);
	uint64_t t0 = now_ns();

	msg[0] = 'E';
	while (rpmsg_trysend(&s->ept, msg, (int)len) == -EAGAIN)
		pump(s);
	while (atomic_load_explicit(&s->replies, memory_order_relaxed) == before)
		pump(s);
	return now_ns() - t0;
}

/* The yardsticks: two processes ping-pong through one shared word pair. */
static long futex(_Atomic uint32_t *w, int op, uint32_t v)
{
	return syscall(SYS_futex, (uint32_t *)w, op, v, NULL, NULL, 0);
}

/* Lines of data in a yardstick's page, each written before a count and read
 * after it: `out` on the way out, `back` on the way back (spin only). */
#define DATA_LINE(w, dir, k) (&(w)[32 + 16 * (2 * (dir) + (k))])

/* Write `lines` data lines of direction dir with i, or read them. */
static void put_lines(_Atomic uint32_t *w, int dir, unsigned int lines, uint32_t i)
{
	for (unsigned int k = 0; k < lines; k++)
		atomic_store_explicit(DATA_LINE(w, dir, k), i, memory_order_relaxed);
}

static uint32_t get_lines(_Atomic uint32_t *w, int dir, unsigned int lines)
{
	uint32_t sum = 0;

	for (unsigned int k = 0; k < lines; k++)
		sum += atomic_load_explicit(DATA_LINE(w, dir, k), memory_order_relaxed);
	return sum;
}

/* A yardstick's shape: waiting on a futex (block) or spinning; spinning,
 * each direction may carry data lines besides its count (out, back),
 * written before the count and read after it, as a message's buffer is,
 * and the waiting side may ask for them at every look at the count
 * (prefetch), as duet's polling looks ask for the next buffer. */
struct stick {
	bool block;
	unsigned int out, back;
	bool prefetch;
};

/* Ask for the `lines` data lines of direction dir. */
static void prefetch_lines(_Atomic uint32_t *w, int dir, unsigned int lines)
{
	for (unsigned int k = 0; k < lines; k++)
		__builtin_prefetch((const void *)DATA_LINE(w, dir, k));
}

/* One run of the yardstick: n round trips after n / 10 to warm up, with a
 * fresh child on the proxy's CPU; their times in ns[0..n). */
static void yardstick_run(struct stick shape, uint32_t n, uint64_t *ns)
{
	const bool block = shape.block;
	const unsigned int out = shape.out, back = shape.back;
	_Atomic uint32_t *w = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	uint32_t total = n + n / 10;
	volatile uint32_t sink = 0;
	pid_t child;
	int st;

	if (w == MAP_FAILED) {
		perror("bench_rpmsg: mmap");
		exit(1);
	}
	/* w[0]: ping count (server to proxy), w[16]: pong count, lines apart;
	 * the data lines from w[32] on */
	atomic_store(&w[0], 0);
	atomic_store(&w[16], 0);
	child = fork();
	if (child == 0) {
		pin(cpu_of[1]);
		for (uint32_t i = 1; i <= total; i++) {
			while (atomic_load(&w[0]) != i)
				if (block)
					futex(&w[0], FUTEX_WAIT, i - 1);
				else if (shape.prefetch)
					prefetch_lines(w, 0, out);
			sink += get_lines(w, 0, out);
			put_lines(w, 1, back, i);
			atomic_store(&w[16], i);
			if (block)
				futex(&w[16], FUTEX_WAKE, 1);
		}
		_exit(0);
	}
	for (uint32_t i = 1, k = 0; i <= total; i++) {
		uint64_t t0 = now_ns();

		put_lines(w, 0, out, i);
		atomic_store(&w[0], i);
		if (block)
			futex(&w[0], FUTEX_WAKE, 1);
		while (atomic_load(&w[16]) != i)
			if (block)
				futex(&w[16], FUTEX_WAIT, i - 1);
			else if (shape.prefetch)
				prefetch_lines(w, 1, back);
		sink += get_lines(w, 1, back);
		if (i > n / 10)
			ns[k++] = now_ns() - t0;
	}
	(void)sink;
	waitpid(child, &st, 0);
	munmap((void *)w, 4096);
}

static void yardstick(const char *what, struct stick shape, uint32_t n, const char *note)
{
	uint64_t *ns = malloc(sizeof(*ns) * n * (size_t)runs);

	for (int r = 0; r < runs; r++)
		yardstick_run(shape, n, ns + (size_t)r * n);
	row(what, ns, (size_t)n * (size_t)runs, note);
	free(ns);
}

static uint64_t median_of(uint64_t *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[n / 2];
}

/*
 * Round trips in one waiting mode, 17 B and the largest payload, `runs`
 * runs of n each. At 17 B, blocking runs the futex yardstick before each
 * run and polling the spin one, so that each is compared with its
 * yardstick run by run, under the same load: the machine's noise drifts
 * over seconds, more than the gap being measured.
 */
static void bench_rtt_mode(enum mode mode, uint32_t n)
{
	uint32_t max, lens[2];
	uint64_t *ns = malloc(sizeof(*ns) * n * (size_t)runs);
	uint64_t *fut = malloc(sizeof(*fut) * n * (size_t)runs);
	double *ratio = malloc(sizeof(*ratio) * (size_t)runs);
	struct side s;
	char msg[4096] = { 0 };
	pid_t child;

	server_open(&s, mode, &child);
	max = (uint32_t)rpmsg_get_tx_buffer_size(&s.ept);
	lens[0] = 17;
	lens[1] = max;
	for (int l = 0; l < 2; l++) {
		bool paired = (mode == BLOCK || mode == POLL) && l == 0;
		const char *stick_name = mode == BLOCK ? "futex" : "spin";
		char what[64], extra[256];
		size_t k = 0;
		uint64_t lo = UINT64_MAX, hi = 0;
		uint32_t rung0, wakes0, rungq, wakesq, rung1, wakes1, back0, backq, back1;
		uint32_t spell0, spellq, spell1;
		double trips;
		int used;

		for (uint32_t i = 0; i < n / 10; i++) /* warm up */
			round_trip(&s, msg, lens[l]);
		/* Twice: what one query itself rings (none when both poll) is
		 * taken off the count below. */
		both_stats(&s, &rung0, &wakes0, &back0, &spell0);
		both_stats(&s, &rungq, &wakesq, &backq, &spellq);
		for (int r = 0; r < runs; r++) {
			uint64_t *run = ns + k, m;

			if (paired) {
				yardstick_run((struct stick){ .block = mode == BLOCK }, n,
					      fut + (size_t)r * n);
				for (uint32_t i = 0; i < n / 10; i++)
					round_trip(&s, msg, lens[l]);
			}
			for (uint32_t i = 0; i < n; i++)
				ns[k++] = round_trip(&s, msg, lens[l]);
			m = median_of(run, n);
			lo = m < lo ? m : lo;
			hi = m > hi ? m : hi;
			if (paired)
				ratio[r] = (double)m / (double)median_of(fut + (size_t)r * n, n);
		}
		snprintf(what, sizeof(what), "rpmsg %u B round trip, %s", lens[l], mode_names[mode]);
		/* Per round trip of every kind: the paired runs' warm-ups ring
		 * and prefetch as the measured trips do. */
		trips = (double)k + (paired ? (double)runs * (double)(n / 10) : 0.0);
		both_stats(&s, &rung1, &wakes1, &back1, &spell1);
		used = snprintf(extra, sizeof(extra), "run medians %.2f-%.2f", lo / 1e3, hi / 1e3);
		used += snprintf(extra + used, sizeof(extra) - (size_t)used,
				 "; per round trip %.2f rings, %.2f wake syscalls, %.2f backoffs,"
				 " %.2f prefetch spells",
				 (double)((int64_t)rung1 - rungq - (rungq - rung0)) / trips,
				 (double)((int64_t)wakes1 - wakesq - (wakesq - wakes0)) / trips,
				 (double)((int64_t)back1 - backq - (backq - back0)) / trips,
				 (double)((int64_t)spell1 - spellq - (spellq - spell0)) / trips);
		if (paired) {
			double lo_r = ratio[0], hi_r = ratio[0];

			for (int r = 1; r < runs; r++) {
				lo_r = ratio[r] < lo_r ? ratio[r] : lo_r;
				hi_r = ratio[r] > hi_r ? ratio[r] : hi_r;
			}
			qsort(ratio, (size_t)runs, sizeof(*ratio), cmp_double);
			row(mode == BLOCK ? "raw futex ping-pong (yardstick)" :
					    "raw spin ping-pong (yardstick)",
			    fut, k, "one run before each rpmsg run below");
			snprintf(extra + used, sizeof(extra) - (size_t)used,
				 "; run by run vs %s: median %.3f (%.3f-%.3f)", stick_name, ratio[runs / 2],
				 lo_r, hi_r);
		}
		row(what, ns, k, extra);
	}
	server_close(&s, child);
	free(ratio);
	free(fut);
	free(ns);
}

static void header(const char *title)
{
	printf("\n%s\n\n| %-34s | %8s | %8s | %8s | %9s | notes\n|---|---|---|---|---|---|\n",
	       title, "figure", "p50 us", "p99 us", "min us", "max us");
}

/* Whether --mode lets `mode` run. */
static bool mode_wanted(enum mode mode)
{
	return !only_mode || !strcmp(only_mode, mode_names[mode]);
}

static int bench_rtt(void)
{
	static const enum mode order[] = { POLL, BACKOFF, HYBRID, BLOCK };

	header("Round trips, server to proxy and back (two processes, one shared region)");
	yardstick("raw spin ping-pong (yardstick)", (struct stick){ 0 }, 20000, NULL);
	/* A 17 B message's lines: its buffer, each way. Buffers recycled in
	 * order are not described again: neither the driver's avail entry
	 * and descriptor nor the device's used entry are stored when they
	 * hold the same words (vq_update16/32, vq_write_desc). What the
	 * protocol's line transfers alone cost; and the same with the
	 * waiting side asking for the line at every look, as a polling
	 * look asks for the buffer the next message most likely fills. */
	yardstick("raw spin, 1 data line each way", (struct stick){ .out = 1, .back = 1 }, 20000,
		  "a line written before the count, read after it: a 17 B message's buffer");
	yardstick("raw spin, 1 data line, prefetched",
		  (struct stick){ .out = 1, .back = 1, .prefetch = true }, 20000,
		  "the same, the waiting side asking for the line at every look at the count");
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (mode_wanted(order[i]))
			bench_rtt_mode(order[i], order[i] == BLOCK ? 2000 : 20000);
	printf("\nHow to read: p50 is the typical round trip; compare each mode with its\n"
	       "yardstick from the same run (polling with spin, blocking with futex): the\n"
	       "machine is shared and noisy, so ratios are what carry over. At 17 B the\n"
	       "polling and blocking runs each follow a run of their yardstick, and the\n"
	       "ratio of the two medians is given run by run. The spin with a data line\n"
	       "writes before each count the line a 17 B message adds, its buffer, and\n"
	       "reads it after: the protocol's line transfers alone. Prefetched, the\n"
	       "waiting side asks for that line at every look, as polling looks ask for\n"
	       "the next buffer: the floor of duet's polling (python3 bench/steps.py\n"
	       "shows where a round trip's time goes, step by step). Hybrid spins up\n"
	       "to %u us before blocking, so an immediate echo never sleeps. Backoff\n"
	       "polls with poll_backoff_us = %u: a ping-pong never waits, so it should\n"
	       "match polling. Prefetch spells: after each answer a polling side's empty\n"
	       "looks prefetch the buffer the next message most likely lands in, about\n"
	       "one spell per side per round trip (2.00) when both poll.\n",
	       spin_budget_us, backoff_us);
	return 0;
}

/* ---- duplex: echoes in flight both ways ---- */

/* n echoes of 17 B from the server, up to `window` unanswered at a time:
 * both directions stream at once, each side sending while the other
 * answers. Returns the seconds it took. */
static double duplex_once(struct side *s, uint32_t window, uint32_t n)
{
	char msg[17] = { 'E' };
	uint32_t base = atomic_load(&s->replies), sent = 0, got = 0;
	uint64_t t0 = now_ns();

	while (got < n) {
		if (sent < n && sent - got < window && rpmsg_trysend(&s->ept, msg, 17) == 17) {
			sent++;
			continue;
		}
		pump(s);
		got = atomic_load(&s->replies) - base;
	}
	return (double)(now_ns() - t0) / 1e9;
}

static void bench_duplex_mode(enum mode mode)
{
	static const uint32_t windows[] = { 8, 32 };
	const uint32_t n = mode == BLOCK ? 50000 : 200000;
	struct side s;
	pid_t child;

	server_open(&s, mode, &child);
	for (size_t w = 0; w < sizeof(windows) / sizeof(windows[0]); w++) {
		uint32_t rung0, wakes0, back0, spell0, rung1, wakes1, back1, spell1;
		double eps[16], t;
		int k = runs < 16 ? runs : 16;

		duplex_once(&s, windows[w], n / 10); /* warm up */
		both_stats(&s, &rung0, &wakes0, &back0, &spell0);
		for (int r = 0; r < k; r++)
			eps[r] = (double)n / duplex_once(&s, windows[w], n) / 1e6;
		both_stats(&s, &rung1, &wakes1, &back1, &spell1);
		for (int i = 0; i < k; i++)
			for (int j = i + 1; j < k; j++)
				if (eps[j] < eps[i])
					t = eps[i], eps[i] = eps[j], eps[j] = t;
		printf("| %-8s | %6u | %8.2f | %5.2f-%-5.2f | %7.4f | %7.4f | %7.4f |\n",
		       mode_names[mode], windows[w], eps[k / 2], eps[0], eps[k - 1],
		       (double)(rung1 - rung0) / ((double)n * k),
		       (double)(spell1 - spell0) / ((double)n * k),
		       (double)(back1 - back0) / ((double)n * k));
		fflush(stdout);
	}
	server_close(&s, child);
}

static int bench_duplex(void)
{
	static const enum mode order[] = { POLL, BACKOFF, BLOCK };

	printf("\nDuplex: 17 B echoes with up to a window of them in flight, server to proxy and back "
	       "(%d runs each)\n\n"
	       "| mode | window | M echoes/s p50 | min-max | rings/echo | prefetch spells/echo | "
	       "backoffs/echo |\n"
	       "|---|---|---|---|---|---|---|\n",
	       runs);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (mode_wanted(order[i]))
			bench_duplex_mode(order[i]);
	printf("\nHow to read: each echo is two messages, one each way, so both directions\n"
	       "stream at once: the traffic of a pipeline of requests. Prefetch spells (both\n"
	       "sides): a polling side prefetches the buffer the next message most likely\n"
	       "lands in only after it answered and a look then found nothing: about 2 per\n"
	       "echo when the window is 1 (a ping-pong), fewer the more the two directions\n"
	       "overlap. Backoffs (both sides): waits after an empty look under\n"
	       "poll_backoff_us; each look that takes an echo answers it, so none should\n"
	       "wait (before session 44, about 0.006 per echo at a window of 32, and a\n"
	       "third of polling's rate).\n");
	return 0;
}

/* ---- streams ---- */

struct stream_result {
	double secs;
	uint64_t msgs, bytes, bad;
	uint32_t rung, peer_rung, wakes, peer_wakes, peer_spells;
};

enum send_kind { COPY, ZERO_COPY, MORE, BURST, ZERO_COPY_MORE, NKINDS };
static const char *const send_names[] = { "copy", "zero copy", "copy+more", "burst 32",
					  "zc+more" };

#define BURST_N 32

/* n messages of len bytes in bursts of BURST_N (rpmsg_trysend_burst),
 * each carrying its sequence number as the other kinds do. */
static void send_bursts(struct side *s, uint32_t len, uint64_t n)
{
	static char msgs[BURST_N][4096];
	const void *datas[BURST_N];
	int lens[BURST_N];

	for (int k = 0; k < BURST_N; k++) {
		msgs[k][0] = 'S';
		datas[k] = msgs[k];
		lens[k] = (int)len;
	}
	for (uint64_t i = 0; i < n;) {
		int m = n - i < BURST_N ? (int)(n - i) : BURST_N, done = 0;

		for (int k = 0; k < m; k++) {
			uint32_t seq = (uint32_t)(i + (uint64_t)k);

			memcpy(msgs[k] + 4, &seq, sizeof(seq));
		}
		while (done < m) {
			int ret = rpmsg_trysend_burst(&s->ept, datas + done, lens + done, m - done);

			if (ret > 0) {
				done += ret;
			} else if (ret == -EAGAIN) {
				pump(s);
			} else {
				fprintf(stderr, "bench_rpmsg: burst: %d\n", ret);
				return; /* the check reports what is missing */
			}
		}
		i += (uint64_t)m;
	}
}

static void stream_once(struct side *s, uint32_t len, enum send_kind kind, uint64_t n,
			struct stream_result *r)
{
	char msg[4096] = { 'S' };
	uint32_t rung0, wakes0;
	uint64_t t0;

	duet_link_stats(s->link, &rung0, &wakes0);
	t0 = now_ns();
	if (kind == BURST)
		send_bursts(s, len, n);
	for (uint64_t i = 0; kind != BURST && i < n; i++) {
		uint32_t seq = (uint32_t)i;

		if (kind == ZERO_COPY || kind == ZERO_COPY_MORE) {
			uint32_t room;
			uint8_t *buf;

			while (!(buf = rpmsg_get_tx_payload_buffer(&s->ept, &room, 0)))
				pump(s);
			buf[0] = 'S';
			memcpy(buf + 4, &seq, sizeof(seq));
			if (kind == ZERO_COPY)
				rpmsg_send_nocopy(&s->ept, buf, (int)len);
			else /* one doorbell per batch, as copy+more */
				rpmsg_send_nocopy_more(&s->ept, buf, (int)len);
		} else if (kind == MORE) {
			/* One doorbell per batch: the query below ends it. */
			memcpy(msg + 4, &seq, sizeof(seq));
			while (rpmsg_trysend_more(&s->ept, msg, (int)len) == -EAGAIN)
				pump(s);
		} else {
			memcpy(msg + 4, &seq, sizeof(seq));
			while (rpmsg_trysend(&s->ept, msg, (int)len) == -EAGAIN)
				pump(s);
		}
	}
	/* The query travels behind the stream: its answer means all arrived. */
	ask_proxy(s, "Q");
	r->secs = (double)(now_ns() - t0) / 1e9;
	duet_link_stats(s->link, &r->rung, &r->wakes);
	r->rung -= rung0;
	r->wakes -= wakes0;
	{
		unsigned long long got, bad;
		uint32_t pr, pw, ps;

		if (sscanf(s->reply, "R %llu %llu %u %u %*u %u", &got, &bad, &pr, &pw, &ps) != 5)
			got = bad = pr = pw = ps = 0;
		r->msgs = got;
		r->bad = bad + (got != n);
		r->peer_rung = pr;
		r->peer_wakes = pw;
		r->peer_spells = ps;
	}
	r->bytes = r->msgs * len;
}

static void bench_stream_mode(enum mode mode)
{
	struct side s;
	pid_t child;
	uint32_t max;
	uint32_t prev_peer_rung = 0, prev_peer_wakes = 0, prev_peer_spells = 0;

	server_open(&s, mode, &child);
	max = (uint32_t)rpmsg_get_tx_buffer_size(&s.ept);
	for (int l = 0; l < 2; l++) {
		for (int zc = 0; zc < NKINDS; zc++) {
			uint32_t len = l ? max : 17;
			uint64_t n = l ? 200000 : 1000000;
			double mbs[16], mps[16], npm = 0, sys = 0, spm = 0;
			uint64_t bad = 0;

			for (int r = 0; r < runs && r < 16; r++) {
				struct stream_result res;
				uint32_t pr, pw;

				stream_once(&s, len, (enum send_kind)zc, n, &res);
				pr = res.peer_rung - prev_peer_rung;
				pw = res.peer_wakes - prev_peer_wakes;
				prev_peer_rung = res.peer_rung;
				prev_peer_wakes = res.peer_wakes;
				spm += (double)(res.peer_spells - prev_peer_spells) / (double)n;
				prev_peer_spells = res.peer_spells;
				mbs[r] = (double)res.bytes / res.secs / 1e6;
				mps[r] = (double)res.msgs / res.secs / 1e6;
				npm += (double)(res.rung + pr) / (double)n;
				sys += (double)(res.wakes + pw) / (double)n;
				bad += res.bad;
			}
			{
				int k = runs < 16 ? runs : 16;
				double t;

				for (int i = 0; i < k; i++) /* sort both by MB/s */
					for (int j = i + 1; j < k; j++)
						if (mbs[j] < mbs[i]) {
							t = mbs[i], mbs[i] = mbs[j], mbs[j] = t;
							t = mps[i], mps[i] = mps[j], mps[j] = t;
						}
				printf("| %-8s | %4u B | %-9s | %8.0f | %6.2f | %8.0f-%-8.0f | %7.4f | %7.4f | %7.4f | %s\n",
				       mode_names[mode], len, send_names[zc], mbs[k / 2],
				       mps[k / 2], mbs[0], mbs[k - 1], npm / k, sys / k, spm / k,
				       bad ? "LOST OR REORDERED" : "all in order");
				fflush(stdout);
			}
		}
	}
	server_close(&s, child);
}

static int bench_stream(void)
{
	static const enum mode order[] = { POLL, BACKOFF, BLOCK };

	printf("\nOne-way streams, server to proxy (%d runs each; 1,000,000 x 17 B, 200,000 x the largest)\n\n"
	       "| mode | payload | send | MB/s p50 | M msg/s | MB/s min-max | notifications/msg | wake-up syscalls/msg | receiver's prefetch spells/msg | check |\n"
	       "|---|---|---|---|---|---|---|---|---|---|\n", runs);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (mode_wanted(order[i]))
			bench_stream_mode(order[i]);
	printf("\nHow to read: notifications are doorbell rings (both directions) per message;\n"
	       "wake-up syscalls are the futex wakes those rings cost (0 when the peer was\n"
	       "polling). A polling receiver prefetches the next buffer only after it\n"
	       "answered (duet_rptun_prefetches): in a stream, once per batch of returned\n"
	       "buffers at most, not per message. The proxy checks every sequence number. copy+more sends with\n"
	       "rpmsg_trysend_more: the doorbell rings when the ring is full, half of it is held\n"
	       "back, or the batch ends;\n"
	       "burst 32 sends 32 messages a call (rpmsg_trysend_burst): one lock and one\n"
	       "doorbell per call. zc+more sends zero copy with rpmsg_send_nocopy_more, whose\n"
	       "doorbell rings as copy+more's does.\n"
	       "Backoff polls with poll_backoff_us = %u: the receiver, which only receives,\n"
	       "waits up to that long after a look that finds nothing, and the sender's\n"
	       "lines stay its own meanwhile.\n",
	       backoff_us);
	return 0;
}

/* ---- one-way latency ---- */

/*
 * n one-way 17 B messages, gap_ns apart (the server keeps its loop turning
 * meanwhile), each carrying its send time; the proxy takes the time of
 * delivery in its callback (CLOCK_MONOTONIC is one clock for both
 * processes) and answers with p50, p99 and max. Prints a row.
 */
static void oneway_pattern(struct side *s, const char *what, uint32_t n, uint64_t gap_ns)
{
	char msg[17] = { 'L' };
	unsigned int got = 0, back0 = 0, back1 = 0;
	unsigned long long p50 = 0, p99 = 0, max = 0;
	uint64_t next = now_ns();

	ask_proxy(s, "P"); /* the proxy forgets older latencies */
	sscanf(s->reply, "P %*u %*u %*u %*u %u", &back0);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t t;

		while ((t = now_ns()) < next)
			if (s->mode != BLOCK && s->mode != HYBRID)
				pump(s);
		next = t + gap_ns;
		memcpy(msg + 8, &t, sizeof(t));
		while (rpmsg_trysend(&s->ept, msg, sizeof(msg)) == -EAGAIN)
			pump(s);
	}
	ask_proxy(s, "P");
	sscanf(s->reply, "P %u %llu %llu %llu %u", &got, &p50, &p99, &max, &back1);
	printf("| %-8s | %-22s | %8.2f | %8.2f | %9.2f | %5u | %6.3f |\n", mode_names[s->mode],
	       what, p50 / 1e3, p99 / 1e3, max / 1e3, got, (double)(back1 - back0) / n);
	fflush(stdout);
}

static void bench_oneway_mode(enum mode mode)
{
	struct side s;
	pid_t child;

	server_open(&s, mode, &child);
	for (int r = 0; r < runs && r < 3; r++) {
		oneway_pattern(&s, "sparse, 200 us apart", 2000, 200000);
		oneway_pattern(&s, "dense, 2 us apart", 20000, 2000);
	}
	server_close(&s, child);
}

static int bench_oneway(void)
{
	static const enum mode order[] = { POLL, BACKOFF, HYBRID, BLOCK };

	printf("\nOne-way latency, server to proxy: send to delivery in the proxy's callback, 17 B\n"
	       "(%d runs of each pattern, up to 3)\n\n"
	       "| mode | pattern | p50 us | p99 us | max us | msgs | backoffs/msg |\n"
	       "|---|---|---|---|---|---|---|\n", runs);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		if (mode_wanted(order[i]))
			bench_oneway_mode(order[i]);
	printf("\nHow to read: the cost of each waiting mode to a message that nobody answers.\n"
	       "Backoff polls with poll_backoff_us = %u: the receiver waits after an empty look\n"
	       "only in a dense stream (looks less than twice that apart), so sparse messages\n"
	       "should arrive as fast as polling ones; the dense stream here is paced (one\n"
	       "message per 2 us, fewer than one per microsecond waited), so its first waits\n"
	       "hold waiting off and backoffs/msg should be near 0 (before session 14: about\n"
	       "0.09, and p50 about half the wait). Hybrid spins %u us before blocking: sparser\n"
	       "messages find the receiver asleep, as blocking always does.\n",
	       backoff_us, spin_budget_us);
	return 0;
}

/* ---- idle ---- */

static double cpu_secs(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fgets(buf, sizeof(buf), f)) {
		char *p = strrchr(buf, ')');

		if (p)
			sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st);
	}
	fclose(f);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static int bench_idle(void)
{
	struct duet_link_config cfg = { .side = DUET_SERVER, .vdevs = vdevs, .num_vdevs = 1 };
	struct duet_link *l;
	char name[64], err[256];
	double s0, p0, s1, p1;
	pid_t child;
	int st;

	/* The link's own thread serves it (no user loop): the usual setup. */
	snprintf(name, sizeof(name), "bench-idle-%d", (int)getpid());
	cfg.name = name;
	if (duet_link_open(&l, &cfg, 5000, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_rpmsg: %s\n", err);
		return 1;
	}
	child = fork();
	if (child == 0) {
		pin(cpu_of[1]);
		execl(self_path, "bench_rpmsg", "--idle-proxy", name, (char *)NULL);
		_exit(127);
	}
	duet_link_wait_peer(l, 5000);
	sleep(1);
	s0 = cpu_secs(getpid());
	p0 = cpu_secs(child);
	sleep(10);
	s1 = cpu_secs(getpid());
	p1 = cpu_secs(child);
	printf("\nIdle link, 10 s, both sides up with rpmsg bound, nothing sent\n\n"
	       "| side | CPU seconds | share of one CPU |\n|---|---|---|\n"
	       "| server | %.2f | %.2f %% |\n| proxy | %.2f | %.2f %% |\n",
	       s1 - s0, (s1 - s0) * 10, p1 - p0, (p1 - p0) * 10);
	printf("\n(/proc/PID/stat utime+stime, %ld ticks per second.)\n", sysconf(_SC_CLK_TCK));
	duet_link_close(l, 2000, err, sizeof(err));
	waitpid(child, &st, 0);
	return 0;
}

static int idle_proxy(const char *name)
{
	struct duet_link_config cfg = { .name = name, .side = DUET_PROXY };
	struct duet_link *l;

	vhost_register_driver(&vhost_rpmsg_driver);
	if (duet_link_open(&l, &cfg, 5000, NULL, 0) < 0)
		return 1;
	while (!duet_link_stop_requested(l) && duet_link_peer_up(l))
		usleep(100000);
	duet_link_close(l, 1000, NULL, 0);
	return 0;
}

/* N polling round trips and nothing else: for counting instructions. */
static int bench_loop(uint32_t n)
{
	struct side s;
	char msg[64] = { 0 };
	pid_t child;

	server_open(&s, loop_blocking ? BLOCK : POLL, &child);
	for (uint32_t i = 0; i < n; i++)
		round_trip(&s, msg, 17);
	server_close(&s, child);
	return 0;
}

/* n looks at an idle link, polling (both sides up, nothing sent): for
 * callgrind, what a look costs (bench/callgrind-link.sh). */
static int bench_looks(uint32_t n)
{
	struct side s;
	pid_t child;

	server_open(&s, POLL, &child);
	for (uint32_t i = 0; i < n; i++)
		duet_link_poll(s.link);
	server_close(&s, child);
	return 0;
}

int main(int argc, char **argv)
{
	ssize_t len = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);

	if (len > 0)
		self_path[len] = '\0';
	else
		strcpy(self_path, "/proc/self/exe");
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 6 && !strcmp(argv[1], "--proxy")) {
		spin_budget_us = (uint32_t)atoi(argv[4]);
		backoff_us = (uint32_t)atoi(argv[5]);
		return proxy_main(argv[2], !strcmp(argv[3], "polling") ? POLL :
					   !strcmp(argv[3], "hybrid") ? HYBRID :
					   !strcmp(argv[3], "backoff") ? BACKOFF : BLOCK);
	}
	if (argc >= 3 && !strcmp(argv[1], "--idle-proxy"))
		return idle_proxy(argv[2]);
	virtio_register_driver(&virtio_rpmsg_driver);
	virtio_register_driver(&virtio_rng_driver);
	vhost_register_driver(&vhost_rng_driver);
	pick_cpus();
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--no-pin"))
			cpu_of[0] = cpu_of[1] = -1;
		else if (!strcmp(argv[i], "--rng"))
			num_vdevs = 3;
		else if (!strcmp(argv[i], "--blocking"))
			loop_blocking = true;
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--spin") && i + 1 < argc)
			spin_budget_us = (uint32_t)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--backoff") && i + 1 < argc)
			backoff_us = (uint32_t)atoi(argv[++i]);
		else if (!strcmp(argv[i], "--mode") && i + 1 < argc)
			only_mode = argv[++i];
	}
	if (runs < 1)
		runs = 1;
	pin(cpu_of[0]);
	if (argc >= 2 && strcmp(argv[1], "loop") && strcmp(argv[1], "looks")) {
		if (cpu_of[0] >= 0)
			printf("server on CPU %d, proxy on CPU %d (--no-pin: let the scheduler place them)\n",
			       cpu_of[0], cpu_of[1]);
		else
			printf("not pinned: the scheduler places server and proxy\n");
	}
	if (argc >= 2 && !strcmp(argv[1], "rtt"))
		return bench_rtt();
	if (argc >= 2 && !strcmp(argv[1], "stream"))
		return bench_stream();
	if (argc >= 2 && !strcmp(argv[1], "idle"))
		return bench_idle();
	if (argc >= 2 && !strcmp(argv[1], "duplex"))
		return bench_duplex();
	if (argc >= 2 && !strcmp(argv[1], "oneway"))
		return bench_oneway();
	if (argc >= 3 && !strcmp(argv[1], "loop"))
		return bench_loop((uint32_t)atoi(argv[2]));
	if (argc >= 3 && !strcmp(argv[1], "looks"))
		return bench_looks((uint32_t)atoi(argv[2]));
	fprintf(stderr, "usage: bench_rpmsg rtt|stream|duplex|oneway|idle [--runs N] [--spin US] [--backoff US] "
			"[--mode M] [--no-pin] [--rng] | loop N [--rng] [--blocking] | looks N [--rng]\n");
	return 2;
}
