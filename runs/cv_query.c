/*
 * cv_query.c - the SQL console's query runs in the store. See cv_query.h.
 */
#include "cv_query.h"

#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

void cv_query_chunk_id(const char *run_id, int64_t seq, char buf[CV_QUERY_CHUNK_ID_LEN]) {
    snprintf(buf, CV_QUERY_CHUNK_ID_LEN, "%s:%06lld", run_id, (long long)seq);
}

bool cv_query_final(const char *status) {
    return status && strcmp(status, "queued") != 0 && strcmp(status, "running") != 0;
}

/* The filter of run id while its status is `status`. */
static void in_status(bson_t *filter, const char *id, const char *status) {
    bson_t also = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&also, "status", status);
    cv_mongo_filter_id(filter, id, &also);
    bson_destroy(&also);
}

cv_err cv_query_claim(cv_mongo *m, const char *id, const char *worker, bson_t **doc, char *errbuf,
                      size_t errlen) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    int64_t now = cv_time_now_ms();
    bson_t *stored = NULL;
    cv_err err;

    *doc = NULL;
    in_status(&filter, id, "queued");
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", "running");
    BSON_APPEND_UTF8(&set, "worker", worker);
    cv_mongo_append_time(&set, "started_at", now);
    bson_append_document_end(&update, &set);
    err = cv_mongo_find_and_update(m, CV_COLL_QUERY_RUNS, &filter, &update, doc, errbuf, errlen);
    if (err == CV_ERR_NOT_FOUND) {
        /* Not queued: tell a run that moved on from one that is not there. */
        err = cv_mongo_find_id(m, CV_COLL_QUERY_RUNS, id, &stored, errbuf, errlen);
        if (err == CV_OK)
            err = cv_err_set(errbuf, errlen, CV_ERR_CONFLICT, "query run %s is %s, not queued", id,
                             cv_mongo_doc_str(stored, "status"));
        bson_destroy(stored);
    }
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

cv_err cv_query_end(cv_mongo *m, const char *id, const bson_t *set, char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, all;
    int64_t matched = 0;
    cv_err err;

    in_status(&filter, id, "running");
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &all);
    bson_concat(&all, set);
    cv_mongo_append_time(&all, "ended_at", cv_time_now_ms());
    bson_append_document_end(&update, &all);
    err = cv_mongo_update(m, CV_COLL_QUERY_RUNS, &filter, &update, false, &matched, errbuf, errlen);
    if (!err && matched == 0)
        err = cv_err_set(errbuf, errlen, CV_ERR_CONFLICT, "query run %s is not running", id);
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

cv_err cv_query_cancel(cv_mongo *m, const char *id, const char *by, bool *now, char *errbuf,
                       size_t errlen) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, error;
    int64_t matched = 0, at = cv_time_now_ms();
    cv_err err;

    *now = true;
    in_status(&filter, id, "queued");
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", "cancelled");
    BSON_APPEND_UTF8(&set, "cancelled_by", by);
    cv_mongo_append_time(&set, "ended_at", at);
    BSON_APPEND_INT64(&set, "elapsed_ms", 0);
    BSON_APPEND_DOCUMENT_BEGIN(&set, "error", &error);
    BSON_APPEND_UTF8(&error, "code", "cancelled");
    BSON_APPEND_UTF8(&error, "message", "cancelled before it started");
    bson_append_document_end(&set, &error);
    bson_append_document_end(&update, &set);
    err = cv_mongo_update(m, CV_COLL_QUERY_RUNS, &filter, &update, false, &matched, errbuf, errlen);
    bson_destroy(&filter);
    bson_destroy(&update);
    if (err || matched)
        return err;

    *now = false;
    bson_init(&filter);
    bson_init(&update);
    in_status(&filter, id, "running");
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_BOOL(&set, "cancel_requested", true);
    BSON_APPEND_UTF8(&set, "cancelled_by", by);
    bson_append_document_end(&update, &set);
    err = cv_mongo_update(m, CV_COLL_QUERY_RUNS, &filter, &update, false, &matched, errbuf, errlen);
    if (!err && matched == 0)
        err = cv_err_set(errbuf, errlen, CV_ERR_CONFLICT, "query run %s has ended", id);
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

cv_err cv_query_give_up(cv_mongo *m, const char *id, const char *status, const char *message,
                        char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, error;
    int64_t matched = 0;
    cv_err err;

    in_status(&filter, id, status);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "status", "failed");
    cv_mongo_append_time(&set, "ended_at", cv_time_now_ms());
    BSON_APPEND_DOCUMENT_BEGIN(&set, "error", &error);
    BSON_APPEND_UTF8(&error, "code", "worker_lost");
    BSON_APPEND_UTF8(&error, "message", message);
    bson_append_document_end(&set, &error);
    bson_append_document_end(&update, &set);
    err = cv_mongo_update(m, CV_COLL_QUERY_RUNS, &filter, &update, false, &matched, errbuf, errlen);
    if (!err && matched == 0)
        err = cv_err_set(errbuf, errlen, CV_ERR_CONFLICT, "query run %s is not %s", id, status);
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

cv_err cv_query_cancels(cv_mongo *m, const char *const *ids, size_t n, bool *wanted, char *errbuf,
                        size_t errlen) {
    bson_t filter = BSON_INITIALIZER, in, list, doc;
    bson_t *found = NULL;
    bson_iter_t it;
    char key[24];
    cv_err err;

    for (size_t i = 0; i < n; i++)
        wanted[i] = false;
    if (n == 0)
        return CV_OK;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &list);
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "%zu", i);
        BSON_APPEND_UTF8(&list, key, ids[i]);
    }
    bson_append_array_end(&in, &list);
    bson_append_document_end(&filter, &in);
    BSON_APPEND_BOOL(&filter, "cancel_requested", true);
    err = cv_mongo_find(m, CV_COLL_QUERY_RUNS, &filter, NULL, (int64_t)n, &found, errbuf, errlen);
    if (!err) {
        CV_MONGO_EACH_DOC(found, it, doc) {
            const char *id = cv_mongo_doc_str(&doc, "_id");
            for (size_t i = 0; id && i < n; i++)
                wanted[i] = wanted[i] || strcmp(ids[i], id) == 0;
        }
    }
    bson_destroy(found);
    bson_destroy(&filter);
    return err;
}
