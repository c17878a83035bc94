/*
 * cv_cron.c - cron expressions parsed into bit sets, and the next fire time
 * found by walking days, then hours, then minutes in civil UTC time (the
 * date arithmetic of cv_time.h), so a search
 * never steps minute by minute through years.
 */
#include "cv_cron.h"

#include "cv_time.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

typedef struct field_def {
    const char *name;
    int min, max;
    const char *const *names; /* names for min, min+1, ... or NULL */
} field_def;

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                          "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

static const field_def fields[5] = {
    {"minute", 0, 59, NULL},          {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL},    {"month", 1, 12, month_names},
    {"day-of-week", 0, 7, day_names},
};

/* Reads a number or a name at *s into *value. */
static bool read_value(const field_def *f, const char **s, int *value, char *bad, size_t badlen) {
    const char *start = *s;
    if (isdigit((unsigned char)**s)) {
        long v = 0;
        while (isdigit((unsigned char)**s) && v < 1000)
            v = v * 10 + (*(*s)++ - '0');
        *value = (int)v;
        if (isdigit((unsigned char)**s) || v < f->min || v > f->max) {
            snprintf(bad, badlen, "%.*s: must be between %d and %d", (int)(*s - start + 1), start,
                     f->min, f->max);
            return false;
        }
        return true;
    }
    while (isalpha((unsigned char)**s))
        (*s)++;
    for (int i = 0; f->names && f->names[i]; i++) {
        if ((size_t)(*s - start) == strlen(f->names[i]) &&
            strncasecmp(start, f->names[i], (size_t)(*s - start)) == 0) {
            *value = f->min + i;
            return true;
        }
    }
    if (*s == start)
        snprintf(bad, badlen, "\"%.1s\" is not expected here", start[0] ? start : "?");
    else if (f->names)
        snprintf(bad, badlen, "\"%.*s\" is not a %s name", (int)(*s - start), start,
                 f->names == month_names ? "month" : "day");
    else
        snprintf(bad, badlen, "\"%.*s\" is not a number", (int)(*s - start), start);
    return false;
}

/* Parses one field (text[0, len)) into a bit set. */
static bool parse_field(const field_def *f, const char *text, size_t len, uint64_t *bits, bool *any,
                        char *bad, size_t badlen) {
    char buf[128];
    const char *s;

    if (len >= sizeof(buf)) {
        snprintf(bad, badlen, "too long");
        return false;
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    *bits = 0;
    *any = buf[0] == '*';
    for (s = buf;;) {
        int lo, hi, step = 1;
        if (*s == '*') {
            lo = f->min;
            hi = f->max;
            s++;
        } else {
            if (!read_value(f, &s, &lo, bad, badlen))
                return false;
            hi = lo;
            if (*s == '-') {
                s++;
                if (!read_value(f, &s, &hi, bad, badlen))
                    return false;
                if (hi < lo) {
                    snprintf(bad, badlen, "range %d-%d runs backwards", lo, hi);
                    return false;
                }
            } else if (*s == '/') {
                hi = f->max; /* a/n: from a to the end */
            }
        }
        if (*s == '/') {
            long n = 0;
            s++;
            while (isdigit((unsigned char)*s) && n < 1000)
                n = n * 10 + (*s++ - '0');
            if (n < 1 || n > f->max) {
                snprintf(bad, badlen, "step must be between 1 and %d", f->max);
                return false;
            }
            step = (int)n;
        }
        for (int v = lo; v <= hi; v += step)
            *bits |= UINT64_C(1) << v;
        if (*s == '\0')
            return true;
        if (*s != ',') {
            snprintf(bad, badlen, "\"%c\" is not expected here", *s);
            return false;
        }
        s++;
        *any = false;
    }
}

cv_err cv_cron_parse(const char *expr, cv_cron *out, char *errbuf, size_t errlen) {
    const char *s = expr;
    uint64_t bits[5];
    bool any[5];
    int n = 0;

    memset(out, 0, sizeof(*out));
    while (n < 5) {
        const char *start;
        char bad[160];
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        start = s;
        while (*s && *s != ' ' && *s != '\t')
            s++;
        if (!parse_field(&fields[n], start, (size_t)(s - start), &bits[n], &any[n], bad,
                         sizeof(bad)))
            return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "%s field \"%.*s\": %s",
                              fields[n].name, (int)(s - start), start, bad);
        n++;
    }
    while (*s == ' ' || *s == '\t')
        s++;
    if (n < 5 || *s)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                          "must have 5 fields (minute hour day-of-month month day-of-week), "
                          "not %d",
                          n < 5 ? n : 6);
    out->minutes = bits[0];
    out->hours = (uint32_t)bits[1];
    out->days = (uint32_t)bits[2];
    out->months = (uint16_t)bits[3];
    /* 7 is Sunday too. */
    out->weekdays = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7F);
    out->any_day = any[2];
    out->any_weekday = any[4];
    return CV_OK;
}

static bool day_matches(const cv_cron *c, int64_t day) {
    int64_t y;
    int m, d, weekday = cv_time_weekday(day);
    bool by_day, by_weekday;

    cv_time_civil_from_days(day, &y, &m, &d);
    if (!(c->months & (1u << m)))
        return false;
    by_day = (c->days >> d) & 1u;
    by_weekday = (c->weekdays >> weekday) & 1u;
    if (c->any_day && c->any_weekday)
        return true;
    if (c->any_day)
        return by_weekday;
    if (c->any_weekday)
        return by_day;
    return by_day || by_weekday; /* both restricted: either one */
}

int64_t cv_cron_next_tz(const cv_cron *c, const cv_tz *tz, int64_t after) {
    /* Local candidates from three hours back, so that a repeated hour is seen
     * from its start; a candidate's first occurrence at or before `after`
     * means it already fired. */
    int64_t local = after + cv_tz_offset(tz, after) - 3 * 3600;
    for (int i = 0; i < 100000; i++) {
        int64_t t;
        if ((local = cv_cron_next(c, local)) < 0)
            return -1;
        t = cv_tz_resolve(tz, local); /* a missing time: the instant after the gap */
        if (t > after)
            return t;
    }
    return -1;
}

int64_t cv_cron_next(const cv_cron *c, int64_t after) {
    int64_t t = after - (after % 60 + 60) % 60 + 60; /* the next whole minute */
    int64_t day = (t >= 0 ? t : t - 86399) / 86400;
    int start_minute = (int)((t - day * 86400) / 60);

    for (int64_t limit = day + 8 * 366; day < limit; day++, start_minute = 0) {
        if (!day_matches(c, day))
            continue;
        for (int minute = start_minute; minute < 24 * 60; minute++) {
            int h = minute / 60;
            if (!((c->hours >> h) & 1u)) {
                minute = h * 60 + 59; /* skip the rest of this hour */
                continue;
            }
            if ((c->minutes >> (minute % 60)) & 1u)
                return day * 86400 + minute * 60;
        }
    }
    return -1;
}
