/*
 * test_dialect.c - text the worker derives for a destination database: column
 * types per destination dialect (cv_dialect) and libpq connection strings made
 * from ODBC ones (cv_pg). Identifier quoting and the statements themselves are
 * in test_sqltext.c, the API's password mask in test_connstr.c. Also the
 * statements that ask an origin how many rows a query returns (cv_estimate).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cv_dialect.h"
#include "cv_estimate.h"
#include "cv_pg.h"
#include "cv_sqlsplit.h"

#include <sql.h>
#include <sqlext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect_type(cv_dialect d, short sql_type, size_t size, short decimals,
                        const char *out) {
    cv_odbc_col col = {.name = "c", .sql_type = sql_type, .size = size, .decimals = decimals};
    char type[64], err[256];
    assert_int_equal(cv_dialect_column_type(d, &col, type, sizeof(type), err, sizeof(err)), CV_OK);
    assert_string_equal(type, out);
}

static void test_dialect_types(void **state) {
    cv_odbc_col wide = {.name = "amount", .sql_type = SQL_DECIMAL, .size = 80, .decimals = 2};
    cv_odbc_col odd = {.name = "span", .sql_type = SQL_INTERVAL_DAY_TO_SECOND};
    char type[64], err[256];
    (void)state;
    expect_type(CV_DIALECT_POSTGRES, SQL_INTEGER, 10, 0, "integer");
    expect_type(CV_DIALECT_POSTGRES, SQL_DECIMAL, 12, 2, "numeric(12,2)");
    expect_type(CV_DIALECT_POSTGRES, SQL_LONGVARCHAR, 65536, 0, "text");
    expect_type(CV_DIALECT_POSTGRES, SQL_WVARCHAR, 40, 0, "varchar(40)");
    expect_type(CV_DIALECT_POSTGRES, SQL_BINARY, 255, 0, "bytea");
    expect_type(CV_DIALECT_POSTGRES, SQL_TYPE_TIMESTAMP, 26, 6, "timestamp");
    expect_type(CV_DIALECT_POSTGRES, SQL_GUID, 36, 0, "uuid");
    expect_type(CV_DIALECT_MARIADB, SQL_LONGVARCHAR, 0, 0, "longtext");
    expect_type(CV_DIALECT_MARIADB, SQL_VARCHAR, 20000, 0, "longtext");
    expect_type(CV_DIALECT_MARIADB, SQL_TYPE_TIMESTAMP, 26, 6, "datetime(6)");
    expect_type(CV_DIALECT_MARIADB, SQL_BIT, 1, 0, "tinyint(1)");
    expect_type(CV_DIALECT_SQLITE, SQL_BIGINT, 19, 0, "INTEGER");
    expect_type(CV_DIALECT_SQLITE, SQL_VARBINARY, 10, 0, "BLOB");
    expect_type(CV_DIALECT_SQLITE, SQL_DECIMAL, 20, 6, "TEXT"); /* NUMERIC affinity rounds */
    assert_int_equal(
        cv_dialect_column_type(CV_DIALECT_MARIADB, &wide, type, sizeof(type), err, sizeof(err)),
        CV_ERR_INVALID);
    assert_string_equal(err, "column amount: decimal(80,2) has more digits than MariaDB allows "
                             "(65)");
    assert_int_equal(
        cv_dialect_column_type(CV_DIALECT_POSTGRES, &odd, type, sizeof(type), err, sizeof(err)),
        CV_ERR_INVALID);
    assert_string_equal(err, "column span: ODBC type 110 has no PostgreSQL equivalent; cast it "
                             "in the query (for example to text)");
    assert_int_equal(cv_dialect_from_dbms("PostgreSQL"), CV_DIALECT_POSTGRES);
    assert_int_equal(cv_dialect_from_dbms("MariaDB"), CV_DIALECT_MARIADB);
    assert_int_equal(cv_dialect_from_dbms("MySQL"), CV_DIALECT_MARIADB);
    assert_int_equal(cv_dialect_from_dbms("SQLite"), CV_DIALECT_SQLITE);
    assert_int_equal(cv_dialect_from_dbms("Oracle"), CV_DIALECT_OTHER);
}

static void test_pg_conninfo(void **state) {
    char err[128];
    char *info = cv_pg_conninfo_from_odbc(
        "Driver={PostgreSQL Unicode};Server=db;Port=5433;Database=app;UID=me;PWD=it's\\x;"
        "SSLmode=require",
        err, sizeof(err));
    (void)state;
    assert_non_null(info);
    assert_string_equal(info, "host='db' port='5433' dbname='app' user='me' "
                              "password='it\\'s\\\\x' sslmode='require' "
                              "application_name='convutell-worker' keepalives_idle='30' "
                              "keepalives_interval='10' keepalives_count='3' "
                              "tcp_user_timeout='30000'");
    free(info);
    assert_true(cv_odbc_names_postgres("Driver=PostgreSQL Unicode;Server=x"));
    assert_true(cv_odbc_names_postgres("driver=/usr/lib/odbc/psqlodbcw.so"));
    assert_false(cv_odbc_names_postgres("Driver=SQLite3;Database=/tmp/postgres.db"));
    assert_false(cv_odbc_names_postgres("Database=postgres"));
}

/* Splits `text` and checks the statements against the NULL-terminated list. */
static void expect_split(const char *text, bool mariadb, const char *const *want) {
    size_t pos = 0, start, end;
    int n = 0;
    while (cv_sqlsplit_next(text, &pos, &start, &end, mariadb)) {
        char got[256];
        assert_non_null(want[n]);
        snprintf(got, sizeof(got), "%.*s", (int)(end - start), text + start);
        assert_string_equal(got, want[n]);
        n++;
    }
    assert_null(want[n]);
}

static void test_sql_split(void **state) {
    (void)state;
    expect_split("", false, (const char *const[]){NULL});
    expect_split(" ;; -- nothing\n /* at all; */ ;", false, (const char *const[]){NULL});
    expect_split("CREATE TABLE t (a text);\nINSERT INTO t VALUES ('a;b'), ('it''s;');\n"
                 "UPDATE t SET a = \"x;\" || a -- trailing; comment\n;\nDELETE FROM t",
                 false,
                 (const char *const[]){
                     "CREATE TABLE t (a text)", "INSERT INTO t VALUES ('a;b'), ('it''s;')",
                     "UPDATE t SET a = \"x;\" || a -- trailing; comment", "DELETE FROM t", NULL});
    /* PostgreSQL function bodies and parameters. */
    expect_split("CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;"
                 "SELECT $1, $$a;b$$; SELECT 5 # 3",
                 false,
                 (const char *const[]){
                     "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql",
                     "SELECT $1, $$a;b$$", "SELECT 5 # 3", NULL});
    /* MariaDB: backslash escapes, backticks and # comments. */
    expect_split(
        "INSERT INTO `a;b` VALUES ('it\\'s; fine'); # gone;\nSELECT 2", true,
        (const char *const[]){"INSERT INTO `a;b` VALUES ('it\\'s; fine')", "SELECT 2", NULL});
    /* The same backslash is plain text elsewhere: the string ends at the quote. */
    expect_split("SELECT 'C:\\'; SELECT 3", false,
                 (const char *const[]){"SELECT 'C:\\'", "SELECT 3", NULL});
}

static void expect_estimate_sql(cv_dialect d, const char *query, const char *want) {
    char *sql = cv_estimate_sql(d, query);
    if (!want) {
        assert_null(sql);
        return;
    }
    assert_non_null(sql);
    assert_string_equal(sql, want);
    free(sql);
}

static void test_estimate(void **state) {
    (void)state;
    /* The query without its trailing semicolons, ended by a newline (a last line comment). */
    expect_estimate_sql(CV_DIALECT_POSTGRES, "SELECT * FROM t -- all\n;  ",
                        "EXPLAIN SELECT * FROM t -- all\n");
    expect_estimate_sql(CV_DIALECT_MARIADB, "SELECT a FROM `t`", "EXPLAIN SELECT a FROM `t`\n");
    expect_estimate_sql(CV_DIALECT_SQLITE, "SELECT a FROM t;",
                        "SELECT count(*) FROM (SELECT a FROM t\n) cv_src");
    expect_estimate_sql(CV_DIALECT_OTHER, "SELECT a FROM t", NULL);

    assert_int_equal(cv_estimate_plan_rows("Seq Scan on t  (cost=0.00..18334.00 rows=1000000 "
                                           "width=37)"),
                     1000000);
    assert_int_equal(cv_estimate_plan_rows("Nested Loop  (cost=0.00..80834.12 rows=5000000 "
                                           "width=41)"),
                     5000000);
    assert_int_equal(cv_estimate_plan_rows("Result  (cost=0.00..0.01 rows=1 width=4)"), 1);
    assert_int_equal(cv_estimate_plan_rows("  ->  Values Scan on \"*VALUES*\""), -1);
    assert_int_equal(cv_estimate_plan_rows("Seq Scan (cost=0.00..1.00 rows=-3 width=4)"), -1);
    assert_int_equal(cv_estimate_plan_rows("Seq Scan (cost=0.00..1.00 rows=x width=4)"), -1);
    assert_int_equal(cv_estimate_plan_rows(NULL), -1);

    /* Nothing to estimate from: the thread ends without an estimate. */
    cv_estimate *e = cv_estimate_start("Driver=NoSuchDriver;", "SELECT 1");
    assert_non_null(e);
    cv_estimate_stop(e);
    cv_estimate_stop(NULL);
    assert_int_equal(cv_estimate_rows(NULL), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sql_split),
        cmocka_unit_test(test_dialect_types),
        cmocka_unit_test(test_pg_conninfo),
        cmocka_unit_test(test_estimate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
