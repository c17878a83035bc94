/*
 * cv_sqljob.c - the statements of a `sql` job, run in one transaction. See
 * cv_sqljob.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_sqljob.h"

#include "cv_dialect.h"
#include "cv_log.h"
#include "cv_sqlsplit.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* Whether a statement is a PRAGMA: on SQLite the one kind of statement that
 * changes a connection's settings in a way a reset cannot read back. */
static bool is_pragma(const char *statement) {
    return strncasecmp(statement, "PRAGMA", 6) == 0 &&
           !(isalnum((unsigned char)statement[6]) || statement[6] == '_');
}

/* Runs every statement of the job on conn in one transaction and commits. */
static void exec_statements(cv_odbc_conn *conn, const char *statements, cv_sqljob_log *log,
                            void *ctx, cv_sqljob_result *p) {
    bool mariadb = cv_dialect_from_dbms(cv_odbc_dbms(conn)) == CV_DIALECT_MARIADB;
    size_t pos = 0, start, end;
    char line[128];
    int n = 0;

    memset(p, 0, sizeof(*p));
    if (cv_odbc_begin(conn, p->why, sizeof(p->why)) != CV_OK) {
        p->code = "statement_failed";
        return;
    }
    while (!p->code && cv_sqlsplit_next(statements, &pos, &start, &end, mariadb)) {
        char *statement = strndup(statements + start, end - start), reason[900];
        long long rows = 0;
        n++;
        if (!statement) {
            p->code = "statement_failed";
            snprintf(p->why, sizeof(p->why), "out of memory");
            break;
        }
        p->settings_changed = p->settings_changed || is_pragma(statement);
        cv_err err = cv_odbc_exec_count(conn, statement, &rows, reason, sizeof(reason));
        free(statement);
        if (err) {
            p->code = "statement_failed";
            snprintf(p->why, sizeof(p->why), "statement %d %s", n, reason);
            break;
        }
        p->done++;
        p->total += rows;
        snprintf(line, sizeof(line), "statement %d: %lld rows", n, rows);
        if (log)
            log(ctx, line);
    }
    if (!p->code && n == 0) {
        p->code = "statement_failed";
        snprintf(p->why, sizeof(p->why), "no statement to run (only comments and semicolons)");
    }
    if (!p->code && cv_odbc_commit(conn, p->why, sizeof(p->why)) != CV_OK)
        p->code = "commit_failed";
}

void cv_sqljob_run(cv_odbcpool *pool, const char *odbc, const char *statements, const char *run_id,
                   cv_sqljob_log *log, void *ctx, cv_sqljob_result *p) {
    bool reused = false;
    cv_odbc_conn *conn = cv_odbcpool_take(pool, odbc, &reused, p->why, sizeof(p->why));

    if (!conn) {
        p->code = "connect";
        return;
    }
    exec_statements(conn, statements, log, ctx, p);
    if (p->code && reused && p->done == 0 && !cv_odbc_alive(conn)) {
        cv_log_warn("run %s: a kept connection was broken (%s); connecting again", run_id, p->why);
        cv_odbcpool_give(pool, odbc, conn, false, false);
        if (!(conn = cv_odbc_connect(odbc, p->why, sizeof(p->why)))) {
            p->code = "connect";
            return;
        }
        exec_statements(conn, statements, log, ctx, p);
    }
    /* What was not committed is rolled back, by the reset or the disconnect. */
    cv_odbcpool_give(pool, odbc, conn, cv_odbc_alive(conn), p->settings_changed);
}
