/*
 * cv_api_audit.c - the audit trail: one record per change the API made
 * (every write route that answered 2xx), who made it, from where, to what;
 * and its two lists, the instance's for administrators and a project's for
 * its owners, newest first.
 *
 * A record names ids and the route, never a body: nothing secret (a
 * password, a connection string, a token) can reach it. The API only ever
 * inserts records; retention is the operator's (README). Records are queued
 * and written by a thread of their own (cv_spool.h), so a change does not
 * wait for its record: a POST of a run costs one store round trip, not two.
 */
#include "cv_api_int.h"

#include "cv_id.h"
#include "cv_log.h"
#include "cv_page.h"
#include "cv_retain.h"
#include "cv_store.h"
#include "cv_time.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define AUDIT_PAGE_MAX 500
#define AUDIT_ALL "all" /* the value of every record's `log`: the instance's list */

/* The last segment of a Location ("/api/v1/projects/<id>" -> "<id>"), or NULL. */
static const char *created_id(const cv_http_response *res) {
    const char *slash = strrchr(res->location, '/');
    return res->location[0] && slash && slash[1] ? slash + 1 : NULL;
}

void cv_api_audit(cv_api *api, const char *method, const char *route, const char *const ids[2],
                  const cv_http_request *req, const cv_http_response *res, const cv_caller *who) {
    static atomic_uint seq;
    char id[96], uuid[CV_ID_LEN], peer[CV_HTTP_PEER_LEN], action[160];
    int64_t now = cv_time_now_ms();
    const char *target = created_id(res), *user = who ? who->user : NULL, *project = NULL;
    const cJSON *login;
    bson_t doc = BSON_INITIALIZER;

    if (!user && res->body && (login = cJSON_GetObjectItemCaseSensitive(res->body, "user")) &&
        cJSON_IsString(login))
        user = login->valuestring; /* a login: the route is open, the answer names them */
    if (who && who->project_id[0])
        project = who->project_id;
    else if (strcmp(route, "projects") == 0)
        project = target; /* a project made: its own first record */
    if (!target)
        target = ids[0];
    if (cv_id_new(uuid, sizeof(uuid)) != 0)
        goto out;
    /* Ordered as made within a millisecond too (one API process's order):
     * the list's tie-breaker is _id. */
    snprintf(id, sizeof(id), "%013" PRId64 "-%08x-%s", now, atomic_fetch_add(&seq, 1u), uuid);
    cv_http_peer(req, peer);
    snprintf(action, sizeof(action), "%s /api/v1/%s", method, route);
    BSON_APPEND_UTF8(&doc, "_id", id);
    BSON_APPEND_UTF8(&doc, "log", AUDIT_ALL);
    cv_mongo_append_time(&doc, "at", now);
    cv_retain_append_day(&doc, now); /* retention goes by it (cv_retain.h) */
    BSON_APPEND_UTF8(&doc, "user", user ? user : "");
    BSON_APPEND_UTF8(&doc, "action", action);
    BSON_APPEND_INT32(&doc, "status", res->status);
    if (target)
        BSON_APPEND_UTF8(&doc, "target", target);
    if (ids[1])
        BSON_APPEND_UTF8(&doc, "item", ids[1]);
    if (project)
        BSON_APPEND_UTF8(&doc, "project_id", project);
    BSON_APPEND_UTF8(&doc, "address", peer);
    if (cv_spool_add(api->audit, &doc) != CV_OK)
        cv_log_error("audit record of %s %s by %s not kept: out of memory", method, req->path,
                     user ? user : "?");
out:
    bson_destroy(&doc);
}

/* Answers {"records": [...], "next"} with one page of the records whose
 * `field` is value, newest first. */
static void list_audit(cv_api *api, const char *field, const char *value,
                       const cv_http_request *req, cv_http_response *res) {
    char why[512], next[CV_PAGE_CURSOR_MAX];
    bson_t *docs = NULL, item;
    bson_iter_t it;
    cJSON *list;
    cv_page page;
    cv_verr verr;
    cv_err err;

    if (cv_page_read(req, AUDIT_PAGE_MAX, &page, &verr)) {
        cv_api_field_error(res, &verr);
        return;
    }
    if (!cv_spool_flush(api->audit, 5000)) { /* this process's records, then the list */
        cv_api_internal_error(res, CV_ERR_MONGO, "audit records are waiting for the store");
        return;
    }
    if ((err = cv_page_find(api->mongo, CV_COLL_AUDIT, field, value, "at", -1, &page, NULL, &docs,
                            next, sizeof(next), why, sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        return;
    }
    res->status = 200;
    res->body = cJSON_CreateObject();
    list = cJSON_AddArrayToObject(res->body, "records");
    CV_MONGO_EACH_DOC(docs, it, item) {
        cJSON *one = cv_api_doc_to_json(&item);
        cJSON_DeleteItemFromObjectCaseSensitive(one, "log");
        cJSON_AddItemToArray(list, one);
    }
    cv_api_add_next(res->body, next);
    bson_destroy(docs);
}

/* GET /audit (administrators): every record. */
void cv_api_list_audit(cv_api *api, const char *id, const cv_http_request *req,
                       cv_http_response *res) {
    (void)id;
    list_audit(api, "log", AUDIT_ALL, req, res);
}

/* GET /projects/{id}/audit (owners): the project's records. */
void cv_api_list_project_audit(cv_api *api, const char *id, const cv_http_request *req,
                               cv_http_response *res) {
    list_audit(api, "project_id", id, req, res);
}
