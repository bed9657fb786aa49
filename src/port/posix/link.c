/*
 * link.c - a link between two processes over one POSIX shared memory
 * object: the region's header, the server's and proxy's life cycles, and
 * the service thread that serves the doorbell and watches the peer.
 *
 * Region: [header | doorbells] at 0, the resource table at TABLE_OFFSET,
 * the carveouts from CARVE_DA. Every address in it is an offset, so each
 * process maps it anywhere. The header is the peer's too: it is read with
 * atomics and its strings are copied and terminated before use.
 */
#define _GNU_SOURCE
#include <duet/link.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <duet/doorbell.h>
#include <duet/port.h>
#include <duet/vhost.h>

#include "backoff.h"

/* Where shm_open keeps its regions (glibc, on Linux): a region is laid out
 * there unnamed, then named (server_open). */
#define SHM_DIR "/dev/shm"

#define HDR_MAGIC 0x54455544u /* "DUET" */
#define HDR_VERSION 1u
#define BELL_OFFSET 1024u
#define TABLE_OFFSET 4096u
#define TABLE_SIZE 8192u
#define CARVE_DA (TABLE_OFFSET + TABLE_SIZE)
#define LINK_ID (DUET_DOORBELL_IDS - 1u)  /* doorbell id for link events */
#define LINK_ALL (DUET_DOORBELL_IDS - 2u) /* every vring */
_Static_assert(LINK_ALL >= DUET_MAX_NOTIFYID, "link ids overlap vring ids");
#define NAME_LEN 32

/* ST_CLOSING: a server past its close's point of no return, which no new
 * proxy attaches to, though an attached one still takes its stop.
 * ST_ATTACHING: a proxy whose devices are starting, and may already have
 * taken from the server's rings. */
enum { ST_ABSENT = 0, ST_READY, ST_STOPPED, ST_REFUSED, ST_CLOSING, ST_ATTACHING };
enum { CMD_NONE = 0 }; /* then enum duet_link_cmd */

struct link_side {
	_Atomic uint32_t pid;
	_Atomic uint32_t state;
	char name[NAME_LEN]; /* the name this side calls itself */
};

struct link_hdr {
	_Atomic uint32_t magic; /* written last by the server */
	uint32_t version;
	uint32_t region_size;
	uint32_t table_offset;
	uint32_t table_size;
	_Atomic uint32_t generation;
	char cpu[2][NAME_LEN]; /* the server's names for itself and its proxy */
	struct link_side side[2];
	_Atomic uint32_t cmd;
	_Atomic uint32_t cmd_seq;
	_Atomic uint32_t cmd_ack;
	_Atomic uint32_t reset_epoch[DUET_MAX_VDEVS]; /* per vdev: driver resets */
};

_Static_assert(sizeof(struct link_hdr) <= BELL_OFFSET, "header overlaps the doorbells");
/* tests/test_link.c plays a broken or hostile peer by writing these words
 * at these offsets: a change of layout changes HDR_VERSION and the tests. */
_Static_assert(offsetof(struct link_hdr, version) == 4 &&
		       offsetof(struct link_hdr, generation) == 20 &&
		       offsetof(struct link_hdr, side[DUET_SERVER].pid) == 88 &&
		       offsetof(struct link_hdr, side[DUET_PROXY].state) == 132 &&
		       offsetof(struct link_hdr, cmd) == 168 &&
		       offsetof(struct link_hdr, cmd_seq) == 172 &&
		       offsetof(struct link_hdr, cmd_ack) == 176,
	       "the header's layout moved: update HDR_VERSION and tests/test_link.c");

struct duet_link {
	struct duet_link_config cfg;
	char path[64];
	char local[NAME_LEN], remote[NAME_LEN];
	enum duet_side me, peer;
	int fd;
	uint8_t *region;
	size_t size;
	struct link_hdr *hdr;
	struct duet_doorbell *bell; /* [side]: rung to wake that side */
	struct duet_rptun *rptun;
	/* rptun and the mapping, against the service thread. The port's
	 * futex mutex, not pthread's: a polling loop takes it at every look
	 * and a blocking one at every wake-up, and it costs a third. */
	struct duet_mutex *lock;
	/* The lock's condition (link_broadcast, cond_wait_ms): a count that
	 * every broadcast moves under the lock, and a futex on it. */
	_Atomic uint32_t cond_seq;
	unsigned int cond_waiters; /* under the lock */
	pthread_t thread;
	bool thread_started;
	_Atomic bool quit;
	_Atomic bool peer_up;
	_Atomic int peer_pid;
	_Atomic bool stop_requested;
	/* Server: a reset was sent, and the proxy leaves for it (proxy_reset);
	 * set before the command, so the watch that sees it go finds it, and
	 * cleared once this side has started over (server_restart). */
	_Atomic bool reset_pending;
	uint32_t generation; /* proxy: of the server it attached to */
	uint32_t cmd_seen;
	uint32_t refused_pid;
	_Atomic uint32_t rung;
	uint32_t loop_seen; /* user loop: the doorbell seq at its last take */
	/* User loop: this side's doorbell as the loop's last dispatch found
	 * it. Only the loop thread reads or writes it, and the mapping it
	 * points into stays until that thread lets go (see retire). */
	struct duet_doorbell *loop_bell;
	uint8_t *stale;      /* a detached mapping the loop may still wait on */
	size_t stale_size;
	uint32_t wake_seq;   /* duet_link_wake calls, for a loop with no doorbell */
	uint32_t loop_wake;  /* wake_seq at the loop's last dispatch */
	duet_rptun_callback incoming; /* where the doorbell's ids go */
	struct poll_backoff backoff; /* polling loop: when to wait (backoff.h) */
	_Atomic uint32_t backoffs;
	/* The polling loop set `polled` since it last cleared it. Only that
	 * loop's thread sets it, so the thread that is about to sleep knows
	 * without the lock whether there is anything to undo. */
	_Atomic bool said_polled;
};

static void say(struct duet_link *l, enum duet_link_event ev, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (l->cfg.event)
		l->cfg.event(l->cfg.arg, ev, msg);
	/* A user loop may wait without a timeout: every change of the link's
	 * state wakes it, so that it looks again. Only the service thread
	 * (or open and close) says things, and only it moves l->bell. The
	 * wake-up call is made whatever the loop published: the change may
	 * be the peer's death, and a peer killed as it rang can leave the
	 * loop asleep where no ring reaches it (duet_doorbell_wake; the
	 * soak's ENOTCONN of sessions 45-46). */
	if (l->cfg.user_loop && l->bell)
		duet_doorbell_wake(&l->bell[l->me], LINK_ID);
}

static int fail(char *err, size_t errlen, int ret, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

/* A peer-written name, copied and terminated. */
static void read_name(char dst[NAME_LEN], const char *src)
{
	memcpy(dst, src, NAME_LEN);
	dst[NAME_LEN - 1] = '\0';
}

static void write_name(char dst[NAME_LEN], const char *src)
{
	size_t n = strnlen(src, NAME_LEN - 1);

	memset(dst, 0, NAME_LEN);
	memcpy(dst, src, n);
}

/* 1 to `max` letters, digits, '-' or '_': a name the command line can
 * give and a region's path can hold. */
static bool valid_name(const char *name, size_t max)
{
	size_t n = strlen(name);

	if (!n || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
		      (name[i] >= '0' && name[i] <= '9') || name[i] == '-' || name[i] == '_'))
			return false;
	return true;
}

/* Ring the peer; `rung` counts the rings it receives (a ring merged into
 * one still pending is not another). */
static void ring_link(struct duet_link *l, uint32_t id)
{
	if (duet_doorbell_ring(&l->bell[l->peer], id))
		atomic_fetch_add_explicit(&l->rung, 1, memory_order_relaxed);
}

/* ---- the platform ops of this link's rptun ---- */

static struct duet_link *link_of(struct duet_rptun *rptun)
{
	return duet_rptun_priv(rptun);
}

static void *link_get_resource(struct duet_rptun *rptun, size_t *size)
{
	*size = TABLE_SIZE;
	return link_of(rptun)->region + TABLE_OFFSET;
}

static void link_notify(struct duet_rptun *rptun, uint32_t notifyid)
{
	struct duet_link *l = link_of(rptun);

	/* A peer that polls its rings looks at them without being told: no
	 * ring, no cache line taken from it. The kick that brought us here
	 * fenced after publishing; a peer that stops polling clears `polled`,
	 * fences and looks at its rings once more (leave_polling), so one of
	 * the two sees the other. */
	if (notifyid != DUET_RPTUN_NOTIFY_ALL && atomic_load(&l->bell[l->peer].polled))
		return;
	ring_link(l, notifyid == DUET_RPTUN_NOTIFY_ALL ? LINK_ALL : notifyid);
}

static const char *link_local_cpu(struct duet_rptun *rptun)
{
	return link_of(rptun)->local;
}

static const char *link_remote_cpu(struct duet_rptun *rptun)
{
	return link_of(rptun)->remote;
}

static int link_register_callback(struct duet_rptun *rptun, duet_rptun_callback cb)
{
	link_of(rptun)->incoming = cb;
	return 0;
}

static bool link_is_master(struct duet_rptun *rptun)
{
	return link_of(rptun)->me == DUET_SERVER;
}

/* The proxy process boots itself (the duet command spawns it, or a user
 * starts it): nothing to do here. */
static int link_start(struct duet_rptun *rptun)
{
	(void)rptun;
	return 0;
}

static int link_stop(struct duet_rptun *rptun)
{
	return duet_link_command(link_of(rptun), DUET_LINK_CMD_STOP, 2000, NULL, 0);
}

static int link_reset(struct duet_rptun *rptun)
{
	return duet_link_command(link_of(rptun), DUET_LINK_CMD_RESET, 2000, NULL, 0);
}

static int link_panic(struct duet_rptun *rptun)
{
	return duet_link_command(link_of(rptun), DUET_LINK_CMD_PANIC, 2000, NULL, 0);
}

static bool side_alive(int fd, enum duet_side side);

/* The peer's slot says it stopped, or no process holds it: the service
 * thread will see the same at its next watch, but a receive callback
 * waiting on that thread asks now. */
static bool link_peer_gone(struct duet_rptun *rptun)
{
	struct duet_link *l = link_of(rptun);

	return atomic_load(&l->hdr->side[l->peer].state) != ST_READY || !side_alive(l->fd, l->peer);
}

static const struct duet_rptun_ops link_rptun_ops = {
	.get_resource = link_get_resource,
	.notify = link_notify,
	.get_local_cpuname = link_local_cpu,
	.get_remote_cpuname = link_remote_cpu,
	.register_callback = link_register_callback,
	.is_master = link_is_master,
	.start = link_start,
	.stop = link_stop,
	.reset = link_reset,
	.panic = link_panic,
	.peer_gone = link_peer_gone,
};

static int start_rptun(struct duet_link *l, char *err, size_t errlen)
{
	struct duet_rptun_config rc = {
		.side = l->me, .region = l->region, .region_size = l->size,
		.ops = &link_rptun_ops, .priv = l, .reset_epochs = l->hdr->reset_epoch,
	};
	struct duet_rsc_error rerr = { 0 };
	int ret = duet_rptun_create(&l->rptun, &rc, &rerr);

	if (ret == -EINVAL)
		return fail(err, errlen, ret, "resource table refused: entry %d: %s (%llu)",
			    rerr.entry, duet_rsc_reason(rerr.fault),
			    (unsigned long long)rerr.value);
	if (ret < 0)
		return fail(err, errlen, ret, "cannot set up the devices: %s", strerror(-ret));
	ret = duet_rptun_boot(l->rptun);
	if (ret < 0)
		return fail(err, errlen, ret, "cannot register the devices: %s", strerror(-ret));
	return 0;
}

static void stop_rptun(struct duet_link *l)
{
	duet_rptun_destroy(l->rptun);
	l->rptun = NULL;
}

static void unmap(struct duet_link *l)
{
	if (l->region)
		munmap(l->region, l->size);
	if (l->fd >= 0)
		close(l->fd);
	l->region = NULL;
	l->hdr = NULL;
	l->bell = NULL;
	l->fd = -1;
}

/*
 * Detach from the region, under the lock. A user loop may be inside
 * duet_link_wait on this side's doorbell, in the region: unmapping it
 * there would fault. So the mapping is kept as `stale`, the loop is rung
 * awake, and its next dispatch unmaps it (release_stale).
 */
static void retire(struct duet_link *l)
{
	if (l->cfg.user_loop && l->region) {
		duet_doorbell_wake(&l->bell[l->me], LINK_ID); /* as in say() */
		l->stale = l->region;
		l->stale_size = l->size;
		l->region = NULL;
	}
	unmap(l);
}

/* The loop thread, under the lock: it waits on no stale mapping now. */
static void release_stale(struct duet_link *l)
{
	if (l->stale)
		munmap(l->stale, l->stale_size);
	l->stale = NULL;
}

/* Wake every cond_wait_ms, under l->lock. */
static void link_broadcast(struct duet_link *l)
{
	atomic_fetch_add_explicit(&l->cond_seq, 1, memory_order_relaxed);
	if (l->cond_waiters)
		syscall(SYS_futex, (uint32_t *)&l->cond_seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL,
			0);
}

/* Wait for a link_broadcast, under l->lock, for at most ms (LINK_FOREVER:
 * no limit). A wake-up may come sooner, or spuriously: callers test their
 * condition again. The count is read under the lock, so a broadcast
 * between the unlock and the futex wait changes it, and the wait returns
 * at once. */
#define LINK_FOREVER UINT64_MAX
static void cond_wait_ms(struct duet_link *l, uint64_t ms)
{
	uint32_t seq = atomic_load_explicit(&l->cond_seq, memory_order_relaxed);
	struct timespec ts = { (time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L };

	l->cond_waiters++;
	duet_mutex_unlock(l->lock);
	syscall(SYS_futex, (uint32_t *)&l->cond_seq, FUTEX_WAIT_PRIVATE, seq,
		ms == LINK_FOREVER ? NULL : &ts, NULL, 0);
	duet_mutex_lock(l->lock);
	l->cond_waiters--;
}

static int map(struct duet_link *l, size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, l->fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	l->region = p;
	l->size = size;
	l->hdr = p;
	l->bell = (struct duet_doorbell *)(void *)(l->region + BELL_OFFSET);
	return 0;
}

/*
 * Whether a side is alive is the kernel's word, not the header's: each
 * side holds a write lock on its own byte of the region (byte `side`: the
 * server's 0, the proxy's 1) for as long as it is attached. It is an
 * open-file-description lock (F_OFD_SETLK): closing another descriptor of
 * the region keeps it, and the kernel lets go when the side unmaps or
 * dies, however it dies. The proxy takes its lock before it writes
 * anything, so it is also the claim that keeps a second proxy out, even
 * one started at the same moment. The pid in the header only names a
 * side in messages: it is the peer's word, and a new process may have
 * taken it since.
 */
static bool take_side(int fd, enum duet_side side)
{
	struct flock lk = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = side, .l_len = 1 };

	return fcntl(fd, F_OFD_SETLK, &lk) == 0;
}

/* Whether `side` holds its lock on the region open at fd. */
static bool side_alive(int fd, enum duet_side side)
{
	struct flock lk = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = side, .l_len = 1 };

	return fcntl(fd, F_OFD_GETLK, &lk) == 0 && lk.l_type != F_UNLCK;
}

/* ---- server ---- */

/* Write a fresh table and header fields; magic stays as it is. */
static int server_write_table(struct duet_link *l)
{
	int len = duet_rsc_build(l->region + TABLE_OFFSET, TABLE_SIZE, l->cfg.vdevs,
				 l->cfg.num_vdevs, CARVE_DA);

	if (len < 0)
		return len;
	memset(l->region + CARVE_DA, 0, l->size - CARVE_DA);
	return 0;
}

/*
 * An existing object with our name: reclaim it if its server is dead. The
 * dead server's lock is taken first and kept in *held (the caller closes
 * it once its own region has the name): a second server reclaiming at
 * the same moment finds the old region locked and is refused, instead of
 * unlinking the name after this one made it anew.
 */
static int reclaim(struct duet_link *l, int *held, char *err, size_t errlen)
{
	int fd = shm_open(l->path, O_RDWR, 0);
	struct link_hdr hdr;
	struct stat st;
	ssize_t n;

	if (fd < 0)
		return errno == ENOENT ? 0 : fail(err, errlen, -errno, "cannot open /dev/shm%s: %s",
						    l->path, strerror(errno));
	n = fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof(hdr) ? pread(fd, &hdr, sizeof(hdr), 0)
								      : 0;
	if (n != (ssize_t)sizeof(hdr) || hdr.magic != HDR_MAGIC) {
		close(fd);
		return fail(err, errlen, -EEXIST,
			    "/dev/shm%s exists and is not a duet link: remove it or choose another name",
			    l->path);
	}
	if (!take_side(fd, DUET_SERVER)) {
		close(fd);
		return fail(err, errlen, -EBUSY, "link '%s' is in use by a server (pid %u)",
			    l->cfg.name, (unsigned int)hdr.side[DUET_SERVER].pid);
	}
	/* Left by a crashed run. Marked stopped first: a proxy that has it
	 * open sees no server, not this one's lock for a live server's. */
	{
		uint32_t stopped = ST_STOPPED;

		(void)!pwrite(fd, &stopped, sizeof(stopped),
			      (off_t)offsetof(struct link_hdr, side[DUET_SERVER].state));
	}
	shm_unlink(l->path);
	if (*held >= 0)
		close(*held);
	*held = fd;
	return 0;
}

/* Give the region laid out at l->fd (unnamed) its name: all at once, so
 * that no process ever finds it there half made, and one killed while
 * making it leaves nothing behind. -EEXIST when the name is taken. */
static int publish(struct duet_link *l)
{
	char fdpath[64], name[80];

	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", l->fd);
	snprintf(name, sizeof(name), "%s%s", SHM_DIR, l->path);
	return linkat(AT_FDCWD, fdpath, AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0 ? 0 : -errno;
}

static int server_open(struct duet_link *l, char *err, size_t errlen)
{
	size_t carve = duet_rsc_carveouts_size(l->cfg.vdevs, l->cfg.num_vdevs), size;
	int ret, stale = -1;

	/* Device addresses are 32 bits: refused before a region is made. */
	if (carve > UINT32_MAX - CARVE_DA)
		return fail(err, errlen, -EINVAL,
			    "the vdevs' carveouts need %zu bytes: past 4 GiB of device addresses",
			    carve);
	size = CARVE_DA + carve;
	/* Made without a name, then named whole (publish): a server killed
	 * between creating a named region and writing its magic left a file
	 * the next one took for a stranger's and refused. */
	l->fd = open(SHM_DIR, O_TMPFILE | O_RDWR, 0600);
	if (l->fd < 0)
		return fail(err, errlen, -errno, "cannot create a region in %s: %s", SHM_DIR,
			    strerror(errno));
	ret = take_side(l->fd, DUET_SERVER) ? 0 : -errno;
	if (ret == 0 && ftruncate(l->fd, (off_t)size) < 0)
		ret = -errno;
	if (ret == 0)
		ret = map(l, size);
	if (ret == 0)
		ret = server_write_table(l);
	if (ret < 0) {
		unmap(l);
		return fail(err, errlen, ret, "cannot lay out the region: %s", strerror(-ret));
	}
	l->hdr->version = HDR_VERSION;
	l->hdr->region_size = (uint32_t)size;
	l->hdr->table_offset = TABLE_OFFSET;
	l->hdr->table_size = TABLE_SIZE;
	l->hdr->generation = (uint32_t)getpid() ^ (uint32_t)time(NULL);
	write_name(l->hdr->cpu[DUET_SERVER], l->local);
	write_name(l->hdr->cpu[DUET_PROXY], l->remote);
	write_name(l->hdr->side[DUET_SERVER].name, l->local);
	l->hdr->side[DUET_SERVER].pid = (uint32_t)getpid();
	l->hdr->side[DUET_SERVER].state = ST_READY;
	atomic_store(&l->hdr->magic, HDR_MAGIC);
	for (int tries = 0;; tries++) {
		ret = publish(l);
		if (ret == 0)
			break;
		if (ret == -EEXIST && tries < 2)
			ret = reclaim(l, &stale, err, errlen);
		else
			fail(err, errlen, ret, "cannot create /dev/shm%s: %s", l->path, strerror(-ret));
		if (ret < 0) {
			if (stale >= 0)
				close(stale);
			unmap(l);
			return ret;
		}
	}
	/* Ours is in place: the old one's lock can go. */
	if (stale >= 0)
		close(stale);
	ret = start_rptun(l, err, errlen);
	if (ret < 0)
		shm_unlink(l->path);
	return ret;
}

/* A proxy is gone: start this side's devices over on a fresh table, and
 * empty the proxy's slot, which the next proxy waits for. Under the lock. */
static void server_restart(struct duet_link *l)
{
	atomic_store(&l->peer_up, false);
	atomic_store(&l->peer_pid, 0);
	stop_rptun(l);
	server_write_table(l);
	atomic_fetch_add(&l->hdr->generation, 1);
	if (start_rptun(l, NULL, 0) < 0)
		say(l, DUET_LINK_ERROR, "cannot bring the devices back");
	/* A reset's command returns now: this side has started over. */
	atomic_store(&l->reset_pending, false);
	/* Emptied last: a proxy attaches to an empty slot at once (one
	 * waiting for it looks every 20 ms), and must find the new table and
	 * generation. Emptied first, one attached while the table was being
	 * written, took the old generation, and was dropped as soon as it
	 * was up; and the server saw it go and started over again, which
	 * the same proxy could meet once more (the TSan soak, session 45). */
	atomic_store(&l->hdr->side[DUET_PROXY].pid, 0);
	atomic_store(&l->hdr->side[DUET_PROXY].state, ST_ABSENT);
	link_broadcast(l);
}

/* The proxy is gone: remove its devices and get the region ready for the
 * next one. */
static void server_peer_down(struct duet_link *l, const char *why)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "proxy (pid %d) %s: its devices are removed; waiting for it to "
		 "come back", atomic_load(&l->peer_pid), why);
	duet_mutex_lock(l->lock);
	server_restart(l);
	duet_mutex_unlock(l->lock);
	say(l, DUET_LINK_PEER_DOWN, "%s", msg);
}

static void server_watch(struct duet_link *l)
{
	struct link_side *p = &l->hdr->side[DUET_PROXY];
	uint32_t state = atomic_load(&p->state), pid = atomic_load(&p->pid);
	char name[NAME_LEN];

	if (state == ST_REFUSED && pid != l->refused_pid) {
		read_name(name, p->name);
		l->refused_pid = pid;
		say(l, DUET_LINK_PEER_REFUSED,
		    "refused a proxy named '%s' (pid %u): this link is for proxy '%s' of server '%s'",
		    name, pid, l->remote, l->local);
		atomic_store(&p->state, ST_ABSENT);
		return;
	}
	if (!atomic_load(&l->peer_up) && state == ST_READY && side_alive(l->fd, DUET_PROXY)) {
		duet_mutex_lock(l->lock);
		atomic_store(&l->peer_pid, (int)pid);
		atomic_store(&l->peer_up, true);
		link_broadcast(l);
		duet_mutex_unlock(l->lock);
		say(l, DUET_LINK_PEER_UP, "proxy '%s' attached (pid %u)", l->remote, pid);
		return;
	}
	/* A proxy that went before this side saw it up (killed as it
	 * attached, or just after) left its slot taken, and its devices may
	 * have begun on the rings: start over, and the next proxy attaches
	 * to an empty slot. Not while this side closes. */
	if (!atomic_load(&l->peer_up) && state != ST_ABSENT &&
	    atomic_load(&l->hdr->side[DUET_SERVER].state) == ST_READY &&
	    !side_alive(l->fd, DUET_PROXY)) {
		duet_mutex_lock(l->lock);
		server_restart(l);
		duet_mutex_unlock(l->lock);
		say(l, DUET_LINK_PEER_DOWN,
		    "a proxy (pid %u) went as it attached: the devices start over", pid);
		return;
	}
	if (atomic_load(&l->peer_up)) {
		/* State first: a proxy that stopped and then exited left. */
		if (state == ST_STOPPED)
			server_peer_down(l, atomic_load(&l->reset_pending) ? "left for the reset" : "left");
		else if (!side_alive(l->fd, DUET_PROXY))
			server_peer_down(l, "died");
		else if (state != ST_READY)
			server_peer_down(l, "left");
	}
}

/* ---- proxy ---- */

/* One attempt to attach. 0, -EAGAIN (not there yet: try again), or an
 * error that trying again will not fix. */
static int proxy_try_attach(struct duet_link *l, char *err, size_t errlen)
{
	struct link_hdr *h;
	char sname[NAME_LEN], pname[NAME_LEN];
	struct stat st;
	uint32_t proxy_pid;
	int ret;

	l->fd = shm_open(l->path, O_RDWR, 0);
	if (l->fd < 0)
		return errno == ENOENT ? -EAGAIN : fail(err, errlen, -errno, "cannot open /dev/shm%s: %s",
							 l->path, strerror(errno));
	if (fstat(l->fd, &st) < 0 || st.st_size < CARVE_DA) {
		unmap(l);
		return -EAGAIN; /* being created */
	}
	ret = map(l, (size_t)st.st_size);
	if (ret < 0) {
		unmap(l);
		return fail(err, errlen, ret, "cannot map the region: %s", strerror(-ret));
	}
	h = l->hdr;
	if (atomic_load(&h->magic) != HDR_MAGIC || h->region_size != (uint32_t)st.st_size ||
	    atomic_load(&h->side[DUET_SERVER].state) != ST_READY || !side_alive(l->fd, DUET_SERVER)) {
		unmap(l);
		return -EAGAIN; /* not ready, closing, or left by a dead server */
	}
	if (h->version != HDR_VERSION || h->table_offset != TABLE_OFFSET ||
	    h->table_size != TABLE_SIZE) {
		uint32_t version = h->version;

		unmap(l); /* h with it */
		return fail(err, errlen, -EPROTO, "link '%s' has an unknown layout (version %u)",
			    l->cfg.name, (unsigned int)version);
	}
	/* Before anything is written: the proxy's slot is the live one's,
	 * or that of one attaching right now (which holds the claim). */
	proxy_pid = atomic_load(&h->side[DUET_PROXY].pid);
	if (!take_side(l->fd, DUET_PROXY)) {
		bool attached = atomic_load(&h->side[DUET_PROXY].state) == ST_READY;

		unmap(l); /* h with it: the message says what was read before */
		if (!attached)
			return fail(err, errlen, -EBUSY, "link '%s' has another proxy attaching",
				    l->cfg.name);
		return fail(err, errlen, -EBUSY, "link '%s' already has a proxy (pid %u)",
			    l->cfg.name, (unsigned int)proxy_pid);
	}
	/* Ours, but only once the server emptied it: a proxy before this one
	 * that died or left, and the server has not seen go yet, still has
	 * its devices on the server's rings, which this side's would meet in
	 * use. The server empties the slot as it sees it go (server_watch). */
	if (atomic_load(&h->side[DUET_PROXY].state) != ST_ABSENT) {
		unmap(l); /* lets the slot go */
		return -EAGAIN;
	}
	read_name(sname, h->cpu[DUET_SERVER]);
	read_name(pname, h->cpu[DUET_PROXY]);
	if (strcmp(sname, l->remote) || strcmp(pname, l->local)) {
		write_name(h->side[DUET_PROXY].name, l->local);
		atomic_store(&h->side[DUET_PROXY].pid, (uint32_t)getpid());
		atomic_store(&h->side[DUET_PROXY].state, ST_REFUSED);
		duet_doorbell_ring(&l->bell[DUET_SERVER], LINK_ID);
		unmap(l);
		return fail(err, errlen, -EPERM,
			    "cpu names do not match: this proxy is '%s' and expects server '%s', "
			    "but link '%s' is for proxy '%s' of server '%s'",
			    l->local, l->remote, l->cfg.name, pname, sname);
	}
	l->generation = atomic_load(&h->generation);
	l->cmd_seen = atomic_load(&h->cmd_seq);
	/* A proxy before us may have left saying it polls: until this side's
	 * loop says so itself, the server rings. */
	atomic_store(&l->bell[DUET_PROXY].polled, 0);
	/* The slot is marked taken before this side's devices start: its
	 * vhost side probes at once on a server driver that is ready and
	 * takes from the server's rings, so a proxy killed from here on must
	 * make the server start over (server_watch), whether or not it got
	 * as far as ready. Marked only once ready, one killed while its
	 * devices started left the slot looking empty, and the next proxy's
	 * devices met the server's rings half used (the server's rpmsg
	 * failed for good, status 0x8f; scripts/soak.py, session 45). A
	 * start that fails leaves the mark too, for the same reason. */
	write_name(h->side[DUET_PROXY].name, l->local);
	atomic_store(&h->side[DUET_PROXY].pid, (uint32_t)getpid());
	atomic_store(&h->side[DUET_PROXY].state, ST_ATTACHING);
	ret = start_rptun(l, err, errlen);
	if (ret < 0) {
		unmap(l);
		return ret;
	}
	atomic_store(&h->side[DUET_PROXY].state, ST_READY);
	/* The server may have begun to close since it was seen ready. Its
	 * close marks itself closing, then looks for this proxy; this side
	 * marked itself ready, now looks at the server: both sequentially
	 * consistent, so one of the two sees the other. A closing server
	 * not seen here has seen this proxy and sends it a stop. */
	if (atomic_load(&h->side[DUET_SERVER].state) != ST_READY) {
		atomic_store(&h->side[DUET_PROXY].state, ST_STOPPED);
		stop_rptun(l);
		unmap(l);
		return -EAGAIN;
	}
	atomic_store(&l->peer_pid, (int)atomic_load(&h->side[DUET_SERVER].pid));
	atomic_store(&l->peer_up, true);
	ring_link(l, LINK_ID);
	return 0;
}

static void proxy_peer_down(struct duet_link *l, const char *why)
{
	int pid = atomic_load(&l->peer_pid);
	struct link_hdr hdr;
	int fd;

	duet_mutex_lock(l->lock);
	atomic_store(&l->peer_up, false);
	stop_rptun(l);
	retire(l);
	/* Clean up what the dead server left, unless a new one already
	 * replaced it. */
	fd = shm_open(l->path, O_RDONLY, 0);
	if (fd >= 0) {
		if (pread(fd, &hdr, sizeof(hdr), 0) == (ssize_t)sizeof(hdr) &&
		    hdr.side[DUET_SERVER].pid == (uint32_t)pid && !side_alive(fd, DUET_SERVER))
			shm_unlink(l->path);
		close(fd);
	}
	link_broadcast(l);
	duet_mutex_unlock(l->lock);
	/* A proxy asked to stop is leaving, not waiting. */
	say(l, DUET_LINK_PEER_DOWN, "server (pid %d) %s: devices removed%s", pid, why,
	    atomic_load(&l->stop_requested) ? "" : "; waiting for a new server");
}

/*
 * The server asked for a reset: this side's devices stop, the proxy leaves,
 * and it attaches again once the server has seen it go and started the
 * link over on a fresh table and zeroed carveouts (server_watch, as when
 * a proxy dies). A restart on the table as it stands kept whatever a
 * broken peer wrote there: a table the parse now refuses left the proxy
 * with no devices, and one it still accepts with other sizes or roles
 * would put the two sides on different rings (scripts/soak.py --faults
 * scribble). Acknowledged once nothing of this side touches the rings,
 * and marked as left after that: the server waits for the acknowledgement
 * only while this side is ready. Under no lock; takes the link's.
 */
static void proxy_reset(struct duet_link *l)
{
	int pid = atomic_load(&l->peer_pid);

	duet_mutex_lock(l->lock);
	atomic_store(&l->peer_up, false);
	stop_rptun(l);
	atomic_store(&l->hdr->cmd_ack, l->cmd_seen);
	atomic_store(&l->hdr->side[DUET_PROXY].state, ST_STOPPED);
	ring_link(l, LINK_ID);
	retire(l);
	link_broadcast(l);
	duet_mutex_unlock(l->lock);
	say(l, DUET_LINK_PEER_DOWN, "reset requested by the server (pid %d): devices removed; "
	    "attaching again once it has started the link over", pid);
}

static void proxy_watch(struct duet_link *l)
{
	struct link_hdr *h = l->hdr;

	if (!atomic_load(&l->peer_up)) {
		char err[200];
		int ret;

		duet_mutex_lock(l->lock);
		/* Not while the user loop may still wait on the old mapping:
		 * retire rang it, and its next turn lets go. */
		ret = l->stale ? -EAGAIN : proxy_try_attach(l, err, sizeof(err));
		if (ret == 0)
			link_broadcast(l);
		duet_mutex_unlock(l->lock);
		if (ret == 0)
			say(l, DUET_LINK_PEER_UP, "attached to server '%s' (pid %d)", l->remote,
			    atomic_load(&l->peer_pid));
		else if (ret != -EAGAIN)
			say(l, DUET_LINK_ERROR, "%s", err);
		return;
	}
	/* A server closes with a stop command only if it has noticed this
	 * proxy; one that closes sooner (a short run) still says so here.
	 * Asked first: a server that closed has usually exited too by the
	 * time this looks, and it did not die. */
	if (atomic_load(&h->side[DUET_SERVER].state) == ST_STOPPED) {
		proxy_peer_down(l, "closed");
		return;
	}
	if (!side_alive(l->fd, DUET_SERVER)) {
		proxy_peer_down(l, "died");
		return;
	}
	if (atomic_load(&h->generation) != l->generation ||
	    atomic_load(&h->side[DUET_PROXY].pid) != (uint32_t)getpid()) {
		proxy_peer_down(l, "dropped this proxy");
		return;
	}
	if (atomic_load(&h->cmd_seq) != l->cmd_seen) {
		uint32_t cmd;

		l->cmd_seen = atomic_load(&h->cmd_seq);
		/* Taken, so that a server whose wait for the acknowledgement
		 * ran out can withdraw it instead (send_command). */
		cmd = atomic_exchange(&h->cmd, CMD_NONE);
		switch (cmd) {
		case CMD_NONE: /* withdrawn: nothing to carry out */
			atomic_store(&h->cmd_ack, l->cmd_seen);
			break;
		case DUET_LINK_CMD_STOP:
			atomic_store(&l->stop_requested, true);
			atomic_store(&h->cmd_ack, l->cmd_seen);
			say(l, DUET_LINK_STOPPED, "the server asked this proxy to stop");
			break;
		case DUET_LINK_CMD_RESET:
			proxy_reset(l);
			return; /* h went with the mapping */
		case DUET_LINK_CMD_PANIC:
			atomic_store(&h->cmd_ack, l->cmd_seen);
			say(l, DUET_LINK_ERROR, "panic requested by the server: aborting");
			abort();
		default:
			say(l, DUET_LINK_ERROR, "unknown command %u from the server", (unsigned int)cmd);
			atomic_store(&h->cmd_ack, l->cmd_seen);
			break;
		}
	}
}

/* ---- the service thread ---- */

/* Take this side's doorbell ids and run them, then look at the peer; under
 * the link lock. *seen gets the doorbell's seq from before the take. For a
 * user loop (the only caller besides the service thread, which never has a
 * stale mapping) it also notes the doorbell and wake count it will wait on.
 * `woken`: the loop just came back from sleeping on the doorbell, so the
 * peer most likely filled buffers meanwhile: ask for them first, and their
 * lines come while the doorbell and the ring indices are read. */
static unsigned int dispatch(struct duet_link *l, uint32_t *ids, uint32_t *seen, bool woken)
{
	struct duet_doorbell *bell;
	unsigned int n;

	duet_mutex_lock(l->lock);
	if (woken && l->rptun)
		duet_rptun_prefetch_arrived(l->rptun);
	release_stale(l);
	bell = l->bell ? &l->bell[l->me] : NULL;
	l->loop_bell = bell;
	l->loop_wake = l->wake_seq;
	*seen = bell ? atomic_load(&bell->seq) : 0;
	n = bell ? duet_doorbell_take(bell, ids) : 0;
	for (unsigned int i = 0; i < n && l->rptun && l->incoming; i++)
		if (ids[i] != LINK_ID)
			l->incoming(l->rptun, ids[i] == LINK_ALL ? DUET_RPTUN_NOTIFY_ALL : ids[i]);
	if (l->rptun)
		duet_rptun_check_peer(l->rptun);
	duet_mutex_unlock(l->lock);
	return n;
}

static bool service_wait(struct duet_link *l, uint32_t seen);

static void *service(void *arg)
{
	struct duet_link *l = arg;
	uint32_t ids[DUET_DOORBELL_IDS];
	uint64_t next_watch = 0;
	bool woken = false;

	while (!atomic_load(&l->quit)) {
		bool user = l->cfg.user_loop;
		uint32_t seen = 0;
		unsigned int n = 0;
		uint64_t now;

		/* With a user loop the doorbell is the user's; this thread
		 * only watches the peer. */
		if (!user) {
			n = dispatch(l, ids, &seen, woken);
		} else {
			duet_mutex_lock(l->lock);
			if (l->rptun)
				duet_rptun_check_peer(l->rptun);
			duet_mutex_unlock(l->lock);
		}
		now = duet_clock_ms();
		if (now >= next_watch || (n && ids[n - 1] == LINK_ID)) {
			if (l->me == DUET_SERVER)
				server_watch(l);
			else
				proxy_watch(l);
			next_watch = now + DUET_LINK_WATCH_MS;
		}
		woken = false;
		if (!user && l->bell)
			woken = service_wait(l, seen);
		else
			usleep(DUET_LINK_WATCH_MS * 1000u);
	}
	return NULL;
}

/*
 * A loop polls (the user's, or a spinning service thread): say so in this
 * side's doorbell, so that the peer stops ringing for vrings, and look at
 * the rings (duet_rptun_poll). Both sides polling exchange no doorbell
 * line per message, only ring lines.
 */
static unsigned int poll_rings(struct duet_link *l)
{
	unsigned int n = 0;

	duet_mutex_lock(l->lock);
	if (l->bell && l->rptun) {
		struct duet_doorbell *bell = &l->bell[l->me];

		if (!atomic_load_explicit(&bell->polled, memory_order_relaxed)) {
			atomic_store(&bell->polled, 1);
			atomic_store_explicit(&l->said_polled, true, memory_order_relaxed);
		}
		n = (unsigned int)duet_rptun_poll(l->rptun);
		if (n && l->backoff.wait_ns)
			backoff_took(&l->backoff, duet_rptun_taken(l->rptun),
				     duet_rptun_published(l->rptun), duet_clock_ns);
	}
	duet_mutex_unlock(l->lock);
	return n;
}

/*
 * A look found nothing: wait up to poll_backoff_us before the next one if
 * a dense stream is only coming in (backoff.h), so that the peer fills the
 * ring undisturbed. The wait ends early when `bell` moves from `seen`
 * (anything the doorbell brings). On the thread that polls: the user loop,
 * or the service thread in its spin.
 */
static void poll_backoff(struct duet_link *l, struct duet_doorbell *bell, uint32_t seen)
{
	uint64_t t0, t;
	uint32_t peer = 0;
	bool wait;

	if (!bell || !backoff_maybe(&l->backoff))
		return;
	duet_mutex_lock(l->lock);
	wait = l->rptun && backoff_empty(&l->backoff, duet_rptun_published(l->rptun));
	if (wait)
		peer = duet_rptun_peer_published(l->rptun);
	duet_mutex_unlock(l->lock);
	if (!wait)
		return;
	atomic_fetch_add_explicit(&l->backoffs, 1, memory_order_relaxed);
	t0 = duet_clock_ns();
	do
		t = duet_clock_ns();
	while (t - t0 < l->backoff.wait_ns &&
	       atomic_load_explicit(&bell->seq, memory_order_acquire) == seen);
	/* What the wait collected decides whether the next one is worth it. */
	duet_mutex_lock(l->lock);
	if (l->rptun)
		backoff_waited(&l->backoff, duet_rptun_peer_published(l->rptun) - peer, t - t0, t);
	duet_mutex_unlock(l->lock);
}

/* The loop stops polling (it is about to sleep): the peer rings again
 * from now on, and what it published while it did not ring is found by
 * one more look at the rings. */
static unsigned int leave_polling(struct duet_link *l)
{
	unsigned int n = 0;

	/* A loop that blocks at once never said it polls: no lock per wait. */
	if (!atomic_load_explicit(&l->said_polled, memory_order_relaxed))
		return 0;
	atomic_store_explicit(&l->said_polled, false, memory_order_relaxed);
	duet_mutex_lock(l->lock);
	if (l->bell && atomic_load_explicit(&l->bell[l->me].polled, memory_order_relaxed)) {
		atomic_store(&l->bell[l->me].polled, 0);
		atomic_thread_fence(memory_order_seq_cst);
		if (l->rptun)
			n = (unsigned int)duet_rptun_poll(l->rptun);
	}
	duet_mutex_unlock(l->lock);
	return n;
}

int duet_link_poll(struct duet_link *l)
{
	uint32_t ids[DUET_DOORBELL_IDS], seen;
	unsigned int n = 0;

	if (!l || !l->cfg.user_loop)
		return -EINVAL;
	/* The doorbell still carries the link's events, and the rings of a
	 * peer that rang before it saw this side polling. */
	if (!l->loop_bell ||
	    atomic_load_explicit(&l->loop_bell->seq, memory_order_acquire) != l->loop_seen) {
		n = dispatch(l, ids, &seen, false);
		l->loop_seen = seen;
	}
	n += poll_rings(l);
	if (!n)
		poll_backoff(l, l->loop_bell, l->loop_seen);
	return (int)n;
}

/* No doorbell to wait on (a proxy between servers): wait for one to come,
 * or for duet_link_wake, up to timeout_ms. */
static void wait_for_bell(struct duet_link *l, uint32_t timeout_ms)
{
	uint64_t end = duet_clock_ms() + timeout_ms;

	duet_mutex_lock(l->lock);
	while (!l->bell && l->wake_seq == l->loop_wake && !atomic_load(&l->quit)) {
		uint64_t now = duet_clock_ms();

		if (timeout_ms == DUET_LINK_FOREVER) {
			cond_wait_ms(l, LINK_FOREVER);
			continue;
		}
		if (now >= end)
			break;
		cond_wait_ms(l, end - now);
	}
	duet_mutex_unlock(l->lock);
}

/* The spin of a hybrid wait: poll the rings (the peer stops ringing for
 * them) for up to spin_us, until callbacks ran (how many is returned) or
 * the doorbell moved from `seen` (*rang: the link's events, for the
 * caller's dispatch). */
static unsigned int spin_rings(struct duet_link *l, struct duet_doorbell *bell, uint32_t seen,
			       bool *rang)
{
	uint64_t t0 = duet_clock_ns();
	unsigned int n;

	do {
		n = poll_rings(l);
		*rang = atomic_load_explicit(&bell->seq, memory_order_acquire) != seen;
		if (!n && !*rang)
			poll_backoff(l, bell, seen);
	} while (!n && !*rang && duet_clock_ns() - t0 < (uint64_t)l->cfg.spin_us * 1000u);
	return n;
}

/* The service thread's wait, as duet_link_wait's: spin on the rings, say
 * this side no longer polls and look once more, block. True when its wait
 * on the doorbell ended with the doorbell moved; false when the spin or the
 * last look found work, or the wait timed out. */
static bool service_wait(struct duet_link *l, uint32_t seen)
{
	struct duet_doorbell *bell = &l->bell[l->me];
	bool rang = false;

	if (l->cfg.spin_us && (spin_rings(l, bell, seen, &rang) || rang))
		return false;
	if (leave_polling(l))
		return false;
	return duet_doorbell_wait(bell, seen, 0, DUET_LINK_WATCH_MS);
}

int duet_link_wait(struct duet_link *l, uint32_t timeout_ms)
{
	uint32_t ids[DUET_DOORBELL_IDS], seen;
	unsigned int n;

	if (!l || !l->cfg.user_loop)
		return -EINVAL;
	/* The doorbell unmoved since the last dispatch: nothing to take (the
	 * link's events, a retired region included, ring it), as in
	 * duet_link_poll. A busy hybrid loop then pays no lock and no look
	 * at the peer per message. */
	seen = l->loop_seen;
	n = !l->loop_bell || atomic_load_explicit(&l->loop_bell->seq, memory_order_acquire) != seen
		    ? dispatch(l, ids, &seen, false)
		    : 0;
	/* A busy loop keeps saying it polls from one wait to the next: no
	 * store to its doorbell per message. It says otherwise only before
	 * it sleeps. */
	if (!n && l->cfg.spin_us && l->loop_bell) {
		bool rang;

		n = spin_rings(l, l->loop_bell, seen, &rang);
		if (rang)
			n += dispatch(l, ids, &seen, false);
	}
	if (!n)
		n = leave_polling(l);
	if (!n) {
		bool woken = false;

		if (l->loop_bell)
			woken = duet_doorbell_wait(l->loop_bell, seen, 0,
						   timeout_ms == DUET_LINK_FOREVER
							   ? DUET_DOORBELL_FOREVER
							   : timeout_ms);
		else
			wait_for_bell(l, timeout_ms);
		n = dispatch(l, ids, &seen, woken);
	}
	l->loop_seen = seen;
	return (int)n;
}

int duet_link_wake(struct duet_link *l)
{
	if (!l || !l->cfg.user_loop)
		return -EINVAL;
	duet_mutex_lock(l->lock);
	l->wake_seq++;
	if (l->bell)
		duet_doorbell_wake(&l->bell[l->me], LINK_ID); /* as in say() */
	link_broadcast(l);
	duet_mutex_unlock(l->lock);
	return 0;
}

/* ---- public ---- */

int duet_link_open(struct duet_link **linkp, const struct duet_link_config *cfg,
		   uint32_t timeout_ms, char *err, size_t errlen)
{
	struct duet_link *l;
	int ret;

	if (!linkp || !cfg || !cfg->name || !valid_name(cfg->name, 40))
		return fail(err, errlen, -EINVAL,
			    "a link name is 1-40 letters, digits, '-' or '_'");
	/* Not cut short in the region, where the peer would see another. */
	if ((cfg->local_cpu && !valid_name(cfg->local_cpu, NAME_LEN - 1)) ||
	    (cfg->remote_cpu && !valid_name(cfg->remote_cpu, NAME_LEN - 1)))
		return fail(err, errlen, -EINVAL,
			    "a cpu name is 1-%d letters, digits, '-' or '_'", NAME_LEN - 1);
	if (cfg->side != DUET_SERVER && cfg->side != DUET_PROXY)
		return fail(err, errlen, -EINVAL, "side must be server or proxy");
	if (cfg->side == DUET_SERVER && (cfg->num_vdevs > DUET_MAX_VDEVS ||
					 (cfg->num_vdevs && !cfg->vdevs)))
		return fail(err, errlen, -EINVAL, "at most %d vdevs", DUET_MAX_VDEVS);
	l = calloc(1, sizeof(*l));
	if (!l)
		return fail(err, errlen, -ENOMEM, "out of memory");
	l->cfg = *cfg;
	l->backoff.wait_ns = (uint64_t)cfg->poll_backoff_us * 1000u;
	l->fd = -1;
	l->me = cfg->side;
	l->peer = cfg->side == DUET_SERVER ? DUET_PROXY : DUET_SERVER;
	snprintf(l->path, sizeof(l->path), "/duet-%s", cfg->name);
	write_name(l->local, cfg->local_cpu ? cfg->local_cpu : (l->me == DUET_SERVER ? "server" : "proxy"));
	write_name(l->remote, cfg->remote_cpu ? cfg->remote_cpu : (l->me == DUET_SERVER ? "proxy" : "server"));
	if (duet_mutex_create(&l->lock) < 0) {
		free(l);
		return fail(err, errlen, -ENOMEM, "out of memory");
	}

	if (l->me == DUET_SERVER) {
		ret = server_open(l, err, errlen);
	} else {
		uint64_t end = duet_clock_ms() + timeout_ms;

		while ((ret = proxy_try_attach(l, err, errlen)) == -EAGAIN && duet_clock_ms() < end)
			usleep(20000);
		if (ret == -EAGAIN)
			ret = fail(err, errlen, -ETIMEDOUT,
				   "no server for link '%s' within %u ms (is 'duet server --name %s' running?)",
				   cfg->name, timeout_ms, cfg->name);
	}
	if (ret == 0) {
		ret = -pthread_create(&l->thread, NULL, service, l);
		l->thread_started = ret == 0;
		if (ret < 0)
			fail(err, errlen, ret, "cannot start the service thread");
	}
	if (ret < 0) {
		stop_rptun(l);
		unmap(l);
		duet_mutex_destroy(l->lock);
		free(l);
		return ret;
	}
	*linkp = l;
	return 0;
}

static void stop_thread(struct duet_link *l)
{
	if (!l->thread_started)
		return;
	atomic_store(&l->quit, true);
	duet_mutex_lock(l->lock);
	if (l->bell)
		duet_doorbell_wake(&l->bell[l->me], LINK_ID);
	duet_mutex_unlock(l->lock);
	pthread_join(l->thread, NULL);
	l->thread_started = false;
}

static const char *cmd_name(enum duet_link_cmd cmd)
{
	return cmd == DUET_LINK_CMD_STOP ? "stop" : cmd == DUET_LINK_CMD_RESET ? "reset" : "panic";
}

/* A proxy is attached, alive, and has not stopped: read from the header,
 * so one that attached since the watch last looked counts too. */
static bool proxy_there(struct duet_link *l)
{
	return atomic_load(&l->hdr->side[DUET_PROXY].state) == ST_READY &&
	       side_alive(l->fd, DUET_PROXY);
}

/* duet_link_command past its checks, for a proxy that is there. */
static int send_command(struct duet_link *l, enum duet_link_cmd cmd, uint32_t timeout_ms,
			char *err, size_t errlen)
{
	uint64_t end = duet_clock_ms() + timeout_ms;
	uint32_t seq;

	atomic_store(&l->reset_pending, cmd == DUET_LINK_CMD_RESET);
	/* cmd before seq: the proxy reads seq, then cmd. */
	seq = atomic_load(&l->hdr->cmd_seq) + 1;
	atomic_store(&l->hdr->cmd, (uint32_t)cmd);
	atomic_store(&l->hdr->cmd_seq, seq);
	ring_link(l, LINK_ID);
	while (atomic_load(&l->hdr->cmd_ack) != seq && duet_clock_ms() < end && proxy_there(l))
		usleep(2000);
	if (atomic_load(&l->hdr->cmd_ack) != seq && !proxy_there(l))
		/* Gone before acknowledging: a stop is done, anything else is moot. */
		return cmd == DUET_LINK_CMD_STOP ? 0 :
		       fail(err, errlen, -ENOTCONN, "the proxy left before acknowledging %s",
			    cmd_name(cmd));
	if (atomic_load(&l->hdr->cmd_ack) != seq) {
		/* Withdrawn unless the proxy took it already: a command the
		 * caller was told failed is not carried out later, when a
		 * proxy that stalled runs again. */
		uint32_t sent = (uint32_t)cmd;
		bool withdrawn = atomic_compare_exchange_strong(&l->hdr->cmd, &sent, CMD_NONE);

		if (withdrawn)
			atomic_store(&l->reset_pending, false);

		return fail(err, errlen, -ETIMEDOUT, "proxy (pid %d) did not acknowledge %s within %u ms%s",
			    (int)atomic_load(&l->hdr->side[DUET_PROXY].pid), cmd_name(cmd), timeout_ms,
			    withdrawn ? ": withdrawn" : ": it took it and may still carry it out");
	}
	/* A reset is done once this side has seen the proxy leave for it and
	 * started over (server_restart): a wait for the link after it then
	 * waits for the proxy to attach again. Not on the service thread,
	 * which starts over itself at its next watch, after this returns. */
	while (cmd == DUET_LINK_CMD_RESET && atomic_load(&l->reset_pending) &&
	       !(l->thread_started && pthread_equal(pthread_self(), l->thread)) &&
	       duet_clock_ms() < end)
		usleep(2000);
	return 0;
}

int duet_link_command(struct duet_link *l, enum duet_link_cmd cmd, uint32_t timeout_ms,
		      char *err, size_t errlen)
{
	if (!l || l->me != DUET_SERVER || cmd < DUET_LINK_CMD_STOP || cmd > DUET_LINK_CMD_PANIC)
		return fail(err, errlen, -EINVAL, "only a server sends commands");
	if (!atomic_load(&l->peer_up) || !l->hdr)
		return fail(err, errlen, -ENOTCONN, "no proxy attached");
	return send_command(l, cmd, timeout_ms, err, errlen);
}

int duet_link_close(struct duet_link *l, uint32_t timeout_ms, char *err, size_t errlen)
{
	int ret = 0;

	if (!l)
		return -EINVAL;
	/* Closing first, then the look for a proxy: no proxy attaches after
	 * the look unseen (see the attach), so none misses the stop. */
	if (l->me == DUET_SERVER && l->hdr) {
		atomic_store(&l->hdr->side[DUET_SERVER].state, ST_CLOSING);
		if (proxy_there(l))
			ret = send_command(l, DUET_LINK_CMD_STOP, timeout_ms, err, errlen);
	}
	stop_thread(l);
	stop_rptun(l);
	release_stale(l);
	if (l->hdr) {
		atomic_store(&l->hdr->side[l->me].state, ST_STOPPED);
		ring_link(l, LINK_ID);
	}
	unmap(l);
	if (l->me == DUET_SERVER)
		shm_unlink(l->path);
	duet_mutex_destroy(l->lock);
	free(l);
	return ret;
}

bool duet_link_wait_peer(struct duet_link *l, uint32_t timeout_ms)
{
	uint64_t end = duet_clock_ms() + timeout_ms;
	bool up;

	if (!l)
		return false;
	duet_mutex_lock(l->lock);
	while (!(up = atomic_load(&l->peer_up))) {
		if (duet_clock_ms() >= end)
			break;
		cond_wait_ms(l, 10);
	}
	duet_mutex_unlock(l->lock);
	return up;
}

bool duet_link_peer_up(struct duet_link *l)
{
	return l && atomic_load(&l->peer_up);
}

int duet_link_peer_pid(struct duet_link *l)
{
	return l && atomic_load(&l->peer_up) ? atomic_load(&l->peer_pid) : 0;
}

struct duet_rptun *duet_link_rptun(struct duet_link *l)
{
	return l ? l->rptun : NULL;
}

bool duet_link_stop_requested(struct duet_link *l)
{
	return l && atomic_load(&l->stop_requested);
}

uint32_t duet_link_backoffs(struct duet_link *l)
{
	return l ? atomic_load_explicit(&l->backoffs, memory_order_relaxed) : 0;
}

void duet_link_stats(struct duet_link *l, uint32_t *rung, uint32_t *wakes)
{
	struct duet_doorbell *bell;

	if (!l) {
		if (rung)
			*rung = 0;
		if (wakes)
			*wakes = 0;
		return;
	}
	bell = l->bell;

	/* No lock: callbacks (which run under it) may ask too. */
	if (rung)
		*rung = atomic_load(&l->rung);
	if (wakes)
		*wakes = bell ? atomic_load(&bell[l->peer].wakes) : 0;
}

static const char *id_name(uint32_t id)
{
	switch (id) {
	case VIRTIO_ID_NETWORK: return "net";
	case VIRTIO_ID_BLOCK: return "blk";
	case VIRTIO_ID_CONSOLE: return "console";
	case VIRTIO_ID_ENTROPY: return "rng";
	case VIRTIO_ID_RPMSG: return "rpmsg";
	default: return "virtio";
	}
}

static bool has_driver(const struct virtio_device *vdev)
{
	return vdev->role == VIRTIO_DEV_DRIVER ? virtio_has_driver(vdev->id.device)
					       : vhost_has_driver(vdev->id.device);
}

bool duet_link_ready(struct duet_link *l)
{
	bool ready;

	if (!l)
		return false;
	duet_mutex_lock(l->lock);
	ready = atomic_load(&l->peer_up) && l->rptun && duet_rptun_ready(l->rptun);
	duet_mutex_unlock(l->lock);
	return ready;
}

int duet_link_describe(struct duet_link *l, char *buf, size_t len)
{
	size_t n = 0;

	if (!l || (!buf && len)) {
		if (buf && len)
			buf[0] = '\0';
		return 0;
	}
#define PUT(...) \
	(n += (size_t)snprintf(buf + (n < len ? n : len), n < len ? len - n : 0, __VA_ARGS__))
	duet_mutex_lock(l->lock);
	PUT("link '%s': %s '%s' <-> %s '%s': %s", l->cfg.name, l->me == DUET_SERVER ? "server" : "proxy",
	    l->local, l->me == DUET_SERVER ? "proxy" : "server", l->remote,
	    atomic_load(&l->peer_up) ? "up" : "down");
	if (atomic_load(&l->peer_up))
		PUT(" (peer pid %d)", atomic_load(&l->peer_pid));
	PUT("\n");
	for (unsigned int i = 0; l->rptun && i < duet_rptun_num_vdevs(l->rptun); i++) {
		struct virtio_device *vdev = duet_rptun_vdev(l->rptun, i);
		struct virtio_driver *drv = atomic_load(&vdev->bus_driver);
		uint8_t st = 0;

		virtio_get_status(vdev, &st);
		PUT("vdev %u %s: %s side, status 0x%02x, %s%s\n", i, id_name(vdev->id.device),
		    vdev->role == VIRTIO_DEV_DRIVER ? "virtio (driver)" : "vhost (device)", st,
		    drv ? "bound to " : (has_driver(vdev) ? "waiting" : "no driver in this build"),
		    drv ? (drv->name ? drv->name : "a driver") : "");
	}
	/* The doorbells' words: where a side that does not wake stands. */
	for (int side = 0; l->bell && side < 2; side++) {
		struct duet_doorbell *b = &l->bell[side];
		bool none = true;

		PUT("doorbell of the %s: seq %u, armed %u, polled %u, wake calls %u, pending",
		    side == DUET_SERVER ? "server" : "proxy", (unsigned int)atomic_load(&b->seq),
		    (unsigned int)atomic_load(&b->armed), (unsigned int)atomic_load(&b->polled),
		    (unsigned int)atomic_load(&b->wakes));
		/* Each word read once: the peer may set bits meanwhile. */
		for (uint32_t w = 0; w < DUET_DOORBELL_IDS / 32; w++)
			for (uint32_t bits = atomic_load(&b->pending[w]); bits; bits &= bits - 1u) {
				PUT(" %u", (unsigned int)(w * 32 + (uint32_t)__builtin_ctz(bits)));
				none = false;
			}
		PUT("%s\n", none ? " none" : "");
	}
	duet_mutex_unlock(l->lock);
#undef PUT
	return (int)(n < len ? n : (len ? len - 1 : 0));
}
