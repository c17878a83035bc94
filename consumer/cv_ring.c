/*
 * cv_ring.c - the pump's chunk ring: the reader fills a chunk with rows in
 * the text format COPY and LOAD DATA share and hands it over; the sender
 * takes full chunks in order. See cv_pump.h.
 */
#include "cv_pump.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

bool cv_ring_init(cv_pump *p) {
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->changed, NULL);
    p->ready = true;
    for (int i = 0; i < CV_PUMP_CHUNKS; i++) {
        if (!(p->chunk[i] = malloc(CV_PUMP_CHUNK)))
            return false;
        p->cap[i] = CV_PUMP_CHUNK;
        p->used[i] = 0;
    }
    return true;
}

void cv_ring_free(cv_pump *p) {
    if (!p->ready)
        return;
    for (int i = 0; i < CV_PUMP_CHUNKS; i++) {
        free(p->chunk[i]);
        p->chunk[i] = NULL;
        p->cap[i] = p->used[i] = 0;
    }
    pthread_cond_destroy(&p->changed);
    pthread_mutex_destroy(&p->lock);
    p->ready = false;
}

/* Passes the reader's current chunk (if it holds anything) to the sender and,
 * with `last`, the reader's final status. Waits while no chunk is free.
 * Returns false if the sender asked the reader to stop. */
bool cv_ring_hand_over(cv_pump *p, int *slot, bool last, cv_err err, const char *why) {
    pthread_mutex_lock(&p->lock);
    /* The sender owns `count` full chunks from `head`; the reader owns the one
     * after them, so handing over needs a free chunk beyond that. */
    while (p->count >= CV_PUMP_CHUNKS - 1 && !p->stop)
        pthread_cond_wait(&p->changed, &p->lock);
    if (p->stop) {
        pthread_mutex_unlock(&p->lock);
        return false;
    }
    if (p->used[*slot] || p->batch_end[*slot]) {
        p->count++;
        *slot = (*slot + 1) % CV_PUMP_CHUNKS;
        p->used[*slot] = 0; /* the next free slot (the sender emptied it) */
        p->rows[*slot] = 0;
        p->batch_end[*slot] = false;
    }
    if (last) {
        p->done = true;
        p->err = err;
        snprintf(p->why, sizeof(p->why), "%s", why);
    }
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    return true;
}

/* Makes room for `more` bytes at the end of a chunk. */
bool cv_ring_reserve(cv_pump *p, int slot, size_t more) {
    size_t need = p->used[slot] + more, cap = p->cap[slot];
    char *grown;

    if (need <= cap)
        return true;
    while (cap < need)
        cap *= 2;
    if (!(grown = realloc(p->chunk[slot], cap)))
        return false;
    p->chunk[slot] = grown;
    p->cap[slot] = cap;
    return true;
}

/* Appends one field in the text format COPY and LOAD DATA share: backslash,
 * tab, newline, carriage return and NUL escaped with a backslash, \N for NULL,
 * then `end` (tab or newline). Binary values go as hex. */
bool cv_ring_put_field(cv_pump *p, int slot, const char *value, size_t len, bool binary, char end) {
    char *o;

    if (!cv_ring_reserve(p, slot, 2 * len + 4))
        return false;
    o = p->chunk[slot] + p->used[slot];
    if (!value) {
        *o++ = '\\';
        *o++ = 'N';
    } else if (binary) {
        if (!p->bare_hex) { /* COPY text reads \\x as \x, bytea's hex prefix */
            memcpy(o, "\\\\x", 3);
            o += 3;
        }
        o = cv_hex_encode(o, value, len);
    } else {
        for (size_t i = 0; i < len; i++) {
            char c = value[i], esc = c == '\\'   ? '\\'
                                     : c == '\t' ? 't'
                                     : c == '\n' ? 'n'
                                     : c == '\r' ? 'r'
                                     : c == '\0' ? '0'
                                                 : 0;
            if (esc) {
                *o++ = '\\';
                *o++ = esc;
            } else {
                *o++ = c;
            }
        }
    }
    *o++ = end;
    p->used[slot] = (size_t)(o - p->chunk[slot]);
    return true;
}
