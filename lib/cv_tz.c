/*
 * cv_tz.c - reads a TZif file (version 2 or later: its 64-bit section and the
 * POSIX TZ rule at its end) into a table of transitions and offsets, and maps
 * between instants and local wall-clock times with it.
 */
#include "cv_tz.h"

#include "cv_time.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define ZONEINFO "/usr/share/zoneinfo/"
#define MAX_TZIF (1 << 20)

/* The rule for instants past the table: "STD offset [DST [offset],
 * Mm.w.d[/time],Mm.w.d[/time]]". Offsets are seconds east of UTC. */
typedef struct tz_rule {
    bool valid, has_dst;
    int32_t std_off, dst_off;
    int start_month, start_week, start_day, start_time;
    int end_month, end_week, end_day, end_time;
} tz_rule;

struct cv_tz {
    int64_t *times;   /* transitions, ascending */
    uint8_t *types;   /* type after each transition */
    int32_t *offsets; /* offset of each type */
    int ntimes, ntypes;
    int32_t initial; /* offset before the first transition */
    tz_rule rule;
};

static int64_t be(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    if (n == 4)
        return (int32_t)(uint32_t)v;
    return (int64_t)v;
}

/* A count of a TZif header: four bytes, unsigned. */
static int64_t count_at(const unsigned char *p) {
    return be(p, 4) & INT64_C(0xffffffff);
}

/* "<-03>", "CET": skips a zone abbreviation. */
static const char *skip_name(const char *s) {
    if (*s == '<') {
        const char *end = strchr(s, '>');
        return end ? end + 1 : NULL;
    }
    while (isalpha((unsigned char)*s))
        s++;
    return s;
}

/* "[+-]hh[:mm[:ss]]" as seconds; POSIX offsets count west, so callers negate. */
static const char *read_hms(const char *s, int32_t *out) {
    int sign = 1, part = 0;
    int32_t v[3] = {0, 0, 0};
    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    if (!isdigit((unsigned char)*s))
        return NULL;
    for (; part < 3; part++) {
        for (int digits = 0; isdigit((unsigned char)*s); digits++) {
            if (digits == 3) /* hours go to 167, minutes and seconds to 59 */
                return NULL;
            v[part] = v[part] * 10 + (*s++ - '0');
        }
        if (*s != ':' || part == 2)
            break;
        s++;
    }
    *out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
    return s;
}

/* ",Mm.w.d[/time]" */
static const char *read_date(const char *s, int *month, int *week, int *day, int *time) {
    int32_t t = 7200;
    if (s[0] != ',' || s[1] != 'M')
        return NULL;
    s += 2;
    *month = (int)strtol(s, (char **)&s, 10);
    if (*s++ != '.')
        return NULL;
    *week = (int)strtol(s, (char **)&s, 10);
    if (*s++ != '.')
        return NULL;
    *day = (int)strtol(s, (char **)&s, 10);
    if (*month < 1 || *month > 12 || *week < 1 || *week > 5 || *day < 0 || *day > 6)
        return NULL; /* not a date POSIX allows */
    if (*s == '/' && !(s = read_hms(s + 1, &t)))
        return NULL;
    *time = t;
    return s;
}

static void parse_rule(const char *s, tz_rule *r) {
    int32_t off;
    memset(r, 0, sizeof(*r));
    if (!(s = skip_name(s)) || !(s = read_hms(s, &off)))
        return;
    r->std_off = r->dst_off = -off;
    if (*s && *s != '\n') {
        if (!(s = skip_name(s)))
            return;
        r->dst_off = r->std_off + 3600;
        if ((*s == '+' || *s == '-' || isdigit((unsigned char)*s)) && (s = read_hms(s, &off)))
            r->dst_off = -off;
        if (!s ||
            !(s = read_date(s, &r->start_month, &r->start_week, &r->start_day, &r->start_time)) ||
            !read_date(s, &r->end_month, &r->end_week, &r->end_day, &r->end_time))
            return; /* a rule we do not read (Jn, n): the table's last offset stays */
        r->has_dst = true;
    }
    r->valid = true;
}

cv_tz *cv_tz_parse(const unsigned char *data, size_t len, char *errbuf, size_t errlen) {
    const int64_t size = (int64_t)len;
    int64_t counts[6], at;
    cv_tz *tz = NULL;

    /* Offsets, not pointers: counts come from the data (at most 2^32 - 1
     * each), so every sum below fits in 64 bits and is checked against the
     * length before anything is read. */
    if (len < 44 || memcmp(data, "TZif", 4) != 0 || data[4] < '2')
        goto bad;
    /* Skip the version 1 section (32-bit times) to the version 2 header. */
    for (int i = 0; i < 6; i++)
        counts[i] = count_at(data + 20 + 4 * i);
    at = 44 + counts[3] * 5 + counts[4] * 6 + counts[5] + counts[2] * 8 + counts[1] + counts[0];
    if (at + 44 > size || memcmp(data + at, "TZif", 4) != 0)
        goto bad;
    for (int i = 0; i < 6; i++)
        counts[i] = count_at(data + at + 20 + 4 * i);
    at += 44;
    if (counts[4] < 1 || counts[4] > 255 || at + counts[3] * 9 + counts[4] * 6 > size)
        goto bad;
    if (!(tz = calloc(1, sizeof(*tz))) || !(tz->times = calloc((size_t)counts[3] + 1, 8)) ||
        !(tz->types = calloc((size_t)counts[3] + 1, 1)) ||
        !(tz->offsets = calloc((size_t)counts[4], 4))) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        cv_tz_destroy(tz);
        return NULL;
    }
    tz->ntimes = (int)counts[3];
    tz->ntypes = (int)counts[4];
    for (int i = 0; i < tz->ntimes; i++)
        tz->times[i] = be(data + at + 8 * i, 8);
    at += 8 * (int64_t)tz->ntimes;
    for (int i = 0; i < tz->ntimes; i++)
        tz->types[i] = data[at + i] < tz->ntypes ? data[at + i] : 0;
    at += tz->ntimes;
    for (int i = 0; i < tz->ntypes; i++)
        tz->offsets[i] = (int32_t)be(data + at + 6 * i, 4);
    tz->initial = tz->offsets[0];
    at += 6 * (int64_t)tz->ntypes + counts[5] + counts[2] * 12 + counts[1] + counts[0];
    if (at < size && data[at] == '\n') {
        char footer[128];
        size_t n = 0;
        for (at++; at < size && data[at] != '\n' && n + 1 < sizeof(footer); at++)
            footer[n++] = (char)data[at];
        footer[n] = '\0';
        parse_rule(footer, &tz->rule);
    }
    return tz;
bad:
    cv_err_set(errbuf, errlen, CV_ERR_INVALID, "not a TZif file of version 2 or later");
    return NULL;
}

cv_tz *cv_tz_load(const char *name, char *errbuf, size_t errlen) {
    char path[256];
    unsigned char *data;
    size_t len;
    FILE *f;
    cv_tz *tz;
    bool name_ok = name[0] && name[0] != '/' && strlen(name) < 64 && !strstr(name, "..");

    for (const char *c = name; name_ok && *c; c++)
        name_ok = isalnum((unsigned char)*c) || strchr("_+-/", *c);
    if (!name_ok)
        goto unknown;
    snprintf(path, sizeof(path), ZONEINFO "%s", name);
    if (!(f = fopen(path, "rb")))
        goto unknown;
    if (!(data = malloc(MAX_TZIF))) {
        fclose(f);
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    len = fread(data, 1, MAX_TZIF, f);
    fclose(f);
    tz = cv_tz_parse(data, len, errbuf, errlen);
    free(data);
    if (tz)
        return tz;
unknown:
    cv_err_set(errbuf, errlen, CV_ERR_INVALID, "unknown time zone \"%s\"", name);
    return NULL;
}

void cv_tz_destroy(cv_tz *tz) {
    if (!tz)
        return;
    free(tz->times);
    free(tz->types);
    free(tz->offsets);
    free(tz);
}

/* The civil year of instant t (read as UTC). */
static int64_t year_of(int64_t t) {
    int64_t y;
    int m, d;
    cv_time_civil_from_days((t >= 0 ? t : t - 86399) / 86400, &y, &m, &d);
    return y;
}

/* Local midnight (as if UTC) of day d (0 = Sunday) of week w (5 = last) of month m. */
static int64_t rule_day(int64_t year, int m, int w, int d) {
    int64_t first = cv_time_days_from_civil(year, m, 1);
    int first_weekday = cv_time_weekday(first);
    int64_t day = first + (d - first_weekday + 7) % 7 + 7 * (w - 1);
    int64_t next_month =
        m == 12 ? cv_time_days_from_civil(year + 1, 1, 1) : cv_time_days_from_civil(year, m + 1, 1);
    while (day >= next_month)
        day -= 7;
    return day * 86400;
}

static int32_t rule_offset(const tz_rule *r, int64_t t) {
    int64_t year = year_of(t + r->std_off), start, end;
    if (!r->has_dst)
        return r->std_off;
    start =
        rule_day(year, r->start_month, r->start_week, r->start_day) + r->start_time - r->std_off;
    end = rule_day(year, r->end_month, r->end_week, r->end_day) + r->end_time - r->dst_off;
    if (start < end)
        return t >= start && t < end ? r->dst_off : r->std_off;
    return t >= end && t < start ? r->std_off : r->dst_off; /* southern hemisphere */
}

int32_t cv_tz_offset(const cv_tz *tz, int64_t t) {
    int lo = 0, hi = tz->ntimes;
    if (tz->ntimes == 0 || t < tz->times[0])
        return tz->ntimes == 0 && tz->rule.valid ? rule_offset(&tz->rule, t) : tz->initial;
    if (t >= tz->times[tz->ntimes - 1] && tz->rule.valid)
        return rule_offset(&tz->rule, t);
    while (hi - lo > 1) { /* last transition at or before t */
        int mid = (lo + hi) / 2;
        if (tz->times[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->offsets[tz->types[lo]];
}

int64_t cv_tz_resolve(const cv_tz *tz, int64_t local) {
    int32_t before = cv_tz_offset(tz, local - 86400), after = cv_tz_offset(tz, local + 86400);
    int64_t t1 = local - before, t2 = local - after, lo, hi;
    bool ok1 = cv_tz_offset(tz, t1) == before, ok2 = cv_tz_offset(tz, t2) == after;

    if (ok1 && ok2)
        return t1 < t2 ? t1 : t2; /* the first occurrence */
    if (ok1)
        return t1;
    if (ok2)
        return t2;
    /* In a gap: the first instant whose offset is the later one. */
    lo = t1 < t2 ? t1 : t2;
    hi = t1 < t2 ? t2 : t1;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (cv_tz_offset(tz, mid) == after)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}
