/*
 * cv_http.h - a small JSON-over-HTTP server on libmicrohttpd.
 *
 * It reads each request body into memory up to a limit (a larger declared
 * Content-Length is refused with 413 before the body is read; a chunked body
 * is answered with 413 as soon as it passes the limit, and its connection
 * closed), then calls one handler with the whole request. Each connection
 * has a thread of its own, so a handler that waits (for the store, for the
 * broker) holds up no other connection. HEAD is answered like GET, without
 * the body. A 204 is sent without a body. Every answer carries
 * `X-Content-Type-Options: nosniff` and `Referrer-Policy: same-origin`.
 *
 * Slow or idle clients cannot hold the server: a connection silent for
 * idle_seconds is closed, a request whose headers and body have not arrived
 * within request_seconds of its connection gets 408 and is closed, and at most
 * per_address connections from one address and `connections` in all are open
 * at once (more are refused at accept; `connections` is lowered to what the
 * process's open-file limit allows, keeping 64 descriptors for the rest).
 */
#ifndef CV_HTTP_H
#define CV_HTTP_H

#include "cv_err.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct cv_http_server cv_http_server;

typedef struct cv_http_request {
    const char *method;
    const char *path; /* without the query string */
    const char *body; /* NUL-terminated; "" when there is none */
    size_t body_len;
    void *conn;         /* the server's connection, for cv_http_arg(); NULL in unit tests */
    const void *caller; /* the handler's: who is asking (the API's router sets it) */
    const char *item;   /* the handler's: a path's second id (the router sets it), or NULL */
} cv_http_request;

/* A body sent as it is made (a large download) instead of JSON: read fills
 * buf with up to max bytes and returns how many, 0 at the end, -1 on a
 * failure (the connection is then cut, the client sees a short body). done
 * frees ctx once the body is sent or the connection closed, or when the
 * answer is not a 200 after all. */
typedef struct cv_http_stream {
    long (*read)(void *ctx, char *buf, size_t max);
    void (*done)(void *ctx);
    void *ctx;
    char content_type[64];
    char disposition[160]; /* Content-Disposition when non-empty */
} cv_http_stream;

/* A file of the web interface sent as it is instead of JSON (cv_web.h): the bytes are
 * borrowed and must outlive the server; the strings are static. Sent with the page's
 * headers (Content-Security-Policy without inline code, X-Frame-Options). */
typedef struct cv_http_file {
    const void *data;
    size_t len;
    const char *content_type;
    const char *encoding;      /* Content-Encoding ("gzip") or NULL */
    const char *cache_control; /* Cache-Control */
    bool vary_encoding;        /* the answer depends on Accept-Encoding */
} cv_http_file;

typedef struct cv_http_response {
    int status;
    cJSON *body;                /* owned by the response; sent as JSON */
    char location[256];         /* Location header when non-empty */
    char allow[64];             /* Allow header when non-empty (a 405) */
    char www_authenticate[128]; /* WWW-Authenticate header when non-empty (a 401) */
    char set_cookie[256];       /* Set-Cookie header when non-empty */
    int retry_after;            /* Retry-After header (seconds) when > 0 (a 429) */
    char etag[96];              /* ETag header when non-empty */
    cv_http_stream stream;      /* a 200 with stream.read set sends that instead of body */
    cv_http_file file;          /* a 200 with file.data set sends that instead of body */
    char cors_origin[256];      /* the server's: an allowed Origin the answer names */
    bool cors_preflight;        /* the server's: the answer to a CORS preflight */
} cv_http_response;

typedef void (*cv_http_handler)(void *ctx, const cv_http_request *req, cv_http_response *res);

/* How much of the server one client, or all of them, may hold, and which
 * web pages of other origins may read its answers. */
typedef struct cv_http_limits {
    size_t max_body; /* bytes of a request body */
    unsigned connections, per_address, idle_seconds, request_seconds;
    /* CORS: "" (none, the default), "*" (any) or origins separated by commas
     * ("https://a.example,http://localhost:5173"). A request whose Origin is
     * allowed gets Access-Control-Allow-Origin (that origin) on its answer,
     * and its preflight (OPTIONS) a 204 naming the methods and headers the
     * API takes; any other origin gets no CORS header, so browsers keep
     * their pages from reading the answers. Copied. */
    const char *cors_origins;
} cv_http_limits;

/* Starts listening on host:port (IPv4) within `limits`. Returns NULL with the
 * reason in errbuf. Stop and free with cv_http_server_destroy(). */
cv_http_server *cv_http_server_new(const char *host, int port, const cv_http_limits *limits,
                                   cv_http_handler handler, void *ctx, char *errbuf, size_t errlen);

/* Stops accepting, waits for handlers in progress and frees. Accepts NULL. */
void cv_http_server_destroy(cv_http_server *s);

/* The value of query argument `name` (percent-decoding done), borrowed from
 * the request until the handler returns; NULL when the query lacks it. An
 * argument given without a value ("?after") reads as "". */
const char *cv_http_arg(const cv_http_request *req, const char *name);

/* The value of request header `name` (any case), borrowed like
 * cv_http_arg()'s; NULL when absent. */
const char *cv_http_header(const cv_http_request *req, const char *name);

/* The value of cookie `name`, borrowed likewise; NULL when absent. */
const char *cv_http_cookie(const cv_http_request *req, const char *name);

/* The client's address as text ("127.0.0.1", "::1") into buf; "" when
 * unknown (no connection: unit tests). */
#define CV_HTTP_PEER_LEN 64
void cv_http_peer(const cv_http_request *req, char buf[CV_HTTP_PEER_LEN]);

/* Sets res to an error answer: {"error": {"code", "message", "field"?}}.
 * `field` may be NULL. The message is formatted printf-style. */
void cv_http_error(cv_http_response *res, int status, const char *code, const char *field,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
