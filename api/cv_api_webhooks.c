/*
 * cv_api_webhooks.c - a project's webhooks (editors): POST and GET
 * /api/v1/projects/{id}/webhooks, GET, PATCH and DELETE /api/v1/webhooks/{id},
 * GET /api/v1/webhooks/{id}/deliveries.
 *
 * A webhook is a URL (http or https), the events it wants (of
 * cv_hooks_event_types; run.failed and run.timed_out when none are named),
 * whether it is active, and a secret its deliveries are signed with
 * (cv_httpc.h). The secret is sealed like a connection string and never
 * shown again, except once, when the API made it up. The collector delivers
 * (consumer/cv_webhooks.h); its attempts are the deliveries' list here.
 */
#include "cv_api_int.h"

#include "cv_credential.h"
#include "cv_hooks.h"
#include "cv_json.h"
#include "cv_secret.h"
#include "cv_store.h"
#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define SECRET_MIN 16
#define SECRET_MAX 256

/* What a body sets. */
typedef struct hook_def {
    const char *url, *secret, *description;
    const cJSON *events;
    bool active, has_active;
} hook_def;

static bool read_hook(const cJSON *body, bool create, hook_def *d, cv_http_response *res) {
    static const char *const fields[] = {"url", "events", "secret", "active", "description", NULL};
    const cJSON *e;
    cv_verr verr;
    int i = 0;

    memset(d, 0, sizeof(*d));
    d->active = true;
    if (cv_json_only(body, NULL, fields, create ? "a webhook" : "a webhook change", &verr) ||
        cv_json_get_str(body, NULL, "url", create, 2048, &d->url, &verr) ||
        cv_json_get_str(body, NULL, "secret", false, SECRET_MAX, &d->secret, &verr) ||
        cv_json_get_bool(body, NULL, "active", false, &d->active, &verr) ||
        cv_json_get_str(body, NULL, "description", false, 500, &d->description, &verr))
        goto bad;
    d->has_active = cJSON_HasObjectItem(body, "active");
    if (d->url && strncmp(d->url, "https://", 8) != 0 && strncmp(d->url, "http://", 7) != 0) {
        cv_verr_set(&verr, NULL, "url", "must be an http:// or https:// URL");
        goto bad;
    }
    if (d->url && (strpbrk(d->url, " \r\n\t") || !d->url[strncmp(d->url, "https", 5) ? 7 : 8])) {
        cv_verr_set(&verr, NULL, "url", "must name a host, without spaces");
        goto bad;
    }
    if (d->secret && strlen(d->secret) < SECRET_MIN) {
        cv_verr_set(&verr, NULL, "secret", "must be at least %d characters", SECRET_MIN);
        goto bad;
    }
    d->events = cJSON_GetObjectItemCaseSensitive(body, "events");
    if (d->events && (!cJSON_IsArray(d->events) || !cJSON_GetArraySize(d->events))) {
        cv_verr_set(&verr, NULL, "events", "must be a non-empty array of event types");
        goto bad;
    }
    cJSON_ArrayForEach(e, d->events) {
        char name[24];
        bool known = false;
        snprintf(name, sizeof(name), "events[%d]", i++);
        for (int k = 0; cJSON_IsString(e) && cv_hooks_event_types[k]; k++)
            known = known || strcmp(e->valuestring, cv_hooks_event_types[k]) == 0;
        if (!known) {
            cv_verr_set(&verr, NULL, name,
                        "must be one of run.started, run.succeeded, run.failed, run.cancelled, "
                        "run.timed_out, run.retrying");
            goto bad;
        }
    }
    return true;
bad:
    cv_api_field_error(res, &verr);
    return false;
}

/* The events of d into doc (create: the default when none). */
static void append_events(bson_t *doc, const hook_def *d) {
    static const char *const fallback[] = {"run.failed", "run.timed_out"};
    const cJSON *e;
    bson_t list;
    char key[16];
    int i = 0;

    BSON_APPEND_ARRAY_BEGIN(doc, "events", &list);
    if (!d->events)
        for (; i < 2; i++) {
            snprintf(key, sizeof(key), "%d", i);
            BSON_APPEND_UTF8(&list, key, fallback[i]);
        }
    cJSON_ArrayForEach(e, d->events) {
        snprintf(key, sizeof(key), "%d", i++);
        BSON_APPEND_UTF8(&list, key, e->valuestring);
    }
    bson_append_array_end(doc, &list);
}

/* Seals secret for webhook id into doc; false having answered 500. */
static bool append_secret(cv_api *api, bson_t *doc, const char *id, const char *secret,
                          cv_http_response *res) {
    char why[256], *sealed = NULL;
    cv_err err = cv_secret_seal(api->cfg.secret_key, id, secret, &sealed, why, sizeof(why));
    if (err) {
        cv_api_internal_error(res, err, why);
        return false;
    }
    BSON_APPEND_UTF8(doc, "secret_sealed", sealed);
    free(sealed);
    return true;
}

void cv_api_create_webhook(cv_api *api, const char *project_id, const cv_http_request *req,
                           cv_http_response *res) {
    cJSON *body = cv_api_parse_body(req, res);
    bson_t doc = BSON_INITIALIZER;
    char id[CV_ID_LEN], made[CV_TOKEN_LEN];
    hook_def d;

    if (!body || !read_hook(body, true, &d, res) ||
        !cv_api_new_doc(&doc, id, sizeof(id), cv_api_caller(req)->user, res))
        goto out;
    if (!d.secret) /* made up here, and shown this once */
        cv_token_new("whs_", made);
    BSON_APPEND_UTF8(&doc, "project_id", project_id);
    BSON_APPEND_UTF8(&doc, "url", d.url);
    append_events(&doc, &d);
    BSON_APPEND_BOOL(&doc, "active", d.active);
    if (d.description)
        BSON_APPEND_UTF8(&doc, "description", d.description);
    if (!append_secret(api, &doc, id, d.secret ? d.secret : made, res))
        goto out;
    cv_api_insert_and_answer(api, CV_COLL_WEBHOOKS, "/api/v1/webhooks", &doc, id, res);
    if (res->status == 201 && !d.secret)
        cJSON_AddStringToObject(res->body, "secret", made);
out:
    bson_destroy(&doc);
    cJSON_Delete(body);
}

void cv_api_list_webhooks(cv_api *api, const char *project_id, const cv_http_request *req,
                          cv_http_response *res) {
    bson_t where = BSON_INITIALIZER;

    BSON_APPEND_UTF8(&where, "project_id", project_id);
    cv_mongo_append_absent(&where, "deleted_at");
    cv_api_list_where(api, req, CV_COLL_WEBHOOKS, &where, "webhooks", 200, res);
    bson_destroy(&where);
}

void cv_api_get_webhook(cv_api *api, const char *id, const cv_http_request *req,
                        cv_http_response *res) {
    (void)req;
    cv_api_get_one(api, CV_COLL_WEBHOOKS, "webhook", id, res);
}

/* PATCH /webhooks/{id}: the members given replace the stored ones (a new
 * secret is sealed; null removes the description). */
void cv_api_patch_webhook(cv_api *api, const char *id, const cv_http_request *req,
                          cv_http_response *res) {
    cJSON *body = cv_api_parse_body(req, res);
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    char why[512];
    hook_def d;
    cv_err err;

    if (!body || !read_hook(body, false, &d, res))
        goto out;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    if (d.url)
        BSON_APPEND_UTF8(&set, "url", d.url);
    if (d.events)
        append_events(&set, &d);
    if (d.has_active)
        BSON_APPEND_BOOL(&set, "active", d.active);
    if (d.description)
        BSON_APPEND_UTF8(&set, "description", d.description);
    if (d.secret && !append_secret(api, &set, id, d.secret, res))
        goto out;
    cv_mongo_append_time(&set, "updated_at", cv_time_now_ms());
    bson_append_document_end(&update, &set);
    if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(body, "description"))) {
        bson_t unset;
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
        BSON_APPEND_UTF8(&unset, "description", "");
        bson_append_document_end(&update, &unset);
    }
    BSON_APPEND_UTF8(&filter, "_id", id);
    err = cv_mongo_update(api->mongo, CV_COLL_WEBHOOKS, &filter, &update, false, NULL, why,
                          sizeof(why));
    cv_cache_drop(api->cache, CV_COLL_WEBHOOKS, id);
    if (err)
        cv_api_internal_error(res, err, why);
    else
        cv_api_get_one(api, CV_COLL_WEBHOOKS, "webhook", id, res);
out:
    bson_destroy(&filter);
    bson_destroy(&update);
    cJSON_Delete(body);
}

void cv_api_delete_webhook(cv_api *api, const char *id, const cv_http_request *req,
                           cv_http_response *res) {
    char why[512];
    cv_err err = cv_api_mark_deleted(api, CV_COLL_WEBHOOKS, id, cv_api_caller(req)->user, false,
                                     why, sizeof(why));
    if (err)
        cv_api_internal_error(res, err, why);
    else
        res->status = 204;
}

/* GET /webhooks/{id}/deliveries?status=: newest first, each with its attempts. */
void cv_api_list_deliveries(cv_api *api, const char *id, const cv_http_request *req,
                            cv_http_response *res) {
    static const char *const statuses[] = {"pending", "sending", "delivered", "failed", NULL};
    const char *status = cv_http_arg(req, "status");
    bson_t where = BSON_INITIALIZER;
    bool known = !status;
    cv_verr verr;

    for (int i = 0; status && statuses[i]; i++)
        known = known || strcmp(status, statuses[i]) == 0;
    if (!known) {
        cv_verr_set(&verr, NULL, "status",
                    "must be pending, sending, delivered or failed, not \"%s\"", status);
        cv_api_field_error(res, &verr);
        goto out;
    }
    BSON_APPEND_UTF8(&where, "webhook_id", id);
    if (status)
        BSON_APPEND_UTF8(&where, "status", status);
    cv_api_list_where_by(api, req, CV_COLL_DELIVERIES, &where, "created_at", -1, "deliveries", 500,
                         res);
out:
    bson_destroy(&where);
}
