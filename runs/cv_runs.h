/*
 * cv_runs.h - the record of runs in MongoDB, and the one writer of a run's
 * status: the `events` collection (one document per event, _id = event id),
 * the `runs` collection and `active_runs`. What the statuses are and which
 * moves are legal is cv_run's table; how a run is folded from what is stored
 * is cv_runfold's.
 *
 * A run is stored insert-only (cv_runfold.h): whoever queues it writes its
 * record whole first (cv_runs_queued_record() from the API,
 * cv_runs_tick_record() from the scheduler), so a client can read it right
 * after 202; the collector stores every start, retry and end as a piece of the
 * run beside it, in one batched insert with the events, and never updates a
 * run in place (an update costs FerretDB four PostgreSQL statements; a piece
 * in a batch costs a share of one). Every reader asks cv_runs_get(), which
 * folds the run. Applying an event is idempotent and insensitive to order: a
 * replayed event is a duplicate piece, and a late run.started never moves a
 * run back from a final state. Each start adds an entry to the run's
 * `attempts` (event id, worker, start time), so a retried run shows every
 * attempt.
 *
 * A run's events change it only while their attempt is its current one and
 * still running: when a lease (cv_lease) runs out the scheduler takes the
 * attempt away (its run.retrying or run.failed event ends that attempt, and
 * the first end of an attempt stored is the one that counts), and whatever the
 * late worker reports afterwards is kept as an event but changes nothing. A
 * second end of an attempt (a worker cut off from the network reports an
 * attempt another worker took over and ended) is kept with `superseded_by`, the
 * id of the end that counts, and notifies no one. A run succeeds at most once.
 *
 * `active_runs` holds one document per run that started and has not ended,
 * by the same writer: any run from its first start the collector sees in a
 * batch without its end, until its end. It is what the lease sweep walks, so
 * it stays as small as the runs in hand, whatever the backlog. `queued_runs`
 * holds the scheduler's runs from their record until their end: with
 * `active_runs`, what the scheduler asks whether a job has a run going. Runs
 * queued through the API and not started yet are in neither.
 *
 * Every function may be called from any thread.
 */
#ifndef CV_RUNS_H
#define CV_RUNS_H

#include "cv_err.h"
#include "cv_message.h"
#include "cv_mongo.h"
#include "cv_run.h"
#include "cv_runfold.h"
#include "cv_store.h"

/* Fields of a run record that other modules filter or sort on. */
#define CV_RUN_F_STATUS "status"
#define CV_RUN_F_ATTEMPT "attempt"
#define CV_RUN_F_JOB "job_id"
#define CV_RUN_F_PROJECT "project_id"
#define CV_RUN_F_CREATED "created_at" /* the order of a job's run history */
#define CV_RUN_F_CANCEL "cancel_requested"
/* On an event: a late second end of its attempt, and the id of the end that counts. */
#define CV_RUN_F_SUPERSEDED_BY "superseded_by"

/* A batch of events is stored in two steps, both in few writes whatever n is, both safe to
 * replay: retry the whole batch on CV_ERR_MONGO (the store did not acknowledge). Events of one
 * run must come in the order they were published (one partition's order).
 *
 * The first: every event in one unordered insert (a duplicate event id is success). */
cv_err cv_runs_store_events(cv_mongo *m, const cv_event *evs, size_t n, char *errbuf,
                            size_t errlen);

/* The second, for events already stored: every start, retry and end as a piece in one
 * unordered insert, the runs that became or stopped being active in one insert and one delete.
 * Only a run.progress (long jobs) that no later report or end of its attempt in the same
 * batch supersedes updates its attempt's start, and a failure or a success with a watermark
 * reads its run back to notify or mark the job. Batches must be applied in order; the
 * events of the next one may be stored meanwhile. A replayed batch changes nothing, a late
 * event never moves a finished run. */
cv_err cv_runs_apply_events(cv_mongo *m, const cv_event *evs, size_t n, char *errbuf,
                            size_t errlen);

/* The record of a run about to be queued, from its run.queued event: new,
 * the caller frees it with bson_destroy(); NULL on NOMEM. */
bson_t *cv_runs_queued_record(const cv_event *ev);

/* Deletes the record of a run that is still queued: the caller wrote it
 * (cv_runs_queued_record()) but could not queue the job after all. */
cv_err cv_runs_forget_queued(cv_mongo *m, const char *run_id, char *errbuf, size_t errlen);

/* The record of a scheduled tick: `status` CV_RUN_QUEUED (the run of a tick
 * that runs, queued at queued_ms, with max_attempts), or CV_RUN_MISSED or
 * CV_RUN_SKIPPED with `reason`, finished at now_ms. Returns a new document the
 * caller frees with bson_destroy(); NULL for any other status or on NOMEM. */
bson_t *cv_runs_tick_record(const char *run_id, const char *job_id, const char *project_id,
                            int64_t tick_ms, cv_run_status status, int max_attempts,
                            int64_t queued_ms, const char *reason, int64_t now_ms);

/* Inserts n records made by cv_runs_tick_record() in one unordered batch; a
 * record already there (another scheduler, a replay) is left as it is. The
 * queued ones become active runs of their jobs. */
cv_err cv_runs_insert_records(cv_mongo *m, const bson_t **records, size_t n, char *errbuf,
                              size_t errlen);

/* The run as it stands (cv_runfold()): a new document the caller frees with
 * bson_destroy(). CV_ERR_NOT_FOUND when nothing of it is stored. */
cv_err cv_runs_get(cv_mongo *m, const char *run_id, bson_t **out, char *errbuf, size_t errlen);

/* The stored status of a run into *status. CV_ERR_NOT_FOUND if it has no
 * record. */
cv_err cv_runs_status(cv_mongo *m, const char *run_id, cv_run_status *status, char *errbuf,
                      size_t errlen);

/* Whether attempt `attempt` of the run is over as its record shows it: the
 * run ended, moved on to a later attempt, or this attempt ended in a retry.
 * *over is false when the run has no record (yet). A worker does not release
 * the lease of an attempt that ended for good (cv_lease.h): this is what a
 * later claim of it asks instead. */
cv_err cv_runs_attempt_over(cv_mongo *m, const char *run_id, int attempt, bool *over, char *errbuf,
                            size_t errlen);

/* Up to `limit` started runs (`active_runs`, see above: _id = run id, job_id, since) with an
 * _id after `after` ("" for the first), in _id order, as an array document (as
 * cv_mongo_find() returns) the caller frees with bson_destroy(). */
cv_err cv_runs_find_running(cv_mongo *m, const char *after, int64_t limit, bson_t **out,
                            char *errbuf, size_t errlen);

/* Takes a run that turned out to have ended off `active_runs` and `queued_runs`. */
cv_err cv_runs_forget_active(cv_mongo *m, const char *run_id, char *errbuf, size_t errlen);

/* The id of a run of the job still going (see above: a schedule's run from its
 * record on, any run from its start) into run_id, or "" when there is none. */
cv_err cv_runs_active_of_job(cv_mongo *m, const char *job_id, char *run_id, size_t len,
                             char *errbuf, size_t errlen);

/* Asks the worker running a run to stop: sets cancel_requested on its record
 * while the run has not ended. CV_ERR_CONFLICT when it has ended (or nothing
 * of it is stored). */
cv_err cv_runs_request_cancel(cv_mongo *m, const char *run_id, char *errbuf, size_t errlen);

/* True if someone asked for the run to stop (false also when the record
 * cannot be read: the worker then simply runs on). */
bool cv_runs_cancel_requested(cv_mongo *m, const char *run_id);

#endif
