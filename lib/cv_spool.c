/*
 * cv_spool.c - documents written behind the caller's back (see cv_spool.h):
 * a ring of queued copies under one mutex, and one thread that writes them.
 */
#include "cv_spool.h"

#include "cv_log.h"
#include "cv_time.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define SPOOL_BATCH 100     /* documents an insert at most */
#define SPOOL_RETRY_MS 1000 /* between attempts while the store does not answer */

struct cv_spool {
    cv_mongo *m;
    char collection[64];
    int64_t flush_ms, give_up_ms;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the writer: a batch is full, or stop */
    pthread_cond_t room; /* adders and flushers: documents were written */
    bson_t **ring;
    size_t cap, head, n;
    uint64_t added, written; /* counts since the start; written includes given up */
    bool stopping;
    pthread_t thread;
};

/* Writes up to SPOOL_BATCH queued documents; called with the lock held, which
 * it drops while writing. False when the store did not take them. */
static bool write_some(cv_spool *s) {
    const bson_t *docs[SPOOL_BATCH];
    size_t k = s->n < SPOOL_BATCH ? s->n : SPOOL_BATCH;
    char why[256];
    cv_err err;

    for (size_t i = 0; i < k; i++)
        docs[i] = s->ring[(s->head + i) % s->cap];
    pthread_mutex_unlock(&s->lock);
    /* A retried batch may find some of its documents in: a duplicate is success. */
    err = cv_mongo_insert_many(s->m, s->collection, docs, k, NULL, why, sizeof(why));
    pthread_mutex_lock(&s->lock);
    if (err) {
        cv_log_warn("%s: %zu record(s) not written yet: %s", s->collection, s->n, why);
        return false;
    }
    for (size_t i = 0; i < k; i++) {
        bson_destroy(s->ring[s->head]);
        s->head = (s->head + 1) % s->cap;
    }
    s->n -= k;
    s->written += k;
    pthread_cond_broadcast(&s->room);
    return true;
}

/* Drops what is queued: the store stayed away past give_up_ms at the stop. */
static void give_up(cv_spool *s) {
    cv_log_error("%s: %zu record(s) lost: the store did not answer while stopping", s->collection,
                 s->n);
    while (s->n) {
        bson_destroy(s->ring[s->head]);
        s->head = (s->head + 1) % s->cap;
        s->n--;
        s->written++;
    }
    pthread_cond_broadcast(&s->room);
}

static void *writer(void *arg) {
    cv_spool *s = arg;
    int64_t stop_at = -1;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        if (s->n < SPOOL_BATCH && !s->stopping) {
            struct timespec ts = cv_time_mono_deadline(s->flush_ms);
            pthread_cond_timedwait(&s->wake, &s->lock, &ts);
        }
        if (s->stopping && stop_at < 0)
            stop_at = cv_time_mono_ms();
        if (s->n == 0) {
            if (s->stopping)
                break;
            continue;
        }
        if (write_some(s))
            continue;
        if (s->stopping && cv_time_mono_ms() - stop_at >= s->give_up_ms) {
            give_up(s);
            break;
        }
        struct timespec ts = cv_time_mono_deadline(SPOOL_RETRY_MS);
        pthread_cond_timedwait(&s->wake, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

cv_spool *cv_spool_new(cv_mongo *m, const char *collection, int64_t flush_ms, size_t max_queued,
                       int64_t give_up_ms, char *errbuf, size_t errlen) {
    cv_spool *s = calloc(1, sizeof(*s));

    if (!s || !(s->ring = calloc(max_queued ? max_queued : 1, sizeof(*s->ring)))) {
        free(s);
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    s->m = m;
    snprintf(s->collection, sizeof(s->collection), "%s", collection);
    s->flush_ms = flush_ms > 0 ? flush_ms : 1;
    s->give_up_ms = give_up_ms;
    s->cap = max_queued ? max_queued : 1;
    pthread_mutex_init(&s->lock, NULL);
    cv_time_cond_init(&s->wake);
    cv_time_cond_init(&s->room);
    if (pthread_create(&s->thread, NULL, writer, s) != 0) {
        pthread_cond_destroy(&s->wake);
        pthread_cond_destroy(&s->room);
        pthread_mutex_destroy(&s->lock);
        free(s->ring);
        free(s);
        cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot start the %s writer", collection);
        return NULL;
    }
    return s;
}

cv_err cv_spool_add(cv_spool *s, const bson_t *doc) {
    bson_t *copy = bson_copy(doc);

    if (!copy)
        return CV_ERR_NOMEM;
    pthread_mutex_lock(&s->lock);
    while (s->n == s->cap)
        pthread_cond_wait(&s->room, &s->lock);
    s->ring[(s->head + s->n) % s->cap] = copy;
    s->n++;
    s->added++;
    if (s->n >= SPOOL_BATCH)
        pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    return CV_OK;
}

bool cv_spool_flush(cv_spool *s, int64_t timeout_ms) {
    struct timespec ts = cv_time_mono_deadline(timeout_ms);
    bool done;

    pthread_mutex_lock(&s->lock);
    uint64_t target = s->added;
    pthread_cond_signal(&s->wake);
    while (s->written < target)
        if (pthread_cond_timedwait(&s->room, &s->lock, &ts) != 0)
            break;
    done = s->written >= target;
    pthread_mutex_unlock(&s->lock);
    return done;
}

void cv_spool_destroy(cv_spool *s) {
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->room);
    pthread_mutex_destroy(&s->lock);
    free(s->ring);
    free(s);
}
