/*
 * cv_scheduler.c - the scheduler service: one loop on one thread that calls
 * its parts in turn. See cv_scheduler.h for the guarantees.
 *
 *   load      every second: the scheduled jobs are read into memory, each
 *             with its cursor (cv_ticks.c);
 *   scan      every 100 ms, in memory: schedules whose next tick is within the
 *             lookahead are planned, their ticks claimed (claims and run
 *             records inserted) and the cursors moved on (cv_ticks.c);
 *   publish   claimed ticks that fell due go to convutell.jobs in one batch
 *             (cv_ticks.c), and held retries that fell due too (cv_retries.c);
 *   maintain  every second: this scheduler's heartbeat (with its cursors
 *             every 5 s), ticks claimed by a scheduler that died, expired
 *             leases, retries decided but not sent (cv_recovery.c); and in the
 *             gaps, one ended schedule at a time is written to its job;
 *   retries   messages from convutell.jobs.retry are held until their
 *             not_before (cv_retries.c).
 *
 * Between these the loop waits in the retry consumer's poll, which is what
 * keeps it in its consumer group. Database work that is not a claim waits
 * for a gap of SLACK_MS before the next due tick, so it does not delay
 * publishing.
 */
#include "cv_scheduler_int.h"

#include "cv_log.h"
#include "cv_message.h"
#include "cv_pruner.h"
#include "cv_time.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define SCAN_EVERY_MS 100      /* how often the schedules are looked at */
#define LOAD_EVERY_MS 1000     /* how often the scheduled jobs are read */
#define MAINTAIN_EVERY_MS 1000 /* heartbeat, dead schedulers, leases, unsent retries */
#define SLACK_MS 250           /* other database work only this long before a due tick */
#define OVERDUE_MS 5000        /* ... unless it has waited this long */
#define RETRY_GROUP CV_GROUP_SCHEDULER

/* ---- pure parts --------------------------------------------------------------- */

void cv_scheduler_run_id(const char *job_id, int64_t tick_ms, char out[CV_ID_LEN]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char text[96];
    int len = snprintf(text, sizeof(text), "%s@%lld", job_id, (long long)tick_ms);

    EVP_Digest(text, (size_t)len, md, &mdlen, EVP_sha256(), NULL);
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x80); /* version 8: custom */
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, CV_ID_LEN, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10], md[11],
             md[12], md[13], md[14], md[15]);
}

int cv_scheduler_plan(const char *misfire, int misfire_max, const int64_t *ticks, int n,
                      int64_t now_ms, bool *run) {
    bool newest_on_time = n > 0 && now_ms - ticks[n - 1] <= CV_MISFIRE_GRACE_MS;
    int runs = 0;

    for (int i = 0; i < n; i++) {
        bool late = i < n - 1 || !newest_on_time;
        if (!late)
            run[i] = true;
        else if (strcmp(misfire, "run_all") == 0)
            run[i] = i >= n - (misfire_max > 0 ? misfire_max : 1);
        else if (strcmp(misfire, "skip") == 0)
            run[i] = false;
        else /* run_once: the newest due tick stands for all of them */
            run[i] = i == n - 1;
        runs += run[i];
    }
    return runs;
}

/* ---- setup -------------------------------------------------------------------- */

cv_scheduler *cv_scheduler_new(const cv_config *cfg, char *errbuf, size_t errlen) {
    cv_scheduler *s = calloc(1, sizeof(*s));

    if (!s) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    if (cv_id_new(s->instance, sizeof(s->instance)) != 0) {
        cv_err_set(errbuf, errlen, CV_ERR_IO, "no random source for the scheduler's id");
        goto fail;
    }
    s->mongo = cv_mongo_new(cfg->mongo_uri, cfg->mongo_db, "convutell-scheduler", errbuf, errlen);
    if (!s->mongo)
        goto fail;
    s->producer = cv_kafka_producer_new(cfg->kafka_bootstrap, 0, errbuf, errlen);
    if (!s->producer)
        goto fail;
    s->retries.consumer = cv_kafka_consumer_new(cfg->kafka_bootstrap, RETRY_GROUP, CV_TOPIC_RETRY,
                                                cfg->max_poll_interval_ms, errbuf, errlen);
    if (!s->retries.consumer)
        goto fail;
    s->m_fired = cv_metrics_register(CV_METRIC_COUNTER, "convutell_ticks_fired_total",
                                     "Scheduled runs published (one per tick that runs).", NULL, 0);
    s->m_lateness = cv_metrics_register(
        CV_METRIC_HISTOGRAM, "convutell_tick_lateness_seconds",
        "From a tick's time to its run's job message acknowledged by the broker.",
        cv_metrics_seconds, cv_metrics_nseconds);
    return s;
fail:
    cv_scheduler_destroy(s);
    return NULL;
}

void cv_scheduler_destroy(cv_scheduler *s) {
    if (!s)
        return;
    cv_ticks_destroy(&s->ticks);
    cv_retries_destroy(&s->retries);
    cv_kafka_producer_destroy(s->producer);
    cv_mongo_destroy(s->mongo);
    free(s);
}

/* ---- the loop ------------------------------------------------------------------------ */

/* How long until the next claimed tick falls due (INT64_MAX: none). */
static int64_t slack(const cv_scheduler *s, int64_t now) {
    int64_t first = cv_ticks_next_due(&s->ticks);
    return first == INT64_MAX ? INT64_MAX : first - now;
}

/* Database work other than claims: now if no tick falls due within SLACK_MS,
 * or if it has waited OVERDUE_MS past its time. */
static bool may_work(const cv_scheduler *s, int64_t due, int64_t now) {
    return now >= due && (slack(s, now) > SLACK_MS || now - due >= OVERDUE_MS);
}

cv_err cv_scheduler_run(cv_scheduler *s, volatile sig_atomic_t *stop, char *errbuf, size_t errlen) {
    int64_t next_scan = 0, next_load = 0, next_maintain = 0;
    cv_pruner *pruner = cv_pruner_new(&s->cfg, errbuf, errlen);

    if (!pruner)
        return CV_ERR_IO;
    cv_log_info("scheduler %s started: schedules from MongoDB, retries from %s as group %s",
                s->instance, CV_TOPIC_RETRY, RETRY_GROUP);
    while (!*stop) {
        int64_t now = cv_time_now_ms(), wake;
        char why[1024];

        if (may_work(s, next_load, now) || next_load == 0) {
            if (cv_ticks_load(s, why, sizeof(why)) != CV_OK)
                cv_log_warn("loading schedules: %s", why);
            next_load = now + LOAD_EVERY_MS;
        }
        now = cv_time_now_ms();
        if (now >= next_scan) {
            if (cv_ticks_scan(s, now, why, sizeof(why)) != CV_OK)
                cv_log_warn("scan: %s", why);
            next_scan = now + SCAN_EVERY_MS;
        }
        now = cv_time_now_ms();
        if (cv_ticks_publish(s, now, why, sizeof(why)) != CV_OK)
            cv_log_warn("publish: %s", why);
        cv_retries_release_due(s, now);
        now = cv_time_now_ms();
        if (may_work(s, next_maintain, now)) {
            if (cv_recovery_heartbeat(s, now, why, sizeof(why)) != CV_OK)
                cv_log_warn("heartbeat: %s", why);
            if (cv_recovery_sweep_schedulers(s, now, why, sizeof(why)) != CV_OK)
                cv_log_warn("stopped schedulers: %s", why);
            if (cv_recovery_sweep_leases(s, now, why, sizeof(why)) != CV_OK)
                cv_log_warn("lease sweep: %s", why);
            next_maintain = now + MAINTAIN_EVERY_MS;
        }
        now = cv_time_now_ms();
        if (slack(s, now) > SLACK_MS && cv_ticks_write_end(s, why, sizeof(why)) != CV_OK)
            cv_log_warn("writing the end of a schedule: %s", why);

        wake = next_scan;
        if (cv_ticks_next_due(&s->ticks) < wake)
            wake = cv_ticks_next_due(&s->ticks);
        if (cv_retries_next_due(&s->retries) < wake)
            wake = cv_retries_next_due(&s->retries);
        wake -= cv_time_now_ms();
        cv_retries_take(s, wake <= 0 ? 0 : wake > SCAN_EVERY_MS ? SCAN_EVERY_MS : (int)wake);
    }
    cv_pruner_destroy(pruner);
    return CV_OK;
}
