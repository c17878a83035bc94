/*
 * cv_mongo.c - MongoDB access through a mongoc_client_pool_t. Works against
 * MongoDB and against FerretDB (used by the tests), so it sticks to commands
 * both understand: insert, find, update with upsert, ping.
 */
#include "cv_mongo.h"

#include "cv_time.h"

#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

struct cv_mongo {
    mongoc_client_pool_t *pool;
    mongoc_uri_t *uri;
    char db[64];
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void driver_init(void) {
    mongoc_init();
}

cv_mongo *cv_mongo_new(const char *uri_text, const char *db, const char *app_name, char *errbuf,
                       size_t errlen) {
    bson_error_t berr;
    cv_mongo *m = NULL;
    mongoc_uri_t *uri;

    pthread_once(&init_once, driver_init);
    uri = mongoc_uri_new_with_error(uri_text, &berr);
    if (!uri) {
        cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "bad MongoDB URI: %s", berr.message);
        return NULL;
    }
    if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
        mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
    if (app_name && !mongoc_uri_get_appname(uri))
        mongoc_uri_set_appname(uri, app_name);
    m = calloc(1, sizeof(*m));
    if (!m) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        mongoc_uri_destroy(uri);
        return NULL;
    }
    m->uri = uri;
    snprintf(m->db, sizeof(m->db), "%s", db);
    m->pool = mongoc_client_pool_new(uri);
    if (!m->pool) {
        cv_err_set(errbuf, errlen, CV_ERR_MONGO, "cannot create MongoDB client pool");
        cv_mongo_destroy(m);
        return NULL;
    }
    mongoc_client_pool_set_error_api(m->pool, MONGOC_ERROR_API_VERSION_2);
    return m;
}

void cv_mongo_destroy(cv_mongo *m) {
    if (!m)
        return;
    if (m->pool)
        mongoc_client_pool_destroy(m->pool);
    mongoc_uri_destroy(m->uri);
    free(m);
}

static cv_err translate(const bson_error_t *berr, const char *what, char *errbuf, size_t errlen) {
    if (berr->code == 11000)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFLICT, "%s: duplicate key", what);
    return cv_err_set(errbuf, errlen, CV_ERR_MONGO, "%s: %s", what, berr->message);
}

cv_err cv_mongo_ping(cv_mongo *m, char *errbuf, size_t errlen) {
    mongoc_client_t *client = mongoc_client_pool_pop(m->pool);
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bson_error_t berr;
    cv_err err = CV_OK;

    if (!mongoc_client_command_simple(client, m->db, cmd, NULL, NULL, &berr))
        err = translate(&berr, "ping", errbuf, errlen);
    bson_destroy(cmd);
    mongoc_client_pool_push(m->pool, client);
    return err;
}

cv_err cv_mongo_insert(cv_mongo *m, const char *collection, const bson_t *doc, char *errbuf,
                       size_t errlen) {
    mongoc_client_t *client = mongoc_client_pool_pop(m->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, m->db, collection);
    bson_error_t berr;
    cv_err err = CV_OK;

    if (!mongoc_collection_insert_one(coll, doc, NULL, NULL, &berr))
        err = translate(&berr, collection, errbuf, errlen);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(m->pool, client);
    return err;
}

cv_err cv_mongo_find(cv_mongo *m, const char *collection, const bson_t *filter, const bson_t *sort,
                     int64_t limit, bson_t **out, char *errbuf, size_t errlen) {
    mongoc_client_t *client = mongoc_client_pool_pop(m->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, m->db, collection);
    mongoc_cursor_t *cursor;
    bson_t opts = BSON_INITIALIZER;
    bson_t *docs = bson_new();
    const bson_t *doc;
    bson_error_t berr;
    cv_err err = CV_OK;
    uint32_t i = 0;
    char key[16];
    const char *keyp;

    *out = NULL;
    if (sort)
        BSON_APPEND_DOCUMENT(&opts, "sort", sort);
    if (limit > 0)
        BSON_APPEND_INT64(&opts, "limit", limit);
    cursor = mongoc_collection_find_with_opts(coll, filter, &opts, NULL);
    while (mongoc_cursor_next(cursor, &doc)) {
        bson_uint32_to_string(i++, &keyp, key, sizeof(key));
        bson_append_document(docs, keyp, -1, doc);
    }
    if (mongoc_cursor_error(cursor, &berr)) {
        err = translate(&berr, collection, errbuf, errlen);
        bson_destroy(docs);
    } else {
        *out = docs;
    }
    mongoc_cursor_destroy(cursor);
    bson_destroy(&opts);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(m->pool, client);
    return err;
}

bool cv_mongo_iter_doc(const bson_iter_t *it, bson_t *doc) {
    const uint8_t *data;
    uint32_t len;

    if (!BSON_ITER_HOLDS_DOCUMENT(it))
        return false;
    bson_iter_document(it, &len, &data);
    return bson_init_static(doc, data, len);
}

cv_err cv_mongo_find_id(cv_mongo *m, const char *collection, const char *id, bson_t **out,
                        char *errbuf, size_t errlen) {
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(id));
    bson_t *docs = NULL;
    bson_iter_t it;
    const uint8_t *data;
    uint32_t len;
    cv_err err;

    *out = NULL;
    err = cv_mongo_find(m, collection, filter, NULL, 1, &docs, errbuf, errlen);
    if (err)
        goto out;
    if (!bson_iter_init_find(&it, docs, "0") || !BSON_ITER_HOLDS_DOCUMENT(&it)) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOT_FOUND, "%s %s not found", collection, id);
        goto out;
    }
    bson_iter_document(&it, &len, &data);
    *out = bson_new_from_data(data, len);
    if (!*out)
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
out:
    bson_destroy(docs);
    bson_destroy(filter);
    return err;
}

cv_err cv_mongo_update(cv_mongo *m, const char *collection, const bson_t *filter,
                       const bson_t *update, bool upsert, int64_t *matched, char *errbuf,
                       size_t errlen) {
    mongoc_client_t *client = mongoc_client_pool_pop(m->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, m->db, collection);
    bson_t *opts = BCON_NEW("upsert", BCON_BOOL(upsert));
    bson_t reply;
    bson_error_t berr;
    bson_iter_t it;
    cv_err err = CV_OK;

    if (!mongoc_collection_update_one(coll, filter, update, opts, &reply, &berr)) {
        err = translate(&berr, collection, errbuf, errlen);
    } else if (matched) {
        *matched = 0;
        if (bson_iter_init_find(&it, &reply, "matchedCount"))
            *matched = bson_iter_as_int64(&it);
    }
    bson_destroy(&reply);
    bson_destroy(opts);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(m->pool, client);
    return err;
}

cv_err cv_mongo_find_and_update(cv_mongo *m, const char *collection, const bson_t *filter,
                                const bson_t *update, bson_t **before, char *errbuf,
                                size_t errlen) {
    mongoc_client_t *client = mongoc_client_pool_pop(m->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, m->db, collection);
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
    bson_t reply, value;
    bson_error_t berr;
    bson_iter_t it;
    cv_err err = CV_OK;

    *before = NULL;
    mongoc_find_and_modify_opts_set_update(opts, update);
    if (!mongoc_collection_find_and_modify_with_opts(coll, filter, opts, &reply, &berr))
        err = translate(&berr, collection, errbuf, errlen);
    else if (!bson_iter_init_find(&it, &reply, "value") || !cv_mongo_iter_doc(&it, &value))
        err = cv_err_set(errbuf, errlen, CV_ERR_NOT_FOUND, "no such document in %s", collection);
    else if (!(*before = bson_copy(&value)))
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    bson_destroy(&reply);
    mongoc_find_and_modify_opts_destroy(opts);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(m->pool, client);
    return err;
}

/* One statement per filter (a delete when updates is NULL, else an update of
 * one document with updates[i]), in unordered commands of at most `per`
 * statements; *counted (may be NULL) gets the sum of the reply's `count_key`. */
static cv_err bulk_each(cv_mongo *m, const char *collection, const bson_t **filters,
                        const bson_t **updates, size_t n, size_t per, const char *count_key,
                        int64_t *counted, char *errbuf, size_t errlen) {
    mongoc_client_t *client = mongoc_client_pool_pop(m->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, m->db, collection);
    bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
    bson_error_t berr;
    cv_err err = CV_OK;

    if (counted)
        *counted = 0;
    for (size_t at = 0; !err && at < n; at += per) {
        mongoc_bulk_operation_t *bulk =
            mongoc_collection_create_bulk_operation_with_opts(coll, opts);
        bson_t reply;
        bson_iter_t it;
        for (size_t i = at; i < n && i < at + per; i++) {
            if (updates)
                mongoc_bulk_operation_update_one_with_opts(bulk, filters[i], updates[i], NULL,
                                                           NULL);
            else
                mongoc_bulk_operation_remove_one_with_opts(bulk, filters[i], NULL, NULL);
        }
        if (!mongoc_bulk_operation_execute(bulk, &reply, &berr))
            err = translate(&berr, collection, errbuf, errlen);
        else if (counted && bson_iter_init_find(&it, &reply, count_key))
            *counted += bson_iter_as_int64(&it);
        bson_destroy(&reply);
        mongoc_bulk_operation_destroy(bulk);
    }
    bson_destroy(opts);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(m->pool, client);
    return err;
}

cv_err cv_mongo_delete_each(cv_mongo *m, const char *collection, const bson_t **filters, size_t n,
                            int64_t *deleted, char *errbuf, size_t errlen) {
    return bulk_each(m, collection, filters, NULL, n, 100, "nRemoved", deleted, errbuf, errlen);
}

cv_err cv_mongo_update_each(cv_mongo *m, const char *collection, const bson_t **filters,
                            const bson_t **updates, size_t n, int64_t *matched, char *errbuf,
                            size_t errlen) {
    /* One statement per command: FerretDB 1.24 holds a PostgreSQL connection
     * for each update statement of a command until the command ends, so one
     * of more statements than its pool has connections (40 here) waits for
     * itself and every other client with it, for good. */
    return bulk_each(m, collection, filters, updates, n, 1, "nMatched", matched, errbuf, errlen);
}

cv_err cv_mongo_count(cv_mongo *m, const char *collection, const bson_t *filter, int64_t limit,
                      int64_t *n, char *errbuf, size_t errlen) {
    mongoc_client_t *client = mongoc_client_pool_pop(m->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, m->db, collection);
    bson_t *opts = limit > 0 ? BCON_NEW("limit", BCON_INT64(limit)) : NULL;
    bson_error_t berr;
    cv_err err = CV_OK;

    *n = mongoc_collection_count_documents(coll, filter, opts, NULL, NULL, &berr);
    if (*n < 0)
        err = translate(&berr, collection, errbuf, errlen);
    bson_destroy(opts);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(m->pool, client);
    return err;
}

cv_err cv_mongo_delete_many(cv_mongo *m, const char *collection, const bson_t *filter,
                            int64_t *deleted, char *errbuf, size_t errlen) {
    mongoc_client_t *client = mongoc_client_pool_pop(m->pool);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, m->db, collection);
    bson_error_t berr;
    bson_t reply;
    bson_iter_t it;
    cv_err err = CV_OK;

    if (!mongoc_collection_delete_many(coll, filter, NULL, &reply, &berr))
        err = translate(&berr, collection, errbuf, errlen);
    else if (deleted)
        *deleted = bson_iter_init_find(&it, &reply, "deletedCount") ? bson_iter_as_int64(&it) : 0;
    bson_destroy(&reply);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(m->pool, client);
    return err;
}

cv_err cv_mongo_create_indexes(cv_mongo *m, const char *collection, const bson_t *indexes,
                               char *errbuf, size_t errlen) {
    mongoc_client_t *client = mongoc_client_pool_pop(m->pool);
    bson_t cmd = BSON_INITIALIZER;
    bson_error_t berr;
    cv_err err = CV_OK;

    BSON_APPEND_UTF8(&cmd, "createIndexes", collection);
    BSON_APPEND_ARRAY(&cmd, "indexes", indexes);
    if (!mongoc_client_write_command_with_opts(client, m->db, &cmd, NULL, NULL, &berr))
        err = translate(&berr, collection, errbuf, errlen);
    bson_destroy(&cmd);
    mongoc_client_pool_push(m->pool, client);
    return err;
}

const char *cv_mongo_doc_str(const bson_t *doc, const char *key) {
    bson_iter_t it, found;
    if (doc && bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, key, &found) &&
        BSON_ITER_HOLDS_UTF8(&found))
        return bson_iter_utf8(&found, NULL);
    return NULL;
}

int64_t cv_mongo_doc_int(const bson_t *doc, const char *key, int64_t def) {
    bson_iter_t it;
    if (doc && bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_NUMBER(&it))
        return bson_iter_as_int64(&it);
    return def;
}

bool cv_mongo_doc_bool(const bson_t *doc, const char *key, bool def) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_BOOL(&it))
        return bson_iter_bool(&it);
    return def;
}

void cv_mongo_append_time(bson_t *doc, const char *key, int64_t ms) {
    char text[CV_TIME_RFC3339_LEN];
    cv_time_format(ms, text, sizeof(text));
    BSON_APPEND_UTF8(doc, key, text);
}

void cv_mongo_append_absent(bson_t *filter, const char *field) {
    bson_t cond;
    BSON_APPEND_DOCUMENT_BEGIN(filter, field, &cond);
    BSON_APPEND_BOOL(&cond, "$exists", false);
    bson_append_document_end(filter, &cond);
}

void cv_mongo_filter_id(bson_t *filter, const char *id, const bson_t *also) {
    bson_t and;
    BSON_APPEND_UTF8(filter, "_id", id);
    if (!also || bson_empty(also))
        return;
    BSON_APPEND_ARRAY_BEGIN(filter, "$and", &and);
    BSON_APPEND_DOCUMENT(&and, "0", also);
    bson_append_array_end(filter, &and);
}

char *cv_mongo_to_json(const bson_t *doc) {
    size_t len;
    char *json = bson_as_relaxed_extended_json(doc, &len);
    char *copy;

    if (!json)
        return NULL;
    copy = malloc(len + 1);
    if (copy)
        memcpy(copy, json, len + 1);
    bson_free(json);
    return copy;
}

cv_err cv_mongo_insert_many(cv_mongo *m, const char *collection, const bson_t **docs, size_t n,
                            bool *duplicate, char *errbuf, size_t errlen) {
    mongoc_client_t *client;
    mongoc_collection_t *coll;
    bson_t *opts = BCON_NEW("ordered", BCON_BOOL(false));
    bson_t reply = BSON_INITIALIZER;
    bson_error_t berr;
    bson_iter_t it, errs, one;
    bool other = false;
    cv_err err = CV_OK;

    for (size_t i = 0; duplicate && i < n; i++)
        duplicate[i] = false;
    if (n == 0) {
        bson_destroy(opts);
        return CV_OK;
    }
    client = mongoc_client_pool_pop(m->pool);
    coll = mongoc_client_get_collection(client, m->db, collection);
    bson_destroy(&reply);
    if (!mongoc_collection_insert_many(coll, docs, n, opts, &reply, &berr)) {
        /* Unordered: every document was tried; writeErrors names the failures. */
        if (bson_iter_init_find(&it, &reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
            bson_iter_recurse(&it, &errs)) {
            while (bson_iter_next(&errs)) {
                int64_t index = -1, code = 0;
                if (!BSON_ITER_HOLDS_DOCUMENT(&errs) || !bson_iter_recurse(&errs, &one))
                    continue;
                while (bson_iter_next(&one)) {
                    if (strcmp(bson_iter_key(&one), "index") == 0)
                        index = bson_iter_as_int64(&one);
                    else if (strcmp(bson_iter_key(&one), "code") == 0)
                        code = bson_iter_as_int64(&one);
                }
                if (code == 11000 && index >= 0 && (size_t)index < n) {
                    if (duplicate)
                        duplicate[index] = true;
                } else
                    other = true;
            }
        } else {
            other = true;
        }
        if (other)
            err = translate(&berr, collection, errbuf, errlen);
    }
    bson_destroy(&reply);
    bson_destroy(opts);
    mongoc_collection_destroy(coll);
    mongoc_client_pool_push(m->pool, client);
    return err;
}
