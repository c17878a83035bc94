/*
 * cv_scheduler.c - ticks into runs, retries held until due, expired leases
 * taken back. See cv_scheduler.h for the guarantees; this file is one loop:
 *
 *   load      every second: the scheduled jobs are read into memory, each
 *             with its cursor (the next tick not yet handled);
 *   scan      every 100 ms, in memory: schedules whose next tick is within the
 *             lookahead are planned, their ticks claimed (claims and run
 *             records inserted) and the cursors moved on;
 *   publish   claimed ticks that fell due go to convutell.jobs in one batch;
 *   maintain  every second: this scheduler's heartbeat (with its cursors
 *             every 5 s), ticks claimed by a scheduler that died, expired
 *             leases, retries decided but not sent; and in the gaps, one
 *             ended schedule at a time is written to its job;
 *   retries   messages from convutell.jobs.retry are held until their
 *             not_before and then published to convutell.jobs.
 *
 * Between these the loop waits in the retry consumer's poll, which is what
 * keeps it in its consumer group.
 *
 * The steady state writes nothing but inserts (claims and run records): on
 * FerretDB's SQLite backend an update or a range query reads the whole
 * collection, so per-tick updates (cursors, "published" flags) made 100
 * schedules fall behind. Database work that is not a claim waits for a gap
 * of SLACK_MS before the next due tick, so it does not delay publishing.
 */
#include "cv_scheduler.h"

#include "cv_deadletter.h"
#include "cv_kafka.h"
#include "cv_launch.h"
#include "cv_lease.h"
#include "cv_log.h"
#include "cv_pruner.h"
#include "cv_retain.h"
#include "cv_message.h"
#include "cv_mongo.h"
#include "cv_runs.h"
#include "cv_schedule.h"
#include "cv_time.h"
#include "cv_tz.h"

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOOKAHEAD_MS 500       /* ticks are claimed this long before they fall due */
#define SCAN_EVERY_MS 100      /* how often the schedules are looked at */
#define LOAD_EVERY_MS 1000     /* how often the scheduled jobs are read */
#define MAINTAIN_EVERY_MS 1000 /* heartbeat, dead schedulers, leases, unsent retries */
#define SLACK_MS 250           /* other database work only this long before a due tick */
#define OVERDUE_MS 5000        /* ... unless it has waited this long */
#define CURSORS_EVERY_MS 5000  /* the cursors go into the heartbeat document this often */
#define STALE_MS 10000         /* a scheduler without a heartbeat this long is dead */
#define RECOVER_BACK_MS 10000  /* its claims this long before its last beat are sent again */
#define UNSENT_RETRY_MS 30000  /* a retry decided this long ago and not sent is sent again */
/* A lease is taken back this long after it ran out: when its worker died, Kafka
 * redelivers the message to another worker within its session timeout (6 s),
 * which resumes the same attempt; the scheduler steps in when nobody does (the
 * worker hangs, or lost MongoDB but not Kafka). */
#define LEASE_GRACE_MS 15000
#define MAX_TICKS_PER_JOB 1000 /* per scan; more missed ticks are recorded in later scans */
#define HOLD_MAX 10000         /* retries held in memory before the topic is paused */
#define PUBLISH_TIMEOUT_MS 30000
#define RETRY_GROUP "convutell-scheduler"
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

/* A scheduled job as last loaded, with its cursor. */
typedef struct sched_entry {
    char job_id[CV_ID_LEN];
    bson_t *doc;             /* owned: the job document */
    char version[CV_ID_LEN]; /* the schedule's timing version (new when it changes) */
    int64_t cursor_ms;       /* the next tick not yet handled; -1: none left */
    int64_t last_tick_ms;    /* the last tick handled; -1: none */
    bool end_written;        /* cursor_ms is -1 and the job says so too */
    bool seen;               /* in the latest load */
    bool fresh;              /* new in this load: saved cursors to apply */
} sched_entry;

/* A cursor to move once the scan's claims are in. */
typedef struct cursor_move {
    size_t entry;
    int64_t to_ms, last_tick_ms;
} cursor_move;

/* Everything one scan claims, inserted and moved on in batches. */
typedef struct scan_batch {
    bson_t **claims; /* `ticks` documents */
    bson_t **docs;   /* run records; docs[i] belongs to claims[i] */
    ready_run *runs; /* and runs[i]; message NULL for missed ticks */
    size_t n, capclaims, capdocs, capruns;
    cursor_move *moves;
    size_t nmoves, capmoves;
    bson_t *projects[64]; /* projects loaded during this scan */
    int nprojects;
} scan_batch;

struct cv_scheduler {
    cv_config cfg;
    char instance[CV_ID_LEN];               /* this process, in claims and heartbeats */
    char lease_cursor[CV_LEASE_CURSOR_LEN]; /* the lease sweep's place among running runs */
    sched_entry *entries;
    size_t nentries, capentries;
    int64_t cursors_saved_at; /* when the cursors last went into the heartbeat */
    bool legacy_flagged;      /* flag_legacy_schedules() has run */
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
    for (size_t i = 0; i < s->nentries; i++)
        bson_destroy(s->entries[i].doc);
    free(s->entries);
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
        if (strcmp(cv_mongo_doc_str(b->projects[i], "_id"), id) == 0)
            return b->projects[i];
    if (cv_mongo_find_id(s->mongo, CV_COLL_PROJECTS, id, &doc, why, sizeof(why)) != CV_OK)
        return NULL;
    if (b->nprojects == (int)(sizeof(b->projects) / sizeof(b->projects[0]))) {
        bson_destroy(b->projects[0]);
        memmove(b->projects, b->projects + 1, sizeof(b->projects[0]) * (size_t)(b->nprojects - 1));
        b->nprojects--;
    }
    b->projects[b->nprojects++] = doc;
    return doc;
}

/* Adds one tick to the batch: its claim (a `ticks` document holding the run
 * record and, for a tick that runs, the job message) and the run record
 * itself: a queued run, or (job NULL) a tick that does not run, with its
 * status and reason. */
static int add_tick(cv_scheduler *s, scan_batch *b, const char *job_id, const char *project_id,
                    int64_t tick_ms, int64_t now, cv_job *job, cv_run_status status,
                    const char *reason) {
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
    if (job) {
        snprintf(job->run_id, sizeof(job->run_id), "%s", r->run_id);
        snprintf(job->trigger, sizeof(job->trigger), "schedule");
        job->tick_ms = tick_ms;
        job->queued_at_ms = tick_ms > now ? tick_ms : now;
        r->message = cv_job_encode(job);
    }
    if (job) {
        cv_event ev;
        if (cv_event_init(&ev, CV_EVENT_RUN_QUEUED) == CV_OK) {
            cv_event_from_job(&ev, job);
            ev.time_ms = job->queued_at_ms;
            r->event = cv_event_encode(&ev);
        }
        if (!r->message || !r->event) {
            free_ready(r);
            return -1;
        }
    }
    doc =
        cv_runs_tick_record(r->run_id, job_id, project_id, tick_ms, status,
                            job ? job->max_attempts : 0, job ? job->queued_at_ms : 0, reason, now);
    if (!doc) {
        free_ready(r);
        return -1;
    }
    if (!(claim = bson_new())) {
        free_ready(r);
        bson_destroy(doc);
        return -1;
    }
    BSON_APPEND_UTF8(claim, "_id", r->run_id);
    BSON_APPEND_UTF8(claim, "job_id", job_id);
    cv_mongo_append_time(claim, "tick_at", tick_ms);
    BSON_APPEND_INT64(claim, "tick_ms", tick_ms);
    cv_retain_append_day(claim, tick_ms);
    cv_mongo_append_time(claim, "claimed_at", now);
    BSON_APPEND_UTF8(claim, "claimer", s->instance);
    BSON_APPEND_DOCUMENT(claim, "record", doc);
    if (r->message)
        BSON_APPEND_UTF8(claim, "message", r->message);
    b->docs[b->n] = doc;
    b->claims[b->n++] = claim;
    return 0;
}

/* Moves entry `ei`'s cursor to `to` (-1: no tick left) once the claims are in. */
static int add_move(scan_batch *b, size_t ei, int64_t to, int64_t last_tick) {
    if (grow((void **)&b->moves, &b->capmoves, b->nmoves + 1, sizeof(*b->moves)) != 0)
        return -1;
    b->moves[b->nmoves++] = (cursor_move){.entry = ei, .to_ms = to, .last_tick_ms = last_tick};
    return 0;
}

/* Stops a schedule the scheduler cannot read (edited in the database by hand,
 * or naming a zone this machine lacks): no next tick, and the reason stored
 * with it, so it is reported once instead of on every scan. PUT sets it again. */
static void stop_schedule(cv_scheduler *s, sched_entry *e, const char *reason) {
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(e->job_id));
    bson_t *update = BCON_NEW("$set", "{", "schedule.next_run_at", BCON_NULL, "schedule.error",
                              BCON_UTF8(reason), CV_SCHEDULE_F_LIVE, BCON_BOOL(false), "}");
    char why[256];

    cv_log_warn("job %s: %s; the schedule is stopped until it is set again", e->job_id, reason);
    e->cursor_ms = -1;
    e->end_written = cv_mongo_update(s->mongo, CV_COLL_JOBS, filter, update, false, NULL, why,
                                     sizeof(why)) == CV_OK; /* else write_ends() ends it */
    bson_destroy(filter);
    bson_destroy(update);
}

/* Plans the due ticks of entry `ei` into the batch. */
static void plan_job(cv_scheduler *s, size_t ei, int64_t now, scan_batch *b) {
    sched_entry *e = &s->entries[ei];
    const bson_t *job_doc = e->doc;
    int64_t *ticks = s->ticks;
    bool *run = s->run;
    const char *job_id = e->job_id;
    const char *project_id = cv_mongo_doc_str(job_doc, "project_id");
    char why[512] = "", active[CV_ID_LEN] = "";
    const bson_t *project = NULL;
    cJSON *stored = NULL, *sub;
    cv_schedule sched;
    cv_verr verr;
    const cv_tz *tz;
    int64_t anchor, stored_cursor, cursor = e->cursor_ms, t;
    int n = 0;
    bool ahead, have_job = false;
    const char *skip_reason = NULL;
    cv_job job;

    memset(&job, 0, sizeof(job));
    if (cursor < 0 || !project_id || !(stored = cv_launch_doc_json(job_doc)))
        goto out;
    sub = cJSON_GetObjectItemCaseSensitive(stored, "schedule");
    if (!cJSON_IsObject(sub)) {
        stop_schedule(s, e, "stored schedule unreadable: schedule: is not an object");
        goto out;
    }
    if (cv_schedule_from_stored(sub, &sched, &anchor, &stored_cursor, &verr) != CV_OK) {
        snprintf(why, sizeof(why), "stored schedule unreadable: %s: %s", verr.field, verr.reason);
        stop_schedule(s, e, why);
        goto out;
    }
    if (!(tz = zone_get(s, sched.timezone, why, sizeof(why)))) {
        stop_schedule(s, e, why);
        goto out;
    }
    if (sched.paused)
        goto out; /* its ticks wait; on resuming the misfire policy applies to them */
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
        if (cv_runs_active_of_job(s->mongo, job_id, active, sizeof(active), why, sizeof(why)) !=
            CV_OK) {
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
            rc = add_tick(s, b, job_id, project_id, ticks[i], now, NULL, CV_RUN_SKIPPED, reason);
        } else if (run[i]) {
            rc = add_tick(s, b, job_id, project_id, ticks[i], now, &job, CV_RUN_QUEUED, NULL);
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
            rc = add_tick(s, b, job_id, project_id, ticks[i], now, NULL, CV_RUN_MISSED, reason);
        }
        if (rc != 0) {
            cv_log_error("job %s: out of memory planning ticks", job_id);
            goto out;
        }
    }
    if (add_move(b, ei, t, ticks[n - 1]) != 0)
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
    free(b->moves);
    for (int i = 0; i < b->nprojects; i++)
        bson_destroy(b->projects[i]);
    free(b->docs);
    free(b->runs);
}

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

/* Moves the cursors of schedules new to this process to where any scheduler
 * (this one before a restart, or another) got, as saved in the heartbeat
 * documents: a saved cursor of the same timing version counts if it is
 * further on than the job's. */
static cv_err apply_saved_cursors(cv_scheduler *s, char *errbuf, size_t errlen) {
    bson_t *filter = bson_new(), *list = NULL, doc;
    bson_iter_t it;
    cv_err err =
        cv_mongo_find(s->mongo, CV_COLL_SCHEDULERS, filter, NULL, 0, &list, errbuf, errlen);

    bson_destroy(filter);
    if (err)
        return err;
    FOR_EACH_DOC(list, it, doc) {
        for (size_t i = 0; i < s->nentries; i++) {
            sched_entry *e = &s->entries[i];
            char path[64];
            bson_iter_t c, n;
            const char *v;
            if (!e->fresh)
                continue;
            snprintf(path, sizeof(path), "cursors.%s.v", e->job_id);
            v = cv_mongo_doc_str(&doc, path);
            if (!v || strcmp(v, e->version) != 0)
                continue;
            snprintf(path, sizeof(path), "cursors.%s.n", e->job_id);
            if (!bson_iter_init(&c, &doc) || !bson_iter_find_descendant(&c, path, &n) ||
                !BSON_ITER_HOLDS_NUMBER(&n))
                continue;
            if (bson_iter_as_int64(&n) < 0)
                e->cursor_ms = -1; /* ended */
            else if (e->cursor_ms >= 0 && bson_iter_as_int64(&n) > e->cursor_ms)
                e->cursor_ms = bson_iter_as_int64(&n);
        }
    }
    bson_destroy(list);
    for (size_t i = 0; i < s->nentries; i++)
        s->entries[i].fresh = false;
    return CV_OK;
}

/* Flags the schedules an earlier version stored (without CV_SCHEDULE_F_LIVE). Once per process,
 * before its first load: the look-up reads every job. */
static cv_err flag_legacy_schedules(cv_scheduler *s, char *errbuf, size_t errlen) {
    bson_t *filter = BCON_NEW("schedule.next_run_at", "{", "$ne", BCON_NULL, "}",
                              CV_SCHEDULE_F_LIVE, "{", "$exists", BCON_BOOL(false), "}");
    bson_t *list = NULL, doc;
    bson_t *update = BCON_NEW("$set", "{", CV_SCHEDULE_F_LIVE, BCON_BOOL(true), "}");
    bson_iter_t it;
    cv_err err = cv_mongo_find(s->mongo, CV_COLL_JOBS, filter, NULL, 0, &list, errbuf, errlen);

    if (!err)
        FOR_EACH_DOC(list, it, doc) {
            const char *id = cv_mongo_doc_str(&doc, "_id");
            bson_t by_id = BSON_INITIALIZER;
            if (err || !id)
                continue;
            cv_mongo_filter_id(&by_id, id, filter); /* unless the API set it meanwhile */
            err = cv_mongo_update(s->mongo, CV_COLL_JOBS, &by_id, update, false, NULL, errbuf,
                                  errlen);
            bson_destroy(&by_id);
            if (!err)
                cv_log_info("job %s: a schedule stored by an earlier version, now flagged", id);
        }
    bson_destroy(list);
    bson_destroy(update);
    bson_destroy(filter);
    return err;
}

/* Takes the scheduled jobs from MongoDB into memory. A job seen before keeps
 * its cursor where this process has got to, unless its timing was changed (a
 * new version): then the stored cursor counts. A job new to this process
 * starts from the furthest saved cursor. Jobs no longer scheduled (deleted,
 * ended, stopped) leave memory; paused ones stay, with their cursor. */
static cv_err load_schedules(cv_scheduler *s, char *errbuf, size_t errlen) {
    bson_t *filter, *list = NULL, doc;
    bson_iter_t it;
    size_t kept = 0, fresh = 0;
    cv_err err;

    if (!s->legacy_flagged) {
        if ((err = flag_legacy_schedules(s, errbuf, errlen)))
            return err;
        s->legacy_flagged = true;
    }
    filter = BCON_NEW(CV_SCHEDULE_F_LIVE, BCON_BOOL(true));
    err = cv_mongo_find(s->mongo, CV_COLL_JOBS, filter, NULL, 0, &list, errbuf, errlen);
    bson_destroy(filter);
    if (err)
        return err;
    for (size_t i = 0; i < s->nentries; i++)
        s->entries[i].seen = false;
    FOR_EACH_DOC(list, it, doc) {
        const char *id = cv_mongo_doc_str(&doc, "_id");
        const char *next = cv_mongo_doc_str(&doc, "schedule.next_run_at");
        const char *version = cv_mongo_doc_str(&doc, "schedule.version");
        int64_t stored;
        sched_entry *e = NULL;
        bson_t *copy;

        if (!id || strlen(id) >= CV_ID_LEN || !next || cv_time_parse(next, &stored) != 0)
            continue; /* planning reports an unreadable schedule; this one has no cursor */
        if (!version)
            version = "";
        for (size_t i = 0; i < s->nentries && !e; i++)
            if (strcmp(s->entries[i].job_id, id) == 0)
                e = &s->entries[i];
        if (!(copy = bson_copy(&doc)))
            continue;
        if (!e) {
            if (grow((void **)&s->entries, &s->capentries, s->nentries + 1, sizeof(*s->entries)) !=
                0) {
                bson_destroy(copy);
                continue;
            }
            e = &s->entries[s->nentries++];
            memset(e, 0, sizeof(*e));
            snprintf(e->job_id, sizeof(e->job_id), "%s", id);
            e->cursor_ms = stored;
            e->last_tick_ms = -1;
            e->fresh = true;
        } else if (strcmp(e->version, version) != 0) {
            e->cursor_ms = stored; /* new timing: its own cursor */
            e->last_tick_ms = -1;
            e->end_written = false;
        }
        snprintf(e->version, sizeof(e->version), "%s", version);
        bson_destroy(e->doc);
        e->doc = copy;
        e->seen = true;
    }
    bson_destroy(list);
    for (size_t i = 0; i < s->nentries; i++) {
        if (s->entries[i].seen)
            s->entries[kept++] = s->entries[i];
        else
            bson_destroy(s->entries[i].doc);
    }
    s->nentries = kept;
    for (size_t i = 0; i < s->nentries; i++)
        fresh += s->entries[i].fresh; /* also those a failed read left fresh */
    return fresh ? apply_saved_cursors(s, errbuf, errlen) : CV_OK;
}

static cv_err scan(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen) {
    scan_batch b;
    bool *dup = NULL;
    const bson_t **records = NULL;
    size_t nrecords = 0;
    cv_err err = CV_OK;

    memset(&b, 0, sizeof(b));
    for (size_t i = 0; i < s->nentries; i++)
        if (s->entries[i].cursor_ms >= 0 && s->entries[i].cursor_ms <= now + LOOKAHEAD_MS)
            plan_job(s, i, now, &b);
    if (b.n == 0 && b.nmoves == 0)
        goto out;
    dup = calloc(b.n ? b.n : 1, sizeof(*dup));
    records = calloc(b.n ? b.n : 1, sizeof(*records));
    if (!dup || !records) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* The claim: a tick belongs to the scheduler whose insert of its `ticks`
     * document succeeded. The winners' run records go in next. */
    if ((err = cv_mongo_insert_many(s->mongo, CV_COLL_TICKS, (const bson_t **)b.claims, b.n, dup,
                                    errbuf, errlen)))
        goto out; /* cursors stay: the next scan claims the same ticks */
    for (size_t i = 0; i < b.n; i++) {
        if (dup[i])
            cv_log_debug("tick of run %s was claimed by another scheduler", b.runs[i].run_id);
        else
            records[nrecords++] = b.docs[i];
    }
    if ((err = cv_runs_insert_records(s->mongo, records, nrecords, errbuf, errlen)))
        goto out; /* the claims stand; a scheduler finishing dead ones would send them */
    for (size_t i = 0; i < b.n; i++) {
        ready_run *r = &b.runs[i];
        if (dup[i] || !r->message) /* another's, or a missed or skipped tick */
            continue;
        if (grow((void **)&s->ready, &s->capready, s->nready + 1, sizeof(*s->ready)) != 0) {
            cv_log_error("run %s: out of memory; its claim is not published", r->run_id);
            continue;
        }
        s->ready[s->nready++] = *r;
        r->message = r->event = NULL;
    }
    for (size_t i = 0; i < b.nmoves; i++) {
        sched_entry *e = &s->entries[b.moves[i].entry];
        e->cursor_ms = b.moves[i].to_ms; /* -1: ended; written to the job by write_ends() */
        e->last_tick_ms = b.moves[i].last_tick_ms;
    }
out:
    free(dup);
    free(records);
    batch_free(&b);
    return err;
}

/* Writes the end of one ended schedule to its job (next_run_at null), so
 * that loading leaves it out. One per call: on FerretDB an update of a job
 * reads the whole collection. */
static cv_err write_ends(cv_scheduler *s, char *errbuf, size_t errlen) {
    sched_entry *e = NULL;
    bson_t *filter, *update, set;
    cv_err err;

    for (size_t i = 0; i < s->nentries && !e; i++)
        if (s->entries[i].cursor_ms < 0 && !s->entries[i].end_written)
            e = &s->entries[i];
    if (!e)
        return CV_OK;
    /* Only onto the same timing version: not onto a schedule set again meanwhile. */
    filter = BCON_NEW("_id", BCON_UTF8(e->job_id));
    if (e->version[0])
        BSON_APPEND_UTF8(filter, "schedule.version", e->version);
    update = bson_new();
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_NULL(&set, "schedule.next_run_at");
    BSON_APPEND_BOOL(&set, CV_SCHEDULE_F_LIVE, false);
    if (e->last_tick_ms >= 0)
        cv_mongo_append_time(&set, "schedule.last_tick_at", e->last_tick_ms);
    bson_append_document_end(update, &set);
    err = cv_mongo_update(s->mongo, CV_COLL_JOBS, filter, update, false, NULL, errbuf, errlen);
    if (!err)
        e->end_written = true;
    bson_destroy(filter);
    bson_destroy(update);
    return err;
}

/* ---- publishing ------------------------------------------------------------------ */

/* Publishes every claimed tick that fell due, in one batch. */
static cv_err publish_ready(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen) {
    cv_kafka_out *jobs = NULL, *events = NULL;
    size_t n = 0, nids = 0, kept = 0;
    cv_err err = CV_OK;

    for (size_t i = 0; i < s->nready; i++)
        n += s->ready[i].due_ms <= now;
    if (n == 0)
        return CV_OK;
    jobs = calloc(n, sizeof(*jobs));
    events = calloc(n, sizeof(*events));
    if (!jobs || !events) {
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
        if (jobs[i].err == CV_OK)
            events[nids++] = events[i];
    if (cv_kafka_produce_batch(s->producer, CV_TOPIC_EVENTS, events, nids, PUBLISH_TIMEOUT_MS,
                               errbuf, errlen) != CV_OK)
        cv_log_warn("run.queued events not all published: %s", errbuf);
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
    return err;
}

/* ---- maintenance ------------------------------------------------------------------ */

/* Records this scheduler's heartbeat and, every CURSORS_EVERY_MS, its
 * cursors: one small document however many schedules there are, where a
 * restarted scheduler (or one that is new) finds them. */
static cv_err heartbeat(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen) {
    char at[CV_TIME_RFC3339_LEN];
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(s->instance)), *update = bson_new(), set, all, one;
    bool cursors = now - s->cursors_saved_at >= CURSORS_EVERY_MS;
    cv_err err;

    cv_time_format(now, at, sizeof(at));
    BSON_APPEND_DOCUMENT_BEGIN(update, "$set", &set);
    BSON_APPEND_UTF8(&set, "beat_at", at);
    BSON_APPEND_INT64(&set, "beat_ms", now);
    if (cursors) {
        BSON_APPEND_DOCUMENT_BEGIN(&set, "cursors", &all);
        for (size_t i = 0; i < s->nentries; i++) {
            BSON_APPEND_DOCUMENT_BEGIN(&all, s->entries[i].job_id, &one);
            BSON_APPEND_UTF8(&one, "v", s->entries[i].version);
            BSON_APPEND_INT64(&one, "n", s->entries[i].cursor_ms);
            bson_append_document_end(&all, &one);
        }
        bson_append_document_end(&set, &all);
    }
    bson_append_document_end(update, &set);
    err = cv_mongo_update(s->mongo, CV_COLL_SCHEDULERS, filter, update, true, NULL, errbuf, errlen);
    if (!err && cursors)
        s->cursors_saved_at = now;
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
    FOR_EACH_DOC(list, it, doc)
    n++;
    records = calloc(n ? n : 1, sizeof(*records));
    recs = calloc(n ? n : 1, sizeof(*recs));
    msgs = calloc(n ? n : 1, sizeof(*msgs));
    if (!records || !recs || !msgs) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    FOR_EACH_DOC(list, it, doc) {
        bson_iter_t rec;
        const char *msg = cv_mongo_doc_str(&doc, "message");
        if (bson_iter_init_find(&rec, &doc, "record") && BSON_ITER_HOLDS_DOCUMENT(&rec) &&
            doc_of(&rec, &records[nrecs]))
            recs[nrecs] = &records[nrecs], nrecs++;
        if (msg)
            msgs[nmsgs++] = (cv_kafka_out){
                .key = cv_mongo_doc_str(&doc, "job_id"), .value = msg, .len = strlen(msg)};
    }
    if (n > 0)
        cv_log_warn("scheduler %s stopped; sending its %zu latest claimed ticks again", dead, n);
    if ((err = cv_runs_insert_records(s->mongo, recs, nrecs, errbuf, errlen)))
        goto out;
    err = cv_kafka_produce_batch(s->producer, CV_TOPIC_JOBS, msgs, nmsgs, PUBLISH_TIMEOUT_MS,
                                 errbuf, errlen);
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
static cv_err sweep_schedulers(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen) {
    bson_t *filter = BCON_NEW("beat_ms", "{", "$lt", BCON_INT64(now - STALE_MS), "}", "recovered",
                              "{", "$ne", BCON_BOOL(true), "}");
    bson_t *list = NULL, doc;
    bson_iter_t it;
    cv_err err =
        cv_mongo_find(s->mongo, CV_COLL_SCHEDULERS, filter, NULL, 16, &list, errbuf, errlen);

    bson_destroy(filter);
    if (err)
        return err;
    FOR_EACH_DOC(list, it, doc) {
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
    return cv_lease_retry_sent(s->mongo, run_id, attempt, errbuf, errlen);
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
    if (retry && send_retry(s, id, msg, attempt + 1, due, why, sizeof(why)) != CV_OK)
        cv_log_warn("run %s: retry not sent yet (the next sweep sends it): %s", id, why);
}

static cv_err sweep_leases(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen) {
    bson_t *list = NULL, doc;
    bson_iter_t it;
    cv_err err = cv_lease_find_expired(s->mongo, now - LEASE_GRACE_MS, 100, s->lease_cursor, &list,
                                       errbuf, errlen);

    if (err)
        return err;
    FOR_EACH_DOC(list, it, doc)
    expire_lease(s, &doc, now);
    bson_destroy(list);

    /* Retries the lease sweep decided and could not send. */
    if ((err = cv_lease_find_unsent(s->mongo, now - UNSENT_RETRY_MS, 100, &list, errbuf, errlen)))
        return err;
    FOR_EACH_DOC(list, it, doc) {
        const char *id = cv_mongo_doc_str(&doc, "_id"), *msg = cv_mongo_doc_str(&doc, "message");
        char why[512];
        if (id && msg &&
            send_retry(s, id, msg, (int)cv_mongo_doc_int(&doc, "attempt", 1) + 1, now, why,
                       sizeof(why)) != CV_OK)
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
    h->due_ms = 0;
    if (cv_job_decode(h->msg.payload ? h->msg.payload : "", h->msg.len, &job, &verr) == CV_OK) {
        h->due_ms = job.not_before_ms;
        cv_job_release(&job);
    } else if (dead_letter(s, &h->msg, &verr)) {
        cv_kafka_msg_release(&h->msg);
        s->nheld--;
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

/* How long until the next claimed tick falls due (INT64_MAX: none). */
static int64_t slack(const cv_scheduler *s, int64_t now) {
    int64_t first = INT64_MAX;
    for (size_t i = 0; i < s->nready; i++)
        if (s->ready[i].due_ms < first)
            first = s->ready[i].due_ms;
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
            if (load_schedules(s, why, sizeof(why)) != CV_OK)
                cv_log_warn("loading schedules: %s", why);
            next_load = now + LOAD_EVERY_MS;
        }
        now = cv_time_now_ms();
        if (now >= next_scan) {
            if (scan(s, now, why, sizeof(why)) != CV_OK)
                cv_log_warn("scan: %s", why);
            next_scan = now + SCAN_EVERY_MS;
        }
        now = cv_time_now_ms();
        if (publish_ready(s, now, why, sizeof(why)) != CV_OK)
            cv_log_warn("publish: %s", why);
        release_due(s, now);
        now = cv_time_now_ms();
        if (may_work(s, next_maintain, now)) {
            if (heartbeat(s, now, why, sizeof(why)) != CV_OK)
                cv_log_warn("heartbeat: %s", why);
            if (sweep_schedulers(s, now, why, sizeof(why)) != CV_OK)
                cv_log_warn("stopped schedulers: %s", why);
            if (sweep_leases(s, now, why, sizeof(why)) != CV_OK)
                cv_log_warn("lease sweep: %s", why);
            next_maintain = now + MAINTAIN_EVERY_MS;
        }
        now = cv_time_now_ms();
        if (slack(s, now) > SLACK_MS && write_ends(s, why, sizeof(why)) != CV_OK)
            cv_log_warn("writing the end of a schedule: %s", why);

        wake = next_scan;
        for (size_t i = 0; i < s->nready; i++)
            if (s->ready[i].due_ms < wake)
                wake = s->ready[i].due_ms;
        for (size_t i = 0; i < s->nheld; i++)
            if (s->held[i].due_ms < wake)
                wake = s->held[i].due_ms;
        wake -= cv_time_now_ms();
        take_retries(s, wake <= 0 ? 0 : wake > SCAN_EVERY_MS ? SCAN_EVERY_MS : (int)wake);
    }
    cv_pruner_destroy(pruner);
    return CV_OK;
}
