/*
 * cv_attempt.c - running one attempt: the events it publishes, the look-ups
 * of its connections, and the three kinds of job (a transfer, `sql`
 * statements, a Python script).
 */
#include "cv_attempt.h"

#include "cv_dialect.h"
#include "cv_estimate.h"
#include "cv_log.h"
#include "cv_odbcpool.h"
#include "cv_runs.h"
#include "cv_script.h"
#include "cv_sqljob.h"
#include "cv_secret.h"
#include "cv_sqlsplit.h"
#include "cv_time.h"
#include "cv_transfer.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define PUBLISH_TIMEOUT_MS 30000
/* How long an attempt keeps trying to publish an event it must wait for
 * (its start, its end, its retry) while the broker does not take it: a
 * broker restart or a short outage costs a wait, not the worker. */
#define PUBLISH_PATIENCE_MS (10 * 60 * 1000)

/* Sends value to topic and waits for the broker; while it does not take it
 * (a timeout, an outage), tries again every second for up to 10 minutes.
 * The error of the last try after that. */
static cv_err produce(cv_runner *w, const char *topic, const char *key, const char *value,
                      char *errbuf, size_t errlen) {
    int64_t until = cv_time_mono_ms() + PUBLISH_PATIENCE_MS;
    int tries = 0;
    cv_err err;

    /* The same bytes each time: an event or a retry sent twice (the broker
     * took the first after all) is one to its readers, by its id. */
    while ((err = cv_kafka_produce(w->producer, topic, key, value, strlen(value), NULL,
                                   PUBLISH_TIMEOUT_MS, errbuf, errlen)) &&
           (err == CV_ERR_TIMEOUT || err == CV_ERR_KAFKA) && cv_time_mono_ms() < until) {
        if (tries++ % 10 == 0)
            cv_log_warn("%s not taken yet (%s); trying again until the broker takes it", topic,
                        errbuf);
        nanosleep(&(struct timespec){1, 0}, NULL);
    }
    return err;
}

/* Publishes an event of the attempt, waiting for the broker or not. Progress
 * and log lines do not wait: they go to the same partition (keyed by run id)
 * as the attempt's end, through an idempotent producer, so once the end is
 * acknowledged they are stored before it. */
static cv_err send_event(cv_runner *w, cv_event *ev, bool wait, char *errbuf, size_t errlen) {
    const char *key;
    char *json;
    cv_err err;

    snprintf(ev->worker, sizeof(ev->worker), "%s", w->cfg.worker_id);
    json = cv_event_encode(ev);
    if (!json)
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory encoding an event");
    key = ev->run_id[0] ? ev->run_id : NULL;
    err = wait ? produce(w, CV_TOPIC_EVENTS, key, json, errbuf, errlen)
               : cv_kafka_produce_nowait(w->producer, CV_TOPIC_EVENTS, key, json, strlen(json),
                                         errbuf, errlen);
    free(json);
    return err;
}

static cv_err publish_event(cv_runner *w, cv_event *ev, char *errbuf, size_t errlen) {
    return send_event(w, ev, true, errbuf, errlen);
}

/* Publishes run.started for a job about to run and logs it. */
static cv_err publish_started(cv_runner *w, const cv_job *job, char *errbuf, size_t errlen) {
    cv_event ev;
    cv_err err;

    if ((err = cv_event_init(&ev, CV_EVENT_RUN_STARTED)))
        return cv_err_set(errbuf, errlen, err, "cannot make an event id");
    cv_event_from_job(&ev, job);
    /* Acknowledged before anything runs: a worker killed mid-run leaves its
     * attempt on record (a fresh producer's first send can take longer than
     * a short job). */
    if ((err = publish_event(w, &ev, errbuf, errlen)))
        return err;
    cv_log_info("run %s (%s job %s, attempt %d) started", job->run_id, job->kind, job->job_id,
                job->attempt);
    return CV_OK;
}

void cv_runner_metrics(cv_runner *r) {
    r->m_finished = cv_metrics_register(
        CV_METRIC_COUNTER, "convutell_runs_finished_total",
        "Attempts this worker ended and reported, by the run's status (retrying: another "
        "attempt follows).",
        NULL, 0);
    r->m_rows_read = cv_metrics_register(CV_METRIC_COUNTER, "convutell_rows_read_total",
                                         "Rows read from origins by runs that ended.", NULL, 0);
    r->m_rows_written =
        cv_metrics_register(CV_METRIC_COUNTER, "convutell_rows_written_total",
                            "Rows written to destinations by runs that ended.", NULL, 0);
    r->m_duration = cv_metrics_register(CV_METRIC_HISTOGRAM, "convutell_run_duration_seconds",
                                        "How long attempts ran, by kind of job.",
                                        cv_metrics_seconds, cv_metrics_nseconds);
}

/* The end of an attempt, reported, in the worker's metrics. */
static void count_end(cv_runner *w, const cv_job *job, const cv_event *ev) {
    char labels[64];

    snprintf(labels, sizeof(labels), "status=\"%s\"", ev->type + 4); /* past "run." */
    cv_metrics_add(w->m_finished, labels, 1);
    if (ev->rows_read > 0)
        cv_metrics_add(w->m_rows_read, "", (double)ev->rows_read);
    if (ev->rows_written > 0)
        cv_metrics_add(w->m_rows_written, "", (double)ev->rows_written);
    if (ev->duration_ms >= 0) {
        snprintf(labels, sizeof(labels), "kind=\"%s\"", job->kind[0] ? job->kind : "sql_transfer");
        cv_metrics_observe(w->m_duration, labels, (double)ev->duration_ms / 1000.0);
    }
}

/* Publishes the end of an attempt. A failed or timed-out attempt before the
 * last goes to the retry topic as the next attempt, due after its backoff,
 * and the run becomes "retrying"; the last one fails the run for good. The
 * lease is stretched first so that the scheduler leaves the attempt alone
 * while the collector records its end; an attempt whose lease was lost
 * reports nothing (another attempt has taken over). */
static cv_err finish(cv_attempt *a, cv_event *ev, char *errbuf, size_t errlen) {
    cv_runner *w = a->r;
    const cv_job *job = &a->job;
    bool retry = (strcmp(ev->type, CV_EVENT_RUN_FAILED) == 0 ||
                  strcmp(ev->type, CV_EVENT_RUN_TIMED_OUT) == 0) &&
                 job->attempt < job->max_attempts;
    bool held = true, leased = a->claim != CV_CLAIM_CANCELLED;
    int64_t lease_ms = (int64_t)w->cfg.lease_seconds * 1000;
    char why[256];
    cv_err err;

    /* Stretched only when less than half of it is left: a short job reports
     * well within the lease it claimed, without another write. */
    if (leased && !atomic_load(&a->lease_lost) &&
        cv_time_mono_ms() - atomic_load(&a->renewed_ms) > lease_ms / 2 &&
        cv_lease_renew(w->mongo, job->run_id, job->attempt, w->cfg.worker_id, 600000, &held, why,
                       sizeof(why)) != CV_OK)
        cv_log_warn("run %s: lease not extended for reporting: %s", job->run_id, why);
    if (atomic_load(&a->lease_lost) || !held) {
        cv_log_warn("run %s attempt %d: the lease ran out and the run was taken over; "
                    "this attempt's end (%s) is not reported",
                    job->run_id, job->attempt, ev->type + 4);
        return CV_OK;
    }
    if (retry) {
        cv_job next = *job;
        char *msg;
        next.attempt = job->attempt + 1;
        /* Counted from the failure (the event's time), not from after the
         * lease was stretched: the delay users set is the delay they get. */
        next.not_before_ms = (ev->time_ms > 0 ? ev->time_ms : cv_time_now_ms()) +
                             cv_job_retry_delay_ms(job->backoff_seconds, next.attempt);
        if (!(msg = cv_job_encode(&next)))
            return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory encoding a retry");
        err = produce(w, CV_TOPIC_RETRY, job->job_id, msg, errbuf, errlen);
        free(msg);
        if (err)
            return err;
        snprintf(ev->type, sizeof(ev->type), "%s", CV_EVENT_RUN_RETRYING);
        ev->next_attempt_ms = next.not_before_ms;
        cv_log_info("run %s: attempt %d of %d failed; attempt %d in %lld ms", job->run_id,
                    job->attempt, job->max_attempts, next.attempt,
                    (long long)(next.not_before_ms - cv_time_now_ms()));
    }
    if ((err = publish_event(w, ev, errbuf, errlen)))
        return err;
    count_end(w, job, ev);
    /* An attempt that ended for good has its lease marked done by the
     * worker's marking thread (cv_ending.h), within 200 ms; until then the
     * final event just acknowledged makes the run's record final, which is
     * what a later claim, the lease sweep and the pruner read (cv_lease.h).
     * A retry is marked on the lease, which the next attempt's claim reads. */
    if (leased && retry &&
        cv_lease_release(w->mongo, job->run_id, job->attempt, w->cfg.worker_id, ev->next_attempt_ms,
                         why, sizeof(why)) != CV_OK)
        cv_log_warn("run %s: lease not released: %s", job->run_id, why);
    a->ended = leased && !retry;
    return CV_OK;
}

/* What a runner hands back to cv_attempt_run(), which publishes it. */
typedef struct outcome {
    const char *code;   /* static: NULL when the job succeeded, else "cancelled",
                           "timed_out" or the code of its failure */
    char why[1024];     /* the reason, when code is set */
    bool superseded;    /* another delivery of the run is loading it and reports
                           its end: this attempt says nothing more */
    int64_t started_ms; /* monotonic, when the runner began */
} outcome;

/* Publishes the end of an attempt as the runner left it: the event's type
 * from the outcome's code, its time now (retries count their backoff from
 * it), its duration unless the runner measured its own. A failure is logged
 * here, a success by its runner (which knows what to say about it). */
static cv_err report(cv_attempt *a, cv_event *ev, const outcome *o, char *errbuf, size_t errlen) {
    const cv_job *job = &a->job;
    const char *type = !o->code                            ? CV_EVENT_RUN_SUCCEEDED
                       : strcmp(o->code, "cancelled") == 0 ? CV_EVENT_RUN_CANCELLED
                       : strcmp(o->code, "timed_out") == 0 ? CV_EVENT_RUN_TIMED_OUT
                                                           : CV_EVENT_RUN_FAILED;

    snprintf(ev->type, sizeof(ev->type), "%s", type);
    ev->time_ms = cv_time_now_ms();
    if (ev->duration_ms < 0)
        ev->duration_ms = cv_time_mono_ms() - o->started_ms;
    if (o->code) {
        snprintf(ev->error_code, sizeof(ev->error_code), "%s", o->code);
        snprintf(ev->error_message, sizeof(ev->error_message), "%s", o->why);
        if (ev->rows_read >= 0)
            cv_log_warn("run %s ended (%s) after %lld rows: %s: %s", job->run_id, type + 4,
                        (long long)ev->rows_read, o->code, o->why);
        else
            cv_log_warn("run %s ended (%s): %s: %s", job->run_id, type + 4, o->code, o->why);
    }
    return finish(a, ev, errbuf, errlen);
}

cv_err cv_runner_odbc(cv_runner *w, const char *id, char **out, char *errbuf, size_t errlen) {
    bson_t *doc = NULL;
    bson_iter_t it;
    cv_err err =
        cv_cache_find_id(w->connections, w->mongo, CV_COLL_CONNECTIONS, id, &doc, errbuf, errlen);

    *out = NULL;
    if (err == CV_ERR_NOT_FOUND)
        return cv_err_set(errbuf, errlen, err, "connection %s does not exist", id);
    if (err)
        return err;
    if (bson_iter_init_find(&it, doc, "odbc_sealed") && BSON_ITER_HOLDS_UTF8(&it)) {
        char why[256];
        err = cv_secret_open_any(
            w->cfg.secret_key, (const unsigned char(*)[CV_SECRET_KEY_LEN])w->cfg.old_keys,
            w->cfg.n_old_keys, id, bson_iter_utf8(&it, NULL), out, NULL, why, sizeof(why));
        if (err)
            cv_err_set(errbuf, errlen, err, "connection %s: %s", id, why);
    } else {
        err = cv_err_set(errbuf, errlen, CV_ERR_INVALID, "connection %s has no ODBC string", id);
    }
    bson_destroy(doc);
    return err;
}

/* Whether the attempt is to end as cancelled without running. A first claim
 * needs no read: a cancel asked for before it blocks the claim instead
 * (cv_lease_block()). */
static bool cancelled_before_start(cv_attempt *a) {
    if (a->claim == CV_CLAIM_CANCELLED)
        return true;
    return a->claim != CV_CLAIM_TAKEN && cv_runs_cancel_requested(a->r->mongo, a->job.run_id);
}

/* State of the progress hook for one running attempt. */
typedef struct progress_state {
    cv_attempt *a;
    cv_runner *w;
    const cv_job *job;
    const char *origin_odbc; /* for the estimate of the rows; NULL: none */
    cv_estimate *estimate;   /* started once the run lasts (cv_estimate.h) */
    bool estimate_asked;
    int64_t started_ms, deadline_ms, last_report_ms, last_cancel_check_ms;
} progress_state;

/* Starts the origin's estimate of the query's rows once the run has lasted
 * half a progress interval (a short run never pays for it). A run that reads
 * a window of its query (incremental or batched) gets none: the estimate
 * would be of the whole query. */
static void maybe_estimate(progress_state *p, int64_t now) {
    const cv_load_spec *load = &p->job->load;

    if (p->estimate_asked || !p->origin_odbc || load->watermark[0] || load->batch_rows ||
        now - p->started_ms < p->w->cfg.progress_interval_ms / 2)
        return;
    p->estimate_asked = true;
    p->estimate = cv_estimate_start(p->origin_odbc, p->job->query);
}

/* Called by the transfer after every block: enforces the time limit, notices
 * a cancel request (at most once a second) and reports progress. */
static cv_err on_progress(void *ctx, int64_t rows_read, char *errbuf, size_t errlen) {
    progress_state *p = ctx;
    int64_t now = cv_time_mono_ms();

    if (atomic_load(&p->a->lease_lost))
        return cv_err_set(errbuf, errlen, CV_ERR_CANCELLED,
                          "stopped after %lld rows: the lease on this attempt was lost",
                          (long long)rows_read);
    if (p->deadline_ms && now > p->deadline_ms)
        return cv_err_set(errbuf, errlen, CV_ERR_TIMEOUT,
                          "stopped after %lld rows: over the job's limit of %d s",
                          (long long)rows_read, p->job->load.timeout_seconds);
    if (now - p->last_cancel_check_ms >= 1000) {
        p->last_cancel_check_ms = now;
        if (cv_runs_cancel_requested(p->w->mongo, p->job->run_id))
            return cv_err_set(errbuf, errlen, CV_ERR_CANCELLED,
                              "stopped after %lld rows: cancelled on request",
                              (long long)rows_read);
    }
    maybe_estimate(p, now);
    if (now - p->last_report_ms >= p->w->cfg.progress_interval_ms) {
        cv_event ev;
        char why[256];
        p->last_report_ms = now;
        if (cv_event_init(&ev, CV_EVENT_RUN_PROGRESS) == CV_OK) {
            cv_event_from_job(&ev, p->job);
            ev.rows_read = rows_read;
            ev.duration_ms = now - p->started_ms;
            ev.rows_per_second = ev.duration_ms > 0 ? rows_read * 1000 / ev.duration_ms : 0;
            ev.rows_expected = cv_estimate_rows(p->estimate);
            /* Progress is a courtesy: a lost report is not worth failing the run. */
            if (send_event(p->w, &ev, false, why, sizeof(why)) != CV_OK)
                cv_log_warn("run %s: progress not published: %s", p->job->run_id, why);
        }
    }
    return CV_OK;
}

/* Kind "sql_transfer": the job's query on its origin loaded into its table on
 * the destination (cv_transfer.h). */
static void run_transfer(cv_attempt *a, cv_event *ev, outcome *o) {
    cv_runner *w = a->r;
    const cv_job *job = &a->job;
    char *origin = NULL, *dest = NULL;
    cv_transfer_result res = {0};
    cv_err err;
    progress_state prog = {.a = a,
                           .w = w,
                           .job = job,
                           .started_ms = o->started_ms,
                           .last_report_ms = o->started_ms,
                           .last_cancel_check_ms = o->started_ms};

    if (job->load.timeout_seconds > 0)
        prog.deadline_ms = o->started_ms + (int64_t)job->load.timeout_seconds * 1000;
    if ((err = cv_runner_odbc(w, job->origin_connection_id, &origin, o->why, sizeof(o->why)))) {
        res.error_code = "origin_lookup";
    } else if ((err = cv_runner_odbc(w, job->destination_connection_id, &dest, o->why,
                                     sizeof(o->why)))) {
        res.error_code = "destination_lookup";
    } else {
        prog.origin_odbc = origin;
        cv_transfer_spec spec = {.origin_odbc = origin,
                                 .destination_odbc = dest,
                                 .query = job->query,
                                 .destination_table = job->destination_table,
                                 .run_id = job->run_id,
                                 .job_id = job->job_id,
                                 .load = job->load,
                                 .transform = job->transform,
                                 .progress = on_progress,
                                 .progress_ctx = &prog};
        err = cv_transfer_run(&spec, &res, o->why, sizeof(o->why));
        cv_estimate_stop(prog.estimate);
    }
    free(origin);
    free(dest);

    if (res.superseded) {
        /* Another delivery of this run committed a batch this one was loading:
         * that delivery is the one running, and it reports the outcome. */
        cv_log_warn("run %s: %s; leaving it to that delivery", job->run_id, o->why);
        o->superseded = true;
        return;
    }
    ev->rows_read = res.rows_read;
    ev->rows_written = res.rows_written;
    if (res.resumed_rows > 0)
        cv_log_info("run %s resumed after %lld rows committed by earlier attempts", job->run_id,
                    (long long)res.resumed_rows);
    if (err) {
        o->code = res.error_code ? res.error_code : cv_err_str(err);
        return;
    }
    snprintf(ev->watermark, sizeof(ev->watermark), "%s", res.watermark);
    if (res.already_loaded)
        cv_log_info("run %s was loaded by an earlier delivery (%lld rows in the ledger); "
                    "not loading again",
                    job->run_id, (long long)res.rows_written);
    else
        cv_log_info("run %s succeeded: %lld rows in %lld ms", job->run_id,
                    (long long)res.rows_written, (long long)(cv_time_mono_ms() - o->started_ms));
}

/* ---- kind "python" ---------------------------------------------------------- */

/* Copies up to len bytes of a script's output line as valid UTF-8 (what JSON
 * and MongoDB require): invalid bytes and NUL become U+FFFD, and the copy
 * stops before a character that would not fit. */
static void utf8_clean(char *dst, size_t dstlen, const char *src, size_t len) {
    static const char replacement[] = "\xEF\xBF\xBD";
    const unsigned char *p = (const unsigned char *)src, *end = p + len;
    size_t o = 0;

    while (p < end) {
        size_t n = *p < 0x80         ? 1
                   : (*p >> 5) == 6  ? 2
                   : (*p >> 4) == 14 ? 3
                   : (*p >> 3) == 30 ? 4
                                     : 0;
        bool valid = n > 0 && *p != 0 && (size_t)(end - p) >= n;
        for (size_t i = 1; valid && i < n; i++)
            valid = (p[i] & 0xC0) == 0x80;
        if (valid && n == 2)
            valid = *p >= 0xC2; /* no overlong forms */
        if (valid && n == 3)
            valid = !(*p == 0xE0 && p[1] < 0xA0) && !(*p == 0xED && p[1] >= 0xA0);
        if (valid && n == 4)
            valid = *p <= 0xF4 && !(*p == 0xF0 && p[1] < 0x90) && !(*p == 0xF4 && p[1] >= 0x90);
        if (!valid) {
            if (o + 3 >= dstlen)
                break;
            memcpy(dst + o, replacement, 3);
            o += 3;
            p++;
            continue;
        }
        if (o + n >= dstlen)
            break;
        memcpy(dst + o, p, n);
        o += n;
        p += n;
    }
    dst[o] = '\0';
}

/* Where one attempt's log lines go out. */
typedef struct log_out {
    bool failed;     /* a line was lost (one warning in the worker's log) */
    int64_t last_ms; /* the last line's time */
} log_out;

/* State of one Python run's hooks. */
typedef struct python_state {
    cv_attempt *a;
    cv_runner *w;
    const cv_job *job;
    int64_t last_cancel_check_ms;
    log_out log;
} python_state;

/* Publishes one line of a run's output as a run.log event. Lines are read
 * back in the order of their times (and random ids within one): a line in
 * the same millisecond as the one before gets the next millisecond, so that
 * a burst keeps its order (the rate limit's burst of 1,000 lines moves them
 * a second at most). A lost log line is not worth failing the run: the first
 * loss is logged. */
static void publish_log(cv_runner *w, const cv_job *job, const char *stream, const char *line,
                        size_t len, bool cut, log_out *out) {
    char why[256];
    cv_event ev;

    if (cv_event_init(&ev, CV_EVENT_RUN_LOG) != CV_OK)
        return;
    if (ev.time_ms <= out->last_ms)
        ev.time_ms = out->last_ms + 1;
    out->last_ms = ev.time_ms;
    cv_event_from_job(&ev, job);
    snprintf(ev.stream, sizeof(ev.stream), "%s", stream);
    utf8_clean(ev.line, sizeof(ev.line), line, len);
    ev.line_cut = cut;
    if (send_event(w, &ev, false, why, sizeof(why)) != CV_OK && !out->failed) {
        out->failed = true;
        cv_log_warn("run %s: output lines not published: %s", job->run_id, why);
    }
}

static void on_script_line(void *ctx, cv_script_stream stream, const char *line, size_t len,
                           bool cut) {
    python_state *p = ctx;
    publish_log(p->w, p->job, stream == CV_SCRIPT_STDOUT ? "stdout" : "stderr", line, len, cut,
                &p->log);
}

/* Stops the script when someone asked for the run to be cancelled (checked
 * at most once a second). */
static cv_err on_script_check(void *ctx, char *errbuf, size_t errlen) {
    python_state *p = ctx;
    int64_t now = cv_time_mono_ms();

    if (atomic_load(&p->a->lease_lost))
        return cv_err_set(errbuf, errlen, CV_ERR_CANCELLED, "the lease on this attempt was lost");
    if (now - p->last_cancel_check_ms < 1000)
        return CV_OK;
    p->last_cancel_check_ms = now;
    if (cv_runs_cancel_requested(p->w->mongo, p->job->run_id))
        return cv_err_set(errbuf, errlen, CV_ERR_CANCELLED, "cancelled on request");
    return CV_OK;
}

/* What a Python job takes from its project: the interpreter (NULL for the
 * default) and, only when the project exposes them, the origin's and the
 * destination's connection strings as environment entries. The caller frees
 * the three strings with free(). */
static cv_err python_project(cv_runner *w, const cv_job *job, char **interpreter, char **origin,
                             char **destination, char *errbuf, size_t errlen) {
    static const char *const names[2][2] = {
        {"origin_connection_id", "CONVUTELL_ORIGIN_ODBC"},
        {"destination_connection_id", "CONVUTELL_DESTINATION_ODBC"}};
    char **out[2] = {origin, destination};
    bson_t *doc = NULL;
    bson_iter_t it;
    cv_err err;

    *interpreter = *origin = *destination = NULL;
    err = cv_mongo_find_id(w->mongo, CV_COLL_PROJECTS, job->project_id, &doc, errbuf, errlen);
    if (err == CV_ERR_NOT_FOUND)
        return cv_err_set(errbuf, errlen, err, "project %s does not exist", job->project_id);
    if (err)
        return err;
    if (bson_iter_init_find(&it, doc, "python_interpreter") && BSON_ITER_HOLDS_UTF8(&it) &&
        !(*interpreter = strdup(bson_iter_utf8(&it, NULL))))
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    if (!err && bson_iter_init_find(&it, doc, "expose_connections") && BSON_ITER_HOLDS_BOOL(&it) &&
        bson_iter_bool(&it)) {
        for (int i = 0; i < 2 && !err; i++) {
            char *odbc = NULL;
            size_t len;
            if (!bson_iter_init_find(&it, doc, names[i][0]) || !BSON_ITER_HOLDS_UTF8(&it)) {
                err = cv_err_set(errbuf, errlen, CV_ERR_INVALID, "project %s has no %s",
                                 job->project_id, names[i][0]);
                break;
            }
            if ((err = cv_runner_odbc(w, bson_iter_utf8(&it, NULL), &odbc, errbuf, errlen)))
                break;
            len = strlen(names[i][1]) + strlen(odbc) + 2;
            if ((*out[i] = malloc(len)))
                snprintf(*out[i], len, "%s=%s", names[i][1], odbc);
            else
                err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
            free(odbc);
        }
    }
    bson_destroy(doc);
    return err;
}

/* What a script gets to know: its run and its parameters, nothing else, and
 * the project's connection strings when it exposes them. */
typedef struct script_env {
    char run[64], job[64], project[64], attempt[48];
    char *parameters;    /* owned: "CONVUTELL_PARAMETERS=<JSON object>" */
    const char *vars[8]; /* NULL-terminated, pointing into this struct or the caller's */
    int n;
} script_env;

static cv_err script_env_init(script_env *e, const cv_job *job) {
    const char *parameters = job->python.parameters ? job->python.parameters : "{}";
    size_t plen = strlen(parameters) + 32;

    snprintf(e->run, sizeof(e->run), "CONVUTELL_RUN_ID=%s", job->run_id);
    snprintf(e->job, sizeof(e->job), "CONVUTELL_JOB_ID=%s", job->job_id);
    snprintf(e->project, sizeof(e->project), "CONVUTELL_PROJECT_ID=%s", job->project_id);
    snprintf(e->attempt, sizeof(e->attempt), "CONVUTELL_ATTEMPT=%d", job->attempt);
    if (!(e->parameters = malloc(plen)))
        return CV_ERR_NOMEM;
    snprintf(e->parameters, plen, "CONVUTELL_PARAMETERS=%s", parameters);
    e->n = 0;
    e->vars[e->n++] = e->run;
    e->vars[e->n++] = e->job;
    e->vars[e->n++] = e->project;
    e->vars[e->n++] = e->attempt;
    e->vars[e->n++] = e->parameters;
    e->vars[e->n] = NULL;
    return CV_OK;
}

/* Adds "NAME=value" (may be NULL: nothing to add; borrowed). */
static void script_env_add(script_env *e, const char *var) {
    if (var && e->n < (int)(sizeof(e->vars) / sizeof(e->vars[0])) - 1) {
        e->vars[e->n++] = var;
        e->vars[e->n] = NULL;
    }
}

/* The sandbox's spec for the job's script, its hooks reporting to state. */
static void script_spec(cv_script_spec *spec, const cv_python_spec *py, const char *interpreter,
                        const char *const *env, python_state *state) {
    memset(spec, 0, sizeof(*spec));
    spec->script = py->script;
    spec->interpreter = interpreter;
    spec->env = env;
    spec->limits.timeout_seconds = py->timeout_seconds;
    spec->limits.cpu_seconds = py->limits.cpu_seconds;
    spec->limits.memory_mb = py->limits.memory_mb;
    spec->limits.open_files = py->limits.open_files;
    spec->limits.file_size_mb = py->limits.file_size_mb;
    spec->limits.processes = py->limits.processes;
    spec->on_line = on_script_line;
    spec->check = on_script_check;
    spec->ctx = state;
    spec->max_line = CV_LOG_LINE_MAX;
}

/* Kind "python": the job's script in the sandbox (cv_script.h), its output
 * lines published as run.log events. */
static void run_python(cv_attempt *a, cv_event *ev, outcome *o) {
    cv_runner *w = a->r;
    const cv_job *job = &a->job;
    python_state state = {.a = a, .w = w, .job = job, .last_cancel_check_ms = o->started_ms};
    char *interpreter = NULL, *origin_env = NULL, *dest_env = NULL;
    script_env env = {.parameters = NULL};
    cv_script_spec spec;
    cv_script_result res;

    memset(&res, 0, sizeof(res));
    if (script_env_init(&env, job) != CV_OK) {
        o->code = cv_err_str(CV_ERR_NOMEM);
        snprintf(o->why, sizeof(o->why), "out of memory");
        goto out;
    }
    if (python_project(w, job, &interpreter, &origin_env, &dest_env, o->why, sizeof(o->why))) {
        o->code = "project_lookup";
        goto out;
    }
    script_env_add(&env, origin_env);
    script_env_add(&env, dest_env);
    script_spec(&spec, &job->python, interpreter, env.vars, &state);
    if (cv_script_run(&spec, &res, o->why, sizeof(o->why)) != CV_OK) {
        o->code = "script_start";
        goto out;
    }
    ev->duration_ms = res.duration_ms;
    ev->exit_code = res.signal ? -1 : res.exit_code;
    ev->lines_dropped = res.lines_dropped;
    if (res.stopped) {
        o->code = "cancelled";
        snprintf(o->why, sizeof(o->why), "stopped after %lld ms: cancelled on request",
                 (long long)res.duration_ms);
    } else if (res.limit || res.exit_code != 0 || res.signal) {
        bool timed_out = res.limit && strcmp(res.limit, "timeout_seconds") == 0;
        o->code = timed_out ? "timed_out" : res.limit ? "limit_exceeded" : "script_failed";
        cv_script_describe(&spec, &res, o->why, sizeof(o->why));
    } else {
        cv_log_info("run %s succeeded in %lld ms (%lld lines, %lld dropped)", job->run_id,
                    (long long)res.duration_ms, (long long)res.lines, (long long)res.lines_dropped);
    }
out:
    free(env.parameters);
    free(interpreter);
    free(origin_env); /* connection strings hold passwords: not kept longer than needed */
    free(dest_env);
}

/* Publishes a sql job's statement row counts as run.log lines. */
typedef struct statement_log {
    cv_attempt *a;
    log_out log;
} statement_log;

static void log_statement(void *ctx, const char *line) {
    statement_log *l = ctx;
    publish_log(l->a->r, &l->a->job, "stdout", line, strlen(line), false, &l->log);
}

/* Kind "sql": the job's statements in one transaction, each on its own (split
 * at semicolons outside quotes and comments); every statement's row count
 * becomes a run.log line and their sum the run's rows_written. */
static void run_sql(cv_attempt *a, cv_event *ev, outcome *o) {
    const cv_job *job = &a->job;
    cv_sqljob_result pass = {0};
    statement_log log = {.a = a};
    char *odbc = NULL;

    if (cv_runner_odbc(a->r, job->sql_connection_id, &odbc, o->why, sizeof(o->why)) != CV_OK) {
        o->code = "connection_lookup";
        return;
    }
    cv_sqljob_run(a->r->odbc_pool, odbc, job->statements, job->run_id, log_statement, &log, &pass);
    free(odbc);
    if (pass.code) {
        o->code = pass.code;
        snprintf(o->why, sizeof(o->why), "%s", pass.why);
        return;
    }
    ev->rows_written = pass.total;
    cv_log_info("run %s succeeded: %lld rows changed", job->run_id, pass.total);
}

/* Kind "query" is the console's (cv_console.h), on a topic of its own: a
 * stored job never has it (the worker's check dead-letters such a message
 * before it gets here). */
static void run_misrouted(cv_attempt *a, cv_event *ev, outcome *o) {
    (void)a;
    (void)ev;
    o->code = "misrouted";
    snprintf(o->why, sizeof(o->why), "a query of the SQL console runs from %s", CV_TOPIC_QUERIES);
}

/* How each kind of job runs; a message without a kind is a transfer (the
 * worker checked it against the stored job, cv_launch_resolve()). A runner
 * fills the final event with what it measured and the outcome with how the
 * job ended; cv_attempt_run() does the rest, the same for every kind. */
typedef void runner(cv_attempt *a, cv_event *ev, outcome *o);
static runner *const runners[] = {
    [CV_JOB_KIND_NONE] = run_transfer,     /* a message that does not say */
    [CV_JOB_KIND_TRANSFER] = run_transfer, /* "sql_transfer" */
    [CV_JOB_KIND_PYTHON] = run_python,     /* "python": cv_script.h */
    [CV_JOB_KIND_SQL] = run_sql,           /* "sql": cv_sqljob.h */
    [CV_JOB_KIND_QUERY] = run_misrouted,   /* never a stored job's (cv_console.h) */
};

cv_err cv_attempt_run(cv_attempt *a, char *errbuf, size_t errlen) {
    outcome o = {.code = NULL};
    cv_event ev;
    cv_err err;

    if ((err = publish_started(a->r, &a->job, errbuf, errlen)))
        return err;
    o.started_ms = cv_time_mono_ms();
    if ((err = cv_event_init(&ev, CV_EVENT_RUN_SUCCEEDED)))
        return cv_err_set(errbuf, errlen, err, "cannot make an event id");
    cv_event_from_job(&ev, &a->job);
    if (a->refused[0]) { /* a known job that may not run now (its project is not active) */
        o.code = "project_inactive";
        snprintf(o.why, sizeof(o.why), "%s", a->refused);
    } else if (cancelled_before_start(a)) {
        o.code = "cancelled";
        snprintf(o.why, sizeof(o.why), "cancelled before it started");
    } else {
        runners[cv_job_kind_parse(a->job.kind)](a, &ev, &o);
    }
    if (o.superseded)
        return CV_OK;
    return report(a, &ev, &o, errbuf, errlen);
}

void cv_attempt_renew(cv_attempt *a) {
    cv_runner *w = a->r;
    int64_t now = cv_time_mono_ms();
    char why[256];
    bool held = true;

    if (a->claim == CV_CLAIM_CANCELLED)
        return;
    if (cv_lease_renew(w->mongo, a->job.run_id, a->job.attempt, w->cfg.worker_id,
                       (int64_t)w->cfg.lease_seconds * 1000, &held, why, sizeof(why)) != CV_OK) {
        cv_log_warn("run %s: heartbeat not recorded: %s", a->job.run_id, why);
    } else if (!held && !atomic_load(&a->lease_lost)) {
        cv_log_warn("run %s attempt %d: the lease was lost; stopping", a->job.run_id,
                    a->job.attempt);
        atomic_store(&a->lease_lost, true);
    } else if (held) {
        atomic_store(&a->renewed_ms, now);
    }
}
