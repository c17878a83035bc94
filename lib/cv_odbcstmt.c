/*
 * cv_odbcstmt.c - ODBC statements that move blocks of rows. See cv_odbcstmt.h.
 *
 * Results are fetched in blocks: every column is bound column-wise as text
 * (SQL_C_CHAR) into an array of fixed-width slots with SQL_ATTR_ROW_ARRAY_SIZE
 * rows, sized so one block stays within BLOCK_BYTES whatever the table size.
 * The same arrays, with their length indicators, are then bound as parameter
 * arrays (SQL_ATTR_PARAMSET_SIZE) of the destination's INSERT, so a block
 * moves from one driver to the other without being copied.
 */
#include "cv_odbcstmt.h"

#include "cv_odbc_int.h"

#include <sql.h>
#include <sqlext.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define MAX_COLS 1024
#define BLOCK_BYTES (16u << 20) /* memory for one block of rows */
#define MAX_BLOCK_ROWS 1024
#define SHORT_SLOT 64          /* numbers, dates and times as text */
#define LONG_SLOT (256u << 10) /* text and binary of unknown or large size */

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

cv_odbc_stmt *cv_odbc_stmt_new(cv_odbc_conn *conn, char *errbuf, size_t errlen) {
    cv_odbc_stmt *stmt = calloc(1, sizeof(*stmt));
    if (!stmt) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    stmt->conn = conn;
    if (!SQL_SUCCEEDED(SQLAllocHandle(SQL_HANDLE_STMT, conn->dbc, &stmt->hstmt))) {
        cv_odbc_diag(SQL_HANDLE_DBC, conn->dbc, "cannot allocate a statement", errbuf, errlen);
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
        return cv_odbc_diag(SQL_HANDLE_STMT, stmt->hstmt, "cannot count result columns", errbuf,
                            errlen);
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
            return cv_odbc_diag(SQL_HANDLE_STMT, stmt->hstmt, "cannot describe a result column",
                                errbuf, errlen);
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
            return cv_odbc_diag(SQL_HANDLE_STMT, stmt->hstmt, "cannot bind a result column", errbuf,
                                errlen);
    }
    if (!SQL_SUCCEEDED(SQLSetStmtAttr(stmt->hstmt, SQL_ATTR_ROW_BIND_TYPE,
                                      (SQLPOINTER)SQL_BIND_BY_COLUMN, 0)) ||
        !SQL_SUCCEEDED(SQLSetStmtAttr(stmt->hstmt, SQL_ATTR_ROW_ARRAY_SIZE,
                                      (SQLPOINTER)(uintptr_t)stmt->block_rows, 0)) ||
        !SQL_SUCCEEDED(
            SQLSetStmtAttr(stmt->hstmt, SQL_ATTR_ROWS_FETCHED_PTR, &stmt->rows_fetched, 0)))
        return cv_odbc_diag(SQL_HANDLE_STMT, stmt->hstmt, "driver refuses block fetch", errbuf,
                            errlen);
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
            return cv_odbc_diag(SQL_HANDLE_STMT, stmt->hstmt, "cannot bind a parameter", errbuf,
                                errlen);
    }
    rc = SQLExecDirect(stmt->hstmt, (SQLCHAR *)sql, SQL_NTS);
    if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA)
        return cv_odbc_diag(SQL_HANDLE_STMT, stmt->hstmt, "statement failed", errbuf, errlen);
    return describe(stmt, errbuf, errlen);
}

cv_err cv_odbc_stmt_exec(cv_odbc_stmt *stmt, const char *sql, char *errbuf, size_t errlen) {
    SQLRETURN rc = SQLExecDirect(stmt->hstmt, (SQLCHAR *)sql, SQL_NTS);
    if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA)
        return cv_odbc_diag(SQL_HANDLE_STMT, stmt->hstmt, "statement failed", errbuf, errlen);
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
        return cv_odbc_diag(SQL_HANDLE_STMT, stmt->hstmt, "fetch failed", errbuf, errlen);
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
        return cv_odbc_diag(SQL_HANDLE_STMT, stmt->hstmt, "cannot prepare", errbuf, errlen);
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
            return cv_odbc_diag(SQL_HANDLE_STMT, stmt->hstmt, "cannot bind a parameter", errbuf,
                                errlen);
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
        return cv_odbc_diag(SQL_HANDLE_STMT, stmt->hstmt, "driver refuses parameter arrays", errbuf,
                            errlen);
    return stmt->row_wise ? CV_OK : bind_params(stmt, 0, errbuf, errlen);
}

static cv_err execute(cv_odbc_stmt *stmt, size_t paramsets, char *errbuf, size_t errlen) {
    SQLRETURN rc;

    if (!SQL_SUCCEEDED(SQLSetStmtAttr(stmt->hstmt, SQL_ATTR_PARAMSET_SIZE,
                                      (SQLPOINTER)(uintptr_t)paramsets, 0)))
        return cv_odbc_diag(SQL_HANDLE_STMT, stmt->hstmt, "driver refuses parameter arrays", errbuf,
                            errlen);
    rc = SQLExecute(stmt->hstmt);
    if (!SQL_SUCCEEDED(rc) && rc != SQL_NO_DATA)
        return cv_odbc_diag(SQL_HANDLE_STMT, stmt->hstmt, "insert failed", errbuf, errlen);
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
