/*
 * cv_api_catalog.c - the catalog's routes: connections, projects and jobs
 * created (each body checked field by field, a connection string masked for
 * showing and sealed for keeping), and any stored object read back by id.
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_api_int.h"

#include "cv_connstr.h"
#include "cv_id.h"
#include "cv_json.h"
#include "cv_message.h"
#include "cv_mongo.h"
#include "cv_secret.h"
#include "cv_sqlsplit.h"
#include "cv_store.h"
#include "cv_time.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

void cv_api_insert_and_answer(cv_api *api, const char *collection, const char *base_path,
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

/* Starts a job document: a fresh id, its project, name and kind. */
static bool new_job_doc(bson_t *doc, char *id, size_t idlen, const char *project_id,
                        const char *name, const char *kind, cv_http_response *res) {
    if (!cv_api_new_doc(doc, id, idlen, res))
        return false;
    BSON_APPEND_UTF8(doc, "project_id", project_id);
    BSON_APPEND_UTF8(doc, "name", name);
    BSON_APPEND_UTF8(doc, "kind", kind);
    /* Runs name the version they are for; a change to a job makes the next one. */
    BSON_APPEND_INT32(doc, "version", 1);
    return true;
}

bool cv_api_new_doc(bson_t *doc, char *id, size_t idlen, cv_http_response *res) {
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

void cv_api_create_connection(cv_api *api, const char *id_unused, const cv_http_request *req,
                              cv_http_response *res) {
    (void)id_unused;
    static const char *const fields[] = {"name", "odbc", "project_id", NULL};
    cv_caller who = *cv_api_caller(req);
    char id[CV_ID_LEN];
    const char *name, *odbc, *project = NULL;
    char *masked = NULL, *sealed = NULL, why[256];
    cJSON *body = cv_api_parse_body(req, res);
    bson_t doc = BSON_INITIALIZER;
    cv_verr verr;
    cv_err err;

    if (!body)
        goto out;
    if (cv_json_only(body, NULL, fields, "a connection", &verr) ||
        cv_json_get_str(body, NULL, "name", true, 200, &name, &verr) ||
        cv_json_get_str(body, NULL, "odbc", true, 4096, &odbc, &verr) ||
        cv_json_get_id(body, NULL, "project_id", false, &project, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    /* A project's connection is its editors'; one without is its maker's
     * until a project of theirs uses it (cv_api_projects.c). */
    if (project && !cv_api_project_role(api, &who, project, CV_ROLE_EDITOR, res))
        goto out;
    if (!strchr(odbc, '=')) {
        cv_verr_set(&verr, NULL, "odbc",
                    "must be an ODBC connection string such as \"Driver=SQLite3;Database=/data/"
                    "app.db\"");
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!cv_api_new_doc(&doc, id, sizeof(id), res))
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
    if (project)
        BSON_APPEND_UTF8(&doc, "project_id", project);
    BSON_APPEND_UTF8(&doc, "created_by", who.user);
    cv_api_insert_and_answer(api, CV_COLL_CONNECTIONS, "/api/v1/connections", &doc, id, res);
out:
    free(masked);
    free(sealed);
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
    if (!new_job_doc(&doc, id, sizeof(id), project_id, name, cv_job_kind_str(CV_JOB_KIND_PYTHON),
                     res))
        goto out;
    bson_concat(&doc, spec_bson);
    cv_api_insert_and_answer(api, CV_COLL_JOBS, "/api/v1/jobs", &doc, id, res);
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
    if (!new_job_doc(&doc, id, sizeof(id), project_id, name, cv_job_kind_str(CV_JOB_KIND_SQL), res))
        goto out;
    BSON_APPEND_UTF8(&doc, "statements", statements);
    BSON_APPEND_UTF8(&doc, "connection", connection ? connection : "destination");
    cv_api_insert_and_answer(api, CV_COLL_JOBS, "/api/v1/jobs", &doc, id, res);
out:
    bson_destroy(&doc);
}

/* A transfer job's fields, checked. */
typedef struct transfer_def {
    const char *query, *table, *transform; /* borrowed from the body; transform may be NULL */
    cv_load_spec load;
} transfer_def;

static bool read_transfer(const cJSON *body, transfer_def *t, cv_verr *verr) {
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

    t->transform = NULL;
    if (cv_json_only(body, NULL, fields, "a job", verr) ||
        cv_json_get_str(body, NULL, "query", true, CV_QUERY_MAX_BYTES, &t->query, verr) ||
        cv_json_get_str(body, NULL, "destination_table", true, 127, &t->table, verr))
        return false;
    if (cv_sqlsplit_count(t->query, false) > 1 && cv_sqlsplit_count(t->query, true) > 1) {
        /* More than one by PostgreSQL's and SQLite's rules and by MariaDB's. */
        cv_verr_set(verr, NULL, "query",
                    "must be one statement (a SELECT); it runs read-only on the origin");
        return false;
    }
    if (!cv_json_is_table_name(t->table)) {
        cv_verr_set(verr, NULL, "destination_table",
                    "must be a table name (letters, digits, underscores, optionally "
                    "schema.table)");
        return false;
    }
    if (cv_load_spec_decode(body, NULL, &t->load, verr) ||
        cv_json_get_str(body, NULL, "transform", false, CV_SCRIPT_MAX_BYTES, &t->transform, verr))
        return false;
    if (t->transform && !t->transform[0]) {
        cv_verr_set(verr, NULL, "transform", "must not be empty");
        return false;
    }
    return true;
}

/* Appends a transfer's load options as the stored job keeps them. */
static void append_load(bson_t *doc, const cv_load_spec *load) {
    BSON_APPEND_UTF8(doc, "mode", cv_load_mode_str(load->mode));
    if (load->method != CV_LOAD_AUTO)
        BSON_APPEND_UTF8(doc, "load_method", cv_load_method_str(load->method));
    if (load->watermark[0])
        BSON_APPEND_UTF8(doc, "watermark_column", load->watermark);
    if (load->timeout_seconds > 0)
        BSON_APPEND_INT32(doc, "timeout_seconds", load->timeout_seconds);
    if (load->batch_rows > 0) {
        BSON_APPEND_INT64(doc, "batch_rows", load->batch_rows);
        BSON_APPEND_UTF8(doc, "checkpoint_column", load->checkpoint);
    }
    if (load->mode == CV_MODE_UPSERT) {
        bson_t keys;
        BSON_APPEND_ARRAY_BEGIN(doc, "key", &keys);
        for (int i = 0; i < load->nkeys; i++) {
            char index[16];
            const char *index_key;
            bson_uint32_to_string((uint32_t)i, &index_key, index, sizeof(index));
            bson_append_utf8(&keys, index_key, -1, load->keys[i], -1);
        }
        bson_append_array_end(doc, &keys);
    }
}

/* POST /projects/{id}/jobs for kind "sql_transfer". */
static void create_transfer_job(cv_api *api, const char *project_id, const cJSON *body,
                                const char *name, cv_http_response *res) {
    char id[CV_ID_LEN];
    bson_t doc = BSON_INITIALIZER;
    transfer_def t;
    cv_verr verr;

    if (!read_transfer(body, &t, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!new_job_doc(&doc, id, sizeof(id), project_id, name, cv_job_kind_str(CV_JOB_KIND_TRANSFER),
                     res))
        goto out;
    BSON_APPEND_UTF8(&doc, "query", t.query);
    BSON_APPEND_UTF8(&doc, "destination_table", t.table);
    if (t.transform)
        BSON_APPEND_UTF8(&doc, "transform", t.transform);
    append_load(&doc, &t.load);
    cv_api_insert_and_answer(api, CV_COLL_JOBS, "/api/v1/jobs", &doc, id, res);
out:
    bson_destroy(&doc);
}

void cv_api_create_job(cv_api *api, const char *project_id, const cv_http_request *req,
                       cv_http_response *res) {
    bson_t *project = cv_api_load_doc(api, CV_COLL_PROJECTS, "project", project_id, res);
    cJSON *body = NULL;
    const char *name, *kind;
    cv_verr verr;

    if (!project || !(body = cv_api_parse_body(req, res)))
        goto out;
    if (cv_json_get_str(body, NULL, "name", true, 200, &name, &verr) ||
        cv_json_get_str(body, NULL, "kind", true, 31, &kind, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    switch (cv_job_kind_parse(kind)) {
        case CV_JOB_KIND_TRANSFER:
            create_transfer_job(api, project_id, body, name, res);
            break;
        case CV_JOB_KIND_PYTHON:
            create_python_job(api, project_id, body, name, res);
            break;
        case CV_JOB_KIND_SQL:
            create_sql_job(api, project_id, body, name, res);
            break;
        default:
            cv_verr_set(&verr, NULL, "kind",
                        "must be \"sql_transfer\", \"python\" or \"sql\", not \"%s\"", kind);
            cv_api_field_error(res, &verr);
    }
out:
    bson_destroy(project);
    cJSON_Delete(body);
}

/* ---- routing ------------------------------------------------------------ */

void cv_api_get_one(cv_api *api, const char *collection, const char *what, const char *id,
                    cv_http_response *res) {
    bson_t *doc = cv_api_load_doc(api, collection, what, id, res);
    if (!doc)
        return;
    res->body = cv_api_doc_to_json(doc);
    res->status = res->body ? 200 : 500;
    bson_destroy(doc);
}

/* GET /connections/{id}: the string as the caller's role shows it. */
void cv_api_get_connection(cv_api *api, const char *id, const cv_http_request *req,
                           cv_http_response *res) {
    cJSON *odbc;
    char *shown;

    cv_api_get_one(api, CV_COLL_CONNECTIONS, "connection", id, res);
    if (res->status != 200 || !(odbc = cJSON_GetObjectItemCaseSensitive(res->body, "odbc")) ||
        !cJSON_IsString(odbc))
        return;
    if (!(shown = cv_api_connection_view(cv_api_caller(req), odbc->valuestring))) {
        cJSON_Delete(res->body);
        res->body = NULL;
        cv_api_internal_error(res, CV_ERR_NOMEM, "out of memory");
        return;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(res->body, "odbc", cJSON_CreateString(shown));
    free(shown);
}

void cv_api_get_job(cv_api *api, const char *id, const cv_http_request *req,
                    cv_http_response *res) {
    (void)req;
    cv_api_get_one(api, CV_COLL_JOBS, "job", id, res);
}

void cv_api_get_run(cv_api *api, const char *id, const cv_http_request *req,
                    cv_http_response *res) {
    (void)req;
    cv_api_get_one(api, CV_COLL_RUNS, "run", id, res);
}
