/*
 * cv_time.c - clocks and RFC 3339 formatting. Parsing is strict because times
 * arrive in job messages written by other systems.
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_time.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

int64_t cv_time_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cv_time_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cv_time_mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void cv_time_cond_init(pthread_cond_t *cond) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

struct timespec cv_time_mono_deadline(int64_t ms) {
    int64_t until = cv_time_mono_ms() + ms;
    struct timespec ts = {(time_t)(until / 1000), (long)(until % 1000) * 1000000L};
    return ts;
}

void cv_time_format(int64_t ms, char *buf, size_t len) {
    time_t secs = (time_t)(ms / 1000);
    int millis = (int)(ms % 1000);
    struct tm tm;

    if (millis < 0) {
        millis += 1000;
        secs -= 1;
    }
    gmtime_r(&secs, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
}

/* Reads exactly `width` decimal digits. */
static int read_digits(const char **p, int width, int *out) {
    int value = 0;
    for (int i = 0; i < width; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        value = value * 10 + (c - '0');
    }
    *p += width;
    *out = value;
    return 0;
}

/* Howard Hinnant's civil date algorithms. */
int64_t cv_time_days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void cv_time_civil_from_days(int64_t days, int64_t *y, int *m, int *d) {
    const int64_t z = days + 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const int64_t doe = z - era * 146097;
    const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

int cv_time_weekday(int64_t days) {
    return (int)(((days % 7) + 11) % 7); /* 1970-01-01 was a Thursday */
}

int cv_time_parse(const char *text, int64_t *ms) {
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const char *p = text;
    int year, mon, day, hour, min, sec, millis = 0, off_sign = 0, off_h = 0, off_m = 0;

    if (!text)
        return -1;
    if (read_digits(&p, 4, &year) || *p++ != '-' || read_digits(&p, 2, &mon) || *p++ != '-' ||
        read_digits(&p, 2, &day) || (*p != 'T' && *p != 't'))
        return -1;
    p++;
    if (read_digits(&p, 2, &hour) || *p++ != ':' || read_digits(&p, 2, &min) || *p++ != ':' ||
        read_digits(&p, 2, &sec))
        return -1;
    if (*p == '.') {
        int scale = 100, digits = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            millis += (*p - '0') * scale;
            scale /= 10;
            p++;
            digits++;
        }
        if (digits == 0)
            return -1;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        off_sign = *p == '+' ? 1 : -1;
        p++;
        if (read_digits(&p, 2, &off_h) || *p++ != ':' || read_digits(&p, 2, &off_m))
            return -1;
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    if (mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] || hour > 23 || min > 59 ||
        sec > 60 || off_h > 23 || off_m > 59)
        return -1;
    if (mon == 2 && day == 29 && !(year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
        return -1;
    int64_t secs = cv_time_days_from_civil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec;
    secs -= off_sign * (off_h * 3600 + off_m * 60);
    *ms = secs * 1000 + millis;
    return 0;
}
