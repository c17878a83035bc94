/*
 * cv_api.h - the REST API service (`convutell api`).
 *
 * Resources under /api/v1: connections, projects, jobs (metadata in MongoDB),
 * runs (POST /jobs/{id}/runs publishes a job.v2 message to convutell.jobs and
 * answers 202 once Kafka acknowledged it) and their events. Errors are JSON:
 * 400 malformed JSON, 404 unknown id or route, 405 wrong method, 409 state
 * conflict, 413 body over 1 MiB, 422 a missing or mistyped field (named),
 * 503 Kafka or MongoDB unavailable.
 *
 * A cv_api is made, run and destroyed by the process's main thread; its
 * handlers run on libmicrohttpd's threads (cv_api_int.h says what they share).
 */
#ifndef CV_API_H
#define CV_API_H

#include "cv_config.h"
#include "cv_err.h"

#include <signal.h>

#define CV_API_MAX_BODY (1024 * 1024)

typedef struct cv_api cv_api;

/* Creates the Kafka producer and MongoDB pool and starts listening on
 * cfg->http_host:http_port. NULL with the reason in errbuf on failure.
 * Free with cv_api_destroy(). */
cv_api *cv_api_new(const cv_config *cfg, char *errbuf, size_t errlen);

/* Serves until *stop becomes non-zero. */
cv_err cv_api_run(cv_api *api, volatile sig_atomic_t *stop);

/* Stops the HTTP server (waiting for requests in progress) and frees. */
void cv_api_destroy(cv_api *api);

/* Calls fn for every route of the API, in the router's order: its method,
 * its path under /api/v1 ("{}" for an id), who may call it ("open",
 * "signed-in", "admin"), what its first {} names ("project", "job", "run",
 * "connection", or "-") and the role it needs there ("viewer", "runner",
 * "editor", "owner", or "-"). Static strings; any thread. */
typedef void cv_api_route_fn(void *ctx, const char *method, const char *path, const char *access,
                             const char *scope, const char *role);
void cv_api_each_route(cv_api_route_fn *fn, void *ctx);

#endif
