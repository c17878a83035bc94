/*
 * cv_odbc.c - unixODBC connections: connecting, transactions, resetting a kept
 * connection, the catalog and one-shot statements, with diagnostics translated
 * into cv_err. Statements that move blocks of rows are cv_odbcstmt.c's.
 */
#include "cv_odbc.h"
#include "cv_odbc_int.h"

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

cv_err cv_odbc_diag(SQLSMALLINT type, SQLHANDLE handle, const char *what, char *errbuf,
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

bool cv_odbc_names_postgres(const char *odbc) {
    char driver[256];
    if (!cv_odbc_conn_value(odbc, "Driver", driver, sizeof(driver)))
        return false;
    for (char *c = driver; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return strstr(driver, "postgres") || strstr(driver, "psqlodbc");
}

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
    if (!cv_odbc_names_postgres(connstr))
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

/* MariaDB's driver has no keepalive option and does not show its socket: sets
 * them on the process's sockets to the server's port (cv_tcp.h). A local
 * socket (Socket=, or localhost without Port) has none to set. */
static void keepalive_mariadb(const char *connstr) {
    char port[16] = "3306";
    long value;

    cv_odbc_conn_value(connstr, "Port", port, sizeof(port));
    value = strtol(port, NULL, 10);
    if (value > 0 && value < 65536)
        cv_tcp_keepalive_port((int)value);
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
        cv_odbc_diag(SQL_HANDLE_DBC, conn->dbc, "cannot connect", errbuf, errlen);
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
    if (strncasecmp(conn->dbms, "MariaDB", 7) == 0 || strncasecmp(conn->dbms, "MySQL", 5) == 0)
        keepalive_mariadb(connstr);
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
        return cv_odbc_diag(SQL_HANDLE_DBC, conn->dbc, "cannot start a transaction", errbuf,
                            errlen);
    conn->in_txn = true;
    return CV_OK;
}

static cv_err end_txn(cv_odbc_conn *conn, SQLSMALLINT how, char *errbuf, size_t errlen) {
    if (!SQL_SUCCEEDED(SQLEndTran(SQL_HANDLE_DBC, conn->dbc, how)))
        return cv_odbc_diag(SQL_HANDLE_DBC, conn->dbc,
                            how == SQL_COMMIT ? "commit failed" : "rollback failed", errbuf,
                            errlen);
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
        return cv_odbc_diag(SQL_HANDLE_DBC, conn->dbc, "cannot switch autocommit on", errbuf,
                            errlen);
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
        return cv_odbc_diag(SQL_HANDLE_DBC, conn->dbc, "cannot allocate a statement", errbuf,
                            errlen);
    rc = SQLColumns(h, NULL, 0, dot ? (SQLCHAR *)schema : NULL, dot ? SQL_NTS : 0, (SQLCHAR *)name,
                    SQL_NTS, NULL, 0);
    if (!SQL_SUCCEEDED(rc)) {
        err = cv_odbc_diag(SQL_HANDLE_STMT, h, "cannot read the catalog", errbuf, errlen);
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
        return cv_odbc_diag(SQL_HANDLE_DBC, conn->dbc, "cannot allocate a statement", errbuf,
                            errlen);
    rc = SQLExecDirect(h, (SQLCHAR *)sql, SQL_NTS);
    if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA)
        err = cv_odbc_diag(SQL_HANDLE_STMT, h, "failed", errbuf, errlen);
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
        return cv_odbc_diag(SQL_HANDLE_DBC, conn->dbc, "cannot allocate a statement", errbuf,
                            errlen);
    for (int i = 0; i < nparams; i++) {
        size_t len = values[i] ? strlen(values[i]) : 0;
        ind[i] = values[i] ? (SQLLEN)len : SQL_NULL_DATA;
        if (!SQL_SUCCEEDED(SQLBindParameter(
                h, (SQLUSMALLINT)(i + 1), SQL_PARAM_INPUT, SQL_C_CHAR, SQL_VARCHAR, len ? len : 1,
                0, (SQLPOINTER)(uintptr_t)values[i], (SQLLEN)len, &ind[i]))) {
            err = cv_odbc_diag(SQL_HANDLE_STMT, h, "cannot bind a parameter", errbuf, errlen);
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
        err = cv_odbc_diag(SQL_HANDLE_STMT, h, "statement failed", errbuf, errlen);
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
        return cv_odbc_diag(SQL_HANDLE_DBC, conn->dbc, "cannot allocate a statement", errbuf,
                            errlen);
    if ((param && !SQL_SUCCEEDED(SQLBindParameter(h, 1, SQL_PARAM_INPUT, SQL_C_CHAR, SQL_VARCHAR,
                                                  (SQLULEN)(pind ? pind : 1), 0,
                                                  (SQLPOINTER)(uintptr_t)param, pind, &pind))) ||
        !SQL_SUCCEEDED(SQLExecDirect(h, (SQLCHAR *)sql, SQL_NTS))) {
        err = cv_odbc_diag(SQL_HANDLE_STMT, h, "query failed", errbuf, errlen);
        goto out;
    }
    rc = SQLFetch(h);
    if (rc == SQL_NO_DATA) {
        err = CV_ERR_NOT_FOUND;
        goto out;
    }
    if (!SQL_SUCCEEDED(rc) ||
        !SQL_SUCCEEDED(SQLGetData(h, 1, SQL_C_CHAR, out, (SQLLEN)outlen, &vind))) {
        err = cv_odbc_diag(SQL_HANDLE_STMT, h, "fetch failed", errbuf, errlen);
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
