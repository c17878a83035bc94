/*
 * cv_reject.h - what a worker does with messages that are not runs of its
 * jobs (invalid, or naming no stored job): copies them to the dead-letter
 * topic with the reason (cv_deadletter.h) and records each with a
 * job.rejected event, many at a time, so that a stream of them costs a few
 * round trips to the broker rather than two per message.
 *
 * Called on the worker's main thread (cv_worker), which owns the items and
 * the runner.
 */
#ifndef CV_REJECT_H
#define CV_REJECT_H

#include "cv_attempt.h"
#include "cv_json.h"
#include "cv_kafka.h"

#include <stddef.h>

/* One rejected message and why; both borrowed. */
typedef struct cv_reject {
    const cv_kafka_msg *msg;
    const cv_verr *verr;
} cv_reject;

/* Dead-letters and reports the n messages. A message that cannot be
 * dead-lettered (three tries) is skipped with an error in the log and a
 * job.rejected event with code dead_letter_failed, never more: no message
 * stops a worker. Errors only on NOMEM. */
cv_err cv_reject_many(cv_runner *r, const cv_reject *items, size_t n, char *errbuf, size_t errlen);

#endif
