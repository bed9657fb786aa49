/*
 * duet - the command: a server or a proxy side of a link, or the demo.
 *
 *   duet server [--name N] [--cpu NAME] [--peer NAME] [--no-spawn] [-c "cmds"]
 *   duet proxy  [--name N] [--cpu NAME] [--peer NAME] [--timeout MS] [-c "cmds"]
 *   duet demo
 *
 * Without -c, commands come from stdin: with a prompt on a terminal, line
 * by line otherwise. Link events are printed as they happen.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <duet/link.h>
#include <duet/port.h>
#include <duet/rng.h>
#include <duet/rpmsg.h>
#include <duet/rpmsg_ping.h>
#include <duet/version.h>
#include <duet/vhost.h>

#include "churn.h"

extern char **environ;

/* The demo link: rpmsg and rng driven by the server, rng driven by the
 * proxy (DESIGN.md section 5). */
static const uint8_t rpmsg_config[8] = { 0, 2, 0, 0, 0, 2, 0, 0 }; /* 512-byte buffers */
static const struct duet_vdev_desc demo_vdevs[] = {
	{ .id = VIRTIO_ID_RPMSG, .driver = DUET_SERVER, .features = 1, .num_vrings = 2,
	  .vring_num = 64, .vring_align = 16, .config_len = sizeof(rpmsg_config),
	  .config = rpmsg_config, .carveout_size = 256 * 1024 },
	{ .id = VIRTIO_ID_ENTROPY, .driver = DUET_SERVER, .num_vrings = 1, .vring_num = 8,
	  .vring_align = 16, .carveout_size = 64 * 1024 },
	{ .id = VIRTIO_ID_ENTROPY, .driver = DUET_PROXY, .num_vrings = 1, .vring_num = 8,
	  .vring_align = 16, .carveout_size = 64 * 1024 },
};

struct opts {
	enum duet_side side;
	const char *name;
	const char *cpu;
	const char *peer;
	const char *commands;
	bool spawn;
	bool serve; /* proxy started by a server: serve until told to stop */
	const char *proxy_commands; /* server: -c for the proxy it starts */
	uint32_t timeout_ms;
	uint32_t spin_us;
	uint32_t backoff_us; /* poll_backoff_us */
	const char *loop; /* NULL: the link's own thread; "poll" or "wait": ours */
};

static const char *tag = "duet";
static volatile sig_atomic_t interrupted;
static volatile pid_t watched_child;      /* the proxy the demo started */
static volatile sig_atomic_t watched_status = -1;

static void out(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

static void on_event(void *arg, enum duet_link_event ev, const char *msg)
{
	(void)arg;
	(void)ev;
	out("[%s] %s\n", tag, msg);
}

/* Dropped rpmsg messages go to stderr: the first ten, then every 1000th. */
static void on_drop(struct rpmsg_device *rdev, const struct rpmsg_drop *d, void *priv)
{
	static unsigned long n;

	(void)priv;
	if (++n <= 10 || n % 1000 == 0)
		fprintf(stderr, "[%s] rpmsg %s: dropped (%lu so far): %s (src %u, dst %u, len %u)\n",
			tag, rpmsg_get_cpuname(rdev), n, d->why, d->src, d->dst, d->len);
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Reap spawned proxies so a dead one is not a zombie that looks alive. */
static void on_child(int sig)
{
	int saved = errno;

	pid_t pid;
	int st;

	(void)sig;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		if (pid == watched_child)
			watched_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	errno = saved;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: duet server [options] [-c \"cmd; cmd\"]\n"
		"       duet proxy  [options] [-c \"cmd; cmd\"]\n"
		"       duet demo\n"
		"       duet --version\n"
		"options:\n"
		"  --name NAME     link name (default duet): the region is /dev/shm/duet-NAME\n"
		"  --cpu NAME      this side's cpu name (default server / proxy;\n"
		"                  1-31 letters, digits, '-' or '_')\n"
		"  --peer NAME     the other side's cpu name (default proxy / server)\n"
		"  --no-spawn      server: wait for a proxy started by hand\n"
		"  --timeout MS    proxy: how long to wait for the server (default 5000)\n"
		"  --spin US       doorbell spin before blocking (default 0)\n"
		"  --loop poll|wait  run the link's loop on a thread of this program\n"
		"                  (user_loop), polling (duet_link_poll, yielding the\n"
		"                  CPU after a look that finds nothing) or waiting\n"
		"                  (duet_link_wait, after --spin); default: the link's\n"
		"                  own thread\n"
		"  --backoff US    polling, a dense stream only coming in: wait up to US\n"
		"                  after a look that finds nothing (poll_backoff_us)\n"
		"  -c CMDS         run these commands (separated by ';') and exit\n"
		"  --help          this text\n"
		"commands:\n"
		"  status          the link, its devices and both doorbells\n"
		"  wait [MS]       until the peer is up and every device with a driver is bound\n"
		"  rng DEV N       read N bytes from virtio-rng device DEV (0, 1, ...) as hexdump\n"
		"  rpmsg ping CPU|all TIMES LEN CMD SLEEP_MS\n"
		"                  ping the peer's rpmsg-ping endpoint (LEN may be 'max');\n"
		"                  CMD bit 0: wait for the\n"
		"                  echo, bit 1: check data, bit 2: random length up to LEN,\n"
		"                  bit 3: have each echoed without waiting (a two-way flood)\n"
		"  rpmsg churn CPU|all ROUNDS OPEN\n"
		"                  create ROUNDS named endpoints, OPEN at a time (1-64),\n"
		"                  each bound by the peer's echo service over the name\n"
		"                  service, echoed 1-4 times with data checks, destroyed\n"
		"  rpmsg dump CPU|all   rings, endpoints and buffers of the rpmsg devices\n"
		"  rpmsg stats CPU|all  what this side's ping service received, and drops\n"
		"  reset           server: the link starts over (the proxy attaches again)\n"
		"  panic           server: the proxy aborts (to test recovery)\n"
		"  help            this list\n"
		"  quit            leave (a server stops its proxy first)\n");
}

static void hexdump(const uint8_t *p, size_t n)
{
	for (size_t off = 0; off < n; off += 16) {
		char ascii[17];
		size_t k;

		printf("%08zx ", off);
		for (k = 0; k < 16; k++) {
			if (off + k < n) {
				printf(" %02x", p[off + k]);
				ascii[k] = p[off + k] >= 32 && p[off + k] < 127 ? (char)p[off + k] : '.';
			} else {
				printf("   ");
				ascii[k] = ' ';
			}
		}
		ascii[16] = '\0';
		printf("  |%s|\n", ascii);
	}
	fflush(stdout);
}

static bool parse_u32(const char *s, uint32_t *v)
{
	char *end;
	unsigned long x;

	/* A digit first: strtoul would skip blanks and take a sign, and on a
	 * 32-bit host "-1" would pass as 4294967295. */
	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	x = strtoul(s, &end, 0);
	if (errno || *end || x > UINT32_MAX)
		return false;
	*v = (uint32_t)x;
	return true;
}

static int cmd_wait(struct duet_link *link, uint32_t ms)
{
	uint64_t end = duet_clock_ms() + ms;

	while (!duet_link_ready(link)) {
		if (duet_clock_ms() >= end) {
			out("wait: not ready within %u ms (peer %s)\n", ms,
			    duet_link_peer_up(link) ? "up, devices not all bound" : "not attached");
			return -ETIMEDOUT;
		}
		usleep(5000);
	}
	out("ready\n");
	return 0;
}

static int cmd_rng(uint32_t dev, uint32_t n)
{
	struct virtio_device *vdev = virtio_rng_get(dev);
	uint8_t *buf;
	int ret;

	if (!vdev) {
		out("rng: no virtio-rng device %u on this side (see 'status')\n", dev);
		return -ENODEV;
	}
	if (n == 0 || n > 16u << 20) {
		out("rng: read 1 to 16777216 bytes\n");
		return -EINVAL;
	}
	buf = malloc(n);
	if (!buf) {
		out("rng: no memory for %u bytes\n", n);
		return -ENOMEM;
	}
	ret = virtio_rng_read(vdev, buf, n, 5000);
	if (ret < 0) {
		out("rng: read failed: %s\n", strerror(-ret));
	} else {
		out("rng %u: %d bytes\n", dev, ret);
		hexdump(buf, n < 256 ? (size_t)ret : 0);
		if (ret != (int)n)
			out("rng: short read (%d of %u bytes)\n", ret, n);
	}
	free(buf);
	return ret < 0 ? ret : (ret == (int)n ? 0 : -EIO);
}

static void print_ns(const char *what, uint64_t ns)
{
	out("%s: %llu s, %llu ns\n", what, (unsigned long long)(ns / 1000000000u),
	    (unsigned long long)(ns % 1000000000u));
}

/* Run fn on each rpmsg device whose peer is `cpu` (or all of them). Each
 * is held while it is used: the peer may go meanwhile, and the link's
 * thread remove the device. */
static int each_rpmsg(const char *cpu, int (*fn)(struct rpmsg_device *, void *), void *arg)
{
	int found = 0, ret = 0;

	for (unsigned int i = 0;; i++) {
		struct rpmsg_device *rdev = rpmsg_hold_device(i);

		if (!rdev)
			break;
		if (!strcmp(cpu, "all") || !strcmp(cpu, rpmsg_get_cpuname(rdev))) {
			found++;
			if (ret == 0)
				ret = fn(rdev, arg);
		}
		rpmsg_release_device(rdev);
	}
	if (!found) {
		out("rpmsg: no rpmsg device with cpu '%s' (see 'status')\n", cpu);
		return -ENODEV;
	}
	return ret;
}

struct ping_args {
	uint32_t times, len, cmd, sleep_ms;
	bool max; /* LEN was "max": the largest payload of the device */
};

static int ping_one(struct rpmsg_device *rdev, void *arg)
{
	struct ping_args *a = arg;
	struct rpmsg_ping_result r;
	char cpu[32];
	int ret;

	/* The name now: a device removed during the ping has none left. */
	snprintf(cpu, sizeof(cpu), "%s", rpmsg_get_cpuname(rdev));
	ret = rpmsg_ping(rdev, a->times, a->max ? UINT32_MAX : a->len, a->cmd, a->sleep_ms, &r);

	if (ret < 0) {
		out("rpmsg ping %s: %s%s\n", cpu, strerror(-ret),
		    ret == -EINVAL ? " (LEN must be 16 up to the buffer's payload room)" : "");
		return ret;
	}
	out("ping times: %u\n", r.times);
	out("buffer_len: %u, send_len: %u\n", r.buffer_len, r.send_len);
	print_ns("avg", r.times ? r.total_ns / r.times : 0);
	print_ns("min", r.min_ns);
	print_ns("max", r.max_ns);
	out("rate: %f Mbits/sec\n",
	    r.total_ns ? (double)r.bytes * 8.0 * 1000.0 / (double)r.total_ns : 0.0);
	out("p50: %llu ns, p99: %llu ns\n", (unsigned long long)r.p50_ns,
	    (unsigned long long)r.p99_ns);
	if (r.failed)
		out("rpmsg ping %s: %u echoes missing or wrong\n", cpu, r.failed);
	return r.failed ? -EIO : 0;
}

static int dump_one(struct rpmsg_device *rdev, void *arg)
{
	char buf[4096];

	(void)arg;
	rpmsg_dump(rdev, buf, sizeof(buf));
	out("%s", buf);
	return 0;
}

static int stats_one(struct rpmsg_device *rdev, void *arg)
{
	struct rpmsg_ping_counters c;
	struct rpmsg_stats s;

	(void)arg;
	rpmsg_ping_counters(rdev, &c);
	rpmsg_get_stats(rdev, &s);
	out("rpmsg %s: ping received %llu, out of order %llu, bad data %llu; "
	    "rx %u, tx %u, waits %u, stashed %u, dropped length %u, destination %u, "
	    "name service %u, other %u; announcements queued %u\n",
	    rpmsg_get_cpuname(rdev), (unsigned long long)c.received,
	    (unsigned long long)c.out_of_order, (unsigned long long)c.bad_data, s.rx_msgs,
	    s.tx_msgs, s.tx_waits, s.rx_stashed, s.dropped_len, s.dropped_dst, s.dropped_ns,
	    s.dropped_other, s.ns_deferred);
	return 0;
}

struct churn_args {
	uint32_t rounds, open;
};

static int churn_one(struct rpmsg_device *rdev, void *arg)
{
	struct churn_args *a = arg;
	struct churn_result r;
	const char *why;
	char cpu[32];
	int ret;

	snprintf(cpu, sizeof(cpu), "%s", rpmsg_get_cpuname(rdev));
	ret = churn_run(rdev, a->rounds, a->open, &r, &why);
	if (ret < 0)
		out("rpmsg churn %s: %s: %s (after %u endpoints)\n", cpu, strerror(-ret), why,
		    r.created);
	else
		out("churn %s: %u endpoints (%u destroyed before they bound), %u echoes checked\n",
		    cpu, r.created, r.abandoned, r.echoes);
	return ret;
}

static int cmd_rpmsg(int argc, char **argv)
{
	struct ping_args a;
	struct churn_args ca;

	if (argc >= 3 && !strcmp(argv[1], "ping")) {
		a.max = argc == 7 && !strcmp(argv[4], "max");
		a.len = 0;
		if (argc != 7 || !parse_u32(argv[3], &a.times) ||
		    (!a.max && !parse_u32(argv[4], &a.len)) ||
		    !parse_u32(argv[5], &a.cmd) || !parse_u32(argv[6], &a.sleep_ms) || !a.times) {
			out("usage: rpmsg ping CPU|all TIMES LEN CMD SLEEP_MS (e.g. rpmsg ping all 1000 17 3 0)\n");
			return -EINVAL;
		}
		if (a.cmd & ~RPMSG_PING_CMDS) {
			out("rpmsg ping: CMD is 0 to %u (its bits: see 'help')\n", RPMSG_PING_CMDS);
			return -EINVAL;
		}
		return each_rpmsg(argv[2], ping_one, &a);
	}
	if (argc >= 2 && !strcmp(argv[1], "churn")) {
		if (argc != 5 || !parse_u32(argv[3], &ca.rounds) || !parse_u32(argv[4], &ca.open) ||
		    !ca.rounds || !ca.open || ca.open > CHURN_MAX_OPEN) {
			out("usage: rpmsg churn CPU|all ROUNDS OPEN, OPEN 1 to %u (e.g. rpmsg churn all 100 8)\n",
			    CHURN_MAX_OPEN);
			return -EINVAL;
		}
		return each_rpmsg(argv[2], churn_one, &ca);
	}
	if (argc == 3 && !strcmp(argv[1], "dump"))
		return each_rpmsg(argv[2], dump_one, NULL);
	if (argc == 3 && !strcmp(argv[1], "stats"))
		return each_rpmsg(argv[2], stats_one, NULL);
	out("usage: rpmsg ping|churn|dump|stats CPU|all ... (try 'help')\n");
	return -EINVAL;
}

/* Run one command line. Returns 1 to quit, 0 done, < 0 failed. */
static int run_command(struct duet_link *link, char *line)
{
	char *argv[8];
	int argc = 0;
	uint32_t a, b;

	for (char *tok = strtok(line, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n")) {
		if (argc == 8) {
			out("too many words: no command takes more than 7 (try 'help')\n");
			return -EINVAL;
		}
		argv[argc++] = tok;
	}
	if (argc == 0)
		return 0;
	/* A word more than a command takes is a mistake, not a detail. */
	if (argc > 1 && (!strcmp(argv[0], "quit") || !strcmp(argv[0], "exit") ||
			 !strcmp(argv[0], "help") || !strcmp(argv[0], "status") ||
			 !strcmp(argv[0], "reset") || !strcmp(argv[0], "panic"))) {
		out("%s takes no arguments (try 'help')\n", argv[0]);
		return -EINVAL;
	}
	if (!strcmp(argv[0], "quit") || !strcmp(argv[0], "exit"))
		return 1;
	if (!strcmp(argv[0], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[0], "status")) {
		char buf[4096];

		duet_link_describe(link, buf, sizeof(buf));
		out("%s", buf);
		return 0;
	}
	if (!strcmp(argv[0], "wait")) {
		if (argc > 2) {
			out("usage: wait [MS] (e.g. wait 5000)\n");
			return -EINVAL;
		}
		if (argc > 1 && !parse_u32(argv[1], &a)) {
			out("wait: MS must be a number\n");
			return -EINVAL;
		}
		return cmd_wait(link, argc > 1 ? a : 5000);
	}
	if (!strcmp(argv[0], "reset") || !strcmp(argv[0], "panic")) {
		char err[200];
		int ret = duet_link_command(link, !strcmp(argv[0], "reset") ? DUET_LINK_CMD_RESET
									      : DUET_LINK_CMD_PANIC,
					    2000, err, sizeof(err));

		out("%s: %s\n", argv[0], ret == 0 ? "acknowledged by the proxy" : err);
		return ret;
	}
	if (!strcmp(argv[0], "rpmsg"))
		return cmd_rpmsg(argc, argv);
	if (!strcmp(argv[0], "rng")) {
		if (argc != 3 || !parse_u32(argv[1], &a) || !parse_u32(argv[2], &b)) {
			out("usage: rng DEV N (e.g. rng 0 128)\n");
			return -EINVAL;
		}
		return cmd_rng(a, b);
	}
	out("unknown command '%s' (try 'help')\n", argv[0]);
	return -EINVAL;
}

/* Run "a; b; c". Returns 1 when one of them was quit, or the first error. */
static int run_commands(struct duet_link *link, const char *cmds)
{
	char *copy = strdup(cmds), *save = NULL;
	int ret = 0;

	if (!copy)
		return -ENOMEM;
	for (char *c = strtok_r(copy, ";", &save); c && ret == 0; c = strtok_r(NULL, ";", &save))
		ret = run_command(link, c);
	free(copy);
	return ret;
}

static pid_t spawn_proxy(const struct opts *o)
{
	/* The proxy runs its loop as this side does. */
	char backoff[16], *argv[16] = { "duet", "proxy", "--serve", "--name", (char *)o->name,
			   "--cpu", (char *)(o->peer ? o->peer : "proxy"),
			   "--peer", (char *)(o->cpu ? o->cpu : "server") };
	int argc = 9;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int ret;

	if (o->loop) {
		argv[argc++] = "--loop";
		argv[argc++] = (char *)o->loop;
	}
	if (o->backoff_us) {
		snprintf(backoff, sizeof(backoff), "%u", (unsigned int)o->backoff_us);
		argv[argc++] = "--backoff";
		argv[argc++] = backoff;
	}
	if (o->proxy_commands) {
		argv[argc++] = "-c";
		argv[argc++] = (char *)o->proxy_commands;
	}
	argv[argc] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	ret = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (ret) {
		out("[%s] cannot start the proxy: %s\n", tag, strerror(ret));
		return -1;
	}
	return pid;
}

/* Commands from stdin: each error is reported as it happens; leaving
 * (quit or end of input) is success. -c is the fail-fast form. */
static int interactive(struct duet_link *link, const struct opts *o)
{
	bool tty = isatty(0);
	char line[512];

	for (;;) {
		if (o->serve && duet_link_stop_requested(link))
			return 0;
		if (tty) {
			printf("%s> ", tag);
			fflush(stdout);
		}
		if (!fgets(line, sizeof(line), stdin))
			return 0;
		/* A line cut short would run what is left of it as another
		 * command: refuse the whole line. */
		if (!strchr(line, '\n') && !feof(stdin)) {
			int c;

			while ((c = getchar()) != EOF && c != '\n')
				;
			out("line too long: at most %zu characters\n", sizeof(line) - 2);
			continue;
		}
		if (run_command(link, line) == 1)
			return 0;
	}
}

static int serve_until_stopped(struct duet_link *link)
{
	while (!interrupted && !duet_link_stop_requested(link))
		usleep(20000);
	return 0;
}

/* The link's loop, when this program runs it (--loop): as a firmware's
 * main loop would, until the program leaves. */
struct loop {
	struct duet_link *link;
	bool poll;
	_Atomic bool quit;
	pthread_t thread;
};

static void *run_loop(void *arg)
{
	struct loop *lp = arg;

	while (!atomic_load(&lp->quit)) {
		if (!lp->poll)
			duet_link_wait(lp->link, DUET_LINK_FOREVER);
		else if (duet_link_poll(lp->link) == 0)
			sched_yield(); /* a shared machine: let the other side's loop run */
	}
	return NULL;
}

static int start_loop(struct loop *lp, struct duet_link *link, const char *kind)
{
	lp->link = link;
	lp->poll = !strcmp(kind, "poll");
	atomic_store(&lp->quit, false);
	return pthread_create(&lp->thread, NULL, run_loop, lp);
}

static void stop_loop(struct loop *lp)
{
	atomic_store(&lp->quit, true);
	duet_link_wake(lp->link); /* a wait without a limit ends */
	pthread_join(lp->thread, NULL);
}

static int run_side(const struct opts *o)
{
	struct duet_link_config cfg = {
		.name = o->name, .side = o->side, .local_cpu = o->cpu, .remote_cpu = o->peer,
		.spin_us = o->spin_us, .poll_backoff_us = o->backoff_us, .event = on_event,
		.user_loop = o->loop != NULL,
	};
	struct loop lp;
	struct duet_link *link = NULL;
	char err[256];
	pid_t child = -1;
	int ret;

	tag = o->cpu ? o->cpu : (o->side == DUET_SERVER ? "server" : "proxy");
	if (o->side == DUET_SERVER) {
		cfg.vdevs = demo_vdevs;
		cfg.num_vdevs = sizeof(demo_vdevs) / sizeof(demo_vdevs[0]);
	}
	virtio_register_drivers();
	vhost_register_drivers();
	if (rpmsg_ping_register() < 0)
		fprintf(stderr, "[%s] rpmsg: no ping service (out of memory)\n", tag);
	if (churn_service_register() < 0)
		fprintf(stderr, "[%s] rpmsg: no churn echo service (out of memory)\n", tag);
	rpmsg_set_drop_cb(on_drop, NULL);
	ret = duet_link_open(&link, &cfg, o->timeout_ms, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "duet %s: %s\n", o->side == DUET_SERVER ? "server" : "proxy", err);
		return 1;
	}
	out("[%s] link '%s' %s\n", tag, o->name, o->side == DUET_SERVER ? "created" : "attached");
	if (o->loop && start_loop(&lp, link, o->loop) != 0) {
		out("[%s] cannot start the link's loop\n", tag);
		duet_link_close(link, 1000, err, sizeof(err));
		return 1;
	}
	if (o->side == DUET_SERVER && o->spawn) {
		child = spawn_proxy(o);
		watched_child = child;
		if (child < 0) {
			if (o->loop)
				stop_loop(&lp);
			duet_link_close(link, 1000, err, sizeof(err));
			return 1;
		}
	}
	if (o->commands)
		ret = run_commands(link, o->commands);
	else if (o->serve)
		ret = serve_until_stopped(link);
	else
		ret = interactive(link, o);
	if (ret == 1)
		ret = 0;
	if (o->serve && o->commands && ret == 0)
		ret = serve_until_stopped(link);
	/* Before the close: the loop must not look at a link that is gone. */
	if (o->loop)
		stop_loop(&lp);
	if (duet_link_close(link, 2000, err, sizeof(err)) < 0) {
		out("[%s] %s\n", tag, err);
		ret = ret ? ret : -ETIMEDOUT;
	} else if (o->side == DUET_SERVER) {
		out("[%s] link '%s' closed, region removed\n", tag, o->name);
	}
	if (child > 0) {
		for (int i = 0; i < 300 && watched_status < 0; i++)
			usleep(10000);
		if (o->proxy_commands && watched_status != 0) {
			out("[%s] the proxy's part failed (exit status %d)\n", tag, (int)watched_status);
			ret = ret ? ret : -EIO;
		}
	}
	churn_service_unregister();
	return ret < 0 ? 1 : 0;
}

/*
 * The demo: this process is the server and starts the proxy. Pings with
 * data checks both sizes, 128 bytes of rng each way (the proxy reads its
 * own and reports through its exit status), the dump, then stop. Every
 * step must work for exit status 0.
 */
static int run_demo(void)
{
	struct opts o = {
		.side = DUET_SERVER, .name = "demo", .spawn = true, .timeout_ms = 5000,
		.proxy_commands = "wait 10000; rng 0 128",
		.commands = "wait 10000; status; rpmsg ping proxy 1000 17 3 0; "
			    "rpmsg ping proxy 1000 max 3 0; rng 0 128; rpmsg dump all; quit",
	};
	int ret;

	out("duet demo: server and proxy as two processes over /dev/shm/duet-demo\n");
	ret = run_side(&o);
	out("duet demo: %s\n", ret == 0 ? "every step worked" : "FAILED (see above)");
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "name", required_argument, NULL, 'n' },   { "cpu", required_argument, NULL, 'u' },
		{ "peer", required_argument, NULL, 'p' },   { "no-spawn", no_argument, NULL, 'N' },
		{ "timeout", required_argument, NULL, 't' }, { "spin", required_argument, NULL, 's' },
		{ "serve", no_argument, NULL, 'S' },         { "help", no_argument, NULL, 'h' },
		{ "loop", required_argument, NULL, 'l' },   { "backoff", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .name = "duet", .spawn = true, .timeout_ms = 5000 };
	struct sigaction sa = { .sa_handler = on_child, .sa_flags = SA_RESTART | SA_NOCLDSTOP };
	int c;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "--version")) {
		/* The library's, which a shared build may load at another version. */
		unsigned long v = duet_version();

		printf("duet %lu.%lu.%lu\n", v >> 16, (v >> 8) & 0xff, v & 0xff);
		return 0;
	}
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(argv[1], "demo"))
		return run_demo();
	if (!strcmp(argv[1], "server")) {
		o.side = DUET_SERVER;
	} else if (!strcmp(argv[1], "proxy")) {
		o.side = DUET_PROXY;
	} else {
		fprintf(stderr, "duet: unknown mode '%s': use server, proxy or demo (duet --help)\n",
			argv[1]);
		return 2;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'n': o.name = optarg; break;
		case 'u': o.cpu = optarg; break;
		case 'p': o.peer = optarg; break;
		case 'N': o.spawn = false; break;
		case 'S': o.serve = true; break;
		case 'l':
			if (strcmp(optarg, "poll") && strcmp(optarg, "wait")) {
				fprintf(stderr, "duet: --loop is poll or wait\n");
				return 2;
			}
			o.loop = optarg;
			break;
		case 'c': o.commands = optarg; break;
		case 't':
		case 's':
		case 'b':
			if (!parse_u32(optarg, c == 't' ? &o.timeout_ms : c == 's' ? &o.spin_us : &o.backoff_us)) {
				fprintf(stderr, "duet: --%s takes a number\n",
					c == 't' ? "timeout" : c == 's' ? "spin" : "backoff");
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "duet: unexpected argument '%s' (commands go after -c)\n", argv[optind]);
		return 2;
	}
	return run_side(&o);
}
