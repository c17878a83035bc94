/*
 * cv_run.h - what a run is: its statuses, which of them are final, and the
 * moves between them that are legal. This is the one place that says so;
 * cv_runs (the run record in MongoDB) builds its filters from it, and the API,
 * the scheduler and the worker ask it instead of keeping lists of their own.
 * Nothing here touches a database, so the table is unit-tested on its own.
 *
 * The moves, by who makes them:
 *   (none)   -> queued               the API or the scheduler records a new run
 *   (none)   -> missed, skipped      the scheduler records a tick that does not run
 *   (none)   -> running              the first start of a run another system queued
 *   queued   -> running              a worker starts the first attempt
 *   retrying -> running              a worker starts the next attempt
 *   running  -> running              a later attempt starts (the earlier one was
 *                                    taken back before it reported)
 *   running  -> retrying             an attempt failed and another one follows
 *   running  -> succeeded, failed, cancelled, timed_out
 *                                    the attempt that holds the run ends it
 * Final statuses are never left: a late or replayed event changes nothing.
 * All functions are pure and may be called from any thread.
 */
#ifndef CV_RUN_H
#define CV_RUN_H

#include <stdbool.h>
#include <stddef.h>

typedef enum cv_run_status {
    CV_RUN_NONE = 0, /* no record yet: only the start of a move */
    CV_RUN_QUEUED,
    CV_RUN_RUNNING,
    CV_RUN_RETRYING,
    CV_RUN_SUCCEEDED,
    CV_RUN_FAILED,
    CV_RUN_CANCELLED,
    CV_RUN_TIMED_OUT,
    CV_RUN_MISSED,  /* a tick the misfire policy dropped */
    CV_RUN_SKIPPED, /* a tick the concurrency policy dropped */
    CV_RUN_STATUS_COUNT
} cv_run_status;

/* The status as stored and shown ("queued", "timed_out", ...); "" for
 * CV_RUN_NONE and for values out of range. */
const char *cv_run_status_name(cv_run_status status);

/* The status named `name`; CV_RUN_NONE for NULL or an unknown name. */
cv_run_status cv_run_status_parse(const char *name);

/* True for the statuses a run never leaves: succeeded, failed, cancelled,
 * timed_out, missed and skipped. */
bool cv_run_is_final(cv_run_status status);

/* Same, by name; false for NULL and unknown names. */
bool cv_run_name_is_final(const char *name);

/* True if a run in status `from` may move to `to` (see the table above). */
bool cv_run_can_move(cv_run_status from, cv_run_status to);

/* Fills out[] with the stored statuses (never CV_RUN_NONE) from which a run
 * may move to `to`, in enum order; returns how many (at most
 * CV_RUN_STATUS_COUNT, so an array of that size always suffices). */
size_t cv_run_sources(cv_run_status to, cv_run_status *out, size_t cap);

/* Fills out[] with the statuses that are not final (queued, running,
 * retrying), in enum order; returns how many. */
size_t cv_run_active(cv_run_status *out, size_t cap);

/* Fills out[] with the final statuses, in enum order; returns how many. */
size_t cv_run_finals(cv_run_status *out, size_t cap);

/* The status an event type moves a run to: run.started -> running,
 * run.retrying -> retrying, the final types to their status, run.queued ->
 * queued. CV_RUN_NONE for types that move no run (run.progress, run.log,
 * job.rejected, unknown). */
cv_run_status cv_run_event_target(const char *event_type);

#endif
