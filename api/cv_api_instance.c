/*
 * cv_api_instance.c - GET /api/v1/instance (administrators): the instance at
 * a glance for the web interface's health page. Whether MongoDB and Kafka
 * answer, the workers and schedulers seen in the last minute (their
 * heartbeats: cv_beat.h, the schedulers' own), and each consumer group's lag
 * on its topic, asked of the broker (cv_kafkalag.h).
 */
#include "cv_api_int.h"

#include "cv_kafka.h"
#include "cv_kafkalag.h"
#include "cv_store.h"
#include "cv_time.h"

#include <stdio.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define SEEN_MS 60000    /* a process counts as seen when it beat this recently */
#define LAG_WAIT_MS 2000 /* each question to the broker about a lag */

/* The processes of `collection` whose `ms_key` is within SEEN_MS, as a JSON array of
 * {id, seen_at, ...the fields in keep}. NULL with the reason on a store error. */
static cJSON *seen(cv_api *api, const char *collection, const char *ms_key, const char *const *keep,
                   char *why, size_t len) {
    bson_t *filter = BCON_NEW(ms_key, "{", "$gte", BCON_INT64(cv_time_now_ms() - SEEN_MS), "}");
    bson_t *sort = BCON_NEW("_id", BCON_INT32(1)), *found = NULL, doc;
    cJSON *list = NULL;
    bson_iter_t it;

    if (cv_mongo_find(api->mongo, collection, filter, sort, 1000, &found, why, len) == CV_OK &&
        (list = cJSON_CreateArray())) {
        CV_MONGO_EACH_DOC(found, it, doc) {
            cJSON *all = cv_api_doc_to_json(&doc), *one = cJSON_CreateObject(), *v;
            char at[CV_TIME_RFC3339_LEN];
            cv_time_format(cv_mongo_doc_int(&doc, ms_key, 0), at, sizeof(at));
            if ((v = cJSON_DetachItemFromObjectCaseSensitive(all, "id")))
                cJSON_AddItemToObject(one, "id", v);
            cJSON_AddStringToObject(one, "seen_at", at);
            for (int i = 0; keep[i]; i++)
                if ((v = cJSON_DetachItemFromObjectCaseSensitive(all, keep[i])))
                    cJSON_AddItemToObject(one, keep[i], v);
            cJSON_Delete(all);
            cJSON_AddItemToArray(list, one);
        }
    }
    bson_destroy(found);
    bson_destroy(filter);
    bson_destroy(sort);
    return list;
}

/* Each consumer group's lag on its topic: {group, topic, partitions, lag} or {..., error}. */
static cJSON *lags(cv_api *api) {
    static const char *const groups[][2] = {{CV_GROUP_WORKERS, CV_TOPIC_JOBS},
                                            {CV_GROUP_CONSOLE, CV_TOPIC_QUERIES},
                                            {CV_GROUP_COLLECTOR, CV_TOPIC_EVENTS},
                                            {CV_GROUP_WEBHOOKS, CV_TOPIC_EVENTS},
                                            {CV_GROUP_SCHEDULER, CV_TOPIC_RETRY}};
    cJSON *list = cJSON_CreateArray();

    for (size_t i = 0; list && i < sizeof(groups) / sizeof(groups[0]); i++) {
        cJSON *one = cJSON_CreateObject();
        char why[512];
        int64_t lag;
        int parts;
        cJSON_AddStringToObject(one, "group", groups[i][0]);
        cJSON_AddStringToObject(one, "topic", groups[i][1]);
        if (cv_kafka_group_lag(api->cfg.kafka_bootstrap, groups[i][0], groups[i][1], LAG_WAIT_MS,
                               &lag, &parts, why, sizeof(why)) == CV_OK) {
            cJSON_AddNumberToObject(one, "partitions", parts);
            cJSON_AddNumberToObject(one, "lag", (double)lag);
        } else {
            cJSON_AddStringToObject(one, "error", why);
        }
        cJSON_AddItemToArray(list, one);
    }
    return list;
}

void cv_api_instance(cv_api *api, const char *id, const cv_http_request *req,
                     cv_http_response *res) {
    static const char *const worker_fields[] = {"host", "pid", "slots", "started_at", NULL};
    static const char *const scheduler_fields[] = {NULL};
    char mongo_why[512], kafka_why[512], why[512];
    cv_err mongo = cv_mongo_ping(api->mongo, mongo_why, sizeof(mongo_why));
    cv_err kafka =
        cv_kafka_producer_ping(api->producer, CV_TOPIC_JOBS, 2000, kafka_why, sizeof(kafka_why));
    cJSON *workers = NULL, *schedulers = NULL;

    (void)id;
    (void)req;
    if (!mongo &&
        (!(workers = seen(api, CV_COLL_WORKERS, "seen_ms", worker_fields, why, sizeof(why))) ||
         !(schedulers =
               seen(api, CV_COLL_SCHEDULERS, "beat_ms", scheduler_fields, why, sizeof(why))))) {
        cJSON_Delete(workers);
        cv_api_internal_error(res, CV_ERR_MONGO, why);
        return;
    }
    res->status = 200;
    res->body = cJSON_CreateObject();
    cJSON_AddStringToObject(res->body, "status", mongo || kafka ? "degraded" : "ok");
    cJSON_AddStringToObject(res->body, "mongodb", mongo ? mongo_why : "ok");
    cJSON_AddStringToObject(res->body, "kafka", kafka ? kafka_why : "ok");
    cJSON_AddItemToObject(res->body, "workers", workers ? workers : cJSON_CreateArray());
    cJSON_AddItemToObject(res->body, "schedulers", schedulers ? schedulers : cJSON_CreateArray());
    cJSON_AddItemToObject(res->body, "lag", kafka ? cJSON_CreateArray() : lags(api));
}
