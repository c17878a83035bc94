/*
 * cv_pruner.h - the scheduler's pruning thread: every
 * CONVUTELL_PRUNE_INTERVAL_SECONDS it runs one bounded cv_retain_sweep() (at
 * most 5,000 deletes per collection and 10 s), on its own thread and its own
 * MongoDB pool, so a sweep never delays a tick. Several schedulers may prune
 * at once: every delete names its document and its condition, so they only
 * share the work.
 */
#ifndef CV_PRUNER_H
#define CV_PRUNER_H

#include "cv_config.h"
#include "cv_err.h"

typedef struct cv_pruner cv_pruner;

/* Starts the thread. NULL with the reason in errbuf. Stop and free with
 * cv_pruner_destroy(). */
cv_pruner *cv_pruner_new(const cv_config *cfg, char *errbuf, size_t errlen);

/* Asks the thread to stop, waits for its current sweep's batch, and frees.
 * Accepts NULL. */
void cv_pruner_destroy(cv_pruner *p);

#endif
