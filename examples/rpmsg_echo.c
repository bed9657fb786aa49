/*
 * rpmsg_echo - the smallest two-process duet program: an rpmsg endpoint
 * named "echo" on each side of one link, the server sending, the proxy
 * echoing back.
 *
 *   rpmsg_echo                  both sides: forks the proxy, then serves
 *   rpmsg_echo server NAME      the server alone (virtio-rpmsg, the driver)
 *   rpmsg_echo proxy NAME       the proxy alone (vhost-rpmsg, the device)
 *
 * On two cores the same calls run on each core; only the link (here a
 * POSIX shared-memory region, on a board the rptun transport over shared
 * RAM) differs. Exits 0 when every echo came back intact.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <duet/link.h>
#include <duet/port.h>
#include <duet/rpmsg.h>
#include <duet/vhost.h>
#include <duet/virtio.h>

#define MESSAGES 100
#define TIMEOUT_MS 5000

/* One rpmsg device, driven by the server: 64-entry rings of 512-byte
 * buffers (the config space is little-endian) and room for the buffers. */
static const uint8_t rpmsg_config[8] = { 0, 2, 0, 0, 0, 2, 0, 0 };
static const struct duet_vdev_desc vdevs[] = {
	{ .id = VIRTIO_ID_RPMSG, .driver = DUET_SERVER, .features = 1 /* name service */,
	  .num_vrings = 2, .vring_num = 64, .vring_align = 16,
	  .config_len = sizeof(rpmsg_config), .config = rpmsg_config,
	  .carveout_size = 256 * 1024 },
};

static void sleep_10ms(void)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

/* The server's view of the latest echo, filled on the link's thread. */
struct reply {
	struct duet_event *arrived;
	char text[64];
};

/* Proxy: send each message back to where it came from. Callbacks run on
 * the link's service thread; sending from one is allowed. */
static int echo_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	(void)priv;
	return rpmsg_sendto(ept, data, (int)len, src) < 0;
}

/* Server: keep the echo (data points into shared memory, valid only
 * during the callback) and wake the sender. */
static int reply_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	struct reply *r = ept->priv;

	(void)src;
	(void)priv;
	if (len >= sizeof(r->text))
		len = sizeof(r->text) - 1;
	memcpy(r->text, data, len);
	r->text[len] = '\0';
	duet_event_post(r->arrived);
	return 0;
}

/* Both sides: the link up, the rpmsg device bound, and an endpoint "echo"
 * (each announces its own). A sender waits until its endpoint is bound to
 * the peer's (dest any: bound by the peer's announcement); the echoing side
 * need not, it answers to each message's source. */
static int open_echo(struct duet_link *link, struct rpmsg_endpoint *ept, rpmsg_ept_cb cb,
		     bool wait_bound, struct rpmsg_device **rdev)
{
	int ms, ret;

	for (ms = 0; !duet_link_ready(link) || !rpmsg_get_device(0); ms += 10) {
		if (ms >= TIMEOUT_MS)
			return -ETIMEDOUT;
		sleep_10ms();
	}
	*rdev = rpmsg_hold_device(0); /* good until released, even if the peer goes */
	ret = rpmsg_create_ept(ept, *rdev, "echo", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY, cb, NULL);
	for (ms = 0; ret == 0 && wait_bound && !rpmsg_is_ept_ready(ept); ms += 10) {
		if (ms >= TIMEOUT_MS)
			ret = -ETIMEDOUT;
		sleep_10ms();
	}
	return ret;
}

static void close_echo(struct rpmsg_endpoint *ept, struct rpmsg_device *rdev)
{
	if (ept->rdev) /* created */
		rpmsg_destroy_ept(ept);
	if (rdev)
		rpmsg_release_device(rdev);
}

static int serve(struct duet_link *link)
{
	struct rpmsg_endpoint ept = { 0 };
	struct rpmsg_device *rdev = NULL;
	struct reply r = { 0 };
	char msg[32];
	int i, ret;

	ret = duet_event_create(&r.arrived);
	if (ret < 0)
		return ret;
	ept.priv = &r;
	ret = open_echo(link, &ept, reply_cb, true, &rdev);
	for (i = 0; ret == 0 && i < MESSAGES; i++) {
		snprintf(msg, sizeof(msg), "hello %d", i);
		ret = rpmsg_send(&ept, msg, (int)strlen(msg)); /* bytes sent, or -errno */
		if (ret >= 0)
			ret = duet_event_wait(r.arrived, TIMEOUT_MS);
		if (ret == 0 && strcmp(r.text, msg) != 0)
			ret = -EBADMSG;
		if (ret < 0)
			break;
	}
	if (ret == 0)
		printf("server: %d echoes came back intact, the last \"%s\"\n", i, r.text);
	else
		fprintf(stderr, "server: message %d: %s\n", i, strerror(-ret));
	close_echo(&ept, rdev);
	duet_event_destroy(r.arrived);
	return ret;
}

static int echo_until_stopped(struct duet_link *link)
{
	struct rpmsg_endpoint ept = { 0 };
	struct rpmsg_device *rdev = NULL;
	int ret = open_echo(link, &ept, echo_cb, false, &rdev);

	if (ret == 0)
		printf("proxy: echoing\n");
	else
		fprintf(stderr, "proxy: %s\n", strerror(-ret));
	while (ret == 0 && !duet_link_stop_requested(link) && duet_link_peer_up(link))
		sleep_10ms();
	close_echo(&ept, rdev);
	return ret;
}

static int run(enum duet_side side, const char *name)
{
	struct duet_link_config cfg = { .name = name, .side = side };
	struct duet_link *link = NULL;
	char err[256];
	int ret;

	if (side == DUET_SERVER) {
		cfg.vdevs = vdevs;
		cfg.num_vdevs = sizeof(vdevs) / sizeof(vdevs[0]);
	}
	/* Before the link: each side's drivers bind its devices as they come. */
	virtio_register_drivers();
	vhost_register_drivers();
	ret = duet_link_open(&link, &cfg, TIMEOUT_MS, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "%s: %s\n", side == DUET_SERVER ? "server" : "proxy", err);
		return 1;
	}
	ret = side == DUET_SERVER ? serve(link) : echo_until_stopped(link);
	/* The server's close stops the proxy and removes the region. */
	if (duet_link_close(link, TIMEOUT_MS, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		ret = ret ? ret : -EIO;
	}
	return ret < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	char name[32];
	pid_t proxy;
	int status, ret;

	if (argc == 3 && !strcmp(argv[1], "server"))
		return run(DUET_SERVER, argv[2]);
	if (argc == 3 && !strcmp(argv[1], "proxy"))
		return run(DUET_PROXY, argv[2]);
	if (argc != 1) {
		fprintf(stderr, "usage: rpmsg_echo [server NAME | proxy NAME]\n");
		return 2;
	}
	/* Both: a link of our own name, the proxy a child process (forked
	 * before any thread exists). */
	snprintf(name, sizeof(name), "echo-%d", (int)getpid());
	proxy = fork();
	if (proxy < 0) {
		perror("fork");
		return 1;
	}
	if (proxy == 0) {
		ret = run(DUET_PROXY, name);
		fflush(NULL); /* _exit flushes nothing; exit would run the parent's atexit too */
		_exit(ret);
	}
	ret = run(DUET_SERVER, name);
	if (waitpid(proxy, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "rpmsg_echo: the proxy failed\n");
		ret = 1;
	}
	return ret;
}
