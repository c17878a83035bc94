/*
 * cv_schedule.h - a job's schedule: a fixed interval, or a cron expression in
 * an IANA time zone, with optional start and end, paused or not, and the
 * policies the scheduler applies (misfires, concurrency, retries). Decoded
 * from the API's JSON and checked field by field; the next fire times are
 * computed here for the API's answer and for the scheduler.
 *
 * A cv_schedule is a value (fixed-size fields, nothing allocated): the caller
 * owns it, and every function here may be called from any thread.
 */
#ifndef CV_SCHEDULE_H
#define CV_SCHEDULE_H

#include "cv_cron.h"
#include "cv_json.h"
#include "cv_tz.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

/* A job's top-level flag that its schedule has a tick left (schedule.next_run_at
 * is not null). The scheduler loads the jobs it fires by it, an equality that
 * every store answers from an index (FerretDB hands no condition on a nested
 * field to PostgreSQL: a filter on schedule.next_run_at read every job, every
 * second). The API sets it with the schedule; the scheduler clears it when it
 * ends or stops one. */
#define CV_SCHEDULE_F_LIVE "scheduled"

typedef struct cv_schedule {
    int64_t interval_seconds; /* > 0 for an interval schedule */
    cv_cron cron;             /* otherwise */
    char cron_text[128];
    char timezone[64];        /* "UTC" unless given */
    int64_t start_ms, end_ms; /* 0 when absent */
    bool paused;
    char misfire[16];    /* "run_once" (default), "run_all", "skip" */
    int misfire_max;     /* run_all: at most this many catch-up runs [100] */
    char concurrency[8]; /* "allow" (default), "forbid", "queue" */
    int max_attempts;    /* [1] */
    int backoff_seconds; /* first retry delay, doubled each time [60] */
} cv_schedule;

/* Reads a schedule from an API body. Field errors in *verr (CV_ERR_INVALID);
 * a malformed cron expression names its field ("cron": "hour field ..."), an
 * unknown zone is reported on "timezone". */
cv_err cv_schedule_decode(const cJSON *obj, cv_schedule *out, cv_verr *verr);

/* Writes the schedule as JSON members of obj (the API's form). 0, or -1 when
 * out of memory. */
int cv_schedule_encode(const cv_schedule *s, cJSON *obj);

/* The first fire time strictly after after_ms (ms since the epoch): interval
 * ticks fall at anchor_ms + k * interval; cron ticks in the schedule's zone
 * (tz, loaded by the caller). -1 when there is none (past end). */
int64_t cv_schedule_next(const cv_schedule *s, const cv_tz *tz, int64_t anchor_ms,
                         int64_t after_ms);

/* Reads a schedule as stored with its job: the API's members plus anchor_at
 * (required), next_run_at (*next_ms = -1 when null: no tick left),
 * last_tick_at, error (why the scheduler stopped it) and version (new when a
 * PUT changes the timing). */
cv_err cv_schedule_from_stored(const cJSON *stored, cv_schedule *out, int64_t *anchor_ms,
                               int64_t *next_ms, cv_verr *verr);

/* True when two schedules fire at the same times (only policies or paused
 * differ): replacing one with the other keeps the ticks not yet handled. */
bool cv_schedule_same_timing(const cv_schedule *a, const cv_schedule *b);

#endif
