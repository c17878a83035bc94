/*
 * cv_retain.c - the pruner: day by day, oldest first, a bounded number of
 * deletes per sweep, each naming the condition that makes it safe (see
 * cv_retain.h). On FerretDB a filter on `day` is pushed down to PostgreSQL and
 * served by a GIN index, and so is a delete by _id; a range on a time field
 * would read the whole collection there.
 */
#include "cv_retain.h"

#include "cv_query.h"
#include "cv_run.h"
#include "cv_runfold.h"
#include "cv_runs.h"
#include "cv_store.h"
#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define BATCH 200          /* documents read (and deletes sent) at a time */
#define FIRST_LOOKBACK 400 /* days before the cutoff a store never swept starts at */
#define DAY_MS INT64_C(86400000)

/* Writes the UTC day of ms ("2026-12-03") into day. */
static void retain_day(int64_t ms, char day[CV_DAY_LEN]) {
    char stamp[CV_TIME_RFC3339_LEN];
    cv_time_format(ms, stamp, sizeof(stamp));
    memcpy(day, stamp, CV_DAY_LEN - 1);
    day[CV_DAY_LEN - 1] = '\0';
}

void cv_retain_append_day(bson_t *doc, int64_t ms) {
    char day[CV_DAY_LEN];
    retain_day(ms, day);
    BSON_APPEND_UTF8(doc, "day", day);
}

/* Midnight UTC of day, or -1 when it is not a day. */
static int64_t day_ms(const char *day) {
    char stamp[32];
    int64_t ms;
    snprintf(stamp, sizeof(stamp), "%.10sT00:00:00Z", day);
    return strlen(day) == CV_DAY_LEN - 1 && cv_time_parse(stamp, &ms) == 0 ? ms : -1;
}

/* What a collection keeps and what makes one of its documents safe to delete. */
typedef enum kind {
    EVENTS,
    RUNS,
    NOTIFICATIONS,
    TICKS,
    LEASES,
    QUERIES,    /* a query run once it ended, with its rows */
    DELIVERIES, /* a webhook delivery once delivered or failed */
    ANY         /* every document of the day (audit records, first answers) */
} kind;

typedef struct sweep {
    cv_mongo *m;
    int64_t deadline_mono;
    int max_deletes;
    const atomic_bool *stop;
} sweep;

/* The day the last sweep of `coll` finished, or "" when none did. */
static void marker_get(cv_mongo *m, const char *coll, char day[CV_DAY_LEN]) {
    bson_t *doc = NULL;
    char why[256];
    const char *through;

    day[0] = '\0';
    if (cv_mongo_find_id(m, CV_COLL_RETENTION, coll, &doc, why, sizeof(why)) != CV_OK)
        return;
    through = cv_mongo_doc_str(doc, "through");
    if (through && day_ms(through) >= 0)
        snprintf(day, CV_DAY_LEN, "%s", through);
    bson_destroy(doc);
}

static cv_err marker_set(cv_mongo *m, const char *coll, const char *day, char *errbuf,
                         size_t errlen) {
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(coll));
    bson_t *update = BCON_NEW("$set", "{", "through", BCON_UTF8(day), "}");
    cv_err err = cv_mongo_update(m, CV_COLL_RETENTION, filter, update, true, NULL, errbuf, errlen);
    bson_destroy(filter);
    bson_destroy(update);
    return err;
}

/* True when the run has ended or has no record (run_id NULL: none at all);
 * `ended` caches the answers of this batch (run id -> final) as a document. */
static bool run_ended(cv_mongo *m, const char *run_id, bson_t *ended) {
    cv_run_status status = CV_RUN_NONE;
    bson_iter_t it;
    char why[256];
    bool final;

    if (!run_id)
        return true;
    if (bson_iter_init_find(&it, ended, run_id))
        return bson_iter_bool(&it);
    /* A run without a record (a rejected or forged message), or with only pieces
     * that cannot make one (what a delete cut short left), counts as ended. */
    cv_err err = cv_runs_status(m, run_id, &status, why, sizeof(why));
    final = err == CV_ERR_NOT_FOUND || (!err && (cv_run_is_final(status) || status == CV_RUN_NONE));
    BSON_APPEND_BOOL(ended, run_id, final);
    return final;
}

/* Deletes a run that has ended: its record and its pieces (cv_runfold.h) in one
 * statement, and a record an earlier version wrote without run_id by _id. */
static cv_err delete_run(cv_mongo *m, const char *run_id, int64_t *deleted, char *errbuf,
                         size_t errlen) {
    bson_t *all = BCON_NEW(CV_RUNFOLD_RUN, BCON_UTF8(run_id)),
           *one = BCON_NEW("_id", BCON_UTF8(run_id));
    const bson_t *filters[] = {one};
    int64_t n = 0, m1 = 0;
    cv_err err = cv_mongo_delete_many(m, CV_COLL_RUNS, all, &n, errbuf, errlen);

    if (!err && !n)
        err = cv_mongo_delete_each(m, CV_COLL_RUNS, filters, 1, &m1, errbuf, errlen);
    *deleted += n + m1;
    bson_destroy(all);
    bson_destroy(one);
    return err;
}

/* Whether a document of kind k must stay however old its day: a console
 * query still going, a webhook delivery still to be tried. */
static bool must_stay(kind k, const bson_t *doc) {
    const char *status = cv_mongo_doc_str(doc, "status");

    if (k == QUERIES)
        return !cv_query_final(status);
    if (k == DELIVERIES)
        return !status || (strcmp(status, "delivered") != 0 && strcmp(status, "failed") != 0);
    return false;
}

/* Deletes the rows a console query stored beside its run (cv_query.h), before
 * the run: a sweep cut short between the two finds the run again. */
static cv_err delete_rows(cv_mongo *m, const char *run_id, char *errbuf, size_t errlen) {
    bson_t *filter = BCON_NEW("run_id", BCON_UTF8(run_id));
    cv_err err = cv_mongo_delete_many(m, CV_COLL_QUERY_ROWS, filter, NULL, errbuf, errlen);

    bson_destroy(filter);
    return err;
}

/* Deletes what it may of one batch of day `day`; *found and *deleted count. */
static cv_err prune_batch(sweep *s, kind k, const char *coll, const char *day, int64_t *found,
                          int64_t *deleted, char *errbuf, size_t errlen) {
    bson_t *filter = BCON_NEW("day", BCON_UTF8(day)), *list = NULL, ended = BSON_INITIALIZER;
    bson_t *filters[BATCH];
    bson_iter_t it;
    size_t n = 0;
    cv_err err;

    *found = *deleted = 0;
    err = cv_mongo_find(s->m, coll, filter, NULL, BATCH, &list, errbuf, errlen);
    bson_destroy(filter);
    if (err)
        return err;
    for (bool more = bson_iter_init(&it, list); more && bson_iter_next(&it);) {
        const uint8_t *data;
        uint32_t len;
        bson_t doc;
        const char *id;
        if (!BSON_ITER_HOLDS_DOCUMENT(&it))
            continue;
        bson_iter_document(&it, &len, &data);
        if (!bson_init_static(&doc, data, len) || !(id = cv_mongo_doc_str(&doc, "_id")))
            continue;
        (*found)++;
        if (k == RUNS) {
            /* A run whole, once it has ended; its other documents go with it. */
            const char *run = cv_runfold_run_of(&doc);
            bson_iter_t seen;
            if (!run || bson_iter_init_find(&seen, &ended, run))
                continue; /* going, or deleted with an earlier document of this batch */
            if (!run_ended(s->m, run, &ended))
                continue;
            if ((err = delete_run(s->m, run, deleted, errbuf, errlen)))
                break;
            /* Gone now: later documents of the batch that belong to it find nothing. */
            continue;
        }
        /* An event or a lease (_id = run id) only once its run has ended: a
         * lease may be done before its run's record is final (cv_lease.h). */
        if ((k == EVENTS && !run_ended(s->m, cv_mongo_doc_str(&doc, "run_id"), &ended)) ||
            (k == LEASES && !run_ended(s->m, id, &ended)) || must_stay(k, &doc))
            continue;
        if (k == QUERIES && (err = delete_rows(s->m, id, errbuf, errlen)))
            break;
        filters[n++] = BCON_NEW("_id", BCON_UTF8(id));
    }
    if (n && !err)
        err =
            cv_mongo_delete_each(s->m, coll, (const bson_t **)filters, n, deleted, errbuf, errlen);
    for (size_t i = 0; i < n; i++)
        bson_destroy(filters[i]);
    bson_destroy(&ended);
    bson_destroy(list);
    return err;
}

/* Prunes the expired days of one collection, oldest first. */
static cv_err prune(sweep *s, kind k, const char *coll, int keep_days, int64_t now_ms,
                    int64_t *removed, char *errbuf, size_t errlen) {
    char cutoff[CV_DAY_LEN], day[CV_DAY_LEN], done[CV_DAY_LEN] = "";
    int64_t t;
    cv_err err = CV_OK;

    *removed = 0;
    /* Documents of days before the cutoff day are older than keep_days whole days. */
    retain_day(now_ms - (int64_t)keep_days * DAY_MS, cutoff);
    marker_get(s->m, coll, day);
    t = day[0] ? day_ms(day) + DAY_MS : day_ms(cutoff) - FIRST_LOOKBACK * DAY_MS;
    for (retain_day(t, day); !err && strcmp(day, cutoff) < 0; retain_day(t += DAY_MS, day)) {
        int64_t found = 0, deleted = 0;
        do {
            if (*removed >= s->max_deletes || cv_time_mono_ms() > s->deadline_mono ||
                (s->stop && atomic_load(s->stop)))
                goto out; /* the next sweep goes on from here */
            if ((err = prune_batch(s, k, coll, day, &found, &deleted, errbuf, errlen)))
                goto out;
            *removed += deleted;
        } while (found == BATCH && deleted > 0);
        /* The day is done: what is left of it (events of a run still going) stays. */
        snprintf(done, sizeof(done), "%s", day);
    }
out:
    /* One write of how far the sweep got, not one per day: a first sweep walks
     * hundreds of empty days, and an upsert costs FerretDB several statements. */
    if (done[0]) {
        char why[256];
        cv_err merr = marker_set(s->m, coll, done, why, sizeof(why));
        if (!err && merr)
            err = cv_err_set(errbuf, errlen, merr, "%s", why);
    }
    return err;
}

cv_err cv_retain_sweep(cv_mongo *m, const cv_retain_policy *policy, int64_t now_ms, int max_deletes,
                       int64_t budget_ms, const atomic_bool *stop, cv_retain_counts *counts,
                       char *errbuf, size_t errlen) {
    sweep s = {.m = m,
               .deadline_mono = cv_time_mono_ms() + budget_ms,
               .max_deletes = max_deletes,
               .stop = stop};
    cv_retain_counts c = {0};
    cv_err err;

    const struct {
        kind k;
        const char *coll;
        int days;
        int64_t *removed;
    } all[] = {
        {EVENTS, CV_COLL_EVENTS, policy->events_days, &c.events},
        {RUNS, CV_COLL_RUNS, policy->runs_days, &c.runs},
        {NOTIFICATIONS, CV_COLL_NOTIFICATIONS, policy->notifications_days, &c.notifications},
        {TICKS, CV_COLL_TICKS, policy->ticks_days, &c.ticks},
        {LEASES, CV_COLL_LEASES, policy->leases_days, &c.leases},
        {QUERIES, CV_COLL_QUERY_RUNS, policy->queries_days, &c.queries},
        {DELIVERIES, CV_COLL_DELIVERIES, policy->deliveries_days, &c.deliveries},
        {ANY, CV_COLL_AUDIT, policy->audit_days, &c.audit},
        {ANY, CV_COLL_IDEMPOTENCY, policy->idempotency_days, &c.idempotency},
    };

    err = CV_OK;
    for (size_t i = 0; !err && i < sizeof(all) / sizeof(all[0]); i++)
        if (all[i].days > 0) /* 0: kept for good */
            err = prune(&s, all[i].k, all[i].coll, all[i].days, now_ms, all[i].removed, errbuf,
                        errlen);
    if (counts)
        *counts = c;
    return err;
}
