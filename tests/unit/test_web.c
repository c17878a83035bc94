/*
 * test_web.c - cv_web: a build read from its folder and answered from memory
 * (the page no-cache, assets immutable), names the build lacks or that leave
 * assets/ answered 404, other methods 405, and builds that cannot be served
 * refused at load. (Which copy a browser gets by Accept-Encoding needs a real
 * connection: tests/system/test_web.py.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_web.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *dir, const char *name, const char *text) {
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_non_null(f = fopen(path, "wb"));
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
}

static void make_build(char *dir) {
    char assets[512];

    assert_non_null(mkdtemp(dir));
    put(dir, "index.html", "<!doctype html><title>t</title>");
    snprintf(assets, sizeof(assets), "%s/assets", dir);
    assert_int_equal(mkdir(assets, 0700), 0);
    put(assets, "app.ABCDEFGH.js", "console.log(1)");
    put(assets, "app.ABCDEFGH.js.gz", "not really gzip");
    put(assets, "app.ABCDEFGH.css", "body{}");
}

static void drop_build(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static cv_http_response answer(const cv_web *w, const char *method, const char *path) {
    cv_http_request req = {.method = method, .path = path, .body = "", .conn = NULL};
    cv_http_response res = {0};
    cv_web_answer(w, &req, &res);
    return res;
}

static void test_serves_the_page_and_its_assets(void **state) {
    char dir[] = "/tmp/cv-web-XXXXXX", why[256];
    cv_web *w = NULL;
    cv_http_response res;
    (void)state;

    make_build(dir);
    assert_int_equal(cv_web_load(dir, &w, why, sizeof(why)), CV_OK);
    for (int i = 0; i < 2; i++) {
        res = answer(w, "GET", i ? "/index.html" : "/");
        assert_int_equal(res.status, 200);
        assert_int_equal(res.file.len, strlen("<!doctype html><title>t</title>"));
        assert_memory_equal(res.file.data, "<!doctype html>", 15);
        assert_string_equal(res.file.content_type, "text/html; charset=utf-8");
        assert_string_equal(res.file.cache_control, "no-cache");
        assert_false(res.file.vary_encoding);
    }
    res = answer(w, "GET", "/assets/app.ABCDEFGH.js");
    assert_int_equal(res.status, 200);
    assert_int_equal(res.file.len, 14);
    assert_null(res.file.encoding); /* no Accept-Encoding: the plain copy */
    assert_true(res.file.vary_encoding);
    assert_string_equal(res.file.content_type, "text/javascript; charset=utf-8");
    assert_string_equal(res.file.cache_control, "public, max-age=31536000, immutable");
    res = answer(w, "GET", "/assets/app.ABCDEFGH.css");
    assert_string_equal(res.file.content_type, "text/css; charset=utf-8");
    assert_false(res.file.vary_encoding);

    for (int i = 0; i < 4; i++) {
        static const char *const missing[] = {"/assets/app.ABCDEFGH.js.gz", "/assets/nope.js",
                                              "/assets/../index.html", "/assets/"};
        res = answer(w, "GET", missing[i]);
        assert_int_equal(res.status, 404);
        assert_null(res.file.data);
        cJSON_Delete(res.body);
    }
    res = answer(w, "POST", "/");
    assert_int_equal(res.status, 405);
    assert_string_equal(res.allow, "GET, HEAD");
    cJSON_Delete(res.body);
    cv_web_destroy(w);
    drop_build(dir);
}

static void test_paths_and_builds_refused(void **state) {
    char empty[] = "/tmp/cv-web-XXXXXX", dir[] = "/tmp/cv-web-XXXXXX", why[256], path[600];
    cv_web *w = (cv_web *)1;
    cv_http_response res;
    FILE *f;
    (void)state;

    assert_true(cv_web_path("/"));
    assert_true(cv_web_path("/index.html"));
    assert_true(cv_web_path("/assets/x.js"));
    assert_false(cv_web_path("/api/v1/health"));
    assert_false(cv_web_path("/healthz"));
    assert_false(cv_web_path("/assets"));

    assert_non_null(mkdtemp(empty)); /* no index.html */
    assert_int_equal(cv_web_load(empty, &w, why, sizeof(why)), CV_ERR_NOT_FOUND);
    assert_null(w);
    assert_non_null(strstr(why, "index.html"));
    res = answer(NULL, "GET", "/"); /* no build: the API says how to get one */
    assert_int_equal(res.status, 404);
    cJSON_Delete(res.body);
    drop_build(empty);

    make_build(dir); /* and one asset over 16 MiB */
    snprintf(path, sizeof(path), "%s/assets/big.js", dir);
    assert_non_null(f = fopen(path, "wb"));
    assert_int_equal(fseek(f, 17L << 20, SEEK_SET), 0);
    assert_int_equal(fputc('x', f), 'x');
    fclose(f);
    assert_int_equal(cv_web_load(dir, &w, why, sizeof(why)), CV_ERR_INVALID);
    assert_null(w);
    assert_non_null(strstr(why, "big.js"));
    drop_build(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serves_the_page_and_its_assets),
        cmocka_unit_test(test_paths_and_builds_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
