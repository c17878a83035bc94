/*
 * cv_buf.c - growing byte buffers and hex digits. See cv_buf.h.
 */
#include "cv_buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

const char cv_hex_digits[16] = "0123456789abcdef";

bool cv_buf_reserve(cv_buf *b, size_t more) {
    size_t cap = b->cap ? b->cap : 256;
    char *grown;

    if (b->failed)
        return false;
    if (more > SIZE_MAX - b->len - 1)
        goto fail;
    if (b->len + more + 1 <= b->cap)
        return true;
    while (cap < b->len + more + 1) {
        if (cap > SIZE_MAX / 2)
            goto fail;
        cap *= 2;
    }
    if (!(grown = realloc(b->data, cap)))
        goto fail;
    b->data = grown;
    b->cap = cap;
    return true;
fail:
    b->failed = true;
    return false;
}

/* Appends n bytes, or the string s. False when the buffer has failed. */
static bool buf_add(cv_buf *b, const void *data, size_t n) {
    if (!cv_buf_reserve(b, n))
        return false;
    if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

bool cv_buf_add(cv_buf *b, const void *data, size_t n) {
    return buf_add(b, data, n);
}

bool cv_buf_adds(cv_buf *b, const char *s) {
    return buf_add(b, s, strlen(s));
}

bool cv_buf_printf(cv_buf *b, const char *fmt, ...) {
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !cv_buf_reserve(b, (size_t)n)) {
        b->failed = true;
        return false;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}

bool cv_buf_add_hex(cv_buf *b, const void *data, size_t n) {
    if (n > SIZE_MAX / 4) {
        b->failed = true;
        return false;
    }
    if (!cv_buf_reserve(b, 2 * n))
        return false;
    cv_hex_encode(b->data + b->len, data, n);
    b->len += 2 * n;
    b->data[b->len] = '\0';
    return true;
}

char *cv_buf_take(cv_buf *b) {
    char *text = b->failed ? NULL : b->data;

    if (!text)
        free(b->data);
    memset(b, 0, sizeof(*b));
    return text;
}

void cv_buf_free(cv_buf *b) {
    free(b->data);
    memset(b, 0, sizeof(*b));
}

char *cv_hex_encode(char *out, const void *in, size_t n) {
    const unsigned char *p = in;

    for (size_t i = 0; i < n; i++) {
        *out++ = cv_hex_digits[p[i] >> 4];
        *out++ = cv_hex_digits[p[i] & 15];
    }
    return out;
}
