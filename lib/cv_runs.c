/*
 * cv_runs.c - the run record in MongoDB: turns result events into documents,
 * writes the scheduler's records of ticks, and answers the questions the
 * other services ask of a run. Filters on status are built from cv_run's
 * table of moves. Times are stored as RFC 3339 text in UTC with milliseconds,
 * which sorts in time order and reads the same in the API as in the database.
 */
#include "cv_runs.h"

#include "cv_bucket.h"
#include "cv_retain.h"
#include "cv_time.h"

#include <pthread.h>
#include <stdatomic.h>
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

/* What every run record starts with: where it came from, the run history's
 * order and where its retention starts. */
static void append_created(bson_t *doc, const cv_event *ev) {
    cv_mongo_append_time(doc, CV_RUN_F_CREATED, ev->time_ms);
    cv_retain_append_day(doc, ev->time_ms);
    append_opt_utf8(doc, CV_RUN_F_JOB, ev->job_id);
    append_opt_utf8(doc, CV_RUN_F_PROJECT, ev->project_id);
    if (ev->job_id[0]) /* the buckets of the job's run history (cv_bucket.h) */
        cv_bucket_append(doc, ev->job_id, ev->time_ms);
    /* A message that does not say where it came from came from another system. */
    append_origin(doc, ev->trigger[0] ? ev->trigger : "external", ev->tick_ms, ev->max_attempts);
}

bson_t *cv_runs_queued_record(const cv_event *ev) {
    bson_t *doc = bson_new();

    if (!doc)
        return NULL;
    BSON_APPEND_UTF8(doc, "_id", ev->run_id);
    append_created(doc, ev);
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

/* What one event (or a merged run of them, see apply_chain()) does to a run
 * record: the filter that says when it applies, and the parts of its update. */
typedef struct run_change {
    bson_t filter;
    bson_t set;       /* $set */
    bson_t add;       /* the attempts entry for $addToSet; empty when none */
    bson_t on_insert; /* $setOnInsert; empty when the change never creates the run */
    bool upsert;
} run_change;

static void change_init(run_change *c) {
    bson_init(&c->filter);
    bson_init(&c->set);
    bson_init(&c->add);
    bson_init(&c->on_insert);
    c->upsert = false;
}

static void change_release(run_change *c) {
    bson_destroy(&c->filter);
    bson_destroy(&c->set);
    bson_destroy(&c->add);
    bson_destroy(&c->on_insert);
}

/* The change of one event that moves a run (started, progress, retrying or a
 * final type; the queued record is written whole before its event, see
 * cv_runs_queued_record()). */
static void change_of(const cv_event *ev, run_change *c) {
    cv_run_status to = cv_run_event_target(ev->type);
    bool started = to == CV_RUN_RUNNING;

    change_init(c);
    if (started) {
        /* A start moves the run to its attempt, never back to an earlier one
         * and never out of a final state. */
        bson_t or, clause, sub;
        BSON_APPEND_UTF8(&c->filter, "_id", ev->run_id);
        append_may_move(&c->filter, CV_RUN_RUNNING);
        BSON_APPEND_ARRAY_BEGIN(&c->filter, "$or", & or);
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
        bson_append_array_end(&c->filter, & or);
    } else {
        held_filter(&c->filter, ev->run_id, ev->attempt, to); /* progress, or the attempt's end */
    }

    if (started) {
        BSON_APPEND_UTF8(&c->set, CV_RUN_F_STATUS, cv_run_status_name(CV_RUN_RUNNING));
        cv_mongo_append_time(&c->set, "started_at", ev->time_ms);
        append_opt_utf8(&c->set, "worker", ev->worker);
        append_counts(&c->set, ev);
    } else if (to == CV_RUN_NONE) { /* run.progress */
        cv_mongo_append_time(&c->set, "progress_at", ev->time_ms);
        append_counts(&c->set, ev);
    } else if (to == CV_RUN_RETRYING) {
        /* The worker put the next attempt on the retry topic before saying so. */
        BSON_APPEND_UTF8(&c->set, CV_RUN_F_STATUS, cv_run_status_name(CV_RUN_RETRYING));
        append_error(&c->set, ev);
        append_script(&c->set, ev);
        cv_mongo_append_time(&c->set, "next_attempt_at", ev->next_attempt_ms);
    } else {
        BSON_APPEND_UTF8(&c->set, CV_RUN_F_STATUS, cv_run_status_name(to));
        cv_mongo_append_time(&c->set, "finished_at", ev->time_ms);
        append_opt_utf8(&c->set, "worker", ev->worker);
        append_counts(&c->set, ev);
        append_error(&c->set, ev);
        append_script(&c->set, ev);
        if (ev->watermark[0])
            BSON_APPEND_UTF8(&c->set, "watermark", ev->watermark);
    }

    if (started) {
        /* Every start is one attempt; the event id keeps a replay from adding it twice. */
        BSON_APPEND_UTF8(&c->add, "event_id", ev->event_id);
        append_opt_utf8(&c->add, "worker", ev->worker);
        cv_mongo_append_time(&c->add, "started_at", ev->time_ms);
    }

    if (started) {
        /* A message from another system has no record before its start. */
        c->upsert = true;
        append_created(&c->on_insert, ev);
    }
}

/* Writes a change: one update of the run, an upsert when it may create it. */
static cv_err change_write(cv_mongo *m, const run_change *c, int64_t *matched, char *errbuf,
                           size_t errlen) {
    bson_t update = BSON_INITIALIZER, add;
    cv_err err;

    BSON_APPEND_DOCUMENT(&update, "$set", &c->set);
    if (!bson_empty(&c->add)) {
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$addToSet", &add);
        BSON_APPEND_DOCUMENT(&add, "attempts", &c->add);
        bson_append_document_end(&update, &add);
    }
    if (!bson_empty(&c->on_insert))
        BSON_APPEND_DOCUMENT(&update, "$setOnInsert", &c->on_insert);
    *matched = 0;
    err = cv_mongo_update(m, CV_COLL_RUNS, &c->filter, &update, c->upsert, matched, errbuf, errlen);
    /* The upsert's insert collides either because another writer inserted the
     * run a moment ago, or because the filter excluded it (a late or replayed
     * event). Once more tells them apart: the first case now matches. */
    if (err == CV_ERR_CONFLICT)
        err = cv_mongo_update(m, CV_COLL_RUNS, &c->filter, &update, c->upsert, matched, errbuf,
                              errlen);
    if (err == CV_ERR_CONFLICT)
        err = CV_OK;
    bson_destroy(&update);
    return err;
}

cv_err cv_runs_notify(cv_mongo *m, const char *run_id, const char *job_id, const char *project_id,
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

/* True for the events that change a run record. A rejected message may
 * carry the id of a real run (a garbled or forged copy): it is on record as
 * an event but changes no run; a log line is on record, nothing more. A
 * run.queued follows the record its publisher wrote whole before it (the API,
 * the scheduler), so a late or replayed one has nothing to add. */
static bool moves_run(const cv_event *ev) {
    return ev->run_id[0] && strcmp(ev->type, CV_EVENT_JOB_REJECTED) != 0 &&
           strcmp(ev->type, CV_EVENT_RUN_LOG) != 0 && strcmp(ev->type, CV_EVENT_RUN_QUEUED) != 0;
}

/* What follows a run's change: the project's notification after a failure,
 * the job's watermark after a success. */
static cv_err after_change(cv_mongo *m, const cv_event *ev, int64_t matched, char *errbuf,
                           size_t errlen) {
    cv_run_status to = cv_run_event_target(ev->type);
    cv_err err = CV_OK;

    if (to == CV_RUN_FAILED || to == CV_RUN_TIMED_OUT)
        err = notify_failure(m, ev, matched, errbuf, errlen);
    if (!err && ev->watermark[0] && ev->job_id[0] && to == CV_RUN_SUCCEEDED)
        err = update_job_watermark(m, ev, errbuf, errlen);
    return err;
}

/* ---- batches ---------------------------------------------------------------- */

/* Appends to dst every member of src whose key dst lacks. */
static void merge_missing(bson_t *dst, const bson_t *src) {
    bson_iter_t it;
    if (!bson_iter_init(&it, src))
        return;
    while (bson_iter_next(&it))
        if (!bson_has_field(dst, bson_iter_key(&it)))
            bson_append_iter(dst, bson_iter_key(&it), -1, &it);
}

/* How many events from evs[at] on (all of one run, in order) make one chain
 * that a single change can apply: a start, then progress, then the end of
 * that attempt (retrying or final), all of one attempt. Applying the chain's
 * merged change leaves the record as applying them one by one would: with a
 * start, its filter holds exactly when the start applies, and then every
 * later event of its attempt applies too; without one, the events share the
 * first one's filter (the attempt still running). */
static size_t chain_len(const cv_event *const *evs, size_t n, size_t at) {
    cv_run_status first = cv_run_event_target(evs[at]->type);
    size_t i;

    if (first != CV_RUN_RUNNING && first != CV_RUN_NONE)
        return 1; /* an end stands alone: nothing after it changes the run */
    for (i = at + 1; i < n; i++) {
        cv_run_status to = cv_run_event_target(evs[i]->type);
        if (evs[i]->attempt != evs[at]->attempt || to == CV_RUN_RUNNING)
            break; /* a second start begins its own chain */
        if (to != CV_RUN_NONE)
            return i - at + 1; /* the attempt's end closes the chain */
    }
    return i - at;
}

/* Applies evs[0..n) (one run's chain, see chain_len()) as one change, then
 * what follows each of them. */
static cv_err apply_chain(cv_mongo *m, const cv_event *const *evs, size_t n, char *errbuf,
                          size_t errlen) {
    run_change merged, one;
    size_t filter_from = 0;
    int64_t matched = 0;
    bson_iter_t it;
    cv_err err = CV_OK;

    if (n == 1) {
        change_of(evs[0], &merged);
    } else {
        change_init(&merged);
        /* The filter is the start's when the chain has one, else the first's. */
        for (size_t i = 0; i < n; i++)
            if (cv_run_event_target(evs[i]->type) == CV_RUN_RUNNING)
                filter_from = i;
        /* Later events win: their members are taken first. */
        for (size_t i = n; i-- > 0;) {
            change_of(evs[i], &one);
            merge_missing(&merged.set, &one.set);
            merge_missing(&merged.add, &one.add);
            merged.upsert |= one.upsert;
            if (i == filter_from)
                bson_concat(&merged.filter, &one.filter);
            /* What the run is created with: the first event's, less what $set says. */
            if (i == 0 && bson_iter_init(&it, &one.on_insert))
                while (bson_iter_next(&it))
                    if (!bson_has_field(&merged.set, bson_iter_key(&it)))
                        bson_append_iter(&merged.on_insert, bson_iter_key(&it), -1, &it);
            change_release(&one);
        }
    }
    err = change_write(m, &merged, &matched, errbuf, errlen);
    change_release(&merged);
    for (size_t i = 0; !err && i < n; i++)
        err = after_change(m, evs[i], matched, errbuf, errlen);
    return err;
}

/* The runs of a batch, applied by APPLY_THREADS threads at once: runs are
 * independent records, and one run's events stay on one thread, in order.
 * Each update costs the store several round trips (four PostgreSQL
 * statements under FerretDB), so one thread would leave the store idle. */
#define APPLY_THREADS 4

typedef struct apply_work {
    cv_mongo *m;
    const cv_event **order; /* events grouped by run */
    size_t *starts;         /* nruns + 1 offsets into order */
    size_t nruns;
    atomic_size_t next;
    pthread_mutex_t lock;
    cv_err err; /* the first failure, under lock */
    char why[512];
} apply_work;

static void *apply_some(void *arg) {
    apply_work *w = arg;
    char why[512];
    size_t r;

    while ((r = atomic_fetch_add(&w->next, 1)) < w->nruns) {
        size_t at = w->starts[r], end = w->starts[r + 1], len;
        cv_err err = CV_OK;
        for (size_t k = at; !err && k < end; k += len) {
            len = chain_len(w->order + at, end - at, k - at);
            err = apply_chain(w->m, w->order + k, len, why, sizeof(why));
        }
        if (err) {
            pthread_mutex_lock(&w->lock);
            if (!w->err) {
                w->err = err;
                snprintf(w->why, sizeof(w->why), "%s", why);
            }
            pthread_mutex_unlock(&w->lock);
            break;
        }
    }
    return NULL;
}

static cv_err apply_runs(cv_mongo *m, const cv_event **order, size_t n, char *errbuf,
                         size_t errlen) {
    apply_work w = {.m = m, .order = order};
    pthread_t threads[APPLY_THREADS - 1];
    int started = 0;

    if (n == 0)
        return CV_OK;
    if (!(w.starts = malloc((n + 1) * sizeof(*w.starts))))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    for (size_t at = 0; at < n;) {
        w.starts[w.nruns++] = at;
        while (++at < n && strcmp(order[at]->run_id, order[at - 1]->run_id) == 0)
            ;
    }
    w.starts[w.nruns] = n;
    atomic_init(&w.next, 0);
    pthread_mutex_init(&w.lock, NULL);
    for (size_t i = 1; i < APPLY_THREADS && i < w.nruns; i++)
        if (pthread_create(&threads[started], NULL, apply_some, &w) == 0)
            started++;
    apply_some(&w);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    pthread_mutex_destroy(&w.lock);
    free(w.starts);
    if (w.err)
        return cv_err_set(errbuf, errlen, w.err, "%s", w.why);
    return CV_OK;
}

cv_err cv_runs_apply_batch(cv_mongo *m, const cv_event *evs, size_t n, char *errbuf,
                           size_t errlen) {
    bson_t *docs = calloc(n ? n : 1, sizeof(*docs));
    const bson_t **doc_ptrs = calloc(n ? n : 1, sizeof(*doc_ptrs));
    const cv_event **order = calloc(n ? n : 1, sizeof(*order));
    bool *dup = calloc(n ? n : 1, sizeof(*dup));
    size_t norder = 0;
    cv_err err = CV_OK;

    if (n == 0)
        goto out;
    if (!docs || !doc_ptrs || !order || !dup) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* Every event is stored first, in one unordered insert (a replayed one
     * is a duplicate _id, which is success). */
    for (size_t i = 0; i < n; i++) {
        bson_init(&docs[i]);
        event_doc(&evs[i], &docs[i]);
        doc_ptrs[i] = &docs[i];
    }
    if ((err = cv_mongo_insert_many(m, CV_COLL_EVENTS, doc_ptrs, n, dup, errbuf, errlen)))
        goto out;
    /* Then the runs: grouped by run, each run's events kept in their order
     * (one run's events share a partition, so that is the order they were
     * sent in), and each chain of them written as one change. */
    for (size_t i = 0; i < n; i++) {
        if (!moves_run(&evs[i]))
            continue;
        bool seen = false;
        for (size_t j = 0; j < norder && !seen; j++)
            seen = strcmp(order[j]->run_id, evs[i].run_id) == 0;
        if (seen)
            continue;
        for (size_t j = i; j < n; j++)
            if (moves_run(&evs[j]) && strcmp(evs[j].run_id, evs[i].run_id) == 0)
                order[norder++] = &evs[j];
    }
    err = apply_runs(m, order, norder, errbuf, errlen);
out:
    for (size_t i = 0; docs && i < n; i++)
        bson_destroy(&docs[i]);
    free(docs);
    free(doc_ptrs);
    free(order);
    free(dup);
    return err;
}

void cv_runs_append_ended(bson_t *filter) {
    cv_run_status finals[CV_RUN_STATUS_COUNT];
    append_in(filter, CV_RUN_F_STATUS, finals, cv_run_finals(finals, CV_RUN_STATUS_COUNT));
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

cv_err cv_runs_attempt_over(cv_mongo *m, const char *run_id, int attempt, bool *over, char *errbuf,
                            size_t errlen) {
    bson_t *doc = NULL;
    cv_run_status status;
    int64_t current;
    cv_err err = cv_mongo_find_id(m, CV_COLL_RUNS, run_id, &doc, errbuf, errlen);

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
    bson_t *filter = BCON_NEW(CV_RUN_F_STATUS, BCON_UTF8(cv_run_status_name(CV_RUN_RUNNING)));
    bson_t *sort = BCON_NEW("_id", BCON_INT32(1));
    bson_t gt;
    cv_err err;

    if (after && after[0]) {
        BSON_APPEND_DOCUMENT_BEGIN(filter, "_id", &gt);
        BSON_APPEND_UTF8(&gt, "$gt", after);
        bson_append_document_end(filter, &gt);
    }
    err = cv_mongo_find(m, CV_COLL_RUNS, filter, sort, limit, out, errbuf, errlen);
    bson_destroy(filter);
    bson_destroy(sort);
    return err;
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
