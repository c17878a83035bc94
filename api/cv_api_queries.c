/*
 * cv_api_queries.c - the SQL console's saved queries: POST and GET
 * /api/v1/projects/{id}/queries, GET, PATCH and DELETE /api/v1/queries/{id},
 * POST /api/v1/queries/{id}/run (the console, with the saved statement) and
 * POST /api/v1/queries/{id}/job (a stored job made from it in one call).
 *
 * A saved query keeps its name, statement, connection side ("origin" or
 * "destination") and description, who made it and who changed it last
 * (updated_by). Deleting one marks it deleted, like jobs.
 */
#include "cv_api_int.h"

#include "cv_json.h"
#include "cv_query.h"
#include "cv_store.h"
#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

static const char *const saved_fields[] = {"name", "sql", "connection", "description", NULL};

/* Reads a saved query's fields from body (all required but the description
 * when `create`; a PATCH's body is laid over the stored fields first) into
 * set; false having answered 422. */
static bool read_saved(const cJSON *body, bson_t *set, cv_http_response *res) {
    const char *name, *sql, *side, *description = NULL;
    cv_verr verr;

    if (cv_json_only(body, NULL, saved_fields, "a saved query", &verr) ||
        cv_json_get_str(body, NULL, "name", true, 200, &name, &verr) ||
        cv_json_get_str(body, NULL, "sql", true, CV_QUERY_SQL_MAX, &sql, &verr) ||
        cv_json_get_str(body, NULL, "connection", true, 16, &side, &verr) ||
        cv_json_get_str(body, NULL, "description", false, 2000, &description, &verr))
        goto bad;
    if (strcmp(side, "origin") != 0 && strcmp(side, "destination") != 0) {
        cv_verr_set(&verr, NULL, "connection", "must be \"origin\" or \"destination\", not \"%s\"",
                    side);
        goto bad;
    }
    BSON_APPEND_UTF8(set, "name", name);
    BSON_APPEND_UTF8(set, "sql", sql);
    BSON_APPEND_UTF8(set, "connection", side);
    if (description)
        BSON_APPEND_UTF8(set, "description", description);
    return true;
bad:
    cv_api_field_error(res, &verr);
    return false;
}

void cv_api_create_saved_query(cv_api *api, const char *project_id, const cv_http_request *req,
                               cv_http_response *res) {
    const char *by = cv_api_caller(req)->user;
    cJSON *body = cv_api_parse_body(req, res);
    bson_t doc = BSON_INITIALIZER, fields = BSON_INITIALIZER;
    char id[CV_ID_LEN];

    if (!body || !read_saved(body, &fields, res) || !cv_api_new_doc(&doc, id, sizeof(id), by, res))
        goto out;
    BSON_APPEND_UTF8(&doc, "project_id", project_id);
    bson_concat(&doc, &fields);
    BSON_APPEND_UTF8(&doc, "updated_by", by);
    cv_api_insert_and_answer(api, CV_COLL_SAVED_QUERIES, "/api/v1/queries", &doc, id, res);
out:
    bson_destroy(&doc);
    bson_destroy(&fields);
    cJSON_Delete(body);
}

/* GET /projects/{id}/queries?q=: the project's saved queries, oldest first. */
void cv_api_list_saved_queries(cv_api *api, const char *project_id, const cv_http_request *req,
                               cv_http_response *res) {
    bson_t where = BSON_INITIALIZER;

    BSON_APPEND_UTF8(&where, "project_id", project_id);
    cv_mongo_append_absent(&where, "deleted_at");
    if (cv_api_name_filter(req, &where, res))
        cv_api_list_where(api, req, CV_COLL_SAVED_QUERIES, &where, "queries", 200, res);
    bson_destroy(&where);
}

void cv_api_get_saved_query(cv_api *api, const char *id, const cv_http_request *req,
                            cv_http_response *res) {
    (void)req;
    cv_api_get_one(api, CV_COLL_SAVED_QUERIES, "query", id, res);
}

/* PATCH /queries/{id}: the body laid over the stored fields (null removes
 * the description), checked as a new one's. */
void cv_api_patch_saved_query(cv_api *api, const char *id, const cv_http_request *req,
                              cv_http_response *res) {
    bson_t *stored = cv_api_load_doc(api, CV_COLL_SAVED_QUERIES, "query", id, res);
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    cJSON *body = NULL, *merged = NULL, *old = NULL;
    char etag[CV_API_ETAG_LEN], why[512];
    cv_err err;

    if (!stored)
        goto out;
    cv_api_etag(CV_COLL_SAVED_QUERIES, stored, etag);
    if (!cv_api_if_match(req, "query", id, etag, res) || !(body = cv_api_parse_body(req, res)))
        goto out;
    if (!(old = cv_api_doc_to_json(stored)) || !(merged = cJSON_CreateObject())) {
        cv_http_error(res, 500, "internal", NULL, "out of memory");
        goto out;
    }
    for (int i = 0; saved_fields[i]; i++) {
        const cJSON *item = cJSON_HasObjectItem(body, saved_fields[i])
                                ? cJSON_GetObjectItemCaseSensitive(body, saved_fields[i])
                                : cJSON_GetObjectItemCaseSensitive(old, saved_fields[i]);
        if (item && !cJSON_IsNull(item))
            cJSON_AddItemToObject(merged, saved_fields[i], cJSON_Duplicate(item, true));
    }
    /* Members the body has that a saved query has not are refused by name. */
    for (const cJSON *item = body->child; item; item = item->next)
        if (!cJSON_HasObjectItem(merged, item->string) && !cJSON_IsNull(item))
            cJSON_AddItemToObject(merged, item->string, cJSON_Duplicate(item, true));
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    if (!read_saved(merged, &set, res))
        goto out;
    BSON_APPEND_UTF8(&set, "updated_by", cv_api_caller(req)->user);
    cv_mongo_append_time(&set, "updated_at", cv_time_now_ms());
    bson_append_document_end(&update, &set);
    if (!cJSON_GetObjectItemCaseSensitive(merged, "description")) {
        bson_t unset;
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
        BSON_APPEND_UTF8(&unset, "description", "");
        bson_append_document_end(&update, &unset);
    }
    BSON_APPEND_UTF8(&filter, "_id", id);
    err = cv_mongo_update(api->mongo, CV_COLL_SAVED_QUERIES, &filter, &update, false, NULL, why,
                          sizeof(why));
    cv_cache_drop(api->cache, CV_COLL_SAVED_QUERIES, id);
    if (err)
        cv_api_internal_error(res, err, why);
    else
        cv_api_get_one(api, CV_COLL_SAVED_QUERIES, "query", id, res);
out:
    bson_destroy(stored);
    bson_destroy(&filter);
    bson_destroy(&update);
    cJSON_Delete(body);
    cJSON_Delete(merged);
    cJSON_Delete(old);
}

void cv_api_delete_saved_query(cv_api *api, const char *id, const cv_http_request *req,
                               cv_http_response *res) {
    char why[512];
    cv_err err = cv_api_mark_deleted(api, CV_COLL_SAVED_QUERIES, id, cv_api_caller(req)->user,
                                     false, why, sizeof(why));
    if (err)
        cv_api_internal_error(res, err, why);
    else
        res->status = 204;
}

/* Runs handler for the saved query's project with `body` (made from the
 * saved query and the request's own body) as the request body. */
static void pass_on(cv_api *api, const bson_t *saved, cJSON *body, const cv_http_request *req,
                    cv_api_handler *handler, cv_http_response *res) {
    cv_http_request made = *req;
    char *text = cJSON_PrintUnformatted(body);

    if (!text) {
        cv_http_error(res, 500, "internal", NULL, "out of memory");
        return;
    }
    made.body = text;
    made.body_len = strlen(text);
    handler(api, cv_mongo_doc_str(saved, "project_id"), &made, res);
    cJSON_free(text);
}

/* The request's body, or an empty object when it has none; the saved query's
 * members are added to it where it does not have them. NULL having answered. */
static cJSON *body_with(const cv_http_request *req, const char *const pairs[][2], int n,
                        const bson_t *saved, cv_http_response *res) {
    cJSON *body = req->body_len ? cv_api_parse_body(req, res) : cJSON_CreateObject();
    if (!body)
        return NULL;
    for (int i = 0; i < n; i++) {
        const char *value = cv_mongo_doc_str(saved, pairs[i][1]);
        if (value && !cJSON_HasObjectItem(body, pairs[i][0]))
            cJSON_AddStringToObject(body, pairs[i][0], value);
    }
    return body;
}

/* POST /queries/{id}/run: the console with the saved statement and side;
 * the body may add max_rows, timeout_seconds, params, allow_writes and
 * wait_seconds. */
void cv_api_run_saved_query(cv_api *api, const char *id, const cv_http_request *req,
                            cv_http_response *res) {
    static const char *const from[][2] = {{"connection", "connection"}, {"sql", "sql"}};
    bson_t *saved = cv_api_load_cached(api, CV_COLL_SAVED_QUERIES, "query", id, res);
    cJSON *body = saved ? body_with(req, from, 2, saved, res) : NULL;

    if (body)
        pass_on(api, saved, body, req, cv_api_run_query, res);
    cJSON_Delete(body);
    bson_destroy(saved);
}

/* POST /queries/{id}/job: a job of the saved query's project made from it,
 * by the rules of POST /projects/{id}/jobs. Kind "sql_transfer" (when the
 * body names a destination_table) takes the statement as its query; kind
 * "sql" takes it as its statements, on the saved query's connection. The
 * body may set the name (the saved query's by default) and any field of
 * that kind. */
void cv_api_job_from_saved_query(cv_api *api, const char *id, const cv_http_request *req,
                                 cv_http_response *res) {
    static const char *const transfer[][2] = {{"name", "name"}, {"query", "sql"}};
    static const char *const sql[][2] = {
        {"name", "name"}, {"statements", "sql"}, {"connection", "connection"}};
    bson_t *saved = cv_api_load_cached(api, CV_COLL_SAVED_QUERIES, "query", id, res);
    cJSON *body = NULL, *kind;
    bool is_transfer;

    if (!saved)
        return;
    if (!(body = req->body_len ? cv_api_parse_body(req, res) : cJSON_CreateObject()))
        goto out;
    kind = cJSON_GetObjectItemCaseSensitive(body, "kind");
    is_transfer = cJSON_IsString(kind) ? strcmp(kind->valuestring, "sql_transfer") == 0
                                       : cJSON_HasObjectItem(body, "destination_table");
    cJSON_Delete(body);
    if (!(body = is_transfer ? body_with(req, transfer, 2, saved, res)
                             : body_with(req, sql, 3, saved, res)))
        goto out;
    if (!cJSON_HasObjectItem(body, "kind"))
        cJSON_AddStringToObject(body, "kind", is_transfer ? "sql_transfer" : "sql");
    pass_on(api, saved, body, req, cv_api_create_job, res);
out:
    cJSON_Delete(body);
    bson_destroy(saved);
}
