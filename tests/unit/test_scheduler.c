/*
 * test_scheduler.c - the pure parts of producer/cv_scheduler.c and the retry
 * fields of the job contract: which due ticks run under each misfire policy,
 * run ids derived from (job, tick), retry delays that double within their
 * jitter, and job messages that carry a trigger, a tick and a retry policy.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_message.h"
#include "cv_scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 INT64_C(1795841400000) /* 2026-11-28T04:50:00Z */
#define JOB "1c6f1a6d-9e4b-4a68-8b62-7d2020d1af8e"

/* Plans n ticks a second apart from T0 at `now` and compares the decision
 * with `want`, one letter per tick: R runs, - is missed. */
static void plan(const char *misfire, int max, int n, int64_t now, const char *want) {
    int64_t ticks[16];
    bool run[16];
    char got[17];
    int runs, want_runs = 0;

    for (int i = 0; i < n; i++)
        ticks[i] = T0 + i * 1000;
    runs = cv_scheduler_plan(misfire, max, ticks, n, now, run);
    for (int i = 0; i < n; i++) {
        got[i] = run[i] ? 'R' : '-';
        want_runs += want[i] == 'R';
    }
    got[n] = '\0';
    assert_string_equal(got, want);
    assert_int_equal(runs, want_runs);
}

static void test_misfire_policies(void **state) {
    (void)state;
    /* One tick on time runs under every policy. */
    plan("run_once", 100, 1, T0 + 20, "R");
    plan("skip", 100, 1, T0 + 20, "R");
    plan("run_all", 100, 1, T0 + 20, "R");
    /* Five ticks due, the newest on time. */
    plan("run_once", 100, 5, T0 + 4200, "----R");
    plan("skip", 100, 5, T0 + 4200, "----R");
    plan("run_all", 100, 5, T0 + 4200, "RRRRR");
    plan("run_all", 2, 5, T0 + 4200, "---RR"); /* at most misfire_max, the newest */
    /* A lone tick past the grace period is late. */
    plan("run_once", 100, 1, T0 + CV_MISFIRE_GRACE_MS + 1, "R");
    plan("skip", 100, 1, T0 + CV_MISFIRE_GRACE_MS + 1, "-");
    plan("run_all", 100, 1, T0 + CV_MISFIRE_GRACE_MS + 1, "R");
    plan("skip", 100, 1, T0 + CV_MISFIRE_GRACE_MS, "R"); /* exactly at the limit: on time */
    plan("skip", 100, 3, T0 + 2000 + CV_MISFIRE_GRACE_MS + 1, "---");
}

static void test_run_ids(void **state) {
    char a[CV_ID_LEN], b[CV_ID_LEN], c[CV_ID_LEN], d[CV_ID_LEN];
    (void)state;
    cv_scheduler_run_id(JOB, T0, a);
    cv_scheduler_run_id(JOB, T0, b);
    cv_scheduler_run_id(JOB, T0 + 1000, c);
    cv_scheduler_run_id("2d70217e-af5c-4b79-9c73-8e3131e2b09f", T0, d);
    assert_string_equal(a, b); /* the same in every scheduler */
    assert_string_not_equal(a, c);
    assert_string_not_equal(a, d);
    assert_true(cv_id_valid(a));
    assert_int_equal(a[14], '8');           /* UUID version 8 */
    assert_non_null(strchr("89ab", a[19])); /* RFC 4122 variant */
    /* sha256sum of "<job>@1795841400000" is 751c4bdacbef1ec7f8ec88db11b88886...:
     * its first 16 bytes with the version and variant bits set. */
    assert_string_equal(a, "751c4bda-cbef-8ec7-b8ec-88db11b88886");
}

static void test_retry_delays(void **state) {
    (void)state;
    for (int i = 0; i < 200; i++) {
        int64_t second = cv_job_retry_delay_ms(10, 2), third = cv_job_retry_delay_ms(10, 3);
        int64_t tenth = cv_job_retry_delay_ms(10, 10), late = cv_job_retry_delay_ms(3600, 40);
        assert_true(second >= 8000 && second < 12000);
        assert_true(third >= 16000 && third < 24000);
        assert_true(tenth >= 2048000 && tenth < 3072000);  /* 10 s * 2^8 */
        assert_true(late >= 69120000 && late < 103680000); /* capped at a day */
    }
}

static const char base_job[] =
    "{\"schema\":\"convutell.job.v2\",\"run_id\":\"0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7d\","
    "\"job_id\":\"" JOB "\",\"project_id\":\"2d70217e-af5c-4b79-9c73-8e3131e2b09f\","
    "\"kind\":\"sql\",\"attempt\":2,\"queued_at\":\"2026-11-28T04:50:00.250Z\"%s}";

static cv_err decode_with(const char *extra, cv_job *job, cv_verr *verr) {
    char text[1024];
    snprintf(text, sizeof(text), base_job, extra);
    return cv_job_decode(text, strlen(text), job, verr);
}

static void expect_bad(const char *extra, const char *field, const char *reason) {
    cv_job job;
    cv_verr verr;
    assert_int_equal(decode_with(extra, &job, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, field);
    assert_string_equal(verr.reason, reason);
}

static void test_trigger_and_retry_fields(void **state) {
    cv_job job;
    cv_verr verr;
    char *text, again[1024];
    (void)state;

    assert_int_equal(decode_with(",\"trigger\":\"schedule\",\"tick_at\":\"2026-11-28T04:50:00Z\","
                                 "\"max_attempts\":3,\"backoff_seconds\":5,"
                                 "\"not_before\":\"2026-11-28T04:50:10.500Z\"",
                                 &job, &verr),
                     CV_OK);
    assert_string_equal(job.trigger, "schedule");
    assert_true(job.tick_ms == T0);
    assert_int_equal(job.max_attempts, 3);
    assert_int_equal(job.backoff_seconds, 5);
    assert_true(job.not_before_ms == T0 + 10500);
    text = cv_job_encode(&job);
    cv_job_release(&job);
    assert_int_equal(cv_job_decode(text, strlen(text), &job, &verr), CV_OK);
    snprintf(again, sizeof(again), "%s", text);
    free(text);
    text = cv_job_encode(&job);
    assert_string_equal(text, again); /* round trip */
    free(text);
    cv_job_release(&job);

    /* Absent: an external run, one attempt, a minute's backoff. */
    assert_int_equal(decode_with("", &job, &verr), CV_OK);
    assert_string_equal(job.trigger, "");
    assert_int_equal(job.max_attempts, 1);
    assert_int_equal(job.backoff_seconds, 60);
    assert_true(job.tick_ms == 0 && job.not_before_ms == 0);
    cv_job_release(&job);

    expect_bad(",\"trigger\":\"cron\"", "trigger",
               "must be \"manual\", \"schedule\" or \"external\", not \"cron\"");
    expect_bad(",\"trigger\":\"manual\",\"tick_at\":\"2026-11-28T04:50:00Z\"", "tick_at",
               "is only for trigger \"schedule\"");
    expect_bad(",\"max_attempts\":0", "max_attempts", "must be between 1 and 100");
    expect_bad(",\"backoff_seconds\":86401", "backoff_seconds", "must be between 1 and 86400");
    expect_bad(",\"not_before\":\"soon\"", "not_before",
               "must be an RFC 3339 time such as \"2026-11-28T04:50:00.000Z\"");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_misfire_policies),
        cmocka_unit_test(test_run_ids),
        cmocka_unit_test(test_retry_delays),
        cmocka_unit_test(test_trigger_and_retry_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
