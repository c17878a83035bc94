/*
 * cv_log.c - timestamped log records on stderr. The whole record is formatted
 * into one buffer first so that records from different threads never interleave.
 */
#include "cv_log.h"

#include "cv_json.h"
#include "cv_time.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

static const char *log_service = "convutell";
static cv_log_level log_min_level = CV_LOG_INFO;
static bool log_json;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void cv_log_init(const char *service, cv_log_level min_level, bool json) {
    log_service = service;
    log_min_level = min_level;
    log_json = json;
}

int cv_log_level_parse(const char *name) {
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

size_t cv_log_escape(const char *text, char *out, size_t outlen) {
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), o = 0;

    if (!outlen)
        return 0;
    for (size_t i = 0; i < n;) {
        size_t len = cv_json_utf8_len(s + i, n - i);
        char esc[8] = "";
        /* Control characters (C0, DEL and C1) and bytes that are not UTF-8
         * are written as escapes: one record stays one line, and no byte
         * from a message reaches a terminal as a command. */
        if (len == 0 || s[i] < 0x20 || s[i] == 0x7f || (s[i] == 0xC2 && s[i + 1] < 0xA0)) {
            if (s[i] == '\n')
                snprintf(esc, sizeof(esc), "\\n");
            else if (s[i] == '\r')
                snprintf(esc, sizeof(esc), "\\r");
            else if (s[i] == '\t')
                snprintf(esc, sizeof(esc), "\\t");
            else if (len == 2) /* a C1 control character, both bytes */
                snprintf(esc, sizeof(esc), "\\u%04x", s[i + 1]);
            else
                snprintf(esc, sizeof(esc), "\\x%02x", s[i]);
            len = len ? len : 1;
        }
        size_t add = esc[0] ? strlen(esc) : len;
        if (o + add >= outlen)
            break;
        memcpy(out + o, esc[0] ? esc : (const char *)s + i, add);
        o += add;
        i += len;
    }
    out[o] = '\0';
    return o;
}

/* Appends text as the inside of a JSON string (already escaped for a log:
 * no byte that is not UTF-8 is left, see cv_log_escape()). */
static size_t json_chars(const char *text, char *out, size_t outlen) {
    size_t o = 0;

    for (const char *p = text; *p && o + 7 < outlen; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, outlen - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return o;
}

void cv_log_format(cv_log_level level, const char *text, char *out, size_t outlen) {
    static const char *const json_levels[] = {"debug", "info", "warn", "error"};
    char stamp[CV_TIME_RFC3339_LEN], escaped[4096];
    int n;

    cv_time_format(cv_time_now_ms(), stamp, sizeof(stamp));
    cv_log_escape(text, escaped, sizeof(escaped));
    if (!log_json) {
        snprintf(out, outlen, "%s %s %s: %s", stamp, level_names[level], log_service, escaped);
        return;
    }
    n = snprintf(out, outlen, "{\"time\":\"%s\",\"level\":\"%s\",\"service\":\"%s\",\"message\":\"",
                 stamp, json_levels[level], log_service);
    if (n < 0 || (size_t)n + 3 > outlen)
        return;
    n += (int)json_chars(escaped, out + n, outlen - (size_t)n - 2); /* room for "} */
    snprintf(out + n, outlen - (size_t)n, "\"}");
}

void cv_log(cv_log_level level, const char *fmt, ...) {
    char text[2048], line[8192];
    va_list ap;

    if (level < log_min_level)
        return;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    cv_log_format(level, text, line, sizeof(line));
    fprintf(stderr, "%s\n", line);
}
