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
#include "cv_run.h"
#include "cv_runfold.h"
#include "cv_runs.h"
#include "cv_store.h"
#include "cv_time.h"

#include <stdbool.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define RUN_HISTORY_MAX 500 /* runs (and notifications) on one page, newest first */
#define EVENTS_MAX 1000     /* events of a run on one page, oldest first */
#define RUN_FILTER_PASSES 8 /* pages of a job's runs one filtered request reads, at most */

void cv_api_add_next(cJSON *body, const char *next) {
    if (next[0])
        cJSON_AddStringToObject(body, "next", next);
    else
        cJSON_AddNullToObject(body, "next");
}

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
    cv_api_add_next(res->body, next);
out:
    bson_destroy(docs);
    bson_destroy(doc);
}

static bool one_of(const char *arg, const char *value, const char *const *names,
                   cv_http_response *res);
/* The index of since and of until in read_times()'s pair. */
enum { SINCE, UNTIL };
static bool read_times(const cv_http_request *req, char text[2][CV_TIME_RFC3339_LEN],
                       cv_http_response *res);

/* What ?status=, ?trigger=, ?since= and ?until= keep of a job's runs. */
typedef struct run_filter {
    bool status[CV_RUN_STATUS_COUNT]; /* the statuses kept, when any_status is false */
    bool any_status;
    const char *trigger; /* borrowed from the request; NULL for any */
    /* since and until as stored times are written ("" for none): the runs
     * kept were queued at since or later and before until */
    char times[2][CV_TIME_RFC3339_LEN];
} run_filter;

/* Reads the filter; false having answered 422 naming the argument. */
static bool read_run_filter(const cv_http_request *req, run_filter *f, cv_http_response *res) {
    static const char *const triggers[] = {"manual", "schedule", "external", NULL};
    const char *status = cv_http_arg(req, "status");
    cv_verr verr;

    memset(f, 0, sizeof(*f));
    f->any_status = !status;
    for (const char *p = status; p && *p;) { /* names separated by commas */
        size_t len = strcspn(p, ",");
        char name[32];
        cv_run_status st = CV_RUN_NONE;
        if (len < sizeof(name)) {
            memcpy(name, p, len);
            name[len] = '\0';
            st = cv_run_status_parse(name);
        }
        if (st == CV_RUN_NONE) {
            cv_verr_set(
                &verr, NULL, "status",
                "\"%.*s\" is not a run status (queued, running, retrying, succeeded, "
                "failed, cancelled, timed_out, missed, skipped; several separated by commas)",
                (int)(len < 64 ? len : 64), p);
            cv_api_field_error(res, &verr);
            return false;
        }
        f->status[st] = true;
        p += len + (p[len] == ',');
    }
    if (status && !status[0]) {
        cv_verr_set(&verr, NULL, "status", "must name at least one status");
        cv_api_field_error(res, &verr);
        return false;
    }
    if ((f->trigger = cv_http_arg(req, "trigger")) && !one_of("trigger", f->trigger, triggers, res))
        return false;
    if (!read_times(req, f->times, res))
        return false;
    if (f->times[SINCE][0] && f->times[UNTIL][0] && strcmp(f->times[SINCE], f->times[UNTIL]) >= 0) {
        cv_verr_set(&verr, NULL, "until", "must be later than since");
        cv_api_field_error(res, &verr);
        return false;
    }
    return true;
}

static bool run_filtered(const run_filter *f) {
    return !f->any_status || f->trigger || f->times[SINCE][0] || f->times[UNTIL][0];
}

/* Whether f keeps the run (as GET /runs/{id} shows it), whose documents
 * are at `at` in the history. A run without a trigger came from another
 * system. */
static bool run_kept(const run_filter *f, const cJSON *run, const char *at) {
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(run, "status");
    const cJSON *trigger = cJSON_GetObjectItemCaseSensitive(run, "trigger");

    if (!f->any_status &&
        !(cJSON_IsString(status) && f->status[cv_run_status_parse(status->valuestring)]))
        return false;
    if (f->trigger &&
        strcmp(cJSON_IsString(trigger) ? trigger->valuestring : "external", f->trigger) != 0)
        return false;
    return !f->times[UNTIL][0] || strcmp(at, f->times[UNTIL]) < 0;
}

/* Where the run of id is in the history: the created_at of its documents
 * (borrowed from the page), what the cursor is made of. A run another system
 * queued has no record, and its pieces' time is not always the one its folded
 * view shows. The folded runs come in the order of their documents, so *it
 * walks the page once for all of them (and starts over for a run not found
 * ahead of it). */
static const char *history_time(const bson_t *docs, bson_iter_t *it, const char *id) {
    for (int round = 0; round < 2; round++) {
        bson_t doc;
        while (bson_iter_next(it)) {
            const char *run;
            if (!cv_mongo_iter_doc(it, &doc) || !(run = cv_runfold_run_of(&doc)))
                continue;
            if (strcmp(run, id) == 0)
                return cv_mongo_doc_str(&doc, CV_RUN_F_CREATED);
        }
        if (!bson_iter_init(it, docs))
            break;
    }
    return NULL;
}

/* Sets page's cursor to a `next` ("<order>_<id>"). */
static void page_after(cv_page *page, const char *next) {
    const char *sep = strchr(next, '_');
    size_t olen = sep ? (size_t)(sep - next) : 0;

    if (!sep || olen >= sizeof(page->after_order))
        return;
    memcpy(page->after_order, next, olen);
    page->after_order[olen] = '\0';
    snprintf(page->after_id, sizeof(page->after_id), "%s", sep + 1);
}

/* A job's runs that f keeps, newest first: pages of the whole history are
 * read (from ?until= when given) and filtered until the page is full, the
 * runs are older than ?since=, or RUN_FILTER_PASSES pages were read; then
 * `next` is the cursor after the last run kept (or read). A page may hold
 * fewer than ?limit= runs while `next` is not null. */
static void list_filtered_runs(cv_api *api, const char *job_id, const run_filter *f,
                               const cv_http_request *req, cv_http_response *res) {
    char why[512], next[CV_PAGE_CURSOR_MAX] = "", out_next[CV_PAGE_CURSOR_MAX] = "";
    cJSON *list, *folded = NULL;
    bson_t *job, *docs = NULL;
    int64_t since = 0, kept = 0;
    bson_iter_t it;
    const char *created;
    cv_page page;
    cv_verr verr;
    bool done = false;

    if (cv_page_read(req, RUN_HISTORY_MAX, &page, &verr)) {
        cv_api_field_error(res, &verr);
        return;
    }
    if (!(job = cv_api_load_doc(api, CV_COLL_JOBS, "job", job_id, res)))
        return;
    created = cv_mongo_doc_str(job, "created_at");
    if (created && cv_time_parse(created, &since) != 0)
        since = 0;
    if (!page.after_order[0] && f->times[UNTIL][0]) { /* from until on: no id is below "0" */
        snprintf(page.after_order, sizeof(page.after_order), "%s", f->times[UNTIL]);
        snprintf(page.after_id, sizeof(page.after_id), "0");
    }
    res->body = cJSON_CreateObject();
    list = cJSON_AddArrayToObject(res->body, "runs");
    for (int pass = 0; pass < RUN_FILTER_PASSES && !done; pass++) {
        cv_err err = cv_page_find_recent(api->mongo, CV_COLL_RUNS, CV_RUN_F_JOB, job_id,
                                         CV_RUN_F_CREATED, &page, CV_RUNFOLD_RUN, cv_time_now_ms(),
                                         since, &docs, next, sizeof(next), why, sizeof(why));
        if (err) {
            cv_api_internal_error(res, err, why);
            goto out;
        }
        if (!(folded = cJSON_CreateArray())) {
            cv_api_internal_error(res, CV_ERR_NOMEM, "out of memory");
            goto out;
        }
        cv_runfold_each(docs, add_run, folded);
        bson_iter_init(&it, docs);
        for (cJSON *run = folded->child, *after; run && !done; run = after) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(run, "id");
            const char *at = cJSON_IsString(id) ? history_time(docs, &it, id->valuestring) : NULL;
            after = run->next;
            if (!at)
                continue; /* not a run of the page (cannot be) */
            if (f->times[SINCE][0] && strcmp(at, f->times[SINCE]) < 0) {
                done = true; /* older than since: so is the rest */
                out_next[0] = '\0';
                break;
            }
            if (!run_kept(f, run, at))
                continue;
            if (++kept == page.limit) {
                done = true;
                out_next[0] = '\0'; /* not a cursor of an earlier page read */
                if (after || next[0])
                    snprintf(out_next, sizeof(out_next), "%s_%s", at, id->valuestring);
            }
            cJSON_AddItemToArray(list, cJSON_DetachItemViaPointer(folded, run));
        }
        cJSON_Delete(folded);
        folded = NULL;
        bson_destroy(docs);
        docs = NULL;
        if (!next[0]) { /* the history's end: nothing after what was kept */
            if (!done)
                out_next[0] = '\0';
            break;
        }
        if (!done) { /* read on, or leave the rest to the next request */
            snprintf(out_next, sizeof(out_next), "%s", next);
            page_after(&page, next);
        }
    }
    res->status = 200;
    cv_api_add_next(res->body, out_next);
out:
    cJSON_Delete(folded);
    bson_destroy(docs);
    bson_destroy(job);
}

/* GET /jobs/{id}/runs?status=&trigger=&since=&until=: the run history, every
 * run and every tick that did not run, newest first. */
void cv_api_list_runs(cv_api *api, const char *job_id, const cv_http_request *req,
                      cv_http_response *res) {
    run_filter f;

    if (!read_run_filter(req, &f, res))
        return;
    if (run_filtered(&f)) {
        list_filtered_runs(api, job_id, &f, req, res);
        return;
    }
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

/* The query arguments since and until as stored times are written (UTC, in
 * ms), "" for one not given; false having answered 422. */
static bool read_times(const cv_http_request *req, char text[2][CV_TIME_RFC3339_LEN],
                       cv_http_response *res) {
    static const char *const args[] = {[SINCE] = "since", [UNTIL] = "until"};
    cv_verr verr;

    for (int i = SINCE; i <= UNTIL; i++) {
        const char *v = cv_http_arg(req, args[i]);
        int64_t ms;
        text[i][0] = '\0';
        if (!v)
            continue;
        if (cv_time_parse(v, &ms) != 0) {
            cv_verr_set(&verr, NULL, args[i], "must be a time such as 2026-12-05T10:00:00Z");
            cv_api_field_error(res, &verr);
            return false;
        }
        cv_time_format(ms, text[i], CV_TIME_RFC3339_LEN);
    }
    return true;
}

/* The query arguments since and until as a range of `time` (since <= time <
 * until), added to where; false having answered 422. */
static bool time_range(const cv_http_request *req, bson_t *where, cv_http_response *res) {
    static const char *const ops[] = {"$gte", "$lt"};
    char text[2][CV_TIME_RFC3339_LEN];
    bson_t range;

    if (!read_times(req, text, res))
        return false;
    if (!text[SINCE][0] && !text[UNTIL][0])
        return true;
    BSON_APPEND_DOCUMENT_BEGIN(where, "time", &range);
    for (int i = 0; i < 2; i++)
        if (text[i][0])
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
    cv_api_add_next(res->body, next);
    bson_destroy(docs);
}
