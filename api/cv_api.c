/*
 * cv_api.c - routes and handlers of the REST API. Each handler validates the
 * request body field by field (cv_json), reads or writes MongoDB through
 * cv_mongo, and for a run publishes the job message through cv_kafka.
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_api.h"
#include "cv_api_int.h"

#include "cv_bucket.h"
#include "cv_cache.h"
#include "cv_connstr.h"
#include "cv_group.h"
#include "cv_http.h"
#include "cv_id.h"
#include "cv_json.h"
#include "cv_kafka.h"
#include "cv_launch.h"
#include "cv_log.h"
#include "cv_mongo.h"
#include "cv_odbc.h"
#include "cv_runs.h"
#include "cv_schedule.h"
#include "cv_secret.h"
#include "cv_sqlsplit.h"
#include "cv_time.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* ---- helpers ------------------------------------------------------------ */

void cv_api_internal_error(cv_http_response *res, cv_err err, const char *why) {
    int status = err == CV_ERR_MONGO || err == CV_ERR_KAFKA || err == CV_ERR_TIMEOUT ? 503 : 500;
    cv_log_error("request failed: %s: %s", cv_err_str(err), why);
    cv_http_error(res, status, status == 503 ? "unavailable" : "internal", NULL, "%s: %s",
                  cv_err_str(err), why);
}

void cv_api_field_error(cv_http_response *res, const cv_verr *verr) {
    cv_http_error(res, 422, "invalid_field", verr->field, "%s: %s", verr->field, verr->reason);
}

/* Parses the body as a JSON object; answers 400 and returns NULL otherwise. */
cJSON *cv_api_parse_body(const cv_http_request *req, cv_http_response *res) {
    const char *what = "";
    size_t at = 0;
    cJSON *root;

    if (req->body_len == 0) {
        cv_http_error(res, 400, "malformed_json", NULL,
                      "request body is empty; expected a "
                      "JSON object");
        return NULL;
    }
    if (!cv_json_text_ok(req->body, req->body_len, &at, &what)) {
        cv_http_error(res, 400, "malformed_json", NULL,
                      "request body has %s at byte %zu; it must be UTF-8 without NUL", what, at);
        return NULL;
    }
    root = cv_json_parse(req->body, req->body_len, &at);
    if (!root) {
        cv_http_error(res, 400, "malformed_json", NULL,
                      "request body is not valid JSON (error near byte %zu)", at);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        cv_http_error(res, 400, "malformed_json", NULL, "request body must be a JSON object");
        return NULL;
    }
    return root;
}

/* Turns a stored document into an API object: `_id` becomes `id`, first, and
 * sealed secrets are left out. */
cJSON *cv_api_doc_to_json(const bson_t *doc) {
    cJSON *root = cv_launch_doc_json(doc);
    cJSON *id;

    if (!root)
        return NULL;
    cJSON_DeleteItemFromObjectCaseSensitive(root, "odbc_sealed");
    /* The time buckets of a run or a notification are the store's, not the user's. */
    cJSON_DeleteItemFromObjectCaseSensitive(root, CV_BUCKET_FIELD);
    id = cJSON_DetachItemFromObjectCaseSensitive(root, "_id");
    if (id) {
        cJSON *out = cJSON_CreateObject();
        cJSON *child = root->child;
        cJSON_AddItemToObject(out, "id", id);
        /* Move the remaining members after "id" in their stored order. */
        root->child = NULL;
        while (child) {
            cJSON *next = child->next;
            child->prev = child->next = NULL;
            cJSON_AddItemToObject(out, child->string, child);
            child = next;
        }
        cJSON_Delete(root);
        root = out;
    }
    return root;
}

/* Loads a document by id for a handler, through the cache when `cache` is
 * given: answers 404 or 503 itself on failure. */
static bson_t *load_from(cv_api *api, cv_cache *cache, const char *collection, const char *what,
                         const char *id, cv_http_response *res) {
    char why[512];
    bson_t *doc = NULL;
    cv_err err;

    if (!cv_id_valid(id)) {
        cv_http_error(res, 404, "not_found", NULL, "no %s with id '%s'", what, id);
        return NULL;
    }
    if (!strcmp(collection, CV_COLL_RUNS)) /* a run is folded from its pieces (cv_runfold.h) */
        err = cv_runs_get(api->mongo, id, &doc, why, sizeof(why));
    else if (cache)
        err = cv_cache_find_id(cache, api->mongo, collection, id, &doc, why, sizeof(why));
    else
        err = cv_mongo_find_id(api->mongo, collection, id, &doc, why, sizeof(why));
    if (err == CV_ERR_NOT_FOUND)
        cv_http_error(res, 404, "not_found", NULL, "no %s with id '%s'", what, id);
    else if (err)
        cv_api_internal_error(res, err, why);
    return err ? NULL : doc;
}

/* Loads a document by id, always from the store. */
bson_t *cv_api_load_doc(cv_api *api, const char *collection, const char *what, const char *id,
                        cv_http_response *res) {
    return load_from(api, NULL, collection, what, id, res);
}

bson_t *cv_api_load_cached(cv_api *api, const char *collection, const char *what, const char *id,
                           cv_http_response *res) {
    return load_from(api, api->cache, collection, what, id, res);
}

/* Inserts `doc` (which has _id) and answers 201 with the stored form. */
static void insert_and_answer(cv_api *api, const char *collection, const char *base_path,
                              bson_t *doc, const char *id, cv_http_response *res) {
    char why[512];
    cv_err err = cv_mongo_insert(api->mongo, collection, doc, why, sizeof(why));
    cJSON *body;

    if (err) {
        cv_api_internal_error(res, err, why);
        return;
    }
    body = cv_api_doc_to_json(doc);
    if (!body) {
        cv_api_internal_error(res, CV_ERR_NOMEM, "cannot encode the answer");
        return;
    }
    res->status = 201;
    res->body = body;
    snprintf(res->location, sizeof(res->location), "%s/%s", base_path, id);
}

static void now_text(char *buf, size_t len) {
    cv_time_format(cv_time_now_ms(), buf, len);
}

/* Starts a new stored object: a fresh id as _id and the creation time. Answers
 * 500 itself and returns false if no id could be made. */
static bool new_doc(bson_t *doc, char *id, size_t idlen, cv_http_response *res);

/* Starts a job document: a fresh id, its project, name and kind. */
static bool new_job_doc(bson_t *doc, char *id, size_t idlen, const char *project_id,
                        const char *name, const char *kind, cv_http_response *res) {
    if (!new_doc(doc, id, idlen, res))
        return false;
    BSON_APPEND_UTF8(doc, "project_id", project_id);
    BSON_APPEND_UTF8(doc, "name", name);
    BSON_APPEND_UTF8(doc, "kind", kind);
    /* Runs name the version they are for; a change to a job makes the next one. */
    BSON_APPEND_INT32(doc, "version", 1);
    return true;
}

static bool new_doc(bson_t *doc, char *id, size_t idlen, cv_http_response *res) {
    char now[CV_TIME_RFC3339_LEN];
    if (cv_id_new(id, idlen) != 0) {
        cv_api_internal_error(res, CV_ERR_IO, "cannot make an id");
        return false;
    }
    now_text(now, sizeof(now));
    BSON_APPEND_UTF8(doc, "_id", id);
    BSON_APPEND_UTF8(doc, "created_at", now);
    return true;
}

/* ---- connections -------------------------------------------------------- */

static void create_connection(cv_api *api, const cv_http_request *req, cv_http_response *res) {
    static const char *const fields[] = {"name", "odbc", NULL};
    char id[CV_ID_LEN];
    const char *name, *odbc;
    char *masked = NULL, *sealed = NULL, why[256];
    cJSON *body = cv_api_parse_body(req, res);
    bson_t doc = BSON_INITIALIZER;
    cv_verr verr;
    cv_err err;

    if (!body)
        goto out;
    if (cv_json_only(body, NULL, fields, "a connection", &verr) ||
        cv_json_get_str(body, NULL, "name", true, 200, &name, &verr) ||
        cv_json_get_str(body, NULL, "odbc", true, 4096, &odbc, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!strchr(odbc, '=')) {
        cv_verr_set(&verr, NULL, "odbc",
                    "must be an ODBC connection string such as \"Driver=SQLite3;Database=/data/"
                    "app.db\"");
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!new_doc(&doc, id, sizeof(id), res))
        goto out;
    /* The full string is stored sealed; clients only ever see the masked copy. */
    if ((err = cv_connstr_mask(odbc, &masked, why, sizeof(why)))) {
        if (err != CV_ERR_INVALID) {
            cv_api_internal_error(res, err, why);
            goto out;
        }
        cv_verr_set(&verr, NULL, "odbc", "does not parse as an ODBC connection string: %s", why);
        cv_api_field_error(res, &verr);
        goto out;
    }
    if ((err = cv_secret_seal(api->cfg.secret_key, id, odbc, &sealed, why, sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    BSON_APPEND_UTF8(&doc, "name", name);
    BSON_APPEND_UTF8(&doc, "odbc", masked);
    BSON_APPEND_UTF8(&doc, "odbc_sealed", sealed);
    insert_and_answer(api, CV_COLL_CONNECTIONS, "/api/v1/connections", &doc, id, res);
out:
    free(masked);
    free(sealed);
    bson_destroy(&doc);
    cJSON_Delete(body);
}

/* ---- projects ----------------------------------------------------------- */

/* Checks that a connection id names a stored connection; answers 422 if not. */
static bool connection_exists(cv_api *api, const char *field, const char *id,
                              cv_http_response *res) {
    char why[512];
    bson_t *doc = NULL;
    cv_verr verr;
    cv_err err = cv_mongo_find_id(api->mongo, CV_COLL_CONNECTIONS, id, &doc, why, sizeof(why));

    bson_destroy(doc);
    if (err == CV_ERR_NOT_FOUND) {
        cv_verr_set(&verr, NULL, field, "no connection with id '%s'", id);
        cv_api_field_error(res, &verr);
        return false;
    }
    if (err) {
        cv_api_internal_error(res, err, why);
        return false;
    }
    return true;
}

static void create_project(cv_api *api, const cv_http_request *req, cv_http_response *res) {
    static const char *const fields[] = {
        "name",   "origin_connection_id", "destination_connection_id",
        "active", "python_interpreter",   "expose_connections",
        NULL};
    char id[CV_ID_LEN];
    const char *name, *origin, *dest, *interpreter = NULL;
    bool active = true, expose = false;
    cJSON *body = cv_api_parse_body(req, res);
    bson_t doc = BSON_INITIALIZER;
    cv_verr verr;

    if (!body)
        goto out;
    if (cv_json_only(body, NULL, fields, "a project", &verr) ||
        cv_json_get_str(body, NULL, "name", true, 200, &name, &verr) ||
        cv_json_get_id(body, NULL, "origin_connection_id", true, &origin, &verr) ||
        cv_json_get_id(body, NULL, "destination_connection_id", true, &dest, &verr) ||
        cv_json_get_bool(body, NULL, "active", false, &active, &verr) ||
        cv_json_get_str(body, NULL, "python_interpreter", false, 255, &interpreter, &verr) ||
        cv_json_get_bool(body, NULL, "expose_connections", false, &expose, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (interpreter &&
        (interpreter[0] != '/' || strstr(interpreter, "/../") || strchr(interpreter, '\n'))) {
        cv_verr_set(&verr, NULL, "python_interpreter",
                    "must be an absolute path such as \"/opt/venvs/etl/bin/python\"");
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!connection_exists(api, "origin_connection_id", origin, res) ||
        !connection_exists(api, "destination_connection_id", dest, res))
        goto out;
    if (!new_doc(&doc, id, sizeof(id), res))
        goto out;
    BSON_APPEND_UTF8(&doc, "name", name);
    BSON_APPEND_UTF8(&doc, "origin_connection_id", origin);
    BSON_APPEND_UTF8(&doc, "destination_connection_id", dest);
    BSON_APPEND_BOOL(&doc, "active", active);
    if (interpreter)
        BSON_APPEND_UTF8(&doc, "python_interpreter", interpreter);
    BSON_APPEND_BOOL(&doc, "expose_connections", expose);
    insert_and_answer(api, CV_COLL_PROJECTS, "/api/v1/projects", &doc, id, res);
out:
    bson_destroy(&doc);
    cJSON_Delete(body);
}

/* ---- jobs --------------------------------------------------------------- */

/* Stores a job of kind "python" from a body whose name and kind were read. */
static void create_python_job(cv_api *api, const char *project_id, const cJSON *body,
                              const char *name, cv_http_response *res) {
    static const char *const fields[] = {
        "name", "kind", "script", "parameters", "timeout_seconds", "limits", NULL};
    char id[CV_ID_LEN];
    cv_python_spec python;
    cJSON *spec = NULL;
    char *spec_json = NULL;
    bson_t doc = BSON_INITIALIZER, *spec_bson = NULL;
    bson_error_t error;
    cv_verr verr;

    memset(&python, 0, sizeof(python));
    if (cv_json_only(body, NULL, fields, "a python job", &verr) ||
        cv_python_spec_decode(body, NULL, &python, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    /* Stored as the message carries it: script, parameters, timeout, limits. */
    if (!(spec = cJSON_CreateObject()) || cv_python_spec_encode(&python, spec) != 0 ||
        !(spec_json = cJSON_PrintUnformatted(spec)) ||
        !(spec_bson = bson_new_from_json((const uint8_t *)spec_json, -1, &error))) {
        cv_api_internal_error(res, CV_ERR_NOMEM, "cannot store the script");
        goto out;
    }
    if (!new_job_doc(&doc, id, sizeof(id), project_id, name, "python", res))
        goto out;
    bson_concat(&doc, spec_bson);
    insert_and_answer(api, CV_COLL_JOBS, "/api/v1/jobs", &doc, id, res);
out:
    bson_destroy(&doc);
    bson_destroy(spec_bson);
    cJSON_free(spec_json);
    cJSON_Delete(spec);
    cv_python_spec_release(&python);
}

/* Stores a job of kind "sql": statements run on the project's origin or
 * destination connection ("connection", default the destination). */
static void create_sql_job(cv_api *api, const char *project_id, const cJSON *body, const char *name,
                           cv_http_response *res) {
    static const char *const fields[] = {"name", "kind", "statements", "connection", NULL};
    const char *statements, *connection = NULL;
    char id[CV_ID_LEN];
    bson_t doc = BSON_INITIALIZER;
    cv_verr verr;

    if (cv_json_only(body, NULL, fields, "a sql job", &verr) ||
        cv_json_get_str(body, NULL, "statements", true, CV_QUERY_MAX_BYTES, &statements, &verr) ||
        cv_json_get_str(body, NULL, "connection", false, 16, &connection, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!statements[0] || (connection && strcmp(connection, "origin") != 0 &&
                           strcmp(connection, "destination") != 0)) {
        if (!statements[0])
            cv_verr_set(&verr, NULL, "statements", "must not be empty");
        else
            cv_verr_set(&verr, NULL, "connection",
                        "must be \"origin\" or \"destination\", not \"%s\"", connection);
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!new_job_doc(&doc, id, sizeof(id), project_id, name, "sql", res))
        goto out;
    BSON_APPEND_UTF8(&doc, "statements", statements);
    BSON_APPEND_UTF8(&doc, "connection", connection ? connection : "destination");
    insert_and_answer(api, CV_COLL_JOBS, "/api/v1/jobs", &doc, id, res);
out:
    bson_destroy(&doc);
}

static void create_job(cv_api *api, const char *project_id, const cv_http_request *req,
                       cv_http_response *res) {
    static const char *const fields[] = {"name",
                                         "kind",
                                         "query",
                                         "destination_table",
                                         "mode",
                                         "load_method",
                                         "batch_rows",
                                         "checkpoint_column",
                                         "transform",
                                         "key",
                                         "watermark_column",
                                         "timeout_seconds",
                                         NULL};
    char id[CV_ID_LEN];
    const char *name, *kind, *query, *table, *transform = NULL;
    cv_load_spec load;
    bson_t *project = cv_api_load_doc(api, CV_COLL_PROJECTS, "project", project_id, res);
    cJSON *body = NULL;
    bson_t doc = BSON_INITIALIZER;
    cv_verr verr;

    if (!project)
        goto out;
    body = cv_api_parse_body(req, res);
    if (!body)
        goto out;
    if (cv_json_get_str(body, NULL, "name", true, 200, &name, &verr) ||
        cv_json_get_str(body, NULL, "kind", true, 31, &kind, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (strcmp(kind, "python") == 0) {
        create_python_job(api, project_id, body, name, res);
        goto out;
    }
    if (strcmp(kind, "sql") == 0) {
        create_sql_job(api, project_id, body, name, res);
        goto out;
    }
    if (strcmp(kind, "sql_transfer") != 0) {
        cv_verr_set(&verr, NULL, "kind",
                    "must be \"sql_transfer\", \"python\" or \"sql\", not \"%s\"", kind);
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (cv_json_only(body, NULL, fields, "a job", &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (cv_json_get_str(body, NULL, "query", true, CV_QUERY_MAX_BYTES, &query, &verr) ||
        cv_json_get_str(body, NULL, "destination_table", true, 127, &table, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (cv_sqlsplit_count(query, false) > 1 && cv_sqlsplit_count(query, true) > 1) {
        /* More than one by PostgreSQL's and SQLite's rules and by MariaDB's. */
        cv_verr_set(&verr, NULL, "query",
                    "must be one statement (a SELECT); it runs read-only on the origin");
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!cv_json_is_table_name(table)) {
        cv_verr_set(&verr, NULL, "destination_table",
                    "must be a table name (letters, digits, underscores, optionally "
                    "schema.table)");
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (cv_load_spec_decode(body, NULL, &load, &verr) ||
        cv_json_get_str(body, NULL, "transform", false, CV_SCRIPT_MAX_BYTES, &transform, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (transform && !transform[0]) {
        cv_verr_set(&verr, NULL, "transform", "must not be empty");
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!new_job_doc(&doc, id, sizeof(id), project_id, name, kind, res))
        goto out;
    BSON_APPEND_UTF8(&doc, "query", query);
    BSON_APPEND_UTF8(&doc, "destination_table", table);
    BSON_APPEND_UTF8(&doc, "mode", cv_load_mode_str(load.mode));
    if (load.method != CV_LOAD_AUTO)
        BSON_APPEND_UTF8(&doc, "load_method", cv_load_method_str(load.method));
    if (load.watermark[0])
        BSON_APPEND_UTF8(&doc, "watermark_column", load.watermark);
    if (load.timeout_seconds > 0)
        BSON_APPEND_INT32(&doc, "timeout_seconds", load.timeout_seconds);
    if (load.batch_rows > 0) {
        BSON_APPEND_INT64(&doc, "batch_rows", load.batch_rows);
        BSON_APPEND_UTF8(&doc, "checkpoint_column", load.checkpoint);
    }
    if (transform)
        BSON_APPEND_UTF8(&doc, "transform", transform);
    if (load.mode == CV_MODE_UPSERT) {
        bson_t keys;
        BSON_APPEND_ARRAY_BEGIN(&doc, "key", &keys);
        for (int i = 0; i < load.nkeys; i++) {
            char index[16];
            const char *index_key;
            bson_uint32_to_string((uint32_t)i, &index_key, index, sizeof(index));
            bson_append_utf8(&keys, index_key, -1, load.keys[i], -1);
        }
        bson_append_array_end(&doc, &keys);
    }
    insert_and_answer(api, CV_COLL_JOBS, "/api/v1/jobs", &doc, id, res);
out:
    bson_destroy(&doc);
    bson_destroy(project);
    cJSON_Delete(body);
}

/* ---- routing ------------------------------------------------------------ */

static void get_one(cv_api *api, const char *collection, const char *what, const char *id,
                    cv_http_response *res) {
    bson_t *doc = cv_api_load_doc(api, collection, what, id, res);
    if (!doc)
        return;
    res->body = cv_api_doc_to_json(doc);
    res->status = res->body ? 200 : 500;
    bson_destroy(doc);
}

static void health(cv_api *api, cv_http_response *res) {
    char why[512];
    cv_err err = cv_mongo_ping(api->mongo, why, sizeof(why));
    res->status = err ? 503 : 200;
    res->body = cJSON_CreateObject();
    cJSON_AddStringToObject(res->body, "status", err ? "degraded" : "ok");
    cJSON_AddStringToObject(res->body, "mongodb", err ? why : "ok");
}

/* Splits "/api/v1/a/b/c" into at most 6 segments; returns the count or -1. */
static int split_path(const char *path, char segs[6][64]) {
    int n = 0;
    const char *p = path;

    while (*p) {
        const char *start;
        size_t len;
        while (*p == '/')
            p++;
        if (!*p)
            break;
        start = p;
        while (*p && *p != '/')
            p++;
        len = (size_t)(p - start);
        if (n == 6 || len >= 64)
            return -1;
        memcpy(segs[n], start, len);
        segs[n][len] = '\0';
        n++;
    }
    return n;
}

static void handle(void *ctx, const cv_http_request *req, cv_http_response *res) {
    cv_api *api = ctx;
    char s[6][64];
    int n = split_path(req->path, s);
    bool get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;
    const char *allowed = NULL;

    if (n < 3 || strcmp(s[0], "api") != 0 || strcmp(s[1], "v1") != 0)
        goto not_found;
    if (n == 3 && strcmp(s[2], "health") == 0) {
        if (get) {
            health(api, res);
            return;
        }
        allowed = "GET";
    } else if (n == 3 && strcmp(s[2], "connections") == 0) {
        if (post) {
            create_connection(api, req, res);
            return;
        }
        allowed = "POST";
    } else if (n == 3 && strcmp(s[2], "projects") == 0) {
        if (post) {
            create_project(api, req, res);
            return;
        }
        allowed = "POST";
    } else if (n == 4 && strcmp(s[2], "connections") == 0) {
        if (get) {
            get_one(api, CV_COLL_CONNECTIONS, "connection", s[3], res);
            return;
        }
        allowed = "GET";
    } else if (n == 4 && strcmp(s[2], "projects") == 0) {
        if (get) {
            get_one(api, CV_COLL_PROJECTS, "project", s[3], res);
            return;
        }
        allowed = "GET";
    } else if (n == 4 && strcmp(s[2], "jobs") == 0) {
        if (get) {
            get_one(api, CV_COLL_JOBS, "job", s[3], res);
            return;
        }
        allowed = "GET";
    } else if (n == 4 && strcmp(s[2], "runs") == 0) {
        if (get) {
            get_one(api, CV_COLL_RUNS, "run", s[3], res);
            return;
        }
        allowed = "GET";
    } else if (n == 5 && strcmp(s[2], "projects") == 0 && strcmp(s[4], "jobs") == 0) {
        if (post) {
            create_job(api, s[3], req, res);
            return;
        }
        allowed = "POST";
    } else if (n == 5 && strcmp(s[2], "jobs") == 0 && strcmp(s[4], "runs") == 0) {
        if (post) {
            cv_api_trigger_run(api, s[3], req, res);
            return;
        }
        if (get) { /* the run history: every run and every tick that did not run */
            cv_api_list_runs(api, s[3], req, res);
            return;
        }
        allowed = "GET, POST";
    } else if (n == 5 && strcmp(s[2], "projects") == 0 && strcmp(s[4], "notifications") == 0) {
        if (get) {
            cv_api_list_notifications(api, s[3], req, res);
            return;
        }
        allowed = "GET";
    } else if (n == 5 && strcmp(s[2], "runs") == 0 && strcmp(s[4], "cancel") == 0) {
        if (post) {
            cv_api_cancel_run(api, s[3], res);
            return;
        }
        allowed = "POST";
    } else if (n == 5 && strcmp(s[2], "jobs") == 0 && strcmp(s[4], "schedule") == 0) {
        if (strcmp(req->method, "PUT") == 0) {
            cv_api_put_schedule(api, s[3], req, res);
            return;
        }
        if (get) {
            cv_api_get_schedule(api, s[3], res);
            return;
        }
        if (strcmp(req->method, "DELETE") == 0) {
            cv_api_delete_schedule(api, s[3], res);
            return;
        }
        allowed = "GET, PUT, DELETE";
    } else if (n == 5 && strcmp(s[2], "runs") == 0 && strcmp(s[4], "events") == 0) {
        if (get) {
            cv_api_list_events(api, s[3], req, res);
            return;
        }
        allowed = "GET";
    }
    if (allowed) { /* HEAD goes wherever GET does (cv_http.h) */
        snprintf(res->allow, sizeof(res->allow), "%s%s", allowed,
                 strstr(allowed, "GET") ? ", HEAD" : "");
        cv_http_error(res, 405, "method_not_allowed", NULL, "%s %s is not supported; use %s",
                      req->method, req->path, res->allow);
        return;
    }
not_found:
    cv_http_error(res, 404, "not_found", NULL, "no route for %s %s", req->method, req->path);
}

/* ---- lifecycle ---------------------------------------------------------- */

cv_api *cv_api_new(const cv_config *cfg, char *errbuf, size_t errlen) {
    cv_api *api = calloc(1, sizeof(*api));
    cv_http_limits limits;

    if (!api) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    api->cfg = *cfg;
    api->mongo = cv_mongo_new(cfg->mongo_uri, cfg->mongo_db, "convutell-api", errbuf, errlen);
    if (!api->mongo)
        goto fail;
    api->producer =
        cv_kafka_producer_new(cfg->kafka_bootstrap, CV_API_PUBLISH_TIMEOUT_MS, errbuf, errlen);
    if (!api->producer)
        goto fail;
    if (!(api->cache = cv_cache_new(4096, cfg->cache_ms)) ||
        !(api->runs = cv_group_new(api->mongo, CV_COLL_RUNS, 100))) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    limits = (cv_http_limits){.max_body = CV_API_MAX_BODY,
                              .connections = (unsigned)cfg->http_connections,
                              .per_address = (unsigned)cfg->http_per_address,
                              .idle_seconds = (unsigned)cfg->http_idle_seconds,
                              .request_seconds = (unsigned)cfg->http_request_seconds};
    api->http =
        cv_http_server_new(cfg->http_host, cfg->http_port, &limits, handle, api, errbuf, errlen);
    if (!api->http)
        goto fail;
    return api;
fail:
    cv_api_destroy(api);
    return NULL;
}

cv_err cv_api_run(cv_api *api, volatile sig_atomic_t *stop) {
    cv_log_info("api listening on http://%s:%d/api/v1", api->cfg.http_host, api->cfg.http_port);
    while (!*stop) {
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return CV_OK;
}

void cv_api_destroy(cv_api *api) {
    if (!api)
        return;
    cv_http_server_destroy(api->http);
    cv_kafka_producer_destroy(api->producer);
    cv_mongo_destroy(api->mongo);
    cv_cache_destroy(api->cache);
    cv_group_destroy(api->runs); /* after the server: no request runs any more */
    free(api);
}
