/*
 * cv_web.h - the web interface's files, served by the API at `/`.
 *
 * The page is built by `make web` (web/build.mjs: esbuild bundles web/src) into a
 * folder of its own: index.html and assets/ whose names carry a hash of their
 * content, each beside a gzip copy (name.gz). cv_web_load() reads that folder
 * into memory once, at the API's start; the files never change while it runs.
 *
 *   GET /, /index.html   the page; Cache-Control: no-cache (always asked again,
 *                        so a new build is seen at once)
 *   GET /assets/NAME     a file of the build; cached for a year (immutable: a
 *                        new build gives new names)
 *
 * Each answer has the page's headers (cv_http_file: a Content-Security-Policy
 * without inline code, X-Frame-Options DENY, nosniff, Referrer-Policy), and its
 * gzip copy when the browser accepts gzip. The page itself is hash-routed
 * (`/#/projects/...`), so these are the only paths it needs.
 *
 * Loading is single-threaded; answering may happen from any thread.
 */
#ifndef CV_WEB_H
#define CV_WEB_H

#include "cv_err.h"
#include "cv_http.h"

#include <stdbool.h>

typedef struct cv_web cv_web;

/* Reads the build in `dir`; with dir "" the first of `<the executable's
 * folder>/web` and `<the executable's folder>/../share/convutell/web` that
 * holds an index.html. CV_ERR_NOT_FOUND when there is none (the API then runs
 * without its page), CV_ERR_INVALID for a build that cannot be served (too many
 * or too large files), with the reason in errbuf. On CV_OK *out is freed with
 * cv_web_destroy(). */
cv_err cv_web_load(const char *dir, cv_web **out, char *errbuf, size_t errlen);

/* Accepts NULL. */
void cv_web_destroy(cv_web *w);

/* Whether req's path belongs to the page (`/`, `/index.html`, `/assets/...`). */
bool cv_web_path(const char *path);

/* Answers a request for one of those paths: the file, 404 for a name the build
 * lacks (or with no build: w NULL), 405 for a method other than GET and HEAD. */
void cv_web_answer(const cv_web *w, const cv_http_request *req, cv_http_response *res);

#endif
