/*
 * cv_scheduler.h - the scheduler service (`convutell scheduler`).
 *
 * Ticks. The scheduler keeps the scheduled jobs (those flagged
 * CV_SCHEDULE_F_LIVE) in memory, read again every second, with a cursor each:
 * the next tick not yet handled, saved in the scheduler's heartbeat every 5 s
 * and written to the job (schedule.next_run_at) when the schedule ends. A tick
 * becomes a run whose id is derived from the job id and the tick time
 * (cv_scheduler_run_id()), and it is claimed by inserting a document with that
 * id into `ticks`: MongoDB's unique _id makes the insert succeed for exactly one
 * scheduler, so any number of schedulers can run side by side, and a restarted
 * one, starting from a written-back cursor, repeats nothing. The claim holds
 * the run's record and job message and names the claiming scheduler; the
 * winner inserts the record into `runs` and publishes the message when the
 * tick falls due. Each scheduler writes a heartbeat to `schedulers` every
 * second; when one stops beating for 10 s, the others send its claims of its
 * last seconds again (a second copy of a message is harmless: workers claim
 * each attempt once). Ticks are claimed up to half a second ahead, so the
 * database's latency does not make runs late.
 *
 * Misfires. Ticks that passed while no scheduler ran (or while the schedule was
 * paused or its previous run was going, with concurrency "queue") are handled
 * by the schedule's misfire policy (cv_scheduler_plan()); every tick that does
 * not run is recorded as a run with status "missed" (or "skipped" under
 * concurrency "forbid"), so the run history shows it.
 *
 * Retries and leases. Failed attempts wait on convutell.jobs.retry; the
 * scheduler holds each one in memory until its not_before time and then
 * publishes it to convutell.jobs, storing the topic's offset only up to the
 * oldest message it still holds (a restart reloads what was held). Runs whose
 * worker stopped renewing its lease are taken away from it: retried while
 * attempts remain, failed for good (with a notification) otherwise.
 *
 * The parts, each a module with its own share of the state: cv_ticks (loading,
 * planning, claiming and publishing ticks), cv_retries (retries held until
 * due), cv_recovery (heartbeats, stopped schedulers, expired leases); this
 * file's loop calls them in turn (cv_scheduler.c says when).
 *
 * Threads and ownership: a cv_scheduler is made, run and destroyed by one
 * thread (the process's main thread); cv_scheduler_run_id() and
 * cv_scheduler_plan() are pure and may be called from any thread.
 */
#ifndef CV_SCHEDULER_H
#define CV_SCHEDULER_H

#include "cv_config.h"
#include "cv_err.h"
#include "cv_id.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct cv_scheduler cv_scheduler;

/* Connects to MongoDB and Kafka. NULL with the reason in errbuf on failure. */
cv_scheduler *cv_scheduler_new(const cv_config *cfg, char *errbuf, size_t errlen);

/* Runs until *stop becomes non-zero. An error only when the service cannot go on. */
cv_err cv_scheduler_run(cv_scheduler *s, volatile sig_atomic_t *stop, char *errbuf, size_t errlen);

/* Frees. Accepts NULL. */
void cv_scheduler_destroy(cv_scheduler *s);

/* The run id of a job's tick: a UUID (version 8) from the SHA-256 of the job
 * id and the tick time, the same in every scheduler. */
void cv_scheduler_run_id(const char *job_id, int64_t tick_ms, char out[CV_ID_LEN]);

/* How long after its time a lone due tick still counts as on time. */
#define CV_MISFIRE_GRACE_MS 60000

/* Decides which of n due ticks (ascending, all at or before now_ms) run under
 * the misfire policy `misfire` ("run_once", "run_all" with misfire_max,
 * "skip"): run[i] is set for the ticks that run. A tick is missed when a later
 * one is also due, or when it is more than CV_MISFIRE_GRACE_MS old. run_once
 * runs the newest due tick once for all of them; run_all runs each, oldest
 * first, at most misfire_max (the oldest beyond that are missed); skip runs
 * only a tick that is on time. Returns the number of runs. */
int cv_scheduler_plan(const char *misfire, int misfire_max, const int64_t *ticks, int n,
                      int64_t now_ms, bool *run);

#endif
