/*
 * cv_sqljob.h - a `sql` job's statements (cv_sqljob.c): split at their
 * semicolons (outside quotes, comments and dollar-quoted bodies), run one by
 * one in one transaction on a connection from the worker's pool, and
 * committed; each statement's row count is reported as a line. A kept
 * connection that turns out broken before any statement went through (its
 * server restarted while it waited) is replaced by a new one, once. What was
 * not committed is rolled back when the connection goes back to the pool
 * (reset) or is closed.
 *
 * Called on the attempt's thread; the pool may be shared by many.
 */
#ifndef CV_SQLJOB_H
#define CV_SQLJOB_H

#include "cv_odbcpool.h"

#include <stdbool.h>

/* What one sql job's statements did. */
typedef struct cv_sqljob_result {
    long long total;       /* rows changed */
    int done;              /* statements that ran without an error */
    bool settings_changed; /* a PRAGMA ran (SQLite: the connection is not reused) */
    const char *code;      /* NULL, or the failure's code ("connect", "statement_failed",
                              "commit_failed") with the reason in why */
    char why[1024];
} cv_sqljob_result;

/* Receives "statement <n>: <rows> rows" after each statement (may be NULL). */
typedef void cv_sqljob_log(void *ctx, const char *line);

/* Runs `statements` on the connection string `odbc` (run_id names the run in
 * the worker's log) and fills *p. */
void cv_sqljob_run(cv_odbcpool *pool, const char *odbc, const char *statements, const char *run_id,
                   cv_sqljob_log *log, void *ctx, cv_sqljob_result *p);

#endif
