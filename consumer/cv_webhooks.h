/*
 * cv_webhooks.h - webhook deliveries, in the collector's process
 * (cv_webhooks.c), off every request's and every event write's path.
 *
 * One thread consumes convutell.events in a group of its own
 * ("convutell-webhooks"): for each event of a type a webhook of its project
 * asks for, it makes a delivery in the store (runs/cv_hooks.h; once per
 * event and webhook however often the event is read) and only then stores
 * the event's offset, so no event is missed for a restart. Another thread
 * posts the due deliveries (cv_httpc.h), signed with the webhook's secret,
 * and records each attempt; a failed one is tried again after
 * CONVUTELL_WEBHOOK_RETRY_SECONDS, six times longer each time (at most an
 * hour), CV_HOOKS_ATTEMPTS times in all. Several collectors share the work:
 * the consumer group splits the events and each delivery is claimed.
 *
 * Webhook secrets are sealed with CONVUTELL_SECRET_KEY: a collector without
 * it records nothing it cannot send and says so in its log.
 *
 * Made and destroyed by the collector's main thread.
 */
#ifndef CV_WEBHOOKS_H
#define CV_WEBHOOKS_H

#include "cv_config.h"
#include "cv_err.h"
#include "cv_kafka.h"

#define CV_WEBHOOKS_GROUP CV_GROUP_WEBHOOKS

typedef struct cv_webhooks cv_webhooks;

/* Joins the group and starts both threads. NULL with the reason in errbuf. */
cv_webhooks *cv_webhooks_new(const cv_config *cfg, char *errbuf, size_t errlen);

/* Stops both threads (a post in flight ends within its timeout) and frees.
 * Accepts NULL. */
void cv_webhooks_destroy(cv_webhooks *w);

#endif
