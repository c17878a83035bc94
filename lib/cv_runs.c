/*
 * cv_runs.c - turns result events into MongoDB documents. Times are stored as
 * RFC 3339 text in UTC with milliseconds, which sorts in time order and reads
 * the same in the API as in the database.
 */
#include "cv_runs.h"

#include "cv_time.h"

#include <stdio.h>
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
    if (ev->trigger[0])
        BSON_APPEND_UTF8(&doc, "trigger", ev->trigger);
    if (ev->tick_ms)
        append_time(&doc, "tick_at", ev->tick_ms);
    if (ev->next_attempt_ms)
        append_time(&doc, "next_attempt_at", ev->next_attempt_ms);
    err = cv_mongo_insert(m, CV_COLL_EVENTS, &doc, errbuf, errlen);
    bson_destroy(&doc);
    return err == CV_ERR_CONFLICT ? CV_OK : err;
}

static const char *const final_statuses[] = {"succeeded", "failed",  "cancelled", "timed_out",
                                             "missed",    "skipped", NULL};

bool cv_runs_status_is_final(const char *status) {
    for (const char *const *f = final_statuses; status && *f; f++)
        if (strcmp(status, *f) == 0)
            return true;
    return false;
}

static void append_final_list(bson_t *doc, const char *op) {
    bson_t list;
    char key[4];
    BSON_APPEND_ARRAY_BEGIN(doc, op, &list);
    for (int i = 0; final_statuses[i]; i++) {
        snprintf(key, sizeof(key), "%d", i);
        BSON_APPEND_UTF8(&list, key, final_statuses[i]);
    }
    bson_append_array_end(doc, &list);
}

/* Filter matching the attempt `attempt` of the run while a worker holds it:
 * events of an attempt that was taken away (its lease expired) match nothing. */
static void held_filter(bson_t *filter, const char *run_id, int attempt) {
    BSON_APPEND_UTF8(filter, "_id", run_id);
    BSON_APPEND_INT32(filter, "attempt", attempt);
    BSON_APPEND_UTF8(filter, "status", "running");
}

/* Where a run came from, as its record shows it. */
static void append_origin(bson_t *doc, const char *trigger, int64_t tick_ms, int max_attempts) {
    if (trigger[0])
        BSON_APPEND_UTF8(doc, "trigger", trigger);
    if (tick_ms)
        append_time(doc, "tick_at", tick_ms);
    if (max_attempts > 0)
        BSON_APPEND_INT32(doc, "max_attempts", max_attempts);
}

static cv_err update_run(cv_mongo *m, const cv_event *ev, int64_t *matched, char *errbuf,
                         size_t errlen) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, on_insert;
    bool queued = strcmp(ev->type, CV_EVENT_RUN_QUEUED) == 0;
    bool started = strcmp(ev->type, CV_EVENT_RUN_STARTED) == 0;
    bool progress = strcmp(ev->type, CV_EVENT_RUN_PROGRESS) == 0;
    bool retrying = strcmp(ev->type, CV_EVENT_RUN_RETRYING) == 0;
    cv_err err;

    if (queued) {
        BSON_APPEND_UTF8(&filter, "_id", ev->run_id);
    } else if (started) {
        /* A start moves the run to its attempt, never back to an earlier one
         * and never out of a final state. */
        bson_t status, or, clause, sub;
        BSON_APPEND_UTF8(&filter, "_id", ev->run_id);
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "status", &status);
        append_final_list(&status, "$nin");
        bson_append_document_end(&filter, &status);
        BSON_APPEND_ARRAY_BEGIN(&filter, "$or", & or);
        BSON_APPEND_DOCUMENT_BEGIN(& or, "0", &clause);
        BSON_APPEND_DOCUMENT_BEGIN(&clause, "attempt", &sub);
        BSON_APPEND_INT32(&sub, "$lte", ev->attempt);
        bson_append_document_end(&clause, &sub);
        bson_append_document_end(& or, &clause);
        BSON_APPEND_DOCUMENT_BEGIN(& or, "1", &clause);
        BSON_APPEND_DOCUMENT_BEGIN(&clause, "attempt", &sub);
        BSON_APPEND_BOOL(&sub, "$exists", false);
        bson_append_document_end(&clause, &sub);
        bson_append_document_end(& or, &clause);
        bson_append_array_end(&filter, & or);
    } else {
        held_filter(&filter, ev->run_id, ev->attempt);
    }

    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    if (queued) {
        append_time(&set, "queued_at", ev->time_ms);
    } else if (started) {
        BSON_APPEND_UTF8(&set, "status", "running");
        append_time(&set, "started_at", ev->time_ms);
        append_opt_utf8(&set, "worker", ev->worker);
        append_counts(&set, ev);
    } else if (progress) {
        append_time(&set, "progress_at", ev->time_ms);
        append_counts(&set, ev);
    } else if (retrying) {
        /* The worker put the next attempt on the retry topic before saying so. */
        BSON_APPEND_UTF8(&set, "status", "retrying");
        append_error(&set, ev);
        append_script(&set, ev);
        append_time(&set, "next_attempt_at", ev->next_attempt_ms);
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

    if (queued || started) {
        /* A run is created by its first record (a message from another
         * system has none before its start). */
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &on_insert);
        if (queued) {
            BSON_APPEND_UTF8(&on_insert, "status", "queued");
            BSON_APPEND_INT32(&on_insert, "attempt", ev->attempt > 0 ? ev->attempt : 1);
        }
        append_time(&on_insert, "created_at", ev->time_ms); /* the run history's order */
        append_opt_utf8(&on_insert, "job_id", ev->job_id);
        append_opt_utf8(&on_insert, "project_id", ev->project_id);
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
    append_time(&doc, "created_at", cv_time_now_ms());
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
    bson_iter_t it;
    bool ours = matched > 0;
    cv_err err;

    if (!ours) {
        if ((err = cv_mongo_find_id(m, CV_COLL_RUNS, ev->run_id, &doc, errbuf, errlen)))
            return err == CV_ERR_NOT_FOUND ? CV_OK : err;
        const char *status = cv_mongo_doc_str(doc, "status");
        ours = bson_iter_init_find(&it, doc, "attempt") && BSON_ITER_HOLDS_INT32(&it) &&
               bson_iter_int32(&it) == ev->attempt && status &&
               strcmp(status, cv_event_status(ev->type)) == 0;
        bson_destroy(doc);
    }
    if (!ours)
        return CV_OK;
    return cv_runs_notify(m, ev->run_id, ev->job_id, ev->project_id, cv_event_status(ev->type),
                          ev->attempt, ev->error_code, ev->error_message, errbuf, errlen);
}

/* Appends {key: {op: value}} for a string value. */
static void append_op(bson_t *doc, const char *key, const char *op, const char *value) {
    bson_t sub;
    BSON_APPEND_DOCUMENT_BEGIN(doc, key, &sub);
    BSON_APPEND_UTF8(&sub, op, value);
    bson_append_document_end(doc, &sub);
}

/* After a claim that did not take: is the attempt held by a live lease (the
 * claimant should wait) or over (the message is a duplicate)? */
static cv_claim claim_refused(cv_mongo *m, const cv_job *job, char *holder, size_t holder_len) {
    bson_t *doc = NULL;
    bson_iter_t it;
    char why[256], now[CV_TIME_RFC3339_LEN];
    const char *state, *expires, *worker;
    cv_claim out = CV_CLAIM_OVER;

    if (cv_mongo_find_id(m, CV_COLL_LEASES, job->run_id, &doc, why, sizeof(why)) != CV_OK)
        return CV_CLAIM_OVER;
    cv_time_format(cv_time_now_ms(), now, sizeof(now));
    state = cv_mongo_doc_str(doc, "state");
    expires = cv_mongo_doc_str(doc, "expires_at");
    worker = cv_mongo_doc_str(doc, "worker");
    if (state && strcmp(state, "held") == 0 && expires &&
        bson_iter_init_find(&it, doc, "attempt") && BSON_ITER_HOLDS_INT32(&it) &&
        bson_iter_int32(&it) == job->attempt && strcmp(expires, now) >= 0) {
        snprintf(holder, holder_len, "%s (lease until %s)", worker ? worker : "?", expires);
        out = CV_CLAIM_HELD;
    }
    bson_destroy(doc);
    return out;
}

cv_err cv_runs_claim(cv_mongo *m, const cv_job *job, const char *message, const char *worker,
                     int lease_seconds, cv_claim *claim, char *holder, size_t holder_len,
                     char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, or, clause, sub, set, on_insert;
    char now[CV_TIME_RFC3339_LEN];
    int64_t now_ms = cv_time_now_ms();
    cv_err err;

    *claim = CV_CLAIM_OVER;
    holder[0] = '\0';
    cv_time_format(now_ms, now, sizeof(now));
    BSON_APPEND_UTF8(&filter, "_id", job->run_id);
    /* An earlier attempt of a run that did not end (it ended in a retry, or
     * its worker died after sending the retry), or this attempt held by a
     * worker whose lease ran out (a redelivery after that worker died). */
    BSON_APPEND_ARRAY_BEGIN(&filter, "$or", & or);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "0", &clause);
    BSON_APPEND_DOCUMENT_BEGIN(&clause, "attempt", &sub);
    BSON_APPEND_INT32(&sub, "$lt", job->attempt);
    bson_append_document_end(&clause, &sub);
    append_op(&clause, "state", "$ne", "done");
    bson_append_document_end(& or, &clause);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "1", &clause);
    BSON_APPEND_INT32(&clause, "attempt", job->attempt);
    BSON_APPEND_UTF8(&clause, "state", "held");
    append_op(&clause, "expires_at", "$lt", now);
    bson_append_document_end(& or, &clause);
    bson_append_array_end(&filter, & or);

    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "state", "held");
    BSON_APPEND_INT32(&set, "attempt", job->attempt);
    BSON_APPEND_UTF8(&set, "worker", worker);
    append_time(&set, "claimed_at", now_ms);
    append_time(&set, "heartbeat_at", now_ms);
    append_time(&set, "expires_at", now_ms + (int64_t)lease_seconds * 1000);
    BSON_APPEND_UTF8(&set, "message", message); /* what an expired lease is retried with */
    bson_append_document_end(&update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$setOnInsert", &on_insert);
    BSON_APPEND_UTF8(&on_insert, "job_id", job->job_id);
    BSON_APPEND_UTF8(&on_insert, "project_id", job->project_id);
    BSON_APPEND_INT32(&on_insert, "max_attempts", job->max_attempts > 0 ? job->max_attempts : 1);
    BSON_APPEND_INT32(&on_insert, "backoff_seconds",
                      job->backoff_seconds > 0 ? job->backoff_seconds : 60);
    bson_append_document_end(&update, &on_insert);

    /* The first attempt inserts the lease; a lease the filter excluded (the
     * run ended, or its attempt is held or later) makes that insert collide. */
    err = cv_mongo_update(m, CV_COLL_LEASES, &filter, &update, true, NULL, errbuf, errlen);
    if (err == CV_ERR_CONFLICT) {
        err = CV_OK;
        *claim = claim_refused(m, job, holder, holder_len);
    } else if (!err) {
        *claim = CV_CLAIM_TAKEN;
    }
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

/* Filter of the lease `worker` holds on attempt `attempt` of the run. */
static void lease_filter(bson_t *filter, const char *run_id, int attempt, const char *worker) {
    BSON_APPEND_UTF8(filter, "_id", run_id);
    BSON_APPEND_INT32(filter, "attempt", attempt);
    BSON_APPEND_UTF8(filter, "state", "held");
    BSON_APPEND_UTF8(filter, "worker", worker);
}

cv_err cv_runs_renew(cv_mongo *m, const char *run_id, int attempt, const char *worker,
                     int64_t lease_ms, bool *held, char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    int64_t now = cv_time_now_ms(), matched = 0;
    cv_err err;

    lease_filter(&filter, run_id, attempt, worker);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    append_time(&set, "heartbeat_at", now);
    append_time(&set, "expires_at", now + lease_ms);
    bson_append_document_end(&update, &set);
    err = cv_mongo_update(m, CV_COLL_LEASES, &filter, &update, false, &matched, errbuf, errlen);
    *held = !err && matched > 0;
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

cv_err cv_runs_release(cv_mongo *m, const char *run_id, int attempt, const char *worker,
                       int64_t retry_at_ms, char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    cv_err err;

    lease_filter(&filter, run_id, attempt, worker);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "state", retry_at_ms ? "retrying" : "done");
    if (retry_at_ms) {
        append_time(&set, "next_attempt_at", retry_at_ms);
        BSON_APPEND_BOOL(&set, "retry_sent", true);
    }
    append_time(&set, "released_at", cv_time_now_ms());
    bson_append_document_end(&update, &set);
    err = cv_mongo_update(m, CV_COLL_LEASES, &filter, &update, false, NULL, errbuf, errlen);
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
    int64_t matched = 0;
    cv_err err = store_event(m, ev, errbuf, errlen);
    /* A rejected message may carry the id of a real run (a garbled or forged
     * copy): it is on record as an event but changes no run. */
    if (err || !ev->run_id[0] || strcmp(ev->type, CV_EVENT_JOB_REJECTED) == 0 ||
        strcmp(ev->type, CV_EVENT_RUN_LOG) == 0) /* a log line is on record, nothing more */
        return err;
    if ((err = update_run(m, ev, &matched, errbuf, errlen)))
        return err;
    if ((strcmp(ev->type, CV_EVENT_RUN_FAILED) == 0 ||
         strcmp(ev->type, CV_EVENT_RUN_TIMED_OUT) == 0) &&
        (err = notify_failure(m, ev, matched, errbuf, errlen)))
        return err;
    if (ev->watermark[0] && ev->job_id[0] && strcmp(ev->type, CV_EVENT_RUN_SUCCEEDED) == 0)
        err = update_job_watermark(m, ev, errbuf, errlen);
    return err;
}
