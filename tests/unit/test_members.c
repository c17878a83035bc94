/*
 * test_members.c - roles and a project's members as its document keeps them
 * (people/cv_members.c): the pure part; changes in the store are in the
 * system tests (test_rights.py).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_members.h"

#include <string.h>

static void test_role_names(void **state) {
    (void)state;
    assert_int_equal(cv_role_parse("owner"), CV_ROLE_OWNER);
    assert_int_equal(cv_role_parse("editor"), CV_ROLE_EDITOR);
    assert_int_equal(cv_role_parse("runner"), CV_ROLE_RUNNER);
    assert_int_equal(cv_role_parse("viewer"), CV_ROLE_VIEWER);
    assert_int_equal(cv_role_parse("none"), CV_ROLE_NONE); /* not a role one can be given */
    assert_int_equal(cv_role_parse("Owner"), CV_ROLE_NONE);
    assert_int_equal(cv_role_parse(""), CV_ROLE_NONE);
    assert_int_equal(cv_role_parse(NULL), CV_ROLE_NONE);
    for (int r = CV_ROLE_NONE; r <= CV_ROLE_OWNER; r++)
        assert_int_equal(r == CV_ROLE_NONE ? CV_ROLE_NONE : cv_role_parse(cv_role_str(r)), r);
    assert_string_equal(cv_role_str((cv_role)42), "none");
    /* Each role allows what the ones below it do: the order is the rule. */
    assert_true(CV_ROLE_OWNER > CV_ROLE_EDITOR && CV_ROLE_EDITOR > CV_ROLE_RUNNER &&
                CV_ROLE_RUNNER > CV_ROLE_VIEWER && CV_ROLE_VIEWER > CV_ROLE_NONE);
}

static void test_role_of_a_member(void **state) {
    bson_t project = BSON_INITIALIZER;
    bson_t *bad;
    (void)state;
    assert_int_equal(cv_members_role(&project, "alice"), CV_ROLE_NONE); /* from before members */
    cv_members_append_first(&project, "alice");
    assert_int_equal(cv_members_role(&project, "alice"), CV_ROLE_OWNER);
    assert_int_equal(cv_members_role(&project, "alic"), CV_ROLE_NONE);
    assert_int_equal(cv_members_role(&project, "alice2"), CV_ROLE_NONE);
    assert_int_equal(cv_members_role(&project, NULL), CV_ROLE_NONE);
    assert_int_equal(cv_members_role(NULL, "alice"), CV_ROLE_NONE);
    assert_int_equal(cv_mongo_doc_int(&project, "members_version", 0), 1);
    bson_destroy(&project);
    /* Entries that do not read as {user, role} give nobody anything. */
    bad = bson_new_from_json(
        (const uint8_t *)"{\"members\": [{\"user\": \"bob\", \"role\": \"god\"}, {\"user\": 7, "
                         "\"role\": \"owner\"}, \"carol\", {\"role\": \"owner\"}, {\"user\": "
                         "\"dan\", \"role\": \"runner\"}]}",
        -1, NULL);
    assert_non_null(bad);
    assert_int_equal(cv_members_role(bad, "bob"), CV_ROLE_NONE);
    assert_int_equal(cv_members_role(bad, "carol"), CV_ROLE_NONE);
    assert_int_equal(cv_members_role(bad, "dan"), CV_ROLE_RUNNER);
    bson_destroy(bad);
    bad = bson_new_from_json((const uint8_t *)"{\"members\": {\"user\": \"bob\"}}", -1, NULL);
    assert_int_equal(cv_members_role(bad, "bob"), CV_ROLE_NONE);
    bson_destroy(bad);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_role_names),
        cmocka_unit_test(test_role_of_a_member),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
