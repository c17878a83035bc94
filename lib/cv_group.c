/*
 * cv_group.c - a queue of waiting inserts under one mutex; one thread at a
 * time (the leader) takes what is queued and writes it.
 */
#include "cv_group.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define GROUP_MAX 100 /* documents a write at most */

typedef struct waiter {
    const bson_t *doc;
    struct waiter *next;
    bool done;
    cv_err err;
    char why[256];
} waiter;

struct cv_group {
    cv_mongo *m;
    char collection[64];
    size_t max_batch;
    pthread_mutex_t lock;
    pthread_cond_t written; /* a batch was written */
    waiter *head, *tail;
    bool leading; /* a thread is writing */
};

cv_group *cv_group_new(cv_mongo *m, const char *collection, size_t max_batch) {
    cv_group *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->m = m;
    snprintf(g->collection, sizeof(g->collection), "%s", collection);
    g->max_batch = max_batch == 0 ? 1 : max_batch > GROUP_MAX ? GROUP_MAX : max_batch;
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->written, NULL);
    return g;
}

void cv_group_destroy(cv_group *g) {
    if (!g)
        return;
    pthread_cond_destroy(&g->written);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

/* Writes batch[0..n) and sets each waiter's result; called without the lock. */
static void write_batch(cv_group *g, waiter **batch, size_t n) {
    const bson_t *docs[GROUP_MAX];
    bool dup[GROUP_MAX];
    char why[256] = "";
    cv_err err;

    for (size_t i = 0; i < n; i++)
        docs[i] = batch[i]->doc;
    err = cv_mongo_insert_many(g->m, g->collection, docs, n, dup, why, sizeof(why));
    for (size_t i = 0; i < n; i++) {
        batch[i]->err = err ? err : dup[i] ? CV_ERR_CONFLICT : CV_OK;
        snprintf(batch[i]->why, sizeof(batch[i]->why), "%s",
                 err      ? why
                 : dup[i] ? "a document with this _id exists"
                          : "");
    }
}

cv_err cv_group_insert(cv_group *g, const bson_t *doc, char *errbuf, size_t errlen) {
    waiter me = {.doc = doc};

    pthread_mutex_lock(&g->lock);
    if (g->tail)
        g->tail->next = &me;
    else
        g->head = &me;
    g->tail = &me;
    while (!me.done) {
        if (g->leading) {
            pthread_cond_wait(&g->written, &g->lock);
            continue;
        }
        /* Lead: take what is queued (this thread's own insert among the
         * first max_batch, or in a later round) and write it. */
        waiter *batch[GROUP_MAX];
        size_t n = 0;
        while (g->head && n < g->max_batch) {
            batch[n++] = g->head;
            g->head = g->head->next;
        }
        if (!g->head)
            g->tail = NULL;
        g->leading = true;
        pthread_mutex_unlock(&g->lock);
        write_batch(g, batch, n);
        pthread_mutex_lock(&g->lock);
        for (size_t i = 0; i < n; i++)
            batch[i]->done = true;
        g->leading = false;
        pthread_cond_broadcast(&g->written);
    }
    pthread_mutex_unlock(&g->lock);
    if (me.err)
        return cv_err_set(errbuf, errlen, me.err, "%s", me.why);
    return CV_OK;
}
