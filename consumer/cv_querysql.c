/*
 * cv_querysql.c - one statement of the SQL console on a database. See
 * cv_querysql.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_querysql.h"

#include "cv_dialect.h"
#include "cv_log.h"
#include "cv_sqlsplit.h"

#include <sql.h>
#include <sqlext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

void cv_querysql_init(cv_querysql *q) {
    pthread_mutex_init(&q->lock, NULL);
    atomic_store(&q->stopped, CV_QUERYSQL_RUNNING);
    bson_init(&q->columns);
    bson_init(&q->rows);
    q->rows_affected = -1;
}

void cv_querysql_release(cv_querysql *q) {
    bson_destroy(&q->columns);
    bson_destroy(&q->rows);
    pthread_mutex_destroy(&q->lock);
}

void cv_querysql_stop(cv_querysql *q, int why) {
    int running = CV_QUERYSQL_RUNNING;
    if (!atomic_compare_exchange_strong(&q->stopped, &running, why))
        return;
    pthread_mutex_lock(&q->lock);
    if (q->stmt)
        cv_odbc_stmt_cancel(q->stmt);
    pthread_mutex_unlock(&q->lock);
}

/* What a column's type is called in a result. */
static const char *type_name(short t) {
    switch (t) {
        case SQL_CHAR:
        case SQL_WCHAR:
            return "char";
        case SQL_VARCHAR:
        case SQL_WVARCHAR:
            return "varchar";
        case SQL_LONGVARCHAR:
        case SQL_WLONGVARCHAR:
            return "text";
        case SQL_DECIMAL:
        case SQL_NUMERIC:
            return "numeric";
        case SQL_BIT:
            return "boolean";
        case SQL_TINYINT:
        case SQL_SMALLINT:
            return "smallint";
        case SQL_INTEGER:
            return "integer";
        case SQL_BIGINT:
            return "bigint";
        case SQL_REAL:
            return "real";
        case SQL_FLOAT:
        case SQL_DOUBLE:
            return "double";
        case SQL_BINARY:
        case SQL_VARBINARY:
        case SQL_LONGVARBINARY:
            return "binary";
        case SQL_TYPE_DATE:
            return "date";
        case SQL_TYPE_TIME:
            return "time";
        case SQL_TYPE_TIMESTAMP:
            return "timestamp";
        case SQL_GUID:
            return "uuid";
        default:
            return "other";
    }
}

/* Appends one value under key: numbers as numbers (integers as int64,
 * whose exact value the API keeps), booleans as booleans, binary as
 * "\x" and hex digits, the rest as text (hex too when it is not UTF-8).
 * Returns the bytes it takes, about. */
static size_t append_value(bson_t *row, const char *key, const cv_odbc_col *col, const char *v,
                           size_t len) {
    static const char hex[] = "0123456789abcdef";
    char *end;

    if (!v) {
        BSON_APPEND_NULL(row, key);
        return 8;
    }
    switch (col->binary ? SQL_BINARY : col->sql_type) {
        case SQL_TINYINT:
        case SQL_SMALLINT:
        case SQL_INTEGER:
        case SQL_BIGINT: {
            long long n = strtoll(v, &end, 10);
            if (end != v && !*end) {
                BSON_APPEND_INT64(row, key, n);
                return 16;
            }
            break;
        }
        case SQL_REAL:
        case SQL_FLOAT:
        case SQL_DOUBLE: {
            double d = strtod(v, &end);
            if (end != v && !*end) {
                BSON_APPEND_DOUBLE(row, key, d);
                return 16;
            }
            break;
        }
        case SQL_BIT:
            if (len == 1 && (v[0] == '0' || v[0] == '1')) {
                BSON_APPEND_BOOL(row, key, v[0] == '1');
                return 8;
            }
            break;
        default:
            break;
    }
    if (!col->binary && bson_utf8_validate(v, len, false)) {
        bson_append_utf8(row, key, -1, v, (int)len);
        return len + 8;
    }
    char *text = malloc(2 * len + 3);
    if (!text) {
        BSON_APPEND_NULL(row, key);
        return 8;
    }
    memcpy(text, "\\x", 2);
    for (size_t i = 0; i < len; i++) {
        text[2 + 2 * i] = hex[(unsigned char)v[i] >> 4];
        text[3 + 2 * i] = hex[(unsigned char)v[i] & 15];
    }
    text[2 + 2 * len] = '\0';
    bson_append_utf8(row, key, -1, text, (int)(2 * len + 2));
    free(text);
    return 2 * len + 10;
}

/* The code of a statement's failure: the stop asked for from outside, the
 * database's own time limit, a write refused by a read-only session, or a
 * plain failure. */
static const char *failure_code(cv_querysql *q, const char *why) {
    int stopped = atomic_load(&q->stopped);
    if (stopped == CV_QUERYSQL_CANCELLED)
        return "cancelled";
    if (stopped == CV_QUERYSQL_TIMED_OUT || strstr(why, "57014") || strstr(why, "70100") ||
        strstr(why, "max_statement_time"))
        return "timed_out";
    if (strstr(why, "25006") || strstr(why, "readonly database") || strstr(why, "READ ONLY"))
        return "read_only";
    return "statement_failed";
}

static void fail(cv_querysql *q, const char *code, const char *why) {
    q->code = code;
    snprintf(q->why, sizeof(q->why), "%s", why);
}

/* Makes the session read-only unless writes are allowed, and sets the
 * database's own time limit where it has one. */
static bool prepare_session(cv_querysql *q, cv_odbc_conn *conn, cv_dialect d, bool *changed) {
    char sql[96], why[900];
    long long rows;
    const char *read_only = cv_dialect_read_only_sql(d);

    if (!q->allow_writes && !read_only) {
        snprintf(why, sizeof(why),
                 "Convutell cannot make a %s session read-only; only an editor's query with "
                 "allow_writes runs there",
                 cv_odbc_dbms(conn)[0] ? cv_odbc_dbms(conn) : "database");
        fail(q, "read_only_unsupported", why);
        return false;
    }
    if (!q->allow_writes) {
        *changed = true;
        if (cv_odbc_exec_count(conn, read_only, &rows, why, sizeof(why)) != CV_OK) {
            fail(q, "connect", why);
            return false;
        }
    }
    sql[0] = '\0';
    if (d == CV_DIALECT_POSTGRES)
        snprintf(sql, sizeof(sql), "SET statement_timeout = %d", q->timeout_seconds * 1000);
    else if (d == CV_DIALECT_MARIADB)
        snprintf(sql, sizeof(sql), "SET SESSION max_statement_time = %d", q->timeout_seconds);
    if (sql[0] && cv_odbc_exec_count(conn, sql, &rows, why, sizeof(why)) != CV_OK) {
        fail(q, "connect", why);
        return false;
    }
    return true;
}

/* Describes the result's columns into q->columns. */
static void describe(cv_querysql *q, const cv_odbc_stmt *stmt) {
    char key[16];
    for (int c = 0; c < cv_odbc_stmt_ncols(stmt); c++) {
        const cv_odbc_col *col = cv_odbc_stmt_col(stmt, c);
        bson_t one;
        snprintf(key, sizeof(key), "%d", c);
        BSON_APPEND_DOCUMENT_BEGIN(&q->columns, key, &one);
        BSON_APPEND_UTF8(&one, "name", col->name);
        BSON_APPEND_UTF8(&one, "type", col->binary ? "binary" : type_name(col->sql_type));
        BSON_APPEND_BOOL(&one, "nullable", col->nullable);
        bson_append_document_end(&q->columns, &one);
    }
}

/* Hands the chunk in q->rows over (a full one, with more to come). */
static bool flush_chunk(cv_querysql *q, int64_t n) {
    char why[512];
    if (q->chunk(q->ctx, q->chunks, &q->rows, n, why, sizeof(why)) != CV_OK) {
        fail(q, "store", why);
        return false;
    }
    q->chunks++;
    bson_reinit(&q->rows);
    return true;
}

/* Reads the rows of the result, chunk by chunk, within max_rows and the bytes allowed. */
static void read_rows(cv_querysql *q, cv_odbc_stmt *stmt) {
    int ncols = cv_odbc_stmt_ncols(stmt);
    int64_t in_chunk = 0, chunk_bytes = 0, bytes = 0;
    size_t block;
    char why[900], key[24], ckey[16];
    cv_err err;

    describe(q, stmt);
    while ((err = cv_odbc_stmt_fetch_block(stmt, &block, why, sizeof(why))) == CV_OK) {
        for (size_t r = 0; r < block; r++) {
            bson_t row;
            if (q->row_count >= q->max_rows || bytes >= CV_QUERY_BYTES_MAX) {
                q->truncated = true;
                goto end;
            }
            if (in_chunk == CV_QUERY_CHUNK_ROWS || chunk_bytes >= CV_QUERY_CHUNK_BYTES) {
                if (!flush_chunk(q, in_chunk))
                    return;
                in_chunk = chunk_bytes = 0;
            }
            snprintf(key, sizeof(key), "%lld", (long long)in_chunk);
            BSON_APPEND_DOCUMENT_BEGIN(&q->rows, key, &row);
            for (int c = 0; c < ncols; c++) {
                size_t len = 0;
                const char *v = cv_odbc_stmt_value(stmt, r, c, &len);
                size_t took;
                snprintf(ckey, sizeof(ckey), "%d", c);
                took = append_value(&row, ckey, cv_odbc_stmt_col(stmt, c), v, len);
                chunk_bytes += (int64_t)took;
                bytes += (int64_t)took;
            }
            bson_append_document_end(&q->rows, &row);
            in_chunk++;
            q->row_count++;
        }
    }
    if (err != CV_ERR_NOT_FOUND) {
        fail(q, failure_code(q, why), why);
        return;
    }
end:
    /* The last chunk, unless the rows fit in one (they stay in q->rows). */
    if (q->chunks && in_chunk)
        flush_chunk(q, in_chunk);
}

/* Runs the statement on conn; the session is prepared. */
static void run_statement(cv_querysql *q, cv_odbc_conn *conn) {
    cv_odbc_col types[CV_QUERY_PARAMS_MAX];
    cv_odbc_stmt *stmt;
    char why[900];

    memset(types, 0, sizeof(types));
    for (int i = 0; i < q->nparams; i++)
        types[i].sql_type = q->param_types[i];
    if (cv_odbc_begin(conn, why, sizeof(why)) != CV_OK) {
        fail(q, "connect", why);
        return;
    }
    if (!(stmt = cv_odbc_stmt_new(conn, why, sizeof(why)))) {
        fail(q, "connect", why);
        return;
    }
    pthread_mutex_lock(&q->lock);
    q->stmt = stmt;
    pthread_mutex_unlock(&q->lock);
    if (atomic_load(&q->stopped) != CV_QUERYSQL_RUNNING)
        fail(q, failure_code(q, ""), "stopped before it began");
    else if (cv_odbc_stmt_exec_params(stmt, q->sql, q->nparams, q->params, types, why,
                                      sizeof(why)) != CV_OK)
        fail(q, failure_code(q, why), why);
    else if (cv_odbc_stmt_ncols(stmt) == 0)
        q->rows_affected = cv_odbc_stmt_row_count(stmt);
    else
        read_rows(q, stmt);
    pthread_mutex_lock(&q->lock);
    q->stmt = NULL;
    pthread_mutex_unlock(&q->lock);
    cv_odbc_stmt_destroy(stmt);
    if (!q->code && atomic_load(&q->stopped) != CV_QUERYSQL_RUNNING)
        fail(q, failure_code(q, ""), "stopped");
    /* A read-only statement is rolled back when the connection goes back. */
    if (!q->code && q->allow_writes && cv_odbc_commit(conn, why, sizeof(why)) != CV_OK)
        fail(q, "statement_failed", why);
}

void cv_querysql_run(cv_odbcpool *pool, cv_querysql *q) {
    bool reused = false, changed = false;
    cv_odbc_conn *conn = cv_odbcpool_take(pool, q->odbc, &reused, q->why, sizeof(q->why));
    cv_dialect d;
    long long rows;
    char why[256];

    if (!conn) {
        q->code = "connect";
        return;
    }
    d = cv_dialect_from_dbms(cv_odbc_dbms(conn));
    if (cv_sqlsplit_count(q->sql, d == CV_DIALECT_MARIADB) != 1)
        fail(q, "not_one_statement",
             "the console runs one statement at a time; a sql job runs several");
    else if (prepare_session(q, conn, d, &changed))
        run_statement(q, conn);
    /* SQLite's query_only is the one setting a reset cannot read back: turned
     * off again, the connection may be kept. */
    if (changed && d == CV_DIALECT_SQLITE &&
        cv_odbc_exec_count(conn, "PRAGMA query_only = 0", &rows, why, sizeof(why)) == CV_OK)
        changed = false;
    cv_odbcpool_give(pool, q->odbc, conn, !q->code || strcmp(q->code, "connect") != 0,
                     changed && d == CV_DIALECT_SQLITE);
}
