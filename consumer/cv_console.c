/*
 * cv_console.c - the worker's side of the SQL console. See cv_console.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_console.h"

#include "cv_kafka.h"
#include "cv_log.h"
#include "cv_message.h"
#include "cv_query.h"
#include "cv_querysql.h"
#include "cv_time.h"

#include <sql.h>
#include <sqlext.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define POLL_MS 100
#define CANCEL_CHECK_MS 500
#define PENDING_MAX 64 /* queries polled and waiting for a slot before fetching pauses */

/* One query taken in. */
typedef struct slot {
    cv_console *c;
    bool busy;                   /* a thread runs it (or ran it and waits to be joined) */
    bool joined;                 /* it ran on the console's thread: nothing to join */
    atomic_bool finished;        /* the thread is done */
    _Atomic int64_t deadline_ms; /* monotonic; 0 until the query began */
    pthread_t thread;
    cv_kafka_msg msg;
    cv_job job;
    cv_querysql q;
} slot;

struct cv_console {
    cv_runner *r;
    cv_kafka_consumer *consumer;
    pthread_t thread;
    atomic_bool stop;
    bool paused;
    cv_kafka_msg *pending; /* polled, waiting for a free slot, oldest first */
    size_t npending, cap;
    int64_t cancels_at; /* monotonic: when the store was last asked for cancels */
    slot slots[CV_CONSOLE_SLOTS];
};

/* ---- one query, on its slot's thread ----------------------------------------- */

/* Stores a full chunk of rows beside the run. */
static cv_err store_chunk(void *ctx, int64_t seq, const bson_t *rows, int64_t n, char *errbuf,
                          size_t errlen) {
    slot *s = ctx;
    char id[CV_QUERY_CHUNK_ID_LEN];
    bson_t doc = BSON_INITIALIZER;
    cv_err err;

    cv_query_chunk_id(s->job.run_id, seq, id);
    BSON_APPEND_UTF8(&doc, "_id", id);
    BSON_APPEND_UTF8(&doc, "run_id", s->job.run_id);
    BSON_APPEND_INT64(&doc, "seq", seq);
    BSON_APPEND_INT64(&doc, "n", n);
    BSON_APPEND_ARRAY(&doc, "rows", rows);
    err = cv_mongo_insert(s->c->r->mongo, CV_COLL_QUERY_ROWS, &doc, errbuf, errlen);
    /* A chunk stored by an earlier delivery that died is the same chunk. */
    if (err == CV_ERR_CONFLICT)
        err = CV_OK;
    bson_destroy(&doc);
    return err;
}

/* Reads what to run from the stored run into s->q; the parameters' text
 * goes into texts (kept until the query ends). */
static void read_run(slot *s, const bson_t *doc, char texts[][64]) {
    cv_querysql *q = &s->q;
    bson_iter_t it, p;
    int i = 0;

    q->sql = cv_mongo_doc_str(doc, "sql");
    q->max_rows = cv_mongo_doc_int(doc, "max_rows", CV_QUERY_ROWS_DEFAULT);
    q->timeout_seconds = (int)cv_mongo_doc_int(doc, "timeout_seconds", CV_QUERY_TIMEOUT_DEFAULT);
    q->allow_writes = cv_mongo_doc_bool(doc, "allow_writes", false);
    if (!bson_iter_init_find(&it, doc, "params") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &p))
        return;
    while (bson_iter_next(&p) && i < CV_QUERY_PARAMS_MAX) {
        q->params[i] = texts[i];
        q->param_types[i] = SQL_VARCHAR;
        switch (bson_iter_type(&p)) {
            case BSON_TYPE_UTF8:
                q->params[i] = bson_iter_utf8(&p, NULL);
                break;
            case BSON_TYPE_INT32:
            case BSON_TYPE_INT64:
                snprintf(texts[i], 64, "%lld", (long long)bson_iter_as_int64(&p));
                q->param_types[i] = SQL_BIGINT;
                break;
            case BSON_TYPE_DOUBLE:
                snprintf(texts[i], 64, "%.17g", bson_iter_double(&p));
                q->param_types[i] = SQL_DOUBLE;
                break;
            case BSON_TYPE_BOOL:
                snprintf(texts[i], 64, "%d", bson_iter_bool(&p) ? 1 : 0);
                q->param_types[i] = SQL_INTEGER;
                break;
            default:
                q->params[i] = NULL;
        }
        i++;
    }
    q->nparams = i;
}

/* The run's end as stored: its status and result. */
static void append_end(bson_t *set, const cv_querysql *q, int64_t elapsed_ms, bool stopping) {
    const char *status = !q->code                            ? "succeeded"
                         : strcmp(q->code, "cancelled") == 0 ? "cancelled"
                         : strcmp(q->code, "timed_out") == 0 ? "timed_out"
                                                             : "failed";
    BSON_APPEND_UTF8(set, "status", status);
    BSON_APPEND_INT64(set, "elapsed_ms", elapsed_ms);
    BSON_APPEND_ARRAY(set, "columns", &q->columns);
    if (q->chunks)
        BSON_APPEND_INT64(set, "chunks", q->chunks);
    else
        BSON_APPEND_ARRAY(set, "rows", &q->rows);
    BSON_APPEND_INT64(set, "row_count", q->row_count);
    BSON_APPEND_BOOL(set, "truncated", q->truncated);
    if (q->rows_affected >= 0)
        BSON_APPEND_INT64(set, "rows_affected", q->rows_affected);
    if (q->code) {
        bson_t error;
        BSON_APPEND_DOCUMENT_BEGIN(set, "error", &error);
        BSON_APPEND_UTF8(&error, "code", q->code);
        if (strcmp(q->code, "cancelled") == 0)
            BSON_APPEND_UTF8(&error, "message",
                             stopping ? "cancelled: the worker stopped while it ran"
                                      : "cancelled on request");
        else if (strcmp(q->code, "timed_out") == 0)
            BSON_APPEND_UTF8(&error, "message", "over its time limit; stopped and rolled back");
        else
            BSON_APPEND_UTF8(&error, "message", q->why);
        bson_append_document_end(set, &error);
    }
}

/* Tells the API that waits (reply_to) that the run ended. */
static void reply(cv_console *c, const char *reply_to, const char *id, const char *status) {
    char msg[160], why[256];
    int n = snprintf(msg, sizeof(msg), "{\"query_run\":\"%s\",\"status\":\"%s\"}", id, status);
    if (reply_to && cv_kafka_produce_nowait(c->r->producer, CV_TOPIC_REPLIES, reply_to, msg,
                                            (size_t)n, why, sizeof(why)) != CV_OK)
        cv_log_warn("query run %s: reply not sent: %s", id, why);
}

static void run_query(slot *s) {
    cv_console *c = s->c;
    const char *id = s->job.run_id;
    char texts[CV_QUERY_PARAMS_MAX][64], why[512], *odbc = NULL;
    bson_t *doc = NULL, set = BSON_INITIALIZER;
    int64_t started = cv_time_mono_ms();
    cv_err err = cv_query_claim(c->r->mongo, id, c->r->cfg.worker_id, &doc, why, sizeof(why));

    if (err) {
        /* Cancelled before it started, or another delivery has it. */
        if (err != CV_ERR_CONFLICT)
            cv_log_warn("query run %s not claimed: %s", id, why);
        goto out;
    }
    read_run(s, doc, texts);
    atomic_store(&s->deadline_ms, started + (int64_t)s->q.timeout_seconds * 1000);
    if (!s->q.sql) {
        s->q.code = "statement_failed";
        snprintf(s->q.why, sizeof(s->q.why), "the stored query run has no statement");
    } else if (cv_runner_odbc(c->r, cv_mongo_doc_str(doc, "connection_id"), &odbc, s->q.why,
                              sizeof(s->q.why)) != CV_OK) {
        s->q.code = "connection_lookup";
    } else {
        s->q.odbc = odbc;
        cv_querysql_run(c->r->odbc_pool, &s->q);
    }
    append_end(&set, &s->q, cv_time_mono_ms() - started, atomic_load(&c->stop));
    if ((err = cv_query_end(c->r->mongo, id, &set, why, sizeof(why))))
        cv_log_warn("query run %s: end not stored: %s", id, why);
    else
        cv_log_info("query run %s ended (%s) after %lld ms: %lld rows", id,
                    s->q.code ? s->q.code : "succeeded", (long long)(cv_time_mono_ms() - started),
                    (long long)s->q.row_count);
    reply(c, cv_mongo_doc_str(doc, "reply_to"), id, s->q.code ? s->q.code : "succeeded");
out:
    free(odbc);
    bson_destroy(&set);
    bson_destroy(doc);
}

static void *slot_main(void *arg) {
    slot *s = arg;
    run_query(s);
    atomic_store(&s->finished, true);
    return NULL;
}

/* ---- the console's thread ------------------------------------------------------ */

/* Frees a slot whose query ended, and stores its message's offset. */
static void reap(cv_console *c, slot *s) {
    char why[256];
    if (!s->joined)
        pthread_join(s->thread, NULL);
    if (cv_kafka_consumer_store(c->consumer, &s->msg, why, sizeof(why)) != CV_OK)
        cv_log_warn("console: offset not stored: %s", why);
    cv_querysql_release(&s->q);
    cv_job_release(&s->job);
    cv_kafka_msg_release(&s->msg);
    s->busy = false;
}

/* Takes a polled message into a free slot and starts its thread. */
static void take(cv_console *c, slot *s, cv_kafka_msg *msg) {
    cv_verr verr;
    char why[256];
    int rc;

    memset(s, 0, sizeof(*s));
    s->c = c;
    s->msg = *msg;
    if (cv_job_decode(msg->payload ? msg->payload : "", msg->len, &s->job, &verr) != CV_OK ||
        cv_job_kind_parse(s->job.kind) != CV_JOB_KIND_QUERY) {
        cv_log_warn("console: skipped a message of %s[%d]@%lld that is not a query", msg->topic,
                    (int)msg->partition, (long long)msg->offset);
        if (cv_kafka_consumer_store(c->consumer, msg, why, sizeof(why)) != CV_OK)
            cv_log_warn("console: offset not stored: %s", why);
        cv_job_release(&s->job);
        cv_kafka_msg_release(&s->msg);
        return;
    }
    cv_querysql_init(&s->q);
    s->q.chunk = store_chunk;
    s->q.ctx = s;
    s->busy = true;
    if ((rc = pthread_create(&s->thread, NULL, slot_main, s)) != 0) {
        cv_log_warn("console: cannot start a query thread: %s", strerror(rc));
        run_query(s); /* on this thread, then */
        s->joined = true;
        atomic_store(&s->finished, true);
    }
}

/* Stops the queries over their time limit, and those whose cancel was asked
 * for (the store is asked every CANCEL_CHECK_MS). */
static void watch(cv_console *c) {
    const char *ids[CV_CONSOLE_SLOTS];
    slot *running[CV_CONSOLE_SLOTS];
    bool wanted[CV_CONSOLE_SLOTS];
    int64_t now = cv_time_mono_ms();
    size_t n = 0;
    char why[256];

    for (int i = 0; i < CV_CONSOLE_SLOTS; i++) {
        slot *s = &c->slots[i];
        int64_t deadline = atomic_load(&s->deadline_ms);
        if (!s->busy || atomic_load(&s->finished) || !deadline)
            continue;
        if (now >= deadline)
            cv_querysql_stop(&s->q, CV_QUERYSQL_TIMED_OUT);
        ids[n] = s->job.run_id;
        running[n++] = s;
    }
    if (n == 0 || now - c->cancels_at < CANCEL_CHECK_MS)
        return;
    c->cancels_at = now;
    if (cv_query_cancels(c->r->mongo, ids, n, wanted, why, sizeof(why)) != CV_OK) {
        cv_log_warn("console: cancels not read: %s", why);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (wanted[i])
            cv_querysql_stop(&running[i]->q, CV_QUERYSQL_CANCELLED);
}

/* Queues a polled message until a slot is free. False when out of memory
 * (the message is dropped: its offset is not stored, so a restart reads it). */
static bool queue(cv_console *c, cv_kafka_msg *msg) {
    if (c->npending == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        cv_kafka_msg *grown = realloc(c->pending, cap * sizeof(*grown));
        if (!grown) {
            cv_log_warn("console: out of memory; a query of %s[%d]@%lld is left for later",
                        msg->topic, (int)msg->partition, (long long)msg->offset);
            cv_kafka_msg_release(msg);
            return false;
        }
        c->pending = grown;
        c->cap = cap;
    }
    c->pending[c->npending++] = *msg;
    return true;
}

/* Starts queued queries while slots are free, oldest first. */
static void start_queued(cv_console *c) {
    size_t taken = 0;
    for (int i = 0; i < CV_CONSOLE_SLOTS && taken < c->npending; i++)
        if (!c->slots[i].busy)
            take(c, &c->slots[i], &c->pending[taken++]);
    if (!taken) /* also when nothing was ever queued: pending is NULL */
        return;
    memmove(c->pending, c->pending + taken, (c->npending - taken) * sizeof(*c->pending));
    c->npending -= taken;
}

static void *console_main(void *arg) {
    cv_console *c = arg;
    cv_kafka_msg msg;

    while (!atomic_load(&c->stop)) {
        for (int i = 0; i < CV_CONSOLE_SLOTS; i++)
            if (c->slots[i].busy && atomic_load(&c->slots[i].finished))
                reap(c, &c->slots[i]);
        start_queued(c);
        /* Fetching stops while PENDING_MAX wait; the group keeps us while we poll. */
        if ((c->npending >= PENDING_MAX) != c->paused) {
            c->paused = !c->paused;
            cv_kafka_consumer_pause(c->consumer, c->paused);
        }
        /* Busy slots end within milliseconds: look again soon while queries wait. */
        if (cv_kafka_consumer_poll(c->consumer, c->npending ? 1 : POLL_MS, &msg) == CV_OK)
            queue(c, &msg);
        watch(c);
    }
    for (int i = 0; i < CV_CONSOLE_SLOTS; i++)
        if (c->slots[i].busy)
            cv_querysql_stop(&c->slots[i].q, CV_QUERYSQL_CANCELLED);
    for (int i = 0; i < CV_CONSOLE_SLOTS; i++)
        if (c->slots[i].busy)
            reap(c, &c->slots[i]);
    for (size_t i = 0; i < c->npending; i++)
        cv_kafka_msg_release(&c->pending[i]); /* not stored: the group's next member reads them */
    free(c->pending);
    return NULL;
}

cv_console *cv_console_new(cv_runner *r, char *errbuf, size_t errlen) {
    cv_console *c = calloc(1, sizeof(*c));
    int rc;

    if (!c) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    c->r = r;
    c->consumer = cv_kafka_consumer_new(r->cfg.kafka_bootstrap, CV_CONSOLE_GROUP, CV_TOPIC_QUERIES,
                                        0, errbuf, errlen);
    if (!c->consumer) {
        free(c);
        return NULL;
    }
    if ((rc = pthread_create(&c->thread, NULL, console_main, c)) != 0) {
        cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot start the console's thread: %s",
                   strerror(rc));
        cv_kafka_consumer_destroy(c->consumer);
        free(c);
        return NULL;
    }
    return c;
}

void cv_console_destroy(cv_console *c) {
    if (!c)
        return;
    atomic_store(&c->stop, true);
    pthread_join(c->thread, NULL);
    cv_kafka_consumer_destroy(c->consumer);
    free(c);
}
