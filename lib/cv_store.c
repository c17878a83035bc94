/*
 * cv_store.c - the indexes behind every query the services make. Each entry
 * names the query it serves; a query added elsewhere without its index here
 * reads a whole collection, on MongoDB as on FerretDB, and gets slower with
 * every run recorded.
 */
#include "cv_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* One index the services need: its collection, its name and its keys as
 * "field:1,field:-1" (1 ascending, -1 descending). */
typedef struct cv_store_index {
    const char *collection;
    const char *name;
    const char *keys;
} cv_store_index;

static const cv_store_index indexes[] = {
    /* Pages of lists (cv_page) end their keys with _id, the tie-breaker.
     * GET /jobs/{id}/runs (newest first) and the scheduler's "is a run of
     * this job still active" for forbid and queue schedules. */
    {CV_COLL_RUNS, "job_created", "job_id:1,created_at:-1,_id:-1"},
    /* A run's record and pieces (cv_runfold), which GET /runs/{id} folds. */
    {CV_COLL_RUNS, "run", "run_id:1"},
    /* The same history on FerretDB, which sorts in memory: a job's runs by the
     * time buckets they fall in (cv_bucket), one bucket at a time. */
    {CV_COLL_RUNS, "buckets", "buckets:1"},
    /* GET /runs/{id}/events, in time order. */
    {CV_COLL_EVENTS, "run_time", "run_id:1,time:1,_id:1"},
    /* GET /projects/{id}/logs (newest first) and /stats (final events in a range). */
    {CV_COLL_EVENTS, "project_type_time", "project_id:1,type:1,time:1,_id:1"},
    /* GET /projects/{id}/notifications, newest first. */
    {CV_COLL_NOTIFICATIONS, "project_created", "project_id:1,created_at:-1,_id:-1"},
    {CV_COLL_NOTIFICATIONS, "buckets", "buckets:1"}, /* the same on FerretDB, as for runs */
    /* The scheduler's "is a run of this job still going" for forbid and queue
     * schedules; the lease sweep reads the active runs whole, in _id order. */
    {CV_COLL_ACTIVE, "job", "job_id:1"},
    {CV_COLL_QUEUED, "job", "job_id:1"},
    /* The scheduler's sweep of retries decided and not sent. */
    {CV_COLL_LEASES, "state_released", "state:1,released_at:1"},
    /* Recovery of a dead scheduler's recent claims. */
    {CV_COLL_TICKS, "claimer_tick", "claimer:1,tick_ms:1"},
    /* Schedulers whose heartbeat stopped. */
    {CV_COLL_SCHEDULERS, "beat", "beat_ms:1"},
    /* The scheduler's load of the jobs that have a schedule. */
    {CV_COLL_JOBS, "scheduled", "scheduled:1"},
    /* A project's jobs: GET /projects/{id}/jobs, oldest first. */
    {CV_COLL_JOBS, "project", "project_id:1"},
    {CV_COLL_JOBS, "project_created", "project_id:1,created_at:1,_id:1"},
    /* GET /projects: a user's projects, oldest first; a project's connections. */
    {CV_COLL_PROJECTS, "member_created", "members.user:1,created_at:1,_id:1"},
    {CV_COLL_CONNECTIONS, "project_created", "project_id:1,created_at:1,_id:1"},
    /* GET /webhooks/{id}/deliveries (newest first); the senders' due deliveries. */
    {CV_COLL_DELIVERIES, "webhook_created", "webhook_id:1,created_at:-1,_id:-1"},
    {CV_COLL_DELIVERIES, "status_next", "status:1,next_at:1"},
    {CV_COLL_WEBHOOKS, "project_created", "project_id:1,created_at:1,_id:1"},
    /* GET /projects/{id}/queries: a project's saved queries, oldest first. */
    {CV_COLL_SAVED_QUERIES, "project_created", "project_id:1,created_at:1,_id:1"},
    /* A user's tokens: GET /tokens, and revoking them all. */
    {CV_COLL_TOKENS, "user", "user:1"},
    /* Who may see a connection: the projects that use it. */
    {CV_COLL_PROJECTS, "origin", "origin_connection_id:1"},
    {CV_COLL_PROJECTS, "destination", "destination_connection_id:1"},
    /* GET /audit and GET /projects/{id}/audit, newest first. */
    {CV_COLL_AUDIT, "log_at", "log:1,at:-1,_id:-1"},
    {CV_COLL_AUDIT, "project_at", "project_id:1,at:-1,_id:-1"},
    /* The pruner (cv_retain) walks each of these by day. */
    {CV_COLL_EVENTS, "day", "day:1"},
    {CV_COLL_RUNS, "day", "day:1"},
    {CV_COLL_NOTIFICATIONS, "day", "day:1"},
    {CV_COLL_TICKS, "day", "day:1"},
    {CV_COLL_LEASES, "day", "day:1"},
    {CV_COLL_QUERY_RUNS, "day", "day:1"},
    {CV_COLL_DELIVERIES, "day", "day:1"},
    {CV_COLL_AUDIT, "day", "day:1"},
    {CV_COLL_IDEMPOTENCY, "day", "day:1"},
    /* A console query's rows, deleted with it by the pruner. */
    {CV_COLL_QUERY_ROWS, "run", "run_id:1"},
    {NULL, NULL, NULL},
};

/* Appends the keys "a:1,b:-1" as {a: 1, b: -1}. */
static cv_err append_keys(bson_t *key, const char *keys, char *errbuf, size_t errlen) {
    char field[128];
    const char *p = keys;

    while (*p) {
        const char *colon = strchr(p, ':'), *end = strchr(p, ',');
        char *num_end;
        long dir;
        if (!end)
            end = p + strlen(p);
        if (!colon || colon > end || (size_t)(colon - p) >= sizeof(field))
            return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "bad index keys '%s'", keys);
        memcpy(field, p, (size_t)(colon - p));
        field[colon - p] = '\0';
        dir = strtol(colon + 1, &num_end, 10);
        if (num_end != end || (dir != 1 && dir != -1))
            return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "bad index keys '%s'", keys);
        BSON_APPEND_INT32(key, field, (int32_t)dir);
        p = *end ? end + 1 : end;
    }
    return CV_OK;
}

cv_err cv_store_prepare(cv_mongo *m, char *errbuf, size_t errlen) {
    cv_err err = CV_OK;

    /* One createIndexes per index: FerretDB 1.24 panics on a command listing
     * two or more indexes that all exist already (its filter of existing
     * indexes deletes from a slice by stale positions), which is exactly what
     * every restart would send. */
    for (size_t i = 0; !err && indexes[i].collection; i++) {
        bson_t list = BSON_INITIALIZER, spec, key;
        BSON_APPEND_DOCUMENT_BEGIN(&list, "0", &spec);
        BSON_APPEND_DOCUMENT_BEGIN(&spec, "key", &key);
        err = append_keys(&key, indexes[i].keys, errbuf, errlen);
        bson_append_document_end(&spec, &key);
        BSON_APPEND_UTF8(&spec, "name", indexes[i].name);
        bson_append_document_end(&list, &spec);
        if (!err)
            err = cv_mongo_create_indexes(m, indexes[i].collection, &list, errbuf, errlen);
        bson_destroy(&list);
    }
    return err;
}
