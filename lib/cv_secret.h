/*
 * cv_secret.h - encryption of secrets at rest (connection strings in MongoDB).
 *
 * AES-256-GCM with a random 96-bit nonce per value and the owning document's id
 * as associated data, so a sealed value cannot be moved to another document.
 * The text form is "v1:" followed by base64 of nonce || ciphertext || tag.
 * The key is 32 bytes, given as 64 hex digits in CONVUTELL_SECRET_KEY.
 */
#ifndef CV_SECRET_H
#define CV_SECRET_H

#include "cv_err.h"

#include <stddef.h>

#define CV_SECRET_KEY_LEN 32
#define CV_SECRET_OLD_MAX 8 /* old keys kept readable during a rotation */

/* Parses 64 hex digits into key. CV_ERR_CONFIG with the reason otherwise. */
cv_err cv_secret_parse_key(const char *hex, unsigned char key[CV_SECRET_KEY_LEN], char *errbuf,
                           size_t errlen);

/* Encrypts plaintext bound to `context` (e.g. a connection id). On CV_OK, *out
 * is a NUL-terminated string the caller frees with free(). Any thread. */
cv_err cv_secret_seal(const unsigned char key[CV_SECRET_KEY_LEN], const char *context,
                      const char *plaintext, char **out, char *errbuf, size_t errlen);

/* Decrypts what cv_secret_seal() made for the same context. CV_ERR_INVALID if
 * the value was altered, sealed for another context or with another key. On
 * CV_OK, *out is the plaintext; the caller frees it with free(). */
cv_err cv_secret_open(const unsigned char key[CV_SECRET_KEY_LEN], const char *context,
                      const char *sealed, char **out, char *errbuf, size_t errlen);

/* cv_secret_open() with the current key, then with each of n_old old keys
 * (a rotation in progress): *opened_by (may be NULL) gets 0 for the current
 * key, i + 1 for old[i]. CV_ERR_INVALID when no key opens it. */
cv_err cv_secret_open_any(const unsigned char key[CV_SECRET_KEY_LEN],
                          const unsigned char (*old)[CV_SECRET_KEY_LEN], int n_old,
                          const char *context, const char *sealed, char **out, int *opened_by,
                          char *errbuf, size_t errlen);

#endif
