/*
 * cv_worker.h - the worker service (`convutell worker`).
 *
 * Consumes convutell.jobs in the consumer group "convutell-workers" and runs
 * each job: this is where a job message is decoded and dispatched. For each
 * message it publishes run.started, then run.succeeded or run.failed, to
 * convutell.events, and stores the message's offset only after the destination
 * committed and the final event was acknowledged (at least once). A message that
 * is not a valid job.v2 goes to convutell.jobs.dlq with the reason in headers,
 * a job.rejected event is published, and the worker carries on.
 *
 * A cv_worker is made, run and destroyed by one thread (the process's main
 * thread); it starts and joins the attempt threads itself (cv_attempt.h).
 */
#ifndef CV_WORKER_H
#define CV_WORKER_H

#include "cv_config.h"
#include "cv_err.h"

#include <signal.h>

typedef struct cv_worker cv_worker;

/* Connects the Kafka clients and the MongoDB pool (lazily). NULL with the reason
 * in errbuf on failure. Free with cv_worker_destroy(). */
cv_worker *cv_worker_new(const cv_config *cfg, char *errbuf, size_t errlen);

/* Runs until *stop becomes non-zero (set from a signal handler). Finishes the
 * job in hand first. Returns CV_OK, or an error that should stop the process
 * (events could not be published: the offset was not stored, so the job will
 * be redelivered). */
cv_err cv_worker_run(cv_worker *w, volatile sig_atomic_t *stop, char *errbuf, size_t errlen);

/* Leaves the consumer group and frees. Accepts NULL. */
void cv_worker_destroy(cv_worker *w);

#endif
