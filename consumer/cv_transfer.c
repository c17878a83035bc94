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

/* Generic load: parameter arrays bound to the origin's block buffers. */
static cv_err load_odbc(const cv_transfer_spec *spec, cv_odbc_stmt *select, cv_transfer_result *res,
                        char *errbuf, size_t errlen) {
    cv_odbc_conn *dest = NULL;
    cv_odbc_stmt *insert = NULL;
    char *sql = NULL;
    cv_err err = CV_OK;

    dest = cv_odbc_connect(spec->destination_odbc, errbuf, errlen);
    if (!dest) {
        err = fail_at(res, "destination_connect", CV_ERR_ODBC);
        goto out;
    }
    sql = build_statement("INSERT INTO", spec->destination_table, select, cv_odbc_quote_char(dest),
                          true, "");
    if (!sql) {
        err = fail_at(res, "destination_prepare",
                      cv_err_set(errbuf, errlen, CV_ERR_INVALID, "cannot build the INSERT"));
        goto out;
    }
    insert = cv_odbc_stmt_new(dest, errbuf, errlen);
    if (!insert || (err = cv_odbc_begin(dest, errbuf, errlen)) ||
        (err = cv_odbc_stmt_prepare(insert, sql, errbuf, errlen)) ||
        (err = cv_odbc_stmt_bind_block(insert, select, errbuf, errlen))) {
        err = fail_at(res, "destination_prepare", err);
        goto out;
    }
    for (;;) {
        size_t rows = 0;
        err = cv_odbc_stmt_fetch_block(select, &rows, errbuf, errlen);
        if (err == CV_ERR_NOT_FOUND)
            break;
        if (err) {
            err = fail_at(res, "origin_fetch", err);
            goto out;
        }
        res->rows_read += (int64_t)rows;
        if ((err = cv_odbc_stmt_execute_block(insert, rows, errbuf, errlen))) {
            err = fail_at(res, "destination_insert", err);
            goto out;
        }
    }
    if ((err = cv_odbc_commit(dest, errbuf, errlen))) {
        err = fail_at(res, "destination_commit", err);
        goto out;
    }
    res->rows_written = res->rows_read;
    err = CV_OK;
out:
    cv_odbc_stmt_destroy(insert);
    cv_odbc_disconnect(dest); /* rolls back if the commit did not happen */
    free(sql);
    return err;
}

/* PostgreSQL load: COPY FROM STDIN through libpq, in one transaction. */
static cv_err load_copy(const cv_transfer_spec *spec, cv_odbc_stmt *select, cv_transfer_result *res,
                        char *errbuf, size_t errlen) {
    int ncols = cv_odbc_stmt_ncols(select);
    cv_pg *pg = NULL;
    char *sql = NULL;
    long long copied = 0;
    cv_err err = CV_OK;

    pg = cv_pg_connect(spec->destination_odbc, errbuf, errlen);
    if (!pg) {
        err = fail_at(res, "destination_connect", CV_ERR_ODBC);
        goto out;
    }
    sql = build_statement("COPY", spec->destination_table, select, '"', false, " FROM STDIN");
    if (!sql) {
        err = fail_at(res, "destination_prepare",
                      cv_err_set(errbuf, errlen, CV_ERR_INVALID, "cannot build the COPY"));
        goto out;
    }
    if ((err = cv_pg_exec(pg, "BEGIN", errbuf, errlen)) ||
        (err = cv_pg_copy_begin(pg, sql, errbuf, errlen))) {
        err = fail_at(res, "destination_prepare", err);
        goto out;
    }
    for (;;) {
        size_t rows = 0;
        err = cv_odbc_stmt_fetch_block(select, &rows, errbuf, errlen);
        if (err == CV_ERR_NOT_FOUND)
            break;
        if (err) {
            err = fail_at(res, "origin_fetch", err);
            goto out;
        }
        res->rows_read += (int64_t)rows;
        for (size_t r = 0; r < rows; r++) {
            for (int c = 0; c < ncols; c++) {
                size_t len;
                const char *value = cv_odbc_stmt_value(select, r, c, &len);
                if ((err = cv_pg_copy_field(pg, value, len, c == ncols - 1, errbuf, errlen))) {
                    err = fail_at(res, "destination_insert", err);
                    goto out;
                }
            }
        }
    }
    if ((err = cv_pg_copy_end(pg, &copied, errbuf, errlen))) {
        err = fail_at(res, "destination_insert", err);
        goto out;
    }
    if ((err = cv_pg_exec(pg, "COMMIT", errbuf, errlen))) {
        err = fail_at(res, "destination_commit", err);
        goto out;
    }
    res->rows_written = copied;
    err = CV_OK;
out:
    cv_pg_destroy(pg); /* an unfinished transaction is rolled back */
    free(sql);
    return err;
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
    char *origin_odbc = streaming_origin(spec->origin_odbc, 1024);
    cv_err err = CV_OK;

    memset(res, 0, sizeof(*res));
    if (!origin_odbc)
        return fail_at(res, "origin_connect", cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "oom"));
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
    if (strcmp(cv_transfer_method(spec), "copy") == 0)
        err = load_copy(spec, select, res, errbuf, errlen);
    else
        err = load_odbc(spec, select, res, errbuf, errlen);
out:
    cv_odbc_stmt_destroy(select);
    cv_odbc_disconnect(origin);
    free(origin_odbc);
    return err;
}
