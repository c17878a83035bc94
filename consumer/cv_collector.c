/*
 * cv_collector.c - events from Kafka into MongoDB. An event that fails
 * validation cannot describe a run, so it is logged and kept in the
 * `rejected_events` collection with the reason rather than dropped.
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

struct cv_collector {
    cv_kafka_consumer *consumer;
    cv_mongo *mongo;
};

cv_collector *cv_collector_new(const cv_config *cfg, char *errbuf, size_t errlen) {
    cv_collector *c = calloc(1, sizeof(*c));

    if (!c) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
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

static cv_err handle(cv_collector *c, const cv_kafka_msg *msg, char *errbuf, size_t errlen) {
    cv_event ev;
    cv_verr verr;
    cv_err err = cv_event_decode(msg->payload ? msg->payload : "", msg->len, &ev, &verr);

    if (err == CV_ERR_INVALID) {
        cv_log_warn("invalid event at %s[%d]@%lld: %s: %s", msg->topic, (int)msg->partition,
                    (long long)msg->offset, verr.field, verr.reason);
        return keep_rejected(c, msg, &verr, errbuf, errlen);
    }
    if (err)
        return cv_err_set(errbuf, errlen, err, "cannot decode an event");
    err = cv_runs_apply(c->mongo, &ev, errbuf, errlen);
    if (!err)
        cv_log_debug("stored %s %s for run %s", ev.type, ev.event_id, ev.run_id);
    return err;
}

cv_err cv_collector_run(cv_collector *c, volatile sig_atomic_t *stop, char *errbuf, size_t errlen) {
    cv_log_info("collector consuming %s as group %s", CV_TOPIC_EVENTS, COLLECTOR_GROUP);
    while (!*stop) {
        cv_kafka_msg msg;
        cv_err err;
        long backoff_ms = 100;

        if (cv_kafka_consumer_poll(c->consumer, 500, &msg) != CV_OK)
            continue;
        /* Retry the same event until MongoDB takes it: moving on would lose it. */
        while ((err = handle(c, &msg, errbuf, errlen)) != CV_OK && !*stop) {
            struct timespec ts = {backoff_ms / 1000, (backoff_ms % 1000) * 1000000L};
            cv_log_warn("cannot store event at %s[%d]@%lld, retrying in %ld ms: %s", msg.topic,
                        (int)msg.partition, (long long)msg.offset, backoff_ms, errbuf);
            nanosleep(&ts, NULL);
            backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
        }
        if (!err)
            err = cv_kafka_consumer_store(c->consumer, &msg, errbuf, errlen);
        cv_kafka_msg_release(&msg);
        if (err && !*stop)
            return err;
    }
    return CV_OK;
}
