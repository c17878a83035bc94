/*
 * cv_transfer.c - the SQL transfer of the walking skeleton: row by row through
 * ODBC text values, one destination transaction. Column names come from the
 * origin's result and are quoted with the destination driver's quote
 * character; values are always bound, never pasted into SQL.
 */
#include "cv_transfer.h"

#include "cv_odbc.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Builds INSERT INTO "t" ("a", "b") VALUES (?, ?) for the origin's columns. */
static char *build_insert(const char *table, const cv_odbc_stmt *origin, char quote) {
    int ncols = cv_odbc_stmt_ncols(origin);
    size_t cap = 512 + (size_t)ncols * (2 * 128 + 8);
    char *sql = malloc(cap), ident[300];
    size_t used;

    if (!sql)
        return NULL;
    if (cv_transfer_quote_ident(table, quote, true, ident, sizeof(ident)) != 0)
        goto fail;
    used = (size_t)snprintf(sql, cap, "INSERT INTO %s (", ident);
    for (int i = 0; i < ncols; i++) {
        if (cv_transfer_quote_ident(cv_odbc_stmt_col(origin, i)->name, quote, false, ident,
                                    sizeof(ident)) != 0)
            goto fail;
        used += (size_t)snprintf(sql + used, cap - used, "%s%s", i ? ", " : "", ident);
    }
    used += (size_t)snprintf(sql + used, cap - used, ") VALUES (");
    for (int i = 0; i < ncols; i++)
        used += (size_t)snprintf(sql + used, cap - used, "%s?", i ? ", " : "");
    snprintf(sql + used, cap - used, ")");
    return sql;
fail:
    free(sql);
    return NULL;
}

cv_err cv_transfer_run(const cv_transfer_spec *spec, cv_transfer_result *res, char *errbuf,
                       size_t errlen) {
    cv_odbc_conn *origin = NULL, *dest = NULL;
    cv_odbc_stmt *select = NULL, *insert = NULL;
    char *insert_sql = NULL;
    cv_err err = CV_OK;
    int ncols;

    memset(res, 0, sizeof(*res));
    origin = cv_odbc_connect(spec->origin_odbc, errbuf, errlen);
    if (!origin) {
        res->error_code = "origin_connect";
        return CV_ERR_ODBC;
    }
    select = cv_odbc_stmt_new(origin, errbuf, errlen);
    if (!select || (err = cv_odbc_stmt_exec(select, spec->query, errbuf, errlen))) {
        res->error_code = "origin_query";
        err = err ? err : CV_ERR_ODBC;
        goto out;
    }
    ncols = cv_odbc_stmt_ncols(select);
    if (ncols == 0) {
        res->error_code = "origin_query";
        err = cv_err_set(errbuf, errlen, CV_ERR_INVALID, "the query returned no result set");
        goto out;
    }

    dest = cv_odbc_connect(spec->destination_odbc, errbuf, errlen);
    if (!dest) {
        res->error_code = "destination_connect";
        err = CV_ERR_ODBC;
        goto out;
    }
    insert_sql = build_insert(spec->destination_table, select, cv_odbc_quote_char(dest));
    if (!insert_sql) {
        res->error_code = "destination_prepare";
        err = cv_err_set(errbuf, errlen, CV_ERR_INVALID, "cannot build the INSERT statement");
        goto out;
    }
    insert = cv_odbc_stmt_new(dest, errbuf, errlen);
    if (!insert || (err = cv_odbc_begin(dest, errbuf, errlen)) ||
        (err = cv_odbc_stmt_prepare(insert, insert_sql, errbuf, errlen))) {
        res->error_code = "destination_prepare";
        err = err ? err : CV_ERR_ODBC;
        goto out;
    }

    for (;;) {
        err = cv_odbc_stmt_fetch(select, errbuf, errlen);
        if (err == CV_ERR_NOT_FOUND) {
            err = CV_OK;
            break;
        }
        if (err) {
            res->error_code = "origin_fetch";
            goto out;
        }
        res->rows_read++;
        for (int i = 0; i < ncols; i++) {
            size_t len;
            const char *value = cv_odbc_stmt_value(select, i, &len);
            if ((err = cv_odbc_stmt_bind_text(insert, i, cv_odbc_stmt_col(select, i), value, len,
                                              errbuf, errlen))) {
                res->error_code = "destination_insert";
                goto out;
            }
        }
        if ((err = cv_odbc_stmt_execute(insert, errbuf, errlen))) {
            res->error_code = "destination_insert";
            goto out;
        }
    }
    if ((err = cv_odbc_commit(dest, errbuf, errlen))) {
        res->error_code = "destination_commit";
        goto out;
    }
    res->rows_written = res->rows_read;
out:
    cv_odbc_stmt_destroy(insert);
    cv_odbc_stmt_destroy(select);
    cv_odbc_disconnect(dest); /* rolls back if the commit did not happen */
    cv_odbc_disconnect(origin);
    free(insert_sql);
    return err;
}
