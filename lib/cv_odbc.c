/*
 * cv_odbc.c - unixODBC connections and statements with diagnostics translated
 * into cv_err.
 *
 * Results are fetched in blocks: every column is bound column-wise as text
 * (SQL_C_CHAR) into an array of fixed-width slots with SQL_ATTR_ROW_ARRAY_SIZE
 * rows, sized so one block stays within BLOCK_BYTES whatever the table size.
 * The same arrays, with their length indicators, are then bound as parameter
 * arrays (SQL_ATTR_PARAMSET_SIZE) of the destination's INSERT, so a block
 * moves from one driver to the other without being copied.
 */
#include "cv_odbc.h"

#include "cv_pg.h"
#include "cv_tcp.h"

#include <ctype.h>
#include <pthread.h>
#include <sql.h>
#include <sqlext.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define MAX_COLS 1024
#define BLOCK_BYTES (16u << 20) /* memory for one block of rows */
#define MAX_BLOCK_ROWS 1024
#define SHORT_SLOT 64          /* numbers, dates and times as text */
#define LONG_SLOT (256u << 10) /* text and binary of unknown or large size */

struct cv_odbc_conn {
    SQLHENV env;
    SQLHDBC dbc;
    bool connected;
    bool in_txn;
    char quote;
    char dbms[64];
    char *pg_session; /* PostgreSQL: SET statements restoring what the driver set */
};

/* In an ODBC connection string, a value in braces may hold ';' and writes '}'
 * as "}}". Given a pointer to the opening '{', returns a pointer just past the
 * closing '}' (or to the terminating NUL if there is none). */
static const char *braced_end(const char *open) {
    const char *p = open + 1;
    while (*p) {
        if (*p == '}') {
            if (p[1] != '}')
                return p + 1;
            p++; /* "}}" is an escaped brace */
        }
        p++;
    }
    return p;
}

bool cv_odbc_conn_value(const char *odbc, const char *key, char *out, size_t outlen) {
    const char *p = odbc;
    size_t klen = strlen(key);

    while (*p) {
        const char *eq = strchr(p, '='), *k = p, *kend, *v, *vend;
        bool braced;
        if (!eq)
            break;
        while (k < eq && isspace((unsigned char)*k))
            k++;
        kend = eq;
        while (kend > k && isspace((unsigned char)kend[-1]))
            kend--;
        v = eq + 1;
        braced = *v == '{';
        if (braced) {
            p = braced_end(v);
            v++;
            vend = p > v && p[-1] == '}' ? p - 1 : p;
        } else {
            vend = strchr(v, ';');
            if (!vend)
                vend = v + strlen(v);
            p = vend;
        }
        if (*p == ';')
            p++;
        if ((size_t)(kend - k) == klen && strncasecmp(k, key, klen) == 0) {
            size_t o = 0;
            for (const char *c = v; c < vend && o + 1 < outlen; c++) {
                out[o++] = *c;
                if (braced && c[0] == '}' && c + 1 < vend && c[1] == '}')
                    c++; /* "}}" stands for one '}' */
            }
            out[o] = '\0';
            return true;
        }
    }
    return false;
}

/* Formats the diagnostic records of a handle as "SQLSTATE: message; ...". */
static cv_err diag(SQLSMALLINT type, SQLHANDLE handle, const char *what, char *errbuf,
                   size_t errlen) {
    SQLCHAR state[6], msg[1024];
    SQLINTEGER native;
    SQLSMALLINT msglen;
    size_t used;
    int n;

    if (!errbuf || !errlen)
        return CV_ERR_ODBC;
    n = snprintf(errbuf, errlen, "%s", what);
    used = n > 0 ? (size_t)n : 0;
    for (SQLSMALLINT rec = 1; rec <= 3 && used < errlen; rec++) {
        if (!SQL_SUCCEEDED(
                SQLGetDiagRec(type, handle, rec, state, &native, msg, sizeof(msg), &msglen)))
            break;
        n = snprintf(errbuf + used, errlen - used, "%s%s: %s", rec == 1 ? ": " : "; ",
                     (char *)state, (char *)msg);
        used += n > 0 ? (size_t)n : 0;
    }
    return CV_ERR_ODBC;
}

/* Writes down, as SET statements, the settings the driver (or the connection
 * string's options) gave the new session: DISCARD ALL takes them back to the
 * server's defaults, and cv_odbc_reset() then sets them again. */
static cv_err remember_session(cv_odbc_conn *conn, char *errbuf, size_t errlen) {
    static const char query[] =
        "SELECT coalesce(string_agg(format('SET %I = %L', name, setting), '; '), '') "
        "FROM pg_settings WHERE source = 'session'";
    char out[8192];
    bool is_null = false;
    cv_err err = cv_odbc_query_text(conn, query, NULL, out, sizeof(out), &is_null, errbuf, errlen);

    if (err)
        return err;
    if (strlen(out) >= sizeof(out) - 1)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "the session's settings are too long");
    if (!(conn->pg_session = strdup(out)))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    return CV_OK;
}

/* Connecting and disconnecting, one thread at a time: psqlodbc changes the
 * process's locale while it connects (setlocale() and back), which is not
 * safe beside another thread doing the same (a worker running several jobs
 * at once: AddressSanitizer caught a use after free in setlocale()). */
static pthread_mutex_t connect_lock = PTHREAD_MUTEX_INITIALIZER;

/* connstr with psqlODBC's keepalives and libpq's user timeout (cv_tcp.h) where
 * the user did not set them; a copy of it for other drivers. NULL on NOMEM. */
static char *with_keepalive(const char *connstr) {
    size_t len = strlen(connstr) + 128;
    char *out = malloc(len), unused[64];
    const char *sep = connstr[0] && connstr[strlen(connstr) - 1] != ';' ? ";" : "";
    int n;

    if (!out)
        return NULL;
    n = snprintf(out, len, "%s", connstr);
    if (!cv_pg_is_postgres_odbc(connstr))
        return out;
    if (!cv_odbc_conn_value(connstr, "KeepaliveTime", unused, sizeof(unused)) &&
        !cv_odbc_conn_value(connstr, "KeepaliveInterval", unused, sizeof(unused))) {
        n += snprintf(out + n, len - (size_t)n, "%sKeepaliveTime=%d;KeepaliveInterval=%d", sep,
                      CV_TCP_IDLE_S, CV_TCP_INTERVAL_S);
        sep = ";";
    }
    if (!cv_odbc_conn_value(connstr, "pqopt", unused, sizeof(unused)))
        snprintf(out + n, len - (size_t)n, "%spqopt={tcp_user_timeout=%d}", sep,
                 CV_TCP_USER_TIMEOUT_MS);
    return out;
}

cv_odbc_conn *cv_odbc_connect(const char *connstr, char *errbuf, size_t errlen) {
    cv_odbc_conn *conn = calloc(1, sizeof(*conn));
    char *full = with_keepalive(connstr);
    SQLCHAR quote[8] = {0};
    SQLSMALLINT qlen = 0;
    SQLRETURN rc;

    if (!conn || !full) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        free(conn);
        free(full);
        return NULL;
    }
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_ENV, SQL_NULL_HANDLE, &conn->env)) ||
        !SQL_SUCCEEDED(
            SQLSetEnvAttr(conn->env, SQL_ATTR_ODBC_VERSION, (SQLPOINTER)SQL_OV_ODBC3, 0)) ||
        !SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_DBC, conn->env, &conn->dbc))) {
        cv_err_set(errbuf, errlen, CV_ERR_ODBC, "cannot allocate ODBC handles");
        goto fail;
    }
    SQLSetConnectAttr(conn->dbc, SQL_ATTR_LOGIN_TIMEOUT, (SQLPOINTER)15, 0);
    pthread_mutex_lock(&connect_lock);
    rc = SQLDriverConnect(conn->dbc, NULL, (SQLCHAR *)full, SQL_NTS, NULL, 0, NULL,
                          SQL_DRIVER_NOPROMPT);
    pthread_mutex_unlock(&connect_lock);
    free(full);
    full = NULL;
    if (!SQL_SUCCEEDED(rc)) {
        diag(SQL_HANDLE_DBC, conn->dbc, "cannot connect", errbuf, errlen);
        goto fail;
    }
    conn->connected = true;
    conn->quote = '"';
    if (SQL_SUCCEEDED(
            SQLGetInfo(conn->dbc, SQL_IDENTIFIER_QUOTE_CHAR, quote, sizeof(quote), &qlen)) &&
        qlen == 1)
        conn->quote = (char)quote[0];
    if (!SQL_SUCCEEDED(SQLGetInfo(conn->dbc, SQL_DBMS_NAME, conn->dbms, sizeof(conn->dbms), &qlen)))
        conn->dbms[0] = '\0';
    if (strcmp(conn->dbms, "PostgreSQL") == 0 && remember_session(conn, errbuf, errlen) != CV_OK)
        goto fail;
    return conn;
fail:
    free(full);
    cv_odbc_disconnect(conn);
    return NULL;
}

void cv_odbc_disconnect(cv_odbc_conn *conn) {
    if (!conn)
        return;
    if (conn->connected) {
        if (conn->in_txn)
            SQLEndTran(SQL_HANDLE_DBC, conn->dbc, SQL_ROLLBACK);
    }
    pthread_mutex_lock(&connect_lock);
    if (conn->connected)
        SQLDisconnect(conn->dbc);
    if (conn->dbc)
        SQLFreeHandle(SQL_HANDLE_DBC, conn->dbc);
    if (conn->env)
        SQLFreeHandle(SQL_HANDLE_ENV, conn->env);
    pthread_mutex_unlock(&connect_lock);
    free(conn->pg_session);
    free(conn);
}

cv_err cv_odbc_begin(cv_odbc_conn *conn, char *errbuf, size_t errlen) {
    if (!SQL_SUCCEEDED(
            SQLSetConnectAttr(conn->dbc, SQL_ATTR_AUTOCOMMIT, (SQLPOINTER)SQL_AUTOCOMMIT_OFF, 0)))
        return diag(SQL_HANDLE_DBC, conn->dbc, "cannot start a transaction", errbuf, errlen);
    conn->in_txn = true;
    return CV_OK;
}

static cv_err end_txn(cv_odbc_conn *conn, SQLSMALLINT how, char *errbuf, size_t errlen) {
    if (!SQL_SUCCEEDED(SQLEndTran(SQL_HANDLE_DBC, conn->dbc, how)))
        return diag(SQL_HANDLE_DBC, conn->dbc,
                    how == SQL_COMMIT ? "commit failed" : "rollback failed", errbuf, errlen);
    conn->in_txn = false;
    return CV_OK;
}

cv_err cv_odbc_commit(cv_odbc_conn *conn, char *errbuf, size_t errlen) {
    return end_txn(conn, SQL_COMMIT, errbuf, errlen);
}

static cv_err rollback(cv_odbc_conn *conn, char *errbuf, size_t errlen) {
    return end_txn(conn, SQL_ROLLBACK, errbuf, errlen);
}

/* SQLite keeps a connection's own state in temporary objects, attached
 * databases and PRAGMA settings; the first two can be seen, the last not. */
static cv_err reset_sqlite(cv_odbc_conn *conn, bool settings_changed, char *errbuf, size_t errlen) {
    long long n = 0;
    cv_err err;

    if (settings_changed)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFLICT, "a PRAGMA ran on the connection");
    if ((err = cv_odbc_query_int64(conn, "SELECT count(*) FROM sqlite_temp_master", NULL, &n,
                                   errbuf, errlen)))
        return err;
    if (n > 0)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFLICT, "temporary objects were made");
    if ((err = cv_odbc_query_int64(
             conn, "SELECT count(*) FROM pragma_database_list WHERE name NOT IN ('main', 'temp')",
             NULL, &n, errbuf, errlen)))
        return err;
    if (n > 0)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFLICT, "a database was attached");
    return CV_OK;
}

cv_err cv_odbc_reset(cv_odbc_conn *conn, bool settings_changed, char *errbuf, size_t errlen) {
    long long rows = 0;
    cv_err err;

    if (conn->in_txn && (err = rollback(conn, errbuf, errlen)))
        return err;
    if (!SQL_SUCCEEDED(
            SQLSetConnectAttr(conn->dbc, SQL_ATTR_AUTOCOMMIT, (SQLPOINTER)SQL_AUTOCOMMIT_ON, 0)))
        return diag(SQL_HANDLE_DBC, conn->dbc, "cannot switch autocommit on", errbuf, errlen);
    if (strcmp(conn->dbms, "PostgreSQL") == 0) {
        if ((err = cv_odbc_exec_count(conn, "DISCARD ALL", &rows, errbuf, errlen)))
            return err;
        return conn->pg_session && conn->pg_session[0]
                   ? cv_odbc_exec_count(conn, conn->pg_session, &rows, errbuf, errlen)
                   : CV_OK;
    }
    if (strcmp(conn->dbms, "SQLite") == 0)
        return reset_sqlite(conn, settings_changed, errbuf, errlen);
    return cv_err_set(errbuf, errlen, CV_ERR_CONFLICT, "no session reset for %s",
                      conn->dbms[0] ? conn->dbms : "this driver");
}

bool cv_odbc_alive(cv_odbc_conn *conn) {
    SQLUINTEGER dead = SQL_CD_FALSE;

    if (!SQL_SUCCEEDED(SQLGetConnectAttr(conn->dbc, SQL_ATTR_CONNECTION_DEAD, &dead, 0, NULL)))
        return true; /* the driver cannot tell: the next statement will */
    return dead != SQL_CD_TRUE;
}

char cv_odbc_quote_char(cv_odbc_conn *conn) {
    return conn->quote;
}

struct cv_odbc_stmt {
    cv_odbc_conn *conn;
    SQLHSTMT hstmt;
    int ncols;
    cv_odbc_col *cols;
    /* Block buffers, column-wise: slot r of column c is data[c] + r * width[c]. */
    size_t block_rows;
    SQLULEN rows_fetched;
    char **data;
    size_t *width;
    SQLLEN **ind;
    /* As a load statement: the block its parameters are bound to. */
    const cv_odbc_stmt *source;
    bool row_wise;
    SQLLEN param_ind[8]; /* indicators of cv_odbc_stmt_exec_params() */
};

const char *cv_odbc_dbms(const cv_odbc_conn *conn) {
    return conn->dbms;
}

/* Copies n bytes of name, escaping the catalog pattern characters '_' and '%'
 * so that SQLColumns matches the name literally. */
static void escape_pattern(cv_odbc_conn *conn, const char *name, size_t n, char *out,
                           size_t outlen) {
    SQLCHAR esc[8] = "";
    SQLSMALLINT len = 0;
    size_t o = 0;

    if (!SQL_SUCCEEDED(SQLGetInfo(conn->dbc, SQL_SEARCH_PATTERN_ESCAPE, esc, sizeof(esc), &len)))
        len = 0;
    for (size_t i = 0; i < n && o + 3 < outlen; i++) {
        if (len == 1 && (name[i] == '_' || name[i] == '%'))
            out[o++] = (char)esc[0];
        out[o++] = name[i];
    }
    out[o] = '\0';
}

cv_err cv_odbc_columns(cv_odbc_conn *conn, const char *table, char (**names)[128], int *count,
                       char *errbuf, size_t errlen) {
    SQLHSTMT h = SQL_NULL_HSTMT;
    char schema[128] = "", name[128], col[128];
    const char *dot = strchr(table, '.');
    char(*list)[128] = NULL;
    int n = 0, cap = 0;
    SQLLEN ind;
    SQLRETURN rc;
    cv_err err = CV_OK;

    *names = NULL;
    *count = 0;
    if (dot) {
        escape_pattern(conn, table, (size_t)(dot - table), schema, sizeof(schema));
        escape_pattern(conn, dot + 1, strlen(dot + 1), name, sizeof(name));
    } else {
        escape_pattern(conn, table, strlen(table), name, sizeof(name));
    }
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, conn->dbc, &h)))
        return diag(SQL_HANDLE_DBC, conn->dbc, "cannot allocate a statement", errbuf, errlen);
    rc = SQLColumns(h, NULL, 0, dot ? (SQLCHAR *)schema : NULL, dot ? SQL_NTS : 0, (SQLCHAR *)name,
                    SQL_NTS, NULL, 0);
    if (!SQL_SUCCEEDED(rc)) {
        err = diag(SQL_HANDLE_STMT, h, "cannot read the catalog", errbuf, errlen);
        goto out;
    }
    while (SQL_SUCCEEDED(rc = SQLFetch(h))) {
        if (!SQL_SUCCEEDED(SQLGetData(h, 4, SQL_C_CHAR, col, sizeof(col), &ind)) ||
            ind == SQL_NULL_DATA)
            continue;
        if (n == cap) {
            int ncap = cap ? cap * 2 : 16;
            char(*grown)[128] = realloc(list, sizeof(*list) * (size_t)ncap);
            if (!grown) {
                err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
                goto out;
            }
            list = grown;
            cap = ncap;
        }
        snprintf(list[n++], sizeof(list[0]), "%s", col);
    }
    if (n == 0) {
        err = CV_ERR_NOT_FOUND;
        goto out;
    }
    *names = list;
    *count = n;
    list = NULL;
out:
    free(list);
    SQLFreeHandle(SQL_HANDLE_STMT, h);
    return err;
}

cv_err cv_odbc_exec_count(cv_odbc_conn *conn, const char *sql, long long *rows, char *errbuf,
                          size_t errlen) {
    SQLHSTMT h = SQL_NULL_HSTMT;
    SQLLEN count = 0;
    SQLRETURN rc;
    cv_err err = CV_OK;

    *rows = 0;
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, conn->dbc, &h)))
        return diag(SQL_HANDLE_DBC, conn->dbc, "cannot allocate a statement", errbuf, errlen);
    rc = SQLExecDirect(h, (SQLCHAR *)sql, SQL_NTS);
    if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA)
        err = diag(SQL_HANDLE_STMT, h, "failed", errbuf, errlen);
    else if (SQL_SUCCEEDED(SQLRowCount(h, &count)) && count > 0)
        *rows = (long long)count;
    SQLFreeHandle(SQL_HANDLE_STMT, h);
    return err;
}

cv_err cv_odbc_exec_params(cv_odbc_conn *conn, const char *sql, int nparams,
                           const char *const *values, char *sqlstate, char *errbuf, size_t errlen) {
    SQLHSTMT h = SQL_NULL_HSTMT;
    SQLLEN ind[8];
    SQLRETURN rc;
    cv_err err = CV_OK;

    if (sqlstate)
        sqlstate[0] = '\0';
    if (nparams > 8)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "too many parameters");
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, conn->dbc, &h)))
        return diag(SQL_HANDLE_DBC, conn->dbc, "cannot allocate a statement", errbuf, errlen);
    for (int i = 0; i < nparams; i++) {
        size_t len = values[i] ? strlen(values[i]) : 0;
        ind[i] = values[i] ? (SQLLEN)len : SQL_NULL_DATA;
        if (!SQL_SUCCEEDED(SQLBindParameter(
                h, (SQLUSMALLINT)(i + 1), SQL_PARAM_INPUT, SQL_C_CHAR, SQL_VARCHAR, len ? len : 1,
                0, (SQLPOINTER)(uintptr_t)values[i], (SQLLEN)len, &ind[i]))) {
            err = diag(SQL_HANDLE_STMT, h, "cannot bind a parameter", errbuf, errlen);
            goto out;
        }
    }
    rc = SQLExecDirect(h, (SQLCHAR *)sql, SQL_NTS);
    if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA) {
        if (sqlstate) {
            SQLINTEGER native;
            SQLSMALLINT msglen;
            SQLCHAR msg[8];
            SQLGetDiagRec(SQL_HANDLE_STMT, h, 1, (SQLCHAR *)sqlstate, &native, msg, sizeof(msg),
                          &msglen);
        }
        err = diag(SQL_HANDLE_STMT, h, "statement failed", errbuf, errlen);
    }
out:
    SQLFreeHandle(SQL_HANDLE_STMT, h);
    return err;
}

cv_err cv_odbc_query_text(cv_odbc_conn *conn, const char *sql, const char *param, char *out,
                          size_t outlen, bool *is_null, char *errbuf, size_t errlen) {
    SQLHSTMT h = SQL_NULL_HSTMT;
    SQLLEN pind = param ? (SQLLEN)strlen(param) : 0, vind = 0;
    SQLRETURN rc;
    cv_err err = CV_OK;

    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, conn->dbc, &h)))
        return diag(SQL_HANDLE_DBC, conn->dbc, "cannot allocate a statement", errbuf, errlen);
    if ((param && !SQL_SUCCEEDED(SQLBindParameter(h, 1, SQL_PARAM_INPUT, SQL_C_CHAR, SQL_VARCHAR,
                                                  (SQLULEN)(pind ? pind : 1), 0,
                                                  (SQLPOINTER)(uintptr_t)param, pind, &pind))) ||
        !SQL_SUCCEEDED(SQLExecDirect(h, (SQLCHAR *)sql, SQL_NTS))) {
        err = diag(SQL_HANDLE_STMT, h, "query failed", errbuf, errlen);
        goto out;
    }
    rc = SQLFetch(h);
    if (rc == SQL_NO_DATA) {
        err = CV_ERR_NOT_FOUND;
        goto out;
    }
    if (!SQL_SUCCEEDED(rc) ||
        !SQL_SUCCEEDED(SQLGetData(h, 1, SQL_C_CHAR, out, (SQLLEN)outlen, &vind))) {
        err = diag(SQL_HANDLE_STMT, h, "fetch failed", errbuf, errlen);
        goto out;
    }
    *is_null = vind == SQL_NULL_DATA;
    if (*is_null)
        out[0] = '\0';
out:
    SQLFreeHandle(SQL_HANDLE_STMT, h);
    return err;
}

cv_err cv_odbc_query_int64(cv_odbc_conn *conn, const char *sql, const char *param, long long *value,
                           char *errbuf, size_t errlen) {
    char text[32], *end;
    bool is_null = false;
    cv_err err = cv_odbc_query_text(conn, sql, param, text, sizeof(text), &is_null, errbuf, errlen);
    if (err)
        return err;
    *value = is_null ? 0 : strtoll(text, &end, 10);
    return CV_OK;
}

cv_odbc_stmt *cv_odbc_stmt_new(cv_odbc_conn *conn, char *errbuf, size_t errlen) {
    cv_odbc_stmt *stmt = calloc(1, sizeof(*stmt));
    if (!stmt) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    stmt->conn = conn;
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, conn->dbc, &stmt->hstmt))) {
        diag(SQL_HANDLE_DBC, conn->dbc, "cannot allocate a statement", errbuf, errlen);
        free(stmt);
        return NULL;
    }
    return stmt;
}

static void free_columns(cv_odbc_stmt *stmt) {
    for (int i = 0; i < stmt->ncols; i++) {
        if (stmt->data)
            free(stmt->data[i]);
        if (stmt->ind)
            free(stmt->ind[i]);
    }
    free(stmt->data);
    free(stmt->ind);
    free(stmt->width);
    free(stmt->cols);
    stmt->data = NULL;
    stmt->ind = NULL;
    stmt->width = NULL;
    stmt->cols = NULL;
    stmt->ncols = 0;
    stmt->block_rows = 0;
}

void cv_odbc_stmt_destroy(cv_odbc_stmt *stmt) {
    if (!stmt)
        return;
    free_columns(stmt);
    SQLFreeHandle(SQL_HANDLE_STMT, stmt->hstmt);
    free(stmt);
}

/* Bytes one value of a column takes as NUL-terminated UTF-8 text. Declared sizes
 * of long and binary types are not to be trusted (SQLite reports BLOB as 255). */
static size_t slot_width(const cv_odbc_col *c) {
    switch (c->sql_type) {
        case SQL_BIT:
        case SQL_TINYINT:
        case SQL_SMALLINT:
        case SQL_INTEGER:
        case SQL_BIGINT:
        case SQL_REAL:
        case SQL_FLOAT:
        case SQL_DOUBLE:
        case SQL_TYPE_DATE:
        case SQL_TYPE_TIME:
        case SQL_TYPE_TIMESTAMP:
        case SQL_DATE:
        case SQL_TIME:
        case SQL_TIMESTAMP:
            return SHORT_SLOT;
        case SQL_DECIMAL:
        case SQL_NUMERIC:
            return c->size + 4 > SHORT_SLOT ? c->size + 4 : SHORT_SLOT;
        case SQL_CHAR:
        case SQL_VARCHAR:
        case SQL_WCHAR:
        case SQL_WVARCHAR:
            if (c->size > 0 && c->size <= 4000)
                return c->size * 4 + 1; /* up to 4 bytes a character in UTF-8 */
            return LONG_SLOT;
        default:
            return LONG_SLOT;
    }
}

static cv_err describe(cv_odbc_stmt *stmt, char *errbuf, size_t errlen) {
    SQLSMALLINT ncols = 0;
    size_t row_bytes = 0;

    free_columns(stmt);
    if (!SQL_SUCCEEDED(SQLNumResultCols(stmt->hstmt, &ncols)))
        return diag(SQL_HANDLE_STMT, stmt->hstmt, "cannot count result columns", errbuf, errlen);
    if (ncols > MAX_COLS)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "query returns %d columns, limit %d",
                          ncols, MAX_COLS);
    if (ncols == 0)
        return CV_OK;
    stmt->cols = calloc((size_t)ncols, sizeof(*stmt->cols));
    stmt->data = calloc((size_t)ncols, sizeof(*stmt->data));
    stmt->ind = calloc((size_t)ncols, sizeof(*stmt->ind));
    stmt->width = calloc((size_t)ncols, sizeof(*stmt->width));
    stmt->ncols = ncols;
    if (!stmt->cols || !stmt->data || !stmt->ind || !stmt->width)
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    for (SQLSMALLINT i = 0; i < ncols; i++) {
        cv_odbc_col *c = &stmt->cols[i];
        SQLSMALLINT namelen = 0, type = 0, decimals = 0, nullable = 0;
        SQLULEN size = 0;
        if (!SQL_SUCCEEDED(SQLDescribeCol(stmt->hstmt, (SQLUSMALLINT)(i + 1), (SQLCHAR *)c->name,
                                          sizeof(c->name), &namelen, &type, &size, &decimals,
                                          &nullable)))
            return diag(SQL_HANDLE_STMT, stmt->hstmt, "cannot describe a result column", errbuf,
                        errlen);
        c->sql_type = type;
        c->size = size;
        c->decimals = decimals;
        c->nullable = nullable != SQL_NO_NULLS;
        /* Binary as text comes back in driver-specific spellings (SQLite: X'00FF'),
         * so binary columns move as raw bytes. */
        c->binary = type == SQL_BINARY || type == SQL_VARBINARY || type == SQL_LONGVARBINARY;
        stmt->width[i] = slot_width(c);
        row_bytes += stmt->width[i] + sizeof(SQLLEN);
    }
    stmt->block_rows = BLOCK_BYTES / row_bytes;
    if (stmt->block_rows > MAX_BLOCK_ROWS)
        stmt->block_rows = MAX_BLOCK_ROWS;
    if (stmt->block_rows < 1)
        stmt->block_rows = 1;
    for (int i = 0; i < ncols; i++) {
        stmt->data[i] = malloc(stmt->width[i] * stmt->block_rows);
        stmt->ind[i] = malloc(sizeof(SQLLEN) * stmt->block_rows);
        if (!stmt->data[i] || !stmt->ind[i])
            return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        SQLSMALLINT c_type = stmt->cols[i].binary ? SQL_C_BINARY : SQL_C_CHAR;
        if (!SQL_SUCCEEDED(SQLBindCol(stmt->hstmt, (SQLUSMALLINT)(i + 1), c_type, stmt->data[i],
                                      (SQLLEN)stmt->width[i], stmt->ind[i])))
            return diag(SQL_HANDLE_STMT, stmt->hstmt, "cannot bind a result column", errbuf,
                        errlen);
    }
    if (!SQL_SUCCEEDED(SQLSetStmtAttr(stmt->hstmt, SQL_ATTR_ROW_BIND_TYPE,
                                      (SQLPOINTER)SQL_BIND_BY_COLUMN, 0)) ||
        !SQL_SUCCEEDED(SQLSetStmtAttr(stmt->hstmt, SQL_ATTR_ROW_ARRAY_SIZE,
                                      (SQLPOINTER)(uintptr_t)stmt->block_rows, 0)) ||
        !SQL_SUCCEEDED(
            SQLSetStmtAttr(stmt->hstmt, SQL_ATTR_ROWS_FETCHED_PTR, &stmt->rows_fetched, 0)))
        return diag(SQL_HANDLE_STMT, stmt->hstmt, "driver refuses block fetch", errbuf, errlen);
    return CV_OK;
}

cv_err cv_odbc_stmt_exec_params(cv_odbc_stmt *stmt, const char *sql, int nparams,
                                const char *const *values, const cv_odbc_col *types, char *errbuf,
                                size_t errlen) {
    SQLRETURN rc;

    if (nparams > 8)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "too many parameters");
    for (int i = 0; i < nparams; i++) {
        const cv_odbc_col *type = &types[i];
        SQLLEN len = values[i] ? (SQLLEN)strlen(values[i]) : 0;
        stmt->param_ind[i] = values[i] ? len : SQL_NULL_DATA;
        if (!SQL_SUCCEEDED(SQLBindParameter(
                stmt->hstmt, (SQLUSMALLINT)(i + 1), SQL_PARAM_INPUT, SQL_C_CHAR, type->sql_type,
                type->size ? type->size : (SQLULEN)len + 1, type->decimals,
                (SQLPOINTER)(uintptr_t)values[i], len, &stmt->param_ind[i])))
            return diag(SQL_HANDLE_STMT, stmt->hstmt, "cannot bind a parameter", errbuf, errlen);
    }
    rc = SQLExecDirect(stmt->hstmt, (SQLCHAR *)sql, SQL_NTS);
    if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA)
        return diag(SQL_HANDLE_STMT, stmt->hstmt, "statement failed", errbuf, errlen);
    return describe(stmt, errbuf, errlen);
}

cv_err cv_odbc_stmt_exec(cv_odbc_stmt *stmt, const char *sql, char *errbuf, size_t errlen) {
    SQLRETURN rc = SQLExecDirect(stmt->hstmt, (SQLCHAR *)sql, SQL_NTS);
    if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA)
        return diag(SQL_HANDLE_STMT, stmt->hstmt, "statement failed", errbuf, errlen);
    return describe(stmt, errbuf, errlen);
}

long long cv_odbc_stmt_row_count(cv_odbc_stmt *stmt) {
    SQLLEN rows = -1;
    if (!SQL_SUCCEEDED(SQLRowCount(stmt->hstmt, &rows)))
        return -1;
    return (long long)rows;
}

cv_odbc_conn *cv_odbc_stmt_conn(const cv_odbc_stmt *stmt) {
    return stmt->conn;
}

void cv_odbc_stmt_cancel(cv_odbc_stmt *stmt) {
    /* The one ODBC call meant to come from another thread: the driver asks the
     * server to stop, and the blocked call returns SQL_ERROR (HY008). */
    SQLCancel(stmt->hstmt);
}

void cv_odbc_stmt_close(cv_odbc_stmt *stmt) {
    SQLFreeStmt(stmt->hstmt, SQL_CLOSE);
    SQLFreeStmt(stmt->hstmt, SQL_UNBIND);
    SQLFreeStmt(stmt->hstmt, SQL_RESET_PARAMS);
}

int cv_odbc_stmt_ncols(const cv_odbc_stmt *stmt) {
    return stmt->ncols;
}

const cv_odbc_col *cv_odbc_stmt_col(const cv_odbc_stmt *stmt, int index) {
    return index >= 0 && index < stmt->ncols ? &stmt->cols[index] : NULL;
}

const cv_odbc_col *cv_odbc_stmt_cols(const cv_odbc_stmt *stmt) {
    return stmt->ncols > 0 ? stmt->cols : NULL;
}

cv_err cv_odbc_stmt_fetch_block(cv_odbc_stmt *stmt, size_t *rows, char *errbuf, size_t errlen) {
    SQLRETURN rc;

    *rows = 0;
    stmt->rows_fetched = 0;
    rc = SQLFetch(stmt->hstmt);
    if (rc == SQL_NO_DATA)
        return CV_ERR_NOT_FOUND;
    if (!SQL_SUCCEEDED(rc))
        return diag(SQL_HANDLE_STMT, stmt->hstmt, "fetch failed", errbuf, errlen);
    /* A value that did not fit its slot was truncated: refuse rather than load it. */
    for (int c = 0; c < stmt->ncols; c++) {
        for (SQLULEN r = 0; r < stmt->rows_fetched; r++) {
            SQLLEN ind = stmt->ind[c][r];
            size_t room = stmt->width[c] - (stmt->cols[c].binary ? 0 : 1); /* text: NUL */
            if (ind == SQL_NO_TOTAL || (ind >= 0 && (size_t)ind > room))
                return cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                                  "column %s: a value is longer than the %zu bytes a "
                                  "transfer holds per value",
                                  stmt->cols[c].name, stmt->width[c] - 1);
        }
    }
    *rows = stmt->rows_fetched;
    return CV_OK;
}

const char *cv_odbc_stmt_value(const cv_odbc_stmt *stmt, size_t row, int col, size_t *len) {
    SQLLEN ind = stmt->ind[col][row];
    if (ind == SQL_NULL_DATA) {
        *len = 0;
        return NULL;
    }
    *len = (size_t)ind;
    return stmt->data[col] + row * stmt->width[col];
}

cv_err cv_odbc_stmt_prepare(cv_odbc_stmt *stmt, const char *sql, char *errbuf, size_t errlen) {
    if (!SQL_SUCCEEDED(SQLPrepare(stmt->hstmt, (SQLCHAR *)sql, SQL_NTS)))
        return diag(SQL_HANDLE_STMT, stmt->hstmt, "cannot prepare", errbuf, errlen);
    return CV_OK;
}

/* Binds row `row` of the source block (or the whole arrays when row_wise is
 * false, row then being 0) as the statement's parameters. */
static cv_err bind_params(cv_odbc_stmt *stmt, size_t row, char *errbuf, size_t errlen) {
    const cv_odbc_stmt *source = stmt->source;
    bool sqlite = strcmp(stmt->conn->dbms, "SQLite") == 0;
    for (int i = 0; i < source->ncols; i++) {
        const cv_odbc_col *c = &source->cols[i];
        SQLULEN size = c->size ? c->size : source->width[i] - 1;
        SQLSMALLINT type = c->sql_type;
        /* sqliteodbc converts DECIMAL and NUMERIC parameters to doubles, losing
         * digits past the 15th: as text they arrive exactly. */
        if (sqlite && (type == SQL_DECIMAL || type == SQL_NUMERIC))
            type = SQL_VARCHAR;
        if (!SQL_SUCCEEDED(SQLBindParameter(stmt->hstmt, (SQLUSMALLINT)(i + 1), SQL_PARAM_INPUT,
                                            c->binary ? SQL_C_BINARY : SQL_C_CHAR, type, size,
                                            c->decimals, source->data[i] + row * source->width[i],
                                            (SQLLEN)source->width[i], source->ind[i] + row)))
            return diag(SQL_HANDLE_STMT, stmt->hstmt, "cannot bind a parameter", errbuf, errlen);
    }
    return CV_OK;
}

cv_err cv_odbc_stmt_bind_block(cv_odbc_stmt *stmt, const cv_odbc_stmt *source, char *errbuf,
                               size_t errlen) {
    bool binary = false;

    stmt->source = source;
    for (int i = 0; i < source->ncols; i++)
        binary = binary || source->cols[i].binary;
    /* sqliteodbc 0.9998 takes the length of every binary value in a parameter
     * array from the first row, padding or cutting the others: with binary
     * columns, SQLite gets one row per execute (cheap for a local file). */
    stmt->row_wise = binary && strcmp(stmt->conn->dbms, "SQLite") == 0;
    if (!SQL_SUCCEEDED(SQLSetStmtAttr(stmt->hstmt, SQL_ATTR_PARAM_BIND_TYPE,
                                      (SQLPOINTER)SQL_PARAM_BIND_BY_COLUMN, 0)))
        return diag(SQL_HANDLE_STMT, stmt->hstmt, "driver refuses parameter arrays", errbuf,
                    errlen);
    return stmt->row_wise ? CV_OK : bind_params(stmt, 0, errbuf, errlen);
}

static cv_err execute(cv_odbc_stmt *stmt, size_t paramsets, char *errbuf, size_t errlen) {
    SQLRETURN rc;

    if (!SQL_SUCCEEDED(SQLSetStmtAttr(stmt->hstmt, SQL_ATTR_PARAMSET_SIZE,
                                      (SQLPOINTER)(uintptr_t)paramsets, 0)))
        return diag(SQL_HANDLE_STMT, stmt->hstmt, "driver refuses parameter arrays", errbuf,
                    errlen);
    rc = SQLExecute(stmt->hstmt);
    if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA)
        return diag(SQL_HANDLE_STMT, stmt->hstmt, "insert failed", errbuf, errlen);
    return CV_OK;
}

cv_err cv_odbc_stmt_execute_block(cv_odbc_stmt *stmt, size_t rows, char *errbuf, size_t errlen) {
    cv_err err;

    if (!stmt->row_wise)
        return execute(stmt, rows, errbuf, errlen);
    for (size_t r = 0; r < rows; r++)
        if ((err = bind_params(stmt, r, errbuf, errlen)) ||
            (err = execute(stmt, 1, errbuf, errlen)))
            return err;
    return CV_OK;
}
