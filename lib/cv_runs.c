/*
 * cv_runs.c - turns result events into MongoDB documents. Times are stored as
 * RFC 3339 text in UTC with milliseconds, which sorts in time order and reads
 * the same in the API as in the database.
 */
#include "cv_runs.h"

#include "cv_time.h"

#include <string.h>

static void append_time(bson_t *doc, const char *key, int64_t ms) {
    char stamp[CV_TIME_RFC3339_LEN];
    cv_time_format(ms, stamp, sizeof(stamp));
    BSON_APPEND_UTF8(doc, key, stamp);
}

static void append_opt_utf8(bson_t *doc, const char *key, const char *value) {
    if (value[0])
        BSON_APPEND_UTF8(doc, key, value);
}

static void append_counts(bson_t *doc, const cv_event *ev) {
    if (ev->attempt > 0)
        BSON_APPEND_INT32(doc, "attempt", ev->attempt);
    if (ev->rows_read >= 0)
        BSON_APPEND_INT64(doc, "rows_read", ev->rows_read);
    if (ev->rows_written >= 0)
        BSON_APPEND_INT64(doc, "rows_written", ev->rows_written);
    if (ev->duration_ms >= 0)
        BSON_APPEND_INT64(doc, "duration_ms", ev->duration_ms);
    if (ev->rows_per_second >= 0)
        BSON_APPEND_INT64(doc, "rows_per_second", ev->rows_per_second);
}

static void append_error(bson_t *doc, const cv_event *ev) {
    bson_t error;
    if (!ev->error_code[0]) {
        BSON_APPEND_NULL(doc, "error");
        return;
    }
    BSON_APPEND_DOCUMENT_BEGIN(doc, "error", &error);
    BSON_APPEND_UTF8(&error, "code", ev->error_code);
    BSON_APPEND_UTF8(&error, "message", ev->error_message);
    bson_append_document_end(doc, &error);
}

/* The fields of Python jobs' events: a log line, an exit status, dropped lines. */
static void append_script(bson_t *doc, const cv_event *ev) {
    if (ev->stream[0]) {
        BSON_APPEND_UTF8(doc, "stream", ev->stream);
        BSON_APPEND_UTF8(doc, "line", ev->line);
        if (ev->line_cut)
            BSON_APPEND_BOOL(doc, "line_cut", true);
    }
    if (ev->exit_code >= 0)
        BSON_APPEND_INT32(doc, "exit_code", ev->exit_code);
    if (ev->lines_dropped >= 0)
        BSON_APPEND_INT64(doc, "lines_dropped", ev->lines_dropped);
}

static cv_err store_event(cv_mongo *m, const cv_event *ev, char *errbuf, size_t errlen) {
    bson_t doc = BSON_INITIALIZER;
    cv_err err;

    BSON_APPEND_UTF8(&doc, "_id", ev->event_id);
    BSON_APPEND_UTF8(&doc, "type", ev->type);
    append_time(&doc, "time", ev->time_ms);
    append_opt_utf8(&doc, "run_id", ev->run_id);
    append_opt_utf8(&doc, "job_id", ev->job_id);
    append_opt_utf8(&doc, "project_id", ev->project_id);
    append_opt_utf8(&doc, "worker", ev->worker);
    append_counts(&doc, ev);
    if (ev->error_code[0])
        append_error(&doc, ev);
    append_script(&doc, ev);
    err = cv_mongo_insert(m, CV_COLL_EVENTS, &doc, errbuf, errlen);
    bson_destroy(&doc);
    return err == CV_ERR_CONFLICT ? CV_OK : err;
}

/* Filter matching the run unless it already reached a final state. */
static void not_final_filter(bson_t *filter, const char *run_id) {
    bson_t status, nin;
    BSON_APPEND_UTF8(filter, "_id", run_id);
    BSON_APPEND_DOCUMENT_BEGIN(filter, "status", &status);
    BSON_APPEND_ARRAY_BEGIN(&status, "$nin", &nin);
    BSON_APPEND_UTF8(&nin, "0", "succeeded");
    BSON_APPEND_UTF8(&nin, "1", "failed");
    BSON_APPEND_UTF8(&nin, "2", "cancelled");
    BSON_APPEND_UTF8(&nin, "3", "timed_out");
    bson_append_array_end(&status, &nin);
    bson_append_document_end(filter, &status);
}

static cv_err update_run(cv_mongo *m, const cv_event *ev, char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, on_insert;
    bool queued = strcmp(ev->type, CV_EVENT_RUN_QUEUED) == 0;
    bool started = strcmp(ev->type, CV_EVENT_RUN_STARTED) == 0;
    bool progress = strcmp(ev->type, CV_EVENT_RUN_PROGRESS) == 0;
    cv_err err;

    if (queued)
        BSON_APPEND_UTF8(&filter, "_id", ev->run_id);
    else
        not_final_filter(&filter, ev->run_id);

    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    if (queued) {
        append_time(&set, "queued_at", ev->time_ms);
    } else if (started) {
        BSON_APPEND_UTF8(&set, "status", "running");
        append_time(&set, "started_at", ev->time_ms);
        append_opt_utf8(&set, "worker", ev->worker);
        append_counts(&set, ev);
    } else if (progress) {
        BSON_APPEND_UTF8(&set, "status", "running");
        append_time(&set, "progress_at", ev->time_ms);
        append_counts(&set, ev);
    } else {
        BSON_APPEND_UTF8(&set, "status", cv_event_status(ev->type));
        append_time(&set, "finished_at", ev->time_ms);
        append_opt_utf8(&set, "worker", ev->worker);
        append_counts(&set, ev);
        append_error(&set, ev);
        append_script(&set, ev);
        if (ev->watermark[0])
            BSON_APPEND_UTF8(&set, "watermark", ev->watermark);
    }
    bson_append_document_end(&update, &set);

    if (started) {
        /* Every start is one attempt; the event id keeps a replay from adding it twice. */
        bson_t add, attempt;
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$addToSet", &add);
        BSON_APPEND_DOCUMENT_BEGIN(&add, "attempts", &attempt);
        BSON_APPEND_UTF8(&attempt, "event_id", ev->event_id);
        append_opt_utf8(&attempt, "worker", ev->worker);
        append_time(&attempt, "started_at", ev->time_ms);
        bson_append_document_end(&add, &attempt);
        bson_append_document_end(&update, &add);
    }

    BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &on_insert);
    if (queued)
        BSON_APPEND_UTF8(&on_insert, "status", "queued");
    append_opt_utf8(&on_insert, "job_id", ev->job_id);
    append_opt_utf8(&on_insert, "project_id", ev->project_id);
    bson_append_document_end(&update, &on_insert);

    err = cv_mongo_update(m, CV_COLL_RUNS, &filter, &update, true, NULL, errbuf, errlen);
    /* The upsert's insert collides either because another writer (the API's
     * queued record) inserted the run a moment ago, or because the run exists in
     * a final state. Once more tells them apart: the first case now matches;
     * in the second the event is older news and nothing is to be done. */
    if (err == CV_ERR_CONFLICT)
        err = cv_mongo_update(m, CV_COLL_RUNS, &filter, &update, true, NULL, errbuf, errlen);
    if (err == CV_ERR_CONFLICT)
        err = CV_OK;
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

/* Shows an incremental job's progress on the job itself. The destination's
 * ledger holds the watermark the worker trusts; this copy is for people. */
static cv_err update_job_watermark(cv_mongo *m, const cv_event *ev, char *errbuf, size_t errlen) {
    char stamp[CV_TIME_RFC3339_LEN];
    cv_time_format(ev->time_ms, stamp, sizeof(stamp));
    /* Runs of a job land on different partitions: only a newer success may win. */
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(ev->job_id), "$or", "[", "{", "last_watermark_at",
                              "{", "$exists", BCON_BOOL(false), "}", "}", "{", "last_watermark_at",
                              "{", "$lt", BCON_UTF8(stamp), "}", "}", "]");
    bson_t *update =
        BCON_NEW("$set", "{", "last_watermark", BCON_UTF8(ev->watermark), "last_watermark_at",
                 BCON_UTF8(stamp), "last_watermark_run_id", BCON_UTF8(ev->run_id), "}");
    cv_err err = cv_mongo_update(m, "jobs", filter, update, false, NULL, errbuf, errlen);
    bson_destroy(filter);
    bson_destroy(update);
    return err;
}

cv_err cv_runs_apply(cv_mongo *m, const cv_event *ev, char *errbuf, size_t errlen) {
    cv_err err = store_event(m, ev, errbuf, errlen);
    /* A rejected message may carry the id of a real run (a garbled or forged
     * copy): it is on record as an event but changes no run. */
    if (err || !ev->run_id[0] || strcmp(ev->type, CV_EVENT_JOB_REJECTED) == 0 ||
        strcmp(ev->type, CV_EVENT_RUN_LOG) == 0) /* a log line is on record, nothing more */
        return err;
    if ((err = update_run(m, ev, errbuf, errlen)))
        return err;
    if (ev->watermark[0] && ev->job_id[0] && strcmp(ev->type, CV_EVENT_RUN_SUCCEEDED) == 0)
        err = update_job_watermark(m, ev, errbuf, errlen);
    return err;
}
