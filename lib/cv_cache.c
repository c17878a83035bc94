/*
 * cv_cache.c - documents by (collection, id) in a hash table of chained
 * entries under one mutex; each entry remembers when it was read.
 */
#include "cv_cache.h"

#include "cv_time.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define BUCKETS 256

typedef struct entry {
    struct entry *next;
    char *key; /* "collection/id" */
    bson_t *doc;
    int64_t read_ms; /* monotonic */
} entry;

struct cv_cache {
    pthread_mutex_t lock;
    entry *buckets[BUCKETS];
    size_t count, capacity;
    int64_t ttl_ms;
    uint64_t generation; /* drops so far */
    uint64_t hits, misses;
};

cv_cache *cv_cache_new(size_t capacity, int64_t ttl_ms) {
    cv_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    pthread_mutex_init(&c->lock, NULL);
    c->capacity = capacity ? capacity : 1;
    c->ttl_ms = ttl_ms > 0 ? ttl_ms : 0;
    return c;
}

static void entry_free(entry *e) {
    free(e->key);
    bson_destroy(e->doc);
    free(e);
}

/* Empties the table; lock held. */
static void clear(cv_cache *c) {
    for (size_t i = 0; i < BUCKETS; i++) {
        entry *e = c->buckets[i];
        while (e) {
            entry *next = e->next;
            entry_free(e);
            e = next;
        }
        c->buckets[i] = NULL;
    }
    c->count = 0;
}

void cv_cache_destroy(cv_cache *c) {
    if (!c)
        return;
    clear(c);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* FNV-1a of the key. */
static size_t bucket_of(const char *key) {
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % BUCKETS;
}

/* The entry of key, lock held; *link points at the pointer to it. */
static entry *lookup(cv_cache *c, const char *key, entry ***link) {
    entry **at = &c->buckets[bucket_of(key)];
    for (; *at; at = &(*at)->next)
        if (strcmp((*at)->key, key) == 0)
            break;
    *link = at;
    return *at;
}

static void unlink_entry(cv_cache *c, entry **link) {
    entry *e = *link;
    *link = e->next;
    entry_free(e);
    c->count--;
}

static void make_key(char *key, size_t len, const char *collection, const char *id) {
    snprintf(key, len, "%s/%s", collection, id);
}

bson_t *cv_cache_get(cv_cache *c, const char *collection, const char *id) {
    bson_t *copy = NULL;
    entry **link, *e;
    char key[256];

    make_key(key, sizeof(key), collection, id);
    pthread_mutex_lock(&c->lock);
    e = lookup(c, key, &link);
    if (e && cv_time_mono_ms() - e->read_ms < c->ttl_ms)
        copy = bson_copy(e->doc);
    else if (e)
        unlink_entry(c, link);
    if (copy)
        c->hits++;
    else
        c->misses++;
    pthread_mutex_unlock(&c->lock);
    return copy;
}

uint64_t cv_cache_generation(cv_cache *c) {
    uint64_t g;
    pthread_mutex_lock(&c->lock);
    g = c->generation;
    pthread_mutex_unlock(&c->lock);
    return g;
}

void cv_cache_put(cv_cache *c, const char *collection, const char *id, const bson_t *doc,
                  int64_t read_ms, uint64_t generation) {
    entry **link, *e;
    char key[256];

    make_key(key, sizeof(key), collection, id);
    pthread_mutex_lock(&c->lock);
    if (c->ttl_ms == 0 || c->generation != generation)
        goto out; /* off, or something was dropped while this was read */
    if ((e = lookup(c, key, &link)))
        unlink_entry(c, link);
    if (c->count >= c->capacity)
        clear(c);
    e = calloc(1, sizeof(*e));
    if (e && (e->key = strdup(key)) && (e->doc = bson_copy(doc))) {
        size_t b = bucket_of(key);
        e->read_ms = read_ms;
        e->next = c->buckets[b];
        c->buckets[b] = e;
        c->count++;
    } else if (e) {
        free(e->key);
        free(e);
    }
out:
    pthread_mutex_unlock(&c->lock);
}

cv_err cv_cache_find_id(cv_cache *c, cv_mongo *m, const char *collection, const char *id,
                        bson_t **out, char *errbuf, size_t errlen) {
    int64_t read_ms;
    uint64_t generation;
    cv_err err;

    *out = NULL;
    if (!c || c->ttl_ms == 0)
        return cv_mongo_find_id(m, collection, id, out, errbuf, errlen);
    if ((*out = cv_cache_get(c, collection, id)))
        return CV_OK;
    /* Timed from before the read: a change made meanwhile is at most ttl old. */
    read_ms = cv_time_mono_ms();
    generation = cv_cache_generation(c);
    err = cv_mongo_find_id(m, collection, id, out, errbuf, errlen);
    if (!err)
        cv_cache_put(c, collection, id, *out, read_ms, generation);
    return err;
}

void cv_cache_drop(cv_cache *c, const char *collection, const char *id) {
    char key[256];
    entry **link;

    if (!c)
        return;
    make_key(key, sizeof(key), collection, id);
    pthread_mutex_lock(&c->lock);
    c->generation++;
    if (lookup(c, key, &link))
        unlink_entry(c, link);
    pthread_mutex_unlock(&c->lock);
}

void cv_cache_stats(cv_cache *c, uint64_t *hits, uint64_t *misses) {
    pthread_mutex_lock(&c->lock);
    *hits = c->hits;
    *misses = c->misses;
    pthread_mutex_unlock(&c->lock);
}
