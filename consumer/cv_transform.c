/*
 * cv_transform.c - a Python transform between origin and destination. See
 * cv_pump.h.
 */
#include "cv_pump.h"

#include "cv_log.h"
#include "cv_script.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* ---- a Python transform between origin and destination ---------------------
 * The reader thread runs the script in the sandbox (cv_script.c): origin rows
 * go to its stdin as JSON lines ({"column": "text" or null}, binary columns as
 * hex), and each line it prints must be a JSON object with exactly the query's
 * columns, which is written into the chunk like a fetched row. */

/* Appends s as a JSON string. */
static bool json_string(cv_buf *b, const char *s, size_t len) {
    char *o;
    if (!cv_buf_reserve(b, 6 * len + 3))
        return false;
    o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = cv_hex_digits[c >> 4];
            o[5] = cv_hex_digits[c & 15];
            o += 6;
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return true;
}

/* Writes one fetched block into b as JSON lines. */
static cv_err encode_block(cv_pump *p, size_t rows, cv_buf *b) {
    size_t vlen;

    for (size_t r = 0; r < rows; r++) {
        for (int c = 0; c < p->ncols; c++) {
            const cv_odbc_col *col = cv_odbc_stmt_col(p->odbc, c);
            const char *v = cv_odbc_stmt_value(p->odbc, r, c, &vlen);
            bool ok = cv_buf_adds(b, c ? "," : "{") &&
                      json_string(b, col->name, strlen(col->name)) && cv_buf_adds(b, ":");
            if (ok && !v) {
                ok = cv_buf_adds(b, "null");
            } else if (ok && col->binary) { /* bytes travel as hex text */
                ok = cv_buf_adds(b, "\"") && cv_buf_add_hex(b, v, vlen) && cv_buf_adds(b, "\"");
            } else if (ok) {
                ok = json_string(b, v, vlen);
            }
            if (!ok)
                return CV_ERR_NOMEM;
        }
        if (!cv_buf_adds(b, "}\n"))
            return CV_ERR_NOMEM;
    }
    return CV_OK;
}

/* The feeder thread: fetches the origin's blocks and hands them over as JSON
 * lines, one block ahead of the script's stdin. */
static void *transform_feeder(void *arg) {
    cv_pump *p = arg;
    cv_err err = CV_OK;
    char why[512] = "";

    for (;;) {
        size_t rows = 0;
        cv_buf swap;
        bool end;

        p->feed.work.len = 0;
        err = cv_odbc_stmt_fetch_block(p->odbc, &rows, why, sizeof(why));
        if (!err && (err = encode_block(p, rows, &p->feed.work)))
            snprintf(why, sizeof(why), "out of memory");
        end = err != CV_OK;
        pthread_mutex_lock(&p->ring.lock);
        while (p->feed.ready_full && !p->feed.quit)
            pthread_cond_wait(&p->ring.changed, &p->ring.lock);
        if (p->feed.quit) {
            pthread_mutex_unlock(&p->ring.lock);
            return NULL;
        }
        if (end) {
            p->feed.done = true;
            if (err != CV_ERR_NOT_FOUND) {
                p->feed.err = err;
                snprintf(p->feed.why, sizeof(p->feed.why), "%s", why);
            }
        } else {
            swap = p->feed.next;
            p->feed.next = p->feed.work;
            p->feed.work = swap;
            p->feed.ready_full = true;
        }
        pthread_cond_broadcast(&p->ring.changed);
        pthread_mutex_unlock(&p->ring.lock);
        if (end)
            return NULL;
    }
}

/* The script's stdin: the blocks the feeder encoded, in order. */
static long transform_feed(void *ctx, char *buf, size_t len) {
    cv_pump *p = ctx;
    size_t n;

    while (p->feed.current_at == p->feed.current.len) {
        bool failed;
        pthread_mutex_lock(&p->ring.lock);
        while (!p->feed.ready_full && !p->feed.done)
            pthread_cond_wait(&p->ring.changed, &p->ring.lock);
        if (p->feed.ready_full) {
            cv_buf swap = p->feed.current;
            p->feed.current = p->feed.next;
            p->feed.next = swap;
            p->feed.ready_full = false;
            p->feed.current_at = 0;
            pthread_cond_broadcast(&p->ring.changed);
            pthread_mutex_unlock(&p->ring.lock);
            continue;
        }
        failed = p->feed.err != CV_OK;
        pthread_mutex_unlock(&p->ring.lock);
        return failed ? -1 : 0;
    }
    n = p->feed.current.len - p->feed.current_at;
    n = n < len ? n : len;
    memcpy(buf, p->feed.current.data + p->feed.current_at, n);
    p->feed.current_at += n;
    return (long)n;
}

/* One line the script printed: a row for the destination, or a reason to stop. */
static bool transform_line(void *ctx, const char *line, size_t len) {
    cv_pump *p = ctx;
    cJSON *row;
    int members = 0;
    bool ok = true;

    p->feed.line_no++;
    row = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsObject(row)) {
        cJSON_Delete(row);
        p->feed.transform_err =
            cv_err_set(p->feed.transform_why, sizeof(p->feed.transform_why), CV_ERR_INVALID,
                       "transform output line %lld: not a JSON object", (long long)p->feed.line_no);
        return false;
    }
    for (const cJSON *m = row->child; m; m = m->next)
        members++;
    for (int c = 0; c < p->ncols && ok; c++) {
        const cv_odbc_col *col = cv_odbc_stmt_col(p->odbc, c);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, col->name);
        char number[64];
        char end = c == p->ncols - 1 ? '\n' : '\t';
        if (!v) {
            cv_err_set(p->feed.transform_why, sizeof(p->feed.transform_why), CV_ERR_INVALID,
                       "transform output line %lld: column \"%s\" is missing",
                       (long long)p->feed.line_no, col->name);
            ok = false;
        } else if (cJSON_IsNull(v)) {
            ok = cv_ring_put_field(p, p->slot, NULL, 0, false, end);
        } else if (cJSON_IsString(v) && col->binary) {
            size_t hl = strlen(v->valuestring);
            unsigned char *bytes = malloc(hl / 2 + 1);
            bool hexok = bytes && hl % 2 == 0;
            for (size_t i = 0; hexok && i < hl / 2; i++) {
                unsigned int byte;
                hexok = sscanf(v->valuestring + 2 * i, "%2x", &byte) == 1 &&
                        isxdigit((unsigned char)v->valuestring[2 * i]) &&
                        isxdigit((unsigned char)v->valuestring[2 * i + 1]);
                bytes[i] = (unsigned char)byte;
            }
            if (!hexok)
                cv_err_set(p->feed.transform_why, sizeof(p->feed.transform_why), CV_ERR_INVALID,
                           "transform output line %lld: column \"%s\" must be hex text",
                           (long long)p->feed.line_no, col->name);
            ok = hexok && cv_ring_put_field(p, p->slot, (const char *)bytes, hl / 2, true, end);
            free(bytes);
        } else if (cJSON_IsString(v)) {
            ok = cv_ring_put_field(p, p->slot, v->valuestring, strlen(v->valuestring), false, end);
        } else if (cJSON_IsBool(v)) {
            ok = cv_ring_put_field(p, p->slot, cJSON_IsTrue(v) ? "true" : "false",
                                   cJSON_IsTrue(v) ? 4 : 5, false, end);
        } else if (cJSON_IsNumber(v)) {
            int n = v->valuedouble == (double)(long long)v->valuedouble &&
                            v->valuedouble < 9.0e15 && v->valuedouble > -9.0e15
                        ? snprintf(number, sizeof(number), "%lld", (long long)v->valuedouble)
                        : snprintf(number, sizeof(number), "%.17g", v->valuedouble);
            ok = cv_ring_put_field(p, p->slot, number, (size_t)n, false, end);
        } else {
            cv_err_set(p->feed.transform_why, sizeof(p->feed.transform_why), CV_ERR_INVALID,
                       "transform output line %lld: column \"%s\" must be a string, a number, "
                       "true, false or null",
                       (long long)p->feed.line_no, col->name);
            ok = false;
        }
    }
    if (ok && members != p->ncols) {
        cv_err_set(p->feed.transform_why, sizeof(p->feed.transform_why), CV_ERR_INVALID,
                   "transform output line %lld: %d fields, the destination takes the query's %d "
                   "columns",
                   (long long)p->feed.line_no, members, p->ncols);
        ok = false;
    }
    cJSON_Delete(row);
    if (!ok) {
        p->feed.transform_err = CV_ERR_INVALID;
        return false;
    }
    p->ring.rows[p->slot]++;
    if (p->ring.used[p->slot] >= CV_PUMP_CHUNK / 2 &&
        !cv_ring_hand_over(p, &p->slot, false, CV_OK, "")) {
        p->feed.transform_err = cv_err_set(p->feed.transform_why, sizeof(p->feed.transform_why),
                                           CV_ERR_CANCELLED, "stopped");
        return false;
    }
    return true;
}

/* Stops the script when the sender stopped the pump (cancel, time limit). */
static cv_err transform_check(void *ctx, char *errbuf, size_t errlen) {
    cv_pump *p = ctx;
    bool stop;
    pthread_mutex_lock(&p->ring.lock);
    stop = p->ring.stop;
    pthread_mutex_unlock(&p->ring.lock);
    return stop ? cv_err_set(errbuf, errlen, CV_ERR_CANCELLED, "stopped") : CV_OK;
}

static void transform_log(void *ctx, cv_script_stream stream, const char *line, size_t len,
                          bool cut) {
    cv_pump *p = ctx;
    (void)stream;
    (void)cut;
    cv_log_info("run %s: transform: %.*s", p->feed.spec->run_id, (int)len, line);
}

/* Runs the transform to its end: CV_OK once every row it printed is in the
 * chunks, or the reason it failed in why. */
cv_err cv_transform_run(cv_pump *p, char *why, size_t whylen) {
    cv_script_spec script;
    cv_script_result res;
    cv_err err;

    memset(&script, 0, sizeof(script));
    script.script = p->feed.spec->transform;
    /* The job's own time limit stops it through the pump; a long transfer may
     * keep a transform busy for longer than a script's default CPU limit. */
    script.limits.timeout_seconds = 86400;
    script.limits.cpu_seconds = 86400;
    script.feed = transform_feed;
    script.on_data = transform_line;
    script.on_line = transform_log;
    script.check = transform_check;
    script.ctx = p;
    if (pthread_create(&p->feed.thread, NULL, transform_feeder, p) != 0)
        return cv_err_set(why, whylen, CV_ERR_IO, "cannot start the feeder thread");
    err = cv_script_run(&script, &res, why, whylen);
    pthread_mutex_lock(&p->ring.lock);
    p->feed.quit = true; /* the script is gone: nothing more to feed */
    pthread_cond_broadcast(&p->ring.changed);
    pthread_mutex_unlock(&p->ring.lock);
    pthread_join(p->feed.thread, NULL);
    if (err)
        return err;
    if (p->feed.err) /* the origin failed under the script */
        return cv_err_set(why, whylen, p->feed.err, "%s", p->feed.why);
    if (p->feed.transform_err)
        return cv_err_set(why, whylen, p->feed.transform_err, "%s", p->feed.transform_why);
    if (res.aborted)
        return cv_err_set(why, whylen, CV_ERR_INVALID, "transform output line %lld is too long",
                          (long long)p->feed.line_no + 1);
    if (res.limit || res.exit_code != 0 || res.signal) {
        char how[256];
        cv_script_describe(&script, &res, how, sizeof(how));
        return cv_err_set(why, whylen, CV_ERR_INVALID, "transform %s", how);
    }
    return CV_OK;
}
