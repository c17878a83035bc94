/*
 * cv_credential.h - passwords and tokens (libsodium).
 *
 * Passwords are stored as Argon2id hashes in libsodium's string format
 * (crypto_pwhash_str: the algorithm, its limits and the salt travel with the
 * hash), with the moderate limits: 256 MiB and about a second of one core per
 * hash. So that a burst of logins cannot take the machine's memory, at most
 * CV_CREDENTIAL_HASHING hashes run at once in a process; the others wait.
 *
 * Tokens are 256 random bits in URL-safe base64 behind a prefix that says
 * what they are ("cvt_" an API token, "cvs_" a session), so a leaked one is
 * easy to grep for. Only their SHA-256 is stored: the token itself is shown
 * once, to the one who made it.
 *
 * Every function may be called from any thread after cv_credential_init().
 */
#ifndef CV_CREDENTIAL_H
#define CV_CREDENTIAL_H

#include "cv_err.h"

#include <stdbool.h>
#include <stddef.h>

#define CV_CREDENTIAL_HASHING 2
#define CV_PASSWORD_HASH_LEN 128 /* crypto_pwhash_STRBYTES */
#define CV_PASSWORD_MIN 12       /* characters a chosen password must have at least */
#define CV_PASSWORD_MAX 256
#define CV_TOKEN_LEN 48  /* prefix (4) + 43 base64 characters + NUL */
#define CV_DIGEST_LEN 65 /* SHA-256 in hex + NUL */
#define CV_TOKEN_PREFIX_API "cvt_"
#define CV_TOKEN_PREFIX_SESSION "cvs_"

/* Initialises libsodium once per process. CV_ERR_IO when it cannot. */
cv_err cv_credential_init(char *errbuf, size_t errlen);

/* Hashes password into hash (CV_PASSWORD_HASH_LEN bytes). CV_ERR_NOMEM when
 * the memory the limits ask for is not there. */
cv_err cv_password_hash(const char *password, char hash[CV_PASSWORD_HASH_LEN], char *errbuf,
                        size_t errlen);

/* Whether password matches hash (false for a hash that is not one). Takes
 * as long as hashing does. */
bool cv_password_verify(const char *hash, const char *password);

/* Whether hash was made with other limits than today's: rehash it at the
 * next successful login. */
bool cv_password_needs_rehash(const char *hash);

/* A new random password of 24 URL-safe characters (what `admin create-user`
 * prints once). */
void cv_password_generate(char out[32]);

/* A new token: prefix + 43 URL-safe base64 characters of 256 random bits. */
void cv_token_new(const char *prefix, char out[CV_TOKEN_LEN]);

/* The SHA-256 of token in lower-case hex: what the store keeps. */
void cv_token_digest(const char *token, char out[CV_DIGEST_LEN]);

/* The SHA-256 of len bytes at data in lower-case hex. */
void cv_digest(const void *data, size_t len, char out[CV_DIGEST_LEN]);

#endif
