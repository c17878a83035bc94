/*
 * cv_transfer.c - the SQL transfer. The origin is read in blocks (cv_odbc.c);
 * a PostgreSQL destination is loaded with COPY FROM STDIN through libpq
 * (cv_pg.c), any other with INSERT parameter arrays bound to the same block
 * buffers. Either way in one destination transaction. Column names come from
 * the origin's result and are quoted for the destination; values are always
 * sent as data, never pasted into SQL.
 */
#define _GNU_SOURCE /* strcasestr */
#include "cv_transfer.h"

#include "cv_dialect.h"
#include "cv_odbc.h"
#include "cv_pg.h"
#include "cv_time.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int cv_transfer_quote_ident(const char *name, char quote, bool split_schema, char *out,
                            size_t outlen) {
    size_t o = 0;

#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (o + 1 >= outlen)                                                                       \
            return -1;                                                                             \
        out[o++] = (c);                                                                            \
    } while (0)

    PUT(quote);
    for (const char *p = name; *p; p++) {
        if (split_schema && *p == '.') {
            PUT(quote);
            PUT('.');
            PUT(quote);
            continue;
        }
        if (*p == quote)
            PUT(quote);
        PUT(*p);
    }
    PUT(quote);
#undef PUT
    out[o] = '\0';
    return 0;
}

/* A growing SQL text. Appends silently stop on allocation failure, which
 * sql_done() then reports. */
typedef struct sqlbuf {
    char *text;
    size_t len, cap;
    bool failed;
} sqlbuf;

static void sql_add(sqlbuf *b, const char *piece) {
    size_t n = strlen(piece);
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->text, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->text = p;
        b->cap = cap;
    }
    memcpy(b->text + b->len, piece, n + 1);
    b->len += n;
}

static void sql_ident(sqlbuf *b, const char *name, char quote, bool split_schema) {
    char ident[300];
    if (cv_transfer_quote_ident(name, quote, split_schema, ident, sizeof(ident)) != 0)
        b->failed = true;
    else
        sql_add(b, ident);
}

/* Returns the text (caller frees with free()), or NULL if building failed. */
static char *sql_done(sqlbuf *b) {
    if (b->failed || !b->text) {
        free(b->text);
        return NULL;
    }
    return b->text;
}

static bool is_key(const cv_load_spec *load, const char *name) {
    for (int i = 0; i < load->nkeys; i++)
        if (strcmp(load->keys[i], name) == 0)
            return true;
    return false;
}

/* "a", "b", "c": the origin's columns, quoted, optionally each prefixed. */
static void sql_columns(sqlbuf *b, const cv_odbc_stmt *origin, char quote, const char *prefix) {
    for (int i = 0; i < cv_odbc_stmt_ncols(origin); i++) {
        if (i)
            sql_add(b, ", ");
        if (prefix)
            sql_add(b, prefix);
        sql_ident(b, cv_odbc_stmt_col(origin, i)->name, quote, false);
    }
}

/* The SET list of an upsert: every non-key column = the incoming value, as the
 * dialect spells it ("excluded.x" or "VALUES(x)"). False if all are keys. */
static bool sql_upsert_set(sqlbuf *b, const cv_odbc_stmt *origin, const cv_load_spec *load,
                           char quote, cv_dialect dialect) {
    bool any = false;
    for (int i = 0; i < cv_odbc_stmt_ncols(origin); i++) {
        const char *name = cv_odbc_stmt_col(origin, i)->name;
        if (is_key(load, name))
            continue;
        sql_add(b, any ? ", " : "");
        sql_ident(b, name, quote, false);
        if (dialect == CV_DIALECT_MARIADB) {
            sql_add(b, " = VALUES(");
            sql_ident(b, name, quote, false);
            sql_add(b, ")");
        } else {
            sql_add(b, " = excluded.");
            sql_ident(b, name, quote, false);
        }
        any = true;
    }
    return any;
}

/* ON CONFLICT (k) DO UPDATE SET ... / ON DUPLICATE KEY UPDATE ... */
static void sql_upsert_clause(sqlbuf *b, const cv_odbc_stmt *origin, const cv_load_spec *load,
                              char quote, cv_dialect dialect) {
    sqlbuf set = {0};
    bool any = sql_upsert_set(&set, origin, load, quote, dialect);

    if (set.failed)
        b->failed = true;
    if (dialect == CV_DIALECT_MARIADB) {
        sql_add(b, " ON DUPLICATE KEY UPDATE ");
        if (any) {
            sql_add(b, set.text);
        } else { /* nothing to update: a no-op assignment keeps the row */
            sql_ident(b, load->keys[0], quote, false);
            sql_add(b, " = ");
            sql_ident(b, load->keys[0], quote, false);
        }
    } else {
        sql_add(b, " ON CONFLICT (");
        for (int i = 0; i < load->nkeys; i++) {
            sql_add(b, i ? ", " : "");
            sql_ident(b, load->keys[i], quote, false);
        }
        sql_add(b, any ? ") DO UPDATE SET " : ") DO NOTHING");
        if (any)
            sql_add(b, set.text);
    }
    free(set.text);
}

/* Sets a failed stage and passes the error on. */
static cv_err fail_at(cv_transfer_result *res, const char *stage, cv_err err) {
    res->error_code = stage;
    return err ? err : CV_ERR_ODBC;
}

/* The ledger records each loaded run in the destination, in the same
 * transaction as its rows: a run whose id is there was loaded already. */
static const char ledger_ddl[] =
    "CREATE TABLE IF NOT EXISTS " CV_TRANSFER_LEDGER " ("
    "run_id VARCHAR(36) NOT NULL PRIMARY KEY, job_id VARCHAR(36) NOT NULL, "
    "destination_table VARCHAR(255) NOT NULL, rows_written BIGINT NOT NULL, "
    "committed_at VARCHAR(40) NOT NULL, watermark VARCHAR(255))";
static const char ledger_select_pg[] =
    "SELECT rows_written FROM " CV_TRANSFER_LEDGER " WHERE run_id = $1";
static const char ledger_select_odbc[] =
    "SELECT rows_written FROM " CV_TRANSFER_LEDGER " WHERE run_id = ?";
static const char ledger_insert_pg[] =
    "INSERT INTO " CV_TRANSFER_LEDGER " VALUES ($1, $2, $3, $4, $5, $6)";
static const char ledger_insert_odbc[] =
    "INSERT INTO " CV_TRANSFER_LEDGER " VALUES (?, ?, ?, ?, ?, ?)";
/* The newest committed watermark of a job (committed_at is RFC 3339 text). */
static const char ledger_watermark[] =
    "SELECT watermark FROM " CV_TRANSFER_LEDGER
    " WHERE job_id = ? ORDER BY committed_at DESC, run_id DESC LIMIT 1";
#define STAGE_TABLE "convutell_stage"

/* Where rows go: COPY through libpq for PostgreSQL, parameter arrays over ODBC
 * for everything else. The ODBC connection `catalog` reads the destination's
 * catalog and runs DDL in autocommit mode in both cases. */
typedef struct sink {
    bool copy;
    cv_dialect dialect;
    char quote;
    cv_pg *pg;
    cv_odbc_conn *catalog;
    cv_odbc_stmt *insert;
    char *sql;
    int ncols;
} sink;

static void sink_close(sink *k) {
    cv_odbc_stmt_destroy(k->insert);
    cv_odbc_disconnect(k->catalog); /* rolls back what was not committed */
    cv_pg_destroy(k->pg);           /* likewise */
    free(k->sql);
    memset(k, 0, sizeof(*k));
}

static cv_err sink_open(sink *k, const cv_transfer_spec *spec, cv_transfer_result *res,
                        char *errbuf, size_t errlen) {
    cv_err err;

    memset(k, 0, sizeof(*k));
    k->copy = strcmp(cv_transfer_method(spec), "copy") == 0;
    k->catalog = cv_odbc_connect(spec->destination_odbc, errbuf, errlen);
    if (!k->catalog)
        return fail_at(res, "destination_connect", CV_ERR_ODBC);
    k->dialect = cv_dialect_from_dbms(cv_odbc_dbms(k->catalog));
    k->quote = k->copy ? '"' : cv_odbc_quote_char(k->catalog);
    if (k->copy && !(k->pg = cv_pg_connect(spec->destination_odbc, errbuf, errlen)))
        return fail_at(res, "destination_connect", CV_ERR_ODBC);
    err = cv_odbc_exec_params(k->catalog, ledger_ddl, 0, NULL, NULL, errbuf, errlen);
    return err ? fail_at(res, "destination_ledger", err) : CV_OK;
}

/* CV_OK with the rows the run loaded, CV_ERR_NOT_FOUND if it is not recorded. */
static cv_err sink_ledger_rows(sink *k, const char *run_id, long long *rows, char *errbuf,
                               size_t errlen) {
    if (k->copy)
        return cv_pg_query_int64(k->pg, ledger_select_pg, 1, &run_id, rows, errbuf, errlen);
    return cv_odbc_query_int64(k->catalog, ledger_select_odbc, run_id, rows, errbuf, errlen);
}

/* Checks the destination table against the query's columns through the
 * catalog, or creates it from the origin's column types when it is missing.
 * Nothing has been loaded when this fails. */
static cv_err sink_prepare_table(sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                                 char *errbuf, size_t errlen) {
    const cv_load_spec *load = &spec->load;
    int ncols = cv_odbc_stmt_ncols(select), nexisting = 0;
    char(*existing)[128] = NULL;
    char type[64];
    sqlbuf ddl = {0};
    cv_err err;

    for (int i = 0; i < load->nkeys; i++) {
        bool found = false;
        for (int c = 0; c < ncols; c++)
            found = found || strcmp(cv_odbc_stmt_col(select, c)->name, load->keys[i]) == 0;
        if (!found)
            return cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                              "key column \"%s\" is not in the query's result", load->keys[i]);
    }
    err =
        cv_odbc_columns(k->catalog, spec->destination_table, &existing, &nexisting, errbuf, errlen);
    if (err == CV_OK) {
        for (int c = 0; c < ncols && !err; c++) {
            const char *name = cv_odbc_stmt_col(select, c)->name;
            bool found = false;
            for (int i = 0; i < nexisting && !found; i++)
                found = strcmp(existing[i], name) == 0;
            if (!found)
                err = cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                                 "destination table %s has no column \"%s\" (the query's "
                                 "result names it)",
                                 spec->destination_table, name);
        }
        free(existing);
        return err;
    }
    if (err != CV_ERR_NOT_FOUND)
        return err;

    /* The table does not exist: map every column before creating anything. */
    sql_add(&ddl, "CREATE TABLE ");
    sql_ident(&ddl, spec->destination_table, k->quote, true);
    sql_add(&ddl, " (");
    for (int c = 0; c < ncols; c++) {
        const cv_odbc_col *col = cv_odbc_stmt_col(select, c);
        if ((err = cv_dialect_column_type(k->dialect, col, type, sizeof(type), errbuf, errlen))) {
            free(ddl.text);
            return err;
        }
        sql_add(&ddl, c ? ", " : "");
        sql_ident(&ddl, col->name, k->quote, false);
        sql_add(&ddl, " ");
        sql_add(&ddl, type);
        if (is_key(load, col->name))
            sql_add(&ddl, " NOT NULL");
    }
    if (load->nkeys) {
        sql_add(&ddl, ", PRIMARY KEY (");
        for (int i = 0; i < load->nkeys; i++) {
            sql_add(&ddl, i ? ", " : "");
            sql_ident(&ddl, load->keys[i], k->quote, false);
        }
        sql_add(&ddl, ")");
    }
    sql_add(&ddl, ")");
    if (!sql_done(&ddl))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build CREATE TABLE");
    err = cv_odbc_exec_params(k->catalog, ddl.text, 0, NULL, NULL, errbuf, errlen);
    free(ddl.text);
    return err;
}

/* Runs DELETE FROM the destination table inside the load's transaction. */
static cv_err sink_empty_table(sink *k, const cv_transfer_spec *spec, char *errbuf, size_t errlen) {
    sqlbuf b = {0};
    cv_err err;

    sql_add(&b, "DELETE FROM ");
    sql_ident(&b, spec->destination_table, k->quote, true);
    if (!sql_done(&b))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build DELETE");
    err = k->copy ? cv_pg_exec(k->pg, b.text, errbuf, errlen)
                  : cv_odbc_exec_params(k->catalog, b.text, 0, NULL, NULL, errbuf, errlen);
    free(b.text);
    return err;
}

static cv_err sink_begin(sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                         char *errbuf, size_t errlen) {
    const cv_load_spec *load = &spec->load;
    sqlbuf b = {0};
    cv_err err;

    k->ncols = cv_odbc_stmt_ncols(select);
    if (load->mode == CV_MODE_UPSERT && !k->copy && k->dialect != CV_DIALECT_SQLITE &&
        k->dialect != CV_DIALECT_MARIADB)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                          "mode upsert is not supported for %s destinations",
                          cv_odbc_dbms(k->catalog));
    if (k->copy) {
        if ((err = cv_pg_exec(k->pg, "BEGIN", errbuf, errlen)))
            return err;
    } else if ((err = cv_odbc_begin(k->catalog, errbuf, errlen))) {
        return err;
    }
    if (load->mode == CV_MODE_REPLACE && (err = sink_empty_table(k, spec, errbuf, errlen)))
        return err;

    if (k->copy) {
        if (load->mode == CV_MODE_UPSERT) {
            /* COPY cannot upsert: stage the rows, then merge them in one INSERT. */
            sql_add(&b, "CREATE TEMP TABLE " STAGE_TABLE " (LIKE ");
            sql_ident(&b, spec->destination_table, '"', true);
            sql_add(&b, ") ON COMMIT DROP");
            if (!sql_done(&b))
                return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build SQL");
            err = cv_pg_exec(k->pg, b.text, errbuf, errlen);
            free(b.text);
            memset(&b, 0, sizeof(b));
            if (err)
                return err;
            sql_add(&b, "COPY " STAGE_TABLE " (");
        } else {
            sql_add(&b, "COPY ");
            sql_ident(&b, spec->destination_table, '"', true);
            sql_add(&b, " (");
        }
        sql_columns(&b, select, '"', NULL);
        sql_add(&b, ") FROM STDIN");
        if (!(k->sql = sql_done(&b)))
            return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build COPY");
        return cv_pg_copy_begin(k->pg, k->sql, errbuf, errlen);
    }

    sql_add(&b, "INSERT INTO ");
    sql_ident(&b, spec->destination_table, k->quote, true);
    sql_add(&b, " (");
    sql_columns(&b, select, k->quote, NULL);
    sql_add(&b, ") VALUES (");
    for (int i = 0; i < k->ncols; i++)
        sql_add(&b, i ? ", ?" : "?");
    sql_add(&b, ")");
    if (load->mode == CV_MODE_UPSERT)
        sql_upsert_clause(&b, select, load, k->quote, k->dialect);
    if (!(k->sql = sql_done(&b)))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build INSERT");
    k->insert = cv_odbc_stmt_new(k->catalog, errbuf, errlen);
    if (!k->insert)
        return CV_ERR_ODBC;
    if ((err = cv_odbc_stmt_prepare(k->insert, k->sql, errbuf, errlen)))
        return err;
    return cv_odbc_stmt_bind_block(k->insert, select, errbuf, errlen);
}

static cv_err sink_write(sink *k, const cv_odbc_stmt *select, size_t rows, char *errbuf,
                         size_t errlen) {
    cv_err err;

    if (!k->copy)
        return cv_odbc_stmt_execute_block(k->insert, rows, errbuf, errlen);
    for (size_t r = 0; r < rows; r++) {
        for (int c = 0; c < k->ncols; c++) {
            size_t len;
            const char *value = cv_odbc_stmt_value(select, r, c, &len);
            bool last = c == k->ncols - 1;
            if (cv_odbc_stmt_col(select, c)->binary)
                err = cv_pg_copy_bytea(k->pg, (const unsigned char *)value, len, last, errbuf,
                                       errlen);
            else
                err = cv_pg_copy_field(k->pg, value, len, last, errbuf, errlen);
            if (err)
                return err;
        }
    }
    return CV_OK;
}

/* Merges the staged rows of a PostgreSQL upsert into the destination table. */
static cv_err merge_stage(sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                          char *errbuf, size_t errlen) {
    sqlbuf b = {0};
    cv_err err;

    sql_add(&b, "INSERT INTO ");
    sql_ident(&b, spec->destination_table, '"', true);
    sql_add(&b, " (");
    sql_columns(&b, select, '"', NULL);
    sql_add(&b, ") SELECT ");
    sql_columns(&b, select, '"', NULL);
    sql_add(&b, " FROM " STAGE_TABLE);
    sql_upsert_clause(&b, select, &spec->load, '"', CV_DIALECT_POSTGRES);
    if (!sql_done(&b))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build the merge");
    err = cv_pg_exec(k->pg, b.text, errbuf, errlen);
    free(b.text);
    return err;
}

/* Ends the load, records the run in the ledger and commits. CV_ERR_CONFLICT if
 * another delivery of the same run committed first (nothing of ours stays). */
static cv_err sink_commit(sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                          long long rows_read, const char *watermark, long long *rows_written,
                          char *errbuf, size_t errlen) {
    char rows_text[24], now[CV_TIME_RFC3339_LEN], state[6];
    const char *values[6];
    cv_err err;

    *rows_written = rows_read;
    if (k->copy && (err = cv_pg_copy_end(k->pg, rows_written, errbuf, errlen)))
        return err;
    if (k->copy && spec->load.mode == CV_MODE_UPSERT &&
        (err = merge_stage(k, spec, select, errbuf, errlen)))
        return err;
    snprintf(rows_text, sizeof(rows_text), "%lld", *rows_written);
    cv_time_format(cv_time_now_ms(), now, sizeof(now));
    values[0] = spec->run_id;
    values[1] = spec->job_id;
    values[2] = spec->destination_table;
    values[3] = rows_text;
    values[4] = now;
    values[5] = watermark && watermark[0] ? watermark : NULL;
    err = k->copy ? cv_pg_exec_params(k->pg, ledger_insert_pg, 6, values, state, errbuf, errlen)
                  : cv_odbc_exec_params(k->catalog, ledger_insert_odbc, 6, values, state, errbuf,
                                        errlen);
    if (err)
        return strncmp(state, "23", 2) == 0 ? CV_ERR_CONFLICT : err;
    return k->copy ? cv_pg_exec(k->pg, "COMMIT", errbuf, errlen)
                   : cv_odbc_commit(k->catalog, errbuf, errlen);
}

/* The user's query without trailing white space and semicolons, so that it
 * can be wrapped as a derived table. Caller frees with free(). */
static char *bare_query(const char *query) {
    size_t n = strlen(query);
    char *out;
    while (n && (query[n - 1] == ';' || query[n - 1] == ' ' || query[n - 1] == '\n' ||
                 query[n - 1] == '\t' || query[n - 1] == '\r'))
        n--;
    out = malloc(n + 1);
    if (out) {
        memcpy(out, query, n);
        out[n] = '\0';
    }
    return out;
}

/* Runs the origin query. For an incremental job it first finds the highest
 * watermark value now in the origin (hi) and then selects the rows with
 * lo <= value < hi, lo being the watermark the destination's ledger holds.
 * Rows at hi wait for the next run: rows that share a value with the last ones
 * loaded can still arrive, and [lo, hi) ranges never overlap, so nothing is
 * loaded twice and nothing that shares a boundary value is skipped. */
static cv_err open_origin(const cv_transfer_spec *spec, cv_odbc_stmt *select, sink *k,
                          char *watermark, size_t wmlen, char *errbuf, size_t errlen) {
    char lo[256] = "", ident[300];
    bool lo_null = true, hi_null = true;
    const char *params[2];
    cv_odbc_col type;
    sqlbuf b = {0};
    char *query = NULL;
    size_t len;
    int n = 0;
    cv_err err;

    watermark[0] = '\0';
    if (!spec->load.watermark[0])
        return cv_odbc_stmt_exec(select, spec->query, errbuf, errlen);
    err = cv_odbc_query_text(k->catalog, ledger_watermark, spec->job_id, lo, sizeof(lo), &lo_null,
                             errbuf, errlen);
    if (err && err != CV_ERR_NOT_FOUND)
        return err;
    query = bare_query(spec->query);
    if (!query ||
        cv_transfer_quote_ident(spec->load.watermark, cv_odbc_quote_char(cv_odbc_stmt_conn(select)),
                                false, ident, sizeof(ident)) != 0) {
        free(query);
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build the watermark query");
    }
    sql_add(&b, "SELECT MAX(");
    sql_add(&b, ident);
    sql_add(&b, ") FROM (");
    sql_add(&b, query);
    sql_add(&b, ") cv_src");
    if (!sql_done(&b)) {
        free(query);
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build the watermark query");
    }
    err = cv_odbc_stmt_exec(select, b.text, errbuf, errlen);
    free(b.text);
    memset(&b, 0, sizeof(b));
    if (!err) {
        size_t rows = 0;
        err = cv_odbc_stmt_fetch_block(select, &rows, errbuf, errlen);
        if (!err) {
            const char *v = cv_odbc_stmt_value(select, 0, 0, &len);
            type = *cv_odbc_stmt_col(select, 0);
            hi_null = v == NULL;
            snprintf(watermark, wmlen, "%s", v ? v : "");
        }
    }
    if (err == CV_ERR_NOT_FOUND)
        err = CV_OK;
    cv_odbc_stmt_close(select);
    if (err) {
        char why[512];
        snprintf(why, sizeof(why), "%s", errbuf ? errbuf : "");
        free(query);
        return cv_err_set(errbuf, errlen, err, "watermark column %s: %s", spec->load.watermark,
                          why);
    }
    if (hi_null) /* no rows at all: keep the old watermark */
        snprintf(watermark, wmlen, "%s", lo_null ? "" : lo);

    sql_add(&b, "SELECT * FROM (");
    sql_add(&b, query);
    sql_add(&b, ") cv_src WHERE ");
    if (hi_null) {
        sql_add(&b, "1 = 0");
    } else {
        if (!lo_null) {
            sql_add(&b, ident);
            sql_add(&b, " >= ? AND ");
            params[n++] = lo;
        }
        sql_add(&b, ident);
        sql_add(&b, " < ?");
        params[n++] = watermark;
    }
    free(query);
    if (!sql_done(&b))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "cannot build the incremental query");
    err = n ? cv_odbc_stmt_exec_params(select, b.text, n, params, &type, errbuf, errlen)
            : cv_odbc_stmt_exec(select, b.text, errbuf, errlen);
    free(b.text);
    return err;
}

/* PostgreSQL to PostgreSQL: the origin's `COPY (query) TO STDOUT` feeds the
 * destination's COPY FROM STDIN as it comes, in text format, without parsing a
 * value. A reader thread takes rows from the origin into chunks while this
 * thread sends full chunks to the destination, so reading and writing overlap
 * the way two processes joined by a pipe do. Rows are counted by their
 * terminating newlines (COPY escapes the newlines inside values). */
#define THROUGH_CHUNK (1u << 20)
#define THROUGH_CHUNKS 4

typedef struct through_state {
    cv_pg *src;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    char *chunk[THROUGH_CHUNKS];
    size_t cap[THROUGH_CHUNKS], used[THROUGH_CHUNKS];
    int head, count; /* ring of full chunks waiting to be sent */
    bool done, stop;
    cv_err err;
    char why[512];
} through_state;

/* Passes the reader's current chunk (if it holds anything) to the sender and,
 * with `last`, the reader's final status. Waits while no chunk is free.
 * Returns false if the sender asked the reader to stop. */
static bool hand_over(through_state *t, int *slot, bool last, cv_err err, const char *why) {
    pthread_mutex_lock(&t->lock);
    /* The sender owns `count` full chunks from `head`; the reader owns the one
     * after them, so handing over needs a free chunk beyond that. */
    while (t->count >= THROUGH_CHUNKS - 1 && !t->stop)
        pthread_cond_wait(&t->changed, &t->lock);
    if (t->stop) {
        pthread_mutex_unlock(&t->lock);
        return false;
    }
    if (t->used[*slot]) {
        t->count++;
        *slot = (*slot + 1) % THROUGH_CHUNKS;
        t->used[*slot] = 0; /* the next free slot (the sender emptied it) */
    }
    if (last) {
        t->done = true;
        t->err = err;
        snprintf(t->why, sizeof(t->why), "%s", why);
    }
    pthread_cond_broadcast(&t->changed);
    pthread_mutex_unlock(&t->lock);
    return true;
}

static void *through_reader(void *arg) {
    through_state *t = arg;
    int slot = 0;
    char why[512] = "";

    for (;;) {
        const char *data;
        size_t len;
        cv_err err = cv_pg_copy_out_next(t->src, &data, &len, why, sizeof(why));

        if (err) {
            hand_over(t, &slot, true, err == CV_ERR_NOT_FOUND ? CV_OK : err, why);
            return NULL;
        }
        if (t->used[slot] + len > t->cap[slot] && t->used[slot] > 0 &&
            !hand_over(t, &slot, false, CV_OK, ""))
            return NULL;
        if (len > t->cap[slot]) { /* one row larger than a chunk */
            char *grown = realloc(t->chunk[slot], len);
            if (!grown) {
                hand_over(t, &slot, true, CV_ERR_NOMEM, "out of memory for a large row");
                return NULL;
            }
            t->chunk[slot] = grown;
            t->cap[slot] = len;
        }
        memcpy(t->chunk[slot] + t->used[slot], data, len);
        t->used[slot] += len;
        if (t->used[slot] >= t->cap[slot] / 2 && !hand_over(t, &slot, false, CV_OK, ""))
            return NULL;
    }
}

static cv_err copy_through(const cv_transfer_spec *spec, sink *k, cv_transfer_result *res,
                           char *errbuf, size_t errlen) {
    through_state t;
    pthread_t reader;
    bool started = false;
    char *query = NULL, *sql = NULL;
    size_t cap;
    cv_err err = CV_OK;

    memset(&t, 0, sizeof(t));
    pthread_mutex_init(&t.lock, NULL);
    pthread_cond_init(&t.changed, NULL);
    t.src = cv_pg_connect(spec->origin_odbc, errbuf, errlen);
    if (!t.src) {
        err = fail_at(res, "origin_connect", CV_ERR_ODBC);
        goto out;
    }
    for (int i = 0; i < THROUGH_CHUNKS; i++) {
        if (!(t.chunk[i] = malloc(THROUGH_CHUNK))) {
            err = fail_at(res, "origin_fetch", cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "oom"));
            goto out;
        }
        t.cap[i] = THROUGH_CHUNK;
    }
    query = bare_query(spec->query);
    cap = query ? strlen(query) + 32 : 0;
    sql = query ? malloc(cap) : NULL;
    if (!sql) {
        err = fail_at(res, "origin_query", cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "oom"));
        goto out;
    }
    snprintf(sql, cap, "COPY (%s) TO STDOUT", query);
    if ((err = cv_pg_copy_out_begin(t.src, sql, errbuf, errlen))) {
        err = fail_at(res, "origin_query", err);
        goto out;
    }
    if (pthread_create(&reader, NULL, through_reader, &t) != 0) {
        err = fail_at(res, "origin_fetch",
                      cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot start the reader thread"));
        goto out;
    }
    started = true;
    for (;;) {
        const char *data;
        size_t len;
        int slot;

        pthread_mutex_lock(&t.lock);
        while (t.count == 0 && !t.done)
            pthread_cond_wait(&t.changed, &t.lock);
        if (t.count == 0) { /* done and drained */
            err = t.err;
            if (err)
                cv_err_set(errbuf, errlen, err, "%s", t.why);
            pthread_mutex_unlock(&t.lock);
            if (err)
                err = fail_at(res, "origin_fetch", err);
            break;
        }
        slot = t.head;
        pthread_mutex_unlock(&t.lock);

        /* The slot is ours until we hand it back: the reader fills other ones. */
        data = t.chunk[slot];
        len = t.used[slot];
        for (const char *nl = data; (nl = memchr(nl, '\n', len - (size_t)(nl - data))); nl++)
            res->rows_read++;
        err = cv_pg_copy_raw(k->pg, data, len, errbuf, errlen);

        pthread_mutex_lock(&t.lock);
        t.used[slot] = 0;
        t.head = (t.head + 1) % THROUGH_CHUNKS;
        t.count--;
        pthread_cond_broadcast(&t.changed);
        pthread_mutex_unlock(&t.lock);
        if (err) {
            err = fail_at(res, "destination_insert", err);
            break;
        }
        if (spec->progress &&
            (err = spec->progress(spec->progress_ctx, res->rows_read, errbuf, errlen))) {
            err = fail_at(res, err == CV_ERR_TIMEOUT ? "timed_out" : "cancelled", err);
            break;
        }
    }
out:
    if (started) {
        bool finished;
        pthread_mutex_lock(&t.lock);
        finished = t.done;
        t.stop = true;
        pthread_cond_broadcast(&t.changed);
        pthread_mutex_unlock(&t.lock);
        /* A reader blocked in PQgetCopyData wakes when the origin's COPY is
         * cancelled, even if the query has produced nothing for a while. */
        if (!finished)
            cv_pg_cancel(t.src);
        pthread_join(reader, NULL);
    }
    cv_pg_destroy(t.src);
    for (int i = 0; i < THROUGH_CHUNKS; i++)
        free(t.chunk[i]);
    pthread_cond_destroy(&t.changed);
    pthread_mutex_destroy(&t.lock);
    free(sql);
    free(query);
    return err;
}

/* True if the connection string names MariaDB's (or MySQL's) ODBC driver. */
static bool is_mariadb_odbc(const char *odbc) {
    const char *driver = strcasestr(odbc, "driver=");
    if (!driver)
        return false;
    driver += 7;
    return strncasecmp(driver, "{maria", 6) == 0 || strncasecmp(driver, "maria", 5) == 0 ||
           strncasecmp(driver, "{mysql", 6) == 0 || strncasecmp(driver, "mysql", 5) == 0 ||
           strcasestr(driver, "libmaodbc") != NULL;
}

/* Makes psqlODBC, MariaDB's driver and sqliteodbc stream a result instead of
 * reading it all into memory first (unless the user chose otherwise). */
static char *streaming_origin(const char *odbc, size_t block_rows) {
    size_t len = strlen(odbc) + 64;
    char *out = malloc(len);
    if (!out)
        return NULL;
    const char *sep = odbc[0] && odbc[strlen(odbc) - 1] != ';' ? ";" : "";
    if (cv_pg_is_postgres_odbc(odbc) && !strcasestr(odbc, "UseDeclareFetch"))
        snprintf(out, len, "%s%sUseDeclareFetch=1;Fetch=%zu", odbc, sep, block_rows);
    else if (is_mariadb_odbc(odbc) && !strcasestr(odbc, "NO_CACHE"))
        snprintf(out, len, "%s%sNO_CACHE=1", odbc, sep); /* stream, forward-only */
    else if (strcasestr(odbc, "sqlite") && !strcasestr(odbc, "StepAPI"))
        snprintf(out, len, "%s%sStepAPI=1", odbc, sep); /* sqlite3_step, not get_table */
    else
        snprintf(out, len, "%s", odbc);
    return out;
}

const char *cv_transfer_method(const cv_transfer_spec *spec) {
    return cv_pg_is_postgres_odbc(spec->destination_odbc) ? "copy" : "odbc";
}

cv_err cv_transfer_run(const cv_transfer_spec *spec, cv_transfer_result *res, char *errbuf,
                       size_t errlen) {
    cv_odbc_conn *origin = NULL;
    cv_odbc_stmt *select = NULL;
    char *origin_odbc = NULL;
    long long rows = 0;
    bool through;
    sink k;
    cv_err err;

    memset(res, 0, sizeof(*res));
    if ((err = sink_open(&k, spec, res, errbuf, errlen)))
        goto out;
    /* A run already in the ledger was loaded by an earlier delivery. */
    err = sink_ledger_rows(&k, spec->run_id, &rows, errbuf, errlen);
    if (err == CV_OK) {
        res->already_loaded = true;
        res->rows_written = rows;
        goto out;
    }
    if (err != CV_ERR_NOT_FOUND) {
        err = fail_at(res, "destination_ledger", err);
        goto out;
    }

    origin_odbc = streaming_origin(spec->origin_odbc, 1024);
    if (!origin_odbc) {
        err = fail_at(res, "origin_connect", cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "oom"));
        goto out;
    }
    origin = cv_odbc_connect(origin_odbc, errbuf, errlen);
    if (!origin) {
        err = fail_at(res, "origin_connect", CV_ERR_ODBC);
        goto out;
    }
    through = k.copy && cv_pg_is_postgres_odbc(spec->origin_odbc) && !spec->load.watermark[0];
    select = cv_odbc_stmt_new(origin, errbuf, errlen);
    if (!select) {
        err = fail_at(res, "origin_query", CV_ERR_ODBC);
        goto out;
    }
    if (through) {
        /* Only the columns are needed from ODBC; the rows come by COPY. */
        char *query = bare_query(spec->query);
        size_t cap = query ? strlen(query) + 48 : 0;
        char *probe = query ? malloc(cap) : NULL;
        if (probe)
            snprintf(probe, cap, "SELECT * FROM (%s) cv_src WHERE 1 = 0", query);
        err = probe ? cv_odbc_stmt_exec(select, probe, errbuf, errlen)
                    : cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "oom");
        free(probe);
        free(query);
    } else {
        err = open_origin(spec, select, &k, res->watermark, sizeof(res->watermark), errbuf, errlen);
    }
    if (err) {
        err = fail_at(res, "origin_query", err);
        goto out;
    }
    if (cv_odbc_stmt_ncols(select) == 0) {
        err =
            fail_at(res, "origin_query",
                    cv_err_set(errbuf, errlen, CV_ERR_INVALID, "the query returned no result set"));
        goto out;
    }
    if ((err = sink_prepare_table(&k, spec, select, errbuf, errlen))) {
        err = fail_at(res, "destination_schema", err);
        goto out;
    }
    if ((err = sink_begin(&k, spec, select, errbuf, errlen))) {
        err = fail_at(res, "destination_prepare", err);
        goto out;
    }
    if (through && (err = copy_through(spec, &k, res, errbuf, errlen)))
        goto out;
    for (; !through;) {
        size_t block = 0;
        err = cv_odbc_stmt_fetch_block(select, &block, errbuf, errlen);
        if (err == CV_ERR_NOT_FOUND)
            break;
        if (err) {
            err = fail_at(res, "origin_fetch", err);
            goto out;
        }
        res->rows_read += (int64_t)block;
        if ((err = sink_write(&k, select, block, errbuf, errlen))) {
            err = fail_at(res, "destination_insert", err);
            goto out;
        }
        if (spec->progress &&
            (err = spec->progress(spec->progress_ctx, res->rows_read, errbuf, errlen))) {
            err = fail_at(res, err == CV_ERR_TIMEOUT ? "timed_out" : "cancelled", err);
            goto out;
        }
    }
    err = sink_commit(&k, spec, select, res->rows_read, res->watermark, &rows, errbuf, errlen);
    if (err == CV_ERR_CONFLICT) {
        /* Another delivery of this run won the race; ours is rolled back. */
        sink_close(&k);
        if ((err = sink_open(&k, spec, res, errbuf, errlen)) ||
            (err = sink_ledger_rows(&k, spec->run_id, &rows, errbuf, errlen))) {
            err = fail_at(res, "destination_ledger", err);
            goto out;
        }
        res->already_loaded = true;
    } else if (err) {
        err = fail_at(res, "destination_commit", err);
        goto out;
    }
    res->rows_written = rows;
out:
    cv_odbc_stmt_destroy(select);
    cv_odbc_disconnect(origin);
    sink_close(&k);
    free(origin_odbc);
    return err;
}
