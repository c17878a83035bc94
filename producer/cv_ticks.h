/*
 * cv_ticks.h - the scheduler's ticks (cv_ticks.c): the scheduled jobs read
 * from the store with their cursors (the next tick not yet handled), their
 * due ticks planned by the schedule's misfire and concurrency policies and
 * claimed, and the claimed ticks published when they fall due.
 *
 * A tick belongs to the scheduler whose insert of its `ticks` document (an id
 * derived from the job and the tick) succeeded, so one scheduler wins each
 * tick however many run; the run record goes in with the claim, and a tick
 * that does not run is recorded as a `missed` or `skipped` run.
 *
 * The state is the scheduler's (struct cv_scheduler, cv_scheduler_int.h);
 * every function runs on the scheduler's one thread.
 */
#ifndef CV_TICKS_H
#define CV_TICKS_H

#include "cv_err.h"
#include "cv_id.h"
#include "cv_scheduler.h"
#include "cv_tz.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CV_TICKS_MAX_ZONES 64 /* time zones kept loaded; the oldest goes first */

/* A claimed tick waiting for its time. */
typedef struct cv_ready_run {
    char run_id[CV_ID_LEN];
    char job_id[CV_ID_LEN];
    int64_t due_ms;
    char *message; /* owned: the job message */
    char *event;   /* owned: its run.queued event */
} cv_ready_run;

/* A scheduled job as last loaded, with its cursor. */
typedef struct cv_sched_entry {
    char job_id[CV_ID_LEN];
    bson_t *doc;             /* owned: the job document */
    char version[CV_ID_LEN]; /* the schedule's timing version (new when it changes) */
    int64_t cursor_ms;       /* the next tick not yet handled; -1: none left */
    int64_t last_tick_ms;    /* the last tick handled; -1: none */
    bool end_written;        /* cursor_ms is -1 and the job says so too */
    bool seen;               /* in the latest load */
    bool fresh;              /* new in this load: saved cursors to apply */
} cv_sched_entry;

typedef struct cv_ticks {
    cv_sched_entry *entries; /* owned */
    size_t nentries, capentries;
    bool legacy_flagged; /* schedules of an earlier version flagged (once) */
    cv_ready_run *ready; /* owned: claimed, not published yet */
    size_t nready, capready;
    struct {
        char name[64];
        cv_tz *tz; /* owned */
    } zones[CV_TICKS_MAX_ZONES];
    int nzones;
} cv_ticks;

/* Reads the scheduled jobs into memory. A job seen before keeps its cursor
 * where this process has got to, unless its timing was changed (a new
 * version): then the stored cursor counts. A job new to this process starts
 * from the furthest cursor any scheduler saved in its heartbeat. Jobs no
 * longer scheduled leave memory; paused ones stay, with their cursor. */
cv_err cv_ticks_load(cv_scheduler *s, char *errbuf, size_t errlen);

/* Plans the ticks due by now (and those claimed ahead, within 0.5 s), claims
 * them with their run records in batches and moves the cursors on. Claimed
 * ticks that run wait in memory for cv_ticks_publish(). On an error the
 * cursors stay: the next scan claims the same ticks. */
cv_err cv_ticks_scan(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen);

/* Publishes every claimed tick that fell due (job message and run.queued
 * event) in one batch; what the broker did not take stays for the next. */
cv_err cv_ticks_publish(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen);

/* Writes the end of one ended schedule to its job, so that loading leaves it
 * out: one per call (on FerretDB an update of a job reads the whole
 * collection). */
cv_err cv_ticks_write_end(cv_scheduler *s, char *errbuf, size_t errlen);

/* When the first claimed tick falls due (INT64_MAX: none waits). */
int64_t cv_ticks_next_due(const cv_ticks *t);

/* Appends {job id: {v: version, n: cursor}} for every schedule under `key`
 * of `parent`: what a restarted or new scheduler starts from. */
void cv_ticks_append_cursors(const cv_ticks *t, bson_t *parent, const char *key);

/* Frees everything held and empties t. */
void cv_ticks_destroy(cv_ticks *t);

#endif
