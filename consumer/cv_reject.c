/*
 * cv_reject.c - dead-lettering and reporting the messages a worker rejects,
 * in batches.
 */
#include "cv_reject.h"

#include "cv_deadletter.h"
#include "cv_log.h"
#include "cv_message.h"

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define REPORT_TIMEOUT_MS 30000

static atomic_llong failures; /* rejections that could not be dead-lettered, counted in the log */

/* Reads the run id out of a message that failed validation, if it has a
 * well-formed one, so the rejection can be tied to the run. */
static void salvage_ids(const cv_kafka_msg *msg, cv_event *ev) {
    cJSON *root = msg->len <= CV_JOB_MAX_BYTES
                      ? cJSON_ParseWithLength(msg->payload ? msg->payload : "", msg->len)
                      : NULL;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "run_id");
    if (cJSON_IsString(id) && cv_id_valid(id->valuestring))
        snprintf(ev->run_id, sizeof(ev->run_id), "%s", id->valuestring);
    id = cJSON_GetObjectItemCaseSensitive(root, "job_id");
    if (cJSON_IsString(id) && cv_id_valid(id->valuestring))
        snprintf(ev->job_id, sizeof(ev->job_id), "%s", id->valuestring);
    cJSON_Delete(root);
}

/* The job.rejected event of one item, as JSON (NULL when out of memory). */
static char *report(cv_runner *r, const cv_reject *item, const cv_deadletter *d, char *run_id,
                    size_t run_id_len) {
    const cv_kafka_msg *msg = item->msg;
    cv_event ev;

    if (cv_event_init(&ev, CV_EVENT_JOB_REJECTED) != CV_OK)
        return NULL;
    salvage_ids(msg, &ev);
    snprintf(ev.worker, sizeof(ev.worker), "%s", r->cfg.worker_id);
    if (d->err) {
        long long n = atomic_fetch_add(&failures, 1) + 1;
        cv_log_error("%s[%d]@%lld not dead-lettered (%s); skipped (%lld so far)", msg->topic,
                     (int)msg->partition, (long long)msg->offset, d->why, n);
        snprintf(ev.error_code, sizeof(ev.error_code), "dead_letter_failed");
        snprintf(ev.error_message, sizeof(ev.error_message),
                 "%s (not dead-lettered from %s[%d]@%lld: %s)", d->reason, msg->topic,
                 (int)msg->partition, (long long)msg->offset, d->why);
    } else {
        snprintf(ev.error_code, sizeof(ev.error_code), "invalid_message");
        snprintf(ev.error_message, sizeof(ev.error_message),
                 "%s (dead-lettered from %s[%d]@%lld%s)", d->reason, msg->topic,
                 (int)msg->partition, (long long)msg->offset, d->whole ? "" : ", its head only");
    }
    snprintf(run_id, run_id_len, "%s", ev.run_id);
    return cv_event_encode(&ev);
}

cv_err cv_reject_many(cv_runner *r, const cv_reject *items, size_t n, char *errbuf, size_t errlen) {
    cv_deadletter *letters = calloc(n ? n : 1, sizeof(*letters));
    char(*reasons)[512] = calloc(n ? n : 1, sizeof(*reasons));
    char(*keys)[CV_ID_LEN] = calloc(n ? n : 1, sizeof(*keys));
    cv_kafka_out *events = calloc(n ? n : 1, sizeof(*events));
    char why[256];
    cv_err err = CV_OK;

    if (!letters || !reasons || !keys || !events) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const cv_kafka_msg *msg = items[i].msg;
        snprintf(reasons[i], sizeof(reasons[i]), "%s: %s", items[i].verr->field,
                 items[i].verr->reason);
        cv_log_warn("rejected %s[%d]@%lld (%zu bytes): %s", msg->topic, (int)msg->partition,
                    (long long)msg->offset, msg->len, reasons[i]);
        letters[i] = (cv_deadletter){.msg = msg, .reason = reasons[i]};
    }
    if (cv_deadletter_send_many(r->producer, letters, n, "convutell.worker", r->cfg.worker_id) ==
        CV_ERR_NOMEM) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char *json = report(r, &items[i], &letters[i], keys[i], sizeof(keys[i]));
        if (!json) {
            err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory encoding an event");
            goto out;
        }
        events[i] =
            (cv_kafka_out){.key = keys[i][0] ? keys[i] : NULL, .value = json, .len = strlen(json)};
    }
    if (cv_kafka_produce_batch(r->producer, CV_TOPIC_EVENTS, events, n, REPORT_TIMEOUT_MS, why,
                               sizeof(why)) != CV_OK)
        cv_log_error("%zu rejection(s): not all were reported: %s", n, why);
out:
    for (size_t i = 0; events && i < n; i++)
        free((char *)(uintptr_t)events[i].value);
    free(events);
    free(keys);
    free(reasons);
    free(letters);
    return err;
}
