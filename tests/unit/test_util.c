/*
 * test_util.c - the small shared modules in lib/: cv_time (RFC 3339 text and
 * clocks), cv_id (UUID version 4), cv_json (typed field checks for untrusted
 * JSON), cv_err (error names and messages), cv_secret (sealing at rest),
 * cv_bucket (the time buckets of long lists) and cv_tcp (keepalives on a
 * database's sockets).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_bucket.h"
#include "cv_err.h"
#include "cv_id.h"
#include "cv_json.h"
#include "cv_log.h"
#include "cv_secret.h"
#include "cv_tcp.h"
#include "cv_time.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- cv_time ---------------------------------------------------------------- */

static void expect_format(int64_t ms, const char *text) {
    char buf[CV_TIME_RFC3339_LEN];
    memset(buf, '#', sizeof(buf));
    cv_time_format(ms, buf, sizeof(buf));
    assert_string_equal(buf, text);
}

static void test_time_format(void **state) {
    (void)state;
    expect_format(0, "1970-01-01T00:00:00.000Z");
    expect_format(1, "1970-01-01T00:00:00.001Z");
    expect_format(1000, "1970-01-01T00:00:01.000Z");
    expect_format(-1, "1969-12-31T23:59:59.999Z");
    expect_format(-1000, "1969-12-31T23:59:59.000Z");
    expect_format(-1001, "1969-12-31T23:59:58.999Z");
    expect_format(INT64_C(1795841400123), "2026-11-28T04:50:00.123Z");
    expect_format(INT64_C(951782400000), "2000-02-29T00:00:00.000Z");
    expect_format(INT64_C(-2203891200000), "1900-03-01T00:00:00.000Z");
    expect_format(INT64_C(-62135596800000), "0001-01-01T00:00:00.000Z");
    expect_format(INT64_C(253402300799999), "9999-12-31T23:59:59.999Z");
}

static void expect_parse(const char *text, int64_t expected) {
    int64_t ms = -12345;
    if (cv_time_parse(text, &ms) != 0)
        fail_msg("cv_time_parse rejected \"%s\"", text);
    assert_int_equal(ms, expected);
}

static void test_time_parse(void **state) {
    (void)state;
    expect_parse("2026-11-28T04:50:00.123Z", INT64_C(1795841400123));
    expect_parse("2026-11-28T04:50:00Z", INT64_C(1795841400000));
    expect_parse("2026-11-28t04:50:00.5z", INT64_C(1795841400500));
    expect_parse("2026-11-28T04:50:00.05Z", INT64_C(1795841400050));
    expect_parse("2026-11-28T04:50:00.123456789Z", INT64_C(1795841400123)); /* truncated */
    expect_parse("2026-11-28T06:50:00+02:00", INT64_C(1795841400000));
    expect_parse("2026-11-28T06:50:00.250+02:00", INT64_C(1795841400250));
    expect_parse("2026-11-28T12:20:00+07:30", INT64_C(1795841400000));
    expect_parse("2026-11-27T23:50:00-05:00", INT64_C(1795841400000));
    expect_parse("2026-11-28T04:50:00+00:00", INT64_C(1795841400000));
    expect_parse("2026-11-28T04:50:00-00:00", INT64_C(1795841400000));
    expect_parse("1970-01-01T00:00:00Z", 0);
    expect_parse("1969-12-31T23:59:59.999Z", -1);
    expect_parse("2000-02-29T00:00:00Z", INT64_C(951782400000));
    expect_parse("2024-02-29T00:00:00Z", INT64_C(1709164800000));
    expect_parse("0001-01-01T00:00:00Z", INT64_C(-62135596800000));
    expect_parse("9999-12-31T23:59:59.999Z", INT64_C(253402300799999));
}

static void test_time_parse_rejects(void **state) {
    static const char *const bad[] = {
        "",
        "2026",
        "2025-02-29T00:00:00Z", /* not a leap year */
        "1900-02-29T00:00:00Z", /* divisible by 100 */
        "2100-02-29T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-31T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-00-10T00:00:00Z",
        "2026-11-00T00:00:00Z",
        "2026-11-28 04:50:00Z",
        "2026-11-28T04:50:00",
        "2026-11-28T24:00:00Z",
        "2026-11-28T04:60:00Z",
        "2026-11-28T04:50:61Z",
        "2026-11-28T04:50Z",
        "2026-11-28T04:50:00.Z",
        "2026-11-28T04:50:00,5Z",
        "2026-11-28T04:50:00Zjunk",
        "2026-11-28T04:50:00Z ",
        " 2026-11-28T04:50:00Z",
        "2026-11-28T04:50:00+02",
        "2026-11-28T04:50:00+0200",
        "2026-11-28T04:50:00+24:00",
        "2026-11-28T04:50:00+02:60",
        "2026-1-28T04:50:00Z",
        "2026/11/28T04:50:00Z",
        "+2026-11-28T04:50:00Z",
        "-001-11-28T04:50:00Z",
        NULL,
    };
    int64_t ms = 42;
    (void)state;
    for (const char *const *b = bad; *b; b++) {
        if (cv_time_parse(*b, &ms) != -1)
            fail_msg("cv_time_parse accepted \"%s\"", *b);
    }
    assert_int_equal(cv_time_parse(NULL, &ms), -1);
}

static void test_time_round_trip(void **state) {
    static const int64_t fixed[] = {0,
                                    1,
                                    -1,
                                    999,
                                    -999,
                                    -1000,
                                    INT64_C(1795841400123),
                                    INT64_C(951782400000),
                                    INT64_C(-62135596800000),
                                    INT64_C(253402300799999)};
    const int64_t lo = INT64_C(-62135596800000), span = INT64_C(253402300799999) - lo + 1;
    char buf[CV_TIME_RFC3339_LEN];
    uint64_t x = 88172645463325252u;
    int64_t ms, back;
    (void)state;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]) + 5000; i++) {
        if (i < sizeof(fixed) / sizeof(fixed[0])) {
            ms = fixed[i];
        } else { /* xorshift64: reproducible times over years 1 to 9999 */
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ms = lo + (int64_t)(x % (uint64_t)span);
        }
        cv_time_format(ms, buf, sizeof(buf));
        assert_int_equal(strlen(buf), 24);
        assert_int_equal(cv_time_parse(buf, &back), 0);
        assert_int_equal(back, ms);
    }
}

static void test_clocks(void **state) {
    int64_t now = cv_time_now_ms(), mono = cv_time_mono_ms();
    (void)state;
    assert_true(now > INT64_C(1767225600000)); /* after 2026-01-01 */
    assert_true(now < INT64_C(4102444800000)); /* before 2100-01-01 */
    assert_true(cv_time_mono_ms() >= mono);
    assert_true(cv_time_now_ms() >= now);
}

/* ---- cv_id -------------------------------------------------------------------- */

static int compare_ids(const void *a, const void *b) {
    return strcmp((const char *)a, (const char *)b);
}

static void test_new_ids(void **state) {
    enum { N = 1000 };
    char(*ids)[CV_ID_LEN] = calloc(N, CV_ID_LEN);
    (void)state;
    assert_non_null(ids);
    for (int i = 0; i < N; i++) {
        assert_int_equal(cv_id_new(ids[i], CV_ID_LEN), 0);
        assert_int_equal(strlen(ids[i]), 36);
        assert_true(cv_id_valid(ids[i]));
        for (int j = 0; j < 36; j++) {
            if (j == 8 || j == 13 || j == 18 || j == 23)
                assert_int_equal(ids[i][j], '-');
            else
                assert_non_null(strchr("0123456789abcdef", ids[i][j])); /* lower case */
        }
        assert_int_equal(ids[i][14], '4');           /* version 4 */
        assert_non_null(strchr("89ab", ids[i][19])); /* RFC 4122 variant */
    }
    qsort(ids, N, CV_ID_LEN, compare_ids);
    for (int i = 1; i < N; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
}

static void test_id_buffer_size(void **state) {
    char buf[CV_ID_LEN + 1];
    (void)state;
    memset(buf, '#', sizeof(buf));
    assert_int_equal(cv_id_new(buf, CV_ID_LEN - 1), -1);
    assert_int_equal(buf[0], '#'); /* nothing written */
    assert_int_equal(cv_id_new(buf, CV_ID_LEN), 0);
    assert_int_equal(buf[36], '\0');
    assert_int_equal(buf[37], '#');
}

static void test_id_valid(void **state) {
    static const char *const bad[] = {
        "",
        "0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7",   /* 35 characters */
        "0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7dd", /* 37 */
        "0b5e0f5c_8d3a-4f57-9a51-6c1f1f0c9e7d",
        "0b5e0f5c-8d3a-4f57-9a51+6c1f1f0c9e7d",
        "0b5e0f5c8-d3a-4f57-9a51-6c1f1f0c9e7d",
        "0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7g",
        "{0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7d}",
        "0b5e0f5c8d3a4f579a516c1f1f0c9e7d",
        " 0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7d",
        NULL,
    };
    (void)state;
    assert_true(cv_id_valid("0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7d"));
    assert_true(cv_id_valid("0B5E0F5C-8D3A-4F57-9A51-6C1F1F0C9E7D"));
    assert_true(cv_id_valid("0b5E0f5C-8d3A-4f57-9A51-6c1F1f0c9E7d"));
    assert_true(cv_id_valid("00000000-0000-0000-0000-000000000000")); /* form only */
    for (const char *const *b = bad; *b; b++) {
        if (cv_id_valid(*b))
            fail_msg("cv_id_valid accepted \"%s\"", *b);
    }
    assert_false(cv_id_valid(NULL));
}

/* ---- cv_json ------------------------------------------------------------------ */

static void test_json_parse(void **state) {
    static const char garbage[] = "{\"a\":1}garbage";
    size_t at = 99;
    cJSON *v;
    (void)state;
    v = cv_json_parse("{\"a\":1} \t\r\n", 11, &at);
    assert_non_null(v);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(v, "a")->valueint, 1);
    assert_int_equal(at, 99); /* untouched on success */
    cJSON_Delete(v);
    v = cv_json_parse("  [1,2]  ", 9, &at);
    assert_true(cJSON_IsArray(v));
    cJSON_Delete(v);
    /* Only `len` bytes are read: what follows them is not trailing garbage. */
    v = cv_json_parse(garbage, 7, &at);
    assert_true(cJSON_IsObject(v));
    cJSON_Delete(v);
    assert_null(cv_json_parse(garbage, sizeof(garbage) - 1, &at));
    assert_int_equal(at, 7);
    assert_null(cv_json_parse("{\"a\":1} x", 9, &at));
    assert_int_equal(at, 8);
    assert_null(cv_json_parse("{\"a\":1}{}", 9, &at));
    assert_int_equal(at, 7);
    assert_null(cv_json_parse("1 2", 3, &at));
    assert_int_equal(at, 2);
    assert_null(cv_json_parse("{\"a\":", 5, &at));
    assert_null(cv_json_parse("", 0, &at));
    assert_int_equal(at, 0);
}

static void test_json_get_str(void **state) {
    cJSON *obj = cJSON_Parse("{\"s\":\"abcde\",\"n\":3,\"e\":\"\",\"z\":null}");
    const char *s = "stale";
    cv_verr verr;
    (void)state;
    assert_non_null(obj);
    assert_int_equal(cv_json_get_str(obj, NULL, "s", true, 5, &s, &verr), CV_OK);
    assert_string_equal(s, "abcde");
    assert_int_equal(cv_json_get_str(obj, "p", "s", true, 4, &s, &verr), CV_ERR_INVALID);
    assert_null(s);
    assert_string_equal(verr.field, "p.s");
    assert_string_equal(verr.reason, "must be at most 4 bytes long");
    assert_int_equal(cv_json_get_str(obj, "p.q", "n", true, 5, &s, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, "p.q.n");
    assert_string_equal(verr.reason, "must be a string");
    assert_int_equal(cv_json_get_str(obj, "", "e", false, 5, &s, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, "e");
    assert_string_equal(verr.reason, "must not be empty");
    assert_int_equal(cv_json_get_str(obj, NULL, "z", false, 5, &s, &verr), CV_OK);
    assert_null(s);
    assert_int_equal(cv_json_get_str(obj, NULL, "absent", false, 5, &s, &verr), CV_OK);
    assert_null(s);
    assert_int_equal(cv_json_get_str(obj, NULL, "z", true, 5, &s, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, "z");
    assert_string_equal(verr.reason, "is required");
    assert_int_equal(cv_json_get_str(obj, NULL, "S", true, 5, &s, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.reason, "is required"); /* names are case-sensitive */
    cJSON_Delete(obj);
}

static void test_json_get_int_bool_id(void **state) {
    cJSON *obj = cJSON_Parse("{\"n\":3,\"neg\":-3,\"f\":1.5,\"e\":1e3,\"s\":\"1\",\"t\":true,"
                             "\"id\":\"0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7d\",\"bad\":\"x\"}");
    int64_t n = 77;
    bool b = false;
    const char *id;
    cv_verr verr;
    (void)state;
    assert_non_null(obj);
    assert_int_equal(cv_json_get_int(obj, NULL, "n", true, 1, 5, &n, &verr), CV_OK);
    assert_int_equal(n, 3);
    assert_int_equal(cv_json_get_int(obj, NULL, "e", true, 0, 1000, &n, &verr), CV_OK);
    assert_int_equal(n, 1000);
    assert_int_equal(cv_json_get_int(obj, NULL, "n", true, 1, 2, &n, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, "n");
    assert_string_equal(verr.reason, "must be between 1 and 2");
    assert_int_equal(cv_json_get_int(obj, "x", "neg", true, -2, -1, &n, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, "x.neg");
    assert_string_equal(verr.reason, "must be between -2 and -1");
    assert_int_equal(cv_json_get_int(obj, NULL, "f", true, 0, 5, &n, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.reason, "must be an integer");
    assert_int_equal(cv_json_get_int(obj, NULL, "s", true, 0, 5, &n, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.reason, "must be an integer");
    assert_int_equal(cv_json_get_int(obj, NULL, "t", true, 0, 5, &n, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.reason, "must be an integer");
    n = 77;
    assert_int_equal(cv_json_get_int(obj, NULL, "absent", false, 0, 5, &n, &verr), CV_OK);
    assert_int_equal(n, 77); /* left unchanged */
    assert_int_equal(cv_json_get_int(obj, NULL, "absent", true, 0, 5, &n, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.reason, "is required");

    assert_int_equal(cv_json_get_bool(obj, NULL, "t", true, &b, &verr), CV_OK);
    assert_true(b);
    assert_int_equal(cv_json_get_bool(obj, "o", "n", true, &b, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, "o.n");
    assert_string_equal(verr.reason, "must be true or false");
    b = true;
    assert_int_equal(cv_json_get_bool(obj, NULL, "absent", false, &b, &verr), CV_OK);
    assert_true(b);

    assert_int_equal(cv_json_get_id(obj, NULL, "id", true, &id, &verr), CV_OK);
    assert_string_equal(id, "0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7d");
    assert_int_equal(cv_json_get_id(obj, "c", "bad", true, &id, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, "c.bad");
    assert_string_equal(verr.reason, "must be an id (a UUID such as "
                                     "\"0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7d\")");
    assert_int_equal(cv_json_get_id(obj, NULL, "absent", false, &id, &verr), CV_OK);
    assert_null(id);
    cJSON_Delete(obj);
}

static void test_json_only_and_verr(void **state) {
    static const char *const allowed[] = {"a", "b", NULL};
    static const char *const none[] = {NULL};
    cJSON *obj = cJSON_Parse("{\"a\":1,\"b\":2}");
    cJSON *extra = cJSON_Parse("{\"a\":1,\"password\":2,\"c\":3}");
    cJSON *empty = cJSON_Parse("{}");
    cv_verr verr = {"", ""};
    (void)state;
    assert_int_equal(cv_json_only(obj, NULL, allowed, "a thing", &verr), CV_OK);
    assert_int_equal(cv_json_only(empty, NULL, none, "nothing", &verr), CV_OK);
    assert_int_equal(cv_json_only(extra, NULL, allowed, "a thing", &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, "password"); /* the first unknown member */
    assert_string_equal(verr.reason, "is not a field of a thing");
    assert_int_equal(cv_json_only(extra, "outer", allowed, "outer", &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, "outer.password");
    assert_string_equal(verr.reason, "is not a field of outer");
    assert_int_equal(cv_json_only(obj, NULL, none, "x", &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, "a");
    assert_int_equal(cv_verr_set(&verr, NULL, "f", "n=%d %s", 5, "x"), CV_ERR_INVALID);
    assert_string_equal(verr.field, "f");
    assert_string_equal(verr.reason, "n=5 x");
    assert_int_equal(cv_verr_set(&verr, "", "f", "r"), CV_ERR_INVALID);
    assert_string_equal(verr.field, "f");
    assert_int_equal(cv_verr_set(&verr, "a.b", "f", "r"), CV_ERR_INVALID);
    assert_string_equal(verr.field, "a.b.f");
    assert_int_equal(cv_verr_set(NULL, "a", "f", "r"), CV_ERR_INVALID);
    cJSON_Delete(obj);
    cJSON_Delete(extra);
    cJSON_Delete(empty);
}

static void test_table_names(void **state) {
    static const char *const good[] = {
        "t", "_", "_t9", "T", "schema.table", "public.accounts_copy", "a_1._b2", NULL};
    static const char *const bad[] = {"",   "a.b.c", "9t",    "t;drop", "t\"", "t`",
                                      ".t", "t.",    ".",     "a..b",   "a b", "t-x",
                                      "é",  "a.9b",  "a.b c", "t\n",    NULL};
    char name[200];
    (void)state;
    for (const char *const *g = good; *g; g++) {
        if (!cv_json_is_table_name(*g))
            fail_msg("rejected table name \"%s\"", *g);
    }
    for (const char *const *b = bad; *b; b++) {
        if (cv_json_is_table_name(*b))
            fail_msg("accepted table name \"%s\"", *b);
    }
    assert_false(cv_json_is_table_name(NULL));
    /* Each part is at most 63 bytes (the PostgreSQL limit). */
    memset(name, 'a', 64);
    name[64] = '\0';
    assert_false(cv_json_is_table_name(name));
    name[63] = '\0';
    assert_true(cv_json_is_table_name(name));
    snprintf(name, sizeof(name), "%063d.%063d", 0, 0);
    name[0] = name[64] = 's';
    assert_true(cv_json_is_table_name(name)); /* 63 + 1 + 63 */
    snprintf(name, sizeof(name), "s.%064d", 0);
    name[2] = 't';
    assert_false(cv_json_is_table_name(name)); /* second part of 64 */
    snprintf(name, sizeof(name), "%064d.t", 0);
    name[0] = 's';
    assert_false(cv_json_is_table_name(name)); /* first part of 64 */
}

/* ---- cv_err ------------------------------------------------------------------- */

static void test_err_names(void **state) {
    (void)state;
    for (int e = 0; e < CV_ERR__COUNT; e++) {
        const char *name = cv_err_str((cv_err)e);
        assert_non_null(name);
        assert_string_not_equal(name, "unknown");
        assert_true(strlen(name) > 0);
        for (int f = 0; f < e; f++)
            assert_string_not_equal(cv_err_str((cv_err)f), name);
    }
    assert_string_equal(cv_err_str(CV_OK), "ok");
    assert_string_equal(cv_err_str(CV_ERR_INVALID), "invalid");
    assert_string_equal(cv_err_str(CV_ERR_NOMEM), "out_of_memory");
    assert_string_equal(cv_err_str(CV_ERR_MONGO), "mongodb");
    assert_string_equal(cv_err_str(CV_ERR_CANCELLED), "cancelled");
    assert_string_equal(cv_err_str(CV_ERR__COUNT), "unknown");
    assert_string_equal(cv_err_str((cv_err)999), "unknown");
    assert_string_equal(cv_err_str((cv_err)-1), "unknown");
}

static void test_err_set(void **state) {
    char buf[8];
    (void)state;
    assert_int_equal(cv_err_set(buf, sizeof(buf), CV_ERR_IO, "%s %d", "abc", 12), CV_ERR_IO);
    assert_string_equal(buf, "abc 12");
    assert_int_equal(cv_err_set(buf, sizeof(buf), CV_ERR_TIMEOUT, "%s", "0123456789"),
                     CV_ERR_TIMEOUT);
    assert_string_equal(buf, "0123456"); /* truncated, still terminated */
    assert_int_equal(cv_err_set(NULL, 0, CV_ERR_ODBC, "%s", "nowhere"), CV_ERR_ODBC);
    buf[0] = 'q';
    assert_int_equal(cv_err_set(buf, 0, CV_ERR_KAFKA, "%s", "nowhere"), CV_ERR_KAFKA);
    assert_int_equal(buf[0], 'q');
}

/* ---- cv_secret ---------------------------------------------------------------- */

/* During a rotation a value opens with the current key or any old one, and
 * says which. */
static void test_secret_open_any_key_of_a_rotation(void **state) {
    unsigned char now[CV_SECRET_KEY_LEN], old[3][CV_SECRET_KEY_LEN];
    char err[256], *sealed = NULL, *plain = NULL;
    int by = 99;
    (void)state;
    memset(now, 7, sizeof(now));
    for (int i = 0; i < 3; i++)
        memset(old[i], 20 + i, sizeof(old[i]));
    assert_int_equal(cv_secret_seal(old[1], "c", "PWD=x", &sealed, err, sizeof(err)), CV_OK);
    assert_int_equal(cv_secret_open_any(now, (const unsigned char(*)[CV_SECRET_KEY_LEN])old, 3, "c",
                                        sealed, &plain, &by, err, sizeof(err)),
                     CV_OK);
    assert_string_equal(plain, "PWD=x");
    assert_int_equal(by, 2);
    free(plain);
    plain = NULL;
    /* The old key gone: it no longer opens, and the error says so. */
    assert_int_equal(cv_secret_open_any(now, (const unsigned char(*)[CV_SECRET_KEY_LEN])old, 1, "c",
                                        sealed, &plain, &by, err, sizeof(err)),
                     CV_ERR_INVALID);
    assert_int_equal(by, -1);
    assert_null(plain);
    free(sealed);
    assert_int_equal(cv_secret_seal(now, "c", "PWD=y", &sealed, err, sizeof(err)), CV_OK);
    assert_int_equal(cv_secret_open_any(now, NULL, 0, "c", sealed, &plain, &by, err, sizeof(err)),
                     CV_OK);
    assert_int_equal(by, 0);
    assert_string_equal(plain, "PWD=y");
    free(plain);
    free(sealed);
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
    assert_int_equal(key[0], 0x00);
    assert_int_equal(key[26], 0x1a);
    assert_int_equal(key[31], 0x1f);
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
    assert_string_equal(err, "must be 64 hex digits (openssl rand -hex 32), not 3 characters");
    free(sealed);
    free(again);
}

/* ---- cv_bucket -------------------------------------------------------------- */

static void test_bucket_keys(void **state) {
    static const char *want[CV_BUCKET_LEVELS] = {"job-1@2026-11-28T04:57", "job-1@2026-11-28T04:5",
                                                 "job-1@2026-11-28T04", "job-1@2026-11-28",
                                                 "job-1@2026-11"};
    int64_t ms;
    char key[CV_BUCKET_KEY_MAX];
    bson_t *doc = bson_new();
    bson_iter_t it, keys;
    int n = 0;

    (void)state;
    assert_int_equal(cv_time_parse("2026-11-28T04:57:09.123Z", &ms), 0);
    for (int level = 0; level < CV_BUCKET_LEVELS; level++) {
        cv_bucket_key("job-1", (cv_bucket_level)level, ms, key);
        assert_string_equal(key, want[level]);
    }
    /* The document carries every level, finest first. */
    cv_bucket_append(doc, "job-1", ms);
    assert_true(bson_iter_init_find(&it, doc, CV_BUCKET_FIELD));
    assert_true(BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &keys));
    while (bson_iter_next(&keys)) {
        assert_true(n < CV_BUCKET_LEVELS);
        assert_string_equal(bson_iter_utf8(&keys, NULL), want[n++]);
    }
    assert_int_equal(n, CV_BUCKET_LEVELS);
    bson_destroy(doc);
}

static void expect_start(cv_bucket_level level, const char *at, const char *start) {
    int64_t ms, want;
    assert_int_equal(cv_time_parse(at, &ms), 0);
    assert_int_equal(cv_time_parse(start, &want), 0);
    assert_int_equal(cv_bucket_start(level, ms), want);
    /* The start is in the bucket, the millisecond before it is not. */
    char a[CV_BUCKET_KEY_MAX], b[CV_BUCKET_KEY_MAX];
    cv_bucket_key("j", level, ms, a);
    cv_bucket_key("j", level, want, b);
    assert_string_equal(a, b);
    cv_bucket_key("j", level, want - 1, b);
    assert_string_not_equal(a, b);
}

static void test_bucket_start(void **state) {
    (void)state;
    expect_start(CV_BUCKET_MINUTE, "2026-11-28T04:57:09.123Z", "2026-11-28T04:57:00.000Z");
    expect_start(CV_BUCKET_TEN_MINUTES, "2026-11-28T04:57:09.123Z", "2026-11-28T04:50:00.000Z");
    expect_start(CV_BUCKET_HOUR, "2026-11-28T04:57:09.123Z", "2026-11-28T04:00:00.000Z");
    expect_start(CV_BUCKET_DAY, "2026-11-28T04:57:09.123Z", "2026-11-28T00:00:00.000Z");
    expect_start(CV_BUCKET_MONTH, "2026-11-28T04:57:09.123Z", "2026-11-01T00:00:00.000Z");
    expect_start(CV_BUCKET_MONTH, "2024-02-29T23:59:59.999Z", "2024-02-01T00:00:00.000Z");
    expect_start(CV_BUCKET_MONTH, "2027-01-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z");
    expect_start(CV_BUCKET_MINUTE, "2026-11-28T04:57:00.000Z", "2026-11-28T04:57:00.000Z");
    /* Before the epoch, a bucket still starts at or before its times. */
    expect_start(CV_BUCKET_HOUR, "1969-12-31T23:30:00.000Z", "1969-12-31T23:00:00.000Z");
    expect_start(CV_BUCKET_MONTH, "1969-12-31T23:30:00.000Z", "1969-12-01T00:00:00.000Z");
    assert_true(cv_bucket_span(CV_BUCKET_MINUTE) == 60000);
    assert_true(cv_bucket_span(CV_BUCKET_DAY) == 86400000);
}

/* CONVUTELL_LOG_FORMAT=json: one object a line, whatever the text holds. */
static void test_log_json(void **state) {
    char out[1024];
    cJSON *rec;
    (void)state;
    cv_log_init("worker", CV_LOG_DEBUG, true);
    cv_log_format(CV_LOG_WARN, "run \"x\" \\ done\nforged \xff", out, sizeof(out));
    assert_null(strchr(out, '\n'));
    rec = cJSON_Parse(out);
    assert_non_null(rec);
    assert_string_equal(cJSON_GetObjectItem(rec, "level")->valuestring, "warn");
    assert_string_equal(cJSON_GetObjectItem(rec, "service")->valuestring, "worker");
    assert_string_equal(cJSON_GetObjectItem(rec, "message")->valuestring,
                        "run \"x\" \\ done\\nforged \\xff");
    assert_int_equal(strlen(cJSON_GetObjectItem(rec, "time")->valuestring), 24);
    cJSON_Delete(rec);
    cv_log_init("worker", CV_LOG_DEBUG, false);
    cv_log_format(CV_LOG_INFO, "plain\tline", out, sizeof(out));
    assert_string_equal(out + 24, " INFO worker: plain\\tline");
}

static void expect_text_bad(const char *text, size_t len, size_t at, const char *what) {
    size_t got = 0;
    const char *said = "";
    assert_false(cv_json_text_ok(text, len, &got, &said));
    assert_int_equal(got, at);
    assert_string_equal(said, what);
}

/* A request body is UTF-8 without NUL before it is parsed. */
static void test_json_text_ok(void **state) {
    size_t at = 0;
    const char *what = "";
    (void)state;
    assert_true(
        cv_json_text_ok("{\"name\": \"caf\xc3\xa9 \\\\u0000 \\\" \\u0001\"}", 34, &at, &what));
    expect_text_bad("{\"name\": \"\xff\"}", 13, 11, "a byte that is not UTF-8");
    expect_text_bad("{\"a\": \"\xc3\"}", 10, 8, "a byte that is not UTF-8");
    expect_text_bad("{\"a\": 1}\0", 9, 9, "a NUL byte");
    expect_text_bad("{\"name\\u0000x\": 1}", 18, 7, "a NUL character (\\u0000)");
    expect_text_bad("{\"a\": \"x\\u0000\"}", 16, 9, "a NUL character (\\u0000)");
}

/* A log record stays one line, whatever bytes a message put into its text. */
static void test_log_escape(void **state) {
    char out[256];
    (void)state;
    cv_log_escape("plain text, caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", out, sizeof(out));
    assert_string_equal(out, "plain text, caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
    cv_log_escape("schema\n2026-12-04T00:00:00.000Z INFO worker: forged", out, sizeof(out));
    assert_string_equal(out, "schema\\n2026-12-04T00:00:00.000Z INFO worker: forged");
    cv_log_escape("a\r\tb\x1b[31mred\x7f", out, sizeof(out));
    assert_string_equal(out, "a\\r\\tb\\x1b[31mred\\x7f");
    /* Not UTF-8: a lone continuation byte, a cut sequence, an overlong form,
     * a surrogate; and a C1 control (CSI). */
    cv_log_escape("\xff \x80 \xe2\x82 \xc0\xaf \xed\xa0\x80 \xc2\x9b", out, sizeof(out));
    assert_string_equal(out, "\\xff \\x80 \\xe2\\x82 \\xc0\\xaf \\xed\\xa0\\x80 \\u009b");
    /* Cut at a whole character or escape. */
    assert_int_equal(cv_log_escape("ab\n", out, 4), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(cv_log_escape("\xc3\xa9\xc3\xa9", out, 4), 2);
    assert_string_equal(out, "\xc3\xa9");
}

/* ---- cv_tcp ----------------------------------------------------------------- */

static int sockopt(int fd, int level, int name) {
    int value = -1;
    socklen_t len = sizeof(value);
    assert_int_equal(getsockopt(fd, level, name, &value, &len), 0);
    return value;
}

/* A connection to a listener on loopback, keepalives on with the kernel's
 * times, gets idle 30 s, interval 10 s, 3 probes and a 30 s user timeout; the
 * accepted side (whose peer is the client's port) and a socket to another port
 * are left alone, and a second call finds nothing left to set. */
static void test_tcp_keepalive_port(void **state) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(addr);
    int listener = socket(AF_INET, SOCK_STREAM, 0), client = socket(AF_INET, SOCK_STREAM, 0);
    int accepted, port;

    (void)state;
    assert_true(listener >= 0 && client >= 0);
    assert_int_equal(bind(listener, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(listener, 1), 0);
    assert_int_equal(getsockname(listener, (struct sockaddr *)&addr, &len), 0);
    port = ntohs(addr.sin_port);
    assert_int_equal(connect(client, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_true((accepted = accept(listener, NULL, NULL)) >= 0);

    /* As MariaDB's client library leaves it: keepalives on, the kernel's times. */
    assert_int_equal(setsockopt(client, SOL_SOCKET, SO_KEEPALIVE, &(int){1}, sizeof(int)), 0);
    assert_int_equal(sockopt(client, IPPROTO_TCP, TCP_USER_TIMEOUT), 0);
    assert_int_equal(cv_tcp_keepalive_port(port == 65535 ? 1 : port + 1), 0);
    assert_int_equal(cv_tcp_keepalive_port(port), 1);
    assert_int_equal(sockopt(client, SOL_SOCKET, SO_KEEPALIVE), 1);
    assert_int_equal(sockopt(client, IPPROTO_TCP, TCP_KEEPIDLE), CV_TCP_IDLE_S);
    assert_int_equal(sockopt(client, IPPROTO_TCP, TCP_KEEPINTVL), CV_TCP_INTERVAL_S);
    assert_int_equal(sockopt(client, IPPROTO_TCP, TCP_KEEPCNT), CV_TCP_COUNT);
    assert_int_equal(sockopt(client, IPPROTO_TCP, TCP_USER_TIMEOUT), CV_TCP_USER_TIMEOUT_MS);
    assert_int_equal(sockopt(accepted, IPPROTO_TCP, TCP_USER_TIMEOUT), 0);
    assert_int_equal(cv_tcp_keepalive_port(port), 0);
    close(accepted);
    close(client);
    close(listener);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_escape),
        cmocka_unit_test(test_json_text_ok),
        cmocka_unit_test(test_log_json),
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_time_parse_rejects),
        cmocka_unit_test(test_time_round_trip),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_new_ids),
        cmocka_unit_test(test_id_buffer_size),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_json_parse),
        cmocka_unit_test(test_json_get_str),
        cmocka_unit_test(test_json_get_int_bool_id),
        cmocka_unit_test(test_json_only_and_verr),
        cmocka_unit_test(test_table_names),
        cmocka_unit_test(test_err_names),
        cmocka_unit_test(test_err_set),
        cmocka_unit_test(test_secret_seal_and_open),
        cmocka_unit_test(test_secret_open_any_key_of_a_rotation),
        cmocka_unit_test(test_bucket_keys),
        cmocka_unit_test(test_bucket_start),
        cmocka_unit_test(test_tcp_keepalive_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
