/*
 * cv_credential.c - passwords and tokens on libsodium (see cv_credential.h).
 */
#include "cv_credential.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* Argon2id's moderate limits: about 256 MiB and a second per hash. */
#define OPSLIMIT crypto_pwhash_OPSLIMIT_MODERATE
#define MEMLIMIT crypto_pwhash_MEMLIMIT_MODERATE

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t freed = PTHREAD_COND_INITIALIZER;
static int hashing;

_Static_assert(crypto_pwhash_STRBYTES <= CV_PASSWORD_HASH_LEN, "password hash buffer");

cv_err cv_credential_init(char *errbuf, size_t errlen) {
    if (sodium_init() < 0)
        return cv_err_set(errbuf, errlen, CV_ERR_IO, "libsodium cannot start");
    return CV_OK;
}

/* At most CV_CREDENTIAL_HASHING Argon2 computations at once: each takes
 * MEMLIMIT bytes. */
static void enter(void) {
    pthread_mutex_lock(&lock);
    while (hashing >= CV_CREDENTIAL_HASHING)
        pthread_cond_wait(&freed, &lock);
    hashing++;
    pthread_mutex_unlock(&lock);
}

static void leave(void) {
    pthread_mutex_lock(&lock);
    hashing--;
    pthread_cond_signal(&freed);
    pthread_mutex_unlock(&lock);
}

cv_err cv_password_hash(const char *password, char hash[CV_PASSWORD_HASH_LEN], char *errbuf,
                        size_t errlen) {
    int rc;

    enter();
    rc = crypto_pwhash_str(hash, password, strlen(password), OPSLIMIT, MEMLIMIT);
    leave();
    if (rc != 0)
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM,
                          "not enough memory to hash a password (Argon2id wants %zu MiB)",
                          (size_t)(MEMLIMIT >> 20));
    return CV_OK;
}

bool cv_password_verify(const char *hash, const char *password) {
    int rc;

    if (!hash || !password || strlen(hash) >= crypto_pwhash_STRBYTES)
        return false;
    enter();
    rc = crypto_pwhash_str_verify(hash, password, strlen(password));
    leave();
    return rc == 0;
}

bool cv_password_needs_rehash(const char *hash) {
    return crypto_pwhash_str_needs_rehash(hash, OPSLIMIT, MEMLIMIT) != 0;
}

void cv_password_generate(char out[32]) {
    unsigned char raw[18];

    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(out, 32, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
}

void cv_token_new(const char *prefix, char out[CV_TOKEN_LEN]) {
    unsigned char raw[32];
    size_t plen = strlen(prefix);

    randombytes_buf(raw, sizeof(raw));
    memcpy(out, prefix, plen);
    sodium_bin2base64(out + plen, CV_TOKEN_LEN - plen, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
}

void cv_token_digest(const char *token, char out[CV_DIGEST_LEN]) {
    cv_digest(token, strlen(token), out);
}

void cv_digest(const void *data, size_t len, char out[CV_DIGEST_LEN]) {
    unsigned char sum[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(sum, data, len);
    sodium_bin2hex(out, CV_DIGEST_LEN, sum, sizeof(sum));
}
