/*
 * cv_array.c - growing arrays. See cv_array.h.
 */
#include "cv_array.h"

#include <stdint.h>
#include <stdlib.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

int cv_array_grow(void **items, size_t *cap, size_t need, size_t size) {
    void *bigger;
    size_t n = *cap ? *cap : 64;

    if (need <= *cap)
        return 0;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return -1;
        n *= 2;
    }
    if (size && n > SIZE_MAX / size)
        return -1;
    if (!(bigger = realloc(*items, n * size)))
        return -1;
    *items = bigger;
    *cap = n;
    return 0;
}
