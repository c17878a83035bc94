/*
 * cv_odbcstmt.h - ODBC statements over a cv_odbc_conn (cv_odbcstmt.c). Values
 * move as UTF-8 text (SQL_C_CHAR) tagged with the origin column's SQL type,
 * which every driver can convert, a block of rows at a time: block fetch on
 * the origin, parameter arrays on the destination, over the same buffers.
 *
 * A statement belongs to the thread of its connection, except
 * cv_odbc_stmt_cancel().
 */
#ifndef CV_ODBCSTMT_H
#define CV_ODBCSTMT_H

#include "cv_odbc.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct cv_odbc_stmt cv_odbc_stmt;

/* One result column as the driver describes it. */
typedef struct cv_odbc_col {
    char name[128];
    short sql_type; /* SQL_INTEGER, SQL_VARCHAR, SQL_TYPE_TIMESTAMP, ... */
    size_t size;    /* column size (precision for numbers) */
    short decimals; /* scale */
    bool nullable;
    bool binary; /* moved as raw bytes (SQL_C_BINARY), not text */
} cv_odbc_col;

/* Allocates a statement on conn. NULL with reason in errbuf. Free with
 * cv_odbc_stmt_destroy() before the connection is closed. */
cv_odbc_stmt *cv_odbc_stmt_new(cv_odbc_conn *conn, char *errbuf, size_t errlen);
void cv_odbc_stmt_destroy(cv_odbc_stmt *stmt);

/* Executes sql directly; for a query, the columns are then described. */
cv_err cv_odbc_stmt_exec(cv_odbc_stmt *stmt, const char *sql, char *errbuf, size_t errlen);

/* Like cv_odbc_stmt_exec(), with up to 8 text parameters, parameter i typed
 * as types[i] (an origin column's description; a size of 0 is the value's
 * length); the strings must outlive the result. A NULL value is SQL NULL. */
cv_err cv_odbc_stmt_exec_params(cv_odbc_stmt *stmt, const char *sql, int nparams,
                                const char *const *values, const cv_odbc_col *types, char *errbuf,
                                size_t errlen);

/* The rows the statement executed last changed (SQLRowCount), -1 when the
 * driver does not say. */
long long cv_odbc_stmt_row_count(cv_odbc_stmt *stmt);

/* The connection a statement belongs to. */
cv_odbc_conn *cv_odbc_stmt_conn(const cv_odbc_stmt *stmt);

/* Asks the driver to stop what the statement is executing or fetching in
 * another thread (SQLCancel); that call then fails. Any thread. */
void cv_odbc_stmt_cancel(cv_odbc_stmt *stmt);

/* Closes the statement's open result (if any) so it can run another. */
void cv_odbc_stmt_close(cv_odbc_stmt *stmt);

/* Number of result columns and their descriptions after exec (owned by stmt). */
int cv_odbc_stmt_ncols(const cv_odbc_stmt *stmt);
const cv_odbc_col *cv_odbc_stmt_col(const cv_odbc_stmt *stmt, int index);

/* All the result's columns, as an array of cv_odbc_stmt_ncols() (NULL when
 * there are none). Owned by the statement. */
const cv_odbc_col *cv_odbc_stmt_cols(const cv_odbc_stmt *stmt);

/* Fetches the next block of rows into the statement's buffers. CV_OK with
 * *rows > 0, CV_ERR_NOT_FOUND at the end of the result, CV_ERR_INVALID if a value
 * is longer than its slot (256 KiB for long text) instead of truncating it. */
cv_err cv_odbc_stmt_fetch_block(cv_odbc_stmt *stmt, size_t *rows, char *errbuf, size_t errlen);

/* Value of column `col` in row `row` of the current block: NULL for SQL NULL,
 * else its bytes owned by stmt, valid until the next fetch; *len gets the byte
 * length. Text is NUL-terminated; binary columns (col->binary) are raw bytes. */
const char *cv_odbc_stmt_value(const cv_odbc_stmt *stmt, size_t row, int col, size_t *len);

/* Prepares a statement whose parameter markers are then bound with
 * cv_odbc_stmt_bind_block(). */
cv_err cv_odbc_stmt_prepare(cv_odbc_stmt *stmt, const char *sql, char *errbuf, size_t errlen);

/* Binds the result columns of `source` (after its exec) as this prepared
 * statement's parameter arrays, in order, typed as the source columns. The
 * buffers stay owned by source, which must outlive every execute. */
cv_err cv_odbc_stmt_bind_block(cv_odbc_stmt *stmt, const cv_odbc_stmt *source, char *errbuf,
                               size_t errlen);

/* Executes the prepared statement once for each of the first `rows` rows of the
 * bound block (SQL_ATTR_PARAMSET_SIZE). */
cv_err cv_odbc_stmt_execute_block(cv_odbc_stmt *stmt, size_t rows, char *errbuf, size_t errlen);

#endif
