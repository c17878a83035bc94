/*
 * cv_maria.h - the MariaDB fast paths through libmariadb, which ODBC cannot
 * reach: LOAD DATA LOCAL INFILE fed from memory for loading, and a streamed
 * result (mysql_use_result) for extracting without holding the rows.
 * Connections are made from the same ODBC connection string the user stored
 * (Server, Port, Database, UID/User, PWD/Password, Socket), so a connection
 * needs no second definition.
 *
 * A cv_maria belongs to one thread at a time, except cv_maria_cancel().
 */
#ifndef CV_MARIA_H
#define CV_MARIA_H

#include "cv_err.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct cv_maria cv_maria;

/* True if the ODBC connection string names MariaDB's (or MySQL's) driver. */
bool cv_maria_is_mariadb_odbc(const char *odbc);

/* Connects with utf8mb4, LOAD DATA LOCAL allowed on the client side, and
 * autocommit off: everything until cv_maria_exec(m, "COMMIT") is one
 * transaction. NULL with the server's reason in errbuf (never the password).
 * Free with cv_maria_destroy(). */
cv_maria *cv_maria_connect(const char *odbc, char *errbuf, size_t errlen);

/* Closes the connection, which rolls back anything uncommitted. Accepts NULL. */
void cv_maria_destroy(cv_maria *m);

/* Runs one statement without result rows (DDL, DELETE, COMMIT). */
cv_err cv_maria_exec(cv_maria *m, const char *sql, char *errbuf, size_t errlen);

/* Runs a statement with up to 8 text parameters bound as strings (NULL entries
 * are SQL NULL) and no result rows. On failure *sqlstate (if not NULL, 6 bytes)
 * gets the SQLSTATE, so callers can tell a duplicate key ("23000") apart. */
cv_err cv_maria_exec_params(cv_maria *m, const char *sql, int nparams, const char *const *values,
                            char *sqlstate, char *errbuf, size_t errlen);

/* Runs a query whose first column of the first row is an integer: CV_OK with
 * *value, CV_ERR_NOT_FOUND if no row came. */
cv_err cv_maria_query_int64(cv_maria *m, const char *sql, long long *value, char *errbuf,
                            size_t errlen);

/* Supplies the data of a LOAD DATA LOCAL INFILE: copies up to len bytes into
 * buf and returns how many, 0 at the end of the data, or -1 to abort the load
 * (the caller keeps its own reason). Called on the thread running
 * cv_maria_load(). */
typedef long (*cv_maria_read_fn)(void *ctx, char *buf, size_t len);

/* Runs `load_sql`, a LOAD DATA LOCAL INFILE statement (the file name in it is
 * ignored), reading its data from `read`. Because the server turns errors in
 * LOCAL data into warnings and skips rows, any warning or skipped row fails the
 * load with CV_ERR_INVALID and the first warning's text; the caller rolls back.
 * CV_ERR_CANCELLED if `read` returned -1, with errbuf saying only that (keep the
 * reason elsewhere); the rows sent before it may already be in the transaction,
 * so the caller rolls back then too. On CV_OK *rows gets the rows loaded.
 * Outside this call the connection refuses the server's requests for files. */
cv_err cv_maria_load(cv_maria *m, const char *load_sql, cv_maria_read_fn read, void *ctx,
                     long long *rows, char *errbuf, size_t errlen);

/* Runs a query and streams its result (mysql_use_result): rows are read from
 * the server as cv_maria_fetch() asks for them, so memory holds one row. The
 * connection can run nothing else until the result has been read to its end
 * (the next cv_maria_query() discards what is left). */
cv_err cv_maria_query(cv_maria *m, const char *sql, char *errbuf, size_t errlen);

/* Result columns of the current query (0 without one). */
int cv_maria_ncols(const cv_maria *m);

/* Next row of the current query: CV_OK with values[ncols] (NULL entries for
 * SQL NULL; valid until the next call) and lengths[ncols] in bytes;
 * CV_ERR_NOT_FOUND at the end; another error if the query failed midway. */
cv_err cv_maria_fetch(cv_maria *m, const char *const **values, const unsigned long **lengths,
                      char *errbuf, size_t errlen);

/* Asks the server to stop the query this connection runs (KILL QUERY over a
 * second connection); a cv_maria_fetch() or cv_maria_query() blocked in another
 * thread returns CV_ERR_ODBC ("70100: Query execution was interrupted") soon
 * after. A cancel that comes before the query starts is lost. Safe from any
 * thread while m lives: the caller makes sure cv_maria_destroy() comes after. */
void cv_maria_cancel(cv_maria *m);

#endif
