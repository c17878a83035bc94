/*
 * cv_api.c - the REST API service: the route table every request is
 * dispatched by (a 404 for no such path, a 405 with Allow for a path without
 * the method), the helpers its handlers share (errors, bodies, loading by
 * id), the health route and the service's lifecycle. The handlers live by
 * resource: cv_api_catalog.c, cv_api_runs.c, cv_api_lists.c,
 * cv_api_schedule.c.
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_api.h"
#include "cv_api_int.h"

#include "cv_bucket.h"
#include "cv_cache.h"
#include "cv_group.h"
#include "cv_http.h"
#include "cv_id.h"
#include "cv_json.h"
#include "cv_kafka.h"
#include "cv_launch.h"
#include "cv_log.h"
#include "cv_mongo.h"
#include "cv_ready.h"
#include "cv_runs.h"
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
    cJSON_DeleteItemFromObjectCaseSensitive(root, "secret_sealed");   /* a webhook's */
    cJSON_DeleteItemFromObjectCaseSensitive(root, "members_version"); /* cv_members.h's own */
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

cv_err cv_api_run_get(cv_api *api, const char *id, bson_t **out, char *why, size_t len) {
    uint64_t generation = cv_cache_generation(api->finals);
    int64_t read_ms = cv_time_mono_ms();
    const char *status;
    cv_err err;

    if ((*out = cv_cache_get(api->finals, CV_COLL_RUNS, id))) {
        cv_metrics_add(api->m_run_reads, "from=\"cache\"", 1);
        return CV_OK;
    }
    if ((err = cv_runs_get(api->mongo, id, out, why, len)))
        return err;
    cv_metrics_add(api->m_run_reads, "from=\"store\"", 1);
    status = cv_mongo_doc_str(*out, CV_RUN_F_STATUS);
    if (status && cv_run_is_final(cv_run_status_parse(status)))
        cv_cache_put(api->finals, CV_COLL_RUNS, id, *out, read_ms, generation);
    return CV_OK;
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
        err = cv_api_run_get(api, id, &doc, why, sizeof(why));
    else if (cache)
        err = cv_cache_find_id(cache, api->mongo, collection, id, &doc, why, sizeof(why));
    else
        err = cv_mongo_find_id(api->mongo, collection, id, &doc, why, sizeof(why));
    if (!err && bson_has_field(doc, "deleted_at")) { /* kept for runs queued before */
        bson_destroy(doc);
        doc = NULL;
        err = CV_ERR_NOT_FOUND;
    }
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

/* GET /health: the store answered the last probe (cv_ready.h); the older
 * name of readyz, which asks the broker too. */
static void route_health(cv_api *api, const char *id, const cv_http_request *req,
                         cv_http_response *res) {
    char mongo_why[256], kafka_why[256];
    bool ok;

    (void)id;
    (void)req;
    cv_ready_get(api->ready, mongo_why, sizeof(mongo_why), kafka_why, sizeof(kafka_why));
    ok = strcmp(mongo_why, "ok") == 0;
    res->status = ok ? 200 : 503;
    res->body = cJSON_CreateObject();
    cJSON_AddStringToObject(res->body, "status", ok ? "ok" : "degraded");
    cJSON_AddStringToObject(res->body, "mongodb", mongo_why);
}

/* GET /healthz: the process answers. */
static void route_healthz(cv_api *api, const char *id, const cv_http_request *req,
                          cv_http_response *res) {
    (void)api;
    (void)id;
    (void)req;
    res->status = 200;
    res->body = cJSON_CreateObject();
    cJSON_AddStringToObject(res->body, "status", "alive");
}

/* GET /readyz: Kafka and MongoDB answered the last probe (cv_ready.h, at most
 * a second ago); 503 naming what did not. Answers from memory, at once. */
static void route_readyz(cv_api *api, const char *id, const cv_http_request *req,
                         cv_http_response *res) {
    char mongo_why[256], kafka_why[256];
    bool ready =
        cv_ready_get(api->ready, mongo_why, sizeof(mongo_why), kafka_why, sizeof(kafka_why));

    (void)id;
    (void)req;
    res->status = ready ? 200 : 503;
    res->body = cJSON_CreateObject();
    cJSON_AddStringToObject(res->body, "status", ready ? "ready" : "not ready");
    cJSON_AddStringToObject(res->body, "mongodb", mongo_why);
    cJSON_AddStringToObject(res->body, "kafka", kafka_why);
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

/* Who may call a route; every route names one. The tests (test_people.py)
 * call every route `convutell routes` lists without a token and expect 401
 * from all but the two OPEN ones, so a route opened by mistake fails them. */
typedef enum route_access {
    OPEN,   /* anyone: the health check and the login */
    SIGNED, /* a valid token (writes: of scope write) */
    ADMIN,  /* a valid token of an instance administrator */
} route_access;

static const char *const access_names[] = {"open", "signed-in", "admin"};

/* The routes under /api/v1: a method, a path whose "{}" segments match any
 * id (the first handed to the handler, the second in the request's `item`),
 * who may call it, what its first {} names and the role the caller needs
 * there (cv_api_rights.c), and the handler. A path's routes are listed
 * together, in the order a 405 names their methods in Allow. */
typedef struct route {
    const char *method;
    const char *path;
    route_access who;
    cv_api_scope scope;
    cv_role need;
    cv_api_handler *handler;
} route;

#define NONE CV_SCOPE_NONE, CV_ROLE_NONE
#define PROJECT(role) CV_SCOPE_PROJECT, CV_ROLE_##role
#define JOB(role) CV_SCOPE_JOB, CV_ROLE_##role
#define RUN(role) CV_SCOPE_RUN, CV_ROLE_##role
#define CONNECTION(role) CV_SCOPE_CONNECTION, CV_ROLE_##role
#define QUERY(role) CV_SCOPE_QUERY, CV_ROLE_##role
#define QUERY_RUN(role) CV_SCOPE_QUERY_RUN, CV_ROLE_##role
#define WEBHOOK(role) CV_SCOPE_WEBHOOK, CV_ROLE_##role

static const route routes[] = {
    {"GET", "health", OPEN, NONE, route_health},
    {"GET", "healthz", OPEN, NONE, route_healthz},       /* the process is alive */
    {"GET", "readyz", OPEN, NONE, route_readyz},         /* Kafka and MongoDB answer */
    {"GET", "openapi.json", OPEN, NONE, cv_api_openapi}, /* this table, described */
    {"POST", "sessions", OPEN, NONE, cv_api_create_session},
    {"DELETE", "sessions", SIGNED, NONE, cv_api_delete_session},
    {"GET", "sessions/current", OPEN, NONE, cv_api_current_session}, /* who, and CSRF */
    {"POST", "tokens", SIGNED, NONE, cv_api_create_token},
    {"GET", "tokens", SIGNED, NONE, cv_api_list_tokens},
    {"DELETE", "tokens/{}", SIGNED, NONE, cv_api_delete_token},
    {"POST", "users", ADMIN, NONE, cv_api_create_user},
    {"GET", "users", ADMIN, NONE, cv_api_list_users},
    {"GET", "users/{}", SIGNED, NONE, cv_api_get_user}, /* administrators, or the user */
    {"PATCH", "users/{}", SIGNED, NONE, cv_api_patch_user},
    {"DELETE", "users/{}", ADMIN, NONE, cv_api_delete_user},
    {"GET", "audit", ADMIN, NONE, cv_api_list_audit},
    {"GET", "instance", ADMIN, NONE, cv_api_instance},         /* health, workers, lag */
    {"GET", "notifications", SIGNED, NONE, cv_api_list_inbox}, /* of the caller's projects */
    {"GET", "notifications/unread-count", SIGNED, NONE, cv_api_unread_count},
    {"POST", "notifications/read-all", SIGNED, NONE, cv_api_mark_all_read},
    {"POST", "notifications/{}/read", SIGNED, NONE, cv_api_mark_read},
    {"POST", "connections", SIGNED, NONE, cv_api_create_connection}, /* editors of project_id */
    {"GET", "connections/{}", SIGNED, CONNECTION(VIEWER), cv_api_get_connection},
    {"PATCH", "connections/{}", SIGNED, CONNECTION(EDITOR), cv_api_patch_connection},
    {"DELETE", "connections/{}", SIGNED, CONNECTION(EDITOR), cv_api_delete_connection},
    {"POST", "projects", SIGNED, NONE, cv_api_create_project}, /* the caller becomes owner */
    {"POST", "CreateProjects", SIGNED, NONE, cv_api_create_projects_compat}, /* also at / */
    {"GET", "projects", SIGNED, NONE, cv_api_list_projects},                 /* theirs */
    {"GET", "projects/{}", SIGNED, PROJECT(VIEWER), cv_api_get_project},
    {"PATCH", "projects/{}", SIGNED, PROJECT(EDITOR), cv_api_patch_project},
    {"DELETE", "projects/{}", SIGNED, PROJECT(OWNER), cv_api_delete_project},
    {"POST", "projects/{}/jobs", SIGNED, PROJECT(EDITOR), cv_api_create_job},
    {"GET", "projects/{}/jobs", SIGNED, PROJECT(VIEWER), cv_api_list_jobs},
    {"GET", "projects/{}/connections", SIGNED, PROJECT(VIEWER), cv_api_list_connections},
    {"GET", "projects/{}/notifications", SIGNED, PROJECT(VIEWER), cv_api_list_notifications},
    {"GET", "projects/{}/logs", SIGNED, PROJECT(VIEWER), cv_api_list_project_logs},
    {"GET", "projects/{}/stats", SIGNED, PROJECT(VIEWER), cv_api_project_stats},
    {"GET", "projects/{}/summary", SIGNED, PROJECT(VIEWER), cv_api_project_summary},
    {"POST", "projects/{}/webhooks", SIGNED, PROJECT(EDITOR), cv_api_create_webhook},
    {"GET", "projects/{}/webhooks", SIGNED, PROJECT(EDITOR), cv_api_list_webhooks},
    {"GET", "webhooks/{}", SIGNED, WEBHOOK(EDITOR), cv_api_get_webhook},
    {"PATCH", "webhooks/{}", SIGNED, WEBHOOK(EDITOR), cv_api_patch_webhook},
    {"DELETE", "webhooks/{}", SIGNED, WEBHOOK(EDITOR), cv_api_delete_webhook},
    {"GET", "webhooks/{}/deliveries", SIGNED, WEBHOOK(EDITOR), cv_api_list_deliveries},
    {"GET", "projects/{}/members", SIGNED, PROJECT(VIEWER), cv_api_list_members},
    {"POST", "projects/{}/members", SIGNED, PROJECT(OWNER), cv_api_add_member},
    {"PATCH", "projects/{}/members/{}", SIGNED, PROJECT(OWNER), cv_api_change_member},
    {"DELETE", "projects/{}/members/{}", SIGNED, PROJECT(OWNER), cv_api_remove_member},
    {"GET", "projects/{}/audit", SIGNED, PROJECT(OWNER), cv_api_list_project_audit},
    {"GET", "jobs/{}", SIGNED, JOB(VIEWER), cv_api_get_job},
    {"PATCH", "jobs/{}", SIGNED, JOB(EDITOR), cv_api_patch_job},
    {"DELETE", "jobs/{}", SIGNED, JOB(EDITOR), cv_api_delete_job},
    {"GET", "jobs/{}/runs", SIGNED, JOB(VIEWER), cv_api_list_runs}, /* runs and skipped ticks */
    {"POST", "jobs/{}/runs", SIGNED, JOB(RUNNER), cv_api_trigger_run},
    {"GET", "jobs/{}/schedule", SIGNED, JOB(VIEWER), cv_api_get_schedule},
    {"GET", "schedules/preview", SIGNED, NONE, cv_api_preview_schedule}, /* fire times */
    {"PUT", "jobs/{}/schedule", SIGNED, JOB(EDITOR), cv_api_put_schedule},
    {"DELETE", "jobs/{}/schedule", SIGNED, JOB(EDITOR), cv_api_delete_schedule},
    {"GET", "runs/{}", SIGNED, RUN(VIEWER), cv_api_get_run},
    {"POST", "runs/{}/cancel", SIGNED, RUN(RUNNER), cv_api_cancel_run},
    {"GET", "runs/{}/events", SIGNED, RUN(VIEWER), cv_api_list_events},
    {"GET", "runs/{}/stream", SIGNED, RUN(VIEWER), cv_api_stream_run}, /* Server-Sent Events */
    {"POST", "projects/{}/queries/run", SIGNED, PROJECT(RUNNER), cv_api_run_query},
    {"POST", "projects/{}/queries", SIGNED, PROJECT(EDITOR), cv_api_create_saved_query},
    {"GET", "projects/{}/queries", SIGNED, PROJECT(VIEWER), cv_api_list_saved_queries},
    {"GET", "queries/{}", SIGNED, QUERY(VIEWER), cv_api_get_saved_query},
    {"PATCH", "queries/{}", SIGNED, QUERY(EDITOR), cv_api_patch_saved_query},
    {"DELETE", "queries/{}", SIGNED, QUERY(EDITOR), cv_api_delete_saved_query},
    {"POST", "queries/{}/run", SIGNED, QUERY(RUNNER), cv_api_run_saved_query},
    {"POST", "queries/{}/job", SIGNED, QUERY(EDITOR), cv_api_job_from_saved_query},
    {"GET", "query-runs/{}", SIGNED, QUERY_RUN(RUNNER), cv_api_get_query_run},
    {"POST", "query-runs/{}/cancel", SIGNED, QUERY_RUN(RUNNER), cv_api_cancel_query_run},
    {"GET", "query-runs/{}/rows", SIGNED, QUERY_RUN(RUNNER), cv_api_query_rows}, /* CSV, JSONL */
};

void cv_api_each_route(cv_api_route_fn *fn, void *ctx) {
    for (size_t r = 0; r < sizeof(routes) / sizeof(routes[0]); r++)
        fn(ctx, routes[r].method, routes[r].path, access_names[routes[r].who],
           cv_api_scope_str(routes[r].scope),
           routes[r].scope == CV_SCOPE_NONE ? "-" : cv_role_str(routes[r].need));
}

/* Runs a matched route: checks who asks first, unless the route is open, and
 * records a change it made in the audit trail. */
static void call(cv_api *api, const route *r, const char *const ids[2], const cv_http_request *req,
                 cv_http_response *res) {
    bool write = strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0;
    cv_api_idem idem = CV_API_IDEM_NONE;
    char idem_id[CV_DIGEST_LEN];
    cv_http_request signed_req = *req;
    cv_caller who;

    signed_req.item = ids[1];
    if (r->who == OPEN) {
        r->handler(api, ids[0], &signed_req, res);
        if (write && res->status >= 200 && res->status < 300)
            cv_api_audit(api, r->method, r->path, ids, req, res, NULL);
        return;
    }
    if (!cv_api_authenticate(api, req, write, &who, res))
        return;
    if (r->who == ADMIN && !who.admin) {
        cv_http_error(res, 403, "forbidden", NULL, "%s %s is for administrators only", req->method,
                      req->path);
        return;
    }
    memset(who.project_id, 0, sizeof(who.project_id));
    who.role = CV_ROLE_NONE;
    if (!cv_api_authorize(api, r->scope, ids[0], r->need, &who, res))
        return;
    signed_req.caller = &who;
    if (strcmp(req->method, "POST") == 0)
        idem = cv_api_idem_begin(api, req, &who, idem_id, res);
    if (idem == CV_API_IDEM_ANSWERED)
        return; /* answered before (not a change now), or refused */
    r->handler(api, ids[0], &signed_req, res);
    if (idem == CV_API_IDEM_RUN)
        cv_api_idem_end(api, idem_id, res);
    if (write && res->status >= 200 && res->status < 300)
        cv_api_audit(api, r->method, r->path, ids, req, res, &who);
}

/* Whether the n segments after /api/v1 are the route's path, walked in place
 * (no copy per route and request); ids get the segments its "{}"s matched. */
static bool path_matches(const char *path, char segs[][64], int n, const char *ids[2]) {
    int k = 0, found = 0;

    ids[0] = ids[1] = NULL;
    for (const char *p = path; *p; k++) {
        size_t len = strcspn(p, "/");
        if (k == n)
            return false;
        if (len == 2 && p[0] == '{' && p[1] == '}' && found < 2)
            ids[found++] = segs[k];
        else if (strlen(segs[k]) != len || memcmp(segs[k], p, len) != 0)
            return false;
        p += len;
        if (*p == '/')
            p++;
    }
    return k == n;
}

/* Answers req by the route its method and path match; returns that route's
 * index in routes[], CV_API_WEB_ROUTE for the web interface's files, or -1
 * when none matched (a 404 or 405). */
#define CV_API_WEB_ROUTE (-2)
static int dispatch(cv_api *api, const cv_http_request *req, cv_http_response *res) {
    char s[6][64], allowed[64] = "";
    int n;

    if (cv_web_path(req->path)) {
        cv_web_answer(api->web, req, res);
        return CV_API_WEB_ROUTE;
    }
    n = split_path(req->path, s);

    if (n == 1 && (strcmp(s[0], "healthz") == 0 || strcmp(s[0], "readyz") == 0 ||
                   strcmp(s[0], "CreateProjects") == 0)) {
        /* Also at the root, where orchestrators look for them (and where the
         * original Convutell had its route). */
        memcpy(s[2], s[0], sizeof(s[0]));
        snprintf(s[0], sizeof(s[0]), "api");
        snprintf(s[1], sizeof(s[1]), "v1");
        n = 3;
    }
    if (n < 3 || strcmp(s[0], "api") != 0 || strcmp(s[1], "v1") != 0) {
        cv_http_error(res, 404, "not_found", NULL, "no route for %s %s", req->method, req->path);
        return -1;
    }
    for (size_t r = 0; r < sizeof(routes) / sizeof(routes[0]); r++) {
        const char *ids[2];
        if (!path_matches(routes[r].path, s + 2, n - 2, ids))
            continue;
        if (strcmp(req->method, routes[r].method) == 0) {
            call(api, &routes[r], ids, req, res);
            return (int)r;
        }
        snprintf(allowed + strlen(allowed), sizeof(allowed) - strlen(allowed), "%s%s",
                 allowed[0] ? ", " : "", routes[r].method);
    }
    if (!allowed[0]) {
        cv_http_error(res, 404, "not_found", NULL, "no route for %s %s", req->method, req->path);
        return -1;
    }
    /* HEAD goes wherever GET does (cv_http.h). */
    snprintf(res->allow, sizeof(res->allow), "%s%s", allowed,
             strstr(allowed, "GET") ? ", HEAD" : "");
    cv_http_error(res, 405, "method_not_allowed", NULL, "%s %s is not supported; use %s",
                  req->method, req->path, res->allow);
    return -1;
}

/* Every request: answered by its route, counted and timed under that
 * route's name (cv_metrics.h). */
static void handle(void *ctx, const cv_http_request *req, cv_http_response *res) {
    cv_api *api = ctx;
    int64_t started = cv_time_mono_us();
    int r = dispatch(api, req, res);
    const char *name = r == CV_API_WEB_ROUTE ? "route=\"web\""
                       : r < 0               ? "route=\"unmatched\""
                                             : api->route_labels[r];
    char labels[CV_API_ROUTE_LABEL + 16];

    snprintf(labels, sizeof(labels), "%s,status=\"%d\"", name, res->status);
    cv_metrics_add(api->m_requests, labels, 1);
    cv_metrics_observe(api->m_latency, name, (double)(cv_time_mono_us() - started) / 1e6);
}

/* ---- lifecycle ---------------------------------------------------------- */

cv_api *cv_api_new(const cv_config *cfg, char *errbuf, size_t errlen) {
    cv_api *api = calloc(1, sizeof(*api));
    cv_http_limits limits;
    char why[512];
    cv_err err;

    if (!api) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    api->cfg = *cfg;
    _Static_assert(sizeof(routes) / sizeof(routes[0]) <= CV_API_ROUTES_MAX, "route labels");
    for (size_t r = 0; r < sizeof(routes) / sizeof(routes[0]); r++)
        snprintf(api->route_labels[r], sizeof(api->route_labels[r]), "route=\"%s /api/v1/%s\"",
                 routes[r].method, routes[r].path);
    api->m_requests = cv_metrics_register(CV_METRIC_COUNTER, "convutell_http_requests_total",
                                          "HTTP requests answered, by route and status.", NULL, 0);
    api->m_latency =
        cv_metrics_register(CV_METRIC_HISTOGRAM, "convutell_http_request_duration_seconds",
                            "Time from a request's arrival to its answer (its handler), by route.",
                            cv_metrics_seconds, cv_metrics_nseconds);
    api->m_run_reads = cv_metrics_register(
        CV_METRIC_COUNTER, "convutell_api_run_reads_total",
        "Runs the API read, from its cache of ended runs or from the store.", NULL, 0);
    if (cv_credential_init(errbuf, errlen) != CV_OK)
        goto fail;
    api->mongo = cv_mongo_new(cfg->mongo_uri, cfg->mongo_db, "convutell-api", errbuf, errlen);
    if (!api->mongo)
        goto fail;
    api->producer =
        cv_kafka_producer_new(cfg->kafka_bootstrap, CV_API_PUBLISH_TIMEOUT_MS, errbuf, errlen);
    if (!api->producer)
        goto fail;
    if (!(api->cache = cv_cache_new(4096, cfg->cache_ms)) ||
        !(api->people = cv_cache_new(4096, cfg->cache_ms)) ||
        !(api->finals = cv_cache_new(4096, cfg->cache_ms)) ||
        !(api->runs = cv_group_new(api->mongo, CV_COLL_RUNS, 100))) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    /* Up to 10,000 records wait for the store; at a stop, 10 s at most. */
    api->audit = cv_spool_new(api->mongo, CV_COLL_AUDIT, CV_API_AUDIT_FLUSH_MS, 10000, 10000,
                              errbuf, errlen);
    if (!api->audit)
        goto fail;
    if (!(api->replies = cv_replies_new(cfg->kafka_bootstrap, errbuf, errlen)))
        goto fail;
    if (!(api->ready = cv_ready_start(api->mongo, api->producer, CV_TOPIC_JOBS, errbuf, errlen)))
        goto fail;
    if ((err = cv_web_load(cfg->web_dir, &api->web, why, sizeof(why))) == CV_ERR_NOT_FOUND &&
        !cfg->web_dir[0])
        cv_log_warn("the API runs without its web interface: %s", why);
    else if (err) {
        cv_err_set(errbuf, errlen, err, "CONVUTELL_WEB_DIR: %s", why);
        goto fail;
    }
    limits = (cv_http_limits){.max_body = CV_API_MAX_BODY,
                              .connections = (unsigned)cfg->http_connections,
                              .per_address = (unsigned)cfg->http_per_address,
                              .idle_seconds = (unsigned)cfg->http_idle_seconds,
                              .request_seconds = (unsigned)cfg->http_request_seconds,
                              .cors_origins = cfg->cors_origins};
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
    cv_ready_stop(api->ready);    /* before the clients it pings */
    cv_spool_destroy(api->audit); /* what is queued is written, while the store is there */
    cv_replies_destroy(api->replies);
    cv_kafka_producer_destroy(api->producer);
    cv_mongo_destroy(api->mongo);
    cv_cache_destroy(api->cache);
    cv_cache_destroy(api->people);
    cv_cache_destroy(api->finals);
    cv_web_destroy(api->web);
    cv_group_destroy(api->runs); /* after the server: no request runs any more */
    free(api);
}
