/*
 * test_sqltext.c - the SQL text of a transfer (consumer/cv_sqltext.c), built
 * without a database and compared whole: identifier quoting, the origin's
 * watermark window, and every statement a destination is sent.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_sqltext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* id, na"me, data (binary) */
static const cv_odbc_col cols[] = {
    {.name = "id"}, {.name = "na\"me"}, {.name = "data", .binary = true}};

static cv_load_spec upsert_on(const char *key) {
    cv_load_spec load;
    memset(&load, 0, sizeof(load));
    load.mode = CV_MODE_UPSERT;
    load.nkeys = 1;
    snprintf(load.keys[0], sizeof(load.keys[0]), "%s", key);
    return load;
}

/* Checks and frees built text. */
static void expect(char *got, const char *want) {
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void expect_quote(const char *name, char quote, bool split, const char *out) {
    char buf[64];
    assert_int_equal(cv_sqltext_quote_ident(name, quote, split, buf, sizeof(buf)), 0);
    assert_string_equal(buf, out);
}

static void test_quote_ident(void **state) {
    (void)state;
    expect_quote("t", '"', true, "\"t\"");
    expect_quote("a\"b", '"', false, "\"a\"\"b\"");
    expect_quote("\"", '"', false, "\"\"\"\"");
    expect_quote("a\"b; --", '"', false, "\"a\"\"b; --\"");
    expect_quote("public.t", '"', true, "\"public\".\"t\"");
    expect_quote("public.t", '"', false, "\"public.t\"");
    expect_quote("s\"x.t\"y", '"', true, "\"s\"\"x\".\"t\"\"y\"");
    expect_quote("public.t", '`', true, "`public`.`t`");
    expect_quote("a`b", '`', false, "`a``b`");
    expect_quote("a\"b", '`', false, "`a\"b`"); /* only the chosen quote is doubled */
    expect_quote("", '"', false, "\"\"");
}

static void test_quote_ident_buffer_size(void **state) {
    char buf[8];
    (void)state;
    /* "t" needs 3 characters and the NUL. */
    assert_int_equal(cv_sqltext_quote_ident("t", '"', false, buf, 4), 0);
    assert_string_equal(buf, "\"t\"");
    assert_int_equal(cv_sqltext_quote_ident("t", '"', false, buf, 3), -1);
    assert_int_equal(cv_sqltext_quote_ident("long", '"', false, buf, 4), -1);
    assert_int_equal(cv_sqltext_quote_ident("t", '"', false, buf, 0), -1);
    /* a"b doubles to 6 characters: 7 bytes fit, 6 do not. */
    assert_int_equal(cv_sqltext_quote_ident("a\"b", '"', false, buf, 7), 0);
    assert_string_equal(buf, "\"a\"\"b\"");
    assert_int_equal(cv_sqltext_quote_ident("a\"b", '"', false, buf, 6), -1);
    /* s.t splits to "s"."t", 7 characters: 8 bytes fit, 7 do not. */
    assert_int_equal(cv_sqltext_quote_ident("s.t", '"', true, buf, 8), 0);
    assert_string_equal(buf, "\"s\".\"t\"");
    assert_int_equal(cv_sqltext_quote_ident("s.t", '"', true, buf, 7), -1);
}

static void test_bare_query(void **state) {
    (void)state;
    expect(cv_sqltext_bare_query("SELECT 1;  \n\t;\r\n"), "SELECT 1\n");
    expect(cv_sqltext_bare_query("SELECT 1 -- note"), "SELECT 1 -- note\n");
    expect(cv_sqltext_bare_query(""), "\n");
}

static void test_window_query(void **state) {
    cv_sqltext_window w = {.watermark = "\"ts\"", .from = true};
    (void)state;
    expect(cv_sqltext_window_query("SELECT * FROM t\n", &w),
           "SELECT * FROM (SELECT * FROM t\n) cv_src WHERE 1 = 1 AND \"ts\" >= ? AND \"ts\" < ?");
    w.from = false; /* the first run: no lower bound */
    expect(cv_sqltext_window_query("q\n", &w),
           "SELECT * FROM (q\n) cv_src WHERE 1 = 1 AND \"ts\" < ?");
    w.empty = true; /* no watermark value in the origin: nothing */
    expect(cv_sqltext_window_query("q\n", &w), "SELECT * FROM (q\n) cv_src WHERE 1 = 1 AND 1 = 0");
    w = (cv_sqltext_window){.checkpoint = "\"id\"", .after = true, .ordered = true};
    expect(cv_sqltext_window_query("q\n", &w),
           "SELECT * FROM (q\n) cv_src WHERE 1 = 1 AND \"id\" > ? ORDER BY \"id\"");
    w.after = false;
    expect(cv_sqltext_window_query("q\n", &w),
           "SELECT * FROM (q\n) cv_src WHERE 1 = 1 ORDER BY \"id\"");
    expect(cv_sqltext_wrap("MAX(\"ts\")", "q\n", ""), "SELECT MAX(\"ts\") FROM (q\n) cv_src");
    expect(cv_sqltext_wrap("*", "q\n", " WHERE 1 = 0"), "SELECT * FROM (q\n) cv_src WHERE 1 = 0");
}

static void test_create_table(void **state) {
    const char *types[] = {"integer", "text", "bytea"};
    cv_load_spec load = upsert_on("id");
    cv_load_spec append;
    (void)state;
    memset(&append, 0, sizeof(append));
    expect(cv_sqltext_create_table("s.t", cols, 3, types, &load, '"'),
           "CREATE TABLE \"s\".\"t\" (\"id\" integer NOT NULL, \"na\"\"me\" text, \"data\" "
           "bytea, PRIMARY KEY (\"id\"))");
    expect(cv_sqltext_create_table("t", cols, 2, types, &append, '`'),
           "CREATE TABLE `t` (`id` integer, `na\"me` text)");
    expect(cv_sqltext_delete_all("s.t", '`'), "DELETE FROM `s`.`t`");
}

static void test_copy_and_load_data(void **state) {
    (void)state;
    expect(cv_sqltext_copy("\"s\".\"t\"", cols, 3),
           "COPY \"s\".\"t\" (\"id\", \"na\"\"me\", \"data\") FROM STDIN");
    expect(cv_sqltext_load_data("`t`", cols, 3, '`'),
           "LOAD DATA LOCAL INFILE 'convutell' INTO TABLE `t` CHARACTER SET utf8mb4 FIELDS "
           "TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (`id`, `na\"me`, "
           "@cv_hex2) SET `data` = UNHEX(@cv_hex2)");
    expect(cv_sqltext_load_data("`t`", cols, 2, '`'),
           "LOAD DATA LOCAL INFILE 'convutell' INTO TABLE `t` CHARACTER SET utf8mb4 FIELDS "
           "TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' (`id`, `na\"me`)");
}

static void test_insert(void **state) {
    cv_load_spec load = upsert_on("id");
    cv_load_spec append;
    (void)state;
    memset(&append, 0, sizeof(append));
    expect(cv_sqltext_insert("\"t\"", cols, 3, '"', &append, CV_DIALECT_POSTGRES),
           "INSERT INTO \"t\" (\"id\", \"na\"\"me\", \"data\") VALUES (?, ?, ?)");
    expect(cv_sqltext_insert("\"t\"", cols, 2, '"', &load, CV_DIALECT_SQLITE),
           "INSERT INTO \"t\" (\"id\", \"na\"\"me\") VALUES (?, ?) ON CONFLICT (\"id\") DO "
           "UPDATE SET \"na\"\"me\" = excluded.\"na\"\"me\"");
    expect(cv_sqltext_insert("`t`", cols, 2, '`', &load, CV_DIALECT_MARIADB),
           "INSERT INTO `t` (`id`, `na\"me`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `na\"me` = "
           "VALUES(`na\"me`)");
    /* Every column a key: nothing to update. */
    expect(cv_sqltext_insert("\"t\"", cols, 1, '"', &load, CV_DIALECT_POSTGRES),
           "INSERT INTO \"t\" (\"id\") VALUES (?) ON CONFLICT (\"id\") DO NOTHING");
    expect(cv_sqltext_insert("`t`", cols, 1, '`', &load, CV_DIALECT_MARIADB),
           "INSERT INTO `t` (`id`) VALUES (?) ON DUPLICATE KEY UPDATE `id` = `id`");
}

static void test_stage_and_merge(void **state) {
    cv_load_spec load = upsert_on("id");
    (void)state;
    expect(cv_sqltext_stage("s.t", cols, 2, '"', true),
           "CREATE TEMP TABLE convutell_stage (LIKE \"s\".\"t\") ON COMMIT DROP");
    expect(cv_sqltext_stage("t", cols, 2, '`', false),
           "CREATE TEMPORARY TABLE convutell_stage AS SELECT `id`, `na\"me` FROM `t` LIMIT 0");
    expect(
        cv_sqltext_merge("s.t", cols, 2, '"', &load, CV_DIALECT_POSTGRES),
        "INSERT INTO \"s\".\"t\" (\"id\", \"na\"\"me\") SELECT \"id\", \"na\"\"me\" FROM "
        "convutell_stage ON CONFLICT (\"id\") DO UPDATE SET \"na\"\"me\" = excluded.\"na\"\"me\"");
}

/* A name too long to quote (up to 297 characters fit) fails the whole
 * statement instead of cutting it short. */
static void test_too_long_a_name(void **state) {
    char name[400];
    char *sql;
    (void)state;
    memset(name, 'a', sizeof(name));
    name[297] = '\0';
    sql = cv_sqltext_delete_all(name, '"');
    assert_non_null(sql);
    assert_int_equal(strlen(sql), strlen("DELETE FROM \"\"") + 297);
    free(sql);
    name[297] = 'a';
    name[298] = '\0';
    assert_null(cv_sqltext_delete_all(name, '"'));
    assert_null(
        cv_sqltext_merge(name, cols, 2, '"', &(cv_load_spec){.nkeys = 0}, CV_DIALECT_POSTGRES));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote_ident),     cmocka_unit_test(test_quote_ident_buffer_size),
        cmocka_unit_test(test_bare_query),      cmocka_unit_test(test_window_query),
        cmocka_unit_test(test_create_table),    cmocka_unit_test(test_copy_and_load_data),
        cmocka_unit_test(test_insert),          cmocka_unit_test(test_stage_and_merge),
        cmocka_unit_test(test_too_long_a_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
