/*
 * cv_pruner.c - runs the retention sweep (runs/cv_retain.c) on a thread of the
 * scheduler process, waking every prune interval or when asked to stop.
 */
#include "cv_pruner.h"

#include "cv_log.h"
#include "cv_mongo.h"
#include "cv_retain.h"
#include "cv_time.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define MAX_DELETES 5000 /* per collection and sweep */
#define BUDGET_MS 10000

struct cv_pruner {
    cv_mongo *mongo;
    cv_retain_policy policy;
    int interval_ms;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    atomic_bool stop; /* set under lock; the sweep reads it without */
};

static void *loop(void *arg) {
    cv_pruner *p = arg;
    char why[512];

    pthread_mutex_lock(&p->lock);
    while (!atomic_load(&p->stop)) {
        cv_retain_counts c;
        struct timespec until;
        pthread_mutex_unlock(&p->lock);
        if (cv_retain_sweep(p->mongo, &p->policy, cv_time_now_ms(), MAX_DELETES, BUDGET_MS,
                            &p->stop, &c, why, sizeof(why)) != CV_OK)
            cv_log_warn("pruning: %s", why);
        if (c.events || c.runs || c.notifications || c.ticks || c.leases || c.queries ||
            c.deliveries || c.audit || c.idempotency)
            cv_log_info("pruned %lld events, %lld runs, %lld notifications, %lld ticks, "
                        "%lld leases, %lld console queries (with their rows), %lld webhook "
                        "deliveries, %lld audit records, %lld idempotency answers",
                        (long long)c.events, (long long)c.runs, (long long)c.notifications,
                        (long long)c.ticks, (long long)c.leases, (long long)c.queries,
                        (long long)c.deliveries, (long long)c.audit, (long long)c.idempotency);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += p->interval_ms / 1000;
        pthread_mutex_lock(&p->lock);
        while (!atomic_load(&p->stop) && pthread_cond_timedwait(&p->wake, &p->lock, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

cv_pruner *cv_pruner_new(const cv_config *cfg, char *errbuf, size_t errlen) {
    cv_pruner *p = calloc(1, sizeof(*p));

    if (!p) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    p->policy = (cv_retain_policy){.events_days = cfg->retain_events_days,
                                   .runs_days = cfg->retain_runs_days,
                                   .notifications_days = cfg->retain_notifications_days,
                                   .ticks_days = cfg->retain_ticks_days,
                                   .leases_days = cfg->retain_leases_days,
                                   .queries_days = cfg->retain_queries_days,
                                   .deliveries_days = cfg->retain_deliveries_days,
                                   .audit_days = cfg->retain_audit_days,
                                   /* Idempotency-Key answers are replayed for 24 hours. */
                                   .idempotency_days = 1};
    p->interval_ms = cfg->prune_interval_seconds * 1000;
    p->mongo = cv_mongo_new(cfg->mongo_uri, cfg->mongo_db, "convutell-pruner", errbuf, errlen);
    if (!p->mongo)
        goto fail;
    if (pthread_create(&p->thread, NULL, loop, p) != 0) {
        cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot start the pruning thread");
        goto fail;
    }
    p->started = true;
    return p;
fail:
    cv_pruner_destroy(p);
    return NULL;
}

void cv_pruner_destroy(cv_pruner *p) {
    if (!p)
        return;
    if (p->started) {
        pthread_mutex_lock(&p->lock);
        atomic_store(&p->stop, true);
        pthread_cond_signal(&p->wake);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
    }
    cv_mongo_destroy(p->mongo);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
