/*
 * cv_querysql.h - one statement of the SQL console run on a database
 * (cv_querysql.c): read-only unless writes are allowed (PostgreSQL's and
 * MariaDB's read-only session transactions, SQLite's query_only), within a
 * time limit the database enforces where it can (statement_timeout,
 * max_statement_time) and a cancel enforces otherwise, its rows read into
 * chunks up to max_rows and CV_QUERY_BYTES_MAX. A chunk is a BSON array of
 * rows, each row a document of its values keyed "0", "1", ... in column
 * order (FerretDB stores no array directly inside an array).
 *
 * The caller runs cv_querysql_run() on a thread of its own; any other thread
 * may stop it with cv_querysql_stop() while it runs.
 */
#ifndef CV_QUERYSQL_H
#define CV_QUERYSQL_H

#include "cv_err.h"
#include "cv_odbcpool.h"
#include "cv_odbcstmt.h"
#include "cv_query.h"

#include <bson/bson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Why a statement was stopped from outside. */
enum { CV_QUERYSQL_RUNNING = 0, CV_QUERYSQL_CANCELLED, CV_QUERYSQL_TIMED_OUT };

/* A full chunk of rows numbered seq from 0, handed
 * over as the rows are read: the first only once a second one is needed (a
 * result of one chunk ends in cv_querysql.rows instead). */
typedef cv_err cv_querysql_chunk_fn(void *ctx, int64_t seq, const bson_t *rows, int64_t n,
                                    char *errbuf, size_t errlen);

typedef struct cv_querysql {
    /* What to run; the caller's, borrowed. */
    const char *odbc;
    const char *sql;
    int nparams;
    const char *params[CV_QUERY_PARAMS_MAX]; /* NULL: SQL NULL */
    short param_types[CV_QUERY_PARAMS_MAX];  /* SQL_VARCHAR, SQL_BIGINT, SQL_DOUBLE, ... */
    int64_t max_rows;
    int timeout_seconds;
    bool allow_writes;
    cv_querysql_chunk_fn *chunk;
    void *ctx;

    /* Stopping it from another thread. */
    pthread_mutex_t lock;
    cv_odbc_stmt *stmt; /* under lock: the statement running, NULL when none */
    atomic_int stopped; /* CV_QUERYSQL_CANCELLED or CV_QUERYSQL_TIMED_OUT once stopped */

    /* What it did. */
    bson_t columns;        /* array of {name, type, nullable} */
    bson_t rows;           /* the rows when they fit in one chunk (chunks == 0) */
    int64_t chunks;        /* chunks handed to `chunk`; 0 when the rows are in `rows` */
    int64_t row_count;     /* rows kept */
    int64_t rows_affected; /* a statement without a result: rows changed; -1 otherwise */
    bool truncated;        /* more rows were there than max_rows or the bytes allow */
    const char *code;      /* NULL, or the failure's code, with the reason in why */
    char why[1024];
} cv_querysql;

/* Readies q (zeroed by the caller, its inputs then set). */
void cv_querysql_init(cv_querysql *q);

/* Frees what a run left in q. */
void cv_querysql_release(cv_querysql *q);

/* Runs q->sql on a connection from pool and fills the results of q. Codes:
 * "connect", "not_one_statement", "read_only" (a write refused), "timed_out",
 * "cancelled", "statement_failed", "read_only_unsupported" (a database
 * Convutell cannot make read-only), "store" (a chunk not stored). */
void cv_querysql_run(cv_odbcpool *pool, cv_querysql *q);

/* Stops a running statement (SQLCancel) for `why` (CV_QUERYSQL_CANCELLED or
 * CV_QUERYSQL_TIMED_OUT); one that has not begun yet stops before it does.
 * Any thread. */
void cv_querysql_stop(cv_querysql *q, int why);

#endif
