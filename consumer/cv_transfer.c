/*
 * cv_transfer.c - the SQL transfer. The origin is read in blocks (cv_odbc.c);
 * a PostgreSQL destination is loaded with COPY FROM STDIN through libpq
 * (cv_pg.c), any other with INSERT parameter arrays bound to the same block
 * buffers. Either way in one destination transaction. Column names come from
 * the origin's result and are quoted for the destination; values are always
 * sent as data, never pasted into SQL.
 */
#define _GNU_SOURCE /* strcasestr */
#include "cv_transfer.h"

#include "cv_buf.h"
#include "cv_dialect.h"
#include "cv_log.h"
#include "cv_maria.h"
#include "cv_odbc.h"
#include "cv_pg.h"
#include "cv_script.h"
#include "cv_sqltext.h"
#include "cv_sqlsplit.h"
#include "cv_time.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <strings.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* Sets a failed stage and passes the error on. */
static cv_err fail_at(cv_transfer_result *res, const char *stage, cv_err err) {
    res->error_code = stage;
    return err ? err : CV_ERR_ODBC;
}

/* The stage a progress callback's refusal ends the run with. */
static const char *stopped_stage(cv_err err) {
    return err == CV_ERR_TIMEOUT ? "timed_out" : "cancelled";
}

/* The ledger records each loaded run in the destination, in the same
 * transaction as its rows: a run whose id is there was loaded already. */
static const char ledger_ddl[] =
    "CREATE TABLE IF NOT EXISTS " CV_TRANSFER_LEDGER " ("
    "run_id VARCHAR(36) NOT NULL PRIMARY KEY, job_id VARCHAR(36) NOT NULL, "
    "destination_table VARCHAR(255) NOT NULL, rows_written BIGINT NOT NULL, "
    "committed_at VARCHAR(40) NOT NULL, watermark VARCHAR(255))";
static const char ledger_select_pg[] =
    "SELECT rows_written FROM " CV_TRANSFER_LEDGER " WHERE run_id = $1";
static const char ledger_select_odbc[] =
    "SELECT rows_written FROM " CV_TRANSFER_LEDGER " WHERE run_id = ?";
static const char ledger_insert_pg[] =
    "INSERT INTO " CV_TRANSFER_LEDGER " VALUES ($1, $2, $3, $4, $5, $6)";
static const char ledger_insert_odbc[] =
    "INSERT INTO " CV_TRANSFER_LEDGER " VALUES (?, ?, ?, ?, ?, ?)";
/* The newest committed watermark of a job (committed_at is RFC 3339 text). */
static const char ledger_watermark[] =
    "SELECT watermark FROM " CV_TRANSFER_LEDGER
    " WHERE job_id = ? ORDER BY committed_at DESC, run_id DESC LIMIT 1";

/* Batched runs (batch_rows) record each committed batch here, in the batch's
 * transaction: the rows so far and the last checkpoint value loaded. The
 * primary key makes the chain compare-and-set: two deliveries of one run
 * cannot both commit batch n. The rows are deleted when the run completes. */
static const char checkpoint_ddl[] =
    "CREATE TABLE IF NOT EXISTS " CV_TRANSFER_CHECKPOINTS " ("
    "run_id VARCHAR(36) NOT NULL, batch INTEGER NOT NULL, rows_written BIGINT NOT NULL, "
    "checkpoint VARCHAR(255) NOT NULL, watermark VARCHAR(255), committed_at VARCHAR(40) NOT NULL, "
    "PRIMARY KEY (run_id, batch))";
static const char checkpoint_insert_pg[] =
    "INSERT INTO " CV_TRANSFER_CHECKPOINTS " VALUES ($1, $2, $3, $4, $5, $6)";
static const char checkpoint_insert_odbc[] =
    "INSERT INTO " CV_TRANSFER_CHECKPOINTS " VALUES (?, ?, ?, ?, ?, ?)";
static const char checkpoint_delete_pg[] =
    "DELETE FROM " CV_TRANSFER_CHECKPOINTS " WHERE run_id = $1";
static const char checkpoint_delete_odbc[] =
    "DELETE FROM " CV_TRANSFER_CHECKPOINTS " WHERE run_id = ?";
#define LAST_CHECKPOINT(column)                                                                    \
    "SELECT " column " FROM " CV_TRANSFER_CHECKPOINTS                                              \
    " WHERE run_id = ? ORDER BY batch DESC LIMIT 1"

/* Where an earlier attempt of a batched run got to. */
typedef struct resume_state {
    long long batches; /* committed batches, 0 = start from the beginning */
    long long rows;    /* rows they hold */
    char checkpoint[256];
    char watermark[256]; /* the upper bound that attempt chose, for incremental jobs */
} resume_state;

/* Where rows go: COPY through libpq for PostgreSQL, LOAD DATA LOCAL INFILE
 * through libmariadb for MariaDB, parameter arrays over ODBC for everything
 * (see load_method()). The ODBC connection `catalog` reads the destination's
 * catalog and runs DDL in autocommit mode in every case; the rows, the ledger
 * row and the commit go over `pg`, `maria` or `catalog` itself. */
typedef struct sink {
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
} sink;

static void sink_close(sink *k) {
    cv_odbc_stmt_destroy(k->insert);
    cv_odbc_disconnect(k->catalog); /* rolls back what was not committed */
    cv_pg_destroy(k->pg);           /* likewise */
    cv_maria_destroy(k->maria);     /* likewise */
    free(k->sql);
    memset(k, 0, sizeof(*k));
}

/* The method a job asked for, or the fastest one its destination allows. */
static cv_err load_method(const cv_transfer_spec *spec, cv_load_method *method, char *errbuf,
                          size_t errlen) {
    bool pg = cv_pg_is_postgres_odbc(spec->destination_odbc);
    bool maria = cv_maria_is_mariadb_odbc(spec->destination_odbc);

    *method = spec->load.method;
    if (*method == CV_LOAD_AUTO)
        *method = pg ? CV_LOAD_COPY : maria ? CV_LOAD_LOAD_DATA : CV_LOAD_INSERT;
    if (*method == CV_LOAD_COPY && !pg)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                          "load_method \"copy\" needs a PostgreSQL destination (psqlODBC driver)");
    if (*method == CV_LOAD_LOAD_DATA && !maria)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                          "load_method \"load_data\" needs a MariaDB destination (MariaDB ODBC "
                          "driver)");
    return CV_OK;
}

static cv_err sink_open(sink *k, const cv_transfer_spec *spec, cv_transfer_result *res,
                        char *errbuf, size_t errlen) {
    cv_err err;

    memset(k, 0, sizeof(*k));
    if ((err = load_method(spec, &k->method, errbuf, errlen)))
        return fail_at(res, "destination_prepare", err);
    if (spec->load.batch_rows && k->method == CV_LOAD_INSERT)
        return fail_at(res, "destination_prepare",
                       cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                                  "batch_rows needs load_method \"copy\" or \"load_data\" (a "
                                  "PostgreSQL or MariaDB destination)"));
    k->catalog = cv_odbc_connect(spec->destination_odbc, errbuf, errlen);
    if (!k->catalog)
        return fail_at(res, "destination_connect", CV_ERR_ODBC);
    k->dialect = cv_dialect_from_dbms(cv_odbc_dbms(k->catalog));
    k->quote = k->method == CV_LOAD_COPY ? '"' : cv_odbc_quote_char(k->catalog);
    if (k->method == CV_LOAD_COPY &&
        !(k->pg = cv_pg_connect(spec->destination_odbc, errbuf, errlen)))
        return fail_at(res, "destination_connect", CV_ERR_ODBC);
    if (k->method == CV_LOAD_LOAD_DATA) {
        long long allowed = 0;
        if (!(k->maria = cv_maria_connect(spec->destination_odbc, errbuf, errlen)))
            return fail_at(res, "destination_connect", CV_ERR_ODBC);
        /* A server that refuses LOAD DATA LOCAL still takes parameter arrays. */
        if ((err =
                 cv_maria_query_int64(k->maria, "SELECT @@local_infile", &allowed, errbuf, errlen)))
            return fail_at(res, "destination_connect", err);
        if (!allowed && spec->load.method == CV_LOAD_AUTO) {
            cv_maria_destroy(k->maria);
            k->maria = NULL;
            k->method = CV_LOAD_INSERT;
        }
    }
    err = cv_odbc_exec_params(k->catalog, ledger_ddl, 0, NULL, NULL, errbuf, errlen);
    if (!err && spec->load.batch_rows)
        err = cv_odbc_exec_params(k->catalog, checkpoint_ddl, 0, NULL, NULL, errbuf, errlen);
    return err ? fail_at(res, "destination_ledger", err) : CV_OK;
}

/* Reads where earlier attempts of a batched run got to (nothing for a run
 * that never committed a batch). */
static cv_err read_resume(sink *k, const cv_transfer_spec *spec, resume_state *r, char *errbuf,
                          size_t errlen) {
    bool is_null;
    cv_err err;

    memset(r, 0, sizeof(*r));
    if (!spec->load.batch_rows)
        return CV_OK;
    err = cv_odbc_query_int64(k->catalog, LAST_CHECKPOINT("batch"), spec->run_id, &r->batches,
                              errbuf, errlen);
    if (err == CV_ERR_NOT_FOUND)
        return CV_OK;
    if (!err)
        err = cv_odbc_query_int64(k->catalog, LAST_CHECKPOINT("rows_written"), spec->run_id,
                                  &r->rows, errbuf, errlen);
    if (!err)
        err = cv_odbc_query_text(k->catalog, LAST_CHECKPOINT("checkpoint"), spec->run_id,
                                 r->checkpoint, sizeof(r->checkpoint), &is_null, errbuf, errlen);
    if (!err)
        err = cv_odbc_query_text(k->catalog, LAST_CHECKPOINT("watermark"), spec->run_id,
                                 r->watermark, sizeof(r->watermark), &is_null, errbuf, errlen);
    k->batches = r->batches;
    k->earlier_rows = r->rows;
    return err;
}

/* CV_OK with the rows the run loaded, CV_ERR_NOT_FOUND if it is not recorded. */
static cv_err sink_ledger_rows(sink *k, const char *run_id, long long *rows, char *errbuf,
                               size_t errlen) {
    if (k->pg)
        return cv_pg_query_int64(k->pg, ledger_select_pg, 1, &run_id, rows, errbuf, errlen);
    return cv_odbc_query_int64(k->catalog, ledger_select_odbc, run_id, rows, errbuf, errlen);
}

/* Runs one statement without result rows on the connection that carries the
 * load's transaction. */
static cv_err sink_exec(sink *k, const char *sql, char *errbuf, size_t errlen) {
    if (k->pg)
        return cv_pg_exec(k->pg, sql, errbuf, errlen);
    if (k->maria)
        return cv_maria_exec(k->maria, sql, errbuf, errlen);
    return cv_odbc_exec_params(k->catalog, sql, 0, NULL, NULL, errbuf, errlen);
}

/* Checks the destination table against the query's columns through the
 * catalog, or creates it from the origin's column types when it is missing.
 * Nothing has been loaded when this fails. */
static cv_err sink_prepare_table(sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                                 char *errbuf, size_t errlen) {
    const cv_load_spec *load = &spec->load;
    int ncols = cv_odbc_stmt_ncols(select), nexisting = 0;
    char(*existing)[128] = NULL, (*types)[64] = NULL, *ddl = NULL;
    const char **names = NULL;
    cv_err err;

    for (int i = 0; i < load->nkeys; i++) {
        bool found = false;
        for (int c = 0; c < ncols; c++)
            found = found || strcmp(cv_odbc_stmt_col(select, c)->name, load->keys[i]) == 0;
        if (!found)
            return cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                              "key column \"%s\" is not in the query's result", load->keys[i]);
    }
    err =
        cv_odbc_columns(k->catalog, spec->destination_table, &existing, &nexisting, errbuf, errlen);
    if (err == CV_OK) {
        for (int c = 0; c < ncols && !err; c++) {
            const char *name = cv_odbc_stmt_col(select, c)->name;
            bool found = false;
            for (int i = 0; i < nexisting && !found; i++)
                found = strcmp(existing[i], name) == 0;
            if (!found)
                err = cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                                 "destination table %s has no column \"%s\" (the query's "
                                 "result names it)",
                                 spec->destination_table, name);
        }
        free(existing);
        return err;
    }
    if (err != CV_ERR_NOT_FOUND)
        return err;

    /* The table does not exist: map every column before creating anything. */
    err = CV_OK;
    if (!(types = calloc(ncols > 0 ? (size_t)ncols : 1, sizeof(*types))))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    for (int c = 0; c < ncols && !err; c++)
        err = cv_dialect_column_type(k->dialect, cv_odbc_stmt_col(select, c), types[c],
                                     sizeof(types[c]), errbuf, errlen);
    if (!err && (names = calloc(ncols > 0 ? (size_t)ncols : 1, sizeof(*names)))) {
        for (int c = 0; c < ncols; c++)
            names[c] = types[c];
        ddl = cv_sqltext_create_table(spec->destination_table, cv_odbc_stmt_cols(select), ncols,
                                      names, load, k->quote);
    }
    if (!err)
        err = ddl ? cv_odbc_exec_params(k->catalog, ddl, 0, NULL, NULL, errbuf, errlen)
                  : cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build CREATE TABLE");
    free(ddl);
    free(names);
    free(types);
    return err;
}

/* Runs DELETE FROM the destination table inside the load's transaction. */
static cv_err sink_empty_table(sink *k, const cv_transfer_spec *spec, char *errbuf, size_t errlen) {
    char *sql = cv_sqltext_delete_all(spec->destination_table, k->quote);
    cv_err err = sql ? sink_exec(k, sql, errbuf, errlen)
                     : cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build DELETE");

    free(sql);
    return err;
}

/* Runs CREATE TEMP TABLE for the rows of an upsert that COPY or LOAD DATA
 * stage before merging them: the destination's columns, none of its keys (a
 * batch may hold one key twice, and the merge keeps the last). */
static cv_err create_stage(sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                           char *errbuf, size_t errlen) {
    char *sql;
    cv_err err;

    /* A batched run creates it again for every batch. */
    if (!k->pg && (err = sink_exec(k, "DROP TEMPORARY TABLE IF EXISTS " CV_SQLTEXT_STAGE_TABLE,
                                   errbuf, errlen)))
        return err;
    sql = cv_sqltext_stage(spec->destination_table, cv_odbc_stmt_cols(select),
                           cv_odbc_stmt_ncols(select), k->quote, k->pg != NULL);
    err = sql ? sink_exec(k, sql, errbuf, errlen)
              : cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build the stage table");
    free(sql);
    return err;
}

static cv_err sink_begin(sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                         char *errbuf, size_t errlen) {
    const cv_load_spec *load = &spec->load;
    bool stage = load->mode == CV_MODE_UPSERT && k->method != CV_LOAD_INSERT;
    const cv_odbc_col *cols = cv_odbc_stmt_cols(select);
    char table[300];
    cv_err err;

    k->ncols = cv_odbc_stmt_ncols(select);
    free(k->sql); /* a batched run begins once per batch */
    k->sql = NULL;
    if (load->mode == CV_MODE_UPSERT && k->dialect != CV_DIALECT_POSTGRES &&
        k->dialect != CV_DIALECT_SQLITE && k->dialect != CV_DIALECT_MARIADB)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                          "mode upsert is not supported for %s destinations",
                          cv_odbc_dbms(k->catalog));
    /* libmariadb's connection runs with autocommit off: it is in a transaction. */
    if (k->pg)
        err = cv_pg_exec(k->pg, "BEGIN", errbuf, errlen);
    else if (!k->maria)
        err = cv_odbc_begin(k->catalog, errbuf, errlen);
    else
        err = CV_OK;
    if (err)
        return err;
    if (load->mode == CV_MODE_REPLACE && (err = sink_empty_table(k, spec, errbuf, errlen)))
        return err;
    if (stage && (err = create_stage(k, spec, select, errbuf, errlen)))
        return err;
    if (stage)
        snprintf(table, sizeof(table), "%s", CV_SQLTEXT_STAGE_TABLE);
    else if (cv_sqltext_quote_ident(spec->destination_table, k->quote, true, table,
                                    sizeof(table)) != 0)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "table name too long");

    switch (k->method) {
        case CV_LOAD_COPY:
            if (!(k->sql = cv_sqltext_copy(table, cols, k->ncols)))
                return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build COPY");
            return cv_pg_copy_begin(k->pg, k->sql, errbuf, errlen);
        case CV_LOAD_LOAD_DATA: /* run by pump_to_maria() */
            if (!(k->sql = cv_sqltext_load_data(table, cols, k->ncols, k->quote)))
                return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build LOAD DATA");
            return CV_OK;
        default:
            break;
    }
    if (!(k->sql = cv_sqltext_insert(table, cols, k->ncols, k->quote, load, k->dialect)))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build INSERT");
    k->insert = cv_odbc_stmt_new(k->catalog, errbuf, errlen);
    if (!k->insert)
        return CV_ERR_ODBC;
    if ((err = cv_odbc_stmt_prepare(k->insert, k->sql, errbuf, errlen)))
        return err;
    return cv_odbc_stmt_bind_block(k->insert, select, errbuf, errlen);
}

/* Merges the staged rows of an upsert into the destination table. */
static cv_err merge_stage(sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                          char *errbuf, size_t errlen) {
    char *sql = cv_sqltext_merge(spec->destination_table, cv_odbc_stmt_cols(select),
                                 cv_odbc_stmt_ncols(select), k->quote, &spec->load, k->dialect);
    cv_err err = sql ? sink_exec(k, sql, errbuf, errlen)
                     : cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build the merge");

    free(sql);
    return err;
}

/* Runs a statement with text parameters on the connection that carries the
 * load's transaction; *sqlstate gets the SQLSTATE on failure. */
static cv_err sink_exec_params(sink *k, const char *sql_pg, const char *sql_odbc, int nparams,
                               const char *const *values, char *sqlstate, char *errbuf,
                               size_t errlen) {
    if (k->pg)
        return cv_pg_exec_params(k->pg, sql_pg, nparams, values, sqlstate, errbuf, errlen);
    if (k->maria)
        return cv_maria_exec_params(k->maria, sql_odbc, nparams, values, sqlstate, errbuf, errlen);
    return cv_odbc_exec_params(k->catalog, sql_odbc, nparams, values, sqlstate, errbuf, errlen);
}

/* Ends the current COPY or LOAD DATA (merging staged upsert rows): *rows gets
 * the rows it loaded (`rows_read` for parameter arrays). */
static cv_err sink_end_load(sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                            long long rows_read, long long *rows, char *errbuf, size_t errlen) {
    cv_err err;

    *rows = k->maria ? k->loaded : rows_read;
    if (k->pg && (err = cv_pg_copy_end(k->pg, rows, errbuf, errlen)))
        return err;
    if (spec->load.mode == CV_MODE_UPSERT && k->method != CV_LOAD_INSERT &&
        (err = merge_stage(k, spec, select, errbuf, errlen)))
        return err;
    return CV_OK;
}

static cv_err sink_commit_tx(sink *k, char *errbuf, size_t errlen) {
    if (k->pg || k->maria)
        return sink_exec(k, "COMMIT", errbuf, errlen);
    return cv_odbc_commit(k->catalog, errbuf, errlen);
}

/* Commits one batch of a batched run with its checkpoint (the last value of
 * the checkpoint column it loaded), then begins the next one. CV_ERR_CONFLICT
 * if another delivery of the run committed this batch first. */
static cv_err sink_commit_batch(sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                                const char *checkpoint, const char *watermark, char *errbuf,
                                size_t errlen) {
    char batch_text[24], rows_text[24], now[CV_TIME_RFC3339_LEN], state[6] = "";
    const char *values[6];
    long long rows;
    cv_err err;

    if ((err = sink_end_load(k, spec, select, 0, &rows, errbuf, errlen)))
        return err;
    snprintf(batch_text, sizeof(batch_text), "%lld", k->batches + 1);
    snprintf(rows_text, sizeof(rows_text), "%lld", k->earlier_rows + k->batched_rows + rows);
    cv_time_format(cv_time_now_ms(), now, sizeof(now));
    values[0] = spec->run_id;
    values[1] = batch_text;
    values[2] = rows_text;
    values[3] = checkpoint;
    values[4] = watermark && watermark[0] ? watermark : NULL;
    values[5] = now;
    err = sink_exec_params(k, checkpoint_insert_pg, checkpoint_insert_odbc, 6, values, state,
                           errbuf, errlen);
    if (err)
        return strncmp(state, "23", 2) == 0 ? CV_ERR_CONFLICT : err;
    if ((err = sink_commit_tx(k, errbuf, errlen)))
        return err;
    k->batches++;
    k->batched_rows += rows;
    return sink_begin(k, spec, select, errbuf, errlen);
}

/* Ends the load, records the run in the ledger and commits. CV_ERR_CONFLICT if
 * another delivery of the same run committed first (nothing of ours stays).
 * *rows_written counts the rows of the whole run, earlier batches included. */
static cv_err sink_commit(sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                          long long rows_read, const char *watermark, long long *rows_written,
                          char *errbuf, size_t errlen) {
    char rows_text[24], now[CV_TIME_RFC3339_LEN], state[6] = "";
    const char *values[6];
    long long rows;
    cv_err err;

    if ((err = sink_end_load(k, spec, select, rows_read, &rows, errbuf, errlen)))
        return err;
    *rows_written = k->earlier_rows + k->batched_rows + rows;
    snprintf(rows_text, sizeof(rows_text), "%lld", *rows_written);
    cv_time_format(cv_time_now_ms(), now, sizeof(now));
    values[0] = spec->run_id;
    values[1] = spec->job_id;
    values[2] = spec->destination_table;
    values[3] = rows_text;
    values[4] = now;
    values[5] = watermark && watermark[0] ? watermark : NULL;
    err =
        sink_exec_params(k, ledger_insert_pg, ledger_insert_odbc, 6, values, state, errbuf, errlen);
    if (err)
        return strncmp(state, "23", 2) == 0 ? CV_ERR_CONFLICT : err;
    if (k->batches && (err = sink_exec_params(k, checkpoint_delete_pg, checkpoint_delete_odbc, 1,
                                              values, NULL, errbuf, errlen)))
        return err;
    return sink_commit_tx(k, errbuf, errlen);
}

/* Executes `sql` (built by the caller, NULL when that ran out of memory) on
 * `select`, and frees it. */
static cv_err exec_text(cv_odbc_stmt *select, char *sql, char *errbuf, size_t errlen) {
    cv_err err = sql ? cv_odbc_stmt_exec(select, sql, errbuf, errlen)
                     : cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build the origin query");

    free(sql);
    return err;
}

/* Runs the origin query. For an incremental job it first finds the highest
 * watermark value now in the origin (hi) and then selects the rows with
 * lo <= value < hi, lo being the watermark the destination's ledger holds.
 * Rows at hi wait for the next run: rows that share a value with the last ones
 * loaded can still arrive, and [lo, hi) ranges never overlap, so nothing is
 * loaded twice and nothing that shares a boundary value is skipped. A batched
 * job's rows come ordered by its checkpoint column, and a resumed one's start
 * past the last checkpoint committed (with the hi its first attempt chose). */
static cv_err open_origin(const cv_transfer_spec *spec, cv_odbc_stmt *select, sink *k,
                          const resume_state *resume, char *watermark, size_t wmlen, char *errbuf,
                          size_t errlen) {
    const cv_load_spec *load = &spec->load;
    char lo[256] = "", wm_ident[300], ck_ident[300];
    char quote = cv_odbc_quote_char(cv_odbc_stmt_conn(select));
    bool lo_null = true, hi_null = true;
    const char *params[3];
    cv_odbc_col types[3];
    cv_sqltext_window window = {0};
    char *query = NULL, *sql = NULL;
    size_t len;
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
        err = cv_odbc_query_text(k->catalog, ledger_watermark, spec->job_id, lo, sizeof(lo),
                                 &lo_null, errbuf, errlen);
        if (err && err != CV_ERR_NOT_FOUND)
            goto out;
        char head[320];
        snprintf(head, sizeof(head), "MAX(%s)", wm_ident);
        if (!(err = exec_text(select, cv_sqltext_wrap(head, query, ""), errbuf, errlen))) {
            size_t rows = 0;
            err = cv_odbc_stmt_fetch_block(select, &rows, errbuf, errlen);
            if (!err) {
                const char *v = cv_odbc_stmt_value(select, 0, 0, &len);
                types[0] = types[1] = *cv_odbc_stmt_col(select, 0);
                hi_null = v == NULL;
                snprintf(watermark, wmlen, "%s", v ? v : "");
            }
        }
        if (err == CV_ERR_NOT_FOUND)
            err = CV_OK;
        cv_odbc_stmt_close(select);
        if (err) {
            char why[512];
            snprintf(why, sizeof(why), "%s", errbuf ? errbuf : "");
            err = cv_err_set(errbuf, errlen, err, "watermark column %s: %s", load->watermark, why);
            goto out;
        }
        if (resume->batches && resume->watermark[0]) { /* the bound the run started with */
            snprintf(watermark, wmlen, "%s", resume->watermark);
            hi_null = false;
        }
        if (hi_null) /* no rows at all: keep the old watermark */
            snprintf(watermark, wmlen, "%s", lo_null ? "" : lo);
    }
    if (resume->batches) { /* the checkpoint column's type, for its bound */
        if ((err = exec_text(select, cv_sqltext_wrap(ck_ident, query, " WHERE 1 = 0"), errbuf,
                             errlen)))
            goto out;
        types[2] = *cv_odbc_stmt_col(select, 0);
        cv_odbc_stmt_close(select);
    }

    window.watermark = load->watermark[0] ? wm_ident : NULL;
    window.empty = hi_null;
    window.from = !lo_null;
    if (window.watermark && !window.empty) {
        if (window.from)
            params[n++] = lo;
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
static cv_err guarded_open(const cv_transfer_spec *spec, cv_odbc_stmt *select, sink *k,
                           const resume_state *resume, bool describe_only, cv_transfer_result *res,
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
        return fail_at(res, stopped_stage(w.err), cv_err_set(errbuf, errlen, w.err, "%s", w.why));
    return err ? fail_at(res, "origin_query", err) : CV_OK;
}

/* ---- the pump ------------------------------------------------------------
 * COPY and LOAD DATA take rows as text. A reader thread turns the origin's rows
 * into that text, chunk by chunk, while the calling thread sends full chunks to
 * the destination, so reading and writing overlap the way two processes joined
 * by a pipe do. The reader takes its rows from the origin's own COPY TO STDOUT
 * (PostgreSQL to PostgreSQL: nothing to convert), from a streamed libmariadb
 * result (MariaDB origins), or from ODBC block fetch (everything else). */
#define PUMP_CHUNK (1u << 20)
#define PUMP_CHUNKS 4

typedef enum pump_source { FROM_PG_COPY, FROM_MARIA, FROM_ODBC, FROM_TRANSFORM } pump_source;

typedef struct pump {
    pump_source from;
    cv_pg *pg;       /* FROM_PG_COPY: runs COPY (query) TO STDOUT */
    cv_maria *maria; /* FROM_MARIA: the reader runs `query` on it */
    const char *query;
    cv_odbc_stmt *odbc; /* FROM_ODBC and FROM_TRANSFORM: executed, the reader fetches */
    /* FROM_TRANSFORM: the script, its reader-side state (see transform_run()) */
    const cv_transfer_spec *spec;
    int slot;        /* the reader's chunk */
    int64_t line_no; /* output lines read */
    /* A feeder thread fetches blocks and writes them as JSON lines into `work`,
     * then swaps it with `next` (under lock); the script's stdin is written
     * from `current`. So fetching overlaps with reading the script's output. */
    pthread_t feeder;
    bool feeder_started, ready_full, feed_done, feed_quit;
    struct jsonbuf {
        char *data;
        size_t len, cap;
    } work, next, current;
    size_t current_at;
    cv_err feed_err; /* the feeder's failure (under lock), reason in feed_why */
    char feed_why[512];
    cv_err transform_err;
    char transform_why[512];
    int ncols;
    bool *binary; /* per column: bytes, written as hex */
    /* Batched runs (FROM_ODBC only): the reader ends a batch at the first row
     * past batch_rows whose checkpoint value differs from the one before. */
    int64_t batch_rows, in_batch;
    int checkpoint_col;
    const char *checkpoint_name;
    char last[256]; /* checkpoint value of the last row encoded */
    size_t last_len;
    bool bare_hex; /* hex alone (LOAD DATA's UNHEX), else COPY's \\x prefix */
    pthread_t reader;
    bool ready, started; /* lock and chunks set up; reader running */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    char *chunk[PUMP_CHUNKS];
    size_t cap[PUMP_CHUNKS], used[PUMP_CHUNKS];
    int64_t rows[PUMP_CHUNKS];
    bool batch_end[PUMP_CHUNKS];       /* commit after sending this chunk... */
    char checkpoint[PUMP_CHUNKS][256]; /* ...with this checkpoint */
    int head, count;                   /* ring of full chunks waiting to be sent */
    bool done, stop;
    cv_err err;
    char why[512];
} pump;

/* Passes the reader's current chunk (if it holds anything) to the sender and,
 * with `last`, the reader's final status. Waits while no chunk is free.
 * Returns false if the sender asked the reader to stop. */
static bool hand_over(pump *p, int *slot, bool last, cv_err err, const char *why) {
    pthread_mutex_lock(&p->lock);
    /* The sender owns `count` full chunks from `head`; the reader owns the one
     * after them, so handing over needs a free chunk beyond that. */
    while (p->count >= PUMP_CHUNKS - 1 && !p->stop)
        pthread_cond_wait(&p->changed, &p->lock);
    if (p->stop) {
        pthread_mutex_unlock(&p->lock);
        return false;
    }
    if (p->used[*slot] || p->batch_end[*slot]) {
        p->count++;
        *slot = (*slot + 1) % PUMP_CHUNKS;
        p->used[*slot] = 0; /* the next free slot (the sender emptied it) */
        p->rows[*slot] = 0;
        p->batch_end[*slot] = false;
    }
    if (last) {
        p->done = true;
        p->err = err;
        snprintf(p->why, sizeof(p->why), "%s", why);
    }
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    return true;
}

/* Makes room for `more` bytes at the end of a chunk. */
static bool chunk_reserve(pump *p, int slot, size_t more) {
    size_t need = p->used[slot] + more, cap = p->cap[slot];
    char *grown;

    if (need <= cap)
        return true;
    while (cap < need)
        cap *= 2;
    if (!(grown = realloc(p->chunk[slot], cap)))
        return false;
    p->chunk[slot] = grown;
    p->cap[slot] = cap;
    return true;
}

/* Appends one field in the text format COPY and LOAD DATA share: backslash,
 * tab, newline, carriage return and NUL escaped with a backslash, \N for NULL,
 * then `end` (tab or newline). Binary values go as hex. */
static bool put_field(pump *p, int slot, const char *value, size_t len, bool binary, char end) {
    static const char hex[] = "0123456789abcdef";
    char *o;

    if (!chunk_reserve(p, slot, 2 * len + 4))
        return false;
    o = p->chunk[slot] + p->used[slot];
    if (!value) {
        *o++ = '\\';
        *o++ = 'N';
    } else if (binary) {
        if (!p->bare_hex) { /* COPY text reads \\x as \x, bytea's hex prefix */
            memcpy(o, "\\\\x", 3);
            o += 3;
        }
        for (size_t i = 0; i < len; i++) {
            *o++ = hex[(unsigned char)value[i] >> 4];
            *o++ = hex[(unsigned char)value[i] & 15];
        }
    } else {
        for (size_t i = 0; i < len; i++) {
            char c = value[i], esc = c == '\\'   ? '\\'
                                     : c == '\t' ? 't'
                                     : c == '\n' ? 'n'
                                     : c == '\r' ? 'r'
                                     : c == '\0' ? '0'
                                                 : 0;
            if (esc) {
                *o++ = '\\';
                *o++ = esc;
            } else {
                *o++ = c;
            }
        }
    }
    *o++ = end;
    p->used[slot] = (size_t)(o - p->chunk[slot]);
    return true;
}

/* Before row r of the fetched block: ends the batch (hands the chunk over
 * marked with the last checkpoint value) if it is full and the row's
 * checkpoint value differs from the last one, so that rows sharing a value
 * never straddle two batches. CV_ERR_CANCELLED if the sender stopped. */
static cv_err cut_batch(pump *p, int *slot, size_t r, char *why, size_t whylen) {
    size_t len;
    const char *key = cv_odbc_stmt_value(p->odbc, r, p->checkpoint_col, &len);

    if (!key)
        return cv_err_set(why, whylen, CV_ERR_INVALID,
                          "checkpoint column %s is NULL in a row; batches need a value in every "
                          "row",
                          p->checkpoint_name);
    if (len >= sizeof(p->last))
        return cv_err_set(why, whylen, CV_ERR_INVALID,
                          "a value of checkpoint column %s is longer than %zu bytes",
                          p->checkpoint_name, sizeof(p->last) - 1);
    if (p->in_batch >= p->batch_rows && (len != p->last_len || memcmp(key, p->last, len) != 0)) {
        p->batch_end[*slot] = true;
        memcpy(p->checkpoint[*slot], p->last, p->last_len + 1);
        if (!hand_over(p, slot, false, CV_OK, ""))
            return cv_err_set(why, whylen, CV_ERR_CANCELLED, "stopped");
        p->in_batch = 0;
    }
    memcpy(p->last, key, len);
    p->last[len] = '\0';
    p->last_len = len;
    p->in_batch++;
    return CV_OK;
}

/* Adds what the origin gives next to the reader's chunk: CV_OK, CV_ERR_NOT_FOUND
 * at the end of the rows, or the origin's error. */
static cv_err read_more(pump *p, int *at, char *why, size_t whylen) {
    const char *const *values;
    const unsigned long *lengths;
    const char *data;
    size_t len, rows = 0;
    int slot = *at;
    cv_err err;

    switch (p->from) {
        case FROM_PG_COPY: /* libpq hands over COPY data one row at a time */
            if ((err = cv_pg_copy_out_next(p->pg, &data, &len, why, whylen)))
                return err;
            if (!chunk_reserve(p, slot, len))
                return cv_err_set(why, whylen, CV_ERR_NOMEM, "out of memory for a large row");
            memcpy(p->chunk[slot] + p->used[slot], data, len);
            p->used[slot] += len;
            p->rows[slot]++;
            return CV_OK;
        case FROM_MARIA:
            if ((err = cv_maria_fetch(p->maria, &values, &lengths, why, whylen)))
                return err;
            for (int c = 0; c < p->ncols; c++)
                if (!put_field(p, slot, values[c], lengths[c], p->binary[c],
                               c == p->ncols - 1 ? '\n' : '\t'))
                    return cv_err_set(why, whylen, CV_ERR_NOMEM, "out of memory for a row");
            p->rows[slot]++;
            return CV_OK;
        case FROM_TRANSFORM: /* read by transform_run(), not here */
            return cv_err_set(why, whylen, CV_ERR_INVALID, "transform rows are not fetched");
        case FROM_ODBC:
            if ((err = cv_odbc_stmt_fetch_block(p->odbc, &rows, why, whylen)))
                return err;
            for (size_t r = 0; r < rows; r++) {
                if (p->batch_rows && (err = cut_batch(p, at, r, why, whylen)))
                    return err;
                slot = *at;
                for (int c = 0; c < p->ncols; c++) {
                    const char *value = cv_odbc_stmt_value(p->odbc, r, c, &len);
                    if (!put_field(p, slot, value, len, p->binary[c],
                                   c == p->ncols - 1 ? '\n' : '\t'))
                        return cv_err_set(why, whylen, CV_ERR_NOMEM, "out of memory for a row");
                }
                p->rows[slot]++;
            }
            return CV_OK;
    }
    return cv_err_set(why, whylen, CV_ERR_INVALID, "unknown origin");
}

/* ---- a Python transform between origin and destination ---------------------
 * The reader thread runs the script in the sandbox (cv_script.c): origin rows
 * go to its stdin as JSON lines ({"column": "text" or null}, binary columns as
 * hex), and each line it prints must be a JSON object with exactly the query's
 * columns, which is written into the chunk like a fetched row. */

/* Makes room for `more` bytes at the end of b. */
static bool json_reserve(struct jsonbuf *b, size_t more) {
    size_t cap = b->cap ? b->cap : 65536;
    char *grown;
    if (b->len + more <= b->cap)
        return true;
    while (cap < b->len + more)
        cap *= 2;
    if (!(grown = realloc(b->data, cap)))
        return false;
    b->data = grown;
    b->cap = cap;
    return true;
}

/* Appends s as a JSON string. */
static bool json_string(struct jsonbuf *b, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    char *o;
    if (!json_reserve(b, 6 * len + 3))
        return false;
    o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[c >> 4];
            o[5] = hex[c & 15];
            o += 6;
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return true;
}

static bool json_raw(struct jsonbuf *b, const char *s) {
    size_t len = strlen(s);
    if (!json_reserve(b, len))
        return false;
    memcpy(b->data + b->len, s, len);
    b->len += len;
    return true;
}

/* Writes one fetched block into b as JSON lines. */
static cv_err encode_block(pump *p, size_t rows, struct jsonbuf *b) {
    static const char hex[] = "0123456789abcdef";
    size_t vlen;

    for (size_t r = 0; r < rows; r++) {
        for (int c = 0; c < p->ncols; c++) {
            const cv_odbc_col *col = cv_odbc_stmt_col(p->odbc, c);
            const char *v = cv_odbc_stmt_value(p->odbc, r, c, &vlen);
            bool ok = json_raw(b, c ? "," : "{") && json_string(b, col->name, strlen(col->name)) &&
                      json_raw(b, ":");
            if (ok && !v) {
                ok = json_raw(b, "null");
            } else if (ok && col->binary) { /* bytes travel as hex text */
                ok = json_reserve(b, 2 * vlen + 2);
                if (ok) {
                    b->data[b->len++] = '"';
                    for (size_t i = 0; i < vlen; i++) {
                        b->data[b->len++] = hex[(unsigned char)v[i] >> 4];
                        b->data[b->len++] = hex[(unsigned char)v[i] & 15];
                    }
                    b->data[b->len++] = '"';
                }
            } else if (ok) {
                ok = json_string(b, v, vlen);
            }
            if (!ok)
                return CV_ERR_NOMEM;
        }
        if (!json_raw(b, "}\n"))
            return CV_ERR_NOMEM;
    }
    return CV_OK;
}

/* The feeder thread: fetches the origin's blocks and hands them over as JSON
 * lines, one block ahead of the script's stdin. */
static void *transform_feeder(void *arg) {
    pump *p = arg;
    cv_err err = CV_OK;
    char why[512] = "";

    for (;;) {
        size_t rows = 0;
        struct jsonbuf swap;
        bool end;

        p->work.len = 0;
        err = cv_odbc_stmt_fetch_block(p->odbc, &rows, why, sizeof(why));
        if (!err && (err = encode_block(p, rows, &p->work)))
            snprintf(why, sizeof(why), "out of memory");
        end = err != CV_OK;
        pthread_mutex_lock(&p->lock);
        while (p->ready_full && !p->feed_quit)
            pthread_cond_wait(&p->changed, &p->lock);
        if (p->feed_quit) {
            pthread_mutex_unlock(&p->lock);
            return NULL;
        }
        if (end) {
            p->feed_done = true;
            if (err != CV_ERR_NOT_FOUND) {
                p->feed_err = err;
                snprintf(p->feed_why, sizeof(p->feed_why), "%s", why);
            }
        } else {
            swap = p->next;
            p->next = p->work;
            p->work = swap;
            p->ready_full = true;
        }
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
        if (end)
            return NULL;
    }
}

/* The script's stdin: the blocks the feeder encoded, in order. */
static long transform_feed(void *ctx, char *buf, size_t len) {
    pump *p = ctx;
    size_t n;

    while (p->current_at == p->current.len) {
        bool failed;
        pthread_mutex_lock(&p->lock);
        while (!p->ready_full && !p->feed_done)
            pthread_cond_wait(&p->changed, &p->lock);
        if (p->ready_full) {
            struct jsonbuf swap = p->current;
            p->current = p->next;
            p->next = swap;
            p->ready_full = false;
            p->current_at = 0;
            pthread_cond_broadcast(&p->changed);
            pthread_mutex_unlock(&p->lock);
            continue;
        }
        failed = p->feed_err != CV_OK;
        pthread_mutex_unlock(&p->lock);
        return failed ? -1 : 0;
    }
    n = p->current.len - p->current_at;
    n = n < len ? n : len;
    memcpy(buf, p->current.data + p->current_at, n);
    p->current_at += n;
    return (long)n;
}

/* One line the script printed: a row for the destination, or a reason to stop. */
static bool transform_line(void *ctx, const char *line, size_t len) {
    pump *p = ctx;
    cJSON *row;
    int members = 0;
    bool ok = true;

    p->line_no++;
    row = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsObject(row)) {
        cJSON_Delete(row);
        p->transform_err =
            cv_err_set(p->transform_why, sizeof(p->transform_why), CV_ERR_INVALID,
                       "transform output line %lld: not a JSON object", (long long)p->line_no);
        return false;
    }
    for (const cJSON *m = row->child; m; m = m->next)
        members++;
    for (int c = 0; c < p->ncols && ok; c++) {
        const cv_odbc_col *col = cv_odbc_stmt_col(p->odbc, c);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, col->name);
        char number[64];
        char end = c == p->ncols - 1 ? '\n' : '\t';
        if (!v) {
            cv_err_set(p->transform_why, sizeof(p->transform_why), CV_ERR_INVALID,
                       "transform output line %lld: column \"%s\" is missing",
                       (long long)p->line_no, col->name);
            ok = false;
        } else if (cJSON_IsNull(v)) {
            ok = put_field(p, p->slot, NULL, 0, false, end);
        } else if (cJSON_IsString(v) && col->binary) {
            size_t hl = strlen(v->valuestring);
            unsigned char *bytes = malloc(hl / 2 + 1);
            bool hexok = bytes && hl % 2 == 0;
            for (size_t i = 0; hexok && i < hl / 2; i++) {
                unsigned int byte;
                hexok = sscanf(v->valuestring + 2 * i, "%2x", &byte) == 1 &&
                        isxdigit((unsigned char)v->valuestring[2 * i]) &&
                        isxdigit((unsigned char)v->valuestring[2 * i + 1]);
                bytes[i] = (unsigned char)byte;
            }
            if (!hexok)
                cv_err_set(p->transform_why, sizeof(p->transform_why), CV_ERR_INVALID,
                           "transform output line %lld: column \"%s\" must be hex text",
                           (long long)p->line_no, col->name);
            ok = hexok && put_field(p, p->slot, (const char *)bytes, hl / 2, true, end);
            free(bytes);
        } else if (cJSON_IsString(v)) {
            ok = put_field(p, p->slot, v->valuestring, strlen(v->valuestring), false, end);
        } else if (cJSON_IsBool(v)) {
            ok = put_field(p, p->slot, cJSON_IsTrue(v) ? "true" : "false", cJSON_IsTrue(v) ? 4 : 5,
                           false, end);
        } else if (cJSON_IsNumber(v)) {
            int n = v->valuedouble == (double)(long long)v->valuedouble &&
                            v->valuedouble < 9.0e15 && v->valuedouble > -9.0e15
                        ? snprintf(number, sizeof(number), "%lld", (long long)v->valuedouble)
                        : snprintf(number, sizeof(number), "%.17g", v->valuedouble);
            ok = put_field(p, p->slot, number, (size_t)n, false, end);
        } else {
            cv_err_set(p->transform_why, sizeof(p->transform_why), CV_ERR_INVALID,
                       "transform output line %lld: column \"%s\" must be a string, a number, "
                       "true, false or null",
                       (long long)p->line_no, col->name);
            ok = false;
        }
    }
    if (ok && members != p->ncols) {
        cv_err_set(p->transform_why, sizeof(p->transform_why), CV_ERR_INVALID,
                   "transform output line %lld: %d fields, the destination takes the query's %d "
                   "columns",
                   (long long)p->line_no, members, p->ncols);
        ok = false;
    }
    cJSON_Delete(row);
    if (!ok) {
        p->transform_err = CV_ERR_INVALID;
        return false;
    }
    p->rows[p->slot]++;
    if (p->used[p->slot] >= PUMP_CHUNK / 2 && !hand_over(p, &p->slot, false, CV_OK, "")) {
        p->transform_err =
            cv_err_set(p->transform_why, sizeof(p->transform_why), CV_ERR_CANCELLED, "stopped");
        return false;
    }
    return true;
}

/* Stops the script when the sender stopped the pump (cancel, time limit). */
static cv_err transform_check(void *ctx, char *errbuf, size_t errlen) {
    pump *p = ctx;
    bool stop;
    pthread_mutex_lock(&p->lock);
    stop = p->stop;
    pthread_mutex_unlock(&p->lock);
    return stop ? cv_err_set(errbuf, errlen, CV_ERR_CANCELLED, "stopped") : CV_OK;
}

static void transform_log(void *ctx, cv_script_stream stream, const char *line, size_t len,
                          bool cut) {
    pump *p = ctx;
    (void)stream;
    (void)cut;
    cv_log_info("run %s: transform: %.*s", p->spec->run_id, (int)len, line);
}

/* Runs the transform to its end: CV_OK once every row it printed is in the
 * chunks, or the reason it failed in why. */
static cv_err transform_run(pump *p, char *why, size_t whylen) {
    cv_script_spec script;
    cv_script_result res;
    cv_err err;

    memset(&script, 0, sizeof(script));
    script.script = p->spec->transform;
    /* The job's own time limit stops it through the pump; a long transfer may
     * keep a transform busy for longer than a script's default CPU limit. */
    script.limits.timeout_seconds = 86400;
    script.limits.cpu_seconds = 86400;
    script.feed = transform_feed;
    script.on_data = transform_line;
    script.on_line = transform_log;
    script.check = transform_check;
    script.ctx = p;
    if (pthread_create(&p->feeder, NULL, transform_feeder, p) != 0)
        return cv_err_set(why, whylen, CV_ERR_IO, "cannot start the feeder thread");
    err = cv_script_run(&script, &res, why, whylen);
    pthread_mutex_lock(&p->lock);
    p->feed_quit = true; /* the script is gone: nothing more to feed */
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->feeder, NULL);
    if (err)
        return err;
    if (p->feed_err) /* the origin failed under the script */
        return cv_err_set(why, whylen, p->feed_err, "%s", p->feed_why);
    if (p->transform_err)
        return cv_err_set(why, whylen, p->transform_err, "%s", p->transform_why);
    if (res.aborted)
        return cv_err_set(why, whylen, CV_ERR_INVALID, "transform output line %lld is too long",
                          (long long)p->line_no + 1);
    if (res.limit || res.exit_code != 0 || res.signal) {
        char how[256];
        cv_script_describe(&script, &res, how, sizeof(how));
        return cv_err_set(why, whylen, CV_ERR_INVALID, "transform %s", how);
    }
    return CV_OK;
}

static void *pump_reader(void *arg) {
    pump *p = arg;
    int slot = 0;
    char why[512] = "";
    cv_err err = CV_OK;

    if (p->from == FROM_TRANSFORM) {
        err = transform_run(p, why, sizeof(why));
        hand_over(p, &p->slot, true, err, why);
        return NULL;
    }

    if (p->from == FROM_PG_COPY) {
        err = cv_pg_copy_out_begin(p->pg, p->query, why, sizeof(why));
    } else if (p->from == FROM_MARIA) {
        err = cv_maria_query(p->maria, p->query, why, sizeof(why));
        if (!err && cv_maria_ncols(p->maria) != p->ncols)
            err = cv_err_set(why, sizeof(why), CV_ERR_INVALID,
                             "the query returned %d columns, %d when described",
                             cv_maria_ncols(p->maria), p->ncols);
    }
    while (!err) {
        err = read_more(p, &slot, why, sizeof(why));
        if (!err && p->used[slot] >= PUMP_CHUNK / 2 && !hand_over(p, &slot, false, CV_OK, ""))
            return NULL;
    }
    hand_over(p, &slot, true, err == CV_ERR_NOT_FOUND ? CV_OK : err, why);
    return NULL;
}

/* Starts the reader over an origin already set up in p (from, the source and
 * its columns). */
static cv_err pump_start(pump *p, const cv_odbc_stmt *select, char *errbuf, size_t errlen) {
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->changed, NULL);
    p->ready = true;
    p->ncols = cv_odbc_stmt_ncols(select);
    if (!(p->binary = calloc((size_t)p->ncols + 1, sizeof(bool))))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    for (int c = 0; c < p->ncols; c++)
        p->binary[c] = cv_odbc_stmt_col(select, c)->binary;
    for (int i = 0; i < PUMP_CHUNKS; i++) {
        if (!(p->chunk[i] = malloc(PUMP_CHUNK)))
            return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        p->cap[i] = PUMP_CHUNK;
    }
    if (pthread_create(&p->reader, NULL, pump_reader, p) != 0)
        return cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot start the reader thread");
    p->started = true;
    return CV_OK;
}

/* Stops the reader (cancelling the origin's query if it is still running) and
 * frees the chunks. Safe on a pump that never started, and twice. */
static void pump_stop(pump *p) {
    if (!p->ready)
        return;
    if (p->started) {
        bool finished;
        pthread_mutex_lock(&p->lock);
        finished = p->done;
        p->stop = true;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->lock);
        /* A reader blocked in the origin's fetch wakes when its query is
         * cancelled, even one that has produced nothing for a while. */
        for (bool joined = finished && pthread_join(p->reader, NULL) == 0; !joined;) {
            struct timespec until;
            /* Again every second: a cancel that arrives before the reader has
             * started its query is lost. */
            if (p->from == FROM_PG_COPY)
                cv_pg_cancel(p->pg);
            else if (p->from == FROM_MARIA)
                cv_maria_cancel(p->maria);
            else
                cv_odbc_stmt_cancel(p->odbc);
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            joined = pthread_timedjoin_np(p->reader, NULL, &until) == 0;
        }
        p->started = false;
    }
    for (int i = 0; i < PUMP_CHUNKS; i++) {
        free(p->chunk[i]);
        p->chunk[i] = NULL;
    }
    free(p->work.data);
    free(p->next.data);
    free(p->current.data);
    memset(&p->work, 0, sizeof(p->work));
    memset(&p->next, 0, sizeof(p->next));
    memset(&p->current, 0, sizeof(p->current));
    free(p->binary);
    p->binary = NULL;
    pthread_cond_destroy(&p->changed);
    pthread_mutex_destroy(&p->lock);
    p->ready = false;
}

/* The next full chunk for the sender: its slot, or -1 when there is none,
 * with *err CV_OK once every row was read or the reason it stopped (the
 * stage is set in res). While waiting it calls the progress hook every
 * second, so a cancel or a time limit is noticed while the origin is slow. */
static int pump_next(pump *p, const cv_transfer_spec *spec, cv_transfer_result *res, cv_err *err,
                     char *errbuf, size_t errlen) {
    int slot = -1;

    *err = CV_OK;
    pthread_mutex_lock(&p->lock);
    while (p->count == 0 && !p->done) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        if (pthread_cond_timedwait(&p->changed, &p->lock, &until) == 0 || !spec->progress)
            continue;
        pthread_mutex_unlock(&p->lock);
        *err = spec->progress(spec->progress_ctx, res->rows_read, errbuf, errlen);
        if (*err) {
            *err = fail_at(res, stopped_stage(*err), *err);
            return -1;
        }
        pthread_mutex_lock(&p->lock);
    }
    if (p->count > 0) {
        slot = p->head;
    } else if (p->err) { /* done and drained, with an error */
        *err = fail_at(res, p->from == FROM_TRANSFORM ? "transform" : "origin_fetch",
                       cv_err_set(errbuf, errlen, p->err, "%s", p->why));
    }
    pthread_mutex_unlock(&p->lock);
    return slot;
}

/* Gives a sent chunk back to the reader, counts its rows and calls the
 * progress hook. */
static cv_err pump_release(pump *p, int slot, const cv_transfer_spec *spec, cv_transfer_result *res,
                           char *errbuf, size_t errlen) {
    cv_err err;

    pthread_mutex_lock(&p->lock);
    res->rows_read += p->rows[slot];
    p->used[slot] = 0;
    p->rows[slot] = 0;
    p->head = (p->head + 1) % PUMP_CHUNKS;
    p->count--;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    if (spec->progress &&
        (err = spec->progress(spec->progress_ctx, res->rows_read, errbuf, errlen)))
        return fail_at(res, stopped_stage(err), err);
    return CV_OK;
}

/* Commits a batch the reader ended. A batch another delivery of the same run
 * committed first means that delivery is loading the run: this one stops. */
static cv_err commit_batch(sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                           const char *checkpoint, cv_transfer_result *res, char *errbuf,
                           size_t errlen) {
    cv_err err = sink_commit_batch(k, spec, select, checkpoint, res->watermark, errbuf, errlen);
    if (err == CV_ERR_CONFLICT) {
        res->superseded = true;
        return fail_at(res, "destination_commit",
                       cv_err_set(errbuf, errlen, err,
                                  "batch %lld was committed by another delivery of this run",
                                  k->batches + 1));
    }
    return err ? fail_at(res, "destination_commit", err) : CV_OK;
}

/* Sends every chunk into the destination's COPY FROM STDIN. */
static cv_err pump_to_pg(pump *p, sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                         cv_transfer_result *res, char *errbuf, size_t errlen) {
    char checkpoint[256];
    cv_err err;
    int slot;

    while ((slot = pump_next(p, spec, res, &err, errbuf, errlen)) >= 0) {
        bool batch_end = p->batch_end[slot];
        /* Not released on failure: the rows of this chunk did not get in. */
        if (p->used[slot] &&
            (err = cv_pg_copy_raw(k->pg, p->chunk[slot], p->used[slot], errbuf, errlen)))
            return fail_at(res, "destination_insert", err);
        if (batch_end)
            memcpy(checkpoint, p->checkpoint[slot], sizeof(checkpoint));
        if ((err = pump_release(p, slot, spec, res, errbuf, errlen)))
            return err;
        if (batch_end && (err = commit_batch(k, spec, select, checkpoint, res, errbuf, errlen)))
            return err;
    }
    return err;
}

/* LOAD DATA pulls its data through feed_load(), on this thread; one LOAD DATA
 * statement per batch. */
typedef struct load_feed {
    pump *p;
    const cv_transfer_spec *spec;
    cv_transfer_result *res;
    int slot;  /* chunk being read, -1 for none */
    size_t at; /* bytes of it already given */
    bool batch_end;
    char checkpoint[256];
    cv_err err;
    char why[1024]; /* the feed's own reason: cv_maria_load() writes errbuf */
} load_feed;

static long feed_load(void *ctx, char *buf, size_t len) {
    load_feed *f = ctx;
    size_t n;

    while (f->slot < 0 || f->at == f->p->used[f->slot]) {
        if (f->slot >= 0) {
            int done = f->slot;
            f->batch_end = f->p->batch_end[done];
            if (f->batch_end)
                memcpy(f->checkpoint, f->p->checkpoint[done], sizeof(f->checkpoint));
            f->slot = -1;
            if ((f->err = pump_release(f->p, done, f->spec, f->res, f->why, sizeof(f->why))))
                return -1;
        }
        if (f->batch_end) /* the end of this statement's data */
            return 0;
        f->slot = pump_next(f->p, f->spec, f->res, &f->err, f->why, sizeof(f->why));
        if (f->slot < 0)
            return f->err ? -1 : 0;
        f->at = 0;
    }
    n = f->p->used[f->slot] - f->at;
    n = n < len ? n : len;
    memcpy(buf, f->p->chunk[f->slot] + f->at, n);
    f->at += n;
    return (long)n;
}

/* Runs the sink's LOAD DATA LOCAL INFILE with the pump's chunks as its file,
 * once per batch. */
static cv_err pump_to_maria(pump *p, sink *k, const cv_transfer_spec *spec,
                            const cv_odbc_stmt *select, cv_transfer_result *res, char *errbuf,
                            size_t errlen) {
    load_feed f = {.p = p, .spec = spec, .res = res, .slot = -1};
    cv_err err;

    for (;;) {
        f.batch_end = false;
        err = cv_maria_load(k->maria, k->sql, feed_load, &f, &k->loaded, errbuf, errlen);
        if (f.err) /* the feed's own reason (origin failure, cancel, timeout) wins */
            return cv_err_set(errbuf, errlen, f.err, "%s", f.why);
        if (err)
            return fail_at(res, "destination_insert", err);
        if (!f.batch_end)
            return CV_OK;
        if ((err = commit_batch(k, spec, select, f.checkpoint, res, errbuf, errlen)))
            return err;
    }
}

/* Makes psqlODBC, MariaDB's driver and sqliteodbc stream a result instead of
 * reading it all into memory first (unless the user chose otherwise). */
static char *streaming_origin(const char *odbc, size_t block_rows) {
    size_t len = strlen(odbc) + 64;
    char *out = malloc(len);
    if (!out)
        return NULL;
    const char *sep = odbc[0] && odbc[strlen(odbc) - 1] != ';' ? ";" : "";
    if (cv_pg_is_postgres_odbc(odbc) && !strcasestr(odbc, "UseDeclareFetch"))
        snprintf(out, len, "%s%sUseDeclareFetch=1;Fetch=%zu", odbc, sep, block_rows);
    else if (cv_maria_is_mariadb_odbc(odbc) && !strcasestr(odbc, "NO_CACHE"))
        snprintf(out, len, "%s%sNO_CACHE=1", odbc, sep); /* stream, forward-only */
    else if (strcasestr(odbc, "sqlite") && !strcasestr(odbc, "StepAPI"))
        snprintf(out, len, "%s%sStepAPI=1", odbc, sep); /* sqlite3_step, not get_table */
    else
        snprintf(out, len, "%s", odbc);
    return out;
}

const char *cv_transfer_method(const cv_transfer_spec *spec) {
    cv_load_method method;
    char why[8];
    if (load_method(spec, &method, why, sizeof(why)) != CV_OK)
        return "invalid";
    return cv_load_method_str(method);
}

/* Makes the origin's session read-only before its query runs, and refuses a
 * query of more than one statement (the second could undo the first's
 * setting), so that a transfer's query cannot change the origin. */
static cv_err origin_read_only(cv_odbc_conn *origin, const char *query, char *errbuf,
                               size_t errlen) {
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

/* Connects the pump's own way to the origin, for the origins the reader does
 * not fetch over ODBC; the reader runs the query, so that a slow first row can
 * be cancelled. */
static cv_err pump_connect(pump *p, const cv_transfer_spec *spec, char **query, char *errbuf,
                           size_t errlen) {
    char *bare = cv_sqltext_bare_query(spec->query);
    size_t cap = bare ? strlen(bare) + 32 : 0;
    cv_err err = CV_OK;

    if (!bare)
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    if (p->from == FROM_MARIA) {
        if (!(p->maria = cv_maria_connect(spec->origin_odbc, errbuf, errlen)))
            err = CV_ERR_ODBC;
        else
            err = cv_maria_exec(p->maria, cv_dialect_read_only_sql(CV_DIALECT_MARIADB), errbuf,
                                errlen);
        *query = bare;
        p->query = bare;
        return err;
    }
    if (!(*query = malloc(cap))) {
        free(bare);
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    }
    snprintf(*query, cap, "COPY (%s) TO STDOUT", bare);
    free(bare);
    p->query = *query; /* run by the reader, like a MariaDB origin's */
    if (!(p->pg = cv_pg_connect(spec->origin_odbc, errbuf, errlen)))
        return CV_ERR_ODBC;
    return cv_pg_exec(p->pg, cv_dialect_read_only_sql(CV_DIALECT_POSTGRES), errbuf, errlen);
}

cv_err cv_transfer_run(const cv_transfer_spec *spec, cv_transfer_result *res, char *errbuf,
                       size_t errlen) {
    cv_odbc_conn *origin = NULL;
    cv_odbc_stmt *select = NULL;
    char *origin_odbc = NULL, *pump_query = NULL;
    long long rows = 0;
    bool pumped, native_origin;
    resume_state resume;
    pump p;
    sink k;
    cv_err err;

    memset(res, 0, sizeof(*res));
    memset(&p, 0, sizeof(p));
    if ((err = sink_open(&k, spec, res, errbuf, errlen)))
        goto out;
    /* A run already in the ledger was loaded by an earlier delivery. */
    err = sink_ledger_rows(&k, spec->run_id, &rows, errbuf, errlen);
    if (err == CV_OK) {
        res->already_loaded = true;
        res->rows_written = rows;
        goto out;
    }
    if (err != CV_ERR_NOT_FOUND ||
        (err = read_resume(&k, spec, &resume, errbuf, errlen)) != CV_OK) {
        err = fail_at(res, "destination_ledger", err);
        goto out;
    }
    res->resumed_rows = resume.rows;

    /* COPY and LOAD DATA are fed by the pump; a PostgreSQL origin feeding COPY,
     * or a MariaDB one, is read natively unless the job is incremental or
     * batched (bounds are bound as ODBC parameters, batches are cut on a
     * column's values). */
    pumped = k.method != CV_LOAD_INSERT;
    p.bare_hex = k.method == CV_LOAD_LOAD_DATA;
    p.from = FROM_ODBC;
    if (pumped && !spec->load.watermark[0] && !spec->load.batch_rows && k.method == CV_LOAD_COPY &&
        cv_pg_is_postgres_odbc(spec->origin_odbc))
        p.from = FROM_PG_COPY;
    else if (pumped && !spec->load.watermark[0] && !spec->load.batch_rows &&
             cv_maria_is_mariadb_odbc(spec->origin_odbc))
        p.from = FROM_MARIA;
    if (spec->transform) {
        if (!pumped || spec->load.batch_rows) {
            err = fail_at(res, "destination_prepare",
                          cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                                     spec->load.batch_rows
                                         ? "a transform cannot be used with batch_rows"
                                         : "a transform needs load_method \"copy\" or "
                                           "\"load_data\" (a PostgreSQL or MariaDB destination)"));
            goto out;
        }
        p.from = FROM_TRANSFORM; /* rows come over ODBC, go through the script */
        p.spec = spec;
    }
    native_origin = p.from != FROM_ODBC && p.from != FROM_TRANSFORM;

    origin_odbc = streaming_origin(spec->origin_odbc, 1024);
    if (!origin_odbc) {
        err = fail_at(res, "origin_connect", cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "oom"));
        goto out;
    }
    origin = cv_odbc_connect(origin_odbc, errbuf, errlen);
    if (!origin) {
        err = fail_at(res, "origin_connect", CV_ERR_ODBC);
        goto out;
    }
    if ((err = origin_read_only(origin, spec->query, errbuf, errlen))) {
        err = fail_at(res, "origin_query", err);
        goto out;
    }
    select = cv_odbc_stmt_new(origin, errbuf, errlen);
    if (!select) {
        err = fail_at(res, "origin_query", CV_ERR_ODBC);
        goto out;
    }
    /* A native origin needs only the columns from ODBC; the rows come its way. */
    if ((err = guarded_open(spec, select, &k, &resume, native_origin, res, errbuf, errlen)))
        goto out;
    p.checkpoint_col = -1;
    for (int c = 0; spec->load.batch_rows && c < cv_odbc_stmt_ncols(select); c++)
        if (strcmp(cv_odbc_stmt_col(select, c)->name, spec->load.checkpoint) == 0)
            p.checkpoint_col = c;
    if (spec->load.batch_rows && p.checkpoint_col < 0) {
        err = fail_at(res, "origin_query",
                      cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                                 "checkpoint column \"%s\" is not in the query's result",
                                 spec->load.checkpoint));
        goto out;
    }
    p.batch_rows = spec->load.batch_rows;
    p.checkpoint_name = spec->load.checkpoint;
    if (cv_odbc_stmt_ncols(select) == 0) {
        err =
            fail_at(res, "origin_query",
                    cv_err_set(errbuf, errlen, CV_ERR_INVALID, "the query returned no result set"));
        goto out;
    }
    if ((err = sink_prepare_table(&k, spec, select, errbuf, errlen))) {
        err = fail_at(res, "destination_schema", err);
        goto out;
    }
    if ((err = sink_begin(&k, spec, select, errbuf, errlen))) {
        err = fail_at(res, "destination_prepare", err);
        goto out;
    }
    if (pumped) {
        p.odbc = select;
        if (native_origin && (err = pump_connect(&p, spec, &pump_query, errbuf, errlen))) {
            err = fail_at(res, p.maria || p.pg ? "origin_query" : "origin_connect", err);
            goto out;
        }
        if ((err = pump_start(&p, select, errbuf, errlen))) {
            err = fail_at(res, "origin_fetch", err);
            goto out;
        }
        err = k.maria ? pump_to_maria(&p, &k, spec, select, res, errbuf, errlen)
                      : pump_to_pg(&p, &k, spec, select, res, errbuf, errlen);
        pump_stop(&p);
        if (err)
            goto out;
    }
    for (; !pumped;) {
        size_t block = 0;
        err = cv_odbc_stmt_fetch_block(select, &block, errbuf, errlen);
        if (err == CV_ERR_NOT_FOUND)
            break;
        if (err) {
            err = fail_at(res, "origin_fetch", err);
            goto out;
        }
        res->rows_read += (int64_t)block;
        if ((err = cv_odbc_stmt_execute_block(k.insert, block, errbuf, errlen))) {
            err = fail_at(res, "destination_insert", err);
            goto out;
        }
        if (spec->progress &&
            (err = spec->progress(spec->progress_ctx, res->rows_read, errbuf, errlen))) {
            err = fail_at(res, stopped_stage(err), err);
            goto out;
        }
    }
    err = sink_commit(&k, spec, select, res->rows_read, res->watermark, &rows, errbuf, errlen);
    if (err == CV_ERR_CONFLICT) {
        /* Another delivery of this run won the race; ours is rolled back. */
        sink_close(&k);
        if ((err = sink_open(&k, spec, res, errbuf, errlen)) ||
            (err = sink_ledger_rows(&k, spec->run_id, &rows, errbuf, errlen))) {
            err = fail_at(res, "destination_ledger", err);
            goto out;
        }
        res->already_loaded = true;
    } else if (err) {
        err = fail_at(res, "destination_commit", err);
        goto out;
    }
    res->rows_written = rows;
out:
    pump_stop(&p); /* before the origin's statement it may be fetching from */
    cv_pg_destroy(p.pg);
    cv_maria_destroy(p.maria);
    free(pump_query);
    cv_odbc_stmt_destroy(select);
    cv_odbc_disconnect(origin);
    sink_close(&k);
    free(origin_odbc);
    return err;
}
