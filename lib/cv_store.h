/*
 * cv_store.h - what Convutell keeps in MongoDB: the name of every collection
 * and the indexes that serve every query the services make.
 *
 * Each service calls cv_store_prepare() at start-up, before it reads or
 * writes anything, so a fresh database (or one an older version left) gets
 * every index; createIndexes is idempotent, so any number of services may do
 * it at once. The modules that own a collection's documents are cv_runs
 * (runs, events, notifications, active_runs, queued_runs), cv_lease (leases), the scheduler (ticks,
 * schedulers) and the API (connections, projects, jobs).
 */
#ifndef CV_STORE_H
#define CV_STORE_H

#include "cv_err.h"
#include "cv_mongo.h"

#include <stddef.h>

#define CV_COLL_CONNECTIONS "connections"
#define CV_COLL_PROJECTS "projects"
#define CV_COLL_JOBS "jobs"
#define CV_COLL_RUNS "runs"
#define CV_COLL_EVENTS "events"
#define CV_COLL_NOTIFICATIONS "notifications"
#define CV_COLL_ACTIVE "active_runs" /* one document per run started and going (cv_runs) */
#define CV_COLL_QUEUED "queued_runs" /* one per run of a schedule until it ends (cv_runs) */
#define CV_COLL_LEASES "leases"
#define CV_COLL_TICKS "ticks"                   /* one document per claimed tick */
#define CV_COLL_SCHEDULERS "schedulers"         /* one heartbeat document per scheduler process */
#define CV_COLL_WORKERS "workers"               /* one heartbeat document per worker (cv_beat) */
#define CV_COLL_RETENTION "retention"           /* how far the pruner got, per collection */
#define CV_COLL_USERS "users"                   /* one per user, _id the name (people/) */
#define CV_COLL_TOKENS "tokens"                 /* API tokens and sessions, _id their SHA-256 */
#define CV_COLL_AUDIT "audit"                   /* one record per change made through the API */
#define CV_COLL_LOGIN_FAILURES "login_failures" /* failed logins by address and name (people/) */
#define CV_COLL_JOB_VERSIONS "job_versions"     /* a job as it was before each change (cv_launch) */
#define CV_COLL_IDEMPOTENCY "idempotency" /* the first answer to each Idempotency-Key (api/) */
#define CV_COLL_INBOX "inbox" /* what each user has read of their notifications (api/) */
#define CV_COLL_SAVED_QUERIES "saved_queries"   /* the SQL console's saved queries (api/) */
#define CV_COLL_WEBHOOKS "webhooks"             /* a project's webhooks (api/) */
#define CV_COLL_DELIVERIES "webhook_deliveries" /* one per event and webhook (cv_hooks) */
#define CV_COLL_QUERY_RUNS "query_runs"         /* the SQL console's queries (cv_query) */
#define CV_COLL_QUERY_ROWS "query_rows"         /* their rows, in chunks (cv_query) */

/* Creates every index the services' queries need (the list is in
 * cv_store.c, each with the query it serves). CV_ERR_MONGO with the collection
 * and the server's message when the store refused one. Any thread. */
cv_err cv_store_prepare(cv_mongo *m, char *errbuf, size_t errlen);

#endif
