/*
 * cv_collector.h - the collector service (`convutell collector`).
 *
 * Consumes convutell.events in the consumer group "convutell-collector" and is
 * where an event is stored: the events a poll fetched go to MongoDB in two
 * steps, the events (cv_runs_store_events(), event id as _id) and then the
 * runs they move (cv_runs_apply_events(), on a thread of its own, one batch
 * behind), both idempotent; the offsets are stored only after MongoDB
 * acknowledged both. While MongoDB is unreachable it retries the same batch
 * with backoff instead of moving on.
 */
#ifndef CV_COLLECTOR_H
#define CV_COLLECTOR_H

#include "cv_config.h"
#include "cv_err.h"

#include <signal.h>

typedef struct cv_collector cv_collector;

/* NULL with the reason in errbuf on failure. Free with cv_collector_destroy(). */
cv_collector *cv_collector_new(const cv_config *cfg, char *errbuf, size_t errlen);

/* Runs until *stop becomes non-zero. */
cv_err cv_collector_run(cv_collector *c, volatile sig_atomic_t *stop, char *errbuf, size_t errlen);

/* Leaves the consumer group and frees. Accepts NULL. */
void cv_collector_destroy(cv_collector *c);

#endif
