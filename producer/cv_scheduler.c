/*
 * cv_scheduler.c - ticks into runs, retries held until due, expired leases
 * taken back. See cv_scheduler.h for the guarantees; this file is one loop:
 *
 *   scan      every 100 ms: schedules whose next tick is within the lookahead
 *             are planned, their ticks claimed (run records inserted) and the
 *             schedules' cursors moved on;
 *   publish   claimed ticks that fell due go to convutell.jobs in one batch;
 *   maintain  every second: claimed ticks nobody published, expired leases,
 *             retries that were decided but not sent;
 *   retries   messages from convutell.jobs.retry are held until their
 *             not_before and then published to convutell.jobs.
 *
 * Between these the loop waits in the retry consumer's poll, which is what
 * keeps it in its consumer group.
 */
#include "cv_scheduler.h"

#include "cv_kafka.h"
#include "cv_launch.h"
#include "cv_log.h"
#include "cv_message.h"
#include "cv_mongo.h"
#include "cv_runs.h"
#include "cv_schedule.h"
#include "cv_time.h"
#include "cv_tz.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOOKAHEAD_MS 500       /* ticks are claimed this long before they fall due */
#define SCAN_EVERY_MS 100      /* how often the schedules are looked at */
#define MAINTAIN_EVERY_MS 1000 /* unpublished ticks, leases, unsent retries */
#define PENDING_GRACE_MS 5000  /* a tick unpublished this long after its time was orphaned */
#define UNSENT_RETRY_MS 30000  /* a retry decided this long ago and not sent is sent again */
/* A lease is taken back this long after it ran out: when its worker died, Kafka
 * redelivers the message to another worker within its session timeout (6 s),
 * which resumes the same attempt; the scheduler steps in when nobody does (the
 * worker hangs, or lost MongoDB but not Kafka). */
#define LEASE_GRACE_MS 15000
#define MAX_TICKS_PER_JOB 1000 /* per scan; more missed ticks are recorded in later scans */
#define MAX_JOBS_PER_SCAN 2000
#define HOLD_MAX 10000 /* retries held in memory before the topic is paused */
#define PUBLISH_TIMEOUT_MS 30000
#define RETRY_GROUP "convutell-scheduler"
#define CV_COLL_TICKS "ticks" /* one document per claimed tick */
#define MAX_PARTITIONS 256
#define MAX_ZONES 64

/* A claimed tick waiting for its time. */
typedef struct ready_run {
    char run_id[CV_ID_LEN];
    char job_id[CV_ID_LEN];
    int64_t due_ms;
    char *message; /* owned: the job message */
    char *event;   /* owned: its run.queued event */
} ready_run;

/* A retry waiting for its not_before. */
typedef struct held_retry {
    int64_t due_ms;
    char key[CV_ID_LEN + 1];
    cv_kafka_msg msg; /* owned */
} held_retry;

typedef struct zone {
    char name[64];
    cv_tz *tz;
} zone;

/* Everything one scan claims, inserted and moved on in batches. */
typedef struct scan_batch {
    bson_t **claims; /* `ticks` documents */
    bson_t **docs;   /* run records; docs[i] belongs to claims[i] */
    ready_run *runs; /* and runs[i]; message NULL for missed ticks */
    size_t n, capclaims, capdocs, capruns;
    bson_t **filters, **updates; /* schedule cursors */
    size_t ncursors, capfilters, capupdates;
    bson_t *projects[64]; /* projects loaded during this scan */
    int nprojects;
} scan_batch;

struct cv_scheduler {
    cv_config cfg;
    cv_mongo *mongo;
    cv_kafka_producer *producer;
    cv_kafka_consumer *retry;
    ready_run *ready;
    size_t nready, capready;
    held_retry *held;
    size_t nheld, capheld;
    bool retry_paused;
    struct {
        int32_t partition;
        int64_t next_seen; /* offset after the last message read */
    } parts[MAX_PARTITIONS];
    int nparts;
    zone zones[MAX_ZONES];
    int nzones;
    int64_t ticks[MAX_TICKS_PER_JOB]; /* one job's due ticks during a scan */
    bool run[MAX_TICKS_PER_JOB];
};

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
    s->mongo = cv_mongo_new(cfg->mongo_uri, cfg->mongo_db, "convutell-scheduler", errbuf, errlen);
    if (!s->mongo)
        goto fail;
    s->producer = cv_kafka_producer_new(cfg->kafka_bootstrap, errbuf, errlen);
    if (!s->producer)
        goto fail;
    s->retry = cv_kafka_consumer_new(cfg->kafka_bootstrap, RETRY_GROUP, CV_TOPIC_RETRY,
                                     cfg->max_poll_interval_ms, errbuf, errlen);
    if (!s->retry)
        goto fail;
    return s;
fail:
    cv_scheduler_destroy(s);
    return NULL;
}

static void free_ready(ready_run *r) {
    free(r->message);
    free(r->event);
    r->message = r->event = NULL;
}

void cv_scheduler_destroy(cv_scheduler *s) {
    if (!s)
        return;
    for (size_t i = 0; i < s->nready; i++)
        free_ready(&s->ready[i]);
    free(s->ready);
    for (size_t i = 0; i < s->nheld; i++)
        cv_kafka_msg_release(&s->held[i].msg);
    free(s->held);
    for (int i = 0; i < s->nzones; i++)
        cv_tz_destroy(s->zones[i].tz);
    cv_kafka_consumer_destroy(s->retry);
    cv_kafka_producer_destroy(s->producer);
    cv_mongo_destroy(s->mongo);
    free(s);
}

/* Zones are read once per process. */
static const cv_tz *zone_get(cv_scheduler *s, const char *name, char *errbuf, size_t errlen) {
    cv_tz *tz;

    for (int i = 0; i < s->nzones; i++)
        if (strcmp(s->zones[i].name, name) == 0)
            return s->zones[i].tz;
    if (!(tz = cv_tz_load(name, errbuf, errlen)))
        return NULL;
    if (s->nzones == MAX_ZONES) {
        cv_tz_destroy(s->zones[0].tz);
        memmove(s->zones, s->zones + 1, sizeof(s->zones[0]) * (MAX_ZONES - 1));
        s->nzones--;
    }
    snprintf(s->zones[s->nzones].name, sizeof(s->zones[0].name), "%s", name);
    s->zones[s->nzones++].tz = tz;
    return tz;
}

static void append_time(bson_t *doc, const char *key, int64_t ms) {
    char text[CV_TIME_RFC3339_LEN];
    cv_time_format(ms, text, sizeof(text));
    BSON_APPEND_UTF8(doc, key, text);
}

/* ---- scan: ticks into claimed runs ---------------------------------------------- */

static int grow(void **items, size_t *cap, size_t need, size_t size) {
    void *bigger;
    size_t n = *cap ? *cap : 64;

    if (need <= *cap)
        return 0;
    while (n < need)
        n *= 2;
    if (!(bigger = realloc(*items, n * size)))
        return -1;
    *items = bigger;
    *cap = n;
    return 0;
}

static const bson_t *project_get(cv_scheduler *s, scan_batch *b, const char *id) {
    bson_t *doc = NULL;
    char why[256];

    for (int i = 0; i < b->nprojects; i++)
        if (strcmp(cv_launch_doc_str(b->projects[i], "_id"), id) == 0)
            return b->projects[i];
    if (cv_mongo_find_id(s->mongo, "projects", id, &doc, why, sizeof(why)) != CV_OK)
        return NULL;
    if (b->nprojects == (int)(sizeof(b->projects) / sizeof(b->projects[0]))) {
        bson_destroy(b->projects[0]);
        memmove(b->projects, b->projects + 1, sizeof(b->projects[0]) * (size_t)(b->nprojects - 1));
        b->nprojects--;
    }
    b->projects[b->nprojects++] = doc;
    return doc;
}

/* The id of a run of the job that has not ended (queued, running,
 * retrying) into active, or "" when there is none. */
static cv_err active_run(cv_scheduler *s, const char *job_id, char *active, size_t len,
                         char *errbuf, size_t errlen) {
    bson_t *filter =
        BCON_NEW("job_id", BCON_UTF8(job_id), "status", "{", "$in", "[", BCON_UTF8("queued"),
                 BCON_UTF8("running"), BCON_UTF8("retrying"), "]", "}");
    bson_t *list = NULL;
    bson_iter_t it, doc;
    cv_err err = cv_mongo_find(s->mongo, CV_COLL_RUNS, filter, NULL, 1, &list, errbuf, errlen);

    active[0] = '\0';
    if (!err && bson_iter_init(&it, list) && bson_iter_next(&it) && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &doc) && bson_iter_find(&doc, "_id") && BSON_ITER_HOLDS_UTF8(&doc))
        snprintf(active, len, "%s", bson_iter_utf8(&doc, NULL));
    bson_destroy(list);
    bson_destroy(filter);
    return err;
}

/* Adds one tick to the batch: its claim (a `ticks` document holding the run
 * record and, for a tick that runs, the job message) and the run record
 * itself: a queued run, or (job NULL) a tick that does not run, with its
 * status and reason. */
static int add_tick(scan_batch *b, const char *job_id, const char *project_id, int64_t tick_ms,
                    int64_t now, cv_job *job, const char *status, const char *reason) {
    ready_run *r;
    bson_t *doc, *claim;

    if (grow((void **)&b->docs, &b->capdocs, b->n + 1, sizeof(*b->docs)) != 0 ||
        grow((void **)&b->claims, &b->capclaims, b->n + 1, sizeof(*b->claims)) != 0 ||
        grow((void **)&b->runs, &b->capruns, b->n + 1, sizeof(*b->runs)) != 0)
        return -1;
    r = &b->runs[b->n];
    memset(r, 0, sizeof(*r));
    cv_scheduler_run_id(job_id, tick_ms, r->run_id);
    snprintf(r->job_id, sizeof(r->job_id), "%s", job_id);
    r->due_ms = tick_ms;
    if (!(doc = bson_new()))
        return -1;
    BSON_APPEND_UTF8(doc, "_id", r->run_id);
    BSON_APPEND_UTF8(doc, "job_id", job_id);
    BSON_APPEND_UTF8(doc, "project_id", project_id);
    BSON_APPEND_UTF8(doc, "trigger", "schedule");
    append_time(doc, "tick_at", tick_ms);
    append_time(doc, "created_at", tick_ms); /* the run history follows the ticks */
    BSON_APPEND_INT32(doc, "attempt", 1);
    if (job) {
        cv_event ev;
        snprintf(job->run_id, sizeof(job->run_id), "%s", r->run_id);
        snprintf(job->trigger, sizeof(job->trigger), "schedule");
        job->tick_ms = tick_ms;
        job->queued_at_ms = tick_ms > now ? tick_ms : now;
        r->message = cv_job_encode(job);
        if (cv_event_init(&ev, CV_EVENT_RUN_QUEUED) == CV_OK) {
            cv_event_from_job(&ev, job);
            ev.time_ms = job->queued_at_ms;
            r->event = cv_event_encode(&ev);
        }
        if (!r->message || !r->event) {
            free_ready(r);
            bson_destroy(doc);
            return -1;
        }
        BSON_APPEND_UTF8(doc, "status", "queued");
        BSON_APPEND_INT32(doc, "max_attempts", job->max_attempts);
        append_time(doc, "queued_at", job->queued_at_ms);
    } else {
        BSON_APPEND_UTF8(doc, "status", status);
        BSON_APPEND_UTF8(doc, "reason", reason);
        append_time(doc, "finished_at", now);
    }
    if (!(claim = bson_new())) {
        free_ready(r);
        bson_destroy(doc);
        return -1;
    }
    BSON_APPEND_UTF8(claim, "_id", r->run_id);
    BSON_APPEND_UTF8(claim, "job_id", job_id);
    append_time(claim, "tick_at", tick_ms);
    append_time(claim, "claimed_at", now);
    BSON_APPEND_BOOL(claim, "published", false);
    BSON_APPEND_DOCUMENT(claim, "record", doc);
    if (r->message)
        BSON_APPEND_UTF8(claim, "message", r->message);
    b->docs[b->n] = doc;
    b->claims[b->n++] = claim;
    return 0;
}

/* Moves the job's cursor from `from` to `to` (-1: no tick left), unless
 * another scheduler moved it first. */
static int add_cursor(scan_batch *b, const char *job_id, const char *from_text, int64_t to,
                      int64_t last_tick) {
    bson_t *filter, *update, set;

    if (grow((void **)&b->filters, &b->capfilters, b->ncursors + 1, sizeof(*b->filters)) != 0 ||
        grow((void **)&b->updates, &b->capupdates, b->ncursors + 1, sizeof(*b->updates)) != 0)
        return -1;
    filter = BCON_NEW("_id", BCON_UTF8(job_id), "schedule.next_run_at", BCON_UTF8(from_text));
    update = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    if (to >= 0)
        append_time(&set, "schedule.next_run_at", to);
    else
        BSON_APPEND_NULL(&set, "schedule.next_run_at");
    if (last_tick >= 0)
        append_time(&set, "schedule.last_tick_at", last_tick);
    bson_append_document_end(update, &set);
    b->filters[b->ncursors] = filter;
    b->updates[b->ncursors++] = update;
    return 0;
}

/* Plans one job's due ticks into the batch. */
static void plan_job(cv_scheduler *s, const bson_t *job_doc, int64_t now, scan_batch *b) {
    int64_t *ticks = s->ticks;
    bool *run = s->run;
    const char *job_id = cv_launch_doc_str(job_doc, "_id");
    const char *project_id = cv_launch_doc_str(job_doc, "project_id");
    char why[512] = "", active[CV_ID_LEN] = "", cursor_text[CV_TIME_RFC3339_LEN];
    const bson_t *project = NULL;
    cJSON *stored = NULL, *sub;
    cv_schedule sched;
    cv_verr verr;
    const cv_tz *tz;
    int64_t anchor, cursor, t;
    int n = 0;
    bool ahead, have_job = false;
    const char *skip_reason = NULL;
    cv_job job;

    memset(&job, 0, sizeof(job));
    if (!job_id || !project_id || !(stored = cv_launch_doc_json(job_doc)))
        goto out;
    sub = cJSON_GetObjectItemCaseSensitive(stored, "schedule");
    if (!cJSON_IsObject(sub) ||
        cv_schedule_from_stored(sub, &sched, &anchor, &cursor, &verr) != CV_OK || cursor < 0) {
        cv_log_warn("job %s: stored schedule unreadable: %s: %s", job_id, verr.field, verr.reason);
        goto out;
    }
    if (!(tz = zone_get(s, sched.timezone, why, sizeof(why)))) {
        cv_log_warn("job %s: %s", job_id, why);
        goto out;
    }
    cv_time_format(cursor, cursor_text, sizeof(cursor_text));
    ahead = strcmp(sched.concurrency, "allow") == 0;
    for (t = cursor; t >= 0 && t <= now && n < MAX_TICKS_PER_JOB;
         t = cv_schedule_next(&sched, tz, anchor, t))
        ticks[n++] = t;
    if (n == 0) {
        /* Nothing due yet: claim the coming tick ahead, unless whether it may
         * run depends on the runs still going when it falls due. */
        if (!ahead || t < 0 || t > now + LOOKAHEAD_MS)
            goto out;
        ticks[n++] = t;
        run[0] = true;
        t = cv_schedule_next(&sched, tz, anchor, t);
    } else {
        cv_scheduler_plan(sched.misfire, sched.misfire_max, ticks, n, now, run);
    }

    if (!ahead) {
        if (active_run(s, job_id, active, sizeof(active), why, sizeof(why)) != CV_OK) {
            cv_log_warn("job %s: %s", job_id, why);
            goto out;
        }
        if (active[0] && strcmp(sched.concurrency, "queue") == 0)
            goto out; /* the ticks wait for the run; the misfire policy applies after */
        if (active[0])
            skip_reason = "concurrency forbid: an earlier run was still going";
    }
    project = project_get(s, b, project_id);
    if (!project) {
        skip_reason = "the job's project no longer exists";
    } else {
        bson_iter_t it;
        if (bson_iter_init_find(&it, project, "active") && BSON_ITER_HOLDS_BOOL(&it) &&
            !bson_iter_bool(&it))
            skip_reason = "the project is not active";
    }
    if (!skip_reason) {
        if (cv_launch_build(job_doc, project, &job, why, sizeof(why)) != CV_OK) {
            cv_log_warn("job %s: %s", job_id, why);
            goto out;
        }
        have_job = true;
    }
    for (int i = 0; i < n; i++) {
        char reason[256];
        int rc;
        if (skip_reason) {
            if (active[0])
                snprintf(reason, sizeof(reason), "%s (run %s)", skip_reason, active);
            else
                snprintf(reason, sizeof(reason), "%s", skip_reason);
            rc = add_tick(b, job_id, project_id, ticks[i], now, NULL, "skipped", reason);
        } else if (run[i]) {
            rc = add_tick(b, job_id, project_id, ticks[i], now, &job, NULL, NULL);
        } else {
            char stand_in[CV_ID_LEN] = "";
            for (int j = n - 1; j > i && !stand_in[0]; j--)
                if (run[j])
                    cv_scheduler_run_id(job_id, ticks[j], stand_in);
            if (stand_in[0])
                snprintf(reason, sizeof(reason),
                         "misfire policy %s: the tick passed unhandled; run %s catches up",
                         sched.misfire, stand_in);
            else
                snprintf(reason, sizeof(reason), "misfire policy %s: the tick passed unhandled",
                         sched.misfire);
            rc = add_tick(b, job_id, project_id, ticks[i], now, NULL, "missed", reason);
        }
        if (rc != 0) {
            cv_log_error("job %s: out of memory planning ticks", job_id);
            goto out;
        }
    }
    if (add_cursor(b, job_id, cursor_text, t, ticks[n - 1]) != 0)
        cv_log_error("job %s: out of memory planning ticks", job_id);
out:
    if (have_job)
        cv_launch_release(&job);
    cJSON_Delete(stored);
}

static void batch_free(scan_batch *b) {
    for (size_t i = 0; i < b->n; i++) {
        bson_destroy(b->claims[i]);
        bson_destroy(b->docs[i]);
        free_ready(&b->runs[i]);
    }
    free(b->claims);
    for (size_t i = 0; i < b->ncursors; i++) {
        bson_destroy(b->filters[i]);
        bson_destroy(b->updates[i]);
    }
    for (int i = 0; i < b->nprojects; i++)
        bson_destroy(b->projects[i]);
    free(b->docs);
    free(b->runs);
    free(b->filters);
    free(b->updates);
}

/* Inserts run records; one that exists already (another scheduler's, or
 * one written before a crash) is left as it is. */
static cv_err insert_records(cv_scheduler *s, const bson_t **records, size_t n, char *errbuf,
                             size_t errlen) {
    bool *dup = calloc(n ? n : 1, sizeof(*dup));
    cv_err err;

    if (!dup)
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    err = cv_mongo_insert_many(s->mongo, CV_COLL_RUNS, records, n, dup, errbuf, errlen);
    free(dup);
    return err;
}

/* Marks claimed ticks as published (their message is on convutell.jobs, or
 * they had none to send). */
static cv_err mark_published(cv_scheduler *s, const char *const *ids, size_t n, char *errbuf,
                             size_t errlen) {
    bson_t filter = BSON_INITIALIZER, idf, in, *update;
    char key[24];
    cv_err err;

    if (n == 0)
        return CV_OK;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &idf);
    BSON_APPEND_ARRAY_BEGIN(&idf, "$in", &in);
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "%zu", i);
        BSON_APPEND_UTF8(&in, key, ids[i]);
    }
    bson_append_array_end(&idf, &in);
    bson_append_document_end(&filter, &idf);
    update = BCON_NEW("$set", "{", "published", BCON_BOOL(true), "}");
    err = cv_mongo_update_many(s->mongo, CV_COLL_TICKS, &filter, update, NULL, errbuf, errlen);
    bson_destroy(&filter);
    bson_destroy(update);
    return err;
}

static cv_err scan(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen) {
    char horizon[CV_TIME_RFC3339_LEN];
    bson_t *filter, *sort, *list = NULL;
    bson_iter_t it;
    scan_batch b;
    bool *dup = NULL;
    const bson_t **records = NULL;
    const char **done = NULL;
    size_t nrecords = 0, ndone = 0;
    cv_err err;

    memset(&b, 0, sizeof(b));
    cv_time_format(now + LOOKAHEAD_MS, horizon, sizeof(horizon));
    filter = BCON_NEW("schedule.next_run_at", "{", "$lte", BCON_UTF8(horizon), "}",
                      "schedule.paused", "{", "$ne", BCON_BOOL(true), "}");
    sort = BCON_NEW("schedule.next_run_at", BCON_INT32(1));
    err = cv_mongo_find(s->mongo, "jobs", filter, sort, MAX_JOBS_PER_SCAN, &list, errbuf, errlen);
    bson_destroy(filter);
    bson_destroy(sort);
    if (err)
        return err;
    if (bson_iter_init(&it, list)) {
        while (bson_iter_next(&it)) {
            const uint8_t *data;
            uint32_t len;
            bson_t job;
            if (!BSON_ITER_HOLDS_DOCUMENT(&it))
                continue;
            bson_iter_document(&it, &len, &data);
            if (bson_init_static(&job, data, len))
                plan_job(s, &job, now, &b);
        }
    }
    bson_destroy(list);
    if (b.n == 0 && b.ncursors == 0)
        goto out;
    dup = calloc(b.n ? b.n : 1, sizeof(*dup));
    records = calloc(b.n ? b.n : 1, sizeof(*records));
    done = calloc(b.n ? b.n : 1, sizeof(*done));
    if (!dup || !records || !done) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* The claim: a tick belongs to the scheduler whose insert of its `ticks`
     * document succeeded. The winners' run records go in next. */
    if ((err = cv_mongo_insert_many(s->mongo, CV_COLL_TICKS, (const bson_t **)b.claims, b.n, dup,
                                    errbuf, errlen)))
        goto out;
    for (size_t i = 0; i < b.n; i++) {
        if (dup[i])
            cv_log_debug("tick of run %s was claimed by another scheduler", b.runs[i].run_id);
        else
            records[nrecords++] = b.docs[i];
    }
    if ((err = insert_records(s, records, nrecords, errbuf, errlen)))
        goto out; /* the claims stay unpublished: the sweep finishes them */
    for (size_t i = 0; i < b.n; i++) {
        ready_run *r = &b.runs[i];
        if (dup[i])
            continue;
        if (!r->message) { /* a missed or skipped tick: its record is all there is */
            done[ndone++] = r->run_id;
            continue;
        }
        if (grow((void **)&s->ready, &s->capready, s->nready + 1, sizeof(*s->ready)) != 0) {
            cv_log_error("run %s: out of memory; left for the unpublished sweep", r->run_id);
            continue;
        }
        s->ready[s->nready++] = *r;
        r->message = r->event = NULL;
    }
    if ((err = mark_published(s, done, ndone, errbuf, errlen)))
        goto out;
    if ((err = cv_mongo_update_each(s->mongo, "jobs", (const bson_t **)b.filters,
                                    (const bson_t **)b.updates, b.ncursors, errbuf, errlen)))
        goto out;
out:
    free(dup);
    free(records);
    free(done);
    batch_free(&b);
    return err;
}

/* ---- publishing ------------------------------------------------------------------ */

/* Publishes every claimed tick that fell due, in one batch. */
static cv_err publish_ready(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen) {
    cv_kafka_out *jobs = NULL, *events = NULL;
    const char **ids = NULL;
    size_t n = 0, nids = 0, kept = 0;
    cv_err err = CV_OK;

    for (size_t i = 0; i < s->nready; i++)
        n += s->ready[i].due_ms <= now;
    if (n == 0)
        return CV_OK;
    jobs = calloc(n, sizeof(*jobs));
    events = calloc(n, sizeof(*events));
    ids = calloc(n, sizeof(*ids));
    if (!jobs || !events || !ids) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0, k = 0; i < s->nready; i++) {
        ready_run *r = &s->ready[i];
        if (r->due_ms > now)
            continue;
        jobs[k] = (cv_kafka_out){.key = r->job_id, .value = r->message, .len = strlen(r->message)};
        events[k] = (cv_kafka_out){.key = r->run_id, .value = r->event, .len = strlen(r->event)};
        k++;
    }
    /* Keyed by job id like the API's runs: one job's runs stay in order. */
    if (cv_kafka_produce_batch(s->producer, CV_TOPIC_JOBS, jobs, n, PUBLISH_TIMEOUT_MS, errbuf,
                               errlen) != CV_OK)
        cv_log_warn("scheduled runs not all published, retrying: %s", errbuf);
    for (size_t i = 0; i < n; i++)
        if (jobs[i].err == CV_OK) {
            events[nids] = events[i];
            ids[nids++] = events[i].key;
        }
    if (cv_kafka_produce_batch(s->producer, CV_TOPIC_EVENTS, events, nids, PUBLISH_TIMEOUT_MS,
                               errbuf, errlen) != CV_OK)
        cv_log_warn("run.queued events not all published: %s", errbuf);
    if (mark_published(s, ids, nids, errbuf, errlen) != CV_OK)
        cv_log_warn("published ticks not marked so (the sweep sends them again, and "
                    "workers run them once): %s",
                    errbuf);
    /* Keep what was not published (or is not due) for the next round. */
    for (size_t i = 0, k = 0; i < s->nready; i++) {
        ready_run *r = &s->ready[i];
        bool sent = false;
        if (r->due_ms <= now)
            sent = jobs[k++].err == CV_OK;
        if (sent) {
            cv_log_debug("run %s of job %s published", r->run_id, r->job_id);
            free_ready(r);
        } else {
            s->ready[kept++] = *r;
        }
    }
    s->nready = kept;
out:
    free(jobs);
    free(events);
    free(ids);
    return err;
}

/* ---- maintenance ------------------------------------------------------------------ */

/* Iterates over the documents of a cv_mongo_find() answer. */
#define FOR_EACH_DOC(list, it, doc)                                                                \
    for (bool ok_ = bson_iter_init(&(it), (list)); ok_ && bson_iter_next(&(it));)                  \
        if (BSON_ITER_HOLDS_DOCUMENT(&(it)) && doc_of(&(it), &(doc)))

static bool doc_of(bson_iter_t *it, bson_t *doc) {
    const uint8_t *data;
    uint32_t len;
    bson_iter_document(it, &len, &data);
    return bson_init_static(doc, data, len);
}

static int doc_int(const bson_t *doc, const char *key, int def) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it))
        return (int)bson_iter_as_int64(&it);
    return def;
}

/* Ticks a scheduler claimed and did not finish (it died in between): their
 * run records go in if missing and their messages out, a few seconds late. */
static cv_err sweep_unpublished(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen) {
    char before[CV_TIME_RFC3339_LEN];
    bson_t *filter, *list = NULL, doc;
    bson_iter_t it;
    cv_kafka_out out[256];
    bson_t records[256];
    const bson_t *recs[256];
    const char *ids[256], *sent[256];
    size_t n = 0, nrecs = 0, nsent = 0;
    cv_err err;

    cv_time_format(now - PENDING_GRACE_MS, before, sizeof(before));
    filter = BCON_NEW("published", BCON_BOOL(false), "tick_at", "{", "$lt", BCON_UTF8(before), "}");
    err = cv_mongo_find(s->mongo, CV_COLL_TICKS, filter, NULL, 256, &list, errbuf, errlen);
    bson_destroy(filter);
    if (err)
        return err;
    FOR_EACH_DOC(list, it, doc) {
        bson_iter_t rec;
        const char *msg = cv_launch_doc_str(&doc, "message");
        if (n == 256 || !cv_launch_doc_str(&doc, "_id"))
            continue;
        if (bson_iter_init_find(&rec, &doc, "record") && BSON_ITER_HOLDS_DOCUMENT(&rec) &&
            doc_of(&rec, &records[nrecs]))
            recs[nrecs] = &records[nrecs], nrecs++;
        out[n].key = cv_launch_doc_str(&doc, "job_id");
        out[n].value = msg;
        out[n].len = msg ? strlen(msg) : 0;
        out[n].err = CV_OK;
        ids[n++] = cv_launch_doc_str(&doc, "_id");
    }
    if (n > 0) {
        size_t nmsg = 0;
        cv_kafka_out msgs[256];
        size_t at[256];
        cv_log_warn("finishing %zu ticks claimed by a scheduler that did not publish them", n);
        if ((err = insert_records(s, recs, nrecs, errbuf, errlen)))
            goto out;
        for (size_t i = 0; i < n; i++) {
            if (out[i].value) {
                at[nmsg] = i;
                msgs[nmsg++] = out[i];
            } else {
                sent[nsent++] = ids[i];
            }
        }
        if (cv_kafka_produce_batch(s->producer, CV_TOPIC_JOBS, msgs, nmsg, PUBLISH_TIMEOUT_MS,
                                   errbuf, errlen) != CV_OK)
            cv_log_warn("%s", errbuf);
        for (size_t i = 0; i < nmsg; i++)
            if (msgs[i].err == CV_OK)
                sent[nsent++] = ids[at[i]];
        err = mark_published(s, sent, nsent, errbuf, errlen);
    }
out:
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
                         PUBLISH_TIMEOUT_MS, why, sizeof(why)) != CV_OK)
        cv_log_warn("run %s: %s event not published: %s", ev->run_id, ev->type, why);
    free(json);
}

/* Puts attempt `attempt` of the run stored as `message` on the retry topic,
 * due at due_ms, and notes on the lease that it was sent. */
static cv_err send_retry(cv_scheduler *s, const char *run_id, const char *message, int attempt,
                         int64_t due_ms, char *errbuf, size_t errlen) {
    cv_job job;
    cv_verr verr;
    char *next;
    bson_t *filter, *update;
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
                               PUBLISH_TIMEOUT_MS, errbuf, errlen);
    free(next);
    cv_job_release(&job);
    if (err)
        return err;
    filter = BCON_NEW("_id", BCON_UTF8(run_id), "attempt", BCON_INT32(attempt - 1), "state",
                      BCON_UTF8("retrying"));
    update = BCON_NEW("$set", "{", "retry_sent", BCON_BOOL(true), "}");
    err = cv_mongo_update(s->mongo, CV_COLL_LEASES, filter, update, false, NULL, errbuf, errlen);
    bson_destroy(filter);
    bson_destroy(update);
    return err;
}

/* The status of a run's record, "" when there is none. */
static void run_status(cv_scheduler *s, const char *run_id, char *out, size_t len) {
    bson_t *doc = NULL;
    char why[256];
    const char *status;

    out[0] = '\0';
    if (cv_mongo_find_id(s->mongo, CV_COLL_RUNS, run_id, &doc, why, sizeof(why)) != CV_OK)
        return;
    status = cv_launch_doc_str(doc, "status");
    snprintf(out, len, "%s", status ? status : "");
    bson_destroy(doc);
}

/* Takes one expired lease back from its worker: closes it if the run ended
 * after all (its worker died while reporting), else retries the run while
 * attempts remain and fails it for good otherwise. */
static void expire_lease(cv_scheduler *s, const bson_t *lease, int64_t now) {
    const char *id = cv_launch_doc_str(lease, "_id");
    const char *expired = cv_launch_doc_str(lease, "expires_at");
    const char *worker = cv_launch_doc_str(lease, "worker");
    const char *msg = cv_launch_doc_str(lease, "message");
    int attempt = doc_int(lease, "attempt", 1), max = doc_int(lease, "max_attempts", 1);
    int backoff = doc_int(lease, "backoff_seconds", 60);
    char why[512], reason[512], status[32];
    bool ended, retry;
    int64_t due = 0, matched = 0;
    bson_t *filter, *update, set;
    cv_event ev;

    if (!id || !expired)
        return;
    run_status(s, id, status, sizeof(status));
    ended = cv_runs_status_is_final(status);
    retry = !ended && attempt < max && msg;
    if (retry)
        due = now + cv_job_retry_delay_ms(backoff, attempt + 1);
    /* Only while the lease is still the one that ran out. */
    filter = BCON_NEW("_id", BCON_UTF8(id), "attempt", BCON_INT32(attempt), "state",
                      BCON_UTF8("held"), "expires_at", BCON_UTF8(expired));
    update = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "state", retry ? "retrying" : "done");
    if (retry) {
        append_time(&set, "next_attempt_at", due);
        BSON_APPEND_BOOL(&set, "retry_sent", false);
    }
    append_time(&set, "released_at", now);
    bson_append_document_end(update, &set);
    if (cv_mongo_update(s->mongo, CV_COLL_LEASES, filter, update, false, &matched, why,
                        sizeof(why)) != CV_OK)
        cv_log_warn("run %s: lease not expired: %s", id, why);
    bson_destroy(filter);
    bson_destroy(update);
    if (matched == 0 || ended)
        return; /* renewed or handled by another scheduler meanwhile, or simply over */

    snprintf(reason, sizeof(reason), "no heartbeat from worker %s; its lease ran out at %s",
             worker ? worker : "?", expired);
    cv_log_warn("run %s attempt %d: %s; %s", id, attempt, reason,
                retry ? "retrying" : "no attempts left, the run failed");
    if (cv_event_init(&ev, retry ? CV_EVENT_RUN_RETRYING : CV_EVENT_RUN_FAILED) == CV_OK) {
        const char *job_id = cv_launch_doc_str(lease, "job_id");
        const char *project_id = cv_launch_doc_str(lease, "project_id");
        snprintf(ev.run_id, sizeof(ev.run_id), "%s", id);
        snprintf(ev.job_id, sizeof(ev.job_id), "%s", job_id ? job_id : "");
        snprintf(ev.project_id, sizeof(ev.project_id), "%s", project_id ? project_id : "");
        ev.attempt = attempt;
        ev.next_attempt_ms = due;
        snprintf(ev.error_code, sizeof(ev.error_code), "lease_expired");
        snprintf(ev.error_message, sizeof(ev.error_message), "%s", reason);
        publish_event(s, &ev);
    }
    if (retry && send_retry(s, id, msg, attempt + 1, due, why, sizeof(why)) != CV_OK)
        cv_log_warn("run %s: retry not sent yet (the next sweep sends it): %s", id, why);
}

static cv_err sweep_leases(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen) {
    char now_text[CV_TIME_RFC3339_LEN], stale[CV_TIME_RFC3339_LEN];
    bson_t *filter, *list = NULL, doc;
    bson_iter_t it;
    cv_err err;

    cv_time_format(now - LEASE_GRACE_MS, now_text, sizeof(now_text));
    filter =
        BCON_NEW("state", BCON_UTF8("held"), "expires_at", "{", "$lt", BCON_UTF8(now_text), "}");
    err = cv_mongo_find(s->mongo, CV_COLL_LEASES, filter, NULL, 100, &list, errbuf, errlen);
    bson_destroy(filter);
    if (err)
        return err;
    FOR_EACH_DOC(list, it, doc)
    expire_lease(s, &doc, now);
    bson_destroy(list);

    /* Retries the lease sweep decided and could not send. */
    cv_time_format(now - UNSENT_RETRY_MS, stale, sizeof(stale));
    filter = BCON_NEW("state", BCON_UTF8("retrying"), "retry_sent", BCON_BOOL(false), "released_at",
                      "{", "$lt", BCON_UTF8(stale), "}");
    err = cv_mongo_find(s->mongo, CV_COLL_LEASES, filter, NULL, 100, &list, errbuf, errlen);
    bson_destroy(filter);
    if (err)
        return err;
    FOR_EACH_DOC(list, it, doc) {
        const char *id = cv_launch_doc_str(&doc, "_id"), *msg = cv_launch_doc_str(&doc, "message");
        char why[512];
        if (id && msg &&
            send_retry(s, id, msg, doc_int(&doc, "attempt", 1) + 1, now, why, sizeof(why)) != CV_OK)
            cv_log_warn("run %s: retry not sent: %s", id, why);
    }
    bson_destroy(list);
    return CV_OK;
}

/* ---- retries held until due -------------------------------------------------------- */

static void note_seen(cv_scheduler *s, const cv_kafka_msg *msg) {
    for (int i = 0; i < s->nparts; i++)
        if (s->parts[i].partition == msg->partition) {
            if (msg->offset + 1 > s->parts[i].next_seen)
                s->parts[i].next_seen = msg->offset + 1;
            return;
        }
    if (s->nparts < MAX_PARTITIONS) {
        s->parts[s->nparts].partition = msg->partition;
        s->parts[s->nparts++].next_seen = msg->offset + 1;
    }
}

static void hold(cv_scheduler *s, cv_kafka_msg *msg) {
    cv_job job;
    cv_verr verr;
    held_retry *h;
    size_t klen = msg->key_len < CV_ID_LEN ? msg->key_len : CV_ID_LEN;

    note_seen(s, msg);
    if (grow((void **)&s->held, &s->capheld, s->nheld + 1, sizeof(*s->held)) != 0) {
        /* Not stored: read again after a restart. */
        cv_log_error("out of memory holding a retry");
        cv_kafka_msg_release(msg);
        return;
    }
    h = &s->held[s->nheld++];
    h->msg = *msg;
    memset(msg, 0, sizeof(*msg));
    h->key[0] = '\0';
    if (h->msg.key) {
        memcpy(h->key, h->msg.key, klen);
        h->key[klen] = '\0';
    }
    /* A message that does not decode goes on at once: the worker dead-letters it. */
    h->due_ms = 0;
    if (cv_job_decode(h->msg.payload ? h->msg.payload : "", h->msg.len, &job, &verr) == CV_OK) {
        h->due_ms = job.not_before_ms;
        cv_job_release(&job);
    }
}

/* Stores, for each partition, the offset of the oldest message still held
 * (or the next one to read when none is held). */
static void store_positions(cv_scheduler *s) {
    char why[256];
    for (int p = 0; p < s->nparts; p++) {
        int64_t pos = s->parts[p].next_seen;
        for (size_t i = 0; i < s->nheld; i++)
            if (s->held[i].msg.partition == s->parts[p].partition && s->held[i].msg.offset < pos)
                pos = s->held[i].msg.offset;
        if (cv_kafka_consumer_store_at(s->retry, CV_TOPIC_RETRY, s->parts[p].partition, pos, why,
                                       sizeof(why)) != CV_OK)
            cv_log_debug("%s", why); /* a partition moved to another scheduler */
    }
}

static void release_due(cv_scheduler *s, int64_t now) {
    cv_kafka_out *out;
    size_t n = 0, kept = 0;
    char why[512];

    for (size_t i = 0; i < s->nheld; i++)
        n += s->held[i].due_ms <= now;
    if (n == 0 || !(out = calloc(n, sizeof(*out))))
        return;
    for (size_t i = 0, k = 0; i < s->nheld; i++)
        if (s->held[i].due_ms <= now)
            out[k++] = (cv_kafka_out){.key = s->held[i].key[0] ? s->held[i].key : NULL,
                                      .value = s->held[i].msg.payload ? s->held[i].msg.payload : "",
                                      .len = s->held[i].msg.len};
    if (cv_kafka_produce_batch(s->producer, CV_TOPIC_JOBS, out, n, PUBLISH_TIMEOUT_MS, why,
                               sizeof(why)) != CV_OK)
        cv_log_warn("retries not all published, trying again: %s", why);
    for (size_t i = 0, k = 0; i < s->nheld; i++) {
        if (s->held[i].due_ms <= now && out[k++].err == CV_OK) {
            cv_log_debug("retry for job %s published", s->held[i].key);
            cv_kafka_msg_release(&s->held[i].msg);
        } else {
            s->held[kept++] = s->held[i];
        }
    }
    s->nheld = kept;
    free(out);
    store_positions(s);
    if (s->retry_paused && s->nheld < HOLD_MAX / 2) {
        cv_kafka_consumer_pause(s->retry, false);
        s->retry_paused = false;
    }
}

/* Waits up to wait_ms in the retry consumer, holding what arrives. */
static void take_retries(cv_scheduler *s, int wait_ms) {
    cv_kafka_msg msg;

    if (cv_kafka_consumer_poll(s->retry, wait_ms, &msg) != CV_OK)
        return;
    hold(s, &msg);
    while (s->nheld < HOLD_MAX && cv_kafka_consumer_poll(s->retry, 0, &msg) == CV_OK)
        hold(s, &msg);
    if (s->nheld >= HOLD_MAX && !s->retry_paused) {
        cv_log_warn("%d retries held; pausing %s until some are due", HOLD_MAX, CV_TOPIC_RETRY);
        cv_kafka_consumer_pause(s->retry, true);
        s->retry_paused = true;
    }
}

/* ---- the loop ------------------------------------------------------------------------ */

cv_err cv_scheduler_run(cv_scheduler *s, volatile sig_atomic_t *stop, char *errbuf, size_t errlen) {
    int64_t next_scan = 0, next_maintain = 0;

    cv_log_info("scheduler started: schedules from MongoDB, retries from %s as group %s",
                CV_TOPIC_RETRY, RETRY_GROUP);
    while (!*stop) {
        int64_t now = cv_time_now_ms(), wake;
        char why[1024];

        if (now >= next_scan) {
            if (scan(s, now, why, sizeof(why)) != CV_OK)
                cv_log_warn("scan: %s", why);
            next_scan = now + SCAN_EVERY_MS;
        }
        now = cv_time_now_ms();
        if (publish_ready(s, now, why, sizeof(why)) != CV_OK)
            cv_log_warn("publish: %s", why);
        if (now >= next_maintain) {
            if (sweep_unpublished(s, now, why, sizeof(why)) != CV_OK)
                cv_log_warn("unpublished sweep: %s", why);
            if (sweep_leases(s, now, why, sizeof(why)) != CV_OK)
                cv_log_warn("lease sweep: %s", why);
            next_maintain = now + MAINTAIN_EVERY_MS;
        }
        release_due(s, now);

        wake = next_scan < next_maintain ? next_scan : next_maintain;
        for (size_t i = 0; i < s->nready; i++)
            if (s->ready[i].due_ms < wake)
                wake = s->ready[i].due_ms;
        for (size_t i = 0; i < s->nheld; i++)
            if (s->held[i].due_ms < wake)
                wake = s->held[i].due_ms;
        wake -= cv_time_now_ms();
        take_retries(s, wake <= 0 ? 0 : wake > SCAN_EVERY_MS ? SCAN_EVERY_MS : (int)wake);
    }
    (void)errbuf;
    (void)errlen;
    return CV_OK;
}
