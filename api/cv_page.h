/*
 * cv_page.h - keyset pagination for the API's lists.
 *
 * A list (a job's runs, a run's events, a project's notifications) is the
 * documents of one collection whose `field` equals a parent's id, in the order
 * of one stored time (`order`) with _id breaking ties. A page is `limit`
 * documents after a cursor: the order value and the _id of the last document
 * of the page before, as "<order value>_<_id>". The next page is asked for with
 * the filter (order, _id) beyond the cursor, which the index (field, order,
 * _id) in cv_store answers without reading the pages before it: page 1,000
 * costs what page 1 does, and a run recorded meanwhile neither repeats nor
 * skips an item. The long lists (a job's runs, a project's notifications) are
 * walked by time bucket instead (cv_page_find_recent()): FerretDB sorts in
 * memory after reading every match, and MongoDB answers the walk's look-ups
 * from the index on the buckets. The cursor is opaque to clients: they pass
 * back `next`.
 *
 * Query arguments: ?limit= (1 to the list's maximum, which is also the
 * default) and ?after= (or ?cursor=: a `next` from an earlier page).
 *
 * Called on the API's request threads; a page's results are the caller's to
 * destroy (see each function).
 */
#ifndef CV_PAGE_H
#define CV_PAGE_H

#include "cv_err.h"
#include "cv_http.h"
#include "cv_json.h"
#include "cv_mongo.h"

#include <stdint.h>

#define CV_PAGE_CURSOR_MAX 160

typedef struct cv_page {
    int64_t limit;
    char after_order[64]; /* "" on the first page */
    char after_id[96];
} cv_page;

/* Reads ?limit= and ?after= of req into page; max is the largest page and the
 * default. CV_ERR_INVALID with the argument ("limit" or "after") and the
 * reason in verr. */
cv_err cv_page_read(const cv_http_request *req, int64_t max, cv_page *page, cv_verr *verr);

/* Finds the page: documents of `collection` with field == value, ordered by
 * (order, _id) ascending (dir 1) or descending (dir -1). With `group` (a field
 * name, or NULL) an item of the list is the documents that share that field
 * (or their _id, when they lack it), which must share the order value and be
 * consecutive in _id order (a run's record and pieces, cv_runfold.h): the page
 * holds `limit` whole items. On CV_OK *docs is an array document the caller
 * frees with bson_destroy(), and next holds the cursor of the following page,
 * "" when this page is the last. */
cv_err cv_page_find(cv_mongo *m, const char *collection, const char *field, const char *value,
                    const char *order, int dir, const cv_page *page, const char *group,
                    bson_t **docs, char *next, size_t nextlen, char *errbuf, size_t errlen);

/* The same for a list of whatever matches `where` (no $or at its top: the
 * cursor's condition is one), one document an item. */
cv_err cv_page_find_where(cv_mongo *m, const char *collection, const bson_t *where,
                          const char *order, int dir, const cv_page *page, bson_t **docs,
                          char *next, size_t nextlen, char *errbuf, size_t errlen);

/* The same page of a list whose documents carry the time buckets of (value, order) (cv_bucket.h),
 * newest first, for a store that sorts in memory: walks the parent's buckets back from now_ms (or
 * from the cursor), fine where the list is dense and coarse where it is sparse, never further
 * back at once than a few times what it has crossed, until the page is full, so a page reads
 * about its own documents however long the list is. Where the walk ends short
 * (the parent, created at since_ms, is reached; the list is sparse; its rest is older than the
 * walk's 40 queries reach, over a year; or it was written before documents had buckets) the
 * query of cv_page_find() answers. */
cv_err cv_page_find_recent(cv_mongo *m, const char *collection, const char *field,
                           const char *value, const char *order, const cv_page *page,
                           const char *group, int64_t now_ms, int64_t since_ms, bson_t **docs,
                           char *next, size_t nextlen, char *errbuf, size_t errlen);

#endif
