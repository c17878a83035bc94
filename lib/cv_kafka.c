/*
 * cv_kafka.c - librdkafka producers and consumers configured the one way
 * Convutell needs them, with librdkafka's errors translated into cv_err.
 */
#include "cv_kafka.h"

#include "cv_log.h"
#include "cv_metrics.h"
#include "cv_time.h"

#include <librdkafka/rdkafka.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* A producer's delivery reports are served by its own thread, which wakes
 * the senders waiting on `delivered`: a sender that polled itself slept up to
 * a poll's timeout after another thread had served its report. */
struct cv_kafka_producer {
    rd_kafka_t *rk;
    pthread_t poller;
    bool polling;
    atomic_bool stop;
    pthread_mutex_t lock;
    pthread_cond_t delivered; /* broadcast after every report (monotonic clock) */
};

struct cv_kafka_consumer {
    rd_kafka_t *rk;
    char *listen;       /* a listener's topic (cv_kafka_listener_new()), NULL for a group's */
    bool listening;     /* the listener has its partitions */
    int64_t listen_try; /* monotonic: when it last asked for them */
    bool paused;        /* cv_kafka_consumer_pause()'s state, also for partitions assigned later */
    atomic_bool assigned; /* a rebalance has assigned this consumer once */
    char group[128];      /* for the logs: its group, or "listener" */
};

/* How long a scrape waits for each of the broker's answers about a lag. */
#define LAG_TIMEOUT_MS 1000

static cv_metrics_fn lag_now;
static cv_metric *lag_metric(void);

/* Delivery state of one synchronous send; lives on the sender's stack. */
typedef struct delivery {
    atomic_int done;
    rd_kafka_resp_err_t err;
} delivery;

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    (void)rk;
    cv_log(level <= 3   ? CV_LOG_ERROR
           : level <= 5 ? CV_LOG_WARN
                        : CV_LOG_DEBUG,
           "kafka %s: %s", fac, buf);
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    cv_kafka_producer *p = opaque;
    delivery *d = m->_private;
    (void)rk;
    if (!d) { /* sent by cv_kafka_produce_nowait() */
        if (m->err)
            cv_log_warn("a message for %s was not delivered: %s", rd_kafka_topic_name(m->rkt),
                        rd_kafka_err2str(m->err));
        return;
    }
    pthread_mutex_lock(&p->lock);
    d->err = m->err;
    atomic_store(&d->done, 1);
    pthread_cond_broadcast(&p->delivered);
    pthread_mutex_unlock(&p->lock);
}

static void *poll_main(void *arg) {
    cv_kafka_producer *p = arg;
    while (!atomic_load(&p->stop))
        rd_kafka_poll(p->rk, 100);
    return NULL;
}

/* Waits until d is delivered or the monotonic deadline passes (-1: no
 * deadline); true if delivered. */
static bool wait_delivery(cv_kafka_producer *p, delivery *d, int64_t deadline) {
    bool done;

    pthread_mutex_lock(&p->lock);
    while (!atomic_load(&d->done)) {
        struct timespec ts =
            cv_time_mono_deadline(deadline < 0 ? 1000 : deadline - cv_time_mono_ms());
        if (pthread_cond_timedwait(&p->delivered, &p->lock, &ts) != 0 && deadline >= 0 &&
            cv_time_mono_ms() >= deadline)
            break;
    }
    done = atomic_load(&d->done);
    pthread_mutex_unlock(&p->lock);
    return done;
}

static int conf_set_all(rd_kafka_conf_t *conf, const char *const *pairs, char *errbuf,
                        size_t errlen) {
    for (; pairs[0]; pairs += 2)
        if (rd_kafka_conf_set(conf, pairs[0], pairs[1], errbuf, errlen) != RD_KAFKA_CONF_OK)
            return -1;
    return 0;
}

/* Settings of every client. A broker whose host vanished answers nothing: no
 * reset, no refusal. Its requests in flight then wait out socket.timeout.ms and
 * a new connection connection.setup.timeout.ms (60 s and 30 s by default) before
 * the client asks the others who leads its partitions now; the whole cluster's
 * work paused that long when one of three hosts was cut off (tests/system/
 * test_hosts.py). Ten seconds each is still far above a request's time here:
 * fetches wait at most fetch.wait.max.ms (0.5 s), the longest other request is a
 * group join, which the broker answers within the rebalance. */
static rd_kafka_conf_t *base_conf(const char *bootstrap, char *errbuf, size_t errlen) {
    const char *const settings[] = {"bootstrap.servers",
                                    bootstrap,
                                    "client.id",
                                    "convutell",
                                    "socket.timeout.ms",
                                    "10000",
                                    "socket.connection.setup.timeout.ms",
                                    "10000",
                                    NULL};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set_all(conf, settings, errbuf, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_log_cb(conf, log_cb);
    return conf;
}

cv_kafka_producer *cv_kafka_producer_new(const char *bootstrap, int message_timeout_ms,
                                         char *errbuf, size_t errlen) {
    char timeout[24];
    const char *const settings[] = {"enable.idempotence",
                                    "true",
                                    "acks",
                                    "all",
                                    "linger.ms",
                                    "2",
                                    "message.timeout.ms",
                                    timeout,
                                    "compression.type",
                                    "lz4",
                                    "message.max.bytes",
                                    CV_KAFKA_MESSAGE_MAX_TEXT,
                                    NULL};
    cv_kafka_producer *p = NULL;
    rd_kafka_conf_t *conf = base_conf(bootstrap, errbuf, errlen);

    snprintf(timeout, sizeof(timeout), "%d", message_timeout_ms > 0 ? message_timeout_ms : 30000);
    if (!conf || conf_set_all(conf, settings, errbuf, errlen) != 0)
        goto out;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    p = calloc(1, sizeof(*p));
    if (!p) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    pthread_mutex_init(&p->lock, NULL);
    cv_time_cond_init(&p->delivered);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errbuf, errlen);
    if (!p->rk)
        goto fail;
    conf = NULL; /* owned by rk now */
    if (pthread_create(&p->poller, NULL, poll_main, p) != 0) {
        cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot start the producer's thread");
        goto fail;
    }
    p->polling = true;
    goto out;
fail:
    cv_kafka_producer_destroy(p);
    p = NULL;
out:
    if (conf)
        rd_kafka_conf_destroy(conf);
    return p;
}

/* Fills vus with one message (copied by librdkafka) whose delivery report
 * writes into d; returns the count used. rd_kafka_produceva rather than the
 * RD_KAFKA_V_ macros, which rely on GNU statement expressions that -Wpedantic
 * rejects. */
#define MESSAGE_VUS 5
static size_t message_vus(rd_kafka_vu_t *vus, const char *topic, const char *key, const void *value,
                          size_t len, delivery *d) {
    memset(vus, 0, sizeof(*vus) * MESSAGE_VUS);
    vus[0].vtype = RD_KAFKA_VTYPE_TOPIC;
    vus[0].u.cstr = topic;
    vus[1].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vus[1].u.i = RD_KAFKA_MSG_F_COPY;
    vus[2].vtype = RD_KAFKA_VTYPE_KEY;
    vus[2].u.mem.ptr = (void *)(uintptr_t)key;
    vus[2].u.mem.size = key ? strlen(key) : 0;
    vus[3].vtype = RD_KAFKA_VTYPE_VALUE;
    vus[3].u.mem.ptr = (void *)(uintptr_t)value;
    vus[3].u.mem.size = len;
    vus[4].vtype = RD_KAFKA_VTYPE_OPAQUE;
    vus[4].u.ptr = d;
    return MESSAGE_VUS;
}

cv_err cv_kafka_produce(cv_kafka_producer *p, const char *topic, const char *key, const void *value,
                        size_t len, const cv_kafka_header *headers, int timeout_ms, char *errbuf,
                        size_t errlen) {
    delivery d = {.done = 0, .err = RD_KAFKA_RESP_ERR_NO_ERROR};
    rd_kafka_headers_t *hdrs = NULL;
    int64_t deadline = cv_time_mono_ms() + timeout_ms;

    if (headers) {
        hdrs = rd_kafka_headers_new(4);
        for (const cv_kafka_header *h = headers; h->name; h++)
            rd_kafka_header_add(hdrs, h->name, -1, h->value, -1);
    }
    rd_kafka_vu_t vus[MESSAGE_VUS + 1];
    size_t n = message_vus(vus, topic, key, value, len, &d);
    rd_kafka_error_t *error;
    if (hdrs) {
        vus[n].vtype = RD_KAFKA_VTYPE_HEADERS;
        vus[n++].u.headers = hdrs;
    }
    error = rd_kafka_produceva(p->rk, vus, n);
    if (error) {
        cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "cannot send to %s: %s", topic,
                   rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        rd_kafka_headers_destroy(hdrs); /* not taken over on failure */
        return CV_ERR_KAFKA;
    }
    if (!wait_delivery(p, &d, deadline)) {
        /* The report will still arrive and write into d: wait for it (bounded by
         * message.timeout.ms) rather than let it write into a dead frame. */
        wait_delivery(p, &d, -1);
        if (!d.err)
            return CV_OK;
        return cv_err_set(errbuf, errlen, CV_ERR_TIMEOUT, "sending to %s timed out: %s", topic,
                          rd_kafka_err2str(d.err));
    }
    if (d.err)
        return cv_err_set(errbuf, errlen,
                          d.err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT ? CV_ERR_TIMEOUT : CV_ERR_KAFKA,
                          "broker did not take the message for %s: %s", topic,
                          rd_kafka_err2str(d.err));
    return CV_OK;
}

cv_err cv_kafka_produce_nowait(cv_kafka_producer *p, const char *topic, const char *key,
                               const void *value, size_t len, char *errbuf, size_t errlen) {
    rd_kafka_vu_t vus[MESSAGE_VUS];
    size_t n = message_vus(vus, topic, key, value, len, NULL);
    rd_kafka_error_t *error = rd_kafka_produceva(p->rk, vus, n);

    if (!error)
        return CV_OK;
    cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "cannot send to %s: %s", topic,
               rd_kafka_error_string(error));
    rd_kafka_error_destroy(error);
    return CV_ERR_KAFKA;
}

void cv_kafka_producer_destroy(cv_kafka_producer *p) {
    if (!p)
        return;
    if (p->polling) {
        atomic_store(&p->stop, true);
        pthread_join(p->poller, NULL);
    }
    if (p->rk) {
        rd_kafka_flush(p->rk, 10000); /* serves the last reports on this thread */
        rd_kafka_destroy(p->rk);
    }
    pthread_cond_destroy(&p->delivered);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

cv_err cv_kafka_produce_batch(cv_kafka_producer *p, const char *topic, cv_kafka_out *msgs, size_t n,
                              int timeout_ms, char *errbuf, size_t errlen) {
    delivery *d = calloc(n ? n : 1, sizeof(*d));
    int64_t deadline = cv_time_mono_ms() + timeout_ms;
    cv_err first = CV_OK;

    if (!d)
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        rd_kafka_vu_t vus[MESSAGE_VUS + 1];
        size_t nvus = message_vus(vus, topic, msgs[i].key, msgs[i].value, msgs[i].len, &d[i]);
        rd_kafka_headers_t *hdrs = NULL;
        rd_kafka_error_t *error;
        if (msgs[i].headers) {
            hdrs = rd_kafka_headers_new(8);
            for (const cv_kafka_header *h = msgs[i].headers; h->name; h++)
                rd_kafka_header_add(hdrs, h->name, -1, h->value, -1);
            vus[nvus].vtype = RD_KAFKA_VTYPE_HEADERS;
            vus[nvus++].u.headers = hdrs;
        }
        msgs[i].err = CV_OK;
        /* A full local queue drains as the broker acknowledges: wait and retry. */
        while ((error = rd_kafka_produceva(p->rk, vus, nvus)) &&
               rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__QUEUE_FULL &&
               cv_time_mono_ms() < deadline) {
            rd_kafka_error_destroy(error);
            rd_kafka_poll(p->rk, 10);
        }
        if (error)
            rd_kafka_headers_destroy(hdrs); /* not taken over on failure */
        if (error) {
            msgs[i].err = CV_ERR_KAFKA;
            if (!first)
                first = cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "cannot send to %s: %s", topic,
                                   rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
            atomic_store(&d[i].done, 1);
            d[i].err = RD_KAFKA_RESP_ERR__FAIL;
        }
    }
    /* Every report writes into d: wait for all of them (message.timeout.ms
     * bounds this) before freeing it. */
    for (size_t i = 0; i < n; i++) {
        wait_delivery(p, &d[i], -1);
        if (d[i].err && msgs[i].err == CV_OK) {
            msgs[i].err =
                d[i].err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT ? CV_ERR_TIMEOUT : CV_ERR_KAFKA;
            if (!first)
                first = cv_err_set(errbuf, errlen, msgs[i].err,
                                   "broker did not take a message for %s: %s", topic,
                                   rd_kafka_err2str(d[i].err));
        }
    }
    free(d);
    return first;
}

/* Logs the partitions a consumer gains and loses, and applies the change
 * (incremental under the cooperative-sticky strategy). Gained partitions get
 * the consumer's pause state: librdkafka keeps a partition's own pause flag
 * across a revoke and a re-assign, so a partition paused during a job and
 * revoked before the resume would otherwise come back paused for good. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque) {
    cv_kafka_consumer *c = opaque;
    char list[256] = "";
    size_t o = 0;
    rd_kafka_error_t *error = NULL;

    for (int i = 0; i < parts->cnt && o < sizeof(list) - 32; i++)
        o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s[%d]", i ? " " : "",
                              parts->elems[i].topic, (int)parts->elems[i].partition);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        atomic_store(&c->assigned, true);
        if (parts->cnt)
            cv_log_info("kafka: partitions assigned: %s", list);
        error = rd_kafka_incremental_assign(rk, parts);
        if (!error && parts->cnt)
            (void)(c->paused ? rd_kafka_pause_partitions(rk, parts)
                             : rd_kafka_resume_partitions(rk, parts));
    } else {
        if (parts->cnt)
            cv_log_warn("kafka: partitions revoked: %s", list);
        error = rd_kafka_incremental_unassign(rk, parts);
    }
    if (error) {
        cv_log_error("kafka: rebalance: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
}

cv_kafka_consumer *cv_kafka_consumer_new(const char *bootstrap, const char *group,
                                         const char *topic, int max_poll_interval_ms, char *errbuf,
                                         size_t errlen) {
    char max_poll[24];
    const char *const settings[] = {
        "group.id", group, "enable.auto.commit", "true", "enable.auto.offset.store", "false",
        "auto.offset.reset", "earliest", "auto.commit.interval.ms", "1000", "session.timeout.ms",
        "6000",
        /* Long jobs keep polling with their partitions paused. */
        "max.poll.interval.ms", max_poll, "partition.assignment.strategy", "cooperative-sticky",
        /* Fetched ahead: 64 MiB at most (librdkafka's default). Less
         * stalls a stream of large messages: librdkafka 2.0 stops
         * fetching while the queue is full and looks again only up to
         * a second later (fetch.queue.backoff.ms came in 2.2). With
         * 16 MiB a worker took 64 KiB messages in at 42 MB/s and
         * rejected 650 a second; 1,600 with 64 MiB (bench/run
         * --hostile). The memory is handed back once they are gone
         * (the worker's trim_heap()). */
        "queued.max.messages.kbytes", "65536", "fetch.max.bytes", "8388608", NULL};
    cv_kafka_consumer *c = NULL;
    rd_kafka_topic_partition_list_t *topics = NULL;
    rd_kafka_resp_err_t err;
    rd_kafka_conf_t *conf = base_conf(bootstrap, errbuf, errlen);

    snprintf(max_poll, sizeof(max_poll), "%d",
             max_poll_interval_ms > 0 ? max_poll_interval_ms : 300000);
    if (!conf || conf_set_all(conf, settings, errbuf, errlen) != 0)
        goto out;
    c = calloc(1, sizeof(*c));
    if (!c) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    snprintf(c->group, sizeof(c->group), "%s", group);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errlen);
    if (!c->rk) {
        free(c);
        c = NULL;
        goto out;
    }
    conf = NULL;
    rd_kafka_poll_set_consumer(c->rk);
    topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(c->rk, topics);
    if (err) {
        cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "cannot subscribe to %s: %s", topic,
                   rd_kafka_err2str(err));
        rd_kafka_destroy(c->rk);
        free(c);
        c = NULL;
    } else {
        char labels[160];
        if (cv_metrics_watch(lag_metric(), cv_metrics_label(labels, sizeof(labels), "group", group),
                             lag_now, c) != CV_OK)
            cv_log_warn("the lag of consumer group %s is not in the metrics", group);
    }
out:
    if (topics)
        rd_kafka_topic_partition_list_destroy(topics);
    if (conf)
        rd_kafka_conf_destroy(conf);
    return c;
}

/* Assigns every partition of topic to c->rk at its end: 0 partitions when
 * the broker does not know the topic (yet). */
static int assign_all(cv_kafka_consumer *c, const char *topic, int timeout_ms, char *errbuf,
                      size_t errlen) {
    rd_kafka_topic_t *t = rd_kafka_topic_new(c->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *list = NULL;
    rd_kafka_resp_err_t rc;
    int n = 0;

    if (!t)
        return cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "cannot name topic %s", topic), -1;
    rc = rd_kafka_metadata(c->rk, 0, t, &md, timeout_ms);
    if (rc || md->topic_cnt != 1 || md->topics[0].err) {
        cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "topic %s: %s", topic,
                   rd_kafka_err2str(rc              ? rc
                                    : md->topic_cnt ? md->topics[0].err
                                                    : rc));
        goto out;
    }
    n = md->topics[0].partition_cnt;
    list = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(list, topic, md->topics[0].partitions[i].id)->offset =
            RD_KAFKA_OFFSET_END;
    if ((rc = rd_kafka_assign(c->rk, list))) {
        cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "cannot read %s: %s", topic, rd_kafka_err2str(rc));
        n = 0;
    }
out:
    if (list)
        rd_kafka_topic_partition_list_destroy(list);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return n;
}

/* A listener's partitions, asked for at most once a second until it has them. */
static void listen_now(cv_kafka_consumer *c) {
    char why[256];
    int64_t now = cv_time_mono_ms();

    if (now - c->listen_try < 1000)
        return;
    c->listen_try = now;
    if (assign_all(c, c->listen, 1000, why, sizeof(why)) > 0) {
        c->listening = true;
        cv_log_info("kafka: listening to every partition of %s", c->listen);
    } else {
        cv_log_warn("kafka: not listening to %s yet: %s", c->listen, why);
    }
}

cv_kafka_consumer *cv_kafka_listener_new(const char *bootstrap, const char *topic, int timeout_ms,
                                         char *errbuf, size_t errlen) {
    const char *const settings[] = {"group.id", "convutell-listener", "enable.auto.commit",
                                    "false",    "fetch.wait.max.ms",  "100",
                                    NULL};
    rd_kafka_conf_t *conf = base_conf(bootstrap, errbuf, errlen);
    int64_t deadline = cv_time_mono_ms() + timeout_ms;
    cv_kafka_consumer *c = NULL;
    int got = 0;

    if (!conf || conf_set_all(conf, settings, errbuf, errlen) != 0)
        goto fail;
    if (!(c = calloc(1, sizeof(*c)))) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    snprintf(c->group, sizeof(c->group), "listener");
    if (!(c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errbuf, errlen)))
        goto fail;
    conf = NULL;
    rd_kafka_poll_set_consumer(c->rk);
    atomic_store(&c->assigned, true); /* no group: nothing in the way of rd_kafka_destroy() */
    if (!(c->listen = strdup(topic))) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* The broker may be away: then the first polls ask again. */
    while ((got = assign_all(c, topic, 1000, errbuf, errlen)) <= 0 && cv_time_mono_ms() < deadline)
        nanosleep(&(struct timespec){0, 200 * 1000000L}, NULL);
    c->listening = got > 0;
    c->listen_try = cv_time_mono_ms();
    return c;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (c && c->rk)
        rd_kafka_destroy(c->rk);
    free(c);
    return NULL;
}

cv_err cv_kafka_consumer_poll(cv_kafka_consumer *c, int timeout_ms, cv_kafka_msg *msg) {
    rd_kafka_message_t *m;

    memset(msg, 0, sizeof(*msg));
    if (c->listen && !c->listening)
        listen_now(c);
    m = rd_kafka_consumer_poll(c->rk, timeout_ms);
    if (!m)
        return CV_ERR_TIMEOUT;
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            cv_log_warn("kafka consumer: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return CV_ERR_TIMEOUT;
    }
    msg->topic = rd_kafka_topic_name(m->rkt);
    msg->partition = m->partition;
    msg->offset = m->offset;
    msg->key = m->key;
    msg->key_len = m->key_len;
    msg->payload = m->payload;
    msg->len = m->len;
    msg->handle = m;
    return CV_OK;
}

cv_err cv_kafka_consumer_store_at(cv_kafka_consumer *c, const char *topic, int32_t partition,
                                  int64_t next_offset, char *errbuf, size_t errlen) {
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_resp_err_t err;

    rd_kafka_topic_partition_list_add(list, topic, partition)->offset = next_offset;
    err = rd_kafka_offsets_store(c->rk, list);
    if (!err && list->elems[0].err)
        err = list->elems[0].err;
    rd_kafka_topic_partition_list_destroy(list);
    if (err == RD_KAFKA_RESP_ERR__STATE)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFLICT,
                          "%s[%d] is no longer assigned to this consumer; offset %lld is left "
                          "to its new owner",
                          topic, (int)partition, (long long)next_offset - 1);
    if (err)
        return cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "cannot store offset %s[%d]@%lld: %s",
                          topic, (int)partition, (long long)next_offset - 1, rd_kafka_err2str(err));
    return CV_OK;
}

cv_err cv_kafka_consumer_store(cv_kafka_consumer *c, const cv_kafka_msg *msg, char *errbuf,
                               size_t errlen) {
    cv_err err =
        cv_kafka_consumer_store_at(c, msg->topic, msg->partition, msg->offset + 1, errbuf, errlen);
    if (err == CV_ERR_CONFLICT) { /* the partition's new owner delivers it again */
        cv_log_warn("kafka: %s", errbuf);
        return CV_OK;
    }
    return err;
}

/* The gauge of every consumer group's lag. */
static cv_metric *lag_metric(void) {
    return cv_metrics_register(CV_METRIC_GAUGE, "convutell_kafka_consumer_lag",
                               "Messages behind the partitions' ends, over the partitions assigned "
                               "to this process, by consumer group.",
                               NULL, 0);
}

/* A consumer's lag, read when the metrics are written out (cv_metrics_fn),
 * as `kafka-consumer-groups --describe` counts it: over the partitions
 * assigned to it, each partition's end less its group's committed offset
 * (the messages the group has not finished: a worker commits a message once
 * its run has ended), or less the partition's start before the group ever
 * committed (the consumers start from the earliest). Both asked of the
 * broker: a paused consumer fetches nothing, so what it last fetched says
 * nothing. NAN when the broker does not answer in time. */
static double lag_now(void *ctx) {
    cv_kafka_consumer *c = ctx;
    rd_kafka_topic_partition_list_t *parts = NULL;
    double lag = 0;

    if (rd_kafka_assignment(c->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts)
        return NAN;
    if (parts->cnt &&
        rd_kafka_committed(c->rk, parts, LAG_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR)
        lag = NAN;
    for (int i = 0; !isnan(lag) && i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t low, high;
        if (rd_kafka_query_watermark_offsets(c->rk, p->topic, p->partition, &low, &high,
                                             LAG_TIMEOUT_MS) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            lag = NAN;
            break;
        }
        int64_t at = p->offset >= 0 ? p->offset : low;
        if (high > at)
            lag += (double)(high - at);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    return lag;
}

void cv_kafka_consumer_pause(cv_kafka_consumer *c, bool pause) {
    rd_kafka_topic_partition_list_t *parts = NULL;

    c->paused = pause;
    if (rd_kafka_assignment(c->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || !parts)
        return;
    if (parts->cnt)
        (void)(pause ? rd_kafka_pause_partitions(c->rk, parts)
                     : rd_kafka_resume_partitions(c->rk, parts));
    rd_kafka_topic_partition_list_destroy(parts);
}

cv_err cv_kafka_consumer_rewind(cv_kafka_consumer *c, const cv_kafka_msg *msg, char *errbuf,
                                size_t errlen) {
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_error_t *error;
    cv_err err = CV_OK;

    rd_kafka_topic_partition_list_add(list, msg->topic, msg->partition)->offset = msg->offset;
    error = rd_kafka_seek_partitions(c->rk, list, 5000);
    if (error || list->elems[0].err) {
        err =
            cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "cannot rewind %s[%d] to %lld: %s", msg->topic,
                       (int)msg->partition, (long long)msg->offset,
                       error ? rd_kafka_error_string(error) : rd_kafka_err2str(list->elems[0].err));
    }
    if (error)
        rd_kafka_error_destroy(error);
    rd_kafka_topic_partition_list_destroy(list);
    return err;
}

void cv_kafka_msg_release(cv_kafka_msg *msg) {
    if (msg && msg->handle) {
        rd_kafka_message_destroy(msg->handle);
        memset(msg, 0, sizeof(*msg));
    }
}

/* A consumer's close, on a thread of its own so that a stop has a bound (see below). */
typedef struct closer {
    rd_kafka_t *rk;
    pthread_mutex_t lock;
    pthread_cond_t done_cv;
    bool done;
} closer;

static void *close_main(void *arg) {
    closer *k = arg;
    rd_kafka_consumer_close(k->rk);
    pthread_mutex_lock(&k->lock);
    k->done = true;
    pthread_cond_signal(&k->done_cv);
    pthread_mutex_unlock(&k->lock);
    return NULL;
}

/* Leaves the group within CV_KAFKA_CLOSE_MS: librdkafka 2.0's rd_kafka_consumer_close() can
 * wait forever on a cooperative rebalance that another member's join left half done (seen
 * when a collector stopped while two more joined its group on a loaded machine), and a
 * service must stop when asked. True when it closed; false when it was left to the
 * process's exit (the group then gives its partitions away after session.timeout.ms, and
 * what was consumed since the last commit is consumed again, which every consumer here
 * takes twice without harm). */
static bool close_bounded(rd_kafka_t *rk, const char *group) {
    closer *k = calloc(1, sizeof(*k));
    struct timespec until = cv_time_mono_deadline(CV_KAFKA_CLOSE_MS);
    pthread_t t;
    bool done;

    if (!k) {
        rd_kafka_consumer_close(rk);
        return true;
    }
    k->rk = rk;
    pthread_mutex_init(&k->lock, NULL);
    cv_time_cond_init(&k->done_cv);
    if (pthread_create(&t, NULL, close_main, k) != 0) {
        rd_kafka_consumer_close(rk);
        done = true;
        goto out;
    }
    pthread_mutex_lock(&k->lock);
    while (!k->done && pthread_cond_timedwait(&k->done_cv, &k->lock, &until) == 0)
        ;
    done = k->done;
    pthread_mutex_unlock(&k->lock);
    if (!done) {
        cv_log_warn("kafka: leaving group %s took more than %d ms; stopping without it", group,
                    CV_KAFKA_CLOSE_MS);
        pthread_detach(t);
        return false; /* k stays with the thread, which may still finish */
    }
    pthread_join(t, NULL);
out:
    pthread_mutex_destroy(&k->lock);
    pthread_cond_destroy(&k->done_cv);
    free(k);
    return done;
}

void cv_kafka_consumer_destroy(cv_kafka_consumer *c) {
    if (!c)
        return;
    cv_metrics_unwatch(c); /* waits for a scrape reading its lag */
    if (!close_bounded(c->rk, c->group)) {
        free(c->listen);
        free(c);
        return;
    }
    /* librdkafka before 2.3 (Debian 12 has 2.0) aborts in rd_kafka_destroy()
     * when a cooperative-sticky consumer never got its first assignment
     * (rd_kafka_sticky_assignor_state_destroy: Assertion `assignor_state'
     * failed; librdkafka issue 4312), as when a service is stopped while it
     * joins its group. Such a handle is left to the process's exit: it has
     * left the group, and owns nothing the process still needs. */
    if (atomic_load(&c->assigned))
        rd_kafka_destroy(c->rk);
    free(c->listen);
    free(c);
}

cv_err cv_kafka_producer_ping(cv_kafka_producer *p, const char *topic, int timeout_ms, char *errbuf,
                              size_t errlen) {
    rd_kafka_topic_t *t = rd_kafka_topic_new(p->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t rc;

    if (!t)
        return cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "topic %s: %s", topic,
                          rd_kafka_err2str(rd_kafka_last_error()));
    rc = rd_kafka_metadata(p->rk, 0, t, &md, timeout_ms);
    rd_kafka_topic_destroy(t);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
        return cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "no broker answered in %d ms: %s",
                          timeout_ms, rd_kafka_err2str(rc));
    rc = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    rd_kafka_metadata_destroy(md);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
        return cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "topic %s: %s", topic,
                          rd_kafka_err2str(rc));
    return CV_OK;
}
