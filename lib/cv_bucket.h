/*
 * cv_bucket.h - time buckets, so that the newest page of a long list costs what
 * a page of a short one does.
 *
 * FerretDB (the local store) hands only equalities to PostgreSQL: a job's
 * newest 50 runs by {job_id} sort and limit read every run the job ever had.
 * So every document of such a list also carries the keys of the time buckets
 * it falls in, one per level, as an array field (`buckets`):
 *
 *   "<owner>@2026-12-04T08:41"   the minute       (the first 16 characters
 *   "<owner>@2026-12-04T08:4"    the ten minutes   of its RFC 3339 time)
 *   "<owner>@2026-12-04T08"      the hour
 *   "<owner>@2026-12-04"         the day
 *   "<owner>@2026-12"            the month
 *
 * where the owner is the list's parent (a run's job). An equality on one key is
 * answered by the index on `buckets` on MongoDB and on FerretDB alike, and reads
 * only that bucket's documents; cv_page walks the buckets back in time, at a
 * fine level where the list is dense and a coarse one where it is sparse.
 * Buckets of every level are aligned in UTC, so each one lies within one of
 * the next level.
 *
 * Pure functions; any thread.
 */
#ifndef CV_BUCKET_H
#define CV_BUCKET_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>

#define CV_BUCKET_FIELD "buckets"
#define CV_BUCKET_KEY_MAX 160 /* room for an owner of up to 127 bytes, "@", a prefix, NUL */

typedef enum cv_bucket_level {
    CV_BUCKET_MINUTE = 0,
    CV_BUCKET_TEN_MINUTES,
    CV_BUCKET_HOUR,
    CV_BUCKET_DAY,
    CV_BUCKET_MONTH,
    CV_BUCKET_LEVELS
} cv_bucket_level;

/* Appends CV_BUCKET_FIELD: [the key of every level for owner at ms] to doc. */
void cv_bucket_append(bson_t *doc, const char *owner, int64_t ms);

/* Writes the key of the bucket of `level` that holds ms into key. */
void cv_bucket_key(const char *owner, cv_bucket_level level, int64_t ms,
                   char key[CV_BUCKET_KEY_MAX]);

/* The first millisecond of the bucket of `level` that holds ms. */
int64_t cv_bucket_start(cv_bucket_level level, int64_t ms);

/* A bucket's length in ms (a month counts as 30 days: for estimates only). */
int64_t cv_bucket_span(cv_bucket_level level);

#endif
