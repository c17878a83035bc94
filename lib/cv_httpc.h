/*
 * cv_httpc.h - the project's thin layer over libcurl: one signed JSON POST
 * (a webhook delivery), and the signature a receiver checks.
 *
 * A delivery carries X-Convutell-Timestamp (Unix seconds) and
 * X-Convutell-Signature: "sha256=" and the lower-case hex HMAC-SHA256, keyed
 * with the webhook's secret, of the timestamp, a '.', and the body. A
 * receiver recomputes it, compares in constant time, and refuses old
 * timestamps (a replay).
 *
 * Every function may be called from any thread once cv_httpc_init() ran.
 */
#ifndef CV_HTTPC_H
#define CV_HTTPC_H

#include "cv_err.h"

#include <stddef.h>
#include <stdint.h>

#define CV_HTTPC_SIGNATURE_LEN (7 + 64 + 1) /* "sha256=" and 64 hex digits */

/* Once per process, before any thread posts. */
cv_err cv_httpc_init(char *errbuf, size_t errlen);

/* The signature of body at timestamp with secret into out. */
void cv_httpc_sign(const char *secret, int64_t timestamp, const char *body, size_t len,
                   char out[CV_HTTPC_SIGNATURE_LEN]);

/* What one POST got. */
typedef struct cv_httpc_result {
    int status;         /* the HTTP status, 0 when none came */
    char error[256];    /* why no status came (or "") */
    int64_t elapsed_ms; /* from the start to the answer or the failure */
} cv_httpc_result;

/* POSTs body (JSON) to url with the headers (NULL-ended "Name: value"
 * strings; may be NULL), waiting at most timeout_ms; redirects are not
 * followed and the answer's body is read and dropped. Fills *r. */
void cv_httpc_post(const char *url, const char *body, size_t len, const char *const *headers,
                   int timeout_ms, cv_httpc_result *r);

#endif
