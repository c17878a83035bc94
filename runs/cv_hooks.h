/*
 * cv_hooks.h - webhook deliveries in the store (cv_hooks.c): `webhooks`,
 * a project's endpoints (the API's), and `webhook_deliveries`, one document
 * per event and webhook (_id "<webhook id>:<event id>", so an event seen
 * twice is delivered once).
 *
 * A delivery is made "pending", due at once; a sender claims due ones
 * ("sending", with a lease of CV_HOOKS_LEASE_MS, so that two senders never
 * post one delivery at once and a sender that died gives it back), posts it
 * and records the attempt: "delivered" on a 2xx, else "pending" again and
 * due after a backoff, or "failed" after CV_HOOKS_ATTEMPTS attempts. Each
 * attempt is kept in the delivery's `attempts` (time, HTTP status or error,
 * milliseconds).
 *
 * Every function may be called from any thread.
 */
#ifndef CV_HOOKS_H
#define CV_HOOKS_H

#include "cv_err.h"
#include "cv_mongo.h"
#include "cv_store.h"

#include <stdbool.h>
#include <stdint.h>

#define CV_HOOKS_ATTEMPTS 8
#define CV_HOOKS_LEASE_MS (60 * INT64_C(1000))

/* The events a webhook may ask for, NULL-ended. */
extern const char *const cv_hooks_event_types[];

/* The delay before attempt `next` (2 or more): base_ms, then 6 times more
 * each attempt, at most an hour. */
int64_t cv_hooks_backoff_ms(int64_t base_ms, int next);

#define CV_HOOKS_ID_MAX 160

/* The id of the delivery of an event of `type` to a webhook:
 * "<webhook>:<run id>.<attempt>.ended" for an attempt's end (an event that moves
 * the run to retrying or a final status, cv_run_event_target()), and
 * "<webhook>:<event id>" for any other (a start). An end
 * is delivered once however many reports of it there are: a worker cut off from
 * the network may report an attempt that another worker took over and ended,
 * long after; the first report read counts, as it does in the run's record
 * (cv_runs.h), the same one since a run's events share a partition. */
void cv_hooks_delivery_id(const char *webhook_id, const char *event_id, const char *type,
                          const char *run_id, int attempt, char out[CV_HOOKS_ID_MAX]);

/* Makes the delivery `delivery_id` (cv_hooks_delivery_id()) of one event to one
 * webhook, pending and due now; CV_OK also when it was made before. `body` is
 * the JSON to post. */
cv_err cv_hooks_enqueue(cv_mongo *m, const char *delivery_id, const char *webhook_id,
                        const char *project_id, const char *event_id, const char *type,
                        const char *body, char *errbuf, size_t errlen);

/* Claims up to max due deliveries for `sender` at now_ms: pending ones due,
 * and sending ones whose sender's lease ran out. *out is an array document
 * of the claimed deliveries as they were (the caller frees it). */
cv_err cv_hooks_claim_due(cv_mongo *m, const char *sender, int64_t now_ms, int max, bson_t **out,
                          char *errbuf, size_t errlen);

/* Records one attempt of delivery id (claimed by sender): its HTTP status
 * (0 for none, with `error`) and duration. A 2xx delivers it; otherwise it is
 * due again after the backoff from retry_base_ms, or failed after
 * CV_HOOKS_ATTEMPTS. *status_out (may be NULL) gets the new status. */
cv_err cv_hooks_record(cv_mongo *m, const char *id, const char *sender, int attempt,
                       int http_status, const char *error, int64_t elapsed_ms,
                       int64_t retry_base_ms, const char **status_out, char *errbuf, size_t errlen);

#endif
