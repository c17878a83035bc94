/*
 * cv_bucket.c - the keys of time buckets: an owner and a prefix of the RFC 3339
 * form of a time. See cv_bucket.h.
 */
#include "cv_bucket.h"

#include "cv_time.h"

#include <stdio.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define MINUTE_MS INT64_C(60000)
#define DAY_MS (1440 * MINUTE_MS)

/* How many characters of "2026-12-04T08:41:07.123Z" name a bucket of each level. */
static const int prefix_len[CV_BUCKET_LEVELS] = {16, 15, 13, 10, 7};

static int64_t floor_to(int64_t ms, int64_t unit) {
    int64_t r = ms % unit;
    return r < 0 ? ms - r - unit : ms - r;
}

void cv_bucket_key(const char *owner, cv_bucket_level level, int64_t ms,
                   char key[CV_BUCKET_KEY_MAX]) {
    char stamp[CV_TIME_RFC3339_LEN];

    cv_time_format(ms, stamp, sizeof(stamp));
    snprintf(key, CV_BUCKET_KEY_MAX, "%.127s@%.*s", owner, prefix_len[level], stamp);
}

void cv_bucket_append(bson_t *doc, const char *owner, int64_t ms) {
    char key[CV_BUCKET_KEY_MAX], idx[4];
    bson_t keys;

    BSON_APPEND_ARRAY_BEGIN(doc, CV_BUCKET_FIELD, &keys);
    for (int level = 0; level < CV_BUCKET_LEVELS; level++) {
        cv_bucket_key(owner, (cv_bucket_level)level, ms, key);
        snprintf(idx, sizeof(idx), "%d", level);
        BSON_APPEND_UTF8(&keys, idx, key);
    }
    bson_append_array_end(doc, &keys);
}

int64_t cv_bucket_start(cv_bucket_level level, int64_t ms) {
    int64_t days, y;
    int m, d;

    switch (level) {
        case CV_BUCKET_MINUTE:
            return floor_to(ms, MINUTE_MS);
        case CV_BUCKET_TEN_MINUTES:
            return floor_to(ms, 10 * MINUTE_MS);
        case CV_BUCKET_HOUR:
            return floor_to(ms, 60 * MINUTE_MS);
        case CV_BUCKET_DAY:
            return floor_to(ms, DAY_MS);
        default:
            days = floor_to(ms, DAY_MS) / DAY_MS;
            cv_time_civil_from_days(days, &y, &m, &d);
            return cv_time_days_from_civil(y, m, 1) * DAY_MS;
    }
}

int64_t cv_bucket_span(cv_bucket_level level) {
    static const int64_t span[CV_BUCKET_LEVELS] = {MINUTE_MS, 10 * MINUTE_MS, 60 * MINUTE_MS,
                                                   DAY_MS, 30 * DAY_MS};
    return span[level < CV_BUCKET_LEVELS ? level : CV_BUCKET_MONTH];
}
