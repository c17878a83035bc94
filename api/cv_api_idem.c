/*
 * cv_api_idem.c - Idempotency-Key on the POSTs of signed-in callers: a client
 * that sends the same key again (a retry after a lost answer) gets the first
 * answer, and the POST is not made twice.
 *
 * A key is the caller's: its record (`idempotency`, _id the SHA-256 of the
 * user and the key) holds the SHA-256 of the request (method, path, body) and,
 * once answered, the answer (status, body, Location). The record is written
 * before the POST runs, so two requests with one key cannot both run: the
 * second gets 409 while the first runs, and its answer after. The same key
 * with another request within CV_API_IDEM_MS is 422; after that the key is
 * free again. An answer of 5xx is not kept (the client may try again).
 */
#include "cv_api_int.h"

#include "cv_credential.h"
#include "cv_log.h"
#include "cv_retain.h"
#include "cv_store.h"
#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define IDEM_KEY_MAX 200

/* The record's id and the request's digest. */
static void digests(const cv_http_request *req, const char *user, const char *key,
                    char id[CV_DIGEST_LEN], char request[CV_DIGEST_LEN]) {
    char head[512];
    size_t n = (size_t)snprintf(head, sizeof(head), "%s\n%s", user, key);
    char *all;

    cv_digest(head, n < sizeof(head) ? n : sizeof(head) - 1, id);
    n = strlen(req->method) + strlen(req->path) + req->body_len + 3;
    if ((all = malloc(n))) {
        int k = snprintf(all, n, "%s %s\n", req->method, req->path);
        memcpy(all + k, req->body, req->body_len);
        cv_digest(all, (size_t)k + req->body_len, request);
        free(all);
    } else {
        request[0] = '\0'; /* no memory: a digest that matches nothing */
    }
}

/* Answers as the record's kept answer does. */
static void replay(const bson_t *rec, cv_http_response *res) {
    const char *body = cv_mongo_doc_str(rec, "body"), *location = cv_mongo_doc_str(rec, "location");

    res->status = (int)cv_mongo_doc_int(rec, "status", 500);
    res->body = body && body[0] ? cJSON_Parse(body) : NULL;
    if (location)
        snprintf(res->location, sizeof(res->location), "%s", location);
}

/* Drops a record: too old, or its POST failed on our side. */
static void forget(cv_api *api, const char *id) {
    bson_t filter = BSON_INITIALIZER;
    char why[256];

    BSON_APPEND_UTF8(&filter, "_id", id);
    (void)cv_mongo_delete_many(api->mongo, CV_COLL_IDEMPOTENCY, &filter, NULL, why, sizeof(why));
    bson_destroy(&filter);
}

cv_api_idem cv_api_idem_begin(cv_api *api, const cv_http_request *req, const cv_caller *who,
                              char id[CV_DIGEST_LEN], cv_http_response *res) {
    const char *key = cv_http_header(req, "Idempotency-Key");
    char request[CV_DIGEST_LEN], why[512];
    int64_t now = cv_time_now_ms();
    bson_t *rec = NULL;
    cv_err err;

    if (!key)
        return CV_API_IDEM_NONE;
    if (!key[0] || strlen(key) > IDEM_KEY_MAX) {
        cv_http_error(res, 422, "invalid_field", "Idempotency-Key",
                      "Idempotency-Key: must be 1 to %d characters", IDEM_KEY_MAX);
        return CV_API_IDEM_ANSWERED;
    }
    digests(req, who->user, key, id, request);
    for (int attempt = 0; attempt < 2; attempt++) {
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&doc, "_id", id);
        BSON_APPEND_UTF8(&doc, "request", request);
        BSON_APPEND_INT64(&doc, "at_ms", now);
        cv_mongo_append_time(&doc, "at", now);
        cv_retain_append_day(&doc, now); /* what a sweep by day will take */
        BSON_APPEND_BOOL(&doc, "answered", false);
        err = cv_mongo_insert(api->mongo, CV_COLL_IDEMPOTENCY, &doc, why, sizeof(why));
        bson_destroy(&doc);
        if (!err)
            return CV_API_IDEM_RUN;
        if (err != CV_ERR_CONFLICT ||
            (err = cv_mongo_find_id(api->mongo, CV_COLL_IDEMPOTENCY, id, &rec, why, sizeof(why))))
            break;
        if (now - cv_mongo_doc_int(rec, "at_ms", 0) < CV_API_IDEM_MS)
            break;
        bson_destroy(rec); /* older than a key lives: the key is free again */
        rec = NULL;
        forget(api, id);
    }
    if (err == CV_ERR_NOT_FOUND) { /* gone between the insert and the read: rare, say so */
        cv_http_error(res, 409, "conflict", NULL,
                      "a request with this Idempotency-Key was just given up: send it again");
    } else if (err) {
        cv_api_internal_error(res, err, why);
    } else if (strcmp(cv_mongo_doc_str(rec, "request") ? cv_mongo_doc_str(rec, "request") : "",
                      request) != 0) {
        cv_http_error(res, 422, "invalid_field", "Idempotency-Key",
                      "Idempotency-Key: was used for another request in the last 24 hours");
    } else if (!cv_mongo_doc_bool(rec, "answered", false)) {
        cv_http_error(res, 409, "conflict", NULL,
                      "a request with this Idempotency-Key is still being answered");
    } else {
        replay(rec, res);
    }
    bson_destroy(rec);
    return CV_API_IDEM_ANSWERED;
}

void cv_api_idem_end(cv_api *api, const char id[CV_DIGEST_LEN], const cv_http_response *res) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    char *body = res->body ? cJSON_PrintUnformatted(res->body) : NULL;
    char why[512];

    if (res->status >= 500 || (res->body && !body)) {
        forget(api, id);
        goto out;
    }
    BSON_APPEND_UTF8(&filter, "_id", id);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_BOOL(&set, "answered", true);
    BSON_APPEND_INT32(&set, "status", res->status);
    BSON_APPEND_UTF8(&set, "body", body ? body : "");
    if (res->location[0])
        BSON_APPEND_UTF8(&set, "location", res->location);
    bson_append_document_end(&update, &set);
    if (cv_mongo_update(api->mongo, CV_COLL_IDEMPOTENCY, &filter, &update, false, NULL, why,
                        sizeof(why)) != CV_OK) {
        cv_log_warn("Idempotency-Key answer not kept: %s", why);
        forget(api, id);
    }
out:
    cJSON_free(body);
    bson_destroy(&filter);
    bson_destroy(&update);
}
