/*
 * cv_estimate.h - how many rows a transfer's query will return, as its origin
 * estimates them, for the run page's "time left": PostgreSQL's planner
 * (EXPLAIN's top node), MariaDB's (EXPLAIN of a one-table plan), SQLite's
 * count (SQLite has no planner estimate; its count reads the rows once).
 *
 * The estimate runs on a thread of its own with a connection of its own, so
 * that it never delays the transfer: the progress hook starts it once a
 * transfer has lasted long enough to report progress, and reads it when it
 * is there. Other databases give no estimate.
 *
 * cv_estimate_start() and cv_estimate_stop() on one thread (the attempt's);
 * cv_estimate_rows() on any.
 */
#ifndef CV_ESTIMATE_H
#define CV_ESTIMATE_H

#include "cv_dialect.h"

#include <stdint.h>

typedef struct cv_estimate cv_estimate;

/* Starts estimating the rows `query` returns on the origin `odbc` (both
 * copied). NULL when out of memory or when no thread could start: there will
 * be no estimate, which is not an error. */
cv_estimate *cv_estimate_start(const char *odbc, const char *query);

/* The estimate, or -1 while it is not known (not yet, or not possible). */
int64_t cv_estimate_rows(cv_estimate *e);

/* Cancels the estimate if it is still running, waits for its thread, frees
 * it. NULL is fine. */
void cv_estimate_stop(cv_estimate *e);

/* The statement that estimates the rows of `query` (one statement, as a
 * transfer's query is) in dialect d; caller frees. NULL when the dialect gives
 * no estimate or when out of memory. */
char *cv_estimate_sql(cv_dialect d, const char *query);

/* PostgreSQL: the rows of a plan's first line ("Seq Scan on t (cost=0.00..
 * 1.00 rows=100 width=4)"): 100; -1 when the line holds no row count. */
int64_t cv_estimate_plan_rows(const char *line);

#endif
