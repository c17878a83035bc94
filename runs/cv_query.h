/*
 * cv_query.h - the SQL console's query runs in the store: `query_runs`, one
 * document per statement run from the console (_id = its id), and
 * `query_rows`, the rows of a result too large to sit in that document, in
 * chunks (_id = "<run id>:<seq>", seq from 0, CV_QUERY_CHUNK_ROWS rows or
 * CV_QUERY_CHUNK_BYTES at most each).
 *
 * The API inserts a query run "queued" with what to run (the connection's id,
 * the statement, its parameters and limits, who asked, and reply_to: the API
 * process that waits for its end) and publishes a job message of kind
 * "query" naming it on convutell.queries. A worker claims it (queued ->
 * running, cv_query_claim()), runs it, and ends it (running -> a final
 * status with its columns and rows, cv_query_end()). A cancel before the
 * claim ends it at once; during the run it sets cancel_requested, which the
 * worker reads (cv_query_cancels()). Each write names the state it expects,
 * so a run is claimed once and ended once.
 *
 * Statuses: "queued", "running", and the final "succeeded", "failed",
 * "cancelled", "timed_out". A result: `columns` [{name, type, nullable}],
 * `rows` (each row a document of its values keyed "0", "1", ...: FerretDB
 * keeps no array directly in an array) when it fits in one chunk, else
 * `chunks`;
 * `row_count`, `truncated`, `rows_affected` (a statement without a result),
 * `elapsed_ms`, `error` {code, message}.
 *
 * Every function may be called from any thread.
 */
#ifndef CV_QUERY_H
#define CV_QUERY_H

#include "cv_err.h"
#include "cv_mongo.h"
#include "cv_store.h" /* CV_COLL_QUERY_RUNS, CV_COLL_QUERY_ROWS */

#include <stdbool.h>
#include <stdint.h>

#define CV_QUERY_ROWS_DEFAULT 1000            /* max_rows when the request says none */
#define CV_QUERY_ROWS_MAX 1000000             /* highest max_rows */
#define CV_QUERY_BYTES_MAX (16 * 1024 * 1024) /* of the values of one result */
#define CV_QUERY_CHUNK_ROWS 1000              /* rows of one chunk */
#define CV_QUERY_CHUNK_BYTES (1024 * 1024)    /* values' bytes of one chunk, about */
#define CV_QUERY_TIMEOUT_DEFAULT 30           /* timeout_seconds when none is given */
#define CV_QUERY_TIMEOUT_MAX 300              /* highest timeout_seconds */
#define CV_QUERY_PARAMS_MAX 8                 /* parameters of one statement */
#define CV_QUERY_SQL_MAX (256 * 1024)         /* bytes of one statement */
#define CV_QUERY_LOST_MS (60 * INT64_C(1000)) /* past its deadline: the worker is gone */

/* The chunk id of seq into buf. */
#define CV_QUERY_CHUNK_ID_LEN 48
void cv_query_chunk_id(const char *run_id, int64_t seq, char buf[CV_QUERY_CHUNK_ID_LEN]);

/* Claims query run id for worker: queued -> running, with started_at and
 * deadline_at (now + its timeout). On CV_OK *doc is the run as stored before
 * the claim (the caller frees it). CV_ERR_CONFLICT when it is not queued (a
 * cancel came first, or another delivery claimed it), CV_ERR_NOT_FOUND when
 * there is no such run. */
cv_err cv_query_claim(cv_mongo *m, const char *id, const char *worker, bson_t **doc, char *errbuf,
                      size_t errlen);

/* Ends a running query run with the members of `set` (status and result),
 * ended_at added. CV_ERR_CONFLICT when it is not running any more. */
cv_err cv_query_end(cv_mongo *m, const char *id, const bson_t *set, char *errbuf, size_t errlen);

/* Asks for a cancel: a queued run is cancelled at once (*now = true), a
 * running one gets cancel_requested (*now = false). CV_ERR_CONFLICT when it
 * has ended. */
cv_err cv_query_cancel(cv_mongo *m, const char *id, const char *by, bool *now, char *errbuf,
                       size_t errlen);

/* Ends a run that stayed `status` ("queued" or "running") long past its
 * deadline as failed, error code "worker_lost" with `message`.
 * CV_ERR_CONFLICT when it is not in that status any more. */
cv_err cv_query_give_up(cv_mongo *m, const char *id, const char *status, const char *message,
                        char *errbuf, size_t errlen);

/* Of the n running runs ids, marks in wanted[i] those whose cancel was asked for. */
cv_err cv_query_cancels(cv_mongo *m, const char *const *ids, size_t n, bool *wanted, char *errbuf,
                        size_t errlen);

/* Whether a status is final. */
bool cv_query_final(const char *status);

#endif
