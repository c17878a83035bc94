/*
 * cv_page.c - one page of a list, by cursor rather than by skipping: see
 * cv_page.h for the contract. One more document than asked for is read to
 * know whether a next page exists. Newest-first pages of the long lists walk
 * the parent's time buckets (cv_bucket.h) back from now, one equality look-up
 * a bucket, rather than asking FerretDB to sort the whole list.
 */
#include "cv_page.h"

#include "cv_bucket.h"
#include "cv_time.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

static bool is_id_char(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
           c == ':' || c == '.';
}

cv_err cv_page_read(const cv_http_request *req, int64_t max, cv_page *page, cv_verr *verr) {
    const char *limit = cv_http_arg(req, "limit"), *after = cv_http_arg(req, "after");
    int64_t ms;

    if (!after) /* the name the lists of issue 15 use for the same thing */
        after = cv_http_arg(req, "cursor");
    memset(page, 0, sizeof(*page));
    page->limit = max;
    if (limit) {
        char *end;
        long long n = strtoll(limit, &end, 10);
        if (!limit[0] || *end || n < 1 || n > max)
            return cv_verr_set(verr, NULL, "limit", "must be a whole number from 1 to %lld",
                               (long long)max);
        page->limit = n;
    }
    if (after) {
        const char *sep = strchr(after, '_');
        size_t olen = sep ? (size_t)(sep - after) : 0, idlen = sep ? strlen(sep + 1) : 0;
        bool ok = sep && olen > 0 && olen < sizeof(page->after_order) && idlen > 0 &&
                  idlen < sizeof(page->after_id);
        for (size_t i = 0; ok && i < idlen; i++)
            ok = is_id_char(sep[1 + i]);
        if (ok) {
            memcpy(page->after_order, after, olen);
            page->after_order[olen] = '\0';
            memcpy(page->after_id, sep + 1, idlen + 1);
            ok = cv_time_parse(page->after_order, &ms) == 0;
        }
        if (!ok)
            return cv_verr_set(verr, NULL, "after",
                               "is not a cursor of this list (pass back the 'next' of a page)");
    }
    return CV_OK;
}

/* Appends {key: {op: value}}. */
static void append_cmp(bson_t *doc, const char *key, const char *op, const char *value) {
    bson_t sub;
    BSON_APPEND_DOCUMENT_BEGIN(doc, key, &sub);
    BSON_APPEND_UTF8(&sub, op, value);
    bson_append_document_end(doc, &sub);
}

/* Appends the keyset condition "(order, _id) beyond the cursor": a later (dir 1) or earlier
 * (dir -1) time, or the same time and a later or earlier _id. */
static void append_beyond(bson_t *filter, const char *order, int dir, const cv_page *page) {
    const char *beyond = dir < 0 ? "$lt" : "$gt";
    bson_t or, clause;

    BSON_APPEND_ARRAY_BEGIN(filter, "$or", & or);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "0", &clause);
    append_cmp(&clause, order, beyond, page->after_order);
    bson_append_document_end(& or, &clause);
    BSON_APPEND_DOCUMENT_BEGIN(& or, "1", &clause);
    BSON_APPEND_UTF8(&clause, order, page->after_order);
    append_cmp(&clause, "_id", beyond, page->after_id);
    bson_append_document_end(& or, &clause);
    bson_append_array_end(filter, & or);
}

/* The item a document belongs to: its `group` member (or its _id when it has none), or
 * its _id when the list has no groups. Borrowed from doc. */
static const char *item_of(const bson_t *doc, const char *group) {
    const char *g = group ? cv_mongo_doc_str(doc, group) : NULL;
    return g ? g : cv_mongo_doc_str(doc, "_id");
}

/* Keeps the documents of the first page->limit items of *docs (an array document) and, when
 * there were more, points next at the last document kept. */
static cv_err finish_page(const cv_page *page, const char *order, const char *group, bson_t **docs,
                          char *next, size_t nextlen, char *errbuf, size_t errlen) {
    bson_t *trimmed, doc, last;
    bson_iter_t it;
    int64_t items = 0;
    const char *prev = NULL;
    bool more_items = false, have_last = false;

    next[0] = '\0';
    if (!(trimmed = bson_new()))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    for (bool more = bson_iter_init(&it, *docs); more && bson_iter_next(&it);) {
        const char *item = cv_mongo_iter_doc(&it, &doc) ? item_of(&doc, group) : NULL;
        if (!prev || !item || strcmp(prev, item) != 0)
            items++;
        prev = item;
        if (items > page->limit) {
            more_items = true;
            break;
        }
        bson_append_iter(trimmed, bson_iter_key(&it), -1, &it);
    }
    if (more_items) {
        /* The cursor is the last document kept: the next page begins beyond it. */
        for (bool more = bson_iter_init(&it, trimmed); more && bson_iter_next(&it);)
            have_last = cv_mongo_iter_doc(&it, &last);
        if (have_last) {
            const char *o = cv_mongo_doc_str(&last, order), *id = cv_mongo_doc_str(&last, "_id");
            if (o && id)
                snprintf(next, nextlen, "%s_%s", o, id);
        }
    }
    bson_destroy(*docs);
    *docs = trimmed;
    return CV_OK;
}

/* Up to `limit` documents that match filter, in (order, _id) order (ascending for dir 1). */
static cv_err find_sorted(cv_mongo *m, const char *collection, const bson_t *filter,
                          const char *order, int dir, int64_t limit, bson_t **docs, char *errbuf,
                          size_t errlen) {
    bson_t sort = BSON_INITIALIZER;
    cv_err err;

    BSON_APPEND_INT32(&sort, order, dir);
    BSON_APPEND_INT32(&sort, "_id", dir);
    err = cv_mongo_find(m, collection, filter, &sort, limit, docs, errbuf, errlen);
    bson_destroy(&sort);
    return err;
}

/* Up to `items` items that match filter, in (order, _id) order, whole: with groups, the
 * documents of one item are consecutive (they share the order value and their _ids a
 * prefix), and a read cut short by its limit drops its last, maybe partial, item and
 * reads again with a larger limit when what is left is not enough. *nitems counts them. */
static cv_err find_items(cv_mongo *m, const char *collection, const bson_t *filter,
                         const char *order, int dir, int64_t items, const char *group,
                         bson_t **docs, int64_t *nitems, char *errbuf, size_t errlen) {
    int64_t limit = group ? items * 4 + 8 : items;
    cv_err err;

    for (;;) {
        bson_t *found = NULL, *kept, doc;
        bson_iter_t it;
        int64_t n = 0, count, whole = 0, last_start = 0;
        const char *prev = NULL;

        if ((err = find_sorted(m, collection, filter, order, dir, limit, &found, errbuf, errlen)))
            return err;
        count = (int64_t)bson_count_keys(found);
        if (!group || count < limit) {
            *docs = found;
            for (bool more = bson_iter_init(&it, found); group && more && bson_iter_next(&it);) {
                const char *item = cv_mongo_iter_doc(&it, &doc) ? item_of(&doc, group) : NULL;
                if (!prev || !item || strcmp(prev, item) != 0)
                    whole++;
                prev = item;
            }
            *nitems = group ? whole : count;
            return CV_OK;
        }
        /* Cut short: the items before the last one are whole. */
        for (bool more = bson_iter_init(&it, found); more && bson_iter_next(&it); n++) {
            const char *item = cv_mongo_iter_doc(&it, &doc) ? item_of(&doc, group) : NULL;
            if (!prev || !item || strcmp(prev, item) != 0) {
                whole++;
                last_start = n;
            }
            prev = item;
        }
        if (whole - 1 < items && limit < INT64_C(1) << 40) {
            bson_destroy(found);
            limit *= 4;
            continue;
        }
        if (!(kept = bson_new())) {
            bson_destroy(found);
            return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        }
        n = 0;
        for (bool more = bson_iter_init(&it, found); more && bson_iter_next(&it) && n < last_start;
             n++)
            bson_append_iter(kept, bson_iter_key(&it), -1, &it);
        bson_destroy(found);
        *docs = kept;
        *nitems = whole - 1;
        return CV_OK;
    }
}

cv_err cv_page_find(cv_mongo *m, const char *collection, const char *field, const char *value,
                    const char *order, int dir, const cv_page *page, const char *group,
                    bson_t **docs, char *next, size_t nextlen, char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER;
    int64_t nitems = 0;
    cv_err err;

    next[0] = '\0';
    BSON_APPEND_UTF8(&filter, field, value);
    if (page->after_order[0])
        append_beyond(&filter, order, dir, page);
    err = find_items(m, collection, &filter, order, dir, page->limit + 1, group, docs, &nitems,
                     errbuf, errlen);
    bson_destroy(&filter);
    return err ? err : finish_page(page, order, group, docs, next, nextlen, errbuf, errlen);
}

cv_err cv_page_find_where(cv_mongo *m, const char *collection, const bson_t *where,
                          const char *order, int dir, const cv_page *page, bson_t **docs,
                          char *next, size_t nextlen, char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER;
    int64_t nitems = 0;
    cv_err err;

    next[0] = '\0';
    bson_concat(&filter, where);
    if (page->after_order[0])
        append_beyond(&filter, order, dir, page);
    err = find_items(m, collection, &filter, order, dir, page->limit + 1, NULL, docs, &nitems,
                     errbuf, errlen);
    bson_destroy(&filter);
    return err ? err : finish_page(page, order, NULL, docs, next, nextlen, errbuf, errlen);
}

/* ---- newest first, one time bucket at a time ---------------------------- */

#define WALK_PROBES_MAX 40 /* a year and more of months: then the plain query answers */
#define WALK_PROBE_COST 7  /* a query costs about what reading seven documents does */
#define WALK_GROW 4        /* see walk_next_level() */
#define WALK_SPARSE_MS (180 * 86400000LL) /* this far to go at the rate seen: ask plainly */

/* The state of one walk back in time through a parent's buckets. */
typedef struct walk {
    const char *collection, *value, *order, *group;
    const cv_page *page;
    int64_t top;   /* the newest time of the page (the cursor's, or now) */
    int64_t edge;  /* everything at or after it has been read */
    bson_t *acc;   /* the documents found so far, newest first, as an array document */
    int64_t have;  /* items in acc */
    int64_t ndocs; /* documents in acc */
    int probes;
    cv_bucket_level level; /* of the next probe */
} walk;

/* Reads the bucket of w->level just before the edge: its documents the walk has not read yet, in
 * order, at most as many as the page still needs. */
static cv_err walk_probe(cv_mongo *m, walk *w, char *errbuf, size_t errlen) {
    cv_bucket_level level = w->level;
    char key[CV_BUCKET_KEY_MAX], edge[CV_TIME_RFC3339_LEN], idx[24];
    bson_t filter = BSON_INITIALIZER, *found = NULL;
    int64_t at = w->probes ? w->edge - 1 : w->top, items = 0;
    bson_iter_t it;
    cv_err err;

    cv_bucket_key(w->value, level, at, key);
    BSON_APPEND_UTF8(&filter, CV_BUCKET_FIELD, key);
    if (w->probes) {
        /* Newer documents of this bucket were read with a finer one. */
        cv_time_format(w->edge, edge, sizeof(edge));
        append_cmp(&filter, w->order, "$lt", edge);
    } else if (w->page->after_order[0]) {
        append_beyond(&filter, w->order, -1, w->page);
    }
    err = find_items(m, w->collection, &filter, w->order, -1, w->page->limit + 1 - w->have,
                     w->group, &found, &items, errbuf, errlen);
    bson_destroy(&filter);
    if (err)
        return err;
    /* An item's documents share its time, so they are in one bucket at every level. */
    w->have += items;
    for (bool more = bson_iter_init(&it, found); more && bson_iter_next(&it);) {
        snprintf(idx, sizeof(idx), "%lld", (long long)w->ndocs++);
        bson_append_iter(w->acc, idx, -1, &it);
    }
    bson_destroy(found);
    w->edge = cv_bucket_start(level, at);
    w->probes++;
    return CV_OK;
}

/* The level of the next probe. A bucket read whole costs its documents, so the walk never looks
 * further back at once than WALK_GROW times what it has already looked at: time with nothing in
 * it (before the newest document, or a gap) is crossed in a few probes a level, and a dense stretch
 * after it is met with a fine level. Within that, the level that reads the rest of the page at the
 * least cost at the rate seen so far, taken on the high side (a query costs WALK_PROBE_COST
 * documents). *plain when the list is so sparse here that asking for it whole costs less than
 * walking on. */
static cv_bucket_level walk_next_level(const walk *w, bool *plain) {
    double covered = (double)(w->top - w->edge), rate, need, best_cost = 0;
    cv_bucket_level cap = CV_BUCKET_MINUTE, best = CV_BUCKET_MINUTE;

    while (cap < CV_BUCKET_MONTH &&
           (double)cv_bucket_span((cv_bucket_level)(cap + 1)) <= WALK_GROW * covered)
        cap++;
    *plain = false;
    if (w->have == 0 || covered <= 0)
        return cap;
    *plain = (double)(w->page->limit + 1 - w->have) * covered / (double)w->have > WALK_SPARSE_MS;
    rate = (double)(w->have + 2) / covered;               /* documents a millisecond */
    need = (double)(w->page->limit + 1 - w->have) / rate; /* milliseconds still to walk */
    for (int level = CV_BUCKET_MINUTE; level <= (int)cap; level++) {
        double span = (double)cv_bucket_span((cv_bucket_level)level);
        double cost = ceil(need / span) * (WALK_PROBE_COST + rate * span);
        if (level == CV_BUCKET_MINUTE || cost < best_cost) {
            best = (cv_bucket_level)level;
            best_cost = cost;
        }
    }
    return best;
}

cv_err cv_page_find_recent(cv_mongo *m, const char *collection, const char *field,
                           const char *value, const char *order, const cv_page *page,
                           const char *group, int64_t now_ms, int64_t since_ms, bson_t **docs,
                           char *next, size_t nextlen, char *errbuf, size_t errlen) {
    walk w = {collection, value, order, group, page, now_ms,
              now_ms,     NULL,  0,     0,     0,    CV_BUCKET_MINUTE};
    bool plain = false;
    cv_err err = CV_OK;

    next[0] = '\0';
    *docs = NULL;
    if (page->after_order[0] && cv_time_parse(page->after_order, &w.top) != 0)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "bad cursor");
    w.edge = w.top;
    if (!(w.acc = bson_new()))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    while (w.have <= page->limit && !plain && w.probes < WALK_PROBES_MAX && w.edge > since_ms) {
        if ((err = walk_probe(m, &w, errbuf, errlen)))
            goto out;
        w.level = walk_next_level(&w, &plain);
    }
    if (w.have <= page->limit) {
        /* The walk reached the parent's creation, the list is sparse here, or older than the
         * walk reaches: the plain query finds the rest (and documents written before they had
         * buckets). It reads the parent's whole list, which is then short, except for a list
         * whose recent part is sparse and whose older part long: that costs what it did before
         * buckets. */
        bson_destroy(w.acc);
        w.acc = NULL;
        err = cv_page_find(m, collection, field, value, order, -1, page, group, docs, next, nextlen,
                           errbuf, errlen);
        goto out;
    }
    *docs = w.acc;
    w.acc = NULL;
    err = finish_page(page, order, group, docs, next, nextlen, errbuf, errlen);
out:
    bson_destroy(w.acc);
    return err;
}
