/*
 * cv_tz.h - IANA time zones for schedules, read from the system's compiled
 * zone files (TZif, /usr/share/zoneinfo), with the POSIX rule at their end for
 * instants past the last listed transition. Thread-safe once loaded: nothing
 * here touches the process's TZ or localtime().
 */
#ifndef CV_TZ_H
#define CV_TZ_H

#include "cv_err.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct cv_tz cv_tz;

/* Loads the zone `name` ("Europe/Berlin", "America/Sao_Paulo", "UTC").
 * CV_ERR_INVALID with errbuf "unknown time zone "X"" for a name that is not a
 * zone. Free with cv_tz_destroy(). */
cv_tz *cv_tz_load(const char *name, char *errbuf, size_t errlen);
void cv_tz_destroy(cv_tz *tz);

/* The zone in the TZif data[0..len) (version 2 or later; the fuzzing
 * harness's entry, and cv_tz_load()'s). CV_ERR_INVALID "not a TZif file of
 * version 2 or later" when it is not one, CV_ERR_NOMEM. */
cv_tz *cv_tz_parse(const unsigned char *data, size_t len, char *errbuf, size_t errlen);

/* Seconds east of UTC in effect at instant t (seconds since the epoch). */
int32_t cv_tz_offset(const cv_tz *tz, int64_t t);

/* The instant of a local wall-clock time (`local`: seconds since the epoch as
 * if the wall clock were UTC). A time that occurs twice (clocks going back)
 * gives its first occurrence; a time that does not exist (clocks going
 * forward) gives the instant the clocks jumped, the next valid one. */
int64_t cv_tz_resolve(const cv_tz *tz, int64_t local);

#endif
