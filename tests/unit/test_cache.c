/*
 * test_cache.c - cv_cache's table: fresh entries served as copies, stale ones
 * dropped, a drop forgetting the entry and refusing a read that raced it, a
 * full table starting again, and a TTL of 0 keeping nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_cache.h"
#include "cv_time.h"

#include <string.h>

static bson_t *doc_named(const char *name) {
    return BCON_NEW("_id", BCON_UTF8(name), "name", BCON_UTF8(name));
}

static void expect_name(cv_cache *c, const char *coll, const char *id, const char *name) {
    bson_t *got = cv_cache_get(c, coll, id);
    if (!name) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(cv_mongo_doc_str(got, "name"), name);
    bson_destroy(got);
}

static void test_fresh_stale_and_drop(void **state) {
    cv_cache *c = cv_cache_new(16, 60000);
    bson_t *a = doc_named("a"), *b = doc_named("b");
    int64_t now = cv_time_mono_ms();
    uint64_t hits, misses;
    (void)state;

    expect_name(c, "jobs", "1", NULL);
    cv_cache_put(c, "jobs", "1", a, now, cv_cache_generation(c));
    cv_cache_put(c, "projects", "1", b, now, cv_cache_generation(c));
    expect_name(c, "jobs", "1", "a"); /* the collection is part of the key */
    expect_name(c, "projects", "1", "b");
    /* Read a minute ago: stale, dropped, and stays gone. */
    cv_cache_put(c, "jobs", "2", a, now - 60001, cv_cache_generation(c));
    expect_name(c, "jobs", "2", NULL);
    expect_name(c, "jobs", "2", NULL);
    /* A drop forgets the entry... */
    uint64_t before = cv_cache_generation(c);
    cv_cache_drop(c, "jobs", "1");
    expect_name(c, "jobs", "1", NULL);
    expect_name(c, "projects", "1", "b");
    /* ...and a read that started before it is not kept. */
    cv_cache_put(c, "jobs", "1", a, now, before);
    expect_name(c, "jobs", "1", NULL);
    cv_cache_put(c, "jobs", "1", b, now, cv_cache_generation(c));
    expect_name(c, "jobs", "1", "b");
    cv_cache_stats(c, &hits, &misses);
    assert_int_equal(hits, 4);
    assert_int_equal(misses, 5);
    bson_destroy(a);
    bson_destroy(b);
    cv_cache_destroy(c);
}

static void test_capacity_and_off(void **state) {
    cv_cache *c = cv_cache_new(3, 60000), *off = cv_cache_new(3, 0);
    bson_t *a = doc_named("a");
    int64_t now = cv_time_mono_ms();
    char id[8];
    (void)state;

    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof(id), "%d", i);
        cv_cache_put(c, "c", id, a, now, cv_cache_generation(c));
    }
    expect_name(c, "c", "0", "a");
    expect_name(c, "c", "2", "a");
    cv_cache_put(c, "c", "2", a, now, cv_cache_generation(c)); /* replaces, no growth */
    expect_name(c, "c", "1", "a");
    cv_cache_put(c, "c", "3", a, now, cv_cache_generation(c)); /* full: starts again */
    expect_name(c, "c", "0", NULL);
    expect_name(c, "c", "3", "a");
    cv_cache_put(off, "c", "0", a, now, cv_cache_generation(off));
    expect_name(off, "c", "0", NULL);
    bson_destroy(a);
    cv_cache_destroy(c);
    cv_cache_destroy(off);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_stale_and_drop),
        cmocka_unit_test(test_capacity_and_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
