/*
 * cv_runs.c - the run record in MongoDB: turns result events into documents,
 * writes the scheduler's records of ticks, and answers the questions the
 * other services ask of a run. Filters on status are built from cv_run's
 * table of moves. Times are stored as RFC 3339 text in UTC with milliseconds,
 * which sorts in time order and reads the same in the API as in the database.
 */
#include "cv_runs.h"

#include "cv_bucket.h"
#include "cv_runfold.h"
#include "cv_retain.h"
#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

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
    if (ev->rows_expected >= 0)
        BSON_APPEND_INT64(doc, "rows_expected", ev->rows_expected);
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

/* The stored form of an event (_id = event id) into doc (initialised). */
static void event_doc(const cv_event *ev, bson_t *doc_out) {
    bson_t *doc = doc_out;

    BSON_APPEND_UTF8(doc, "_id", ev->event_id);
    BSON_APPEND_UTF8(doc, "type", ev->type);
    cv_mongo_append_time(doc, "time", ev->time_ms);
    cv_retain_append_day(doc, ev->time_ms);
    append_opt_utf8(doc, "run_id", ev->run_id);
    append_opt_utf8(doc, "job_id", ev->job_id);
    append_opt_utf8(doc, "project_id", ev->project_id);
    append_opt_utf8(doc, "worker", ev->worker);
    append_counts(doc, ev);
    if (ev->error_code[0])
        append_error(doc, ev);
    append_script(doc, ev);
    if (ev->trigger[0])
        BSON_APPEND_UTF8(doc, "trigger", ev->trigger);
    if (ev->tick_ms)
        cv_mongo_append_time(doc, "tick_at", ev->tick_ms);
    if (ev->next_attempt_ms)
        cv_mongo_append_time(doc, "next_attempt_at", ev->next_attempt_ms);
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

/* Where a run and its pieces are filed: the run history's order (created_ms), where
 * its retention starts, its job and project and the buckets of the job's history. */
static void append_filed(bson_t *doc, const cv_event *ev, int64_t created_ms) {
    cv_mongo_append_time(doc, CV_RUN_F_CREATED, created_ms);
    cv_retain_append_day(doc, created_ms);
    append_opt_utf8(doc, CV_RUN_F_JOB, ev->job_id);
    append_opt_utf8(doc, CV_RUN_F_PROJECT, ev->project_id);
    if (ev->job_id[0]) /* the buckets of the job's run history (cv_bucket.h) */
        cv_bucket_append(doc, ev->job_id, created_ms);
}

/* Where an event's run came from. A message that does not say came from another system. */
static void append_event_origin(bson_t *doc, const cv_event *ev) {
    append_origin(doc, ev->trigger[0] ? ev->trigger : "external", ev->tick_ms, ev->max_attempts);
}

/* What every run record starts with: where it is filed and where it came from. */
static void append_created(bson_t *doc, const cv_event *ev, int64_t created_ms) {
    append_filed(doc, ev, created_ms);
    append_event_origin(doc, ev);
}

bson_t *cv_runs_queued_record(const cv_event *ev) {
    bson_t *doc = bson_new();

    if (!doc)
        return NULL;
    BSON_APPEND_UTF8(doc, "_id", ev->run_id);
    BSON_APPEND_UTF8(doc, CV_RUNFOLD_RUN, ev->run_id);
    append_created(doc, ev, ev->time_ms);
    BSON_APPEND_INT32(doc, CV_RUN_F_ATTEMPT, ev->attempt > 0 ? ev->attempt : 1);
    BSON_APPEND_UTF8(doc, CV_RUN_F_STATUS, cv_run_status_name(CV_RUN_QUEUED));
    cv_mongo_append_time(doc, "queued_at", ev->time_ms);
    return doc;
}

cv_err cv_runs_forget_queued(cv_mongo *m, const char *run_id, char *errbuf, size_t errlen) {
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(run_id), CV_RUN_F_STATUS,
                              BCON_UTF8(cv_run_status_name(CV_RUN_QUEUED)));
    const bson_t *filters[] = {filter};
    cv_err err = cv_mongo_delete_each(m, CV_COLL_RUNS, filters, 1, NULL, errbuf, errlen);
    bson_destroy(filter);
    return err;
}

/* Records that a run failed for good, once per run (_id = run id): the
 * project's notification. */
static cv_err notify(cv_mongo *m, const char *run_id, const char *job_id, const char *project_id,
                     const char *status, int attempts, const char *code, const char *message,
                     char *errbuf, size_t errlen) {
    bson_t doc = BSON_INITIALIZER, error;
    int64_t now_ms = cv_time_now_ms();
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
    cv_mongo_append_time(&doc, "created_at", now_ms);
    if (project_id && project_id[0]) /* the buckets of the project's list (cv_bucket.h) */
        cv_bucket_append(&doc, project_id, now_ms);
    cv_retain_append_day(&doc, now_ms);
    BSON_APPEND_BOOL(&doc, "read", false);
    err = cv_mongo_insert(m, CV_COLL_NOTIFICATIONS, &doc, errbuf, errlen);
    bson_destroy(&doc);
    return err == CV_ERR_CONFLICT ? CV_OK : err;
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

/* True for the events that change a run record. A rejected message may
 * carry the id of a real run (a garbled or forged copy): it is on record as
 * an event but changes no run; a log line is on record, nothing more. A
 * run.queued follows the record its publisher wrote whole before it (the API,
 * the scheduler), so a late or replayed one has nothing to add. */
static bool moves_run(const cv_event *ev) {
    return ev->run_id[0] && strcmp(ev->type, CV_EVENT_JOB_REJECTED) != 0 &&
           strcmp(ev->type, CV_EVENT_RUN_LOG) != 0 && strcmp(ev->type, CV_EVENT_RUN_QUEUED) != 0;
}

/* ---- the collector's batches: insert-only (cv_runfold.h) ------------------- */

/* The document that says a run is still going (cv_runs_active_of_job(), the lease
 * sweep): the collection holds only such runs, so reading it whole stays cheap. */
static void active_doc(bson_t *doc, const char *run_id, const char *job_id) {
    BSON_APPEND_UTF8(doc, "_id", run_id);
    if (job_id)
        BSON_APPEND_UTF8(doc, CV_RUN_F_JOB, job_id);
    cv_mongo_append_time(doc, "since", cv_time_now_ms());
}

/* Where a run's pieces are filed: at its record's created_at (a schedule's run at its
 * tick, any other at its queued_at), so a look-up by bucket finds them together. An
 * event of an older worker, without queued_at, files its piece at its own time. */
static int64_t run_created_ms(const cv_event *ev) {
    if (ev->tick_ms)
        return ev->tick_ms;
    return ev->queued_ms ? ev->queued_ms : ev->time_ms;
}

/* What the event `ev` (moving the run to `to`) changes in the run: its piece's `set`. */
static void append_set(bson_t *set, const cv_event *ev, cv_run_status to) {
    BSON_APPEND_UTF8(set, CV_RUN_F_STATUS, cv_run_status_name(to));
    if (to == CV_RUN_RUNNING) {
        cv_mongo_append_time(set, "started_at", ev->time_ms);
        append_opt_utf8(set, "worker", ev->worker);
        append_counts(set, ev);
    } else if (to == CV_RUN_RETRYING) {
        /* The worker put the next attempt on the retry topic before saying so. */
        append_error(set, ev);
        append_script(set, ev);
        cv_mongo_append_time(set, "next_attempt_at", ev->next_attempt_ms);
    } else {
        cv_mongo_append_time(set, "finished_at", ev->time_ms);
        append_opt_utf8(set, "worker", ev->worker);
        append_counts(set, ev);
        append_error(set, ev);
        append_script(set, ev);
        if (ev->watermark[0])
            BSON_APPEND_UTF8(set, "watermark", ev->watermark);
    }
}

/* The piece of the run an event that moves it to `to` (a start, a retry, an end) makes. */
static void piece_doc(const cv_event *ev, cv_run_status to, bson_t *doc) {
    bool ended = to != CV_RUN_RUNNING;
    char id[CV_RUNFOLD_ID_MAX];
    int64_t created = run_created_ms(ev);
    bson_t sub;

    cv_runfold_piece_id(ev->run_id, ev->attempt, ended, id);
    BSON_APPEND_UTF8(doc, "_id", id);
    BSON_APPEND_UTF8(doc, CV_RUNFOLD_RUN, ev->run_id);
    BSON_APPEND_UTF8(doc, CV_RUNFOLD_PIECE, ended ? "ended" : "started");
    BSON_APPEND_INT32(doc, CV_RUN_F_ATTEMPT, ev->attempt);
    BSON_APPEND_UTF8(doc, "event_id", ev->event_id);
    append_filed(doc, ev, created);
    BSON_APPEND_DOCUMENT_BEGIN(doc, CV_RUNFOLD_SET, &sub);
    append_set(&sub, ev, to);
    bson_append_document_end(doc, &sub);
    if (ended)
        return;
    /* Every start is one attempt of the run's `attempts`. */
    BSON_APPEND_DOCUMENT_BEGIN(doc, CV_RUNFOLD_ENTRY, &sub);
    BSON_APPEND_UTF8(&sub, "event_id", ev->event_id);
    append_opt_utf8(&sub, "worker", ev->worker);
    cv_mongo_append_time(&sub, "started_at", ev->time_ms);
    bson_append_document_end(doc, &sub);
    /* A message from another system has no record: this is what it starts as, with where
     * the piece is filed (CV_RUNFOLD_FILED). */
    BSON_APPEND_DOCUMENT_BEGIN(doc, CV_RUNFOLD_CREATED, &sub);
    append_event_origin(&sub, ev);
    BSON_APPEND_INT32(&sub, CV_RUN_F_ATTEMPT, ev->attempt);
    bson_append_document_end(doc, &sub);
}

/* A run.progress: the counts so far, on its attempt's start (only long jobs report any). */
static cv_err apply_progress(cv_mongo *m, const cv_event *ev, char *errbuf, size_t errlen) {
    char id[CV_RUNFOLD_ID_MAX], key[64];
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, counts = BSON_INITIALIZER;
    bson_iter_t it;
    cv_err err;

    cv_runfold_piece_id(ev->run_id, ev->attempt, false, id);
    BSON_APPEND_UTF8(&filter, "_id", id);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    snprintf(key, sizeof(key), "%s.progress_at", CV_RUNFOLD_SET);
    cv_mongo_append_time(&set, key, ev->time_ms);
    append_counts(&counts, ev);
    if (bson_iter_init(&it, &counts))
        while (bson_iter_next(&it)) {
            snprintf(key, sizeof(key), "%s.%s", CV_RUNFOLD_SET, bson_iter_key(&it));
            bson_append_iter(&set, key, -1, &it);
        }
    bson_append_document_end(&update, &set);
    err = cv_mongo_update(m, CV_COLL_RUNS, &filter, &update, false, NULL, errbuf, errlen);
    bson_destroy(&filter);
    bson_destroy(&update);
    bson_destroy(&counts);
    return err;
}

/* After an end was stored: the project's notification of a failure, the job's watermark
 * after a success, each only when that end is the one the run took (a replay finds the
 * same and writes the same notification id again). */
static cv_err after_end(cv_mongo *m, const cv_event *ev, cv_run_status to, char *errbuf,
                        size_t errlen) {
    bool failed = to == CV_RUN_FAILED || to == CV_RUN_TIMED_OUT;
    bson_t *run = NULL;
    cv_err err;

    if (!failed && !(to == CV_RUN_SUCCEEDED && ev->watermark[0] && ev->job_id[0]))
        return CV_OK;
    if ((err = cv_runs_get(m, ev->run_id, &run, errbuf, errlen)))
        return err == CV_ERR_NOT_FOUND ? CV_OK : err;
    if (cv_mongo_doc_int(run, CV_RUN_F_ATTEMPT, -1) == ev->attempt &&
        cv_run_status_parse(cv_mongo_doc_str(run, CV_RUN_F_STATUS)) == to)
        err = failed ? notify(m, ev->run_id, ev->job_id, ev->project_id, cv_run_status_name(to),
                              ev->attempt, ev->error_code, ev->error_message, errbuf, errlen)
                     : update_job_watermark(m, ev, errbuf, errlen);
    bson_destroy(run);
    return err;
}

/* Appends a string to an array document being built. */
static void push_str(bson_t *array, size_t *n, const char *value) {
    char idx[24];
    snprintf(idx, sizeof(idx), "%zu", (*n)++);
    BSON_APPEND_UTF8(array, idx, value);
}

/* Deletes the documents of coll whose _id is in `in` (an {"$in": [...]} document), if any. */
static cv_err delete_in(cv_mongo *m, const char *coll, const bson_t *in, size_t n, char *errbuf,
                        size_t errlen) {
    bson_t filter = BSON_INITIALIZER;
    cv_err err;

    if (n == 0)
        return CV_OK;
    BSON_APPEND_DOCUMENT(&filter, "_id", in);
    err = cv_mongo_delete_many(m, coll, &filter, NULL, errbuf, errlen);
    bson_destroy(&filter);
    return err;
}

/* Which runs of the batch start or stop going. A run whose first start and its
 * end are both in the batch (most small jobs) is never in `active_runs`; a
 * schedule's run is in `queued_runs` from its record (the scheduler's), so its
 * end always removes it there, and from `active_runs` too, where an earlier
 * version put it. dup[i] says that event i's piece was stored before. An end
 * skips the delete only when the batch holds the run's first start, stored
 * now: a start of an earlier attempt, or one delivered before (a replay, a
 * batch tried again), may have put the run in `active_runs` in an earlier
 * batch. */
static cv_err apply_active(cv_mongo *m, const cv_event *const *pev, const cv_run_status *to,
                           const bool *dup, size_t n, char *errbuf, size_t errlen) {
    bson_t *docs = calloc(n ? n : 1, sizeof(*docs)), gone = BSON_INITIALIZER, list;
    bson_t queued = BSON_INITIALIZER, qlist;
    const bson_t **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    size_t nins = 0, ngone = 0, nqueued = 0;
    cv_err err = CV_OK;

    if (!docs || !ptrs) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    BSON_APPEND_ARRAY_BEGIN(&gone, "$in", &list);
    BSON_APPEND_ARRAY_BEGIN(&queued, "$in", &qlist);
    for (size_t i = 0; i < n; i++) {
        bool start = to[i] == CV_RUN_RUNNING, final = cv_run_is_final(to[i]), other = false;
        bool scheduled = strcmp(pev[i]->trigger, "schedule") == 0;
        if (!start && !final)
            continue;
        for (size_t j = 0; j < n && !other; j++)
            other = j != i && strcmp(pev[j]->run_id, pev[i]->run_id) == 0 &&
                    (start ? cv_run_is_final(to[j])
                           : to[j] == CV_RUN_RUNNING && !dup[j] && pev[j]->attempt == 1);
        if (start && !other) {
            bson_init(&docs[nins]);
            active_doc(&docs[nins], pev[i]->run_id, pev[i]->job_id[0] ? pev[i]->job_id : NULL);
            ptrs[nins] = &docs[nins];
            nins++;
        } else if (final) {
            if (!other || scheduled)
                push_str(&list, &ngone, pev[i]->run_id);
            if (scheduled)
                push_str(&qlist, &nqueued, pev[i]->run_id);
        }
    }
    bson_append_array_end(&gone, &list);
    bson_append_array_end(&queued, &qlist);
    if (nins)
        err = cv_mongo_insert_many(m, CV_COLL_ACTIVE, ptrs, nins, NULL, errbuf, errlen);
    if (!err)
        err = delete_in(m, CV_COLL_ACTIVE, &gone, ngone, errbuf, errlen);
    if (!err)
        err = delete_in(m, CV_COLL_QUEUED, &queued, nqueued, errbuf, errlen);
out:
    for (size_t i = 0; i < nins; i++)
        bson_destroy(&docs[i]);
    bson_destroy(&gone);
    bson_destroy(&queued);
    free(docs);
    free(ptrs);
    return err;
}

/* An attempt's end stored before from another event (dup): when the stored one is
 * not this event (a replay), this is a second report of the end, which the run's
 * record does not take; its event is marked with the end that counts, and *late is
 * set. A worker cut off from the network reports this way, after another worker
 * took the attempt over (tests/system/test_hosts.py). */
static cv_err mark_late_end(cv_mongo *m, const cv_event *ev, bool *late, char *errbuf,
                            size_t errlen) {
    char id[CV_RUNFOLD_ID_MAX];
    bson_t *piece = NULL, filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    const char *counted;
    cv_err err;

    *late = false;
    cv_runfold_piece_id(ev->run_id, ev->attempt, true, id);
    if ((err = cv_mongo_find_id(m, CV_COLL_RUNS, id, &piece, errbuf, errlen)))
        return err == CV_ERR_NOT_FOUND ? CV_OK : err;
    counted = cv_mongo_doc_str(piece, "event_id");
    if (counted && strcmp(counted, ev->event_id) != 0) {
        *late = true;
        BSON_APPEND_UTF8(&filter, "_id", ev->event_id);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, CV_RUN_F_SUPERSEDED_BY, counted);
        bson_append_document_end(&update, &set);
        err = cv_mongo_update(m, CV_COLL_EVENTS, &filter, &update, false, NULL, errbuf, errlen);
    }
    bson_destroy(piece);
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

/* The batch's pieces: one per start, retry and end, the first of each _id in the batch
 * (a piece already stored is a duplicate, which is success), into pieces[]; pev[] and
 * to[] say which event made each and where it moves the run. An end of an attempt that
 * an earlier event of the batch ended goes into later[] (*nlater of them). */
static size_t make_pieces(const cv_event *evs, size_t n, bson_t *pieces, const cv_event **pev,
                          cv_run_status *to, const cv_event **later, size_t *nlater) {
    size_t np = 0;

    for (size_t i = 0; i < n; i++) {
        cv_run_status t = cv_run_event_target(evs[i].type);
        bool again = false;
        if (!moves_run(&evs[i]) || t == CV_RUN_NONE)
            continue;
        for (size_t j = 0; j < np && !again; j++)
            again = pev[j]->attempt == evs[i].attempt &&
                    (to[j] == CV_RUN_RUNNING) == (t == CV_RUN_RUNNING) &&
                    strcmp(pev[j]->run_id, evs[i].run_id) == 0;
        if (again && t != CV_RUN_RUNNING)
            later[(*nlater)++] = &evs[i];
        if (again)
            continue; /* the attempt's first end wins, here as in the store */
        bson_init(&pieces[np]);
        piece_doc(&evs[i], t, &pieces[np]);
        pev[np] = &evs[i];
        to[np++] = t;
    }
    return np;
}

/* True when another event of the batch makes the same attempt's progress moot: a later
 * progress report, or the attempt's end (whose piece holds the final counts). */
static bool progress_superseded(const cv_event *evs, size_t n, size_t i) {
    for (size_t j = 0; j < n; j++) {
        cv_run_status t = cv_run_event_target(evs[j].type);
        bool later = j > i && !strcmp(evs[j].type, CV_EVENT_RUN_PROGRESS);
        bool end = t != CV_RUN_NONE && t != CV_RUN_RUNNING && t != CV_RUN_QUEUED;
        if ((later || end) && evs[j].attempt == evs[i].attempt &&
            !strcmp(evs[j].run_id, evs[i].run_id))
            return true;
    }
    return false;
}

cv_err cv_runs_store_events(cv_mongo *m, const cv_event *evs, size_t n, char *errbuf,
                            size_t errlen) {
    bson_t *docs = calloc(n ? n : 1, sizeof(*docs));
    const bson_t **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    size_t ndocs = 0;
    cv_err err = CV_OK;

    if (n == 0)
        goto out;
    if (!docs || !ptrs) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* One unordered insert: a replayed event is a duplicate _id, which is success. */
    for (; ndocs < n; ndocs++) {
        bson_init(&docs[ndocs]);
        event_doc(&evs[ndocs], &docs[ndocs]);
        ptrs[ndocs] = &docs[ndocs];
    }
    err = cv_mongo_insert_many(m, CV_COLL_EVENTS, ptrs, n, NULL, errbuf, errlen);
out:
    for (size_t i = 0; i < ndocs; i++)
        bson_destroy(&docs[i]);
    free(docs);
    free(ptrs);
    return err;
}

cv_err cv_runs_apply_events(cv_mongo *m, const cv_event *evs, size_t n, char *errbuf,
                            size_t errlen) {
    bson_t *pieces = calloc(n ? n : 1, sizeof(*pieces));
    const bson_t **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    const cv_event **pev = calloc(n ? n : 1, sizeof(*pev));
    cv_run_status *to = calloc(n ? n : 1, sizeof(*to));
    bool *dup = calloc(n ? n : 1, sizeof(*dup));
    const cv_event **later = calloc(n ? n : 1, sizeof(*later));
    size_t np = 0, nlater = 0;
    cv_err err = CV_OK;

    if (n == 0)
        goto out;
    if (!pieces || !ptrs || !pev || !to || !dup || !later) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* The runs' pieces, in one unordered insert. */
    np = make_pieces(evs, n, pieces, pev, to, later, &nlater);
    for (size_t i = 0; i < np; i++)
        ptrs[i] = &pieces[i];
    if (np && (err = cv_mongo_insert_many(m, CV_COLL_RUNS, ptrs, np, dup, errbuf, errlen)))
        goto out;
    for (size_t i = 0; !err && i < n; i++)
        if (moves_run(&evs[i]) && !strcmp(evs[i].type, CV_EVENT_RUN_PROGRESS) &&
            !progress_superseded(evs, n, i))
            err = apply_progress(m, &evs[i], errbuf, errlen);
    if (!err)
        err = apply_active(m, pev, to, dup, np, errbuf, errlen);
    for (size_t i = 0; !err && i < np; i++) {
        bool late = false;
        if (dup[i] && to[i] != CV_RUN_RUNNING &&
            (err = mark_late_end(m, pev[i], &late, errbuf, errlen)))
            break;
        if (!late && cv_run_is_final(to[i]))
            err = after_end(m, pev[i], to[i], errbuf, errlen);
    }
    for (size_t i = 0; !err && i < nlater; i++) {
        bool late;
        err = mark_late_end(m, later[i], &late, errbuf, errlen);
    }
out:
    for (size_t i = 0; i < np; i++)
        bson_destroy(&pieces[i]);
    free(pieces);
    free(ptrs);
    free(pev);
    free(to);
    free(dup);
    free(later);
    return err;
}

bson_t *cv_runs_tick_record(const char *run_id, const char *job_id, const char *project_id,
                            int64_t tick_ms, cv_run_status status, int max_attempts,
                            int64_t queued_ms, const char *reason, int64_t now_ms) {
    bson_t *doc;

    if (!cv_run_can_move(CV_RUN_NONE, status) || status == CV_RUN_RUNNING || !(doc = bson_new()))
        return NULL;
    BSON_APPEND_UTF8(doc, "_id", run_id);
    BSON_APPEND_UTF8(doc, CV_RUNFOLD_RUN, run_id);
    BSON_APPEND_UTF8(doc, CV_RUN_F_JOB, job_id);
    BSON_APPEND_UTF8(doc, CV_RUN_F_PROJECT, project_id);
    BSON_APPEND_UTF8(doc, "trigger", "schedule");
    cv_mongo_append_time(doc, "tick_at", tick_ms);
    cv_mongo_append_time(doc, CV_RUN_F_CREATED, tick_ms); /* the run history follows the ticks */
    cv_bucket_append(doc, job_id, tick_ms);
    cv_retain_append_day(doc, tick_ms);
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
    bson_t *active = calloc(n ? n : 1, sizeof(*active));
    const bson_t **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    size_t nactive = 0;
    cv_err err;

    if (!active || !ptrs) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* A queued run of a schedule is going from now on (cv_runs_active_of_job()). */
    for (size_t i = 0; i < n; i++) {
        const char *status = cv_mongo_doc_str(records[i], CV_RUN_F_STATUS);
        if (!status || strcmp(status, cv_run_status_name(CV_RUN_QUEUED)) != 0)
            continue;
        bson_init(&active[nactive]);
        active_doc(&active[nactive], cv_mongo_doc_str(records[i], "_id"),
                   cv_mongo_doc_str(records[i], CV_RUN_F_JOB));
        ptrs[nactive] = &active[nactive];
        nactive++;
    }
    if (!(err = cv_mongo_insert_many(m, CV_COLL_RUNS, records, n, NULL, errbuf, errlen)) && nactive)
        err = cv_mongo_insert_many(m, CV_COLL_QUEUED, ptrs, nactive, NULL, errbuf, errlen);
out:
    for (size_t i = 0; i < nactive; i++)
        bson_destroy(&active[i]);
    free(active);
    free(ptrs);
    return err;
}

/* ---- reading a run ------------------------------------------------------- */

cv_err cv_runs_get(cv_mongo *m, const char *run_id, bson_t **out, char *errbuf, size_t errlen) {
    bson_t *filter = BCON_NEW(CV_RUNFOLD_RUN, BCON_UTF8(run_id)), *found = NULL;
    bool record = false;
    bson_iter_t it;
    cv_err err;

    *out = NULL;
    if ((err = cv_mongo_find(m, CV_COLL_RUNS, filter, NULL, 0, &found, errbuf, errlen)))
        goto out;
    for (bool more = bson_iter_init(&it, found); more && !record && bson_iter_next(&it);) {
        bson_iter_t id;
        record = BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &id) &&
                 bson_iter_find(&id, "_id") && BSON_ITER_HOLDS_UTF8(&id) &&
                 strcmp(bson_iter_utf8(&id, NULL), run_id) == 0;
    }
    /* A record an earlier version wrote has no run_id: it is found by _id. */
    if (!record) {
        bson_t *one = NULL;
        char key[24];
        err = cv_mongo_find_id(m, CV_COLL_RUNS, run_id, &one, errbuf, errlen);
        if (err && err != CV_ERR_NOT_FOUND)
            goto out;
        err = CV_OK;
        snprintf(key, sizeof(key), "%u", bson_count_keys(found));
        if (one)
            BSON_APPEND_DOCUMENT(found, key, one);
        bson_destroy(one);
    }
    if (!(*out = cv_runfold_array(run_id, found)))
        err = cv_err_set(errbuf, errlen, CV_ERR_NOT_FOUND, "no run %s", run_id);
out:
    bson_destroy(found);
    bson_destroy(filter);
    return err;
}

cv_err cv_runs_status(cv_mongo *m, const char *run_id, cv_run_status *status, char *errbuf,
                      size_t errlen) {
    bson_t *doc = NULL;
    cv_err err = cv_runs_get(m, run_id, &doc, errbuf, errlen);

    *status = CV_RUN_NONE;
    if (err)
        return err;
    *status = cv_run_status_parse(cv_mongo_doc_str(doc, CV_RUN_F_STATUS));
    bson_destroy(doc);
    return CV_OK;
}

cv_err cv_runs_attempt_over(cv_mongo *m, const char *run_id, int attempt, bool *over, char *errbuf,
                            size_t errlen) {
    bson_t *doc = NULL;
    cv_run_status status;
    int64_t current;
    cv_err err = cv_runs_get(m, run_id, &doc, errbuf, errlen);

    *over = false;
    if (err == CV_ERR_NOT_FOUND)
        return CV_OK;
    if (err)
        return err;
    status = cv_run_status_parse(cv_mongo_doc_str(doc, CV_RUN_F_STATUS));
    current = cv_mongo_doc_int(doc, CV_RUN_F_ATTEMPT, 0);
    *over = cv_run_is_final(status) || current > attempt ||
            (current == attempt && status == CV_RUN_RETRYING);
    bson_destroy(doc);
    return CV_OK;
}

cv_err cv_runs_find_running(cv_mongo *m, const char *after, int64_t limit, bson_t **out,
                            char *errbuf, size_t errlen) {
    bson_t *filter = bson_new(), *sort = BCON_NEW("_id", BCON_INT32(1));
    bson_t gt;
    cv_err err;

    if (after && after[0]) {
        BSON_APPEND_DOCUMENT_BEGIN(filter, "_id", &gt);
        BSON_APPEND_UTF8(&gt, "$gt", after);
        bson_append_document_end(filter, &gt);
    }
    err = cv_mongo_find(m, CV_COLL_ACTIVE, filter, sort, limit, out, errbuf, errlen);
    bson_destroy(filter);
    bson_destroy(sort);
    return err;
}

cv_err cv_runs_forget_active(cv_mongo *m, const char *run_id, char *errbuf, size_t errlen) {
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(run_id));
    const bson_t *filters[] = {filter};
    cv_err err = cv_mongo_delete_each(m, CV_COLL_ACTIVE, filters, 1, NULL, errbuf, errlen);
    if (!err)
        err = cv_mongo_delete_each(m, CV_COLL_QUEUED, filters, 1, NULL, errbuf, errlen);
    bson_destroy(filter);
    return err;
}

/* The first run of job_id in coll into run_id ("" when none). */
static cv_err first_of_job(cv_mongo *m, const char *coll, const char *job_id, char *run_id,
                           size_t len, char *errbuf, size_t errlen) {
    bson_t *filter = BCON_NEW(CV_RUN_F_JOB, BCON_UTF8(job_id)), *list = NULL;
    bson_iter_t it, doc;
    cv_err err = cv_mongo_find(m, coll, filter, NULL, 1, &list, errbuf, errlen);

    run_id[0] = '\0';
    if (!err && bson_iter_init(&it, list) && bson_iter_next(&it) && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &doc) && bson_iter_find(&doc, "_id") && BSON_ITER_HOLDS_UTF8(&doc))
        snprintf(run_id, len, "%s", bson_iter_utf8(&doc, NULL));
    bson_destroy(list);
    bson_destroy(filter);
    return err;
}

cv_err cv_runs_active_of_job(cv_mongo *m, const char *job_id, char *run_id, size_t len,
                             char *errbuf, size_t errlen) {
    cv_err err = first_of_job(m, CV_COLL_ACTIVE, job_id, run_id, len, errbuf, errlen);
    if (!err && !run_id[0])
        err = first_of_job(m, CV_COLL_QUEUED, job_id, run_id, len, errbuf, errlen);
    return err;
}

cv_err cv_runs_request_cancel(cv_mongo *m, const char *run_id, char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    cv_run_status status;
    cv_err err;

    if ((err = cv_runs_status(m, run_id, &status, errbuf, errlen)))
        return err == CV_ERR_NOT_FOUND
                   ? cv_err_set(errbuf, errlen, CV_ERR_CONFLICT, "run %s has no record", run_id)
                   : err;
    if (cv_run_is_final(status))
        return cv_err_set(errbuf, errlen, CV_ERR_CONFLICT, "run %s has finished", run_id);
    /* On the record; a run another system queued gets one that holds only this. */
    BSON_APPEND_UTF8(&filter, "_id", run_id);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_BOOL(&set, CV_RUN_F_CANCEL, true);
    cv_mongo_append_time(&set, "cancel_requested_at", cv_time_now_ms());
    BSON_APPEND_UTF8(&set, CV_RUNFOLD_RUN, run_id);
    bson_append_document_end(&update, &set);
    err = cv_mongo_update(m, CV_COLL_RUNS, &filter, &update, true, NULL, errbuf, errlen);
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
