/*
 * cv_http.c - libmicrohttpd plumbing: body collection with a size limit,
 * dispatch to one handler, JSON answers, and the limits that keep slow
 * clients from holding the server.
 */
#include "cv_http.h"

#include "cv_log.h"
#include "cv_time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define FD_HEADROOM 64 /* descriptors kept for the store, the broker and the logs */

struct cv_http_server {
    struct MHD_Daemon *daemon;
    cv_http_limits limits;
    char cors[1024]; /* limits.cors_origins, copied */
    cv_http_handler handler;
    void *ctx;
};

/* Per-request state, from the first callback to the completion notice. */
typedef struct request_state {
    char *body;
    size_t len;
    size_t cap;
    bool answered; /* refused before its body was read (413, 408) */
} request_state;

void cv_http_error(cv_http_response *res, int status, const char *code, const char *field,
                   const char *fmt, ...) {
    char message[1024];
    cJSON *root = cJSON_CreateObject();
    cJSON *error = cJSON_AddObjectToObject(root, "error");
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    cJSON_AddStringToObject(error, "code", code);
    if (field)
        cJSON_AddStringToObject(error, "field", field);
    cJSON_AddStringToObject(error, "message", message);
    cJSON_Delete(res->body);
    res->body = root;
    res->status = status;
}

/* The CORS headers of an answer to an allowed origin. */
static void add_cors(struct MHD_Response *response, const cv_http_response *res) {
    if (!res->cors_origin[0])
        return;
    MHD_add_response_header(response, "Access-Control-Allow-Origin", res->cors_origin);
    MHD_add_response_header(response, MHD_HTTP_HEADER_VARY, "Origin");
    if (!res->cors_preflight) {
        MHD_add_response_header(response, "Access-Control-Expose-Headers",
                                "ETag, Location, Retry-After, WWW-Authenticate");
        return;
    }
    MHD_add_response_header(response, "Access-Control-Allow-Methods",
                            "GET, HEAD, POST, PUT, PATCH, DELETE");
    MHD_add_response_header(response, "Access-Control-Allow-Headers",
                            "Authorization, Content-Type, If-Match, Idempotency-Key, X-CSRF-Token");
    MHD_add_response_header(response, "Access-Control-Max-Age", "600");
}

/* Whether origin is one the server lets read its answers. */
static bool cors_allowed(const cv_http_server *s, const char *origin) {
    size_t n = origin ? strlen(origin) : 0;

    if (!s->cors[0] || !n)
        return false;
    if (strcmp(s->cors, "*") == 0)
        return true;
    for (const char *p = s->cors; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && memcmp(p, origin, n) == 0)
            return true;
        p += len + (p[len] == ',');
    }
    return false;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    cv_http_stream *st = cls;
    long n = st->read(st->ctx, buf, max);
    (void)pos;
    return n > 0    ? (ssize_t)n
           : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM
                    : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_done(void *cls) {
    cv_http_stream *st = cls;
    if (st->done)
        st->done(st->ctx);
    free(st);
}

/* A streamed 200: the stream is the response's from here on. */
static void add_common(struct MHD_Response *response) {
    MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(response, "Referrer-Policy", "same-origin");
}

static enum MHD_Result send_stream(struct MHD_Connection *conn, cv_http_response *res) {
    cv_http_stream *st = malloc(sizeof(*st));
    struct MHD_Response *response = NULL;
    enum MHD_Result ret;

    if (st) {
        *st = res->stream;
        response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, st,
                                                     stream_done);
    }
    memset(&res->stream, 0, sizeof(res->stream));
    if (!response) {
        if (st)
            stream_done(st);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, st->content_type);
    if (st->disposition[0])
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_DISPOSITION, st->disposition);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    add_common(response);
    add_cors(response, res);
    ret = MHD_queue_response(conn, MHD_HTTP_OK, response);
    MHD_destroy_response(response);
    return ret;
}

/* The page's policy: scripts, styles and everything else from this origin only, no inline
 * code, never framed. */
#define PAGE_POLICY                                                                                \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "                    \
    "form-action 'self'; frame-ancestors 'none'"

static enum MHD_Result send_file(struct MHD_Connection *conn, cv_http_response *res) {
    const cv_http_file *f = &res->file;
    struct MHD_Response *response =
        MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret;

    if (!response)
        return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, f->content_type);
    if (f->encoding)
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_ENCODING, f->encoding);
    if (f->vary_encoding)
        MHD_add_response_header(response, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, f->cache_control);
    MHD_add_response_header(response, "Content-Security-Policy", PAGE_POLICY);
    MHD_add_response_header(response, "X-Frame-Options", "DENY");
    add_common(response);
    ret = MHD_queue_response(conn, (unsigned)res->status, response);
    MHD_destroy_response(response);
    return ret;
}

static enum MHD_Result send_response(struct MHD_Connection *conn, cv_http_response *res) {
    char *text;
    struct MHD_Response *response;
    enum MHD_Result ret;

    if (res->stream.read && res->status == MHD_HTTP_OK)
        return send_stream(conn, res);
    if (res->file.data && res->status == MHD_HTTP_OK)
        return send_file(conn, res);
    if (res->stream.done) /* not a 200 after all */
        res->stream.done(res->stream.ctx);
    memset(&res->stream, 0, sizeof(res->stream));
    text = res->body ? cJSON_PrintUnformatted(res->body) : NULL;
    if (res->status == MHD_HTTP_NO_CONTENT) {
        free(text);
        text = NULL;
        response = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    } else if (!text) {
        static const char fallback[] = "{\"error\":{\"code\":\"internal\",\"message\":"
                                       "\"out of memory\"}}";
        response = MHD_create_response_from_buffer(sizeof(fallback) - 1, (void *)fallback,
                                                   MHD_RESPMEM_PERSISTENT);
        res->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    } else {
        response = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    }
    if (!response) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    add_common(response);
    add_cors(response, res);
    if (res->location[0])
        MHD_add_response_header(response, MHD_HTTP_HEADER_LOCATION, res->location);
    if (res->allow[0])
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, res->allow);
    if (res->www_authenticate[0])
        MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE, res->www_authenticate);
    if (res->set_cookie[0])
        MHD_add_response_header(response, MHD_HTTP_HEADER_SET_COOKIE, res->set_cookie);
    if (res->etag[0])
        MHD_add_response_header(response, MHD_HTTP_HEADER_ETAG, res->etag);
    if (res->retry_after > 0) {
        char seconds[16];
        snprintf(seconds, sizeof(seconds), "%d", res->retry_after);
        MHD_add_response_header(response, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
    }
    ret = MHD_queue_response(conn, (unsigned)res->status, response);
    MHD_destroy_response(response);
    return ret;
}

/* Answers a request whose body is still coming, which libmicrohttpd (0.9)
 * cannot queue a response for: the answer is written to the socket as it
 * is, its sending side shut, and MHD_NO makes the server close the rest. */
static enum MHD_Result answer_mid_body(struct MHD_Connection *conn, cv_http_response *res) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    char *body = cJSON_PrintUnformatted(res->body), head[256];
    int n;

    if (ci && body) {
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     res->status, MHD_get_reason_phrase_for((unsigned)res->status), strlen(body));
        /* A few hundred bytes into an idle socket's send buffer: not short. */
        if (send(ci->connect_fd, head, (size_t)n, MSG_NOSIGNAL) == n)
            (void)send(ci->connect_fd, body, strlen(body), MSG_NOSIGNAL);
        shutdown(ci->connect_fd, SHUT_WR);
    }
    cJSON_free(body);
    return MHD_NO;
}

/* Sends the error answer res (freeing its body): queued as usual, or
 * written at once while the body is still arriving (answer_mid_body()). */
static enum MHD_Result refuse(struct MHD_Connection *conn, cv_http_response *res, bool mid_body) {
    enum MHD_Result ret = mid_body ? answer_mid_body(conn, res) : send_response(conn, res);
    cJSON_Delete(res->body);
    return ret;
}

/* 413 for a body over the limit. */
static enum MHD_Result too_large(struct MHD_Connection *conn, size_t max_body, bool mid_body) {
    cv_http_response res = {0};
    cv_http_error(&res, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large", NULL,
                  "request body is larger than the limit of %zu bytes", max_body);
    return refuse(conn, &res, mid_body);
}

/* 408 for a request slower than its limit. */
static enum MHD_Result too_slow(struct MHD_Connection *conn, unsigned seconds, bool mid_body) {
    cv_http_response res = {0};
    cv_http_error(&res, MHD_HTTP_REQUEST_TIMEOUT, "request_timeout", NULL,
                  "the request's headers and body took more than %u s to arrive", seconds);
    return refuse(conn, &res, mid_body);
}

/* When the connection's current request began: the connection's start, or
 * the end of its previous request (kept in the socket context). */
static int64_t *request_clock(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static bool too_late(const cv_http_server *s, struct MHD_Connection *conn) {
    const int64_t *since = request_clock(conn);
    return since && cv_time_mono_ms() - *since > (int64_t)s->limits.request_seconds * 1000;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    (void)cls;
    (void)conn;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        int64_t *since = malloc(sizeof(*since));
        if (since)
            *since = cv_time_mono_ms();
        *socket_context = since;
    } else {
        free(*socket_context);
        *socket_context = NULL;
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    cv_http_server *s = cls;
    request_state *st = *con_cls;
    cv_http_request req;
    cv_http_response res = {0};
    const char *origin;
    enum MHD_Result ret;
    (void)version;

    if (!st) {
        const char *declared =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        st = calloc(1, sizeof(*st));
        if (!st)
            return MHD_NO;
        *con_cls = st;
        if (too_late(s, conn)) {
            st->answered = true;
            return too_slow(conn, s->limits.request_seconds, false);
        }
        if (declared) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(declared, &end, 10);
            if (errno || *end != '\0' || n > s->limits.max_body) {
                st->answered = true;
                return too_large(conn, s->limits.max_body, false); /* body is never read */
            }
        }
        return MHD_YES;
    }
    if (st->answered) {
        *upload_data_size = 0; /* answered already; the connection closes after it */
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (st->len + n > s->limits.max_body || too_late(s, conn)) {
            /* Answered now, not once the whole body has come: the rest is not read. */
            bool big = st->len + n > s->limits.max_body;
            st->answered = true;
            return big ? too_large(conn, s->limits.max_body, true)
                       : too_slow(conn, s->limits.request_seconds, true);
        }
        if (st->len + n + 1 > st->cap) {
            size_t cap = st->cap ? st->cap : 4096;
            while (cap < st->len + n + 1)
                cap *= 2;
            char *p = realloc(st->body, cap);
            if (!p)
                return MHD_NO;
            st->body = p;
            st->cap = cap;
        }
        memcpy(st->body + st->len, upload_data, n);
        st->len += n;
        st->body[st->len] = '\0';
        return MHD_YES;
    }
    req.method = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0 ? MHD_HTTP_METHOD_GET : method;
    req.path = url;
    req.body = st->body ? st->body : "";
    req.body_len = st->len;
    req.conn = conn;
    req.caller = NULL;
    res.status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (cors_allowed(s, origin))
        snprintf(res.cors_origin, sizeof(res.cors_origin), "%s", origin);
    if (res.cors_origin[0] && strcmp(method, MHD_HTTP_METHOD_OPTIONS) == 0) {
        res.cors_preflight = true; /* answered here: no route takes OPTIONS */
        res.status = MHD_HTTP_NO_CONTENT;
    } else {
        s->handler(s->ctx, &req, &res);
    }
    ret = send_response(conn, &res);
    cJSON_Delete(res.body);
    return ret;
}

const char *cv_http_arg(const cv_http_request *req, const char *name) {
    const char *value;
    if (!req->conn)
        return NULL;
    value = MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!value && MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name,
                                                strlen(name), NULL, NULL) == MHD_YES)
        return "";
    return value;
}

const char *cv_http_header(const cv_http_request *req, const char *name) {
    return req->conn ? MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name) : NULL;
}

const char *cv_http_cookie(const cv_http_request *req, const char *name) {
    return req->conn ? MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, name) : NULL;
}

void cv_http_peer(const cv_http_request *req, char buf[CV_HTTP_PEER_LEN]) {
    const union MHD_ConnectionInfo *info =
        req->conn ? MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS) : NULL;
    const struct sockaddr *sa = info ? info->client_addr : NULL;

    buf[0] = '\0';
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
                  CV_HTTP_PEER_LEN);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
                  CV_HTTP_PEER_LEN);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    request_state *st = *con_cls;
    int64_t *since = request_clock(conn);
    (void)cls;
    (void)toe;
    if (since) /* the next request on this connection starts its own clock */
        *since = cv_time_mono_ms();
    if (st) {
        free(st->body);
        free(st);
        *con_cls = NULL;
    }
}

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap) {
    char line[512];
    (void)cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    cv_log_warn("http: %s", line);
}

/* The connections the process's open-file limit allows, after raising its
 * soft limit as far as the hard one goes. */
static unsigned fd_room(unsigned wanted) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return wanted;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t cur = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rl.rlim_cur = cur;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t)wanted + FD_HEADROOM)
        return wanted;
    return rl.rlim_cur > 2 * FD_HEADROOM ? (unsigned)(rl.rlim_cur - FD_HEADROOM) : FD_HEADROOM;
}

cv_http_server *cv_http_server_new(const char *host, int port, const cv_http_limits *limits,
                                   cv_http_handler handler, void *ctx, char *errbuf,
                                   size_t errlen) {
    struct sockaddr_in addr;
    cv_http_server *s = calloc(1, sizeof(*s));
    unsigned connections;

    if (!s) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "'%s' is not an IPv4 address", host);
        free(s);
        return NULL;
    }
    s->limits = *limits;
    snprintf(s->cors, sizeof(s->cors), "%s", limits->cors_origins ? limits->cors_origins : "");
    s->limits.cors_origins = s->cors;
    s->handler = handler;
    s->ctx = ctx;
    connections = fd_room(limits->connections);
    if (connections < limits->connections)
        cv_log_warn("http: %u connections at once, not %u: the open-file limit allows no more",
                    connections, limits->connections);
    s->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
            MHD_USE_ERROR_LOG,
        (uint16_t)port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_TIMEOUT,
        limits->idle_seconds, MHD_OPTION_CONNECTION_LIMIT, connections,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, limits->per_address, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    if (!s->daemon) {
        cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot listen on %s:%d (in use, or not allowed)",
                   host, port);
        free(s);
        return NULL;
    }
    return s;
}

void cv_http_server_destroy(cv_http_server *s) {
    if (!s)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}
