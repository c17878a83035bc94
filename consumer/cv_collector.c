/*
 * cv_collector.c - events from Kafka into MongoDB, in batches: what the
 * consumer has fetched (up to BATCH_MAX messages) is decoded and written with
 * cv_runs_apply_batch() (one insert of all the events, one update per run
 * and attempt), and the offsets are stored only once the store acknowledged
 * the whole batch. An event that fails validation cannot describe a run, so
 * it is logged and kept in the `rejected_events` collection with the reason
 * rather than dropped.
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_collector.h"

#include "cv_kafka.h"
#include "cv_log.h"
#include "cv_message.h"
#include "cv_mongo.h"
#include "cv_runs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define COLLECTOR_GROUP "convutell-collector"
/* Messages handled together. One batch of events of 500 small jobs costs a
 * few inserts and about 500 updates instead of about 1,500 of each. */
#define BATCH_MAX 500

struct cv_collector {
    cv_kafka_consumer *consumer;
    cv_mongo *mongo;
    cv_kafka_msg *msgs; /* BATCH_MAX: the batch being handled */
    cv_event *events;   /* BATCH_MAX: its valid events */
};

cv_collector *cv_collector_new(const cv_config *cfg, char *errbuf, size_t errlen) {
    cv_collector *c = calloc(1, sizeof(*c));

    if (!c) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    c->msgs = calloc(BATCH_MAX, sizeof(*c->msgs));
    c->events = calloc(BATCH_MAX, sizeof(*c->events));
    if (!c->msgs || !c->events) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    c->mongo = cv_mongo_new(cfg->mongo_uri, cfg->mongo_db, "convutell-collector", errbuf, errlen);
    if (!c->mongo)
        goto fail;
    c->consumer = cv_kafka_consumer_new(cfg->kafka_bootstrap, COLLECTOR_GROUP, CV_TOPIC_EVENTS,
                                        cfg->max_poll_interval_ms, errbuf, errlen);
    if (!c->consumer)
        goto fail;
    return c;
fail:
    cv_collector_destroy(c);
    return NULL;
}

void cv_collector_destroy(cv_collector *c) {
    if (!c)
        return;
    cv_kafka_consumer_destroy(c->consumer);
    cv_mongo_destroy(c->mongo);
    free(c->msgs);
    free(c->events);
    free(c);
}

static cv_err keep_rejected(cv_collector *c, const cv_kafka_msg *msg, const cv_verr *verr,
                            char *errbuf, size_t errlen) {
    bson_t doc = BSON_INITIALIZER;
    char id[96];
    cv_err err;

    /* Topic, partition and offset name the message, so a replay is a duplicate. */
    snprintf(id, sizeof(id), "%s:%d:%lld", msg->topic, (int)msg->partition, (long long)msg->offset);
    BSON_APPEND_UTF8(&doc, "_id", id);
    BSON_APPEND_UTF8(&doc, "field", verr->field);
    BSON_APPEND_UTF8(&doc, "reason", verr->reason);
    bson_append_utf8(
        &doc, "payload", -1, msg->payload ? msg->payload : "",
        bson_utf8_validate(msg->payload ? msg->payload : "", msg->len, false) ? (int)msg->len : 0);
    err = cv_mongo_insert(c->mongo, "rejected_events", &doc, errbuf, errlen);
    bson_destroy(&doc);
    return err == CV_ERR_CONFLICT ? CV_OK : err;
}

/* Decodes the batch's n messages and stores them: invalid ones as rejected,
 * the events in one cv_runs_apply_batch(). Idempotent: a retry after a
 * failure writes nothing twice. */
static cv_err handle(cv_collector *c, size_t n, char *errbuf, size_t errlen) {
    size_t nevents = 0;
    cv_err err;

    for (size_t i = 0; i < n; i++) {
        const cv_kafka_msg *msg = &c->msgs[i];
        cv_verr verr;
        err =
            cv_event_decode(msg->payload ? msg->payload : "", msg->len, &c->events[nevents], &verr);
        if (err == CV_ERR_INVALID) {
            cv_log_warn("invalid event at %s[%d]@%lld: %s: %s", msg->topic, (int)msg->partition,
                        (long long)msg->offset, verr.field, verr.reason);
            if ((err = keep_rejected(c, msg, &verr, errbuf, errlen)))
                return err;
            continue;
        }
        if (err)
            return cv_err_set(errbuf, errlen, err, "cannot decode an event");
        nevents++;
    }
    err = cv_runs_apply_batch(c->mongo, c->events, nevents, errbuf, errlen);
    if (!err)
        cv_log_debug("stored %zu events", nevents);
    return err;
}

cv_err cv_collector_run(cv_collector *c, volatile sig_atomic_t *stop, char *errbuf, size_t errlen) {
    cv_log_info("collector consuming %s as group %s", CV_TOPIC_EVENTS, COLLECTOR_GROUP);
    while (!*stop) {
        size_t n = 0;
        cv_err err = CV_OK;
        long backoff_ms = 100;

        if (cv_kafka_consumer_poll(c->consumer, 500, &c->msgs[0]) != CV_OK)
            continue;
        /* Whatever else the consumer has fetched already joins the batch. */
        for (n = 1; n < BATCH_MAX && cv_kafka_consumer_poll(c->consumer, 0, &c->msgs[n]) == CV_OK;)
            n++;
        /* Retry the same batch until MongoDB takes it: moving on would lose it. */
        while ((err = handle(c, n, errbuf, errlen)) != CV_OK && !*stop) {
            struct timespec ts = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
            cv_log_warn("cannot store %zu events from %s[%d]@%lld on, retrying in %ld ms: %s", n,
                        c->msgs[0].topic, (int)c->msgs[0].partition, (long long)c->msgs[0].offset,
                        backoff_ms, errbuf);
            nanosleep(&ts, NULL);
            backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
        }
        for (size_t i = 0; i < n; i++) {
            if (!err)
                err = cv_kafka_consumer_store(c->consumer, &c->msgs[i], errbuf, errlen);
            cv_kafka_msg_release(&c->msgs[i]);
        }
        if (err && !*stop)
            return err;
    }
    return CV_OK;
}
