/*
 * cv_dialect.c - ODBC SQL types to PostgreSQL, MariaDB and SQLite column types.
 * Text moves as UTF-8, so character lengths carry over unchanged; binary types
 * become bytea, longblob or BLOB; decimals keep precision and scale where the
 * destination allows it and are refused where it does not.
 */
#include "cv_dialect.h"

#include <sql.h>
#include <sqlext.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

cv_dialect cv_dialect_from_dbms(const char *dbms) {
    if (strncasecmp(dbms, "PostgreSQL", 10) == 0)
        return CV_DIALECT_POSTGRES;
    if (strncasecmp(dbms, "MariaDB", 7) == 0 || strncasecmp(dbms, "MySQL", 5) == 0)
        return CV_DIALECT_MARIADB;
    if (strncasecmp(dbms, "SQLite", 6) == 0)
        return CV_DIALECT_SQLITE;
    return CV_DIALECT_OTHER;
}

/* Name for messages: "PostgreSQL", "MariaDB", "SQLite", "the destination". */
static const char *dialect_name(cv_dialect d) {
    switch (d) {
        case CV_DIALECT_POSTGRES:
            return "PostgreSQL";
        case CV_DIALECT_MARIADB:
            return "MariaDB";
        case CV_DIALECT_SQLITE:
            return "SQLite";
        default:
            return "the destination";
    }
}

/* Largest decimal precision each dialect accepts. */
static size_t max_precision(cv_dialect d) {
    return d == CV_DIALECT_POSTGRES ? 1000 : d == CV_DIALECT_MARIADB ? 65 : 38;
}

cv_err cv_dialect_column_type(cv_dialect d, const cv_odbc_col *col, char *out, size_t outlen,
                              char *errbuf, size_t errlen) {
    bool pg = d == CV_DIALECT_POSTGRES, maria = d == CV_DIALECT_MARIADB;
    bool sqlite = d == CV_DIALECT_SQLITE;
    size_t size = col->size;

    switch (col->sql_type) {
        case SQL_BIT:
            snprintf(out, outlen, "%s", pg ? "boolean" : maria ? "tinyint(1)" : "BOOLEAN");
            return CV_OK;
        case SQL_TINYINT:
        case SQL_SMALLINT:
            snprintf(out, outlen, "%s", sqlite ? "INTEGER" : "smallint");
            return CV_OK;
        case SQL_INTEGER:
            snprintf(out, outlen, "%s", sqlite ? "INTEGER" : "integer");
            return CV_OK;
        case SQL_BIGINT:
            snprintf(out, outlen, "%s", sqlite ? "INTEGER" : "bigint");
            return CV_OK;
        case SQL_REAL:
            snprintf(out, outlen, "%s", sqlite ? "REAL" : maria ? "float" : "real");
            return CV_OK;
        case SQL_FLOAT:
        case SQL_DOUBLE:
            snprintf(out, outlen, "%s", sqlite ? "REAL" : maria ? "double" : "double precision");
            return CV_OK;
        case SQL_DECIMAL:
        case SQL_NUMERIC:
            /* SQLite would turn a DECIMAL column's values into doubles (NUMERIC
             * affinity): TEXT keeps every digit. */
            if (sqlite) {
                snprintf(out, outlen, "TEXT");
                return CV_OK;
            }
            if (size == 0) {
                snprintf(out, outlen, "%s", pg ? "numeric" : "decimal(65,30)");
                return CV_OK;
            }
            if (size > max_precision(d))
                return cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                                  "column %s: decimal(%zu,%d) has more digits than %s allows (%zu)",
                                  col->name, size, col->decimals, dialect_name(d),
                                  max_precision(d));
            snprintf(out, outlen, "%s(%zu,%d)", pg ? "numeric" : "decimal", size, col->decimals);
            return CV_OK;
        case SQL_CHAR:
        case SQL_WCHAR:
            if (size > 0 && size <= 255) {
                snprintf(out, outlen, "%s(%zu)", sqlite ? "CHARACTER" : "char", size);
                return CV_OK;
            }
            /* Longer fixed-width text is stored as variable text. */
            /* fall through */
        case SQL_VARCHAR:
        case SQL_WVARCHAR:
            if (size > 0 && size <= (maria ? 16383u : 10485760u)) {
                snprintf(out, outlen, "%s(%zu)", sqlite ? "VARCHAR" : "varchar", size);
                return CV_OK;
            }
            /* fall through */
        case SQL_LONGVARCHAR:
        case SQL_WLONGVARCHAR:
            snprintf(out, outlen, "%s", maria ? "longtext" : sqlite ? "TEXT" : "text");
            return CV_OK;
        case SQL_BINARY:
        case SQL_VARBINARY:
        case SQL_LONGVARBINARY:
            snprintf(out, outlen, "%s", pg ? "bytea" : maria ? "longblob" : "BLOB");
            return CV_OK;
        case SQL_TYPE_DATE:
        case SQL_DATE:
            snprintf(out, outlen, "%s", sqlite ? "DATE" : "date");
            return CV_OK;
        case SQL_TYPE_TIME:
        case SQL_TIME:
            snprintf(out, outlen, "%s", sqlite ? "TIME" : maria ? "time(6)" : "time");
            return CV_OK;
        case SQL_TYPE_TIMESTAMP:
        case SQL_TIMESTAMP:
            snprintf(out, outlen, "%s", sqlite ? "TIMESTAMP" : maria ? "datetime(6)" : "timestamp");
            return CV_OK;
        case SQL_GUID:
            snprintf(out, outlen, "%s", pg ? "uuid" : maria ? "char(36)" : "VARCHAR(36)");
            return CV_OK;
        default:
            return cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                              "column %s: ODBC type %d has no %s equivalent; cast it in the query "
                              "(for example to text)",
                              col->name, col->sql_type, dialect_name(d));
    }
}

const char *cv_dialect_read_only_sql(cv_dialect d) {
    switch (d) {
        case CV_DIALECT_POSTGRES:
            return "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY";
        case CV_DIALECT_MARIADB:
            return "SET SESSION TRANSACTION READ ONLY";
        case CV_DIALECT_SQLITE:
            return "PRAGMA query_only = 1";
        default:
            return NULL;
    }
}
