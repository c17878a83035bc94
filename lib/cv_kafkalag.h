/*
 * cv_kafkalag.h - how far a consumer group is behind on its topic, asked of
 * the broker from outside the group (the API's instance page): each
 * partition's end less the group's committed offset (its start when the
 * group has none), summed, as `kafka-consumer-groups --describe` counts it.
 *
 * Each call makes a client of its own for the length of the call (a consumer
 * with the group's id that never joins it): for pages an administrator opens,
 * not for hot paths. Any thread.
 */
#ifndef CV_KAFKALAG_H
#define CV_KAFKALAG_H

#include "cv_err.h"

#include <stdint.h>

/* The lag of `group` on `topic` into *lag, with its partition count into
 * *partitions. Each question to the broker waits up to timeout_ms.
 * CV_ERR_KAFKA with the reason when the broker does not answer or does not
 * know the topic. */
cv_err cv_kafka_group_lag(const char *bootstrap, const char *group, const char *topic,
                          int timeout_ms, int64_t *lag, int *partitions, char *errbuf,
                          size_t errlen);

#endif
