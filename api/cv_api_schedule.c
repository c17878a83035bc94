/*
 * cv_api_schedule.c - a job's schedule through the API: PUT stores it (with
 * its next fire time, keeping the ticks not yet handled when only the
 * policies change), GET shows it with its next fire times, DELETE removes it.
 * The scheduler (producer/) fires what is stored.
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_api_int.h"

#include "cv_id.h"
#include "cv_schedule.h"
#include "cv_store.h"
#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* The next `count` fire times after now as RFC 3339 strings in an array. */
static cJSON *next_fire_times(const cv_schedule *sched, int64_t anchor_ms, int count) {
    char why[128], text[CV_TIME_RFC3339_LEN];
    cv_tz *tz = cv_tz_load(sched->timezone, why, sizeof(why));
    cJSON *list = cJSON_CreateArray();
    int64_t t = cv_time_now_ms();

    for (int i = 0; tz && list && i < count; i++) {
        if ((t = cv_schedule_next(sched, tz, anchor_ms, t)) < 0)
            break;
        cv_time_format(t, text, sizeof(text));
        cJSON_AddItemToArray(list, cJSON_CreateString(text));
    }
    cv_tz_destroy(tz);
    return list;
}

/* The job's stored schedule as JSON (the caller deletes it), or NULL when it
 * has none. */
static cJSON *schedule_json(const bson_t *job) {
    bson_iter_t it;
    const uint8_t *data;
    uint32_t len;
    bson_t sub;

    if (!bson_iter_init_find(&it, job, "schedule") || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return NULL;
    bson_iter_document(&it, &len, &data);
    return bson_init_static(&sub, data, len) ? cv_api_doc_to_json(&sub) : NULL;
}

/* Reads a job's stored schedule: true with *sched and *anchor_ms, or a 404
 * answer when the job has none. */
static bool stored_schedule(const bson_t *job, const char *job_id, cv_schedule *sched,
                            int64_t *anchor_ms, cv_http_response *res) {
    cJSON *json = schedule_json(job);
    cv_verr verr;
    int64_t next_ms;
    bool ok;

    if (!json) {
        cv_http_error(res, 404, "not_found", NULL, "job %s has no schedule", job_id);
        return false;
    }
    ok = cv_schedule_from_stored(json, sched, anchor_ms, &next_ms, &verr) == CV_OK;
    cJSON_Delete(json);
    if (!ok)
        cv_api_internal_error(res, CV_ERR_INVALID, "the stored schedule cannot be read");
    return ok;
}

int64_t cv_api_next_fire(const bson_t *job, int64_t now_ms) {
    cJSON *json = schedule_json(job);
    int64_t anchor_ms = 0, next_ms, at = -1;
    cv_schedule sched;
    cv_verr verr;
    char why[128];
    cv_tz *tz;

    if (json && cv_schedule_from_stored(json, &sched, &anchor_ms, &next_ms, &verr) == CV_OK &&
        !sched.paused && (tz = cv_tz_load(sched.timezone, why, sizeof(why)))) {
        at = cv_schedule_next(&sched, tz, anchor_ms, now_ms);
        cv_tz_destroy(tz);
    }
    cJSON_Delete(json);
    return at;
}

/* GET /schedules/preview?cron=&timezone=&interval_seconds=&start_at=&end_at=: the next
 * five fire times of a schedule not stored anywhere, checked as PUT checks it, for a form
 * that shows them as its user types. */
void cv_api_preview_schedule(cv_api *api, const char *id, const cv_http_request *req,
                             cv_http_response *res) {
    static const char *const texts[] = {"cron", "timezone", "start_at", "end_at", NULL};
    const char *interval = cv_http_arg(req, "interval_seconds"), *v;
    cJSON *body = cJSON_CreateObject();
    cv_schedule sched;
    cv_verr verr;
    char *end = NULL;

    (void)api;
    (void)id;
    for (int i = 0; body && texts[i]; i++)
        if ((v = cv_http_arg(req, texts[i])))
            cJSON_AddStringToObject(body, texts[i], v);
    if (body && interval) {
        long long n = strtoll(interval, &end, 10);
        if (!*interval || *end) {
            cv_verr_set(&verr, NULL, "interval_seconds", "must be a whole number of seconds");
            cv_api_field_error(res, &verr);
            goto out;
        }
        cJSON_AddNumberToObject(body, "interval_seconds", (double)n);
    }
    if (!body) {
        cv_api_internal_error(res, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (cv_schedule_decode(body, &sched, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    res->status = 200;
    res->body = cJSON_CreateObject();
    cv_schedule_encode(&sched, res->body);
    cJSON_AddItemToObject(res->body, "next_fire_times",
                          next_fire_times(&sched, cv_time_now_ms(), 5));
out:
    cJSON_Delete(body);
}

/* Applies `update` to the job and forgets the job's cached copy; false (with a
 * 500 in res) when the store did not take it. */
static bool update_job(cv_api *api, const char *job_id, const bson_t *update,
                       cv_http_response *res) {
    bson_t filter = BSON_INITIALIZER;
    char why[512];
    cv_err err;

    BSON_APPEND_UTF8(&filter, "_id", job_id);
    err = cv_mongo_update(api->mongo, CV_COLL_JOBS, &filter, update, false, NULL, why, sizeof(why));
    bson_destroy(&filter);
    /* After the write (whatever it did): a read that began before it is not kept. */
    cv_cache_drop(api->cache, CV_COLL_JOBS, job_id);
    if (err)
        cv_api_internal_error(res, CV_ERR_MONGO, why);
    return !err;
}

/* PUT /jobs/{id}/schedule: checks the schedule, stores it with the job and
 * answers with it and its next five fire times. */
void cv_api_put_schedule(cv_api *api, const char *job_id, const cv_http_request *req,
                         cv_http_response *res) {
    char anchor[CV_TIME_RFC3339_LEN], next[CV_TIME_RFC3339_LEN], version[CV_ID_LEN] = "";
    bson_t *job = cv_api_load_doc(api, CV_COLL_JOBS, "job", job_id, res), *stored = NULL;
    bson_t update = BSON_INITIALIZER;
    cJSON *body = NULL, *answer = NULL;
    char *text = NULL;
    cv_schedule sched;
    cv_verr verr;
    bson_error_t error;
    int64_t now = cv_time_now_ms(), first, anchor_ms;
    char tzwhy[128];
    cv_tz *tz = NULL;

    if (!job || !(body = cv_api_parse_body(req, res)))
        goto out;
    if (cv_schedule_decode(body, &sched, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    tz = cv_tz_load(sched.timezone, tzwhy, sizeof(tzwhy));
    first = tz ? cv_schedule_next(&sched, tz, now, now) : -1;
    anchor_ms = now;
    {
        /* Pausing, resuming or changing policies keeps the ticks not yet
         * handled: the scheduler then applies the misfire policy to the ticks
         * that passed while the schedule was paused. */
        cJSON *json = schedule_json(job);
        cv_schedule old;
        int64_t old_anchor, old_next;
        if (json && cv_schedule_from_stored(json, &old, &old_anchor, &old_next, &verr) == CV_OK &&
            cv_schedule_same_timing(&old, &sched) && old_next >= 0) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(json, "version");
            anchor_ms = old_anchor;
            first = old_next;
            if (cJSON_IsString(v) && strlen(v->valuestring) < sizeof(version))
                snprintf(version, sizeof(version), "%s", v->valuestring);
        }
        cJSON_Delete(json);
    }
    answer = cJSON_CreateObject();
    cv_time_format(anchor_ms, anchor, sizeof(anchor));
    if (!answer || cv_schedule_encode(&sched, answer) != 0 ||
        !cJSON_AddStringToObject(answer, "anchor_at", anchor)) {
        cv_api_internal_error(res, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (first >= 0) {
        cv_time_format(first, next, sizeof(next));
        cJSON_AddStringToObject(answer, "next_run_at", next);
    } else {
        cJSON_AddNullToObject(answer, "next_run_at");
    }
    if (!(text = cJSON_PrintUnformatted(answer)) ||
        !(stored = bson_new_from_json((const uint8_t *)text, -1, &error))) {
        cv_api_internal_error(res, CV_ERR_NOMEM, "cannot store the schedule");
        goto out;
    }
    /* A new version when the timing changes tells schedulers to take the
     * stored cursor instead of their own; pausing, resuming or changing a
     * policy keeps it, and the ticks not yet handled. */
    if (!version[0] && cv_id_new(version, sizeof(version)) != 0) {
        cv_api_internal_error(res, CV_ERR_IO, "no random source");
        goto out;
    }
    BSON_APPEND_UTF8(stored, "version", version);
    {
        bson_t set = BSON_INITIALIZER;
        BSON_APPEND_DOCUMENT(&set, "schedule", stored);
        BSON_APPEND_BOOL(&set, CV_SCHEDULE_F_LIVE, first >= 0);
        BSON_APPEND_DOCUMENT(&update, "$set", &set);
        bson_destroy(&set);
    }
    if (!update_job(api, job_id, &update, res))
        goto out;
    cJSON_AddStringToObject(answer, "job_id", job_id);
    cJSON_AddItemToObject(answer, "next_fire_times", next_fire_times(&sched, anchor_ms, 5));
    res->status = 200;
    res->body = answer;
    answer = NULL;
out:
    cv_tz_destroy(tz);
    cJSON_free(text);
    cJSON_Delete(answer);
    cJSON_Delete(body);
    bson_destroy(stored);
    bson_destroy(&update);
    bson_destroy(job);
}

/* GET /jobs/{id}/schedule: the stored schedule and its next five fire times. */
void cv_api_get_schedule(cv_api *api, const char *job_id, const cv_http_request *req,
                         cv_http_response *res) {
    bson_t *job = cv_api_load_doc(api, CV_COLL_JOBS, "job", job_id, res);
    cv_schedule sched;
    int64_t anchor_ms = 0;
    char anchor[CV_TIME_RFC3339_LEN];

    (void)req;
    if (!job || !stored_schedule(job, job_id, &sched, &anchor_ms, res))
        goto out;
    res->body = cJSON_CreateObject();
    cv_schedule_encode(&sched, res->body);
    cv_time_format(anchor_ms, anchor, sizeof(anchor));
    cJSON_AddStringToObject(res->body, "anchor_at", anchor);
    cJSON_AddStringToObject(res->body, "job_id", job_id);
    cJSON_AddItemToObject(res->body, "next_fire_times", next_fire_times(&sched, anchor_ms, 5));
    res->status = 200;
out:
    bson_destroy(job);
}

/* DELETE /jobs/{id}/schedule */
void cv_api_delete_schedule(cv_api *api, const char *job_id, const cv_http_request *req,
                            cv_http_response *res) {
    bson_t *job = cv_api_load_doc(api, CV_COLL_JOBS, "job", job_id, res);
    bson_t update = BSON_INITIALIZER, unset;
    cv_schedule sched;
    int64_t anchor_ms;

    (void)req;
    if (!job || !stored_schedule(job, job_id, &sched, &anchor_ms, res))
        goto out;
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$unset", &unset);
    BSON_APPEND_UTF8(&unset, "schedule", "");
    BSON_APPEND_UTF8(&unset, CV_SCHEDULE_F_LIVE, "");
    bson_append_document_end(&update, &unset);
    if (!update_job(api, job_id, &update, res))
        goto out;
    res->status = 200;
    res->body = cJSON_CreateObject();
    cJSON_AddStringToObject(res->body, "job_id", job_id);
    cJSON_AddNullToObject(res->body, "schedule");
out:
    bson_destroy(&update);
    bson_destroy(job);
}
