/*
 * cv_runfold.h - a run as it stands, folded from the documents it is stored as.
 *
 * A run is written insert-only, so a stream of small jobs costs the store batched
 * inserts and no per-run update (an update costs FerretDB a select, a begin, an update
 * and a commit of its own):
 *   - its record, written whole by whoever queued it (the API, the scheduler):
 *     _id = run id, status queued, or missed or skipped for a tick that does not run;
 *   - per attempt, pieces the collector writes from the worker's events:
 *     "<run id>.<attempt>.started" and "<run id>.<attempt>.ended". The first end of an
 *     attempt to be stored wins (the next one is a duplicate _id), as the first write did
 *     when the record was updated in place; a replayed event writes nothing.
 * A piece holds under `set` exactly what the event changes in the run (status, times,
 * worker, counts, error, ...), and under `created` what the run is made of when it has
 * no record (a message another system wrote), besides the fields the lists look it up by
 * (run_id, job_id, project_id, created_at, day, buckets: the run's own, so that a look-up
 * by bucket returns a run's pieces with its record).
 *
 * cv_runfold() applies the pieces to the record in attempt order under cv_run's table of
 * moves, as the updates of the record in place did: a start moves a run that may move
 * to running, to its attempt and never back to an earlier one; an attempt's end applies
 * while the run is at that attempt and may move to the end's status; a final status is
 * never left. A record stored whole by an earlier version (updated in place) folds to
 * itself, with any pieces stored since applied on top.
 *
 * Pure functions, any thread.
 */
#ifndef CV_RUNFOLD_H
#define CV_RUNFOLD_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>

/* On records and pieces: the run they belong to. */
#define CV_RUNFOLD_RUN "run_id"
/* On pieces only: "started" or "ended". */
#define CV_RUNFOLD_PIECE "piece"
/* On pieces: what they change in the run. */
#define CV_RUNFOLD_SET "set"
/* On started pieces: the run's fields when it has no record, besides those every piece
 * carries at its top level as its record does (CV_RUNFOLD_FILED; a piece an earlier
 * version wrote has them here too). */
#define CV_RUNFOLD_CREATED "created"
/* Where a run is filed, on its record and on each of its pieces alike. */
#define CV_RUNFOLD_FILED                                                                           \
    { "created_at", "day", "job_id", "project_id", "buckets" }
/* On started pieces: its entry in the run's `attempts`. */
#define CV_RUNFOLD_ENTRY "entry"
#define CV_RUNFOLD_ID_MAX 96

/* The _id of a piece of run_id: "<run_id>.<attempt>.started" (ended false) or ".ended". */
void cv_runfold_piece_id(const char *run_id, int attempt, bool ended, char out[CV_RUNFOLD_ID_MAX]);

/* True when doc is a piece rather than a record. */
bool cv_runfold_is_piece(const bson_t *doc);

/* The run a stored document belongs to: its run_id, or its _id for a record an earlier
 * version wrote without one. Borrowed from doc; NULL when it has neither. */
const char *cv_runfold_run_of(const bson_t *doc);

/* The run `run_id` as it stands, from its stored documents docs[0..n) (in any order;
 * documents of other runs are ignored): the record's fields with its pieces applied,
 * without run_id. A new document the caller frees with bson_destroy(); NULL when none of
 * the documents belongs to the run (or out of memory). */
bson_t *cv_runfold(const char *run_id, const bson_t *const *docs, size_t n);

/* The same over an array document (as cv_mongo_find() returns it). */
bson_t *cv_runfold_array(const char *run_id, const bson_t *array);

/* Folds each run of an array document whose runs' documents are consecutive (a
 * page of a run list, cv_page.h) and calls fn(ctx, run) with it, in order; run
 * is borrowed for the call. Returns how many runs were folded. */
size_t cv_runfold_each(const bson_t *array, void (*fn)(void *ctx, const bson_t *run), void *ctx);

#endif
