/*
 * cv_api_stats.c - GET /api/v1/projects/{id}/stats?since=&until=&bucket=hour|day:
 * a project's runs per time bucket, for its dashboard; and GET
 * /api/v1/projects/{id}/summary, what the list of projects shows of each.
 *
 * Read from the final events of the project's runs in the range (one look-up
 * of the {project_id, type, time} index), each run counted once, in the
 * bucket of its end: runs by final status, duration p50 and p95 (the
 * nearest rank), rows read and written, failures by error code; the same over
 * the whole range. Every bucket of the range is listed, empty ones too, so a
 * chart needs no gaps filled.
 */
#include "cv_api_int.h"

#include "cv_json.h"
#include "cv_message.h"
#include "cv_runs.h"
#include "cv_store.h"
#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define HOUR_MS (3600 * INT64_C(1000))
#define DAY_MS (24 * HOUR_MS)
#define BUCKETS_MAX 1000
#define RUNS_MAX 100000 /* final events one answer reads */
#define CODES_MAX 32    /* error codes counted apart in a bucket; the rest are "other" */
#define SUMMARY_LAST_MS (30 * DAY_MS) /* how far back a project's last run is looked for */

static const char *const finals[] = {CV_EVENT_RUN_SUCCEEDED, CV_EVENT_RUN_FAILED,
                                     CV_EVENT_RUN_CANCELLED, CV_EVENT_RUN_TIMED_OUT};
#define NFINALS 4

typedef struct bucket {
    int64_t runs[NFINALS];
    int64_t rows_read, rows_written;
    int64_t *durations; /* ms, of the runs that said */
    size_t ndurations, cap;
    char codes[CODES_MAX][64];
    int64_t code_counts[CODES_MAX + 1]; /* the last: other codes */
    int ncodes;
} bucket;

/* Reads since, until and bucket; false having answered 422. */
static bool read_range(const cv_http_request *req, int64_t *since, int64_t *until, int64_t *width,
                       const char **name, cv_http_response *res) {
    const char *b = cv_http_arg(req, "bucket"), *s = cv_http_arg(req, "since"),
               *u = cv_http_arg(req, "until");
    cv_verr verr;

    *name = b ? b : "day";
    if (strcmp(*name, "hour") != 0 && strcmp(*name, "day") != 0) {
        cv_verr_set(&verr, NULL, "bucket", "must be \"hour\" or \"day\", not \"%s\"", *name);
        goto bad;
    }
    *width = strcmp(*name, "hour") == 0 ? HOUR_MS : DAY_MS;
    *until = cv_time_now_ms();
    if (u && cv_time_parse(u, until) != 0) {
        cv_verr_set(&verr, NULL, "until", "must be a time such as 2026-12-05T10:00:00Z");
        goto bad;
    }
    *since = *until - (*width == HOUR_MS ? DAY_MS : 7 * DAY_MS);
    if (s && cv_time_parse(s, since) != 0) {
        cv_verr_set(&verr, NULL, "since", "must be a time such as 2026-12-05T10:00:00Z");
        goto bad;
    }
    /* Buckets start on whole hours or days (UTC). */
    *since -= ((*since % *width) + *width) % *width;
    if (*since >= *until) {
        cv_verr_set(&verr, NULL, "since", "must be before until");
        goto bad;
    }
    if ((*until - *since + *width - 1) / *width > BUCKETS_MAX) {
        cv_verr_set(&verr, NULL, "since", "the range holds more than %d buckets of a %s",
                    BUCKETS_MAX, *name);
        goto bad;
    }
    return true;
bad:
    cv_api_field_error(res, &verr);
    return false;
}

static void count_code(bucket *b, const char *code) {
    for (int i = 0; i < b->ncodes; i++)
        if (strcmp(b->codes[i], code) == 0) {
            b->code_counts[i]++;
            return;
        }
    if (b->ncodes == CODES_MAX) {
        b->code_counts[CODES_MAX]++;
        return;
    }
    snprintf(b->codes[b->ncodes], sizeof(b->codes[0]), "%s", code);
    b->code_counts[b->ncodes++] = 1;
}

/* Adds one run's end to b. False when out of memory. */
static bool add_run(bucket *b, const bson_t *ev, int final) {
    int64_t duration = cv_mongo_doc_int(ev, "duration_ms", -1);
    const char *code = cv_mongo_doc_str(ev, "error.code");

    b->runs[final]++;
    b->rows_read +=
        cv_mongo_doc_int(ev, "rows_read", 0) > 0 ? cv_mongo_doc_int(ev, "rows_read", 0) : 0;
    b->rows_written +=
        cv_mongo_doc_int(ev, "rows_written", 0) > 0 ? cv_mongo_doc_int(ev, "rows_written", 0) : 0;
    if (final != 0 && final != 2)
        count_code(b, code ? code : "unknown");
    if (duration < 0)
        return true;
    if (b->ndurations == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 16;
        int64_t *grown = realloc(b->durations, cap * sizeof(*grown));
        if (!grown)
            return false;
        b->durations = grown;
        b->cap = cap;
    }
    b->durations[b->ndurations++] = duration;
    return true;
}

static int by_value(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The nearest-rank percentile p (0..100) of sorted values. */
static int64_t percentile(const int64_t *v, size_t n, int p) {
    size_t rank = (n * (size_t)p + 99) / 100;
    return v[rank ? rank - 1 : 0];
}

static cJSON *bucket_json(bucket *b, const char *start_key, int64_t start) {
    static const char *const names[NFINALS] = {"succeeded", "failed", "cancelled", "timed_out"};
    cJSON *out = cJSON_CreateObject(), *runs, *durations, *failures;
    char text[CV_TIME_RFC3339_LEN];
    int64_t total = 0;

    if (!out)
        return NULL;
    if (start_key) {
        cv_time_format(start, text, sizeof(text));
        cJSON_AddStringToObject(out, start_key, text);
    }
    runs = cJSON_AddObjectToObject(out, "runs");
    for (int i = 0; i < NFINALS; i++) {
        cJSON_AddNumberToObject(runs, names[i], (double)b->runs[i]);
        total += b->runs[i];
    }
    cJSON_AddNumberToObject(out, "total", (double)total);
    durations = cJSON_AddObjectToObject(out, "duration_ms");
    if (b->ndurations) { /* (qsort() takes no NULL, even for nothing) */
        qsort(b->durations, b->ndurations, sizeof(*b->durations), by_value);
        cJSON_AddNumberToObject(durations, "p50",
                                (double)percentile(b->durations, b->ndurations, 50));
        cJSON_AddNumberToObject(durations, "p95",
                                (double)percentile(b->durations, b->ndurations, 95));
    } else {
        cJSON_AddNullToObject(durations, "p50");
        cJSON_AddNullToObject(durations, "p95");
    }
    cJSON_AddNumberToObject(out, "rows_read", (double)b->rows_read);
    cJSON_AddNumberToObject(out, "rows_written", (double)b->rows_written);
    failures = cJSON_AddObjectToObject(out, "failures");
    for (int i = 0; i < b->ncodes; i++)
        cJSON_AddNumberToObject(failures, b->codes[i], (double)b->code_counts[i]);
    if (b->code_counts[CODES_MAX])
        cJSON_AddNumberToObject(failures, "other", (double)b->code_counts[CODES_MAX]);
    return out;
}

/* The project's final events in [since, until), oldest first. */
/* The final events (run.succeeded, failed, cancelled, timed_out) of the project's runs with
 * since <= time < until, in time order (dir 1 or -1), at most `limit`. */
static cv_err read_finals(cv_api *api, const char *project_id, int64_t since, int64_t until,
                          int dir, int64_t limit, bson_t **found, char *why, size_t len) {
    bson_t where = BSON_INITIALIZER, cond, list, sort = BSON_INITIALIZER;
    char from[CV_TIME_RFC3339_LEN], to[CV_TIME_RFC3339_LEN], key[4];
    cv_err err;

    cv_time_format(since, from, sizeof(from));
    cv_time_format(until, to, sizeof(to));
    BSON_APPEND_UTF8(&where, "project_id", project_id);
    BSON_APPEND_DOCUMENT_BEGIN(&where, "type", &cond);
    BSON_APPEND_ARRAY_BEGIN(&cond, "$in", &list);
    for (int i = 0; i < NFINALS; i++) {
        snprintf(key, sizeof(key), "%d", i);
        BSON_APPEND_UTF8(&list, key, finals[i]);
    }
    bson_append_array_end(&cond, &list);
    bson_append_document_end(&where, &cond);
    BSON_APPEND_DOCUMENT_BEGIN(&where, "time", &cond);
    BSON_APPEND_UTF8(&cond, "$gte", from);
    BSON_APPEND_UTF8(&cond, "$lt", to);
    bson_append_document_end(&where, &cond);
    /* A late second end of an attempt (cv_runs.h) is not the run's. */
    BSON_APPEND_DOCUMENT_BEGIN(&where, CV_RUN_F_SUPERSEDED_BY, &cond);
    BSON_APPEND_BOOL(&cond, "$exists", false);
    bson_append_document_end(&where, &cond);
    BSON_APPEND_INT32(&sort, "time", dir);
    err = cv_mongo_find(api->mongo, CV_COLL_EVENTS, &where, &sort, limit, found, why, len);
    bson_destroy(&where);
    bson_destroy(&sort);
    return err;
}

/* The runs counted so far, by id: the first end of a run is the one that
 * counts (a late second end of an attempt taken over is kept as an event but
 * changes nothing). Open addressing over at least twice the ends read. */
typedef struct run_set {
    const char **ids; /* borrowed from the events read */
    size_t cap;
} run_set;

static bool seen_before(run_set *set, const char *run_id) {
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)run_id; *p; p++)
        h = (h ^ *p) * 16777619u;
    for (size_t i = h & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
        if (!set->ids[i]) {
            set->ids[i] = run_id;
            return false;
        }
        if (strcmp(set->ids[i], run_id) == 0)
            return true;
    }
}

void cv_api_project_stats(cv_api *api, const char *project_id, const cv_http_request *req,
                          cv_http_response *res) {
    int64_t since, until, width, n = 0, nbuckets = 0;
    bson_t *found = NULL, ev;
    bson_iter_t it;
    bucket *buckets = NULL, all = {0};
    run_set seen = {.cap = 1};
    cJSON *list;
    const char *name;
    char why[512], text[CV_TIME_RFC3339_LEN];
    cv_verr verr;
    cv_err err;

    if (!read_range(req, &since, &until, &width, &name, res))
        goto out;
    nbuckets = (until - since + width - 1) / width;
    if (!(buckets = calloc((size_t)nbuckets, sizeof(*buckets))))
        goto nomem;
    if ((err = read_finals(api, project_id, since, until, 1, RUNS_MAX + 1, &found, why,
                           sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    while (seen.cap < 2 * (size_t)bson_count_keys(found) + 2)
        seen.cap *= 2;
    if (!(seen.ids = calloc(seen.cap, sizeof(*seen.ids))))
        goto nomem;
    CV_MONGO_EACH_DOC(found, it, ev) {
        const char *type = cv_mongo_doc_str(&ev, "type"), *time = cv_mongo_doc_str(&ev, "time");
        const char *run = cv_mongo_doc_str(&ev, "run_id");
        int64_t at, k;
        int final = 0;
        if (++n > RUNS_MAX) {
            cv_verr_set(&verr, NULL, "since", "the range holds more than %d runs; narrow it",
                        RUNS_MAX);
            cv_api_field_error(res, &verr);
            goto out;
        }
        if (!type || !time || !run || cv_time_parse(time, &at) != 0 || seen_before(&seen, run))
            continue;
        while (final < NFINALS && strcmp(finals[final], type) != 0)
            final++;
        if (final == NFINALS || (k = (at - since) / width) < 0 || k >= nbuckets)
            continue;
        if (!add_run(&buckets[k], &ev, final) || !add_run(&all, &ev, final))
            goto nomem;
    }
    res->body = cJSON_CreateObject();
    cJSON_AddStringToObject(res->body, "project_id", project_id);
    cJSON_AddStringToObject(res->body, "bucket", name);
    cv_time_format(since, text, sizeof(text));
    cJSON_AddStringToObject(res->body, "since", text);
    cv_time_format(until, text, sizeof(text));
    cJSON_AddStringToObject(res->body, "until", text);
    cJSON_AddItemToObject(res->body, "totals", bucket_json(&all, NULL, 0));
    list = cJSON_AddArrayToObject(res->body, "buckets");
    for (int64_t k = 0; k < nbuckets; k++)
        cJSON_AddItemToArray(list, bucket_json(&buckets[k], "start", since + k * width));
    res->status = 200;
    goto out;
nomem:
    cv_http_error(res, 500, "internal", NULL, "out of memory");
out:
    for (int64_t k = 0; buckets && k < nbuckets; k++)
        free(buckets[k].durations);
    free(buckets);
    free(all.durations);
    free(seen.ids);
    bson_destroy(found);
}

/* The soonest next fire of the project's scheduled jobs into out ({job_id, job, at}), or
 * null when none fires. */
static cv_err next_run(cv_api *api, const char *project_id, int64_t now, cJSON *out, char *why,
                       size_t len) {
    bson_t where = BSON_INITIALIZER, cond, *jobs = NULL, job;
    const char *best_id = NULL, *best_name = NULL;
    int64_t best = -1;
    bson_iter_t it;
    cv_err err;

    BSON_APPEND_UTF8(&where, "project_id", project_id);
    BSON_APPEND_DOCUMENT_BEGIN(&where, "schedule", &cond);
    BSON_APPEND_BOOL(&cond, "$exists", true);
    bson_append_document_end(&where, &cond);
    cv_mongo_append_absent(&where, "deleted_at");
    if (!(err = cv_mongo_find(api->mongo, CV_COLL_JOBS, &where, NULL, 1000, &jobs, why, len))) {
        CV_MONGO_EACH_DOC(jobs, it, job) {
            int64_t at = cv_api_next_fire(&job, now);
            if (at >= 0 && (best < 0 || at < best)) {
                best = at;
                best_id = cv_mongo_doc_str(&job, "_id");
                best_name = cv_mongo_doc_str(&job, "name");
            }
        }
        if (best >= 0) {
            char text[CV_TIME_RFC3339_LEN];
            cJSON *o = cJSON_AddObjectToObject(out, "next_run");
            cv_time_format(best, text, sizeof(text));
            cJSON_AddStringToObject(o, "job_id", best_id ? best_id : "");
            cJSON_AddStringToObject(o, "job", best_name ? best_name : "");
            cJSON_AddStringToObject(o, "at", text);
        } else {
            cJSON_AddNullToObject(out, "next_run");
        }
    }
    bson_destroy(jobs);
    bson_destroy(&where);
    return err;
}

/* `last_run` of out from the newest of the final events in the array `events` (in time
 * order): {id, job_id, status, ended_at}, or null when it holds none. */
static void add_last_run(cJSON *out, const bson_t *events) {
    bson_iter_t it, last;
    bool any = false;
    const uint8_t *data;
    uint32_t n;
    const char *type, *v;
    bson_t newest;
    cJSON *o;

    if (bson_iter_init(&it, events))
        while (bson_iter_next(&it))
            if (BSON_ITER_HOLDS_DOCUMENT(&it)) {
                last = it; /* an iterator copies; a static bson_t would not */
                any = true;
            }
    if (!any) {
        cJSON_AddNullToObject(out, "last_run");
        return;
    }
    bson_iter_document(&last, &n, &data);
    if (!bson_init_static(&newest, data, n)) {
        cJSON_AddNullToObject(out, "last_run");
        return;
    }
    type = cv_mongo_doc_str(&newest, "type");
    o = cJSON_AddObjectToObject(out, "last_run");
    cJSON_AddStringToObject(o, "id", (v = cv_mongo_doc_str(&newest, "run_id")) ? v : "");
    cJSON_AddStringToObject(o, "job_id", (v = cv_mongo_doc_str(&newest, "job_id")) ? v : "");
    cJSON_AddStringToObject(o, "status", type ? type + 4 : ""); /* "run.failed" */
    cJSON_AddStringToObject(o, "ended_at", (v = cv_mongo_doc_str(&newest, "time")) ? v : "");
}

/* The newest run of the project that ended in the last SUMMARY_LAST_MS into out's
 * `last_run`: from the last day's final events already read when they hold one, else
 * from one look further back. */
static cv_err last_run(cv_api *api, const char *project_id, int64_t now, const bson_t *day,
                       cJSON *out, char *why, size_t len) {
    bson_t *found = NULL;
    cv_err err;

    if (bson_count_keys(day) > 0) {
        add_last_run(out, day);
        return CV_OK;
    }
    if (!(err = read_finals(api, project_id, now - SUMMARY_LAST_MS, now + 1, -1, 1, &found, why,
                            len)))
        add_last_run(out, found);
    bson_destroy(found);
    return err;
}

/* GET /projects/{id}/summary (viewers): what the list of projects shows of one: its runs
 * and failures (failed or timed out) that ended in the last 24 hours (each run once), its
 * last run that ended in the last 30 days, and the next time one of its schedules fires. */
void cv_api_project_summary(cv_api *api, const char *project_id, const cv_http_request *req,
                            cv_http_response *res) {
    int64_t now = cv_time_now_ms(), runs = 0, failures = 0;
    bson_t *found = NULL, ev;
    run_set seen = {.cap = 1};
    char why[512];
    bson_iter_t it;
    cv_err err;

    (void)req;
    if ((err = read_finals(api, project_id, now - DAY_MS, now + 1, 1, RUNS_MAX + 1, &found, why,
                           sizeof(why))))
        goto fail;
    while (seen.cap < 2 * (size_t)bson_count_keys(found) + 2)
        seen.cap *= 2;
    if (!(seen.ids = calloc(seen.cap, sizeof(*seen.ids)))) {
        err = cv_err_set(why, sizeof(why), CV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    CV_MONGO_EACH_DOC(found, it, ev) {
        const char *type = cv_mongo_doc_str(&ev, "type"), *run = cv_mongo_doc_str(&ev, "run_id");
        if (!type || !run || seen_before(&seen, run))
            continue;
        runs++;
        failures += !strcmp(type, CV_EVENT_RUN_FAILED) || !strcmp(type, CV_EVENT_RUN_TIMED_OUT);
    }
    res->body = cJSON_CreateObject();
    cJSON_AddStringToObject(res->body, "project_id", project_id);
    cJSON_AddNumberToObject(res->body, "runs_24h", (double)runs);
    cJSON_AddNumberToObject(res->body, "failures_24h", (double)failures);
    if ((err = last_run(api, project_id, now, found, res->body, why, sizeof(why))) ||
        (err = next_run(api, project_id, now, res->body, why, sizeof(why))))
        goto fail;
    res->status = 200;
    goto out;
fail:
    cJSON_Delete(res->body);
    res->body = NULL;
    cv_api_internal_error(res, err, why);
out:
    free(seen.ids);
    bson_destroy(found);
}
