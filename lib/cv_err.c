/*
 * cv_err.c - names for the project's error codes and the helper that fills an
 * error buffer. Kept tiny on purpose: every module links it.
 */
#include "cv_err.h"

#include <stdarg.h>
#include <stdio.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

static const char *const err_names[CV_ERR__COUNT] = {
    [CV_OK] = "ok",
    [CV_ERR_NOMEM] = "out_of_memory",
    [CV_ERR_INVALID] = "invalid",
    [CV_ERR_NOT_FOUND] = "not_found",
    [CV_ERR_CONFLICT] = "conflict",
    [CV_ERR_CONFIG] = "config",
    [CV_ERR_IO] = "io",
    [CV_ERR_KAFKA] = "kafka",
    [CV_ERR_MONGO] = "mongodb",
    [CV_ERR_ODBC] = "odbc",
    [CV_ERR_TIMEOUT] = "timeout",
    [CV_ERR_CANCELLED] = "cancelled",
};

const char *cv_err_str(cv_err err) {
    if ((int)err < 0 || err >= CV_ERR__COUNT || !err_names[err])
        return "unknown";
    return err_names[err];
}

cv_err cv_err_set(char *errbuf, size_t errlen, cv_err err, const char *fmt, ...) {
    if (errbuf && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return err;
}
