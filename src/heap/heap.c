/*
 * heap.c - first-fit allocation over granules, bookkept in local bitmaps.
 *
 * `used` marks allocated granules, `start` the first granule of each
 * allocation; an allocation runs from its start to the next start or the
 * next free granule. Freeing checks that the pointer is a start, so a
 * pointer that did not come from here is refused, not trusted.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include <duet/heap.h>
#include <duet/port.h>

struct duet_heap {
	uint8_t *base;
	size_t ngran;
	size_t granule;
	size_t nfree;
	struct duet_mutex *lock;
	uint32_t *used;
	uint32_t *start;
};

static bool bit(const uint32_t *map, size_t i)
{
	return (map[i / 32] >> (i % 32)) & 1u;
}

static void set_bit(uint32_t *map, size_t i, bool on)
{
	if (on)
		map[i / 32] |= 1u << (i % 32);
	else
		map[i / 32] &= ~(1u << (i % 32));
}

int duet_heap_create(struct duet_heap **heapp, void *base, size_t size, size_t granule)
{
	struct duet_heap *h;
	size_t words;

	if (!heapp || !base || granule < 8 || (granule & (granule - 1)) ||
	    ((uintptr_t)base & (granule - 1)) || size < granule ||
	    size - 1 > UINTPTR_MAX - (uintptr_t)base) /* past the end of memory */
		return -EINVAL;
	h = duet_port_alloc(sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->base = base;
	h->granule = granule;
	h->ngran = size / granule;
	h->nfree = h->ngran;
	words = (h->ngran + 31) / 32;
	h->used = duet_port_alloc(words * sizeof(uint32_t));
	h->start = duet_port_alloc(words * sizeof(uint32_t));
	if (!h->used || !h->start || duet_mutex_create(&h->lock) < 0) {
		duet_port_free(h->used);
		duet_port_free(h->start);
		duet_port_free(h);
		return -ENOMEM;
	}
	*heapp = h;
	return 0;
}

void duet_heap_destroy(struct duet_heap *h)
{
	if (!h)
		return;
	duet_mutex_destroy(h->lock);
	duet_port_free(h->used);
	duet_port_free(h->start);
	duet_port_free(h);
}

/* The first granule that is aligned to `align` and starts `n` free
 * granules; ngran when there is none. */
static size_t find_run(const struct duet_heap *h, size_t n, size_t align)
{
	size_t i = 0;

	while (i + n <= h->ngran) {
		size_t k;

		if (((uintptr_t)(h->base + i * h->granule) & (align - 1)) || bit(h->used, i)) {
			i++;
			continue;
		}
		for (k = 1; k < n && !bit(h->used, i + k); k++)
			;
		if (k == n)
			return i;
		i += k + 1; /* skip past the used granule that ended the run */
	}
	return h->ngran;
}

void *duet_heap_alloc(struct duet_heap *h, size_t size, size_t align)
{
	size_t n, i, k;

	if (!h || !size || (align & (align - 1)))
		return NULL;
	if (align < h->granule)
		align = h->granule;
	n = size / h->granule + (size % h->granule != 0);
	if (n > h->ngran)
		return NULL;
	duet_mutex_lock(h->lock);
	i = find_run(h, n, align);
	if (i < h->ngran) {
		for (k = 0; k < n; k++)
			set_bit(h->used, i + k, true);
		set_bit(h->start, i, true);
		h->nfree -= n;
	}
	duet_mutex_unlock(h->lock);
	return i < h->ngran ? h->base + i * h->granule : NULL;
}

int duet_heap_free(struct duet_heap *h, void *p)
{
	uintptr_t off;
	size_t i;

	if (!h || !p)
		return -EINVAL;
	off = (uintptr_t)p - (uintptr_t)h->base;
	if (off >= h->ngran * h->granule || (off & (h->granule - 1)))
		return -EINVAL;
	i = off / h->granule;
	duet_mutex_lock(h->lock);
	if (!bit(h->start, i)) {
		duet_mutex_unlock(h->lock);
		return -EINVAL;
	}
	set_bit(h->start, i, false);
	do {
		set_bit(h->used, i, false);
		h->nfree++;
		i++;
	} while (i < h->ngran && bit(h->used, i) && !bit(h->start, i));
	duet_mutex_unlock(h->lock);
	return 0;
}

size_t duet_heap_available(struct duet_heap *h)
{
	size_t n;

	if (!h)
		return 0;
	duet_mutex_lock(h->lock);
	n = h->nfree * h->granule;
	duet_mutex_unlock(h->lock);
	return n;
}

int duet_heap_contains(const struct duet_heap *h, const void *p, size_t len)
{
	uintptr_t off;
	size_t total;

	if (!h)
		return 0;
	off = (uintptr_t)p - (uintptr_t)h->base;
	total = h->ngran * h->granule;
	return off <= total && len <= total - off;
}
