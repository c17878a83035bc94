/*
 * cv_odbc.c - unixODBC connections and statements with diagnostics translated
 * into cv_err. Values are read with SQLGetData into per-column buffers that
 * grow as needed, so large text columns need no size guess.
 */
#include "cv_odbc.h"

#include <sql.h>
#include <sqlext.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLS 1024
#define MAX_PARAMS 1024

struct cv_odbc_conn {
    SQLHENV env;
    SQLHDBC dbc;
    bool connected;
    bool in_txn;
    char quote;
};

typedef struct col_buf {
    char *data;
    size_t cap;
    size_t len;
    bool is_null;
} col_buf;

struct cv_odbc_stmt {
    cv_odbc_conn *conn;
    SQLHSTMT hstmt;
    int ncols;
    cv_odbc_col *cols;
    col_buf *bufs;
    SQLLEN indicators[MAX_PARAMS];
};

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

cv_odbc_conn *cv_odbc_connect(const char *connstr, char *errbuf, size_t errlen) {
    cv_odbc_conn *conn = calloc(1, sizeof(*conn));
    SQLCHAR quote[8] = {0};
    SQLSMALLINT qlen = 0;
    SQLRETURN rc;

    if (!conn) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
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
    rc = SQLDriverConnect(conn->dbc, NULL, (SQLCHAR *)connstr, SQL_NTS, NULL, 0, NULL,
                          SQL_DRIVER_NOPROMPT);
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
    return conn;
fail:
    cv_odbc_disconnect(conn);
    return NULL;
}

void cv_odbc_disconnect(cv_odbc_conn *conn) {
    if (!conn)
        return;
    if (conn->connected) {
        if (conn->in_txn)
            SQLEndTran(SQL_HANDLE_DBC, conn->dbc, SQL_ROLLBACK);
        SQLDisconnect(conn->dbc);
    }
    if (conn->dbc)
        SQLFreeHandle(SQL_HANDLE_DBC, conn->dbc);
    if (conn->env)
        SQLFreeHandle(SQL_HANDLE_ENV, conn->env);
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

cv_err cv_odbc_rollback(cv_odbc_conn *conn, char *errbuf, size_t errlen) {
    return end_txn(conn, SQL_ROLLBACK, errbuf, errlen);
}

char cv_odbc_quote_char(cv_odbc_conn *conn) {
    return conn->quote;
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
    for (int i = 0; i < stmt->ncols; i++)
        free(stmt->bufs[i].data);
    free(stmt->bufs);
    free(stmt->cols);
    stmt->bufs = NULL;
    stmt->cols = NULL;
    stmt->ncols = 0;
}

void cv_odbc_stmt_destroy(cv_odbc_stmt *stmt) {
    if (!stmt)
        return;
    free_columns(stmt);
    SQLFreeHandle(SQL_HANDLE_STMT, stmt->hstmt);
    free(stmt);
}

static cv_err describe(cv_odbc_stmt *stmt, char *errbuf, size_t errlen) {
    SQLSMALLINT ncols = 0;

    free_columns(stmt);
    if (!SQL_SUCCEEDED(SQLNumResultCols(stmt->hstmt, &ncols)))
        return diag(SQL_HANDLE_STMT, stmt->hstmt, "cannot count result columns", errbuf, errlen);
    if (ncols > MAX_COLS)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "query returns %d columns, limit %d",
                          ncols, MAX_COLS);
    if (ncols == 0)
        return CV_OK;
    stmt->cols = calloc((size_t)ncols, sizeof(*stmt->cols));
    stmt->bufs = calloc((size_t)ncols, sizeof(*stmt->bufs));
    if (!stmt->cols || !stmt->bufs) {
        free(stmt->cols);
        free(stmt->bufs);
        stmt->cols = NULL;
        stmt->bufs = NULL;
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    }
    stmt->ncols = ncols;
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
    }
    return CV_OK;
}

cv_err cv_odbc_stmt_exec(cv_odbc_stmt *stmt, const char *sql, char *errbuf, size_t errlen) {
    SQLRETURN rc = SQLExecDirect(stmt->hstmt, (SQLCHAR *)sql, SQL_NTS);
    if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA)
        return diag(SQL_HANDLE_STMT, stmt->hstmt, "statement failed", errbuf, errlen);
    return describe(stmt, errbuf, errlen);
}

int cv_odbc_stmt_ncols(const cv_odbc_stmt *stmt) {
    return stmt->ncols;
}

const cv_odbc_col *cv_odbc_stmt_col(const cv_odbc_stmt *stmt, int index) {
    return index >= 0 && index < stmt->ncols ? &stmt->cols[index] : NULL;
}

/* Reads one column of the current row, growing its buffer across partial reads. */
static cv_err read_column(cv_odbc_stmt *stmt, int index, char *errbuf, size_t errlen) {
    col_buf *b = &stmt->bufs[index];
    SQLLEN ind = 0;
    SQLRETURN rc;

    b->len = 0;
    b->is_null = false;
    if (b->cap < 256) {
        char *p = realloc(b->data, 256);
        if (!p)
            return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        b->data = p;
        b->cap = 256;
    }
    for (;;) {
        rc = SQLGetData(stmt->hstmt, (SQLUSMALLINT)(index + 1), SQL_C_CHAR, b->data + b->len,
                        (SQLLEN)(b->cap - b->len), &ind);
        if (rc == SQL_NO_DATA)
            break;
        if (!SQL_SUCCEEDED(rc))
            return diag(SQL_HANDLE_STMT, stmt->hstmt, "cannot read a column", errbuf, errlen);
        if (ind == SQL_NULL_DATA) {
            b->is_null = true;
            return CV_OK;
        }
        if (rc == SQL_SUCCESS) {
            b->len += (size_t)ind;
            break;
        }
        /* SQL_SUCCESS_WITH_INFO: truncated. All but the terminating NUL arrived. */
        size_t got = b->cap - b->len - 1;
        size_t need = ind == SQL_NO_TOTAL ? b->cap * 2 : b->len + (size_t)ind + 1;
        b->len += got;
        if (need <= b->cap)
            need = b->cap * 2;
        char *p = realloc(b->data, need);
        if (!p)
            return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        b->data = p;
        b->cap = need;
    }
    b->data[b->len] = '\0';
    return CV_OK;
}

cv_err cv_odbc_stmt_fetch(cv_odbc_stmt *stmt, char *errbuf, size_t errlen) {
    SQLRETURN rc = SQLFetch(stmt->hstmt);
    cv_err err;

    if (rc == SQL_NO_DATA)
        return CV_ERR_NOT_FOUND;
    if (!SQL_SUCCEEDED(rc))
        return diag(SQL_HANDLE_STMT, stmt->hstmt, "fetch failed", errbuf, errlen);
    for (int i = 0; i < stmt->ncols; i++)
        if ((err = read_column(stmt, i, errbuf, errlen)))
            return err;
    return CV_OK;
}

const char *cv_odbc_stmt_value(const cv_odbc_stmt *stmt, int index, size_t *len) {
    const col_buf *b = &stmt->bufs[index];
    if (b->is_null) {
        *len = 0;
        return NULL;
    }
    *len = b->len;
    return b->data;
}

cv_err cv_odbc_stmt_prepare(cv_odbc_stmt *stmt, const char *sql, char *errbuf, size_t errlen) {
    if (!SQL_SUCCEEDED(SQLPrepare(stmt->hstmt, (SQLCHAR *)sql, SQL_NTS)))
        return diag(SQL_HANDLE_STMT, stmt->hstmt, "cannot prepare", errbuf, errlen);
    return CV_OK;
}

cv_err cv_odbc_stmt_bind_text(cv_odbc_stmt *stmt, int index, const cv_odbc_col *type,
                              const char *value, size_t len, char *errbuf, size_t errlen) {
    SQLULEN size = type->size ? type->size : (len ? len : 1);
    SQLRETURN rc;

    if (index < 0 || index >= MAX_PARAMS)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "too many parameters");
    stmt->indicators[index] = value ? (SQLLEN)len : SQL_NULL_DATA;
    rc = SQLBindParameter(stmt->hstmt, (SQLUSMALLINT)(index + 1), SQL_PARAM_INPUT, SQL_C_CHAR,
                          type->sql_type, size, type->decimals, (SQLPOINTER)(uintptr_t)value,
                          (SQLLEN)len, &stmt->indicators[index]);
    if (!SQL_SUCCEEDED(rc))
        return diag(SQL_HANDLE_STMT, stmt->hstmt, "cannot bind a parameter", errbuf, errlen);
    return CV_OK;
}

cv_err cv_odbc_stmt_execute(cv_odbc_stmt *stmt, char *errbuf, size_t errlen) {
    SQLRETURN rc = SQLExecute(stmt->hstmt);
    if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA)
        return diag(SQL_HANDLE_STMT, stmt->hstmt, "insert failed", errbuf, errlen);
    return CV_OK;
}
