/*
 * cv_pg.c - libpq connection, COPY FROM STDIN and COPY TO STDOUT in text
 * format. The rows arrive already in COPY's text format (cv_transfer.c writes
 * it) and are sent in chunks of COPY_CHUNK bytes.
 */
#include "cv_pg.h"

#include "cv_odbc.h"
#include "cv_tcp.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define COPY_CHUNK (1u << 20)

struct cv_pg {
    PGconn *conn;
    char *buf;
    size_t len;
    bool in_copy;
    char *out_chunk; /* last chunk of a COPY TO STDOUT, freed with PQfreemem */
};

/* Appends key='value' with libpq's quoting (backslash and single quote). */
static void add_param(char *out, size_t outlen, size_t *used, const char *key, const char *value) {
    int n = snprintf(out + *used, outlen - *used, "%s%s='", *used ? " " : "", key);
    if (n < 0)
        return;
    *used += (size_t)n;
    for (const char *v = value; *v && *used + 3 < outlen; v++) {
        if (*v == '\\' || *v == '\'')
            out[(*used)++] = '\\';
        out[(*used)++] = *v;
    }
    if (*used + 1 < outlen)
        out[(*used)++] = '\'';
    out[*used] = '\0';
}

char *cv_pg_conninfo_from_odbc(const char *odbc, char *errbuf, size_t errlen) {
    static const char *const map[][3] = {
        {"Server", "Servername", "host"}, {"Port", NULL, "port"},
        {"Database", NULL, "dbname"},     {"UID", "Username", "user"},
        {"PWD", "Password", "password"},  {"SSLmode", NULL, "sslmode"},
    };
    static const struct {
        const char *key;
        int value;
    } tcp[] = {{"keepalives_idle", CV_TCP_IDLE_S},
               {"keepalives_interval", CV_TCP_INTERVAL_S},
               {"keepalives_count", CV_TCP_COUNT},
               {"tcp_user_timeout", CV_TCP_USER_TIMEOUT_MS}};
    size_t cap = strlen(odbc) * 2 + 256, used = 0;
    char *out = malloc(cap), value[1024];

    if (!out) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (cv_odbc_conn_value(odbc, map[i][0], value, sizeof(value)) ||
            (map[i][1] && cv_odbc_conn_value(odbc, map[i][1], value, sizeof(value))))
            add_param(out, cap, &used, map[i][2], value);
    }
    add_param(out, cap, &used, "application_name", "convutell-worker");
    /* A vanished server ends the connection in seconds (cv_tcp.h). */
    for (size_t i = 0; i < sizeof(tcp) / sizeof(tcp[0]); i++) {
        snprintf(value, sizeof(value), "%d", tcp[i].value);
        add_param(out, cap, &used, tcp[i].key, value);
    }
    return out;
}

cv_pg *cv_pg_connect(const char *odbc, char *errbuf, size_t errlen) {
    char *conninfo = cv_pg_conninfo_from_odbc(odbc, errbuf, errlen);
    cv_pg *pg;

    if (!conninfo)
        return NULL;
    pg = calloc(1, sizeof(*pg));
    if (!pg || !(pg->buf = malloc(COPY_CHUNK + 8))) {
        cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        free(conninfo);
        cv_pg_destroy(pg);
        return NULL;
    }
    pg->conn = PQconnectdb(conninfo);
    free(conninfo);
    if (PQstatus(pg->conn) != CONNECTION_OK) {
        cv_err_set(errbuf, errlen, CV_ERR_ODBC, "cannot connect: %s", PQerrorMessage(pg->conn));
        cv_pg_destroy(pg);
        return NULL;
    }
    return pg;
}

void cv_pg_destroy(cv_pg *pg) {
    if (!pg)
        return;
    if (pg->out_chunk)
        PQfreemem(pg->out_chunk);
    if (pg->conn)
        PQfinish(pg->conn); /* an open transaction is rolled back by the server */
    free(pg->buf);
    free(pg);
}

static cv_err result_error(PGresult *res, PGconn *conn, const char *what, char *errbuf,
                           size_t errlen) {
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    cv_err_set(errbuf, errlen, CV_ERR_ODBC, "%s: %s: %s", what, state ? state : "08000",
               PQerrorMessage(conn));
    /* libpq messages end with a newline; keep error texts on one line. */
    if (errbuf && errlen) {
        size_t n = strlen(errbuf);
        while (n && (errbuf[n - 1] == '\n' || errbuf[n - 1] == ' '))
            errbuf[--n] = '\0';
    }
    PQclear(res);
    return CV_ERR_ODBC;
}

cv_err cv_pg_exec(cv_pg *pg, const char *sql, char *errbuf, size_t errlen) {
    PGresult *res = PQexec(pg->conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        return result_error(res, pg->conn, "statement failed", errbuf, errlen);
    PQclear(res);
    return CV_OK;
}

cv_err cv_pg_exec_params(cv_pg *pg, const char *sql, int nparams, const char *const *values,
                         char *sqlstate, char *errbuf, size_t errlen) {
    PGresult *res = PQexecParams(pg->conn, sql, nparams, NULL, values, NULL, NULL, 0);
    if (sqlstate)
        sqlstate[0] = '\0';
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (sqlstate && state)
            snprintf(sqlstate, 6, "%s", state);
        return result_error(res, pg->conn, "statement failed", errbuf, errlen);
    }
    PQclear(res);
    return CV_OK;
}

cv_err cv_pg_query_int64(cv_pg *pg, const char *sql, int nparams, const char *const *values,
                         long long *value, char *errbuf, size_t errlen) {
    PGresult *res = PQexecParams(pg->conn, sql, nparams, NULL, values, NULL, NULL, 0);
    char *end;

    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return result_error(res, pg->conn, "query failed", errbuf, errlen);
    if (PQntuples(res) == 0) {
        PQclear(res);
        return CV_ERR_NOT_FOUND;
    }
    *value = strtoll(PQgetvalue(res, 0, 0), &end, 10);
    PQclear(res);
    return CV_OK;
}

cv_err cv_pg_copy_begin(cv_pg *pg, const char *copy_sql, char *errbuf, size_t errlen) {
    PGresult *res = PQexec(pg->conn, copy_sql);
    if (PQresultStatus(res) != PGRES_COPY_IN)
        return result_error(res, pg->conn, "COPY failed", errbuf, errlen);
    PQclear(res);
    pg->in_copy = true;
    pg->len = 0;
    return CV_OK;
}

static cv_err flush(cv_pg *pg, char *errbuf, size_t errlen) {
    if (pg->len && PQputCopyData(pg->conn, pg->buf, (int)pg->len) != 1)
        return cv_err_set(errbuf, errlen, CV_ERR_ODBC, "COPY data not sent: %s",
                          PQerrorMessage(pg->conn));
    pg->len = 0;
    return CV_OK;
}

cv_err cv_pg_copy_raw(cv_pg *pg, const char *data, size_t len, char *errbuf, size_t errlen) {
    cv_err err;
    if (pg->len + len > COPY_CHUNK && (err = flush(pg, errbuf, errlen)))
        return err;
    /* Large pieces (the transfer's chunks) go out as they are, without a copy
     * into the buffer first; small ones are gathered. */
    if (len >= COPY_CHUNK / 4) {
        if ((err = flush(pg, errbuf, errlen)))
            return err;
        if (PQputCopyData(pg->conn, data, (int)len) != 1)
            return cv_err_set(errbuf, errlen, CV_ERR_ODBC, "COPY data not sent: %s",
                              PQerrorMessage(pg->conn));
        return CV_OK;
    }
    memcpy(pg->buf + pg->len, data, len);
    pg->len += len;
    return CV_OK;
}

cv_err cv_pg_copy_out_begin(cv_pg *pg, const char *copy_sql, char *errbuf, size_t errlen) {
    PGresult *res = PQexec(pg->conn, copy_sql);
    if (PQresultStatus(res) != PGRES_COPY_OUT)
        return result_error(res, pg->conn, "COPY TO STDOUT failed", errbuf, errlen);
    PQclear(res);
    return CV_OK;
}

cv_err cv_pg_copy_out_next(cv_pg *pg, const char **data, size_t *len, char *errbuf, size_t errlen) {
    PGresult *res;
    int n;

    if (pg->out_chunk) {
        PQfreemem(pg->out_chunk);
        pg->out_chunk = NULL;
    }
    n = PQgetCopyData(pg->conn, &pg->out_chunk, 0);
    if (n > 0) {
        *data = pg->out_chunk;
        *len = (size_t)n;
        return CV_OK;
    }
    if (n == -2)
        return cv_err_set(errbuf, errlen, CV_ERR_ODBC, "COPY TO STDOUT failed: %s",
                          PQerrorMessage(pg->conn));
    res = PQgetResult(pg->conn);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return result_error(res, pg->conn, "COPY TO STDOUT failed", errbuf, errlen);
    PQclear(res);
    while ((res = PQgetResult(pg->conn)))
        PQclear(res);
    return CV_ERR_NOT_FOUND;
}

void cv_pg_cancel(cv_pg *pg) {
    char why[256];
    PGcancel *cancel = PQgetCancel(pg->conn);
    if (cancel) {
        PQcancel(cancel, why, sizeof(why));
        PQfreeCancel(cancel);
    }
}

cv_err cv_pg_copy_end(cv_pg *pg, long long *rows, char *errbuf, size_t errlen) {
    PGresult *res;
    cv_err err = flush(pg, errbuf, errlen);

    pg->in_copy = false;
    if (err)
        return err;
    if (PQputCopyEnd(pg->conn, NULL) != 1)
        return cv_err_set(errbuf, errlen, CV_ERR_ODBC, "COPY not ended: %s",
                          PQerrorMessage(pg->conn));
    res = PQgetResult(pg->conn);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return result_error(res, pg->conn, "COPY failed", errbuf, errlen);
    *rows = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    while ((res = PQgetResult(pg->conn)))
        PQclear(res);
    return CV_OK;
}
