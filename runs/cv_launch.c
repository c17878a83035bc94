/*
 * cv_launch.c - builds a run's job message from the stored job and project.
 * The stored job was checked when it was created; decoding its parts again
 * with the message module keeps one reading of every option.
 */
#include "cv_launch.h"

#include "cv_mongo.h"
#include "cv_time.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

cJSON *cv_launch_doc_json(const bson_t *doc) {
    char *text = cv_mongo_to_json(doc);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    return root;
}

static void copy_id(char *dst, size_t len, const char *src) {
    snprintf(dst, len, "%s", src ? src : "");
}

/* max_attempts and backoff_seconds of the job's schedule, if it has one. */
static void retry_policy(const bson_t *job_doc, cv_job *job) {
    bson_iter_t it, sub;

    job->max_attempts = 1;
    job->backoff_seconds = 60;
    if (!bson_iter_init_find(&it, job_doc, "schedule") || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return;
    if (bson_iter_recurse(&it, &sub) && bson_iter_find(&sub, "max_attempts") &&
        BSON_ITER_HOLDS_NUMBER(&sub))
        job->max_attempts = (int)bson_iter_as_int64(&sub);
    if (bson_iter_recurse(&it, &sub) && bson_iter_find(&sub, "backoff_seconds") &&
        BSON_ITER_HOLDS_NUMBER(&sub))
        job->backoff_seconds = (int)bson_iter_as_int64(&sub);
    if (job->max_attempts < 1 || job->max_attempts > CV_MAX_ATTEMPTS)
        job->max_attempts = 1;
    if (job->backoff_seconds < 1)
        job->backoff_seconds = 60;
}

/* *to becomes a copy of from (NULL stays NULL): a job owns its strings. */
static cv_err own(char **to, const char *from) {
    *to = from ? strdup(from) : NULL;
    return from && !*to ? CV_ERR_NOMEM : CV_OK;
}

/* The version of a stored job: its "version" field, 1 when it has none. */
static int stored_version(const bson_t *job_doc) {
    int64_t v = cv_mongo_doc_int(job_doc, "version", 1);
    return v >= 1 && v <= INT32_MAX ? (int)v : 1;
}

cv_err cv_launch_build(const bson_t *job_doc, const bson_t *project, cv_job *job, char *errbuf,
                       size_t errlen) {
    const char *kind = cv_mongo_doc_str(job_doc, "kind");
    cv_job_kind which;
    cJSON *stored = NULL;
    cv_verr verr;
    cv_err err = CV_OK;

    memset(job, 0, sizeof(*job));
    copy_id(job->job_id, sizeof(job->job_id), cv_mongo_doc_str(job_doc, "_id"));
    copy_id(job->project_id, sizeof(job->project_id), cv_mongo_doc_str(project, "_id"));
    which = cv_job_kind_parse(kind);
    if (which == CV_JOB_KIND_NONE)
        which = CV_JOB_KIND_TRANSFER; /* jobs stored before kinds were */
    snprintf(job->kind, sizeof(job->kind), "%s", cv_job_kind_str(which));
    job->job_version = stored_version(job_doc);
    job->attempt = 1;
    job->queued_at_ms = cv_time_now_ms();
    retry_policy(job_doc, job);

    if (which == CV_JOB_KIND_SQL) {
        const char *side = cv_mongo_doc_str(job_doc, "connection");
        bool origin = side && strcmp(side, "origin") == 0;
        copy_id(job->sql_connection_id, sizeof(job->sql_connection_id),
                cv_mongo_doc_str(project,
                                 origin ? "origin_connection_id" : "destination_connection_id"));
        if (own(&job->statements, cv_mongo_doc_str(job_doc, "statements")) != CV_OK)
            return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        return CV_OK;
    }
    if (!(stored = cv_launch_doc_json(job_doc)))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    if (which == CV_JOB_KIND_PYTHON) {
        if ((err = cv_python_spec_decode(stored, NULL, &job->python, &verr)))
            cv_err_set(errbuf, errlen, err, "stored job has an unreadable script: %s: %s",
                       verr.field, verr.reason);
        goto out;
    }
    copy_id(job->origin_connection_id, sizeof(job->origin_connection_id),
            cv_mongo_doc_str(project, "origin_connection_id"));
    copy_id(job->destination_connection_id, sizeof(job->destination_connection_id),
            cv_mongo_doc_str(project, "destination_connection_id"));
    copy_id(job->destination_table, sizeof(job->destination_table),
            cv_mongo_doc_str(job_doc, "destination_table"));
    if ((err = cv_load_spec_decode(stored, NULL, &job->load, &verr))) {
        cv_err_set(errbuf, errlen, err, "stored job has unreadable load options: %s: %s",
                   verr.field, verr.reason);
        goto out;
    }
    if (own(&job->query, cv_mongo_doc_str(job_doc, "query")) != CV_OK ||
        own(&job->transform, cv_mongo_doc_str(job_doc, "transform")) != CV_OK)
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
out:
    cJSON_Delete(stored);
    if (err)
        cv_job_release(job);
    return err;
}

/* The stored parameters with the run's laid over them: *merged is new text
 * (cJSON_free()) or NULL when there are none. */
static cv_err merge_parameters(const char *stored, const char *run, char **merged) {
    cJSON *base = cJSON_Parse(stored ? stored : "{}"), *over = cJSON_Parse(run), *item;
    cv_err err = CV_ERR_NOMEM;

    *merged = NULL;
    if (!base || !over)
        goto out;
    while ((item = over->child)) {
        cJSON *old = cJSON_GetObjectItemCaseSensitive(base, item->string);
        cJSON_DetachItemViaPointer(over, item);
        if (old)
            cJSON_ReplaceItemViaPointer(base, old, item); /* in its place, its key kept */
        else
            cJSON_AddItemToObject(base, item->string, item);
    }
    if ((*merged = cJSON_PrintUnformatted(base)))
        err = CV_OK;
out:
    cJSON_Delete(base);
    cJSON_Delete(over);
    return err;
}

/* Moves the definition cv_launch_build() made into *job: its strings and
 * script change hands, built keeps none of them. */
static void take_definition(cv_job *job, cv_job *built) {
    memcpy(job->kind, built->kind, sizeof(job->kind));
    job->job_version = built->job_version;
    memcpy(job->origin_connection_id, built->origin_connection_id,
           sizeof(job->origin_connection_id));
    memcpy(job->destination_connection_id, built->destination_connection_id,
           sizeof(job->destination_connection_id));
    memcpy(job->sql_connection_id, built->sql_connection_id, sizeof(job->sql_connection_id));
    memcpy(job->destination_table, built->destination_table, sizeof(job->destination_table));
    job->load = built->load;
    /* Owned by built: moved. */
    job->query = built->query;
    job->transform = built->transform;
    job->statements = built->statements;
    job->python = built->python;
    built->query = built->transform = built->statements = NULL;
    memset(&built->python, 0, sizeof(built->python));
}

cv_err cv_launch_resolve(const bson_t *job_doc, const bson_t *project, cv_job *job, cv_verr *verr,
                         char *errbuf, size_t errlen) {
    const char *owner = job_doc ? cv_mongo_doc_str(job_doc, "project_id") : NULL;
    cv_job built;
    char why[256];
    char *merged = NULL;
    cv_err err;
    int version;

    if (!job_doc)
        return cv_verr_set(verr, NULL, "job_id", "names no stored job");
    if (!owner || strcmp(owner, job->project_id) != 0)
        return cv_verr_set(verr, NULL, "project_id", "is not the project of job %s", job->job_id);
    if (!project)
        return cv_verr_set(verr, NULL, "project_id", "names no stored project");
    version = stored_version(job_doc);
    if (job->job_version && job->job_version != version)
        return cv_verr_set(verr, NULL, "job_version",
                           "job %s is at version %d; version %d is not kept", job->job_id, version,
                           job->job_version);
    if ((err = cv_launch_build(job_doc, project, &built, why, sizeof(why))))
        return err == CV_ERR_NOMEM ? err : cv_verr_set(verr, NULL, "job_id", "%s", why);
    if (job->kind[0] && strcmp(job->kind, built.kind) != 0) {
        err = cv_verr_set(verr, NULL, "kind", "job %s is a %s job, not %s", job->job_id, built.kind,
                          job->kind);
        goto out;
    }
    if (job->run_parameters && cv_job_kind_parse(built.kind) != CV_JOB_KIND_PYTHON) {
        err = cv_verr_set(verr, NULL, "parameters", "job %s is a %s job, which takes none",
                          job->job_id, built.kind);
        goto out;
    }
    if (job->run_parameters) {
        if ((err = merge_parameters(built.python.parameters, job->run_parameters, &merged)))
            goto out;
        cJSON_free(built.python.parameters);
        built.python.parameters = merged;
    }
    take_definition(job, &built);
    if (!cv_mongo_doc_bool(project, "active", true))
        err = cv_err_set(errbuf, errlen, CV_ERR_CONFLICT,
                         "project %s is not active; activate it to run its jobs", job->project_id);
out:
    cv_job_release(&built);
    return err;
}

void cv_launch_version_key(const char *job_id, int version, char *out) {
    snprintf(out, CV_LAUNCH_VERSION_KEY_LEN, "%.36s@%d", job_id, version);
}

/* A copy of doc with _id (and job_id, when given) first, then the rest but
 * _id and job_id. */
static bson_t *with_id(const bson_t *doc, const char *id, const char *job_id) {
    bson_t *out = bson_new();
    bson_iter_t it;

    if (!out)
        return NULL;
    BSON_APPEND_UTF8(out, "_id", id);
    if (job_id)
        BSON_APPEND_UTF8(out, "job_id", job_id);
    if (bson_iter_init(&it, doc))
        while (bson_iter_next(&it))
            if (strcmp(bson_iter_key(&it), "_id") != 0 && strcmp(bson_iter_key(&it), "job_id") != 0)
                bson_append_iter(out, NULL, 0, &it);
    return out;
}

bson_t *cv_launch_version_keep(const bson_t *job_doc) {
    const char *id = cv_mongo_doc_str(job_doc, "_id");
    char key[CV_LAUNCH_VERSION_KEY_LEN];

    if (!id)
        return NULL;
    cv_launch_version_key(id, stored_version(job_doc), key);
    return with_id(job_doc, key, id);
}

bson_t *cv_launch_version_job(const bson_t *kept) {
    const char *job_id = cv_mongo_doc_str(kept, "job_id");
    return job_id ? with_id(kept, job_id, NULL) : NULL;
}
