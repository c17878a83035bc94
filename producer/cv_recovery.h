/*
 * cv_recovery.h - the scheduler's liveness and the recovery of what stopped
 * processes leave behind (cv_recovery.c):
 *   - this scheduler's heartbeat in `schedulers`, with its cursors every 5 s;
 *   - a scheduler whose heartbeat stopped for 10 s: the ticks it claimed in
 *     its last 10 s are sent again (their run records inserted if missing;
 *     a message it did publish goes out twice, which workers skip), then it
 *     is marked recovered; every live scheduler does this until one has;
 *   - a worker's lease that ran out 15 s ago: the run is retried while
 *     attempts remain (cv_retries_send()), failed otherwise, or the lease
 *     closed if the run ended after all; retries decided and not sent are
 *     sent again after 30 s.
 *
 * The state is the scheduler's (struct cv_scheduler, cv_scheduler_int.h);
 * every function runs on the scheduler's one thread.
 */
#ifndef CV_RECOVERY_H
#define CV_RECOVERY_H

#include "cv_err.h"
#include "cv_lease.h"
#include "cv_scheduler.h"

#include <stddef.h>
#include <stdint.h>

typedef struct cv_recovery {
    char lease_cursor[CV_LEASE_CURSOR_LEN]; /* the lease sweep's place among running runs */
    int64_t cursors_saved_at;               /* when the cursors last went into the heartbeat */
} cv_recovery;

/* Records this scheduler's heartbeat and, every 5 s, its cursors. */
cv_err cv_recovery_heartbeat(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen);

/* Finds schedulers whose heartbeat stopped and sends again what they claimed. */
cv_err cv_recovery_sweep_schedulers(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen);

/* Takes back up to 100 expired leases, and sends retries decided and not sent. */
cv_err cv_recovery_sweep_leases(cv_scheduler *s, int64_t now, char *errbuf, size_t errlen);

#endif
