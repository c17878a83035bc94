/*
 * cv_log.h - one-line log records on stderr:
 *   2026-11-28T04:50:00.123Z INFO worker: run 1f... succeeded (10000 rows)
 * Supervisor, systemd and compose all collect stderr, so the services write
 * nowhere else. Any thread may log; each record is one fprintf call. A
 * record's text goes through cv_log_escape(), so text from a message cannot
 * start a line of its own or send control characters to a terminal.
 */
#ifndef CV_LOG_H
#define CV_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum cv_log_level { CV_LOG_DEBUG = 0, CV_LOG_INFO, CV_LOG_WARN, CV_LOG_ERROR } cv_log_level;

/* Sets the service name printed in each record, the lowest level printed and
 * the format: text as above, or (json) one object a line:
 *   {"time":"2026-11-28T04:50:00.123Z","level":"info","service":"worker","message":"..."}
 * Call once at start-up, before threads start. `service` must outlive logging. */
void cv_log_init(const char *service, cv_log_level min_level, bool json);

/* Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int cv_log_level_parse(const char *name);

/* Copies text into out (outlen bytes, NUL-terminated, cut at a whole
 * character), writing newline, carriage return and tab as \n, \r and \t,
 * other C0 controls, DEL and bytes that are not UTF-8 as \xHH, and C1
 * controls (U+0080 to U+009F) as \u00HH. Returns the length written. */
size_t cv_log_escape(const char *text, char *out, size_t outlen);

/* Writes the record as it goes to stderr into out (for the tests). */
void cv_log_format(cv_log_level level, const char *text, char *out, size_t outlen);

void cv_log(cv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cv_log_debug(...) cv_log(CV_LOG_DEBUG, __VA_ARGS__)
#define cv_log_info(...) cv_log(CV_LOG_INFO, __VA_ARGS__)
#define cv_log_warn(...) cv_log(CV_LOG_WARN, __VA_ARGS__)
#define cv_log_error(...) cv_log(CV_LOG_ERROR, __VA_ARGS__)

#endif
