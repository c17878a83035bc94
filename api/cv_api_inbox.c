/*
 * cv_api_inbox.c - each user's inbox: the notifications (failed runs) of the
 * projects they are a member of (an administrator: of every project), newest
 * first, each marked read or not, an unread count, marking one or all read.
 *
 * What a user has read is one document of `inbox` (_id their name):
 * `read_before` (everything made up to then is read: "mark all read") and
 * `read`, the ids read one by one since.
 */
#include "cv_api_int.h"

#include "cv_store.h"
#include "cv_time.h"

#include <stdio.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define INBOX_PAGE_MAX 500
#define INBOX_COUNT_MAX 10000 /* an unread count stops here ("10000 or more") */

/* The caller's read state: read_before (or "") and the ids read since. */
typedef struct inbox_state {
    bson_t *doc; /* NULL when they never read anything */
    const char *read_before;
} inbox_state;

static cv_err load_state(cv_api *api, const char *user, inbox_state *st, char *why, size_t len) {
    cv_err err = cv_mongo_find_id(api->mongo, CV_COLL_INBOX, user, &st->doc, why, len);

    st->read_before = "";
    if (err == CV_ERR_NOT_FOUND) {
        st->doc = NULL;
        return CV_OK;
    }
    if (!err && cv_mongo_doc_str(st->doc, "read_before"))
        st->read_before = cv_mongo_doc_str(st->doc, "read_before");
    return err;
}

/* Whether notification id (made at created) is read. */
static bool is_read(const inbox_state *st, const char *id, const char *created) {
    bson_iter_t it, arr;

    if (st->read_before[0] && created && strcmp(created, st->read_before) <= 0)
        return true;
    if (!st->doc || !bson_iter_init_find(&it, st->doc, "read") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr))
        return false;
    while (bson_iter_next(&arr))
        if (BSON_ITER_HOLDS_UTF8(&arr) && strcmp(bson_iter_utf8(&arr, NULL), id) == 0)
            return true;
    return false;
}

/* The filter of the caller's notifications (unread ones only with unread). */
static cv_err inbox_where(cv_api *api, const cv_caller *who, const inbox_state *st, bool unread,
                          bson_t *where, char *why, size_t len) {
    bson_t filter = BSON_INITIALIZER, cond, in, *mine = NULL, doc;
    bson_iter_t it, read;
    uint32_t n = 0;
    cv_err err = CV_OK;

    if (!who->admin) { /* their projects' */
        BSON_APPEND_UTF8(&filter, "members.user", who->user);
        err = cv_mongo_find(api->mongo, CV_COLL_PROJECTS, &filter, NULL, 10000, &mine, why, len);
        if (err)
            goto out;
        BSON_APPEND_DOCUMENT_BEGIN(where, "project_id", &cond);
        BSON_APPEND_ARRAY_BEGIN(&cond, "$in", &in);
        CV_MONGO_EACH_DOC(mine, it, doc) {
            const char *id = cv_mongo_doc_str(&doc, "_id"), *key;
            char index[16];
            if (!id || bson_has_field(&doc, "deleted_at"))
                continue;
            bson_uint32_to_string(n++, &key, index, sizeof(index));
            BSON_APPEND_UTF8(&in, key, id);
        }
        bson_append_array_end(&cond, &in);
        bson_append_document_end(where, &cond);
    }
    if (unread && st->read_before[0]) {
        BSON_APPEND_DOCUMENT_BEGIN(where, "created_at", &cond);
        BSON_APPEND_UTF8(&cond, "$gt", st->read_before);
        bson_append_document_end(where, &cond);
    }
    if (unread && st->doc && bson_iter_init_find(&read, st->doc, "read") &&
        BSON_ITER_HOLDS_ARRAY(&read)) {
        BSON_APPEND_DOCUMENT_BEGIN(where, "_id", &cond);
        bson_append_iter(&cond, "$nin", -1, &read);
        bson_append_document_end(where, &cond);
    }
out:
    bson_destroy(mine);
    bson_destroy(&filter);
    return err;
}

/* GET /notifications?unread=true: the caller's notifications, newest first,
 * a page at a time, each with "read". */
void cv_api_list_inbox(cv_api *api, const char *id, const cv_http_request *req,
                       cv_http_response *res) {
    const cv_caller *who = cv_api_caller(req);
    const char *unread = cv_http_arg(req, "unread");
    bson_t where = BSON_INITIALIZER;
    inbox_state st = {0};
    char why[512];
    cJSON *list, *item;
    cv_verr verr;
    cv_err err;

    (void)id;
    if (unread && strcmp(unread, "true") != 0 && strcmp(unread, "false") != 0) {
        cv_verr_set(&verr, NULL, "unread", "must be true or false, not \"%s\"", unread);
        cv_api_field_error(res, &verr);
        goto out;
    }
    bool only_unread = unread && strcmp(unread, "true") == 0;
    if ((err = load_state(api, who->user, &st, why, sizeof(why))) ||
        (err = inbox_where(api, who, &st, only_unread, &where, why, sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    cv_api_list_where_by(api, req, CV_COLL_NOTIFICATIONS, &where, "created_at", -1, "notifications",
                         INBOX_PAGE_MAX, res);
    list = res->body ? cJSON_GetObjectItemCaseSensitive(res->body, "notifications") : NULL;
    cJSON_ArrayForEach(item, list) {
        const cJSON *nid = cJSON_GetObjectItemCaseSensitive(item, "id");
        const cJSON *created = cJSON_GetObjectItemCaseSensitive(item, "created_at");
        bool read =
            cJSON_IsString(nid) &&
            is_read(&st, nid->valuestring, cJSON_IsString(created) ? created->valuestring : NULL);
        cJSON_DeleteItemFromObjectCaseSensitive(item, "read"); /* the caller's, not stored */
        cJSON_AddBoolToObject(item, "read", read);
    }
out:
    bson_destroy(st.doc);
    bson_destroy(&where);
}

/* GET /notifications/unread-count: {"unread": n} (at most 10,000). */
void cv_api_unread_count(cv_api *api, const char *id, const cv_http_request *req,
                         cv_http_response *res) {
    const cv_caller *who = cv_api_caller(req);
    bson_t where = BSON_INITIALIZER;
    inbox_state st = {0};
    int64_t n = 0;
    char why[512];
    cv_err err;

    (void)id;
    if ((err = load_state(api, who->user, &st, why, sizeof(why))) ||
        (err = inbox_where(api, who, &st, true, &where, why, sizeof(why))) ||
        (err = cv_mongo_count(api->mongo, CV_COLL_NOTIFICATIONS, &where, INBOX_COUNT_MAX, &n, why,
                              sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    res->status = 200;
    res->body = cJSON_CreateObject();
    cJSON_AddNumberToObject(res->body, "unread", (double)n);
out:
    bson_destroy(st.doc);
    bson_destroy(&where);
}

/* POST /notifications/{id}/read: one of the caller's notifications read. */
void cv_api_mark_read(cv_api *api, const char *id, const cv_http_request *req,
                      cv_http_response *res) {
    const cv_caller *who = cv_api_caller(req);
    bson_t *note = cv_api_load_doc(api, CV_COLL_NOTIFICATIONS, "notification", id, res);
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, add;
    const char *project = note ? cv_mongo_doc_str(note, "project_id") : NULL;
    cv_caller check = *who;
    char why[512];
    cv_err err;

    if (!note)
        goto out;
    /* Someone else's project's: as if there were none. */
    if (!who->admin &&
        (!project || !cv_api_project_role(api, &check, project, CV_ROLE_VIEWER, res))) {
        cJSON_Delete(res->body);
        res->body = NULL;
        cv_http_error(res, 404, "not_found", NULL, "no notification with id '%s'", id);
        goto out;
    }
    BSON_APPEND_UTF8(&filter, "_id", who->user);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$addToSet", &add);
    BSON_APPEND_UTF8(&add, "read", id);
    bson_append_document_end(&update, &add);
    if ((err = cv_mongo_update(api->mongo, CV_COLL_INBOX, &filter, &update, true, NULL, why,
                               sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    res->status = 204;
out:
    bson_destroy(note);
    bson_destroy(&filter);
    bson_destroy(&update);
}

/* POST /notifications/read-all: everything made until now read. */
void cv_api_mark_all_read(cv_api *api, const char *id, const cv_http_request *req,
                          cv_http_response *res) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, none;
    char why[512];
    cv_err err;

    (void)id;
    BSON_APPEND_UTF8(&filter, "_id", cv_api_caller(req)->user);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    cv_mongo_append_time(&set, "read_before", cv_time_now_ms());
    BSON_APPEND_ARRAY_BEGIN(&set, "read", &none);
    bson_append_array_end(&set, &none);
    bson_append_document_end(&update, &set);
    if ((err = cv_mongo_update(api->mongo, CV_COLL_INBOX, &filter, &update, true, NULL, why,
                               sizeof(why))))
        cv_api_internal_error(res, err, why);
    else
        res->status = 204;
    bson_destroy(&filter);
    bson_destroy(&update);
}
