/*
 * cv_httpc.c - a signed JSON POST through libcurl. See cv_httpc.h.
 */
#include "cv_httpc.h"

#include "cv_time.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

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

static bool v4_private(const unsigned char a[4]) {
    return a[0] == 0 ||                               /* this network */
           a[0] == 10 ||                              /* private */
           (a[0] == 100 && (a[1] & 0xC0) == 64) ||    /* shared (carrier NAT) */
           a[0] == 127 ||                             /* loopback */
           (a[0] == 169 && a[1] == 254) ||            /* link-local: cloud metadata */
           (a[0] == 172 && (a[1] & 0xF0) == 16) ||    /* private */
           (a[0] == 192 && a[1] == 0 && a[2] == 0) || /* protocol assignments */
           (a[0] == 192 && a[1] == 168) ||            /* private */
           (a[0] == 198 && (a[1] & 0xFE) == 18) ||    /* benchmarking */
           a[0] >= 224;                               /* multicast, reserved, broadcast */
}

bool cv_httpc_address_private(const struct sockaddr *addr) {
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    static const unsigned char zero[15] = {0};

    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)addr;
        return v4_private((const unsigned char *)&in->sin_addr);
    }
    if (addr->sa_family == AF_INET6) {
        const unsigned char *a =
            ((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr.s6_addr;
        if (memcmp(a, mapped, 12) == 0)
            return v4_private(a + 12);
        return (memcmp(a, zero, 15) == 0 && a[15] <= 1) || /* :: and ::1 */
               (a[0] & 0xFE) == 0xFC ||                    /* fc00::/7, unique local */
               (a[0] == 0xFE && (a[1] & 0xC0) == 0x80) ||  /* fe80::/10, link-local */
               a[0] == 0xFF;                               /* multicast */
    }
    return true; /* not an internet address at all */
}

/* The state of one POST's address check. */
typedef struct reach_check {
    cv_httpc_reach reach;
    char refused[INET6_ADDRSTRLEN]; /* the address refused, or "" */
} reach_check;

/* libcurl's socket opener: refuses a private address when only public ones
 * may be reached (libcurl then tries the name's next address, if any). */
static curl_socket_t open_socket(void *ctx, curlsocktype purpose, struct curl_sockaddr *a) {
    reach_check *check = ctx;

    (void)purpose;
    if (check->reach == CV_HTTPC_PUBLIC_ONLY && cv_httpc_address_private(&a->addr)) {
        const void *ip = a->family == AF_INET
                             ? (const void *)&((struct sockaddr_in *)(void *)&a->addr)->sin_addr
                             : (const void *)&((struct sockaddr_in6 *)(void *)&a->addr)->sin6_addr;
        if (!inet_ntop(a->family, ip, check->refused, sizeof(check->refused)))
            snprintf(check->refused, sizeof(check->refused), "?");
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

void cv_httpc_post(const char *url, const char *body, size_t len, const char *const *headers,
                   int timeout_ms, cv_httpc_reach reach, cv_httpc_result *r) {
    CURL *curl = curl_easy_init();
    reach_check check = {reach, ""};
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
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(curl, CURLOPT_OPENSOCKETDATA, &check);
    rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    else if (check.refused[0])
        snprintf(r->error, sizeof(r->error),
                 "refused: %s is not a public address (CONVUTELL_WEBHOOK_PRIVATE=allow lets "
                 "webhooks reach the host and private networks)",
                 check.refused);
    else
        snprintf(r->error, sizeof(r->error), "%s", error[0] ? error : curl_easy_strerror(rc));
    r->status = (int)status;
    r->elapsed_ms = cv_time_mono_ms() - started;
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
}
