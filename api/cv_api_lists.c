/*
 * cv_api_lists.c - the API's lists, one page at a time (cv_page): a job's run
 * history and a project's notifications, newest first, by time bucket
 * (cv_bucket); a run's events, oldest first, filtered; a project's log
 * lines, newest first, filtered; and the helpers of the lists of what a
 * project holds (oldest first, by name).
 */
#include "cv_api_int.h"

#include "cv_id.h"
#include "cv_message.h"
#include "cv_page.h"
#include "cv_runs.h"
#include "cv_store.h"
#include "cv_time.h"

#include <stdbool.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define RUN_HISTORY_MAX 500 /* runs (and notifications) on one page, newest first */
#define EVENTS_MAX 1000     /* events of a run on one page, oldest first */

static void add_run(void *list, const bson_t *run) {
    cJSON_AddItemToArray(list, cv_api_doc_to_json(run));
}

/* Answers {key: [...], next} with one page (cv_page) of the documents of
 * `collection` whose `field` is the id of the existing `parent` document,
 * newest first by `order`, walked by time bucket (cv_bucket.h) since the
 * parent's creation, at most `max` a page; `next` is the cursor of the
 * following page or null. */
static void list_children(cv_api *api, const cv_http_request *req, const char *parent_coll,
                          const char *parent, const char *id, const char *collection,
                          const char *field, const char *order, int64_t max, const char *group,
                          const char *key, cv_http_response *res) {
    char why[512], next[CV_PAGE_CURSOR_MAX];
    bson_t *doc = NULL, *docs = NULL;
    const char *created;
    int64_t since = 0;
    bson_iter_t it;
    cv_page page;
    cv_verr verr;
    cJSON *list;
    cv_err err;

    if (cv_page_read(req, max, &page, &verr)) {
        cv_api_field_error(res, &verr);
        return;
    }
    if (!(doc = cv_api_load_doc(api, parent_coll, parent, id, res)))
        return;
    created = cv_mongo_doc_str(doc, "created_at");
    if (created && cv_time_parse(created, &since) != 0)
        since = 0;
    err = cv_page_find_recent(api->mongo, collection, field, id, order, &page, group,
                              cv_time_now_ms(), since, &docs, next, sizeof(next), why, sizeof(why));
    if (err) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    res->status = 200;
    res->body = cJSON_CreateObject();
    list = cJSON_AddArrayToObject(res->body, key);
    if (group) /* each run folded from its record and pieces (cv_runfold.h) */
        cv_runfold_each(docs, add_run, list);
    else if (bson_iter_init(&it, docs)) {
        while (bson_iter_next(&it)) {
            const uint8_t *data;
            uint32_t len;
            bson_t item;
            bson_iter_document(&it, &len, &data);
            if (bson_init_static(&item, data, len))
                cJSON_AddItemToArray(list, cv_api_doc_to_json(&item));
        }
    }
    if (next[0])
        cJSON_AddStringToObject(res->body, "next", next);
    else
        cJSON_AddNullToObject(res->body, "next");
out:
    bson_destroy(docs);
    bson_destroy(doc);
}

void cv_api_list_runs(cv_api *api, const char *job_id, const cv_http_request *req,
                      cv_http_response *res) {
    /* The run history: every run and every tick that did not run. */
    list_children(api, req, CV_COLL_JOBS, "job", job_id, CV_COLL_RUNS, CV_RUN_F_JOB,
                  CV_RUN_F_CREATED, RUN_HISTORY_MAX, CV_RUNFOLD_RUN, "runs", res);
}

void cv_api_list_notifications(cv_api *api, const char *project_id, const cv_http_request *req,
                               cv_http_response *res) {
    list_children(api, req, CV_COLL_PROJECTS, "project", project_id, CV_COLL_NOTIFICATIONS,
                  "project_id", "created_at", RUN_HISTORY_MAX, NULL, "notifications", res);
}

/* The query argument `arg` as a case-blind substring match of field, added to
 * where; false having answered 422. */
static bool text_filter(const cv_http_request *req, const char *arg, const char *field,
                        bson_t *where, cv_http_response *res) {
    const char *q = cv_http_arg(req, arg);
    char pattern[2 * 200 + 1];
    size_t o = 0;
    bson_t re;
    cv_verr verr;

    if (!q)
        return true;
    if (strlen(q) > 200) {
        cv_verr_set(&verr, NULL, arg, "must be at most 200 characters");
        cv_api_field_error(res, &verr);
        return false;
    }
    for (const char *p = q; *p; p++) { /* the text as it is: every regex character escaped */
        if (strchr("\\^$.|?*+()[]{}", *p))
            pattern[o++] = '\\';
        pattern[o++] = *p;
    }
    pattern[o] = '\0';
    BSON_APPEND_DOCUMENT_BEGIN(where, field, &re);
    BSON_APPEND_UTF8(&re, "$regex", pattern);
    BSON_APPEND_UTF8(&re, "$options", "i");
    bson_append_document_end(where, &re);
    return true;
}

/* The query arguments since and until as a range of `time` (since <= time <
 * until), added to where; false having answered 422. */
static bool time_range(const cv_http_request *req, bson_t *where, cv_http_response *res) {
    static const char *const args[] = {"since", "until"}, *const ops[] = {"$gte", "$lt"};
    const char *v[2] = {cv_http_arg(req, "since"), cv_http_arg(req, "until")};
    char text[2][CV_TIME_RFC3339_LEN];
    bson_t range;
    cv_verr verr;

    for (int i = 0; i < 2; i++) {
        int64_t ms;
        if (v[i] && cv_time_parse(v[i], &ms) != 0) {
            cv_verr_set(&verr, NULL, args[i], "must be a time such as 2026-12-05T10:00:00Z");
            cv_api_field_error(res, &verr);
            return false;
        }
        if (v[i])
            cv_time_format(ms, text[i], sizeof(text[i])); /* stored times are UTC, in ms */
    }
    if (!v[0] && !v[1])
        return true;
    BSON_APPEND_DOCUMENT_BEGIN(where, "time", &range);
    for (int i = 0; i < 2; i++)
        if (v[i])
            BSON_APPEND_UTF8(&range, ops[i], text[i]);
    bson_append_document_end(where, &range);
    return true;
}

/* Whether value is one of names (NULL-ended); answers 422 naming arg if not. */
static bool one_of(const char *arg, const char *value, const char *const *names,
                   cv_http_response *res) {
    cv_verr verr;

    for (int i = 0; names[i]; i++)
        if (strcmp(value, names[i]) == 0)
            return true;
    cv_verr_set(&verr, NULL, arg, "\"%s\" is not one of %s", value, names[0]);
    for (int i = 1; names[i]; i++)
        snprintf(verr.reason + strlen(verr.reason), sizeof(verr.reason) - strlen(verr.reason),
                 ", %s", names[i]);
    cv_api_field_error(res, &verr);
    return false;
}

bool cv_api_event_filters(const cv_http_request *req, const char *type_default, bson_t *where,
                          cv_http_response *res) {
    static const char *const types[] = {"run.queued",
                                        "run.started",
                                        "run.progress",
                                        "run.succeeded",
                                        "run.failed",
                                        "run.cancelled",
                                        "run.timed_out",
                                        "job.rejected",
                                        "run.log",
                                        "run.retrying",
                                        NULL};
    static const char *const streams[] = {"stdout", "stderr", NULL};
    const char *type = cv_http_arg(req, "type"), *stream = cv_http_arg(req, "stream");

    if ((type && !one_of("type", type, types, res)) ||
        (stream && !one_of("stream", stream, streams, res)) || !time_range(req, where, res) ||
        !text_filter(req, "q", "line", where, res))
        return false;
    if (type || type_default)
        BSON_APPEND_UTF8(where, "type", type ? type : type_default);
    if (stream)
        BSON_APPEND_UTF8(where, "stream", stream);
    return true;
}

/* GET /runs/{id}/events?type=&stream=&since=&until=&q=: a run's events,
 * oldest first; q a case-blind substring of log lines. */
void cv_api_list_events(cv_api *api, const char *run_id, const cv_http_request *req,
                        cv_http_response *res) {
    bson_t where = BSON_INITIALIZER, *run = NULL;
    cv_page page;
    cv_verr verr;

    if (cv_page_read(req, EVENTS_MAX, &page, &verr)) { /* the arguments first, as every list */
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!(run = cv_api_load_doc(api, CV_COLL_RUNS, "run", run_id, res)))
        goto out;
    BSON_APPEND_UTF8(&where, "run_id", run_id);
    if (cv_api_event_filters(req, NULL, &where, res))
        cv_api_list_where_by(api, req, CV_COLL_EVENTS, &where, "time", 1, "events", EVENTS_MAX,
                             res);
out:
    bson_destroy(run);
    bson_destroy(&where);
}

/* GET /projects/{id}/logs?q=&since=&until=&job=&stream=&type=: the log lines
 * (type run.log unless another is asked for) of every run of the project,
 * newest first. */
void cv_api_list_project_logs(cv_api *api, const char *project_id, const cv_http_request *req,
                              cv_http_response *res) {
    const char *job = cv_http_arg(req, "job");
    bson_t where = BSON_INITIALIZER;
    cv_page page;
    cv_verr verr;

    if (cv_page_read(req, EVENTS_MAX, &page, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (job && !cv_id_valid(job)) {
        cv_verr_set(&verr, NULL, "job", "must be a job id (a UUID)");
        cv_api_field_error(res, &verr);
        goto out;
    }
    BSON_APPEND_UTF8(&where, "project_id", project_id);
    if (job)
        BSON_APPEND_UTF8(&where, "job_id", job);
    if (cv_api_event_filters(req, CV_EVENT_RUN_LOG, &where, res))
        cv_api_list_where_by(api, req, CV_COLL_EVENTS, &where, "time", -1, "logs", EVENTS_MAX, res);
out:
    bson_destroy(&where);
}

bool cv_api_name_filter(const cv_http_request *req, bson_t *where, cv_http_response *res) {
    return text_filter(req, "q", "name", where, res);
}

void cv_api_list_where(cv_api *api, const cv_http_request *req, const char *collection,
                       const bson_t *where, const char *key, int64_t max, cv_http_response *res) {
    cv_api_list_where_by(api, req, collection, where, "created_at", 1, key, max, res);
}

void cv_api_list_where_by(cv_api *api, const cv_http_request *req, const char *collection,
                          const bson_t *where, const char *order, int dir, const char *key,
                          int64_t max, cv_http_response *res) {
    char why[512], next[CV_PAGE_CURSOR_MAX];
    bson_t *docs = NULL, item;
    bson_iter_t it;
    cv_page page;
    cv_verr verr;
    cJSON *list;
    cv_err err;

    if (cv_page_read(req, max, &page, &verr)) {
        cv_api_field_error(res, &verr);
        return;
    }
    if ((err = cv_page_find_where(api->mongo, collection, where, order, dir, &page, &docs, next,
                                  sizeof(next), why, sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        return;
    }
    res->status = 200;
    res->body = cJSON_CreateObject();
    list = cJSON_AddArrayToObject(res->body, key);
    CV_MONGO_EACH_DOC(docs, it, item) {
        cJSON_AddItemToArray(list, cv_api_doc_to_json(&item));
    }
    if (next[0])
        cJSON_AddStringToObject(res->body, "next", next);
    else
        cJSON_AddNullToObject(res->body, "next");
    bson_destroy(docs);
}
