/*
 * cv_api_lists.c - the API's lists, one page at a time (cv_page): a job's run
 * history and a project's notifications, newest first, by time bucket
 * (cv_bucket); a run's events, oldest first.
 */
#include "cv_api_int.h"

#include "cv_page.h"
#include "cv_runs.h"
#include "cv_store.h"
#include "cv_time.h"

#include <stdbool.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define RUN_HISTORY_MAX 500 /* runs (and notifications) on one page, newest first */
#define EVENTS_MAX 1000     /* events of a run on one page, oldest first */

static void add_run(void *list, const bson_t *run) {
    cJSON_AddItemToArray(list, cv_api_doc_to_json(run));
}

/* Answers {key: [...], next} with one page (cv_page) of the documents of
 * `collection` whose `field` is the id of the existing `parent` document,
 * ordered by `order` (ascending when dir is 1, newest first when -1), at most
 * `max` a page; `next` is the cursor of the following page or null. */
static void list_children(cv_api *api, const cv_http_request *req, const char *parent_coll,
                          const char *parent, const char *id, const char *collection,
                          const char *field, const char *order, int dir, int64_t max, bool bucketed,
                          const char *group, const char *key, cv_http_response *res) {
    char why[512], next[CV_PAGE_CURSOR_MAX];
    bson_t *doc = NULL, *docs = NULL;
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
    if (bucketed) { /* newest first, by time bucket (cv_bucket.h) since the parent's creation */
        const char *created = cv_mongo_doc_str(doc, "created_at");
        int64_t since = 0;
        if (created && cv_time_parse(created, &since) != 0)
            since = 0;
        err = cv_page_find_recent(api->mongo, collection, field, id, order, &page, group,
                                  cv_time_now_ms(), since, &docs, next, sizeof(next), why,
                                  sizeof(why));
    } else {
        err = cv_page_find(api->mongo, collection, field, id, order, dir, &page, group, &docs, next,
                           sizeof(next), why, sizeof(why));
    }
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
                  CV_RUN_F_CREATED, -1, RUN_HISTORY_MAX, true, CV_RUNFOLD_RUN, "runs", res);
}

void cv_api_list_notifications(cv_api *api, const char *project_id, const cv_http_request *req,
                               cv_http_response *res) {
    list_children(api, req, CV_COLL_PROJECTS, "project", project_id, CV_COLL_NOTIFICATIONS,
                  "project_id", "created_at", -1, RUN_HISTORY_MAX, true, NULL, "notifications",
                  res);
}

void cv_api_list_events(cv_api *api, const char *run_id, const cv_http_request *req,
                        cv_http_response *res) {
    list_children(api, req, CV_COLL_RUNS, "run", run_id, CV_COLL_EVENTS, "run_id", "time", 1,
                  EVENTS_MAX, false, NULL, "events", res);
}
