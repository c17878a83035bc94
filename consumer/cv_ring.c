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

/* The slow half of cv_ring_reserve(): the chunk reallocated, doubling. */
bool cv_ring_grow(cv_pump *p, int slot, size_t more) {
    size_t need = p->used[slot] + more, cap = p->cap[slot] ? p->cap[slot] : CV_PUMP_CHUNK;
    char *grown;

    if (need <= p->cap[slot])
        return true;
    while (cap < need)
        cap *= 2;
    if (!(grown = realloc(p->chunk[slot], cap)))
        return false;
    p->chunk[slot] = grown;
    p->cap[slot] = cap;
    return true;
}
