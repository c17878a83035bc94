/*
 * cv_json.h - typed field access on cJSON objects for untrusted input.
 *
 * Job messages from Kafka and request bodies from HTTP clients are both checked
 * with these helpers, so a bad field is reported the same way everywhere: the
 * dotted path of the field and a sentence saying what is wrong with it.
 *
 * Pure functions: any thread. Strings handed out point into the cJSON object
 * and live as long as it does, except where a function says the caller frees
 * them (cv_json_get_doc()).
 */
#ifndef CV_JSON_H
#define CV_JSON_H

#include "cv_err.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

/* Which field was wrong and why. `field` is a dotted path ("sql_transfer.query"). */
typedef struct cv_verr {
    char field[128];
    char reason[256];
} cv_verr;

/* Parses exactly one JSON value from data[0..len) (no NUL needed). Trailing
 * bytes other than white space are an error. Returns a new cJSON the caller
 * frees with cJSON_Delete(), or NULL with *error_at set to the byte offset of
 * the problem. */
cJSON *cv_json_parse(const char *data, size_t len, size_t *error_at);

/* Length of the valid UTF-8 sequence at s (at most n bytes, n >= 1): 1 to
 * 4, or 0 where the bytes are not UTF-8 (overlong forms and surrogates
 * included). */
size_t cv_json_utf8_len(const unsigned char *s, size_t n);

/* Checks a request body before it is parsed: every byte UTF-8, and no NUL,
 * raw or written \u0000 inside a string (a C string would end there). On
 * false, *at is the 1-based offset of the first offending byte and *what
 * says what it is. */
bool cv_json_text_ok(const char *text, size_t len, size_t *at, const char **what);

/* Fills *verr and returns CV_ERR_INVALID. `prefix` may be NULL or "". */
cv_err cv_verr_set(cv_verr *verr, const char *prefix, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reads a string member. With `required` false an absent or null member gives
 * *out = NULL and CV_OK. Strings must be non-empty and at most maxlen bytes.
 * *out points into obj: it lives as long as obj does. */
cv_err cv_json_get_str(const cJSON *obj, const char *prefix, const char *name, bool required,
                       size_t maxlen, const char **out, cv_verr *verr);

/* Reads an integral number member in [min, max]. Absent and not required leaves
 * *out unchanged and returns CV_OK. */
cv_err cv_json_get_int(const cJSON *obj, const char *prefix, const char *name, bool required,
                       int64_t min, int64_t max, int64_t *out, cv_verr *verr);

/* Reads a boolean member. Absent and not required leaves *out unchanged. */
cv_err cv_json_get_bool(const cJSON *obj, const char *prefix, const char *name, bool required,
                        bool *out, cv_verr *verr);

/* Reads a string member that must be a UUID (see cv_id.h). */
cv_err cv_json_get_id(const cJSON *obj, const char *prefix, const char *name, bool required,
                      const char **out, cv_verr *verr);

/* How deep a document read by cv_json_get_doc() may nest. */
#define CV_JSON_DOC_DEPTH 20

/* Reads an object member that is stored as a document (parameters): no key
 * empty, starting with '$' or holding a '.' (the store cannot hold those), at
 * most CV_JSON_DOC_DEPTH levels deep, at most maxbytes as compact JSON. The
 * field named in *verr is the path of the offending key. Absent or null gives
 * *out = NULL. On CV_OK *out is the compact JSON text, which the caller frees
 * with cJSON_free(). */
cv_err cv_json_get_doc(const cJSON *obj, const char *prefix, const char *name, size_t maxbytes,
                       char **out, cv_verr *verr);

/* Fails on the first member of obj whose name is not in the NULL-terminated
 * list `allowed`: "<prefix.name>: is not a field of <what>". */
cv_err cv_json_only(const cJSON *obj, const char *prefix, const char *const *allowed,
                    const char *what, cv_verr *verr);

/* True if s is a table name of the form name or schema.name, where each part
 * starts with a letter or underscore, continues with letters, digits or
 * underscores, and is at most 63 bytes (the PostgreSQL limit). */
bool cv_json_is_table_name(const char *s);

#endif
