/*
 * cv_maria.c - libmariadb connection for the MariaDB fast paths: LOAD DATA
 * LOCAL INFILE whose "file" is a reader callback (the rows arrive already in
 * LOAD DATA's text format from cv_transfer.c), and mysql_use_result streaming
 * for extraction. Server errors become CV_ERR_ODBC with "SQLSTATE: message",
 * as in cv_odbc.c, so callers handle both paths alike.
 *
 * The server may ask for a local file in answer to any statement, so outside
 * cv_maria_load() the connection keeps a handler that refuses every request:
 * libmariadb's default handler would open the named file.
 */
#include "cv_maria.h"

#include "cv_odbc.h"
#include "cv_tcp.h"

#include <ctype.h>
#include <errmsg.h>
#include <errno.h>
#include <mysql.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define MAX_PARAMS 8
#define CONNECT_TIMEOUT 10 /* seconds */
#define CANCEL_TIMEOUT 5   /* seconds, for each step of the KILL connection */

struct cv_maria {
    MYSQL *mysql;
    MYSQL_RES *res; /* the streamed result of cv_maria_query(), or NULL */
    /* Set by cv_maria_connect() and never changed after, so cv_maria_cancel()
     * may read them from another thread. */
    char host[256];
    char user[256];
    char password[256];
    char socket[512];
    unsigned int port;
    unsigned long thread_id;
};

/* State of one cv_maria_load(), handed to the infile callbacks. */
struct load {
    cv_maria_read_fn read;
    void *ctx;
    bool aborted; /* read returned -1 */
    bool overrun; /* read returned more than it was asked for */
};

static pthread_once_t library_once = PTHREAD_ONCE_INIT;
static int library_status = -1;

static void library_init(void) {
    library_status = mysql_library_init(0, NULL, NULL);
}

/* Overwrites a secret in a way the compiler may not drop as a dead store. */
static void wipe(void *p, size_t n) {
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

static cv_err conn_error(MYSQL *mysql, const char *what, char *errbuf, size_t errlen) {
    return cv_err_set(errbuf, errlen, CV_ERR_ODBC, "%s: %s: %s", what, mysql_sqlstate(mysql),
                      mysql_error(mysql));
}

static cv_err stmt_error(MYSQL_STMT *stmt, const char *what, char *sqlstate, char *errbuf,
                         size_t errlen) {
    if (sqlstate)
        snprintf(sqlstate, 6, "%s", mysql_stmt_sqlstate(stmt));
    return cv_err_set(errbuf, errlen, CV_ERR_ODBC, "%s: %s: %s", what, mysql_stmt_sqlstate(stmt),
                      mysql_stmt_error(stmt));
}

bool cv_maria_is_mariadb_odbc(const char *odbc) {
    char driver[256];
    const char *name = driver;

    if (!cv_odbc_conn_value(odbc, "Driver", driver, sizeof(driver)))
        return false;
    for (char *c = driver; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    /* cv_odbc_conn_value() removes the braces of {MariaDB Unicode}, but a value
     * written with stray spaces or braces of its own should still match. */
    while (*name == ' ' || *name == '{')
        name++;
    return !strncmp(name, "maria", 5) || !strncmp(name, "mysql", 5) || strstr(name, "libmaodbc");
}

/* Infile callbacks that refuse: installed whenever no cv_maria_load() runs. */
static int refuse_init(void **ptr, const char *filename, void *userdata) {
    (void)filename;
    (void)userdata;
    *ptr = NULL;
    return 1;
}

static int refuse_read(void *ptr, char *buf, unsigned int len) {
    (void)ptr;
    (void)buf;
    (void)len;
    return -1;
}

static void refuse_end(void *ptr) {
    (void)ptr;
}

static int refuse_error(void *ptr, char *buf, unsigned int len) {
    (void)ptr;
    snprintf(buf, len, "LOAD DATA LOCAL INFILE is only served by cv_maria_load()");
    return CR_UNKNOWN_ERROR;
}

static void refuse_local_files(MYSQL *mysql) {
    mysql_set_local_infile_handler(mysql, refuse_init, refuse_read, refuse_end, refuse_error, NULL);
}

cv_maria *cv_maria_connect(const char *odbc, char *errbuf, size_t errlen) {
    cv_maria *m = NULL;
    char port[32], database[256];
    unsigned int local_infile = 1, timeout = CONNECT_TIMEOUT;
    bool ok = false;

    pthread_once(&library_once, library_init);
    if (library_status != 0) {
        cv_err_set(errbuf, errlen, CV_ERR_ODBC, "cannot initialise libmariadb");
        goto out;
    }
    m = calloc(1, sizeof(*m));
    if (!m) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (!cv_odbc_conn_value(odbc, "Server", m->host, sizeof(m->host)))
        cv_odbc_conn_value(odbc, "Host", m->host, sizeof(m->host));
    if (!cv_odbc_conn_value(odbc, "UID", m->user, sizeof(m->user)))
        cv_odbc_conn_value(odbc, "User", m->user, sizeof(m->user));
    if (!cv_odbc_conn_value(odbc, "PWD", m->password, sizeof(m->password)))
        cv_odbc_conn_value(odbc, "Password", m->password, sizeof(m->password));
    if (!cv_odbc_conn_value(odbc, "Database", database, sizeof(database)) &&
        !cv_odbc_conn_value(odbc, "DB", database, sizeof(database)))
        database[0] = '\0';
    cv_odbc_conn_value(odbc, "Socket", m->socket, sizeof(m->socket));
    m->port = 3306;
    if (cv_odbc_conn_value(odbc, "Port", port, sizeof(port)) && port[0]) {
        char *end;
        long value;
        errno = 0;
        value = strtol(port, &end, 10);
        if (errno || *end || end == port || value < 1 || value > 65535) {
            cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "invalid Port in connection string: %s",
                       port);
            goto out;
        }
        m->port = (unsigned int)value;
    }

    m->mysql = mysql_init(NULL);
    if (!m->mysql) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    mysql_options(m->mysql, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    mysql_options(m->mysql, MYSQL_OPT_LOCAL_INFILE, &local_infile);
    mysql_options(m->mysql, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    refuse_local_files(m->mysql);
    if (!mysql_real_connect(m->mysql, m->host[0] ? m->host : NULL, m->user[0] ? m->user : NULL,
                            m->password, database[0] ? database : NULL, m->port,
                            m->socket[0] ? m->socket : NULL, 0)) {
        conn_error(m->mysql, "cannot connect", errbuf, errlen);
        goto out;
    }
    m->thread_id = mysql_thread_id(m->mysql);
    /* A vanished server ends the connection in seconds (cv_tcp.h); a local
     * socket has no such options. */
    if (!m->socket[0])
        cv_tcp_keepalive((int)mysql_get_socket(m->mysql));
    if (cv_maria_exec(m, "SET autocommit = 0", errbuf, errlen))
        goto out;
    ok = true;
out:
    if (!ok) {
        cv_maria_destroy(m);
        m = NULL;
    }
    return m;
}

void cv_maria_destroy(cv_maria *m) {
    if (!m)
        return;
    if (m->res)
        mysql_free_result(m->res);
    if (m->mysql)
        mysql_close(m->mysql); /* the server rolls back an open transaction */
    wipe(m->password, sizeof(m->password));
    free(m);
}

cv_err cv_maria_exec(cv_maria *m, const char *sql, char *errbuf, size_t errlen) {
    MYSQL_RES *res;

    if (mysql_real_query(m->mysql, sql, strlen(sql)))
        return conn_error(m->mysql, "statement failed", errbuf, errlen);
    /* A statement that returns rows after all must have them read before the
     * connection can run the next one. */
    if (mysql_field_count(m->mysql)) {
        res = mysql_store_result(m->mysql);
        if (!res)
            return conn_error(m->mysql, "statement failed", errbuf, errlen);
        mysql_free_result(res);
    }
    return CV_OK;
}

cv_err cv_maria_exec_params(cv_maria *m, const char *sql, int nparams, const char *const *values,
                            char *sqlstate, char *errbuf, size_t errlen) {
    MYSQL_BIND bind[MAX_PARAMS];
    unsigned long lengths[MAX_PARAMS];
    my_bool nulls[MAX_PARAMS];
    MYSQL_STMT *stmt = NULL;
    cv_err err = CV_OK;

    if (sqlstate)
        sqlstate[0] = '\0';
    if (nparams < 0 || nparams > MAX_PARAMS) {
        err = cv_err_set(errbuf, errlen, CV_ERR_INVALID, "too many parameters");
        goto out;
    }
    stmt = mysql_stmt_init(m->mysql);
    if (!stmt) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (mysql_stmt_prepare(stmt, sql, strlen(sql))) {
        err = stmt_error(stmt, "statement failed", sqlstate, errbuf, errlen);
        goto out;
    }
    if (mysql_stmt_param_count(stmt) != (unsigned long)nparams) {
        err = cv_err_set(errbuf, errlen, CV_ERR_INVALID, "statement has %lu parameters, given %d",
                         mysql_stmt_param_count(stmt), nparams);
        goto out;
    }
    memset(bind, 0, sizeof(bind));
    for (int i = 0; i < nparams; i++) {
        nulls[i] = values[i] == NULL;
        lengths[i] = values[i] ? strlen(values[i]) : 0;
        bind[i].buffer_type = MYSQL_TYPE_STRING;
        bind[i].buffer = (char *)values[i]; /* only read: parameters are input */
        bind[i].buffer_length = lengths[i];
        bind[i].length = &lengths[i];
        bind[i].is_null = &nulls[i];
    }
    if (nparams && mysql_stmt_bind_param(stmt, bind)) {
        err = stmt_error(stmt, "statement failed", sqlstate, errbuf, errlen);
        goto out;
    }
    if (mysql_stmt_execute(stmt)) {
        err = stmt_error(stmt, "statement failed", sqlstate, errbuf, errlen);
        goto out;
    }
out:
    if (stmt)
        mysql_stmt_close(stmt); /* also discards result rows, if any came */
    return err;
}

cv_err cv_maria_query_int64(cv_maria *m, const char *sql, long long *value, char *errbuf,
                            size_t errlen) {
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    cv_err err = CV_OK;
    char *end;

    if (mysql_real_query(m->mysql, sql, strlen(sql))) {
        err = conn_error(m->mysql, "query failed", errbuf, errlen);
        goto out;
    }
    res = mysql_store_result(m->mysql);
    if (!res) {
        if (mysql_errno(m->mysql))
            err = conn_error(m->mysql, "query failed", errbuf, errlen);
        else
            err = cv_err_set(errbuf, errlen, CV_ERR_INVALID, "statement returns no rows");
        goto out;
    }
    row = mysql_fetch_row(res);
    if (!row) {
        err = CV_ERR_NOT_FOUND;
        goto out;
    }
    if (!row[0]) {
        err = cv_err_set(errbuf, errlen, CV_ERR_INVALID, "query returned NULL, not an integer");
        goto out;
    }
    errno = 0;
    *value = strtoll(row[0], &end, 10);
    if (errno || end == row[0] || *end)
        err = cv_err_set(errbuf, errlen, CV_ERR_INVALID, "query returned '%.64s', not an integer",
                         row[0]);
out:
    if (res)
        mysql_free_result(res);
    return err;
}

static int load_init(void **ptr, const char *filename, void *userdata) {
    (void)filename; /* the statement's file name means nothing here */
    *ptr = userdata;
    return 0;
}

static int load_read(void *ptr, char *buf, unsigned int len) {
    struct load *load = ptr;
    long n = load->read(load->ctx, buf, len);

    if (n < 0) {
        load->aborted = true;
        return -1;
    }
    if ((unsigned long)n > len) {
        load->overrun = true;
        return -1;
    }
    return (int)n;
}

static void load_end(void *ptr) {
    (void)ptr;
}

static int load_error(void *ptr, char *buf, unsigned int len) {
    (void)ptr;
    snprintf(buf, len, "load aborted by its data source");
    return CR_UNKNOWN_ERROR;
}

/* The number after `label` in mysql_info() text, 0 if it is not there. */
static long long info_count(const char *info, const char *label) {
    const char *at = info ? strstr(info, label) : NULL;
    return at ? strtoll(at + strlen(label), NULL, 10) : 0;
}

/* Fails a load that raised warnings or skipped rows, with the first warning. */
static cv_err warning_error(cv_maria *m, unsigned int warnings, long long skipped, char *errbuf,
                            size_t errlen) {
    MYSQL_RES *res = NULL;
    MYSQL_ROW row = NULL;
    const char *query = "SHOW WARNINGS LIMIT 1";

    if (!mysql_real_query(m->mysql, query, strlen(query)) && (res = mysql_store_result(m->mysql)) &&
        mysql_num_fields(res) >= 3)
        row = mysql_fetch_row(res);
    if (row)
        cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                   "%u warning(s), %lld row(s) skipped; first: %s %s: %s", warnings, skipped,
                   row[0] ? row[0] : "", row[1] ? row[1] : "", row[2] ? row[2] : "");
    else
        cv_err_set(errbuf, errlen, CV_ERR_INVALID, "%u warning(s), %lld row(s) skipped", warnings,
                   skipped);
    if (res)
        mysql_free_result(res);
    return CV_ERR_INVALID;
}

cv_err cv_maria_load(cv_maria *m, const char *load_sql, cv_maria_read_fn read, void *ctx,
                     long long *rows, char *errbuf, size_t errlen) {
    struct load load = {.read = read, .ctx = ctx};
    unsigned int warnings;
    long long skipped;
    cv_err err = CV_OK;
    int rc;

    mysql_set_local_infile_handler(m->mysql, load_init, load_read, load_end, load_error, &load);
    rc = mysql_real_query(m->mysql, load_sql, strlen(load_sql));
    /* From here no request for a local file may reach the reader (or &load,
     * which goes out of scope). */
    refuse_local_files(m->mysql);
    /* libmariadb ends the data with an empty packet when the reader fails, so
     * the server may have taken the rows read so far: the caller rolls back. */
    if (load.aborted) {
        err = cv_err_set(errbuf, errlen, CV_ERR_CANCELLED, "load aborted by its data source");
        goto out;
    }
    if (load.overrun) {
        err = cv_err_set(errbuf, errlen, CV_ERR_INVALID,
                         "load reader returned more bytes than asked for");
        goto out;
    }
    if (rc) {
        err = conn_error(m->mysql, "load failed", errbuf, errlen);
        goto out;
    }
    if (mysql_field_count(m->mysql)) {
        err = cv_err_set(errbuf, errlen, CV_ERR_INVALID, "load statement returned rows");
        mysql_free_result(mysql_store_result(m->mysql));
        goto out;
    }
    /* The server cannot stop a LOCAL transfer halfway, so it turns bad values
     * and duplicate keys into warnings and skipped rows instead of errors. */
    warnings = mysql_warning_count(m->mysql);
    skipped = info_count(mysql_info(m->mysql), "Skipped: ");
    if (warnings || skipped) {
        err = warning_error(m, warnings, skipped, errbuf, errlen);
        goto out;
    }
    *rows = (long long)mysql_affected_rows(m->mysql);
out:
    return err;
}

/* Frees the current result, reading and discarding any rows left. */
static void query_end(cv_maria *m) {
    if (m->res) {
        mysql_free_result(m->res);
        m->res = NULL;
    }
}

cv_err cv_maria_query(cv_maria *m, const char *sql, char *errbuf, size_t errlen) {
    query_end(m);
    if (mysql_real_query(m->mysql, sql, strlen(sql)))
        return conn_error(m->mysql, "query failed", errbuf, errlen);
    m->res = mysql_use_result(m->mysql);
    if (!m->res) {
        if (mysql_errno(m->mysql))
            return conn_error(m->mysql, "query failed", errbuf, errlen);
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "statement returns no rows");
    }
    return CV_OK;
}

int cv_maria_ncols(const cv_maria *m) {
    return m->res ? (int)mysql_num_fields(m->res) : 0;
}

cv_err cv_maria_fetch(cv_maria *m, const char *const **values, const unsigned long **lengths,
                      char *errbuf, size_t errlen) {
    MYSQL_ROW row;

    if (!m->res)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "no query to fetch from");
    row = mysql_fetch_row(m->res);
    if (!row) {
        if (mysql_errno(m->mysql))
            return conn_error(m->mysql, "fetch failed", errbuf, errlen);
        return CV_ERR_NOT_FOUND;
    }
    *values = (const char *const *)row;
    *lengths = mysql_fetch_lengths(m->res);
    return CV_OK;
}

void cv_maria_cancel(cv_maria *m) {
    unsigned int timeout = CANCEL_TIMEOUT;
    char kill[64];
    MYSQL *killer;

    if (!m || !m->thread_id)
        return;
    killer = mysql_init(NULL);
    if (!killer)
        return;
    mysql_options(killer, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(killer, MYSQL_OPT_READ_TIMEOUT, &timeout);
    mysql_options(killer, MYSQL_OPT_WRITE_TIMEOUT, &timeout);
    refuse_local_files(killer);
    /* Errors are ignored: the query may have ended by itself meanwhile, and a
     * cancel that cannot reach the server has nobody to report to. */
    if (mysql_real_connect(killer, m->host[0] ? m->host : NULL, m->user[0] ? m->user : NULL,
                           m->password, NULL, m->port, m->socket[0] ? m->socket : NULL, 0)) {
        snprintf(kill, sizeof(kill), "KILL QUERY %lu", m->thread_id);
        mysql_real_query(killer, kill, strlen(kill));
    }
    mysql_close(killer);
}
