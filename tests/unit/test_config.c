/*
 * test_config.c - lib/cv_config.c: the defaults, the original tool's
 * MONGODB_CONNECTION_STRING(_DB) names, the dotenv file (syntax, errors naming
 * file:line, and the environment taking precedence over it), and the exact
 * one-line error for each kind of bad value.
 *
 * Every test starts from an environment without any CONVUTELL_* or MONGODB_*
 * variable and with CONVUTELL_ENV_FILE naming a fresh empty file in /tmp, so
 * neither the caller's environment nor a ./.env can leak in.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_config.h"
#include "cv_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char env_path[64];

/* Unsets every variable whose name starts with CONVUTELL_ or MONGODB_. */
static void clear_environment(void) {
    char names[256][128];
    int n = 0;

    for (char **e = environ; *e && n < 256; e++) {
        const char *eq = strchr(*e, '=');
        size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
        if ((strncmp(*e, "CONVUTELL_", 10) == 0 || strncmp(*e, "MONGODB_", 8) == 0) &&
            len < sizeof(names[0]))
            snprintf(names[n++], sizeof(names[0]), "%.*s", (int)len, *e);
    }
    for (int i = 0; i < n; i++)
        unsetenv(names[i]);
}

static int setup(void **state) {
    int fd;
    (void)state;
    clear_environment();
    snprintf(env_path, sizeof(env_path), "/tmp/cv-test-env-XXXXXX");
    fd = mkstemp(env_path);
    if (fd < 0)
        return -1;
    close(fd);
    setenv("CONVUTELL_ENV_FILE", env_path, 1);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    unlink(env_path);
    clear_environment();
    return 0;
}

static void write_env(const char *text) {
    FILE *f = fopen(env_path, "w");
    assert_non_null(f);
    assert_int_not_equal(fputs(text, f), EOF);
    assert_int_equal(fclose(f), 0);
}

static void load_ok(cv_config *cfg) {
    char err[512] = "";
    cv_err rc = cv_config_load(cfg, err, sizeof(err));
    if (rc != CV_OK)
        fail_msg("cv_config_load: %s", err);
}

static void expect_error(const char *message) {
    cv_config cfg;
    char err[512] = "";
    assert_int_equal(cv_config_load(&cfg, err, sizeof(err)), CV_ERR_CONFIG);
    assert_string_equal(err, message);
}

/* Sets one variable, expects `message`, and unsets it again. */
static void expect_value_error(const char *name, const char *value, const char *message) {
    setenv(name, value, 1);
    expect_error(message);
    unsetenv(name);
}

static void test_defaults(void **state) {
    cv_config cfg;
    char err[256], host[256], worker[128];
    static const unsigned char zero_key[CV_SECRET_KEY_LEN];
    (void)state;
    load_ok(&cfg);
    assert_string_equal(cfg.kafka_bootstrap, "127.0.0.1:9092");
    assert_string_equal(cfg.mongo_uri, "mongodb://127.0.0.1:27017/");
    assert_string_equal(cfg.mongo_db, "convutell");
    assert_string_equal(cfg.http_host, "127.0.0.1");
    assert_int_equal(cfg.http_port, 8080);
    assert_int_equal(cfg.log_level, CV_LOG_INFO);
    assert_false(cfg.log_json);
    assert_false(cfg.webhook_private);         /* webhooks reach public addresses only */
    assert_string_equal(cfg.metrics_host, ""); /* no metrics server */
    assert_int_equal(cfg.retain_queries_days, 30);
    assert_int_equal(cfg.retain_deliveries_days, 30);
    assert_int_equal(cfg.retain_audit_days, 365);
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    host[sizeof(host) - 1] = '\0';
    snprintf(worker, sizeof(worker), "%.100s-%ld", host, (long)getpid());
    assert_string_equal(cfg.worker_id, worker);
    assert_false(cfg.has_secret_key);
    assert_memory_equal(cfg.secret_key, zero_key, sizeof(zero_key));
    assert_int_equal(cv_config_require_secret(&cfg, "worker", err, sizeof(err)), CV_ERR_CONFIG);
    assert_string_equal(err, "CONVUTELL_SECRET_KEY: is required by the worker (64 hex digits, "
                             "e.g. from `openssl rand -hex 32`)");
}

static void test_explicit_values(void **state) {
    cv_config cfg;
    char err[64] = "untouched";
    (void)state;
    setenv("CONVUTELL_KAFKA_BOOTSTRAP", "k1:9092,k-2.example:19093,[::1]:9094", 1);
    setenv("CONVUTELL_MONGODB_URI", "mongodb://u:p@db1:27017,db2:27018/?replicaSet=rs0", 1);
    setenv("CONVUTELL_MONGODB_DB", "convutell_test", 1);
    setenv("CONVUTELL_HTTP_ADDR", "localhost:65535", 1);
    setenv("CONVUTELL_WORKER_ID", "worker-a", 1);
    setenv("CONVUTELL_LOG_LEVEL", "debug", 1);
    setenv("CONVUTELL_SECRET_KEY",
           "000102030405060708090a0b0c0d0e0f"
           "101112131415161718191A1B1C1D1E1F",
           1);
    load_ok(&cfg);
    assert_string_equal(cfg.kafka_bootstrap, "k1:9092,k-2.example:19093,[::1]:9094");
    assert_string_equal(cfg.mongo_uri, "mongodb://u:p@db1:27017,db2:27018/?replicaSet=rs0");
    assert_string_equal(cfg.mongo_db, "convutell_test");
    assert_string_equal(cfg.http_host, "127.0.0.1"); /* localhost means the IPv4 loopback */
    assert_int_equal(cfg.http_port, 65535);
    assert_string_equal(cfg.worker_id, "worker-a");
    assert_int_equal(cfg.log_level, CV_LOG_DEBUG);
    assert_true(cfg.has_secret_key);
    for (int i = 0; i < CV_SECRET_KEY_LEN; i++)
        assert_int_equal(cfg.secret_key[i], i);
    assert_int_equal(cv_config_require_secret(&cfg, "api", err, sizeof(err)), CV_OK);
    assert_string_equal(err, "untouched");
    setenv("CONVUTELL_LOG_LEVEL", "warn", 1);
    setenv("CONVUTELL_HTTP_ADDR", "0.0.0.0:1", 1);
    load_ok(&cfg);
    assert_int_equal(cfg.log_level, CV_LOG_WARN);
    assert_string_equal(cfg.http_host, "0.0.0.0");
    assert_int_equal(cfg.http_port, 1);
    setenv("CONVUTELL_LOG_LEVEL", "error", 1);
    load_ok(&cfg);
    assert_int_equal(cfg.log_level, CV_LOG_ERROR);
}

static void test_original_names(void **state) {
    cv_config cfg;
    (void)state;
    /* The original tool's names are used while the CONVUTELL_ names are unset... */
    setenv("MONGODB_CONNECTION_STRING", "mongodb://legacy.example:27017/", 1);
    setenv("MONGODB_CONNECTION_STRING_DB", "legacy", 1);
    load_ok(&cfg);
    assert_string_equal(cfg.mongo_uri, "mongodb://legacy.example:27017/");
    assert_string_equal(cfg.mongo_db, "legacy");
    /* ...and the CONVUTELL_ names win when both are set. */
    setenv("CONVUTELL_MONGODB_URI", "mongodb://modern.example:27017/", 1);
    load_ok(&cfg);
    assert_string_equal(cfg.mongo_uri, "mongodb://modern.example:27017/");
    assert_string_equal(cfg.mongo_db, "legacy");
    setenv("CONVUTELL_MONGODB_DB", "modern", 1);
    load_ok(&cfg);
    assert_string_equal(cfg.mongo_uri, "mongodb://modern.example:27017/");
    assert_string_equal(cfg.mongo_db, "modern");
    /* An error names the variable the value came from. */
    unsetenv("CONVUTELL_MONGODB_DB");
    setenv("MONGODB_CONNECTION_STRING_DB", "le.gacy", 1);
    expect_error("MONGODB_CONNECTION_STRING_DB: 'le.gacy' contains '.', which MongoDB forbids "
                 "in database names");
    setenv("MONGODB_CONNECTION_STRING_DB", "", 1);
    expect_error("MONGODB_CONNECTION_STRING_DB: is set but empty");
}

static void test_original_names_in_dotenv(void **state) {
    cv_config cfg;
    (void)state;
    write_env("MONGODB_CONNECTION_STRING=mongodb://from-file:27017/\n"
              "MONGODB_CONNECTION_STRING_DB=file_db\n");
    load_ok(&cfg);
    assert_string_equal(cfg.mongo_uri, "mongodb://from-file:27017/");
    assert_string_equal(cfg.mongo_db, "file_db");
    setenv("CONVUTELL_MONGODB_DB", "env_db", 1);
    load_ok(&cfg);
    assert_string_equal(cfg.mongo_db, "env_db");
}

static void test_environment_wins_over_dotenv(void **state) {
    cv_config cfg;
    (void)state;
    write_env("CONVUTELL_MONGODB_DB=from_file\n"
              "CONVUTELL_HTTP_ADDR=127.0.0.1:9001\n"
              "CONVUTELL_LOG_LEVEL=error\n");
    load_ok(&cfg);
    assert_string_equal(cfg.mongo_db, "from_file");
    assert_int_equal(cfg.http_port, 9001);
    assert_int_equal(cfg.log_level, CV_LOG_ERROR);
    setenv("CONVUTELL_MONGODB_DB", "from_env", 1);
    setenv("CONVUTELL_HTTP_ADDR", "127.0.0.1:9002", 1);
    load_ok(&cfg);
    assert_string_equal(cfg.mongo_db, "from_env");
    assert_int_equal(cfg.http_port, 9002);
    assert_int_equal(cfg.log_level, CV_LOG_ERROR); /* still from the file */
    /* A bad value in the environment is an error even when the file's is good. */
    setenv("CONVUTELL_LOG_LEVEL", "loud", 1);
    expect_error("CONVUTELL_LOG_LEVEL: 'loud' is not one of debug, info, warn, error");
}

static void test_dotenv_syntax(void **state) {
    cv_config cfg;
    (void)state;
    write_env("# a comment line\n"
              "\n"
              "   # an indented comment\n"
              "export CONVUTELL_HTTP_ADDR='0.0.0.0:9000'\n"
              "CONVUTELL_MONGODB_DB=\"from_file\"\n"
              "CONVUTELL_WORKER_ID=w-7 # inline comment\n"
              "  CONVUTELL_KAFKA_BOOTSTRAP  =  k1:1,k2:2  \r\n"
              "CONVUTELL_LOG_LEVEL=info\n"
              "CONVUTELL_LOG_LEVEL=warn\n" /* the last one wins */
              "UNRELATED_NAME=whatever it is\n"
              "CONVUTELL_SECRET_KEY="
              "000102030405060708090a0b0c0d0e0f"
              "101112131415161718191a1b1c1d1e1f"); /* no final newline */
    load_ok(&cfg);
    assert_string_equal(cfg.http_host, "0.0.0.0");
    assert_int_equal(cfg.http_port, 9000);
    assert_string_equal(cfg.mongo_db, "from_file");
    assert_string_equal(cfg.worker_id, "w-7");
    assert_string_equal(cfg.kafka_bootstrap, "k1:1,k2:2");
    assert_int_equal(cfg.log_level, CV_LOG_WARN);
    assert_true(cfg.has_secret_key);
    assert_int_equal(cfg.secret_key[0], 0x00);
    assert_int_equal(cfg.secret_key[31], 0x1f);
    /* " #" inside quotes is part of the value; '#' without a space before it too. */
    write_env("CONVUTELL_WORKER_ID=\"w #1\"\nCONVUTELL_MONGODB_DB=db#2\n");
    load_ok(&cfg);
    assert_string_equal(cfg.worker_id, "w #1");
    assert_string_equal(cfg.mongo_db, "db#2");
    write_env("CONVUTELL_WORKER_ID='single quoted'\n");
    load_ok(&cfg);
    assert_string_equal(cfg.worker_id, "single quoted");
}

/*
 * BUG (lib/cv_config.c, dotenv_load, the quoted-value branch at lines 84-91):
 * a quoted value followed by an inline comment, `KEY="value" # comment`, which
 * python-dotenv (whose subset the file says it follows) reads as `value`, is
 * refused with "<file>:1: KEY: unterminated quote" because the closing quote
 * is looked for only in the last byte of the line. The parser should find the
 * closing quote and then allow only white space or a " #" comment after it.
 */
static void test_bug_dotenv_quoted_value_with_comment(void **state) {
    cv_config cfg;
    (void)state;
    write_env("CONVUTELL_MONGODB_DB=\"quoted\" # the database\n");
    load_ok(&cfg);
    assert_string_equal(cfg.mongo_db, "quoted");
}

static void test_dotenv_errors(void **state) {
    char expected[256], *line;
    (void)state;
    write_env("# header\nOK=1\nno equals sign here\n");
    snprintf(expected, sizeof(expected), "%s:3: expected KEY=VALUE", env_path);
    expect_error(expected);
    write_env("A='unterminated\n");
    snprintf(expected, sizeof(expected), "%s:1: A: unterminated quote", env_path);
    expect_error(expected);
    write_env("\nB=\"mismatched'\n");
    snprintf(expected, sizeof(expected), "%s:2: B: unterminated quote", env_path);
    expect_error(expected);
    write_env("BAD-NAME=1\n");
    snprintf(expected, sizeof(expected), "%s:1: bad variable name 'BAD-NAME'", env_path);
    expect_error(expected);
    line = malloc(3001);
    assert_non_null(line);
    memset(line, 'x', 3000);
    memcpy(line, "A=", 2);
    line[3000] = '\0';
    write_env(line);
    free(line);
    snprintf(expected, sizeof(expected), "%s:1: line is longer than 2046 bytes", env_path);
    expect_error(expected);
    /* A bad value from the file is reported like one from the environment. */
    write_env("CONVUTELL_HTTP_ADDR=127.0.0.1:0\n");
    expect_error("CONVUTELL_HTTP_ADDR: port 0 is out of range 1-65535");
    setenv("CONVUTELL_ENV_FILE", "/nonexistent/convutell.env", 1);
    expect_error("CONVUTELL_ENV_FILE: cannot open /nonexistent/convutell.env: No such file or "
                 "directory");
}

static void test_bad_http_addr(void **state) {
    (void)state;
    expect_value_error("CONVUTELL_HTTP_ADDR", "127.0.0.1:99999",
                       "CONVUTELL_HTTP_ADDR: port 99999 is out of range 1-65535");
    expect_value_error("CONVUTELL_HTTP_ADDR", "127.0.0.1:0",
                       "CONVUTELL_HTTP_ADDR: port 0 is out of range 1-65535");
    expect_value_error("CONVUTELL_HTTP_ADDR", "127.0.0.1:http",
                       "CONVUTELL_HTTP_ADDR: port 'http' is not a number");
    expect_value_error("CONVUTELL_HTTP_ADDR",
                       "127.0.0.1:", "CONVUTELL_HTTP_ADDR: port '' is not a number");
    expect_value_error("CONVUTELL_HTTP_ADDR", "127.0.0.1",
                       "CONVUTELL_HTTP_ADDR: '127.0.0.1' is not IPv4-address:port");
    expect_value_error("CONVUTELL_HTTP_ADDR", ":8080",
                       "CONVUTELL_HTTP_ADDR: ':8080' is not IPv4-address:port");
    expect_value_error("CONVUTELL_HTTP_ADDR", "example.org:80",
                       "CONVUTELL_HTTP_ADDR: 'example.org' is not an IPv4 address");
    expect_value_error("CONVUTELL_HTTP_ADDR", "256.0.0.1:80",
                       "CONVUTELL_HTTP_ADDR: '256.0.0.1' is not an IPv4 address");
    expect_value_error("CONVUTELL_HTTP_ADDR", "", "CONVUTELL_HTTP_ADDR: is set but empty");
}

static void test_bad_kafka_bootstrap(void **state) {
    (void)state;
    expect_value_error("CONVUTELL_KAFKA_BOOTSTRAP", "a:1,,b:2",
                       "CONVUTELL_KAFKA_BOOTSTRAP: empty entry in the list");
    expect_value_error("CONVUTELL_KAFKA_BOOTSTRAP", "a:1,",
                       "CONVUTELL_KAFKA_BOOTSTRAP: empty entry in the list");
    expect_value_error("CONVUTELL_KAFKA_BOOTSTRAP", ",a:1",
                       "CONVUTELL_KAFKA_BOOTSTRAP: empty entry in the list");
    expect_value_error("CONVUTELL_KAFKA_BOOTSTRAP", "a:x",
                       "CONVUTELL_KAFKA_BOOTSTRAP: port 'x' is not a number");
    expect_value_error("CONVUTELL_KAFKA_BOOTSTRAP", "a:1,b:70000",
                       "CONVUTELL_KAFKA_BOOTSTRAP: port 70000 is out of range 1-65535");
    expect_value_error("CONVUTELL_KAFKA_BOOTSTRAP", "kafka",
                       "CONVUTELL_KAFKA_BOOTSTRAP: 'kafka' is not host:port");
    expect_value_error("CONVUTELL_KAFKA_BOOTSTRAP", ":9092",
                       "CONVUTELL_KAFKA_BOOTSTRAP: ':9092' is not host:port");
    expect_value_error("CONVUTELL_KAFKA_BOOTSTRAP", "a b:9092",
                       "CONVUTELL_KAFKA_BOOTSTRAP: 'a b:9092' has a bad host name");
    expect_value_error("CONVUTELL_KAFKA_BOOTSTRAP", "",
                       "CONVUTELL_KAFKA_BOOTSTRAP: is set but empty");
}

static void test_bad_mongo_settings(void **state) {
    static const char prefix[] = "CONVUTELL_MONGODB_URI: not a MongoDB connection string: ";
    cv_config cfg;
    char err[512], long_name[70];
    (void)state;
    setenv("CONVUTELL_MONGODB_URI", "http://x", 1);
    assert_int_equal(cv_config_load(&cfg, err, sizeof(err)), CV_ERR_CONFIG);
    /* The rest is the driver's own reason, whose words vary by version. */
    assert_memory_equal(err, prefix, strlen(prefix));
    assert_true(strlen(err) > strlen(prefix));
    assert_null(strchr(err, '\n'));
    unsetenv("CONVUTELL_MONGODB_URI");
    expect_value_error("CONVUTELL_MONGODB_URI", "", "CONVUTELL_MONGODB_URI: is set but empty");
    expect_value_error("CONVUTELL_MONGODB_DB", "a.b",
                       "CONVUTELL_MONGODB_DB: 'a.b' contains '.', which MongoDB forbids in "
                       "database names");
    expect_value_error("CONVUTELL_MONGODB_DB", "my db",
                       "CONVUTELL_MONGODB_DB: 'my db' contains ' ', which MongoDB forbids in "
                       "database names");
    memset(long_name, 'd', 64);
    long_name[64] = '\0';
    expect_value_error("CONVUTELL_MONGODB_DB", long_name,
                       "CONVUTELL_MONGODB_DB: longer than 63 characters");
    long_name[63] = '\0';
    setenv("CONVUTELL_MONGODB_DB", long_name, 1);
    load_ok(&cfg);
    assert_string_equal(cfg.mongo_db, long_name);
    unsetenv("CONVUTELL_MONGODB_DB");
    expect_value_error("CONVUTELL_MONGODB_DB", "", "CONVUTELL_MONGODB_DB: is set but empty");
}

static void test_bad_other_values(void **state) {
    (void)state;
    expect_value_error("CONVUTELL_LOG_LEVEL", "loud",
                       "CONVUTELL_LOG_LEVEL: 'loud' is not one of debug, info, warn, error");
    expect_value_error("CONVUTELL_LOG_LEVEL", "INFO",
                       "CONVUTELL_LOG_LEVEL: 'INFO' is not one of debug, info, warn, error");
    expect_value_error("CONVUTELL_LOG_LEVEL", "", "CONVUTELL_LOG_LEVEL: is set but empty");
    expect_value_error("CONVUTELL_LOG_FORMAT", "xml",
                       "CONVUTELL_LOG_FORMAT: 'xml' is not one of text, json");
    expect_value_error("CONVUTELL_WEBHOOK_PRIVATE", "yes",
                       "CONVUTELL_WEBHOOK_PRIVATE: 'yes' is not one of deny, allow");
    expect_value_error("CONVUTELL_METRICS_ADDR", "127.0.0.1",
                       "CONVUTELL_METRICS_ADDR: '127.0.0.1' is not IPv4-address:port");
    expect_value_error("CONVUTELL_WORKER_ID", "", "CONVUTELL_WORKER_ID: is set but empty");
    expect_value_error("CONVUTELL_SECRET_KEY", "zz",
                       "CONVUTELL_SECRET_KEY: must be 64 hex digits (openssl rand -hex 32), not 2 "
                       "characters");
    expect_value_error("CONVUTELL_SECRET_KEY", "", "CONVUTELL_SECRET_KEY: is set but empty");
    expect_value_error("CONVUTELL_SECRET_KEYS_OLD", "00,zz",
                       "CONVUTELL_SECRET_KEYS_OLD: key 1: must be 64 hex digits (openssl rand -hex "
                       "32), not 2 characters");
}

static void test_old_secret_keys(void **state) {
    char keys[9 * 66 + 1] = "";
    cv_config cfg;
    (void)state;
    for (int i = 0; i < 3; i++)
        snprintf(keys + strlen(keys), sizeof(keys) - strlen(keys), "%s%064d", i ? ", " : " ", i);
    setenv("CONVUTELL_SECRET_KEYS_OLD", keys, 1);
    load_ok(&cfg);
    assert_int_equal(cfg.n_old_keys, 3);
    assert_int_equal(cfg.old_keys[2][31], 0x02);
    assert_int_equal(cfg.old_keys[1][31], 0x01);
    assert_int_equal(cfg.old_keys[0][0], 0);
    keys[0] = '\0';
    for (int i = 0; i < 9; i++)
        snprintf(keys + strlen(keys), sizeof(keys) - strlen(keys), "%s%064d", i ? "," : "", i);
    expect_value_error("CONVUTELL_SECRET_KEYS_OLD", keys,
                       "CONVUTELL_SECRET_KEYS_OLD: at most 8 keys");
    unsetenv("CONVUTELL_SECRET_KEYS_OLD");
}

static void test_check_helpers(void **state) {
    char err[128], host[16];
    int port = 0;
    (void)state;
    assert_int_equal(cv_config_check_bootstrap("a:1,b:2", err, sizeof(err)), CV_OK);
    assert_int_equal(cv_config_check_bootstrap("a:1,,b:2", err, sizeof(err)), CV_ERR_CONFIG);
    assert_string_equal(err, "empty entry in the list");
    assert_int_equal(
        cv_config_parse_addr("10.1.2.3:443", host, sizeof(host), &port, err, sizeof(err)), CV_OK);
    assert_string_equal(host, "10.1.2.3");
    assert_int_equal(port, 443);
    assert_int_equal(
        cv_config_parse_addr("10.1.2.3:99999", host, sizeof(host), &port, err, sizeof(err)),
        CV_ERR_CONFIG);
    assert_string_equal(err, "port 99999 is out of range 1-65535");
    assert_int_equal(port, 443); /* unchanged on failure */
}

static void test_describe_masks_secrets(void **state) {
    cv_config cfg;
    char out[1024];
    (void)state;
    cv_config_mask_uri("mongodb://app:s3cr@t@db1:27017,db2/?authSource=admin", out, sizeof(out));
    assert_string_equal(out, "mongodb://app:***@db1:27017,db2/?authSource=admin");
    cv_config_mask_uri("mongodb://app@db1/", out, sizeof(out)); /* no password */
    assert_string_equal(out, "mongodb://app@db1/");
    cv_config_mask_uri("mongodb://db1/?x=a:b@c", out, sizeof(out)); /* '@' past the host */
    assert_string_equal(out, "mongodb://db1/?x=a:b@c");
    cv_config_mask_uri("not a uri", out, sizeof(out));
    assert_string_equal(out, "not a uri");

    setenv("CONVUTELL_MONGODB_URI", "mongodb://app:hunter2@127.0.0.1:27017/", 1);
    setenv("CONVUTELL_SECRET_KEY",
           "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
    setenv("CONVUTELL_WORKER_ID", "w-1", 1);
    setenv("CONVUTELL_LOG_FILE", "/var/log/convutell/w.log", 1);
    load_ok(&cfg);
    cv_config_describe(&cfg, "worker", out, sizeof(out));
    assert_string_equal(out, "kafka 127.0.0.1:9092; mongodb mongodb://app:***@127.0.0.1:27017/ "
                             "database convutell; worker w-1, 32 jobs at once, lease 30 s; "
                             "metrics none; secret key set (0 old); log text to "
                             "/var/log/convutell/w.log");
    cv_config_describe(&cfg, "api", out, sizeof(out));
    assert_string_equal(out, "kafka 127.0.0.1:9092; mongodb mongodb://app:***@127.0.0.1:27017/ "
                             "database convutell; http 127.0.0.1:8080, 1000 connections, web "
                             "beside the binary, cors off; metrics none; secret key set (0 old); "
                             "log text to /var/log/convutell/w.log");
    cv_config_describe(&cfg, "api", out, 20); /* cut, terminated */
    assert_string_equal(out, "kafka 127.0.0.1:909");
    unsetenv("CONVUTELL_MONGODB_URI");
    unsetenv("CONVUTELL_SECRET_KEY");
    unsetenv("CONVUTELL_WORKER_ID");
    unsetenv("CONVUTELL_LOG_FILE");
}

/*
 * BUG (lib/cv_config.c, copy_value at line 147 and the CHECK macro at line
 * 247): copy_value() puts the variable's name into its reason and CHECK puts
 * it in front again, so a CONVUTELL_WORKER_ID (or CONVUTELL_MONGODB_URI) that
 * does not fit reads "CONVUTELL_WORKER_ID: CONVUTELL_WORKER_ID: longer than 127
 * characters". copy_value() should write only "longer than %zu characters".
 */
static void test_bug_too_long_value_names_variable_once(void **state) {
    char long_id[200];
    (void)state;
    memset(long_id, 'w', 128);
    long_id[128] = '\0';
    expect_value_error("CONVUTELL_WORKER_ID", long_id,
                       "CONVUTELL_WORKER_ID: longer than 127 characters");
}

/*
 * BUG (lib/cv_config.c:186, cv_config_check_bootstrap): for an empty value the
 * loop sees no entry and the final check reads value[strlen(value) - 1], that
 * is value[-1], one byte before the string; an empty list is then accepted
 * unless that byte happens to be ','. cv_config_load() never passes "" (it
 * says "is set but empty" first), but the function is exported with a
 * contract of its own. Here the byte before the string is 'x', which makes the
 * plain build's result deterministic (CV_OK); UBSan stops the process at the
 * read, so the call runs in a child. Fix: report "empty entry in the list"
 * when value[0] == '\0', before indexing.
 */
static void test_bug_check_bootstrap_empty_value(void **state) {
    int status = 0;
    pid_t pid;
    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char buf[2] = {'x', '\0'};
        char err[128] = "";
        _exit(cv_config_check_bootstrap(buf + 1, err, sizeof(err)) == CV_ERR_CONFIG &&
                      strcmp(err, "empty entry in the list") == 0
                  ? 0
                  : 3);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status))
        fail_msg("cv_config_check_bootstrap(\"\") killed the process (signal %d)",
                 WTERMSIG(status));
    if (WEXITSTATUS(status) == 3)
        fail_msg("cv_config_check_bootstrap(\"\") accepted an empty list");
    if (WEXITSTATUS(status) != 0)
        fail_msg("cv_config_check_bootstrap(\"\") stopped the process (exit status %d; "
                 "see the sanitizer report above)",
                 WEXITSTATUS(status));
}

/* What database client libraries would read as connection defaults is
 * dropped; everything else stays. */
static void test_forget_driver_env(void **state) {
    (void)state;
    setenv("PGUSER", "stack", 1);
    setenv("PGPASSWORD", "secret", 1);
    setenv("PGHOST", "127.0.0.1", 1);
    setenv("MYSQL_PWD", "secret", 1);
    setenv("MARIADB_HOST", "db", 1);
    setenv("PATH_KEPT_FOR_TEST", "kept", 1);
    setenv("XPGUSER", "kept", 1);
    cv_config_forget_driver_env();
    assert_null(getenv("PGUSER"));
    assert_null(getenv("PGPASSWORD"));
    assert_null(getenv("PGHOST"));
    assert_null(getenv("MYSQL_PWD"));
    assert_null(getenv("MARIADB_HOST"));
    assert_string_equal(getenv("PGPASSFILE"), "/dev/null");
    assert_string_equal(getenv("PATH_KEPT_FOR_TEST"), "kept");
    assert_string_equal(getenv("XPGUSER"), "kept");
    assert_non_null(getenv("CONVUTELL_ENV_FILE"));
    unsetenv("PATH_KEPT_FOR_TEST");
    unsetenv("XPGUSER");
    unsetenv("PGPASSFILE");
}

#define TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        TEST(test_defaults),
        TEST(test_explicit_values),
        TEST(test_original_names),
        TEST(test_original_names_in_dotenv),
        TEST(test_environment_wins_over_dotenv),
        TEST(test_dotenv_syntax),
        TEST(test_bug_dotenv_quoted_value_with_comment),
        TEST(test_dotenv_errors),
        TEST(test_bad_http_addr),
        TEST(test_bad_kafka_bootstrap),
        TEST(test_bad_mongo_settings),
        TEST(test_bad_other_values),
        TEST(test_check_helpers),
        TEST(test_describe_masks_secrets),
        TEST(test_old_secret_keys),
        TEST(test_bug_too_long_value_names_variable_once),
        TEST(test_bug_check_bootstrap_empty_value),
        TEST(test_forget_driver_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
