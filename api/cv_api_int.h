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
#include "cv_mongo.h"
#include "cv_people.h"

#include <cjson/cJSON.h>

/* How long a run's job message waits for the broker before the POST answers
 * 503: also its producer's message timeout, so no wait is longer. */
#define CV_API_PUBLISH_TIMEOUT_MS 10000

struct cv_api {
    cv_config cfg;
    cv_mongo *mongo;
    cv_cache *cache;  /* jobs and projects as POST a run reads them */
    cv_cache *people; /* tokens and users, as every request reads them (cv_people.h) */
    cv_group *runs;   /* the run records POSTs of runs insert */
    cv_kafka_producer *producer;
    cv_http_server *http;
};

/* Answers 503 for an unavailable store or broker, 500 otherwise, with why. */
void cv_api_internal_error(cv_http_response *res, cv_err err, const char *why);

/* Answers 422 naming the field and the reason. */
void cv_api_field_error(cv_http_response *res, const cv_verr *verr);

/* The request body as a JSON object, or NULL having answered 400 itself. The
 * caller frees it with cJSON_Delete(). */
cJSON *cv_api_parse_body(const cv_http_request *req, cv_http_response *res);

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

/* POST /api/v1/connections, /api/v1/projects and /api/v1/projects/{id}/jobs;
 * GET /api/v1/connections/{id}, /projects/{id}, /jobs/{id} and /runs/{id}
 * (cv_api_catalog.c). */
cv_api_handler cv_api_create_connection, cv_api_create_project, cv_api_create_job;
cv_api_handler cv_api_get_connection, cv_api_get_project, cv_api_get_job, cv_api_get_run;

/* POST /api/v1/jobs/{id}/runs and POST /api/v1/runs/{id}/cancel (cv_api_runs.c). */
cv_api_handler cv_api_trigger_run, cv_api_cancel_run;

/* GET /api/v1/jobs/{id}/runs, /api/v1/projects/{id}/notifications and
 * /api/v1/runs/{id}/events, a page each (cv_api_lists.c). */
cv_api_handler cv_api_list_runs, cv_api_list_notifications, cv_api_list_events;

/* PUT, GET and DELETE /api/v1/jobs/{id}/schedule (cv_api_schedule.c). */
cv_api_handler cv_api_put_schedule, cv_api_get_schedule, cv_api_delete_schedule;

/* Who is asking: the request's token, checked (cv_api_people.c). False,
 * having answered 401 (no token, or one that lets nobody in) or 403 (a write
 * with a read-only token, or a cookie-authenticated write without the
 * session's CSRF value). */
bool cv_api_authenticate(cv_api *api, const cv_http_request *req, bool write, cv_caller *who,
                         cv_http_response *res);

/* The caller the router found for a route that wants one (never NULL there). */
const cv_caller *cv_api_caller(const cv_http_request *req);

/* POST and DELETE /api/v1/sessions; POST, GET /api/v1/tokens and DELETE
 * /api/v1/tokens/{id}; POST, GET /api/v1/users, GET, PATCH and DELETE
 * /api/v1/users/{name} (cv_api_people.c). */
cv_api_handler cv_api_create_session, cv_api_delete_session;
cv_api_handler cv_api_create_token, cv_api_list_tokens, cv_api_delete_token;
cv_api_handler cv_api_create_user, cv_api_list_users, cv_api_get_user, cv_api_patch_user,
    cv_api_delete_user;

#endif
