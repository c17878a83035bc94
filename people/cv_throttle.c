/*
 * cv_throttle.c - failed logins slowed down (see cv_throttle.h).
 */
#include "cv_throttle.h"

#include "cv_store.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* The keys of a login: its address's, and its name's from that address. */
typedef struct keys {
    char address[80];
    char pair[160];
} keys;

static void make_keys(const char *name, const char *address, keys *k) {
    snprintf(k->address, sizeof(k->address), "a:%.64s", address);
    snprintf(k->pair, sizeof(k->pair), "n:%.64s@%.64s", name, address);
}

static int64_t allowed(const char *key) {
    return key[0] == 'a' ? CV_THROTTLE_FREE_ADDRESS : CV_THROTTLE_FREE_PAIR;
}

int64_t cv_throttle_delay(int64_t failures, int64_t free, int64_t last_ms, int64_t now_ms) {
    int64_t delay, excess = failures - free + 1;

    if (now_ms - last_ms >= CV_THROTTLE_WINDOW_MS || excess <= 0)
        return 0;
    delay = excess > 20 ? CV_THROTTLE_WINDOW_MS : INT64_C(1000) << (excess - 1);
    if (delay > CV_THROTTLE_WINDOW_MS)
        delay = CV_THROTTLE_WINDOW_MS;
    return last_ms + delay > now_ms ? last_ms + delay - now_ms : 0;
}

/* The stored counts of both keys: an array document of at most two. */
static cv_err find_keys(cv_mongo *m, const keys *k, bson_t **found, char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER, id, in;
    cv_err err;

    BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &id);
    BSON_APPEND_ARRAY_BEGIN(&id, "$in", &in);
    BSON_APPEND_UTF8(&in, "0", k->address);
    BSON_APPEND_UTF8(&in, "1", k->pair);
    bson_append_array_end(&id, &in);
    bson_append_document_end(&filter, &id);
    err = cv_mongo_find(m, CV_COLL_LOGIN_FAILURES, &filter, NULL, 2, found, errbuf, errlen);
    bson_destroy(&filter);
    return err;
}

cv_err cv_throttle_wait(cv_mongo *m, const char *name, const char *address, int64_t now_ms,
                        int64_t *wait_ms, char *errbuf, size_t errlen) {
    bson_t *found = NULL, doc;
    bson_iter_t it;
    keys k;
    cv_err err;

    *wait_ms = 0;
    make_keys(name, address, &k);
    if ((err = find_keys(m, &k, &found, errbuf, errlen)))
        return err;
    CV_MONGO_EACH_DOC(found, it, doc) {
        const char *key = cv_mongo_doc_str(&doc, "_id");
        int64_t wait =
            cv_throttle_delay(cv_mongo_doc_int(&doc, "failures", 0), allowed(key ? key : ""),
                              cv_mongo_doc_int(&doc, "last_ms", 0), now_ms);
        if (wait > *wait_ms)
            *wait_ms = wait;
    }
    bson_destroy(found);
    return CV_OK;
}

/* Counts one failure on key: from 1 again when its last one is out of the window. */
static cv_err count(cv_mongo *m, const char *key, const bson_t *found, int64_t now_ms, char *errbuf,
                    size_t errlen) {
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, inc, doc;
    bool fresh = false;
    bson_iter_t it;
    cv_err err;

    CV_MONGO_EACH_DOC(found, it, doc) {
        const char *id = cv_mongo_doc_str(&doc, "_id");
        if (id && strcmp(id, key) == 0)
            fresh = now_ms - cv_mongo_doc_int(&doc, "last_ms", 0) < CV_THROTTLE_WINDOW_MS;
    }
    BSON_APPEND_UTF8(&filter, "_id", key);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_INT64(&set, "last_ms", now_ms);
    cv_mongo_append_time(&set, "last_at", now_ms);
    if (!fresh)
        BSON_APPEND_INT64(&set, "failures", 1);
    bson_append_document_end(&update, &set);
    if (fresh) {
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$inc", &inc);
        BSON_APPEND_INT64(&inc, "failures", 1);
        bson_append_document_end(&update, &inc);
    }
    err = cv_mongo_update(m, CV_COLL_LOGIN_FAILURES, &filter, &update, true, NULL, errbuf, errlen);
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

cv_err cv_throttle_failed(cv_mongo *m, const char *name, const char *address, int64_t now_ms,
                          char *errbuf, size_t errlen) {
    bson_t *found = NULL;
    keys k;
    cv_err err;

    make_keys(name, address, &k);
    if (!(err = find_keys(m, &k, &found, errbuf, errlen)) &&
        !(err = count(m, k.address, found, now_ms, errbuf, errlen)))
        err = count(m, k.pair, found, now_ms, errbuf, errlen);
    bson_destroy(found);
    return err;
}

cv_err cv_throttle_passed(cv_mongo *m, const char *name, const char *address, char *errbuf,
                          size_t errlen) {
    bson_t filter = BSON_INITIALIZER;
    keys k;
    cv_err err;

    make_keys(name, address, &k);
    BSON_APPEND_UTF8(&filter, "_id", k.pair);
    err = cv_mongo_delete_many(m, CV_COLL_LOGIN_FAILURES, &filter, NULL, errbuf, errlen);
    bson_destroy(&filter);
    return err;
}
