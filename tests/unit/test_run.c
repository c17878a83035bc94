/*
 * test_run.c - cv_run: the run statuses, their names, which are final, and
 * every pair of the table of moves, legal and illegal, written out here once
 * more by hand so that a change to the table has to be made twice on purpose;
 * and cv_hooks' delivery ids, which take an attempt's end as the table does.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_hooks.h"
#include "cv_message.h"
#include "cv_run.h"

#include <string.h>

static void test_names_round_trip(void **state) {
    static const char *const expected[CV_RUN_STATUS_COUNT] = {
        "",       "queued",    "running",   "retrying", "succeeded",
        "failed", "cancelled", "timed_out", "missed",   "skipped"};
    (void)state;
    for (int s = 0; s < CV_RUN_STATUS_COUNT; s++) {
        assert_string_equal(cv_run_status_name((cv_run_status)s), expected[s]);
        assert_int_equal(cv_run_status_parse(expected[s]), s);
    }
    assert_string_equal(cv_run_status_name(CV_RUN_STATUS_COUNT), "");
    assert_string_equal(cv_run_status_name((cv_run_status)-1), "");
    assert_int_equal(cv_run_status_parse(NULL), CV_RUN_NONE);
    assert_int_equal(cv_run_status_parse("Succeeded"), CV_RUN_NONE);
    assert_int_equal(cv_run_status_parse("done"), CV_RUN_NONE);
}

static void test_final_statuses(void **state) {
    (void)state;
    assert_false(cv_run_is_final(CV_RUN_NONE));
    assert_false(cv_run_is_final(CV_RUN_QUEUED));
    assert_false(cv_run_is_final(CV_RUN_RUNNING));
    assert_false(cv_run_is_final(CV_RUN_RETRYING));
    assert_true(cv_run_is_final(CV_RUN_SUCCEEDED));
    assert_true(cv_run_is_final(CV_RUN_FAILED));
    assert_true(cv_run_is_final(CV_RUN_CANCELLED));
    assert_true(cv_run_is_final(CV_RUN_TIMED_OUT));
    assert_true(cv_run_is_final(CV_RUN_MISSED));
    assert_true(cv_run_is_final(CV_RUN_SKIPPED));
    assert_false(cv_run_is_final(CV_RUN_STATUS_COUNT));
    /* The API once kept its own list without missed and skipped, and so
     * accepted a cancel of a tick that never ran. */
    assert_true(cv_run_name_is_final("missed"));
    assert_true(cv_run_name_is_final("skipped"));
    assert_false(cv_run_name_is_final("queued"));
    assert_false(cv_run_name_is_final(NULL));
    assert_false(cv_run_name_is_final("nonsense"));
}

/* Every (from, to) pair: the legal ones are listed, all others are illegal. */
static void test_every_move(void **state) {
    static const struct {
        cv_run_status from, to;
    } legal[] = {
        {CV_RUN_NONE, CV_RUN_QUEUED},       {CV_RUN_NONE, CV_RUN_MISSED},
        {CV_RUN_NONE, CV_RUN_SKIPPED},      {CV_RUN_NONE, CV_RUN_RUNNING},
        {CV_RUN_QUEUED, CV_RUN_RUNNING},    {CV_RUN_RETRYING, CV_RUN_RUNNING},
        {CV_RUN_RUNNING, CV_RUN_RUNNING},   {CV_RUN_RUNNING, CV_RUN_RETRYING},
        {CV_RUN_RUNNING, CV_RUN_SUCCEEDED}, {CV_RUN_RUNNING, CV_RUN_FAILED},
        {CV_RUN_RUNNING, CV_RUN_CANCELLED}, {CV_RUN_RUNNING, CV_RUN_TIMED_OUT},
    };
    int nlegal = 0;
    (void)state;
    for (int from = 0; from < CV_RUN_STATUS_COUNT; from++) {
        for (int to = 0; to < CV_RUN_STATUS_COUNT; to++) {
            bool want = false;
            for (size_t i = 0; i < sizeof(legal) / sizeof(legal[0]); i++)
                if (legal[i].from == (cv_run_status)from && legal[i].to == (cv_run_status)to)
                    want = true;
            if (cv_run_can_move((cv_run_status)from, (cv_run_status)to) != want)
                fail_msg("%s -> %s: expected %s", cv_run_status_name((cv_run_status)from),
                         cv_run_status_name((cv_run_status)to), want ? "legal" : "illegal");
            nlegal += want;
        }
    }
    assert_int_equal(nlegal, (int)(sizeof(legal) / sizeof(legal[0])));
    /* Out of range on either side is never legal. */
    assert_false(cv_run_can_move(CV_RUN_STATUS_COUNT, CV_RUN_RUNNING));
    assert_false(cv_run_can_move(CV_RUN_RUNNING, CV_RUN_STATUS_COUNT));
    assert_false(cv_run_can_move((cv_run_status)-1, CV_RUN_RUNNING));
    /* A final status is never left, whatever the target. */
    for (int from = CV_RUN_SUCCEEDED; from <= CV_RUN_SKIPPED; from++)
        for (int to = 0; to < CV_RUN_STATUS_COUNT; to++)
            assert_false(cv_run_can_move((cv_run_status)from, (cv_run_status)to));
}

static void test_sources_and_active(void **state) {
    cv_run_status out[CV_RUN_STATUS_COUNT];
    size_t n;
    (void)state;
    /* What the collector's filter for run.started accepts. */
    n = cv_run_sources(CV_RUN_RUNNING, out, CV_RUN_STATUS_COUNT);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], CV_RUN_QUEUED);
    assert_int_equal(out[1], CV_RUN_RUNNING);
    assert_int_equal(out[2], CV_RUN_RETRYING);
    /* An attempt ends only a running run. */
    for (int to = CV_RUN_RETRYING; to <= CV_RUN_TIMED_OUT; to++) {
        n = cv_run_sources((cv_run_status)to, out, CV_RUN_STATUS_COUNT);
        assert_int_equal(n, 1);
        assert_int_equal(out[0], CV_RUN_RUNNING);
    }
    /* Records the scheduler writes have no stored source. */
    assert_int_equal(cv_run_sources(CV_RUN_QUEUED, out, CV_RUN_STATUS_COUNT), 0);
    assert_int_equal(cv_run_sources(CV_RUN_MISSED, out, CV_RUN_STATUS_COUNT), 0);
    /* A short array is filled, never overrun. */
    out[1] = CV_RUN_STATUS_COUNT;
    assert_int_equal(cv_run_sources(CV_RUN_RUNNING, out, 1), 1);
    assert_int_equal(out[0], CV_RUN_QUEUED);
    assert_int_equal(out[1], CV_RUN_STATUS_COUNT);

    n = cv_run_active(out, CV_RUN_STATUS_COUNT);
    assert_int_equal(n, 3);
    assert_int_equal(out[0], CV_RUN_QUEUED);
    assert_int_equal(out[1], CV_RUN_RUNNING);
    assert_int_equal(out[2], CV_RUN_RETRYING);

    n = cv_run_finals(out, CV_RUN_STATUS_COUNT);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(out[i], CV_RUN_SUCCEEDED + (int)i);
}

static void test_event_targets(void **state) {
    (void)state;
    assert_int_equal(cv_run_event_target(CV_EVENT_RUN_QUEUED), CV_RUN_QUEUED);
    assert_int_equal(cv_run_event_target(CV_EVENT_RUN_STARTED), CV_RUN_RUNNING);
    assert_int_equal(cv_run_event_target(CV_EVENT_RUN_RETRYING), CV_RUN_RETRYING);
    assert_int_equal(cv_run_event_target(CV_EVENT_RUN_SUCCEEDED), CV_RUN_SUCCEEDED);
    assert_int_equal(cv_run_event_target(CV_EVENT_RUN_FAILED), CV_RUN_FAILED);
    assert_int_equal(cv_run_event_target(CV_EVENT_RUN_CANCELLED), CV_RUN_CANCELLED);
    assert_int_equal(cv_run_event_target(CV_EVENT_RUN_TIMED_OUT), CV_RUN_TIMED_OUT);
    assert_int_equal(cv_run_event_target(CV_EVENT_RUN_PROGRESS), CV_RUN_NONE);
    assert_int_equal(cv_run_event_target(CV_EVENT_RUN_LOG), CV_RUN_NONE);
    assert_int_equal(cv_run_event_target(CV_EVENT_JOB_REJECTED), CV_RUN_NONE);
    assert_int_equal(cv_run_event_target("run.exploded"), CV_RUN_NONE);
    assert_int_equal(cv_run_event_target(NULL), CV_RUN_NONE);
    /* Every event that moves a run moves it along a legal edge from somewhere. */
    for (int to = 1; to < CV_RUN_STATUS_COUNT; to++) {
        bool reachable = false;
        for (int from = 0; from < CV_RUN_STATUS_COUNT; from++)
            reachable |= cv_run_can_move((cv_run_status)from, (cv_run_status)to);
        assert_true(reachable);
    }
}

/* A start is delivered by its event; an attempt's end (retrying or final) once,
 * whichever report of it comes; an event without a run by its id. */
static void test_hooks_delivery_ids(void **state) {
    static const char *const by_event[] = {"run.started", "run.progress", "run.log"};
    static const char *const ends[] = {"run.retrying", "run.succeeded", "run.failed",
                                       "run.cancelled", "run.timed_out"};
    char id[CV_HOOKS_ID_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof(by_event) / sizeof(by_event[0]); i++) {
        cv_hooks_delivery_id("h", "e1", by_event[i], "r", 2, id);
        assert_string_equal(id, "h:e1");
    }
    for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
        cv_hooks_delivery_id("h", "e1", ends[i], "r", 2, id);
        assert_string_equal(id, "h:r.2.ended");
        cv_hooks_delivery_id("h", "e1", ends[i], NULL, 2, id);
        assert_string_equal(id, "h:e1");
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_round_trip), cmocka_unit_test(test_final_statuses),
        cmocka_unit_test(test_every_move),       cmocka_unit_test(test_sources_and_active),
        cmocka_unit_test(test_event_targets),    cmocka_unit_test(test_hooks_delivery_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
