/*
 * cv_ending.c - ended attempts' leases marked done by a thread of their own,
 * what is queued taken in turn (see cv_ending.h).
 */
#include "cv_ending.h"

#include "cv_lease.h"
#include "cv_log.h"
#include "cv_message.h"
#include "cv_time.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* Attempts queued at most: 20 s of the fastest small jobs measured. */
#define QUEUE_MAX 16384
/* Written in one call at most. */
#define BATCH_MAX 1024

typedef struct ended {
    char run_id[CV_ID_LEN];
    int attempt;
} ended;

struct cv_ending {
    cv_mongo *m;
    char worker[256];
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* monotonic clock */
    ended *queue;           /* a ring of QUEUE_MAX */
    size_t head, count;
    unsigned long long first; /* how many were ever taken off the front */
    bool stopping;
    bool failing;      /* the last write failed (warned once until one succeeds) */
    long long dropped; /* since the last warning */
};

/* Writes up to BATCH_MAX queued attempts; on failure they stay queued and
 * the store is tried again a delay later. False when the store did not take
 * them. */
static bool write_batch(cv_ending *e) {
    const char *ids[BATCH_MAX];
    int attempts[BATCH_MAX];
    ended *batch = malloc(BATCH_MAX * sizeof(*batch));
    char why[512];
    size_t n;
    unsigned long long from;
    bool ok = true;

    if (!batch)
        return false;
    pthread_mutex_lock(&e->lock);
    n = e->count < BATCH_MAX ? e->count : BATCH_MAX;
    from = e->first;
    for (size_t i = 0; i < n; i++)
        batch[i] = e->queue[(e->head + i) % QUEUE_MAX];
    pthread_mutex_unlock(&e->lock);
    for (size_t i = 0; i < n; i++) {
        ids[i] = batch[i].run_id;
        attempts[i] = batch[i].attempt;
    }
    if (n && cv_lease_end_many(e->m, ids, attempts, n, e->worker, NULL, why, sizeof(why))) {
        if (!e->failing) /* once an outage, not every delay */
            cv_log_warn("the leases of %zu ended attempts are not marked done yet (tried "
                        "again every %d ms): %s",
                        n, CV_ENDING_DELAY_MS, why);
        ok = false;
    } else if (e->failing) {
        cv_log_info("the leases of ended attempts are marked done again");
    }
    e->failing = !ok; /* this thread's alone */
    pthread_mutex_lock(&e->lock);
    if (ok && e->first < from + n) {
        /* Off the front, less what cv_ending_add() dropped meanwhile (the
         * queue was full: it drops the oldest, which were in this batch). */
        size_t gone = (size_t)(from + n - e->first);
        e->head = (e->head + gone) % QUEUE_MAX;
        e->count -= gone;
        e->first += gone;
    }
    pthread_mutex_unlock(&e->lock);
    free(batch);
    return ok;
}

static void *run(void *arg) {
    cv_ending *e = arg;

    pthread_mutex_lock(&e->lock);
    while (!e->stopping) {
        struct timespec ts = cv_time_mono_deadline(CV_ENDING_DELAY_MS);
        while (!e->stopping && e->count < BATCH_MAX &&
               pthread_cond_timedwait(&e->changed, &e->lock, &ts) == 0)
            ;
        if (e->dropped) {
            cv_log_warn("the store took no lease marks for a while: %lld ended attempts were "
                        "not marked done (their run records say they ended)",
                        e->dropped);
            e->dropped = 0;
        }
        if (!e->count || e->stopping)
            continue;
        pthread_mutex_unlock(&e->lock);
        bool ok = write_batch(e);
        pthread_mutex_lock(&e->lock);
        if (!ok) { /* the store is away: no faster than once a delay */
            ts = cv_time_mono_deadline(CV_ENDING_DELAY_MS);
            while (!e->stopping && pthread_cond_timedwait(&e->changed, &e->lock, &ts) == 0)
                ;
        }
    }
    pthread_mutex_unlock(&e->lock);
    /* What is left, once: a stopping worker does not wait for an absent store. */
    while (e->count && write_batch(e))
        ;
    return NULL;
}

cv_ending *cv_ending_new(cv_mongo *m, const char *worker, char *errbuf, size_t errlen) {
    cv_ending *e = calloc(1, sizeof(*e));

    if (!e || !(e->queue = calloc(QUEUE_MAX, sizeof(*e->queue)))) {
        free(e);
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    e->m = m;
    snprintf(e->worker, sizeof(e->worker), "%s", worker);
    pthread_mutex_init(&e->lock, NULL);
    cv_time_cond_init(&e->changed);
    if (pthread_create(&e->thread, NULL, run, e) != 0) {
        pthread_cond_destroy(&e->changed);
        pthread_mutex_destroy(&e->lock);
        free(e->queue);
        free(e);
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot start the lease marking thread");
        return NULL;
    }
    return e;
}

void cv_ending_add(cv_ending *e, const char *run_id, int attempt) {
    ended *slot;

    pthread_mutex_lock(&e->lock);
    if (e->count == QUEUE_MAX) { /* the oldest goes */
        e->head = (e->head + 1) % QUEUE_MAX;
        e->count--;
        e->first++;
        e->dropped++;
    }
    slot = &e->queue[(e->head + e->count) % QUEUE_MAX];
    snprintf(slot->run_id, sizeof(slot->run_id), "%s", run_id);
    slot->attempt = attempt;
    e->count++;
    if (e->count >= BATCH_MAX)
        pthread_cond_signal(&e->changed);
    pthread_mutex_unlock(&e->lock);
}

void cv_ending_destroy(cv_ending *e) {
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    pthread_cond_signal(&e->changed);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->thread, NULL);
    pthread_cond_destroy(&e->changed);
    pthread_mutex_destroy(&e->lock);
    free(e->queue);
    free(e);
}
