/*
 * cv_config.h - service configuration from environment variables and an optional
 * dotenv file.
 *
 * Lookup order for each setting: the process environment, then the dotenv file
 * (CONVUTELL_ENV_FILE, or ./.env when that variable is unset), then the default.
 * The original tool's MONGODB_CONNECTION_STRING and MONGODB_CONNECTION_STRING_DB
 * are accepted where CONVUTELL_MONGODB_URI and CONVUTELL_MONGODB_DB are unset.
 * Every value is checked at load time, so a bad value stops a service at start-up
 * with one line that names the variable and says what is wrong.
 */
#ifndef CV_CONFIG_H
#define CV_CONFIG_H

#include "cv_err.h"
#include "cv_secret.h"

#include <stdbool.h>

typedef struct cv_config {
    char kafka_bootstrap[512]; /* CONVUTELL_KAFKA_BOOTSTRAP, "host:port[,host:port]" */
    char mongo_uri[1024];      /* CONVUTELL_MONGODB_URI */
    char mongo_db[64];         /* CONVUTELL_MONGODB_DB */
    char http_host[64];        /* CONVUTELL_HTTP_ADDR, IPv4 part */
    int http_port;             /* CONVUTELL_HTTP_ADDR, port part */
    int http_connections;      /* CONVUTELL_HTTP_CONNECTIONS: open at once, all clients [1000] */
    int http_per_address;      /* CONVUTELL_HTTP_PER_ADDRESS: open at once from one address [64] */
    int http_idle_seconds;     /* CONVUTELL_HTTP_IDLE_SECONDS: a connection silent this long
                                  is closed [30] */
    int http_request_seconds;  /* CONVUTELL_HTTP_REQUEST_SECONDS: a request's headers and body
                                  must arrive within this long of its connection [30] */
    int http_streams;          /* CONVUTELL_STREAMS: run streams (SSE) open at once [256] */
    char metrics_host[64];     /* CONVUTELL_METRICS_ADDR, IPv4 part: where GET /metrics
                                  (Prometheus) is served, "" for none (the default) */
    int metrics_port;          /* CONVUTELL_METRICS_ADDR, port part */
    char web_dir[1024];        /* CONVUTELL_WEB_DIR: the web interface's build; "" looks
                                * beside the executable (cv_web.h) */
    char cors_origins[1024];   /* CONVUTELL_CORS_ORIGINS: "" (off), "*" or origins separated
                                  by commas whose web pages may call the API (cv_http.h) */
    char worker_id[128];       /* CONVUTELL_WORKER_ID, default "hostname-pid" */
    int log_level;             /* CONVUTELL_LOG_LEVEL, a cv_log_level */
    char log_file[1024];       /* CONVUTELL_LOG_FILE: stderr goes there, appended, and is
                                  opened again on SIGHUP (logrotate); "" for stderr as is */
    bool log_json;             /* CONVUTELL_LOG_FORMAT=json: one JSON object a record */
    bool webhook_private;      /* CONVUTELL_WEBHOOK_PRIVATE=allow: webhooks may reach the
                                  host and private networks (default deny) */
    int progress_interval_ms;  /* CONVUTELL_PROGRESS_INTERVAL_MS, run.progress period */
    int lease_seconds;         /* CONVUTELL_LEASE_SECONDS: a run without a heartbeat for
                                  this long is taken from its worker [30] */
    int max_poll_interval_ms;  /* CONVUTELL_KAFKA_MAX_POLL_INTERVAL_MS [300000] */
    int cache_ms;              /* CONVUTELL_CACHE_MS: how long a job, project or connection
                                  read from the store is reused (cv_cache.h) [2000] */
    int worker_concurrency;    /* CONVUTELL_WORKER_CONCURRENCY: jobs a worker runs at once [32] */
    int odbc_idle;             /* CONVUTELL_ODBC_IDLE: connections a worker keeps open
                                  between sql jobs (cv_odbcpool.h) [8] */
    int odbc_idle_seconds;     /* CONVUTELL_ODBC_IDLE_SECONDS: and for how long at most [30] */
    /* Retention in days (CONVUTELL_RETAIN_*_DAYS) and how often the scheduler
     * prunes (CONVUTELL_PRUNE_INTERVAL_SECONDS [600]); see cv_retain.h. */
    int retain_events_days;        /* events of finished runs [30] */
    int retain_runs_days;          /* run records [365] */
    int retain_notifications_days; /* [90] */
    int retain_ticks_days;         /* [1] */
    int retain_leases_days;        /* from their release [1] */
    int retain_queries_days;       /* the SQL console's ended queries and rows [30] */
    int retain_deliveries_days;    /* webhook deliveries delivered or failed [30] */
    int retain_audit_days;         /* audit records [365] */
    int prune_interval_seconds;
    int webhook_retry_seconds; /* CONVUTELL_WEBHOOK_RETRY_SECONDS: a failed delivery's first
                                  wait, six times longer each next [10] */
    bool has_secret_key;       /* CONVUTELL_SECRET_KEY was given */
    unsigned char secret_key[CV_SECRET_KEY_LEN]; /* key for secrets at rest */
    /* CONVUTELL_SECRET_KEYS_OLD: keys a rotation moves away from, still read. */
    unsigned char old_keys[CV_SECRET_OLD_MAX][CV_SECRET_KEY_LEN];
    int n_old_keys;
} cv_config;

/* The services that read or write connection strings (api, worker) call this:
 * CV_ERR_CONFIG with "CONVUTELL_SECRET_KEY: is required by the <service>" if
 * no key was configured. */
cv_err cv_config_require_secret(const cv_config *cfg, const char *service, char *errbuf,
                                size_t errlen);

/* Removes from the process's environment what database client libraries
 * would read as defaults for a connection: libpq's PG* variables (PGUSER,
 * PGPASSWORD, PGHOST, ...), MYSQL_* and MARIADB_*; and points PGPASSFILE at
 * /dev/null, so that no ~/.pgpass fills in a password either. A connection
 * then uses exactly its stored string. Every service calls it first, before
 * any thread starts. */
void cv_config_forget_driver_env(void);

/* Fills *cfg. Returns CV_OK, or CV_ERR_CONFIG with a one-line message in errbuf
 * such as "CONVUTELL_HTTP_ADDR: port 99999 is out of range 1-65535". */
cv_err cv_config_load(cv_config *cfg, char *errbuf, size_t errlen);

/* One line that says how a service is set up, for its first log line: where
 * Kafka and MongoDB are (the URI's password shown as "***"), the settings that
 * matter to `service` ("api", "worker", "collector", "scheduler"), whether a
 * secret key is set (never the key), the log level. Cut to outlen. */
void cv_config_describe(const cv_config *cfg, const char *service, char *out, size_t outlen);

/* Writes `uri` into out with the password of its user information replaced by
 * "***" ("mongodb://app:***@db:27017/"); as it is when it holds none. */
void cv_config_mask_uri(const char *uri, char *out, size_t outlen);

/* Validation helpers, exported for the unit tests. Each returns CV_OK or
 * CV_ERR_CONFIG with the reason (without the variable name) in errbuf. */
cv_err cv_config_check_bootstrap(const char *value, char *errbuf, size_t errlen);
cv_err cv_config_parse_addr(const char *value, char *host, size_t hostlen, int *port, char *errbuf,
                            size_t errlen);

#endif
