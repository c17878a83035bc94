/*
 * cv_sink.h - where a transfer's rows go (cv_sink.c): COPY through libpq for
 * PostgreSQL, LOAD DATA LOCAL INFILE through libmariadb for MariaDB,
 * parameter arrays over ODBC for everything else, all in one destination
 * transaction (or one per batch, for batched runs) that also writes the
 * run's row in the destination's ledger (CV_TRANSFER_LEDGER) and, per batch,
 * its checkpoint (CV_TRANSFER_CHECKPOINTS). A run found in the ledger was
 * loaded already; two deliveries of a run cannot both commit it (the
 * ledger's and the checkpoints' primary keys), which is what makes a load
 * effectively once.
 *
 * A sink belongs to the transfer's thread. cv_sink_close() rolls back what
 * was not committed.
 */
#ifndef CV_SINK_H
#define CV_SINK_H

#include "cv_dialect.h"
#include "cv_err.h"
#include "cv_maria.h"
#include "cv_odbc.h"
#include "cv_odbcstmt.h"
#include "cv_pg.h"
#include "cv_transfer.h"

#include <stdbool.h>
#include <stddef.h>

/* Where an earlier attempt of a batched run got to. */
typedef struct cv_sink_resume {
    long long batches; /* committed batches, 0 = start from the beginning */
    long long rows;    /* rows they hold */
    char checkpoint[256];
    char watermark[256]; /* the upper bound that attempt chose, for incremental jobs */
} cv_sink_resume;

/* Where rows go: COPY through libpq for PostgreSQL, LOAD DATA LOCAL INFILE
 * through libmariadb for MariaDB, parameter arrays over ODBC for everything
 * (see cv_sink_load_method()). The ODBC connection `catalog` reads the destination's
 * catalog and runs DDL in autocommit mode in every case; the rows, the ledger
 * row and the commit go over `pg`, `maria` or `catalog` itself. */
typedef struct cv_sink {
    cv_load_method method; /* COPY, LOAD_DATA or INSERT, never AUTO */
    cv_dialect dialect;
    char quote;
    cv_pg *pg;
    cv_maria *maria;
    cv_odbc_conn *catalog;
    cv_odbc_stmt *insert;
    char *sql;
    int ncols;
    long long loaded; /* rows the last LOAD DATA reported */
    /* Batched runs: batches committed (earlier attempts' included) and their
     * rows, by earlier attempts and by this one. */
    long long batches, earlier_rows, batched_rows;
} cv_sink;

/* Rolls back what was not committed, closes every connection and empties k. */
void cv_sink_close(cv_sink *k);

/* The method a job asked for, or the fastest one its destination allows. */
cv_err cv_sink_load_method(const cv_transfer_spec *spec, cv_load_method *method, char *errbuf,
                           size_t errlen);

/* Connects to the destination for the load method (cv_sink_load_method()) and
 * creates the ledger table (and, for batched runs, the checkpoints table) if
 * missing. On failure res->error_code names the stage: "destination_prepare",
 * "destination_connect" or "destination_ledger". */
cv_err cv_sink_open(cv_sink *k, const cv_transfer_spec *spec, cv_transfer_result *res, char *errbuf,
                    size_t errlen);

/* Reads where earlier attempts of a batched run got to (nothing for a run
 * that never committed a batch). */
cv_err cv_sink_read_resume(cv_sink *k, const cv_transfer_spec *spec, cv_sink_resume *r,
                           char *errbuf, size_t errlen);

/* The newest watermark a run of job_id committed; CV_ERR_NOT_FOUND if none. */
cv_err cv_sink_ledger_watermark(cv_sink *k, const char *job_id, char *out, size_t outlen,
                                bool *is_null, char *errbuf, size_t errlen);

/* CV_OK with the rows the run loaded, CV_ERR_NOT_FOUND if it is not recorded. */
cv_err cv_sink_ledger_rows(cv_sink *k, const char *run_id, long long *rows, char *errbuf,
                           size_t errlen);

/* Checks the destination table against the query's columns through the
 * catalog, or creates it from the origin's column types when it is missing.
 * Nothing has been loaded when this fails. */
cv_err cv_sink_prepare_table(cv_sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                             char *errbuf, size_t errlen);

/* Begins the load's transaction (emptying the table for mode replace, creating
 * the stage table of an upsert through COPY or LOAD DATA) and its statement:
 * COPY started, the LOAD DATA text in k->sql for the caller to run, or the
 * INSERT prepared and bound to select's block buffers. */
cv_err cv_sink_begin(cv_sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                     char *errbuf, size_t errlen);

/* Commits one batch of a batched run with its checkpoint (the last value of
 * the checkpoint column it loaded), then begins the next one. CV_ERR_CONFLICT
 * if another delivery of the run committed this batch first. */
cv_err cv_sink_commit_batch(cv_sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                            const char *checkpoint, const char *watermark, char *errbuf,
                            size_t errlen);

/* Ends the load, records the run in the ledger and commits. CV_ERR_CONFLICT if
 * another delivery of the same run committed first (nothing of ours stays).
 * *rows_written counts the rows of the whole run, earlier batches included. */
cv_err cv_sink_commit(cv_sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                      long long rows_read, const char *watermark, long long *rows_written,
                      char *errbuf, size_t errlen);

#endif
