/*
 * cv_buf.h - a growing byte buffer, the one the whole tree builds text in
 * (SQL statements, JSON lines, rows in a load format), and the hex digits
 * that bytes travel as.
 *
 * An append that cannot get memory marks the buffer failed and does nothing;
 * later appends do nothing either, and cv_buf_take() reports the failure, so
 * a builder checks once at the end. The bytes are kept NUL-terminated.
 *
 * A buffer belongs to one thread at a time; the functions keep no state of
 * their own.
 */
#ifndef CV_BUF_H
#define CV_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct cv_buf {
    char *data; /* owned; NULL until the first append */
    size_t len, cap;
    bool failed; /* an allocation failed: appends stop */
} cv_buf;

/* Makes room for `more` bytes after len (and a NUL): at least 256 bytes,
 * doubling. False (and failed set) when out of memory. */
bool cv_buf_reserve(cv_buf *b, size_t more);

bool cv_buf_adds(cv_buf *b, const char *s);

/* Appends n bytes (NUL bytes too). */
bool cv_buf_add(cv_buf *b, const void *data, size_t n);

/* Appends printf-formatted text. */
bool cv_buf_printf(cv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends the n bytes at `data` as 2n lower-case hex digits. */
bool cv_buf_add_hex(cv_buf *b, const void *data, size_t n);

/* The text built, which the caller frees with free(), and b emptied; NULL
 * (everything freed) if an append failed or nothing was added. */
char *cv_buf_take(cv_buf *b);

/* Frees the memory and empties b. */
void cv_buf_free(cv_buf *b);

/* The digits of lower-case hex, and the 2n of them for the n bytes at `in`
 * written to out (no NUL). Returns out + 2n. */
extern const char cv_hex_digits[16];
char *cv_hex_encode(char *out, const void *in, size_t n);

#endif
