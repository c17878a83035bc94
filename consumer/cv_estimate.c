/*
 * cv_estimate.c - the origin's estimate of a transfer's rows. See cv_estimate.h.
 */
#include "cv_estimate.h"

#include "cv_log.h"
#include "cv_origin.h"
#include "cv_sqltext.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

struct cv_estimate {
    char *odbc, *query;
    pthread_t thread;
    pthread_mutex_t lock;
    cv_odbc_stmt *running; /* the statement under way, for a cancel; under lock */
    bool stopping;         /* under lock */
    _Atomic int64_t rows;
};

char *cv_estimate_sql(cv_dialect d, const char *query) {
    char *bare, *out = NULL;
    size_t len;

    if (d == CV_DIALECT_OTHER || !(bare = cv_sqltext_bare_query(query)))
        return NULL;
    if (d == CV_DIALECT_SQLITE) {
        out = cv_sqltext_wrap("count(*)", bare, "");
    } else {
        len = strlen(bare) + sizeof("EXPLAIN ");
        if ((out = malloc(len)))
            snprintf(out, len, "EXPLAIN %s", bare);
    }
    free(bare);
    return out;
}

/* A count as text: -1 unless it is a whole number >= 0. */
static int64_t parse_count(const char *text) {
    char *end;
    long long n;

    if (!text || !*text)
        return -1;
    errno = 0;
    n = strtoll(text, &end, 10);
    return errno || end == text || n < 0 ? -1 : (int64_t)n;
}

int64_t cv_estimate_plan_rows(const char *line) {
    const char *at = line ? strstr(line, " rows=") : NULL;

    return at ? parse_count(at + strlen(" rows=")) : -1;
}

/* Runs the estimate on `stmt` and reads it: PostgreSQL's plan's first line,
 * MariaDB's one-table plan's "rows", SQLite's count. -1 when unknown. */
static int64_t read_estimate(cv_odbc_stmt *stmt, cv_dialect d, const char *query) {
    char *sql = cv_estimate_sql(d, query), why[512];
    int64_t rows = -1;
    size_t got = 0, len;
    int col = 0;

    if (!sql)
        return -1;
    if (cv_odbc_stmt_exec(stmt, sql, why, sizeof(why)) != CV_OK ||
        cv_odbc_stmt_fetch_block(stmt, &got, why, sizeof(why)) != CV_OK || got == 0) {
        cv_log_debug("no estimate of a query's rows: %s", why);
        goto out;
    }
    if (d == CV_DIALECT_POSTGRES) {
        rows = cv_estimate_plan_rows(cv_odbc_stmt_value(stmt, 0, 0, &len));
    } else if (d == CV_DIALECT_SQLITE) {
        rows = parse_count(cv_odbc_stmt_value(stmt, 0, 0, &len));
    } else if (got == 1) { /* MariaDB: a plan of more tables multiplies guesses */
        while (col < cv_odbc_stmt_ncols(stmt) &&
               strcmp(cv_odbc_stmt_col(stmt, col)->name, "rows") != 0)
            col++;
        if (col < cv_odbc_stmt_ncols(stmt))
            rows = parse_count(cv_odbc_stmt_value(stmt, 0, col, &len));
    }
out:
    cv_odbc_stmt_close(stmt);
    free(sql);
    return rows;
}

static void *estimate_run(void *arg) {
    cv_estimate *e = arg;
    cv_odbc_conn *conn;
    cv_odbc_stmt *stmt = NULL;
    cv_dialect d;
    char why[512];
    bool stopping;

    if (!(conn = cv_odbc_connect(e->odbc, why, sizeof(why)))) {
        cv_log_debug("no estimate of a query's rows: %s", why);
        return NULL;
    }
    d = cv_dialect_from_dbms(cv_odbc_dbms(conn));
    /* The same guard as the transfer's own session: SQLite's count runs the query. */
    if (cv_origin_read_only(conn, e->query, why, sizeof(why)) != CV_OK ||
        !(stmt = cv_odbc_stmt_new(conn, why, sizeof(why))))
        goto out;
    pthread_mutex_lock(&e->lock);
    stopping = e->stopping;
    if (!stopping)
        e->running = stmt;
    pthread_mutex_unlock(&e->lock);
    if (!stopping) {
        int64_t rows = read_estimate(stmt, d, e->query);
        pthread_mutex_lock(&e->lock);
        e->running = NULL;
        pthread_mutex_unlock(&e->lock);
        atomic_store(&e->rows, rows);
    }
out:
    cv_odbc_stmt_destroy(stmt);
    cv_odbc_disconnect(conn);
    return NULL;
}

static void estimate_free(cv_estimate *e) {
    pthread_mutex_destroy(&e->lock);
    free(e->odbc);
    free(e->query);
    free(e);
}

cv_estimate *cv_estimate_start(const char *odbc, const char *query) {
    cv_estimate *e = calloc(1, sizeof(*e));

    if (!e)
        return NULL;
    atomic_init(&e->rows, -1);
    pthread_mutex_init(&e->lock, NULL);
    e->odbc = strdup(odbc);
    e->query = strdup(query);
    if (!e->odbc || !e->query || pthread_create(&e->thread, NULL, estimate_run, e) != 0) {
        estimate_free(e);
        return NULL;
    }
    return e;
}

int64_t cv_estimate_rows(cv_estimate *e) {
    return e ? atomic_load(&e->rows) : -1;
}

void cv_estimate_stop(cv_estimate *e) {
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->stopping = true;
    if (e->running)
        cv_odbc_stmt_cancel(e->running);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->thread, NULL);
    estimate_free(e);
}
