/*
 * test_odbcpool.c - the connections a worker keeps between sql jobs
 * (cv_odbcpool), on SQLite through its ODBC driver: what is kept, what is
 * closed instead, and the bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cv_odbcpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char db_path[64], connstr[128], other[128];

static int setup(void **state) {
    (void)state;
    snprintf(db_path, sizeof(db_path), "/tmp/cv_odbcpool_%d.db", (int)getpid());
    snprintf(connstr, sizeof(connstr), "Driver=SQLite3;Database=%s", db_path);
    snprintf(other, sizeof(other), "Driver=SQLite3;Database=%s;Timeout=1000", db_path);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(db_path);
    return 0;
}

static cv_odbc_conn *take(cv_odbcpool *p, const char *cs, bool expect_reused) {
    char err[512] = "";
    bool reused = !expect_reused;
    cv_odbc_conn *c = cv_odbcpool_take(p, cs, &reused, err, sizeof(err));
    if (!c)
        fail_msg("take: %s", err);
    assert_int_equal(reused, expect_reused);
    return c;
}

static void exec(cv_odbc_conn *c, const char *sql) {
    char err[512] = "";
    long long rows = 0;
    if (cv_odbc_exec_count(c, sql, &rows, err, sizeof(err)) != CV_OK)
        fail_msg("%s: %s", sql, err);
}

static void test_kept_and_handed_back(void **state) {
    cv_odbcpool *p = cv_odbcpool_new(4, 60000);
    (void)state;

    cv_odbc_conn *a = take(p, connstr, false);
    char err[256];
    exec(a, "CREATE TABLE IF NOT EXISTS t (x int)");
    assert_int_equal(cv_odbc_begin(a, err, sizeof(err)), CV_OK);
    exec(a, "INSERT INTO t VALUES (1)"); /* left uncommitted: the reset rolls it back */
    cv_odbcpool_give(p, connstr, a, true, false);
    assert_int_equal(cv_odbcpool_idle(p), 1);

    /* Another connection string does not get it. */
    cv_odbc_conn *b = take(p, other, false);
    assert_ptr_not_equal(b, a);
    cv_odbcpool_give(p, other, b, true, false);
    assert_int_equal(cv_odbcpool_idle(p), 2);

    cv_odbc_conn *again = take(p, connstr, true);
    assert_ptr_equal(again, a);
    long long n = -1;
    assert_int_equal(
        cv_odbc_query_int64(again, "SELECT count(*) FROM t", NULL, &n, err, sizeof(err)), CV_OK);
    assert_int_equal(n, 0);
    cv_odbcpool_give(p, connstr, again, true, false);
    cv_odbcpool_destroy(p);
}

static void test_session_state_is_not_kept(void **state) {
    cv_odbcpool *p = cv_odbcpool_new(4, 60000);
    (void)state;

    /* A temporary table: the connection is closed, not kept. */
    cv_odbc_conn *a = take(p, connstr, false);
    exec(a, "CREATE TEMP TABLE scratch (x int)");
    cv_odbcpool_give(p, connstr, a, true, false);
    assert_int_equal(cv_odbcpool_idle(p), 0);

    /* An attached database. */
    a = take(p, connstr, false);
    exec(a, "ATTACH DATABASE ':memory:' AS side");
    cv_odbcpool_give(p, connstr, a, true, false);
    assert_int_equal(cv_odbcpool_idle(p), 0);

    /* A PRAGMA ran (the caller says so), or the job broke it: closed. */
    a = take(p, connstr, false);
    cv_odbcpool_give(p, connstr, a, true, true);
    a = take(p, connstr, false);
    cv_odbcpool_give(p, connstr, a, false, false);
    assert_int_equal(cv_odbcpool_idle(p), 0);
    cv_odbcpool_destroy(p);
}

static void test_bounds(void **state) {
    cv_odbcpool *p = cv_odbcpool_new(2, 60000);
    cv_odbc_conn *c[3];
    (void)state;

    for (int i = 0; i < 3; i++)
        c[i] = take(p, connstr, false);
    for (int i = 0; i < 3; i++)
        cv_odbcpool_give(p, connstr, c[i], true, false);
    assert_int_equal(cv_odbcpool_idle(p), 2); /* the oldest was closed */
    /* The newest first. */
    assert_ptr_equal(take(p, connstr, true), c[2]);
    cv_odbcpool_give(p, connstr, c[2], true, false);
    cv_odbcpool_destroy(p);

    /* Kept for idle_ms at most: closed by the next take. */
    p = cv_odbcpool_new(2, 0);
    c[0] = take(p, connstr, false);
    cv_odbcpool_give(p, connstr, c[0], true, false);
    usleep(2000);
    c[1] = take(p, connstr, false);
    assert_int_equal(cv_odbcpool_idle(p), 0);
    cv_odbcpool_give(p, connstr, c[1], true, false);
    /* Or by a sweep, without another job. */
    assert_int_equal(cv_odbcpool_idle(p), 1);
    usleep(2000);
    cv_odbcpool_sweep(p);
    assert_int_equal(cv_odbcpool_idle(p), 0);
    cv_odbcpool_destroy(p);

    /* Off: nothing kept. */
    p = cv_odbcpool_new(0, 60000);
    c[0] = take(p, connstr, false);
    cv_odbcpool_give(p, connstr, c[0], true, false);
    assert_int_equal(cv_odbcpool_idle(p), 0);
    cv_odbcpool_destroy(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kept_and_handed_back),
        cmocka_unit_test(test_session_state_is_not_kept),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
