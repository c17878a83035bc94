/*
 * cv_api_projects.c - projects and who is in them: a project created (its
 * maker its first owner), read, changed (the interpreter, whether jobs see
 * the connections, and which connections, by owners only), and its members
 * listed, added, changed and removed (owners; cv_members.h keeps one owner at
 * least).
 *
 * A project uses a connection of its own, one its maker made and no project
 * has yet (it becomes the project's), or one of another project whose owner
 * the caller also is.
 */
#include "cv_api_int.h"

#include "cv_id.h"
#include "cv_json.h"
#include "cv_log.h"
#include "cv_schedule.h"
#include "cv_store.h"
#include "cv_time.h"

#include <stdio.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* Whether who may use connection `id` in project `project_id` (NULL: the
 * project being made, of which they will be owner); answers 422 (no such
 * connection, or one they cannot see) or 403 if not. */
static bool usable_connection(cv_api *api, const cv_caller *who, const char *field, const char *id,
                              const char *project_id, cv_http_response *res) {
    bson_t *conn = NULL, *home_doc = NULL;
    const char *home, *by;
    cv_role role = CV_ROLE_NONE;
    char why[512], home_id[CV_ID_LEN];
    bool ok = false;
    cv_verr verr;
    cv_err err = cv_mongo_find_id(api->mongo, CV_COLL_CONNECTIONS, id, &conn, why, sizeof(why));

    if (err && err != CV_ERR_NOT_FOUND)
        goto fail;
    home = err ? NULL : cv_mongo_doc_str(conn, "project_id");
    by = err ? NULL : cv_mongo_doc_str(conn, "created_by");
    if (!err && home &&
        (err = cv_cache_find_id(api->cache, api->mongo, CV_COLL_PROJECTS, home, &home_doc, why,
                                sizeof(why))) &&
        err != CV_ERR_NOT_FOUND)
        goto fail;
    if (conn && who->admin)
        ok = true;
    else if (conn && !home)
        ok = by && strcmp(by, who->user) == 0;
    else if (home_doc) {
        role = cv_members_role(home_doc, who->user);
        ok = role == CV_ROLE_OWNER ||
             (project_id && strcmp(home, project_id) == 0 && who->role >= CV_ROLE_EDITOR);
    }
    /* home points into conn: the message below needs its own copy. */
    snprintf(home_id, sizeof(home_id), "%s", home ? home : "");
    bson_destroy(conn);
    bson_destroy(home_doc);
    if (ok)
        return true;
    if (role == CV_ROLE_NONE) { /* not theirs to see: as if there were none */
        cv_verr_set(&verr, NULL, field, "no connection with id '%s'", id);
        cv_api_field_error(res, &verr);
    } else {
        cv_http_error(res, 403, "forbidden", field,
                      "%s: connection %s belongs to project %s; using it in another project "
                      "needs the role owner in both",
                      field, id, home_id);
    }
    return false;
fail:
    bson_destroy(conn);
    cv_api_internal_error(res, err, why);
    return false;
}

/* Makes a connection no project had yet the project's. */
static void adopt_connection(cv_api *api, const char *conn_id, const char *project_id) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    char why[512];

    BSON_APPEND_UTF8(&filter, "_id", conn_id);
    cv_mongo_append_absent(&filter, "project_id");
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "project_id", project_id);
    bson_append_document_end(&update, &set);
    if (cv_mongo_update(api->mongo, CV_COLL_CONNECTIONS, &filter, &update, false, NULL, why,
                        sizeof(why)) != CV_OK)
        cv_log_warn("connection %s stays its maker's: %s", conn_id, why);
    bson_destroy(&filter);
    bson_destroy(&update);
}

/* A project's settings as a create or a change gives them. */
typedef struct project_def {
    const char *name, *origin, *dest, *interpreter, *last_run;
    bool active, expose;
    bool has_active, has_expose, has_interpreter;
} project_def;

static bool read_project(const cJSON *body, bool create, project_def *d, cv_http_response *res) {
    int64_t last_ms;
    static const char *const fields[] = {"name",
                                         "origin_connection_id",
                                         "destination_connection_id",
                                         "active",
                                         "python_interpreter",
                                         "expose_connections",
                                         "last_run_at",
                                         NULL};
    cv_verr verr;

    memset(d, 0, sizeof(*d));
    d->active = true;
    if (cv_json_only(body, NULL, fields, create ? "a project" : "a project change", &verr) ||
        cv_json_get_str(body, NULL, "name", create, 200, &d->name, &verr) ||
        cv_json_get_id(body, NULL, "origin_connection_id", create, &d->origin, &verr) ||
        cv_json_get_id(body, NULL, "destination_connection_id", create, &d->dest, &verr) ||
        cv_json_get_bool(body, NULL, "active", false, &d->active, &verr) ||
        cv_json_get_str(body, NULL, "python_interpreter", false, 255, &d->interpreter, &verr) ||
        cv_json_get_bool(body, NULL, "expose_connections", false, &d->expose, &verr) ||
        cv_json_get_str(body, NULL, "last_run_at", false, 40, &d->last_run, &verr)) {
        cv_api_field_error(res, &verr);
        return false;
    }
    if (d->last_run && cv_time_parse(d->last_run, &last_ms) != 0) {
        cv_verr_set(&verr, NULL, "last_run_at", "must be a time such as 2026-12-05T10:00:00Z");
        cv_api_field_error(res, &verr);
        return false;
    }
    d->has_active = cJSON_HasObjectItem(body, "active");
    d->has_expose = cJSON_HasObjectItem(body, "expose_connections");
    d->has_interpreter = d->interpreter != NULL;
    if (d->name && !d->name[0]) {
        cv_verr_set(&verr, NULL, "name", "must not be empty");
        cv_api_field_error(res, &verr);
        return false;
    }
    if (d->interpreter && (d->interpreter[0] != '/' || strstr(d->interpreter, "/../") ||
                           strchr(d->interpreter, '\n'))) {
        cv_verr_set(&verr, NULL, "python_interpreter",
                    "must be an absolute path such as \"/opt/venvs/etl/bin/python\"");
        cv_api_field_error(res, &verr);
        return false;
    }
    return true;
}

void cv_api_create_project(cv_api *api, const char *id_unused, const cv_http_request *req,
                           cv_http_response *res) {
    const cv_caller *who = cv_api_caller(req);
    char id[CV_ID_LEN];
    cJSON *body = cv_api_parse_body(req, res);
    bson_t doc = BSON_INITIALIZER;
    project_def d;

    (void)id_unused;
    if (!body || !read_project(body, true, &d, res))
        goto out;
    if (!usable_connection(api, who, "origin_connection_id", d.origin, NULL, res) ||
        !usable_connection(api, who, "destination_connection_id", d.dest, NULL, res))
        goto out;
    if (!cv_api_new_doc(&doc, id, sizeof(id), who->user, res))
        goto out;
    BSON_APPEND_UTF8(&doc, "name", d.name);
    BSON_APPEND_UTF8(&doc, "origin_connection_id", d.origin);
    BSON_APPEND_UTF8(&doc, "destination_connection_id", d.dest);
    BSON_APPEND_BOOL(&doc, "active", d.active);
    if (d.interpreter)
        BSON_APPEND_UTF8(&doc, "python_interpreter", d.interpreter);
    BSON_APPEND_BOOL(&doc, "expose_connections", d.expose);
    if (d.last_run) { /* stored as every time is: UTC, milliseconds */
        int64_t ms = 0;
        cv_time_parse(d.last_run, &ms);
        cv_mongo_append_time(&doc, "last_run_at", ms);
    }
    cv_members_append_first(&doc, who->user);
    cv_api_insert_and_answer(api, CV_COLL_PROJECTS, "/api/v1/projects", &doc, id, res);
    if (res->status == 201) {
        adopt_connection(api, d.origin, id);
        adopt_connection(api, d.dest, id);
    }
out:
    bson_destroy(&doc);
    cJSON_Delete(body);
}

void cv_api_get_project(cv_api *api, const char *id, const cv_http_request *req,
                        cv_http_response *res) {
    (void)req;
    cv_api_get_one(api, CV_COLL_PROJECTS, "project", id, res);
}

/* PATCH /projects/{id}: name and active (editors); the interpreter, whether
 * jobs see the connections, and the connections (owners). */
void cv_api_patch_project(cv_api *api, const char *id, const cv_http_request *req,
                          cv_http_response *res) {
    const cv_caller *who = cv_api_caller(req);
    bson_t *project = cv_api_load_doc(api, CV_COLL_PROJECTS, "project", id, res);
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    char why[512], etag[CV_API_ETAG_LEN];
    const char *seen;
    cJSON *body = NULL;
    int64_t matched = 0;
    project_def d;
    cv_err err;

    if (!project)
        goto out;
    cv_api_etag(CV_COLL_PROJECTS, project, etag);
    if (!cv_api_if_match(req, "project", id, etag, res) || !(body = cv_api_parse_body(req, res)) ||
        !read_project(body, false, &d, res))
        goto out;
    if ((d.has_interpreter || d.has_expose || d.origin || d.dest) &&
        !cv_api_require(who, CV_ROLE_OWNER, res))
        goto out;
    if ((d.origin && !usable_connection(api, who, "origin_connection_id", d.origin, id, res)) ||
        (d.dest && !usable_connection(api, who, "destination_connection_id", d.dest, id, res)))
        goto out;
    BSON_APPEND_UTF8(&filter, "_id", id);
    if ((seen = cv_mongo_doc_str(project, "updated_at"))) /* over what was read: no change lost */
        BSON_APPEND_UTF8(&filter, "updated_at", seen);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    if (d.name)
        BSON_APPEND_UTF8(&set, "name", d.name);
    if (d.origin)
        BSON_APPEND_UTF8(&set, "origin_connection_id", d.origin);
    if (d.dest)
        BSON_APPEND_UTF8(&set, "destination_connection_id", d.dest);
    if (d.has_active)
        BSON_APPEND_BOOL(&set, "active", d.active);
    if (d.has_interpreter)
        BSON_APPEND_UTF8(&set, "python_interpreter", d.interpreter);
    if (d.has_expose)
        BSON_APPEND_BOOL(&set, "expose_connections", d.expose);
    cv_mongo_append_time(&set, "updated_at", cv_time_now_ms());
    bson_append_document_end(&update, &set);
    if ((err = cv_mongo_update(api->mongo, CV_COLL_PROJECTS, &filter, &update, false, &matched, why,
                               sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    cv_cache_drop(api->cache, CV_COLL_PROJECTS, id);
    if (matched == 0) {
        cv_http_error(res, 409, "conflict", NULL,
                      "project %s changed while this change was made: read it again", id);
        goto out;
    }
    if (d.origin)
        adopt_connection(api, d.origin, id);
    if (d.dest)
        adopt_connection(api, d.dest, id);
    cv_api_get_one(api, CV_COLL_PROJECTS, "project", id, res);
out:
    bson_destroy(project);
    bson_destroy(&filter);
    bson_destroy(&update);
    cJSON_Delete(body);
}

/* ---- members ------------------------------------------------------------- */

static cJSON *member_json(const char *user, cv_role role) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "user", user);
    cJSON_AddStringToObject(m, "role", cv_role_str(role));
    return m;
}

/* GET /projects/{id}/members: {"items": [{user, role}]}, in the order they came. */
void cv_api_list_members(cv_api *api, const char *id, const cv_http_request *req,
                         cv_http_response *res) {
    bson_t *project = cv_api_load_doc(api, CV_COLL_PROJECTS, "project", id, res);
    bson_iter_t it, arr;
    cJSON *items;

    (void)req;
    if (!project)
        return;
    res->status = 200;
    res->body = cJSON_CreateObject();
    items = cJSON_AddArrayToObject(res->body, "items");
    if (bson_iter_init_find(&it, project, "members") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &arr)) {
        while (bson_iter_next(&arr)) {
            bson_t m;
            const char *user;
            cv_role role;
            if (!cv_mongo_iter_doc(&arr, &m) || !(user = cv_mongo_doc_str(&m, "user")) ||
                (role = cv_role_parse(cv_mongo_doc_str(&m, "role"))) == CV_ROLE_NONE)
                continue;
            cJSON_AddItemToArray(items, member_json(user, role));
        }
    }
    bson_destroy(project);
}

/* Reads {"role": ...} (and "user" when adding) from a members body. */
static bool read_member(const cJSON *body, bool add, const char **user, cv_role *role,
                        cv_http_response *res) {
    static const char *const add_fields[] = {"user", "role", NULL};
    static const char *const change_fields[] = {"role", NULL};
    const char *name = NULL;
    cv_verr verr;

    if (cv_json_only(body, NULL, add ? add_fields : change_fields,
                     add ? "a member" : "a member change", &verr) ||
        (add && cv_json_get_str(body, NULL, "user", true, CV_USER_NAME_MAX, user, &verr)) ||
        cv_json_get_str(body, NULL, "role", true, 16, &name, &verr)) {
        cv_api_field_error(res, &verr);
        return false;
    }
    if ((*role = cv_role_parse(name)) == CV_ROLE_NONE) {
        cv_verr_set(&verr, NULL, "role", "must be " CV_ROLE_NAMES ", not \"%s\"", name);
        cv_api_field_error(res, &verr);
        return false;
    }
    return true;
}

/* Applies a change of members and answers: the member (201 or 200) or 204. */
static void set_member(cv_api *api, const char *project_id, const char *user, cv_member_op op,
                       cv_role role, cv_http_response *res) {
    char why[512];
    cv_err err = cv_members_set(api->mongo, project_id, user, op, role, why, sizeof(why));

    cv_cache_drop(api->cache, CV_COLL_PROJECTS, project_id); /* seen at the next request */
    if (err == CV_ERR_NOT_FOUND) {
        cv_http_error(res, 404, "not_found", NULL, "%s", why);
        return;
    }
    if (err == CV_ERR_CONFLICT) {
        cv_http_error(res, 409, "conflict", NULL, "%s", why);
        return;
    }
    if (err) {
        cv_api_internal_error(res, err, why);
        return;
    }
    if (op == CV_MEMBER_REMOVE) {
        res->status = 204;
        return;
    }
    res->status = op == CV_MEMBER_ADD ? 201 : 200;
    res->body = member_json(user, role);
    if (op == CV_MEMBER_ADD)
        snprintf(res->location, sizeof(res->location), "/api/v1/projects/%s/members/%s", project_id,
                 user);
}

/* POST /projects/{id}/members {user, role}: shares the project with a user. */
void cv_api_add_member(cv_api *api, const char *id, const cv_http_request *req,
                       cv_http_response *res) {
    cJSON *body = cv_api_parse_body(req, res);
    const char *user = NULL;
    bson_t *doc = NULL;
    char why[512];
    cv_role role;
    cv_verr verr;
    cv_err err;

    if (!body || !read_member(body, true, &user, &role, res))
        goto out;
    err = cv_people_name_ok(user)
              ? cv_mongo_find_id(api->mongo, CV_COLL_USERS, user, &doc, why, sizeof(why))
              : CV_ERR_NOT_FOUND;
    if (err == CV_ERR_NOT_FOUND) {
        cv_verr_set(&verr, NULL, "user", "no user named '%s'", user);
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (err) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    set_member(api, id, user, CV_MEMBER_ADD, role, res);
out:
    bson_destroy(doc);
    cJSON_Delete(body);
}

/* PATCH /projects/{id}/members/{user} {role}. */
void cv_api_change_member(cv_api *api, const char *id, const cv_http_request *req,
                          cv_http_response *res) {
    cJSON *body = cv_api_parse_body(req, res);
    cv_role role;

    if (body && read_member(body, false, NULL, &role, res))
        set_member(api, id, req->item, CV_MEMBER_CHANGE, role, res);
    cJSON_Delete(body);
}

/* DELETE /projects/{id}/members/{user}. */
void cv_api_remove_member(cv_api *api, const char *id, const cv_http_request *req,
                          cv_http_response *res) {
    set_member(api, id, req->item, CV_MEMBER_REMOVE, CV_ROLE_NONE, res);
}

/* ---- the list, and a project gone ------------------------------------------ */

/* GET /projects?q=: the projects the caller is a member of (an administrator:
 * every one), oldest first, a page at a time. */
void cv_api_list_projects(cv_api *api, const char *id, const cv_http_request *req,
                          cv_http_response *res) {
    const cv_caller *who = cv_api_caller(req);
    bson_t where = BSON_INITIALIZER;

    (void)id;
    if (!who->admin)
        BSON_APPEND_UTF8(&where, "members.user", who->user);
    cv_mongo_append_absent(&where, "deleted_at");
    if (cv_api_name_filter(req, &where, res))
        cv_api_list_where(api, req, CV_COLL_PROJECTS, &where, "projects", 500, res);
    bson_destroy(&where);
}

cv_err cv_api_mark_deleted(cv_api *api, const char *collection, const char *id, const char *by,
                           bool unset_schedule, char *why, size_t len) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, unset;
    cv_err err;

    BSON_APPEND_UTF8(&filter, "_id", id);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    cv_mongo_append_time(&set, "deleted_at", cv_time_now_ms());
    BSON_APPEND_UTF8(&set, "deleted_by", by);
    bson_append_document_end(&update, &set);
    if (unset_schedule) {
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
        BSON_APPEND_UTF8(&unset, "schedule", "");
        BSON_APPEND_UTF8(&unset, CV_SCHEDULE_F_LIVE, "");
        bson_append_document_end(&update, &unset);
    }
    err = cv_mongo_update(api->mongo, collection, &filter, &update, false, NULL, why, len);
    cv_cache_drop(api->cache, collection, id);
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

/* DELETE /projects/{id} (owners): the project and its jobs and schedules go;
 * their runs stay, for administrators, until retention removes them. Runs
 * queued before still run, as they were queued. */
void cv_api_delete_project(cv_api *api, const char *id, const cv_http_request *req,
                           cv_http_response *res) {
    const char *by = cv_api_caller(req)->user;
    bson_t *jobs = NULL, filter = BSON_INITIALIZER, job;
    bson_iter_t it;
    char why[512];
    cv_err err;

    BSON_APPEND_UTF8(&filter, "project_id", id);
    if ((err = cv_mongo_find(api->mongo, CV_COLL_JOBS, &filter, NULL, 0, &jobs, why, sizeof(why))))
        goto fail;
    /* The jobs first: a failure halfway leaves a project to delete again. */
    CV_MONGO_EACH_DOC(jobs, it, job) {
        const char *job_id = cv_mongo_doc_str(&job, "_id");
        if (job_id && !bson_has_field(&job, "deleted_at") &&
            (err = cv_api_mark_deleted(api, CV_COLL_JOBS, job_id, by, true, why, sizeof(why))))
            goto fail;
    }
    if ((err = cv_api_mark_deleted(api, CV_COLL_PROJECTS, id, by, false, why, sizeof(why))))
        goto fail;
    res->status = 204;
    goto out;
fail:
    cv_api_internal_error(res, err, why);
out:
    bson_destroy(jobs);
    bson_destroy(&filter);
}
