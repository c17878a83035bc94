/*
 * test_httpc.c - the signature of a webhook delivery (cv_httpc_sign), the
 * value a receiver recomputes: HMAC-SHA256 of "<timestamp>.<body>" keyed
 * with the webhook's secret (expected values from Python's hmac module);
 * which addresses are not public, and a POST to one refused before it
 * connects. Deliveries themselves are in the system tests (test_webhooks.py).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_httpc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
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

static bool private_v4(const char *ip) {
    struct sockaddr_in a = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return cv_httpc_address_private((const struct sockaddr *)&a);
}

static bool private_v6(const char *ip) {
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    return cv_httpc_address_private((const struct sockaddr *)&a);
}

static void test_private_addresses(void **state) {
    static const char *const v4_private[] = {
        "0.0.0.0",    "10.1.2.3",   "100.64.0.1",     "127.0.0.1",   "169.254.169.254",
        "172.16.0.1", "172.31.9.9", "192.0.0.8",      "192.168.1.1", "198.18.0.1",
        "224.0.0.1",  "240.0.0.1",  "255.255.255.255"};
    static const char *const v4_public[] = {"1.1.1.1",    "8.8.8.8",        "100.128.0.1",
                                            "172.32.0.1", "169.253.1.1",    "192.169.0.1",
                                            "198.20.0.1", "223.255.255.254"};
    static const char *const v6_private[] = {
        "::",      "::1",     "fc00::1",          "fd12::1",
        "fe80::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1"};
    static const char *const v6_public[] = {"2001:4860:4860::8888", "2606:4700::1111",
                                            "::ffff:8.8.8.8"};
    (void)state;
    for (size_t i = 0; i < sizeof(v4_private) / sizeof(v4_private[0]); i++)
        assert_true(private_v4(v4_private[i]));
    for (size_t i = 0; i < sizeof(v4_public) / sizeof(v4_public[0]); i++)
        assert_false(private_v4(v4_public[i]));
    for (size_t i = 0; i < sizeof(v6_private) / sizeof(v6_private[0]); i++)
        assert_true(private_v6(v6_private[i]));
    for (size_t i = 0; i < sizeof(v6_public) / sizeof(v6_public[0]); i++)
        assert_false(private_v6(v6_public[i]));
}

/* A POST to the loopback is refused before it connects unless allowed: then
 * it connects (to a port nobody listens on, so the error is the system's). */
static void test_a_post_to_the_host_is_refused(void **state) {
    cv_httpc_result r;
    char errbuf[128];
    (void)state;
    assert_int_equal(cv_httpc_init(errbuf, sizeof(errbuf)), CV_OK);
    cv_httpc_post("http://127.0.0.1:9/", "{}", 2, NULL, 2000, CV_HTTPC_PUBLIC_ONLY, &r);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.error, "refused: 127.0.0.1 is not a public address "
                                 "(CONVUTELL_WEBHOOK_PRIVATE=allow lets webhooks reach the host "
                                 "and private networks)");
    cv_httpc_post("http://localhost:9/", "{}", 2, NULL, 2000, CV_HTTPC_PUBLIC_ONLY, &r);
    assert_int_equal(strncmp(r.error, "refused: ", 9), 0); /* by name too */
    cv_httpc_post("http://127.0.0.1:9/", "{}", 2, NULL, 2000, CV_HTTPC_ANY_ADDRESS, &r);
    assert_int_equal(r.status, 0);
    assert_int_not_equal(strncmp(r.error, "refused: ", 9), 0);
    assert_true(r.error[0] != '\0');
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_private_addresses),
        cmocka_unit_test(test_a_post_to_the_host_is_refused),
        cmocka_unit_test(test_signature_is_hmac_of_timestamp_dot_body),
        cmocka_unit_test(test_any_change_changes_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
