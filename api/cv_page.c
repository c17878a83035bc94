/*
 * cv_page.c - one page of a list, by cursor rather than by skipping: see
 * cv_page.h for the contract. One more document than asked for is read to
 * know whether a next page exists.
 */
#include "cv_page.h"

#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_id_char(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' ||
           c == ':' || c == '.';
}

cv_err cv_page_read(const cv_http_request *req, int64_t max, cv_page *page, cv_verr *verr) {
    const char *limit = cv_http_arg(req, "limit"), *after = cv_http_arg(req, "after");
    int64_t ms;

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

cv_err cv_page_find(cv_mongo *m, const char *collection, const char *field, const char *value,
                    const char *order, int dir, const cv_page *page, bson_t **docs, char *next,
                    size_t nextlen, char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER, sort = BSON_INITIALIZER;
    const char *beyond = dir < 0 ? "$lt" : "$gt";
    bson_t *trimmed;
    bson_iter_t it;
    int64_t n = 0;
    cv_err err;

    next[0] = '\0';
    BSON_APPEND_UTF8(&filter, field, value);
    if (page->after_order[0]) {
        /* (order, _id) beyond the cursor: a later time, or the same time and a later _id. */
        bson_t or, clause;
        BSON_APPEND_ARRAY_BEGIN(&filter, "$or", & or);
        BSON_APPEND_DOCUMENT_BEGIN(& or, "0", &clause);
        append_cmp(&clause, order, beyond, page->after_order);
        bson_append_document_end(& or, &clause);
        BSON_APPEND_DOCUMENT_BEGIN(& or, "1", &clause);
        BSON_APPEND_UTF8(&clause, order, page->after_order);
        append_cmp(&clause, "_id", beyond, page->after_id);
        bson_append_document_end(& or, &clause);
        bson_append_array_end(&filter, & or);
    }
    BSON_APPEND_INT32(&sort, order, dir);
    BSON_APPEND_INT32(&sort, "_id", dir);
    err = cv_mongo_find(m, collection, &filter, &sort, page->limit + 1, docs, errbuf, errlen);
    bson_destroy(&filter);
    bson_destroy(&sort);
    if (err)
        return err;
    if (bson_count_keys(*docs) <= (uint32_t)page->limit)
        return CV_OK;
    /* One more than the page: keep the page, and point the cursor at its last. */
    if (!(trimmed = bson_new()))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    for (bool more = bson_iter_init(&it, *docs); more && bson_iter_next(&it) && n < page->limit;
         n++) {
        bson_append_iter(trimmed, bson_iter_key(&it), -1, &it);
        if (n == page->limit - 1 && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            const uint8_t *data;
            uint32_t len;
            bson_t doc;
            bson_iter_document(&it, &len, &data);
            if (bson_init_static(&doc, data, len)) {
                const char *o = cv_mongo_doc_str(&doc, order), *id = cv_mongo_doc_str(&doc, "_id");
                if (o && id)
                    snprintf(next, nextlen, "%s_%s", o, id);
            }
        }
    }
    bson_destroy(*docs);
    *docs = trimmed;
    return CV_OK;
}
