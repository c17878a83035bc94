/*
 * test_config.c - lib/cv_config.c: defaults, the original tool's variable
 * names, dotenv parsing and precedence, and the exact one-line error for each
 * kind of bad value.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cv_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const variables[] = {"CONVUTELL_KAFKA_BOOTSTRAP",    "CONVUTELL_MONGODB_URI",
                                        "CONVUTELL_MONGODB_DB",         "MONGODB_CONNECTION_STRING",
                                        "MONGODB_CONNECTION_STRING_DB", "CONVUTELL_HTTP_ADDR",
                                        "CONVUTELL_WORKER_ID",          "CONVUTELL_LOG_LEVEL",
                                        "CONVUTELL_SECRET_KEY",         NULL};

static char env_path[64];

static int setup(void **state) {
    (void)state;
    for (const char *const *v = variables; *v; v++)
        unsetenv(*v);
    snprintf(env_path, sizeof(env_path), "/tmp/cv-test-env-XXXXXX");
    int fd = mkstemp(env_path);
    if (fd < 0)
        return -1;
    close(fd);
    setenv("CONVUTELL_ENV_FILE", env_path, 1);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(env_path);
    unsetenv("CONVUTELL_ENV_FILE");
    return 0;
}

static void write_env(const char *text) {
    FILE *f = fopen(env_path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void expect_error(const char *message) {
    cv_config cfg;
    char err[512] = "";
    assert_int_equal(cv_config_load(&cfg, err, sizeof(err)), CV_ERR_CONFIG);
    assert_string_equal(err, message);
}

static void test_defaults(void **state) {
    cv_config cfg;
    char err[256];
    (void)state;
    assert_int_equal(cv_config_load(&cfg, err, sizeof(err)), CV_OK);
    assert_string_equal(cfg.kafka_bootstrap, "127.0.0.1:9092");
    assert_string_equal(cfg.mongo_uri, "mongodb://127.0.0.1:27017/");
    assert_string_equal(cfg.mongo_db, "convutell");
    assert_string_equal(cfg.http_host, "127.0.0.1");
    assert_int_equal(cfg.http_port, 8080);
    assert_int_equal(cfg.log_level, 1);
    assert_false(cfg.has_secret_key);
    assert_int_equal(cv_config_require_secret(&cfg, "worker", err, sizeof(err)), CV_ERR_CONFIG);
    assert_string_equal(err, "CONVUTELL_SECRET_KEY: is required by the worker (64 hex digits, "
                             "e.g. from `openssl rand -hex 32`)");
}

static void test_original_names_and_precedence(void **state) {
    cv_config cfg;
    char err[256];
    (void)state;
    setenv("MONGODB_CONNECTION_STRING", "mongodb://db.example:27017/", 1);
    setenv("MONGODB_CONNECTION_STRING_DB", "legacy", 1);
    assert_int_equal(cv_config_load(&cfg, err, sizeof(err)), CV_OK);
    assert_string_equal(cfg.mongo_uri, "mongodb://db.example:27017/");
    assert_string_equal(cfg.mongo_db, "legacy");
    setenv("CONVUTELL_MONGODB_DB", "modern", 1);
    assert_int_equal(cv_config_load(&cfg, err, sizeof(err)), CV_OK);
    assert_string_equal(cfg.mongo_db, "modern");
}

static void test_dotenv(void **state) {
    cv_config cfg;
    char err[256];
    (void)state;
    write_env("# comment\n\nexport CONVUTELL_HTTP_ADDR='0.0.0.0:9000'\n"
              "CONVUTELL_MONGODB_DB=\"from_file\"\n"
              "CONVUTELL_WORKER_ID=w-7 # inline comment\n"
              "CONVUTELL_SECRET_KEY="
              "000102030405060708090a0b0c0d0e0f"
              "101112131415161718191a1b1c1d1e1f\n");
    assert_int_equal(cv_config_load(&cfg, err, sizeof(err)), CV_OK);
    assert_string_equal(cfg.http_host, "0.0.0.0");
    assert_int_equal(cfg.http_port, 9000);
    assert_string_equal(cfg.mongo_db, "from_file");
    assert_string_equal(cfg.worker_id, "w-7");
    assert_true(cfg.has_secret_key);
    assert_int_equal(cfg.secret_key[0], 0x00);
    assert_int_equal(cfg.secret_key[31], 0x1f);
    setenv("CONVUTELL_MONGODB_DB", "from_env", 1); /* the environment wins */
    assert_int_equal(cv_config_load(&cfg, err, sizeof(err)), CV_OK);
    assert_string_equal(cfg.mongo_db, "from_env");
}

static void test_dotenv_errors(void **state) {
    char expected[256];
    (void)state;
    write_env("OK=1\nno equals sign here\n");
    snprintf(expected, sizeof(expected), "%s:2: expected KEY=VALUE", env_path);
    expect_error(expected);
    write_env("A='unterminated\n");
    snprintf(expected, sizeof(expected), "%s:1: A: unterminated quote", env_path);
    expect_error(expected);
    setenv("CONVUTELL_ENV_FILE", "/nonexistent/convutell.env", 1);
    expect_error("CONVUTELL_ENV_FILE: cannot open /nonexistent/convutell.env: No such file or "
                 "directory");
}

static void test_bad_values(void **state) {
    (void)state;
    setenv("CONVUTELL_HTTP_ADDR", "127.0.0.1:99999", 1);
    expect_error("CONVUTELL_HTTP_ADDR: port 99999 is out of range 1-65535");
    setenv("CONVUTELL_HTTP_ADDR", "example.org:80", 1);
    expect_error("CONVUTELL_HTTP_ADDR: 'example.org' is not an IPv4 address");
    unsetenv("CONVUTELL_HTTP_ADDR");
    setenv("CONVUTELL_KAFKA_BOOTSTRAP", "a:1,,b:2", 1);
    expect_error("CONVUTELL_KAFKA_BOOTSTRAP: empty entry in the list");
    setenv("CONVUTELL_KAFKA_BOOTSTRAP", "a:x", 1);
    expect_error("CONVUTELL_KAFKA_BOOTSTRAP: port 'x' is not a number");
    unsetenv("CONVUTELL_KAFKA_BOOTSTRAP");
    setenv("CONVUTELL_MONGODB_DB", "a.b", 1);
    expect_error("CONVUTELL_MONGODB_DB: 'a.b' contains '.', which MongoDB forbids in database "
                 "names");
    unsetenv("CONVUTELL_MONGODB_DB");
    setenv("CONVUTELL_LOG_LEVEL", "loud", 1);
    expect_error("CONVUTELL_LOG_LEVEL: 'loud' is not one of debug, info, warn, error");
    setenv("CONVUTELL_LOG_LEVEL", "", 1);
    expect_error("CONVUTELL_LOG_LEVEL: is set but empty");
    unsetenv("CONVUTELL_LOG_LEVEL");
    setenv("CONVUTELL_SECRET_KEY", "zz", 1);
    expect_error("CONVUTELL_SECRET_KEY: must be 64 hex digits (openssl rand -hex 32), not 2 "
                 "characters");
    unsetenv("CONVUTELL_SECRET_KEY");
}

static void test_bad_mongo_uri(void **state) {
    cv_config cfg;
    char err[512];
    (void)state;
    setenv("CONVUTELL_MONGODB_URI", "http://x", 1);
    assert_int_equal(cv_config_load(&cfg, err, sizeof(err)), CV_ERR_CONFIG);
    assert_memory_equal(err, "CONVUTELL_MONGODB_URI: not a MongoDB connection string",
                        strlen("CONVUTELL_MONGODB_URI: not a MongoDB connection string"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_original_names_and_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotenv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotenv_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_mongo_uri, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
