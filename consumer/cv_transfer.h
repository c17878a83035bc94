/*
 * cv_transfer.h - one SQL transfer: run a SELECT on the origin and insert its
 * rows into a destination table in a single transaction.
 *
 * This is where rows are fetched (block fetch over ODBC on the origin) and
 * where they are written: COPY FROM STDIN through libpq into PostgreSQL, or
 * INSERT with parameter arrays over ODBC into anything else; PostgreSQL to
 * PostgreSQL skips ODBC for the rows and pipes COPY TO STDOUT into COPY FROM
 * STDIN. Either every row is committed or none is. Memory stays bounded by one
 * block of rows.
 */
#ifndef CV_TRANSFER_H
#define CV_TRANSFER_H

#include "cv_err.h"
#include "cv_message.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cv_transfer_result {
    int64_t rows_read;
    int64_t rows_written;
    const char *error_code; /* static string naming the failed stage, or NULL */
    bool already_loaded;    /* the ledger showed an earlier delivery loaded this run */
    char watermark[256];    /* incremental jobs: the watermark committed with the rows */
    int64_t resumed_rows;   /* batched runs: rows earlier attempts committed, not read again */
    bool superseded;        /* batched runs: another delivery of the run is loading it */
} cv_transfer_result;

/* The destination table that records loaded runs (see cv_transfer_run()). */
#define CV_TRANSFER_LEDGER "convutell_ledger"
/* The destination table that records committed batches of batched runs. */
#define CV_TRANSFER_CHECKPOINTS "convutell_checkpoint"

typedef struct cv_transfer_spec {
    const char *origin_odbc;       /* ODBC connection string of the origin */
    const char *destination_odbc;  /* ODBC connection string of the destination */
    const char *query;             /* SELECT run on the origin */
    const char *destination_table; /* validated name: name or schema.name */
    const char *run_id;            /* recorded in the destination's ledger */
    const char *job_id;
    cv_load_spec load; /* append, replace or upsert on key columns */
    /* A Python script the rows go through (NULL for none): it reads them as
     * JSON lines on stdin and prints the destination's rows the same way. */
    const char *transform;
    /* Called after every block with the rows read so far (may be NULL). A
     * non-zero return (CV_ERR_CANCELLED, CV_ERR_TIMEOUT) stops the transfer and
     * rolls the destination back; the callback's errbuf text becomes the reason. */
    cv_err (*progress)(void *ctx, int64_t rows_read, char *errbuf, size_t errlen);
    void *progress_ctx;
} cv_transfer_spec;

/* Runs the transfer effectively once: the run id is written to the
 * destination's ledger table (created if missing) in the same transaction as the
 * rows, and a run found there already is not loaded again (res->already_loaded,
 * rows_written from the ledger). A missing destination table is created from
 * the origin's column types first (with the upsert key as primary key); an
 * existing one must have every column the query returns. On failure the destination is rolled back,
 * *res holds the counts reached and res->error_code one of "origin_connect",
 * "origin_query", "origin_fetch", "destination_connect", "destination_ledger",
 * "destination_schema", "destination_prepare", "destination_insert", "destination_commit",
 * "cancelled", "timed_out"; errbuf holds the database's message. Blocking; the calling thread owns
 * both connections throughout. */
cv_err cv_transfer_run(const cv_transfer_spec *spec, cv_transfer_result *res, char *errbuf,
                       size_t errlen);

#endif
