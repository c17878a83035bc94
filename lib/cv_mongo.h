/*
 * cv_mongo.h - the project's thin layer over mongo-c-driver.
 *
 * One cv_mongo holds a client pool for one database, so any thread may call any
 * function here. Documents go in and out as bson_t; bson_error_t never leaves
 * this module: failures come back as cv_err with the server's message in errbuf,
 * and a duplicate _id as CV_ERR_CONFLICT (callers that write idempotently treat
 * that as "already done").
 *
 * FerretDB 1.24 on PostgreSQL (the test and dev stack, see scripts/store.sql):
 * top-level equalities are pushed down to PostgreSQL and served by GIN indexes
 * (flat with size: a find by _id is a statement of about 0.1 ms in PostgreSQL;
 * an update costs about 1 ms of FerretDB and PostgreSQL CPU together); sort and
 * limit are applied by FerretDB after reading every match, and $or, $in and
 * ranges read the whole collection. An update costs four PostgreSQL round
 * trips (select, begin, update, commit). Hot paths filter on _id or on one
 * indexed field and keep the matches of one filter few.
 */
#ifndef CV_MONGO_H
#define CV_MONGO_H

#include "cv_err.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct cv_mongo cv_mongo;

/* Connects lazily (the first operation dials). NULL with the reason in errbuf
 * if the URI is unusable. Free with cv_mongo_destroy(). */
cv_mongo *cv_mongo_new(const char *uri, const char *db, const char *app_name, char *errbuf,
                       size_t errlen);

/* Frees the pool. Accepts NULL. Call once no other thread uses m. */
void cv_mongo_destroy(cv_mongo *m);

/* Runs {ping: 1}; CV_OK when the server answers. */
cv_err cv_mongo_ping(cv_mongo *m, char *errbuf, size_t errlen);

/* Inserts one document (not taken over). CV_ERR_CONFLICT if its _id exists. */
cv_err cv_mongo_insert(cv_mongo *m, const char *collection, const bson_t *doc, char *errbuf,
                       size_t errlen);

/* Finds the document whose _id is the string `id`. On CV_OK, *out is a new
 * document the caller frees with bson_destroy(). CV_ERR_NOT_FOUND if none. */
cv_err cv_mongo_find_id(cv_mongo *m, const char *collection, const char *id, bson_t **out,
                        char *errbuf, size_t errlen);

/* Finds all documents matching `filter`, sorted by `sort` (may be NULL), at most
 * `limit` (0 = no limit). On CV_OK, *out is a new array document
 * {"0": doc, "1": doc, ...}; the caller frees it with bson_destroy(). */
cv_err cv_mongo_find(cv_mongo *m, const char *collection, const bson_t *filter, const bson_t *sort,
                     int64_t limit, bson_t **out, char *errbuf, size_t errlen);

/* Updates one document. With upsert, a filter that matches nothing inserts; if
 * that insert hits an existing _id (the filter excluded it), CV_ERR_CONFLICT.
 * *matched (may be NULL) gets the number of documents matched. */
cv_err cv_mongo_update(cv_mongo *m, const char *collection, const bson_t *filter,
                       const bson_t *update, bool upsert, int64_t *matched, char *errbuf,
                       size_t errlen);

/* Updates the one document matching filter and hands back, in *before, the
 * document as it was (findAndModify: one round trip). CV_ERR_NOT_FOUND when
 * nothing matched. The caller frees *before with bson_destroy(). */
cv_err cv_mongo_find_and_update(cv_mongo *m, const char *collection, const bson_t *filter,
                                const bson_t *update, bson_t **before, char *errbuf, size_t errlen);

/* Counts the documents matching filter into *n, at most limit (0: all). */
cv_err cv_mongo_count(cv_mongo *m, const char *collection, const bson_t *filter, int64_t limit,
                      int64_t *n, char *errbuf, size_t errlen);

/* Inserts n documents in one unordered batch. duplicate[i] says whether
 * docs[i] hit an existing _id (the others went in; NULL when the caller only
 * needs to know that a duplicate is success); CV_ERR_MONGO for any other
 * failure. */
cv_err cv_mongo_insert_many(cv_mongo *m, const char *collection, const bson_t **docs, size_t n,
                            bool *duplicate, char *errbuf, size_t errlen);

/* Deletes one document per filter, in unordered commands of at most 100
 * statements. *deleted (may be NULL) gets how many went. */
cv_err cv_mongo_delete_each(cv_mongo *m, const char *collection, const bson_t **filters, size_t n,
                            int64_t *deleted, char *errbuf, size_t errlen);

/* Updates one document per filter with updates[i] (no upsert), one command
 * after another on one connection (see cv_mongo.c for why not in batches).
 * *matched (may be NULL) gets how many filters matched a document. */
cv_err cv_mongo_update_each(cv_mongo *m, const char *collection, const bson_t **filters,
                            const bson_t **updates, size_t n, int64_t *matched, char *errbuf,
                            size_t errlen);

/* Deletes every document matching filter, in one statement. *deleted (may be
 * NULL) gets how many went. */
cv_err cv_mongo_delete_many(cv_mongo *m, const char *collection, const bson_t *filter,
                            int64_t *deleted, char *errbuf, size_t errlen);

/* Runs createIndexes on `collection` with `indexes`, an array document of
 * index specifications ({"0": {key: {...}, name: "..."}, ...}). Idempotent:
 * an index that exists with the same name and keys is left as it is. */
cv_err cv_mongo_create_indexes(cv_mongo *m, const char *collection, const bson_t *indexes,
                               char *errbuf, size_t errlen);

/* The document the iterator stands on, as a read-only view in *doc that
 * borrows the memory of what is iterated. False when it holds no document. */
bool cv_mongo_iter_doc(const bson_iter_t *it, bson_t *doc);

/* Iterates over the documents of a cv_mongo_find() answer: `it` a bson_iter_t,
 * `doc` a bson_t that views each document in turn (valid while `list` is). */
#define CV_MONGO_EACH_DOC(list, it, doc)                                                           \
    for (bool ok_ = bson_iter_init(&(it), (list)); ok_ && bson_iter_next(&(it));)                  \
        if (cv_mongo_iter_doc(&(it), &(doc)))

/* A string member of doc (borrowed from it), or NULL; key may be a dotted
 * path ("schedule.version"). */
const char *cv_mongo_doc_str(const bson_t *doc, const char *key);

/* An integer member of doc (int32, int64 or double), or def. */
int64_t cv_mongo_doc_int(const bson_t *doc, const char *key, int64_t def);

/* A boolean member of doc, or def. */
bool cv_mongo_doc_bool(const bson_t *doc, const char *key, bool def);

/* Appends key: the time ms as RFC 3339 text in UTC with milliseconds, the
 * form every stored time takes (it sorts in time order). */
void cv_mongo_append_time(bson_t *doc, const char *key, int64_t ms);

/* Appends {field: {"$exists": false}}: a filter for documents without it. */
void cv_mongo_append_absent(bson_t *filter, const char *field);

/* Appends the filter of the one document whose _id is `id`, as long as it also
 * matches `also` (may be NULL or empty): {_id: id, $and: [also]}. Only the _id
 * reaches an index. FerretDB pushes every top-level equality down, and
 * PostgreSQL then ANDs in the index of a field that many documents share (a
 * lease's state): 1.1 ms a look-up instead of 0.03 ms. */
void cv_mongo_filter_id(bson_t *filter, const char *id, const bson_t *also);

/* Converts a document to relaxed extended JSON. Returns a string the caller
 * frees with free(), or NULL on allocation failure. */
char *cv_mongo_to_json(const bson_t *doc);

#endif
