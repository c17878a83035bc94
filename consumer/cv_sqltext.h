/*
 * cv_sqltext.h - the SQL text of a transfer, built apart from any database so
 * that the unit tests read it whole: quoted identifiers, the origin's query
 * wrapped for a watermark window, and the destination's statements (CREATE
 * TABLE, COPY, LOAD DATA, INSERT with its upsert clause, the stage table of
 * an upsert and its merge, DELETE).
 *
 * Column names come from the origin's result and are always quoted for the
 * destination; values are never pasted into SQL (parameters carry them).
 * Every function returns new text the caller frees with free(), or NULL when
 * out of memory (or an identifier is too long to quote). No state: any
 * thread may call any function.
 */
#ifndef CV_SQLTEXT_H
#define CV_SQLTEXT_H

#include "cv_buf.h"
#include "cv_dialect.h"
#include "cv_message.h"
#include "cv_odbc.h"
#include "cv_odbcstmt.h"

#include <stdbool.h>
#include <stddef.h>

/* The name of the temporary table an upsert through COPY or LOAD DATA stages
 * its rows in before merging them. */
#define CV_SQLTEXT_STAGE_TABLE "convutell_stage"

/* Writes the quoted form of a table or column name (split_schema: a dot
 * separates schema and name) into out, using `quote` and doubling any quote
 * character inside. Returns -1 if out is too small. */
int cv_sqltext_quote_ident(const char *name, char quote, bool split_schema, char *out,
                           size_t outlen);

/* The user's query without trailing white space and semicolons, so that it
 * can be wrapped as a derived table, and ended by a newline, so that a line
 * comment at its end does not swallow what follows it. */
char *cv_sqltext_bare_query(const char *query);

/* The rows of a bare query an incremental or batched run selects:
 *   SELECT * FROM (<query>) cv_src WHERE 1 = 1
 *     [AND 1 = 0]                        empty: no watermark value at all
 *     [AND <watermark> >= ?]             from: above the last run's watermark
 *     [AND <watermark> < ?]              watermark set (and not empty)
 *     [AND <checkpoint> > ?]             after: past the last checkpoint
 *     [ORDER BY <checkpoint>]            ordered
 * Column names come quoted; the parameters follow in that order. */
typedef struct cv_sqltext_window {
    const char *watermark;  /* quoted column, or NULL */
    bool empty, from;       /* with a watermark */
    const char *checkpoint; /* quoted column, or NULL */
    bool after, ordered;    /* with a checkpoint */
} cv_sqltext_window;
char *cv_sqltext_window_query(const char *bare_query, const cv_sqltext_window *w);

/* SELECT <head> FROM (<bare query>) cv_src<tail>: the probes of a query
 * (its columns without rows, its highest watermark). */
char *cv_sqltext_wrap(const char *head, const char *bare_query, const char *tail);

/* CREATE TABLE <table> (<col> <type>[ NOT NULL], ...[, PRIMARY KEY (keys)]):
 * types[i] is the destination type of cols[i]; key columns are NOT NULL. */
char *cv_sqltext_create_table(const char *table, const cv_odbc_col *cols, int ncols,
                              const char *const *types, const cv_load_spec *load, char quote);

/* DELETE FROM <table>. */
char *cv_sqltext_delete_all(const char *table, char quote);

/* The stage table of an upsert: PostgreSQL's CREATE TEMP TABLE ... (LIKE
 * <table>) ON COMMIT DROP, else CREATE TEMPORARY TABLE ... AS SELECT <cols>
 * FROM <table> LIMIT 0 (the columns, none of the keys: a batch may hold a key
 * twice, and the merge keeps the last). */
char *cv_sqltext_stage(const char *table, const cv_odbc_col *cols, int ncols, char quote,
                       bool postgres);

/* COPY <target> (<cols>) FROM STDIN; target already quoted. */
char *cv_sqltext_copy(const char *target, const cv_odbc_col *cols, int ncols);

/* LOAD DATA LOCAL INFILE in the text format the pump writes (tab between
 * fields, newline after rows, backslash escapes, \N for NULL); binary columns
 * come as hex into a variable and are decoded by UNHEX(). Target quoted. */
char *cv_sqltext_load_data(const char *target, const cv_odbc_col *cols, int ncols, char quote);

/* INSERT INTO <target> (<cols>) VALUES (?, ...) with, for an upsert, the
 * dialect's clause (ON CONFLICT (keys) DO UPDATE SET / DO NOTHING, or ON
 * DUPLICATE KEY UPDATE). Target quoted. */
char *cv_sqltext_insert(const char *target, const cv_odbc_col *cols, int ncols, char quote,
                        const cv_load_spec *load, cv_dialect dialect);

/* INSERT INTO <table> (<cols>) SELECT <cols> FROM the stage table, with the
 * upsert clause: the merge of staged rows. */
char *cv_sqltext_merge(const char *table, const cv_odbc_col *cols, int ncols, char quote,
                       const cv_load_spec *load, cv_dialect dialect);

#endif
