/*
 * cv_ready.c - the API's readiness, probed in the background. See cv_ready.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_ready.h"

#include "cv_time.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

struct cv_ready {
    cv_mongo *mongo;
    cv_kafka_producer *producer;
    char topic[128];
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* stop asked (monotonic clock) */
    bool stop;
    /* The last result, under lock; probed_ms is 0 before the first. */
    int64_t probed_ms; /* cv_time_mono_ms() when it ended */
    char mongo_why[256], kafka_why[256];
};

/* A ping's result as readyz shows it: "ok", or why not. */
static void say(cv_err err, char *why, size_t len) {
    if (err == CV_OK)
        snprintf(why, len, "ok");
    else if (!why[0])
        snprintf(why, len, "%s", cv_err_str(err));
}

static void *probe_main(void *arg) {
    cv_ready *r = arg;

    pthread_mutex_lock(&r->lock);
    while (!r->stop) {
        char mongo_why[256] = "", kafka_why[256] = "";
        struct timespec next;

        pthread_mutex_unlock(&r->lock);
        say(cv_mongo_ping(r->mongo, mongo_why, sizeof(mongo_why)), mongo_why, sizeof(mongo_why));
        say(cv_kafka_producer_ping(r->producer, r->topic, CV_READY_WAIT_MS, kafka_why,
                                   sizeof(kafka_why)),
            kafka_why, sizeof(kafka_why));
        pthread_mutex_lock(&r->lock);
        memcpy(r->mongo_why, mongo_why, sizeof(mongo_why));
        memcpy(r->kafka_why, kafka_why, sizeof(kafka_why));
        r->probed_ms = cv_time_mono_ms();
        next = cv_time_mono_deadline(CV_READY_EVERY_MS);
        while (!r->stop && pthread_cond_timedwait(&r->wake, &r->lock, &next) == 0)
            ;
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

cv_ready *cv_ready_start(cv_mongo *m, cv_kafka_producer *p, const char *topic, char *errbuf,
                         size_t errlen) {
    cv_ready *r = calloc(1, sizeof(*r));
    int rc;

    if (!r) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    r->mongo = m;
    r->producer = p;
    snprintf(r->topic, sizeof(r->topic), "%s", topic);
    pthread_mutex_init(&r->lock, NULL);
    cv_time_cond_init(&r->wake);
    if ((rc = pthread_create(&r->thread, NULL, probe_main, r)) != 0) {
        cv_err_set(errbuf, errlen, CV_ERR_IO, "readiness thread: %s", strerror(rc));
        pthread_cond_destroy(&r->wake);
        pthread_mutex_destroy(&r->lock);
        free(r);
        return NULL;
    }
    return r;
}

void cv_ready_stop(cv_ready *r) {
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop = true;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

bool cv_ready_get(cv_ready *r, char *mongo_why, size_t mongo_len, char *kafka_why,
                  size_t kafka_len) {
    int64_t age;
    bool ready;

    pthread_mutex_lock(&r->lock);
    age = cv_time_mono_ms() - r->probed_ms;
    if (r->probed_ms == 0) {
        snprintf(mongo_why, mongo_len, "not checked yet");
        snprintf(kafka_why, kafka_len, "not checked yet");
    } else if (age > CV_READY_STALE_MS) {
        snprintf(mongo_why, mongo_len, "no probe ended in the last %lld s",
                 (long long)(age / 1000));
        snprintf(kafka_why, kafka_len, "no probe ended in the last %lld s",
                 (long long)(age / 1000));
    } else {
        snprintf(mongo_why, mongo_len, "%s", r->mongo_why);
        snprintf(kafka_why, kafka_len, "%s", r->kafka_why);
    }
    ready = strcmp(mongo_why, "ok") == 0 && strcmp(kafka_why, "ok") == 0;
    pthread_mutex_unlock(&r->lock);
    return ready;
}
