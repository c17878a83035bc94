/*
 * cv_api_jobs.c - a project's jobs: made, listed, changed and deleted.
 *
 * A job's definition is read from a body by its kind's rules (the same for a
 * create and for a change: a PATCH is laid over the stored definition and
 * checked whole). A change makes the job's next version; the version it
 * replaces is kept in `job_versions`, so a run queued before the change runs
 * the definition it was queued with (the worker reads it by the version its
 * message names). A deleted job is kept, marked, for the runs queued before:
 * the API answers 404 for it from then on.
 */
#include "cv_api_int.h"

#include "cv_json.h"
#include "cv_launch.h"
#include "cv_message.h"
#include "cv_page.h"
#include "cv_runs.h"
#include "cv_sqlsplit.h"
#include "cv_store.h"
#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define JOBS_PAGE_MAX 500

static const char *const python_fields[] = {
    "name", "kind", "script", "parameters", "timeout_seconds", "limits", NULL};
static const char *const sql_fields[] = {"name", "kind", "statements", "connection", NULL};
static const char *const transfer_fields[] = {"name",
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

/* The members a body of kind may have (NULL for no kind of ours), and what
 * its errors call it. */
static const char *const *fields_of(cv_job_kind kind, const char **noun) {
    switch (kind) {
        case CV_JOB_KIND_TRANSFER:
            *noun = "a job";
            return transfer_fields;
        case CV_JOB_KIND_PYTHON:
            *noun = "a python job";
            return python_fields;
        case CV_JOB_KIND_SQL:
            *noun = "a sql job";
            return sql_fields;
        default:
            *noun = "a job";
            return NULL;
    }
}

/* A transfer job's fields, checked. */
typedef struct transfer_def {
    const char *query, *table, *transform; /* borrowed from the body; transform may be NULL */
    cv_load_spec load;
} transfer_def;

static bool read_transfer(const cJSON *body, transfer_def *t, cv_verr *verr) {
    t->transform = NULL;
    if (cv_json_get_str(body, NULL, "query", true, CV_QUERY_MAX_BYTES, &t->query, verr) ||
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

/* A python job's script, parameters, timeout and limits, stored as the
 * message carries them. */
static bool python_definition(const cJSON *body, bson_t *def, cv_verr *verr, bool *nomem) {
    cv_python_spec python;
    cJSON *spec = NULL;
    char *spec_json = NULL;
    bson_t *spec_bson = NULL;
    bson_error_t error;
    bool ok = false;

    memset(&python, 0, sizeof(python));
    if (cv_python_spec_decode(body, NULL, &python, verr))
        goto out;
    if (!(spec = cJSON_CreateObject()) || cv_python_spec_encode(&python, spec) != 0 ||
        !(spec_json = cJSON_PrintUnformatted(spec)) ||
        !(spec_bson = bson_new_from_json((const uint8_t *)spec_json, -1, &error))) {
        *nomem = true;
        goto out;
    }
    bson_concat(def, spec_bson);
    ok = true;
out:
    bson_destroy(spec_bson);
    cJSON_free(spec_json);
    cJSON_Delete(spec);
    cv_python_spec_release(&python);
    return ok;
}

/* A sql job's statements and the connection they run on (default the
 * destination). */
static bool sql_definition(const cJSON *body, bson_t *def, cv_verr *verr) {
    const char *statements, *connection = NULL;

    if (cv_json_get_str(body, NULL, "statements", true, CV_QUERY_MAX_BYTES, &statements, verr) ||
        cv_json_get_str(body, NULL, "connection", false, 16, &connection, verr))
        return false;
    if (!statements[0]) {
        cv_verr_set(verr, NULL, "statements", "must not be empty");
        return false;
    }
    if (connection && strcmp(connection, "origin") != 0 && strcmp(connection, "destination") != 0) {
        cv_verr_set(verr, NULL, "connection", "must be \"origin\" or \"destination\", not \"%s\"",
                    connection);
        return false;
    }
    BSON_APPEND_UTF8(def, "statements", statements);
    BSON_APPEND_UTF8(def, "connection", connection ? connection : "destination");
    return true;
}

/* Reads the definition of a job of kind from body (name and kind besides)
 * into def; false having answered 422 (naming the field) or 500. */
static bool job_definition(const cJSON *body, cv_job_kind kind, bson_t *def,
                           cv_http_response *res) {
    const char *noun;
    const char *const *fields = fields_of(kind, &noun);
    bool ok = false, nomem = false;
    transfer_def t;
    cv_verr verr;

    if (cv_json_only(body, NULL, fields, noun, &verr)) {
        cv_api_field_error(res, &verr);
        return false;
    }
    if (kind == CV_JOB_KIND_PYTHON) {
        ok = python_definition(body, def, &verr, &nomem);
    } else if (kind == CV_JOB_KIND_SQL) {
        ok = sql_definition(body, def, &verr);
    } else if ((ok = read_transfer(body, &t, &verr))) {
        BSON_APPEND_UTF8(def, "query", t.query);
        BSON_APPEND_UTF8(def, "destination_table", t.table);
        if (t.transform)
            BSON_APPEND_UTF8(def, "transform", t.transform);
        append_load(def, &t.load);
    }
    if (nomem)
        cv_api_internal_error(res, CV_ERR_NOMEM, "cannot store the job");
    else if (!ok)
        cv_api_field_error(res, &verr);
    return ok;
}

/* The kind a body names; false having answered 422. */
static bool read_kind(const cJSON *body, bool required, cv_job_kind *kind, cv_http_response *res) {
    const char *name = NULL;
    cv_verr verr;

    if (cv_json_get_str(body, NULL, "kind", required, 31, &name, &verr)) {
        cv_api_field_error(res, &verr);
        return false;
    }
    if (name && (*kind = cv_job_kind_parse(name)) == CV_JOB_KIND_QUERY) {
        cv_verr_set(&verr, NULL, "kind",
                    "\"query\" is the SQL console's (POST /api/v1/projects/{id}/queries/run), "
                    "not a stored job's; use \"sql\"");
        cv_api_field_error(res, &verr);
        return false;
    }
    if (name && *kind == CV_JOB_KIND_NONE) {
        cv_verr_set(&verr, NULL, "kind",
                    "must be \"sql_transfer\", \"python\" or \"sql\", not \"%s\"", name);
        cv_api_field_error(res, &verr);
        return false;
    }
    return true;
}

void cv_api_create_job(cv_api *api, const char *project_id, const cv_http_request *req,
                       cv_http_response *res) {
    bson_t *project = cv_api_load_doc(api, CV_COLL_PROJECTS, "project", project_id, res);
    bson_t doc = BSON_INITIALIZER, def = BSON_INITIALIZER;
    cv_job_kind kind = CV_JOB_KIND_NONE;
    char id[CV_ID_LEN];
    cJSON *body = NULL;
    const char *name;
    cv_verr verr;

    if (!project || !(body = cv_api_parse_body(req, res)))
        goto out;
    if (cv_json_get_str(body, NULL, "name", true, 200, &name, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!read_kind(body, true, &kind, res) || !job_definition(body, kind, &def, res) ||
        !cv_api_new_doc(&doc, id, sizeof(id), cv_api_caller(req)->user, res))
        goto out;
    BSON_APPEND_UTF8(&doc, "project_id", project_id);
    BSON_APPEND_UTF8(&doc, "name", name);
    BSON_APPEND_UTF8(&doc, "kind", cv_job_kind_str(kind));
    /* Runs name the version they are for; a change to a job makes the next one. */
    BSON_APPEND_INT32(&doc, "version", 1);
    bson_concat(&doc, &def);
    cv_api_insert_and_answer(api, CV_COLL_JOBS, "/api/v1/jobs", &doc, id, res);
out:
    bson_destroy(project);
    bson_destroy(&doc);
    bson_destroy(&def);
    cJSON_Delete(body);
}

/* The stored definition of fields with body laid over it: a member of body
 * replaces the stored one, null removes it. New; NULL on NOMEM. */
static cJSON *lay_over(const bson_t *job, const cJSON *body, const char *const *fields) {
    cJSON *stored = cv_api_doc_to_json(job), *merged = cJSON_CreateObject();

    for (int i = 0; stored && merged && fields[i]; i++) {
        const cJSON *item = cJSON_HasObjectItem(body, fields[i])
                                ? cJSON_GetObjectItemCaseSensitive(body, fields[i])
                                : cJSON_GetObjectItemCaseSensitive(stored, fields[i]);
        if (item && !cJSON_IsNull(item))
            cJSON_AddItemToObject(merged, fields[i], cJSON_Duplicate(item, true));
    }
    if (!stored) {
        cJSON_Delete(merged);
        merged = NULL;
    }
    cJSON_Delete(stored);
    return merged;
}

/* The update of a job to its next version: def and name set, the fields of
 * its kind that def no longer has unset. */
static void next_version(bson_t *update, const bson_t *def, const char *name, int64_t version,
                         const char *const *fields) {
    bson_t set, unset;
    bool any = false;

    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    bson_concat(&set, def);
    BSON_APPEND_UTF8(&set, "name", name);
    BSON_APPEND_INT64(&set, "version", version + 1);
    cv_mongo_append_time(&set, "updated_at", cv_time_now_ms());
    bson_append_document_end(update, &set);
    for (int i = 0; fields[i]; i++)
        any |= strcmp(fields[i], "name") != 0 && strcmp(fields[i], "kind") != 0 &&
               !bson_has_field(def, fields[i]);
    if (!any)
        return;
    BSON_APPEND_DOCUMENT_BEGIN(update, "$unset", &unset);
    for (int i = 0; fields[i]; i++)
        if (strcmp(fields[i], "name") != 0 && strcmp(fields[i], "kind") != 0 &&
            !bson_has_field(def, fields[i]))
            BSON_APPEND_UTF8(&unset, fields[i], "");
    bson_append_document_end(update, &unset);
}

/* Keeps the job as it stands for the runs queued at its version. */
static bool keep_version(cv_api *api, const bson_t *job, cv_http_response *res) {
    bson_t *kept = cv_launch_version_keep(job);
    char why[512];
    cv_err err = kept ? cv_mongo_insert(api->mongo, CV_COLL_JOB_VERSIONS, kept, why, sizeof(why))
                      : cv_err_set(why, sizeof(why), CV_ERR_NOMEM, "out of memory");

    bson_destroy(kept);
    if (err && err != CV_ERR_CONFLICT) { /* a conflict: kept by an earlier, raced change */
        cv_api_internal_error(res, err, why);
        return false;
    }
    return true;
}

/* PATCH /jobs/{id}: the body laid over the stored definition and checked as
 * a new job's is; the job's next version. The kind cannot change. */
void cv_api_patch_job(cv_api *api, const char *id, const cv_http_request *req,
                      cv_http_response *res) {
    bson_t *job = cv_api_load_doc(api, CV_COLL_JOBS, "job", id, res);
    bson_t def = BSON_INITIALIZER, filter = BSON_INITIALIZER, update = BSON_INITIALIZER;
    cJSON *body = NULL, *merged = NULL;
    const char *noun, *name, *const *fields;
    cv_job_kind kind, asked;
    int64_t version, matched = 0;
    char why[512], etag[CV_API_ETAG_LEN];
    cv_verr verr;
    cv_err err;

    if (!job)
        goto out;
    cv_api_etag(CV_COLL_JOBS, job, etag);
    if (!cv_api_if_match(req, "job", id, etag, res) || !(body = cv_api_parse_body(req, res)))
        goto out;
    asked = kind = cv_job_kind_parse(cv_mongo_doc_str(job, "kind"));
    if (!(fields = fields_of(kind, &noun))) {
        cv_api_internal_error(res, CV_ERR_INVALID, "the stored job has no kind of ours");
        goto out;
    }
    if (cv_json_only(body, NULL, fields, noun, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!read_kind(body, false, &asked, res))
        goto out;
    if (asked != kind) {
        cv_verr_set(&verr, NULL, "kind", "cannot change: this is a %s job; make a new job instead",
                    cv_job_kind_str(kind));
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!(merged = lay_over(job, body, fields))) {
        cv_api_internal_error(res, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (cv_json_get_str(merged, NULL, "name", true, 200, &name, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!job_definition(merged, kind, &def, res) || !keep_version(api, job, res))
        goto out;
    version = cv_mongo_doc_int(job, "version", 1);
    BSON_APPEND_UTF8(&filter, "_id", id);
    BSON_APPEND_INT64(&filter, "version", version);
    next_version(&update, &def, name, version, fields);
    if ((err = cv_mongo_update(api->mongo, CV_COLL_JOBS, &filter, &update, false, &matched, why,
                               sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    cv_cache_drop(api->cache, CV_COLL_JOBS, id);
    if (matched == 0) {
        cv_http_error(res, 409, "conflict", NULL,
                      "job %s changed while this change was made: read it again", id);
        goto out;
    }
    cv_api_get_one(api, CV_COLL_JOBS, "job", id, res);
out:
    bson_destroy(job);
    bson_destroy(&def);
    bson_destroy(&filter);
    bson_destroy(&update);
    cJSON_Delete(merged);
    cJSON_Delete(body);
}

/* DELETE /jobs/{id}: 409 while it has a schedule (delete that first) or a run
 * going; else the job is marked deleted (kept for runs queued before: they run
 * as they were queued) and the API no longer shows it. */
void cv_api_delete_job(cv_api *api, const char *id, const cv_http_request *req,
                       cv_http_response *res) {
    bson_t *job = cv_api_load_doc(api, CV_COLL_JOBS, "job", id, res);
    char why[512], run[CV_ID_LEN + 8] = "";
    cv_err err;

    if (!job)
        goto out;
    if (bson_has_field(job, "schedule")) {
        cv_http_error(res, 409, "in_use", NULL,
                      "job %s has a schedule: DELETE /api/v1/jobs/%s/schedule first", id, id);
        goto out;
    }
    if ((err = cv_runs_active_of_job(api->mongo, id, run, sizeof(run), why, sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    if (run[0]) {
        cv_http_error(res, 409, "in_use", NULL,
                      "job %s has a run going (%s): cancel it or let it end, then delete the job",
                      id, run);
        goto out;
    }
    if ((err = cv_api_mark_deleted(api, CV_COLL_JOBS, id, cv_api_caller(req)->user, false, why,
                                   sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    res->status = 204;
out:
    bson_destroy(job);
}

/* GET /projects/{id}/jobs?kind=&scheduled=true|false&q=: the project's jobs,
 * oldest first, a page at a time. */
void cv_api_list_jobs(cv_api *api, const char *project_id, const cv_http_request *req,
                      cv_http_response *res) {
    const char *kind = cv_http_arg(req, "kind"), *scheduled = cv_http_arg(req, "scheduled");
    bson_t where = BSON_INITIALIZER, cond;
    cv_verr verr;

    BSON_APPEND_UTF8(&where, "project_id", project_id);
    cv_mongo_append_absent(&where, "deleted_at");
    if (kind && cv_job_kind_parse(kind) == CV_JOB_KIND_NONE) {
        cv_verr_set(&verr, NULL, "kind",
                    "must be \"sql_transfer\", \"python\" or \"sql\", not \"%s\"", kind);
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (kind)
        BSON_APPEND_UTF8(&where, "kind", kind);
    if (scheduled && strcmp(scheduled, "true") != 0 && strcmp(scheduled, "false") != 0) {
        cv_verr_set(&verr, NULL, "scheduled", "must be true or false, not \"%s\"", scheduled);
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (scheduled) {
        BSON_APPEND_DOCUMENT_BEGIN(&where, "schedule", &cond);
        BSON_APPEND_BOOL(&cond, "$exists", strcmp(scheduled, "true") == 0);
        bson_append_document_end(&where, &cond);
    }
    if (cv_api_name_filter(req, &where, res))
        cv_api_list_where(api, req, CV_COLL_JOBS, &where, "jobs", JOBS_PAGE_MAX, res);
out:
    bson_destroy(&where);
}
