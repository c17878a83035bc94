/*
 * cv_cli_show.c - how the client commands show things: aligned tables,
 * counts with separators, durations, and the progress bar of a followed run.
 * See cv_cli_int.h.
 */
#include "cv_cli_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define BAR_WIDTH 24

void cli_table_init(cli_table *t, int ncols, const char *const *header) {
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    cli_table_add(t, header);
}

void cli_table_add(cli_table *t, const char *const *row) {
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 16;
        char **cells = realloc(t->cells, cap * (size_t)t->ncols * sizeof(*cells));
        if (!cells)
            return; /* out of memory: the row is left out */
        t->cells = cells;
        t->cap = cap;
    }
    for (int i = 0; i < t->ncols; i++) {
        const char *v = row[i] ? row[i] : "-";
        /* One line a cell: a newline in a value (a query, an error) shows as a space. */
        char *copy = strdup(v);
        for (char *p = copy; p && *p; p++)
            if (*p == '\n' || *p == '\r' || *p == '\t')
                *p = ' ';
        t->cells[t->nrows * (size_t)t->ncols + (size_t)i] = copy;
    }
    t->nrows++;
}

/* Characters, not bytes: a UTF-8 name lines up with the others. */
static size_t width(const char *s) {
    size_t n = 0;

    for (; s && *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

void cli_table_print(cli_table *t, FILE *out) {
    size_t *widths = calloc((size_t)t->ncols, sizeof(*widths));

    if (!widths)
        return;
    for (size_t r = 0; r < t->nrows; r++)
        for (int c = 0; c < t->ncols; c++) {
            size_t w = width(t->cells[r * (size_t)t->ncols + (size_t)c]);
            if (w > widths[c])
                widths[c] = w;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * (size_t)t->ncols + (size_t)c];
            bool last = c == t->ncols - 1;
            fputs(cell ? cell : "", out);
            for (size_t pad = width(cell); !last && pad < widths[c] + 2; pad++)
                fputc(' ', out);
        }
        fputc('\n', out);
    }
    free(widths);
}

void cli_table_free(cli_table *t) {
    for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

const char *cli_text(const cJSON *obj, const char *key) {
    static char slots[8][256];
    static int next;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    char *out = slots[next++ % 8];

    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsNumber(v))
        snprintf(out, sizeof(slots[0]), "%.0f", v->valuedouble);
    else if (cJSON_IsBool(v))
        snprintf(out, sizeof(slots[0]), "%s", cJSON_IsTrue(v) ? "true" : "false");
    else
        return "-";
    return out;
}

void cli_print_json(const cJSON *v) {
    char *text = cJSON_Print(v);

    if (text)
        puts(text);
    free(text);
}

void cli_count(int64_t n, char *out, size_t outlen) {
    char digits[32];
    size_t len, o = 0;

    snprintf(digits, sizeof(digits), "%" PRId64, n < 0 ? -n : n);
    len = strlen(digits);
    if (n < 0 && o + 1 < outlen)
        out[o++] = '-';
    for (size_t i = 0; i < len && o + 1 < outlen; i++) {
        if (i > 0 && (len - i) % 3 == 0 && o + 2 < outlen)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
}

void cli_duration(int64_t ms, char *out, size_t outlen) {
    int64_t s = ms / 1000;

    if (ms < 60000)
        snprintf(out, outlen, "%.1f s", (double)ms / 1000.0);
    else if (s < 3600)
        snprintf(out, outlen, "%" PRId64 ":%02" PRId64, s / 60, s % 60);
    else
        snprintf(out, outlen, "%" PRId64 ":%02" PRId64 ":%02" PRId64, s / 3600, s / 60 % 60,
                 s % 60);
}

void cli_bar_draw(const cli *c, int64_t rows, int64_t total, int64_t per_second,
                  int64_t elapsed_ms) {
    char bar[BAR_WIDTH + 3] = "", n[32], t[32], rate[32], spent[32], left[48] = "";

    cli_count(rows, n, sizeof(n));
    cli_count(total, t, sizeof(t));
    cli_count(per_second, rate, sizeof(rate));
    cli_duration(elapsed_ms, spent, sizeof(spent));
    if (total > 0) {
        int full = rows >= total ? BAR_WIDTH : (int)(rows * BAR_WIDTH / total);
        bar[0] = '[';
        for (int i = 0; i < BAR_WIDTH; i++)
            bar[1 + i] = i < full ? '#' : '.';
        bar[BAR_WIDTH + 1] = ']';
        bar[BAR_WIDTH + 2] = '\0';
        if (rows < total && per_second > 0) {
            char d[32];
            cli_duration((total - rows) * 1000 / per_second, d, sizeof(d));
            snprintf(left, sizeof(left), ", about %s left", d);
        }
    }
    if (c->bar)
        fprintf(stderr, "\r%s%s%s rows%s%s, %s rows/s, %s%s\033[K", bar, bar[0] ? " " : "", n,
                total > 0 ? " of about " : "", total > 0 ? t : "", rate, spent, left);
    else
        fprintf(stderr, "progress: %s rows%s%s, %s rows/s, %s%s\n", n,
                total > 0 ? " of about " : "", total > 0 ? t : "", rate, spent, left);
    fflush(stderr);
}

void cli_bar_clear(const cli *c) {
    if (c->bar) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}
