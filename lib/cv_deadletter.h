/*
 * cv_deadletter.h - copies a message no service can use to the dead-letter
 * topic (convutell.jobs.dlq), so that it stops nothing and is not lost.
 *
 * Key and value go as they came, with headers naming the reason and the
 * source (convutell.reason, convutell.source.topic, .partition, .offset) and
 * the process that sent it. A value over CV_DEADLETTER_WHOLE_MAX bytes, or
 * one the producer or broker refuses whole, goes as its first
 * CV_DEADLETTER_HEAD_BYTES bytes with convutell.truncated,
 * convutell.source.size and convutell.source.sha256 headers: the broker keeps
 * the original at its source offset until retention removes it.
 *
 * Every function may be called from any thread.
 */
#ifndef CV_DEADLETTER_H
#define CV_DEADLETTER_H

#include "cv_err.h"
#include "cv_kafka.h"

#include <stdbool.h>
#include <stddef.h>

#define CV_DEADLETTER_WHOLE_MAX (512 * 1024)
#define CV_DEADLETTER_HEAD_BYTES 4096

/* One message to dead-letter, with its reason; `whole`, `err` and `why` are
 * set by cv_deadletter_send_many(). */
typedef struct cv_deadletter {
    const cv_kafka_msg *msg;
    const char *reason;
    bool whole;    /* out: it went whole (else as its head) */
    cv_err err;    /* out: CV_OK once the broker has it */
    char why[256]; /* out: why not */
} cv_deadletter;

/* Sends n messages to the dead-letter topic in batches (one wait for the
 * broker per round, not per message), each with its `reason` (escaped as
 * cv_log_escape() does: one line) and `by_header: by` (the sending process,
 * e.g. "convutell.worker": its id). Those that fail are tried twice more,
 * backing off 0.4 and 0.8 s, as their heads after a failure whole. Returns
 * the first item's error, or CV_ERR_NOMEM. */
cv_err cv_deadletter_send_many(cv_kafka_producer *p, cv_deadletter *items, size_t n,
                               const char *by_header, const char *by);

/* The same for one message: *whole (may be NULL) says which went; CV_OK, or
 * the last send's error with its reason in errbuf. */
cv_err cv_deadletter_send(cv_kafka_producer *p, const cv_kafka_msg *msg, const char *reason,
                          const char *by_header, const char *by, bool *whole, char *errbuf,
                          size_t errlen);

/* The SHA-256 of data as 64 lowercase hex digits ("" if it cannot be made). */
void cv_deadletter_sha256(const void *data, size_t len, char out[65]);

#endif
