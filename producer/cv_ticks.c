/*
 * cv_ticks.c - the scheduler's ticks: schedules loaded from the store, their
 * due ticks planned by the misfire and concurrency policies, claimed (one
 * scheduler wins each tick) with their run records, and published when due.
 * See cv_ticks.h.
 *
 * The steady state writes nothing but inserts (claims and run records): on
 * FerretDB an update or a range query reads the whole collection, so per-tick
 * updates (cursors, "published" flags) made 100 schedules fall behind.
 */
#include "cv_scheduler_int.h"

#include "cv_array.h"
#include "cv_launch.h"
#include "cv_log.h"
#include "cv_retain.h"
#include "cv_runs.h"
#include "cv_schedule.h"
#include "cv_store.h"
#include "cv_time.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define LOOKAHEAD_MS 500       /* ticks are claimed this long before they fall due */
#define MAX_TICKS_PER_JOB 1000 /* per scan; more missed ticks are recorded in later scans */

/* A cursor to move once the scan's claims are in. */
typedef struct cursor_move {
    size_t entry;
    int64_t to_ms, last_tick_ms;
} cursor_move;

/* Everything one scan claims, inserted and moved on in batches: the scan's
 * scratch, on its stack. */
typedef struct scan_batch {
    bson_t **claims;    /* `ticks` documents */
    bson_t **docs;      /* run records; docs[i] belongs to claims[i] */
    cv_ready_run *runs; /* and runs[i]; message NULL for missed ticks */
    size_t n, capclaims, capdocs, capruns;
    cursor_move *moves;
    size_t nmoves, capmoves;
    bson_t *projects[64]; /* projects loaded during this scan */
    int nprojects;
    int64_t ticks[MAX_TICKS_PER_JOB]; /* one job's due ticks */
    bool run[MAX_TICKS_PER_JOB];      /* which of them run */
} scan_batch;

static void ready_free(cv_ready_run *r) {
    free(r->message);
    free(r->event);
    r->message = r->event = NULL;
}

/* Zones are read once per process. */
static const cv_tz *zone_get(cv_ticks *t, const char *name, char *errbuf, size_t errlen) {
    cv_tz *tz;

    for (int i = 0; i < t->nzones; i++)
        if (strcmp(t->zones[i].name, name) == 0)
            return t->zones[i].tz;
    if (!(tz = cv_tz_load(name, errbuf, errlen)))
        return NULL;
    if (t->nzones == CV_TICKS_MAX_ZONES) {
        cv_tz_destroy(t->zones[0].tz);
        memmove(t->zones, t->zones + 1, sizeof(t->zones[0]) * (CV_TICKS_MAX_ZONES - 1));
        t->nzones--;
    }
    snprintf(t->zones[t->nzones].name, sizeof(t->zones[0].name), "%s", name);
    t->zones[t->nzones++].tz = tz;
    return tz;
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
    cv_ready_run *r;
    bson_t *doc, *claim;

    if (cv_array_grow((void **)&b->docs, &b->capdocs, b->n + 1, sizeof(*b->docs)) != 0 ||
        cv_array_grow((void **)&b->claims, &b->capclaims, b->n + 1, sizeof(*b->claims)) != 0 ||
        cv_array_grow((void **)&b->runs, &b->capruns, b->n + 1, sizeof(*b->runs)) != 0)
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
            ready_free(r);
            return -1;
        }
    }
    doc =
        cv_runs_tick_record(r->run_id, job_id, project_id, tick_ms, status,
                            job ? job->max_attempts : 0, job ? job->queued_at_ms : 0, reason, now);
    if (!doc) {
        ready_free(r);
        return -1;
    }
    if (!(claim = bson_new())) {
        ready_free(r);
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
    if (cv_array_grow((void **)&b->moves, &b->capmoves, b->nmoves + 1, sizeof(*b->moves)) != 0)
        return -1;
    b->moves[b->nmoves++] = (cursor_move){.entry = ei, .to_ms = to, .last_tick_ms = last_tick};
    return 0;
}

/* Stops a schedule the scheduler cannot read (edited in the database by hand,
 * or naming a zone this machine lacks): no next tick, and the reason stored
 * with it, so it is reported once instead of on every scan. PUT sets it again. */
static void stop_schedule(cv_scheduler *s, cv_sched_entry *e, const char *reason) {
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(e->job_id));
    bson_t *update = BCON_NEW("$set", "{", "schedule.next_run_at", BCON_NULL, "schedule.error",
                              BCON_UTF8(reason), CV_SCHEDULE_F_LIVE, BCON_BOOL(false), "}");
    char why[256];

    cv_log_warn("job %s: %s; the schedule is stopped until it is set again", e->job_id, reason);
    e->cursor_ms = -1;
    e->end_written = cv_mongo_update(s->mongo, CV_COLL_JOBS, filter, update, false, NULL, why,
                                     sizeof(why)) == CV_OK; /* else cv_ticks_write_end() ends it */
    bson_destroy(filter);
    bson_destroy(update);
}

/* Adds a job's n planned ticks (b->ticks, b->run) to the batch: each one
 * queued (b->run[i]), missed (a later tick runs in its stead, or none) or,
 * with a skip_reason, skipped (active: the run still going, or ""). */
static int add_planned(cv_scheduler *s, scan_batch *b, const char *job_id, const char *project_id,
                       int n, int64_t now, cv_job *job, const char *misfire,
                       const char *skip_reason, const char *active) {
    for (int i = 0; i < n; i++) {
        char reason[256];
        int rc;
        if (skip_reason) {
            if (active[0])
                snprintf(reason, sizeof(reason), "%s (run %s)", skip_reason, active);
            else
                snprintf(reason, sizeof(reason), "%s", skip_reason);
            rc = add_tick(s, b, job_id, project_id, b->ticks[i], now, NULL, CV_RUN_SKIPPED, reason);
        } else if (b->run[i]) {
            rc = add_tick(s, b, job_id, project_id, b->ticks[i], now, job, CV_RUN_QUEUED, NULL);
        } else {
            char stand_in[CV_ID_LEN] = "";
            for (int j = n - 1; j > i && !stand_in[0]; j--)
                if (b->run[j])
                    cv_scheduler_run_id(job_id, b->ticks[j], stand_in);
            if (stand_in[0])
                snprintf(reason, sizeof(reason),
                         "misfire policy %s: the tick passed unhandled; run %s catches up", misfire,
                         stand_in);
            else
                snprintf(reason, sizeof(reason), "misfire policy %s: the tick passed unhandled",
                         misfire);
            rc = add_tick(s, b, job_id, project_id, b->ticks[i], now, NULL, CV_RUN_MISSED, reason);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Plans the due ticks of entry `ei` into the batch. */
static void plan_job(cv_scheduler *s, size_t ei, int64_t now, scan_batch *b) {
    cv_sched_entry *e = &s->ticks.entries[ei];
    const bson_t *job_doc = e->doc;
    int64_t *ticks = b->ticks;
    bool *run = b->run;
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
    if (!(tz = zone_get(&s->ticks, sched.timezone, why, sizeof(why)))) {
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
    if (add_planned(s, b, job_id, project_id, n, now, have_job ? &job : NULL, sched.misfire,
                    skip_reason, active) != 0 ||
        add_move(b, ei, t, ticks[n - 1]) != 0)
        cv_log_error("job %s: out of memory planning ticks", job_id);
out:
    if (have_job)
        cv_job_release(&job);
    cJSON_Delete(stored);
}

static void batch_free(scan_batch *b) {
    for (size_t i = 0; i < b->n; i++) {
        bson_destroy(b->claims[i]);
        bson_destroy(b->docs[i]);
        ready_free(&b->runs[i]);
    }
    free(b->claims);
    free(b->moves);
    for (int i = 0; i < b->nprojects; i++)
        bson_destroy(b->projects[i]);
    free(b->docs);
    free(b->runs);
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
    CV_MONGO_EACH_DOC(list, it, doc) {
        for (size_t i = 0; i < s->ticks.nentries; i++) {
            cv_sched_entry *e = &s->ticks.entries[i];
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
    for (size_t i = 0; i < s->ticks.nentries; i++)
        s->ticks.entries[i].fresh = false;
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
        CV_MONGO_EACH_DOC(list, it, doc) {
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
cv_err cv_ticks_load(cv_scheduler *s, char *errbuf, size_t errlen) {
    bson_t *filter, *list = NULL, doc;
    bson_iter_t it;
    size_t kept = 0, fresh = 0;
    cv_err err;

    if (!s->ticks.legacy_flagged) {
        if ((err = flag_legacy_schedules(s, errbuf, errlen)))
            return err;
        s->ticks.legacy_flagged = true;
    }
    filter = BCON_NEW(CV_SCHEDULE_F_LIVE, BCON_BOOL(true));
    err = cv_mongo_find(s->mongo, CV_COLL_JOBS, filter, NULL, 0, &list, errbuf, errlen);
    bson_destroy(filter);
    if (err)
        return err;
    for (size_t i = 0; i < s->ticks.nentries; i++)
        s->ticks.entries[i].seen = false;
    CV_MONGO_EACH_DOC(list, it, doc) {
        const char *id = cv_mongo_doc_str(&doc, "_id");
        const char *next = cv_mongo_doc_str(&doc, "schedule.next_run_at");
        const char *version = cv_mongo_doc_str(&doc, "schedule.version");
        int64_t stored;
        cv_sched_entry *e = NULL;
        bson_t *copy;

        if (!id || strlen(id) >= CV_ID_LEN || !next || cv_time_parse(next, &stored) != 0)
            continue; /* planning reports an unreadable schedule; this one has no cursor */
        if (!version)
            version = "";
        for (size_t i = 0; i < s->ticks.nentries && !e; i++)
            if (strcmp(s->ticks.entries[i].job_id, id) == 0)
                e = &s->ticks.entries[i];
        if (!(copy = bson_copy(&doc)))
            continue;
        if (!e) {
            if (cv_array_grow((void **)&s->ticks.entries, &s->ticks.capentries,
                              s->ticks.nentries + 1, sizeof(*s->ticks.entries)) != 0) {
                bson_destroy(copy);
                continue;
            }
            e = &s->ticks.entries[s->ticks.nentries++];
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
    for (size_t i = 0; i < s->ticks.nentries; i++) {
        if (s->ticks.entries[i].seen)
            s->ticks.entries[kept++] = s->ticks.entries[i];
        else
            bson_destroy(s->ticks.entries[i].doc);
    }
    s->ticks.nentries = kept;
    for (size_t i = 0; i < s->ticks.nentries; i++)
        fresh += s->ticks.entries[i].fresh; /* also those a failed read left fresh */
    return fresh ? apply_saved_cursors(s, errbuf, errlen) : CV_OK;
}

cv_err cv_ticks_scan(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen) {
    scan_batch b;
    bool *dup = NULL;
    const bson_t **records = NULL;
    size_t nrecords = 0;
    cv_err err = CV_OK;

    memset(&b, 0, sizeof(b));
    for (size_t i = 0; i < s->ticks.nentries; i++)
        if (s->ticks.entries[i].cursor_ms >= 0 &&
            s->ticks.entries[i].cursor_ms <= now + LOOKAHEAD_MS)
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
        cv_ready_run *r = &b.runs[i];
        if (dup[i] || !r->message) /* another's, or a missed or skipped tick */
            continue;
        if (cv_array_grow((void **)&s->ticks.ready, &s->ticks.capready, s->ticks.nready + 1,
                          sizeof(*s->ticks.ready)) != 0) {
            cv_log_error("run %s: out of memory; its claim is not published", r->run_id);
            continue;
        }
        s->ticks.ready[s->ticks.nready++] = *r;
        r->message = r->event = NULL;
    }
    for (size_t i = 0; i < b.nmoves; i++) {
        cv_sched_entry *e = &s->ticks.entries[b.moves[i].entry];
        e->cursor_ms = b.moves[i].to_ms; /* -1: ended; written to the job by cv_ticks_write_end() */
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
cv_err cv_ticks_write_end(cv_scheduler *s, char *errbuf, size_t errlen) {
    cv_sched_entry *e = NULL;
    bson_t *filter, *update, set;
    cv_err err;

    for (size_t i = 0; i < s->ticks.nentries && !e; i++)
        if (s->ticks.entries[i].cursor_ms < 0 && !s->ticks.entries[i].end_written)
            e = &s->ticks.entries[i];
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

/* Publishes every claimed tick that fell due, in one batch. */
cv_err cv_ticks_publish(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen) {
    cv_kafka_out *jobs = NULL, *events = NULL;
    size_t n = 0, nids = 0, kept = 0;
    cv_err err = CV_OK;

    for (size_t i = 0; i < s->ticks.nready; i++)
        n += s->ticks.ready[i].due_ms <= now;
    if (n == 0)
        return CV_OK;
    jobs = calloc(n, sizeof(*jobs));
    events = calloc(n, sizeof(*events));
    if (!jobs || !events) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0, k = 0; i < s->ticks.nready; i++) {
        cv_ready_run *r = &s->ticks.ready[i];
        if (r->due_ms > now)
            continue;
        jobs[k] = (cv_kafka_out){.key = r->job_id, .value = r->message, .len = strlen(r->message)};
        events[k] = (cv_kafka_out){.key = r->run_id, .value = r->event, .len = strlen(r->event)};
        k++;
    }
    /* Keyed by job id like the API's runs: one job's runs stay in order. */
    if (cv_kafka_produce_batch(s->producer, CV_TOPIC_JOBS, jobs, n, CV_SCHED_PUBLISH_TIMEOUT_MS,
                               errbuf, errlen) != CV_OK)
        cv_log_warn("scheduled runs not all published, retrying: %s", errbuf);
    for (size_t i = 0; i < n; i++)
        if (jobs[i].err == CV_OK)
            events[nids++] = events[i];
    if (cv_kafka_produce_batch(s->producer, CV_TOPIC_EVENTS, events, nids,
                               CV_SCHED_PUBLISH_TIMEOUT_MS, errbuf, errlen) != CV_OK)
        cv_log_warn("run.queued events not all published: %s", errbuf);
    /* Keep what was not published (or is not due) for the next round. */
    for (size_t i = 0, k = 0; i < s->ticks.nready; i++) {
        cv_ready_run *r = &s->ticks.ready[i];
        bool sent = false;
        if (r->due_ms <= now)
            sent = jobs[k++].err == CV_OK;
        if (sent) {
            int64_t late = cv_time_now_ms() - r->due_ms;
            cv_metrics_add(s->m_fired, "", 1);
            cv_metrics_observe(s->m_lateness, "", (double)(late > 0 ? late : 0) / 1000.0);
            cv_log_debug("run %s of job %s published", r->run_id, r->job_id);
            ready_free(r);
        } else {
            s->ticks.ready[kept++] = *r;
        }
    }
    s->ticks.nready = kept;
out:
    free(jobs);
    free(events);
    return err;
}

void cv_ticks_destroy(cv_ticks *t) {
    for (size_t i = 0; i < t->nready; i++)
        ready_free(&t->ready[i]);
    free(t->ready);
    for (int i = 0; i < t->nzones; i++)
        cv_tz_destroy(t->zones[i].tz);
    for (size_t i = 0; i < t->nentries; i++)
        bson_destroy(t->entries[i].doc);
    free(t->entries);
    memset(t, 0, sizeof(*t));
}

int64_t cv_ticks_next_due(const cv_ticks *t) {
    int64_t first = INT64_MAX;
    for (size_t i = 0; i < t->nready; i++)
        if (t->ready[i].due_ms < first)
            first = t->ready[i].due_ms;
    return first;
}

void cv_ticks_append_cursors(const cv_ticks *t, bson_t *parent, const char *key) {
    bson_t all, one;

    BSON_APPEND_DOCUMENT_BEGIN(parent, key, &all);
    for (size_t i = 0; i < t->nentries; i++) {
        BSON_APPEND_DOCUMENT_BEGIN(&all, t->entries[i].job_id, &one);
        BSON_APPEND_UTF8(&one, "v", t->entries[i].version);
        BSON_APPEND_INT64(&one, "n", t->entries[i].cursor_ms);
        bson_append_document_end(&all, &one);
    }
    bson_append_document_end(parent, &all);
}
