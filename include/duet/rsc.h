/*
 * duet/rsc.h - building and parsing the link's resource table.
 *
 * The table is standard remoteproc (duet/rsc_table.h): per virtio device a
 * VDEV entry followed by the CARVEOUT that holds its vrings and buffer heap,
 * plus one vendor entry (DUET_RSC_LINK) that says, per vdev, which side is
 * the virtio driver. Upstream parsers skip the vendor entry; reserved
 * fields are zero.
 *
 * The parser treats the table as hostile: it must be given a local copy,
 * bounds every entry by the table size and every address by the region
 * size, and says precisely what it rejected.
 */
#ifndef DUET_RSC_H
#define DUET_RSC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <duet/api.h>
#include <duet/rsc_table.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DUET_RSC_LINK (RSC_VENDOR_START + 0u) /* the duet vendor entry */
#define DUET_MAX_VDEVS 16
#define DUET_MAX_VRINGS 8 /* per vdev */
#define DUET_RSC_MAX_ENTRIES 64
/* vring notify ids are 0..DUET_MAX_NOTIFYID-1; transports may use the
 * ids above for their own signals */
#define DUET_MAX_NOTIFYID 120u

enum duet_side { DUET_SERVER = 0, DUET_PROXY = 1 };

struct duet_rsc_link {
	uint32_t type; /* DUET_RSC_LINK */
	uint32_t version; /* 1 */
	uint32_t num_vdevs;
	uint32_t reserved;
	uint8_t driver_side[DUET_MAX_VDEVS]; /* enum duet_side, per vdev in order */
};

/* One virtio device of a link, as the server describes it. */
struct duet_vdev_desc {
	uint32_t id;             /* VIRTIO_ID_* */
	enum duet_side driver;   /* the side that runs the virtio driver */
	uint32_t features;       /* offered by the device side */
	uint8_t num_vrings;      /* 1..DUET_MAX_VRINGS */
	uint16_t vring_num;      /* entries per vring, power of two */
	uint32_t vring_align;    /* power of two, 4..65536 */
	uint32_t config_len;
	const void *config;      /* initial config space, or NULL for zeros: little-endian */
	uint32_t carveout_size;  /* vrings + the driver side's buffer heap */
};

/*
 * Write a table for `n` vdevs at table (`size` bytes available), whose
 * carveouts start at region offset `carveout_da`. Returns the table's
 * length, or -EINVAL (bad description, more than DUET_MAX_NOTIFYID vrings
 * in all, or carveouts ending past 4 GiB of device addresses) / -ENOSPC
 * (does not fit). The carveouts are laid out back to back, each aligned
 * to 4096.
 */
DUET_API int duet_rsc_build(void *table, size_t size, const struct duet_vdev_desc *vdevs,
			    unsigned int n, uint32_t carveout_da);

/* Bytes the carveouts of a table built from `vdevs` need. */
DUET_API size_t duet_rsc_carveouts_size(const struct duet_vdev_desc *vdevs, unsigned int n);

/* What a vdev entry says, checked. Offsets are into the table. */
struct duet_rsc_vdev {
	uint32_t entry_offset; /* of the fw_rsc_vdev */
	uint32_t id;
	uint32_t notifyid;
	uint32_t dfeatures;
	uint32_t config_len;
	uint32_t config_offset;
	uint8_t num_vrings;
	enum duet_side driver;
	struct {
		uint32_t da; /* FW_RSC_ADDR_ANY: not placed yet */
		uint32_t align;
		uint32_t num;
		uint32_t notifyid;
	} vring[DUET_MAX_VRINGS];
	uint32_t carveout_da;
	uint32_t carveout_len;
};

struct duet_rsc_info {
	unsigned int num_vdevs;
	struct duet_rsc_vdev vdev[DUET_MAX_VDEVS];
};

/*
 * Why a table was refused: duet_rsc_reason() gives each its sentence.
 * The last two come from duet_rptun_create, not from the parser.
 */
enum duet_rsc_fault {
	DUET_RSC_OK,
	DUET_RSC_TABLE_SHORT,          /* table smaller than its header */
	DUET_RSC_TABLE_VERSION,        /* unsupported table version */
	DUET_RSC_TABLE_RESERVED,       /* table reserved field not zero */
	DUET_RSC_TOO_MANY_ENTRIES,     /* too many entries */
	DUET_RSC_OFFSETS_PAST_TABLE,   /* entry offsets run past the table */
	DUET_RSC_OFFSET_BAD,           /* entry offset outside the table or misaligned */
	DUET_RSC_NO_LINK,              /* no duet link entry */
	DUET_RSC_LINK_COUNT,           /* duet link entry and vdev count differ */
	DUET_RSC_VDEV_NO_CARVEOUT,     /* vdev without a carveout */
	DUET_RSC_NOTIFYID_RANGE,       /* notify id too large */
	DUET_RSC_NOTIFYID_TWICE,       /* notify id used twice */
	DUET_RSC_VDEV_PAST_TABLE,      /* vdev header runs past the table */
	DUET_RSC_TOO_MANY_VDEVS,       /* too many vdevs */
	DUET_RSC_VDEV_RESERVED,        /* vdev reserved field not zero */
	DUET_RSC_VDEV_VRING_COUNT,     /* vdev vring count not 1..8 */
	DUET_RSC_VDEV_CONFIG_LEN,      /* vdev config longer than 4096 */
	DUET_RSC_VDEV_BODY_PAST_TABLE, /* vdev vrings or config run past the table */
	DUET_RSC_VRING_NUM,            /* vring size not a power of two up to 32768 */
	DUET_RSC_VRING_ALIGN,          /* vring alignment not a power of two in 4..65536 */
	DUET_RSC_VRING_OUTSIDE,        /* vring outside the region or misaligned */
	DUET_RSC_VRING_PA,             /* vring pa not zero */
	DUET_RSC_CARVEOUT_PAST_TABLE,  /* carveout runs past the table */
	DUET_RSC_CARVEOUT_RESERVED,    /* carveout reserved field not zero */
	DUET_RSC_CARVEOUT_OUTSIDE,     /* carveout outside the region */
	DUET_RSC_CARVEOUT_BEFORE_VDEV, /* carveout before any vdev */
	DUET_RSC_VDEV_TWO_CARVEOUTS,   /* vdev with two carveouts */
	DUET_RSC_LINK_TWICE,           /* second duet link entry */
	DUET_RSC_LINK_PAST_TABLE,      /* duet link entry runs past the table */
	DUET_RSC_LINK_VERSION,         /* unsupported duet link entry version */
	DUET_RSC_LINK_RESERVED,        /* duet link entry reserved field not zero */
	DUET_RSC_LINK_TOO_MANY_VDEVS,  /* duet link entry names too many vdevs */
	DUET_RSC_LINK_BAD_SIDE,        /* driver side neither server nor proxy */
	DUET_RSC_TABLE_OUTSIDE,        /* table outside the region */
	DUET_RSC_CARVEOUT_SMALL,       /* carveout too small for its vrings */
	DUET_RSC_VRING_PLACE,          /* vring not where the driver side places it */
};

/* Where and why a table was refused. */
struct duet_rsc_error {
	int entry;                 /* index of the entry, -1 for the header */
	enum duet_rsc_fault fault; /* why */
	uint64_t value;            /* the offending value */
};

/*
 * The sentence of `fault`, a fixed English phrase ("unknown fault" for a
 * value not in the list). The sentences, about 1 KB, are linked only with
 * this function: a firmware that reports a refused table by its number
 * leaves them out.
 */
DUET_API const char *duet_rsc_reason(enum duet_rsc_fault fault);

/*
 * Check the table copy `table` (`size` bytes) against a region of
 * `region_size` bytes and fill *info. Returns 0, or -EINVAL with *err
 * (optional) saying which entry and why.
 */
DUET_API int duet_rsc_parse(const void *table, size_t size, size_t region_size,
			    struct duet_rsc_info *info, struct duet_rsc_error *err);

#ifdef __cplusplus
}
#endif

#endif /* DUET_RSC_H */
