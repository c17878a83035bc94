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

cv_err cv_launch_build(const bson_t *job_doc, const bson_t *project, cv_job *job, char *errbuf,
                       size_t errlen) {
    const char *kind = cv_mongo_doc_str(job_doc, "kind");
    cJSON *stored = NULL;
    cv_verr verr;
    cv_err err = CV_OK;

    memset(job, 0, sizeof(*job));
    copy_id(job->job_id, sizeof(job->job_id), cv_mongo_doc_str(job_doc, "_id"));
    copy_id(job->project_id, sizeof(job->project_id), cv_mongo_doc_str(project, "_id"));
    snprintf(job->kind, sizeof(job->kind), "%s",
             kind && strcmp(kind, "python") == 0 ? "python"
             : kind && strcmp(kind, "sql") == 0  ? "sql"
                                                 : "sql_transfer");
    job->attempt = 1;
    job->queued_at_ms = cv_time_now_ms();
    retry_policy(job_doc, job);

    if (strcmp(job->kind, "sql") == 0) {
        const char *which = cv_mongo_doc_str(job_doc, "connection");
        bool origin = which && strcmp(which, "origin") == 0;
        copy_id(job->sql_connection_id, sizeof(job->sql_connection_id),
                cv_mongo_doc_str(project,
                                 origin ? "origin_connection_id" : "destination_connection_id"));
        job->statements = (char *)(uintptr_t)cv_mongo_doc_str(job_doc, "statements");
        return CV_OK;
    }
    if (!(stored = cv_launch_doc_json(job_doc)))
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    if (strcmp(job->kind, "python") == 0) {
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
    job->query = (char *)(uintptr_t)cv_mongo_doc_str(job_doc, "query");
    job->transform = (char *)(uintptr_t)cv_mongo_doc_str(job_doc, "transform");
out:
    cJSON_Delete(stored);
    if (err)
        cv_launch_release(job);
    return err;
}

void cv_launch_release(cv_job *job) {
    cv_python_spec_release(&job->python);
    job->query = NULL; /* borrowed */
    job->statements = NULL;
    job->transform = NULL;
}
