/*
 * cv_replies.h - the API's ear on convutell.replies (cv_replies.c): workers
 * say there that a query run of the SQL console ended, keyed by the API
 * process that waits for it (cv_replies_name()). A thread of its own reads
 * every partition from the end (cv_kafka_listener_new()) and wakes the
 * request that waits for the run named; replies for other processes, or for
 * runs no one waits for any more, are read past.
 *
 * A request registers before it publishes the query (so that no reply can
 * come before it listens), waits, and unregisters. A reply that never comes
 * (a worker that died, a lost message) is the waiter's business: cv_replies_wait()
 * returns at a short beat so that it can look at the store itself.
 *
 * Every function may be called from any thread.
 */
#ifndef CV_REPLIES_H
#define CV_REPLIES_H

#include "cv_err.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct cv_replies cv_replies;
typedef struct cv_replies_waiter cv_replies_waiter;

/* Starts listening. NULL with the reason in errbuf. */
cv_replies *cv_replies_new(const char *bootstrap, char *errbuf, size_t errlen);

/* Stops the thread and frees; no request may wait any more. Accepts NULL. */
void cv_replies_destroy(cv_replies *r);

/* This process's name, which workers key their replies with. */
const char *cv_replies_name(const cv_replies *r);

/* Registers a wait for run_id. NULL on NOMEM. */
cv_replies_waiter *cv_replies_expect(cv_replies *r, const char *run_id);

/* Waits up to timeout_ms for the run's reply: true once it came. */
bool cv_replies_wait(cv_replies *r, cv_replies_waiter *w, int64_t timeout_ms);

/* Unregisters and frees w. Accepts NULL. */
void cv_replies_forget(cv_replies *r, cv_replies_waiter *w);

#endif
