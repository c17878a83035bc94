/*
 * cv_attempt.h - one attempt of a job, run by a worker: publishes
 * run.started, runs the job by its kind (a transfer, `sql` statements or a
 * Python script), then publishes its end (or the next attempt on the retry
 * topic) and releases its lease. Messages that are not runs of stored jobs
 * are cv_reject's.
 *
 * A worker (cv_worker) claims the attempt's lease, runs cv_attempt_run() on a
 * thread of its own and renews the lease from its main thread
 * (cv_attempt_renew()); a renewal that finds the attempt taken away makes
 * the attempt stop at its next check and report nothing.
 */
#ifndef CV_ATTEMPT_H
#define CV_ATTEMPT_H

#include "cv_cache.h"
#include "cv_config.h"
#include "cv_err.h"
#include "cv_kafka.h"
#include "cv_lease.h"
#include "cv_message.h"
#include "cv_metrics.h"
#include "cv_mongo.h"
#include "cv_odbcpool.h"

#include <stdatomic.h>
#include <stdint.h>

/* What every attempt of a worker shares; owned by the worker. */
typedef struct cv_runner {
    cv_config cfg;
    cv_kafka_producer *producer;
    cv_mongo *mongo;
    cv_cache *connections;  /* connection documents, see cv_cache.h */
    cv_cache *jobs;         /* job and project documents */
    cv_odbcpool *odbc_pool; /* connections kept between sql jobs (NULL: none) */
    /* Runs ended for good by final status, rows moved, and durations by
     * kind (cv_metrics.h); set by cv_runner_metrics(). */
    cv_metric *m_finished, *m_rows_read, *m_rows_written, *m_duration;
} cv_runner;

/* Registers the metrics every attempt of r counts in. */
void cv_runner_metrics(cv_runner *r);

/* Looks up connection id (through the runner's cache) and unseals its ODBC
 * connection string into *out, which the caller frees with free(). Any thread. */
cv_err cv_runner_odbc(cv_runner *r, const char *id, char **out, char *errbuf, size_t errlen);

/* One claimed attempt. The worker fills r, job and claim, sets renewed_ms
 * to the claim's time (cv_time_mono_ms()) and owns the struct. */
typedef struct cv_attempt {
    cv_runner *r;
    cv_job job;
    cv_claim claim;             /* TAKEN, RESUMED or CANCELLED */
    atomic_bool lease_lost;     /* taken away: stop, report nothing */
    _Atomic int64_t renewed_ms; /* when the lease was last extended (monotonic) */
    char refused[512];          /* why the stored job may not run now ("" if it may) */
    bool ended;                 /* ran to its end for good and reported it (set by
                                   cv_attempt_run()): its lease is to be marked done */
} cv_attempt;

/* Runs the attempt and publishes its events. Returns an error only when its
 * final event could not be published: the message must then be delivered
 * again (its offset is not stored). */
cv_err cv_attempt_run(cv_attempt *a, char *errbuf, size_t errlen);

/* Extends the attempt's lease; flags it to stop if it was taken away. */
void cv_attempt_renew(cv_attempt *a);

#endif
