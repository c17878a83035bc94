/*
 * test_metrics.c - lib/cv_metrics: the text exposition format written out
 * exactly (HELP, TYPE, series sorted by label set, cumulative histogram
 * buckets with +Inf, sum and count), label escaping, the bound on series,
 * and cv_buf_printf() it builds the text with.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_buf.h"
#include "cv_metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The registry is the process's: each test uses names of its own, and finds
 * its metric's lines in the whole text. */
static char *metric_text(const char *name) {
    char *all = cv_metrics_render(), *start, *end, head[160];
    size_t n;

    assert_non_null(all);
    snprintf(head, sizeof(head), "# HELP %s ", name);
    start = strstr(all, head);
    assert_non_null(start);
    end = strstr(start + strlen(head), "# HELP ");
    n = end ? (size_t)(end - start) : strlen(start);
    char *out = strndup(start, n);
    free(all);
    return out;
}

static void test_counter_and_gauge(void **state) {
    (void)state;
    cv_metric *c = cv_metrics_register(CV_METRIC_COUNTER, "t_runs_total", "Runs.", NULL, 0);
    cv_metric *g = cv_metrics_register(CV_METRIC_GAUGE, "t_lag", "Lag.", NULL, 0);

    assert_ptr_equal(cv_metrics_register(CV_METRIC_COUNTER, "t_runs_total", "x", NULL, 0), c);
    cv_metrics_add(c, "status=\"succeeded\"", 2);
    cv_metrics_add(c, "status=\"failed\"", 1);
    cv_metrics_add(c, "status=\"succeeded\"", 1);
    cv_metrics_add(c, "status=\"failed\"", -5); /* a counter never goes down */
    cv_metrics_set(g, "", 7);
    cv_metrics_set(g, "", 3);
    char *text = metric_text("t_runs_total");
    assert_string_equal(text, "# HELP t_runs_total Runs.\n"
                              "# TYPE t_runs_total counter\n"
                              "t_runs_total{status=\"failed\"} 1\n"
                              "t_runs_total{status=\"succeeded\"} 3\n");
    free(text);
    text = metric_text("t_lag");
    assert_string_equal(text, "# HELP t_lag Lag.\n# TYPE t_lag gauge\nt_lag 3\n");
    free(text);
}

static void test_histogram(void **state) {
    (void)state;
    static const double bounds[] = {0.1, 1, 10};
    cv_metric *h = cv_metrics_register(CV_METRIC_HISTOGRAM, "t_seconds", "Time.", bounds, 3);

    cv_metrics_observe(h, "kind=\"sql\"", 0.05);
    cv_metrics_observe(h, "kind=\"sql\"", 0.1); /* on a bound: in that bucket (le) */
    cv_metrics_observe(h, "kind=\"sql\"", 5);
    cv_metrics_observe(h, "kind=\"sql\"", 100);
    cv_metrics_observe(h, "", 0.5);
    char *text = metric_text("t_seconds");
    assert_string_equal(text, "# HELP t_seconds Time.\n"
                              "# TYPE t_seconds histogram\n"
                              "t_seconds_bucket{le=\"0.1\"} 0\n"
                              "t_seconds_bucket{le=\"1\"} 1\n"
                              "t_seconds_bucket{le=\"10\"} 1\n"
                              "t_seconds_bucket{le=\"+Inf\"} 1\n"
                              "t_seconds_sum 0.5\n"
                              "t_seconds_count 1\n"
                              "t_seconds_bucket{kind=\"sql\",le=\"0.1\"} 2\n"
                              "t_seconds_bucket{kind=\"sql\",le=\"1\"} 2\n"
                              "t_seconds_bucket{kind=\"sql\",le=\"10\"} 3\n"
                              "t_seconds_bucket{kind=\"sql\",le=\"+Inf\"} 4\n"
                              "t_seconds_sum{kind=\"sql\"} 105.15000000000001\n"
                              "t_seconds_count{kind=\"sql\"} 4\n");
    free(text);
}

static void test_labels_escaped(void **state) {
    (void)state;
    char buf[64];

    assert_string_equal(cv_metrics_label(buf, sizeof(buf), "route", "a\"b\\c\nd"),
                        "route=\"a\\\"b\\\\c\\nd\"");
    /* Too long: cut, still NUL-ended within the buffer. */
    assert_string_equal(cv_metrics_label(buf, 12, "k", "0123456789"), "k=\"0123456\"");
}

static void test_series_are_bounded(void **state) {
    (void)state;
    cv_metric *c = cv_metrics_register(CV_METRIC_COUNTER, "t_many_total", "Many.", NULL, 0);
    char labels[32];

    for (int i = 0; i < CV_METRICS_SERIES_MAX + 10; i++) {
        snprintf(labels, sizeof(labels), "i=\"%05d\"", i);
        cv_metrics_add(c, labels, 1);
    }
    char *text = metric_text("t_many_total");
    /* The 10 label sets past the bound are counted together. */
    assert_non_null(strstr(text, "t_many_total{overflow=\"true\"} 10\n"));
    assert_null(strstr(text, "i=\"02048\""));
    assert_non_null(strstr(text, "i=\"02047\"} 1\n"));
    free(text);
}

static void test_buf_printf(void **state) {
    (void)state;
    cv_buf b = {0};
    char big[1000];

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_true(cv_buf_printf(&b, "%s=%d;", "a", 1));
    assert_true(cv_buf_printf(&b, "%s", big));
    assert_int_equal(b.len, 4 + 999);
    char *out = cv_buf_take(&b);
    assert_memory_equal(out, "a=1;xxx", 7);
    assert_int_equal(strlen(out), 1003);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge), cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_labels_escaped),    cmocka_unit_test(test_series_are_bounded),
        cmocka_unit_test(test_buf_printf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
