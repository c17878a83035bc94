/*
 * cv_runs.h - the record of runs in MongoDB: the `events` collection (one
 * document per event, _id = event id) and the `runs` collection (one document
 * per run, kept current from its events).
 *
 * Applying an event is idempotent and insensitive to order: a replayed event
 * changes nothing, and a late run.queued or run.started never moves a run back
 * from a final state. The collector applies every event; the API applies only
 * the run.queued it publishes, so a client can read a run right after 202.
 * Each run.started adds an entry to the run's `attempts` array (event id,
 * worker, start time), so a run that was retried shows every attempt.
 *
 * Attempts and leases. Before it runs anything a worker claims the attempt in
 * the `leases` collection (cv_runs_claim(): one document per run holding the
 * attempt, the worker, an expiry time and the job message), renews the lease
 * while it works (cv_runs_renew()) and releases it at the end
 * (cv_runs_release()). Only workers and the scheduler write leases, and only
 * the collector moves a run's status, so no two writers race on one document.
 * A run's events change it only while their attempt is its current one and
 * still running: when a lease runs out the scheduler takes the attempt away
 * (its run.retrying or run.failed event ends that attempt), and whatever the
 * late worker reports afterwards is kept as an event but changes nothing. A
 * run succeeds at most once. Statuses: queued, running, retrying, and the
 * final succeeded, failed, cancelled, timed_out, missed and skipped (ticks
 * that did not run, by the misfire or concurrency policy).
 */
#ifndef CV_RUNS_H
#define CV_RUNS_H

#include "cv_err.h"
#include "cv_message.h"
#include "cv_mongo.h"

#define CV_COLL_EVENTS "events"
#define CV_COLL_RUNS "runs"
#define CV_COLL_NOTIFICATIONS "notifications"
#define CV_COLL_LEASES "leases"

/* True for the statuses a run never leaves. */
bool cv_runs_status_is_final(const char *status);

/* Stores the event (a duplicate event id is success) and brings the run
 * document up to date. Any thread. CV_ERR_MONGO when the database did not
 * acknowledge the writes: the caller must retry before moving on. */
cv_err cv_runs_apply(cv_mongo *m, const cv_event *ev, char *errbuf, size_t errlen);

/* What a claim found. */
typedef enum cv_claim {
    CV_CLAIM_TAKEN, /* the attempt is the caller's: run it */
    CV_CLAIM_HELD,  /* another worker holds it with a live lease: wait and claim again */
    CV_CLAIM_OVER   /* the run ended or moved past this attempt: a duplicate, skip it */
} cv_claim;

/* Claims attempt job->attempt of its run for `worker` with a lease of
 * lease_seconds, storing `message` (the job message) for retries. An attempt
 * held by a worker whose lease ran out is taken over (a redelivery after that
 * worker died resumes the same attempt). On CV_CLAIM_HELD, holder names the
 * worker and its lease. */
cv_err cv_runs_claim(cv_mongo *m, const cv_job *job, const char *message, const char *worker,
                     int lease_seconds, cv_claim *claim, char *holder, size_t holder_len,
                     char *errbuf, size_t errlen);

/* Extends the lease of the attempt `worker` holds to now + lease_ms. *held is
 * false when the attempt was taken away (the lease had run out): the worker
 * must stop and report nothing. */
cv_err cv_runs_renew(cv_mongo *m, const char *run_id, int attempt, const char *worker,
                     int64_t lease_ms, bool *held, char *errbuf, size_t errlen);

/* Ends the lease `worker` holds: "retrying" with the next attempt due at
 * retry_at_ms (already on the retry topic), or "done" when retry_at_ms is 0. */
cv_err cv_runs_release(cv_mongo *m, const char *run_id, int attempt, const char *worker,
                       int64_t retry_at_ms, char *errbuf, size_t errlen);

/* Records that a run failed for good, once per run (_id = run id): the
 * project's notification. */
cv_err cv_runs_notify(cv_mongo *m, const char *run_id, const char *job_id, const char *project_id,
                      const char *status, int attempts, const char *code, const char *message,
                      char *errbuf, size_t errlen);

#endif
