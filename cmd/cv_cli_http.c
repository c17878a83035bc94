/*
 * cv_cli_http.c - the client commands' calls to the API, over libcurl: one
 * request and its JSON answer, a download streamed to a file, and a stream of
 * Server-Sent Events. See cv_cli_int.h.
 */
#include "cv_cli_int.h"

#include "cv_buf.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define ANSWER_MAX (256u << 20) /* an answer larger than this is refused */

/* A handle for method on the API's path, with the token and the body set. */
static CURL *open_handle(const cli *c, const char *method, const char *path, const char *body,
                         struct curl_slist **headers) {
    char url[CLI_URL_MAX + 1024], auth[CLI_TOKEN_MAX + 32];
    CURL *h = curl_easy_init();

    if (!h)
        return NULL;
    snprintf(url, sizeof(url), "%s/api/v1%s", c->url, path);
    *headers = curl_slist_append(NULL, "Accept: application/json, text/event-stream, text/csv");
    if (c->token[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
        *headers = curl_slist_append(*headers, auth);
    }
    if (body) {
        *headers = curl_slist_append(*headers, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "convutell-cli");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    return h;
}

/* Says on stderr why the API could not be reached. */
static void say_unreachable(const cli *c, CURLcode rc) {
    fprintf(stderr,
            "convutell: cannot reach the API at %s: %s\n"
            "  (is `convutell api` running there? Set the address with --url or "
            "CONVUTELL_URL)\n",
            c->url, curl_easy_strerror(rc));
}

static size_t discard(char *data, size_t size, size_t n, void *ctx) {
    (void)data;
    (void)ctx;
    return size * n;
}

static size_t into_buf(char *data, size_t size, size_t n, void *ctx) {
    cv_buf *b = ctx;

    if (b->len + size * n > ANSWER_MAX || !cv_buf_add(b, data, size * n))
        return 0;
    return size * n;
}

bool cli_call(const cli *c, const char *method, const char *path, const cJSON *body,
              cli_answer *a) {
    struct curl_slist *headers = NULL;
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    cv_buf got = {0};
    CURL *h;
    CURLcode rc = CURLE_OUT_OF_MEMORY;

    memset(a, 0, sizeof(*a));

    if ((h = open_handle(c, method, path, body ? (text ? text : "") : NULL, &headers))) {
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, into_buf);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 120000L);
        if ((rc = curl_easy_perform(h)) == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    }
    if (rc == CURLE_OK && got.len)
        a->body = cJSON_ParseWithLength(got.data, got.len);
    if (rc != CURLE_OK)
        say_unreachable(c, rc);
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    cv_buf_free(&got);
    free(text);
    return rc == CURLE_OK;
}

void cli_answer_free(cli_answer *a) {
    cJSON_Delete(a->body);
    a->body = NULL;
}

/* Says on stderr what an answer other than 2xx means. */
static void say_refused(const cli_answer *a) {
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(a->body, "error");
    const char *code = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(error, "code"));
    const char *message = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(error, "message"));
    const char *field = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(error, "field"));

    if (a->status == 401) {
        fprintf(stderr, "convutell: not signed in, or the token is no longer valid: run "
                        "`convutell login` (or set CONVUTELL_TOKEN)\n");
        return;
    }
    /* The API's messages mostly begin with their field already. */
    if (field && message && strncmp(message, field, strlen(field)) == 0)
        field = NULL;
    fprintf(stderr, "convutell: %s%s%s%s (HTTP %ld%s%s)\n", field ? "field " : "",
            field ? field : "", field ? ": " : "", message ? message : "the API refused", a->status,
            code ? ", " : "", code ? code : "");
}

/* Says on stderr what an answer other than 2xx, its body in b, means. */
static void say_refused_body(long status, const cv_buf *b) {
    cli_answer a = {.status = status,
                    .body = cJSON_ParseWithLength(b->data ? b->data : "", b->len)};

    say_refused(&a);
    cli_answer_free(&a);
}

cJSON *cli_request(const cli *c, const char *method, const char *path, const cJSON *body) {
    cli_answer a;
    cJSON *out;

    if (!cli_call(c, method, path, body, &a))
        return NULL;
    if (a.status < 200 || a.status > 299 || !a.body) {
        if (a.status >= 200 && a.status <= 299)
            fprintf(stderr, "convutell: the API's answer to %s %s is not JSON\n", method, path);
        else
            say_refused(&a);
        cli_answer_free(&a);
        return NULL;
    }
    out = a.body;
    a.body = NULL;
    return out;
}

/* ---- a download ---------------------------------------------------------------- */

typedef struct download {
    FILE *out;
    long status;
    cv_buf refusal; /* the body of an answer that is not 200 */
    CURL *h;
} download;

static size_t into_file(char *data, size_t size, size_t n, void *ctx) {
    download *d = ctx;

    if (!d->status)
        curl_easy_getinfo(d->h, CURLINFO_RESPONSE_CODE, &d->status);
    if (d->status != 200)
        return into_buf(data, size, n, &d->refusal);
    return fwrite(data, size, n, d->out) == n ? size * n : 0;
}

bool cli_download(const cli *c, const char *path, FILE *out) {
    struct curl_slist *headers = NULL;
    download d = {.out = out};
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    bool ok = false;

    if ((d.h = open_handle(c, "GET", path, NULL, &headers))) {
        curl_easy_setopt(d.h, CURLOPT_WRITEFUNCTION, into_file);
        curl_easy_setopt(d.h, CURLOPT_WRITEDATA, &d);
        rc = curl_easy_perform(d.h);
        curl_easy_getinfo(d.h, CURLINFO_RESPONSE_CODE, &d.status);
    }
    if (rc != CURLE_OK && d.status == 200) {
        fprintf(stderr, "convutell: the download stopped: %s\n", curl_easy_strerror(rc));
    } else if (rc != CURLE_OK) {
        say_unreachable(c, rc);
    } else if (d.status != 200) {
        say_refused_body(d.status, &d.refusal);
    } else {
        ok = fflush(out) == 0;
    }
    curl_easy_cleanup(d.h);
    curl_slist_free_all(headers);
    cv_buf_free(&d.refusal);
    return ok;
}

/* ---- Server-Sent Events ------------------------------------------------------ */

typedef struct sse {
    cli_on_event on_event;
    void *ctx;
    char *last_id; /* the last event's id (CLI_EVENT_ID_MAX), kept for a reconnect */
    cv_buf line;   /* the line being read */
    char type[32]; /* the event's type so far */
    cv_buf data;   /* its data lines so far */
    bool stopped;  /* the callback said stop */
    long status;
    cv_buf refusal;
    CURL *h;
} sse;

/* One whole line of the stream: a field, or the blank line that ends an event. */
static void sse_line(sse *s, const char *line, size_t len) {
    if (len == 0) {
        if (s->data.len) {
            cJSON *data = cJSON_ParseWithLength(s->data.data, s->data.len);
            if (!s->on_event(s->ctx, s->type[0] ? s->type : "message", data))
                s->stopped = true;
            cJSON_Delete(data);
        }
        s->type[0] = '\0';
        s->data.len = 0;
        return;
    }
    if (len > 6 && memcmp(line, "event:", 6) == 0) {
        size_t skip = line[6] == ' ' ? 7 : 6;
        snprintf(s->type, sizeof(s->type), "%.*s", (int)(len - skip), line + skip);
    } else if (len > 5 && memcmp(line, "data:", 5) == 0) {
        size_t skip = line[5] == ' ' ? 6 : 5;
        if (s->data.len)
            cv_buf_add(&s->data, "\n", 1);
        cv_buf_add(&s->data, line + skip, len - skip);
    } else if (len > 3 && memcmp(line, "id:", 3) == 0) {
        size_t skip = line[3] == ' ' ? 4 : 3;
        snprintf(s->last_id, CLI_EVENT_ID_MAX, "%.*s", (int)(len - skip), line + skip);
    } /* comments (":") and retry: need nothing here */
}

static size_t sse_chunk(char *data, size_t size, size_t n, void *ctx) {
    sse *s = ctx;
    size_t len = size * n;

    if (!s->status)
        curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->status);
    if (s->status != 200)
        return into_buf(data, size, n, &s->refusal);
    for (size_t i = 0; i < len && !s->stopped; i++) {
        if (data[i] == '\n') {
            size_t l = s->line.len;
            if (l && s->line.data[l - 1] == '\r')
                l--;
            sse_line(s, s->line.data ? s->line.data : "", l);
            s->line.len = 0;
        } else if (!cv_buf_add(&s->line, data + i, 1) || s->line.len > ANSWER_MAX) {
            return 0;
        }
    }
    return s->stopped ? 0 : len; /* 0 ends the transfer */
}

bool cli_stream(const cli *c, const char *path, char *last_id, cli_on_event on_event, void *ctx) {
    struct curl_slist *headers = NULL;
    sse s = {.on_event = on_event, .ctx = ctx, .last_id = last_id};
    char resume[CLI_EVENT_ID_MAX + 32];
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    bool ok = false;

    if ((s.h = open_handle(c, "GET", path, NULL, &headers))) {
        if (last_id[0]) { /* only what came after it */
            snprintf(resume, sizeof(resume), "Last-Event-ID: %s", last_id);
            headers = curl_slist_append(headers, resume);
            curl_easy_setopt(s.h, CURLOPT_HTTPHEADER, headers);
        }
        curl_easy_setopt(s.h, CURLOPT_WRITEFUNCTION, sse_chunk);
        curl_easy_setopt(s.h, CURLOPT_WRITEDATA, &s);
        rc = curl_easy_perform(s.h);
        curl_easy_getinfo(s.h, CURLINFO_RESPONSE_CODE, &s.status);
    }
    if (s.stopped || (rc == CURLE_OK && s.status == 200)) {
        ok = true;
    } else if (s.status && s.status != 200) {
        say_refused_body(s.status, &s.refusal);
    } else {
        say_unreachable(c, rc);
    }
    curl_easy_cleanup(s.h);
    curl_slist_free_all(headers);
    cv_buf_free(&s.line);
    cv_buf_free(&s.data);
    cv_buf_free(&s.refusal);
    return ok;
}

int cli_probe(const char *url) {
    CURL *h = curl_easy_init();
    long status = 0;
    CURLcode rc = CURLE_OUT_OF_MEMORY;

    if (h) {
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_NOBODY, 0L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        if ((rc = curl_easy_perform(h)) == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    }
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        fprintf(stderr, "convutell: %s: %s\n", url, curl_easy_strerror(rc));
        return 1;
    }
    if (status < 200 || status > 299) {
        fprintf(stderr, "convutell: %s answered %ld\n", url, status);
        return 1;
    }
    return 0;
}

char *cli_escape(const char *text) {
    char *escaped = curl_easy_escape(NULL, text, 0), *out;

    if (!escaped)
        return NULL;
    out = strdup(escaped);
    curl_free(escaped);
    return out;
}
