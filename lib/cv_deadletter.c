/*
 * cv_deadletter.c - copies a message no service can use to the dead-letter
 * topic, whole or as its head.
 */
#include "cv_deadletter.h"

#include "cv_log.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define TRIES 3
#define SEND_TIMEOUT_MS 5000

void cv_deadletter_sha256(const void *data, size_t len, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    out[0] = '\0';
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return;
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* One send, whole or as the head. */
static cv_err send_once(cv_kafka_producer *p, const cv_kafka_msg *msg, const char *key,
                        const cv_kafka_header *common, bool whole, char *errbuf, size_t errlen) {
    cv_kafka_header headers[12];
    char size[24], hash[65], head[64];
    size_t n = 0, len = msg->len;
    const char *value = msg->payload ? msg->payload : "";

    for (; common[n].name; n++)
        headers[n] = common[n];
    if (!whole) {
        snprintf(size, sizeof(size), "%zu", msg->len);
        cv_deadletter_sha256(value, msg->len, hash);
        snprintf(head, sizeof(head), "first %d bytes", CV_DEADLETTER_HEAD_BYTES);
        headers[n++] = (cv_kafka_header){"convutell.truncated", head};
        headers[n++] = (cv_kafka_header){"convutell.source.size", size};
        headers[n++] = (cv_kafka_header){"convutell.source.sha256", hash};
        len = len < CV_DEADLETTER_HEAD_BYTES ? len : CV_DEADLETTER_HEAD_BYTES;
    }
    headers[n] = (cv_kafka_header){NULL, NULL};
    return cv_kafka_produce(p, CV_TOPIC_DLQ, key, value, len, headers, SEND_TIMEOUT_MS, errbuf,
                            errlen);
}

cv_err cv_deadletter_send(cv_kafka_producer *p, const cv_kafka_msg *msg, const char *reason,
                          const char *by_header, const char *by, bool *whole, char *errbuf,
                          size_t errlen) {
    char partition[16], offset[24], key[256], quoted[1024];
    size_t klen = msg->key_len < sizeof(key) - 1 ? msg->key_len : sizeof(key) - 1;
    bool as_whole = msg->len <= CV_DEADLETTER_WHOLE_MAX;
    cv_err err = CV_ERR_KAFKA;

    snprintf(partition, sizeof(partition), "%d", (int)msg->partition);
    snprintf(offset, sizeof(offset), "%lld", (long long)msg->offset);
    if (msg->key)
        memcpy(key, msg->key, klen);
    key[msg->key ? klen : 0] = '\0';
    /* The reason quotes the message: one line, no control characters. */
    cv_log_escape(reason, quoted, sizeof(quoted));
    const cv_kafka_header headers[] = {{"convutell.reason", quoted},
                                       {"convutell.source.topic", msg->topic},
                                       {"convutell.source.partition", partition},
                                       {"convutell.source.offset", offset},
                                       {by_header, by},
                                       {NULL, NULL}};
    for (int i = 0; i < TRIES && err; i++) {
        if (i > 0)
            nanosleep(&(struct timespec){0, 200000000L << i}, NULL);
        err = send_once(p, msg, msg->key ? key : NULL, headers, as_whole, errbuf, errlen);
        if (err && as_whole) {
            cv_log_warn("%s[%s]@%s: %s; sending its first %d bytes instead", msg->topic, partition,
                        offset, errbuf, CV_DEADLETTER_HEAD_BYTES);
            as_whole = false; /* too large for the producer or the broker, most likely */
        }
    }
    if (whole)
        *whole = as_whole;
    return err;
}
