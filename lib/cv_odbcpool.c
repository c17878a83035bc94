/*
 * cv_odbcpool.c - connections a worker keeps open between small jobs.
 *
 * The waiting connections are an array in the order they were given back;
 * a take scans it from the newest for its connection string (a worker has a
 * handful of connection strings, and at most max_idle entries are kept).
 * Connects, resets and disconnects happen outside the lock.
 */
#include "cv_odbcpool.h"

#include "cv_log.h"
#include "cv_time.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

typedef struct idle_conn {
    char *connstr;
    cv_odbc_conn *conn;
    int64_t since_ms; /* given back at (monotonic) */
} idle_conn;

struct cv_odbcpool {
    pthread_mutex_t lock;
    int max_idle;
    int64_t idle_ms;
    int64_t swept_ms; /* last cv_odbcpool_sweep() that looked */
    size_t n;
    idle_conn *idle; /* max_idle entries, oldest first */
};

cv_odbcpool *cv_odbcpool_new(int max_idle, int64_t idle_ms) {
    cv_odbcpool *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->max_idle = max_idle < 0 ? 0 : max_idle > CV_ODBCPOOL_MAX ? CV_ODBCPOOL_MAX : max_idle;
    p->idle_ms = idle_ms;
    if (p->max_idle && !(p->idle = calloc((size_t)p->max_idle, sizeof(*p->idle)))) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    return p;
}

static void close_idle(idle_conn *e) {
    cv_odbc_disconnect(e->conn);
    free(e->connstr);
}

void cv_odbcpool_destroy(cv_odbcpool *p) {
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        close_idle(&p->idle[i]);
    pthread_mutex_destroy(&p->lock);
    free(p->idle);
    free(p);
}

/* Moves the entries that waited too long, and the oldest ones while more
 * than `keep` wait, into out (CV_ODBCPOOL_MAX slots). Under the lock. */
static size_t take_expired(cv_odbcpool *p, size_t keep, int64_t now, idle_conn *out) {
    size_t n = 0, kept = 0;

    for (size_t i = 0; i < p->n; i++) {
        bool old = now - p->idle[i].since_ms > p->idle_ms;
        if (old || p->n - i > keep)
            out[n++] = p->idle[i];
        else
            p->idle[kept++] = p->idle[i];
    }
    p->n = kept;
    return n;
}

cv_odbc_conn *cv_odbcpool_take(cv_odbcpool *p, const char *connstr, bool *reused, char *errbuf,
                               size_t errlen) {
    idle_conn expired[CV_ODBCPOOL_MAX], found = {0};
    size_t nexp = 0;

    *reused = false;
    if (p && p->max_idle) {
        pthread_mutex_lock(&p->lock);
        nexp = take_expired(p, p->n, cv_time_mono_ms(), expired);
        for (size_t i = p->n; i-- > 0;) {
            if (strcmp(p->idle[i].connstr, connstr) == 0) {
                found = p->idle[i];
                memmove(&p->idle[i], &p->idle[i + 1], (p->n - i - 1) * sizeof(*p->idle));
                p->n--;
                break;
            }
        }
        pthread_mutex_unlock(&p->lock);
    }
    for (size_t i = 0; i < nexp; i++)
        close_idle(&expired[i]);
    if (found.conn) {
        free(found.connstr);
        if (cv_odbc_alive(found.conn)) {
            *reused = true;
            return found.conn;
        }
        cv_odbc_disconnect(found.conn);
    }
    return cv_odbc_connect(connstr, errbuf, errlen);
}

void cv_odbcpool_give(cv_odbcpool *p, const char *connstr, cv_odbc_conn *conn, bool reusable,
                      bool settings_changed) {
    idle_conn expired[CV_ODBCPOOL_MAX], entry = {0};
    size_t nexp = 0;
    char why[512];

    if (!conn)
        return;
    if (!p || !p->max_idle || !reusable) {
        cv_odbc_disconnect(conn);
        return;
    }
    if (cv_odbc_reset(conn, settings_changed, why, sizeof(why)) != CV_OK) {
        cv_log_debug("connection closed, not kept: %s", why);
        cv_odbc_disconnect(conn);
        return;
    }
    entry.conn = conn;
    entry.since_ms = cv_time_mono_ms();
    if (!(entry.connstr = strdup(connstr))) {
        cv_odbc_disconnect(conn);
        return;
    }
    pthread_mutex_lock(&p->lock);
    /* Room for this one: the oldest go first. */
    nexp = take_expired(p, (size_t)p->max_idle - 1, entry.since_ms, expired);
    p->idle[p->n++] = entry;
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < nexp; i++)
        close_idle(&expired[i]);
}

void cv_odbcpool_sweep(cv_odbcpool *p) {
    idle_conn expired[CV_ODBCPOOL_MAX];
    size_t nexp = 0;
    int64_t now = cv_time_mono_ms();

    if (!p || !p->max_idle)
        return;
    pthread_mutex_lock(&p->lock);
    if (now - p->swept_ms >= 1000) {
        p->swept_ms = now;
        nexp = take_expired(p, p->n, now, expired);
    }
    pthread_mutex_unlock(&p->lock);
    for (size_t i = 0; i < nexp; i++)
        close_idle(&expired[i]);
}

size_t cv_odbcpool_idle(cv_odbcpool *p) {
    size_t n;

    if (!p)
        return 0;
    pthread_mutex_lock(&p->lock);
    n = p->n;
    pthread_mutex_unlock(&p->lock);
    return n;
}
