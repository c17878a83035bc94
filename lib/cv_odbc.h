/*
 * cv_odbc.h - the project's thin layer over unixODBC.
 *
 * Connections are opaque; SQLRETURN codes and diagnostic records are
 * translated into cv_err with "SQLSTATE: message" text in errbuf. Statements
 * that move blocks of rows are cv_odbcstmt.h's.
 *
 * A connection belongs to one thread at a time.
 */
#ifndef CV_ODBC_H
#define CV_ODBC_H

#include "cv_err.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct cv_odbc_conn cv_odbc_conn;

/* Finds `key` (case-insensitive) in an ODBC connection string and copies its
 * value, braces removed and "}}" read as '}', into out (truncated to outlen).
 * Returns true if the key is there. */
bool cv_odbc_conn_value(const char *odbc, const char *key, char *out, size_t outlen);

/* True if the connection string's Driver names PostgreSQL's (psqlODBC). */
bool cv_odbc_names_postgres(const char *odbc);

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

#endif
