/*
 * cv_worker.c - the job loop: poll, decode, claim in batches, run up to
 * CONVUTELL_WORKER_CONCURRENCY attempts at once, each on a thread of its own
 * (cv_attempt), and store a partition's offset only once every message before
 * it is done. Invalid messages are copied to the dead-letter topic with the
 * reason, so nothing that reached convutell.jobs is dropped silently.
 */
#include "cv_worker.h"

#include "cv_attempt.h"
#include "cv_cache.h"
#include "cv_console.h"
#include "cv_ending.h"
#include "cv_beat.h"
#include "cv_kafka.h"
#include "cv_launch.h"
#include "cv_lease.h"
#include "cv_log.h"
#include "cv_message.h"
#include "cv_mongo.h"
#include "cv_reject.h"
#include "cv_store.h"
#include "cv_time.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define WORKER_GROUP CV_GROUP_WORKERS
/* Messages in hand per attempt the worker may run at once: the ones waiting
 * are claimed as soon as a thread is free, without a fetch round between. A
 * fetch brings runs of the few jobs of one partition, and runs of one job run
 * one at a time, so the window must be wide enough to hold runs of as many
 * jobs as there are threads (4 per thread kept 8 threads to 5 jobs at once
 * on the throughput bench). */
#define PREFETCH 32
/* How long every thread may stay busy before the consumer is paused and
 * polled every 100 ms (well below the smallest max.poll.interval.ms
 * accepted, 6 s). Short jobs never pause it: resuming costs a fetch round (up
 * to fetch.wait.max.ms, 500 ms) before the next message arrives. */
#define PAUSE_AFTER_MS 1000
/* How often a claim held by another worker is tried again. */
#define HELD_RETRY_MS 1000
/* Freed heap is handed back to the system at most this often, and only after
 * this many messages: a burst of large messages nobody can use (rejected at
 * thousands a second) would otherwise leave the worker that much larger. */
#define TRIM_EVERY_MS 5000
#define TRIM_AFTER_MESSAGES 1000
/* Rejected messages dead-lettered at once, at most: one wait for the broker
 * for this many. */
#define REJECT_BATCH 1024
/* Messages done whose offsets wait for an earlier message of their partition
 * (a run still going), kept as their coordinates alone, at most: see
 * commit(). */
#define DONE_AHEAD_MAX 65536
/* Attempts this process ran to their end, remembered (the latest so many) so
 * that a message delivered again after a rebalance does not run twice. */
#define FINISHED_KEPT 4096

typedef enum slot_state {
    SLOT_UNCHECKED, /* its stored job could not be read: read again at retry_at */
    SLOT_REJECTED,  /* not a run of a stored job: to be dead-lettered (verr says why) */
    SLOT_WAITING,   /* to be claimed */
    SLOT_HELD,      /* another worker holds the attempt: claim again at retry_at */
    SLOT_RUNNING,   /* on its thread */
    SLOT_DONE,      /* handled: its offset may be stored */
    SLOT_FAILED     /* its final event was not published: never stored */
} slot_state;

/* One message in hand, from its poll until its offset is stored. */
typedef struct slot {
    struct cv_worker *w;
    cv_kafka_msg msg;
    char *text; /* the message as text, kept in the lease for retries */
    cv_attempt a;
    cv_verr verr; /* SLOT_REJECTED: why */
    slot_state state;
    int64_t retry_at;
    bool held_logged;
    pthread_t thread;
    atomic_bool finished; /* the thread has returned */
    cv_err err;
    char errbuf[1024];
} slot;

/* The jobs of the messages in hand, as claim_ready() walks them in order:
 * runs of one job run one at a time, in the order they were queued, so a
 * message may start only if no earlier one of its job is still in hand. */
/* A message done, its offset not stored yet. */
typedef struct done_ahead {
    int32_t partition;
    int64_t offset;
} done_ahead;

typedef struct job_set {
    const char *ids[1024]; /* open addressing; NULL is empty */
} job_set;

struct cv_worker {
    cv_runner r;
    cv_kafka_consumer *consumer;
    cv_ending *ending;   /* the leases of attempts that ended, marked done */
    cv_console *console; /* the SQL console's queries (cv_console.h) */
    cv_beat *beat;       /* this worker, seen in CV_COLL_WORKERS (cv_beat.h) */
    slot **slots;        /* in the order they were polled */
    size_t n, cap;
    done_ahead *done; /* DONE_AHEAD_MAX, main thread only (commit()) */
    size_t ndone;
    int running, concurrency;
    pthread_mutex_t lock;
    pthread_cond_t changed; /* an attempt's thread returned (monotonic clock) */
    job_set busy;           /* claim_ready()'s, main thread only */
    uint64_t taken;         /* messages taken in since the last trim_heap() */
    struct {
        char run_id[CV_ID_LEN];
        int attempt;
    } finished[FINISHED_KEPT]; /* a ring, main thread only */
    size_t nfinished;
    int64_t trimmed_ms;
    char holders[256][256]; /* likewise */
    /* Job messages taken in and dead-lettered (cv_metrics.h). */
    cv_metric *m_consumed, *m_rejected;
};

cv_worker *cv_worker_new(const cv_config *cfg, char *errbuf, size_t errlen) {
    cv_worker *w = calloc(1, sizeof(*w));

    if (!w) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&w->lock, NULL);
    cv_time_cond_init(&w->changed);
    w->r.cfg = *cfg;
    w->concurrency = cfg->worker_concurrency > 0 ? cfg->worker_concurrency : 1;
    w->cap = (size_t)w->concurrency * PREFETCH;
    w->slots = calloc(w->cap, sizeof(*w->slots));
    w->done = calloc(DONE_AHEAD_MAX, sizeof(*w->done));
    w->r.connections = cv_cache_new(1024, cfg->cache_ms);
    w->r.jobs = cv_cache_new(4096, cfg->cache_ms);
    w->r.odbc_pool = cv_odbcpool_new(cfg->odbc_idle, (int64_t)cfg->odbc_idle_seconds * 1000);
    if (!w->slots || !w->done || !w->r.connections || !w->r.jobs || !w->r.odbc_pool) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    w->r.mongo = cv_mongo_new(cfg->mongo_uri, cfg->mongo_db, "convutell-worker", errbuf, errlen);
    if (!w->r.mongo)
        goto fail;
    w->ending = cv_ending_new(w->r.mongo, cfg->worker_id, errbuf, errlen);
    if (!w->ending)
        goto fail;
    w->r.producer = cv_kafka_producer_new(cfg->kafka_bootstrap, 0, errbuf, errlen);
    if (!w->r.producer)
        goto fail;
    w->consumer = cv_kafka_consumer_new(cfg->kafka_bootstrap, WORKER_GROUP, CV_TOPIC_JOBS,
                                        cfg->max_poll_interval_ms, errbuf, errlen);
    if (!w->consumer || !(w->console = cv_console_new(&w->r, errbuf, errlen)))
        goto fail;
    if (!(w->beat = cv_beat_start(w->r.mongo, CV_COLL_WORKERS, cfg->worker_id, w->concurrency,
                                  errbuf, errlen)))
        goto fail;
    cv_runner_metrics(&w->r);
    w->m_consumed = cv_metrics_register(CV_METRIC_COUNTER, "convutell_jobs_consumed_total",
                                        "Job messages taken off " CV_TOPIC_JOBS ".", NULL, 0);
    w->m_rejected =
        cv_metrics_register(CV_METRIC_COUNTER, "convutell_jobs_rejected_total",
                            "Job messages refused and dead-lettered (invalid).", NULL, 0);
    return w;
fail:
    cv_worker_destroy(w);
    return NULL;
}

static void slot_free(slot *s) {
    if (!s)
        return;
    cv_kafka_msg_release(&s->msg);
    cv_job_release(&s->a.job);
    free(s->text);
    free(s);
}

void cv_worker_destroy(cv_worker *w) {
    if (!w)
        return;
    cv_console_destroy(w->console); /* first: its queries use the runner */
    cv_beat_stop(w->beat);
    for (size_t i = 0; i < w->n; i++)
        slot_free(w->slots[i]); /* none is running: cv_worker_run() waited for them */
    free(w->slots);
    free(w->done);
    cv_kafka_consumer_destroy(w->consumer);
    cv_kafka_producer_destroy(w->r.producer);
    cv_ending_destroy(w->ending); /* writes what is queued */
    cv_mongo_destroy(w->r.mongo);
    cv_cache_destroy(w->r.connections);
    cv_cache_destroy(w->r.jobs);
    cv_odbcpool_destroy(w->r.odbc_pool);
    pthread_cond_destroy(&w->changed);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

/* ---- taking messages in ------------------------------------------------------ */

/* The stored job as it was at the version the message names (the job's
 * document, or the version kept when the job changed since it was queued:
 * cv_launch.h), through the worker's cache; the job's current document when
 * that version is nowhere (cv_launch_resolve() then refuses it). */
static cv_err job_at_version(cv_runner *r, const cv_job *job, bson_t **job_doc, char *errbuf,
                             size_t errlen) {
    char key[CV_LAUNCH_VERSION_KEY_LEN];
    bson_t *kept = NULL, *fresh = NULL;
    cv_err err;

    err = cv_cache_find_id(r->jobs, r->mongo, CV_COLL_JOBS, job->job_id, job_doc, errbuf, errlen);
    if (err || !job->job_version || cv_mongo_doc_int(*job_doc, "version", 1) == job->job_version)
        return err;
    /* Changed since it was queued, or newer than the cache's copy. */
    if ((err = cv_mongo_find_id(r->mongo, CV_COLL_JOBS, job->job_id, &fresh, errbuf, errlen)))
        return err == CV_ERR_NOT_FOUND ? CV_OK : err;
    if (cv_mongo_doc_int(fresh, "version", 1) == job->job_version) {
        bson_destroy(*job_doc);
        *job_doc = fresh;
        return CV_OK;
    }
    bson_destroy(fresh);
    cv_launch_version_key(job->job_id, job->job_version, key);
    err = cv_cache_find_id(r->jobs, r->mongo, CV_COLL_JOB_VERSIONS, key, &kept, errbuf, errlen);
    if (err)
        return err == CV_ERR_NOT_FOUND ? CV_OK : err;
    if ((fresh = cv_launch_version_job(kept))) {
        bson_destroy(*job_doc);
        *job_doc = fresh;
    }
    bson_destroy(kept);
    return CV_OK;
}

/* Reads the stored job a decoded message names, and its project, through the
 * worker's cache (see cv_launch_resolve() for the outcomes). Other errors:
 * the store did not answer. */
static cv_err check_stored(cv_runner *r, cv_job *job, cv_verr *verr, char *errbuf, size_t errlen) {
    bson_t *job_doc = NULL, *project = NULL;
    const char *owner;
    cv_err err;

    err = job_at_version(r, job, &job_doc, errbuf, errlen);
    if (err && err != CV_ERR_NOT_FOUND)
        return err;
    owner = job_doc ? cv_mongo_doc_str(job_doc, "project_id") : NULL;
    if (owner && strcmp(owner, job->project_id) == 0) {
        err =
            cv_cache_find_id(r->jobs, r->mongo, CV_COLL_PROJECTS, owner, &project, errbuf, errlen);
        if (err && err != CV_ERR_NOT_FOUND)
            goto out;
    }
    err = cv_launch_resolve(job_doc, project, job, verr, errbuf, errlen);
out:
    bson_destroy(job_doc);
    bson_destroy(project);
    return err;
}

/* Checks a waiting message against the store: a runnable job waits for its
 * claim (a known job of an inactive project too: its run fails); one that
 * names no job of ours is dead-lettered; one the store could not answer for
 * is checked again a second later. An error stops the worker. */
static cv_err check(cv_worker *w, slot *s, char *errbuf, size_t errlen) {
    char why[512];
    cv_err err = check_stored(&w->r, &s->a.job, &s->verr, why, sizeof(why));

    s->state = SLOT_WAITING;
    if (err == CV_OK)
        return CV_OK;
    if (err == CV_ERR_CONFLICT) {
        snprintf(s->a.refused, sizeof(s->a.refused), "%s", why);
        return CV_OK;
    }
    if (err == CV_ERR_INVALID) {
        s->state = SLOT_REJECTED;
        return CV_OK;
    }
    if (err == CV_ERR_NOMEM) {
        s->state = SLOT_FAILED;
        return cv_err_set(errbuf, errlen, err, "out of memory checking a job message");
    }
    cv_log_warn("run %s: job %s not read from the store (%s); trying again", s->a.job.run_id,
                s->a.job.job_id, why);
    s->state = SLOT_UNCHECKED;
    s->retry_at = cv_time_mono_ms() + HELD_RETRY_MS;
    return CV_OK;
}

/* Takes one polled message in: a valid job is checked against the store; an
 * invalid one waits to be dead-lettered with the others of its poll
 * (reject_pending()). An error stops the worker. */
static cv_err take(cv_worker *w, cv_kafka_msg *msg, char *errbuf, size_t errlen) {
    slot *s = calloc(1, sizeof(*s));
    cv_err err;

    if (!s) {
        cv_kafka_msg_release(msg);
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    }
    s->w = w;
    s->msg = *msg;
    s->a.r = &w->r;
    w->slots[w->n++] = s;
    w->taken++;
    cv_metrics_add(w->m_consumed, "", 1);
    err = cv_job_decode(msg->payload ? msg->payload : "", msg->len, &s->a.job, &s->verr);
    if (err == CV_ERR_INVALID) {
        s->state = SLOT_REJECTED;
        cv_metrics_add(w->m_rejected, "", 1);
        return CV_OK;
    }
    if (err) {
        s->state = SLOT_FAILED;
        return cv_err_set(errbuf, errlen, err, "cannot decode a job message: %s", cv_err_str(err));
    }
    if (!(s->text = strndup(msg->payload ? msg->payload : "", msg->len))) {
        s->state = SLOT_FAILED;
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    }
    return check(w, s, errbuf, errlen);
}

/* Hands freed heap back to the system (glibc keeps it otherwise): now and
 * then during a stream of messages, and once a burst is over (nothing in
 * hand). */
static void trim_heap(cv_worker *w) {
    int64_t now = cv_time_mono_ms();
    bool busy = w->taken >= TRIM_AFTER_MESSAGES && now - w->trimmed_ms >= TRIM_EVERY_MS;
    bool after = w->taken > 0 && w->n == 0 && now - w->trimmed_ms >= 1000;
    if (!busy && !after)
        return;
    malloc_trim(0);
    w->taken = 0;
    w->trimmed_ms = now;
}

/* Dead-letters every rejected message in hand, in one batch (cv_reject.h);
 * they are done then, and their offsets may be stored. */
static cv_err reject_pending(cv_worker *w, char *errbuf, size_t errlen) {
    cv_reject items[REJECT_BATCH];
    slot *picked[REJECT_BATCH];
    size_t n = 0;
    cv_err err;

    for (size_t i = 0; i < w->n && n < REJECT_BATCH; i++) {
        if (w->slots[i]->state != SLOT_REJECTED)
            continue;
        items[n] = (cv_reject){.msg = &w->slots[i]->msg, .verr = &w->slots[i]->verr};
        picked[n++] = w->slots[i];
    }
    if (n == 0)
        return CV_OK;
    err = cv_reject_many(&w->r, items, n, errbuf, errlen);
    for (size_t k = 0; k < n; k++)
        picked[k]->state = err ? SLOT_FAILED : SLOT_DONE;
    return err;
}

/* Polls while there is room: waits up to timeout_ms for the first message,
 * then takes what has been fetched already. */
static cv_err fill(cv_worker *w, int timeout_ms, char *errbuf, size_t errlen) {
    cv_kafka_msg msg;
    cv_err err = CV_OK;

    while (!err && w->n < w->cap &&
           cv_kafka_consumer_poll(w->consumer, timeout_ms, &msg) == CV_OK) {
        err = take(w, &msg, errbuf, errlen);
        timeout_ms = 0;
    }
    return err;
}

/* ---- claiming and running ------------------------------------------------------ */

static void *attempt_main(void *arg) {
    slot *s = arg;
    cv_worker *w = s->w;

    s->err = cv_attempt_run(&s->a, s->errbuf, sizeof(s->errbuf));
    pthread_mutex_lock(&w->lock);
    atomic_store(&s->finished, true);
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

static cv_err start(cv_worker *w, slot *s, char *errbuf, size_t errlen) {
    int rc;

    atomic_store(&s->a.renewed_ms, cv_time_mono_ms());
    atomic_store(&s->finished, false);
    if ((rc = pthread_create(&s->thread, NULL, attempt_main, s)) != 0) {
        s->state = SLOT_FAILED;
        return cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot start a job thread: %s", strerror(rc));
    }
    s->state = SLOT_RUNNING;
    w->running++;
    return CV_OK;
}

/* Adds id; true if it was there already. */
static bool job_set_add(job_set *set, const char *id) {
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++)
        h = (h ^ *p) * 16777619u;
    for (size_t i = h % 1024;; i = (i + 1) % 1024) {
        if (!set->ids[i]) {
            set->ids[i] = id;
            return false;
        }
        if (strcmp(set->ids[i], id) == 0)
            return true;
    }
}

/* Whether this process ran attempt `attempt` of the run to its end. */
static bool finished_here(const cv_worker *w, const cv_job *job) {
    size_t n = w->nfinished < FINISHED_KEPT ? w->nfinished : FINISHED_KEPT;
    for (size_t i = 0; i < n; i++)
        if (w->finished[i].attempt == job->attempt &&
            strcmp(w->finished[i].run_id, job->run_id) == 0)
            return true;
    return false;
}

/* What a claim found, acted on: run it, wait for its holder, or skip it. */
static cv_err claimed(cv_worker *w, slot *s, cv_claim claim, const char *holder, int64_t now,
                      char *errbuf, size_t errlen) {
    const cv_job *job = &s->a.job;

    s->a.claim = claim;
    /* Delivered again after a rebalance (offsets not committed while the
     * broker was away), once this process had run it: the lease it holds
     * would make the claim a resumption, or hold it until it runs out. */
    if ((claim == CV_CLAIM_HELD || claim == CV_CLAIM_RESUMED) && finished_here(w, job)) {
        cv_log_info("run %s attempt %d: delivered again after this worker ran it; skipped",
                    job->run_id, job->attempt);
        s->state = SLOT_DONE;
        return CV_OK;
    }
    if (claim == CV_CLAIM_HELD) {
        if (!s->held_logged)
            cv_log_info("run %s attempt %d is held by worker %s; waiting for it to end or "
                        "for its lease to run out",
                        job->run_id, job->attempt, holder);
        s->held_logged = true;
        s->state = SLOT_HELD;
        s->retry_at = now + HELD_RETRY_MS;
        return CV_OK;
    }
    if (claim == CV_CLAIM_OVER) {
        cv_log_info("run %s attempt %d: already ended or moved past; this delivery is a "
                    "duplicate and is skipped",
                    job->run_id, job->attempt);
        s->state = SLOT_DONE;
        return CV_OK;
    }
    return start(w, s, errbuf, errlen);
}

/* Claims, in one batch, every message that may start now (a free thread,
 * no earlier run of its job in hand, not waiting for another worker), and
 * starts those it gets. */
static cv_err claim_ready(cv_worker *w, char *errbuf, size_t errlen) {
    const cv_job *jobs[256];
    const char *texts[256];
    slot *picked[256];
    cv_claim claims[256];
    job_set *busy = &w->busy;
    size_t n = 0;
    int64_t now = cv_time_mono_ms();
    cv_err err = CV_OK;

    memset(busy, 0, sizeof(*busy));
    for (size_t i = 0; i < w->n && w->running + (int)n < w->concurrency && n < 256; i++) {
        slot *s = w->slots[i];
        if (s->state == SLOT_DONE || s->state == SLOT_FAILED || s->state == SLOT_REJECTED)
            continue;
        if (job_set_add(busy, s->a.job.job_id))
            continue; /* an earlier run of its job is in hand */
        if (s->state == SLOT_UNCHECKED && now >= s->retry_at && (err = check(w, s, errbuf, errlen)))
            return err;
        if (s->state == SLOT_WAITING || (s->state == SLOT_HELD && now >= s->retry_at)) {
            jobs[n] = &s->a.job;
            texts[n] = s->text;
            picked[n++] = s;
        }
    }
    if (n == 0)
        return CV_OK;
    err = cv_lease_claim_many(w->r.mongo, jobs, texts, n, w->r.cfg.worker_id,
                              w->r.cfg.lease_seconds, claims, w->holders, errbuf, errlen);
    if (err) {
        /* The store did not answer: these wait and are claimed again. */
        cv_log_warn("claims not made, trying again: %s", errbuf);
        for (size_t k = 0; k < n; k++) {
            picked[k]->state = SLOT_HELD;
            picked[k]->retry_at = now + HELD_RETRY_MS;
        }
        return CV_OK;
    }
    for (size_t k = 0; k < n && !err; k++)
        err = claimed(w, picked[k], claims[k], w->holders[k], now, errbuf, errlen);
    return err;
}

/* Joins the attempts whose threads returned. The first that could not
 * publish its end is returned: the worker stops, its offset unstored. */
static cv_err reap(cv_worker *w, char *errbuf, size_t errlen) {
    cv_err first = CV_OK;

    for (size_t i = 0; i < w->n; i++) {
        slot *s = w->slots[i];
        if (s->state != SLOT_RUNNING || !atomic_load(&s->finished))
            continue;
        pthread_join(s->thread, NULL);
        w->running--;
        s->state = s->err ? SLOT_FAILED : SLOT_DONE;
        if (!s->err) {
            size_t k = w->nfinished++ % FINISHED_KEPT;
            snprintf(w->finished[k].run_id, sizeof(w->finished[k].run_id), "%s", s->a.job.run_id);
            w->finished[k].attempt = s->a.job.attempt;
            if (s->a.ended)
                cv_ending_add(w->ending, s->a.job.run_id, s->a.job.attempt);
        }
        if (s->err && !first)
            first = cv_err_set(errbuf, errlen, s->err, "%s", s->errbuf);
    }
    return first;
}

/* Renews the leases of attempts that have run for a quarter of one. */
static void renew_due(cv_worker *w) {
    int64_t now = cv_time_mono_ms(), quarter = (int64_t)w->r.cfg.lease_seconds * 250;

    for (size_t i = 0; i < w->n; i++) {
        slot *s = w->slots[i];
        if (s->state == SLOT_RUNNING && now - atomic_load(&s->a.renewed_ms) >= quarter)
            cv_attempt_renew(&s->a);
    }
}

/* The lowest offset in hand, of each partition (a few: the worker's share). */
typedef struct lowest {
    int32_t partition;
    int64_t offset;
} lowest;

/* Finds the partition's entry in low[], or NULL. */
static lowest *find_partition(lowest *low, size_t nlow, int32_t partition) {
    for (size_t i = 0; i < nlow; i++)
        if (low[i].partition == partition)
            return &low[i];
    return NULL;
}

/* Stores the offsets of the done messages recorded in w->done that no
 * message in hand is before (the highest of each partition), and forgets
 * them. low[] holds the lowest offset in hand of each partition; with more
 * partitions in hand than it holds (overflow), nothing is stored now. */
static cv_err commit_done(cv_worker *w, lowest *low, size_t nlow, bool overflow, char *errbuf,
                          size_t errlen) {
    lowest best[64];
    size_t nbest = 0, kept = 0;
    cv_err err = CV_OK;

    for (size_t i = 0; i < w->ndone; i++) {
        done_ahead d = w->done[i];
        lowest *in_hand = find_partition(low, nlow, d.partition), *b;
        if (overflow || (in_hand && in_hand->offset <= d.offset)) {
            w->done[kept++] = d;
            continue;
        }
        if ((b = find_partition(best, nbest, d.partition)))
            b->offset = d.offset > b->offset ? d.offset : b->offset;
        else if (nbest < 64)
            best[nbest++] = (lowest){d.partition, d.offset};
        else
            w->done[kept++] = d; /* stored at a later call */
    }
    w->ndone = kept;
    for (size_t b = 0; b < nbest && !err; b++) {
        cv_kafka_msg at = {
            .topic = CV_TOPIC_JOBS, .partition = best[b].partition, .offset = best[b].offset};
        err = cv_kafka_consumer_store(w->consumer, &at, errbuf, errlen);
    }
    return err;
}

/* Stores the offset of every done message that no earlier message of its
 * partition is still in hand, and lets it go. A done message behind one
 * still in hand (a run going on) is let go too, its coordinates kept in
 * w->done until its offset may be stored (up to DONE_AHEAD_MAX of them): the
 * window of messages in hand stays open for the ones behind it, so a long
 * run, or a valid run among thousands of rejected messages, does not stop
 * the worker reading its partition. */
static cv_err commit(cv_worker *w, char *errbuf, size_t errlen) {
    lowest low[64]; /* of each partition kept so far: in the loop, its first message */
    size_t kept = 0, nlow = 0;
    bool overflow = false; /* more partitions kept than tracked: store no more now */
    cv_err err = CV_OK;

    for (size_t i = 0; i < w->n; i++) {
        slot *s = w->slots[i];
        bool blocked = overflow || find_partition(low, nlow, s->msg.partition);
        if (s->state == SLOT_DONE && !err) {
            if (!blocked) {
                err = cv_kafka_consumer_store(w->consumer, &s->msg, errbuf, errlen);
                if (!err) {
                    slot_free(s);
                    continue;
                }
            } else if (w->ndone < DONE_AHEAD_MAX) {
                w->done[w->ndone++] = (done_ahead){s->msg.partition, s->msg.offset};
                slot_free(s);
                continue;
            }
        }
        if (!blocked && nlow < 64)
            low[nlow++] = (lowest){s->msg.partition, s->msg.offset};
        else if (!blocked)
            overflow = true;
        w->slots[kept++] = s;
    }
    w->n = kept;
    if (err || !w->ndone)
        return err;
    /* The lowest offset in hand of each partition (a message delivered again
     * after a rebalance may be lower than one polled before it). */
    for (size_t i = 0; i < kept; i++) {
        lowest *l = find_partition(low, nlow, w->slots[i]->msg.partition);
        if (l && w->slots[i]->msg.offset < l->offset)
            l->offset = w->slots[i]->msg.offset;
    }
    return commit_done(w, low, nlow, overflow, errbuf, errlen);
}

/* Waits up to timeout_ms for an attempt's thread to return. */
static void wait_change(cv_worker *w, int timeout_ms) {
    struct timespec ts = cv_time_mono_deadline(timeout_ms);
    bool any = false;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        for (size_t i = 0; i < w->n && !any; i++)
            any = w->slots[i]->state == SLOT_RUNNING && atomic_load(&w->slots[i]->finished);
        if (any || pthread_cond_timedwait(&w->changed, &w->lock, &ts) != 0)
            break;
    }
    pthread_mutex_unlock(&w->lock);
}

/* Polls the paused consumer, which keeps the worker in its group (partitions
 * assigned meanwhile come paused too). A message fetched before the pause is
 * put back for later. */
static void poll_paused(cv_worker *w) {
    cv_kafka_msg extra;
    char why[256];

    if (cv_kafka_consumer_poll(w->consumer, 0, &extra) != CV_OK)
        return;
    if (cv_kafka_consumer_rewind(w->consumer, &extra, why, sizeof(why)) != CV_OK)
        cv_log_warn("%s", why);
    cv_kafka_msg_release(&extra);
}

/* Whether anything in hand could start if a thread were free. */
static bool any_waiting(const cv_worker *w) {
    for (size_t i = 0; i < w->n; i++)
        if (w->slots[i]->state == SLOT_WAITING || w->slots[i]->state == SLOT_HELD ||
            w->slots[i]->state == SLOT_UNCHECKED)
            return true;
    return false;
}

cv_err cv_worker_run(cv_worker *w, volatile sig_atomic_t *stop, char *errbuf, size_t errlen) {
    int64_t full_since = 0;
    bool paused = false;
    cv_err err = CV_OK;
    char why[1024];

    cv_log_info("worker %s consuming %s as group %s, %d job(s) at once", w->r.cfg.worker_id,
                CV_TOPIC_JOBS, WORKER_GROUP, w->concurrency);
    for (;;) {
        cv_err e = reap(w, why, sizeof(why));
        if (e && !err)
            err = cv_err_set(errbuf, errlen, e, "%s", why);
        if (*stop || err) {
            if (w->running == 0)
                break;
            wait_change(w, 100);
            continue;
        }
        if (!paused && w->n < w->cap &&
            (e = fill(w, w->running > 0 || any_waiting(w) ? 2 : 500, why, sizeof(why))))
            err = cv_err_set(errbuf, errlen, e, "%s", why);
        if (!err && (e = claim_ready(w, why, sizeof(why))))
            err = cv_err_set(errbuf, errlen, e, "%s", why);
        if (!err && (e = reject_pending(w, why, sizeof(why))))
            err = cv_err_set(errbuf, errlen, e, "%s", why);
        renew_due(w);
        cv_odbcpool_sweep(w->r.odbc_pool);
        trim_heap(w);
        if (!err && (e = commit(w, why, sizeof(why))))
            err = cv_err_set(errbuf, errlen, e, "%s", why);

        /* Every thread busy and nothing polled for a while: pause, so that
         * the consumer can be polled (and stay in its group) without taking
         * more messages in. */
        bool full = w->running >= w->concurrency || w->n >= w->cap;
        if (!full) {
            full_since = 0;
            if (paused)
                cv_kafka_consumer_pause(w->consumer, false);
            paused = false;
            if (w->n >= w->cap || (w->running > 0 && !any_waiting(w)))
                wait_change(w, 2);
            continue;
        }
        if (!full_since)
            full_since = cv_time_mono_ms();
        if (!paused && cv_time_mono_ms() - full_since >= PAUSE_AFTER_MS) {
            cv_kafka_consumer_pause(w->consumer, true);
            paused = true;
        }
        if (paused)
            poll_paused(w);
        wait_change(w, paused ? 100 : 10);
    }
    if (paused)
        cv_kafka_consumer_pause(w->consumer, false);
    if (!err && (err = commit(w, why, sizeof(why))))
        cv_err_set(errbuf, errlen, err, "%s", why);
    /* What was not claimed yet stays unstored: the group delivers it again. */
    return err;
}
