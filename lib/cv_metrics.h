/*
 * cv_metrics.h - the process's Prometheus metrics: counters, gauges and
 * histograms kept in memory, written in the text exposition format (0.0.4)
 * and served on CONVUTELL_METRICS_ADDR at GET /metrics.
 *
 * One registry per process. Metrics are registered once, at start-up, by the
 * service that keeps them (registering a name twice returns the first); a
 * metric lives until the process ends. Every function here is thread-safe.
 *
 * Series: a metric has one series per label set, written by the caller
 * without braces ("route=\"GET /api/v1/runs/{}\",status=\"200\"", or "" for
 * none). Label values are the caller's own words (route templates, statuses,
 * kinds), never user input: cv_metrics_label() escapes one that might not be.
 * At most CV_METRICS_SERIES_MAX series per metric: later label sets are
 * counted under the series "overflow=\"true\"" instead, so memory stays bounded.
 */
#ifndef CV_METRICS_H
#define CV_METRICS_H

#include "cv_err.h"

#include <stddef.h>
#include <stdint.h>

#define CV_METRICS_SERIES_MAX 2048
#define CV_METRICS_WATCHES 16

typedef struct cv_metric cv_metric;

typedef enum cv_metric_type {
    CV_METRIC_COUNTER,
    CV_METRIC_GAUGE,
    CV_METRIC_HISTOGRAM
} cv_metric_type;

/* Seconds, from a millisecond up to half an hour: the buckets of every
 * duration histogram here. */
extern const double cv_metrics_seconds[];
extern const int cv_metrics_nseconds;

/* Registers a metric (name: [a-zA-Z_:][a-zA-Z0-9_:]*; help: one line) or
 * returns the one registered under that name. Histograms take their upper
 * bounds in increasing order (copied; +Inf is added); the others ignore
 * bounds. NULL when out of memory or the registry is full (the caller's
 * updates of NULL do nothing). */
cv_metric *cv_metrics_register(cv_metric_type type, const char *name, const char *help,
                               const double *bounds, int nbounds);

/* Adds v (>= 0) to a counter's series. */
void cv_metrics_add(cv_metric *m, const char *labels, double v);

/* Sets a gauge's series to v. */
void cv_metrics_set(cv_metric *m, const char *labels, double v);

/* Counts v in a histogram's series. */
void cv_metrics_observe(cv_metric *m, const char *labels, double v);

/* A gauge's value read when the metrics are written out (on the server's
 * thread): NAN when there is none to show this time. */
typedef double cv_metrics_fn(void *ctx);

/* Sets the series `labels` (copied) of gauge m to fn(ctx) each time the
 * metrics are written out, until cv_metrics_unwatch(ctx). CV_ERR_NOMEM, or
 * CV_ERR_INVALID when the registry's CV_METRICS_WATCHES are taken. */
cv_err cv_metrics_watch(cv_metric *m, const char *labels, cv_metrics_fn *fn, void *ctx);

/* Stops every watch of ctx; when it returns, no call of theirs is running or
 * will run, so ctx may be freed. Accepts a ctx that watches nothing. */
void cv_metrics_unwatch(void *ctx);

/* Writes name="value" into buf (at most size bytes, NUL-ended, truncated if
 * need be) with the value's backslashes, quotes and line breaks escaped;
 * returns buf. */
char *cv_metrics_label(char *buf, size_t size, const char *name, const char *value);

/* Every metric in the text exposition format, sorted by name (new string;
 * NULL on NOMEM). The caller frees it with free(). */
char *cv_metrics_render(void);

/* Serves GET /metrics on host (an IPv4 address) and port from a thread of
 * its own until cv_metrics_serve_stop(). One server per process. */
cv_err cv_metrics_serve(const char *host, int port, char *errbuf, size_t errlen);

/* Stops the server (if any). */
void cv_metrics_serve_stop(void);

#endif
