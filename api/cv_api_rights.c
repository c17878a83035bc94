/*
 * cv_api_rights.c - whether the caller may do what a route does to the
 * resource its path names: the project it belongs to, the caller's role
 * there (cv_members.h), and the answer when it is not enough.
 *
 * A resource the caller may not see is answered exactly as one that does not
 * exist (404, the same message), so ids cannot be probed; one they see but
 * may not change is 403 naming the role needed.
 */
#include "cv_api_int.h"

#include "cv_connstr.h"
#include "cv_hooks.h"
#include "cv_query.h"
#include "cv_runs.h"
#include "cv_store.h"
#include "cv_time.h"

#include <stdio.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* Where the router keeps which project a run belongs to (a run never moves):
 * a cache namespace of its own, not the runs collection's documents. */
#define RUN_PROJECT "runs.project"

/* What a 404 calls each scope's resource, and the scope's name in the route table. */
static const char *const scope_nouns[] = {"",           "project", "job",       "run",
                                          "connection", "query",   "query run", "webhook"};
static const char *const scope_names[] = {"-",          "project", "job",       "run",
                                          "connection", "query",   "query-run", "webhook"};

const char *cv_api_scope_str(cv_api_scope scope) {
    return scope_names[scope];
}

static void not_found(cv_http_response *res, cv_api_scope scope, const char *id) {
    cv_http_error(res, 404, "not_found", NULL, "no %s with id '%s'", scope_nouns[scope], id);
}

/* A document of collection through the API's cache; NOT_FOUND when there is
 * none, or it was deleted (kept for the runs queued before). */
static cv_err load_live(cv_api *api, const char *collection, const char *id, bson_t **doc,
                        char *why, size_t len) {
    cv_err err;

    *doc = NULL;
    if (!cv_id_valid(id))
        return CV_ERR_NOT_FOUND;
    err = cv_cache_find_id(api->cache, api->mongo, collection, id, doc, why, len);
    if (!err && bson_has_field(*doc, "deleted_at")) {
        bson_destroy(*doc);
        *doc = NULL;
        err = CV_ERR_NOT_FOUND;
    }
    return err;
}

static cv_err load_project(cv_api *api, const char *id, bson_t **doc, char *why, size_t len) {
    return load_live(api, CV_COLL_PROJECTS, id, doc, why, len);
}

/* The project a job or run belongs to into project_id. */
static cv_err owning_project(cv_api *api, cv_api_scope scope, const char *id,
                             char project_id[CV_ID_LEN], char *why, size_t len) {
    bson_t *doc = NULL, keep = BSON_INITIALIZER;
    uint64_t generation = cv_cache_generation(api->cache);
    int64_t read_ms = cv_time_mono_ms();
    const char *project;
    cv_err err;

    if (!cv_id_valid(id))
        return CV_ERR_NOT_FOUND;
    if (scope == CV_SCOPE_JOB)
        err = load_live(api, CV_COLL_JOBS, id, &doc, why, len);
    else if (scope == CV_SCOPE_QUERY)
        err = load_live(api, CV_COLL_SAVED_QUERIES, id, &doc, why, len);
    else if (scope == CV_SCOPE_QUERY_RUN)
        err = cv_mongo_find_id(api->mongo, CV_COLL_QUERY_RUNS, id, &doc, why, len);
    else if (scope == CV_SCOPE_WEBHOOK)
        err = load_live(api, CV_COLL_WEBHOOKS, id, &doc, why, len);
    else if ((doc = cv_cache_get(api->cache, RUN_PROJECT, id)))
        err = CV_OK;
    else if (!(err = cv_api_run_get(api, id, &doc, why, len)) &&
             (project = cv_mongo_doc_str(doc, CV_RUN_F_PROJECT))) {
        BSON_APPEND_UTF8(&keep, CV_RUN_F_PROJECT, project);
        cv_cache_put(api->cache, RUN_PROJECT, id, &keep, read_ms, generation);
    }
    if (!err) {
        project = cv_mongo_doc_str(doc, CV_RUN_F_PROJECT);
        if (project && cv_id_valid(project))
            snprintf(project_id, CV_ID_LEN, "%s", project);
        else
            err = CV_ERR_NOT_FOUND; /* a run of no project is nobody's */
    }
    bson_destroy(doc);
    bson_destroy(&keep);
    return err;
}

void cv_api_note_run(cv_api *api, const char *run_id, const char *project_id) {
    bson_t keep = BSON_INITIALIZER;

    BSON_APPEND_UTF8(&keep, CV_RUN_F_PROJECT, project_id);
    cv_cache_put(api->cache, RUN_PROJECT, run_id, &keep, cv_time_mono_ms(),
                 cv_cache_generation(api->cache));
    bson_destroy(&keep);
}

static cv_role best(cv_role a, cv_role b) {
    return a > b ? a : b;
}

/* The caller's role on a connection: that of its project and of every
 * project that uses it, or owner of one they made and no project has yet. */
static cv_err connection_role(cv_api *api, const cv_caller *who, const char *id, cv_role *role,
                              char project_id[CV_ID_LEN], char *why, size_t len) {
    bson_t *conn = NULL, *users = NULL, *project = NULL, doc;
    const char *home, *by;
    bson_iter_t it;
    cv_err err;

    *role = CV_ROLE_NONE;
    if (!cv_id_valid(id))
        return CV_ERR_NOT_FOUND;
    if ((err = cv_mongo_find_id(api->mongo, CV_COLL_CONNECTIONS, id, &conn, why, len)))
        return err;
    home = cv_mongo_doc_str(conn, "project_id");
    by = cv_mongo_doc_str(conn, "created_by");
    if (home)
        snprintf(project_id, CV_ID_LEN, "%s", home);
    if (who->admin || (!home && by && strcmp(by, who->user) == 0)) {
        *role = CV_ROLE_OWNER;
        goto out;
    }
    if (home && !(err = load_project(api, home, &project, why, len)))
        *role = cv_members_role(project, who->user);
    if (err && err != CV_ERR_NOT_FOUND)
        goto out;
    if ((err = cv_api_connection_users(api, id, 1000, &users, why, len)))
        goto out;
    CV_MONGO_EACH_DOC(users, it, doc) {
        *role = best(*role, cv_members_role(&doc, who->user));
    }
out:
    bson_destroy(conn);
    bson_destroy(users);
    bson_destroy(project);
    return err;
}

cv_err cv_api_connection_users(cv_api *api, const char *id, int64_t max, bson_t **projects,
                               char *why, size_t len) {
    bson_t filter = BSON_INITIALIZER, or, alt;
    cv_err err;

    BSON_APPEND_ARRAY_BEGIN(&filter, "$or", & or);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "0", &alt);
    BSON_APPEND_UTF8(&alt, "origin_connection_id", id);
    bson_append_document_end(& or, &alt);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "1", &alt);
    BSON_APPEND_UTF8(&alt, "destination_connection_id", id);
    bson_append_document_end(& or, &alt);
    bson_append_array_end(&filter, & or);
    cv_mongo_append_absent(&filter, "deleted_at"); /* a project gone uses nothing */
    err = cv_mongo_find(api->mongo, CV_COLL_PROJECTS, &filter, NULL, max, projects, why, len);
    bson_destroy(&filter);
    return err;
}

bool cv_api_project_role(cv_api *api, cv_caller *who, const char *project_id, cv_role need,
                         cv_http_response *res) {
    bson_t *project = NULL;
    char why[512];
    cv_err err = load_project(api, project_id, &project, why, sizeof(why));

    if (!err) {
        who->role = who->admin ? CV_ROLE_OWNER : cv_members_role(project, who->user);
        snprintf(who->project_id, sizeof(who->project_id), "%s", project_id);
    }
    bson_destroy(project);
    if (err == CV_ERR_NOT_FOUND || (!err && who->role == CV_ROLE_NONE)) {
        not_found(res, CV_SCOPE_PROJECT, project_id);
        return false;
    }
    if (err) {
        cv_api_internal_error(res, err, why);
        return false;
    }
    return cv_api_require(who, need, res);
}

bool cv_api_require(const cv_caller *who, cv_role need, cv_http_response *res) {
    if (who->role >= need)
        return true;
    cv_http_error(res, 403, "forbidden", NULL, "this needs the role %s%s in project %s; you are %s",
                  cv_role_str(need), need == CV_ROLE_OWNER ? "" : " or higher", who->project_id,
                  cv_role_str(who->role));
    return false;
}

/* An administrator may do anything, to the runs of a project gone or of no
 * project too: the handler answers for what does not exist. Their project is
 * looked up for the audit record only. */
static bool as_administrator(cv_api *api, cv_api_scope scope, const char *id, cv_caller *who) {
    char why[512];

    who->role = CV_ROLE_OWNER;
    if (scope == CV_SCOPE_PROJECT)
        snprintf(who->project_id, sizeof(who->project_id), "%s", cv_id_valid(id) ? id : "");
    else if (scope != CV_SCOPE_CONNECTION)
        (void)owning_project(api, scope, id, who->project_id, why, sizeof(why));
    return true;
}

bool cv_api_authorize(cv_api *api, cv_api_scope scope, const char *id, cv_role need, cv_caller *who,
                      cv_http_response *res) {
    char project_id[CV_ID_LEN] = "", why[512];
    cv_err err;

    if (scope != CV_SCOPE_NONE && who->admin)
        return as_administrator(api, scope, id, who);
    switch (scope) {
        case CV_SCOPE_NONE:
            return true;
        case CV_SCOPE_PROJECT:
            return cv_api_project_role(api, who, id, need, res);
        case CV_SCOPE_JOB:
        case CV_SCOPE_RUN:
        case CV_SCOPE_QUERY:
        case CV_SCOPE_QUERY_RUN:
        case CV_SCOPE_WEBHOOK:
            err = owning_project(api, scope, id, project_id, why, sizeof(why));
            if (err == CV_ERR_NOT_FOUND)
                break;
            if (err) {
                cv_api_internal_error(res, err, why);
                return false;
            }
            /* The project's 404 would name the project: answer for the resource. */
            if (!cv_api_project_role(api, who, project_id, CV_ROLE_NONE, res)) {
                if (res->status != 404)
                    return false;
                cJSON_Delete(res->body);
                res->body = NULL;
                break;
            }
            return cv_api_require(who, need, res);
        case CV_SCOPE_CONNECTION:
            err = connection_role(api, who, id, &who->role, project_id, why, sizeof(why));
            if (err && err != CV_ERR_NOT_FOUND) {
                cv_api_internal_error(res, err, why);
                return false;
            }
            if (err || who->role == CV_ROLE_NONE)
                break;
            snprintf(who->project_id, sizeof(who->project_id), "%s", project_id);
            return cv_api_require(who, need, res);
    }
    not_found(res, scope, id);
    return false;
}

char *cv_api_connection_view(const cv_caller *who, const char *masked) {
    char *out = NULL, why[128];

    if (who->role >= CV_ROLE_EDITOR)
        return strdup(masked);
    if (cv_connstr_strip(masked, &out, why, sizeof(why)) != CV_OK)
        return strdup(""); /* stored masked, so it parsed once: nothing to show otherwise */
    return out;
}
