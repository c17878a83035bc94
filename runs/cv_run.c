/*
 * cv_run.c - the run statuses and the one table of legal moves between them.
 * Every list of statuses the services need (final ones, active ones, the
 * statuses an event may move a run out of) is derived from the table, so a
 * new status or move is added here once.
 */
#include "cv_run.h"

#include "cv_message.h"

#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

static const char *const names[CV_RUN_STATUS_COUNT] = {
    [CV_RUN_NONE] = "",
    [CV_RUN_QUEUED] = "queued",
    [CV_RUN_RUNNING] = "running",
    [CV_RUN_RETRYING] = "retrying",
    [CV_RUN_SUCCEEDED] = "succeeded",
    [CV_RUN_FAILED] = "failed",
    [CV_RUN_CANCELLED] = "cancelled",
    [CV_RUN_TIMED_OUT] = "timed_out",
    [CV_RUN_MISSED] = "missed",
    [CV_RUN_SKIPPED] = "skipped",
};

/* Bit `to` of moves[from] is set when from -> to is legal. */
#define TO(s) (1u << (s))
#define ENDINGS                                                                                    \
    (TO(CV_RUN_SUCCEEDED) | TO(CV_RUN_FAILED) | TO(CV_RUN_CANCELLED) | TO(CV_RUN_TIMED_OUT))
static const unsigned moves[CV_RUN_STATUS_COUNT] = {
    [CV_RUN_NONE] = TO(CV_RUN_QUEUED) | TO(CV_RUN_MISSED) | TO(CV_RUN_SKIPPED) | TO(CV_RUN_RUNNING),
    [CV_RUN_QUEUED] = TO(CV_RUN_RUNNING),
    [CV_RUN_RUNNING] = TO(CV_RUN_RUNNING) | TO(CV_RUN_RETRYING) | ENDINGS,
    [CV_RUN_RETRYING] = TO(CV_RUN_RUNNING),
    /* the final statuses move nowhere */
};

const char *cv_run_status_name(cv_run_status status) {
    return (int)status >= 0 && status < CV_RUN_STATUS_COUNT ? names[status] : "";
}

cv_run_status cv_run_status_parse(const char *name) {
    if (!name || !name[0])
        return CV_RUN_NONE;
    for (int s = 1; s < CV_RUN_STATUS_COUNT; s++)
        if (strcmp(name, names[s]) == 0)
            return (cv_run_status)s;
    return CV_RUN_NONE;
}

bool cv_run_is_final(cv_run_status status) {
    return status != CV_RUN_NONE && (int)status >= 0 && status < CV_RUN_STATUS_COUNT &&
           moves[status] == 0;
}

bool cv_run_name_is_final(const char *name) {
    return cv_run_is_final(cv_run_status_parse(name));
}

bool cv_run_can_move(cv_run_status from, cv_run_status to) {
    if ((int)from < 0 || from >= CV_RUN_STATUS_COUNT || (int)to <= 0 || to >= CV_RUN_STATUS_COUNT)
        return false;
    return (moves[from] & TO(to)) != 0;
}

size_t cv_run_sources(cv_run_status to, cv_run_status *out, size_t cap) {
    size_t n = 0;
    for (int s = 1; s < CV_RUN_STATUS_COUNT; s++)
        if (cv_run_can_move((cv_run_status)s, to) && n < cap)
            out[n++] = (cv_run_status)s;
    return n;
}

/* The stored statuses that are final (or not), in enum order. */
static size_t by_finality(bool final, cv_run_status *out, size_t cap) {
    size_t n = 0;
    for (int s = 1; s < CV_RUN_STATUS_COUNT; s++)
        if (cv_run_is_final((cv_run_status)s) == final && n < cap)
            out[n++] = (cv_run_status)s;
    return n;
}

size_t cv_run_active(cv_run_status *out, size_t cap) {
    return by_finality(false, out, cap);
}

size_t cv_run_finals(cv_run_status *out, size_t cap) {
    return by_finality(true, out, cap);
}

/* The event types that move a run, and where to. */
static const struct {
    const char *type;
    cv_run_status to;
} targets[] = {
    {CV_EVENT_RUN_QUEUED, CV_RUN_QUEUED},       {CV_EVENT_RUN_STARTED, CV_RUN_RUNNING},
    {CV_EVENT_RUN_RETRYING, CV_RUN_RETRYING},   {CV_EVENT_RUN_SUCCEEDED, CV_RUN_SUCCEEDED},
    {CV_EVENT_RUN_FAILED, CV_RUN_FAILED},       {CV_EVENT_RUN_CANCELLED, CV_RUN_CANCELLED},
    {CV_EVENT_RUN_TIMED_OUT, CV_RUN_TIMED_OUT},
};

cv_run_status cv_run_event_target(const char *type) {
    for (size_t i = 0; type && i < sizeof(targets) / sizeof(targets[0]); i++)
        if (strcmp(type, targets[i].type) == 0)
            return targets[i].to;
    return CV_RUN_NONE;
}
