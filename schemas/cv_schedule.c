/*
 * cv_schedule.c - schedules as the API receives them: checked field by field
 * (the cron expression and the time zone included) and turned into fire times.
 */
#include "cv_schedule.h"

#include "cv_time.h"

#include <stdio.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

static const char *const fields[] = {
    "interval_seconds", "cron",        "timezone",    "start_at",     "end_at",          "paused",
    "misfire",          "misfire_max", "concurrency", "max_attempts", "backoff_seconds", NULL};

/* Reads an optional string member that must be one of `choices`. */
static cv_err get_choice(const cJSON *obj, const char *name, const char *const *choices, char *out,
                         size_t outlen, cv_verr *verr) {
    const char *s;
    cv_err err = cv_json_get_str(obj, NULL, name, false, 31, &s, verr);
    if (err || !s)
        return err;
    for (int i = 0; choices[i]; i++)
        if (strcmp(s, choices[i]) == 0) {
            snprintf(out, outlen, "%s", s);
            return CV_OK;
        }
    {
        char list[128] = "";
        size_t used = 0;
        for (int i = 0; choices[i] && used < sizeof(list); i++) {
            int n = snprintf(list + used, sizeof(list) - used, "%s\"%s\"",
                             i == 0           ? ""
                             : choices[i + 1] ? ", "
                                              : " or ",
                             choices[i]);
            used += n > 0 ? (size_t)n : 0;
        }
        return cv_verr_set(verr, NULL, name, "must be %s, not \"%s\"", list, s);
    }
}

static cv_err get_time(const cJSON *obj, const char *name, int64_t *ms, cv_verr *verr) {
    const char *s;
    cv_err err = cv_json_get_str(obj, NULL, name, false, 40, &s, verr);
    if (err || !s)
        return err;
    if (cv_time_parse(s, ms) != 0)
        return cv_verr_set(verr, NULL, name,
                           "must be an RFC 3339 time such as \"2026-11-28T04:50:00Z\"");
    return CV_OK;
}

cv_err cv_schedule_decode(const cJSON *obj, cv_schedule *out, cv_verr *verr) {
    static const char *const misfires[] = {"run_once", "run_all", "skip", NULL};
    static const char *const concurrencies[] = {"allow", "forbid", "queue", NULL};
    const char *cron = NULL, *zone = NULL;
    int64_t n;
    cv_err err;

    memset(out, 0, sizeof(*out));
    snprintf(out->timezone, sizeof(out->timezone), "UTC");
    snprintf(out->misfire, sizeof(out->misfire), "run_once");
    snprintf(out->concurrency, sizeof(out->concurrency), "allow");
    out->misfire_max = 100;
    out->max_attempts = 1;
    out->backoff_seconds = 60;
    if ((err = cv_json_only(obj, NULL, fields, "a schedule", verr)) ||
        (err = cv_json_get_int(obj, NULL, "interval_seconds", false, 1, 366 * 86400,
                               &out->interval_seconds, verr)) ||
        (err =
             cv_json_get_str(obj, NULL, "cron", false, sizeof(out->cron_text) - 1, &cron, verr)) ||
        (err =
             cv_json_get_str(obj, NULL, "timezone", false, sizeof(out->timezone) - 1, &zone, verr)))
        return err;
    if (cron && out->interval_seconds)
        return cv_verr_set(verr, NULL, "cron", "cannot be used with interval_seconds");
    if (!cron && !out->interval_seconds)
        return cv_verr_set(verr, NULL, "interval_seconds", "or cron is required");
    if (zone && !cron)
        return cv_verr_set(verr, NULL, "timezone", "is only used with cron");
    if (cron) {
        char why[200];
        if (cv_cron_parse(cron, &out->cron, why, sizeof(why)) != CV_OK)
            return cv_verr_set(verr, NULL, "cron", "%s", why);
        snprintf(out->cron_text, sizeof(out->cron_text), "%s", cron);
    }
    if (zone) {
        char why[128];
        cv_tz *tz = cv_tz_load(zone, why, sizeof(why));
        if (!tz)
            return cv_verr_set(verr, NULL, "timezone", "%s", why);
        cv_tz_destroy(tz);
        snprintf(out->timezone, sizeof(out->timezone), "%s", zone);
    }
    if ((err = get_time(obj, "start_at", &out->start_ms, verr)) ||
        (err = get_time(obj, "end_at", &out->end_ms, verr)) ||
        (err = cv_json_get_bool(obj, NULL, "paused", false, &out->paused, verr)) ||
        (err = get_choice(obj, "misfire", misfires, out->misfire, sizeof(out->misfire), verr)) ||
        (err = get_choice(obj, "concurrency", concurrencies, out->concurrency,
                          sizeof(out->concurrency), verr)))
        return err;
    if (out->end_ms && out->start_ms && out->end_ms <= out->start_ms)
        return cv_verr_set(verr, NULL, "end_at", "must be after start_at");
    n = out->misfire_max;
    if ((err = cv_json_get_int(obj, NULL, "misfire_max", false, 1, 1000, &n, verr)))
        return err;
    out->misfire_max = (int)n;
    n = out->max_attempts;
    if ((err = cv_json_get_int(obj, NULL, "max_attempts", false, 1, 100, &n, verr)))
        return err;
    out->max_attempts = (int)n;
    n = out->backoff_seconds;
    if ((err = cv_json_get_int(obj, NULL, "backoff_seconds", false, 1, 86400, &n, verr)))
        return err;
    out->backoff_seconds = (int)n;
    return CV_OK;
}

int cv_schedule_encode(const cv_schedule *s, cJSON *obj) {
    char start[CV_TIME_RFC3339_LEN], end[CV_TIME_RFC3339_LEN];
    bool ok = true;

    if (s->interval_seconds)
        ok = ok && cJSON_AddNumberToObject(obj, "interval_seconds", (double)s->interval_seconds);
    else
        ok = ok && cJSON_AddStringToObject(obj, "cron", s->cron_text) &&
             cJSON_AddStringToObject(obj, "timezone", s->timezone);
    if (s->start_ms) {
        cv_time_format(s->start_ms, start, sizeof(start));
        ok = ok && cJSON_AddStringToObject(obj, "start_at", start);
    }
    if (s->end_ms) {
        cv_time_format(s->end_ms, end, sizeof(end));
        ok = ok && cJSON_AddStringToObject(obj, "end_at", end);
    }
    ok = ok && cJSON_AddBoolToObject(obj, "paused", s->paused) &&
         cJSON_AddStringToObject(obj, "misfire", s->misfire) &&
         cJSON_AddNumberToObject(obj, "misfire_max", s->misfire_max) &&
         cJSON_AddStringToObject(obj, "concurrency", s->concurrency) &&
         cJSON_AddNumberToObject(obj, "max_attempts", s->max_attempts) &&
         cJSON_AddNumberToObject(obj, "backoff_seconds", s->backoff_seconds);
    return ok ? 0 : -1;
}

int64_t cv_schedule_next(const cv_schedule *s, const cv_tz *tz, int64_t anchor_ms,
                         int64_t after_ms) {
    int64_t next;

    if (s->start_ms && after_ms < s->start_ms - 1)
        after_ms = s->start_ms - 1; /* the first tick may fall on start_at itself */
    if (s->interval_seconds) {
        int64_t step = s->interval_seconds * 1000, base = s->start_ms ? s->start_ms : anchor_ms;
        int64_t k = after_ms < base ? 0 : (after_ms - base) / step + 1;
        next = base + k * step;
    } else {
        int64_t t = cv_cron_next_tz(&s->cron, tz,
                                    after_ms >= 0 ? after_ms / 1000 : (after_ms - 999) / 1000);
        next = t < 0 ? -1 : t * 1000;
    }
    if (next >= 0 && s->end_ms && next > s->end_ms)
        return -1;
    return next;
}

cv_err cv_schedule_from_stored(const cJSON *stored, cv_schedule *out, int64_t *anchor_ms,
                               int64_t *next_ms, cv_verr *verr) {
    static const char *const owned[] = {"anchor_at", "next_run_at", "last_tick_at",
                                        "error",     "version",     NULL};
    cJSON *copy = cJSON_Duplicate(stored, true);
    const cJSON *anchor = cJSON_GetObjectItemCaseSensitive(stored, "anchor_at");
    const cJSON *next = cJSON_GetObjectItemCaseSensitive(stored, "next_run_at");
    cv_err err;

    if (!copy)
        return CV_ERR_NOMEM;
    for (int i = 0; owned[i]; i++)
        cJSON_DeleteItemFromObjectCaseSensitive(copy, owned[i]);
    err = cv_schedule_decode(copy, out, verr);
    cJSON_Delete(copy);
    if (err)
        return err;
    if (!cJSON_IsString(anchor) || cv_time_parse(anchor->valuestring, anchor_ms) != 0)
        return cv_verr_set(verr, NULL, "anchor_at", "is missing from the stored schedule");
    *next_ms = -1;
    if (cJSON_IsString(next) && cv_time_parse(next->valuestring, next_ms) != 0)
        return cv_verr_set(verr, NULL, "next_run_at", "is not a time");
    return CV_OK;
}

bool cv_schedule_same_timing(const cv_schedule *a, const cv_schedule *b) {
    return a->interval_seconds == b->interval_seconds && strcmp(a->cron_text, b->cron_text) == 0 &&
           strcmp(a->timezone, b->timezone) == 0 && a->start_ms == b->start_ms &&
           a->end_ms == b->end_ms;
}
