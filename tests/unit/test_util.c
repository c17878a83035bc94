/*
 * test_util.c - the small shared modules: cv_time (RFC 3339), cv_id (UUIDs),
 * cv_json (field checks), cv_err (names) and cv_secret (sealing at rest).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cv_err.h"
#include "cv_id.h"
#include "cv_json.h"
#include "cv_secret.h"
#include "cv_time.h"

#include <stdlib.h>
#include <string.h>

static void test_time_format(void **state) {
    char buf[CV_TIME_RFC3339_LEN];
    (void)state;
    cv_time_format(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    cv_time_format(1795841400123, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-28T04:50:00.123Z");
    cv_time_format(-1, buf, sizeof(buf));
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
}

static void test_time_parse(void **state) {
    int64_t ms;
    (void)state;
    assert_int_equal(cv_time_parse("2026-11-28T04:50:00.123Z", &ms), 0);
    assert_int_equal(ms, 1795841400123);
    assert_int_equal(cv_time_parse("2026-11-28T06:50:00+02:00", &ms), 0);
    assert_int_equal(ms, 1795841400000);
    assert_int_equal(cv_time_parse("2026-11-28t04:50:00.5z", &ms), 0);
    assert_int_equal(ms, 1795841400500);
    assert_int_equal(cv_time_parse("2024-02-29T00:00:00Z", &ms), 0);
    static const char *const bad[] = {"2025-02-29T00:00:00Z",
                                      "2026-13-01T00:00:00Z",
                                      "2026-11-28 04:50:00Z",
                                      "2026-11-28T04:50:00",
                                      "2026-11-28T24:00:00Z",
                                      "2026-11-28T04:50:00.Z",
                                      "2026-11-28T04:50:00Zjunk",
                                      "",
                                      NULL};
    for (const char *const *b = bad; *b; b++)
        assert_int_equal(cv_time_parse(*b, &ms), -1);
}

static void test_ids(void **state) {
    char ids[200][CV_ID_LEN];
    (void)state;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(cv_id_new(ids[i], sizeof(ids[i])), 0);
        assert_true(cv_id_valid(ids[i]));
        assert_int_equal(ids[i][14], '4');
        assert_non_null(strchr("89ab", ids[i][19]));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    }
    assert_true(cv_id_valid("0B5E0F5C-8D3A-4F57-9A51-6C1F1F0C9E7D"));
    assert_false(cv_id_valid("0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7"));
    assert_false(cv_id_valid("0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7dd"));
    assert_false(cv_id_valid("0b5e0f5c_8d3a-4f57-9a51-6c1f1f0c9e7d"));
    assert_false(cv_id_valid(NULL));
    assert_int_equal(cv_id_new(ids[0], 10), -1);
}

static void test_json_fields(void **state) {
    size_t at = 0;
    cJSON *obj = cv_json_parse("{\"s\":\"x\",\"n\":3,\"b\":true,\"z\":null} \n", 33, &at);
    const char *s;
    int64_t n = -1;
    bool b = false;
    cv_verr verr;
    static const char *const only_s[] = {"s", NULL};
    (void)state;
    assert_non_null(obj);
    assert_int_equal(cv_json_get_str(obj, NULL, "s", true, 5, &s, &verr), CV_OK);
    assert_string_equal(s, "x");
    assert_int_equal(cv_json_get_str(obj, "p", "n", true, 5, &s, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, "p.n");
    assert_string_equal(verr.reason, "must be a string");
    assert_int_equal(cv_json_get_str(obj, NULL, "z", false, 5, &s, &verr), CV_OK);
    assert_null(s);
    assert_int_equal(cv_json_get_str(obj, NULL, "z", true, 5, &s, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.reason, "is required");
    assert_int_equal(cv_json_get_int(obj, NULL, "n", true, 1, 2, &n, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.reason, "must be between 1 and 2");
    assert_int_equal(cv_json_get_int(obj, NULL, "n", true, 1, 5, &n, &verr), CV_OK);
    assert_int_equal(n, 3);
    assert_int_equal(cv_json_get_bool(obj, NULL, "b", true, &b, &verr), CV_OK);
    assert_true(b);
    assert_int_equal(cv_json_only(obj, NULL, only_s, "a thing", &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, "n");
    assert_string_equal(verr.reason, "is not a field of a thing");
    cJSON_Delete(obj);
    assert_null(cv_json_parse("{\"a\":1} x", 9, &at));
    assert_int_equal(at, 8);
}

static void test_table_names(void **state) {
    char long_part[70];
    (void)state;
    assert_true(cv_json_is_table_name("t"));
    assert_true(cv_json_is_table_name("_t9"));
    assert_true(cv_json_is_table_name("public.accounts_copy"));
    assert_false(cv_json_is_table_name("a.b.c"));
    assert_false(cv_json_is_table_name("9t"));
    assert_false(cv_json_is_table_name("t;drop"));
    assert_false(cv_json_is_table_name("t\""));
    assert_false(cv_json_is_table_name(".t"));
    assert_false(cv_json_is_table_name(""));
    memset(long_part, 'a', 64);
    long_part[64] = '\0';
    assert_false(cv_json_is_table_name(long_part));
    long_part[63] = '\0';
    assert_true(cv_json_is_table_name(long_part));
}

static void test_err_names(void **state) {
    (void)state;
    for (int e = 0; e < CV_ERR__COUNT; e++)
        assert_string_not_equal(cv_err_str((cv_err)e), "unknown");
    assert_string_equal(cv_err_str(CV_ERR_INVALID), "invalid");
    assert_string_equal(cv_err_str((cv_err)999), "unknown");
}

static void test_secret_seal_and_open(void **state) {
    unsigned char key[CV_SECRET_KEY_LEN], other[CV_SECRET_KEY_LEN];
    char err[256], *sealed = NULL, *again = NULL, *plain = NULL;
    const char *text = "Driver=PostgreSQL Unicode;PWD=s3cret;";
    (void)state;
    assert_int_equal(cv_secret_parse_key("000102030405060708090a0b0c0d0e0f"
                                         "101112131415161718191A1B1C1D1E1F",
                                         key, err, sizeof(err)),
                     CV_OK);
    memcpy(other, key, sizeof(key));
    other[0] ^= 1;
    assert_int_equal(cv_secret_seal(key, "conn-1", text, &sealed, err, sizeof(err)), CV_OK);
    assert_int_equal(cv_secret_seal(key, "conn-1", text, &again, err, sizeof(err)), CV_OK);
    assert_memory_equal(sealed, "v1:", 3);
    assert_null(strstr(sealed, "s3cret"));
    assert_string_not_equal(sealed, again); /* a fresh nonce each time */
    assert_int_equal(cv_secret_open(key, "conn-1", sealed, &plain, err, sizeof(err)), CV_OK);
    assert_string_equal(plain, text);
    free(plain);
    plain = NULL;
    assert_int_equal(cv_secret_open(key, "conn-2", sealed, &plain, err, sizeof(err)),
                     CV_ERR_INVALID);
    assert_string_equal(err, "secret does not decrypt: wrong CONVUTELL_SECRET_KEY, or altered");
    assert_int_equal(cv_secret_open(other, "conn-1", sealed, &plain, err, sizeof(err)),
                     CV_ERR_INVALID);
    sealed[10] = sealed[10] == 'A' ? 'B' : 'A';
    assert_int_equal(cv_secret_open(key, "conn-1", sealed, &plain, err, sizeof(err)),
                     CV_ERR_INVALID);
    assert_int_equal(cv_secret_open(key, "conn-1", "plain text", &plain, err, sizeof(err)),
                     CV_ERR_INVALID);
    assert_string_equal(err, "not a sealed secret");
    assert_null(plain);
    assert_int_equal(cv_secret_parse_key("xyz", key, err, sizeof(err)), CV_ERR_CONFIG);
    free(sealed);
    free(again);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_json_fields),
        cmocka_unit_test(test_table_names),
        cmocka_unit_test(test_err_names),
        cmocka_unit_test(test_secret_seal_and_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
