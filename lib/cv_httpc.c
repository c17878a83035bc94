/*
 * cv_httpc.c - a signed JSON POST through libcurl. See cv_httpc.h.
 */
#include "cv_httpc.h"

#include "cv_time.h"

#include <curl/curl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

cv_err cv_httpc_init(char *errbuf, size_t errlen) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return cv_err_set(errbuf, errlen, CV_ERR_IO, "libcurl did not start");
    if (sodium_init() < 0)
        return cv_err_set(errbuf, errlen, CV_ERR_IO, "libsodium did not start");
    return CV_OK;
}

void cv_httpc_sign(const char *secret, int64_t timestamp, const char *body, size_t len,
                   char out[CV_HTTPC_SIGNATURE_LEN]) {
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    char stamp[24];
    int n = snprintf(stamp, sizeof(stamp), "%lld.", (long long)timestamp);

    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)stamp, (unsigned long long)n);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    memcpy(out, "sha256=", 7);
    sodium_bin2hex(out + 7, CV_HTTPC_SIGNATURE_LEN - 7, mac, sizeof(mac));
}

/* The answer's body is not kept. */
static size_t drop(char *data, size_t size, size_t n, void *ctx) {
    (void)data;
    (void)ctx;
    return size * n;
}

void cv_httpc_post(const char *url, const char *body, size_t len, const char *const *headers,
                   int timeout_ms, cv_httpc_result *r) {
    CURL *curl = curl_easy_init();
    struct curl_slist *list = NULL;
    int64_t started = cv_time_mono_ms();
    char error[CURL_ERROR_SIZE] = "";
    CURLcode rc;
    long status = 0;

    memset(r, 0, sizeof(*r));
    if (!curl) {
        snprintf(r->error, sizeof(r->error), "libcurl could not make a handle");
        return;
    }
    list = curl_slist_append(list, "Content-Type: application/json");
    list = curl_slist_append(list, "Expect:"); /* no 100-continue round trip */
    for (size_t i = 0; headers && headers[i]; i++)
        list = curl_slist_append(list, headers[i]);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "convutell-webhooks");
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, drop);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf(r->error, sizeof(r->error), "%s", error[0] ? error : curl_easy_strerror(rc));
    r->status = (int)status;
    r->elapsed_ms = cv_time_mono_ms() - started;
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
}
