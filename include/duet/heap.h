/*
 * duet/heap.h - an allocator for buffers in shared memory.
 *
 * Its bookkeeping (two bitmaps of granules) lives in local memory from the
 * port, never in the region it manages, so a peer writing the shared memory
 * cannot corrupt it. Thread safe.
 */
#ifndef DUET_HEAP_H
#define DUET_HEAP_H

#include <stddef.h>

#include <duet/api.h>

#ifdef __cplusplus
extern "C" {
#endif

struct duet_heap;

/* Manage [base, base + size) in `granule`-byte units (a power of two >= 8;
 * base aligned to it; the range inside the address space). Returns 0,
 * -EINVAL or -ENOMEM. */
DUET_API int duet_heap_create(struct duet_heap **heap, void *base, size_t size, size_t granule);
DUET_API void duet_heap_destroy(struct duet_heap *heap);

/* `size` bytes aligned to `align` (a power of two, or 0 for the granule);
 * NULL when no such run is free. */
DUET_API void *duet_heap_alloc(struct duet_heap *heap, size_t size, size_t align);

/* Free what duet_heap_alloc returned. -EINVAL for any other pointer
 * (nothing changes then). */
DUET_API int duet_heap_free(struct duet_heap *heap, void *p);

/* Bytes not allocated (0 for a NULL heap). */
DUET_API size_t duet_heap_available(struct duet_heap *heap);

/* True when [p, p + len) lies inside the managed region (false for a NULL
 * heap). */
DUET_API int duet_heap_contains(const struct duet_heap *heap, const void *p, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* DUET_HEAP_H */
