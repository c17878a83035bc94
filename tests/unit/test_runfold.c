/*
 * test_runfold.c - cv_runfold: a run folded from its record and its pieces
 * follows the table of moves (every start, retry, end, late and replayed
 * piece), whatever order the documents come in.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_runfold.h"

#include <string.h>

#define RUN "6f1c2d3e-0000-4000-8000-000000000001"

static bson_t *record(const char *status, int attempt) {
    return BCON_NEW("_id", RUN, "run_id", RUN, "created_at", "2026-12-04T10:00:00.000Z", "job_id",
                    "job-1", "buckets", "[", "job-1@2026-12-04T10:00", "]", "trigger", "manual",
                    "attempt", BCON_INT32(attempt), "status", status, "queued_at",
                    "2026-12-04T10:00:00.000Z");
}

static bson_t *started(int attempt, const char *at, bool created) {
    char id[CV_RUNFOLD_ID_MAX], event[32];
    bson_t *doc;
    cv_runfold_piece_id(RUN, attempt, false, id);
    snprintf(event, sizeof(event), "start-%d", attempt);
    doc = BCON_NEW("_id", id, "run_id", RUN, "piece", "started", "attempt", BCON_INT32(attempt),
                   "created_at", "2026-12-04T10:00:00.000Z", "job_id", "job-1", "buckets", "[",
                   "job-1@2026-12-04T10:00", "]", "set", "{", "status", "running", "started_at", at,
                   "worker", "w1", "attempt", BCON_INT32(attempt), "}", "entry", "{", "event_id",
                   event, "worker", "w1", "started_at", at, "}");
    if (created)
        BCON_APPEND(doc, "created", "{", "trigger", "external", "attempt", BCON_INT32(attempt),
                    "}");
    return doc;
}

static bson_t *ended(int attempt, const char *status, const char *at) {
    char id[CV_RUNFOLD_ID_MAX];
    cv_runfold_piece_id(RUN, attempt, true, id);
    return BCON_NEW("_id", id, "run_id", RUN, "piece", "ended", "attempt", BCON_INT32(attempt),
                    "created_at", "2026-12-04T10:00:00.000Z", "set", "{", "status", status,
                    "finished_at", at, "attempt", BCON_INT32(attempt), "rows_written",
                    BCON_INT64(7), "}");
}

static bson_t *fold(bson_t **docs, size_t n) {
    return cv_runfold(RUN, (const bson_t *const *)docs, n);
}

static const char *str(const bson_t *doc, const char *key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it)
               ? bson_iter_utf8(&it, NULL)
               : NULL;
}

static int64_t num(const bson_t *doc, const char *key) {
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it)
               ? bson_iter_as_int64(&it)
               : -1;
}

static uint32_t attempts(const bson_t *doc) {
    bson_iter_t it, sub;
    uint32_t n = 0;
    if (bson_iter_init_find(&it, doc, "attempts") && bson_iter_recurse(&it, &sub))
        while (bson_iter_next(&sub))
            n++;
    return n;
}

static void release(bson_t **docs, size_t n) {
    for (size_t i = 0; i < n; i++)
        bson_destroy(docs[i]);
}

static void test_success_in_any_order(void **state) {
    bson_t *docs[3] = {record("queued", 1), started(1, "2026-12-04T10:00:01.000Z", true),
                       ended(1, "succeeded", "2026-12-04T10:00:02.000Z")};
    bson_t *shuffled[3] = {docs[2], docs[0], docs[1]};
    bson_t *a, *b;
    (void)state;

    a = fold(docs, 3);
    b = fold(shuffled, 3);
    assert_non_null(a);
    assert_true(bson_equal(a, b));
    assert_string_equal(str(a, "_id"), RUN);
    assert_null(str(a, "run_id")); /* internal: not shown */
    assert_string_equal(str(a, "status"), "succeeded");
    assert_string_equal(str(a, "trigger"), "manual"); /* the record's, not the start's */
    assert_string_equal(str(a, "started_at"), "2026-12-04T10:00:01.000Z");
    assert_string_equal(str(a, "finished_at"), "2026-12-04T10:00:02.000Z");
    assert_string_equal(str(a, "queued_at"), "2026-12-04T10:00:00.000Z");
    assert_int_equal(num(a, "rows_written"), 7);
    assert_int_equal(num(a, "attempt"), 1);
    assert_int_equal(attempts(a), 1);
    bson_destroy(a);
    bson_destroy(b);
    release(docs, 3);
}

static void test_queued_and_running(void **state) {
    bson_t *docs[2] = {record("queued", 1), started(1, "2026-12-04T10:00:01.000Z", false)};
    bson_t *a;
    (void)state;

    a = fold(docs, 1);
    assert_string_equal(str(a, "status"), "queued");
    assert_int_equal(attempts(a), 0);
    bson_destroy(a);
    a = fold(docs, 2);
    assert_string_equal(str(a, "status"), "running");
    assert_string_equal(str(a, "worker"), "w1");
    bson_destroy(a);
    release(docs, 2);
}

static void test_retry_then_success(void **state) {
    bson_t *docs[5] = {record("queued", 1), started(1, "2026-12-04T10:00:01.000Z", false),
                       ended(1, "retrying", "2026-12-04T10:00:02.000Z"),
                       started(2, "2026-12-04T10:01:00.000Z", false),
                       ended(2, "succeeded", "2026-12-04T10:01:01.000Z")};
    bson_t *a;
    (void)state;

    a = fold(docs, 3);
    assert_string_equal(str(a, "status"), "retrying");
    assert_int_equal(num(a, "attempt"), 1);
    bson_destroy(a);
    a = fold(docs, 4);
    assert_string_equal(str(a, "status"), "running");
    assert_int_equal(num(a, "attempt"), 2);
    assert_int_equal(attempts(a), 2);
    bson_destroy(a);
    a = fold(docs, 5);
    assert_string_equal(str(a, "status"), "succeeded");
    assert_int_equal(num(a, "attempt"), 2);
    assert_string_equal(str(a, "started_at"), "2026-12-04T10:01:00.000Z");
    bson_destroy(a);
    release(docs, 5);
}

/* A final status is never left: a start of a later attempt, or the end of another
 * attempt, changes nothing once the run ended. */
static void test_final_is_kept(void **state) {
    bson_t *docs[5] = {record("queued", 1), started(1, "2026-12-04T10:00:01.000Z", false),
                       ended(1, "failed", "2026-12-04T10:00:02.000Z"),
                       started(2, "2026-12-04T10:00:03.000Z", false),
                       ended(2, "succeeded", "2026-12-04T10:00:04.000Z")};
    bson_t *a;
    (void)state;

    a = fold(docs, 5);
    assert_string_equal(str(a, "status"), "failed");
    assert_int_equal(num(a, "attempt"), 1);
    assert_string_equal(str(a, "finished_at"), "2026-12-04T10:00:02.000Z");
    assert_int_equal(attempts(a), 1);
    bson_destroy(a);
    release(docs, 5);
}

/* An end applies only to the attempt the run is at, and only from a status that may
 * move to it: a retry of a queued run, or the end of an attempt that never started. */
static void test_illegal_ends_change_nothing(void **state) {
    bson_t *docs[3] = {record("queued", 1), ended(1, "retrying", "2026-12-04T10:00:02.000Z"),
                       ended(2, "succeeded", "2026-12-04T10:00:02.000Z")};
    bson_t *a;
    (void)state;

    a = fold(docs, 3);
    assert_string_equal(str(a, "status"), "queued");
    assert_null(str(a, "finished_at"));
    bson_destroy(a);
    release(docs, 3);
}

/* A tick that did not run is final from its record on. */
static void test_missed_tick_stays(void **state) {
    bson_t *docs[2] = {record("missed", 1), started(1, "2026-12-04T10:00:01.000Z", false)};
    bson_t *a;
    (void)state;

    a = fold(docs, 2);
    assert_string_equal(str(a, "status"), "missed");
    assert_int_equal(attempts(a), 0);
    bson_destroy(a);
    release(docs, 2);
}

/* A run another system queued has no record: its first start makes it. */
static void test_without_record(void **state) {
    bson_t *docs[2] = {started(1, "2026-12-04T10:00:01.000Z", true),
                       ended(1, "succeeded", "2026-12-04T10:00:02.000Z")};
    bson_t *stub = BCON_NEW("_id", RUN, "run_id", RUN, "cancel_requested", BCON_BOOL(true));
    bson_t *with_stub[3] = {docs[0], docs[1], stub};
    bson_t *older = BCON_NEW("_id", RUN ".1.started", "run_id", RUN, "piece", "started", "attempt",
                             BCON_INT32(1), "set", "{", "status", "running", "}", "created", "{",
                             "created_at", "2026-12-04T09:00:00.000Z", "job_id", "job-0", "trigger",
                             "external", "attempt", BCON_INT32(1), "}");
    bson_t *a;
    bson_iter_t it;
    (void)state;

    a = fold(docs, 1);
    assert_string_equal(str(a, "status"), "running");
    assert_string_equal(str(a, "trigger"), "external");
    assert_string_equal(str(a, "created_at"), "2026-12-04T10:00:00.000Z");
    assert_string_equal(str(a, "job_id"), "job-1");
    assert_true(bson_iter_init_find(&it, a, "buckets") && BSON_ITER_HOLDS_ARRAY(&it));
    bson_destroy(a);
    /* A start written before pieces carried where they are filed has it in `created`. */
    a = fold(&older, 1);
    assert_string_equal(str(a, "status"), "running");
    assert_string_equal(str(a, "job_id"), "job-0");
    assert_string_equal(str(a, "created_at"), "2026-12-04T09:00:00.000Z");
    bson_destroy(a);
    bson_destroy(older);
    a = fold(docs, 2);
    assert_string_equal(str(a, "status"), "succeeded");
    bson_destroy(a);
    /* A cancel request on such a run is a record of only that; the start still makes it. */
    a = fold(with_stub, 2 + 1);
    assert_string_equal(str(a, "status"), "succeeded");
    assert_string_equal(str(a, "trigger"), "external");
    assert_true(bson_iter_init_find(&it, a, "cancel_requested") && bson_iter_as_bool(&it));
    bson_destroy(a);
    bson_destroy(stub);
    release(docs, 2);
}

/* A record an earlier version kept current in place folds to itself, pieces on top. */
static void test_record_of_an_earlier_version(void **state) {
    bson_t *old =
        BCON_NEW("_id", RUN, "status", "running", "attempt", BCON_INT32(1), "started_at",
                 "2026-12-04T10:00:01.000Z", "attempts", "[", "{", "event_id", "start-1", "}", "]");
    bson_t *end = ended(1, "succeeded", "2026-12-04T10:00:02.000Z");
    bson_t *again = started(1, "2026-12-04T10:00:01.000Z", false);
    bson_t *docs[3] = {old, end, again};
    bson_t *other = BCON_NEW("_id", "another-run", "status", "failed");
    bson_t *with_other[2] = {other, old};
    bson_t *a;
    (void)state;

    a = fold(docs, 3);
    assert_string_equal(str(a, "status"), "succeeded");
    assert_int_equal(attempts(a), 1); /* the same start is not listed twice */
    bson_destroy(a);
    a = fold(with_other, 2);
    assert_string_equal(str(a, "status"), "running");
    bson_destroy(a);
    assert_null(fold(&other, 1));
    bson_destroy(old);
    bson_destroy(end);
    bson_destroy(again);
    bson_destroy(other);
}

static void test_piece_ids(void **state) {
    char id[CV_RUNFOLD_ID_MAX];
    bson_t *s = started(3, "2026-12-04T10:00:01.000Z", false);
    (void)state;
    cv_runfold_piece_id(RUN, 3, true, id);
    assert_string_equal(id, RUN ".3.ended");
    assert_true(cv_runfold_is_piece(s));
    assert_string_equal(cv_runfold_run_of(s), RUN);
    bson_destroy(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_in_any_order),
        cmocka_unit_test(test_queued_and_running),
        cmocka_unit_test(test_retry_then_success),
        cmocka_unit_test(test_final_is_kept),
        cmocka_unit_test(test_illegal_ends_change_nothing),
        cmocka_unit_test(test_missed_tick_stays),
        cmocka_unit_test(test_without_record),
        cmocka_unit_test(test_record_of_an_earlier_version),
        cmocka_unit_test(test_piece_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
