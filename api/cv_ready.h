/*
 * cv_ready.h - the API's readiness, probed in the background (cv_ready.c): a
 * thread of its own pings the store and the broker every CV_READY_EVERY_MS
 * (each ping waits CV_READY_WAIT_MS at most) and keeps the last result, so
 * that GET /readyz answers at once from memory. An orchestrator's probe, or
 * anyone on the open route, never waits on a ping and never makes one.
 *
 * Until the first probe ended, and when the last one ended more than
 * CV_READY_STALE_MS ago (a ping that hangs), the API is not ready, saying so.
 *
 * Every function may be called from any thread.
 */
#ifndef CV_READY_H
#define CV_READY_H

#include "cv_err.h"
#include "cv_kafka.h"
#include "cv_mongo.h"

#include <stdbool.h>
#include <stddef.h>

#define CV_READY_EVERY_MS 1000
#define CV_READY_WAIT_MS 2000
#define CV_READY_STALE_MS 10000

typedef struct cv_ready cv_ready;

/* Starts probing m and p (borrowed: both must outlive the probe) with a
 * metadata request for `topic` (copied). NULL with the reason in errbuf. */
cv_ready *cv_ready_start(cv_mongo *m, cv_kafka_producer *p, const char *topic, char *errbuf,
                         size_t errlen);

/* Stops the thread (after the ping under way, if any) and frees. Accepts NULL. */
void cv_ready_stop(cv_ready *r);

/* The last result: true when both answered. Copies "ok" or why not into
 * mongo_why and kafka_why. */
bool cv_ready_get(cv_ready *r, char *mongo_why, size_t mongo_len, char *kafka_why,
                  size_t kafka_len);

#endif
