/*
 * The link's resource table: what the server builds parses back to what it
 * described, stays valid for upstream parsers, and a hostile table is
 * refused with the exact rule it broke. Each parse runs on a heap copy of
 * exactly the table's size, so AddressSanitizer catches any over-read.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <duet/rsc.h>
#include <duet/virtio.h>

#include "dirty.h"

#define REGION (1u << 20)
#define CARVE_DA 0x10000u

static const struct duet_vdev_desc demo[3] = {
	{ .id = VIRTIO_ID_RPMSG, .driver = DUET_SERVER, .features = 1, .num_vrings = 2,
	  .vring_num = 8, .vring_align = 16, .config_len = 8, .config = "\x00\x02\x00\x00\x00\x02\x00\x00",
	  .carveout_size = 64 * 1024 },
	{ .id = VIRTIO_ID_ENTROPY, .driver = DUET_SERVER, .num_vrings = 1, .vring_num = 8,
	  .vring_align = 16, .carveout_size = 16 * 1024 },
	{ .id = VIRTIO_ID_ENTROPY, .driver = DUET_PROXY, .num_vrings = 1, .vring_num = 8,
	  .vring_align = 16, .carveout_size = 16 * 1024 },
};

static uint8_t table[4096];
static int table_len;

static int build(void **state)
{
	(void)state;
	table_len = duet_rsc_build(table, sizeof(table), demo, 3, CARVE_DA);
	assert_true(table_len > 0);
	return 0;
}

/* Parse a heap copy of exactly `len` bytes. */
static int parse_copy(const void *t, size_t len, struct duet_rsc_info *info,
		      struct duet_rsc_error *err)
{
	void *copy = malloc(len ? len : 1);
	int ret;

	memcpy(copy, t, len);
	ret = duet_rsc_parse(copy, len, REGION, info, err);
	free(copy);
	return ret;
}

static void expect_refused(int entry, const char *reason)
{
	struct duet_rsc_info info;
	struct duet_rsc_error err = { 0 };

	assert_int_equal(parse_copy(table, (size_t)table_len, &info, &err), -EINVAL);
	assert_string_equal(duet_rsc_reason(err.fault), reason);
	assert_int_equal(err.entry, entry);
}

static uint32_t *u32_at(uint32_t off)
{
	return (uint32_t *)(void *)&table[off];
}

static uint32_t entry_off(int i)
{
	return ((struct resource_table *)(void *)table)->offset[i];
}

static struct fw_rsc_vdev *vdev_entry(int v)
{
	return (struct fw_rsc_vdev *)(void *)&table[entry_off(1 + 2 * v)];
}

static struct fw_rsc_carveout *carveout_entry(int v)
{
	return (struct fw_rsc_carveout *)(void *)&table[entry_off(2 + 2 * v)];
}

/* ---- the good table ---- */

static void test_round_trip(void **state)
{
	struct duet_rsc_info info;
	struct duet_rsc_error err = { 0 };

	(void)state;
	assert_int_equal(parse_copy(table, (size_t)table_len, &info, &err), 0);
	assert_int_equal(info.num_vdevs, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(info.vdev[i].id, demo[i].id);
		assert_int_equal(info.vdev[i].driver, demo[i].driver);
		assert_int_equal(info.vdev[i].num_vrings, demo[i].num_vrings);
		assert_int_equal(info.vdev[i].config_len, demo[i].config_len);
		assert_int_equal(info.vdev[i].vring[0].da, FW_RSC_ADDR_ANY);
		assert_int_equal(info.vdev[i].vring[0].num, 8);
		assert_true(info.vdev[i].carveout_len >= demo[i].carveout_size);
		assert_true(info.vdev[i].carveout_da >= CARVE_DA);
		if (i)
			assert_true(info.vdev[i].carveout_da >=
				    info.vdev[i - 1].carveout_da + info.vdev[i - 1].carveout_len);
	}
	/* Each vring its own notify id, in order across the vdevs, so that no
	 * two share a doorbell bit. */
	{
		uint32_t next = 0;

		for (int i = 0; i < 3; i++)
			for (unsigned int k = 0; k < info.vdev[i].num_vrings; k++)
				assert_int_equal(info.vdev[i].vring[k].notifyid, next++);
	}
	assert_memory_equal(&table[info.vdev[0].config_offset], demo[0].config, 8);
	assert_int_equal(info.vdev[0].dfeatures, 1);
	assert_int_equal(duet_rsc_carveouts_size(demo, 3), (64 + 16 + 16) * 1024);
	/* The table fits exactly the room it reports, and not a byte less. */
	{
		static uint8_t exact[4096];

		assert_int_equal(duet_rsc_build(exact, (size_t)table_len, demo, 3, CARVE_DA),
				 table_len);
		assert_memory_equal(exact, table, (size_t)table_len);
		assert_int_equal(duet_rsc_build(exact, (size_t)table_len - 1, demo, 3, CARVE_DA),
				 -ENOSPC);
	}
}

/* A vdev with config space and no initial contents gets zeros there,
 * whatever the table's memory held: nothing of the vrings' entries spills
 * into it. */
static void test_config_without_contents_is_zero(void **state)
{
	static const uint8_t zeros[12];
	struct duet_vdev_desc d = demo[1];
	static uint8_t t[4096];
	struct duet_rsc_info info;
	struct duet_rsc_error err = { 0 };
	int len;

	(void)state;
	d.config_len = sizeof(zeros);
	dirty(t, sizeof(t));
	len = duet_rsc_build(t, sizeof(t), &d, 1, CARVE_DA);
	assert_true(len > 0);
	assert_int_equal(parse_copy(t, (size_t)len, &info, &err), 0);
	assert_int_equal(info.vdev[0].config_len, sizeof(zeros));
	assert_memory_equal(&t[info.vdev[0].config_offset], zeros, sizeof(zeros));
}

static void test_upstream_view(void **state)
{
	struct resource_table *hdr = (struct resource_table *)(void *)table;

	(void)state;
	/* What Linux and OpenAMP check: version 1, reserved words zero,
	 * entry types they know or vendor types they skip. */
	assert_int_equal(hdr->ver, 1);
	assert_int_equal(hdr->reserved[0] | hdr->reserved[1], 0);
	assert_int_equal(hdr->num, 7);
	assert_int_equal(*u32_at(entry_off(0)), RSC_VENDOR_START);
	for (int v = 0; v < 3; v++) {
		assert_int_equal(vdev_entry(v)->type, RSC_VDEV);
		assert_int_equal(vdev_entry(v)->reserved[0] | vdev_entry(v)->reserved[1], 0);
		assert_int_equal(vdev_entry(v)->gfeatures, 0);
		assert_int_equal(vdev_entry(v)->status, 0);
		assert_int_equal(carveout_entry(v)->type, RSC_CARVEOUT);
		assert_int_equal(carveout_entry(v)->reserved, 0);
		assert_int_equal(carveout_entry(v)->flags, 0);
		assert_int_equal(entry_off(1 + 2 * v) % 4, 0);
	}
}

static void test_build_rejects_bad_descriptions(void **state)
{
	struct duet_vdev_desc d = demo[1];

	(void)state;
	d.vring_num = 6;
	assert_int_equal(duet_rsc_build(table, sizeof(table), &d, 1, CARVE_DA), -EINVAL);
	d = demo[1];
	d.carveout_size = 16; /* cannot hold its vring */
	assert_int_equal(duet_rsc_build(table, sizeof(table), &d, 1, CARVE_DA), -EINVAL);
	d = demo[1];
	d.driver = (enum duet_side)5;
	assert_int_equal(duet_rsc_build(table, sizeof(table), &d, 1, CARVE_DA), -EINVAL);
	assert_int_equal(duet_rsc_build(table, 40, demo, 3, CARVE_DA), -ENOSPC);
	assert_int_equal(duet_rsc_build(table, sizeof(table), demo, 3, CARVE_DA + 1), -EINVAL);
	/* Carveouts past 4 GiB of device addresses: each size near the limit
	 * rounds up past it, and two that fit alone do not together (the
	 * second would have wrapped onto the table). */
	d = demo[1];
	d.carveout_size = UINT32_MAX - 100;
	assert_int_equal(duet_rsc_build(table, sizeof(table), &d, 1, CARVE_DA), -EINVAL);
	assert_true(duet_rsc_carveouts_size(&d, 1) > UINT32_MAX - 100);
	{
		struct duet_vdev_desc two[2] = { demo[1], demo[1] };

		/* Up to the last device address is fine. */
		two[0].carveout_size = 0u - CARVE_DA;
		assert_true(duet_rsc_build(table, sizeof(table), two, 1, CARVE_DA) > 0);
		two[0].carveout_size = two[1].carveout_size = 0x80000000u;
		assert_true(duet_rsc_build(table, sizeof(table), two, 1, CARVE_DA) > 0);
		assert_int_equal(duet_rsc_build(table, sizeof(table), two, 2, CARVE_DA), -EINVAL);
	}
	assert_int_equal(duet_rsc_carveouts_size(NULL, 3), 0);
}

/* Each limit of a description is accepted at the limit and refused one
 * past it; so is the total of notify ids (DUET_MAX_NOTIFYID). */
static void test_build_limits(void **state)
{
	static uint8_t big[8192];
	struct duet_vdev_desc d = { .id = VIRTIO_ID_ENTROPY, .driver = DUET_SERVER,
				    .num_vrings = DUET_MAX_VRINGS, .vring_num = 32768,
				    .vring_align = 65536, .config_len = 4096 };
	struct duet_vdev_desc many[DUET_MAX_VDEVS + 1];

	(void)state;
	d.carveout_size = DUET_MAX_VRINGS * vring_size(32768, 65536); /* exactly its vrings */
	assert_true(duet_rsc_build(big, sizeof(big), &d, 1, CARVE_DA) > 0);
	/* ... and parses back, in a region that holds the carveout. */
	{
		struct duet_rsc_info info;

		assert_int_equal(duet_rsc_parse(big, sizeof(big), CARVE_DA + 2 * (size_t)d.carveout_size,
						&info, NULL),
				 0);
		assert_int_equal(info.vdev[0].num_vrings, DUET_MAX_VRINGS);
		assert_int_equal(info.vdev[0].config_len, 4096);
		assert_int_equal(info.vdev[0].vring[DUET_MAX_VRINGS - 1].num, 32768);
	}
	d.carveout_size--;
	assert_int_equal(duet_rsc_build(big, sizeof(big), &d, 1, CARVE_DA), -EINVAL);
	d.carveout_size++;
	d.config_len = 4097;
	assert_int_equal(duet_rsc_build(big, sizeof(big), &d, 1, CARVE_DA), -EINVAL);
	d.config_len = 0;
	d.num_vrings = DUET_MAX_VRINGS + 1;
	assert_int_equal(duet_rsc_build(big, sizeof(big), &d, 1, CARVE_DA), -EINVAL);
	d = demo[1];
	d.vring_align = 4;
	assert_true(duet_rsc_build(big, sizeof(big), &d, 1, CARVE_DA) > 0);
	d.vring_align = 2;
	assert_int_equal(duet_rsc_build(big, sizeof(big), &d, 1, CARVE_DA), -EINVAL);
	d.vring_align = 131072;
	assert_int_equal(duet_rsc_build(big, sizeof(big), &d, 1, CARVE_DA), -EINVAL);
	/* 15 vdevs of 8 vrings use notify ids 0..119, all there are; 16
	 * would need 128. */
	d = demo[1];
	d.num_vrings = DUET_MAX_VRINGS;
	d.carveout_size = 16 * 1024;
	for (int i = 0; i <= DUET_MAX_VDEVS; i++)
		many[i] = d;
	assert_true(duet_rsc_build(big, sizeof(big), many, 15, CARVE_DA) > 0);
	assert_int_equal(duet_rsc_build(big, sizeof(big), many, 16, CARVE_DA), -EINVAL);
	/* DUET_MAX_VDEVS vdevs, and not one more. */
	for (int i = 0; i <= DUET_MAX_VDEVS; i++)
		many[i].num_vrings = 1;
	assert_true(duet_rsc_build(big, sizeof(big), many, DUET_MAX_VDEVS, CARVE_DA) > 0);
	assert_int_equal(duet_rsc_build(big, sizeof(big), many, DUET_MAX_VDEVS + 1, CARVE_DA),
			 -EINVAL);
}

/* ---- hostile tables, one rule each ---- */

static void test_parse_needs_a_table_and_a_result(void **state)
{
	struct duet_rsc_info info;

	(void)state;
	assert_int_equal(duet_rsc_parse(NULL, (size_t)table_len, REGION, &info, NULL), -EINVAL);
	assert_int_equal(duet_rsc_parse(table, (size_t)table_len, REGION, NULL, NULL), -EINVAL);
}

/* DUET_MAX_VDEVS vdevs parse; an entry offset that names a vdev entry a
 * second time makes a 17th, refused before it is stored. */
static void test_vdev_count_limit(void **state)
{
	struct duet_vdev_desc many[DUET_MAX_VDEVS];
	struct duet_rsc_info info;
	struct duet_rsc_error err = { 0 };

	(void)state;
	for (int i = 0; i < DUET_MAX_VDEVS; i++)
		many[i] = demo[1];
	table_len = duet_rsc_build(table, sizeof(table), many, DUET_MAX_VDEVS, CARVE_DA);
	assert_true(table_len > 0);
	assert_int_equal(parse_copy(table, (size_t)table_len, &info, &err), 0);
	assert_int_equal(info.num_vdevs, DUET_MAX_VDEVS);
	/* The last carveout's offset now names the first vdev entry. */
	((struct resource_table *)(void *)table)->offset[2 * DUET_MAX_VDEVS] = entry_off(1);
	expect_refused(2 * DUET_MAX_VDEVS, "too many vdevs");
}

static void test_short_table(void **state)
{
	struct duet_rsc_info info;
	struct duet_rsc_error err;

	(void)state;
	assert_int_equal(parse_copy(table, 12, &info, &err), -EINVAL);
	assert_string_equal(duet_rsc_reason(err.fault), "table smaller than its header");
}

static void test_truncated_table(void **state)
{
	(void)state;
	table_len = (int)entry_off(6) + 8; /* the last carveout cut short */
	expect_refused(6, "carveout runs past the table");
}

/*
 * Each part that ends exactly at the table's end is whole: the parser goes
 * on to the next rule, whose reason it gives. The table's header alone,
 * the offsets alone, an entry's type word alone, a vdev's header alone, a
 * vdev with its vrings and config, the link entry.
 */
static void test_parts_ending_at_the_table_end(void **state)
{
	struct duet_rsc_info info;
	struct duet_rsc_error err = { 0 };
	static const uint32_t header_only[4] = { 1, 0, 0, 0 };
	uint8_t saved[4096];

	(void)state;
	memcpy(saved, table, sizeof(saved));
	assert_int_equal(parse_copy(header_only, sizeof(header_only), &info, &err), -EINVAL);
	assert_string_equal(duet_rsc_reason(err.fault), "no duet link entry");
	table_len = 16 + 4 * 7; /* the offsets, nothing after them */
	expect_refused(0, "entry offset outside the table or misaligned");
	table_len = (int)entry_off(6) + 4; /* the last carveout's type word */
	expect_refused(6, "carveout runs past the table");
	*u32_at(4) = 6; /* the last carveout gone: vdev 2 is the table's end */
	table_len = (int)entry_off(5) + (int)sizeof(struct fw_rsc_vdev);
	expect_refused(5, "vdev vrings or config run past the table");
	table_len = (int)entry_off(6);
	expect_refused(2, "vdev without a carveout");
	*u32_at(4) = 1; /* the link entry alone */
	table_len = (int)entry_off(0) + (int)sizeof(struct duet_rsc_link);
	expect_refused(-1, "duet link entry and vdev count differ");
	memcpy(table, saved, sizeof(saved));
	*u32_at(4) = DUET_RSC_MAX_ENTRIES; /* as many as allowed: now entry 0 */
	table_len = (int)sizeof(table);     /* lies among the offsets */
	expect_refused(0, "entry offset outside the table or misaligned");
}

static void test_bad_version(void **state)
{
	(void)state;
	*u32_at(0) = 2;
	expect_refused(-1, "unsupported table version");
}

static void test_header_reserved(void **state)
{
	(void)state;
	*u32_at(8) = 1;
	expect_refused(-1, "table reserved field not zero");
}

static void test_too_many_entries(void **state)
{
	(void)state;
	*u32_at(4) = 65;
	expect_refused(-1, "too many entries");
}

static void test_offsets_past_table(void **state)
{
	(void)state;
	*u32_at(4) = 60; /* 60 offsets do not fit in the table */
	table_len = 200;
	expect_refused(-1, "entry offsets run past the table");
}

static void test_offset_outside(void **state)
{
	(void)state;
	*u32_at(16 + 4 * 3) = (uint32_t)table_len; /* entry 3 at the very end */
	expect_refused(3, "entry offset outside the table or misaligned");
}

static void test_offset_into_header(void **state)
{
	(void)state;
	*u32_at(16 + 4 * 1) = 4; /* entry 1 overlapping the header */
	expect_refused(1, "entry offset outside the table or misaligned");
}

static void test_offset_misaligned(void **state)
{
	(void)state;
	*u32_at(16 + 4 * 1) += 2;
	expect_refused(1, "entry offset outside the table or misaligned");
}

static void test_vdev_header_past_end(void **state)
{
	(void)state;
	*u32_at(16 + 4 * 6) = (uint32_t)table_len - 8;
	*u32_at((uint32_t)table_len - 8) = RSC_VDEV;
	expect_refused(6, "vdev header runs past the table");
}

static void test_vdev_reserved(void **state)
{
	(void)state;
	vdev_entry(0)->reserved[1] = 1;
	expect_refused(1, "vdev reserved field not zero");
}

static void test_vdev_no_vrings(void **state)
{
	(void)state;
	vdev_entry(1)->num_of_vrings = 0;
	expect_refused(3, "vdev vring count not 1..8");
}

static void test_vdev_too_many_vrings(void **state)
{
	(void)state;
	vdev_entry(1)->num_of_vrings = 9;
	expect_refused(3, "vdev vring count not 1..8");
}

static void test_vdev_config_past_end(void **state)
{
	(void)state;
	vdev_entry(2)->config_len = 4000; /* <= 4096 but past the table */
	expect_refused(5, "vdev vrings or config run past the table");
}

static void test_vdev_config_huge(void **state)
{
	(void)state;
	vdev_entry(2)->config_len = 0xfffffff0u; /* would wrap a 32-bit sum */
	expect_refused(5, "vdev config longer than 4096");
}

static void test_vring_size_not_pow2(void **state)
{
	(void)state;
	vdev_entry(0)->vring[1].num = 12;
	expect_refused(1, "vring size not a power of two up to 32768");
}

static void test_vring_size_too_big(void **state)
{
	(void)state;
	vdev_entry(0)->vring[0].num = 65536;
	expect_refused(1, "vring size not a power of two up to 32768");
}

static void test_vring_align_bad(void **state)
{
	(void)state;
	vdev_entry(1)->vring[0].align = 2;
	expect_refused(3, "vring alignment not a power of two in 4..65536");
}

static void test_vring_outside_region(void **state)
{
	(void)state;
	vdev_entry(1)->vring[0].da = REGION - 64;
	expect_refused(3, "vring outside the region or misaligned");
}

static void test_vring_misaligned(void **state)
{
	(void)state;
	vdev_entry(1)->vring[0].da = CARVE_DA + 8;
	expect_refused(3, "vring outside the region or misaligned");
}

static void test_vring_pa(void **state)
{
	(void)state;
	vdev_entry(1)->vring[0].pa = 0x1000;
	expect_refused(3, "vring pa not zero");
}

static void test_notifyid_twice(void **state)
{
	(void)state;
	vdev_entry(2)->vring[0].notifyid = vdev_entry(1)->vring[0].notifyid;
	expect_refused(5, "notify id used twice");
}

static void test_notifyid_too_large(void **state)
{
	(void)state;
	vdev_entry(2)->vring[0].notifyid = 128;
	expect_refused(5, "notify id too large");
}

/* The ids run 0..DUET_MAX_NOTIFYID - 1: the last is fine, the limit is not. */
static void test_notifyid_at_the_limit(void **state)
{
	struct duet_rsc_info info;

	(void)state;
	vdev_entry(2)->vring[0].notifyid = DUET_MAX_NOTIFYID - 1;
	assert_int_equal(parse_copy(table, (size_t)table_len, &info, NULL), 0);
	assert_int_equal(info.vdev[2].vring[0].notifyid, DUET_MAX_NOTIFYID - 1);
	vdev_entry(2)->vring[0].notifyid = DUET_MAX_NOTIFYID;
	expect_refused(5, "notify id too large");
}

/* A carveout may end exactly at the region's end, not a byte past. */
static void test_carveout_at_the_region_end(void **state)
{
	struct duet_rsc_info info;

	(void)state;
	carveout_entry(2)->da = REGION - carveout_entry(2)->len;
	assert_int_equal(parse_copy(table, (size_t)table_len, &info, NULL), 0);
	assert_int_equal(info.vdev[2].carveout_da + info.vdev[2].carveout_len, REGION);
	carveout_entry(2)->da++;
	expect_refused(6, "carveout outside the region");
}

/* The largest vring and the extreme alignments parse. */
static void test_vring_limits_accepted(void **state)
{
	struct duet_rsc_info info;

	(void)state;
	vdev_entry(0)->vring[0].num = 32768;
	vdev_entry(1)->vring[0].align = 4;
	vdev_entry(2)->vring[0].align = 65536;
	assert_int_equal(parse_copy(table, (size_t)table_len, &info, NULL), 0);
	assert_int_equal(info.vdev[0].vring[0].num, 32768);
	vdev_entry(2)->vring[0].align = 131072;
	expect_refused(5, "vring alignment not a power of two in 4..65536");
}

static void test_carveout_outside(void **state)
{
	(void)state;
	carveout_entry(1)->len = REGION;
	expect_refused(4, "carveout outside the region");
}

static void test_carveout_wraps(void **state)
{
	(void)state;
	carveout_entry(1)->da = 0xfffff000u;
	carveout_entry(1)->len = 0x2000u;
	expect_refused(4, "carveout outside the region");
}

static void test_carveout_reserved(void **state)
{
	(void)state;
	carveout_entry(0)->reserved = 7;
	expect_refused(2, "carveout reserved field not zero");
}

static void test_carveout_first(void **state)
{
	(void)state;
	/* Swap entries 1 and 2: the carveout now comes before its vdev. */
	uint32_t a = entry_off(1), b = entry_off(2);

	*u32_at(16 + 4) = b;
	*u32_at(16 + 8) = a;
	expect_refused(1, "carveout before any vdev");
}

static void test_link_entry_twice(void **state)
{
	(void)state;
	*u32_at(16 + 4 * 6) = entry_off(0); /* last carveout replaced by the link */
	expect_refused(6, "second duet link entry");
}

static void test_link_missing(void **state)
{
	(void)state;
	*u32_at(entry_off(0)) = RSC_TRACE; /* an entry we skip */
	expect_refused(-1, "no duet link entry");
}

static void test_link_count_differs(void **state)
{
	(void)state;
	*u32_at(entry_off(0) + 8) = 2;
	expect_refused(-1, "duet link entry and vdev count differ");
}

static void test_link_bad_side(void **state)
{
	(void)state;
	table[entry_off(0) + 16 + 1] = 2;
	expect_refused(0, "driver side neither server nor proxy");
}

static void test_link_reserved(void **state)
{
	(void)state;
	*u32_at(entry_off(0) + 12) = 1;
	expect_refused(0, "duet link entry reserved field not zero");
}

/* The link entry alone, four bytes short. */
static void test_link_cut_short(void **state)
{
	(void)state;
	*u32_at(4) = 1;
	table_len = (int)entry_off(0) + (int)sizeof(struct duet_rsc_link) - 4;
	expect_refused(0, "duet link entry runs past the table");
}

/* Entry 3, vdev 1, replaced by the carveout after it: vdev 0 gets two. */
static void test_vdev_two_carveouts(void **state)
{
	(void)state;
	*u32_at(16 + 4 * 3) = entry_off(4);
	expect_refused(3, "vdev with two carveouts");
}

/* Every fault has its own sentence; a value past the list has none. */
static void test_reasons(void **state)
{
	(void)state;
	assert_string_equal(duet_rsc_reason(DUET_RSC_OK), "table accepted");
	for (int f = DUET_RSC_TABLE_SHORT; f <= DUET_RSC_VRING_PLACE; f++) {
		const char *r = duet_rsc_reason((enum duet_rsc_fault)f);

		assert_true(strlen(r) > 8);
		assert_string_not_equal(r, "unknown fault");
		for (int g = DUET_RSC_OK; g < f; g++)
			assert_string_not_equal(r, duet_rsc_reason((enum duet_rsc_fault)g));
	}
	assert_string_equal(duet_rsc_reason((enum duet_rsc_fault)(DUET_RSC_VRING_PLACE + 1)),
			    "unknown fault");
	assert_string_equal(duet_rsc_reason((enum duet_rsc_fault)-1), "unknown fault");
}

static void test_link_version(void **state)
{
	(void)state;
	*u32_at(entry_off(0) + 4) = 3;
	expect_refused(0, "unsupported duet link entry version");
}

static void test_link_too_many(void **state)
{
	(void)state;
	*u32_at(entry_off(0) + 8) = 17;
	expect_refused(0, "duet link entry names too many vdevs");
}

static void test_vdev_lost_its_carveout(void **state)
{
	(void)state;
	/* The last carveout becomes an entry we skip. */
	carveout_entry(2)->type = RSC_TRACE;
	expect_refused(2, "vdev without a carveout");
}

static void test_random_corruption_never_crashes(void **state)
{
	struct duet_rsc_info info;
	uint64_t x = 88172645463325252ull;
	uint8_t saved[4096];

	(void)state;
	memcpy(saved, table, sizeof(saved));
	for (int round = 0; round < 20000; round++) {
		memcpy(table, saved, sizeof(saved));
		for (int k = 0; k < 4; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			table[x % (uint64_t)table_len] = (uint8_t)(x >> 32);
		}
		/* Accepted or refused, never a crash; accepted means sane. */
		if (parse_copy(table, (size_t)table_len, &info, NULL) == 0) {
			for (unsigned int i = 0; i < info.num_vdevs; i++) {
				assert_true((uint64_t)info.vdev[i].carveout_da + info.vdev[i].carveout_len <= REGION);
				assert_true(info.vdev[i].config_offset + info.vdev[i].config_len <= (uint32_t)table_len);
			}
		}
	}
}

int main(void)
{
#define T(t) cmocka_unit_test_setup(t, build)
	const struct CMUnitTest tests[] = {
		T(test_round_trip), T(test_upstream_view),
		cmocka_unit_test(test_config_without_contents_is_zero),
		T(test_build_rejects_bad_descriptions),
		T(test_build_limits), T(test_parse_needs_a_table_and_a_result),
		T(test_vdev_count_limit), T(test_notifyid_at_the_limit),
		T(test_carveout_at_the_region_end), T(test_vring_limits_accepted),
		T(test_short_table), T(test_truncated_table), T(test_bad_version),
		T(test_parts_ending_at_the_table_end),
		T(test_header_reserved), T(test_too_many_entries), T(test_offsets_past_table),
		T(test_offset_outside), T(test_offset_into_header), T(test_offset_misaligned),
		T(test_vdev_header_past_end), T(test_vdev_reserved), T(test_vdev_no_vrings),
		T(test_vdev_too_many_vrings), T(test_vdev_config_past_end), T(test_vdev_config_huge),
		T(test_vring_size_not_pow2), T(test_vring_size_too_big), T(test_vring_align_bad),
		T(test_vring_outside_region), T(test_vring_misaligned), T(test_vring_pa),
		T(test_notifyid_twice), T(test_notifyid_too_large), T(test_carveout_outside),
		T(test_carveout_wraps), T(test_carveout_reserved), T(test_carveout_first),
		T(test_link_entry_twice), T(test_link_missing), T(test_link_count_differs),
		T(test_link_bad_side), T(test_link_version), T(test_link_too_many),
		T(test_link_reserved), T(test_link_cut_short), T(test_vdev_two_carveouts), T(test_reasons),
		T(test_vdev_lost_its_carveout), T(test_random_corruption_never_crashes),
	};

	return cmocka_run_group_tests_name("resource table", tests, NULL, NULL);
}
