/*
 * cv_spool.h - documents written to one collection behind the caller's back:
 * cv_spool_add() queues a copy and returns at once; a thread of the spool's
 * own inserts what has gathered, up to 100 documents an unordered insert,
 * at least every flush_ms, retrying (every second, logging) while the store
 * does not answer. For records a request must leave but need not wait for
 * (the API's audit trail): the request pays a copy, not a round trip.
 *
 * Nothing is dropped: a full queue (max_queued documents) makes cv_spool_add()
 * wait for room, and cv_spool_destroy() writes what is left first (giving up,
 * and logging how many, only when the store stays unreachable for
 * give_up_ms). A process killed outright loses what was queued, at most
 * flush_ms of records at the rate they came.
 *
 * Every function may be called from any thread.
 */
#ifndef CV_SPOOL_H
#define CV_SPOOL_H

#include "cv_err.h"
#include "cv_mongo.h"

#include <stddef.h>
#include <stdint.h>

typedef struct cv_spool cv_spool;

/* Starts the spool's thread, writing into collection (copied) through m (not
 * owned; must outlive the spool). NULL with the reason in errbuf. */
cv_spool *cv_spool_new(cv_mongo *m, const char *collection, int64_t flush_ms, size_t max_queued,
                       int64_t give_up_ms, char *errbuf, size_t errlen);

/* Queues a copy of doc (which has its _id: a retried batch must not write it
 * twice). CV_ERR_NOMEM. */
cv_err cv_spool_add(cv_spool *s, const bson_t *doc);

/* Waits until everything queued before the call is written (tests, and a
 * clean stop); false after timeout_ms. */
bool cv_spool_flush(cv_spool *s, int64_t timeout_ms);

/* Writes what is queued, stops the thread and frees. Accepts NULL. */
void cv_spool_destroy(cv_spool *s);

#endif
