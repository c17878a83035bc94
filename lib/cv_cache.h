/*
 * cv_cache.h - a small cache of stored documents by id, for look-ups a
 * service makes on every job (the API's job and project on each POST of a
 * run, the worker's connections on each job).
 *
 * An entry is served for at most ttl_ms after it was read from the store; a
 * process drops its own entry when it changes the document (cv_cache_drop()),
 * so what another process changed (another API replica, a hand edit) is seen
 * within ttl_ms. A ttl_ms of 0 turns the cache off: every look-up reads the
 * store. At most `capacity` entries are kept; a full cache is emptied and
 * starts again, which keeps it simple and bounded.
 *
 * Every function may be called from any thread.
 */
#ifndef CV_CACHE_H
#define CV_CACHE_H

#include "cv_err.h"
#include "cv_mongo.h"

#include <stddef.h>
#include <stdint.h>

typedef struct cv_cache cv_cache;

/* NULL on NOMEM. Free with cv_cache_destroy(). */
cv_cache *cv_cache_new(size_t capacity, int64_t ttl_ms);

/* Frees every entry. Accepts NULL. */
void cv_cache_destroy(cv_cache *c);

/* The document `id` of `collection`: from the cache while its entry is fresh,
 * else read with cv_mongo_find_id() and kept. On CV_OK *out is a new copy the
 * caller frees with bson_destroy(). Errors as cv_mongo_find_id() (a missing
 * document is not cached). */
cv_err cv_cache_find_id(cv_cache *c, cv_mongo *m, const char *collection, const char *id,
                        bson_t **out, char *errbuf, size_t errlen);

/* The table underneath, for callers with their own reads (and the tests):
 * a copy of the fresh entry of `id` or NULL (a stale one is dropped), and
 * keeping a copy of doc as read at read_ms (cv_time_mono_ms()) unless an
 * entry of the cache was dropped since `generation` (cv_cache_generation()
 * before that read): a read that raced a change is not kept. */
bson_t *cv_cache_get(cv_cache *c, const char *collection, const char *id);
uint64_t cv_cache_generation(cv_cache *c);
void cv_cache_put(cv_cache *c, const char *collection, const char *id, const bson_t *doc,
                  int64_t read_ms, uint64_t generation);

/* Forgets the entry of `id` in `collection`, if any: call after changing it. */
void cv_cache_drop(cv_cache *c, const char *collection, const char *id);

/* Counts of look-ups served from the cache and read from the store. */
void cv_cache_stats(cv_cache *c, uint64_t *hits, uint64_t *misses);

#endif
