/*
 * libFuzzer target: arbitrary bytes as a resource table. The parser gets a
 * heap copy of exactly the input's size (AddressSanitizer catches any
 * over-read); whatever it accepts must be inside the table and the region.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <duet/rsc.h>

#define REGION (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct duet_rsc_info info;
	struct duet_rsc_error err = { 0 };
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (duet_rsc_parse(copy, size, REGION, &info, &err) == 0) {
		for (unsigned int i = 0; i < info.num_vdevs; i++) {
			const struct duet_rsc_vdev *v = &info.vdev[i];

			if ((uint64_t)v->carveout_da + v->carveout_len > REGION ||
			    (uint64_t)v->config_offset + v->config_len > size || !v->num_vrings)
				abort();
		}
	} else if (err.fault == DUET_RSC_OK || !strcmp(duet_rsc_reason(err.fault), "unknown fault")) {
		abort();
	}
	free(copy);
	return 0;
}
