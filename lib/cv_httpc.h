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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

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

/* Whether a POST may reach addresses of the host itself or of private
 * networks: no, unless the operator said so (the receivers of a test, or of
 * an internal deployment). */
typedef enum cv_httpc_reach { CV_HTTPC_PUBLIC_ONLY, CV_HTTPC_ANY_ADDRESS } cv_httpc_reach;

/* Whether addr (IPv4 or IPv6, an IPv4-mapped one as its IPv4) is not a
 * public unicast address: unspecified, loopback, private (10/8, 172.16/12,
 * 192.168/16, fc00::/7), shared (100.64/10), link-local (169.254/16,
 * fe80::/10, where cloud metadata services answer), multicast, reserved or
 * broadcast. */
bool cv_httpc_address_private(const struct sockaddr *addr);

/* POSTs body (JSON) to url with the headers (NULL-ended "Name: value"
 * strings; may be NULL), waiting at most timeout_ms; redirects are not
 * followed and the answer's body is read and dropped. With
 * CV_HTTPC_PUBLIC_ONLY every address the name resolves to is checked as it
 * is connected to (a name that resolves elsewhere later gains nothing), and
 * a private one is refused: r->error says so. Fills *r. */
void cv_httpc_post(const char *url, const char *body, size_t len, const char *const *headers,
                   int timeout_ms, cv_httpc_reach reach, cv_httpc_result *r);

#endif
