/*
 * duet/rsc_table.h - remoteproc resource table wire format (Linux
 * include/linux/remoteproc.h), little-endian. Reserved fields stay zero:
 * upstream parsers reject anything else.
 */
#ifndef DUET_RSC_TABLE_H
#define DUET_RSC_TABLE_H

#include <stdint.h>

#define RSC_CARVEOUT 0u
#define RSC_DEVMEM 1u
#define RSC_TRACE 2u
#define RSC_VDEV 3u
#define RSC_VENDOR_START 128u

/* Address "anywhere": the driver side places the vring and writes it back. */
#define FW_RSC_ADDR_ANY 0xffffffffu

struct resource_table {
	uint32_t ver; /* 1 */
	uint32_t num;
	uint32_t reserved[2];
	uint32_t offset[];
};

struct fw_rsc_carveout {
	uint32_t type; /* RSC_CARVEOUT */
	uint32_t da;
	uint32_t pa;
	uint32_t len;
	uint32_t flags;
	uint32_t reserved;
	uint8_t name[32];
};

struct fw_rsc_vdev_vring {
	uint32_t da;
	uint32_t align;
	uint32_t num;
	uint32_t notifyid;
	uint32_t pa;
};

struct fw_rsc_vdev {
	uint32_t type; /* RSC_VDEV */
	uint32_t id;
	uint32_t notifyid;
	uint32_t dfeatures; /* offered by the device */
	uint32_t gfeatures; /* accepted by the driver */
	uint32_t config_len;
	uint8_t status;
	uint8_t num_of_vrings;
	uint8_t reserved[2];
	struct fw_rsc_vdev_vring vring[];
	/* then config_len bytes of config space */
};

#endif /* DUET_RSC_TABLE_H */
