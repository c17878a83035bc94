/*
 * test_httpc.c - the signature of a webhook delivery (cv_httpc_sign), the
 * value a receiver recomputes: HMAC-SHA256 of "<timestamp>.<body>" keyed
 * with the webhook's secret (expected values from Python's hmac module).
 * Deliveries themselves are in the system tests (test_webhooks.py).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_httpc.h"

#include <string.h>

static void test_signature_is_hmac_of_timestamp_dot_body(void **state) {
    char sig[CV_HTTPC_SIGNATURE_LEN];
    (void)state;
    assert_int_equal(cv_httpc_init(NULL, 0), CV_OK);
    cv_httpc_sign("whsec-test-secret", 1733400000, "{\"a\":1}", 7, sig);
    assert_string_equal(sig,
                        "sha256=9b23ca96fa7aaf85828996f9f721b1e1c326f6821b7f1d1f70015660bfa42757");
}

static void test_any_change_changes_it(void **state) {
    char a[CV_HTTPC_SIGNATURE_LEN], b[CV_HTTPC_SIGNATURE_LEN];
    (void)state;
    cv_httpc_sign("whsec-test-secret", 1733400000, "{\"a\":1}", 7, a);
    cv_httpc_sign("whsec-test-secret", 1733400001, "{\"a\":1}", 7, b);
    assert_string_not_equal(a, b); /* another time */
    cv_httpc_sign("whsec-test-secreT", 1733400000, "{\"a\":1}", 7, b);
    assert_string_not_equal(a, b); /* another secret */
    cv_httpc_sign("whsec-test-secret", 1733400000, "{\"a\":2}", 7, b);
    assert_string_not_equal(a, b); /* another body */
    assert_int_equal(strlen(a), CV_HTTPC_SIGNATURE_LEN - 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_is_hmac_of_timestamp_dot_body),
        cmocka_unit_test(test_any_change_changes_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
