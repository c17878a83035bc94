/*
 * cv_api_stream.c - GET /api/v1/runs/{id}/stream: a run followed live as
 * Server-Sent Events, without polling by the client.
 *
 * Events, each `id:` the stored event's id where there is one:
 *   run       the run as GET /runs/{id} shows it, first and at every change
 *             of its status;
 *   progress  a run.progress event (rows so far, rows per second);
 *   log       a run.log line (stream, line);
 *   event     any other event of the run (started, retrying, its end);
 *   end       the run's final status; the stream ends after it.
 * A comment line is sent every 15 s when nothing happened, so proxies keep
 * the connection. `Last-Event-ID` (a reconnecting browser sends it) resumes
 * after that event.
 *
 * The stream reads the run's new events every STREAM_POLL_MS, and the run
 * itself while events come (every RUN_LOOK_MS when quiet), on the
 * connection's own thread: a slow reader holds only its own connection. At most
 * CONVUTELL_STREAMS streams are open at once in an API process (503
 * beyond), and one lasts at most STREAM_MAX_MS (the client reconnects with
 * Last-Event-ID).
 */
#include "cv_api_int.h"

#include "cv_buf.h"
#include "cv_id.h"
#include "cv_log.h"
#include "cv_run.h"
#include "cv_runs.h"
#include "cv_store.h"
#include "cv_time.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define STREAM_POLL_MS 250
#define STREAM_BEAT_MS 15000
#define STREAM_MAX_MS (3600 * INT64_C(1000))
#define STREAM_PAGE 200
#define RUN_LOOK_MS 5000         /* the run itself is read this often when quiet */
#define RUN_AFTER_EVENTS_MS 2000 /* and at every poll this long after events came */

static atomic_int open_streams;

typedef struct stream {
    cv_api *api;
    char run_id[CV_ID_LEN];
    char last_time[CV_TIME_RFC3339_LEN]; /* the last event sent: time and id */
    char last_id[CV_ID_LEN];
    char status[32];   /* the run's status as last sent */
    int64_t opened_ms; /* monotonic */
    int64_t sent_ms;   /* when something was last sent */
    int64_t run_until; /* look at the run itself until then (events came lately) */
    int64_t run_at;    /* when the run itself was last looked at */
    bool ended;
    cv_buf out;
    size_t sent;
} stream;

static void stream_free(void *ctx) {
    stream *s = ctx;
    cv_buf_free(&s->out);
    free(s);
    atomic_fetch_sub(&open_streams, 1);
}

/* Appends one SSE event: id (may be NULL), type, and data as one line. */
static void add_event(stream *s, const char *id, const char *type, const char *data) {
    if (id && id[0]) {
        cv_buf_adds(&s->out, "id: ");
        cv_buf_adds(&s->out, id);
        cv_buf_adds(&s->out, "\n");
    }
    cv_buf_adds(&s->out, "event: ");
    cv_buf_adds(&s->out, type);
    cv_buf_adds(&s->out, "\ndata: ");
    cv_buf_adds(&s->out, data); /* compact JSON: no line breaks */
    cv_buf_adds(&s->out, "\n\n");
}

static void add_json(stream *s, const char *id, const char *type, cJSON *json) {
    char *text = json ? cJSON_PrintUnformatted(json) : NULL;
    if (text)
        add_event(s, id, type, text);
    else
        s->out.failed = true;
    cJSON_free(text);
}

/* The run as it stands: a "run" event when its status changed, and whether
 * it is final. False when it could not be read. */
static bool look_at_run(stream *s, bool *final) {
    bson_t *run = NULL;
    char why[256];
    const char *status;
    cJSON *json;

    if (cv_runs_get(s->api->mongo, s->run_id, &run, why, sizeof(why)) != CV_OK)
        return false;
    status = cv_mongo_doc_str(run, "status");
    *final = status && cv_run_name_is_final(status);
    if (status && strcmp(status, s->status) != 0) {
        snprintf(s->status, sizeof(s->status), "%s", status);
        json = cv_api_doc_to_json(run);
        add_json(s, NULL, "run", json);
        cJSON_Delete(json);
    }
    bson_destroy(run);
    return true;
}

/* One stored event as an SSE event. */
static void add_stored(stream *s, const bson_t *ev) {
    const char *type = cv_mongo_doc_str(ev, "type"), *id = cv_mongo_doc_str(ev, "_id");
    const char *kind = "event";
    cJSON *json;

    if (type && strcmp(type, "run.progress") == 0)
        kind = "progress";
    else if (type && strcmp(type, "run.log") == 0)
        kind = "log";
    json = cv_api_doc_to_json(ev);
    add_json(s, id, kind, json);
    cJSON_Delete(json);
}

/* The run's events after the last one sent, oldest first; *got counts
 * them. False when the store did not answer. */
static bool read_events(stream *s, int *got) {
    bson_t filter = BSON_INITIALIZER, sort = BSON_INITIALIZER, cond, *found = NULL, ev;
    bson_iter_t it;
    char why[256];
    bool past = !s->last_time[0];

    BSON_APPEND_UTF8(&filter, "run_id", s->run_id);
    if (s->last_time[0]) {
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "time", &cond);
        BSON_APPEND_UTF8(&cond, "$gte", s->last_time);
        bson_append_document_end(&filter, &cond);
    }
    BSON_APPEND_INT32(&sort, "time", 1);
    BSON_APPEND_INT32(&sort, "_id", 1);
    if (cv_mongo_find(s->api->mongo, CV_COLL_EVENTS, &filter, &sort, STREAM_PAGE, &found, why,
                      sizeof(why)) != CV_OK) {
        bson_destroy(&filter);
        bson_destroy(&sort);
        return false;
    }
    CV_MONGO_EACH_DOC(found, it, ev) {
        const char *time = cv_mongo_doc_str(&ev, "time"), *id = cv_mongo_doc_str(&ev, "_id");
        if (!time || !id)
            continue;
        /* Those at the last time up to the last id were sent already. */
        if (!past && strcmp(time, s->last_time) == 0 && strcmp(id, s->last_id) <= 0)
            continue;
        past = true;
        (*got)++;
        add_stored(s, &ev);
        snprintf(s->last_time, sizeof(s->last_time), "%s", time);
        snprintf(s->last_id, sizeof(s->last_id), "%s", id);
    }
    bson_destroy(found);
    bson_destroy(&filter);
    bson_destroy(&sort);
    return true;
}

/* Fills s->out with what happened since the last look, waiting for
 * something to happen. False: the stream ends (read nothing more). */
static bool refill(stream *s) {
    cv_buf_free(&s->out);
    s->sent = 0;
    while (!s->out.len) {
        int64_t now = cv_time_mono_ms();
        bool final = false, ok = true;
        int got = 0;
        if (s->ended || now - s->opened_ms > STREAM_MAX_MS)
            return false;
        /* A run changes with its events (the collector stores a batch's
         * events before it moves their runs): the run itself is read while
         * events come and for a while after, else every RUN_LOOK_MS. */
        ok = read_events(s, &got);
        if (got)
            s->run_until = now + RUN_AFTER_EVENTS_MS;
        if (ok && (now < s->run_until || now - s->run_at >= RUN_LOOK_MS)) {
            s->run_at = now;
            ok = look_at_run(s, &final);
        }
        if (!ok)
            cv_log_warn("run %s: its stream could not read the store; trying again", s->run_id);
        if (final) {
            char data[64];
            snprintf(data, sizeof(data), "{\"status\":\"%s\"}", s->status);
            add_event(s, NULL, "end", data);
            s->ended = true;
        } else if (!s->out.len && now - s->sent_ms >= STREAM_BEAT_MS) {
            cv_buf_adds(&s->out, ": still running\n\n");
        }
        if (s->out.failed)
            return false;
        if (!s->out.len)
            nanosleep(&(struct timespec){0, STREAM_POLL_MS * 1000000L}, NULL);
    }
    s->sent_ms = cv_time_mono_ms();
    return true;
}

static long stream_read(void *ctx, char *buf, size_t max) {
    stream *s = ctx;
    size_t n;

    if (s->sent >= s->out.len && !refill(s))
        return 0;
    n = s->out.len - s->sent < max ? s->out.len - s->sent : max;
    memcpy(buf, s->out.data + s->sent, n);
    s->sent += n;
    return (long)n;
}

/* Last-Event-ID: resume after that stored event of the run. */
static void resume_after(stream *s, const char *last) {
    bson_t *ev = NULL;
    char why[128];
    const char *run, *time;

    if (!last || !cv_id_valid(last) ||
        cv_mongo_find_id(s->api->mongo, CV_COLL_EVENTS, last, &ev, why, sizeof(why)) != CV_OK)
        return;
    run = cv_mongo_doc_str(ev, "run_id");
    time = cv_mongo_doc_str(ev, "time");
    if (run && time && strcmp(run, s->run_id) == 0) {
        snprintf(s->last_time, sizeof(s->last_time), "%s", time);
        snprintf(s->last_id, sizeof(s->last_id), "%s", last);
    }
    bson_destroy(ev);
}

void cv_api_stream_run(cv_api *api, const char *id, const cv_http_request *req,
                       cv_http_response *res) {
    bson_t *run = NULL;
    char why[256];
    stream *s;
    cv_err err;

    /* The run must be there (an administrator's look at one that is not). */
    if ((err = cv_runs_get(api->mongo, id, &run, why, sizeof(why)))) {
        if (err == CV_ERR_NOT_FOUND)
            cv_http_error(res, 404, "not_found", NULL, "no run with id '%s'", id);
        else
            cv_api_internal_error(res, err, why);
        return;
    }
    bson_destroy(run);
    if (atomic_fetch_add(&open_streams, 1) >= api->cfg.http_streams) {
        atomic_fetch_sub(&open_streams, 1);
        res->retry_after = 5;
        cv_http_error(res, 503, "unavailable", NULL,
                      "this API has %d run streams open, its limit (CONVUTELL_STREAMS); try "
                      "again, or read GET /api/v1/runs/%s",
                      api->cfg.http_streams, id);
        return;
    }
    if (!(s = calloc(1, sizeof(*s)))) {
        atomic_fetch_sub(&open_streams, 1);
        cv_http_error(res, 500, "internal", NULL, "out of memory");
        return;
    }
    s->api = api;
    snprintf(s->run_id, sizeof(s->run_id), "%s", id);
    s->opened_ms = s->sent_ms = cv_time_mono_ms();
    resume_after(s, cv_http_header(req, "Last-Event-ID"));
    res->status = 200;
    res->stream = (cv_http_stream){.read = stream_read, .done = stream_free, .ctx = s};
    snprintf(res->stream.content_type, sizeof(res->stream.content_type), "text/event-stream");
}
