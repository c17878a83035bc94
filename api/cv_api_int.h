/*
 * cv_api_int.h - what the API's handler files share (cv_api.c and the
 * cv_api_*.c beside it): the service's state, the helpers that read a request
 * and answer errors, and the handlers of runs, lists and schedules. Not for
 * other modules.
 */
#ifndef CV_API_INT_H
#define CV_API_INT_H

#include "cv_api.h"
#include "cv_cache.h"
#include "cv_group.h"
#include "cv_http.h"
#include "cv_json.h"
#include "cv_kafka.h"
#include "cv_metrics.h"
#include "cv_mongo.h"
#include "cv_people.h"
#include "cv_ready.h"
#include "cv_replies.h"
#include "cv_spool.h"
#include "cv_web.h"

#include <cjson/cJSON.h>

/* How long a run's job message waits for the broker before the POST answers
 * 503: also its producer's message timeout, so no wait is longer. */
#define CV_API_PUBLISH_TIMEOUT_MS 10000

/* The longest route label of the metrics: route="METHOD /api/v1/path". */
#define CV_API_ROUTE_LABEL 96
/* Routes in the router's table, at most. */
#define CV_API_ROUTES_MAX 128

struct cv_api {
    cv_config cfg;
    cv_mongo *mongo;
    cv_cache *cache;  /* jobs and projects as POST a run reads them */
    cv_cache *people; /* tokens and users, as every request reads them (cv_people.h) */
    cv_cache *finals; /* runs that ended, as cv_api_run_get() folded them */
    cv_group *runs;   /* the run records POSTs of runs insert */
    cv_spool *audit;  /* the audit records of every change (cv_api_audit.c) */
    cv_kafka_producer *producer;
    cv_replies *replies; /* workers' word that a console query ended (cv_replies.h) */
    cv_ready *ready;     /* the store's and the broker's last answers (cv_ready.h) */
    cv_http_server *http;
    cv_web *web; /* the web interface's files, NULL when there is no build */
    /* Requests by route and status, and their durations by route
     * (cv_metrics.h), under each route's label. */
    cv_metric *m_requests, *m_latency;
    cv_metric *m_run_reads; /* cv_api_run_get()'s answers, from="cache" or "store" */
    char route_labels[CV_API_ROUTES_MAX][CV_API_ROUTE_LABEL];
};

/* The run `id` as it stands (cv_runs_get()), a new document the caller frees with
 * bson_destroy(). A run that ended is kept in api->finals as it was folded and served
 * from there for up to CONVUTELL_CACHE_MS: its documents no longer change what it folds
 * to (cv_runfold.h: a final status is never left, the first end of an attempt stored
 * wins), so only retention's deletes are seen that late. Errors as cv_runs_get(). */
cv_err cv_api_run_get(cv_api *api, const char *id, bson_t **out, char *why, size_t len);

/* Answers 503 for an unavailable store or broker, 500 otherwise, with why. */
void cv_api_internal_error(cv_http_response *res, cv_err err, const char *why);

/* Answers 422 naming the field and the reason. */
void cv_api_field_error(cv_http_response *res, const cv_verr *verr);

/* The request body as a JSON object, or NULL having answered 400 itself. The
 * caller frees it with cJSON_Delete(). */
cJSON *cv_api_parse_body(const cv_http_request *req, cv_http_response *res);

/* Adds a list page's "next" to body: the cursor, or null when it is "". */
void cv_api_add_next(cJSON *body, const char *next);

/* A stored document as the API shows it (new; NULL on NOMEM). */
cJSON *cv_api_doc_to_json(const bson_t *doc);

/* Loads a document by id from the store: answers 404 or 503 itself on
 * failure. The caller frees it with bson_destroy(). */
bson_t *cv_api_load_doc(cv_api *api, const char *collection, const char *what, const char *id,
                        cv_http_response *res);

/* As cv_api_load_doc(), through the API's cache (cv_cache.h): for documents a
 * hot path reads and a change drops from the cache. */
bson_t *cv_api_load_cached(cv_api *api, const char *collection, const char *what, const char *id,
                           cv_http_response *res);

/* A route's handler (the table in cv_api.c): `id` is the path's {} segment,
 * NULL for a path without one. It answers through res. Called on the HTTP
 * server's threads, any number at once. */
typedef void cv_api_handler(cv_api *api, const char *id, const cv_http_request *req,
                            cv_http_response *res);

/* Starts a new stored object: a fresh id as _id, created_at and updated_at
 * (now) and created_by (`by`). Answers 500 itself and returns false if no id
 * could be made. */
bool cv_api_new_doc(bson_t *doc, char *id, size_t idlen, const char *by, cv_http_response *res);

/* Inserts doc (which has _id `id`) and answers 201 with its stored form and
 * Location base_path/id. */
void cv_api_insert_and_answer(cv_api *api, const char *collection, const char *base_path,
                              bson_t *doc, const char *id, cv_http_response *res);

/* Versions of what PATCH changes, for ETag and If-Match: a job's is its
 * version ("\"v3\""), a project's and a saved query's its updated_at. cv_api_etag() writes the
 * stored document's into buf; cv_api_if_match() is true when the request has
 * no If-Match, "*", or the ETag given, and else answers 412 naming what the
 * document is at. */
#define CV_API_ETAG_LEN 96
void cv_api_etag(const char *collection, const bson_t *doc, char buf[CV_API_ETAG_LEN]);
bool cv_api_if_match(const cv_http_request *req, const char *what, const char *id, const char *etag,
                     cv_http_response *res);

/* Marks document `id` of collection deleted (deleted_at, deleted_by) and
 * drops it from the API's cache; with unset_schedule also takes a job's
 * schedule away (the scheduler stops firing it). Kept in the store for the
 * runs queued before; the API answers 404 for it. */
cv_err cv_api_mark_deleted(cv_api *api, const char *collection, const char *id, const char *by,
                           bool unset_schedule, char *why, size_t len);

/* Answers 200 with the stored document (404 or 503 as cv_api_load_doc()). */
void cv_api_get_one(cv_api *api, const char *collection, const char *what, const char *id,
                    cv_http_response *res);

/* POST /api/v1/connections, GET and DELETE /api/v1/connections/{id}, GET
 * /projects/{id}/connections; GET /jobs/{id} and /runs/{id}
 * (cv_api_catalog.c). */
cv_api_handler cv_api_create_connection, cv_api_get_connection, cv_api_delete_connection;
cv_api_handler cv_api_patch_connection;
cv_api_handler cv_api_list_connections, cv_api_get_job, cv_api_get_run;

/* POST and GET /api/v1/projects/{id}/jobs, PATCH and DELETE /jobs/{id}
 * (cv_api_jobs.c). */
cv_api_handler cv_api_create_job, cv_api_list_jobs, cv_api_patch_job, cv_api_delete_job;

/* The `q` argument of a list (a substring of the name, any case) added to
 * where; false having answered 422. */
bool cv_api_name_filter(const cv_http_request *req, bson_t *where, cv_http_response *res);

/* Answers {key: [...], "next"} with one page (cv_page.h: limit, after or
 * cursor) of the documents of collection matching where, oldest first, at
 * most max a page. */
void cv_api_list_where(cv_api *api, const cv_http_request *req, const char *collection,
                       const bson_t *where, const char *key, int64_t max, cv_http_response *res);

/* The same, in the order of another stored time than created_at, ascending
 * (dir 1) or newest first (dir -1). */
void cv_api_list_where_by(cv_api *api, const cv_http_request *req, const char *collection,
                          const bson_t *where, const char *order, int dir, const char *key,
                          int64_t max, cv_http_response *res);

/* GET /notifications, GET /notifications/unread-count, POST
 * /notifications/{id}/read and POST /notifications/read-all: each user's
 * inbox (cv_api_inbox.c). */
cv_api_handler cv_api_list_inbox, cv_api_unread_count, cv_api_mark_read, cv_api_mark_all_read;

/* POST /api/v1/projects, GET and PATCH /api/v1/projects/{id}; GET and POST
 * /projects/{id}/members, PATCH and DELETE /projects/{id}/members/{user}
 * (cv_api_projects.c). */
cv_api_handler cv_api_create_project, cv_api_get_project, cv_api_patch_project;
cv_api_handler cv_api_list_projects, cv_api_delete_project;
cv_api_handler cv_api_list_members, cv_api_add_member, cv_api_change_member, cv_api_remove_member;

/* POST /api/v1/jobs/{id}/runs and POST /api/v1/runs/{id}/cancel (cv_api_runs.c). */
cv_api_handler cv_api_trigger_run, cv_api_cancel_run;

/* GET /openapi.json: the API described in OpenAPI 3.1 (cv_api_openapi.c). */
cv_api_handler cv_api_openapi;

/* GET /api/v1/jobs/{id}/runs, /api/v1/projects/{id}/notifications,
 * /api/v1/runs/{id}/events and /api/v1/projects/{id}/logs, a page each
 * (cv_api_lists.c). */
cv_api_handler cv_api_list_runs, cv_api_list_notifications, cv_api_list_events;
cv_api_handler cv_api_list_project_logs;

/* The event filters of a list's query (type, stream, since and until, q in
 * log lines) added to where, type_default when no type is asked for (NULL:
 * every type); false having answered 422 naming the argument. */
bool cv_api_event_filters(const cv_http_request *req, const char *type_default, bson_t *where,
                          cv_http_response *res);

/* GET /api/v1/projects/{id}/stats: runs per time bucket (cv_api_stats.c). */
cv_api_handler cv_api_project_stats;

/* POST and GET /projects/{id}/webhooks, GET, PATCH and DELETE /webhooks/{id}
 * and GET /webhooks/{id}/deliveries (cv_api_webhooks.c). */
cv_api_handler cv_api_create_webhook, cv_api_list_webhooks, cv_api_get_webhook;
cv_api_handler cv_api_patch_webhook, cv_api_delete_webhook, cv_api_list_deliveries;

/* GET /api/v1/runs/{id}/stream: the run as Server-Sent Events (cv_api_stream.c). */
cv_api_handler cv_api_stream_run;

/* POST /CreateProjects, the original Convutell's route (cv_api_compat.c). */
cv_api_handler cv_api_create_projects_compat;

/* PUT, GET and DELETE /api/v1/jobs/{id}/schedule (cv_api_schedule.c). */
cv_api_handler cv_api_put_schedule, cv_api_get_schedule, cv_api_delete_schedule;

/* Who is asking: the request's token, checked (cv_api_people.c). False,
 * having answered 401 (no token, or one that lets nobody in) or 403 (a write
 * with a read-only token, or a cookie-authenticated write without the
 * session's CSRF value). */
bool cv_api_authenticate(cv_api *api, const cv_http_request *req, bool write, cv_caller *who,
                         cv_http_response *res);

/* What a route's {} names, for the check of the caller's role (cv_api_rights.c). */
typedef enum cv_api_scope {
    CV_SCOPE_NONE,       /* nothing of a project: the handler checks, if anything */
    CV_SCOPE_PROJECT,    /* a project */
    CV_SCOPE_JOB,        /* a job, of its project */
    CV_SCOPE_RUN,        /* a run, of its project */
    CV_SCOPE_CONNECTION, /* a connection, of its project and those that use it */
    CV_SCOPE_QUERY,      /* a saved query, of its project */
    CV_SCOPE_QUERY_RUN,  /* a query run of the SQL console, of its project */
    CV_SCOPE_WEBHOOK,    /* a webhook, of its project */
} cv_api_scope;

/* "project", "job", "run", "connection", "query", "query-run", "webhook", or "-"
 * for none. */
const char *cv_api_scope_str(cv_api_scope scope);

/* Whether who may act with role `need` on the resource `id` of scope: sets
 * who->project_id and who->role; false having answered 404 (no such
 * resource, or one the caller may not see: the same answer), 403 (a role
 * below need, named) or 503. An administrator is an owner everywhere. */
bool cv_api_authorize(cv_api *api, cv_api_scope scope, const char *id, cv_role need, cv_caller *who,
                      cv_http_response *res);

/* As cv_api_authorize() for a project named in a body rather than the path. */
bool cv_api_project_role(cv_api *api, cv_caller *who, const char *project_id, cv_role need,
                         cv_http_response *res);

/* The projects (not deleted) that use connection id, at most max, as an
 * array document the caller frees. */
cv_err cv_api_connection_users(cv_api *api, const char *id, int64_t max, bson_t **projects,
                               char *why, size_t len);

/* Whether who->role is at least need; false having answered 403 naming both. */
bool cv_api_require(const cv_caller *who, cv_role need, cv_http_response *res);

/* Remembers that run_id belongs to project_id (a POST of a run), so its
 * reads are checked without a look-up. */
void cv_api_note_run(cv_api *api, const char *run_id, const char *project_id);

/* A connection's stored (masked) string as who may see it: whole for editors
 * and owners (the password masked), without any credential for runners and
 * viewers (cv_connstr_strip()). New; the caller frees it; NULL on NOMEM. */
char *cv_api_connection_view(const cv_caller *who, const char *masked);

/* The caller the router found for a route that wants one (never NULL there). */
const cv_caller *cv_api_caller(const cv_http_request *req);

/* POST and DELETE /api/v1/sessions; POST, GET /api/v1/tokens and DELETE
 * /api/v1/tokens/{id}; POST, GET /api/v1/users, GET, PATCH and DELETE
 * /api/v1/users/{name} (cv_api_people.c). */
cv_api_handler cv_api_create_session, cv_api_delete_session, cv_api_current_session;
cv_api_handler cv_api_instance, cv_api_project_summary, cv_api_preview_schedule;

/* The next time the job's schedule fires after now_ms (cv_api_schedule.c); -1 when it
 * has none, is paused or has ended. */
int64_t cv_api_next_fire(const bson_t *job, int64_t now_ms);
cv_api_handler cv_api_create_token, cv_api_list_tokens, cv_api_delete_token;
cv_api_handler cv_api_create_user, cv_api_list_users, cv_api_get_user, cv_api_patch_user,
    cv_api_delete_user;

/* Records a change the route `method route` made (it answered 2xx): who
 * (NULL on an open route: a login, named by its answer), from which address,
 * the ids of the path and the one it made. The record is queued (cv_spool.h)
 * and written within CV_API_AUDIT_FLUSH_MS; the lists of the audit trail
 * wait for what this process queued before they read. */
#define CV_API_AUDIT_FLUSH_MS 50
void cv_api_audit(cv_api *api, const char *method, const char *route, const char *const ids[2],
                  const cv_http_request *req, const cv_http_response *res, const cv_caller *who);

/* Idempotency-Key on a signed-in caller's POST (cv_api_idem.c): begin before
 * the handler runs. RUN: run it, then cv_api_idem_end() keeps its answer
 * under id. NONE: no key was sent. ANSWERED: res holds the answer (the first
 * answer again, 409 while that one is being made, 422 for a bad key or one
 * used for another request), and the handler must not run. */
#define CV_API_IDEM_MS (24 * 3600 * INT64_C(1000))
typedef enum cv_api_idem { CV_API_IDEM_NONE, CV_API_IDEM_RUN, CV_API_IDEM_ANSWERED } cv_api_idem;
cv_api_idem cv_api_idem_begin(cv_api *api, const cv_http_request *req, const cv_caller *who,
                              char id[CV_DIGEST_LEN], cv_http_response *res);
void cv_api_idem_end(cv_api *api, const char id[CV_DIGEST_LEN], const cv_http_response *res);

/* The SQL console: POST /projects/{id}/queries/run, GET /query-runs/{id}, POST
 * /query-runs/{id}/cancel (cv_api_console.c) and GET /query-runs/{id}/rows
 * (cv_api_export.c). */
cv_api_handler cv_api_run_query, cv_api_get_query_run, cv_api_cancel_query_run;
cv_api_handler cv_api_query_rows;

/* POST and GET /projects/{id}/queries, GET, PATCH and DELETE /queries/{id},
 * POST /queries/{id}/run and /queries/{id}/job: saved queries (cv_api_queries.c). */
cv_api_handler cv_api_create_saved_query, cv_api_list_saved_queries, cv_api_get_saved_query;
cv_api_handler cv_api_patch_saved_query, cv_api_delete_saved_query, cv_api_run_saved_query;
cv_api_handler cv_api_job_from_saved_query;

/* The query run `id` (the router checked the caller's role), a run lost by
 * its worker ended as failed first; NULL having answered 404 or 503. */
bson_t *cv_api_load_query_run(cv_api *api, const char *id, const cv_http_request *req,
                              cv_http_response *res);

/* Chunk seq of a query run's rows (runs/cv_query.h); the caller frees it. */
cv_err cv_api_query_chunk(cv_api *api, const char *id, int64_t seq, bson_t **chunk, char *why,
                          size_t len);

/* A stored value of a result row as JSON (new). */
cJSON *cv_api_query_value(const bson_iter_t *it);

/* GET /api/v1/audit and GET /api/v1/projects/{id}/audit (cv_api_audit.c). */
cv_api_handler cv_api_list_audit, cv_api_list_project_audit;

#endif
