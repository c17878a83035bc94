/*
 * cv_beat.c - a process's heartbeat in the store, on a thread of its own.
 */
#include "cv_beat.h"

#include "cv_log.h"
#include "cv_time.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

struct cv_beat {
    cv_mongo *m;
    char collection[64];
    char id[128];
    char host[128];
    int slots;
    int64_t started_ms;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
};

/* One beat: the process's document written, and those of processes gone a day removed. */
static void beat_once(cv_beat *b) {
    bson_t *filter = BCON_NEW("_id", BCON_UTF8(b->id));
    bson_t update = BSON_INITIALIZER, set, *old = NULL;
    int64_t now = cv_time_now_ms();
    char why[512];

    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, "host", b->host);
    BSON_APPEND_INT64(&set, "pid", (int64_t)getpid());
    BSON_APPEND_INT32(&set, "slots", b->slots);
    cv_mongo_append_time(&set, "started_at", b->started_ms);
    cv_mongo_append_time(&set, "seen_at", now);
    BSON_APPEND_INT64(&set, "seen_ms", now);
    bson_append_document_end(&update, &set);
    if (cv_mongo_update(b->m, b->collection, filter, &update, true, NULL, why, sizeof(why)))
        cv_log_warn("heartbeat of %s not written: %s", b->id, why);
    old = BCON_NEW("seen_ms", "{", "$lt", BCON_INT64(now - CV_BEAT_KEEP_MS), "}");
    if (cv_mongo_delete_many(b->m, b->collection, old, NULL, why, sizeof(why)))
        cv_log_debug("old heartbeats not removed: %s", why);
    bson_destroy(old);
    bson_destroy(filter);
    bson_destroy(&update);
}

static void *beat_main(void *arg) {
    cv_beat *b = arg;
    struct timespec until;

    pthread_mutex_lock(&b->lock);
    while (!b->stop) {
        pthread_mutex_unlock(&b->lock);
        beat_once(b);
        pthread_mutex_lock(&b->lock);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += CV_BEAT_MS / 1000;
        while (!b->stop && pthread_cond_timedwait(&b->wake, &b->lock, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

cv_beat *cv_beat_start(cv_mongo *m, const char *collection, const char *id, int slots, char *errbuf,
                       size_t errlen) {
    cv_beat *b = calloc(1, sizeof(*b));
    int rc;

    if (!b) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    b->m = m;
    snprintf(b->collection, sizeof(b->collection), "%s", collection);
    snprintf(b->id, sizeof(b->id), "%s", id);
    if (gethostname(b->host, sizeof(b->host) - 1) != 0)
        snprintf(b->host, sizeof(b->host), "unknown");
    b->slots = slots;
    b->started_ms = cv_time_now_ms();
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->wake, NULL);
    if ((rc = pthread_create(&b->thread, NULL, beat_main, b)) != 0) {
        cv_err_set(errbuf, errlen, CV_ERR_IO, "heartbeat thread: %s", strerror(rc));
        pthread_mutex_destroy(&b->lock);
        pthread_cond_destroy(&b->wake);
        free(b);
        return NULL;
    }
    return b;
}

void cv_beat_stop(cv_beat *b) {
    bson_t *filter;
    char why[512];

    if (!b)
        return;
    pthread_mutex_lock(&b->lock);
    b->stop = true;
    pthread_cond_signal(&b->wake);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->thread, NULL);
    filter = BCON_NEW("_id", BCON_UTF8(b->id));
    if (cv_mongo_delete_many(b->m, b->collection, filter, NULL, why, sizeof(why)))
        cv_log_warn("heartbeat of %s not removed: %s", b->id, why);
    bson_destroy(filter);
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->wake);
    free(b);
}
