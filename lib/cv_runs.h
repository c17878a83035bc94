/*
 * cv_runs.h - the record of runs in MongoDB: the `events` collection (one
 * document per event, _id = event id) and the `runs` collection (one document
 * per run, kept current from its events).
 *
 * Applying an event is idempotent and insensitive to order: a replayed event
 * changes nothing, and a late run.queued or run.started never moves a run back
 * from a final state. The collector applies every event; the API applies only
 * the run.queued it publishes, so a client can read a run right after 202.
 * Each run.started adds an entry to the run's `attempts` array (event id,
 * worker, start time), so a run that was retried shows every attempt.
 */
#ifndef CV_RUNS_H
#define CV_RUNS_H

#include "cv_err.h"
#include "cv_message.h"
#include "cv_mongo.h"

#define CV_COLL_EVENTS "events"
#define CV_COLL_RUNS "runs"

/* Stores the event (a duplicate event id is success) and brings the run
 * document up to date. Any thread. CV_ERR_MONGO when the database did not
 * acknowledge the writes: the caller must retry before moving on. */
cv_err cv_runs_apply(cv_mongo *m, const cv_event *ev, char *errbuf, size_t errlen);

#endif
