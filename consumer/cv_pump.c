/*
 * cv_pump.c - the pump's reader and sender. See cv_pump.h.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include "cv_pump.h"

#include "cv_sqltext.h"
#include "cv_stage.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* Before row r of the fetched block: ends the batch (hands the chunk over
 * marked with the last checkpoint value) if it is full and the row's
 * checkpoint value differs from the last one, so that rows sharing a value
 * never straddle two batches. CV_ERR_CANCELLED if the sender stopped. */
static cv_err cut_batch(cv_pump *p, int *slot, size_t r, char *why, size_t whylen) {
    size_t len;
    const char *key = cv_odbc_stmt_value(p->odbc, r, p->batch.col, &len);

    if (!key)
        return cv_err_set(why, whylen, CV_ERR_INVALID,
                          "checkpoint column %s is NULL in a row; batches need a value in every "
                          "row",
                          p->batch.name);
    if (len >= sizeof(p->batch.last))
        return cv_err_set(why, whylen, CV_ERR_INVALID,
                          "a value of checkpoint column %s is longer than %zu bytes", p->batch.name,
                          sizeof(p->batch.last) - 1);
    if (p->batch.in_batch >= p->batch.rows &&
        (len != p->batch.last_len || memcmp(key, p->batch.last, len) != 0)) {
        p->ring.batch_end[*slot] = true;
        memcpy(p->ring.checkpoint[*slot], p->batch.last, p->batch.last_len + 1);
        if (!cv_ring_hand_over(p, slot, false, CV_OK, ""))
            return cv_err_set(why, whylen, CV_ERR_CANCELLED, "stopped");
        p->batch.in_batch = 0;
    }
    memcpy(p->batch.last, key, len);
    p->batch.last[len] = '\0';
    p->batch.last_len = len;
    p->batch.in_batch++;
    return CV_OK;
}

/* Adds what the origin gives next to the reader's chunk: CV_OK, CV_ERR_NOT_FOUND
 * at the end of the rows, or the origin's error. */
static cv_err read_more(cv_pump *p, int *at, char *why, size_t whylen) {
    const char *const *values;
    const unsigned long *lengths;
    const char *data;
    size_t len, rows = 0;
    int slot = *at;
    cv_err err;

    switch (p->from) {
        case CV_PUMP_PG_COPY: /* libpq hands over COPY data one row at a time */
            if ((err = cv_pg_copy_out_next(p->pg, &data, &len, why, whylen)))
                return err;
            if (!cv_ring_reserve(p, slot, len))
                return cv_err_set(why, whylen, CV_ERR_NOMEM, "out of memory for a large row");
            memcpy(p->ring.chunk[slot] + p->ring.used[slot], data, len);
            p->ring.used[slot] += len;
            p->ring.rows[slot]++;
            return CV_OK;
        case CV_PUMP_MARIA:
            if ((err = cv_maria_fetch(p->maria, &values, &lengths, why, whylen)))
                return err;
            for (int c = 0; c < p->ncols; c++)
                if (!cv_ring_put_field(p, slot, values[c], lengths[c], p->binary[c],
                                       c == p->ncols - 1 ? '\n' : '\t'))
                    return cv_err_set(why, whylen, CV_ERR_NOMEM, "out of memory for a row");
            p->ring.rows[slot]++;
            return CV_OK;
        case CV_PUMP_TRANSFORM: /* read by cv_transform_run(), not here */
            return cv_err_set(why, whylen, CV_ERR_INVALID, "transform rows are not fetched");
        case CV_PUMP_ODBC:
            if ((err = cv_odbc_stmt_fetch_block(p->odbc, &rows, why, whylen)))
                return err;
            for (size_t r = 0; r < rows; r++) {
                if (p->batch.rows && (err = cut_batch(p, at, r, why, whylen)))
                    return err;
                slot = *at;
                for (int c = 0; c < p->ncols; c++) {
                    const char *value = cv_odbc_stmt_value(p->odbc, r, c, &len);
                    if (!cv_ring_put_field(p, slot, value, len, p->binary[c],
                                           c == p->ncols - 1 ? '\n' : '\t'))
                        return cv_err_set(why, whylen, CV_ERR_NOMEM, "out of memory for a row");
                }
                p->ring.rows[slot]++;
            }
            return CV_OK;
    }
    return cv_err_set(why, whylen, CV_ERR_INVALID, "unknown origin");
}

static void *pump_reader(void *arg) {
    cv_pump *p = arg;
    int slot = 0;
    char why[512] = "";
    cv_err err = CV_OK;

    if (p->from == CV_PUMP_TRANSFORM) {
        err = cv_transform_run(p, why, sizeof(why));
        cv_ring_hand_over(p, &p->slot, true, err, why);
        return NULL;
    }

    if (p->from == CV_PUMP_PG_COPY) {
        err = cv_pg_copy_out_begin(p->pg, p->query, why, sizeof(why));
    } else if (p->from == CV_PUMP_MARIA) {
        err = cv_maria_query(p->maria, p->query, why, sizeof(why));
        if (!err && cv_maria_ncols(p->maria) != p->ncols)
            err = cv_err_set(why, sizeof(why), CV_ERR_INVALID,
                             "the query returned %d columns, %d when described",
                             cv_maria_ncols(p->maria), p->ncols);
    }
    while (!err) {
        err = read_more(p, &slot, why, sizeof(why));
        if (!err && p->ring.used[slot] >= CV_PUMP_CHUNK / 2 &&
            !cv_ring_hand_over(p, &slot, false, CV_OK, ""))
            return NULL;
    }
    cv_ring_hand_over(p, &slot, true, err == CV_ERR_NOT_FOUND ? CV_OK : err, why);
    return NULL;
}

/* Starts the reader over an origin already set up in p (from, the source and
 * its columns). */
cv_err cv_pump_start(cv_pump *p, const cv_odbc_stmt *select, char *errbuf, size_t errlen) {
    if (!cv_ring_init(p))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    p->ncols = cv_odbc_stmt_ncols(select);
    if (!(p->binary = calloc((size_t)p->ncols + 1, sizeof(bool))))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    for (int c = 0; c < p->ncols; c++)
        p->binary[c] = cv_odbc_stmt_col(select, c)->binary;
    if (pthread_create(&p->reader, NULL, pump_reader, p) != 0)
        return cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot start the reader thread");
    p->started = true;
    return CV_OK;
}

/* Stops the reader (cancelling the origin's query if it is still running) and
 * frees the chunks. Safe on a pump that never started, and twice. */
void cv_pump_stop(cv_pump *p) {
    if (!p->ring.ready)
        return;
    if (p->started) {
        bool finished;
        pthread_mutex_lock(&p->ring.lock);
        finished = p->ring.done;
        p->ring.stop = true;
        pthread_cond_broadcast(&p->ring.changed);
        pthread_mutex_unlock(&p->ring.lock);
        /* A reader blocked in the origin's fetch wakes when its query is
         * cancelled, even one that has produced nothing for a while. */
        for (bool joined = finished && pthread_join(p->reader, NULL) == 0; !joined;) {
            struct timespec until;
            /* Again every second: a cancel that arrives before the reader has
             * started its query is lost. */
            if (p->from == CV_PUMP_PG_COPY)
                cv_pg_cancel(p->pg);
            else if (p->from == CV_PUMP_MARIA)
                cv_maria_cancel(p->maria);
            else
                cv_odbc_stmt_cancel(p->odbc);
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 1;
            joined = pthread_timedjoin_np(p->reader, NULL, &until) == 0;
        }
        p->started = false;
    }
    cv_buf_free(&p->feed.work);
    cv_buf_free(&p->feed.next);
    cv_buf_free(&p->feed.current);
    free(p->binary);
    p->binary = NULL;
    cv_ring_free(p);
}

/* The next full chunk for the sender: its slot, or -1 when there is none,
 * with *err CV_OK once every row was read or the reason it stopped (the
 * stage is set in res). While waiting it calls the progress hook every
 * second, so a cancel or a time limit is noticed while the origin is slow. */
static int pump_next(cv_pump *p, const cv_transfer_spec *spec, cv_transfer_result *res, cv_err *err,
                     char *errbuf, size_t errlen) {
    int slot = -1;

    *err = CV_OK;
    pthread_mutex_lock(&p->ring.lock);
    while (p->ring.count == 0 && !p->ring.done) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        if (pthread_cond_timedwait(&p->ring.changed, &p->ring.lock, &until) == 0 || !spec->progress)
            continue;
        pthread_mutex_unlock(&p->ring.lock);
        *err = spec->progress(spec->progress_ctx, res->rows_read, errbuf, errlen);
        if (*err) {
            *err = cv_stage_fail(res, cv_stage_stopped(*err), *err);
            return -1;
        }
        pthread_mutex_lock(&p->ring.lock);
    }
    if (p->ring.count > 0) {
        slot = p->ring.head;
    } else if (p->ring.err) { /* done and drained, with an error */
        *err = cv_stage_fail(res, p->from == CV_PUMP_TRANSFORM ? "transform" : "origin_fetch",
                             cv_err_set(errbuf, errlen, p->ring.err, "%s", p->ring.why));
    }
    pthread_mutex_unlock(&p->ring.lock);
    return slot;
}

/* Gives a sent chunk back to the reader, counts its rows and calls the
 * progress hook. */
static cv_err pump_release(cv_pump *p, int slot, const cv_transfer_spec *spec,
                           cv_transfer_result *res, char *errbuf, size_t errlen) {
    cv_err err;

    pthread_mutex_lock(&p->ring.lock);
    res->rows_read += p->ring.rows[slot];
    p->ring.used[slot] = 0;
    p->ring.rows[slot] = 0;
    p->ring.head = (p->ring.head + 1) % CV_PUMP_CHUNKS;
    p->ring.count--;
    pthread_cond_broadcast(&p->ring.changed);
    pthread_mutex_unlock(&p->ring.lock);
    if (spec->progress &&
        (err = spec->progress(spec->progress_ctx, res->rows_read, errbuf, errlen)))
        return cv_stage_fail(res, cv_stage_stopped(err), err);
    return CV_OK;
}

/* Commits a batch the reader ended. A batch another delivery of the same run
 * committed first means that delivery is loading the run: this one stops. */
static cv_err commit_batch(cv_sink *k, const cv_transfer_spec *spec, const cv_odbc_stmt *select,
                           const char *checkpoint, cv_transfer_result *res, char *errbuf,
                           size_t errlen) {
    cv_err err = cv_sink_commit_batch(k, spec, select, checkpoint, res->watermark, errbuf, errlen);
    if (err == CV_ERR_CONFLICT) {
        res->superseded = true;
        return cv_stage_fail(res, "destination_commit",
                             cv_err_set(errbuf, errlen, err,
                                        "batch %lld was committed by another delivery of this run",
                                        k->batches + 1));
    }
    return err ? cv_stage_fail(res, "destination_commit", err) : CV_OK;
}

/* Sends every chunk into the destination's COPY FROM STDIN. */
cv_err cv_pump_to_pg(cv_pump *p, cv_sink *k, const cv_transfer_spec *spec,
                     const cv_odbc_stmt *select, cv_transfer_result *res, char *errbuf,
                     size_t errlen) {
    char checkpoint[256];
    cv_err err;
    int slot;

    while ((slot = pump_next(p, spec, res, &err, errbuf, errlen)) >= 0) {
        bool batch_end = p->ring.batch_end[slot];
        /* Not released on failure: the rows of this chunk did not get in. */
        if (p->ring.used[slot] &&
            (err = cv_pg_copy_raw(k->pg, p->ring.chunk[slot], p->ring.used[slot], errbuf, errlen)))
            return cv_stage_fail(res, "destination_insert", err);
        if (batch_end)
            memcpy(checkpoint, p->ring.checkpoint[slot], sizeof(checkpoint));
        if ((err = pump_release(p, slot, spec, res, errbuf, errlen)))
            return err;
        if (batch_end && (err = commit_batch(k, spec, select, checkpoint, res, errbuf, errlen)))
            return err;
    }
    return err;
}

/* LOAD DATA pulls its data through feed_load(), on this thread; one LOAD DATA
 * statement per batch. */
typedef struct load_feed {
    cv_pump *p;
    const cv_transfer_spec *spec;
    cv_transfer_result *res;
    int slot;  /* chunk being read, -1 for none */
    size_t at; /* bytes of it already given */
    bool batch_end;
    char checkpoint[256];
    cv_err err;
    char why[1024]; /* the feed's own reason: cv_maria_load() writes errbuf */
} load_feed;

static long feed_load(void *ctx, char *buf, size_t len) {
    load_feed *f = ctx;
    size_t n;

    while (f->slot < 0 || f->at == f->p->ring.used[f->slot]) {
        if (f->slot >= 0) {
            int done = f->slot;
            f->batch_end = f->p->ring.batch_end[done];
            if (f->batch_end)
                memcpy(f->checkpoint, f->p->ring.checkpoint[done], sizeof(f->checkpoint));
            f->slot = -1;
            if ((f->err = pump_release(f->p, done, f->spec, f->res, f->why, sizeof(f->why))))
                return -1;
        }
        if (f->batch_end) /* the end of this statement's data */
            return 0;
        f->slot = pump_next(f->p, f->spec, f->res, &f->err, f->why, sizeof(f->why));
        if (f->slot < 0)
            return f->err ? -1 : 0;
        f->at = 0;
    }
    n = f->p->ring.used[f->slot] - f->at;
    n = n < len ? n : len;
    memcpy(buf, f->p->ring.chunk[f->slot] + f->at, n);
    f->at += n;
    return (long)n;
}

/* Runs the sink's LOAD DATA LOCAL INFILE with the pump's chunks as its file,
 * once per batch. */
cv_err cv_pump_to_maria(cv_pump *p, cv_sink *k, const cv_transfer_spec *spec,
                        const cv_odbc_stmt *select, cv_transfer_result *res, char *errbuf,
                        size_t errlen) {
    load_feed f = {.p = p, .spec = spec, .res = res, .slot = -1};
    cv_err err;

    for (;;) {
        f.batch_end = false;
        err = cv_maria_load(k->maria, k->sql, feed_load, &f, &k->loaded, errbuf, errlen);
        if (f.err) /* the feed's own reason (origin failure, cancel, timeout) wins */
            return cv_err_set(errbuf, errlen, f.err, "%s", f.why);
        if (err)
            return cv_stage_fail(res, "destination_insert", err);
        if (!f.batch_end)
            return CV_OK;
        if ((err = commit_batch(k, spec, select, f.checkpoint, res, errbuf, errlen)))
            return err;
    }
}

/* Connects the pump's own way to the origin, for the origins the reader does
 * not fetch over ODBC; the reader runs the query, so that a slow first row can
 * be cancelled. */
cv_err cv_pump_connect(cv_pump *p, const cv_transfer_spec *spec, char **query, char *errbuf,
                       size_t errlen) {
    char *bare = cv_sqltext_bare_query(spec->query);
    size_t cap = bare ? strlen(bare) + 32 : 0;
    cv_err err = CV_OK;

    if (!bare)
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    if (p->from == CV_PUMP_MARIA) {
        if (!(p->maria = cv_maria_connect(spec->origin_odbc, errbuf, errlen)))
            err = CV_ERR_ODBC;
        else
            err = cv_maria_exec(p->maria, cv_dialect_read_only_sql(CV_DIALECT_MARIADB), errbuf,
                                errlen);
        *query = bare;
        p->query = bare;
        return err;
    }
    if (!(*query = malloc(cap))) {
        free(bare);
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    }
    snprintf(*query, cap, "COPY (%s) TO STDOUT", bare);
    free(bare);
    p->query = *query; /* run by the reader, like a MariaDB origin's */
    if (!(p->pg = cv_pg_connect(spec->origin_odbc, errbuf, errlen)))
        return CV_ERR_ODBC;
    return cv_pg_exec(p->pg, cv_dialect_read_only_sql(CV_DIALECT_POSTGRES), errbuf, errlen);
}
