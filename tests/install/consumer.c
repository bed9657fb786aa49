/* Uses the installed headers and library: one buffer through one ring. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <duet/version.h>
#include <duet/virtqueue.h>

int main(void)
{
	static _Alignas(64) unsigned char region[8192];
	_Alignas(void *) unsigned char m1[VIRTQUEUE_FOOTPRINT(16)], m2[VIRTQUEUE_FOOTPRINT(16)];
	struct virtqueue_config cfg = {
		.role = VIRTQUEUE_ROLE_DRIVER, .num = 16, .ring = region, .align = 64,
		.window = { region, 0, sizeof(region) },
	};
	struct virtqueue *drv, *dev;
	struct virtqueue_buf b = { region + 4096, 16, false };
	uint16_t head;
	int cookie;

	/* The library linked is the one these headers describe, and the
	 * package that found both (CMake's or pkg-config's) says the same. */
	if (duet_version() != DUET_VERSION) {
		fprintf(stderr, "consumer: library 0x%06lx, headers 0x%06lx\n", duet_version(),
			(unsigned long)DUET_VERSION);
		return 1;
	}
#ifdef DUET_PACKAGE_VERSION
	if (strcmp(DUET_PACKAGE_VERSION, DUET_VERSION_STRING)) {
		fprintf(stderr, "consumer: package %s, headers %s\n", DUET_PACKAGE_VERSION,
			DUET_VERSION_STRING);
		return 1;
	}
#endif
	if (virtqueue_init(m1, sizeof(m1), &cfg, &drv))
		return 1;
	cfg.role = VIRTQUEUE_ROLE_DEVICE;
	if (virtqueue_init(m2, sizeof(m2), &cfg, &dev))
		return 1;
	if (virtqueue_add_buffer(drv, &b, 1, 0, &cookie) ||
	    virtqueue_get_available_buffer(dev, &head, NULL) != b.buf ||
	    virtqueue_add_consumed_buffer(dev, head, 0) ||
	    virtqueue_get_buffer(drv, NULL, NULL) != &cookie) {
		fprintf(stderr, "consumer: round trip failed\n");
		return 1;
	}
	puts("consumer: installed libduet works");
	return 0;
}
