/*
 * cv_metrics.c - the process's Prometheus metrics (see cv_metrics.h): a
 * registry of metrics, each a small hash table of series under a lock of its
 * own, written out in the text exposition format by a libmicrohttpd server.
 */
#include "cv_metrics.h"

#include "cv_buf.h"
#include "cv_log.h"

#include <arpa/inet.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define METRICS_MAX 64 /* metrics in the registry */
#define TABLE_SIZE 64  /* hash chains of a metric's series */
#define OVERFLOW_LABELS "overflow=\"true\""

const double cv_metrics_seconds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                     1,     2.5,    5,     10,   30,    60,   300, 1800};
const int cv_metrics_nseconds = (int)(sizeof(cv_metrics_seconds) / sizeof(cv_metrics_seconds[0]));

typedef struct series {
    struct series *next; /* in its hash chain */
    char *labels;
    double value;      /* a counter's or gauge's; a histogram's sum */
    uint64_t count;    /* a histogram's observations */
    uint64_t *buckets; /* a histogram's, one per bound (not cumulative) */
} series;

struct cv_metric {
    cv_metric_type type;
    char *name, *help;
    double *bounds;
    int nbounds;
    pthread_mutex_t lock;
    series *table[TABLE_SIZE];
    size_t nseries;
};

typedef struct watch {
    cv_metric *m;
    char *labels;
    cv_metrics_fn *fn;
    void *ctx;
} watch;

static struct {
    pthread_mutex_t lock;
    cv_metric *all[METRICS_MAX];
    int n;
    struct MHD_Daemon *daemon;
    /* Held while the watches are read and called: cv_metrics_unwatch()
     * waits for a call in progress. */
    pthread_mutex_t watch_lock;
    watch watches[CV_METRICS_WATCHES];
    int nwatches;
} reg = {.lock = PTHREAD_MUTEX_INITIALIZER, .watch_lock = PTHREAD_MUTEX_INITIALIZER};

static void metric_free(cv_metric *m) {
    if (!m)
        return;
    free(m->name);
    free(m->help);
    free(m->bounds);
    free(m);
}

cv_metric *cv_metrics_register(cv_metric_type type, const char *name, const char *help,
                               const double *bounds, int nbounds) {
    cv_metric *m = NULL;

    pthread_mutex_lock(&reg.lock);
    for (int i = 0; i < reg.n; i++)
        if (strcmp(reg.all[i]->name, name) == 0) {
            m = reg.all[i];
            goto out;
        }
    if (reg.n == METRICS_MAX || !(m = calloc(1, sizeof(*m))))
        goto out;
    m->type = type;
    m->name = strdup(name);
    m->help = strdup(help);
    if (type == CV_METRIC_HISTOGRAM && nbounds > 0) {
        if ((m->bounds = malloc((size_t)nbounds * sizeof(double))))
            memcpy(m->bounds, bounds, (size_t)nbounds * sizeof(double));
        m->nbounds = nbounds;
    }
    if (!m->name || !m->help || (m->nbounds && !m->bounds)) {
        metric_free(m);
        m = NULL;
        goto out;
    }
    pthread_mutex_init(&m->lock, NULL);
    reg.all[reg.n++] = m;
out:
    pthread_mutex_unlock(&reg.lock);
    return m;
}

static unsigned hash(const char *s) {
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % TABLE_SIZE;
}

/* The series of labels, made if need be (the overflow series once the
 * metric has its fill); NULL on NOMEM. Called with m->lock held. */
static series *find(cv_metric *m, const char *labels) {
    unsigned h = hash(labels);
    series *s;

    for (s = m->table[h]; s; s = s->next)
        if (strcmp(s->labels, labels) == 0)
            return s;
    if (m->nseries >= CV_METRICS_SERIES_MAX && strcmp(labels, OVERFLOW_LABELS) != 0)
        return find(m, OVERFLOW_LABELS);
    if (!(s = calloc(1, sizeof(*s))) || !(s->labels = strdup(labels)) ||
        (m->nbounds && !(s->buckets = calloc((size_t)m->nbounds, sizeof(uint64_t))))) {
        if (s)
            free(s->labels);
        free(s);
        return NULL;
    }
    s->next = m->table[h];
    m->table[h] = s;
    m->nseries++;
    return s;
}

void cv_metrics_add(cv_metric *m, const char *labels, double v) {
    series *s;
    if (!m || !(v >= 0))
        return;
    pthread_mutex_lock(&m->lock);
    if ((s = find(m, labels ? labels : "")))
        s->value += v;
    pthread_mutex_unlock(&m->lock);
}

void cv_metrics_set(cv_metric *m, const char *labels, double v) {
    series *s;
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    if ((s = find(m, labels ? labels : "")))
        s->value = v;
    pthread_mutex_unlock(&m->lock);
}

void cv_metrics_observe(cv_metric *m, const char *labels, double v) {
    series *s;
    if (!m || isnan(v))
        return;
    pthread_mutex_lock(&m->lock);
    if ((s = find(m, labels ? labels : ""))) {
        int b = 0;
        while (b < m->nbounds && v > m->bounds[b])
            b++;
        if (b < m->nbounds)
            s->buckets[b]++;
        s->count++;
        s->value += v;
    }
    pthread_mutex_unlock(&m->lock);
}

cv_err cv_metrics_watch(cv_metric *m, const char *labels, cv_metrics_fn *fn, void *ctx) {
    cv_err err = CV_OK;
    char *copy;

    if (!m)
        return CV_ERR_NOMEM; /* its registration failed */
    if (!(copy = strdup(labels ? labels : "")))
        return CV_ERR_NOMEM;
    pthread_mutex_lock(&reg.watch_lock);
    if (reg.nwatches == CV_METRICS_WATCHES)
        err = CV_ERR_INVALID;
    else
        reg.watches[reg.nwatches++] = (watch){m, copy, fn, ctx};
    pthread_mutex_unlock(&reg.watch_lock);
    if (err)
        free(copy);
    return err;
}

void cv_metrics_unwatch(void *ctx) {
    pthread_mutex_lock(&reg.watch_lock);
    for (int i = 0; i < reg.nwatches;) {
        if (reg.watches[i].ctx != ctx) {
            i++;
            continue;
        }
        free(reg.watches[i].labels);
        reg.watches[i] = reg.watches[--reg.nwatches];
    }
    pthread_mutex_unlock(&reg.watch_lock);
}

/* Sets every watched gauge from its function. */
static void read_watches(void) {
    pthread_mutex_lock(&reg.watch_lock);
    for (int i = 0; i < reg.nwatches; i++) {
        double v = reg.watches[i].fn(reg.watches[i].ctx);
        if (!isnan(v))
            cv_metrics_set(reg.watches[i].m, reg.watches[i].labels, v);
    }
    pthread_mutex_unlock(&reg.watch_lock);
}

char *cv_metrics_label(char *buf, size_t size, const char *name, const char *value) {
    size_t o = 0;
    int n = snprintf(buf, size, "%s=\"", name);

    if (n < 0 || (size_t)n >= size)
        return buf;
    o = (size_t)n;
    for (const char *p = value; *p; p++) { /* room kept for the closing quote and NUL */
        bool escape = *p == '\\' || *p == '"' || *p == '\n';
        if (o + (escape ? 4 : 3) > size)
            break;
        if (escape)
            buf[o++] = '\\';
        buf[o++] = *p == '\n' ? 'n' : *p;
    }
    if (o + 1 < size)
        buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* A sample value as the format writes it. */
static void add_value(cv_buf *out, double v) {
    if (isnan(v))
        cv_buf_add(out, "NaN", 3);
    else if (isinf(v))
        cv_buf_add(out, v > 0 ? "+Inf" : "-Inf", 4);
    else
        cv_buf_printf(out, "%.17g", v);
}

static int by_labels(const void *a, const void *b) {
    return strcmp((*(series *const *)a)->labels, (*(series *const *)b)->labels);
}

static int by_name(const void *a, const void *b) {
    return strcmp((*(cv_metric *const *)a)->name, (*(cv_metric *const *)b)->name);
}

/* One histogram series: its cumulative buckets, sum and count. */
static void render_histogram(cv_buf *out, const cv_metric *m, const series *s) {
    const char *sep = s->labels[0] ? "," : "";
    uint64_t total = 0;

    for (int b = 0; b < m->nbounds; b++) {
        total += s->buckets[b];
        cv_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", m->name, s->labels, sep, m->bounds[b],
                      (unsigned long long)total);
    }
    cv_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", m->name, s->labels, sep,
                  (unsigned long long)s->count);
    cv_buf_printf(out, "%s_sum%s%s%s ", m->name, s->labels[0] ? "{" : "", s->labels,
                  s->labels[0] ? "}" : "");
    add_value(out, s->value);
    cv_buf_printf(out, "\n%s_count%s%s%s %llu\n", m->name, s->labels[0] ? "{" : "", s->labels,
                  s->labels[0] ? "}" : "", (unsigned long long)s->count);
}

/* One metric: its HELP and TYPE lines and its series by label set. */
static void render_metric(cv_buf *out, cv_metric *m) {
    static const char *const types[] = {"counter", "gauge", "histogram"};
    series **list = NULL;
    size_t n = 0;

    pthread_mutex_lock(&m->lock);
    cv_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, types[m->type]);
    if (m->nseries && !(list = malloc(m->nseries * sizeof(*list))))
        out->failed = true; /* the scrape fails rather than lose series */
    else if (m->nseries) {
        for (int h = 0; h < TABLE_SIZE; h++)
            for (series *s = m->table[h]; s; s = s->next)
                list[n++] = s;
        qsort(list, n, sizeof(*list), by_labels);
        for (size_t i = 0; i < n; i++) {
            if (m->type == CV_METRIC_HISTOGRAM) {
                render_histogram(out, m, list[i]);
                continue;
            }
            cv_buf_printf(out, "%s%s%s%s ", m->name, list[i]->labels[0] ? "{" : "", list[i]->labels,
                          list[i]->labels[0] ? "}" : "");
            add_value(out, list[i]->value);
            cv_buf_add(out, "\n", 1);
        }
        free(list);
    }
    pthread_mutex_unlock(&m->lock);
}

char *cv_metrics_render(void) {
    cv_metric *all[METRICS_MAX];
    cv_buf out = {0};
    int n;

    read_watches();
    pthread_mutex_lock(&reg.lock);
    n = reg.n;
    memcpy(all, reg.all, (size_t)n * sizeof(all[0]));
    pthread_mutex_unlock(&reg.lock);
    if (n)
        qsort(all, (size_t)n, sizeof(all[0]), by_name);
    for (int i = 0; i < n; i++)
        render_metric(&out, all[i]);
    if (!out.len && !out.failed)
        return strdup(""); /* nothing registered yet */
    return cv_buf_take(&out);
}

static enum MHD_Result text_answer(struct MHD_Connection *conn, unsigned status, char *text,
                                   const char *type) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ok;

    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state) {
    char *text;

    (void)cls;
    (void)version;
    (void)upload;
    if (!*state) { /* first call: the headers; answer once any body has come */
        *state = conn;
        return MHD_YES;
    }
    if (*upload_size) { /* a body nobody reads: let it pass */
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        text = strdup("only GET /metrics\n");
    else if (strcmp(url, "/metrics") != 0)
        text = strdup("not found: metrics are at /metrics\n");
    else if ((text = cv_metrics_render()))
        return text_answer(conn, MHD_HTTP_OK, text, "text/plain; version=0.0.4; charset=utf-8");
    if (!text)
        return MHD_NO;
    return text_answer(conn,
                       strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0
                           ? MHD_HTTP_METHOD_NOT_ALLOWED
                           : MHD_HTTP_NOT_FOUND,
                       text, "text/plain; charset=utf-8");
}

cv_err cv_metrics_serve(const char *host, int port, char *errbuf, size_t errlen) {
    struct sockaddr_in sin;
    cv_err err;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "%s is not an IPv4 address", host);
    pthread_mutex_lock(&reg.lock);
    if (!reg.daemon)
        reg.daemon = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, (uint16_t)port, NULL, NULL, on_request,
            NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin, MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned)10, MHD_OPTION_CONNECTION_LIMIT, (unsigned)16, MHD_OPTION_END);
    err = reg.daemon ? CV_OK
                     : cv_err_set(errbuf, errlen, CV_ERR_IO,
                                  "cannot listen on %s:%d (in use, or not allowed)", host, port);
    pthread_mutex_unlock(&reg.lock);
    if (!err)
        cv_log_info("metrics on http://%s:%d/metrics", host, port);
    return err;
}

void cv_metrics_serve_stop(void) {
    struct MHD_Daemon *d;

    pthread_mutex_lock(&reg.lock);
    d = reg.daemon;
    reg.daemon = NULL;
    pthread_mutex_unlock(&reg.lock);
    if (d)
        MHD_stop_daemon(d);
}
