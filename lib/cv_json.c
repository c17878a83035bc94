/*
 * cv_json.c - field checks shared by the message decoder and the API handlers.
 */
#include "cv_json.h"

#include "cv_id.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

cv_err cv_verr_set(cv_verr *verr, const char *prefix, const char *name, const char *fmt, ...) {
    va_list ap;
    if (!verr)
        return CV_ERR_INVALID;
    if (prefix && *prefix)
        snprintf(verr->field, sizeof(verr->field), "%s.%s", prefix, name);
    else
        snprintf(verr->field, sizeof(verr->field), "%s", name);
    va_start(ap, fmt);
    vsnprintf(verr->reason, sizeof(verr->reason), fmt, ap);
    va_end(ap);
    return CV_ERR_INVALID;
}

size_t cv_json_utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t len;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

bool cv_json_text_ok(const char *text, size_t len, size_t *at, const char **what) {
    const unsigned char *s = (const unsigned char *)text;
    bool in_string = false;

    for (size_t i = 0; i < len;) {
        size_t n = cv_json_utf8_len(s + i, len - i);
        *at = i + 1;
        if (n == 0) {
            *what = "a byte that is not UTF-8";
            return false;
        }
        if (s[i] == '\0') {
            *what = "a NUL byte";
            return false;
        }
        if (s[i] == '"') {
            in_string = !in_string;
        } else if (in_string && s[i] == '\\' && i + 1 < len) {
            if (s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0) {
                *what = "a NUL character (\\u0000)";
                return false;
            }
            n = 2; /* the escaped character is not a quote */
        }
        i += n;
    }
    return true;
}

cJSON *cv_json_parse(const char *data, size_t len, size_t *error_at) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(data, len, &end, 0);

    if (!root) {
        *error_at = end && end >= data ? (size_t)(end - data) : 0;
        return NULL;
    }
    while (end < data + len && isspace((unsigned char)*end))
        end++;
    if (end != data + len) {
        *error_at = (size_t)(end - data);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Finds a member by exact (case-sensitive) name; a JSON null counts as absent. */
static const cJSON *member(const cJSON *obj, const char *name) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNull(item) ? NULL : item;
}

cv_err cv_json_get_str(const cJSON *obj, const char *prefix, const char *name, bool required,
                       size_t maxlen, const char **out, cv_verr *verr) {
    const cJSON *item = member(obj, name);
    size_t len;

    *out = NULL;
    if (!item) {
        if (!required)
            return CV_OK;
        return cv_verr_set(verr, prefix, name, "is required");
    }
    if (!cJSON_IsString(item) || !item->valuestring)
        return cv_verr_set(verr, prefix, name, "must be a string");
    len = strlen(item->valuestring);
    if (len == 0)
        return cv_verr_set(verr, prefix, name, "must not be empty");
    if (len > maxlen)
        return cv_verr_set(verr, prefix, name, "must be at most %zu bytes long", maxlen);
    *out = item->valuestring;
    return CV_OK;
}

cv_err cv_json_get_int(const cJSON *obj, const char *prefix, const char *name, bool required,
                       int64_t min, int64_t max, int64_t *out, cv_verr *verr) {
    const cJSON *item = member(obj, name);
    double v;

    if (!item) {
        if (!required)
            return CV_OK;
        return cv_verr_set(verr, prefix, name, "is required");
    }
    if (!cJSON_IsNumber(item))
        return cv_verr_set(verr, prefix, name, "must be an integer");
    v = item->valuedouble;
    if (!isfinite(v) || v != floor(v))
        return cv_verr_set(verr, prefix, name, "must be an integer");
    if (v < (double)min || v > (double)max)
        return cv_verr_set(verr, prefix, name, "must be between %lld and %lld", (long long)min,
                           (long long)max);
    *out = (int64_t)v;
    return CV_OK;
}

cv_err cv_json_get_bool(const cJSON *obj, const char *prefix, const char *name, bool required,
                        bool *out, cv_verr *verr) {
    const cJSON *item = member(obj, name);

    if (!item) {
        if (!required)
            return CV_OK;
        return cv_verr_set(verr, prefix, name, "is required");
    }
    if (!cJSON_IsBool(item))
        return cv_verr_set(verr, prefix, name, "must be true or false");
    *out = cJSON_IsTrue(item);
    return CV_OK;
}

cv_err cv_json_get_id(const cJSON *obj, const char *prefix, const char *name, bool required,
                      const char **out, cv_verr *verr) {
    cv_err err = cv_json_get_str(obj, prefix, name, required, 36, out, verr);
    if (err)
        return err;
    if (*out && !cv_id_valid(*out))
        return cv_verr_set(verr, prefix, name,
                           "must be an id (a UUID such as "
                           "\"0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7d\")");
    return CV_OK;
}

/* Checks the keys of `doc` (at depth `depth`, its path in path[0..len)). */
static cv_err check_doc(const cJSON *doc, char *path, size_t len, int depth, cv_verr *verr) {
    const cJSON *item;

    if (depth > CV_JSON_DOC_DEPTH)
        return cv_verr_set(verr, NULL, path, "is nested more than %d levels deep",
                           CV_JSON_DOC_DEPTH);
    cJSON_ArrayForEach(item, doc) {
        size_t at = len;
        cv_err err;
        if (cJSON_IsObject(doc)) {
            const char *key = item->string ? item->string : "";
            if (!key[0] || key[0] == '$' || strchr(key, '.'))
                return cv_verr_set(verr, NULL, path,
                                   "has the key \"%.64s\": keys must not be empty, start with "
                                   "\"$\" or hold a \".\"",
                                   key);
            at += (size_t)snprintf(path + len, len < 127 ? 128 - len : 1, ".%s", key);
        } else {
            at += (size_t)snprintf(path + len, len < 127 ? 128 - len : 1, "[]");
        }
        if (at > 127)
            at = 127;
        if ((cJSON_IsObject(item) || cJSON_IsArray(item)) &&
            (err = check_doc(item, path, at, depth + 1, verr)))
            return err;
        path[len] = '\0';
    }
    return CV_OK;
}

cv_err cv_json_get_doc(const cJSON *obj, const char *prefix, const char *name, size_t maxbytes,
                       char **out, cv_verr *verr) {
    const cJSON *item = member(obj, name);
    char path[128];
    cv_err err;
    int n;

    *out = NULL;
    if (!item)
        return CV_OK;
    if (!cJSON_IsObject(item))
        return cv_verr_set(verr, prefix, name, "must be an object");
    n = snprintf(path, sizeof(path), "%s%s%s", prefix && *prefix ? prefix : "",
                 prefix && *prefix ? "." : "", name);
    if ((err = check_doc(item, path, n < 127 ? (size_t)n : 127, 1, verr)))
        return err;
    if (!(*out = cJSON_PrintUnformatted(item)))
        return CV_ERR_NOMEM;
    if (strlen(*out) > maxbytes) {
        cJSON_free(*out);
        *out = NULL;
        return cv_verr_set(verr, prefix, name, "must be at most %zu bytes as JSON", maxbytes);
    }
    return CV_OK;
}

cv_err cv_json_only(const cJSON *obj, const char *prefix, const char *const *allowed,
                    const char *what, cv_verr *verr) {
    const cJSON *item;
    cJSON_ArrayForEach(item, obj) {
        bool known = false;
        for (const char *const *a = allowed; *a; a++)
            if (item->string && strcmp(item->string, *a) == 0)
                known = true;
        if (!known)
            return cv_verr_set(verr, prefix, item->string ? item->string : "?",
                               "is not a field of %s", what);
    }
    return CV_OK;
}

static bool is_ident_part(const char *s, size_t len) {
    if (len == 0 || len > 63 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

bool cv_json_is_table_name(const char *s) {
    const char *dot;
    if (!s)
        return false;
    dot = strchr(s, '.');
    if (!dot)
        return is_ident_part(s, strlen(s));
    return is_ident_part(s, (size_t)(dot - s)) && is_ident_part(dot + 1, strlen(dot + 1));
}
