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
    pthread_mutex_init(&p->ring.lock, NULL);
    pthread_cond_init(&p->ring.changed, NULL);
    p->ring.ready = true;
    for (int i = 0; i < CV_PUMP_CHUNKS; i++) {
        if (!(p->ring.chunk[i] = malloc(CV_PUMP_CHUNK)))
            return false;
        p->ring.cap[i] = CV_PUMP_CHUNK;
        p->ring.used[i] = 0;
    }
    return true;
}

void cv_ring_free(cv_pump *p) {
    if (!p->ring.ready)
        return;
    for (int i = 0; i < CV_PUMP_CHUNKS; i++) {
        free(p->ring.chunk[i]);
        p->ring.chunk[i] = NULL;
        p->ring.cap[i] = p->ring.used[i] = 0;
    }
    pthread_cond_destroy(&p->ring.changed);
    pthread_mutex_destroy(&p->ring.lock);
    p->ring.ready = false;
}

/* Passes the reader's current chunk (if it holds anything) to the sender and,
 * with `last`, the reader's final status. Waits while no chunk is free.
 * Returns false if the sender asked the reader to stop. */
bool cv_ring_hand_over(cv_pump *p, int *slot, bool last, cv_err err, const char *why) {
    pthread_mutex_lock(&p->ring.lock);
    /* The sender owns `count` full chunks from `head`; the reader owns the one
     * after them, so handing over needs a free chunk beyond that. */
    while (p->ring.count >= CV_PUMP_CHUNKS - 1 && !p->ring.stop)
        pthread_cond_wait(&p->ring.changed, &p->ring.lock);
    if (p->ring.stop) {
        pthread_mutex_unlock(&p->ring.lock);
        return false;
    }
    if (p->ring.used[*slot] || p->ring.batch_end[*slot]) {
        p->ring.count++;
        *slot = (*slot + 1) % CV_PUMP_CHUNKS;
        p->ring.used[*slot] = 0; /* the next free slot (the sender emptied it) */
        p->ring.rows[*slot] = 0;
        p->ring.batch_end[*slot] = false;
    }
    if (last) {
        p->ring.done = true;
        p->ring.err = err;
        snprintf(p->ring.why, sizeof(p->ring.why), "%s", why);
    }
    pthread_cond_broadcast(&p->ring.changed);
    pthread_mutex_unlock(&p->ring.lock);
    return true;
}

/* The slow half of cv_ring_reserve(): the chunk reallocated, doubling. */
bool cv_ring_grow(cv_pump *p, int slot, size_t more) {
    size_t need = p->ring.used[slot] + more,
           cap = p->ring.cap[slot] ? p->ring.cap[slot] : CV_PUMP_CHUNK;
    char *grown;

    if (need <= p->ring.cap[slot])
        return true;
    while (cap < need)
        cap *= 2;
    if (!(grown = realloc(p->ring.chunk[slot], cap)))
        return false;
    p->ring.chunk[slot] = grown;
    p->ring.cap[slot] = cap;
    return true;
}
