/*
 * cv_array.h - growing an array of fixed-size items, for the lists a module
 * keeps (batches, queues) and fills one item at a time.
 *
 * Every function may be called from any thread, on arrays it alone uses.
 */
#ifndef CV_ARRAY_H
#define CV_ARRAY_H

#include <stddef.h>

/* Makes *items (an array of *cap items of `size` bytes, or NULL with *cap 0)
 * hold at least `need` items: at least 64, doubling. The items already there
 * stay; the new room is not initialized. 0, or -1 when out of memory (or the
 * size overflows), *items and *cap then unchanged. */
int cv_array_grow(void **items, size_t *cap, size_t need, size_t size);

#endif
