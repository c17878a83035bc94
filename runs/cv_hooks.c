/*
 * cv_hooks.c - webhook deliveries in the store. See cv_hooks.h.
 */
#include "cv_hooks.h"

#include "cv_retain.h"
#include "cv_run.h"
#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

const char *const cv_hooks_event_types[] = {
    "run.started",   "run.succeeded", "run.failed", "run.cancelled",
    "run.timed_out", "run.retrying",  NULL};

int64_t cv_hooks_backoff_ms(int64_t base_ms, int next) {
    int64_t ms = base_ms;
    for (int i = 2; i < next && ms < 3600 * INT64_C(1000); i++)
        ms *= 6;
    return ms < 3600 * INT64_C(1000) ? ms : 3600 * INT64_C(1000);
}

void cv_hooks_delivery_id(const char *webhook_id, const char *event_id, const char *type,
                          const char *run_id, int attempt, char out[CV_HOOKS_ID_MAX]) {
    /* An attempt's end as the store's pieces take it (cv_runs.c): a move of the run
     * to anything but queued or running. */
    cv_run_status to = cv_run_event_target(type);
    bool end =
        run_id && run_id[0] && to != CV_RUN_NONE && to != CV_RUN_QUEUED && to != CV_RUN_RUNNING;

    if (end)
        snprintf(out, CV_HOOKS_ID_MAX, "%s:%s.%d.ended", webhook_id, run_id, attempt);
    else
        snprintf(out, CV_HOOKS_ID_MAX, "%s:%s", webhook_id, event_id);
}

cv_err cv_hooks_enqueue(cv_mongo *m, const char *delivery_id, const char *webhook_id,
                        const char *project_id, const char *event_id, const char *type,
                        const char *body, char *errbuf, size_t errlen) {
    bson_t doc = BSON_INITIALIZER;
    int64_t now = cv_time_now_ms();
    cv_err err;

    BSON_APPEND_UTF8(&doc, "_id", delivery_id);
    BSON_APPEND_UTF8(&doc, "webhook_id", webhook_id);
    BSON_APPEND_UTF8(&doc, "project_id", project_id);
    BSON_APPEND_UTF8(&doc, "event_id", event_id);
    BSON_APPEND_UTF8(&doc, "type", type);
    BSON_APPEND_UTF8(&doc, "body", body);
    BSON_APPEND_UTF8(&doc, "status", "pending");
    BSON_APPEND_INT32(&doc, "attempt", 0);
    cv_mongo_append_time(&doc, "next_at", now);
    cv_mongo_append_time(&doc, "created_at", now);
    cv_retain_append_day(&doc, now);
    err = cv_mongo_insert(m, CV_COLL_DELIVERIES, &doc, errbuf, errlen);
    bson_destroy(&doc);
    return err == CV_ERR_CONFLICT ? CV_OK : err;
}

/* {$or: [{status: pending, next_at <= now}, {status: sending, lease_until < now}]} */
static void append_due(bson_t *filter, const char *now) {
    bson_t or, one, cond;

    BSON_APPEND_ARRAY_BEGIN(filter, "$or", & or);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "0", &one);
    BSON_APPEND_UTF8(&one, "status", "pending");
    BSON_APPEND_DOCUMENT_BEGIN(&one, "next_at", &cond);
    BSON_APPEND_UTF8(&cond, "$lte", now);
    bson_append_document_end(&one, &cond);
    bson_append_document_end(& or, &one);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "1", &one);
    BSON_APPEND_UTF8(&one, "status", "sending");
    BSON_APPEND_DOCUMENT_BEGIN(&one, "lease_until", &cond);
    BSON_APPEND_UTF8(&cond, "$lt", now);
    bson_append_document_end(&one, &cond);
    bson_append_document_end(& or, &one);
    bson_append_array_end(filter, & or);
}

cv_err cv_hooks_claim_due(cv_mongo *m, const char *sender, int64_t now_ms, int max, bson_t **out,
                          char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER, sort = BSON_INITIALIZER, *found = NULL, doc;
    char now[CV_TIME_RFC3339_LEN], key[16];
    bson_iter_t it;
    uint32_t n = 0;
    cv_err err;

    *out = bson_new();
    cv_time_format(now_ms, now, sizeof(now));
    append_due(&filter, now);
    BSON_APPEND_INT32(&sort, "next_at", 1);
    if ((err = cv_mongo_find(m, CV_COLL_DELIVERIES, &filter, &sort, max, &found, errbuf, errlen)))
        goto out;
    CV_MONGO_EACH_DOC(found, it, doc) {
        const char *id = cv_mongo_doc_str(&doc, "_id");
        bson_t claim = BSON_INITIALIZER, update = BSON_INITIALIZER, set, *before = NULL;
        if (err || !id)
            continue;
        BSON_APPEND_UTF8(&claim, "_id", id);
        append_due(&claim, now);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "status", "sending");
        BSON_APPEND_UTF8(&set, "sender", sender);
        cv_mongo_append_time(&set, "lease_until", now_ms + CV_HOOKS_LEASE_MS);
        bson_append_document_end(&update, &set);
        err = cv_mongo_find_and_update(m, CV_COLL_DELIVERIES, &claim, &update, &before, errbuf,
                                       errlen);
        if (err == CV_ERR_NOT_FOUND) { /* another sender has it */
            err = CV_OK;
        } else if (!err) {
            snprintf(key, sizeof(key), "%u", n++);
            BSON_APPEND_DOCUMENT(*out, key, before);
        }
        bson_destroy(before);
        bson_destroy(&claim);
        bson_destroy(&update);
    }
out:
    bson_destroy(found);
    bson_destroy(&filter);
    bson_destroy(&sort);
    return err;
}

cv_err cv_hooks_record(cv_mongo *m, const char *id, const char *sender, int attempt,
                       int http_status, const char *error, int64_t elapsed_ms,
                       int64_t retry_base_ms, const char **status_out, char *errbuf,
                       size_t errlen) {
    bool ok = http_status >= 200 && http_status < 300;
    const char *status = ok ? "delivered" : attempt >= CV_HOOKS_ATTEMPTS ? "failed" : "pending";
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, push, one, unset;
    int64_t now = cv_time_now_ms();
    cv_err err;

    BSON_APPEND_UTF8(&filter, "_id", id);
    BSON_APPEND_UTF8(&filter, "status", "sending");
    BSON_APPEND_UTF8(&filter, "sender", sender);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", status);
    BSON_APPEND_INT32(&set, "attempt", attempt);
    if (!ok && attempt < CV_HOOKS_ATTEMPTS)
        cv_mongo_append_time(&set, "next_at",
                             now + cv_hooks_backoff_ms(retry_base_ms, attempt + 1));
    if (ok)
        cv_mongo_append_time(&set, "delivered_at", now);
    bson_append_document_end(&update, &set);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$push", &push);
    BSON_APPEND_DOCUMENT_BEGIN(&push, "attempts", &one);
    BSON_APPEND_INT32(&one, "attempt", attempt);
    cv_mongo_append_time(&one, "at", now);
    if (http_status)
        BSON_APPEND_INT32(&one, "status", http_status);
    else
        BSON_APPEND_UTF8(&one, "error", error ? error : "no answer");
    BSON_APPEND_INT64(&one, "elapsed_ms", elapsed_ms);
    bson_append_document_end(&push, &one);
    bson_append_document_end(&update, &push);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
    BSON_APPEND_UTF8(&unset, "lease_until", "");
    BSON_APPEND_UTF8(&unset, "sender", "");
    bson_append_document_end(&update, &unset);
    err = cv_mongo_update(m, CV_COLL_DELIVERIES, &filter, &update, false, NULL, errbuf, errlen);
    if (status_out)
        *status_out = status;
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}
