/*
 * cv_recovery.c - the scheduler's liveness, and what stopped processes leave
 * behind: this scheduler's heartbeat (with its cursors), the ticks claimed by
 * a scheduler whose heartbeat stopped, and the leases of workers that stopped
 * renewing them. See cv_recovery.h.
 */
#include "cv_scheduler_int.h"

#include "cv_lease.h"
#include "cv_log.h"
#include "cv_message.h"
#include "cv_run.h"
#include "cv_runs.h"
#include "cv_store.h"
#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define CURSORS_EVERY_MS 5000 /* the cursors go into the heartbeat document this often */
#define STALE_MS 10000        /* a scheduler without a heartbeat this long is dead */
#define RECOVER_BACK_MS 10000 /* its claims this long before its last beat are sent again */
#define UNSENT_RETRY_MS 30000 /* a retry decided this long ago and not sent is sent again */
/* A lease is taken back this long after it ran out: when its worker died, Kafka
 * redelivers the message to another worker within its session timeout (6 s),
 * which resumes the same attempt; the scheduler steps in when nobody does (the
 * worker hangs, or lost MongoDB but not Kafka). */
#define LEASE_GRACE_MS 15000

/* Records this scheduler's heartbeat and, every CURSORS_EVERY_MS, its
 * cursors: one small document however many schedules there are, where a
 * restarted scheduler (or one that is new) finds them. */
cv_err cv_recovery_heartbeat(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen) {
    char at[CV_TIME_RFC3339_LEN];
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(s->instance)), *update = bson_new(), set;
    bool cursors = now - s->recovery.cursors_saved_at >= CURSORS_EVERY_MS;
    cv_err err;

    cv_time_format(now, at, sizeof(at));
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "beat_at", at);
    BSON_APPEND_INT64(&set, "beat_ms", now);
    if (cursors)
        cv_ticks_append_cursors(&s->ticks, &set, "cursors");
    bson_append_document_end(update, &set);
    err = cv_mongo_update(s->mongo, CV_COLL_SCHEDULERS, filter, update, true, NULL, errbuf, errlen);
    if (!err && cursors)
        s->recovery.cursors_saved_at = now;
    bson_destroy(filter);
    bson_destroy(update);
    return err;
}

/* Sends again what scheduler `dead` claimed in its last RECOVER_BACK_MS:
 * ticks it may have claimed and not published when it stopped. Run records
 * missing go in; a message it did publish goes out a second time, which
 * workers skip (they claim each attempt once). */
static cv_err recover(cv_scheduler *s, const char *dead, int64_t beat_ms, char *errbuf,
                      size_t errlen) {
    bson_t *filter = BCON_NEW("claimer", BCON_UTF8(dead), "tick_ms", "{", "$gte",
                              BCON_INT64(beat_ms - RECOVER_BACK_MS), "}");
    bson_t *list = NULL, doc, *records = NULL;
    const bson_t **recs = NULL;
    cv_kafka_out *msgs = NULL;
    size_t n = 0, nrecs = 0, nmsgs = 0;
    bson_iter_t it;
    cv_err err = cv_mongo_find(s->mongo, CV_COLL_TICKS, filter, NULL, 0, &list, errbuf, errlen);

    bson_destroy(filter);
    if (err)
        return err;
    CV_MONGO_EACH_DOC(list, it, doc) {
        n++;
    }
    records = calloc(n ? n : 1, sizeof(*records));
    recs = calloc(n ? n : 1, sizeof(*recs));
    msgs = calloc(n ? n : 1, sizeof(*msgs));
    if (!records || !recs || !msgs) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    CV_MONGO_EACH_DOC(list, it, doc) {
        bson_iter_t rec;
        const char *msg = cv_mongo_doc_str(&doc, "message");
        if (bson_iter_init_find(&rec, &doc, "record") && BSON_ITER_HOLDS_DOCUMENT(&rec) &&
            cv_mongo_iter_doc(&rec, &records[nrecs]))
            recs[nrecs] = &records[nrecs], nrecs++;
        if (msg)
            msgs[nmsgs++] = (cv_kafka_out){
                .key = cv_mongo_doc_str(&doc, "job_id"), .value = msg, .len = strlen(msg)};
    }
    if (n > 0)
        cv_log_warn("scheduler %s stopped; sending its %zu latest claimed ticks again", dead, n);
    if ((err = cv_runs_insert_records(s->mongo, recs, nrecs, errbuf, errlen)))
        goto out;
    err = cv_kafka_produce_batch(s->producer, CV_TOPIC_JOBS, msgs, nmsgs,
                                 CV_SCHED_PUBLISH_TIMEOUT_MS, errbuf, errlen);
out:
    free(records);
    free(recs);
    free(msgs);
    bson_destroy(list);
    return err;
}

/* Finds schedulers whose heartbeat stopped and finishes what they claimed.
 * Every live scheduler that sees one does so, until one has marked it
 * recovered. */
cv_err cv_recovery_sweep_schedulers(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen) {
    bson_t *filter = BCON_NEW("beat_ms", "{", "$lt", BCON_INT64(now - STALE_MS), "}", "recovered",
                              "{", "$ne", BCON_BOOL(true), "}");
    bson_t *list = NULL, doc;
    bson_iter_t it;
    cv_err err =
        cv_mongo_find(s->mongo, CV_COLL_SCHEDULERS, filter, NULL, 16, &list, errbuf, errlen);

    bson_destroy(filter);
    if (err)
        return err;
    CV_MONGO_EACH_DOC(list, it, doc) {
        const char *dead = cv_mongo_doc_str(&doc, "_id");
        bson_iter_t beat;
        bson_t *mark, *set;
        int64_t beat_ms;
        if (!dead || !bson_iter_init_find(&beat, &doc, "beat_ms") || !BSON_ITER_HOLDS_NUMBER(&beat))
            continue;
        beat_ms = bson_iter_as_int64(&beat);
        mark = BCON_NEW("_id", BCON_UTF8(dead), "recovered", "{", "$ne", BCON_BOOL(true), "}");
        set = BCON_NEW("$set", "{", "recovered", BCON_BOOL(true), "recovered_by",
                       BCON_UTF8(s->instance), "}");
        /* Recovered first, marked after: if this scheduler dies in between,
         * another does it again (a second copy of a message is harmless). */
        if ((err = recover(s, dead, beat_ms, errbuf, errlen)) == CV_OK)
            err = cv_mongo_update(s->mongo, CV_COLL_SCHEDULERS, mark, set, false, NULL, errbuf,
                                  errlen);
        bson_destroy(mark);
        bson_destroy(set);
        if (err)
            break;
    }
    bson_destroy(list);
    return err;
}

/* Publishes an event the scheduler writes about a run (an expired lease). */
static void publish_event(cv_scheduler *s, cv_event *ev) {
    char why[256], *json;
    snprintf(ev->worker, sizeof(ev->worker), "scheduler");
    if (!(json = cv_event_encode(ev)))
        return;
    if (cv_kafka_produce(s->producer, CV_TOPIC_EVENTS, ev->run_id, json, strlen(json), NULL,
                         CV_SCHED_PUBLISH_TIMEOUT_MS, why, sizeof(why)) != CV_OK)
        cv_log_warn("run %s: %s event not published: %s", ev->run_id, ev->type, why);
    free(json);
}

/* Takes one expired lease back from its worker: closes it if the run ended
 * after all (its worker died while reporting), else retries the run while
 * attempts remain and fails it for good otherwise. */
static void expire_lease(cv_scheduler *s, const bson_t *lease, int64_t now) {
    const char *id = cv_mongo_doc_str(lease, "_id");
    const char *expired = cv_mongo_doc_str(lease, "expires_at");
    const char *worker = cv_mongo_doc_str(lease, "worker");
    const char *msg = cv_mongo_doc_str(lease, "message");
    int attempt = (int)cv_mongo_doc_int(lease, "attempt", 1);
    int max = (int)cv_mongo_doc_int(lease, "max_attempts", 1);
    int backoff = (int)cv_mongo_doc_int(lease, "backoff_seconds", 60);
    char why[512], reason[512];
    cv_run_status status = CV_RUN_NONE;
    bool ended, retry, taken = false;
    int64_t due = 0;
    cv_event ev;

    if (!id || !expired)
        return;
    if (cv_runs_status(s->mongo, id, &status, why, sizeof(why)) == CV_ERR_MONGO)
        return; /* the next sweep looks again */
    ended = cv_run_is_final(status);
    retry = !ended && attempt < max && msg;
    if (retry)
        due = now + cv_job_retry_delay_ms(backoff, attempt + 1);
    if (cv_lease_take_back(s->mongo, lease, due, now, &taken, why, sizeof(why)) != CV_OK)
        cv_log_warn("run %s: lease not expired: %s", id, why);
    if (ended && cv_runs_forget_active(s->mongo, id, why, sizeof(why)) != CV_OK)
        cv_log_warn("run %s: still listed as active: %s", id, why);
    if (!taken || ended)
        return; /* renewed or handled by another scheduler meanwhile, or simply over */

    snprintf(reason, sizeof(reason), "no heartbeat from worker %s; its lease ran out at %s",
             worker ? worker : "?", expired);
    cv_log_warn("run %s attempt %d: %s; %s", id, attempt, reason,
                retry ? "retrying" : "no attempts left, the run failed");
    if (cv_event_init(&ev, retry ? CV_EVENT_RUN_RETRYING : CV_EVENT_RUN_FAILED) == CV_OK) {
        const char *job_id = cv_mongo_doc_str(lease, "job_id");
        const char *project_id = cv_mongo_doc_str(lease, "project_id");
        snprintf(ev.run_id, sizeof(ev.run_id), "%s", id);
        snprintf(ev.job_id, sizeof(ev.job_id), "%s", job_id ? job_id : "");
        snprintf(ev.project_id, sizeof(ev.project_id), "%s", project_id ? project_id : "");
        ev.attempt = attempt;
        ev.next_attempt_ms = due;
        snprintf(ev.error_code, sizeof(ev.error_code), "lease_expired");
        snprintf(ev.error_message, sizeof(ev.error_message), "%s", reason);
        publish_event(s, &ev);
    }
    if (retry && cv_retries_send(s, id, msg, attempt + 1, due, why, sizeof(why)) != CV_OK)
        cv_log_warn("run %s: retry not sent yet (the next sweep sends it): %s", id, why);
}

cv_err cv_recovery_sweep_leases(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen) {
    bson_t *list = NULL, doc;
    bson_iter_t it;
    cv_err err = cv_lease_find_expired(s->mongo, now - LEASE_GRACE_MS, 100,
                                       s->recovery.lease_cursor, &list, errbuf, errlen);

    if (err)
        return err;
    CV_MONGO_EACH_DOC(list, it, doc) {
        expire_lease(s, &doc, now);
    }
    bson_destroy(list);

    /* Retries the lease sweep decided and could not send. */
    if ((err = cv_lease_find_unsent(s->mongo, now - UNSENT_RETRY_MS, 100, &list, errbuf, errlen)))
        return err;
    CV_MONGO_EACH_DOC(list, it, doc) {
        const char *id = cv_mongo_doc_str(&doc, "_id"), *msg = cv_mongo_doc_str(&doc, "message");
        char why[512];
        if (id && msg &&
            cv_retries_send(s, id, msg, (int)cv_mongo_doc_int(&doc, "attempt", 1) + 1, now, why,
                            sizeof(why)) != CV_OK)
            cv_log_warn("run %s: retry not sent: %s", id, why);
    }
    bson_destroy(list);
    return CV_OK;
}
