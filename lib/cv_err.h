/*
 * cv_err.h - the one error type of Convutell.
 *
 * Every fallible function returns a cv_err (0 = CV_OK). Wrapper modules translate
 * foreign error types (SQLRETURN + diagnostics, bson_error_t, rd_kafka_resp_err_t,
 * errno) into one of these codes and write the details into a caller-supplied
 * errbuf, so no caller ever sees a foreign error type.
 */
#ifndef CV_ERR_H
#define CV_ERR_H

#include <stddef.h>

typedef enum cv_err {
    CV_OK = 0,
    CV_ERR_NOMEM,     /* allocation failed */
    CV_ERR_INVALID,   /* bad input: a message, a request body, a config value */
    CV_ERR_NOT_FOUND, /* the named object does not exist */
    CV_ERR_CONFLICT,  /* the object exists already or is in the wrong state */
    CV_ERR_CONFIG,    /* configuration missing or malformed */
    CV_ERR_IO,        /* operating system error (see errno text in errbuf) */
    CV_ERR_KAFKA,     /* Kafka client or broker error */
    CV_ERR_MONGO,     /* MongoDB driver or server error */
    CV_ERR_ODBC,      /* ODBC driver or database error */
    CV_ERR_TIMEOUT,   /* an operation did not finish in time */
    CV_ERR_CANCELLED, /* stopped on request (signal or cancel) */
    CV_ERR__COUNT
} cv_err;

/* Returns a static, lower-case name for the code ("invalid", "odbc", ...).
 * Never NULL; unknown values give "unknown". Any thread. */
const char *cv_err_str(cv_err err);

/* Writes a formatted message into errbuf (if errbuf and errlen are non-zero) and
 * returns err, so callers can write `return cv_err_set(buf, len, CV_ERR_X, "...")`. */
cv_err cv_err_set(char *errbuf, size_t errlen, cv_err err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
