/*
 * test_throttle.c - how long a login waits after failed ones
 * (cv_throttle_delay, people/cv_throttle.c); the counting in the store is in
 * the system tests (test_people.py).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_throttle.h"

#define S INT64_C(1000)

static void test_free_failures_cost_nothing(void **state) {
    (void)state;
    for (int64_t f = 0; f < CV_THROTTLE_FREE_PAIR; f++)
        assert_int_equal(cv_throttle_delay(f, CV_THROTTLE_FREE_PAIR, 1000 * S, 1000 * S), 0);
    assert_int_equal(cv_throttle_delay(19, CV_THROTTLE_FREE_ADDRESS, 0, 0), 0);
    assert_int_equal(cv_throttle_delay(20, CV_THROTTLE_FREE_ADDRESS, 0, 0), 1 * S);
}

static void test_the_wait_doubles_from_the_last_failure(void **state) {
    int64_t last = 5000 * S;
    (void)state;
    assert_int_equal(cv_throttle_delay(5, 5, last, last), 1 * S);
    assert_int_equal(cv_throttle_delay(6, 5, last, last), 2 * S);
    assert_int_equal(cv_throttle_delay(7, 5, last, last), 4 * S);
    assert_int_equal(cv_throttle_delay(14, 5, last, last), 512 * S);
    assert_int_equal(cv_throttle_delay(7, 5, last, last + 3 * S), 1 * S); /* time passes */
    assert_int_equal(cv_throttle_delay(7, 5, last, last + 4 * S), 0);
}

static void test_the_lockout_window_bounds_it(void **state) {
    int64_t last = 5000 * S;
    (void)state;
    /* Never longer than the window, however many failures. */
    assert_int_equal(cv_throttle_delay(15, 5, last, last), CV_THROTTLE_WINDOW_MS);
    assert_int_equal(cv_throttle_delay(1000000, 5, last, last), CV_THROTTLE_WINDOW_MS);
    assert_int_equal(cv_throttle_delay(INT64_MAX, 5, last, last + 1), CV_THROTTLE_WINDOW_MS - 1);
    /* A window after the last failure, all is forgotten. */
    assert_int_equal(cv_throttle_delay(1000000, 5, last, last + CV_THROTTLE_WINDOW_MS), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_free_failures_cost_nothing),
        cmocka_unit_test(test_the_wait_doubles_from_the_last_failure),
        cmocka_unit_test(test_the_lockout_window_bounds_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
