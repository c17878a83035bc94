/*
 * cv_config.c - reads and checks the settings every service needs. The dotenv
 * parser follows python-dotenv's common subset: KEY=VALUE lines, `export KEY=...`,
 * comments starting with #, and values in single or double quotes.
 */
#define _GNU_SOURCE
#include "cv_config.h"

#include "cv_log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define MAX_DOTENV 64

typedef struct dotenv {
    int count;
    char keys[MAX_DOTENV][64];
    char values[MAX_DOTENV][1024];
} dotenv;

static char *trim(char *s) {
    char *end;
    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static cv_err dotenv_load(dotenv *env, const char *path, int required, char *errbuf,
                          size_t errlen) {
    char line[2048];
    int lineno = 0;
    cv_err err = CV_OK;
    FILE *f = fopen(path, "r");

    env->count = 0;
    if (!f) {
        if (!required && errno == ENOENT)
            return CV_OK;
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "CONVUTELL_ENV_FILE: cannot open %s: %s",
                          path, strerror(errno));
    }
    while (fgets(line, sizeof(line), f)) {
        char *key, *value, *eq;
        size_t vlen;

        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            err = cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "%s:%d: line is longer than %zu bytes",
                             path, lineno, sizeof(line) - 2);
            goto out;
        }
        key = trim(line);
        if (*key == '\0' || *key == '#')
            continue;
        if (strncmp(key, "export ", 7) == 0)
            key = trim(key + 7);
        eq = strchr(key, '=');
        if (!eq) {
            err = cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "%s:%d: expected KEY=VALUE", path,
                             lineno);
            goto out;
        }
        *eq = '\0';
        key = trim(key);
        value = trim(eq + 1);
        for (const char *k = key; *k; k++) {
            if (!isalnum((unsigned char)*k) && *k != '_') {
                err = cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "%s:%d: bad variable name '%s'",
                                 path, lineno, key);
                goto out;
            }
        }
        vlen = strlen(value);
        if (vlen >= 1 && (value[0] == '"' || value[0] == '\'')) {
            /* The value ends at the matching quote; only white space or a " #"
             * comment may follow it. */
            char *close = strchr(value + 1, value[0]), *rest;
            if (!close) {
                err = cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "%s:%d: %s: unterminated quote",
                                 path, lineno, key);
                goto out;
            }
            rest = trim(close + 1);
            if (*rest != '\0' && *rest != '#') {
                err = cv_err_set(errbuf, errlen, CV_ERR_CONFIG,
                                 "%s:%d: %s: unexpected text after the closing quote", path, lineno,
                                 key);
                goto out;
            }
            *close = '\0';
            value++;
        } else {
            /* An unquoted value ends at an inline comment. */
            char *hash = strstr(value, " #");
            if (hash) {
                *hash = '\0';
                value = trim(value);
            }
        }
        if (*key == '\0' || strlen(key) >= sizeof(env->keys[0]) ||
            strlen(value) >= sizeof(env->values[0]) || env->count == MAX_DOTENV) {
            err = cv_err_set(errbuf, errlen, CV_ERR_CONFIG,
                             "%s:%d: variable name or value too long, or more than %d variables",
                             path, lineno, MAX_DOTENV);
            goto out;
        }
        snprintf(env->keys[env->count], sizeof(env->keys[0]), "%s", key);
        snprintf(env->values[env->count], sizeof(env->values[0]), "%s", value);
        env->count++;
    }
out:
    fclose(f);
    return err;
}

/* Returns the value of `name` from the environment or the dotenv file, or NULL. */
static const char *lookup(const dotenv *env, const char *name) {
    const char *v = getenv(name);
    if (v)
        return v;
    for (int i = env->count - 1; i >= 0; i--)
        if (strcmp(env->keys[i], name) == 0)
            return env->values[i];
    return NULL;
}

/* Looks up `name` (then `alias`), falling back to `def`; an empty value is an error.
 * On success *used names the variable the value came from. */
static cv_err get_value(const dotenv *env, const char *name, const char *alias, const char *def,
                        const char **value, const char **used, char *errbuf, size_t errlen) {
    const char *v = lookup(env, name);
    *used = name;
    if (!v && alias) {
        v = lookup(env, alias);
        if (v)
            *used = alias;
    }
    if (v && *v == '\0')
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "%s: is set but empty", *used);
    *value = v ? v : def;
    return CV_OK;
}

/* The caller's CHECK puts the variable's name in front of the message. */
static cv_err copy_value(char *dst, size_t dstlen, const char *value, char *errbuf, size_t errlen) {
    if (strlen(value) >= dstlen)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "longer than %zu characters", dstlen - 1);
    memcpy(dst, value, strlen(value) + 1);
    return CV_OK;
}

static cv_err parse_port(const char *text, int *port, char *errbuf, size_t errlen) {
    char *end;
    long v;

    errno = 0;
    v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || errno)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "port '%s' is not a number", text);
    if (v < 1 || v > 65535)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "port %ld is out of range 1-65535", v);
    *port = (int)v;
    return CV_OK;
}

cv_err cv_config_check_bootstrap(const char *value, char *errbuf, size_t errlen) {
    char copy[512], *next;
    int port;

    if (value[0] == '\0' || value[0] == ',' || value[strlen(value) - 1] == ',' ||
        strstr(value, ",,"))
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "empty entry in the list");
    if (strlen(value) >= sizeof(copy))
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "longer than %zu characters",
                          sizeof(copy) - 1);
    memcpy(copy, value, strlen(value) + 1);
    for (char *item = copy; item; item = next) { /* no entry is empty (above) */
        char *comma = strchr(item, ','), *colon;
        next = comma ? comma + 1 : NULL;
        if (comma)
            *comma = '\0';
        colon = strrchr(item, ':');
        if (!colon || colon == item)
            return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "'%s' is not host:port", item);
        for (const char *h = item; h < colon; h++)
            if (!isalnum((unsigned char)*h) && !strchr(".-_[]:", *h))
                return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "'%s' has a bad host name", item);
        if (parse_port(colon + 1, &port, errbuf, errlen))
            return CV_ERR_CONFIG;
    }
    return CV_OK;
}

cv_err cv_config_parse_addr(const char *value, char *host, size_t hostlen, int *port, char *errbuf,
                            size_t errlen) {
    const char *colon = strrchr(value, ':');
    struct in_addr addr;
    char hostpart[64];
    size_t n;

    if (!colon)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "'%s' is not IPv4-address:port", value);
    n = (size_t)(colon - value);
    if (n == 0 || n >= sizeof(hostpart) || n >= hostlen)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "'%s' is not IPv4-address:port", value);
    memcpy(hostpart, value, n);
    hostpart[n] = '\0';
    if (strcmp(hostpart, "localhost") == 0)
        snprintf(hostpart, sizeof(hostpart), "127.0.0.1");
    if (inet_pton(AF_INET, hostpart, &addr) != 1)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "'%s' is not an IPv4 address", hostpart);
    if (parse_port(colon + 1, port, errbuf, errlen))
        return CV_ERR_CONFIG;
    snprintf(host, hostlen, "%s", hostpart);
    return CV_OK;
}

static cv_err check_db_name(const char *value, char *errbuf, size_t errlen) {
    if (strlen(value) >= 64)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "longer than 63 characters");
    for (const char *c = value; *c; c++)
        if (strchr("/\\. \"$*<>:|?", *c))
            return cv_err_set(errbuf, errlen, CV_ERR_CONFIG,
                              "'%s' contains '%c', which MongoDB forbids in database names", value,
                              *c);
    return CV_OK;
}

extern char **environ;

void cv_config_forget_driver_env(void) {
    static const char *const prefixes[] = {"PG", "MYSQL_", "MARIADB_"};
    char name[256];

    /* unsetenv() changes environ: start again after each removal. */
    for (size_t i = 0; environ[i];) {
        const char *eq = strchr(environ[i], '=');
        size_t len = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        bool drop = false;
        for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]) && !drop; p++)
            drop = strncmp(environ[i], prefixes[p], strlen(prefixes[p])) == 0;
        if (!drop || len >= sizeof(name)) {
            i++;
            continue;
        }
        memcpy(name, environ[i], len);
        name[len] = '\0';
        unsetenv(name);
        i = 0;
    }
    setenv("PGPASSFILE", "/dev/null", 1);
}

/* One load: where the values come from, and where its error goes. */
typedef struct loader {
    const dotenv *env;
    const char *used; /* the variable the last value came from */
    char why[512];
    char *errbuf;
    size_t errlen;
} loader;

/* The value of name (or alias, or def: may be NULL) into *v. */
static cv_err value(loader *l, const char *name, const char *alias, const char *def,
                    const char **v) {
    return get_value(l->env, name, alias, def, v, &l->used, l->errbuf, l->errlen);
}

/* A check's failure (its reason in l->why) as the load's error, naming the variable. */
static cv_err checked(loader *l, cv_err rc) {
    if (rc == CV_OK)
        return CV_OK;
    return cv_err_set(l->errbuf, l->errlen, CV_ERR_CONFIG, "%s: %s", l->used, l->why);
}

static cv_err check_mongo_uri(const char *value, char *errbuf, size_t errlen) {
    bson_error_t berr;
    mongoc_uri_t *uri = mongoc_uri_new_with_error(value, &berr);

    if (!uri)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "not a MongoDB connection string: %.400s",
                          berr.message);
    mongoc_uri_destroy(uri);
    return CV_OK;
}

/* Where the broker, the store and the API are. */
/* CORS origins: "", "*", or "scheme://host[:port]" entries separated by
 * commas, without spaces or paths (what a browser sends as Origin). */
static cv_err check_origins(const char *v, char *why, size_t len) {
    if (!*v || strcmp(v, "*") == 0)
        return CV_OK;
    for (const char *p = v; *p;) {
        size_t n = strcspn(p, ",");
        const char *host = strncmp(p, "https://", 8) == 0  ? p + 8
                           : strncmp(p, "http://", 7) == 0 ? p + 7
                                                           : NULL;
        if (!host || host >= p + n || memchr(host, '/', (size_t)(p + n - host)) ||
            memchr(p, ' ', n) || memchr(p, '*', n))
            return cv_err_set(why, len, CV_ERR_CONFIG,
                              "'%.*s' is not an origin such as https://etl.example.com or "
                              "http://localhost:5173 (or use * alone)",
                              (int)n, p);
        p += n + (p[n] == ',');
    }
    return CV_OK;
}

static cv_err load_addresses(loader *l, cv_config *cfg) {
    const char *v;
    cv_err err;

    if ((err = value(l, "CONVUTELL_KAFKA_BOOTSTRAP", NULL, "127.0.0.1:9092", &v)) ||
        (err = checked(l, cv_config_check_bootstrap(v, l->why, sizeof(l->why)))) ||
        (err = checked(l, copy_value(cfg->kafka_bootstrap, sizeof(cfg->kafka_bootstrap), v, l->why,
                                     sizeof(l->why)))))
        return err;
    if ((err = value(l, "CONVUTELL_MONGODB_URI", "MONGODB_CONNECTION_STRING",
                     "mongodb://127.0.0.1:27017/", &v)) ||
        (err = checked(l, check_mongo_uri(v, l->why, sizeof(l->why)))) ||
        (err = checked(
             l, copy_value(cfg->mongo_uri, sizeof(cfg->mongo_uri), v, l->why, sizeof(l->why)))))
        return err;
    if ((err = value(l, "CONVUTELL_MONGODB_DB", "MONGODB_CONNECTION_STRING_DB", "convutell", &v)) ||
        (err = checked(l, check_db_name(v, l->why, sizeof(l->why)))) ||
        (err = checked(
             l, copy_value(cfg->mongo_db, sizeof(cfg->mongo_db), v, l->why, sizeof(l->why)))))
        return err;
    if ((err = value(l, "CONVUTELL_HTTP_ADDR", NULL, "127.0.0.1:8080", &v)) ||
        (err = checked(l, cv_config_parse_addr(v, cfg->http_host, sizeof(cfg->http_host),
                                               &cfg->http_port, l->why, sizeof(l->why)))))
        return err;
    if ((err = value(l, "CONVUTELL_WEB_DIR", NULL, "", &v)) ||
        (err =
             checked(l, copy_value(cfg->web_dir, sizeof(cfg->web_dir), v, l->why, sizeof(l->why)))))
        return err;
    if ((err = value(l, "CONVUTELL_CORS_ORIGINS", NULL, "", &v)) ||
        (err = checked(l, check_origins(v, l->why, sizeof(l->why)))) ||
        (err = checked(l, copy_value(cfg->cors_origins, sizeof(cfg->cors_origins), v, l->why,
                                     sizeof(l->why)))))
        return err;
    if ((err = value(l, "CONVUTELL_METRICS_ADDR", NULL, "", &v)))
        return err;
    if (v[0] &&
        (err = checked(l, cv_config_parse_addr(v, cfg->metrics_host, sizeof(cfg->metrics_host),
                                               &cfg->metrics_port, l->why, sizeof(l->why)))))
        return err;
    return CV_OK;
}

/* The worker's id (host name and pid unless set) and how services log. */
/* A setting of two words, `no` (the default) or `yes`: *out is whether it is yes. */
static cv_err either(loader *l, const char *name, const char *no, const char *yes, bool *out) {
    const char *v;
    cv_err err = value(l, name, NULL, no, &v);

    if (err)
        return err;
    if (strcmp(v, no) != 0 && strcmp(v, yes) != 0)
        return checked(l, cv_err_set(l->why, sizeof(l->why), CV_ERR_CONFIG,
                                     "'%s' is not one of %s, %s", v, no, yes));
    *out = strcmp(v, yes) == 0;
    return CV_OK;
}

static cv_err load_identity(loader *l, cv_config *cfg) {
    char host[256];
    const char *v;
    cv_err err;
    int level;

    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "worker");
    host[sizeof(host) - 1] = '\0';
    if ((err = value(l, "CONVUTELL_WORKER_ID", NULL, NULL, &v)))
        return err;
    if (v && (err = checked(l, copy_value(cfg->worker_id, sizeof(cfg->worker_id), v, l->why,
                                          sizeof(l->why)))))
        return err;
    if (!v)
        snprintf(cfg->worker_id, sizeof(cfg->worker_id), "%.100s-%ld", host, (long)getpid());

    if ((err = value(l, "CONVUTELL_LOG_FILE", NULL, "", &v)) ||
        (err = checked(
             l, copy_value(cfg->log_file, sizeof(cfg->log_file), v, l->why, sizeof(l->why)))))
        return err;
    if ((err = value(l, "CONVUTELL_LOG_LEVEL", NULL, "info", &v)))
        return err;
    if ((level = cv_log_level_parse(v)) < 0)
        return checked(l, cv_err_set(l->why, sizeof(l->why), CV_ERR_CONFIG,
                                     "'%s' is not one of debug, info, warn, error", v));
    cfg->log_level = level;
    if ((err = either(l, "CONVUTELL_LOG_FORMAT", "text", "json", &cfg->log_json)))
        return err;
    return either(l, "CONVUTELL_WEBHOOK_PRIVATE", "deny", "allow", &cfg->webhook_private);
}

/* Every setting that is a whole number in a range. */
static cv_err load_numbers(loader *l, cv_config *cfg) {
    const struct {
        const char *name, *def, *unit;
        long min, max;
        int *out;
    } numbers[] = {
        {"CONVUTELL_PROGRESS_INTERVAL_MS", "2000", "milliseconds", 100, 600000,
         &cfg->progress_interval_ms},
        {"CONVUTELL_LEASE_SECONDS", "30", "seconds", 2, 3600, &cfg->lease_seconds},
        /* Kafka's broker refuses less than its group.min.session.timeout.ms (6 s). */
        {"CONVUTELL_KAFKA_MAX_POLL_INTERVAL_MS", "300000", "milliseconds", 6000, 86400000,
         &cfg->max_poll_interval_ms},
        {"CONVUTELL_CACHE_MS", "2000", "milliseconds", 0, 3600000, &cfg->cache_ms},
        {"CONVUTELL_HTTP_CONNECTIONS", "1000", "connections", 1, 100000, &cfg->http_connections},
        {"CONVUTELL_HTTP_PER_ADDRESS", "64", "connections", 1, 100000, &cfg->http_per_address},
        {"CONVUTELL_HTTP_IDLE_SECONDS", "30", "seconds", 1, 3600, &cfg->http_idle_seconds},
        {"CONVUTELL_HTTP_REQUEST_SECONDS", "30", "seconds", 1, 3600, &cfg->http_request_seconds},
        {"CONVUTELL_WORKER_CONCURRENCY", "32", "jobs", 1, 256, &cfg->worker_concurrency},
        {"CONVUTELL_ODBC_IDLE", "8", "connections", 0, 64, &cfg->odbc_idle},
        {"CONVUTELL_ODBC_IDLE_SECONDS", "30", "seconds", 1, 3600, &cfg->odbc_idle_seconds},
        {"CONVUTELL_RETAIN_EVENTS_DAYS", "30", "days", 1, 36500, &cfg->retain_events_days},
        {"CONVUTELL_RETAIN_RUNS_DAYS", "365", "days", 1, 36500, &cfg->retain_runs_days},
        {"CONVUTELL_RETAIN_NOTIFICATIONS_DAYS", "90", "days", 1, 36500,
         &cfg->retain_notifications_days},
        {"CONVUTELL_RETAIN_TICKS_DAYS", "1", "days", 1, 36500, &cfg->retain_ticks_days},
        {"CONVUTELL_RETAIN_LEASES_DAYS", "1", "days", 1, 36500, &cfg->retain_leases_days},
        {"CONVUTELL_RETAIN_QUERIES_DAYS", "30", "days", 1, 36500, &cfg->retain_queries_days},
        {"CONVUTELL_RETAIN_DELIVERIES_DAYS", "30", "days", 1, 36500, &cfg->retain_deliveries_days},
        {"CONVUTELL_RETAIN_AUDIT_DAYS", "365", "days", 1, 36500, &cfg->retain_audit_days},
        {"CONVUTELL_PRUNE_INTERVAL_SECONDS", "600", "seconds", 1, 86400,
         &cfg->prune_interval_seconds},
        {"CONVUTELL_WEBHOOK_RETRY_SECONDS", "10", "seconds", 1, 3600, &cfg->webhook_retry_seconds},
        {"CONVUTELL_STREAMS", "256", "streams", 1, 100000, &cfg->http_streams},
    };

    for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        const char *v;
        char *end;
        long n;
        cv_err err;
        if ((err = value(l, numbers[i].name, NULL, numbers[i].def, &v)))
            return err;
        errno = 0;
        n = strtol(v, &end, 10);
        if (errno || *end != '\0' || end == v || n < numbers[i].min || n > numbers[i].max)
            return checked(l, cv_err_set(l->why, sizeof(l->why), CV_ERR_CONFIG,
                                         "'%s' is not a number of %s from %ld to %ld", v,
                                         numbers[i].unit, numbers[i].min, numbers[i].max));
        *numbers[i].out = (int)n;
    }
    return CV_OK;
}

/* CONVUTELL_SECRET_KEYS_OLD: keys separated by commas (and spaces). */
static cv_err load_old_keys(loader *l, cv_config *cfg) {
    const char *v, *p;
    cv_err err;

    if ((err = value(l, "CONVUTELL_SECRET_KEYS_OLD", NULL, NULL, &v)) || !v)
        return err;
    for (p = v; *p;) {
        char hex[80];
        size_t n;
        p += strspn(p, ", \t");
        if (!*p)
            break;
        n = strcspn(p, ", \t");
        if (cfg->n_old_keys == CV_SECRET_OLD_MAX)
            return cv_err_set(l->errbuf, l->errlen, CV_ERR_CONFIG,
                              "CONVUTELL_SECRET_KEYS_OLD: at most %d keys", CV_SECRET_OLD_MAX);
        snprintf(hex, sizeof(hex), "%.*s", (int)(n < sizeof(hex) - 1 ? n : sizeof(hex) - 1), p);
        if (cv_secret_parse_key(hex, cfg->old_keys[cfg->n_old_keys], l->why, sizeof(l->why)))
            return cv_err_set(l->errbuf, l->errlen, CV_ERR_CONFIG,
                              "CONVUTELL_SECRET_KEYS_OLD: key %d: %s", cfg->n_old_keys + 1, l->why);
        cfg->n_old_keys++;
        p += n;
    }
    return CV_OK;
}

cv_err cv_config_load(cv_config *cfg, char *errbuf, size_t errlen) {
    loader l = {.errbuf = errbuf, .errlen = errlen};
    dotenv *env = NULL;
    const char *path = getenv("CONVUTELL_ENV_FILE"), *v;
    cv_err err;

    memset(cfg, 0, sizeof(*cfg));
    if (!(env = calloc(1, sizeof(*env))))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory loading configuration");
    l.env = env;
    if ((err = dotenv_load(env, path && *path ? path : ".env", path && *path, errbuf, errlen)) ||
        (err = load_addresses(&l, cfg)) || (err = load_identity(&l, cfg)) ||
        (err = load_numbers(&l, cfg)) || (err = value(&l, "CONVUTELL_SECRET_KEY", NULL, NULL, &v)))
        goto out;
    if (v) {
        if ((err = checked(&l, cv_secret_parse_key(v, cfg->secret_key, l.why, sizeof(l.why)))))
            goto out;
        cfg->has_secret_key = true;
    }
    err = load_old_keys(&l, cfg);
out:
    free(env);
    return err;
}

void cv_config_mask_uri(const char *uri, char *out, size_t outlen) {
    const char *auth = strstr(uri, "://"), *at, *colon, *end;

    if (!auth) {
        snprintf(out, outlen, "%s", uri);
        return;
    }
    auth += 3;
    end = auth + strcspn(auth, "/?");
    at = memrchr(auth, '@', (size_t)(end - auth));
    colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (!colon)
        snprintf(out, outlen, "%s", uri);
    else
        snprintf(out, outlen, "%.*s***%s", (int)(colon + 1 - uri), uri, at);
}

void cv_config_describe(const cv_config *cfg, const char *service, char *out, size_t outlen) {
    char uri[sizeof(cfg->mongo_uri)], extra[512] = "", metrics[96] = "none";

    cv_config_mask_uri(cfg->mongo_uri, uri, sizeof(uri));
    if (cfg->metrics_host[0])
        snprintf(metrics, sizeof(metrics), "%s:%d", cfg->metrics_host, cfg->metrics_port);
    if (strcmp(service, "api") == 0)
        snprintf(extra, sizeof(extra), "; http %s:%d, %d connections, web %.200s, cors %.200s",
                 cfg->http_host, cfg->http_port, cfg->http_connections,
                 cfg->web_dir[0] ? cfg->web_dir : "beside the binary",
                 cfg->cors_origins[0] ? cfg->cors_origins : "off");
    else if (strcmp(service, "worker") == 0)
        snprintf(extra, sizeof(extra), "; worker %.128s, %d jobs at once, lease %d s",
                 cfg->worker_id, cfg->worker_concurrency, cfg->lease_seconds);
    else if (strcmp(service, "collector") == 0)
        snprintf(extra, sizeof(extra), "; webhooks to private addresses %s",
                 cfg->webhook_private ? "allowed" : "denied");
    snprintf(out, outlen,
             "kafka %s; mongodb %s database %s%s; metrics %s; secret key %s (%d old); log %s "
             "to %s",
             cfg->kafka_bootstrap, uri, cfg->mongo_db, extra, metrics,
             cfg->has_secret_key ? "set" : "not set", cfg->n_old_keys,
             cfg->log_json ? "json" : "text", cfg->log_file[0] ? cfg->log_file : "stderr");
}

cv_err cv_config_require_secret(const cv_config *cfg, const char *service, char *errbuf,
                                size_t errlen) {
    if (cfg->has_secret_key)
        return CV_OK;
    return cv_err_set(errbuf, errlen, CV_ERR_CONFIG,
                      "CONVUTELL_SECRET_KEY: is required by the %s (64 hex digits, e.g. from "
                      "`openssl rand -hex 32`)",
                      service);
}
