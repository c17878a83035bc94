/*
 * cv_pump.h - the pump that feeds COPY and LOAD DATA, in three parts that
 * share struct cv_pump:
 *   cv_ring.c       the chunk ring between the reader and the sender, and the
 *                   text format rows are written in;
 *   cv_pump.c       the reader thread (origin rows into chunks, from COPY TO
 *                   STDOUT, a streamed libmariadb result or ODBC block fetch,
 *                   batches cut on the checkpoint column) and the sender (the
 *                   chunks into COPY FROM STDIN or LOAD DATA, batches
 *                   committed);
 *   cv_transform.c  a Python transform between them: a feeder thread writes
 *                   origin blocks to the script as JSON lines, the reader
 *                   turns the lines it prints into rows.
 *
 * A pump belongs to the transfer that runs it: the calling thread sends, the
 * reader (and feeder) threads fill; only the ring is shared, under its lock.
 */
#ifndef CV_PUMP_H
#define CV_PUMP_H

#include "cv_buf.h"
#include "cv_err.h"
#include "cv_maria.h"
#include "cv_odbc.h"
#include "cv_odbcstmt.h"
#include "cv_pg.h"
#include "cv_sink.h"
#include "cv_transfer.h"

#include <pthread.h>
#include <string.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the pump ------------------------------------------------------------
 * COPY and LOAD DATA take rows as text. A reader thread turns the origin's rows
 * into that text, chunk by chunk, while the calling thread sends full chunks to
 * the destination, so reading and writing overlap the way two processes joined
 * by a pipe do. The reader takes its rows from the origin's own COPY TO STDOUT
 * (PostgreSQL to PostgreSQL: nothing to convert), from a streamed libmariadb
 * result (MariaDB origins), or from ODBC block fetch (everything else). */
#define CV_PUMP_CHUNK (1u << 20)
#define CV_PUMP_CHUNKS 4

typedef enum cv_pump_source {
    CV_PUMP_PG_COPY,
    CV_PUMP_MARIA,
    CV_PUMP_ODBC,
    CV_PUMP_TRANSFORM
} cv_pump_source;

/* The ring of chunks between the reader (fills) and the sender (sends);
 * every field after `lock` is shared under it. */
typedef struct cv_pump_ring {
    bool ready; /* lock and chunks set up (cv_ring_init()) */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    char *chunk[CV_PUMP_CHUNKS];
    size_t cap[CV_PUMP_CHUNKS], used[CV_PUMP_CHUNKS];
    int64_t rows[CV_PUMP_CHUNKS];
    bool batch_end[CV_PUMP_CHUNKS];       /* commit after sending this chunk... */
    char checkpoint[CV_PUMP_CHUNKS][256]; /* ...with this checkpoint */
    int head, count;                      /* full chunks waiting to be sent */
    bool done, stop;                      /* the reader ended; the sender asks it to stop */
    cv_err err;                           /* the reader's final status, reason in why */
    char why[512];
} cv_pump_ring;

/* Batched runs (CV_PUMP_ODBC only): the reader ends a batch at the first row
 * past `rows` rows whose checkpoint value differs from the one before. The
 * reader's alone. */
typedef struct cv_pump_batch {
    int64_t rows, in_batch;
    int col;          /* the checkpoint column's index */
    const char *name; /* and its name */
    char last[256];   /* checkpoint value of the last row encoded */
    size_t last_len;
} cv_pump_batch;

/* CV_PUMP_TRANSFORM: the script and its feeder (cv_transform.c). A feeder
 * thread fetches blocks and writes them as JSON lines into `work`, then swaps
 * it with `next` (under the ring's lock); the script's stdin is written from
 * `current`. So fetching overlaps with reading the script's output. */
typedef struct cv_pump_feed {
    const cv_transfer_spec *spec;
    int64_t line_no; /* output lines read */
    pthread_t thread;
    bool ready_full, done, quit; /* under the ring's lock: next is full; fed all; stop */
    cv_buf work, next, current;
    size_t current_at;
    cv_err err; /* the feeder's failure (under the lock), reason in why */
    char why[512];
    cv_err transform_err; /* the script's, as the reader saw it */
    char transform_why[512];
} cv_pump_feed;

typedef struct cv_pump {
    cv_pump_source from;
    cv_pg *pg;       /* CV_PUMP_PG_COPY: runs COPY (query) TO STDOUT */
    cv_maria *maria; /* CV_PUMP_MARIA: the reader runs `query` on it */
    const char *query;
    cv_odbc_stmt *odbc; /* CV_PUMP_ODBC and CV_PUMP_TRANSFORM: executed, the reader fetches */
    int ncols;
    bool *binary;  /* per column: bytes, written as hex */
    bool bare_hex; /* hex alone (LOAD DATA's UNHEX), else COPY's \\x prefix */
    pthread_t reader;
    bool started; /* the reader is running */
    int slot;     /* the reader's chunk */
    cv_pump_ring ring;
    cv_pump_batch batch;
    cv_pump_feed feed;
} cv_pump;

/* ---- cv_ring.c ---- */

/* Sets up the ring: its lock and CV_PUMP_CHUNKS empty chunks of
 * CV_PUMP_CHUNK bytes each (p->ring.ready). False when out of memory; then
 * cv_ring_free() frees what was set up. */
bool cv_ring_init(cv_pump *p);

/* Frees the chunks and the lock. Safe on a ring never set up, and twice. */
void cv_ring_free(cv_pump *p);

/* Passes the reader's current chunk (if it holds anything) to the sender and,
 * with `last`, the reader's final status. Waits while no chunk is free.
 * Returns false if the sender asked the reader to stop. */
bool cv_ring_hand_over(cv_pump *p, int *slot, bool last, cv_err err, const char *why);

/* Makes room for `more` bytes at the end of a chunk: inline, as it runs for
 * every field of every row; cv_ring_grow() when the chunk must grow. */
bool cv_ring_grow(cv_pump *p, int slot, size_t more);
static inline bool cv_ring_reserve(cv_pump *p, int slot, size_t more) {
    return p->ring.used[slot] + more <= p->ring.cap[slot] || cv_ring_grow(p, slot, more);
}

/* Appends one field in the text format COPY and LOAD DATA share: backslash,
 * tab, newline, carriage return and NUL escaped with a backslash, \N for
 * NULL, then `end` (tab or newline). Binary values go as hex. Inline for the
 * same reason. */
static inline bool cv_ring_put_field(cv_pump *p, int slot, const char *value, size_t len,
                                     bool binary, char end) {
    char *o;

    if (!cv_ring_reserve(p, slot, 2 * len + 4))
        return false;
    o = p->ring.chunk[slot] + p->ring.used[slot];
    if (!value) {
        *o++ = '\\';
        *o++ = 'N';
    } else if (binary) {
        if (!p->bare_hex) { /* COPY text reads \\x as \x, bytea's hex prefix */
            memcpy(o, "\\\\x", 3);
            o += 3;
        }
        o = cv_hex_encode(o, value, len);
    } else {
        for (size_t i = 0; i < len; i++) {
            char c = value[i], esc = c == '\\'   ? '\\'
                                     : c == '\t' ? 't'
                                     : c == '\n' ? 'n'
                                     : c == '\r' ? 'r'
                                     : c == '\0' ? '0'
                                                 : 0;
            if (esc) {
                *o++ = '\\';
                *o++ = esc;
            } else {
                *o++ = c;
            }
        }
    }
    *o++ = end;
    p->ring.used[slot] = (size_t)(o - p->ring.chunk[slot]);
    return true;
}

/* ---- cv_transform.c ---- */

/* Runs the transform to its end: CV_OK once every row it printed is in the
 * chunks, or the reason it failed in why. */
cv_err cv_transform_run(cv_pump *p, char *why, size_t whylen);

/* ---- cv_pump.c ---- */

/* Connects the pump's own way to the origin, for the origins the reader does
 * not fetch over ODBC; the reader runs the query, so that a slow first row can
 * be cancelled. */
cv_err cv_pump_connect(cv_pump *p, const cv_transfer_spec *spec, char **query, char *errbuf,
                       size_t errlen);

/* Starts the reader over an origin already set up in p (from, the source and
 * its columns). */
cv_err cv_pump_start(cv_pump *p, const cv_odbc_stmt *select, char *errbuf, size_t errlen);

/* Sends every chunk into the destination's COPY FROM STDIN. */
cv_err cv_pump_to_pg(cv_pump *p, cv_sink *k, const cv_transfer_spec *spec,
                     const cv_odbc_stmt *select, cv_transfer_result *res, char *errbuf,
                     size_t errlen);

/* Runs the sink's LOAD DATA LOCAL INFILE with the pump's chunks as its file,
 * once per batch. */
cv_err cv_pump_to_maria(cv_pump *p, cv_sink *k, const cv_transfer_spec *spec,
                        const cv_odbc_stmt *select, cv_transfer_result *res, char *errbuf,
                        size_t errlen);

/* Stops the reader (cancelling the origin's query if it is still running) and
 * frees the chunks. Safe on a pump that never started, and twice. */
void cv_pump_stop(cv_pump *p);

#endif
