/*
 * cv_message.c - JSON encoding and strict validation of job messages and
 * result events. The rules here and the JSON Schema files next to this file
 * describe the same contract; tests/unit/test_message.c checks both against
 * the same sample messages.
 */
#include "cv_message.h"

#include "cv_time.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

static const char *const job_fields[] = {
    "schema",       "run_id",          "job_id",     "project_id", "job_version",
    "kind",         "attempt",         "queued_at",  "trigger",    "tick_at",
    "max_attempts", "backoff_seconds", "not_before", "parameters", NULL};
static const char *const trigger_names[] = {"manual", "schedule", "external", NULL};
static const char *const limit_fields[] = {"cpu_seconds",  "memory_mb", "open_files",
                                           "file_size_mb", "processes", NULL};
static const char *const mode_names[] = {"append", "replace", "upsert"};
static const char *const method_names[] = {"auto", "copy", "insert", "load_data"};
static const char *const event_fields[] = {
    "schema",        "event_id",    "type",    "time",         "run_id",
    "job_id",        "project_id",  "worker",  "attempt",      "rows_read",
    "rows_written",  "duration_ms", "error",   "watermark",    "rows_per_second",
    "rows_expected", "stream",      "line",    "line_cut",     "exit_code",
    "lines_dropped", "trigger",     "tick_at", "max_attempts", "next_attempt_at",
    "queued_at",     NULL};
static const char *const event_types[] = {CV_EVENT_RUN_QUEUED,
                                          CV_EVENT_RUN_STARTED,
                                          CV_EVENT_RUN_PROGRESS,
                                          CV_EVENT_RUN_SUCCEEDED,
                                          CV_EVENT_RUN_FAILED,
                                          CV_EVENT_RUN_CANCELLED,
                                          CV_EVENT_RUN_TIMED_OUT,
                                          CV_EVENT_JOB_REJECTED,
                                          CV_EVENT_RUN_LOG,
                                          CV_EVENT_RUN_RETRYING,
                                          NULL};
static void copy_str(char *dst, size_t len, const char *src) {
    size_t n;
    snprintf(dst, len, "%s", src ? src : "");
    /* A cut must not split a UTF-8 character: drop a partial one at the end. */
    n = strlen(dst);
    if (src && n < strlen(src)) {
        size_t start = n;
        while (start > 0 && ((unsigned char)dst[start - 1] & 0xC0) == 0x80)
            start--;
        if (start > 0 && ((unsigned char)dst[start - 1] & 0x80)) {
            unsigned char lead = (unsigned char)dst[start - 1];
            size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
            if (n - (start - 1) < want)
                dst[start - 1] = '\0';
        }
    }
}

const char *cv_load_mode_str(cv_load_mode mode) {
    return (int)mode >= 0 && mode <= CV_MODE_UPSERT ? mode_names[mode] : "append";
}

const char *cv_load_method_str(cv_load_method method) {
    return (int)method >= 0 && method <= CV_LOAD_LOAD_DATA ? method_names[method] : "auto";
}

static bool is_identifier(const char *s) {
    return cv_json_is_table_name(s) && !strchr(s, '.');
}

cv_err cv_load_spec_decode(const cJSON *obj, const char *prefix, cv_load_spec *out, cv_verr *verr) {
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(obj, "key"), *item;
    const char *mode;
    cv_err err;
    int i;

    memset(out, 0, sizeof(*out));
    if ((err = cv_json_get_str(obj, prefix, "watermark_column", false, 63, &mode, verr)))
        return err;
    if (mode && !is_identifier(mode))
        return cv_verr_set(verr, prefix, "watermark_column",
                           "must be a column name (letters, digits, underscores)");
    if (mode)
        copy_str(out->watermark, sizeof(out->watermark), mode);
    {
        int64_t timeout = 0;
        if ((err =
                 cv_json_get_int(obj, prefix, "timeout_seconds", false, 1, 86400, &timeout, verr)))
            return err;
        out->timeout_seconds = (int)timeout;
    }
    if ((err = cv_json_get_str(obj, prefix, "mode", false, 16, &mode, verr)))
        return err;
    if (mode) {
        for (i = 0; i <= CV_MODE_UPSERT && strcmp(mode, mode_names[i]) != 0; i++)
            ;
        if (i > CV_MODE_UPSERT)
            return cv_verr_set(verr, prefix, "mode",
                               "must be \"append\", \"replace\" or \"upsert\", not \"%s\"", mode);
        out->mode = (cv_load_mode)i;
    }
    if ((err = cv_json_get_str(obj, prefix, "load_method", false, 16, &mode, verr)))
        return err;
    if (mode) {
        for (i = 0; i <= CV_LOAD_LOAD_DATA && strcmp(mode, method_names[i]) != 0; i++)
            ;
        if (i > CV_LOAD_LOAD_DATA)
            return cv_verr_set(verr, prefix, "load_method",
                               "must be \"auto\", \"copy\", \"insert\" or \"load_data\", not "
                               "\"%s\"",
                               mode);
        out->method = (cv_load_method)i;
    }
    if ((err = cv_json_get_str(obj, prefix, "checkpoint_column", false, 63, &mode, verr)))
        return err;
    if (mode && !is_identifier(mode))
        return cv_verr_set(verr, prefix, "checkpoint_column",
                           "must be a column name (letters, digits, underscores)");
    if (mode)
        copy_str(out->checkpoint, sizeof(out->checkpoint), mode);
    if ((err = cv_json_get_int(obj, prefix, "batch_rows", false, 1000, 1000000000, &out->batch_rows,
                               verr)))
        return err;
    if (out->batch_rows && !out->checkpoint[0])
        return cv_verr_set(verr, prefix, "checkpoint_column", "is required with batch_rows");
    if (!out->batch_rows && out->checkpoint[0])
        return cv_verr_set(verr, prefix, "batch_rows", "is required with checkpoint_column");
    if (out->batch_rows && out->mode == CV_MODE_REPLACE)
        return cv_verr_set(verr, prefix, "batch_rows",
                           "cannot be used with mode \"replace\" (readers would see the table "
                           "half loaded)");
    if (cJSON_IsNull(key))
        key = NULL;
    if (out->mode != CV_MODE_UPSERT) {
        if (key)
            return cv_verr_set(verr, prefix, "key", "is only used with mode \"upsert\"");
        return CV_OK;
    }
    if (!key)
        return cv_verr_set(verr, prefix, "key", "is required with mode \"upsert\"");
    if (!cJSON_IsArray(key) || cJSON_GetArraySize(key) < 1 || cJSON_GetArraySize(key) > CV_MAX_KEYS)
        return cv_verr_set(verr, prefix, "key", "must be an array of 1 to %d column names",
                           CV_MAX_KEYS);
    cJSON_ArrayForEach(item, key) {
        if (!cJSON_IsString(item) || !is_identifier(item->valuestring))
            return cv_verr_set(verr, prefix, "key",
                               "must hold column names (letters, digits, underscores)");
        for (i = 0; i < out->nkeys; i++)
            if (strcmp(out->keys[i], item->valuestring) == 0)
                return cv_verr_set(verr, prefix, "key", "names column \"%s\" twice",
                                   item->valuestring);
        copy_str(out->keys[out->nkeys++], sizeof(out->keys[0]), item->valuestring);
    }
    return CV_OK;
}

int cv_load_spec_encode(const cv_load_spec *spec, cJSON *obj) {
    cJSON *keys;
    if (!cJSON_AddStringToObject(obj, "mode", cv_load_mode_str(spec->mode)))
        return -1;
    if (spec->method != CV_LOAD_AUTO &&
        !cJSON_AddStringToObject(obj, "load_method", cv_load_method_str(spec->method)))
        return -1;
    if (spec->watermark[0] && !cJSON_AddStringToObject(obj, "watermark_column", spec->watermark))
        return -1;
    if (spec->batch_rows > 0 &&
        (!cJSON_AddNumberToObject(obj, "batch_rows", (double)spec->batch_rows) ||
         !cJSON_AddStringToObject(obj, "checkpoint_column", spec->checkpoint)))
        return -1;
    if (spec->timeout_seconds > 0 &&
        !cJSON_AddNumberToObject(obj, "timeout_seconds", spec->timeout_seconds))
        return -1;
    if (spec->mode != CV_MODE_UPSERT)
        return 0;
    keys = cJSON_AddArrayToObject(obj, "key");
    if (!keys)
        return -1;
    for (int i = 0; i < spec->nkeys; i++)
        cJSON_AddItemToArray(keys, cJSON_CreateString(spec->keys[i]));
    return 0;
}

cv_err cv_python_spec_decode(const cJSON *obj, const char *prefix, cv_python_spec *out,
                             cv_verr *verr) {
    /* name, lowest, highest, where it goes */
    const struct {
        const char *name;
        int64_t min, max;
        int *dst;
    } limits[] = {
        {"cpu_seconds", 1, 86400, &out->limits.cpu_seconds},
        {"memory_mb", 32, 65536, &out->limits.memory_mb},
        {"open_files", 16, 65536, &out->limits.open_files},
        {"file_size_mb", 1, 1048576, &out->limits.file_size_mb},
        {"processes", 1, 4096, &out->limits.processes},
    };
    const cJSON *limit_obj = cJSON_GetObjectItemCaseSensitive(obj, "limits");
    char limits_prefix[64];
    const char *script;
    int64_t n = 0;
    cv_err err;

    memset(out, 0, sizeof(*out));
    if ((err = cv_json_get_str(obj, prefix, "script", true, CV_SCRIPT_MAX_BYTES, &script, verr)))
        return err;
    if (!script[0])
        return cv_verr_set(verr, prefix, "script", "must not be empty");
    if ((err = cv_json_get_int(obj, prefix, "timeout_seconds", false, 1, 86400, &n, verr)))
        return err;
    out->timeout_seconds = (int)n;
    if (limit_obj && !cJSON_IsNull(limit_obj)) {
        snprintf(limits_prefix, sizeof(limits_prefix), "%s%slimits", prefix ? prefix : "",
                 prefix ? "." : "");
        if (!cJSON_IsObject(limit_obj))
            return cv_verr_set(verr, prefix, "limits", "must be an object");
        if ((err = cv_json_only(limit_obj, limits_prefix, limit_fields, "limits", verr)))
            return err;
        for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
            n = 0;
            if ((err = cv_json_get_int(limit_obj, limits_prefix, limits[i].name, false,
                                       limits[i].min, limits[i].max, &n, verr)))
                return err;
            *limits[i].dst = (int)n;
        }
    }
    if ((err = cv_json_get_doc(obj, prefix, "parameters", CV_PARAMETERS_MAX_BYTES, &out->parameters,
                               verr)))
        return err;
    if (!(out->script = strdup(script))) {
        cv_python_spec_release(out);
        return CV_ERR_NOMEM;
    }
    return CV_OK;
}

int cv_python_spec_encode(const cv_python_spec *spec, cJSON *obj) {
    const struct {
        const char *name;
        int value;
    } limits[] = {
        {"cpu_seconds", spec->limits.cpu_seconds}, {"memory_mb", spec->limits.memory_mb},
        {"open_files", spec->limits.open_files},   {"file_size_mb", spec->limits.file_size_mb},
        {"processes", spec->limits.processes},
    };
    cJSON *limit_obj = NULL;

    if (!cJSON_AddStringToObject(obj, "script", spec->script ? spec->script : ""))
        return -1;
    if (spec->parameters) {
        cJSON *parameters = cJSON_Parse(spec->parameters);
        if (!parameters || !cJSON_AddItemToObject(obj, "parameters", parameters)) {
            cJSON_Delete(parameters);
            return -1;
        }
    }
    if (spec->timeout_seconds > 0 &&
        !cJSON_AddNumberToObject(obj, "timeout_seconds", spec->timeout_seconds))
        return -1;
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        if (limits[i].value <= 0)
            continue;
        if (!limit_obj && !(limit_obj = cJSON_AddObjectToObject(obj, "limits")))
            return -1;
        if (!cJSON_AddNumberToObject(limit_obj, limits[i].name, limits[i].value))
            return -1;
    }
    return 0;
}

void cv_python_spec_release(cv_python_spec *spec) {
    if (!spec)
        return;
    free(spec->script);
    cJSON_free(spec->parameters);
    spec->script = spec->parameters = NULL;
}

static cv_err parse_object(const char *data, size_t len, cJSON **out, cv_verr *verr) {
    size_t at = 0;
    cJSON *root;

    *out = NULL;
    if (len > CV_JOB_MAX_BYTES)
        return cv_verr_set(verr, NULL, "$", "message is %zu bytes, more than the limit of %d", len,
                           CV_JOB_MAX_BYTES);
    if (memchr(data, '\0', len))
        return cv_verr_set(verr, NULL, "$", "message contains a NUL byte");
    root = cv_json_parse(data, len, &at);
    if (!root)
        return cv_verr_set(verr, NULL, "$", "not valid JSON (error near byte %zu)", at);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return cv_verr_set(verr, NULL, "$", "must be a JSON object");
    }
    *out = root;
    return CV_OK;
}

/* A run.log's line: with its stream, never without, and possibly empty (a
 * script printed an empty line). */
static cv_err get_line(const cJSON *root, cv_event *ev, cv_verr *verr) {
    const cJSON *line = cJSON_GetObjectItemCaseSensitive(root, "line");

    if (line && (!cJSON_IsString(line) || !line->valuestring))
        return cv_verr_set(verr, NULL, "line", "must be a string");
    if (line && strlen(line->valuestring) > CV_LOG_LINE_MAX)
        return cv_verr_set(verr, NULL, "line", "must be at most %d bytes long", CV_LOG_LINE_MAX);
    if (line && !ev->stream[0])
        return cv_verr_set(verr, NULL, "stream", "is required with line");
    if (!line && ev->stream[0])
        return cv_verr_set(verr, NULL, "line", "is required with stream");
    copy_str(ev->line, sizeof(ev->line), line ? line->valuestring : NULL);
    return CV_OK;
}

static cv_err check_schema(const cJSON *root, const char *expected, cv_verr *verr) {
    const char *schema;
    cv_err err = cv_json_get_str(root, NULL, "schema", true, 64, &schema, verr);
    if (err)
        return err;
    if (strcmp(schema, expected) != 0)
        return cv_verr_set(verr, NULL, "schema", "must be \"%s\", not \"%s\"", expected, schema);
    return CV_OK;
}

static cv_err get_time(const cJSON *root, const char *name, int64_t *ms, cv_verr *verr) {
    const char *text;
    cv_err err = cv_json_get_str(root, NULL, name, true, 40, &text, verr);
    if (err)
        return err;
    if (cv_time_parse(text, ms) != 0)
        return cv_verr_set(verr, NULL, name,
                           "must be an RFC 3339 time such as "
                           "\"2026-11-28T04:50:00.000Z\"");
    return CV_OK;
}

/* "trigger" is one of trigger_names; absent leaves dst empty (an external run). */
static cv_err get_trigger(const cJSON *root, char *dst, size_t len, cv_verr *verr) {
    const char *s;
    cv_err err = cv_json_get_str(root, NULL, "trigger", false, 15, &s, verr);
    bool known = false;

    if (err)
        return err;
    for (const char *const *t = trigger_names; s && *t; t++)
        known = known || strcmp(*t, s) == 0;
    if (s && !known)
        return cv_verr_set(verr, NULL, "trigger",
                           "must be \"manual\", \"schedule\" or \"external\", not \"%s\"", s);
    copy_str(dst, len, s ? s : "");
    return CV_OK;
}

/* The optional members that say where a run came from and how it is retried:
 * trigger, tick_at (with trigger "schedule" only), max_attempts,
 * backoff_seconds and not_before. */
static cv_err get_run_origin(const cJSON *root, cv_job *job, cv_verr *verr) {
    int64_t n;
    cv_err err;

    if ((err = get_trigger(root, job->trigger, sizeof(job->trigger), verr)))
        return err;
    if (cJSON_GetObjectItemCaseSensitive(root, "tick_at")) {
        if (strcmp(job->trigger, "schedule") != 0)
            return cv_verr_set(verr, NULL, "tick_at", "is only for trigger \"schedule\"");
        if ((err = get_time(root, "tick_at", &job->tick_ms, verr)))
            return err;
    }
    n = 1;
    if ((err = cv_json_get_int(root, NULL, "max_attempts", false, 1, CV_MAX_ATTEMPTS, &n, verr)))
        return err;
    job->max_attempts = (int)n; /* an attempt past it is the last one */
    n = 60;
    if ((err = cv_json_get_int(root, NULL, "backoff_seconds", false, 1, 86400, &n, verr)))
        return err;
    job->backoff_seconds = (int)n;
    if (cJSON_GetObjectItemCaseSensitive(root, "not_before") &&
        (err = get_time(root, "not_before", &job->not_before_ms, verr)))
        return err;
    return CV_OK;
}

static const char *const kind_text[] = {
    [CV_JOB_KIND_NONE] = "",                 /* no kind given */
    [CV_JOB_KIND_TRANSFER] = "sql_transfer", /* rows from origin to destination */
    [CV_JOB_KIND_PYTHON] = "python",         /* a script */
    [CV_JOB_KIND_SQL] = "sql",               /* statements on one connection */
    [CV_JOB_KIND_QUERY] = "query",           /* the SQL console's, on its own topic */
};

cv_job_kind cv_job_kind_parse(const char *text) {
    for (int k = CV_JOB_KIND_TRANSFER; text && k <= CV_JOB_KIND_QUERY; k++)
        if (strcmp(text, kind_text[k]) == 0)
            return (cv_job_kind)k;
    return CV_JOB_KIND_NONE;
}

const char *cv_job_kind_str(cv_job_kind kind) {
    return kind >= CV_JOB_KIND_NONE && kind <= CV_JOB_KIND_QUERY ? kind_text[kind] : "";
}

int64_t cv_job_retry_delay_ms(int backoff_seconds, int next) {
    int64_t ms = (int64_t)backoff_seconds * 1000;
    uint32_t r = 0;
    char id[CV_ID_LEN];

    for (int i = 2; i < next && ms < 86400000; i++)
        ms *= 2;
    if (ms > 86400000)
        ms = 86400000;
    /* Jitter from the random id source: no shared PRNG state between threads. */
    if (cv_id_new(id, sizeof(id)) == 0)
        r = (uint32_t)strtoul(id + 28, NULL, 16) % 4000;
    return ms * (8000 + (int64_t)r) / 10000;
}

/* A message of the first version carried the job's definition; no longer run. */
#define CV_JOB_SCHEMA_V1 "convutell.job.v1"

cv_err cv_job_decode(const char *data, size_t len, cv_job *job, cv_verr *verr) {
    cJSON *root = NULL;
    const char *s, *kind = NULL, *schema = NULL;
    int64_t n = 0;
    cv_err err;

    memset(job, 0, sizeof(*job));
    if ((err = parse_object(data, len, &root, verr)))
        return err;
    if (cv_json_get_str(root, NULL, "schema", false, 64, &schema, verr) == CV_OK && schema &&
        strcmp(schema, CV_JOB_SCHEMA_V1) == 0) {
        err = cv_verr_set(verr, NULL, "schema",
                          "\"%s\" messages carried a job's query, script or statements and are "
                          "no longer run; send \"%s\", which names a stored job",
                          CV_JOB_SCHEMA_V1, CV_JOB_SCHEMA);
        goto out;
    }
    if ((err = check_schema(root, CV_JOB_SCHEMA, verr)) ||
        (err = cv_json_only(root, NULL, job_fields, CV_JOB_SCHEMA, verr)))
        goto out;
    if ((err = cv_json_get_id(root, NULL, "run_id", true, &s, verr)))
        goto out;
    copy_str(job->run_id, sizeof(job->run_id), s);
    if ((err = cv_json_get_id(root, NULL, "job_id", true, &s, verr)))
        goto out;
    copy_str(job->job_id, sizeof(job->job_id), s);
    if ((err = cv_json_get_id(root, NULL, "project_id", true, &s, verr)))
        goto out;
    copy_str(job->project_id, sizeof(job->project_id), s);
    if ((err = cv_json_get_int(root, NULL, "job_version", false, 1, INT32_MAX, &n, verr)))
        goto out;
    job->job_version = (int)n;
    if ((err = cv_json_get_str(root, NULL, "kind", false, 31, &kind, verr)))
        goto out;
    if (kind && cv_job_kind_parse(kind) == CV_JOB_KIND_NONE) {
        err = cv_verr_set(verr, NULL, "kind",
                          "must be \"sql_transfer\", \"python\", \"sql\" or \"query\", not \"%s\"",
                          kind);
        goto out;
    }
    copy_str(job->kind, sizeof(job->kind), kind);
    n = 0;
    if ((err = cv_json_get_int(root, NULL, "attempt", true, 1, CV_MAX_ATTEMPT, &n, verr)))
        goto out;
    job->attempt = (int)n;
    if ((err = get_time(root, "queued_at", &job->queued_at_ms, verr)) ||
        (err = get_run_origin(root, job, verr)))
        goto out;
    err = cv_json_get_doc(root, NULL, "parameters", CV_PARAMETERS_MAX_BYTES, &job->run_parameters,
                          verr);
out:
    cJSON_Delete(root);
    if (err)
        cv_job_release(job);
    return err;
}

void cv_job_release(cv_job *job) {
    if (!job)
        return;
    free(job->query);
    job->query = NULL;
    cv_python_spec_release(&job->python);
    free(job->statements);
    job->statements = NULL;
    free(job->transform);
    job->transform = NULL;
    cJSON_free(job->run_parameters);
    job->run_parameters = NULL;
}

char *cv_job_encode(const cv_job *job) {
    char queued[CV_TIME_RFC3339_LEN];
    cJSON *root = cJSON_CreateObject();
    char *out = NULL;

    if (!root)
        return NULL;
    cv_time_format(job->queued_at_ms, queued, sizeof(queued));
    cJSON_AddStringToObject(root, "schema", CV_JOB_SCHEMA);
    cJSON_AddStringToObject(root, "run_id", job->run_id);
    cJSON_AddStringToObject(root, "job_id", job->job_id);
    cJSON_AddStringToObject(root, "project_id", job->project_id);
    if (job->job_version > 0)
        cJSON_AddNumberToObject(root, "job_version", job->job_version);
    if (job->kind[0])
        cJSON_AddStringToObject(root, "kind", job->kind);
    cJSON_AddNumberToObject(root, "attempt", job->attempt);
    cJSON_AddStringToObject(root, "queued_at", queued);
    if (job->trigger[0])
        cJSON_AddStringToObject(root, "trigger", job->trigger);
    if (job->tick_ms) {
        char tick[CV_TIME_RFC3339_LEN];
        cv_time_format(job->tick_ms, tick, sizeof(tick));
        cJSON_AddStringToObject(root, "tick_at", tick);
    }
    if (job->max_attempts > 1) {
        cJSON_AddNumberToObject(root, "max_attempts", job->max_attempts);
        cJSON_AddNumberToObject(root, "backoff_seconds",
                                job->backoff_seconds > 0 ? job->backoff_seconds : 60);
    }
    if (job->not_before_ms) {
        char due[CV_TIME_RFC3339_LEN];
        cv_time_format(job->not_before_ms, due, sizeof(due));
        cJSON_AddStringToObject(root, "not_before", due);
    }
    if (job->run_parameters) {
        cJSON *parameters = cJSON_Parse(job->run_parameters);
        if (!parameters || !cJSON_AddItemToObject(root, "parameters", parameters)) {
            cJSON_Delete(parameters);
            cJSON_Delete(root);
            return NULL;
        }
    }
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

cv_err cv_event_init(cv_event *ev, const char *type) {
    memset(ev, 0, sizeof(*ev));
    if (cv_id_new(ev->event_id, sizeof(ev->event_id)) != 0)
        return CV_ERR_IO;
    copy_str(ev->type, sizeof(ev->type), type);
    ev->time_ms = cv_time_now_ms();
    ev->rows_read = ev->rows_written = ev->duration_ms = ev->rows_per_second = -1;
    ev->rows_expected = -1;
    ev->exit_code = -1;
    ev->lines_dropped = -1;
    return CV_OK;
}

void cv_event_from_job(cv_event *ev, const cv_job *job) {
    copy_str(ev->run_id, sizeof(ev->run_id), job->run_id);
    copy_str(ev->job_id, sizeof(ev->job_id), job->job_id);
    copy_str(ev->project_id, sizeof(ev->project_id), job->project_id);
    ev->attempt = job->attempt;
    copy_str(ev->trigger, sizeof(ev->trigger), job->trigger);
    ev->tick_ms = job->tick_ms;
    ev->max_attempts = job->max_attempts;
    ev->queued_ms = job->queued_at_ms;
}

char *cv_event_encode(const cv_event *ev) {
    char stamp[CV_TIME_RFC3339_LEN];
    cJSON *root = cJSON_CreateObject(), *error;
    char *out;

    if (!root)
        return NULL;
    cv_time_format(ev->time_ms, stamp, sizeof(stamp));
    cJSON_AddStringToObject(root, "schema", CV_EVENT_SCHEMA);
    cJSON_AddStringToObject(root, "event_id", ev->event_id);
    cJSON_AddStringToObject(root, "type", ev->type);
    cJSON_AddStringToObject(root, "time", stamp);
    if (ev->run_id[0])
        cJSON_AddStringToObject(root, "run_id", ev->run_id);
    if (ev->job_id[0])
        cJSON_AddStringToObject(root, "job_id", ev->job_id);
    if (ev->project_id[0])
        cJSON_AddStringToObject(root, "project_id", ev->project_id);
    if (ev->worker[0])
        cJSON_AddStringToObject(root, "worker", ev->worker);
    if (ev->attempt > 0)
        cJSON_AddNumberToObject(root, "attempt", ev->attempt);
    if (ev->rows_read >= 0)
        cJSON_AddNumberToObject(root, "rows_read", (double)ev->rows_read);
    if (ev->rows_written >= 0)
        cJSON_AddNumberToObject(root, "rows_written", (double)ev->rows_written);
    if (ev->duration_ms >= 0)
        cJSON_AddNumberToObject(root, "duration_ms", (double)ev->duration_ms);
    if (ev->watermark[0])
        cJSON_AddStringToObject(root, "watermark", ev->watermark);
    if (ev->rows_per_second >= 0)
        cJSON_AddNumberToObject(root, "rows_per_second", (double)ev->rows_per_second);
    if (ev->rows_expected >= 0)
        cJSON_AddNumberToObject(root, "rows_expected", (double)ev->rows_expected);
    if (ev->stream[0]) {
        cJSON_AddStringToObject(root, "stream", ev->stream);
        cJSON_AddStringToObject(root, "line", ev->line);
        if (ev->line_cut)
            cJSON_AddBoolToObject(root, "line_cut", true);
    }
    if (ev->exit_code >= 0)
        cJSON_AddNumberToObject(root, "exit_code", ev->exit_code);
    if (ev->lines_dropped >= 0)
        cJSON_AddNumberToObject(root, "lines_dropped", (double)ev->lines_dropped);
    if (ev->trigger[0])
        cJSON_AddStringToObject(root, "trigger", ev->trigger);
    if (ev->tick_ms) {
        cv_time_format(ev->tick_ms, stamp, sizeof(stamp));
        cJSON_AddStringToObject(root, "tick_at", stamp);
    }
    if (ev->max_attempts > 0)
        cJSON_AddNumberToObject(root, "max_attempts", ev->max_attempts);
    if (ev->queued_ms) {
        cv_time_format(ev->queued_ms, stamp, sizeof(stamp));
        cJSON_AddStringToObject(root, "queued_at", stamp);
    }
    if (ev->next_attempt_ms) {
        cv_time_format(ev->next_attempt_ms, stamp, sizeof(stamp));
        cJSON_AddStringToObject(root, "next_attempt_at", stamp);
    }
    if (ev->error_code[0]) {
        error = cJSON_AddObjectToObject(root, "error");
        if (error) {
            cJSON_AddStringToObject(error, "code", ev->error_code);
            if (ev->error_message[0]) /* the contract has no empty messages */
                cJSON_AddStringToObject(error, "message", ev->error_message);
        }
    }
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

static cv_err get_optional_id(const cJSON *root, const char *name, char *dst, size_t len,
                              cv_verr *verr) {
    const char *s;
    cv_err err = cv_json_get_id(root, NULL, name, false, &s, verr);
    if (!err)
        copy_str(dst, len, s);
    return err;
}

/* An event's identity: its id, type and time, the run, job and project it is
 * about, the worker and attempt that sent it. */
static cv_err decode_identity(const cJSON *root, cv_event *ev, cv_verr *verr) {
    const char *s;
    int64_t n = 0;
    bool known = false;
    cv_err err;

    if ((err = cv_json_get_id(root, NULL, "event_id", true, &s, verr)))
        return err;
    copy_str(ev->event_id, sizeof(ev->event_id), s);
    if ((err = cv_json_get_str(root, NULL, "type", true, 31, &s, verr)))
        return err;
    for (const char *const *t = event_types; *t; t++)
        known = known || strcmp(*t, s) == 0;
    if (!known)
        return cv_verr_set(verr, NULL, "type", "\"%s\" is not an event type", s);
    copy_str(ev->type, sizeof(ev->type), s);
    if ((err = get_time(root, "time", &ev->time_ms, verr)) ||
        (err = get_optional_id(root, "run_id", ev->run_id, sizeof(ev->run_id), verr)) ||
        (err = get_optional_id(root, "job_id", ev->job_id, sizeof(ev->job_id), verr)) ||
        (err = get_optional_id(root, "project_id", ev->project_id, sizeof(ev->project_id), verr)))
        return err;
    if (!ev->run_id[0] && strcmp(ev->type, CV_EVENT_JOB_REJECTED) != 0)
        return cv_verr_set(verr, NULL, "run_id", "is required for %s events", ev->type);
    if ((err = cv_json_get_str(root, NULL, "worker", false, sizeof(ev->worker) - 1, &s, verr)))
        return err;
    copy_str(ev->worker, sizeof(ev->worker), s);
    if ((err = cv_json_get_int(root, NULL, "attempt", false, 1, CV_MAX_ATTEMPT, &n, verr)))
        return err;
    ev->attempt = (int)n;
    return CV_OK;
}

/* What a run measured and printed: rows, duration, watermark, an output
 * line, the script's exit code. */
static cv_err decode_measures(const cJSON *root, cv_event *ev, cv_verr *verr) {
    const int64_t most = INT64_C(1) << 53;
    const char *s;
    int64_t n = -1;
    cv_err err;

    if ((err = cv_json_get_int(root, NULL, "rows_read", false, 0, most, &ev->rows_read, verr)) ||
        (err = cv_json_get_int(root, NULL, "rows_written", false, 0, most, &ev->rows_written,
                               verr)) ||
        (err =
             cv_json_get_int(root, NULL, "duration_ms", false, 0, most, &ev->duration_ms, verr)) ||
        (err = cv_json_get_int(root, NULL, "rows_per_second", false, 0, most, &ev->rows_per_second,
                               verr)) ||
        (err = cv_json_get_int(root, NULL, "rows_expected", false, 0, most, &ev->rows_expected,
                               verr)) ||
        (err =
             cv_json_get_str(root, NULL, "watermark", false, sizeof(ev->watermark) - 1, &s, verr)))
        return err;
    copy_str(ev->watermark, sizeof(ev->watermark), s);
    if ((err = cv_json_get_str(root, NULL, "stream", false, sizeof(ev->stream) - 1, &s, verr)))
        return err;
    if (s && strcmp(s, "stdout") != 0 && strcmp(s, "stderr") != 0)
        return cv_verr_set(verr, NULL, "stream", "must be \"stdout\" or \"stderr\"");
    copy_str(ev->stream, sizeof(ev->stream), s);
    if ((err = get_line(root, ev, verr)) ||
        (err = cv_json_get_bool(root, NULL, "line_cut", false, &ev->line_cut, verr)) ||
        (err = cv_json_get_int(root, NULL, "exit_code", false, 0, 255, &n, verr)))
        return err;
    ev->exit_code = (int)n;
    return cv_json_get_int(root, NULL, "lines_dropped", false, 0, most, &ev->lines_dropped, verr);
}

/* Where the run came from and where its attempts stand: trigger, tick,
 * queue time, the next attempt's time, the attempts allowed. */
static cv_err decode_schedule(const cJSON *root, cv_event *ev, cv_verr *verr) {
    static const char *const times[] = {"tick_at", "next_attempt_at", "queued_at"};
    int64_t *const out[] = {&ev->tick_ms, &ev->next_attempt_ms, &ev->queued_ms};
    int64_t n = 0;
    cv_err err;

    if (cJSON_GetObjectItemCaseSensitive(root, "trigger") &&
        (err = get_trigger(root, ev->trigger, sizeof(ev->trigger), verr)))
        return err;
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
        if (cJSON_GetObjectItemCaseSensitive(root, times[i]) &&
            (err = get_time(root, times[i], out[i], verr)))
            return err;
    if ((err = cv_json_get_int(root, NULL, "max_attempts", false, 1, CV_MAX_ATTEMPTS, &n, verr)))
        return err;
    ev->max_attempts = (int)n;
    return CV_OK;
}

/* The error of a run that failed: {code, message}. */
static cv_err decode_error(const cJSON *root, cv_event *ev, cv_verr *verr) {
    static const char *const error_fields[] = {"code", "message", NULL};
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(root, "error");
    const char *s;
    cv_err err;

    if (!error || cJSON_IsNull(error))
        return CV_OK;
    if (!cJSON_IsObject(error))
        return cv_verr_set(verr, NULL, "error", "must be an object");
    if ((err = cv_json_only(error, "error", error_fields, "error", verr)) ||
        (err = cv_json_get_str(error, "error", "code", true, sizeof(ev->error_code) - 1, &s, verr)))
        return err;
    copy_str(ev->error_code, sizeof(ev->error_code), s);
    if ((err = cv_json_get_str(error, "error", "message", false, 64 * 1024, &s, verr)))
        return err;
    copy_str(ev->error_message, sizeof(ev->error_message), s);
    return CV_OK;
}

cv_err cv_event_decode(const char *data, size_t len, cv_event *ev, cv_verr *verr) {
    cJSON *root = NULL;
    cv_err err;

    memset(ev, 0, sizeof(*ev));
    ev->rows_read = ev->rows_written = ev->duration_ms = ev->rows_per_second = -1;
    ev->rows_expected = -1;
    ev->exit_code = -1;
    ev->lines_dropped = -1;
    if ((err = parse_object(data, len, &root, verr)))
        return err;
    if (!(err = check_schema(root, CV_EVENT_SCHEMA, verr)) &&
        !(err = cv_json_only(root, NULL, event_fields, CV_EVENT_SCHEMA, verr)) &&
        !(err = decode_identity(root, ev, verr)) && !(err = decode_measures(root, ev, verr)) &&
        !(err = decode_schedule(root, ev, verr)))
        err = decode_error(root, ev, verr);
    cJSON_Delete(root);
    return err;
}
