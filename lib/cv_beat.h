/*
 * cv_beat.h - a process's heartbeat in the store: one document per process in
 * a collection (the workers' in CV_COLL_WORKERS), written when it starts and
 * every CV_BEAT_MS after, so that the API can say which processes were seen in
 * the last minute (GET /api/v1/instance). Documents of processes not seen for
 * a day are removed by whoever beats next.
 *
 * The beat has a thread of its own: a store that does not answer delays only
 * the beat, never the process's work. The document holds `_id` (the process's
 * id), `host`, `pid`, `started_at` and `seen_at` (times), and `slots` (what
 * the process runs at once).
 */
#ifndef CV_BEAT_H
#define CV_BEAT_H

#include "cv_err.h"
#include "cv_mongo.h"

#define CV_BEAT_MS 15000
#define CV_BEAT_KEEP_MS (24 * 3600 * INT64_C(1000))

typedef struct cv_beat cv_beat;

/* Starts beating as `id` into `collection` of m (borrowed: it must outlive the
 * beat). NULL with the reason in errbuf. */
cv_beat *cv_beat_start(cv_mongo *m, const char *collection, const char *id, int slots, char *errbuf,
                       size_t errlen);

/* Stops the thread and removes the process's document (it is going away, not
 * lost). Accepts NULL. */
void cv_beat_stop(cv_beat *b);

#endif
