/*
 * cv_runfold.c - a run folded from its record and its pieces: see cv_runfold.h.
 */
#include "cv_runfold.h"

#include "cv_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define PIECE_STARTED "started"
#define PIECE_ENDED "ended"

void cv_runfold_piece_id(const char *run_id, int attempt, bool ended, char out[CV_RUNFOLD_ID_MAX]) {
    snprintf(out, CV_RUNFOLD_ID_MAX, "%s.%d.%s", run_id, attempt,
             ended ? PIECE_ENDED : PIECE_STARTED);
}

/* A document's length, from its first four bytes (BSON's little-endian
 * prefix) rather than doc->len: libbson declares bson_t 128-byte aligned,
 * but the copies it allocates on the heap are not, and UBSan rejects a
 * member read through such a pointer. */
static uint32_t doc_len(const bson_t *doc) {
    uint32_t len;
    memcpy(&len, bson_get_data(doc), sizeof(len));
    return BSON_UINT32_FROM_LE(len);
}

static const char *doc_str(const bson_t *doc, const char *key) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, NULL);
    return NULL;
}

static int doc_int(const bson_t *doc, const char *key, int def) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it))
        return (int)bson_iter_as_int64(&it);
    return def;
}

/* The sub-document `key` of doc into *sub (static, borrowed); false when there is none. */
static bool doc_sub(const bson_t *doc, const char *key, bson_t *sub) {
    bson_iter_t it;
    const uint8_t *data;
    uint32_t len;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return false;
    bson_iter_document(&it, &len, &data);
    return bson_init_static(sub, data, len);
}

bool cv_runfold_is_piece(const bson_t *doc) {
    return doc_str(doc, CV_RUNFOLD_PIECE) != NULL;
}

const char *cv_runfold_run_of(const bson_t *doc) {
    const char *run = doc_str(doc, CV_RUNFOLD_RUN);
    return run ? run : doc_str(doc, "_id");
}

typedef struct piece {
    const bson_t *doc;
    int attempt;
    bool ended;
} piece;

/* Attempt order; a start before the end of the same attempt. */
static int piece_cmp(const void *a, const void *b) {
    const piece *x = a, *y = b;
    if (x->attempt != y->attempt)
        return x->attempt < y->attempt ? -1 : 1;
    return (int)x->ended - (int)y->ended;
}

/* What folding found: the base document and the changes that apply, in order. */
typedef struct fold {
    bson_t base;  /* the record, or a run's `created` when it has none (static) */
    bson_t *sets; /* static views of the applied pieces' `set` */
    size_t nsets;
    const bson_t **entries; /* the applied starts, for `attempts` */
    size_t nentries;
} fold;

/* Applies the pieces, sorted, to the state the base starts in. */
static void apply_pieces(fold *f, const piece *ps, size_t np, cv_run_status status, int attempt) {
    for (size_t i = 0; i < np; i++) {
        /* Viewed in place: a static bson_t points into itself and cannot be copied. */
        bson_t *set = &f->sets[f->nsets];
        cv_run_status to;
        if (!doc_sub(ps[i].doc, CV_RUNFOLD_SET, set))
            continue;
        to = ps[i].ended ? cv_run_status_parse(doc_str(set, "status")) : CV_RUN_RUNNING;
        if (to == CV_RUN_NONE || !cv_run_can_move(status, to))
            continue;
        /* A start moves the run to its attempt, never back; an end is its own attempt's. */
        if (ps[i].ended ? attempt != ps[i].attempt : attempt > ps[i].attempt)
            continue;
        f->nsets++;
        if (!ps[i].ended)
            f->entries[f->nentries++] = ps[i].doc;
        status = to;
        attempt = ps[i].attempt;
    }
}

/* The last applied set that has `key`, from index `from` on; -1 when none. */
static long last_with(const fold *f, const char *key, size_t from) {
    for (size_t i = f->nsets; i-- > from;)
        if (bson_has_field(&f->sets[i], key))
            return (long)i;
    return -1;
}

/* Appends the value of `key` in the document it->... came from. */
static void append_from(bson_t *out, const bson_t *src, const char *key) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, src, key))
        bson_append_iter(out, key, -1, &it);
}

/* `attempts`: the base's entries, then those of the applied starts it lacks. */
static void append_attempts(bson_t *out, const fold *f) {
    bson_t list, entry;
    bson_iter_t it, sub;
    char idx[16];
    int n = 0;

    if (!bson_has_field(&f->base, "attempts") && f->nentries == 0)
        return;
    BSON_APPEND_ARRAY_BEGIN(out, "attempts", &list);
    if (bson_iter_init_find(&it, &f->base, "attempts") && BSON_ITER_HOLDS_ARRAY(&it) &&
        bson_iter_recurse(&it, &sub)) {
        while (bson_iter_next(&sub)) {
            snprintf(idx, sizeof(idx), "%d", n++);
            bson_append_iter(&list, idx, -1, &sub);
        }
    }
    for (size_t i = 0; i < f->nentries; i++) {
        const char *event = NULL;
        bool listed = false;
        if (!doc_sub(f->entries[i], CV_RUNFOLD_ENTRY, &entry))
            continue;
        event = doc_str(&entry, "event_id");
        if (event && bson_iter_init_find(&it, &f->base, "attempts") && BSON_ITER_HOLDS_ARRAY(&it) &&
            bson_iter_recurse(&it, &sub))
            while (!listed && bson_iter_next(&sub)) {
                bson_iter_t e;
                listed = BSON_ITER_HOLDS_DOCUMENT(&sub) && bson_iter_recurse(&sub, &e) &&
                         bson_iter_find(&e, "event_id") && BSON_ITER_HOLDS_UTF8(&e) &&
                         strcmp(bson_iter_utf8(&e, NULL), event) == 0;
            }
        if (listed)
            continue;
        snprintf(idx, sizeof(idx), "%d", n++);
        BSON_APPEND_DOCUMENT(&list, idx, &entry);
    }
    bson_append_array_end(out, &list);
}

/* The base's fields, each as the last change that sets it left it, then the fields only
 * the changes set, then `attempts`. */
static bson_t *render(const char *run_id, const fold *f) {
    bson_t *out = bson_new();
    bson_iter_t it;

    if (!out)
        return NULL;
    BSON_APPEND_UTF8(out, "_id", run_id);
    if (bson_iter_init(&it, &f->base))
        while (bson_iter_next(&it)) {
            const char *key = bson_iter_key(&it);
            long at;
            if (!strcmp(key, "_id") || !strcmp(key, CV_RUNFOLD_RUN) || !strcmp(key, "attempts"))
                continue;
            if ((at = last_with(f, key, 0)) >= 0)
                append_from(out, &f->sets[at], key);
            else
                bson_append_iter(out, key, -1, &it);
        }
    for (size_t i = 0; i < f->nsets; i++) {
        if (!bson_iter_init(&it, &f->sets[i]))
            continue;
        while (bson_iter_next(&it)) {
            const char *key = bson_iter_key(&it);
            if (bson_has_field(&f->base, key) || last_with(f, key, i + 1) >= 0)
                continue; /* written above, or by a later change */
            bson_append_iter(out, key, -1, &it);
        }
    }
    append_attempts(out, f);
    return out;
}

bson_t *cv_runfold(const char *run_id, const bson_t *const *docs, size_t n) {
    const bson_t *record = NULL, *created_of = NULL;
    piece *ps = calloc(n ? n : 1, sizeof(*ps));
    fold f = {.sets = calloc(n ? n : 1, sizeof(*f.sets)),
              .entries = calloc(n ? n : 1, sizeof(*f.entries))};
    cv_run_status status = CV_RUN_NONE;
    bson_t *out = NULL, *merged = NULL;
    size_t np = 0;
    int attempt = 0;

    if (!ps || !f.sets || !f.entries)
        goto done;
    for (size_t i = 0; i < n; i++) {
        const char *run = cv_runfold_run_of(docs[i]), *kind = doc_str(docs[i], CV_RUNFOLD_PIECE);
        if (!run || strcmp(run, run_id) != 0)
            continue;
        if (!kind) {
            if (!record)
                record = docs[i];
            continue;
        }
        ps[np++] = (piece){docs[i], doc_int(docs[i], "attempt", 0), !strcmp(kind, PIECE_ENDED)};
        if (!created_of && !ps[np - 1].ended && bson_has_field(docs[i], CV_RUNFOLD_CREATED))
            created_of = docs[i];
    }
    if (!record && np == 0)
        goto done;
    qsort(ps, np, sizeof(*ps), piece_cmp);
    if (record && bson_has_field(record, "status")) {
        bson_init_static(&f.base, bson_get_data(record), doc_len(record));
        status = cv_run_status_parse(doc_str(record, "status"));
        attempt = doc_int(record, "attempt", 0);
    } else {
        /* No record (a message another system wrote): the run starts as its first start
         * says, with what a record of only a cancel request holds on top. */
        static const char *const filed[] = CV_RUNFOLD_FILED;
        bson_t created;
        bson_iter_t it;
        if (!(merged = bson_new()))
            goto done;
        if (created_of && doc_sub(created_of, CV_RUNFOLD_CREATED, &created))
            bson_concat(merged, &created);
        for (size_t k = 0; created_of && k < sizeof(filed) / sizeof(filed[0]); k++)
            if (!bson_has_field(merged, filed[k]) && bson_iter_init_find(&it, created_of, filed[k]))
                bson_append_iter(merged, filed[k], -1, &it);
        if (record && bson_iter_init(&it, record))
            while (bson_iter_next(&it))
                if (!bson_has_field(merged, bson_iter_key(&it)))
                    bson_append_iter(merged, bson_iter_key(&it), -1, &it);
        bson_init_static(&f.base, bson_get_data(merged), doc_len(merged));
        attempt = 0; /* a start of any attempt applies */
    }
    if (!cv_run_is_final(status))
        apply_pieces(&f, ps, np, status, attempt);
    out = render(run_id, &f);
done:
    bson_destroy(merged);
    free(ps);
    free(f.sets);
    free(f.entries);
    return out;
}

/* The documents of an array document as static views into docs (cap of them) and
 * pointers to them into ptrs; returns how many. */
static size_t view_array(const bson_t *array, bson_t *docs, const bson_t **ptrs, size_t cap) {
    bson_iter_t it;
    size_t n = 0;

    if (array && bson_iter_init(&it, array))
        while (n < cap && bson_iter_next(&it)) {
            const uint8_t *data;
            uint32_t len;
            if (!BSON_ITER_HOLDS_DOCUMENT(&it))
                continue;
            bson_iter_document(&it, &len, &data);
            if (bson_init_static(&docs[n], data, len) && cv_runfold_run_of(&docs[n])) {
                ptrs[n] = &docs[n];
                n++;
            }
        }
    return n;
}

/* Views of every document of array, for the two callers below; false when out of memory. */
static bool views_new(const bson_t *array, bson_t **docs, const bson_t ***ptrs, size_t *n) {
    size_t cap = array ? bson_count_keys(array) : 0;
    *docs = calloc(cap ? cap : 1, sizeof(**docs));
    *ptrs = calloc(cap ? cap : 1, sizeof(**ptrs));
    *n = *docs && *ptrs ? view_array(array, *docs, *ptrs, cap) : 0;
    return *docs && *ptrs;
}

bson_t *cv_runfold_array(const char *run_id, const bson_t *array) {
    bson_t *docs, *out = NULL;
    const bson_t **ptrs;
    size_t n;

    if (views_new(array, &docs, &ptrs, &n))
        out = cv_runfold(run_id, ptrs, n);
    free(docs);
    free(ptrs);
    return out;
}

size_t cv_runfold_each(const bson_t *array, void (*fn)(void *ctx, const bson_t *run), void *ctx) {
    bson_t *docs;
    const bson_t **ptrs;
    size_t n, from = 0, runs = 0;

    if (views_new(array, &docs, &ptrs, &n))
        for (size_t i = 1; i <= n; i++) {
            const char *run = cv_runfold_run_of(ptrs[from]);
            bson_t *folded;
            if (i < n && strcmp(cv_runfold_run_of(ptrs[i]), run) == 0)
                continue;
            if ((folded = cv_runfold(run, ptrs + from, i - from))) {
                fn(ctx, folded);
                runs++;
            }
            bson_destroy(folded);
            from = i;
        }
    free(docs);
    free(ptrs);
    return runs;
}
