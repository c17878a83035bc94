/*
 * cv_odbc.h - the project's thin layer over unixODBC.
 *
 * Connections and statements are opaque; SQLRETURN codes and diagnostic records
 * are translated into cv_err with "SQLSTATE: message" text in errbuf. Values move
 * as UTF-8 text (SQL_C_CHAR) tagged with the origin column's SQL type, which
 * every driver can convert, a block of rows at a time: block fetch on the
 * origin, parameter arrays on the destination, over the same buffers.
 *
 * A connection and its statements belong to one thread at a time, except
 * cv_odbc_stmt_cancel().
 */
#ifndef CV_ODBC_H
#define CV_ODBC_H

#include "cv_err.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct cv_odbc_conn cv_odbc_conn;
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

/* Finds `key` (case-insensitive) in an ODBC connection string and copies its
 * value, braces removed and "}}" read as '}', into out (truncated to outlen).
 * Returns true if the key is there. */
bool cv_odbc_conn_value(const char *odbc, const char *key, char *out, size_t outlen);

/* Connects with an ODBC connection string ("Driver=...;Server=...;"). Error
 * text never includes the connection string, which may hold a password.
 * Returns NULL with the reason in errbuf. Free with cv_odbc_disconnect(). */
cv_odbc_conn *cv_odbc_connect(const char *connstr, char *errbuf, size_t errlen);

/* Rolls back anything uncommitted, disconnects and frees. Accepts NULL. */
void cv_odbc_disconnect(cv_odbc_conn *conn);

/* Switches autocommit off: everything until cv_odbc_commit() is one transaction. */
cv_err cv_odbc_begin(cv_odbc_conn *conn, char *errbuf, size_t errlen);
cv_err cv_odbc_commit(cv_odbc_conn *conn, char *errbuf, size_t errlen);

/* Brings a connection a job is done with back to the state a new one has, so
 * that the next job may use it (cv_odbcpool.h): rolls back what is not
 * committed, switches autocommit on, then
 *   PostgreSQL: DISCARD ALL (temporary tables, settings, prepared statements,
 *               cursors, advisory locks, LISTEN, session authorization), then
 *               the settings the driver made when it connected, read from
 *               pg_settings by cv_odbc_connect();
 *   SQLite:     checks that no temporary object is left and no database is
 *               attached; refused if `settings_changed` (a PRAGMA ran: its
 *               effect cannot be read back).
 * Any other DBMS: CV_ERR_CONFLICT. An error means the connection must be
 * closed rather than used again. */
cv_err cv_odbc_reset(cv_odbc_conn *conn, bool settings_changed, char *errbuf, size_t errlen);

/* False when the driver knows the connection is broken (SQL_ATTR_CONNECTION_DEAD). */
bool cv_odbc_alive(cv_odbc_conn *conn);

/* The driver's identifier quote character (usually '"', '`' for MariaDB). */
char cv_odbc_quote_char(cv_odbc_conn *conn);

/* The DBMS name the driver reports (SQL_DBMS_NAME): "PostgreSQL", "SQLite",
 * "MariaDB", ...; "" if unknown. Owned by conn. */
const char *cv_odbc_dbms(const cv_odbc_conn *conn);

/* Lists the columns of `table` (name or schema.name, taken literally) from the
 * catalog (SQLColumns). On CV_OK, *names is an array of *count names the caller
 * frees with free(). CV_ERR_NOT_FOUND if the table does not exist. */
cv_err cv_odbc_columns(cv_odbc_conn *conn, const char *table, char (**names)[128], int *count,
                       char *errbuf, size_t errlen);

/* Runs `sql` with up to 8 text parameters (`values`, NULL entries are SQL NULL)
 * and no result set: DDL, INSERT, DELETE. On failure *sqlstate (if not NULL, 6
 * bytes) gets the SQLSTATE, so callers can tell a unique violation apart. */
cv_err cv_odbc_exec_params(cv_odbc_conn *conn, const char *sql, int nparams,
                           const char *const *values, char *sqlstate, char *errbuf, size_t errlen);

/* Runs one statement without parameters and reports the rows it changed
 * (SQLRowCount; 0 when the driver does not know, as for DDL). A result set,
 * if the statement returns one, is discarded. Errors read "failed: SQLSTATE:
 * message". */
cv_err cv_odbc_exec_count(cv_odbc_conn *conn, const char *sql, long long *rows, char *errbuf,
                          size_t errlen);

/* Runs a query with one text parameter (or none if param is NULL) and reads the
 * first column of the first row as text into out (truncated to outlen).
 * CV_ERR_NOT_FOUND when no row came; *is_null tells SQL NULL apart from "". */
cv_err cv_odbc_query_text(cv_odbc_conn *conn, const char *sql, const char *param, char *out,
                          size_t outlen, bool *is_null, char *errbuf, size_t errlen);

/* Runs a query with one text parameter (or none) whose result is one integer column.
 * CV_OK with *value from the first row, CV_ERR_NOT_FOUND when no row came. */
cv_err cv_odbc_query_int64(cv_odbc_conn *conn, const char *sql, const char *param, long long *value,
                           char *errbuf, size_t errlen);

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
