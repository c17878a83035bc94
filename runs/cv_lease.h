/*
 * cv_lease.h - who holds which attempt of a run: the `leases` collection, one
 * document per run (_id = run id).
 *
 * Before it runs anything a worker claims the attempt (cv_lease_claim_many(): the
 * document holds the attempt, the worker, an expiry time and the job message)
 * and renews the lease while it works (cv_lease_renew()). An attempt that ends
 * in a retry releases its lease (cv_lease_release()). One that ends for good
 * is marked "done" after its final event, acknowledged by Kafka, by a thread
 * of the worker's own that takes the ended attempts in turn
 * (cv_lease_end_many(), cv_ending.h), off the attempt's path: on it, the
 * write cost a fifth of small jobs' throughput (about 390 jobs a second
 * against 495); off it, a tenth (the store's work). Until it is written the
 * lease stays "held", and the run's record, which that final event makes
 * final (cv_runs), is what a later claim (a redelivery), the scheduler's
 * sweep and the pruner ask. Marking it done closes the window in which the
 * collector is behind: a redelivery to another worker, or the sweep, would
 * otherwise take the attempt over once its lease ran out and run
 * it again. The scheduler finds the leases of
 * running runs that ran out (cv_lease_find_expired()) and takes them back
 * (cv_lease_take_back()), then retries or fails the run by publishing an
 * event. Only this module writes the collection, and each write names the
 * state it expects, so a worker and a scheduler never both win: a worker whose
 * lease was taken back learns it at its next renewal and stops without
 * reporting.
 *
 * States: "held" (a worker runs the attempt until expires_at, or ran it to its
 * end), "retrying" (the attempt ended and the next one is due at
 * next_attempt_at; retry_sent says whether it is on the retry topic yet) and
 * "done" (the attempt ended for good, with ended: true; taken back for good;
 * or with cancelled: true when cv_lease_block() wrote it before any claim).
 *
 * The first claim of a run inserts its lease, a single cheap write that
 * batches; only retries and take-overs update one.
 *
 * Times are RFC 3339 text (cv_mongo_append_time()). Every function may be
 * called from any thread.
 */
#ifndef CV_LEASE_H
#define CV_LEASE_H

#include "cv_err.h"
#include "cv_message.h"
#include "cv_mongo.h"
#include "cv_store.h"

#include <stdbool.h>
#include <stdint.h>

/* Workers that may take over one attempt whose lease ran out (its worker
 * died or stalled). Beyond that the attempt is left held: the scheduler's
 * sweep retries the run or fails it, so an attempt that kills every worker
 * that runs it (a poison job) is run at most 1 + this many times. */
#define CV_LEASE_TAKEOVERS_MAX 3

/* What a claim found. */
typedef enum cv_claim {
    CV_CLAIM_TAKEN,    /* the first claim of the run: the caller's, run it */
    CV_CLAIM_RESUMED,  /* a later attempt, or one taken over: the caller's, run it (a cancel
                          may have been asked for meanwhile: cv_runs_cancel_requested()) */
    CV_CLAIM_HELD,     /* another worker holds it with a live lease, or one that ran out after
                          CV_LEASE_TAKEOVERS_MAX take-overs: wait and claim again */
    CV_CLAIM_OVER,     /* the run ended or moved past this attempt: a duplicate, skip it */
    CV_CLAIM_CANCELLED /* cancelled before any worker claimed it (cv_lease_block()) */
} cv_claim;

/* Claims attempt jobs[i]->attempt of each run for `worker` with a lease of
 * lease_seconds, storing messages[i] (the job message) for retries; claims[i]
 * gets what each claim found and, on CV_CLAIM_HELD, holders[i] names the
 * worker and its lease. First attempts go in one insert; a later attempt, or
 * one held by a worker whose lease ran out (a redelivery after that worker
 * died resumes the same attempt), is an update of its own. */
cv_err cv_lease_claim_many(cv_mongo *m, const cv_job *const *jobs, const char *const *messages,
                           size_t n, const char *worker, int lease_seconds, cv_claim *claims,
                           char (*holders)[256], char *errbuf, size_t errlen);

/* Keeps a run that no worker has claimed yet from ever being claimed: its
 * claims find CV_CLAIM_CANCELLED. CV_ERR_CONFLICT when a worker claimed it
 * first (it runs, or ran). */
cv_err cv_lease_block(cv_mongo *m, const char *run_id, int attempt, char *errbuf, size_t errlen);

/* Extends the lease of the attempt `worker` holds to now + lease_ms. *held is
 * false when the attempt was taken away (the lease had run out): the worker
 * must stop and report nothing. */
cv_err cv_lease_renew(cv_mongo *m, const char *run_id, int attempt, const char *worker,
                      int64_t lease_ms, bool *held, char *errbuf, size_t errlen);

/* Ends the lease `worker` holds: "retrying" with the next attempt due at
 * retry_at_ms (already on the retry topic), or "done" when retry_at_ms is 0
 * (workers leave an attempt that ended for good held instead, see above). */
cv_err cv_lease_release(cv_mongo *m, const char *run_id, int attempt, const char *worker,
                        int64_t retry_at_ms, char *errbuf, size_t errlen);

/* Marks "done" (ended: true) the leases `worker` holds on attempts that ended
 * for good: attempts[i] of run_ids[i], n of them, one write each (see
 * cv_mongo_update_each()). A lease taken away meanwhile is left as it is. *marked (may be NULL)
 * gets how many were marked. */
cv_err cv_lease_end_many(cv_mongo *m, const char *const *run_ids, const int *attempts, size_t n,
                         const char *worker, int64_t *marked, char *errbuf, size_t errlen);

/* Room for the cursor of cv_lease_find_expired(): a run id. */
#define CV_LEASE_CURSOR_LEN 64

/* The held leases that expired before `before_ms` of up to `limit` active runs
 * (cv_runs_find_running(): started and not ended, or a schedule's run queued),
 * taken in _id order after `after` (a run id, "" for the first); `after` is
 * left at the last run looked at, or "" once the last active run was, so that
 * calls in turn look at every active run. (The leases of attempts that ended
 * are held too; their runs are not active.) On CV_OK *out is an array document (as cv_mongo_find()
 * returns) the caller frees with bson_destroy(). */
cv_err cv_lease_find_expired(cv_mongo *m, int64_t before_ms, int64_t limit,
                             char after[CV_LEASE_CURSOR_LEN], bson_t **out, char *errbuf,
                             size_t errlen);

/* Up to `limit` leases whose retry was decided before `before_ms` and is not
 * on the retry topic yet; *out as for cv_lease_find_expired(). */
cv_err cv_lease_find_unsent(cv_mongo *m, int64_t before_ms, int64_t limit, bson_t **out,
                            char *errbuf, size_t errlen);

/* Takes back the expired lease `lease` (a document cv_lease_find_expired()
 * returned): "retrying" with the next attempt due at retry_at_ms, not sent
 * yet, or "done" when retry_at_ms is 0. Only while it is still the lease that
 * ran out: *taken is false when its worker renewed it or another scheduler
 * took it first. */
cv_err cv_lease_take_back(cv_mongo *m, const bson_t *lease, int64_t retry_at_ms, int64_t now_ms,
                          bool *taken, char *errbuf, size_t errlen);

/* Notes that attempt `attempt` of the run is on the retry topic (the lease
 * of attempt - 1 is in state "retrying"). */
cv_err cv_lease_retry_sent(cv_mongo *m, const char *run_id, int attempt, char *errbuf,
                           size_t errlen);

#endif
