/*
 * fuzz_http.c - libFuzzer harness for the HTTP request path: any bytes sent
 * to the API's port (the real server, cv_api_new(), on loopback) as one
 * connection's requests. The store and the broker are addresses nothing
 * listens on, so a request the API accepts ends in 503 within a few
 * milliseconds; what is fuzzed is libmicrohttpd's parsing with our
 * callbacks (body limits, UTF-8 and NUL checks), the routing, query
 * arguments and every JSON body's validation before the store is asked.
 *
 * What must hold for each answer: it is an HTTP/1.x status line; no
 * status is 500 (an internal error: only the store's absence, 503, may
 * answer a request the API cannot serve); and an answer the API wrote
 * (application/json) is a JSON object, with {"error": {"code", "message"}}
 * when its status is 400 or more (but for the health report's 503).
 */
#define _GNU_SOURCE /* memmem, strcasestr */
#include "cv_api.h"
#include "cv_config.h"
#include "cv_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int port;
static const char *whole; /* every answer of the current input, for fail() */

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A port on loopback nothing listens on now. */
static int free_port(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), p = 0;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        p = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return p;
}

static void start_api(void) {
    static cv_api *api;
    char addr[64], err[1024];
    cv_config cfg;

    if (!(port = free_port()))
        abort();
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    setenv("CONVUTELL_ENV_FILE", "/dev/null", 1);
    setenv("CONVUTELL_HTTP_ADDR", addr, 1);
    /* Port 9 (discard) on loopback: refused at once. */
    setenv("CONVUTELL_MONGODB_URI",
           "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=20&connectTimeoutMS=20", 1);
    setenv("CONVUTELL_KAFKA_BOOTSTRAP", "127.0.0.1:9", 1);
    setenv("CONVUTELL_SECRET_KEY",
           "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 1);
    setenv("CONVUTELL_HTTP_REQUEST_SECONDS", "2", 1);
    setenv("CONVUTELL_HTTP_IDLE_SECONDS", "2", 1);
    if (cv_config_load(&cfg, err, sizeof(err)) != CV_OK) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        abort();
    }
    cv_log_init("fuzz_http", (cv_log_level)(CV_LOG_ERROR + 1), false); /* quiet */
    if (!(api = cv_api_new(&cfg, err, sizeof(err)))) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        abort();
    }
}

/* Sends the bytes, ends the sending side and reads the answers until the
 * server closes (at most a few seconds). *len gets their length. */
static char *exchange(const uint8_t *data, size_t size, size_t *len) {
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    size_t cap = 65536, n = 0, sent = 0;
    char *out = malloc(cap + 1);
    int fd = -1;

    if (!out)
        abort();
    /* A connect interrupted by libFuzzer's timer, or refused for want of a
     * local port (thousands of connections a second leave many in
     * TIME_WAIT), is tried again for up to 5 s: the harness's limit, not the
     * server's. */
    for (int64_t until = now_ms() + 5000;;) {
        if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
            abort();
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
            break;
        if (now_ms() > until) {
            fprintf(stderr, "fuzz_http: cannot connect to the API: %s\n", strerror(errno));
            abort();
        }
        close(fd);
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    while (sent < size) {
        ssize_t w = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* the server answered and closed early (a 413): read what it said */
        sent += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    for (int64_t until = now_ms() + 5000;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t r;
        int ready = poll(&p, 1, (int)(until - now_ms() > 0 ? until - now_ms() : 0));
        if (ready < 0 && errno == EINTR)
            continue; /* libFuzzer's timer */
        if (ready <= 0) {
            fprintf(stderr, "fuzz_http: no answer and no close within 5 s\n");
            abort();
        }
        if (n == cap && !(out = realloc(out, (cap *= 2) + 1)))
            abort();
        if ((r = recv(fd, out + n, cap - n, 0)) < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    /* Reset rather than wait: a minute of TIME_WAIT per input would use up
     * the ports of a long run. */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &(struct linger){.l_onoff = 1, .l_linger = 0},
               sizeof(struct linger));
    close(fd);
    out[n] = '\0';
    *len = n;
    return out;
}

/* Stops the run with the answer that broke a rule, for the report. */
static void fail(const char *text, size_t len, const char *rule) {
    fprintf(stderr, "fuzz_http: %s, at byte %zu of the answers:\n%.4096s\n", rule,
            (size_t)(text - whole), whole);
    (void)len;
    abort();
}

/* GET /api/v1/health and /readyz answer 503 with their report, not an error:
 * {"status": "degraded" or "not ready", "mongodb": ..., ...}. */
static bool health_report(const cJSON *body) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(body, "status");
    return cJSON_IsString(s) &&
           (strcmp(s->valuestring, "degraded") == 0 || strcmp(s->valuestring, "not ready") == 0) &&
           cJSON_IsString(cJSON_GetObjectItemCaseSensitive(body, "mongodb"));
}

/* Checks one answer starting at text[0]; returns the length of it, or 0 when
 * the rest is not split into answers (after a HEAD's answer or one that
 * libmicrohttpd wrote). */
static size_t check_answer(const char *text, size_t len) {
    const char *head_end = memmem(text, len, "\r\n\r\n", 4), *cl, *ct;
    long status, body_len = -1;
    bool json;

    if (len < 12 || (strncmp(text, "HTTP/1.1 ", 9) != 0 && strncmp(text, "HTTP/1.0 ", 9) != 0))
        fail(text, len, "not a status line");
    status = strtol(text + 9, NULL, 10);
    if (status < 100 || status > 599 || status == 500)
        fail(text, len, "a status out of range, or 500");
    if (!head_end)
        return 0;
    {
        size_t hlen = (size_t)(head_end - text);
        char *head = strndup(text, hlen);
        if (!head)
            abort();
        cl = strcasestr(head, "\r\nContent-Length: ");
        ct = strcasestr(head, "\r\nContent-Type: ");
        if (cl)
            body_len = strtol(cl + 18, NULL, 10);
        json = ct && strncasecmp(ct + 16, "application/json", 16) == 0;
        free(head);
        head_end += 4;
    }
    /* An answer libmicrohttpd wrote itself (HTML; 0.9.75 has no hook for
     * them) closes the connection, and may come with its head twice. */
    if (!json || body_len < 0 || (size_t)body_len > len - (size_t)(head_end - text))
        return 0;
    if (body_len > 0 && strncmp(head_end, "HTTP/1.", 7) == 0)
        return 0; /* the answer to a HEAD: a head alone, then the next answer */
    if (body_len > 0) {
        cJSON *body = cJSON_ParseWithLength(head_end, (size_t)body_len), *e;
        if (!cJSON_IsObject(body))
            fail(text, len, "a JSON answer that is not an object");
        e = cJSON_GetObjectItemCaseSensitive(body, "error");
        if (status >= 400 && !health_report(body) &&
            (!cJSON_IsObject(e) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "code")) ||
             !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message"))))
            fail(text, len, "an error answer without error.code and error.message");
        cJSON_Delete(body);
    }
    return (size_t)(head_end - text) + (size_t)body_len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t len, at = 0, step;
    char *text;

    if (!port)
        start_api();
    whole = text = exchange(data, size, &len);
    /* Pipelined requests get answers one after another. */
    while (at < len && (step = check_answer(text + at, len - at)) > 0)
        at += step;
    free(text);
    return 0;
}
