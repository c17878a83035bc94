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
    cv_api_etag(collection, doc, res->etag);
}

static void now_text(char *buf, size_t len) {
    cv_time_format(cv_time_now_ms(), buf, len);
}

bool cv_api_new_doc(bson_t *doc, char *id, size_t idlen, const char *by, cv_http_response *res) {
    char now[CV_TIME_RFC3339_LEN];
    if (cv_id_new(id, idlen) != 0) {
        cv_api_internal_error(res, CV_ERR_IO, "cannot make an id");
        return false;
    }
    now_text(now, sizeof(now));
    BSON_APPEND_UTF8(doc, "_id", id);
    BSON_APPEND_UTF8(doc, "created_at", now);
    BSON_APPEND_UTF8(doc, "updated_at", now);
    BSON_APPEND_UTF8(doc, "created_by", by);
    return true;
}

/* ---- connections -------------------------------------------------------- */

/* The string checked, masked for showing and sealed for connection id;
 * false having answered 422 or 500. The caller frees both. */
static bool seal_odbc(cv_api *api, const char *id, const char *odbc, char **masked, char **sealed,
                      cv_http_response *res) {
    char why[256];
    cv_verr verr;
    cv_err err;

    *masked = *sealed = NULL;
    if (!strchr(odbc, '=')) {
        cv_verr_set(&verr, NULL, "odbc",
                    "must be an ODBC connection string such as \"Driver=SQLite3;Database=/data/"
                    "app.db\"");
        cv_api_field_error(res, &verr);
        return false;
    }
    /* The full string is stored sealed; clients only ever see the masked copy. */
    if ((err = cv_connstr_mask(odbc, masked, why, sizeof(why)))) {
        if (err != CV_ERR_INVALID) {
            cv_api_internal_error(res, err, why);
            return false;
        }
        cv_verr_set(&verr, NULL, "odbc", "does not parse as an ODBC connection string: %s", why);
        cv_api_field_error(res, &verr);
        return false;
    }
    if ((err = cv_secret_seal(api->cfg.secret_key, id, odbc, sealed, why, sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        return false;
    }
    return true;
}

void cv_api_create_connection(cv_api *api, const char *id_unused, const cv_http_request *req,
                              cv_http_response *res) {
    (void)id_unused;
    static const char *const fields[] = {"name", "odbc", "project_id", NULL};
    cv_caller who = *cv_api_caller(req);
    char id[CV_ID_LEN];
    const char *name, *odbc, *project = NULL;
    char *masked = NULL, *sealed = NULL;
    cJSON *body = cv_api_parse_body(req, res);
    bson_t doc = BSON_INITIALIZER;
    cv_verr verr;

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
    if (!strchr(odbc, '=')) { /* before an id is made: the same answer as ever */
        seal_odbc(api, "", odbc, &masked, &sealed, res);
        goto out;
    }
    if (!cv_api_new_doc(&doc, id, sizeof(id), who.user, res) ||
        !seal_odbc(api, id, odbc, &masked, &sealed, res))
        goto out;
    BSON_APPEND_UTF8(&doc, "name", name);
    BSON_APPEND_UTF8(&doc, "odbc", masked);
    BSON_APPEND_UTF8(&doc, "odbc_sealed", sealed);
    if (project)
        BSON_APPEND_UTF8(&doc, "project_id", project);
    cv_api_insert_and_answer(api, CV_COLL_CONNECTIONS, "/api/v1/connections", &doc, id, res);
out:
    free(masked);
    free(sealed);
    bson_destroy(&doc);
    cJSON_Delete(body);
}

/* PATCH /connections/{id} (editors of its project): a new name, a new
 * string (checked, masked and sealed as a new one's), or both. Workers see
 * a new string within their cache's time (CONVUTELL_CACHE_MS). */
void cv_api_patch_connection(cv_api *api, const char *id, const cv_http_request *req,
                             cv_http_response *res) {
    static const char *const fields[] = {"name", "odbc", NULL};
    bson_t *stored = cv_api_load_doc(api, CV_COLL_CONNECTIONS, "connection", id, res);
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    char *masked = NULL, *sealed = NULL, why[256], etag[CV_API_ETAG_LEN];
    const char *name = NULL, *odbc = NULL;
    cJSON *body = NULL;
    cv_verr verr;
    cv_err err;

    if (!stored)
        goto out;
    cv_api_etag(CV_COLL_CONNECTIONS, stored, etag);
    if (!cv_api_if_match(req, "connection", id, etag, res) || !(body = cv_api_parse_body(req, res)))
        goto out;
    if (cv_json_only(body, NULL, fields, "a connection change", &verr) ||
        cv_json_get_str(body, NULL, "name", false, 200, &name, &verr) ||
        cv_json_get_str(body, NULL, "odbc", false, 4096, &odbc, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (odbc && !seal_odbc(api, id, odbc, &masked, &sealed, res))
        goto out;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    if (name)
        BSON_APPEND_UTF8(&set, "name", name);
    if (odbc) {
        BSON_APPEND_UTF8(&set, "odbc", masked);
        BSON_APPEND_UTF8(&set, "odbc_sealed", sealed);
    }
    cv_mongo_append_time(&set, "updated_at", cv_time_now_ms());
    bson_append_document_end(&update, &set);
    BSON_APPEND_UTF8(&filter, "_id", id);
    err = cv_mongo_update(api->mongo, CV_COLL_CONNECTIONS, &filter, &update, false, NULL, why,
                          sizeof(why));
    cv_cache_drop(api->cache, CV_COLL_CONNECTIONS, id);
    if (err)
        cv_api_internal_error(res, err, why);
    else
        cv_api_get_connection(api, id, req, res);
out:
    free(masked);
    free(sealed);
    bson_destroy(stored);
    bson_destroy(&filter);
    bson_destroy(&update);
    cJSON_Delete(body);
}

/* ---- routing ------------------------------------------------------------ */

void cv_api_etag(const char *collection, const bson_t *doc, char buf[CV_API_ETAG_LEN]) {
    const char *updated = cv_mongo_doc_str(doc, "updated_at");

    if (!updated) /* made before objects had it */
        updated = cv_mongo_doc_str(doc, "created_at");
    buf[0] = '\0';
    if (strcmp(collection, CV_COLL_JOBS) == 0)
        snprintf(buf, CV_API_ETAG_LEN, "\"v%lld\"", (long long)cv_mongo_doc_int(doc, "version", 1));
    else if ((strcmp(collection, CV_COLL_PROJECTS) == 0 ||
              strcmp(collection, CV_COLL_SAVED_QUERIES) == 0 ||
              strcmp(collection, CV_COLL_CONNECTIONS) == 0) &&
             updated)
        snprintf(buf, CV_API_ETAG_LEN, "\"%s\"", updated);
}

bool cv_api_if_match(const cv_http_request *req, const char *what, const char *id, const char *etag,
                     cv_http_response *res) {
    const char *want = cv_http_header(req, "If-Match");

    if (!want || strcmp(want, "*") == 0 || (etag[0] && strcmp(want, etag) == 0))
        return true;
    cv_http_error(res, 412, "precondition_failed", NULL,
                  "%s %s is at %s, not at the If-Match %s: read it again", what, id, etag, want);
    return false;
}

void cv_api_get_one(cv_api *api, const char *collection, const char *what, const char *id,
                    cv_http_response *res) {
    bson_t *doc = cv_api_load_doc(api, collection, what, id, res);
    if (!doc)
        return;
    res->body = cv_api_doc_to_json(doc);
    res->status = res->body ? 200 : 500;
    cv_api_etag(collection, doc, res->etag);
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

/* Shows each connection of a list's `key` as the caller's role may see it. */
static void view_connections(const cv_caller *who, cv_http_response *res) {
    cJSON *list = res->body ? cJSON_GetObjectItemCaseSensitive(res->body, "connections") : NULL;
    cJSON *item;

    cJSON_ArrayForEach(item, list) {
        cJSON *odbc = cJSON_GetObjectItemCaseSensitive(item, "odbc");
        char *shown = cJSON_IsString(odbc) ? cv_api_connection_view(who, odbc->valuestring) : NULL;
        if (shown)
            cJSON_ReplaceItemInObjectCaseSensitive(item, "odbc", cJSON_CreateString(shown));
        free(shown);
    }
}

/* GET /projects/{id}/connections: the project's own connections, oldest first. */
void cv_api_list_connections(cv_api *api, const char *project_id, const cv_http_request *req,
                             cv_http_response *res) {
    bson_t where = BSON_INITIALIZER;

    BSON_APPEND_UTF8(&where, "project_id", project_id);
    if (cv_api_name_filter(req, &where, res)) {
        cv_api_list_where(api, req, CV_COLL_CONNECTIONS, &where, "connections", 500, res);
        view_connections(cv_api_caller(req), res);
    }
    bson_destroy(&where);
}

/* DELETE /connections/{id} (editors of its project): 409 naming the projects
 * that use it. */
void cv_api_delete_connection(cv_api *api, const char *id, const cv_http_request *req,
                              cv_http_response *res) {
    bson_t filter = BSON_INITIALIZER, *users = NULL, doc;
    char names[512] = "", why[512];
    int64_t deleted = 0, n = 0;
    bson_iter_t it;
    cv_err err;

    (void)req;
    if ((err = cv_api_connection_users(api, id, 5, &users, why, sizeof(why))))
        goto fail;
    CV_MONGO_EACH_DOC(users, it, doc) {
        const char *pid = cv_mongo_doc_str(&doc, "_id");
        snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", n++ ? ", " : "",
                 pid ? pid : "?");
    }
    if (n) {
        cv_http_error(res, 409, "in_use", NULL,
                      "connection %s is used by project%s %s: change %s first", id,
                      n > 1 ? "s" : "", names, n > 1 ? "them" : "it");
        goto out;
    }
    BSON_APPEND_UTF8(&filter, "_id", id);
    if ((err = cv_mongo_delete_many(api->mongo, CV_COLL_CONNECTIONS, &filter, &deleted, why,
                                    sizeof(why))))
        goto fail;
    res->status = deleted ? 204 : 404;
    if (!deleted)
        cv_http_error(res, 404, "not_found", NULL, "no connection with id '%s'", id);
    goto out;
fail:
    cv_api_internal_error(res, err, why);
out:
    bson_destroy(users);
    bson_destroy(&filter);
}
