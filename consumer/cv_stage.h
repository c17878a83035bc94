/*
 * cv_stage.h - how a transfer reports where it failed: res->error_code names
 * the stage ("origin_query", "destination_insert", ...; cv_transfer.h lists
 * them), set once by the part that failed, and the error passes on.
 *
 * Pure functions; any thread.
 */
#ifndef CV_STAGE_H
#define CV_STAGE_H

#include "cv_err.h"
#include "cv_transfer.h"

/* Sets the failed stage and passes the error on (CV_ERR_ODBC when err is
 * CV_OK: a stage never fails without a code). */
static inline cv_err cv_stage_fail(cv_transfer_result *res, const char *stage, cv_err err) {
    res->error_code = stage;
    return err ? err : CV_ERR_ODBC;
}

/* The stage a progress callback's refusal ends the run with. */
static inline const char *cv_stage_stopped(cv_err err) {
    return err == CV_ERR_TIMEOUT ? "timed_out" : "cancelled";
}

#endif
