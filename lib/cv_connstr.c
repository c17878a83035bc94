/*
 * cv_connstr.c - ODBC connection strings read by their grammar, for showing
 * them without their secrets.
 */
#include "cv_connstr.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* Whether an attribute named key (klen bytes) holds a secret. */
static bool secret_key(const char *key, size_t klen) {
    static const char *const parts[] = {"pwd", "passw", "secret", "token"};
    char lower[128];

    while (klen && isspace((unsigned char)*key))
        key++, klen--;
    while (klen && isspace((unsigned char)key[klen - 1]))
        klen--;
    if (klen >= sizeof(lower))
        return true; /* a key this long is nobody's: hide its value */
    for (size_t i = 0; i < klen; i++)
        lower[i] = (char)tolower((unsigned char)key[i]);
    lower[klen] = '\0';
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        if (strstr(lower, parts[i]))
            return true;
    return false;
}

/* Appends n bytes to out (room is reserved by the caller). */
static void put(char *out, size_t *o, const char *s, size_t n) {
    memcpy(out + *o, s, n);
    *o += n;
}

/* Writes the libpq options of a Pqopt value (between its braces, [v, end))
 * with the values of secret keys masked. False when they do not read as
 * libpq options: the caller then masks the whole value. */
static bool mask_pqopt(const char *v, const char *end, char *out, size_t *o) {
    size_t start = *o;
    const char *p = v;

    while (p < end) {
        const char *k = p, *eq;
        while (p < end && isspace((unsigned char)*p))
            p++;
        put(out, o, k, (size_t)(p - k));
        if (p == end)
            break;
        k = p;
        while (p < end && *p != '=' && !isspace((unsigned char)*p))
            p++;
        if (p == end || *p != '=' || p == k)
            goto fail;
        eq = p++;
        const char *val = p;
        if (p < end && *p == '\'') {
            for (p++; p < end && *p != '\''; p++)
                if (*p == '\\' && p + 1 < end)
                    p++;
            if (p == end)
                goto fail;
            p++;
            if (p < end && !isspace((unsigned char)*p))
                goto fail; /* read as one value on a second look: not options */
        } else {
            while (p < end && !isspace((unsigned char)*p))
                p++;
        }
        put(out, o, k, (size_t)(eq - k + 1));
        if (secret_key(k, (size_t)(eq - k)))
            put(out, o, CV_CONNSTR_MASK, strlen(CV_CONNSTR_MASK));
        else
            put(out, o, val, (size_t)(p - val));
    }
    return true;
fail:
    *o = start;
    return false;
}

/* Whether an attribute named key (klen bytes, trimmed) names who signs in
 * (UID, User, Username) or carries libpq options that may (Pqopt). */
static bool identity_key(const char *key, size_t klen) {
    static const char *const names[] = {"uid", "user", "username", "pqopt"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (klen == strlen(names[i]) && strncasecmp(key, names[i], klen) == 0)
            return true;
    return false;
}

/* Rewrites odbc with secret values masked, or (strip) with every attribute
 * holding a credential left out. */
static cv_err rewrite(const char *odbc, bool strip, char **out, char *errbuf, size_t errlen) {
    size_t len = strlen(odbc), o = 0;
    const char *p = odbc;
    char *buf;

    *out = NULL;
    /* A mask is at most 8 bytes where the value had 0 or 1 (or "''"). */
    if (!(buf = malloc(len * 9 + 1)))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    while (*p) {
        const char *a = p, *eq, *k, *v, *vend;
        while (*p && *p != ';' && *p != '=' && *p != '{')
            p++;
        if (*p != '=') {
            for (k = a; k < p && isspace((unsigned char)*k); k++)
                ;
            if (k < p || *p == '{') {
                free(buf);
                return cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                                  "the attribute at byte %zu has no '=' (key=value expected)",
                                  (size_t)(a - odbc) + 1);
            }
            put(buf, &o, a, (size_t)(p - a)); /* white space only */
            if (*p == ';')
                put(buf, &o, p++, 1);
            continue;
        }
        eq = p;
        for (k = a; k < eq && isspace((unsigned char)*k); k++)
            ;
        if (k == eq) {
            free(buf);
            return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "empty key at byte %zu",
                              (size_t)(a - odbc) + 1);
        }
        v = eq + 1;
        while (*v == ' ')
            v++;
        if (*v == '{') {
            for (vend = v + 1; *vend && !(vend[0] == '}' && vend[1] != '}'); vend++)
                if (vend[0] == '}')
                    vend++; /* "}}" is one '}' */
            if (!*vend) {
                free(buf);
                return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "'{' at byte %zu is never closed",
                                  (size_t)(v - odbc) + 1);
            }
            p = ++vend;
            while (*p && *p != ';' && isspace((unsigned char)*p))
                p++;
            if (*p && *p != ';') {
                free(buf);
                return cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                                  "text after the closing '}' at byte %zu", (size_t)(p - odbc) + 1);
            }
        } else {
            vend = strchr(v, ';');
            vend = vend ? vend : v + strlen(v);
            p = vend;
        }
        const char *kend = eq;
        while (kend > k && isspace((unsigned char)kend[-1]))
            kend--;
        if (strip && (secret_key(k, (size_t)(kend - k)) || identity_key(k, (size_t)(kend - k)))) {
            if (*p == ';')
                p++;
            continue;
        }
        put(buf, &o, a, (size_t)(eq - a + 1));
        if (secret_key(k, (size_t)(kend - k))) {
            put(buf, &o, CV_CONNSTR_MASK, strlen(CV_CONNSTR_MASK));
        } else if (*v == '{' && kend - k == 5 && strncasecmp(k, "Pqopt", 5) == 0) {
            put(buf, &o, eq + 1, (size_t)(v - eq)); /* up to and with the '{' */
            if (!mask_pqopt(v + 1, vend - 1, buf, &o))
                put(buf, &o, CV_CONNSTR_MASK, strlen(CV_CONNSTR_MASK));
            put(buf, &o, "}", 1);
        } else {
            put(buf, &o, eq + 1, (size_t)(p - eq - 1));
        }
        if (*p == ';')
            put(buf, &o, p++, 1);
    }
    buf[o] = '\0';
    *out = buf;
    return CV_OK;
}

cv_err cv_connstr_mask(const char *odbc, char **out, char *errbuf, size_t errlen) {
    return rewrite(odbc, false, out, errbuf, errlen);
}

cv_err cv_connstr_strip(const char *odbc, char **out, char *errbuf, size_t errlen) {
    return rewrite(odbc, true, out, errbuf, errlen);
}
