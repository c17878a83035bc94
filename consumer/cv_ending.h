/*
 * cv_ending.h - the leases of attempts that ended for good, marked "done" by
 * a thread of their own (cv_lease_end_many()), so that neither an attempt nor
 * the worker's loop waits for that write.
 *
 * Until its batch is written a lease stays "held" and the run's record is what
 * says the attempt is over (cv_lease.h); the thread takes what is queued at
 * least every CV_ENDING_DELAY_MS, well inside a lease.
 */
#ifndef CV_ENDING_H
#define CV_ENDING_H

#include "cv_mongo.h"

/* The longest an ended attempt waits before its lease is marked. */
#define CV_ENDING_DELAY_MS 200

typedef struct cv_ending cv_ending;

/* Starts the thread that marks the leases `worker` holds in `m` (borrowed:
 * both must outlive the cv_ending). NULL, with errbuf set, when out of memory
 * or threads. */
cv_ending *cv_ending_new(cv_mongo *m, const char *worker, char *errbuf, size_t errlen);

/* Queues attempt `attempt` of the run, which this worker ran to its end and
 * reported. Never blocks on the store: when the store has not taken the
 * queue for a long while and it is full, the oldest are dropped with a
 * warning (their runs are then over by their records alone). */
void cv_ending_add(cv_ending *e, const char *run_id, int attempt);

/* Writes what is queued (one try), stops the thread and frees e. NULL is a
 * no-op. */
void cv_ending_destroy(cv_ending *e);

#endif
