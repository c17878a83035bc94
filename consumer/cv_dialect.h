/*
 * cv_dialect.h - what differs between destination databases: the column type
 * a destination table gets for an origin column (ODBC SQL type, size, scale),
 * and the upsert clause. Used to create a missing destination table before any
 * row moves, and to refuse a column that has no equivalent there.
 *
 * Pure functions of their arguments (static tables, nothing allocated): any
 * thread.
 */
#ifndef CV_DIALECT_H
#define CV_DIALECT_H

#include "cv_err.h"
#include "cv_odbc.h"
#include "cv_odbcstmt.h"

typedef enum cv_dialect {
    CV_DIALECT_POSTGRES,
    CV_DIALECT_MARIADB, /* MariaDB and MySQL */
    CV_DIALECT_SQLITE,
    CV_DIALECT_OTHER /* ANSI types; no upsert */
} cv_dialect;

/* Maps SQL_DBMS_NAME ("PostgreSQL", "MariaDB", "MySQL", "SQLite") to a dialect. */
cv_dialect cv_dialect_from_dbms(const char *dbms);

/* The statement that makes a session read-only from then on, so that an
 * origin's query cannot write: PostgreSQL's default transaction mode, MariaDB's
 * session transaction mode, SQLite's query_only. NULL for CV_DIALECT_OTHER. */
const char *cv_dialect_read_only_sql(cv_dialect d);

/* Writes the destination column type for an origin column into out, e.g.
 * "numeric(12,2)". CV_ERR_INVALID with "column <name>: ..." in errbuf if the
 * type has no equivalent in the dialect. */
cv_err cv_dialect_column_type(cv_dialect d, const cv_odbc_col *col, char *out, size_t outlen,
                              char *errbuf, size_t errlen);

#endif
