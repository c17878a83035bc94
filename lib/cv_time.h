/*
 * cv_time.h - wall-clock time as milliseconds since the Unix epoch, and its
 * RFC 3339 text form in UTC with milliseconds ("2026-11-28T04:50:00.123Z"),
 * the form used in every message, event and API answer.
 */
#ifndef CV_TIME_H
#define CV_TIME_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define CV_TIME_RFC3339_LEN 32 /* room for the text form plus NUL */

/* Current wall-clock time in ms since the epoch. Any thread. */
int64_t cv_time_now_ms(void);

/* Monotonic clock in ms, for durations and timeouts. Any thread. */
int64_t cv_time_mono_ms(void);

/* The same clock in microseconds, for short durations. Any thread. */
int64_t cv_time_mono_us(void);

/* Initialises a condition variable whose timed waits count on the monotonic
 * clock, and the deadline cv_time_mono_ms() + ms in the form such a wait
 * takes (pthread_cond_timedwait() on it waits until then). */
void cv_time_cond_init(pthread_cond_t *cond);
struct timespec cv_time_mono_deadline(int64_t ms);

/* Writes the RFC 3339 UTC form of `ms` into buf (needs CV_TIME_RFC3339_LEN). */
void cv_time_format(int64_t ms, char *buf, size_t len);

/* Parses an RFC 3339 time ("...Z" or "+hh:mm" offset, optional fraction).
 * Returns 0 and sets *ms on success, -1 if the text is not such a time. */
int cv_time_parse(const char *text, int64_t *ms);

/* Days since 1970-01-01 of a civil date (proleptic Gregorian), and back. */
int64_t cv_time_days_from_civil(int64_t y, int m, int d);
void cv_time_civil_from_days(int64_t days, int64_t *y, int *m, int *d);

/* Day of the week (0 = Sunday) of a day counted from 1970-01-01. */
int cv_time_weekday(int64_t days);

#endif
