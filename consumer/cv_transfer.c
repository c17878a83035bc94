/*
 * cv_transfer.c - the SQL transfer's conductor, top to bottom: the sink opened
 * and the ledger read (a run loaded already ends here), the way the rows
 * travel chosen, the origin opened, the destination table checked or created,
 * the rows moved (the pump for COPY and LOAD DATA, block fetch into parameter
 * arrays otherwise) and the run committed with its ledger row. The parts:
 * cv_sink.c (the destination), cv_origin.c (the origin's query), cv_pump.h
 * (the ring, its reader and sender, a transform), cv_sqltext.c (the SQL).
 */
#include "cv_transfer.h"

#include "cv_maria.h"
#include "cv_odbc.h"
#include "cv_odbcstmt.h"
#include "cv_origin.h"
#include "cv_pg.h"
#include "cv_pump.h"
#include "cv_sink.h"
#include "cv_stage.h"

#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* Where the pump's rows come from. COPY and LOAD DATA are fed by the pump; a
 * PostgreSQL origin feeding COPY, or a MariaDB one, is read natively unless
 * the job is incremental or batched (bounds are bound as ODBC parameters,
 * batches are cut on a column's values); a transform reads over ODBC. */
static cv_err choose_way(cv_pump *p, const cv_sink *k, const cv_transfer_spec *spec,
                         cv_transfer_result *res, char *errbuf, size_t errlen) {
    bool pumped = k->method != CV_LOAD_INSERT;
    bool plain = pumped && !spec->load.watermark[0] && !spec->load.batch_rows;

    p->bare_hex = k->method == CV_LOAD_LOAD_DATA;
    p->from = CV_PUMP_ODBC;
    if (plain && k->method == CV_LOAD_COPY && cv_odbc_names_postgres(spec->origin_odbc))
        p->from = CV_PUMP_PG_COPY;
    else if (plain && cv_maria_is_mariadb_odbc(spec->origin_odbc))
        p->from = CV_PUMP_MARIA;
    if (!spec->transform)
        return CV_OK;
    if (!pumped || spec->load.batch_rows)
        return cv_stage_fail(res, "destination_prepare",
                             cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                                        spec->load.batch_rows
                                            ? "a transform cannot be used with batch_rows"
                                            : "a transform needs load_method \"copy\" or "
                                              "\"load_data\" (a PostgreSQL or MariaDB "
                                              "destination)"));
    p->from = CV_PUMP_TRANSFORM; /* rows come over ODBC, go through the script */
    p->feed.spec = spec;
    return CV_OK;
}

/* Connects to the origin (made to stream, its session read-only) and makes
 * the statement its query will run on. */
static cv_err connect_origin(const cv_transfer_spec *spec, cv_odbc_conn **origin,
                             cv_odbc_stmt **select, cv_transfer_result *res, char *errbuf,
                             size_t errlen) {
    char *odbc = cv_origin_streaming(spec->origin_odbc, 1024);
    cv_err err;

    if (!odbc)
        return cv_stage_fail(res, "origin_connect",
                             cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory"));
    *origin = cv_odbc_connect(odbc, errbuf, errlen);
    free(odbc);
    if (!*origin)
        return cv_stage_fail(res, "origin_connect", CV_ERR_ODBC);
    if ((err = cv_origin_read_only(*origin, spec->query, errbuf, errlen)))
        return cv_stage_fail(res, "origin_query", err);
    if (!(*select = cv_odbc_stmt_new(*origin, errbuf, errlen)))
        return cv_stage_fail(res, "origin_query", CV_ERR_ODBC);
    return CV_OK;
}

/* Moves the rows block by block: each fetched block of the origin goes into
 * the destination as one execution of the INSERT bound to its buffers. */
static cv_err move_blocks(cv_odbc_stmt *select, cv_sink *k, const cv_transfer_spec *spec,
                          cv_transfer_result *res, char *errbuf, size_t errlen) {
    for (;;) {
        size_t block = 0;
        cv_err err = cv_odbc_stmt_fetch_block(select, &block, errbuf, errlen);
        if (err == CV_ERR_NOT_FOUND)
            return CV_OK;
        if (err)
            return cv_stage_fail(res, "origin_fetch", err);
        res->rows_read += (int64_t)block;
        if ((err = cv_odbc_stmt_execute_block(k->insert, block, errbuf, errlen)))
            return cv_stage_fail(res, "destination_insert", err);
        if (spec->progress &&
            (err = spec->progress(spec->progress_ctx, res->rows_read, errbuf, errlen)))
            return cv_stage_fail(res, cv_stage_stopped(err), err);
    }
}

/* A batched run's checkpoint column among the query's: the reader cuts
 * batches on its values. */
static cv_err find_checkpoint(cv_pump *p, const cv_odbc_stmt *select, const cv_transfer_spec *spec,
                              cv_transfer_result *res, char *errbuf, size_t errlen) {
    p->batch.col = -1;
    p->batch.rows = spec->load.batch_rows;
    p->batch.name = spec->load.checkpoint;
    for (int c = 0; spec->load.batch_rows && c < cv_odbc_stmt_ncols(select); c++)
        if (strcmp(cv_odbc_stmt_col(select, c)->name, spec->load.checkpoint) == 0)
            p->batch.col = c;
    if (spec->load.batch_rows && p->batch.col < 0)
        return cv_stage_fail(res, "origin_query",
                             cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                                        "checkpoint column \"%s\" is not in the query's result",
                                        spec->load.checkpoint));
    return CV_OK;
}

cv_err cv_transfer_run(const cv_transfer_spec *spec, cv_transfer_result *res, char *errbuf,
                       size_t errlen) {
    cv_odbc_conn *origin = NULL;
    cv_odbc_stmt *select = NULL;
    char *pump_query = NULL;
    long long rows = 0;
    bool pumped, native_origin;
    cv_sink_resume resume;
    cv_pump p;
    cv_sink k;
    cv_err err;

    memset(res, 0, sizeof(*res));
    memset(&p, 0, sizeof(p));
    if ((err = cv_sink_open(&k, spec, res, errbuf, errlen)))
        goto out;
    /* A run already in the ledger was loaded by an earlier delivery. */
    err = cv_sink_ledger_rows(&k, spec->run_id, &rows, errbuf, errlen);
    if (err == CV_OK) {
        res->already_loaded = true;
        res->rows_written = rows;
        goto out;
    }
    if (err != CV_ERR_NOT_FOUND ||
        (err = cv_sink_read_resume(&k, spec, &resume, errbuf, errlen)) != CV_OK) {
        err = cv_stage_fail(res, "destination_ledger", err);
        goto out;
    }
    res->resumed_rows = resume.rows;

    pumped = k.method != CV_LOAD_INSERT;
    if ((err = choose_way(&p, &k, spec, res, errbuf, errlen)))
        goto out;
    native_origin = p.from != CV_PUMP_ODBC && p.from != CV_PUMP_TRANSFORM;

    if ((err = connect_origin(spec, &origin, &select, res, errbuf, errlen)))
        goto out;
    /* A native origin needs only the columns from ODBC; the rows come its way. */
    if ((err = cv_origin_open(spec, select, &k, &resume, native_origin, res, errbuf, errlen)))
        goto out;
    if ((err = find_checkpoint(&p, select, spec, res, errbuf, errlen)))
        goto out;
    if (cv_odbc_stmt_ncols(select) == 0) {
        err = cv_stage_fail(
            res, "origin_query",
            cv_err_set(errbuf, errlen, CV_ERR_INVALID, "the query returned no result set"));
        goto out;
    }
    if ((err = cv_sink_prepare_table(&k, spec, select, errbuf, errlen))) {
        err = cv_stage_fail(res, "destination_schema", err);
        goto out;
    }
    if ((err = cv_sink_begin(&k, spec, select, errbuf, errlen))) {
        err = cv_stage_fail(res, "destination_prepare", err);
        goto out;
    }
    if (pumped) {
        p.odbc = select;
        if (native_origin && (err = cv_pump_connect(&p, spec, &pump_query, errbuf, errlen))) {
            err = cv_stage_fail(res, p.maria || p.pg ? "origin_query" : "origin_connect", err);
            goto out;
        }
        if ((err = cv_pump_start(&p, select, errbuf, errlen))) {
            err = cv_stage_fail(res, "origin_fetch", err);
            goto out;
        }
        err = k.maria ? cv_pump_to_maria(&p, &k, spec, select, res, errbuf, errlen)
                      : cv_pump_to_pg(&p, &k, spec, select, res, errbuf, errlen);
        cv_pump_stop(&p);
        if (err)
            goto out;
    }
    if (!pumped && (err = move_blocks(select, &k, spec, res, errbuf, errlen)))
        goto out;
    err = cv_sink_commit(&k, spec, select, res->rows_read, res->watermark, &rows, errbuf, errlen);
    if (err == CV_ERR_CONFLICT) {
        /* Another delivery of this run won the race; ours is rolled back. */
        cv_sink_close(&k);
        if ((err = cv_sink_open(&k, spec, res, errbuf, errlen)) ||
            (err = cv_sink_ledger_rows(&k, spec->run_id, &rows, errbuf, errlen))) {
            err = cv_stage_fail(res, "destination_ledger", err);
            goto out;
        }
        res->already_loaded = true;
    } else if (err) {
        err = cv_stage_fail(res, "destination_commit", err);
        goto out;
    }
    res->rows_written = rows;
out:
    cv_pump_stop(&p); /* before the origin's statement it may be fetching from */
    cv_pg_destroy(p.pg);
    cv_maria_destroy(p.maria);
    free(pump_query);
    cv_odbc_stmt_destroy(select);
    cv_odbc_disconnect(origin);
    cv_sink_close(&k);
    return err;
}
