/*
 * cv_collector.c - events from Kafka into MongoDB, in batches: what the
 * consumer has fetched (up to BATCH_MAX messages) is decoded, its events
 * stored in one insert (cv_runs_store_events()), then the pieces of the runs
 * they move (cv_runs_apply_events()), and the offsets are stored only once
 * the store acknowledged both. The two halves run on two threads (clients of
 * one pool), one batch apart: while the runs thread applies batch k, the main thread
 * fetches batch k+1 and stores its events, so each batch's events are in
 * before its runs move, and batches move runs in order. An event that fails
 * validation cannot describe a run, so it is logged and kept in the
 * `rejected_events` collection with the reason rather than dropped.
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_collector.h"

#include "cv_deadletter.h"
#include "cv_kafka.h"
#include "cv_log.h"
#include "cv_message.h"
#include "cv_metrics.h"
#include "cv_mongo.h"
#include "cv_runs.h"
#include "cv_time.h"
#include "cv_webhooks.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define COLLECTOR_GROUP CV_GROUP_COLLECTOR
/* Messages handled together: the events of 200 small jobs are two inserts (measured
 * against 500 and 2,000: within the noise of 2,000, at half its memory). */
#define BATCH_MAX 1000
#define REJECTED_KEEP_BYTES (64 * 1024) /* of an invalid event's payload, in rejected_events */

/* One batch: its messages (held until their offsets are stored) and valid events. */
typedef struct batch {
    cv_kafka_msg msgs[BATCH_MAX];
    cv_event events[BATCH_MAX];
    size_t n, nevents;
} batch;

struct cv_collector {
    cv_kafka_consumer *consumer;
    cv_webhooks *hooks; /* webhook deliveries, a group and threads of their own */
    cv_mongo *mongo;    /* both threads' */
    batch *batches;     /* 2: the one being fetched, the one the runs thread has */
    volatile sig_atomic_t *stop;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    batch *work; /* handed to the runs thread, NULL once applied */
    bool quit;
    cv_err work_err; /* CV_OK, or why the runs thread gave up (stopping) */
    char work_why[512];
    /* Events applied by type, and how long after their time their runs
     * moved (cv_metrics.h). */
    cv_metric *m_applied, *m_latency;
};

typedef cv_err (*batch_step)(cv_collector *c, batch *b, char *errbuf, size_t errlen);

/* Retries step on the batch with backoff until the store takes it or *stop:
 * moving on would lose it. */
static cv_err until_stored(cv_collector *c, batch *b, batch_step step, const char *what,
                           char *errbuf, size_t errlen) {
    long backoff_ms = 100;
    cv_err err;

    while ((err = step(c, b, errbuf, errlen)) != CV_OK && !*c->stop) {
        struct timespec ts = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
        cv_log_warn("cannot store %s of %zu messages from %s[%d]@%lld on, retrying in %ld ms: %s",
                    what, b->n, b->msgs[0].topic, (int)b->msgs[0].partition,
                    (long long)b->msgs[0].offset, backoff_ms, errbuf);
        nanosleep(&ts, NULL);
        backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
    }
    return err;
}

static cv_err apply_runs(cv_collector *c, batch *b, char *errbuf, size_t errlen) {
    return cv_runs_apply_events(c->mongo, b->events, b->nevents, errbuf, errlen);
}

/* A batch's events, their runs moved, in the metrics. */
static void count_applied(cv_collector *c, const batch *b) {
    int64_t now = cv_time_now_ms();
    char labels[64];

    for (size_t i = 0; i < b->nevents; i++) {
        const cv_event *ev = &b->events[i];
        snprintf(labels, sizeof(labels), "type=\"%s\"", ev->type);
        cv_metrics_add(c->m_applied, labels, 1);
        if (ev->time_ms > 0)
            cv_metrics_observe(c->m_latency, "",
                               (double)(now > ev->time_ms ? now - ev->time_ms : 0) / 1000.0);
    }
}

/* The runs thread: applies each batch handed to it, in order. */
static void *runs_main(void *arg) {
    cv_collector *c = arg;

    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (!c->work && !c->quit)
            pthread_cond_wait(&c->changed, &c->lock);
        if (!c->work)
            break;
        batch *b = c->work;
        pthread_mutex_unlock(&c->lock);
        char why[512];
        cv_err err = until_stored(c, b, apply_runs, "the runs", why, sizeof(why));
        if (!err)
            count_applied(c, b);
        pthread_mutex_lock(&c->lock);
        c->work_err = err;
        if (err)
            snprintf(c->work_why, sizeof(c->work_why), "%s", why);
        c->work = NULL;
        pthread_cond_broadcast(&c->changed);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

cv_collector *cv_collector_new(const cv_config *cfg, char *errbuf, size_t errlen) {
    cv_collector *c = calloc(1, sizeof(*c));

    if (!c) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->changed, NULL);
    c->batches = calloc(2, sizeof(*c->batches));
    if (!c->batches) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    c->mongo = cv_mongo_new(cfg->mongo_uri, cfg->mongo_db, "convutell-collector", errbuf, errlen);
    if (!c->mongo)
        goto fail;
    c->consumer = cv_kafka_consumer_new(cfg->kafka_bootstrap, COLLECTOR_GROUP, CV_TOPIC_EVENTS,
                                        cfg->max_poll_interval_ms, errbuf, errlen);
    if (!c->consumer || !(c->hooks = cv_webhooks_new(cfg, errbuf, errlen)))
        goto fail;
    c->m_applied =
        cv_metrics_register(CV_METRIC_COUNTER, "convutell_events_applied_total",
                            "Events stored and applied to their runs, by type.", NULL, 0);
    c->m_latency = cv_metrics_register(
        CV_METRIC_HISTOGRAM, "convutell_event_apply_latency_seconds",
        "From an event's time (its worker's clock) to its run's record moved in the store.",
        cv_metrics_seconds, cv_metrics_nseconds);
    return c;
fail:
    cv_collector_destroy(c);
    return NULL;
}

void cv_collector_destroy(cv_collector *c) {
    if (!c)
        return;
    cv_webhooks_destroy(c->hooks);
    cv_kafka_consumer_destroy(c->consumer);
    cv_mongo_destroy(c->mongo);
    free(c->batches);
    pthread_cond_destroy(&c->changed);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static cv_err keep_rejected(cv_collector *c, const cv_kafka_msg *msg, const cv_verr *verr,
                            char *errbuf, size_t errlen) {
    bson_t doc = BSON_INITIALIZER;
    const char *payload = msg->payload ? msg->payload : "";
    size_t len = msg->len < REJECTED_KEEP_BYTES ? msg->len : REJECTED_KEEP_BYTES;
    char id[96], hash[65];
    cv_err err;

    /* Topic, partition and offset name the message, so a replay is a duplicate. */
    snprintf(id, sizeof(id), "%s:%d:%lld", msg->topic, (int)msg->partition, (long long)msg->offset);
    BSON_APPEND_UTF8(&doc, "_id", id);
    BSON_APPEND_UTF8(&doc, "field", verr->field);
    BSON_APPEND_UTF8(&doc, "reason", verr->reason);
    /* Kept whole up to a size any store takes; a larger one by its head, size
     * and hash (the broker keeps it at its offset until retention). */
    if (len < msg->len) {
        cv_deadletter_sha256(payload, msg->len, hash);
        BSON_APPEND_INT64(&doc, "size", (int64_t)msg->len);
        BSON_APPEND_UTF8(&doc, "sha256", hash);
        while (len > 0 && ((unsigned char)payload[len] & 0xC0) == 0x80)
            len--; /* not in the middle of a UTF-8 sequence */
    }
    bson_append_utf8(&doc, "payload", -1, payload,
                     bson_utf8_validate(payload, len, false) ? (int)len : 0);
    err = cv_mongo_insert(c->mongo, "rejected_events", &doc, errbuf, errlen);
    bson_destroy(&doc);
    return err == CV_ERR_CONFLICT ? CV_OK : err;
}

/* Decodes the batch's messages and stores its events: invalid messages are
 * kept as rejected, the valid ones become its events, stored in one insert.
 * Idempotent. */
static cv_err take_events(cv_collector *c, batch *b, char *errbuf, size_t errlen) {
    b->nevents = 0;
    for (size_t i = 0; i < b->n; i++) {
        const cv_kafka_msg *msg = &b->msgs[i];
        cv_verr verr;
        cv_err err = cv_event_decode(msg->payload ? msg->payload : "", msg->len,
                                     &b->events[b->nevents], &verr);
        if (err == CV_ERR_INVALID) {
            cv_log_warn("invalid event at %s[%d]@%lld: %s: %s", msg->topic, (int)msg->partition,
                        (long long)msg->offset, verr.field, verr.reason);
            if ((err = keep_rejected(c, msg, &verr, errbuf, errlen)))
                return err;
            continue;
        }
        if (err)
            return cv_err_set(errbuf, errlen, err, "cannot decode an event");
        b->nevents++;
    }
    return cv_runs_store_events(c->mongo, b->events, b->nevents, errbuf, errlen);
}

/* Waits for the runs thread to finish the batch it has, then stores that
 * batch's offsets and lets its messages go. */
static cv_err settle(cv_collector *c, batch *b, char *errbuf, size_t errlen) {
    cv_err err;

    pthread_mutex_lock(&c->lock);
    while (c->work)
        pthread_cond_wait(&c->changed, &c->lock);
    err = c->work_err;
    if (err)
        cv_err_set(errbuf, errlen, err, "%s", c->work_why);
    pthread_mutex_unlock(&c->lock);
    for (size_t i = 0; i < b->n; i++) {
        if (!err)
            err = cv_kafka_consumer_store(c->consumer, &b->msgs[i], errbuf, errlen);
        cv_kafka_msg_release(&b->msgs[i]);
    }
    b->n = 0;
    return err;
}

static void hand_over(cv_collector *c, batch *b) {
    pthread_mutex_lock(&c->lock);
    c->work = b;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
}

/* Fetches the next batch and stores its events, retrying until the store
 * takes them. CV_OK with b->n == 0 when nothing came. */
static cv_err next_batch(cv_collector *c, batch *b, int timeout_ms, char *errbuf, size_t errlen) {
    b->n = 0;
    if (cv_kafka_consumer_poll(c->consumer, timeout_ms, &b->msgs[0]) != CV_OK)
        return CV_OK;
    /* Whatever else the consumer has fetched already joins the batch. */
    for (b->n = 1;
         b->n < BATCH_MAX && cv_kafka_consumer_poll(c->consumer, 0, &b->msgs[b->n]) == CV_OK;)
        b->n++;
    return until_stored(c, b, take_events, "the events", errbuf, errlen);
}

cv_err cv_collector_run(cv_collector *c, volatile sig_atomic_t *stop, char *errbuf, size_t errlen) {
    batch *cur = &c->batches[0], *prev = &c->batches[1];
    cv_err err = CV_OK, e;
    int rc;

    c->stop = stop;
    if ((rc = pthread_create(&c->thread, NULL, runs_main, c)) != 0)
        return cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot start the collector's runs thread");
    cv_log_info("collector consuming %s as group %s", CV_TOPIC_EVENTS, COLLECTOR_GROUP);
    while (!*stop && !err) {
        /* While the runs thread has a batch, only what is fetched already is taken. */
        err = next_batch(c, cur, prev->n ? 0 : 500, errbuf, errlen);
        if (!err && prev->n)
            err = settle(c, prev, errbuf, errlen);
        if (!err && cur->n) {
            hand_over(c, cur);
            batch *t = prev;
            prev = cur;
            cur = t;
        }
    }
    /* A batch whose events are stored but not its runs leaves its offsets
     * unstored: the group delivers it again. */
    if (prev->n && (e = settle(c, prev, errbuf, errlen)) && !err && !*stop)
        err = e;
    for (size_t i = 0; i < cur->n; i++)
        cv_kafka_msg_release(&cur->msgs[i]);
    cur->n = 0;
    pthread_mutex_lock(&c->lock);
    c->quit = true;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    return *stop ? CV_OK : err;
}
