/*
 * cv_odbcpool.h - connections a worker keeps open between small jobs.
 *
 * A `sql` job connects, runs a few statements and disconnects. For a short
 * job the connect is most of its work: loading the driver and opening the
 * file for SQLite, a new server process for PostgreSQL. The pool keeps the
 * connection a job is done with, once cv_odbc_reset() has brought it back to
 * the state of a new one, and hands it to the next job that asks for the
 * same connection string (the same server, database and credentials). A
 * connection that cannot be reset (another DBMS, a PRAGMA on SQLite, a
 * failed reset) is closed as before.
 *
 * Bounded: at most `max_idle` connections wait, the oldest closed first, and
 * none waits much longer than `idle_ms` (closed by the next take, give or
 * sweep). A max_idle of 0 turns the pool off.
 *
 * Every function may be called from any thread; a connection belongs to the
 * thread that took it until it is given back.
 */
#ifndef CV_ODBCPOOL_H
#define CV_ODBCPOOL_H

#include "cv_odbc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cv_odbcpool cv_odbcpool;

#define CV_ODBCPOOL_MAX 64 /* max_idle is capped at this */

/* NULL on NOMEM. Free with cv_odbcpool_destroy(). */
cv_odbcpool *cv_odbcpool_new(int max_idle, int64_t idle_ms);

/* Closes every waiting connection and frees the pool. Accepts NULL. */
void cv_odbcpool_destroy(cv_odbcpool *p);

/* A connection for connstr: a waiting one if there is one the driver does
 * not know to be broken (*reused = true), else a new one (cv_odbc_connect()).
 * NULL with the reason in errbuf. Give it back with cv_odbcpool_give(). */
cv_odbc_conn *cv_odbcpool_take(cv_odbcpool *p, const char *connstr, bool *reused, char *errbuf,
                               size_t errlen);

/* Gives back a connection taken for connstr: kept if `reusable` and
 * cv_odbc_reset(conn, settings_changed) succeeds, closed otherwise (a
 * connection that failed mid-job is given back with reusable = false).
 * Accepts NULL. */
void cv_odbcpool_give(cv_odbcpool *p, const char *connstr, cv_odbc_conn *conn, bool reusable,
                      bool settings_changed);

/* Closes the connections that waited longer than idle_ms; looks at most once
 * a second, so a worker's loop may call it on every turn. */
void cv_odbcpool_sweep(cv_odbcpool *p);

/* Connections waiting now (for the tests). */
size_t cv_odbcpool_idle(cv_odbcpool *p);

#endif
