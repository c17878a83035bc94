/*
 * cv_api_export.c - GET /api/v1/query-runs/{id}/rows?format=csv|jsonl: a
 * console result as CSV (RFC 4180: a header of column names, CRLF line
 * ends, fields quoted when they hold a comma, a quote or a line break; NULL
 * is an empty field) or JSON Lines (one object per row, keyed by column
 * name). Streamed: one stored chunk of rows (runs/cv_query.h) is read and
 * written at a time, never the whole result.
 */
#include "cv_api_int.h"

#include "cv_buf.h"
#include "cv_log.h"
#include "cv_query.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define MAX_COLUMNS 1600

/* The state of one download, read by the server's thread for the connection. */
typedef struct export {
    cv_api *api;
    char id[CV_ID_LEN];
    bool csv;
    int ncols;
    char **names;         /* the column names, ncols */
    bson_t *inline_rows;  /* the run's own rows (a result of one chunk), or NULL */
    int64_t chunks, next; /* chunks stored, and the next to read */
    cv_buf out;           /* written and not yet sent */
    size_t sent;          /* of out */
    bool header, done;
}
export;

static void export_free(void *ctx) {
    export *e = ctx;
    for (int i = 0; i < e->ncols; i++)
        free(e->names[i]);
    free(e->names);
    bson_destroy(e->inline_rows);
    cv_buf_free(&e->out);
    free(e);
}

/* Appends one CSV field. */
static void csv_field(cv_buf *b, const char *v, size_t len) {
    bool quote = strpbrk(v, ",\"\r\n") != NULL;
    if (!quote) {
        cv_buf_add(b, v, len);
        return;
    }
    cv_buf_adds(b, "\"");
    for (const char *p = v, *end = v + len; p < end;) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        size_t n = q ? (size_t)(q - p) : (size_t)(end - p);
        cv_buf_add(b, p, n);
        if (!q)
            break;
        cv_buf_adds(b, "\"\"");
        p = q + 1;
    }
    cv_buf_adds(b, "\"");
}

/* Appends a value as CSV text. */
static void csv_value(cv_buf *b, const bson_iter_t *it) {
    char text[40];
    uint32_t len;
    const char *s;

    switch (bson_iter_type(it)) {
        case BSON_TYPE_INT32:
        case BSON_TYPE_INT64:
            snprintf(text, sizeof(text), "%lld", (long long)bson_iter_as_int64(it));
            cv_buf_adds(b, text);
            break;
        case BSON_TYPE_DOUBLE:
            snprintf(text, sizeof(text), "%.17g", bson_iter_double(it));
            cv_buf_adds(b, text);
            break;
        case BSON_TYPE_BOOL:
            cv_buf_adds(b, bson_iter_bool(it) ? "true" : "false");
            break;
        case BSON_TYPE_UTF8:
            s = bson_iter_utf8(it, &len);
            csv_field(b, s, len);
            break;
        default:
            break; /* NULL: an empty field */
    }
}

/* Appends one row (a stored array of values). */
static void add_row(export *e, bson_iter_t *row_it) {
    bson_iter_t v;
    int c = 0;

    if (!(BSON_ITER_HOLDS_DOCUMENT(row_it) || BSON_ITER_HOLDS_ARRAY(row_it)) ||
        !bson_iter_recurse(row_it, &v))
        return;
    if (e->csv) {
        while (bson_iter_next(&v)) {
            cv_buf_adds(&e->out, c++ ? "," : "");
            csv_value(&e->out, &v);
        }
        cv_buf_adds(&e->out, "\r\n");
        return;
    }
    cJSON *obj = cJSON_CreateObject();
    while (bson_iter_next(&v) && c < e->ncols)
        cJSON_AddItemToObject(obj, e->names[c++], cv_api_query_value(&v));
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    if (text) {
        cv_buf_adds(&e->out, text);
        cv_buf_adds(&e->out, "\n");
    } else {
        e->out.failed = true;
    }
    cJSON_free(text);
    cJSON_Delete(obj);
}

/* Appends every row of a stored document's `rows`. */
static void add_rows(export *e, const bson_t *doc) {
    bson_iter_t it, rows;
    if (!bson_iter_init_find(&it, doc, "rows") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &rows))
        return;
    while (bson_iter_next(&rows))
        add_row(e, &rows);
}

/* Fills e->out with the next piece: the header, then a chunk at a time.
 * False on a failure (the download is cut). */
static bool refill(export *e) {
    char why[256];
    bson_t *chunk = NULL;

    cv_buf_free(&e->out);
    e->sent = 0;
    if (!e->header) {
        e->header = true;
        if (e->csv) {
            for (int c = 0; c < e->ncols; c++) {
                cv_buf_adds(&e->out, c ? "," : "");
                csv_field(&e->out, e->names[c], strlen(e->names[c]));
            }
            cv_buf_adds(&e->out, "\r\n");
        }
        if (e->inline_rows)
            add_rows(e, e->inline_rows);
    } else if (e->next < e->chunks) {
        if (cv_api_query_chunk(e->api, e->id, e->next, &chunk, why, sizeof(why)) != CV_OK) {
            cv_log_warn("query run %s: chunk %lld not read for a download: %s", e->id,
                        (long long)e->next, why);
            return false;
        }
        e->next++;
        add_rows(e, chunk);
        bson_destroy(chunk);
    } else {
        e->done = true;
    }
    return !e->out.failed;
}

static long export_read(void *ctx, char *buf, size_t max) {
    export *e = ctx;
    size_t n;

    while (e->sent >= e->out.len) {
        if (e->done)
            return 0;
        if (!refill(e))
            return -1;
    }
    n = e->out.len - e->sent;
    n = n < max ? n : max;
    memcpy(buf, e->out.data + e->sent, n);
    e->sent += n;
    return (long)n;
}

/* The column names of a run, into e. */
static bool read_columns(export *e, const bson_t *doc) {
    bson_iter_t it, cols, col;
    if (!bson_iter_init_find(&it, doc, "columns") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &cols))
        return true;
    if (!(e->names = calloc(MAX_COLUMNS, sizeof(*e->names))))
        return false;
    while (bson_iter_next(&cols) && e->ncols < MAX_COLUMNS) {
        const char *name = "";
        if (BSON_ITER_HOLDS_DOCUMENT(&cols) && bson_iter_recurse(&cols, &col) &&
            bson_iter_find(&col, "name") && BSON_ITER_HOLDS_UTF8(&col))
            name = bson_iter_utf8(&col, NULL);
        if (!(e->names[e->ncols++] = strdup(name)))
            return false;
    }
    return true;
}

void cv_api_query_rows(cv_api *api, const char *id, const cv_http_request *req,
                       cv_http_response *res) {
    const char *format = cv_http_arg(req, "format");
    bson_t *doc = NULL;
    bson_iter_t it;
    export *e = NULL;

    if (format && strcmp(format, "csv") != 0 && strcmp(format, "jsonl") != 0) {
        cv_http_error(res, 422, "invalid", "format",
                      "format: must be \"csv\" or \"jsonl\", not \"%s\"", format);
        return;
    }
    if (!(doc = cv_api_load_query_run(api, id, req, res)))
        return;
    if (strcmp(cv_mongo_doc_str(doc, "status"), "succeeded") != 0) {
        cv_http_error(res, 409, "conflict", NULL, "query run %s has no rows: it is %s", id,
                      cv_mongo_doc_str(doc, "status"));
        goto out;
    }
    if (!(e = calloc(1, sizeof(*e))))
        goto nomem;
    e->api = api;
    snprintf(e->id, sizeof(e->id), "%s", id);
    e->csv = !format || strcmp(format, "csv") == 0;
    e->chunks = cv_mongo_doc_int(doc, "chunks", 0);
    if (!read_columns(e, doc))
        goto nomem;
    if (!e->chunks && bson_iter_init_find(&it, doc, "rows") && BSON_ITER_HOLDS_ARRAY(&it)) {
        /* Only the rows: the rest of the run is not needed while it streams. */
        e->inline_rows = bson_new();
        bson_append_iter(e->inline_rows, "rows", -1, &it);
    }
    res->status = 200;
    res->stream = (cv_http_stream){.read = export_read, .done = export_free, .ctx = e};
    snprintf(res->stream.content_type, sizeof(res->stream.content_type), "%s",
             e->csv ? "text/csv; charset=utf-8" : "application/x-ndjson");
    snprintf(res->stream.disposition, sizeof(res->stream.disposition),
             "attachment; filename=\"query-%s.%s\"", id, e->csv ? "csv" : "jsonl");
    e = NULL;
    goto out;
nomem:
    cv_http_error(res, 500, "internal", NULL, "out of memory");
out:
    if (e)
        export_free(e);
    bson_destroy(doc);
}
