/*
 * cv_runs.c - the run record in MongoDB: turns result events into documents,
 * writes the scheduler's records of ticks, and answers the questions the
 * other services ask of a run. Filters on status are built from cv_run's
 * table of moves. Times are stored as RFC 3339 text in UTC with milliseconds,
 * which sorts in time order and reads the same in the API as in the database.
 */
#include "cv_runs.h"

#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    cv_mongo_append_time(&doc, "time", ev->time_ms);
    append_opt_utf8(&doc, "run_id", ev->run_id);
    append_opt_utf8(&doc, "job_id", ev->job_id);
    append_opt_utf8(&doc, "project_id", ev->project_id);
    append_opt_utf8(&doc, "worker", ev->worker);
    append_counts(&doc, ev);
    if (ev->error_code[0])
        append_error(&doc, ev);
    append_script(&doc, ev);
    if (ev->trigger[0])
        BSON_APPEND_UTF8(&doc, "trigger", ev->trigger);
    if (ev->tick_ms)
        cv_mongo_append_time(&doc, "tick_at", ev->tick_ms);
    if (ev->next_attempt_ms)
        cv_mongo_append_time(&doc, "next_attempt_at", ev->next_attempt_ms);
    err = cv_mongo_insert(m, CV_COLL_EVENTS, &doc, errbuf, errlen);
    bson_destroy(&doc);
    return err == CV_ERR_CONFLICT ? CV_OK : err;
}

/* Appends {key: {"$in": [names of `statuses`]}}. */
static void append_in(bson_t *doc, const char *key, const cv_run_status *statuses, size_t n) {
    bson_t sub, list;
    char index[24];
    BSON_APPEND_DOCUMENT_BEGIN(doc, key, &sub);
    BSON_APPEND_ARRAY_BEGIN(&sub, "$in", &list);
    for (size_t i = 0; i < n; i++) {
        snprintf(index, sizeof(index), "%zu", i);
        BSON_APPEND_UTF8(&list, index, cv_run_status_name(statuses[i]));
    }
    bson_append_array_end(&sub, &list);
    bson_append_document_end(doc, &sub);
}

/* Appends {status: {"$in": [the statuses a run may move to `to` from]}}. */
static void append_may_move(bson_t *doc, cv_run_status to) {
    cv_run_status from[CV_RUN_STATUS_COUNT];
    append_in(doc, CV_RUN_F_STATUS, from, cv_run_sources(to, from, CV_RUN_STATUS_COUNT));
}

/* Filter matching attempt `attempt` of the run while it may move to `to`
 * (CV_RUN_NONE: while it runs): events of an attempt that was taken away (its
 * lease expired) match nothing. */
static void held_filter(bson_t *filter, const char *run_id, int attempt, cv_run_status to) {
    BSON_APPEND_UTF8(filter, "_id", run_id);
    BSON_APPEND_INT32(filter, CV_RUN_F_ATTEMPT, attempt);
    if (to == CV_RUN_NONE)
        BSON_APPEND_UTF8(filter, CV_RUN_F_STATUS, cv_run_status_name(CV_RUN_RUNNING));
    else
        append_may_move(filter, to);
}

/* Where a run came from, as its record shows it. */
static void append_origin(bson_t *doc, const char *trigger, int64_t tick_ms, int max_attempts) {
    if (trigger[0])
        BSON_APPEND_UTF8(doc, "trigger", trigger);
    if (tick_ms)
        cv_mongo_append_time(doc, "tick_at", tick_ms);
    if (max_attempts > 0)
        BSON_APPEND_INT32(doc, "max_attempts", max_attempts);
}

static cv_err update_run(cv_mongo *m, const cv_event *ev, int64_t *matched, char *errbuf,
                         size_t errlen) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, on_insert;
    cv_run_status to = cv_run_event_target(ev->type);
    bool queued = to == CV_RUN_QUEUED, started = to == CV_RUN_RUNNING;
    bool retrying = to == CV_RUN_RETRYING;
    cv_err err;

    if (queued) {
        BSON_APPEND_UTF8(&filter, "_id", ev->run_id);
    } else if (started) {
        /* A start moves the run to its attempt, never back to an earlier one
         * and never out of a final state. */
        bson_t or, clause, sub;
        BSON_APPEND_UTF8(&filter, "_id", ev->run_id);
        append_may_move(&filter, CV_RUN_RUNNING);
        BSON_APPEND_ARRAY_BEGIN(&filter, "$or", & or);
        BSON_APPEND_DOCUMENT_BEGIN(& or, "0", &clause);
        BSON_APPEND_DOCUMENT_BEGIN(&clause, CV_RUN_F_ATTEMPT, &sub);
        BSON_APPEND_INT32(&sub, "$lte", ev->attempt);
        bson_append_document_end(&clause, &sub);
        bson_append_document_end(& or, &clause);
        BSON_APPEND_DOCUMENT_BEGIN(& or, "1", &clause);
        BSON_APPEND_DOCUMENT_BEGIN(&clause, CV_RUN_F_ATTEMPT, &sub);
        BSON_APPEND_BOOL(&sub, "$exists", false);
        bson_append_document_end(&clause, &sub);
        bson_append_document_end(& or, &clause);
        bson_append_array_end(&filter, & or);
    } else {
        held_filter(&filter, ev->run_id, ev->attempt, to); /* progress, or the attempt's end */
    }

    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    if (queued) {
        cv_mongo_append_time(&set, "queued_at", ev->time_ms);
    } else if (started) {
        BSON_APPEND_UTF8(&set, CV_RUN_F_STATUS, cv_run_status_name(CV_RUN_RUNNING));
        cv_mongo_append_time(&set, "started_at", ev->time_ms);
        append_opt_utf8(&set, "worker", ev->worker);
        append_counts(&set, ev);
    } else if (to == CV_RUN_NONE) { /* run.progress */
        cv_mongo_append_time(&set, "progress_at", ev->time_ms);
        append_counts(&set, ev);
    } else if (retrying) {
        /* The worker put the next attempt on the retry topic before saying so. */
        BSON_APPEND_UTF8(&set, CV_RUN_F_STATUS, cv_run_status_name(CV_RUN_RETRYING));
        append_error(&set, ev);
        append_script(&set, ev);
        cv_mongo_append_time(&set, "next_attempt_at", ev->next_attempt_ms);
    } else {
        BSON_APPEND_UTF8(&set, CV_RUN_F_STATUS, cv_run_status_name(to));
        cv_mongo_append_time(&set, "finished_at", ev->time_ms);
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
        cv_mongo_append_time(&attempt, "started_at", ev->time_ms);
        bson_append_document_end(&add, &attempt);
        bson_append_document_end(&update, &add);
    }

    if (queued || started) {
        /* A run is created by its first record (a message from another
         * system has none before its start). */
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &on_insert);
        if (queued) {
            BSON_APPEND_UTF8(&on_insert, CV_RUN_F_STATUS, cv_run_status_name(CV_RUN_QUEUED));
            BSON_APPEND_INT32(&on_insert, CV_RUN_F_ATTEMPT, ev->attempt > 0 ? ev->attempt : 1);
        }
        cv_mongo_append_time(&on_insert, CV_RUN_F_CREATED,
                             ev->time_ms); /* the run history's order */
        append_opt_utf8(&on_insert, CV_RUN_F_JOB, ev->job_id);
        append_opt_utf8(&on_insert, CV_RUN_F_PROJECT, ev->project_id);
        /* A message that does not say where it came from came from another system. */
        append_origin(&on_insert, ev->trigger[0] ? ev->trigger : "external", ev->tick_ms,
                      ev->max_attempts);
        bson_append_document_end(&update, &on_insert);
    }

    *matched = 0;
    err = cv_mongo_update(m, CV_COLL_RUNS, &filter, &update, queued || started, matched, errbuf,
                          errlen);
    /* The upsert's insert collides either because another writer inserted the
     * run a moment ago, or because the filter excluded it (a late or replayed
     * event). Once more tells them apart: the first case now matches. */
    if (err == CV_ERR_CONFLICT)
        err = cv_mongo_update(m, CV_COLL_RUNS, &filter, &update, queued || started, matched, errbuf,
                              errlen);
    if (err == CV_ERR_CONFLICT)
        err = CV_OK;
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

cv_err cv_runs_notify(cv_mongo *m, const char *run_id, const char *job_id, const char *project_id,
                      const char *status, int attempts, const char *code, const char *message,
                      char *errbuf, size_t errlen) {
    bson_t doc = BSON_INITIALIZER, error;
    cv_err err;

    BSON_APPEND_UTF8(&doc, "_id", run_id); /* one notification per run, whoever writes it */
    BSON_APPEND_UTF8(&doc, "run_id", run_id);
    append_opt_utf8(&doc, "job_id", job_id);
    append_opt_utf8(&doc, "project_id", project_id);
    BSON_APPEND_UTF8(&doc, "status", status);
    BSON_APPEND_INT32(&doc, "attempts", attempts);
    BSON_APPEND_DOCUMENT_BEGIN(&doc, "error", &error);
    BSON_APPEND_UTF8(&error, "code", code);
    BSON_APPEND_UTF8(&error, "message", message);
    bson_append_document_end(&doc, &error);
    cv_mongo_append_time(&doc, "created_at", cv_time_now_ms());
    BSON_APPEND_BOOL(&doc, "read", false);
    err = cv_mongo_insert(m, CV_COLL_NOTIFICATIONS, &doc, errbuf, errlen);
    bson_destroy(&doc);
    return err == CV_ERR_CONFLICT ? CV_OK : err;
}

/* After a failed or timed-out final event: the run failed for good, which is
 * the one time the project hears of it. A replayed event finds the run failed
 * at the same attempt and writes the same notification id again. */
static cv_err notify_failure(cv_mongo *m, const cv_event *ev, int64_t matched, char *errbuf,
                             size_t errlen) {
    bson_t *doc = NULL;
    const char *status = cv_run_status_name(cv_run_event_target(ev->type));
    bool ours = matched > 0;
    cv_err err;

    if (!ours) {
        if ((err = cv_mongo_find_id(m, CV_COLL_RUNS, ev->run_id, &doc, errbuf, errlen)))
            return err == CV_ERR_NOT_FOUND ? CV_OK : err;
        const char *stored = cv_mongo_doc_str(doc, CV_RUN_F_STATUS);
        ours = cv_mongo_doc_int(doc, CV_RUN_F_ATTEMPT, -1) == ev->attempt && stored &&
               strcmp(stored, status) == 0;
        bson_destroy(doc);
    }
    if (!ours)
        return CV_OK;
    return cv_runs_notify(m, ev->run_id, ev->job_id, ev->project_id, status, ev->attempt,
                          ev->error_code, ev->error_message, errbuf, errlen);
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
    cv_err err = cv_mongo_update(m, CV_COLL_JOBS, filter, update, false, NULL, errbuf, errlen);
    bson_destroy(filter);
    bson_destroy(update);
    return err;
}

cv_err cv_runs_apply(cv_mongo *m, const cv_event *ev, char *errbuf, size_t errlen) {
    int64_t matched = 0;
    cv_run_status to;
    cv_err err = store_event(m, ev, errbuf, errlen);
    /* A rejected message may carry the id of a real run (a garbled or forged
     * copy): it is on record as an event but changes no run. */
    if (err || !ev->run_id[0] || strcmp(ev->type, CV_EVENT_JOB_REJECTED) == 0 ||
        strcmp(ev->type, CV_EVENT_RUN_LOG) == 0) /* a log line is on record, nothing more */
        return err;
    if ((err = update_run(m, ev, &matched, errbuf, errlen)))
        return err;
    to = cv_run_event_target(ev->type);
    if ((to == CV_RUN_FAILED || to == CV_RUN_TIMED_OUT) &&
        (err = notify_failure(m, ev, matched, errbuf, errlen)))
        return err;
    if (ev->watermark[0] && ev->job_id[0] && to == CV_RUN_SUCCEEDED)
        err = update_job_watermark(m, ev, errbuf, errlen);
    return err;
}

bson_t *cv_runs_tick_record(const char *run_id, const char *job_id, const char *project_id,
                            int64_t tick_ms, cv_run_status status, int max_attempts,
                            int64_t queued_ms, const char *reason, int64_t now_ms) {
    bson_t *doc;

    if (!cv_run_can_move(CV_RUN_NONE, status) || status == CV_RUN_RUNNING || !(doc = bson_new()))
        return NULL;
    BSON_APPEND_UTF8(doc, "_id", run_id);
    BSON_APPEND_UTF8(doc, CV_RUN_F_JOB, job_id);
    BSON_APPEND_UTF8(doc, CV_RUN_F_PROJECT, project_id);
    BSON_APPEND_UTF8(doc, "trigger", "schedule");
    cv_mongo_append_time(doc, "tick_at", tick_ms);
    cv_mongo_append_time(doc, CV_RUN_F_CREATED, tick_ms); /* the run history follows the ticks */
    BSON_APPEND_INT32(doc, CV_RUN_F_ATTEMPT, 1);
    BSON_APPEND_UTF8(doc, CV_RUN_F_STATUS, cv_run_status_name(status));
    if (status == CV_RUN_QUEUED) {
        BSON_APPEND_INT32(doc, "max_attempts", max_attempts);
        cv_mongo_append_time(doc, "queued_at", queued_ms);
    } else {
        BSON_APPEND_UTF8(doc, "reason", reason ? reason : "");
        cv_mongo_append_time(doc, "finished_at", now_ms);
    }
    return doc;
}

cv_err cv_runs_insert_records(cv_mongo *m, const bson_t **records, size_t n, char *errbuf,
                              size_t errlen) {
    bool *dup = calloc(n ? n : 1, sizeof(*dup));
    cv_err err;

    if (!dup)
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    err = cv_mongo_insert_many(m, CV_COLL_RUNS, records, n, dup, errbuf, errlen);
    free(dup);
    return err;
}

cv_err cv_runs_status(cv_mongo *m, const char *run_id, cv_run_status *status, char *errbuf,
                      size_t errlen) {
    bson_t *doc = NULL;
    cv_err err = cv_mongo_find_id(m, CV_COLL_RUNS, run_id, &doc, errbuf, errlen);

    *status = CV_RUN_NONE;
    if (err)
        return err;
    *status = cv_run_status_parse(cv_mongo_doc_str(doc, CV_RUN_F_STATUS));
    bson_destroy(doc);
    return CV_OK;
}

cv_err cv_runs_active_of_job(cv_mongo *m, const char *job_id, char *run_id, size_t len,
                             char *errbuf, size_t errlen) {
    cv_run_status active[CV_RUN_STATUS_COUNT];
    bson_t filter = BSON_INITIALIZER, *list = NULL;
    bson_iter_t it, doc;
    cv_err err;

    BSON_APPEND_UTF8(&filter, CV_RUN_F_JOB, job_id);
    append_in(&filter, CV_RUN_F_STATUS, active, cv_run_active(active, CV_RUN_STATUS_COUNT));
    err = cv_mongo_find(m, CV_COLL_RUNS, &filter, NULL, 1, &list, errbuf, errlen);
    run_id[0] = '\0';
    if (!err && bson_iter_init(&it, list) && bson_iter_next(&it) && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &doc) && bson_iter_find(&doc, "_id") && BSON_ITER_HOLDS_UTF8(&doc))
        snprintf(run_id, len, "%s", bson_iter_utf8(&doc, NULL));
    bson_destroy(list);
    bson_destroy(&filter);
    return err;
}

cv_err cv_runs_request_cancel(cv_mongo *m, const char *run_id, char *errbuf, size_t errlen) {
    cv_run_status active[CV_RUN_STATUS_COUNT];
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    int64_t matched = 0;
    cv_err err;

    BSON_APPEND_UTF8(&filter, "_id", run_id);
    append_in(&filter, CV_RUN_F_STATUS, active, cv_run_active(active, CV_RUN_STATUS_COUNT));
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_BOOL(&set, CV_RUN_F_CANCEL, true);
    cv_mongo_append_time(&set, "cancel_requested_at", cv_time_now_ms());
    bson_append_document_end(&update, &set);
    err = cv_mongo_update(m, CV_COLL_RUNS, &filter, &update, false, &matched, errbuf, errlen);
    if (!err && matched == 0)
        err = cv_err_set(errbuf, errlen, CV_ERR_CONFLICT, "run %s has finished", run_id);
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

bool cv_runs_cancel_requested(cv_mongo *m, const char *run_id) {
    char why[256];
    bson_t *doc = NULL;
    bson_iter_t it;
    bool requested = false;

    if (cv_mongo_find_id(m, CV_COLL_RUNS, run_id, &doc, why, sizeof(why)) == CV_OK &&
        bson_iter_init_find(&it, doc, CV_RUN_F_CANCEL) && BSON_ITER_HOLDS_BOOL(&it))
        requested = bson_iter_bool(&it);
    bson_destroy(doc);
    return requested;
}
