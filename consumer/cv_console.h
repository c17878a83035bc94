/*
 * cv_console.h - the worker's side of the SQL console (cv_console.c).
 *
 * Beside its jobs, every worker consumes convutell.queries in the consumer
 * group "convutell-console": job messages of kind "query", each naming a
 * query run the API stored (runs/cv_query.h). Queries do not wait behind a
 * queue of transfers: a thread of the console's own takes them in, and up to
 * CV_CONSOLE_SLOTS run at once, each on a thread of its own; the others wait
 * in the order they came (fetching pauses while 64 wait). An offset is
 * stored when its query ended, so a query taken in and not started when the
 * worker stops is not lost to a restart unless a later one of its partition
 * ended first; a query no worker ends is given up by the API (cv_query.h). A query is claimed in
 * the store, run (cv_querysql.h), ended in the store with its result, and a reply naming it goes to
 * convutell.replies, keyed by the API process that waits for it.
 *
 * The console's thread also watches the queries running: one past its time
 * limit is stopped (timed_out), one whose cancel was asked for is stopped
 * (cancelled; the store is asked twice a second). A message that is not a
 * query is logged and skipped.
 *
 * Made and destroyed by the worker's main thread; it borrows the worker's
 * runner (store, producer, connection cache, ODBC pool), which must outlive it.
 */
#ifndef CV_CONSOLE_H
#define CV_CONSOLE_H

#include "cv_attempt.h"
#include "cv_err.h"
#include "cv_kafka.h"

#define CV_CONSOLE_SLOTS 4
#define CV_CONSOLE_GROUP CV_GROUP_CONSOLE

typedef struct cv_console cv_console;

/* Joins the group and starts the console's thread. NULL with the reason in
 * errbuf. */
cv_console *cv_console_new(cv_runner *r, char *errbuf, size_t errlen);

/* Stops: the queries running are stopped (and end "cancelled", saying the
 * worker stopped), their threads joined, the group left. Accepts NULL. */
void cv_console_destroy(cv_console *c);

#endif
