/*
 * cv_deadletter.c - copies messages no service can use to the dead-letter
 * topic, whole or as their heads, many at a time.
 */
#include "cv_deadletter.h"

#include "cv_log.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

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

/* What one message goes with: its key as a string, and its headers, whole
 * (the first 5 and the end) or as its head (all 8 and the end). */
typedef struct letter {
    char key[256], reason[1024], partition[16], offset[24], size[24], hash[65], head[64];
    cv_kafka_header headers[9];
} letter;

static void prepare(letter *l, const cv_deadletter *d, const char *by_header, const char *by) {
    const cv_kafka_msg *msg = d->msg;
    size_t klen = msg->key_len < sizeof(l->key) - 1 ? msg->key_len : sizeof(l->key) - 1;

    if (msg->key)
        memcpy(l->key, msg->key, klen);
    l->key[msg->key ? klen : 0] = '\0';
    /* The reason quotes the message: one line, no control characters. */
    cv_log_escape(d->reason, l->reason, sizeof(l->reason));
    snprintf(l->partition, sizeof(l->partition), "%d", (int)msg->partition);
    snprintf(l->offset, sizeof(l->offset), "%lld", (long long)msg->offset);
    snprintf(l->size, sizeof(l->size), "%zu", msg->len);
    l->hash[0] = '\0';
    snprintf(l->head, sizeof(l->head), "first %d bytes", CV_DEADLETTER_HEAD_BYTES);
    l->headers[0] = (cv_kafka_header){"convutell.reason", l->reason};
    l->headers[1] = (cv_kafka_header){"convutell.source.topic", msg->topic};
    l->headers[2] = (cv_kafka_header){"convutell.source.partition", l->partition};
    l->headers[3] = (cv_kafka_header){"convutell.source.offset", l->offset};
    l->headers[4] = (cv_kafka_header){by_header, by};
    l->headers[5] = (cv_kafka_header){"convutell.truncated", l->head};
    l->headers[6] = (cv_kafka_header){"convutell.source.size", l->size};
    l->headers[7] = (cv_kafka_header){"convutell.source.sha256", l->hash};
    l->headers[8] = (cv_kafka_header){NULL, NULL};
}

/* The batch entry of one message, whole or as its head. */
static cv_kafka_out entry(letter *l, cv_deadletter *d) {
    const cv_kafka_msg *msg = d->msg;
    const char *value = msg->payload ? msg->payload : "";
    cv_kafka_out out = {
        .key = msg->key ? l->key : NULL, .value = value, .len = msg->len, .headers = l->headers};

    if (d->whole) {
        l->headers[5] = (cv_kafka_header){NULL, NULL};
        return out;
    }
    l->headers[5] = (cv_kafka_header){"convutell.truncated", l->head};
    if (!l->hash[0])
        cv_deadletter_sha256(value, msg->len, l->hash);
    out.len = msg->len < CV_DEADLETTER_HEAD_BYTES ? msg->len : CV_DEADLETTER_HEAD_BYTES;
    return out;
}

cv_err cv_deadletter_send_many(cv_kafka_producer *p, cv_deadletter *items, size_t n,
                               const char *by_header, const char *by) {
    letter *letters = calloc(n ? n : 1, sizeof(*letters));
    cv_kafka_out *out = calloc(n ? n : 1, sizeof(*out));
    size_t *which = calloc(n ? n : 1, sizeof(*which));
    cv_err first = CV_OK;

    if (!letters || !out || !which) {
        free(letters);
        free(out);
        free(which);
        return CV_ERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        prepare(&letters[i], &items[i], by_header, by);
        items[i].whole = items[i].msg->len <= CV_DEADLETTER_WHOLE_MAX;
        items[i].err = CV_ERR_KAFKA;
        items[i].why[0] = '\0';
    }
    for (int round = 0; round < TRIES; round++) {
        size_t k = 0;
        char why[256];
        for (size_t i = 0; i < n; i++)
            if (items[i].err) {
                which[k] = i;
                out[k++] = entry(&letters[i], &items[i]);
            }
        if (k == 0)
            break;
        if (round > 0)
            nanosleep(&(struct timespec){0, 200000000L << round}, NULL);
        cv_kafka_produce_batch(p, CV_TOPIC_DLQ, out, k, SEND_TIMEOUT_MS, why, sizeof(why));
        for (size_t j = 0; j < k; j++) {
            cv_deadletter *d = &items[which[j]];
            if (!(d->err = out[j].err))
                continue;
            snprintf(d->why, sizeof(d->why), "%s", why);
            if (d->whole) {
                cv_log_warn("%s[%d]@%lld: not taken whole (%s); sending its first %d bytes",
                            d->msg->topic, (int)d->msg->partition, (long long)d->msg->offset, why,
                            CV_DEADLETTER_HEAD_BYTES);
                d->whole = false; /* too large for the producer or the broker, most likely */
            }
        }
    }
    for (size_t i = 0; i < n && !first; i++)
        first = items[i].err;
    free(letters);
    free(out);
    free(which);
    return first;
}

cv_err cv_deadletter_send(cv_kafka_producer *p, const cv_kafka_msg *msg, const char *reason,
                          const char *by_header, const char *by, bool *whole, char *errbuf,
                          size_t errlen) {
    cv_deadletter d = {.msg = msg, .reason = reason};
    cv_err err = cv_deadletter_send_many(p, &d, 1, by_header, by);

    if (whole)
        *whole = d.whole;
    if (err && err != CV_ERR_NOMEM)
        cv_err_set(errbuf, errlen, err, "%s", d.why);
    else if (err)
        cv_err_set(errbuf, errlen, err, "out of memory");
    return err;
}
