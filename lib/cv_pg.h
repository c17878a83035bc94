/*
 * cv_pg.h - the PostgreSQL fast path through libpq: COPY ... FROM STDIN for
 * loading, which ODBC cannot reach. Connections are made from the same ODBC
 * connection string the user stored (Server, Port, Database, UID, PWD,
 * SSLmode), so a connection needs no second definition.
 *
 * A cv_pg and its COPY belong to one thread at a time.
 */
#ifndef CV_PG_H
#define CV_PG_H

#include "cv_err.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct cv_pg cv_pg;

/* Translates an ODBC connection string into a libpq conninfo string. Returns a
 * string the caller frees with free(), or NULL with the reason in errbuf. */
char *cv_pg_conninfo_from_odbc(const char *odbc, char *errbuf, size_t errlen);

/* Connects. NULL with the server's reason in errbuf. Free with cv_pg_destroy(),
 * which rolls back an open transaction. */
cv_pg *cv_pg_connect(const char *odbc, char *errbuf, size_t errlen);
void cv_pg_destroy(cv_pg *pg);

/* Runs one statement without result rows (BEGIN, COMMIT, DDL). */
cv_err cv_pg_exec(cv_pg *pg, const char *sql, char *errbuf, size_t errlen);

/* Runs a statement with text parameters (NULL entries are SQL NULL) and no
 * result rows. *sqlstate (if not NULL, 6 bytes) gets the SQLSTATE on failure. */
cv_err cv_pg_exec_params(cv_pg *pg, const char *sql, int nparams, const char *const *values,
                         char *sqlstate, char *errbuf, size_t errlen);

/* Runs a query with text parameters whose first column is an integer: CV_OK
 * with *value from the first row, CV_ERR_NOT_FOUND if there is no row. */
cv_err cv_pg_query_int64(cv_pg *pg, const char *sql, int nparams, const char *const *values,
                         long long *value, char *errbuf, size_t errlen);

/* Starts `COPY <table> (<columns>) FROM STDIN` (text format); table and
 * columns must be quoted already. */
cv_err cv_pg_copy_begin(cv_pg *pg, const char *copy_sql, char *errbuf, size_t errlen);

/* Appends bytes that are already COPY text rows (tab-separated fields,
 * backslash escapes, \N for NULL) to the COPY in progress. Buffers internally
 * and sends in large chunks. */
cv_err cv_pg_copy_raw(cv_pg *pg, const char *data, size_t len, char *errbuf, size_t errlen);

/* Starts `COPY (<query>) TO STDOUT` (text format) on this connection. */
cv_err cv_pg_copy_out_begin(cv_pg *pg, const char *copy_sql, char *errbuf, size_t errlen);

/* Next chunk of a COPY TO STDOUT: CV_OK with *data (valid until the next call)
 * and *len; CV_ERR_NOT_FOUND once the COPY ended well; another error if it
 * failed. */
cv_err cv_pg_copy_out_next(cv_pg *pg, const char **data, size_t *len, char *errbuf, size_t errlen);

/* Asks the server to cancel what this connection is running (a COPY TO STDOUT
 * being read in another thread ends with an error soon after). Any thread. */
void cv_pg_cancel(cv_pg *pg);

/* Sends what is buffered, ends the COPY and reports the number of rows the
 * server took in *rows. */
cv_err cv_pg_copy_end(cv_pg *pg, long long *rows, char *errbuf, size_t errlen);

#endif
