/*
 * cv_retain.h - how long the store keeps what, and the pruner that removes the
 * rest.
 *
 * Every document that is ever pruned carries `day`, the UTC date ("2026-12-03")
 * of the time that starts its retention: an event's time, a run's creation, a
 * notification's creation, a tick's time, a lease's claim (or its release for
 * a retry), a console query's, an audit record's, a webhook delivery's or an
 * Idempotency-Key's first answer's creation. The pruner walks the days that have left their
 * retention, oldest first, and deletes their documents by _id in small batches, each delete naming
 * the condition that makes it safe: a run only while its status is final; a lease, or an event,
 * only when its run has ended (or has no record; the lease of a run still going is never pruned,
 * however old its day); a console query only once it ended, its rows with it; a webhook delivery
 * only once delivered or failed for good. A day is an equality look-up the {day} index answers on
 * MongoDB and on FerretDB alike; TTL indexes are not used, since FerretDB does not implement them
 * and they cannot say "the events of finished runs" or "never while the run goes on". Where it got
 * to is kept per collection in the `retention` collection, so a sweep starts where the last one
 * stopped.
 *
 * The scheduler runs cv_retain_sweep() on a thread of its own, so pruning
 * never delays a tick; the collector's event writes only share the store.
 */
#ifndef CV_RETAIN_H
#define CV_RETAIN_H

#include "cv_err.h"
#include "cv_mongo.h"

#include <stdatomic.h>
#include <stdint.h>

#define CV_DAY_LEN 11 /* "YYYY-MM-DD" and its NUL */

/* Days each kind of document is kept (from cv_config). */
typedef struct cv_retain_policy {
    int events_days;        /* events of finished runs [30] */
    int runs_days;          /* run records [365] */
    int notifications_days; /* [90] */
    int ticks_days;         /* claimed ticks [1] */
    int leases_days;        /* leases, from their claim, once their run ended [1] */
    int queries_days;       /* the SQL console's ended query runs and their rows [30] */
    int deliveries_days;    /* webhook deliveries, once delivered or failed [30] */
    int audit_days;         /* audit records [365] */
    int idempotency_days;   /* first answers to Idempotency-Keys (24 hours: 1) */
} cv_retain_policy;

/* What one sweep removed. */
typedef struct cv_retain_counts {
    int64_t events, runs, notifications, ticks, leases, queries, deliveries, audit, idempotency;
} cv_retain_counts;

/* Appends "day": the UTC day of ms ("YYYY-MM-DD"), by which retention removes, to doc. */
void cv_retain_append_day(bson_t *doc, int64_t ms);

/* One sweep at now_ms: deletes at most max_deletes documents per collection
 * and stops early once budget_ms has passed or *stop (may be NULL) is set
 * (the next sweep goes on). Counts (may be NULL) get what was removed. Any
 * thread. */
cv_err cv_retain_sweep(cv_mongo *m, const cv_retain_policy *policy, int64_t now_ms, int max_deletes,
                       int64_t budget_ms, const atomic_bool *stop, cv_retain_counts *counts,
                       char *errbuf, size_t errlen);

#endif
