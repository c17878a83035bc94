/*
 * cv_replies.c - the API's ear on convutell.replies. See cv_replies.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_replies.h"

#include "cv_id.h"
#include "cv_json.h"
#include "cv_kafka.h"
#include "cv_log.h"
#include "cv_time.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define POLL_MS 200

struct cv_replies_waiter {
    char run_id[CV_ID_LEN];
    bool came;
    cv_replies_waiter *next;
};

struct cv_replies {
    cv_kafka_consumer *listener;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock;
    pthread_cond_t came; /* a reply someone waits for came (monotonic clock) */
    cv_replies_waiter *waiting;
    char name[128];
};

/* Wakes the waiter of the run a reply names, if any. */
static void deliver(cv_replies *r, const cv_kafka_msg *msg) {
    cJSON *root;
    const char *run_id = NULL;
    size_t at;
    cv_verr verr;

    if (!msg->key || msg->key_len != strlen(r->name) || memcmp(msg->key, r->name, msg->key_len))
        return; /* another API's */
    if (!(root = cv_json_parse(msg->payload ? msg->payload : "", msg->len, &at)))
        return;
    if (cv_json_get_str(root, NULL, "query_run", true, CV_ID_LEN - 1, &run_id, &verr) == CV_OK) {
        pthread_mutex_lock(&r->lock);
        for (cv_replies_waiter *w = r->waiting; w; w = w->next)
            if (strcmp(w->run_id, run_id) == 0)
                w->came = true;
        pthread_cond_broadcast(&r->came);
        pthread_mutex_unlock(&r->lock);
    }
    cJSON_Delete(root);
}

static void *listen_main(void *arg) {
    cv_replies *r = arg;
    cv_kafka_msg msg;

    while (!atomic_load(&r->stop)) {
        if (cv_kafka_consumer_poll(r->listener, POLL_MS, &msg) != CV_OK)
            continue;
        deliver(r, &msg);
        cv_kafka_msg_release(&msg);
    }
    return NULL;
}

cv_replies *cv_replies_new(const char *bootstrap, char *errbuf, size_t errlen) {
    cv_replies *r = calloc(1, sizeof(*r));
    char host[64] = "api", id[CV_ID_LEN];
    int rc;

    if (!r) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    gethostname(host, sizeof(host) - 1);
    if (cv_id_new(id, sizeof(id)) != 0)
        snprintf(id, sizeof(id), "%lld", (long long)cv_time_now_ms());
    snprintf(r->name, sizeof(r->name), "api-%.60s-%ld-%.8s", host, (long)getpid(), id);
    pthread_mutex_init(&r->lock, NULL);
    cv_time_cond_init(&r->came);
    if (!(r->listener = cv_kafka_listener_new(bootstrap, CV_TOPIC_REPLIES, 5000, errbuf, errlen)))
        goto fail;
    if ((rc = pthread_create(&r->thread, NULL, listen_main, r)) != 0) {
        cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot start the replies' thread: %s", strerror(rc));
        goto fail;
    }
    return r;
fail:
    cv_kafka_consumer_destroy(r->listener);
    pthread_cond_destroy(&r->came);
    pthread_mutex_destroy(&r->lock);
    free(r);
    return NULL;
}

void cv_replies_destroy(cv_replies *r) {
    if (!r)
        return;
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    cv_kafka_consumer_destroy(r->listener);
    pthread_cond_destroy(&r->came);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

const char *cv_replies_name(const cv_replies *r) {
    return r->name;
}

cv_replies_waiter *cv_replies_expect(cv_replies *r, const char *run_id) {
    cv_replies_waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    snprintf(w->run_id, sizeof(w->run_id), "%s", run_id);
    pthread_mutex_lock(&r->lock);
    w->next = r->waiting;
    r->waiting = w;
    pthread_mutex_unlock(&r->lock);
    return w;
}

bool cv_replies_wait(cv_replies *r, cv_replies_waiter *w, int64_t timeout_ms) {
    struct timespec until = cv_time_mono_deadline(timeout_ms);
    bool came;

    pthread_mutex_lock(&r->lock);
    while (!w->came && pthread_cond_timedwait(&r->came, &r->lock, &until) == 0)
        ;
    came = w->came;
    pthread_mutex_unlock(&r->lock);
    return came;
}

void cv_replies_forget(cv_replies *r, cv_replies_waiter *w) {
    if (!w)
        return;
    pthread_mutex_lock(&r->lock);
    for (cv_replies_waiter **p = &r->waiting; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    pthread_mutex_unlock(&r->lock);
    free(w);
}
