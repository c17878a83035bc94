/*
 * test_cron.c - lib/cv_cron: cron expressions, their errors (which name
 * the field) and next fire times checked against instants computed apart
 * (Python's datetime, UTC).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cv_cron.h"

#include <stdio.h>
#include <string.h>

static int64_t next_of(const char *expr, int64_t after) {
    cv_cron cron;
    char why[256] = "";
    if (cv_cron_parse(expr, &cron, why, sizeof(why)) != CV_OK)
        fail_msg("%s: %s", expr, why);
    return cv_cron_next(&cron, after);
}

static void test_next_fire_times(void **state) {
    (void)state;
    /* Friday 2026-11-27 03:00 -> Monday 2026-11-30 02:30 */
    assert_int_equal(next_of("30 2 * * 1-5", 1795748400), 1796005800);
    assert_int_equal(next_of("30 2 * * MON-FRI", 1795748400), 1796005800);
    /* 10:07:30 -> 10:15:00; strictly after: 10:15:00 -> 10:30:00 */
    assert_int_equal(next_of("*/15 * * * *", 1795774050), 1795774500);
    assert_int_equal(next_of("*/15 * * * *", 1795774500), 1795774500 + 900);
    /* 29 February: 2026-03-01 -> 2028-02-29 */
    assert_int_equal(next_of("0 0 29 2 *", 1772323200), 1835395200);
    assert_int_equal(next_of("0 0 30 2 *", 1772323200), -1);
    /* Both day fields restricted: the 13th or a Friday, whichever comes first. */
    assert_int_equal(next_of("0 12 13 * FRI", 1793491200), 1793966400);
    /* Sundays (0 and 7) of January or July, after 2026-02-01 -> 2026-07-05 09:00 */
    assert_int_equal(next_of("0 9 * JAN,jul 0", 1772323200 - 28 * 86400), 1783242000);
    assert_int_equal(next_of("0 9 * 1,7 7", 1772323200 - 28 * 86400), 1783242000);
    /* Across a year: 2026-12-31 23:59:59 -> 2027-01-01 00:00 */
    assert_int_equal(next_of("* * * * *", 1798761599), 1798761600);
    assert_int_equal(next_of("0 0 1 1 *", 1798761599), 1798761600);
    /* Steps over ranges and lists */
    assert_int_equal(next_of("5-50/20 * * * *", 1798761600), 1798761600 + 5 * 60);
    assert_int_equal(next_of("59 23 31 12 *", 1798761600 - 60), 1798761600 + 365 * 86400 - 60);
}

static void expect_error(const char *expr, const char *message) {
    cv_cron cron;
    char why[256] = "";
    assert_int_equal(cv_cron_parse(expr, &cron, why, sizeof(why)), CV_ERR_INVALID);
    assert_string_equal(why, message);
}

static void test_errors_name_the_field(void **state) {
    (void)state;
    expect_error("61 * * * *", "minute field \"61\": 61: must be between 0 and 59");
    expect_error("* 24 * * *", "hour field \"24\": 24: must be between 0 and 23");
    expect_error("* * 0 * *", "day-of-month field \"0\": 0: must be between 1 and 31");
    expect_error("* * * FEBR *", "month field \"FEBR\": \"FEBR\" is not a month name");
    expect_error("* * * * MON-FRY", "day-of-week field \"MON-FRY\": \"FRY\" is not a day name");
    expect_error("* * * * 5-1", "day-of-week field \"5-1\": range 5-1 runs backwards");
    expect_error("*/0 * * * *", "minute field \"*/0\": step must be between 1 and 59");
    expect_error("1,,2 * * * *", "minute field \"1,,2\": \",\" is not expected here");
    expect_error("* * * *", "must have 5 fields (minute hour day-of-month month day-of-week), "
                            "not 4");
    expect_error("* * * * * *", "must have 5 fields (minute hour day-of-month month "
                                "day-of-week), not 6");
    expect_error("", "must have 5 fields (minute hour day-of-month month day-of-week), not 0");
    expect_error("1x * * * *", "minute field \"1x\": \"x\" is not expected here");
}

static int64_t next_in(const char *expr, const char *zone, int64_t after) {
    cv_cron cron;
    cv_tz *tz;
    char why[256] = "";
    int64_t next;
    if (cv_cron_parse(expr, &cron, why, sizeof(why)) != CV_OK)
        fail_msg("%s: %s", expr, why);
    if (!(tz = cv_tz_load(zone, why, sizeof(why))))
        fail_msg("%s: %s", zone, why);
    next = cv_cron_next_tz(&cron, tz, after);
    cv_tz_destroy(tz);
    return next;
}

/* Instants computed apart with Python's zoneinfo. */
static void test_daylight_saving_changes(void **state) {
    (void)state;
    /* Berlin, 2026-03-29: 02:30 does not exist -> once, at 03:00 CEST (01:00Z). */
    assert_int_equal(next_in("30 2 * * *", "Europe/Berlin", 1774699200), 1774746000);
    assert_int_equal(next_in("30 2 * * *", "Europe/Berlin", 1774746000), 1774830600);
    /* Every 15 minutes through the gap: 01:45 CET, then 03:00 CEST, once. */
    assert_int_equal(next_in("*/15 * * * *", "Europe/Berlin", 1774746000 - 900), 1774746000);
    assert_int_equal(next_in("*/15 * * * *", "Europe/Berlin", 1774746000), 1774746000 + 900);
    /* Berlin, 2026-10-25: 02:30 happens twice -> once, the first (00:30Z), then the
     * next day's (01:30Z). */
    assert_int_equal(next_in("30 2 * * *", "Europe/Berlin", 1792843200), 1792888200);
    assert_int_equal(next_in("30 2 * * *", "Europe/Berlin", 1792888200), 1792978200);
    /* Sao Paulo, 2018-11-04: clocks jumped from 00:00 to 01:00 -> 00:30 fires at 01:00
     * (03:00Z). 2019-02-16: 23:00-23:59 happened twice -> first 23:30 (01:30Z), then
     * the next day's (02:30Z). */
    assert_int_equal(next_in("30 0 * * *", "America/Sao_Paulo", 1541246400), 1541300400);
    assert_int_equal(next_in("30 23 * * *", "America/Sao_Paulo", 1550318400), 1550367000);
    assert_int_equal(next_in("30 23 * * *", "America/Sao_Paulo", 1550367000), 1550457000);
    /* Past the zone file's table (2037): its POSIX rule, CEST in July, CET in December. */
    assert_int_equal(next_in("0 12 * * *", "Europe/Berlin", 2224670400), 2224749600);
    assert_int_equal(next_in("0 12 * * *", "Europe/Berlin", 2237889600), 2237972400);
    assert_int_equal(next_in("0 12 * * *", "UTC", 2237889600), 2237889600 + 86400);
}

static void test_unknown_zones(void **state) {
    const char *names[] = {"Mars/Olympus", "../../etc/passwd", "/etc/localtime", "", NULL};
    char why[256], want[300];
    (void)state;
    for (int i = 0; names[i]; i++) {
        assert_null(cv_tz_load(names[i], why, sizeof(why)));
        snprintf(want, sizeof(want), "unknown time zone \"%s\"", names[i]);
        assert_string_equal(why, want);
    }
}

/* A TZif file of version 2 with no transitions, one type (UTC+1 "XXX") and
 * `footer` as its POSIX rule, into out; returns its length. */
static size_t tzif(unsigned char *out, const char *footer) {
    size_t n = 0;
    memset(out, 0, 256);
    memcpy(out, "TZif2", 5); /* version 1 header: every count 0 */
    n = 44;
    memcpy(out + n, "TZif2", 5);
    out[n + 20 + 4 * 4 + 3] = 1; /* typecnt */
    out[n + 20 + 4 * 5 + 3] = 4; /* charcnt */
    n += 44;
    out[n + 2] = 0x0e; /* utoff 3600 */
    out[n + 3] = 0x10;
    n += 6;
    memcpy(out + n, "XXX", 4);
    n += 4;
    n += (size_t)snprintf((char *)out + n, 256 - n, "\n%s\n", footer);
    return n;
}

static void test_damaged_zone_files(void **state) {
    unsigned char data[256];
    char why[256];
    cv_tz *tz;
    size_t n;
    const int64_t july = 1782864000; /* 2026-07-01 */
    (void)state;

    n = tzif(data, "XXX-1YYY,M3.5.0,M10.5.0");
    assert_non_null(tz = cv_tz_parse(data, n, why, sizeof(why)));
    assert_int_equal(cv_tz_offset(tz, july), 7200); /* the rule's summer time */
    cv_tz_destroy(tz);
    /* A rule with a week POSIX does not have, or an offset of five digits of
     * hours, is not read (found by fuzzing: an overflow): the table's offset. */
    n = tzif(data, "XXX-1YYY,M3.9.0,M10.5.0");
    assert_non_null(tz = cv_tz_parse(data, n, why, sizeof(why)));
    assert_int_equal(cv_tz_offset(tz, july), 3600);
    cv_tz_destroy(tz);
    n = tzif(data, "XXX-88888YYY,M3.5.0,M10.5.0");
    assert_non_null(tz = cv_tz_parse(data, n, why, sizeof(why)));
    assert_int_equal(cv_tz_offset(tz, july), 3600);
    cv_tz_destroy(tz);
    /* Counts read as negative numbers once led the reader before its data
     * (found by fuzzing): refused. */
    n = tzif(data, "XXX-1");
    memset(data + 20, 0xff, 24);
    assert_null(cv_tz_parse(data, n, why, sizeof(why)));
    assert_string_equal(why, "not a TZif file of version 2 or later");
    assert_null(cv_tz_parse(data, 10, why, sizeof(why)));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_fire_times),
        cmocka_unit_test(test_errors_name_the_field),
        cmocka_unit_test(test_daylight_saving_changes),
        cmocka_unit_test(test_unknown_zones),
        cmocka_unit_test(test_damaged_zone_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
