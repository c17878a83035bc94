/*
 * cv_cron.h - 5-field cron expressions (minute hour day-of-month month
 * day-of-week) as the scheduler reads them: numbers, names (JAN-DEC, SUN-SAT),
 * `*`, ranges `a-b`, steps `*\/n` and `a-b/n`, and lists joined by commas.
 * Day-of-week 0 and 7 are both Sunday. As in Vixie cron, when both day fields
 * are restricted a day matches if either matches.
 *
 * cv_cron_next() reads times in UTC; cv_cron_next_tz() in a time zone, where
 * a local time that does not exist (clocks going forward) fires once at the
 * next valid instant and one that occurs twice (clocks going back) fires once,
 * at its first occurrence.
 *
 * Pure functions (a parsed expression is a value the caller owns, nothing
 * allocated): any thread.
 */
#ifndef CV_CRON_H
#define CV_CRON_H

#include "cv_err.h"
#include "cv_tz.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct cv_cron {
    uint64_t minutes; /* bit m: minute m matches */
    uint32_t hours;
    uint32_t days;             /* bit d (1-31) */
    uint16_t months;           /* bit m (1-12) */
    uint8_t weekdays;          /* bit w (0-6, Sunday 0) */
    bool any_day, any_weekday; /* the field was `*` (or a `*\/n` step) */
} cv_cron;

/* Parses expr. On failure CV_ERR_INVALID with errbuf naming the field and the
 * problem, for example: day-of-week field "MON-FRY": "FRY" is not a day name. */
cv_err cv_cron_parse(const char *expr, cv_cron *out, char *errbuf, size_t errlen);

/* The first minute strictly after `after` (seconds since the epoch, read in
 * UTC) that the expression matches, as seconds since the epoch; -1 if none
 * within eight years (for example 30 February). */
int64_t cv_cron_next(const cv_cron *cron, int64_t after);

/* The first instant strictly after `after` at which the expression, read as
 * wall-clock time in `tz`, fires; -1 if none within eight years. */
int64_t cv_cron_next_tz(const cv_cron *cron, const cv_tz *tz, int64_t after);

#endif
