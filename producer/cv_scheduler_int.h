/*
 * cv_scheduler_int.h - what the scheduler's parts share: the service's state,
 * one part of it per module (cv_ticks, cv_retries, cv_recovery), and the
 * clients they all use. Each module reads and writes its own part; the loop
 * in cv_scheduler.c calls them in turn on the scheduler's one thread.
 */
#ifndef CV_SCHEDULER_INT_H
#define CV_SCHEDULER_INT_H

#include "cv_config.h"
#include "cv_id.h"
#include "cv_kafka.h"
#include "cv_metrics.h"
#include "cv_mongo.h"
#include "cv_recovery.h"
#include "cv_retries.h"
#include "cv_scheduler.h"
#include "cv_ticks.h"

/* How long a publish may wait for the broker. */
#define CV_SCHED_PUBLISH_TIMEOUT_MS 30000

struct cv_scheduler {
    cv_config cfg;
    char instance[CV_ID_LEN];    /* this process, in claims and heartbeats */
    cv_mongo *mongo;             /* owned */
    cv_kafka_producer *producer; /* owned */
    cv_ticks ticks;              /* cv_ticks.c's */
    cv_retries retries;          /* cv_retries.c's */
    cv_recovery recovery;        /* cv_recovery.c's */
    /* Scheduled runs published, and how long after their tick (cv_metrics.h). */
    cv_metric *m_fired, *m_lateness;
};

#endif
