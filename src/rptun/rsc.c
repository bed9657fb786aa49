/*
 * rsc.c - the link's resource table: build it (server) and check it (both).
 *
 * The parser never trusts a field before it has bounded the bytes that
 * hold it, and every address it accepts lies inside the region; what it
 * refuses comes back as (entry, reason, value).
 */
#include <errno.h>
#include <string.h>

#include <duet/byteorder.h>
#include <duet/rsc.h>
#include <duet/virtio_ring.h>

#include "../core/strtab.h"

#define HDR_SIZE ((uint32_t)sizeof(struct resource_table))
#define VDEV_SIZE ((uint32_t)sizeof(struct fw_rsc_vdev))
#define VRING_SIZE ((uint32_t)sizeof(struct fw_rsc_vdev_vring))
#define CARVEOUT_SIZE ((uint32_t)sizeof(struct fw_rsc_carveout))
#define LINK_SIZE ((uint32_t)sizeof(struct duet_rsc_link))
#define MAX_NOTIFYID DUET_MAX_NOTIFYID
#define CARVEOUT_ALIGN 4096u

static uint32_t align4(uint32_t v)
{
	return (v + 3u) & ~3u;
}

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1u));
}

static bool valid_desc(const struct duet_vdev_desc *d)
{
	return d->num_vrings >= 1 && d->num_vrings <= DUET_MAX_VRINGS && is_pow2(d->vring_num) &&
	       d->vring_num <= VIRTQUEUE_MAX_SIZE && is_pow2(d->vring_align) &&
	       d->vring_align >= 4 && d->vring_align <= 65536 && d->config_len <= 4096 &&
	       (d->driver == DUET_SERVER || d->driver == DUET_PROXY) &&
	       d->carveout_size >= d->num_vrings * vring_size(d->vring_num, d->vring_align);
}

static uint32_t vdev_entry_size(const struct duet_vdev_desc *d)
{
	return align4(VDEV_SIZE + d->num_vrings * VRING_SIZE + d->config_len);
}

/* A carveout's share of the region: its size rounded up to the alignment,
 * in 64 bits (a size near 4 GiB would wrap in 32). */
static uint64_t carveout_span(const struct duet_vdev_desc *d)
{
	return ((uint64_t)d->carveout_size + CARVEOUT_ALIGN - 1u) & ~(uint64_t)(CARVEOUT_ALIGN - 1u);
}

size_t duet_rsc_carveouts_size(const struct duet_vdev_desc *vdevs, unsigned int n)
{
	uint64_t total = 0;

	for (unsigned int i = 0; vdevs && i < n; i++)
		total += carveout_span(&vdevs[i]);
	return total > SIZE_MAX ? SIZE_MAX : (size_t)total;
}

int duet_rsc_build(void *table, size_t size, const struct duet_vdev_desc *vdevs,
		   unsigned int n, uint32_t carveout_da)
{
	uint8_t *t = table;
	struct resource_table *hdr = table;
	uint32_t num = 1u + 2u * n, off, notifyid = 0, da = carveout_da;
	uint64_t da_end = carveout_da;
	struct duet_rsc_link *link;

	if (!table || (n && !vdevs) || n > DUET_MAX_VDEVS || (carveout_da % CARVEOUT_ALIGN))
		return -EINVAL;
	off = HDR_SIZE + 4u * num;
	for (unsigned int i = 0; i < n; i++) {
		if (!valid_desc(&vdevs[i]))
			return -EINVAL;
		notifyid += vdevs[i].num_vrings;
		off += vdev_entry_size(&vdevs[i]) + CARVEOUT_SIZE;
		da_end += carveout_span(&vdevs[i]);
	}
	/* Device addresses are 32 bits: past them, carveouts would wrap
	 * onto the table and each other. */
	if (notifyid > MAX_NOTIFYID || da_end > (uint64_t)UINT32_MAX + 1u)
		return -EINVAL;
	notifyid = 0;
	if (off + LINK_SIZE > size)
		return -ENOSPC;

	memset(table, 0, off + LINK_SIZE);
	hdr->ver = duet_le32(1);
	hdr->num = duet_le32(num);
	off = HDR_SIZE + 4u * num;
	hdr->offset[0] = duet_le32(off);
	link = (struct duet_rsc_link *)(void *)(t + off);
	link->type = duet_le32(DUET_RSC_LINK);
	link->version = duet_le32(1);
	link->num_vdevs = duet_le32(n);
	off += LINK_SIZE;
	for (unsigned int i = 0; i < n; i++) {
		const struct duet_vdev_desc *d = &vdevs[i];
		struct fw_rsc_vdev *v = (struct fw_rsc_vdev *)(void *)(t + off);
		struct fw_rsc_carveout *c;

		link->driver_side[i] = (uint8_t)d->driver;
		hdr->offset[1 + 2 * i] = duet_le32(off);
		v->type = duet_le32(RSC_VDEV);
		v->id = duet_le32(d->id);
		v->dfeatures = duet_le32(d->features);
		v->config_len = duet_le32(d->config_len);
		v->num_of_vrings = d->num_vrings;
		for (unsigned int k = 0; k < d->num_vrings; k++) {
			v->vring[k].da = duet_le32(FW_RSC_ADDR_ANY); /* the driver side places it */
			v->vring[k].align = duet_le32(d->vring_align);
			v->vring[k].num = duet_le32(d->vring_num);
			v->vring[k].notifyid = duet_le32(notifyid++);
		}
		v->notifyid = duet_le32(i);
		if (d->config)
			memcpy(&v->vring[d->num_vrings], d->config, d->config_len);
		off += vdev_entry_size(d);

		hdr->offset[2 + 2 * i] = duet_le32(off);
		c = (struct fw_rsc_carveout *)(void *)(t + off);
		c->type = duet_le32(RSC_CARVEOUT);
		c->da = duet_le32(da);
		c->pa = duet_le32(da);
		c->len = duet_le32(d->carveout_size);
		memcpy(c->name, "duet-vdev", 9);
		c->name[9] = (uint8_t)('0' + i / 10);
		c->name[10] = (uint8_t)('0' + i % 10);
		off += CARVEOUT_SIZE;
		da += (uint32_t)carveout_span(d);
	}
	return (int)off;
}

/* ---- parsing ---- */

struct parse {
	const uint8_t *t;
	uint32_t size;
	size_t region;
	struct duet_rsc_info *info;
	struct duet_rsc_error *err;
	int entry;
	bool have_link;
	uint8_t sides[DUET_MAX_VDEVS];
	uint32_t link_vdevs;
	uint32_t notify_used[(MAX_NOTIFYID + 31) / 32];
};

/* The sentences of enum duet_rsc_fault, in its order, from DUET_RSC_OK. */
static const char reasons[] =
	"table accepted\0"
	"table smaller than its header\0"
	"unsupported table version\0"
	"table reserved field not zero\0"
	"too many entries\0"
	"entry offsets run past the table\0"
	"entry offset outside the table or misaligned\0"
	"no duet link entry\0"
	"duet link entry and vdev count differ\0"
	"vdev without a carveout\0"
	"notify id too large\0"
	"notify id used twice\0"
	"vdev header runs past the table\0"
	"too many vdevs\0"
	"vdev reserved field not zero\0"
	"vdev vring count not 1..8\0"
	"vdev config longer than 4096\0"
	"vdev vrings or config run past the table\0"
	"vring size not a power of two up to 32768\0"
	"vring alignment not a power of two in 4..65536\0"
	"vring outside the region or misaligned\0"
	"vring pa not zero\0"
	"carveout runs past the table\0"
	"carveout reserved field not zero\0"
	"carveout outside the region\0"
	"carveout before any vdev\0"
	"vdev with two carveouts\0"
	"second duet link entry\0"
	"duet link entry runs past the table\0"
	"unsupported duet link entry version\0"
	"duet link entry reserved field not zero\0"
	"duet link entry names too many vdevs\0"
	"driver side neither server nor proxy\0"
	"table outside the region\0"
	"carveout too small for its vrings\0"
	"vring not where the driver side places it\0"
	"unknown fault";

const char *duet_rsc_reason(enum duet_rsc_fault fault)
{
	/* Past the list: the last sentence, "unknown fault". */
	unsigned int n = (unsigned int)fault <= DUET_RSC_VRING_PLACE ? (unsigned int)fault
								    : DUET_RSC_VRING_PLACE + 1u;

	return duet_strtab_at(reasons, n);
}

static int refuse(struct parse *p, enum duet_rsc_fault fault, uint64_t value)
{
	if (p->err) {
		p->err->entry = p->entry;
		p->err->fault = fault;
		p->err->value = value;
	}
	return -EINVAL;
}

static uint32_t rd32(const struct parse *p, uint32_t off)
{
	uint32_t v;

	memcpy(&v, p->t + off, sizeof(v)); /* the copy may be unaligned */
	return duet_le32(v);
}

/* True when [da, da + len) lies inside the region. */
static bool in_region(const struct parse *p, uint64_t da, uint64_t len)
{
	return da <= p->region && len <= p->region - da;
}

static int take_notifyid(struct parse *p, uint32_t id)
{
	if (id >= MAX_NOTIFYID)
		return refuse(p, DUET_RSC_NOTIFYID_RANGE, id);
	if (p->notify_used[id / 32] & (1u << (id % 32)))
		return refuse(p, DUET_RSC_NOTIFYID_TWICE, id);
	p->notify_used[id / 32] |= 1u << (id % 32);
	return 0;
}

static int parse_vdev(struct parse *p, uint32_t off)
{
	struct duet_rsc_vdev *v;
	uint32_t nvr, cfg, need;
	int ret;

	if (p->size - off < VDEV_SIZE)
		return refuse(p, DUET_RSC_VDEV_PAST_TABLE, off);
	if (p->info->num_vdevs >= DUET_MAX_VDEVS)
		return refuse(p, DUET_RSC_TOO_MANY_VDEVS, p->info->num_vdevs + 1u);
	nvr = p->t[off + offsetof(struct fw_rsc_vdev, num_of_vrings)];
	cfg = rd32(p, off + offsetof(struct fw_rsc_vdev, config_len));
	if (p->t[off + offsetof(struct fw_rsc_vdev, reserved)] ||
	    p->t[off + offsetof(struct fw_rsc_vdev, reserved) + 1])
		return refuse(p, DUET_RSC_VDEV_RESERVED, 0);
	if (nvr < 1 || nvr > DUET_MAX_VRINGS)
		return refuse(p, DUET_RSC_VDEV_VRING_COUNT, nvr);
	if (cfg > 4096)
		return refuse(p, DUET_RSC_VDEV_CONFIG_LEN, cfg);
	need = VDEV_SIZE + nvr * VRING_SIZE + cfg;
	if (p->size - off < need)
		return refuse(p, DUET_RSC_VDEV_BODY_PAST_TABLE, need);

	v = &p->info->vdev[p->info->num_vdevs];
	memset(v, 0, sizeof(*v));
	v->entry_offset = off;
	v->id = rd32(p, off + offsetof(struct fw_rsc_vdev, id));
	v->notifyid = rd32(p, off + offsetof(struct fw_rsc_vdev, notifyid));
	v->dfeatures = rd32(p, off + offsetof(struct fw_rsc_vdev, dfeatures));
	v->config_len = cfg;
	v->config_offset = off + VDEV_SIZE + nvr * VRING_SIZE;
	v->num_vrings = (uint8_t)nvr;
	for (uint32_t k = 0; k < nvr; k++) {
		uint32_t r = off + VDEV_SIZE + k * VRING_SIZE;
		uint32_t da = rd32(p, r), align = rd32(p, r + 4), num = rd32(p, r + 8);

		if (!is_pow2(num) || num > VIRTQUEUE_MAX_SIZE)
			return refuse(p, DUET_RSC_VRING_NUM, num);
		if (!is_pow2(align) || align < 4 || align > 65536)
			return refuse(p, DUET_RSC_VRING_ALIGN, align);
		if (da != FW_RSC_ADDR_ANY && (da % 16 || !in_region(p, da, vring_size(num, align))))
			return refuse(p, DUET_RSC_VRING_OUTSIDE, da);
		if (rd32(p, r + 16))
			return refuse(p, DUET_RSC_VRING_PA, rd32(p, r + 16));
		v->vring[k].da = da;
		v->vring[k].align = align;
		v->vring[k].num = num;
		v->vring[k].notifyid = rd32(p, r + 12);
		ret = take_notifyid(p, v->vring[k].notifyid);
		if (ret < 0)
			return ret;
	}
	p->info->num_vdevs++;
	return 0;
}

static int parse_carveout(struct parse *p, uint32_t off)
{
	struct duet_rsc_vdev *v;
	uint32_t da, len;

	if (p->size - off < CARVEOUT_SIZE)
		return refuse(p, DUET_RSC_CARVEOUT_PAST_TABLE, off);
	da = rd32(p, off + offsetof(struct fw_rsc_carveout, da));
	len = rd32(p, off + offsetof(struct fw_rsc_carveout, len));
	if (rd32(p, off + offsetof(struct fw_rsc_carveout, reserved)))
		return refuse(p, DUET_RSC_CARVEOUT_RESERVED, 0);
	if (!in_region(p, da, len) || !len)
		return refuse(p, DUET_RSC_CARVEOUT_OUTSIDE, da);
	if (!p->info->num_vdevs)
		return refuse(p, DUET_RSC_CARVEOUT_BEFORE_VDEV, da);
	v = &p->info->vdev[p->info->num_vdevs - 1];
	if (v->carveout_len)
		return refuse(p, DUET_RSC_VDEV_TWO_CARVEOUTS, da);
	v->carveout_da = da;
	v->carveout_len = len;
	return 0;
}

static int parse_link(struct parse *p, uint32_t off)
{
	uint32_t n;

	if (p->have_link)
		return refuse(p, DUET_RSC_LINK_TWICE, 0);
	if (p->size - off < LINK_SIZE)
		return refuse(p, DUET_RSC_LINK_PAST_TABLE, off);
	if (rd32(p, off + 4) != 1)
		return refuse(p, DUET_RSC_LINK_VERSION, rd32(p, off + 4));
	if (rd32(p, off + 12))
		return refuse(p, DUET_RSC_LINK_RESERVED, 0);
	n = rd32(p, off + 8);
	if (n > DUET_MAX_VDEVS)
		return refuse(p, DUET_RSC_LINK_TOO_MANY_VDEVS, n);
	for (uint32_t i = 0; i < n; i++) {
		p->sides[i] = p->t[off + 16 + i];
		if (p->sides[i] != DUET_SERVER && p->sides[i] != DUET_PROXY)
			return refuse(p, DUET_RSC_LINK_BAD_SIDE, p->sides[i]);
	}
	p->link_vdevs = n;
	p->have_link = true;
	return 0;
}

static int parse_entry(struct parse *p, uint32_t off)
{
	uint32_t type = rd32(p, off);

	switch (type) {
	case RSC_VDEV:
		return parse_vdev(p, off);
	case RSC_CARVEOUT:
		return parse_carveout(p, off);
	case DUET_RSC_LINK:
		return parse_link(p, off);
	default:
		return 0; /* trace, devmem, other vendors: not ours, skipped */
	}
}

int duet_rsc_parse(const void *table, size_t size, size_t region_size,
		   struct duet_rsc_info *info, struct duet_rsc_error *err)
{
	struct parse p = { .t = table, .region = region_size, .info = info, .err = err,
			   .entry = -1 };
	uint32_t num, end;
	int ret;

	if (!table || !info)
		return -EINVAL;
	memset(info, 0, sizeof(*info));
	if (size < HDR_SIZE)
		return refuse(&p, DUET_RSC_TABLE_SHORT, size);
	p.size = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
	if (rd32(&p, 0) != 1)
		return refuse(&p, DUET_RSC_TABLE_VERSION, rd32(&p, 0));
	if (rd32(&p, 8) || rd32(&p, 12))
		return refuse(&p, DUET_RSC_TABLE_RESERVED, 0);
	num = rd32(&p, 4);
	if (num > DUET_RSC_MAX_ENTRIES)
		return refuse(&p, DUET_RSC_TOO_MANY_ENTRIES, num);
	end = HDR_SIZE + 4u * num;
	if (end > p.size)
		return refuse(&p, DUET_RSC_OFFSETS_PAST_TABLE, end);
	for (uint32_t i = 0; i < num; i++) {
		uint32_t off = rd32(&p, HDR_SIZE + 4u * i);

		p.entry = (int)i;
		if (off % 4 || off < end || off > p.size - 4u)
			return refuse(&p, DUET_RSC_OFFSET_BAD, off);
		ret = parse_entry(&p, off);
		if (ret < 0)
			return ret;
	}
	p.entry = -1;
	if (!p.have_link)
		return refuse(&p, DUET_RSC_NO_LINK, 0);
	if (p.link_vdevs != info->num_vdevs)
		return refuse(&p, DUET_RSC_LINK_COUNT, p.link_vdevs);
	for (unsigned int i = 0; i < info->num_vdevs; i++) {
		p.entry = (int)i;
		if (!info->vdev[i].carveout_len)
			return refuse(&p, DUET_RSC_VDEV_NO_CARVEOUT, i);
		info->vdev[i].driver = (enum duet_side)p.sides[i];
	}
	return 0;
}
