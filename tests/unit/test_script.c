/*
 * test_script.c - consumer/cv_script: real python3 processes in the sandbox.
 * Each hostile script is bounded by a limit of its own and by a time limit, so
 * a limit that does not hold fails the test instead of hurting the machine.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_script.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEPT 16

typedef struct captured {
    int lines[3];
    char text[3][KEPT][256];
    bool cut[3][KEPT];
} captured;

static void keep_line(void *ctx, cv_script_stream stream, const char *line, size_t len, bool cut) {
    captured *c = ctx;
    int i = c->lines[stream]++;
    if (i < KEPT) {
        snprintf(c->text[stream][i], sizeof(c->text[stream][i]), "%.*s", (int)len, line);
        c->cut[stream][i] = cut;
    }
}

static cv_script_spec spec_for(const char *script, captured *c) {
    cv_script_spec spec;
    memset(&spec, 0, sizeof(spec));
    memset(c, 0, sizeof(*c));
    spec.script = script;
    spec.on_line = keep_line;
    spec.ctx = c;
    spec.limits.timeout_seconds = 30; /* every test is bounded */
    return spec;
}

static void run_ok(const cv_script_spec *spec, cv_script_result *res) {
    char why[256] = "";
    assert_int_equal(cv_script_run(spec, res, why, sizeof(why)), CV_OK);
}

static void test_prints_and_succeeds(void **state) {
    captured c;
    cv_script_spec spec = spec_for("import sys\nprint('hello')\nprint('w\\u00f6rld')\n"
                                   "print('warn', file=sys.stderr)\nprint('no newline', end='')\n",
                                   &c);
    cv_script_result res;
    (void)state;
    run_ok(&spec, &res);
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(res.signal, 0);
    assert_null(res.limit);
    assert_int_equal(c.lines[CV_SCRIPT_STDOUT], 3);
    assert_string_equal(c.text[CV_SCRIPT_STDOUT][0], "hello");
    assert_string_equal(c.text[CV_SCRIPT_STDOUT][1], "w\xc3\xb6rld");
    assert_string_equal(c.text[CV_SCRIPT_STDOUT][2], "no newline");
    assert_int_equal(c.lines[CV_SCRIPT_STDERR], 1);
    assert_string_equal(c.text[CV_SCRIPT_STDERR][0], "warn");
    assert_int_equal(res.lines, 4);
    assert_int_equal(res.lines_dropped, 0);
}

static void test_exit_status(void **state) {
    captured c;
    cv_script_spec spec = spec_for("import sys\nsys.exit(3)\n", &c);
    cv_script_result res;
    char why[128];
    (void)state;
    run_ok(&spec, &res);
    assert_int_equal(res.exit_code, 3);
    assert_null(res.limit);
    cv_script_describe(&spec, &res, why, sizeof(why));
    assert_string_equal(why, "exited with status 3");
}

static void test_sees_only_its_environment(void **state) {
    const char *env[] = {"CONVUTELL_RUN_ID=0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7d", NULL};
    captured c;
    cv_script_spec spec =
        spec_for("import os\nprint(','.join(sorted(os.environ)))\n"
                 "print(os.environ['HOME'] == os.getcwd(), os.environ['CONVUTELL_RUN_ID'])\n",
                 &c);
    cv_script_result res;
    (void)state;
    setenv("CV_TEST_CANARY_SECRET", "do not leak", 1);
    spec.env = env;
    run_ok(&spec, &res);
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(c.text[CV_SCRIPT_STDOUT][0], "CONVUTELL_RUN_ID,HOME,LANG,PATH");
    assert_string_equal(c.text[CV_SCRIPT_STDOUT][1], "True 0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7d");
}

static void test_inherits_no_descriptors(void **state) {
    captured c;
    cv_script_spec spec = spec_for("import os\nfds = []\nfor fd in range(3, 4096):\n"
                                   "    try:\n        os.fstat(fd)\n        fds.append(fd)\n"
                                   "    except OSError:\n        pass\nprint(fds)\n",
                                   &c);
    cv_script_result res;
    int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC: would be inherited */
    (void)state;
    assert_true(leak >= 3);
    run_ok(&spec, &res);
    close(leak);
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(c.text[CV_SCRIPT_STDOUT][0], "[]");
}

static void test_runs_unprivileged_in_a_folder_removed_after(void **state) {
    captured c;
    cv_script_spec spec = spec_for("import os\nprint(os.getuid())\nprint(os.getcwd())\n"
                                   "open('left-behind', 'w').write('x')\nos.mkdir('sub')\n",
                                   &c);
    cv_script_result res;
    struct stat st;
    char *end;
    long uid;
    (void)state;
    run_ok(&spec, &res);
    assert_int_equal(res.exit_code, 0);
    uid = strtol(c.text[CV_SCRIPT_STDOUT][0], &end, 10);
    assert_true(end != c.text[CV_SCRIPT_STDOUT][0] && *end == '\0');
    if (geteuid() == 0)
        assert_int_not_equal(uid, 0);
    else
        assert_int_equal(uid, (long)geteuid());
    assert_memory_equal(c.text[CV_SCRIPT_STDOUT][1], "/tmp/convutell-run-", 19);
    assert_int_equal(stat(c.text[CV_SCRIPT_STDOUT][1], &st), -1);
}

static void test_time_limit_kills_the_group(void **state) {
    captured c;
    cv_script_spec spec =
        spec_for("import os, signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                 "if os.fork() == 0:\n    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                 "while True:\n    pass\n",
                 &c);
    cv_script_result res;
    char why[128];
    (void)state;
    spec.limits.timeout_seconds = 1;
    spec.limits.grace_seconds = 1;
    run_ok(&spec, &res);
    assert_string_equal(res.limit, "timeout_seconds");
    assert_int_equal(res.signal, SIGKILL);
    assert_true(res.duration_ms >= 2000 && res.duration_ms < 3000);
    cv_script_describe(&spec, &res, why, sizeof(why));
    assert_string_equal(why, "stopped by its limit timeout_seconds = 1");
}

static void test_cpu_limit(void **state) {
    captured c;
    cv_script_spec spec = spec_for("while True:\n    pass\n", &c);
    cv_script_result res;
    (void)state;
    spec.limits.cpu_seconds = 1;
    spec.limits.timeout_seconds = 20;
    run_ok(&spec, &res);
    assert_string_equal(res.limit, "cpu_seconds");
    assert_true(res.duration_ms < 10000);
}

static void test_memory_bomb(void **state) {
    captured c;
    cv_script_spec spec = spec_for("blocks = []\nwhile True:\n"
                                   "    blocks.append(bytearray(64 * 1024 * 1024))\n",
                                   &c);
    cv_script_result res;
    (void)state;
    spec.limits.memory_mb = 256;
    run_ok(&spec, &res);
    assert_int_equal(res.exit_code, 1);
    assert_string_equal(res.limit, "memory_mb");
}

static void test_fork_bomb(void **state) {
    captured c;
    cv_script_spec spec = spec_for("import os\nwhile True:\n    os.fork()\n", &c);
    cv_script_result res;
    (void)state;
    spec.limits.processes = 16;
    spec.limits.timeout_seconds = 20;
    spec.limits.grace_seconds = 1;
    run_ok(&spec, &res);
    assert_int_not_equal(res.exit_code, 0);
    assert_string_equal(res.limit, "processes");
    assert_true(res.duration_ms < 15000);
}

static void test_huge_file(void **state) {
    captured c;
    cv_script_spec spec = spec_for("with open('big', 'wb') as f:\n"
                                   "    for _ in range(100):\n"
                                   "        f.write(b'x' * (1024 * 1024))\n",
                                   &c);
    cv_script_result res;
    (void)state;
    spec.limits.file_size_mb = 8;
    run_ok(&spec, &res);
    assert_int_not_equal(res.exit_code, 0);
    assert_string_equal(res.limit, "file_size_mb");
}

static void test_output_flood_is_rate_limited(void **state) {
    captured c;
    cv_script_spec spec = spec_for("import sys\nfor i in range(1000000):\n    print(i)\n"
                                   "print('x' * 10000)\nprint('after')\n",
                                   &c);
    cv_script_result res;
    (void)state;
    spec.lines_per_second = 1000;
    spec.burst = 5;
    spec.max_line = 100;
    run_ok(&spec, &res);
    assert_int_equal(res.exit_code, 0);
    assert_int_equal(res.lines + res.lines_dropped, 1000002);
    assert_true(res.lines <= 5 + res.duration_ms + 1000);
    assert_string_equal(c.text[CV_SCRIPT_STDOUT][0], "0");
    assert_string_equal(c.text[CV_SCRIPT_STDOUT][4], "4");
}

static void test_long_line_is_cut(void **state) {
    captured c;
    cv_script_spec spec = spec_for("print('x' * 10000 + 'tail')\nprint('after')\n", &c);
    cv_script_result res;
    (void)state;
    spec.max_line = 100;
    run_ok(&spec, &res);
    assert_int_equal(c.lines[CV_SCRIPT_STDOUT], 2);
    assert_int_equal(strlen(c.text[CV_SCRIPT_STDOUT][0]), 100);
    assert_true(c.cut[CV_SCRIPT_STDOUT][0]);
    assert_string_equal(c.text[CV_SCRIPT_STDOUT][1], "after");
    assert_false(c.cut[CV_SCRIPT_STDOUT][1]);
}

static cv_err stop_now(void *ctx, char *errbuf, size_t errlen) {
    (void)ctx;
    return cv_err_set(errbuf, errlen, CV_ERR_CANCELLED, "cancelled on request");
}

static void test_stop_request(void **state) {
    captured c;
    cv_script_spec spec = spec_for("import time\ntime.sleep(30)\n", &c);
    cv_script_result res;
    char why[128];
    (void)state;
    spec.check = stop_now;
    run_ok(&spec, &res);
    assert_true(res.stopped);
    assert_null(res.limit);
    assert_true(res.duration_ms < 2000);
    cv_script_describe(&spec, &res, why, sizeof(why));
    assert_string_equal(why, "stopped on request");
}

static void test_missing_interpreter(void **state) {
    captured c;
    cv_script_spec spec = spec_for("print(1)\n", &c);
    cv_script_result res;
    char why[256];
    (void)state;
    spec.interpreter = "/nonexistent/python3";
    assert_int_equal(cv_script_run(&spec, &res, why, sizeof(why)), CV_ERR_CONFIG);
    assert_string_equal(
        why, "interpreter /nonexistent/python3 cannot be run: No such file or directory");
}

static void test_interpreter_the_user_cannot_run(void **state) {
    char dir[] = "/tmp/cv-test-private-XXXXXX", link[64], why[256], want[256];
    captured c;
    cv_script_spec spec = spec_for("print(1)\n", &c);
    cv_script_result res;
    (void)state;
    if (geteuid() != 0)
        skip();                    /* only a root worker switches users */
    assert_non_null(mkdtemp(dir)); /* mode 700: root's alone */
    snprintf(link, sizeof(link), "%s/python", dir);
    assert_int_equal(symlink("/usr/bin/python3", link), 0);
    spec.interpreter = link;
    assert_int_equal(cv_script_run(&spec, &res, why, sizeof(why)), CV_ERR_CONFIG);
    snprintf(want, sizeof(want), "cannot start %s as user convutell-run: Permission denied", link);
    assert_string_equal(why, want);
    unlink(link);
    rmdir(dir);
}

/* Data mode: stdin fed in small pieces, stdout taken whole and unlimited. */
typedef struct data_mode {
    int fed, lines;
    long long sum;
    char last[64];
} data_mode;

static long feed_numbers(void *ctx, char *buf, size_t len) {
    data_mode *d = ctx;
    int n;
    if (d->fed >= 5000)
        return 0;
    n = snprintf(buf, len, "%d\n", ++d->fed);
    return n;
}

static bool take_line(void *ctx, const char *line, size_t len) {
    data_mode *d = ctx;
    d->lines++;
    snprintf(d->last, sizeof(d->last), "%.*s", (int)len, line); /* line has no NUL */
    d->sum += strtoll(d->last, NULL, 10);
    return strcmp(d->last, "stop") != 0;
}

static void test_data_mode(void **state) {
    data_mode d = {0};
    cv_script_spec spec;
    cv_script_result res;
    char why[256];
    (void)state;
    memset(&spec, 0, sizeof(spec));
    spec.script = "import sys\nfor line in sys.stdin:\n    print(int(line) * 2)\n";
    spec.feed = feed_numbers;
    spec.on_data = take_line;
    spec.ctx = &d;
    spec.lines_per_second = 1; /* data lines are not rate-limited */
    spec.burst = 1;
    spec.limits.timeout_seconds = 30;
    assert_int_equal(cv_script_run(&spec, &res, why, sizeof(why)), CV_OK);
    assert_int_equal(res.exit_code, 0);
    assert_false(res.aborted);
    assert_int_equal(d.lines, 5000);
    assert_int_equal(d.sum, 2LL * 5000 * 5001 / 2);
    assert_string_equal(d.last, "10000");

    /* on_data() refusing a line stops the script at once. */
    memset(&d, 0, sizeof(d));
    spec.script = "import sys, time\nprint('stop', flush=True)\ntime.sleep(30)\n";
    spec.feed = NULL;
    assert_int_equal(cv_script_run(&spec, &res, why, sizeof(why)), CV_OK);
    assert_true(res.aborted);
    assert_true(res.duration_ms < 5000);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* as the worker does: a script may close its stdin early */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prints_and_succeeds),
        cmocka_unit_test(test_exit_status),
        cmocka_unit_test(test_sees_only_its_environment),
        cmocka_unit_test(test_inherits_no_descriptors),
        cmocka_unit_test(test_runs_unprivileged_in_a_folder_removed_after),
        cmocka_unit_test(test_time_limit_kills_the_group),
        cmocka_unit_test(test_cpu_limit),
        cmocka_unit_test(test_memory_bomb),
        cmocka_unit_test(test_fork_bomb),
        cmocka_unit_test(test_huge_file),
        cmocka_unit_test(test_output_flood_is_rate_limited),
        cmocka_unit_test(test_long_line_is_cut),
        cmocka_unit_test(test_stop_request),
        cmocka_unit_test(test_missing_interpreter),
        cmocka_unit_test(test_interpreter_the_user_cannot_run),
        cmocka_unit_test(test_data_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
