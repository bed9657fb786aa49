/*
 * libFuzzer target: a hostile peer writing into the live resource table
 * and the rest of the shared region while both rptun sides run. The table
 * was checked once at create; afterwards every word of it is the peer's
 * to change: a vdev's status, features, config length and bytes, the
 * vrings' addresses, sizes and notify ids, the reset epochs. What must
 * hold: whatever it writes, neither side reads or writes outside the
 * region (a heap block of exactly its size, so AddressSanitizer sees any
 * access past it), and every call returns. And nothing is lost for good:
 * once the region is as built again, both sides stop and start, the
 * proxy's devices are all bound with their queues (a buffer heap that
 * leaked would refuse the server's drivers their buffers), and new rpmsg
 * endpoints exchange a message each way.
 *
 * Both sides run in this one thread over the demo's three vdevs (rpmsg
 * and an rng driven by the server, an rng driven by the proxy), with
 * their drivers bound and an rpmsg endpoint on each side: the server starts first, so the proxy's device
 * sides find DRIVER_OK and are probed at once, with no work thread (the
 * server's device side waits for a record that restarts the server). The
 * input is a list of records, [op] [a] [b] [c], then for writes their
 * bytes:
 *   0  a u32 (4 bytes) into a field of vdev a % 3 (b picks the field)
 *   1  c % 16 bytes at region offset (a << 8 | b), wrapped to the region
 *   2  side c & 1 checks its peer           3  side c & 1 is notified (id a)
 *   4  side c & 1 polls its rings           5  an rng read, timeout 0 (a even),
 *                                              or an rpmsg send from side c & 1
 *   6  side c & 1 stops, or starts again    7  vdev a % 3's reset epoch moves
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <duet/rng.h>
#include <duet/rpmsg.h>
#include <duet/rptun.h>
#include <duet/rsc_table.h>
#include <duet/vhost.h>

#define TABLE_SIZE 4096u
#define CARVE_DA 4096u
#define NVDEVS 3u

/* rpmsg's config space: 256-byte buffers each way (little-endian words) */
static const uint8_t rpmsg_config[8] = { 0, 1, 0, 0, 0, 1, 0, 0 };

static const struct duet_vdev_desc vdevs[NVDEVS] = {
	{ .id = VIRTIO_ID_RPMSG, .driver = DUET_SERVER, .features = 1, .num_vrings = 2,
	  .vring_num = 4, .vring_align = 16, .config_len = 8, .config = rpmsg_config,
	  .carveout_size = 8 * 1024 },
	{ .id = VIRTIO_ID_ENTROPY, .driver = DUET_SERVER, .num_vrings = 1, .vring_num = 4,
	  .vring_align = 16, .carveout_size = 4 * 1024 },
	{ .id = VIRTIO_ID_ENTROPY, .driver = DUET_PROXY, .num_vrings = 1, .vring_num = 4,
	  .vring_align = 16, .carveout_size = 4 * 1024 },
};

static uint8_t *region;
static struct rpmsg_endpoint epts[2]; /* server's, proxy's */
static bool ept_made[2];
static uint8_t *pristine; /* the region as built: the table, zeroed carveouts */
static size_t region_size;
static _Atomic uint32_t epochs[DUET_MAX_VDEVS];

/* Doorbells go nowhere: the fuzzer decides who is notified, and when. */
static void ring(struct duet_rptun *rptun, uint32_t notifyid)
{
	(void)rptun;
	(void)notifyid;
}

static void *table_of(struct duet_rptun *rptun, size_t *size)
{
	(void)rptun;
	*size = TABLE_SIZE;
	return region;
}

static const struct duet_rptun_ops ops = { .get_resource = table_of, .notify = ring };

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	virtio_register_drivers();
	vhost_register_drivers();
	/* A device side deferred by a record waits for a stop and a start:
	 * a work thread probing it would make runs depend on timing. */
	vhost_set_probe_period(3600u * 1000u);
	return 0;
}

/* vdev i's entry in the table as built (the fuzzer may have moved the
 * offsets since: the layout is the builder's, known here). */
static struct fw_rsc_vdev *vdev_entry(uint32_t i)
{
	static size_t off[NVDEVS];

	if (!off[0]) {
		const struct resource_table *t = (const void *)region;

		/* Two entries per vdev, the carveout and then the vdev. */
		for (uint32_t k = 0; k < NVDEVS; k++)
			off[k] = t->offset[2 * k + 1];
	}
	return (struct fw_rsc_vdev *)(void *)(region + off[i]);
}

/* The u32 field `which` (wrapped) of vdev entry v: a header word, a
 * vring word, or the first or last word of its config space (when it
 * has one). */
static uint8_t *field(struct fw_rsc_vdev *v, uint32_t i, uint8_t which)
{
	static const size_t head[] = {
		offsetof(struct fw_rsc_vdev, notifyid),     offsetof(struct fw_rsc_vdev, dfeatures),
		offsetof(struct fw_rsc_vdev, gfeatures),    offsetof(struct fw_rsc_vdev, config_len),
		offsetof(struct fw_rsc_vdev, status),       /* status, num_of_vrings, reserved */
	};
	size_t nhead = sizeof(head) / sizeof(head[0]);
	size_t nring = vdevs[i].num_vrings * 4u; /* da, align, num, notifyid */
	size_t nconfig = vdevs[i].config_len >= 4u ? 2u : 0u;

	which %= (uint8_t)(nhead + nring + nconfig);
	if (which < nhead)
		return (uint8_t *)v + head[which];
	which = (uint8_t)(which - nhead);
	if (which < nring)
		return (uint8_t *)&v->vring[which / 4u] + 4u * (which % 4u);
	/* The config space, after the vrings: its first word or its last. */
	return (uint8_t *)&v->vring[vdevs[i].num_vrings] +
	       (which == nring ? 0u : vdevs[i].config_len - 4u);
}

static void poke(size_t off, const uint8_t *bytes, size_t n)
{
	for (size_t k = 0; k < n; k++)
		region[(off + k) % region_size] = bytes[k];
}

static void play(struct duet_rptun *side[2], const uint8_t *data, size_t size)
{
	while (size >= 4) {
		uint8_t op = data[0] & 7u, a = data[1], b = data[2], c = data[3];
		struct duet_rptun *me = side[c & 1u];
		uint8_t buf[32];
		size_t n;

		data += 4;
		size -= 4;
		switch (op) {
		case 0:
			if (size < 4)
				return;
			poke((size_t)(field(vdev_entry(a % NVDEVS), a % NVDEVS, b) - region), data, 4);
			data += 4;
			size -= 4;
			break;
		case 1:
			n = c % 16u < size ? c % 16u : size;
			poke(((size_t)a << 8 | b) % region_size, data, n);
			data += n;
			size -= n;
			break;
		case 2:
			duet_rptun_check_peer(me);
			break;
		case 3:
			duet_rptun_notified(me, a == 0xff ? DUET_RPTUN_NOTIFY_ALL : a);
			break;
		case 4:
			duet_rptun_poll(me);
			break;
		case 5: {
			struct virtio_device *rng = virtio_rng_get(a % 4u);

			if (a & 1u) {
				memset(buf, b, sizeof(buf));
				if (ept_made[c & 1u])
					(void)rpmsg_trysend(&epts[c & 1u], buf, 1 + b % (int)sizeof(buf));
			} else if (rng) {
				(void)virtio_rng_read(rng, buf, 1u + b % sizeof(buf), 0);
			}
			break;
		}
		case 6:
			if (duet_rptun_running(me))
				duet_rptun_stop(me);
			else
				duet_rptun_start(me);
			break;
		default:
			atomic_fetch_add(&epochs[a % NVDEVS], 1u);
			break;
		}
		(void)duet_rptun_ready(me);
	}
}


static unsigned int received[2]; /* messages each side's endpoint got */

static int count_cb(struct rpmsg_endpoint *ept, void *data, size_t len, uint32_t src, void *priv)
{
	(void)data;
	(void)len;
	(void)src;
	(void)priv;
	received[ept == &epts[1]]++;
	return 0;
}

/* An endpoint named "fz" on each side's rpmsg device: the name service
 * binds them once the records let the announcements through. */
static void make_epts(struct duet_rptun *side[2])
{
	for (int i = 0; i < 2; i++) {
		struct virtio_device *v = duet_rptun_vdev(side[i], 0);

		ept_made[i] = v && v->priv &&
			      rpmsg_create_ept(&epts[i], v->priv, "fz", RPMSG_ADDR_ANY, RPMSG_ADDR_ANY,
					       count_cb, NULL) == 0;
	}
}

/* Destroyed whatever became of their devices (gone ones too). */
static void destroy_epts(void)
{
	for (int i = 0; i < 2; i++)
		if (ept_made[i])
			rpmsg_destroy_ept(&epts[i]);
	memset(ept_made, 0, sizeof(ept_made));
}

/* The table as built, the peer's writes undone, and both sides started
 * again in the order that binds the proxy's devices at once: then new
 * endpoints find each other and a message gets through each way. */
static void recover(struct duet_rptun *side[2])
{
	static const char msg[] = "after";

	for (int i = 1; i >= 0; i--)
		if (duet_rptun_running(side[i]) && duet_rptun_stop(side[i]) < 0)
			abort();
	/* A fresh region, as at a cold boot: the table as built and the
	 * carveouts zeroed. What the sides kept of their own (heaps, buses,
	 * endpoints) is all that carries over, and that is what is checked. */
	memcpy(region, pristine, region_size);
	if (duet_rptun_start(side[0]) < 0 || duet_rptun_start(side[1]) < 0 ||
	    !duet_rptun_ready(side[1]))
		abort();
	make_epts(side);
	memset(received, 0, sizeof(received));
	for (int turn = 0; turn < 4; turn++) {
		duet_rptun_poll(side[1]);
		duet_rptun_poll(side[0]);
	}
	if (!ept_made[0] || !ept_made[1] || rpmsg_trysend(&epts[0], msg, sizeof(msg)) < 0 ||
	    rpmsg_trysend(&epts[1], msg, sizeof(msg)) < 0)
		abort();
	duet_rptun_poll(side[1]);
	duet_rptun_poll(side[0]);
	if (received[0] != 1 || received[1] != 1)
		abort();
	destroy_epts();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct duet_rptun *side[2] = { NULL, NULL };
	struct duet_rsc_error err;

	region_size = CARVE_DA + duet_rsc_carveouts_size(vdevs, NVDEVS);
	region = calloc(1, region_size);
	if (!region)
		return 0;
	memset(epochs, 0, sizeof(epochs));
	if (duet_rsc_build(region, TABLE_SIZE, vdevs, NVDEVS, CARVE_DA) <= 0)
		abort();
	pristine = malloc(region_size);
	if (!pristine)
		abort();
	memcpy(pristine, region, region_size);
	for (int i = 0; i < 2; i++) {
		struct duet_rptun_config cfg = {
			.side = (enum duet_side)i, .region = region, .region_size = region_size,
			.ops = &ops, .reset_epochs = epochs,
		};

		if (duet_rptun_create(&side[i], &cfg, &err) < 0)
			abort();
	}
	/* The server, which drives rpmsg and the first rng, first: its
	 * DRIVER_OK is up when the proxy's device sides register. The
	 * server's device side of the third vdev stays deferred until a
	 * record restarts the server. */
	if (duet_rptun_start(side[0]) < 0 || duet_rptun_start(side[1]) < 0 ||
	    !duet_rptun_ready(side[1]))
		abort();
	make_epts(side);
	play(side, data, size);
	destroy_epts();
	recover(side);
	duet_rptun_destroy(side[1]);
	duet_rptun_destroy(side[0]);
	free(pristine);
	free(region);
	return 0;
}
