/*
 * cv_log.c - timestamped log records on stderr. The whole record is formatted
 * into one buffer first so that records from different threads never interleave.
 */
#include "cv_log.h"

#include "cv_time.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *log_service = "convutell";
static cv_log_level log_min_level = CV_LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void cv_log_init(const char *service, cv_log_level min_level) {
    log_service = service;
    log_min_level = min_level;
}

int cv_log_level_parse(const char *name) {
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void cv_log(cv_log_level level, const char *fmt, ...) {
    char line[2048];
    char stamp[CV_TIME_RFC3339_LEN];
    size_t used;
    int n;
    va_list ap;

    if (level < log_min_level)
        return;
    cv_time_format(cv_time_now_ms(), stamp, sizeof(stamp));
    n = snprintf(line, sizeof(line), "%s %s %s: ", stamp, level_names[level], log_service);
    used = n > 0 ? (size_t)n : 0;
    if (used < sizeof(line)) {
        va_start(ap, fmt);
        vsnprintf(line + used, sizeof(line) - used, fmt, ap);
        va_end(ap);
    }
    fprintf(stderr, "%s\n", line);
}
