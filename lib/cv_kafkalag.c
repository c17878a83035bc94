/*
 * cv_kafkalag.c - a consumer group's lag, asked from outside the group.
 */
#include "cv_kafkalag.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* A consumer client with the group's id, never subscribed: what it asks about the group's
 * offsets goes to the group's coordinator without joining it. */
static rd_kafka_t *client_new(const char *bootstrap, const char *group, char *errbuf,
                              size_t errlen) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char why[256];
    rd_kafka_t *rk;

    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, why, sizeof(why)) ||
        rd_kafka_conf_set(conf, "group.id", group, why, sizeof(why)) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", why, sizeof(why)) ||
        rd_kafka_conf_set(conf, "log_level", "3", why, sizeof(why))) {
        rd_kafka_conf_destroy(conf);
        cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "kafka client for %s: %s", group, why);
        return NULL;
    }
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why)))) {
        rd_kafka_conf_destroy(conf);
        cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "kafka client for %s: %s", group, why);
    }
    return rk; /* rd_kafka_new() owns conf from here */
}

cv_err cv_kafka_group_lag(const char *bootstrap, const char *group, const char *topic,
                          int timeout_ms, int64_t *lag, int *partitions, char *errbuf,
                          size_t errlen) {
    rd_kafka_t *rk = client_new(bootstrap, group, errbuf, errlen);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_topic_t *t = NULL;
    rd_kafka_resp_err_t rc;
    cv_err err = CV_OK;

    *lag = 0;
    *partitions = 0;
    if (!rk)
        return CV_ERR_KAFKA;
    if (!(t = rd_kafka_topic_new(rk, topic, NULL))) {
        err = cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "cannot name topic %s", topic);
        goto out;
    }
    rc = rd_kafka_metadata(rk, 0, t, &md, timeout_ms);
    if (rc || md->topic_cnt != 1 || md->topics[0].err) {
        err = cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "topic %s: %s", topic,
                         rd_kafka_err2str(rc              ? rc
                                          : md->topic_cnt ? md->topics[0].err
                                                          : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
        goto out;
    }
    parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id);
    if (parts->cnt && (rc = rd_kafka_committed(rk, parts, timeout_ms))) {
        err = cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "offsets of %s: %s", group,
                         rd_kafka_err2str(rc));
        goto out;
    }
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *p = &parts->elems[i];
        int64_t low, high, at;
        if ((rc = rd_kafka_query_watermark_offsets(rk, topic, p->partition, &low, &high,
                                                   timeout_ms))) {
            err = cv_err_set(errbuf, errlen, CV_ERR_KAFKA, "%s[%d]: %s", topic, (int)p->partition,
                             rd_kafka_err2str(rc));
            goto out;
        }
        at = p->offset >= 0 ? p->offset : low;
        *lag += high > at ? high - at : 0;
    }
    *partitions = parts->cnt;
out:
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (md)
        rd_kafka_metadata_destroy(md);
    if (t)
        rd_kafka_topic_destroy(t);
    rd_kafka_destroy(rk);
    return err;
}
