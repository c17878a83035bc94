/*
 * test_connstr.c - the mask the REST API applies before a connection string
 * leaves the server (cv_connstr_mask, lib/cv_connstr.c). Identifier quoting,
 * once here, is in test_sqltext.c with the rest of a transfer's SQL text.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_connstr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compares a copy, so that a failing comparison leaks nothing (LeakSanitizer). */
static void expect_mask(const char *in, const char *out) {
    char *masked = NULL, shown[256], err[256] = "";
    if (cv_connstr_mask(in, &masked, err, sizeof(err)) != CV_OK)
        fail_msg("%s: %s", in, err);
    snprintf(shown, sizeof(shown), "%s", masked);
    free(masked);
    assert_string_equal(shown, out);
}

static void test_mask_password(void **state) {
    (void)state;
    expect_mask("Driver=X;PWD=secret;UID=u", "Driver=X;PWD=********;UID=u");
    expect_mask("PWD=secret", "PWD=********");
    expect_mask("Driver=X;PWD=secret;", "Driver=X;PWD=********;"); /* trailing ';' kept */
    expect_mask("Driver=X;pwd=secret", "Driver=X;pwd=********");
    expect_mask("Driver=X;Pwd=s;UID=u", "Driver=X;Pwd=********;UID=u");
    expect_mask("Driver=X;Password=secret;UID=u", "Driver=X;Password=********;UID=u");
    expect_mask("Driver=X;PASSWORD=secret", "Driver=X;PASSWORD=********");
    expect_mask("Driver=X; Password = secret ;", "Driver=X; Password =********;");
    expect_mask("Driver=X;  PWD=secret", "Driver=X;  PWD=********");
    expect_mask("UID=a;PWD=one;PWD=two", "UID=a;PWD=********;PWD=********");
    expect_mask("PWD=;UID=u", "PWD=********;UID=u"); /* the length is not shown either */
    expect_mask("PWD=a=b=c;UID=u", "PWD=********;UID=u");
}

static void test_mask_braced_values(void **state) {
    (void)state;
    expect_mask("PWD={a;b}", "PWD=********");
    expect_mask("Driver={PostgreSQL Unicode};PWD={a;b};UID=u",
                "Driver={PostgreSQL Unicode};PWD=********;UID=u");
    expect_mask("Driver={x;PWD=y};UID=u", "Driver={x;PWD=y};UID=u"); /* inside another value */
    expect_mask("Driver={a}}b};PWD={x}} y}", "Driver={a}}b};PWD=********");
}

/* psqlODBC passes Pqopt on to libpq: a password there is a password. */
static void test_mask_pqopt(void **state) {
    (void)state;
    expect_mask("Driver={PostgreSQL Unicode};Pqopt={password=hunter2 sslmode=require};UID=u",
                "Driver={PostgreSQL Unicode};Pqopt={password=******** sslmode=require};UID=u");
    expect_mask("pqopt={sslmode=require  PassWord='a b\\' c'}",
                "pqopt={sslmode=require  PassWord=********}");
    expect_mask("Pqopt={application_name=x}", "Pqopt={application_name=x}");
    /* Not libpq options: the whole value is hidden. */
    expect_mask("Pqopt={password='open}", "Pqopt={********}");
    expect_mask("Pqopt={not options}", "Pqopt={********}");
}

/* Other drivers' secrets go by their keys' names. */
static void test_mask_secret_keys(void **state) {
    (void)state;
    expect_mask("Driver=X;SSLPassword=a;AuthToken=b;ClientSecret=c;Passwd=d;UID=pwd",
                "Driver=X;SSLPassword=********;AuthToken=********;ClientSecret=********;"
                "Passwd=********;UID=pwd");
}

/* A string that does not parse is refused, with where. */
static void expect_refused(const char *in, const char *why) {
    char *masked = (char *)"untouched", err[256] = "";
    assert_int_equal(cv_connstr_mask(in, &masked, err, sizeof(err)), CV_ERR_INVALID);
    assert_null(masked);
    assert_string_equal(err, why);
}

static void test_mask_refuses_what_does_not_parse(void **state) {
    (void)state;
    expect_refused("PWD={unterminated;UID=u", "'{' at byte 5 is never closed");
    expect_refused("Driver=X;PWD={a}b;UID=u", "text after the closing '}' at byte 17");
    expect_refused("Driver=X;no pairs here",
                   "the attribute at byte 10 has no '=' (key=value expected)");
    expect_refused("Driver=X; =1", "empty key at byte 10");
}

static void test_mask_leaves_the_rest(void **state) {
    (void)state;
    expect_mask("Driver=SQLite3;Database=/x.db", "Driver=SQLite3;Database=/x.db");
    expect_mask("Driver=X;UID=pwd;Database=tokyo;Port=1", "Driver=X;UID=pwd;Database=tokyo;Port=1");
    expect_mask("DSN=mydsn", "DSN=mydsn");
    expect_mask(";;Driver=X;; ", ";;Driver=X;; ");
    expect_mask("", "");
}

/*
 * BUG (api/cv_api.c:69-71, cv_api_mask_odbc): ODBC writes a '}' inside a
 * braced value as "}}" (SQLDriverConnect syntax), so the password of
 * "PWD={a}}b;c}" is "a}b;c". The mask ends the value at the first '}', and the
 * tail "}b;c}" is copied to the output: part of the password reaches API
 * clients. The braced branch should skip each "}}" pair and end at the first
 * single '}'.
 */
static void test_bug_mask_escaped_brace_in_password(void **state) {
    (void)state;
    expect_mask("PWD={a}}b;c};UID=u", "PWD=********;UID=u");
}

static void test_mask_long_input(void **state) {
    size_t n = 20000;
    char *in = malloc(n * 6 + 1), *out;
    (void)state;
    assert_non_null(in);
    /* 20000 one-letter passwords: the mask is longer than the input. */
    for (size_t i = 0; i < n; i++)
        memcpy(in + i * 6, "PWD=x;", 6);
    in[n * 6] = '\0';
    char err[64];
    assert_int_equal(cv_connstr_mask(in, &out, err, sizeof(err)), CV_OK);
    assert_int_equal(strlen(out), n * 13);
    assert_memory_equal(out, "PWD=********;PWD=********;", 26);
    free(out);
    free(in);
}

static void expect_strip(const char *in, const char *out) {
    char *stripped = NULL, shown[256], err[256] = "";
    if (cv_connstr_strip(in, &stripped, err, sizeof(err)) != CV_OK)
        fail_msg("%s: %s", in, err);
    snprintf(shown, sizeof(shown), "%s", stripped);
    free(stripped);
    assert_string_equal(shown, out);
}

/* What a viewer sees: no user, no password, no libpq options, the rest as written. */
static void test_strip_credentials(void **state) {
    char *out = NULL, err[128];
    (void)state;
    expect_strip("Driver=X;PWD=secret;UID=u", "Driver=X;");
    expect_strip("Driver=X;UID=u;PWD=secret;Database=d", "Driver=X;Database=d");
    expect_strip("Driver={PostgreSQL Unicode};Server=h; User = u ;Password={a;b}}c};Port=5",
                 "Driver={PostgreSQL Unicode};Server=h;Port=5");
    expect_strip("Driver=X;Username=u;AuthToken=t;ClientSecret=s;Host=h", "Driver=X;Host=h");
    expect_strip("Driver=X;Pqopt={sslmode=require password=p};Host=h", "Driver=X;Host=h");
    expect_strip("Driver=X;UserName=u", "Driver=X;");
    expect_strip("Driver=X;UIDX=kept;Users=kept", "Driver=X;UIDX=kept;Users=kept");
    expect_strip("Driver=SQLite3;Database=/d/app.db", "Driver=SQLite3;Database=/d/app.db");
    expect_strip("", "");
    assert_int_equal(cv_connstr_strip("Driver=X;PWD={never", &out, err, sizeof(err)),
                     CV_ERR_INVALID);
    assert_null(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_password),
        cmocka_unit_test(test_mask_braced_values),
        cmocka_unit_test(test_mask_leaves_the_rest),
        cmocka_unit_test(test_mask_pqopt),
        cmocka_unit_test(test_mask_secret_keys),
        cmocka_unit_test(test_mask_refuses_what_does_not_parse),
        cmocka_unit_test(test_bug_mask_escaped_brace_in_password),
        cmocka_unit_test(test_mask_long_input),
        cmocka_unit_test(test_strip_credentials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
