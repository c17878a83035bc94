/*
 * cv_kafka.h - the project's thin layer over librdkafka.
 *
 * Producers are idempotent (enable.idempotence=true, acks=all) and sending is
 * synchronous: cv_kafka_produce() returns only once the broker acknowledged the
 * message, so callers can make "published" a precondition of their next step
 * (answering 202, storing a consumer offset).
 *
 * Consumers join a group with enable.auto.offset.store=false: an offset is
 * stored only when the caller says the message was fully handled
 * (cv_kafka_consumer_store()); stored offsets are committed in the background
 * and once more on close. That gives at-least-once delivery.
 */
#ifndef CV_KAFKA_H
#define CV_KAFKA_H

#include "cv_err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CV_TOPIC_JOBS "convutell.jobs"
#define CV_TOPIC_EVENTS "convutell.events"
#define CV_TOPIC_DLQ "convutell.jobs.dlq"
#define CV_TOPIC_RETRY "convutell.jobs.retry" /* attempts waiting for their backoff */
#define CV_TOPIC_QUERIES "convutell.queries"  /* the SQL console's queries (kind "query") */
#define CV_TOPIC_REPLIES "convutell.replies"  /* "this query ended", to the API that waits */

/* How long a consumer's destroy waits to leave its group before it lets go (cv_kafka.c):
 * a stop always ends, whatever state a rebalance is in. */
#define CV_KAFKA_CLOSE_MS 15000

/* The consumer groups of the services, each with the topic it reads. */
#define CV_GROUP_WORKERS "convutell-workers"     /* convutell.jobs: the worker pool */
#define CV_GROUP_CONSOLE "convutell-console"     /* convutell.queries: the workers' console */
#define CV_GROUP_COLLECTOR "convutell-collector" /* convutell.events: the collector */
#define CV_GROUP_WEBHOOKS "convutell-webhooks"   /* convutell.events: webhook deliveries */
#define CV_GROUP_SCHEDULER "convutell-scheduler" /* convutell.jobs.retry: due retries */

typedef struct cv_kafka_producer cv_kafka_producer;
typedef struct cv_kafka_consumer cv_kafka_consumer;

/* One consumed message. The pointers stay valid until cv_kafka_msg_release(). */
typedef struct cv_kafka_msg {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *key; /* not NUL-terminated; may be NULL */
    size_t key_len;
    const char *payload; /* not NUL-terminated; may be NULL */
    size_t len;
    void *handle; /* the rd_kafka_message_t, owned */
} cv_kafka_msg;

/* The largest message a producer sends (librdkafka's message.max.bytes: key,
 * value and headers), set on every producer rather than left to the
 * library's default: under the broker's default max.message.bytes
 * (1,048,588), so what the producer takes the broker takes. */
#define CV_KAFKA_MESSAGE_MAX 1000000
#define CV_KAFKA_MESSAGE_MAX_TEXT "1000000"

/* A message header (name and NUL-terminated value). */
typedef struct cv_kafka_header {
    const char *name;
    const char *value;
} cv_kafka_header;

/* Creates a producer whose messages fail after message_timeout_ms without
 * the broker's acknowledgement (0: 30000), which bounds every wait of
 * cv_kafka_produce() too. Returns NULL with the reason in errbuf on failure.
 * Free with cv_kafka_producer_destroy(). */
cv_kafka_producer *cv_kafka_producer_new(const char *bootstrap, int message_timeout_ms,
                                         char *errbuf, size_t errlen);

/* Sends one message and waits up to timeout_ms for the broker's acknowledgement.
 * `headers` may be NULL; otherwise it ends with an entry whose name is NULL.
 * Thread-safe: several threads may send through one producer at once.
 * Returns CV_OK, CV_ERR_TIMEOUT or CV_ERR_KAFKA (reason in errbuf). */
cv_err cv_kafka_produce(cv_kafka_producer *p, const char *topic, const char *key, const void *value,
                        size_t len, const cv_kafka_header *headers, int timeout_ms, char *errbuf,
                        size_t errlen);

/* Sends one message without waiting for the broker: for messages whose loss
 * costs nothing a later, acknowledged message to the same partition does not
 * also carry (the producer is idempotent, so that later message is stored
 * after this one or not at all). A failed delivery is logged. CV_ERR_KAFKA
 * when the message could not even be queued. */
cv_err cv_kafka_produce_nowait(cv_kafka_producer *p, const char *topic, const char *key,
                               const void *value, size_t len, char *errbuf, size_t errlen);

/* One message of a batch: key (may be NULL), value and headers (NULL, or
 * ending with an entry whose name is NULL) in; err out. */
typedef struct cv_kafka_out {
    const char *key;
    const char *value;
    size_t len;
    const cv_kafka_header *headers;
    cv_err err; /* set by cv_kafka_produce_batch(): CV_OK once acknowledged */
} cv_kafka_out;

/* Sends n messages to `topic` at once and waits for every acknowledgement:
 * one round of waiting for the lot instead of one per message. Returns the
 * first failure (each message's own result is in its err). */
cv_err cv_kafka_produce_batch(cv_kafka_producer *p, const char *topic, cv_kafka_out *msgs, size_t n,
                              int timeout_ms, char *errbuf, size_t errlen);

/* Waits for outstanding deliveries (bounded) and frees. Accepts NULL. */
void cv_kafka_producer_destroy(cv_kafka_producer *p);

/* Whether the producer's brokers answer a metadata request for topic within
 * timeout_ms: CV_OK, or CV_ERR_KAFKA with the reason (a readiness check). */
cv_err cv_kafka_producer_ping(cv_kafka_producer *p, const char *topic, int timeout_ms, char *errbuf,
                              size_t errlen);

/* Creates a consumer in `group` subscribed to `topic`, starting from the earliest
 * offset when the group has none. max_poll_interval_ms is Kafka's
 * max.poll.interval.ms (0 for 300000): callers must poll at least that often,
 * pausing their partitions while they are busy. Partition changes are logged.
 * NULL with the reason in errbuf on failure. */
cv_kafka_consumer *cv_kafka_consumer_new(const char *bootstrap, const char *group,
                                         const char *topic, int max_poll_interval_ms, char *errbuf,
                                         size_t errlen);

/* Waits up to timeout_ms for the next message. CV_OK fills *msg, which the
 * caller releases with cv_kafka_msg_release(); CV_ERR_TIMEOUT when nothing came.
 * Transient consumer errors are logged and reported as CV_ERR_TIMEOUT.
 * Call from one thread only. */
cv_err cv_kafka_consumer_poll(cv_kafka_consumer *c, int timeout_ms, cv_kafka_msg *msg);

/* Marks msg as handled: its offset + 1 becomes the group's committed position.
 * If a rebalance took the partition away meanwhile, logs it and returns CV_OK:
 * the new owner starts at the last committed offset and delivers the message
 * again (not a failure of this consumer). */
cv_err cv_kafka_consumer_store(cv_kafka_consumer *c, const cv_kafka_msg *msg, char *errbuf,
                               size_t errlen);

/* Stores next_offset as the group's position on topic[partition] (the
 * offset of the first message not yet handled). CV_ERR_CONFLICT, silently,
 * when the partition is not assigned to this consumer. */
cv_err cv_kafka_consumer_store_at(cv_kafka_consumer *c, const char *topic, int32_t partition,
                                  int64_t next_offset, char *errbuf, size_t errlen);

/* Pauses (or resumes) fetching on every partition assigned, now and until the
 * next call: partitions a rebalance assigns meanwhile get the same state. A
 * paused consumer keeps polling, which keeps it in its group, and gets no
 * messages. */
void cv_kafka_consumer_pause(cv_kafka_consumer *c, bool pause);

/* Seeks msg's partition back to msg, so that it is delivered again. */
cv_err cv_kafka_consumer_rewind(cv_kafka_consumer *c, const cv_kafka_msg *msg, char *errbuf,
                                size_t errlen);

/* Creates a consumer outside any group that reads every partition of
 * `topic` from its end, as they are when it starts: for a process that waits
 * for answers addressed to it (the API's replies) and reads past the others.
 * Stores and commits nothing. It waits up to timeout_ms for the topic's
 * partitions; a broker away longer does not stop it: its polls ask again,
 * once a second, until they get them. Poll it with cv_kafka_consumer_poll(),
 * free it with cv_kafka_consumer_destroy(). NULL with the reason in errbuf. */
cv_kafka_consumer *cv_kafka_listener_new(const char *bootstrap, const char *topic, int timeout_ms,
                                         char *errbuf, size_t errlen);

/* Frees the message's resources. Accepts a zeroed msg. */
void cv_kafka_msg_release(cv_kafka_msg *msg);

/* Leaves the group (committing stored offsets) and frees, within CV_KAFKA_CLOSE_MS:
 * a close that takes longer is left to the process's exit (see cv_kafka.c). Accepts NULL. */
void cv_kafka_consumer_destroy(cv_kafka_consumer *c);

#endif
