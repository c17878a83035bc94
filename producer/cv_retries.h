/*
 * cv_retries.h - retries held until due (cv_retries.c). A failed attempt's
 * next one goes to convutell.jobs.retry with its not_before; the scheduler
 * reads that topic, holds each message in memory until it is due and then
 * publishes it to convutell.jobs. An offset is stored only once every
 * earlier message of its partition has been published, so a restart reads
 * the held ones again. A message on the retry topic that is not a job is
 * dead-lettered from here.
 *
 * The state is the scheduler's (struct cv_scheduler, cv_scheduler_int.h);
 * every function runs on the scheduler's one thread.
 */
#ifndef CV_RETRIES_H
#define CV_RETRIES_H

#include "cv_err.h"
#include "cv_id.h"
#include "cv_kafka.h"
#include "cv_scheduler.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CV_RETRIES_MAX_PARTITIONS 256
/* Retries held in memory at most: then the topic is paused until some are due. */
#define CV_RETRIES_HOLD_MAX 10000

/* A retry waiting for its not_before. */
typedef struct cv_held_retry {
    int64_t due_ms;
    char key[CV_ID_LEN + 1];
    cv_kafka_msg msg; /* owned */
} cv_held_retry;

typedef struct cv_retries {
    cv_kafka_consumer *consumer; /* owned: convutell.jobs.retry */
    cv_held_retry *held;         /* owned */
    size_t nheld, capheld;
    bool paused;
    struct {
        int32_t partition;
        int64_t next_seen; /* offset after the last message read */
    } parts[CV_RETRIES_MAX_PARTITIONS];
    int nparts;
} cv_retries;

/* Waits up to wait_ms in the retry consumer (which keeps it in its group)
 * and holds what arrives. */
void cv_retries_take(cv_scheduler *s, int wait_ms);

/* Publishes the held retries that fell due and stores the offsets that may
 * be stored. */
void cv_retries_release_due(cv_scheduler *s, int64_t now);

/* Puts attempt `attempt` of the run stored as `message` (its job message) on
 * the retry topic, due at due_ms, and notes on the run's lease that it was
 * sent. */
cv_err cv_retries_send(cv_scheduler *s, const char *run_id, const char *message, int attempt,
                       int64_t due_ms, char *errbuf, size_t errlen);

/* When the first held retry falls due (INT64_MAX: none is held). */
int64_t cv_retries_next_due(const cv_retries *r);

/* Releases what is held, destroys the consumer and empties r. */
void cv_retries_destroy(cv_retries *r);

#endif
