/*
 * cv_webhooks.c - webhook deliveries in the collector's process. See
 * cv_webhooks.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_webhooks.h"

#include "cv_cache.h"
#include "cv_hooks.h"
#include "cv_httpc.h"
#include "cv_json.h"
#include "cv_kafka.h"
#include "cv_log.h"
#include "cv_mongo.h"
#include "cv_secret.h"
#include "cv_time.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define POLL_MS 200
#define SEND_IDLE_MS 250 /* the sender looks for due deliveries this often when idle */
#define SEND_BATCH 20    /* deliveries claimed at once */
#define POST_TIMEOUT_MS 10000
#define HOOKS_CACHE_MS 2000 /* a project's webhooks are read again after this long */
#define HOOKS_OF_PROJECT "webhooks.project" /* the cache's namespace for them */

struct cv_webhooks {
    cv_config cfg;
    cv_mongo *mongo;
    cv_kafka_consumer *consumer;
    pthread_t events_thread, send_thread;
    bool events_started, send_started;
    atomic_bool stop;
    char sender[160];
    cv_cache *cache; /* each project's active webhooks (HOOKS_OF_PROJECT) */
    bool warned_no_key;
};

static void nap(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- events into deliveries ------------------------------------------------------ */

/* The project's active webhooks, as an array document the caller frees:
 * read through the cache, so that a stream of events costs one read a
 * project every HOOKS_CACHE_MS. */
static cv_err project_hooks(cv_webhooks *w, const char *project_id, bson_t **out, char *why,
                            size_t len) {
    uint64_t generation = cv_cache_generation(w->cache);
    int64_t read_ms = cv_time_mono_ms();
    bson_t filter = BSON_INITIALIZER, *found = NULL;
    cv_err err;

    if ((*out = cv_cache_get(w->cache, HOOKS_OF_PROJECT, project_id)))
        return CV_OK;
    BSON_APPEND_UTF8(&filter, "project_id", project_id);
    BSON_APPEND_BOOL(&filter, "active", true);
    cv_mongo_append_absent(&filter, "deleted_at");
    err = cv_mongo_find(w->mongo, CV_COLL_WEBHOOKS, &filter, NULL, 100, &found, why, len);
    bson_destroy(&filter);
    if (err)
        return err;
    cv_cache_put(w->cache, HOOKS_OF_PROJECT, project_id, found, read_ms, generation);
    *out = found;
    return CV_OK;
}

/* Whether a webhook asks for events of type. */
static bool wants(const bson_t *hook, const char *type) {
    bson_iter_t it, list;
    if (!bson_iter_init_find(&it, hook, "events") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &list))
        return false;
    while (bson_iter_next(&list))
        if (BSON_ITER_HOLDS_UTF8(&list) && strcmp(bson_iter_utf8(&list, NULL), type) == 0)
            return true;
    return false;
}

/* The body posted for one event: what it is, and the event as published. */
static char *delivery_body(const char *delivery, const char *type, cJSON *event) {
    cJSON *body = cJSON_CreateObject();
    const char *const keys[] = {"project_id", "job_id", "run_id", "time"};
    char *text = NULL;

    if (!body)
        return NULL;
    cJSON_AddStringToObject(body, "delivery", delivery);
    cJSON_AddStringToObject(body, "type", type);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(event, keys[i]);
        if (cJSON_IsString(v))
            cJSON_AddStringToObject(body, keys[i], v->valuestring);
    }
    cJSON_AddItemReferenceToObject(body, "event", event);
    text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    return text;
}

/* Makes the deliveries one event asks for. An error: the store did not
 * take them (the event is read again). */
static cv_err take_event(cv_webhooks *w, const cv_kafka_msg *msg, char *why, size_t len) {
    size_t at;
    cJSON *event = cv_json_parse(msg->payload ? msg->payload : "", msg->len, &at);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(event, "type");
    const cJSON *project = cJSON_GetObjectItemCaseSensitive(event, "project_id");
    const cJSON *event_id = cJSON_GetObjectItemCaseSensitive(event, "event_id");
    const cJSON *run_id = cJSON_GetObjectItemCaseSensitive(event, "run_id");
    const cJSON *attempt = cJSON_GetObjectItemCaseSensitive(event, "attempt");
    bson_t *hooks = NULL;
    bool deliverable = false;
    bson_iter_t it;
    bson_t hook;
    cv_err err = CV_OK;

    for (int i = 0; cJSON_IsString(type) && cv_hooks_event_types[i]; i++)
        deliverable = deliverable || strcmp(cv_hooks_event_types[i], type->valuestring) == 0;
    if (!deliverable || !cJSON_IsString(project) || !project->valuestring[0] ||
        !cJSON_IsString(event_id))
        goto out;
    if ((err = project_hooks(w, project->valuestring, &hooks, why, len)))
        goto out;
    CV_MONGO_EACH_DOC(hooks, it, hook) {
        const char *hook_id = cv_mongo_doc_str(&hook, "_id");
        char delivery[CV_HOOKS_ID_MAX], *body;
        if (err || !hook_id || !wants(&hook, type->valuestring))
            continue;
        cv_hooks_delivery_id(hook_id, event_id->valuestring, type->valuestring,
                             cJSON_IsString(run_id) ? run_id->valuestring : NULL,
                             cJSON_IsNumber(attempt) ? attempt->valueint : 1, delivery);
        if (!(body = delivery_body(delivery, type->valuestring, event))) {
            err = cv_err_set(why, len, CV_ERR_NOMEM, "out of memory");
            break;
        }
        err = cv_hooks_enqueue(w->mongo, delivery, hook_id, project->valuestring,
                               event_id->valuestring, type->valuestring, body, why, len);
        cJSON_free(body);
    }
out:
    bson_destroy(hooks);
    cJSON_Delete(event);
    return err;
}

static void *events_main(void *arg) {
    cv_webhooks *w = arg;
    cv_kafka_msg msg;
    char why[512];

    while (!atomic_load(&w->stop)) {
        if (cv_kafka_consumer_poll(w->consumer, POLL_MS, &msg) != CV_OK)
            continue;
        /* Not stored until its deliveries are: the store away, it waits. */
        while (take_event(w, &msg, why, sizeof(why)) != CV_OK && !atomic_load(&w->stop)) {
            cv_log_warn("webhooks: deliveries of an event not recorded (%s); trying again", why);
            nap(1000);
        }
        if (!atomic_load(&w->stop) &&
            cv_kafka_consumer_store(w->consumer, &msg, why, sizeof(why)) != CV_OK)
            cv_log_warn("webhooks: offset not stored: %s", why);
        cv_kafka_msg_release(&msg);
    }
    return NULL;
}

/* ---- deliveries out ------------------------------------------------------------- */

/* Where a delivery goes, if anywhere. */
typedef enum target { TARGET_OK, TARGET_GONE, TARGET_UNREAD } target;

/* The webhook's URL and unsealed secret (OK); why there is none to send to
 * (GONE: the delivery ends); or the store did not answer (UNREAD: it is
 * tried again once its claim runs out). */
static target endpoint(cv_webhooks *w, const char *hook_id, char url[2100], char **secret,
                       char *why, size_t len) {
    bson_t *hook = NULL;
    const char *u, *sealed;
    target t = TARGET_GONE;
    cv_err err;

    *secret = NULL;
    if ((err = cv_mongo_find_id(w->mongo, CV_COLL_WEBHOOKS, hook_id, &hook, why, len)) ==
        CV_ERR_NOT_FOUND)
        snprintf(why, len, "the webhook was deleted or deactivated");
    if (err)
        return err == CV_ERR_NOT_FOUND ? TARGET_GONE : TARGET_UNREAD;
    u = cv_mongo_doc_str(hook, "url");
    sealed = cv_mongo_doc_str(hook, "secret_sealed");
    if (bson_has_field(hook, "deleted_at") || !cv_mongo_doc_bool(hook, "active", true) || !u)
        snprintf(why, len, "the webhook was deleted or deactivated");
    else if (!w->cfg.has_secret_key)
        snprintf(why, len, "this collector has no CONVUTELL_SECRET_KEY to open the secret");
    else if (!sealed ||
             cv_secret_open_any(
                 w->cfg.secret_key, (const unsigned char(*)[CV_SECRET_KEY_LEN])w->cfg.old_keys,
                 w->cfg.n_old_keys, hook_id, sealed, secret, NULL, why, len) != CV_OK)
        snprintf(why, len, "the webhook's secret cannot be opened with the keys configured");
    else if (snprintf(url, 2100, "%s", u) < 2100)
        t = TARGET_OK;
    bson_destroy(hook);
    return t;
}

/* Posts one claimed delivery and records the attempt. */
static void send_one(cv_webhooks *w, const bson_t *d) {
    const char *id = cv_mongo_doc_str(d, "_id"), *hook_id = cv_mongo_doc_str(d, "webhook_id");
    const char *body = cv_mongo_doc_str(d, "body"), *type = cv_mongo_doc_str(d, "type");
    int attempt = (int)cv_mongo_doc_int(d, "attempt", 0) + 1;
    char url[2100], why[512], sig[CV_HTTPC_SIGNATURE_LEN], *secret = NULL;
    char h_event[96], h_delivery[200], h_time[64], h_sig[128];
    const char *headers[] = {h_event, h_delivery, h_time, h_sig, NULL}, *status = NULL;
    int64_t stamp = cv_time_now_ms() / 1000;
    cv_httpc_result r = {0};
    target t;

    if (!id || !hook_id || !body || !type)
        return;
    t = endpoint(w, hook_id, url, &secret, why, sizeof(why));
    if (t == TARGET_UNREAD) {
        cv_log_warn("webhooks: delivery %s not sent: %s; it is tried again", id, why);
        return;
    }
    if (t == TARGET_GONE) { /* nothing to send to: the delivery ends, saying why */
        snprintf(r.error, sizeof(r.error), "%.250s", why);
        attempt = CV_HOOKS_ATTEMPTS;
        if (strstr(why, "CONVUTELL_SECRET_KEY") && !w->warned_no_key) {
            cv_log_warn("webhooks: %s; deliveries are failed until it is set", why);
            w->warned_no_key = true;
        }
    } else {
        cv_httpc_sign(secret, stamp, body, strlen(body), sig);
        snprintf(h_event, sizeof(h_event), "X-Convutell-Event: %s", type);
        snprintf(h_delivery, sizeof(h_delivery), "X-Convutell-Delivery: %s", id);
        snprintf(h_time, sizeof(h_time), "X-Convutell-Timestamp: %lld", (long long)stamp);
        snprintf(h_sig, sizeof(h_sig), "X-Convutell-Signature: %s", sig);
        cv_httpc_post(url, body, strlen(body), headers, POST_TIMEOUT_MS,
                      w->cfg.webhook_private ? CV_HTTPC_ANY_ADDRESS : CV_HTTPC_PUBLIC_ONLY, &r);
    }
    free(secret);
    if (cv_hooks_record(w->mongo, id, w->sender, attempt, r.status, r.error, r.elapsed_ms,
                        (int64_t)w->cfg.webhook_retry_seconds * 1000, &status, why,
                        sizeof(why)) != CV_OK)
        cv_log_warn("webhooks: attempt %d of %s not recorded: %s", attempt, id, why);
    else if (strcmp(status, "delivered") != 0 && r.status)
        cv_log_info("webhooks: delivery %s attempt %d: HTTP %d (%s)", id, attempt, r.status,
                    status);
    else if (strcmp(status, "delivered") != 0)
        cv_log_info("webhooks: delivery %s attempt %d: %s (%s)", id, attempt, r.error, status);
}

static void *send_main(void *arg) {
    cv_webhooks *w = arg;
    char why[512];

    while (!atomic_load(&w->stop)) {
        bson_t *due = NULL, d;
        bson_iter_t it;
        int n = 0;
        if (cv_hooks_claim_due(w->mongo, w->sender, cv_time_now_ms(), SEND_BATCH, &due, why,
                               sizeof(why)) != CV_OK)
            cv_log_warn("webhooks: due deliveries not read: %s", why);
        CV_MONGO_EACH_DOC(due, it, d) {
            if (atomic_load(&w->stop))
                break; /* claimed and not sent: its lease runs out, then it is sent */
            send_one(w, &d);
            n++;
        }
        bson_destroy(due);
        if (n == 0)
            nap(SEND_IDLE_MS);
    }
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------- */

cv_webhooks *cv_webhooks_new(const cv_config *cfg, char *errbuf, size_t errlen) {
    cv_webhooks *w = calloc(1, sizeof(*w));
    int rc;

    if (!w) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    w->cfg = *cfg;
    snprintf(w->sender, sizeof(w->sender), "%s-webhooks", cfg->worker_id);
    if (cv_httpc_init(errbuf, errlen) != CV_OK)
        goto fail;
    if (!(w->cache = cv_cache_new(4096, HOOKS_CACHE_MS))) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto fail;
    }
    w->mongo = cv_mongo_new(cfg->mongo_uri, cfg->mongo_db, "convutell-webhooks", errbuf, errlen);
    if (!w->mongo)
        goto fail;
    w->consumer = cv_kafka_consumer_new(cfg->kafka_bootstrap, CV_WEBHOOKS_GROUP, CV_TOPIC_EVENTS,
                                        cfg->max_poll_interval_ms, errbuf, errlen);
    if (!w->consumer)
        goto fail;
    if ((rc = pthread_create(&w->events_thread, NULL, events_main, w)) != 0)
        goto thread_fail;
    w->events_started = true;
    if ((rc = pthread_create(&w->send_thread, NULL, send_main, w)) != 0)
        goto thread_fail;
    w->send_started = true;
    return w;
thread_fail:
    cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot start a webhooks thread: %s", strerror(rc));
fail:
    cv_webhooks_destroy(w);
    return NULL;
}

void cv_webhooks_destroy(cv_webhooks *w) {
    if (!w)
        return;
    atomic_store(&w->stop, true);
    if (w->events_started)
        pthread_join(w->events_thread, NULL);
    if (w->send_started)
        pthread_join(w->send_thread, NULL);
    cv_kafka_consumer_destroy(w->consumer);
    cv_mongo_destroy(w->mongo);
    cv_cache_destroy(w->cache);
    free(w);
}
