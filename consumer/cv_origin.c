/*
 * cv_origin.c - the origin of a transfer. See cv_origin.h.
 */
#define _GNU_SOURCE /* strcasestr */
#include "cv_origin.h"

#include "cv_dialect.h"
#include "cv_maria.h"
#include "cv_pg.h"
#include "cv_sqlsplit.h"
#include "cv_sqltext.h"
#include "cv_stage.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* Executes `sql` (built by the caller, NULL when that ran out of memory) on
 * `select`, and frees it. */
static cv_err exec_text(cv_odbc_stmt *select, char *sql, char *errbuf, size_t errlen) {
    cv_err err = sql ? cv_odbc_stmt_exec(select, sql, errbuf, errlen)
                     : cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build the origin query");

    free(sql);
    return err;
}

/* An incremental job's window: from the watermark its last run committed
 * (lo; lo_null when the ledger has none) to the watermark column's MAX now,
 * or the bound a resumed run started with, written into `watermark`. */
typedef struct bounds {
    char lo[256];
    bool lo_null;
    bool hi_null;     /* the origin has no rows: keep the old watermark */
    cv_odbc_col type; /* the watermark column's, for binding both bounds */
} bounds;

static cv_err find_bounds(const cv_transfer_spec *spec, cv_odbc_stmt *select, cv_sink *k,
                          const cv_sink_resume *resume, const char *query, const char *wm_ident,
                          bounds *b, char *watermark, size_t wmlen, char *errbuf, size_t errlen) {
    char head[320];
    size_t len;
    cv_err err;

    b->lo[0] = '\0';
    b->lo_null = b->hi_null = true;
    err = cv_sink_ledger_watermark(k, spec->job_id, b->lo, sizeof(b->lo), &b->lo_null, errbuf,
                                   errlen);
    if (err && err != CV_ERR_NOT_FOUND)
        return err;
    snprintf(head, sizeof(head), "MAX(%s)", wm_ident);
    if (!(err = exec_text(select, cv_sqltext_wrap(head, query, ""), errbuf, errlen))) {
        size_t rows = 0;
        err = cv_odbc_stmt_fetch_block(select, &rows, errbuf, errlen);
        if (!err) {
            const char *v = cv_odbc_stmt_value(select, 0, 0, &len);
            b->type = *cv_odbc_stmt_col(select, 0);
            b->hi_null = v == NULL;
            snprintf(watermark, wmlen, "%s", v ? v : "");
        }
    }
    if (err == CV_ERR_NOT_FOUND)
        err = CV_OK;
    cv_odbc_stmt_close(select);
    if (err) {
        char why[512];
        snprintf(why, sizeof(why), "%s", errbuf ? errbuf : "");
        return cv_err_set(errbuf, errlen, err, "watermark column %s: %s", spec->load.watermark,
                          why);
    }
    if (resume->batches && resume->watermark[0]) { /* the bound the run started with */
        snprintf(watermark, wmlen, "%s", resume->watermark);
        b->hi_null = false;
    }
    if (b->hi_null) /* no rows at all: keep the old watermark */
        snprintf(watermark, wmlen, "%s", b->lo_null ? "" : b->lo);
    return CV_OK;
}

/* Runs the origin query. For an incremental job it first finds the highest
 * watermark value now in the origin (hi) and then selects the rows with
 * lo <= value < hi, lo being the watermark the destination's ledger holds.
 * Rows at hi wait for the next run: rows that share a value with the last ones
 * loaded can still arrive, and [lo, hi) ranges never overlap, so nothing is
 * loaded twice and nothing that shares a boundary value is skipped. A batched
 * job's rows come ordered by its checkpoint column, and a resumed one's start
 * past the last checkpoint committed (with the hi its first attempt chose). */
static cv_err open_origin(const cv_transfer_spec *spec, cv_odbc_stmt *select, cv_sink *k,
                          const cv_sink_resume *resume, char *watermark, size_t wmlen, char *errbuf,
                          size_t errlen) {
    const cv_load_spec *load = &spec->load;
    char wm_ident[300], ck_ident[300];
    char quote = cv_odbc_quote_char(cv_odbc_stmt_conn(select));
    bounds b = {.lo_null = true, .hi_null = true};
    const char *params[3];
    cv_odbc_col types[3];
    cv_sqltext_window window = {0};
    char *query = NULL, *sql = NULL;
    int n = 0;
    cv_err err = CV_OK;

    watermark[0] = '\0';
    query = cv_sqltext_bare_query(spec->query);
    if (query && !load->watermark[0] && !load->batch_rows) {
        /* As written, but for its end: a driver may add to it (psqlODBC's
         * cursors do), which a trailing comment or semicolon would break. */
        err = cv_odbc_stmt_exec(select, query, errbuf, errlen);
        free(query);
        return err;
    }
    if (!query ||
        cv_sqltext_quote_ident(load->watermark, quote, false, wm_ident, sizeof(wm_ident)) != 0 ||
        cv_sqltext_quote_ident(load->checkpoint, quote, false, ck_ident, sizeof(ck_ident)) != 0) {
        free(query);
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build the origin query");
    }

    if (load->watermark[0]) {
        if ((err = find_bounds(spec, select, k, resume, query, wm_ident, &b, watermark, wmlen,
                               errbuf, errlen)))
            goto out;
        types[0] = types[1] = b.type;
    }
    if (resume->batches) { /* the checkpoint column's type, for its bound */
        if ((err = exec_text(select, cv_sqltext_wrap(ck_ident, query, " WHERE 1 = 0"), errbuf,
                             errlen)))
            goto out;
        types[2] = *cv_odbc_stmt_col(select, 0);
        cv_odbc_stmt_close(select);
    }

    window.watermark = load->watermark[0] ? wm_ident : NULL;
    window.empty = b.hi_null;
    window.from = !b.lo_null;
    if (window.watermark && !window.empty) {
        if (window.from)
            params[n++] = b.lo;
        params[n++] = watermark;
    }
    window.checkpoint = load->batch_rows || resume->batches ? ck_ident : NULL;
    window.after = resume->batches > 0;
    window.ordered = load->batch_rows > 0;
    if (window.after) {
        types[n] = types[2];
        params[n++] = resume->checkpoint;
    }
    if (!(sql = cv_sqltext_window_query(query, &window))) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build the origin query");
        goto out;
    }
    err = n ? cv_odbc_stmt_exec_params(select, sql, n, params, types, errbuf, errlen)
            : cv_odbc_stmt_exec(select, sql, errbuf, errlen);
out:
    free(sql);
    free(query);
    return err;
}

/* Describes the query's columns without running it (no row comes back), for
 * origins whose rows then come by another way than this ODBC statement. */
static cv_err describe_query(cv_odbc_stmt *select, const char *query, char *errbuf, size_t errlen) {
    char *bare = cv_sqltext_bare_query(query);
    cv_err err = bare
                     ? exec_text(select, cv_sqltext_wrap("*", bare, " WHERE 1 = 0"), errbuf, errlen)
                     : cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");

    free(bare);
    return err;
}

/* ---- the watchdog ----------------------------------------------------------
 * Running the origin's query can take long before the first row (a sort, a
 * slow view), and the thread that asked is blocked in the driver meanwhile. A
 * watchdog thread calls the progress hook every second during that time and,
 * when the hook refuses (a cancel request, the time limit), cancels the
 * statement, which makes the blocked call fail. */
typedef struct watchdog {
    const cv_transfer_spec *spec;
    cv_odbc_stmt *stmt;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bool finished;
    cv_err err;
    char why[512];
} watchdog;

static void *watchdog_run(void *arg) {
    watchdog *w = arg;

    pthread_mutex_lock(&w->lock);
    while (!w->finished) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        if (pthread_cond_timedwait(&w->changed, &w->lock, &until) == 0)
            continue;
        pthread_mutex_unlock(&w->lock);
        w->err = w->spec->progress(w->spec->progress_ctx, 0, w->why, sizeof(w->why));
        if (w->err) {
            cv_odbc_stmt_cancel(w->stmt);
            return NULL;
        }
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* Runs open_origin() (or only describes the query, for a native origin) under
 * a watchdog. */
cv_err cv_origin_open(const cv_transfer_spec *spec, cv_odbc_stmt *select, cv_sink *k,
                      const cv_sink_resume *resume, bool describe_only, cv_transfer_result *res,
                      char *errbuf, size_t errlen) {
    watchdog w = {.spec = spec, .stmt = select};
    bool watching = false;
    cv_err err;

    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.changed, NULL);
    watching = spec->progress && pthread_create(&w.thread, NULL, watchdog_run, &w) == 0;
    err = describe_only ? describe_query(select, spec->query, errbuf, errlen)
                        : open_origin(spec, select, k, resume, res->watermark,
                                      sizeof(res->watermark), errbuf, errlen);
    if (watching) {
        pthread_mutex_lock(&w.lock);
        w.finished = true;
        pthread_cond_broadcast(&w.changed);
        pthread_mutex_unlock(&w.lock);
        pthread_join(w.thread, NULL);
    }
    pthread_cond_destroy(&w.changed);
    pthread_mutex_destroy(&w.lock);
    if (w.err) /* the query may have finished anyway; the refusal stands */
        return cv_stage_fail(res, cv_stage_stopped(w.err),
                             cv_err_set(errbuf, errlen, w.err, "%s", w.why));
    return err ? cv_stage_fail(res, "origin_query", err) : CV_OK;
}

/* Makes psqlODBC, MariaDB's driver and sqliteodbc stream a result instead of
 * reading it all into memory first (unless the user chose otherwise). */
char *cv_origin_streaming(const char *odbc, size_t block_rows) {
    size_t len = strlen(odbc) + 64;
    char *out = malloc(len);
    if (!out)
        return NULL;
    const char *sep = odbc[0] && odbc[strlen(odbc) - 1] != ';' ? ";" : "";
    if (cv_odbc_names_postgres(odbc) && !strcasestr(odbc, "UseDeclareFetch"))
        snprintf(out, len, "%s%sUseDeclareFetch=1;Fetch=%zu", odbc, sep, block_rows);
    else if (cv_maria_is_mariadb_odbc(odbc) && !strcasestr(odbc, "NO_CACHE"))
        snprintf(out, len, "%s%sNO_CACHE=1", odbc, sep); /* stream, forward-only */
    else if (strcasestr(odbc, "sqlite") && !strcasestr(odbc, "StepAPI"))
        snprintf(out, len, "%s%sStepAPI=1", odbc, sep); /* sqlite3_step, not get_table */
    else
        snprintf(out, len, "%s", odbc);
    return out;
}

/* Makes the origin's session read-only before its query runs, and refuses a
 * query of more than one statement (the second could undo the first's
 * setting), so that a transfer's query cannot change the origin. */
cv_err cv_origin_read_only(cv_odbc_conn *origin, const char *query, char *errbuf, size_t errlen) {
    cv_dialect d = cv_dialect_from_dbms(cv_odbc_dbms(origin));
    const char *sql = cv_dialect_read_only_sql(d);
    int n = cv_sqlsplit_count(query, d == CV_DIALECT_MARIADB);
    long long rows = 0;
    cv_err err;

    if (n != 1)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                          "the query must be one statement; it has %d", n);
    if (sql && (err = cv_odbc_exec_count(origin, sql, &rows, errbuf, errlen)))
        return err;
    return CV_OK;
}
