/*
 * cv_http.c - libmicrohttpd plumbing: body collection with a size limit,
 * dispatch to one handler, JSON answers.
 */
#include "cv_http.h"

#include "cv_log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cv_http_server {
    struct MHD_Daemon *daemon;
    size_t max_body;
    cv_http_handler handler;
    void *ctx;
};

/* Per-request state, from the first callback to the completion notice. */
typedef struct request_state {
    char *body;
    size_t len;
    size_t cap;
    bool too_large;
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

static enum MHD_Result send_response(struct MHD_Connection *conn, cv_http_response *res) {
    char *text = res->body ? cJSON_PrintUnformatted(res->body) : NULL;
    struct MHD_Response *response;
    enum MHD_Result ret;

    if (!text) {
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
    if (res->location[0])
        MHD_add_response_header(response, MHD_HTTP_HEADER_LOCATION, res->location);
    if (res->allow[0])
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, res->allow);
    ret = MHD_queue_response(conn, (unsigned)res->status, response);
    MHD_destroy_response(response);
    return ret;
}

static enum MHD_Result too_large(struct MHD_Connection *conn, size_t max_body) {
    cv_http_response res = {0};
    enum MHD_Result ret;
    cv_http_error(&res, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large", NULL,
                  "request body is larger than the limit of %zu bytes", max_body);
    ret = send_response(conn, &res);
    cJSON_Delete(res.body);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
    cv_http_server *s = cls;
    request_state *st = *con_cls;
    cv_http_request req;
    cv_http_response res = {0};
    enum MHD_Result ret;
    (void)version;

    if (!st) {
        const char *declared =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        st = calloc(1, sizeof(*st));
        if (!st)
            return MHD_NO;
        *con_cls = st;
        if (declared) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(declared, &end, 10);
            if (errno || *end != '\0' || n > s->max_body) {
                st->too_large = true;
                return too_large(conn, s->max_body); /* body is never read */
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (st->too_large || st->len + n > s->max_body) {
            st->too_large = true;
            return MHD_YES; /* discard; answered once the upload ends */
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
    if (st->too_large)
        return too_large(conn, s->max_body);

    req.method = method;
    req.path = url;
    req.body = st->body ? st->body : "";
    req.body_len = st->len;
    req.conn = conn;
    res.status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    s->handler(s->ctx, &req, &res);
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

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    request_state *st = *con_cls;
    (void)cls;
    (void)conn;
    (void)toe;
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

cv_http_server *cv_http_server_new(const char *host, int port, unsigned threads, size_t max_body,
                                   cv_http_handler handler, void *ctx, char *errbuf,
                                   size_t errlen) {
    struct sockaddr_in addr;
    cv_http_server *s = calloc(1, sizeof(*s));

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
    s->max_body = max_body;
    s->handler = handler;
    s->ctx = ctx;
    s->daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG,
                         (uint16_t)port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
                         mhd_log, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                         MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
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
