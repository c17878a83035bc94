/*
 * cv_api_console.c - the SQL console: POST /api/v1/projects/{id}/queries/run,
 * GET /api/v1/query-runs/{id} and POST /api/v1/query-runs/{id}/cancel.
 *
 * A statement is stored as a query run (runs/cv_query.h) and published as a
 * job message of kind "query" on convutell.queries, like every job: the API
 * never connects to a customer's database. The request then waits for the
 * worker's reply (cv_replies.h) up to wait_seconds and answers the result,
 * or 202 with the run's id when it takes longer. The rows as CSV or JSON
 * Lines are cv_api_export.c's.
 */
#include "cv_api_int.h"

#include "cv_id.h"
#include "cv_json.h"
#include "cv_kafka.h"
#include "cv_log.h"
#include "cv_maria.h"
#include "cv_message.h"
#include "cv_query.h"
#include "cv_replies.h"
#include "cv_retain.h"
#include "cv_sqlsplit.h"
#include "cv_store.h"
#include "cv_time.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define WAIT_DEFAULT_SECONDS 10
#define WAIT_MAX_SECONDS 60
#define STORE_LOOK_MS 1000 /* a reply that does not come: the store is read this often */

/* What a body asks to run. */
typedef struct console_req {
    const char *side; /* "origin" or "destination" */
    const char *sql;
    int64_t max_rows, timeout_seconds, wait_seconds;
    bool allow_writes;
    const cJSON *params;
} console_req;

/* Reads and checks a body; false having answered 422. */
static bool read_request(const cJSON *body, console_req *q, cv_http_response *res) {
    static const char *const fields[] = {
        "connection",   "sql",    "max_rows",     "timeout_seconds",
        "allow_writes", "params", "wait_seconds", NULL};
    const cJSON *p;
    cv_verr verr;
    int i = 0;

    *q = (console_req){.max_rows = CV_QUERY_ROWS_DEFAULT,
                       .timeout_seconds = CV_QUERY_TIMEOUT_DEFAULT,
                       .wait_seconds = WAIT_DEFAULT_SECONDS};
    if (cv_json_only(body, NULL, fields, "a console query", &verr) ||
        cv_json_get_str(body, NULL, "connection", true, CV_ID_LEN, &q->side, &verr) ||
        cv_json_get_str(body, NULL, "sql", true, CV_QUERY_SQL_MAX, &q->sql, &verr) ||
        cv_json_get_int(body, NULL, "max_rows", false, 1, CV_QUERY_ROWS_MAX, &q->max_rows, &verr) ||
        cv_json_get_int(body, NULL, "timeout_seconds", false, 1, CV_QUERY_TIMEOUT_MAX,
                        &q->timeout_seconds, &verr) ||
        cv_json_get_int(body, NULL, "wait_seconds", false, 0, WAIT_MAX_SECONDS, &q->wait_seconds,
                        &verr) ||
        cv_json_get_bool(body, NULL, "allow_writes", false, &q->allow_writes, &verr))
        goto bad;
    if (strcmp(q->side, "origin") != 0 && strcmp(q->side, "destination") != 0 &&
        !cv_id_valid(q->side)) {
        cv_verr_set(&verr, NULL, "connection",
                    "must be \"origin\", \"destination\" or the id of one of the project's "
                    "connections, not \"%s\"",
                    q->side);
        goto bad;
    }
    q->params = cJSON_GetObjectItemCaseSensitive(body, "params");
    if (q->params && !cJSON_IsNull(q->params) && !cJSON_IsArray(q->params)) {
        cv_verr_set(&verr, NULL, "params", "must be an array of values, one per ? in sql");
        goto bad;
    }
    if (q->params && cJSON_GetArraySize(q->params) > CV_QUERY_PARAMS_MAX) {
        cv_verr_set(&verr, NULL, "params", "at most %d values", CV_QUERY_PARAMS_MAX);
        goto bad;
    }
    const cJSON *list = cJSON_IsArray(q->params) ? q->params : NULL;
    cJSON_ArrayForEach(p, list) {
        char name[24];
        snprintf(name, sizeof(name), "params[%d]", i++);
        if (cJSON_IsObject(p) || cJSON_IsArray(p)) {
            cv_verr_set(&verr, NULL, name, "must be a string, a number, true, false or null");
            goto bad;
        }
        if (cJSON_IsString(p) && strlen(p->valuestring) > 65536) {
            cv_verr_set(&verr, NULL, name, "at most 65536 bytes");
            goto bad;
        }
    }
    return true;
bad:
    cv_api_field_error(res, &verr);
    return false;
}

/* Whether conn (a stored connection) is one the project may query: its own, or one of
 * its two ends. */
static bool of_project(const bson_t *project, const bson_t *conn, const char *project_id) {
    const char *owner = cv_mongo_doc_str(conn, "project_id"), *id = cv_mongo_doc_str(conn, "_id");
    const char *origin = cv_mongo_doc_str(project, "origin_connection_id");
    const char *dest = cv_mongo_doc_str(project, "destination_connection_id");

    return (owner && strcmp(owner, project_id) == 0) ||
           (id && ((origin && strcmp(id, origin) == 0) || (dest && strcmp(id, dest) == 0)));
}

/* The id of the connection asked for (the project's origin, its destination, or one of its
 * connections by id), and whether the statement is one (the worker checks again against the
 * database it reaches); false having answered. */
static bool pick_connection(cv_api *api, const char *project_id, const console_req *q,
                            char conn_id[CV_ID_LEN], cv_http_response *res) {
    bson_t *project = cv_api_load_cached(api, CV_COLL_PROJECTS, "project", project_id, res);
    bool side = !strcmp(q->side, "origin") || !strcmp(q->side, "destination");
    bson_t *conn = NULL;
    char key[48], why[256];
    const char *id, *odbc;
    bool ok = false;
    cv_verr verr;
    cv_err err;

    if (!project)
        return false;
    snprintf(key, sizeof(key), "%s_connection_id", q->side);
    if (!(id = side ? cv_mongo_doc_str(project, key) : q->side) || !cv_id_valid(id)) {
        cv_verr_set(&verr, NULL, "connection", "project %s has no %s connection", project_id,
                    q->side);
        cv_api_field_error(res, &verr);
        goto out;
    }
    snprintf(conn_id, CV_ID_LEN, "%s", id);
    if (side) {
        if (!(conn = cv_api_load_cached(api, CV_COLL_CONNECTIONS, "connection", conn_id, res)))
            goto out;
    } else if ((err = cv_mongo_find_id(api->mongo, CV_COLL_CONNECTIONS, conn_id, &conn, why,
                                       sizeof(why))) &&
               err != CV_ERR_NOT_FOUND) {
        cv_api_internal_error(res, err, why);
        goto out;
    } else if (err || bson_has_field(conn, "deleted_at") ||
               !of_project(project, conn, project_id)) {
        /* Another project's connection reads as one that does not exist. */
        cv_verr_set(&verr, NULL, "connection", "project %s has no connection '%s'", project_id,
                    conn_id);
        cv_api_field_error(res, &verr);
        goto out;
    }
    odbc = cv_mongo_doc_str(conn, "odbc");
    if (cv_sqlsplit_count(q->sql, odbc && cv_maria_is_mariadb_odbc(odbc)) != 1) {
        cv_verr_set(&verr, NULL, "sql",
                    "must be one statement (the console runs one at a time; a sql job runs "
                    "several)");
        cv_api_field_error(res, &verr);
        goto out;
    }
    ok = true;
out:
    bson_destroy(conn);
    bson_destroy(project);
    return ok;
}

/* A stored query run for the request, queued. */
static bool new_run(cv_api *api, const char *project_id, const console_req *q, const char *conn_id,
                    const cv_caller *who, bson_t *doc, char id[CV_ID_LEN], cv_http_response *res) {
    const cJSON *p;
    bson_t params;
    char key[16];
    int i = 0;

    if (!cv_api_new_doc(doc, id, CV_ID_LEN, who->user, res))
        return false;
    cv_retain_append_day(doc, cv_time_now_ms()); /* retention goes by it (cv_retain.h) */
    BSON_APPEND_UTF8(doc, "project_id", project_id);
    BSON_APPEND_UTF8(doc, "connection", q->side);
    BSON_APPEND_UTF8(doc, "connection_id", conn_id);
    BSON_APPEND_UTF8(doc, "sql", q->sql);
    const cJSON *list = cJSON_IsArray(q->params) ? q->params : NULL;
    BSON_APPEND_ARRAY_BEGIN(doc, "params", &params);
    cJSON_ArrayForEach(p, list) {
        snprintf(key, sizeof(key), "%d", i++);
        if (cJSON_IsString(p))
            BSON_APPEND_UTF8(&params, key, p->valuestring);
        else if (cJSON_IsBool(p))
            BSON_APPEND_BOOL(&params, key, cJSON_IsTrue(p));
        else if (cJSON_IsNumber(p) && p->valuedouble == floor(p->valuedouble) &&
                 fabs(p->valuedouble) < 9007199254740992.0)
            BSON_APPEND_INT64(&params, key, (int64_t)p->valuedouble);
        else if (cJSON_IsNumber(p))
            BSON_APPEND_DOUBLE(&params, key, p->valuedouble);
        else
            BSON_APPEND_NULL(&params, key);
    }
    bson_append_array_end(doc, &params);
    BSON_APPEND_INT64(doc, "max_rows", q->max_rows);
    BSON_APPEND_INT32(doc, "timeout_seconds", (int32_t)q->timeout_seconds);
    BSON_APPEND_BOOL(doc, "allow_writes", q->allow_writes);
    BSON_APPEND_UTF8(doc, "status", "queued");
    BSON_APPEND_UTF8(doc, "reply_to", cv_replies_name(api->replies));
    return true;
}

/* Publishes the query's job message; false having answered 503 (the run is
 * cancelled first, so that a message the broker took after all runs nothing). */
static bool publish(cv_api *api, const char *id, const char *project_id, const char *by,
                    cv_http_response *res) {
    cv_job job = {.attempt = 1, .max_attempts = 1};
    char why[512], ignored[256], *msg;
    bool now;
    cv_err err;

    snprintf(job.run_id, sizeof(job.run_id), "%s", id);
    snprintf(job.job_id, sizeof(job.job_id), "%s", id);
    snprintf(job.project_id, sizeof(job.project_id), "%s", project_id);
    snprintf(job.kind, sizeof(job.kind), "%s", cv_job_kind_str(CV_JOB_KIND_QUERY));
    snprintf(job.trigger, sizeof(job.trigger), "manual");
    job.queued_at_ms = cv_time_now_ms();
    if (!(msg = cv_job_encode(&job))) {
        cv_http_error(res, 500, "internal", NULL, "out of memory");
        return false;
    }
    err = cv_kafka_produce(api->producer, CV_TOPIC_QUERIES, id, msg, strlen(msg), NULL,
                           CV_API_PUBLISH_TIMEOUT_MS, why, sizeof(why));
    free(msg);
    if (!err)
        return true;
    cv_query_cancel(api->mongo, id, by, &now, ignored, sizeof(ignored));
    cv_api_internal_error(res, err, why);
    return false;
}

/* A value of a row as JSON: integers beyond 2^53 as text (JSON readers lose
 * their last digits), the rest as stored. */
cJSON *cv_api_query_value(const bson_iter_t *it) {
    char text[32];
    switch (bson_iter_type(it)) {
        case BSON_TYPE_INT32:
        case BSON_TYPE_INT64: {
            int64_t n = bson_iter_as_int64(it);
            if (n > -9007199254740992LL && n < 9007199254740992LL)
                return cJSON_CreateNumber((double)n);
            snprintf(text, sizeof(text), "%lld", (long long)n);
            return cJSON_CreateString(text);
        }
        case BSON_TYPE_DOUBLE: {
            double d = bson_iter_double(it);
            return isfinite(d) ? cJSON_CreateNumber(d)
                               : cJSON_CreateString(d > 0   ? "Infinity"
                                                    : d < 0 ? "-Infinity"
                                                            : "NaN");
        }
        case BSON_TYPE_BOOL:
            return cJSON_CreateBool(bson_iter_bool(it));
        case BSON_TYPE_UTF8:
            return cJSON_CreateString(bson_iter_utf8(it, NULL));
        default:
            return cJSON_CreateNull();
    }
}

/* Appends the rows of one stored array of rows to out. */
static void add_rows(cJSON *out, const bson_t *doc, const char *key) {
    bson_iter_t it, rows, row;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &rows))
        return;
    while (bson_iter_next(&rows)) {
        cJSON *values = cJSON_CreateArray();
        if ((BSON_ITER_HOLDS_DOCUMENT(&rows) || BSON_ITER_HOLDS_ARRAY(&rows)) &&
            bson_iter_recurse(&rows, &row))
            while (bson_iter_next(&row))
                cJSON_AddItemToArray(values, cv_api_query_value(&row));
        cJSON_AddItemToArray(out, values);
    }
}

cv_err cv_api_query_chunk(cv_api *api, const char *id, int64_t seq, bson_t **chunk, char *why,
                          size_t len) {
    char chunk_id[CV_QUERY_CHUNK_ID_LEN];
    cv_query_chunk_id(id, seq, chunk_id);
    return cv_mongo_find_id(api->mongo, CV_COLL_QUERY_ROWS, chunk_id, chunk, why, len);
}

/* A query run as the API shows it, its rows read from its chunks if need be. */
static cJSON *run_json(cv_api *api, const bson_t *doc) {
    static const char *const kept[] = {
        "id",         "project_id",      "connection", "status",   "sql",
        "created_at", "created_by",      "started_at", "ended_at", "allow_writes",
        "max_rows",   "timeout_seconds", "elapsed_ms", "columns",  "row_count",
        "truncated",  "rows_affected",   "error",      "params",   NULL};
    const char *id = cv_mongo_doc_str(doc, "_id");
    int64_t chunks = cv_mongo_doc_int(doc, "chunks", 0);
    bson_t head = BSON_INITIALIZER;
    cJSON *all, *out = cJSON_CreateObject(), *rows;

    /* The rows are converted once, below, from the stored values. */
    bson_copy_to_excluding_noinit(doc, &head, "rows", NULL);
    all = cv_api_doc_to_json(&head);
    bson_destroy(&head);

    for (int i = 0; kept[i] && all && out; i++) {
        cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(all, kept[i]);
        if (v)
            cJSON_AddItemToObject(out, kept[i], v);
    }
    cJSON_Delete(all);
    if (!out || !cv_query_final(cv_mongo_doc_str(doc, "status")))
        return out;
    rows = cJSON_AddArrayToObject(out, "rows");
    if (!chunks)
        add_rows(rows, doc, "rows");
    for (int64_t seq = 0; seq < chunks; seq++) {
        bson_t *chunk = NULL;
        char why[256];
        if (cv_api_query_chunk(api, id, seq, &chunk, why, sizeof(why)) != CV_OK) {
            cv_log_warn("query run %s: chunk %lld not read: %s", id, (long long)seq, why);
            break;
        }
        add_rows(rows, chunk, "rows");
        bson_destroy(chunk);
    }
    return out;
}

/* A run still "running" long past its deadline: its worker is gone. Ends it
 * as failed (once: the write names the state it expects). */
static void give_up_if_lost(cv_api *api, bson_t **doc) {
    const char *status = cv_mongo_doc_str(*doc, "status");
    const char *since = cv_mongo_doc_str(
        *doc, strcmp(status ? status : "", "running") == 0 ? "started_at" : "created_at");
    int64_t at = 0, limit = cv_mongo_doc_int(*doc, "timeout_seconds", 0) * 1000;
    char id[CV_ID_LEN], why[256];

    if (cv_query_final(status) || !since || cv_time_parse(since, &at) != 0 ||
        cv_time_now_ms() < at + limit + CV_QUERY_LOST_MS)
        return;
    snprintf(id, sizeof(id), "%s", cv_mongo_doc_str(*doc, "_id"));
    if (cv_query_give_up(api->mongo, id, status,
                         strcmp(status, "running") == 0
                             ? "the worker that ran it stopped answering"
                             : "no worker took it in time (is a worker running?)",
                         why, sizeof(why)) != CV_OK)
        return;
    bson_destroy(*doc);
    *doc = NULL;
    cv_mongo_find_id(api->mongo, CV_COLL_QUERY_RUNS, id, doc, why, sizeof(why));
}

/* Answers 200 with a final run, 202 with one still going. */
static void answer_run(cv_api *api, const bson_t *doc, cv_http_response *res) {
    const char *id = cv_mongo_doc_str(doc, "_id");
    res->body = run_json(api, doc);
    res->status = cv_query_final(cv_mongo_doc_str(doc, "status")) ? 200 : 202;
    if (res->status == 202)
        snprintf(res->location, sizeof(res->location), "/api/v1/query-runs/%s", id);
}

/* Waits for the run's end: the worker's reply, or the store's word. */
static bson_t *wait_end(cv_api *api, cv_replies_waiter *w, const char *id, int64_t wait_ms,
                        cv_http_response *res) {
    int64_t deadline = cv_time_mono_ms() + wait_ms;
    bson_t *doc = NULL;
    char why[256];
    cv_err err;

    for (;;) {
        int64_t left = deadline - cv_time_mono_ms();
        bool came = left > 0 &&
                    cv_replies_wait(api->replies, w, left < STORE_LOOK_MS ? left : STORE_LOOK_MS);
        if ((err = cv_mongo_find_id(api->mongo, CV_COLL_QUERY_RUNS, id, &doc, why, sizeof(why)))) {
            cv_api_internal_error(res, err, why);
            return NULL;
        }
        if (came || left <= 0 || cv_query_final(cv_mongo_doc_str(doc, "status")))
            return doc;
        bson_destroy(doc);
        doc = NULL;
    }
}

void cv_api_run_query(cv_api *api, const char *project_id, const cv_http_request *req,
                      cv_http_response *res) {
    const cv_caller *who = cv_api_caller(req);
    cJSON *body = cv_api_parse_body(req, res);
    bson_t doc = BSON_INITIALIZER, *ended = NULL;
    char conn_id[CV_ID_LEN], id[CV_ID_LEN], why[512];
    cv_replies_waiter *w = NULL;
    console_req q;
    cv_err err;

    if (!body || !read_request(body, &q, res))
        goto out;
    if (q.allow_writes && !cv_api_require(who, CV_ROLE_EDITOR, res))
        goto out;
    if (!pick_connection(api, project_id, &q, conn_id, res) ||
        !new_run(api, project_id, &q, conn_id, who, &doc, id, res))
        goto out;
    if ((err = cv_mongo_insert(api->mongo, CV_COLL_QUERY_RUNS, &doc, why, sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    /* Listening before the message goes: the reply cannot come first. */
    if (!(w = cv_replies_expect(api->replies, id))) {
        cv_http_error(res, 500, "internal", NULL, "out of memory");
        goto out;
    }
    if (!publish(api, id, project_id, who->user, res))
        goto out;
    /* The server closes a connection silent for http_idle_seconds, and a
     * request that waits is silent: it answers 202 before that. */
    if (q.wait_seconds > api->cfg.http_idle_seconds - 2)
        q.wait_seconds = api->cfg.http_idle_seconds > 2 ? api->cfg.http_idle_seconds - 2 : 0;
    if ((ended = wait_end(api, w, id, q.wait_seconds * 1000, res)))
        answer_run(api, ended, res);
out:
    cv_replies_forget(api->replies, w);
    bson_destroy(ended);
    bson_destroy(&doc);
    cJSON_Delete(body);
}

bson_t *cv_api_load_query_run(cv_api *api, const char *id, const cv_http_request *req,
                              cv_http_response *res) {
    bson_t *doc = NULL;
    char why[256];
    cv_err err = cv_id_valid(id)
                     ? cv_mongo_find_id(api->mongo, CV_COLL_QUERY_RUNS, id, &doc, why, sizeof(why))
                     : CV_ERR_NOT_FOUND;

    (void)req;
    if (err == CV_ERR_NOT_FOUND) { /* an administrator's look at a run that is not there */
        cv_http_error(res, 404, "not_found", NULL, "no query run with id '%s'", id);
        return NULL;
    }
    if (err) {
        cv_api_internal_error(res, err, why);
        return NULL;
    }
    give_up_if_lost(api, &doc);
    if (!doc)
        cv_http_error(res, 503, "unavailable", NULL, "query run %s could not be read again", id);
    return doc;
}

void cv_api_get_query_run(cv_api *api, const char *id, const cv_http_request *req,
                          cv_http_response *res) {
    bson_t *doc = cv_api_load_query_run(api, id, req, res);
    if (doc)
        answer_run(api, doc, res);
    bson_destroy(doc);
}

void cv_api_cancel_query_run(cv_api *api, const char *id, const cv_http_request *req,
                             cv_http_response *res) {
    bson_t *doc = cv_api_load_query_run(api, id, req, res);
    char why[256];
    bool now = false;
    cv_err err;

    if (!doc)
        return;
    err = cv_query_cancel(api->mongo, id, cv_api_caller(req)->user, &now, why, sizeof(why));
    if (err == CV_ERR_CONFLICT) {
        cv_http_error(res, 409, "conflict", NULL, "query run %s has ended (%s)", id,
                      cv_mongo_doc_str(doc, "status"));
    } else if (err) {
        cv_api_internal_error(res, err, why);
    } else {
        res->status = 202;
        res->body = cJSON_CreateObject();
        cJSON_AddStringToObject(res->body, "id", id);
        cJSON_AddStringToObject(res->body, "status", now ? "cancelled" : "cancelling");
        snprintf(res->location, sizeof(res->location), "/api/v1/query-runs/%s", id);
    }
    bson_destroy(doc);
}
