/*
 * cv_sink.c - where a transfer's rows go, and the ledger that makes a load
 * happen once. See cv_sink.h.
 */
#include "cv_sink.h"

#include "cv_log.h"
#include "cv_sqltext.h"
#include "cv_stage.h"
#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

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

/* Runs a CREATE TABLE IF NOT EXISTS of Convutell's own. Runs starting at
 * once on several workers may all create it: PostgreSQL lets one win and
 * refuses the others with a unique violation in its catalog (IF NOT EXISTS
 * does not cover that race), after the winner committed; run again, the
 * statement finds the table. */
static cv_err create_if_missing(cv_sink *k, const char *ddl, char *errbuf, size_t errlen) {
    if (cv_odbc_exec_params(k->catalog, ddl, 0, NULL, NULL, errbuf, errlen) == CV_OK)
        return CV_OK;
    return cv_odbc_exec_params(k->catalog, ddl, 0, NULL, NULL, errbuf, errlen);
}

void cv_sink_close(cv_sink *k) {
    cv_odbc_stmt_destroy(k->insert);
    cv_odbc_disconnect(k->catalog); /* rolls back what was not committed */
    cv_pg_destroy(k->pg);           /* likewise */
    cv_maria_destroy(k->maria);     /* likewise */
    free(k->sql);
    memset(k, 0, sizeof(*k));
}

/* The method a job asked for, or the fastest one its destination allows. */
cv_err cv_sink_load_method(const cv_transfer_spec *spec, cv_load_method *method, char *errbuf,
                           size_t errlen) {
    bool pg = cv_odbc_names_postgres(spec->destination_odbc);
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

cv_err cv_sink_open(cv_sink *k, const cv_transfer_spec *spec, cv_transfer_result *res, char *errbuf,
                    size_t errlen) {
    cv_err err;

    memset(k, 0, sizeof(*k));
    if ((err = cv_sink_load_method(spec, &k->method, errbuf, errlen)))
        return cv_stage_fail(res, "destination_prepare", err);
    if (spec->load.batch_rows && k->method == CV_LOAD_INSERT)
        return cv_stage_fail(res, "destination_prepare",
                             cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                                        "batch_rows needs load_method \"copy\" or \"load_data\" (a "
                                        "PostgreSQL or MariaDB destination)"));
    k->catalog = cv_odbc_connect(spec->destination_odbc, errbuf, errlen);
    if (!k->catalog)
        return cv_stage_fail(res, "destination_connect", CV_ERR_ODBC);
    k->dialect = cv_dialect_from_dbms(cv_odbc_dbms(k->catalog));
    k->quote = k->method == CV_LOAD_COPY ? '"' : cv_odbc_quote_char(k->catalog);
    if (k->method == CV_LOAD_COPY &&
        !(k->pg = cv_pg_connect(spec->destination_odbc, errbuf, errlen)))
        return cv_stage_fail(res, "destination_connect", CV_ERR_ODBC);
    if (k->method == CV_LOAD_LOAD_DATA) {
        long long allowed = 0;
        if (!(k->maria = cv_maria_connect(spec->destination_odbc, errbuf, errlen)))
            return cv_stage_fail(res, "destination_connect", CV_ERR_ODBC);
        /* A server that refuses LOAD DATA LOCAL still takes parameter arrays. */
        if ((err =
                 cv_maria_query_int64(k->maria, "SELECT @@local_infile", &allowed, errbuf, errlen)))
            return cv_stage_fail(res, "destination_connect", err);
        if (!allowed && spec->load.method == CV_LOAD_AUTO) {
            cv_maria_destroy(k->maria);
            k->maria = NULL;
            k->method = CV_LOAD_INSERT;
        }
    }
    err = create_if_missing(k, ledger_ddl, errbuf, errlen);
    if (!err && spec->load.batch_rows)
        err = create_if_missing(k, checkpoint_ddl, errbuf, errlen);
    return err ? cv_stage_fail(res, "destination_ledger", err) : CV_OK;
}

/* Reads where earlier attempts of a batched run got to (nothing for a run
 * that never committed a batch). */
cv_err cv_sink_read_resume(cv_sink *k, const cv_transfer_spec *spec, cv_sink_resume *r,
                           char *errbuf, size_t errlen) {
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

cv_err cv_sink_ledger_watermark(cv_sink *k, const char *job_id, char *out, size_t outlen,
                                bool *is_null, char *errbuf, size_t errlen) {
    return cv_odbc_query_text(k->catalog, ledger_watermark, job_id, out, outlen, is_null, errbuf,
                              errlen);
}

/* CV_OK with the rows the run loaded, CV_ERR_NOT_FOUND if it is not recorded. */
cv_err cv_sink_ledger_rows(cv_sink *k, const char *run_id, long long *rows, char *errbuf,
                           size_t errlen) {
    if (k->pg)
        return cv_pg_query_int64(k->pg, ledger_select_pg, 1, &run_id, rows, errbuf, errlen);
    return cv_odbc_query_int64(k->catalog, ledger_select_odbc, run_id, rows, errbuf, errlen);
}

/* Runs one statement without result rows on the connection that carries the
 * load's transaction. */
static cv_err sink_exec(cv_sink *k, const char *sql, char *errbuf, size_t errlen) {
    if (k->pg)
        return cv_pg_exec(k->pg, sql, errbuf, errlen);
    if (k->maria)
        return cv_maria_exec(k->maria, sql, errbuf, errlen);
    return cv_odbc_exec_params(k->catalog, sql, 0, NULL, NULL, errbuf, errlen);
}

/* Checks an existing destination table against the query's columns:
 * CV_ERR_NOT_FOUND when there is no such table. */
static cv_err check_table(cv_sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                          char *errbuf, size_t errlen) {
    int ncols = cv_odbc_stmt_ncols(select), nexisting = 0;
    char(*existing)[128] = NULL;
    cv_err err =
        cv_odbc_columns(k->catalog, spec->destination_table, &existing, &nexisting, errbuf, errlen);

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

/* Creates the destination table from the origin's column types, mapping
 * every column before creating anything. */
static cv_err create_table(cv_sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                           char *errbuf, size_t errlen) {
    int ncols = cv_odbc_stmt_ncols(select);
    char(*types)[64] = NULL, *ddl = NULL;
    const char **names = NULL;
    cv_err err = CV_OK;

    if (!(types = calloc(ncols > 0 ? (size_t)ncols : 1, sizeof(*types))))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    for (int c = 0; c < ncols && !err; c++)
        err = cv_dialect_column_type(k->dialect, cv_odbc_stmt_col(select, c), types[c],
                                     sizeof(types[c]), errbuf, errlen);
    if (!err && (names = calloc(ncols > 0 ? (size_t)ncols : 1, sizeof(*names)))) {
        for (int c = 0; c < ncols; c++)
            names[c] = types[c];
        ddl = cv_sqltext_create_table(spec->destination_table, cv_odbc_stmt_cols(select), ncols,
                                      names, &spec->load, k->quote);
    }
    if (!err)
        err = ddl ? cv_odbc_exec_params(k->catalog, ddl, 0, NULL, NULL, errbuf, errlen)
                  : cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build CREATE TABLE");
    free(ddl);
    free(names);
    free(types);
    return err;
}

/* Checks the destination table against the query's columns through the
 * catalog, or creates it from the origin's column types when it is missing.
 * Nothing has been loaded when this fails. */
cv_err cv_sink_prepare_table(cv_sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                             char *errbuf, size_t errlen) {
    const cv_load_spec *load = &spec->load;
    int ncols = cv_odbc_stmt_ncols(select);
    char why[1024];
    cv_err err;

    for (int i = 0; i < load->nkeys; i++) {
        bool found = false;
        for (int c = 0; c < ncols; c++)
            found = found || strcmp(cv_odbc_stmt_col(select, c)->name, load->keys[i]) == 0;
        if (!found)
            return cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                              "key column \"%s\" is not in the query's result", load->keys[i]);
    }
    if ((err = check_table(k, spec, select, errbuf, errlen)) != CV_ERR_NOT_FOUND)
        return err;
    if (!(err = create_table(k, spec, select, errbuf, errlen)))
        return CV_OK;
    /* The first runs of jobs loading one new table, on several workers at
     * once, all find it missing; one creation wins (PostgreSQL refuses the
     * others with a unique violation in its catalog, even under IF NOT
     * EXISTS). A table that is there now is checked like any other. */
    if (check_table(k, spec, select, why, sizeof(why)) == CV_OK) {
        cv_log_info("destination table %s was created meanwhile by another run",
                    spec->destination_table);
        return CV_OK;
    }
    return err;
}

/* Runs DELETE FROM the destination table inside the load's transaction. */
static cv_err sink_empty_table(cv_sink *k, const cv_transfer_spec *spec, char *errbuf,
                               size_t errlen) {
    char *sql = cv_sqltext_delete_all(spec->destination_table, k->quote);
    cv_err err = sql ? sink_exec(k, sql, errbuf, errlen)
                     : cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build DELETE");

    free(sql);
    return err;
}

/* Runs CREATE TEMP TABLE for the rows of an upsert that COPY or LOAD DATA
 * stage before merging them: the destination's columns, none of its keys (a
 * batch may hold one key twice, and the merge keeps the last). */
static cv_err create_stage(cv_sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
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

cv_err cv_sink_begin(cv_sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
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
static cv_err merge_stage(cv_sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
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
static cv_err sink_exec_params(cv_sink *k, const char *sql_pg, const char *sql_odbc, int nparams,
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
static cv_err sink_end_load(cv_sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
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

static cv_err sink_commit_tx(cv_sink *k, char *errbuf, size_t errlen) {
    if (k->pg || k->maria)
        return sink_exec(k, "COMMIT", errbuf, errlen);
    return cv_odbc_commit(k->catalog, errbuf, errlen);
}

/* Commits one batch of a batched run with its checkpoint (the last value of
 * the checkpoint column it loaded), then begins the next one. CV_ERR_CONFLICT
 * if another delivery of the run committed this batch first. */
cv_err cv_sink_commit_batch(cv_sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
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
    return cv_sink_begin(k, spec, select, errbuf, errlen);
}

/* Ends the load, records the run in the ledger and commits. CV_ERR_CONFLICT if
 * another delivery of the same run committed first (nothing of ours stays).
 * *rows_written counts the rows of the whole run, earlier batches included. */
cv_err cv_sink_commit(cv_sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
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
