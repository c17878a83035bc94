/*
 * cv_origin.h - the origin of a transfer (cv_origin.c): its connection string
 * made to stream, its session made read-only, and its query run (for an
 * incremental or batched job, within the watermark window and past the last
 * checkpoint) under a watchdog that calls the progress hook every second and
 * cancels the query when the hook refuses.
 *
 * Called on the transfer's thread; the watchdog is a thread of its own for
 * the time of cv_origin_open().
 */
#ifndef CV_ORIGIN_H
#define CV_ORIGIN_H

#include "cv_err.h"
#include "cv_odbc.h"
#include "cv_odbcstmt.h"
#include "cv_sink.h"
#include "cv_transfer.h"

#include <stdbool.h>
#include <stddef.h>

/* Makes psqlODBC, MariaDB's driver and sqliteodbc stream a result instead of
 * reading it all into memory first (unless the user chose otherwise). */
char *cv_origin_streaming(const char *odbc, size_t block_rows);

/* Makes the origin's session read-only before its query runs, and refuses a
 * query of more than one statement (the second could undo the first's
 * setting), so that a transfer's query cannot change the origin. */
cv_err cv_origin_read_only(cv_odbc_conn *origin, const char *query, char *errbuf, size_t errlen);

/* Runs open_origin() (or only describes the query, for a native origin) under
 * a watchdog. */
cv_err cv_origin_open(const cv_transfer_spec *spec, cv_odbc_stmt *select, cv_sink *k,
                      const cv_sink_resume *resume, bool describe_only, cv_transfer_result *res,
                      char *errbuf, size_t errlen);

#endif
