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

#include "cv_odbc.h"
#include "cv_pg.h"
#include "cv_time.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int cv_transfer_quote_ident(const char *name, char quote, bool split_schema, char *out,
                            size_t outlen) {
    size_t o = 0;

#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (o + 1 >= outlen)                                                                       \
            return -1;                                                                             \
        out[o++] = (c);                                                                            \
    } while (0)

    PUT(quote);
    for (const char *p = name; *p; p++) {
        if (split_schema && *p == '.') {
            PUT(quote);
            PUT('.');
            PUT(quote);
            continue;
        }
        if (*p == quote)
            PUT(quote);
        PUT(*p);
    }
    PUT(quote);
#undef PUT
    out[o] = '\0';
    return 0;
}

/* Builds `<prefix> "t" ("a", "b")<suffix>` for the origin's columns, followed by
 * `VALUES (?, ?)` when `markers` is true. Returns a string to free(), or NULL. */
static char *build_statement(const char *prefix, const char *table, const cv_odbc_stmt *origin,
                             char quote, bool markers, const char *suffix) {
    int ncols = cv_odbc_stmt_ncols(origin);
    size_t cap = 512 + strlen(prefix) + strlen(suffix) + (size_t)ncols * (2 * 128 + 8);
    char *sql = malloc(cap), ident[300];
    size_t used;

    if (!sql)
        return NULL;
    if (cv_transfer_quote_ident(table, quote, true, ident, sizeof(ident)) != 0)
        goto fail;
    used = (size_t)snprintf(sql, cap, "%s %s (", prefix, ident);
    for (int i = 0; i < ncols; i++) {
        if (cv_transfer_quote_ident(cv_odbc_stmt_col(origin, i)->name, quote, false, ident,
                                    sizeof(ident)) != 0)
            goto fail;
        used += (size_t)snprintf(sql + used, cap - used, "%s%s", i ? ", " : "", ident);
    }
    used += (size_t)snprintf(sql + used, cap - used, ")");
    if (markers) {
        used += (size_t)snprintf(sql + used, cap - used, " VALUES (");
        for (int i = 0; i < ncols; i++)
            used += (size_t)snprintf(sql + used, cap - used, "%s?", i ? ", " : "");
        used += (size_t)snprintf(sql + used, cap - used, ")");
    }
    snprintf(sql + used, cap - used, "%s", suffix);
    return sql;
fail:
    free(sql);
    return NULL;
}

/* Sets a failed stage and passes the error on. */
static cv_err fail_at(cv_transfer_result *res, const char *stage, cv_err err) {
    res->error_code = stage;
    return err ? err : CV_ERR_ODBC;
}

/* The ledger records each loaded run in the destination, in the same
 * transaction as its rows: a run whose id is there was loaded already. */
static const char ledger_ddl[] =
    "CREATE TABLE IF NOT EXISTS " CV_TRANSFER_LEDGER " ("
    "run_id VARCHAR(36) NOT NULL PRIMARY KEY, job_id VARCHAR(36) NOT NULL, "
    "destination_table VARCHAR(255) NOT NULL, rows_written BIGINT NOT NULL, "
    "committed_at VARCHAR(40) NOT NULL)";
static const char ledger_select_pg[] =
    "SELECT rows_written FROM " CV_TRANSFER_LEDGER " WHERE run_id = $1";
static const char ledger_select_odbc[] =
    "SELECT rows_written FROM " CV_TRANSFER_LEDGER " WHERE run_id = ?";
static const char ledger_insert_pg[] =
    "INSERT INTO " CV_TRANSFER_LEDGER " VALUES ($1, $2, $3, $4, $5)";
static const char ledger_insert_odbc[] =
    "INSERT INTO " CV_TRANSFER_LEDGER " VALUES (?, ?, ?, ?, ?)";

/* Where rows go: COPY through libpq for PostgreSQL, parameter arrays over ODBC
 * for everything else. */
typedef struct sink {
    bool copy;
    cv_pg *pg;
    cv_odbc_conn *odbc;
    cv_odbc_stmt *insert;
    char *sql;
    int ncols;
} sink;

static void sink_close(sink *k) {
    cv_odbc_stmt_destroy(k->insert);
    cv_odbc_disconnect(k->odbc); /* rolls back what was not committed */
    cv_pg_destroy(k->pg);        /* likewise */
    free(k->sql);
    memset(k, 0, sizeof(*k));
}

static cv_err sink_open(sink *k, const cv_transfer_spec *spec, cv_transfer_result *res,
                        char *errbuf, size_t errlen) {
    cv_err err;

    memset(k, 0, sizeof(*k));
    k->copy = strcmp(cv_transfer_method(spec), "copy") == 0;
    if (k->copy)
        k->pg = cv_pg_connect(spec->destination_odbc, errbuf, errlen);
    else
        k->odbc = cv_odbc_connect(spec->destination_odbc, errbuf, errlen);
    if (!k->pg && !k->odbc)
        return fail_at(res, "destination_connect", CV_ERR_ODBC);
    err = k->copy ? cv_pg_exec(k->pg, ledger_ddl, errbuf, errlen)
                  : cv_odbc_exec_params(k->odbc, ledger_ddl, 0, NULL, NULL, errbuf, errlen);
    return err ? fail_at(res, "destination_ledger", err) : CV_OK;
}

/* CV_OK with the rows the run loaded, CV_ERR_NOT_FOUND if it is not recorded. */
static cv_err sink_ledger_rows(sink *k, const char *run_id, long long *rows, char *errbuf,
                               size_t errlen) {
    if (k->copy)
        return cv_pg_query_int64(k->pg, ledger_select_pg, 1, &run_id, rows, errbuf, errlen);
    return cv_odbc_query_int64(k->odbc, ledger_select_odbc, run_id, rows, errbuf, errlen);
}

static cv_err sink_begin(sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                         char *errbuf, size_t errlen) {
    cv_err err;

    k->ncols = cv_odbc_stmt_ncols(select);
    if (k->copy)
        k->sql =
            build_statement("COPY", spec->destination_table, select, '"', false, " FROM STDIN");
    else
        k->sql = build_statement("INSERT INTO", spec->destination_table, select,
                                 cv_odbc_quote_char(k->odbc), true, "");
    if (!k->sql)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "cannot build the load statement");
    if (k->copy) {
        if ((err = cv_pg_exec(k->pg, "BEGIN", errbuf, errlen)))
            return err;
        return cv_pg_copy_begin(k->pg, k->sql, errbuf, errlen);
    }
    k->insert = cv_odbc_stmt_new(k->odbc, errbuf, errlen);
    if (!k->insert)
        return CV_ERR_ODBC;
    if ((err = cv_odbc_begin(k->odbc, errbuf, errlen)) ||
        (err = cv_odbc_stmt_prepare(k->insert, k->sql, errbuf, errlen)))
        return err;
    return cv_odbc_stmt_bind_block(k->insert, select, errbuf, errlen);
}

static cv_err sink_write(sink *k, const cv_odbc_stmt *select, size_t rows, char *errbuf,
                         size_t errlen) {
    cv_err err;

    if (!k->copy)
        return cv_odbc_stmt_execute_block(k->insert, rows, errbuf, errlen);
    for (size_t r = 0; r < rows; r++) {
        for (int c = 0; c < k->ncols; c++) {
            size_t len;
            const char *value = cv_odbc_stmt_value(select, r, c, &len);
            if ((err = cv_pg_copy_field(k->pg, value, len, c == k->ncols - 1, errbuf, errlen)))
                return err;
        }
    }
    return CV_OK;
}

/* Ends the load, records the run in the ledger and commits. CV_ERR_CONFLICT if
 * another delivery of the same run committed first (nothing of ours stays). */
static cv_err sink_commit(sink *k, const cv_transfer_spec *spec, long long rows_read,
                          long long *rows_written, char *errbuf, size_t errlen) {
    char rows_text[24], now[CV_TIME_RFC3339_LEN], state[6];
    const char *values[5];
    cv_err err;

    *rows_written = rows_read;
    if (k->copy && (err = cv_pg_copy_end(k->pg, rows_written, errbuf, errlen)))
        return err;
    snprintf(rows_text, sizeof(rows_text), "%lld", *rows_written);
    cv_time_format(cv_time_now_ms(), now, sizeof(now));
    values[0] = spec->run_id;
    values[1] = spec->job_id;
    values[2] = spec->destination_table;
    values[3] = rows_text;
    values[4] = now;
    err = k->copy
              ? cv_pg_exec_params(k->pg, ledger_insert_pg, 5, values, state, errbuf, errlen)
              : cv_odbc_exec_params(k->odbc, ledger_insert_odbc, 5, values, state, errbuf, errlen);
    if (err)
        return strncmp(state, "23", 2) == 0 ? CV_ERR_CONFLICT : err;
    return k->copy ? cv_pg_exec(k->pg, "COMMIT", errbuf, errlen)
                   : cv_odbc_commit(k->odbc, errbuf, errlen);
}

/* Makes psqlODBC stream a result through a cursor instead of reading it all
 * into memory first (unless the user chose otherwise). */
static char *streaming_origin(const char *odbc, size_t block_rows) {
    size_t len = strlen(odbc) + 64;
    char *out = malloc(len);
    if (!out)
        return NULL;
    if (cv_pg_is_postgres_odbc(odbc) && !strcasestr(odbc, "UseDeclareFetch"))
        snprintf(out, len, "%s%sUseDeclareFetch=1;Fetch=%zu", odbc,
                 odbc[0] && odbc[strlen(odbc) - 1] != ';' ? ";" : "", block_rows);
    else
        snprintf(out, len, "%s", odbc);
    return out;
}

const char *cv_transfer_method(const cv_transfer_spec *spec) {
    return cv_pg_is_postgres_odbc(spec->destination_odbc) ? "copy" : "odbc";
}

cv_err cv_transfer_run(const cv_transfer_spec *spec, cv_transfer_result *res, char *errbuf,
                       size_t errlen) {
    cv_odbc_conn *origin = NULL;
    cv_odbc_stmt *select = NULL;
    char *origin_odbc = NULL;
    long long rows = 0;
    sink k;
    cv_err err;

    memset(res, 0, sizeof(*res));
    if ((err = sink_open(&k, spec, res, errbuf, errlen)))
        goto out;
    /* A run already in the ledger was loaded by an earlier delivery. */
    err = sink_ledger_rows(&k, spec->run_id, &rows, errbuf, errlen);
    if (err == CV_OK) {
        res->already_loaded = true;
        res->rows_written = rows;
        goto out;
    }
    if (err != CV_ERR_NOT_FOUND) {
        err = fail_at(res, "destination_ledger", err);
        goto out;
    }

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
    select = cv_odbc_stmt_new(origin, errbuf, errlen);
    if (!select || (err = cv_odbc_stmt_exec(select, spec->query, errbuf, errlen))) {
        err = fail_at(res, "origin_query", err);
        goto out;
    }
    if (cv_odbc_stmt_ncols(select) == 0) {
        err =
            fail_at(res, "origin_query",
                    cv_err_set(errbuf, errlen, CV_ERR_INVALID, "the query returned no result set"));
        goto out;
    }
    if ((err = sink_begin(&k, spec, select, errbuf, errlen))) {
        err = fail_at(res, "destination_prepare", err);
        goto out;
    }
    for (;;) {
        size_t block = 0;
        err = cv_odbc_stmt_fetch_block(select, &block, errbuf, errlen);
        if (err == CV_ERR_NOT_FOUND)
            break;
        if (err) {
            err = fail_at(res, "origin_fetch", err);
            goto out;
        }
        res->rows_read += (int64_t)block;
        if ((err = sink_write(&k, select, block, errbuf, errlen))) {
            err = fail_at(res, "destination_insert", err);
            goto out;
        }
    }
    err = sink_commit(&k, spec, res->rows_read, &rows, errbuf, errlen);
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
    cv_odbc_stmt_destroy(select);
    cv_odbc_disconnect(origin);
    sink_close(&k);
    free(origin_odbc);
    return err;
}
