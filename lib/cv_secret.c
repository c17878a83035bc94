/*
 * cv_secret.c - AES-256-GCM through OpenSSL's EVP interface (libcrypto is
 * already a dependency of the MongoDB driver).
 */
#include "cv_secret.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define NONCE_LEN 12
#define TAG_LEN 16
#define PREFIX "v1:"

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

cv_err cv_secret_parse_key(const char *hex, unsigned char key[CV_SECRET_KEY_LEN], char *errbuf,
                           size_t errlen) {
    if (strlen(hex) != 2 * CV_SECRET_KEY_LEN)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG,
                          "must be %d hex digits (openssl rand -hex 32), not %zu characters",
                          2 * CV_SECRET_KEY_LEN, strlen(hex));
    for (int i = 0; i < CV_SECRET_KEY_LEN; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "must be hex digits only");
        key[i] = (unsigned char)(hi << 4 | lo);
    }
    return CV_OK;
}

cv_err cv_secret_seal(const unsigned char key[CV_SECRET_KEY_LEN], const char *context,
                      const char *plaintext, char **out, char *errbuf, size_t errlen) {
    size_t plen = strlen(plaintext), rawlen = NONCE_LEN + plen + TAG_LEN;
    unsigned char *raw = malloc(rawlen);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    char *text = NULL;
    int n = 0;
    cv_err err = CV_OK;

    *out = NULL;
    if (!raw || !ctx) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (RAND_bytes(raw, NONCE_LEN) != 1 ||
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, key, raw) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)context, (int)strlen(context)) !=
            1 ||
        EVP_EncryptUpdate(ctx, raw + NONCE_LEN, &n, (const unsigned char *)plaintext, (int)plen) !=
            1 ||
        EVP_EncryptFinal_ex(ctx, raw + NONCE_LEN + n, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, raw + NONCE_LEN + plen) != 1) {
        err = cv_err_set(errbuf, errlen, CV_ERR_IO, "encryption failed");
        goto out;
    }
    text = malloc(sizeof(PREFIX) + 4 * ((rawlen + 2) / 3) + 1);
    if (!text) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    memcpy(text, PREFIX, sizeof(PREFIX) - 1);
    EVP_EncodeBlock((unsigned char *)text + sizeof(PREFIX) - 1, raw, (int)rawlen);
    *out = text;
out:
    EVP_CIPHER_CTX_free(ctx);
    free(raw);
    return err;
}

cv_err cv_secret_open(const unsigned char key[CV_SECRET_KEY_LEN], const char *context,
                      const char *sealed, char **out, char *errbuf, size_t errlen) {
    const char *b64 = sealed + sizeof(PREFIX) - 1;
    size_t b64len, rawcap;
    unsigned char *raw = NULL;
    EVP_CIPHER_CTX *ctx = NULL;
    char *plain = NULL;
    int rawlen, n = 0, pad = 0;
    cv_err err = CV_OK;

    *out = NULL;
    if (strncmp(sealed, PREFIX, sizeof(PREFIX) - 1) != 0)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "not a sealed secret");
    b64len = strlen(b64);
    if (b64len % 4 != 0 || b64len == 0)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "sealed secret is damaged");
    pad = (b64[b64len - 1] == '=') + (b64len > 1 && b64[b64len - 2] == '=');
    rawcap = b64len / 4 * 3;
    raw = malloc(rawcap);
    ctx = EVP_CIPHER_CTX_new();
    if (!raw || !ctx) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    rawlen = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)b64len);
    if (rawlen < 0 || rawlen - pad < NONCE_LEN + TAG_LEN) {
        err = cv_err_set(errbuf, errlen, CV_ERR_INVALID, "sealed secret is damaged");
        goto out;
    }
    rawlen -= pad;
    {
        int clen = rawlen - NONCE_LEN - TAG_LEN;
        plain = malloc((size_t)clen + 1);
        if (!plain) {
            err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
            goto out;
        }
        if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
            EVP_DecryptInit_ex(ctx, NULL, NULL, key, raw) != 1 ||
            EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)context,
                              (int)strlen(context)) != 1 ||
            EVP_DecryptUpdate(ctx, (unsigned char *)plain, &n, raw + NONCE_LEN, clen) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, raw + NONCE_LEN + clen) != 1 ||
            EVP_DecryptFinal_ex(ctx, (unsigned char *)plain + n, &n) != 1) {
            err = cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                             "secret does not decrypt: wrong CONVUTELL_SECRET_KEY, or altered");
            goto out;
        }
        plain[clen] = '\0';
        *out = plain;
        plain = NULL;
    }
out:
    free(plain);
    EVP_CIPHER_CTX_free(ctx);
    free(raw);
    return err;
}

cv_err cv_secret_open_any(const unsigned char key[CV_SECRET_KEY_LEN],
                          const unsigned char (*old)[CV_SECRET_KEY_LEN], int n_old,
                          const char *context, const char *sealed, char **out, int *opened_by,
                          char *errbuf, size_t errlen) {
    cv_err err = cv_secret_open(key, context, sealed, out, errbuf, errlen);
    int by = 0;

    for (int i = 0; err == CV_ERR_INVALID && i < n_old; i++) {
        err = cv_secret_open(old[i], context, sealed, out, errbuf, errlen);
        by = i + 1;
    }
    if (opened_by)
        *opened_by = err ? -1 : by;
    return err;
}
