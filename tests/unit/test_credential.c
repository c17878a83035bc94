/*
 * test_credential.c - cv_credential: Argon2id hashes that verify and refuse,
 * a hash with older limits flagged for a rehash, tokens' shape and digests;
 * and the user names cv_people accepts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_credential.h"
#include "cv_people.h"

#include <string.h>

static int setup(void **state) {
    char why[128];
    (void)state;
    return cv_credential_init(why, sizeof(why)) == CV_OK ? 0 : -1;
}

static void test_hash_verifies_and_refuses(void **state) {
    char hash[CV_PASSWORD_HASH_LEN], why[256];
    (void)state;
    assert_int_equal(cv_password_hash("correct horse battery", hash, why, sizeof(why)), CV_OK);
    assert_memory_equal(hash, "$argon2id$v=19$m=262144,t=3,p=1$", 32);
    assert_true(cv_password_verify(hash, "correct horse battery"));
    assert_false(cv_password_verify(hash, "correct horse batterY"));
    assert_false(cv_password_verify(hash, ""));
    assert_false(cv_password_verify("not a hash", "correct horse battery"));
    assert_false(cv_password_verify(NULL, "x"));
    assert_false(cv_password_needs_rehash(hash));
    /* The same password twice: two salts, two hashes. */
    char again[CV_PASSWORD_HASH_LEN];
    assert_int_equal(cv_password_hash("correct horse battery", again, why, sizeof(why)), CV_OK);
    assert_string_not_equal(hash, again);
}

static void test_older_limits_want_a_rehash(void **state) {
    /* The limits of argon2-cffi's defaults (m=19456, t=2): weaker than today's. Only
     * the parameters are read, not the hash. */
    static const char older[] = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
                                "yF6Hd4+2l9yJQwB2r1bQzYl3/LtQ8u6WkU6y1n4gM3E";
    (void)state;
    assert_true(cv_password_needs_rehash(older));
}

static void test_tokens_and_digests(void **state) {
    char a[CV_TOKEN_LEN], b[CV_TOKEN_LEN], digest[CV_DIGEST_LEN], pw[32];
    (void)state;
    cv_token_new(CV_TOKEN_PREFIX_API, a);
    cv_token_new(CV_TOKEN_PREFIX_API, b);
    assert_int_equal(strlen(a), 47);
    assert_memory_equal(a, "cvt_", 4);
    assert_int_equal(
        strspn(a + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 43);
    assert_string_not_equal(a, b);
    cv_token_new(CV_TOKEN_PREFIX_SESSION, a);
    assert_memory_equal(a, "cvs_", 4);
    cv_token_digest("abc", digest);
    assert_string_equal(digest, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    cv_password_generate(pw);
    assert_int_equal(strlen(pw), 24);
}

static void test_user_names(void **state) {
    static const char *const good[] = {"a", "alice", "bob.smith", "x_1-2", "0ops", NULL};
    static const char *const bad[] = {"", "Alice", "-bob", ".x", "_x", "a b", "a/b", "é", NULL};
    char longest[CV_USER_NAME_MAX + 2];
    (void)state;
    for (int i = 0; good[i]; i++)
        assert_true(cv_people_name_ok(good[i]));
    for (int i = 0; bad[i]; i++)
        assert_false(cv_people_name_ok(bad[i]));
    assert_false(cv_people_name_ok(NULL));
    memset(longest, 'a', sizeof(longest) - 1);
    longest[CV_USER_NAME_MAX] = '\0';
    assert_true(cv_people_name_ok(longest));
    longest[CV_USER_NAME_MAX] = 'a';
    longest[CV_USER_NAME_MAX + 1] = '\0';
    assert_false(cv_people_name_ok(longest));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_verifies_and_refuses),
        cmocka_unit_test(test_older_limits_want_a_rehash),
        cmocka_unit_test(test_tokens_and_digests),
        cmocka_unit_test(test_user_names),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
