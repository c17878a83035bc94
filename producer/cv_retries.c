/*
 * cv_retries.c - retries held until due: messages from convutell.jobs.retry
 * are held in memory until their not_before and then published to
 * convutell.jobs; a retry the scheduler decides itself (an expired lease)
 * goes onto the retry topic from here. See cv_retries.h.
 */
#include "cv_scheduler_int.h"

#include "cv_array.h"
#include "cv_deadletter.h"
#include "cv_lease.h"
#include "cv_log.h"
#include "cv_message.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

static void note_seen(cv_scheduler *s, const cv_kafka_msg *msg) {
    for (int i = 0; i < s->retries.nparts; i++)
        if (s->retries.parts[i].partition == msg->partition) {
            if (msg->offset + 1 > s->retries.parts[i].next_seen)
                s->retries.parts[i].next_seen = msg->offset + 1;
            return;
        }
    if (s->retries.nparts < CV_RETRIES_MAX_PARTITIONS) {
        s->retries.parts[s->retries.nparts].partition = msg->partition;
        s->retries.parts[s->retries.nparts++].next_seen = msg->offset + 1;
    }
}

/* A message on the retry topic that is not a job goes to the dead-letter
 * topic from here (one too large for the jobs topic could never be passed
 * on). True when it went, or could not go after its tries: either way it is
 * let go. False only when it is best passed on for a worker to dead-letter. */
static bool dead_letter(cv_scheduler *s, const cv_kafka_msg *msg, const cv_verr *verr) {
    char reason[512], why[512];
    bool whole = true;

    snprintf(reason, sizeof(reason), "%s: %s", verr->field, verr->reason);
    cv_log_warn("rejected %s[%d]@%lld (%zu bytes): %s", msg->topic, (int)msg->partition,
                (long long)msg->offset, msg->len, reason);
    if (cv_deadletter_send(s->producer, msg, reason, "convutell.scheduler", s->instance, &whole,
                           why, sizeof(why)) != CV_OK) {
        if (msg->len <= CV_JOB_MAX_BYTES)
            return false;
        cv_log_error("%s[%d]@%lld not dead-lettered (%s); skipped", msg->topic, (int)msg->partition,
                     (long long)msg->offset, why);
    }
    return true;
}

static void hold(cv_scheduler *s, cv_kafka_msg *msg) {
    cv_job job;
    cv_verr verr;
    cv_held_retry *h;
    size_t klen = msg->key_len < CV_ID_LEN ? msg->key_len : CV_ID_LEN;

    note_seen(s, msg);
    if (cv_array_grow((void **)&s->retries.held, &s->retries.capheld, s->retries.nheld + 1,
                      sizeof(*s->retries.held)) != 0) {
        /* Not stored: read again after a restart. */
        cv_log_error("out of memory holding a retry");
        cv_kafka_msg_release(msg);
        return;
    }
    h = &s->retries.held[s->retries.nheld++];
    h->msg = *msg;
    memset(msg, 0, sizeof(*msg));
    h->key[0] = '\0';
    if (h->msg.key) {
        memcpy(h->key, h->msg.key, klen);
        h->key[klen] = '\0';
    }
    h->due_ms = 0;
    if (cv_job_decode(h->msg.payload ? h->msg.payload : "", h->msg.len, &job, &verr) == CV_OK) {
        h->due_ms = job.not_before_ms;
        cv_job_release(&job);
    } else if (dead_letter(s, &h->msg, &verr)) {
        cv_kafka_msg_release(&h->msg);
        s->retries.nheld--;
    }
}

/* Stores, for each partition, the offset of the oldest message still held
 * (or the next one to read when none is held). */
static void store_positions(cv_scheduler *s) {
    char why[256];
    for (int p = 0; p < s->retries.nparts; p++) {
        int64_t pos = s->retries.parts[p].next_seen;
        for (size_t i = 0; i < s->retries.nheld; i++)
            if (s->retries.held[i].msg.partition == s->retries.parts[p].partition &&
                s->retries.held[i].msg.offset < pos)
                pos = s->retries.held[i].msg.offset;
        if (cv_kafka_consumer_store_at(s->retries.consumer, CV_TOPIC_RETRY,
                                       s->retries.parts[p].partition, pos, why,
                                       sizeof(why)) != CV_OK)
            cv_log_debug("%s", why); /* a partition moved to another scheduler */
    }
}

void cv_retries_release_due(cv_scheduler *s, int64_t now) {
    cv_kafka_out *out;
    size_t n = 0, kept = 0;
    char why[512];

    for (size_t i = 0; i < s->retries.nheld; i++)
        n += s->retries.held[i].due_ms <= now;
    if (n == 0 || !(out = calloc(n, sizeof(*out))))
        return;
    for (size_t i = 0, k = 0; i < s->retries.nheld; i++)
        if (s->retries.held[i].due_ms <= now)
            out[k++] = (cv_kafka_out){
                .key = s->retries.held[i].key[0] ? s->retries.held[i].key : NULL,
                .value = s->retries.held[i].msg.payload ? s->retries.held[i].msg.payload : "",
                .len = s->retries.held[i].msg.len};
    if (cv_kafka_produce_batch(s->producer, CV_TOPIC_JOBS, out, n, CV_SCHED_PUBLISH_TIMEOUT_MS, why,
                               sizeof(why)) != CV_OK)
        cv_log_warn("retries not all published, trying again: %s", why);
    for (size_t i = 0, k = 0; i < s->retries.nheld; i++) {
        if (s->retries.held[i].due_ms <= now && out[k++].err == CV_OK) {
            cv_log_debug("retry for job %s published", s->retries.held[i].key);
            cv_kafka_msg_release(&s->retries.held[i].msg);
        } else {
            s->retries.held[kept++] = s->retries.held[i];
        }
    }
    s->retries.nheld = kept;
    free(out);
    store_positions(s);
    if (s->retries.paused && s->retries.nheld < CV_RETRIES_HOLD_MAX / 2) {
        cv_kafka_consumer_pause(s->retries.consumer, false);
        s->retries.paused = false;
    }
}

/* Waits up to wait_ms in the retry consumer, holding what arrives. */
void cv_retries_take(cv_scheduler *s, int wait_ms) {
    cv_kafka_msg msg;

    if (cv_kafka_consumer_poll(s->retries.consumer, wait_ms, &msg) != CV_OK)
        return;
    hold(s, &msg);
    while (s->retries.nheld < CV_RETRIES_HOLD_MAX &&
           cv_kafka_consumer_poll(s->retries.consumer, 0, &msg) == CV_OK)
        hold(s, &msg);
    if (s->retries.nheld >= CV_RETRIES_HOLD_MAX && !s->retries.paused) {
        cv_log_warn("%d retries held; pausing %s until some are due", CV_RETRIES_HOLD_MAX,
                    CV_TOPIC_RETRY);
        cv_kafka_consumer_pause(s->retries.consumer, true);
        s->retries.paused = true;
    }
}

/* Puts attempt `attempt` of the run stored as `message` on the retry topic,
 * due at due_ms, and notes on the lease that it was sent. */
cv_err cv_retries_send(cv_scheduler *s, const char *run_id, const char *message, int attempt,
                       int64_t due_ms, char *errbuf, size_t errlen) {
    cv_job job;
    cv_verr verr;
    char *next;
    cv_err err = cv_job_decode(message, strlen(message), &job, &verr);

    if (err)
        return cv_err_set(errbuf, errlen, err, "run %s: stored message unreadable: %s: %s", run_id,
                          verr.field, verr.reason);
    job.attempt = attempt;
    job.not_before_ms = due_ms;
    next = cv_job_encode(&job);
    if (!next)
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    else
        err = cv_kafka_produce(s->producer, CV_TOPIC_RETRY, job.job_id, next, strlen(next), NULL,
                               CV_SCHED_PUBLISH_TIMEOUT_MS, errbuf, errlen);
    free(next);
    cv_job_release(&job);
    if (err)
        return err;
    return cv_lease_retry_sent(s->mongo, run_id, attempt, errbuf, errlen);
}

int64_t cv_retries_next_due(const cv_retries *r) {
    int64_t first = INT64_MAX;
    for (size_t i = 0; i < r->nheld; i++)
        if (r->held[i].due_ms < first)
            first = r->held[i].due_ms;
    return first;
}

void cv_retries_destroy(cv_retries *r) {
    for (size_t i = 0; i < r->nheld; i++)
        cv_kafka_msg_release(&r->held[i].msg);
    free(r->held);
    cv_kafka_consumer_destroy(r->consumer);
    memset(r, 0, sizeof(*r));
}
