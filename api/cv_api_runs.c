/*
 * cv_api_runs.c - starting and stopping runs through the API: POST
 * /jobs/{id}/runs writes the run's record (shared inserts, cv_group), then
 * publishes the job and its run.queued event; POST /runs/{id}/cancel asks for a
 * stop. Reading runs is cv_api.c's (pages of lists).
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_api_int.h"

#include "cv_group.h"
#include "cv_id.h"
#include "cv_json.h"
#include "cv_kafka.h"
#include "cv_launch.h"
#include "cv_lease.h"
#include "cv_log.h"
#include "cv_message.h"
#include "cv_runs.h"
#include "cv_store.h"
#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* Publishes a run's run.queued event, for the record of events, without
 * waiting for the broker: its run record is written already, so a lost event
 * loses no state. */
static void publish_queued(cv_api *api, const cv_event *ev) {
    char why[256], *json = cv_event_encode(ev);
    cv_err err;

    if (!json) {
        cv_log_warn("run %s: run.queued event not encoded", ev->run_id);
        return;
    }
    err = cv_kafka_produce_nowait(api->producer, CV_TOPIC_EVENTS, ev->run_id, json, strlen(json),
                                  why, sizeof(why));
    if (err)
        cv_log_warn("run %s: run.queued event not published: %s", ev->run_id, why);
    free(json);
}

/* After a job message the broker did not acknowledge in time. A timeout is
 * not a refusal: the broker may have the message after all. So the run is
 * blocked first, and a worker that gets its message later ends it as
 * cancelled without running it: a 503 never hides a run that happens. True
 * when the block finds the run claimed already (the message did reach a
 * worker): the run is real and the request succeeded. Otherwise the run's
 * record is removed. */
static bool unsent_run_ran(cv_api *api, const cv_job *job) {
    char why[256];
    cv_err err = cv_lease_block(api->mongo, job->run_id, job->attempt, why, sizeof(why));

    if (err == CV_ERR_CONFLICT) {
        cv_log_warn("run %s: its message was not acknowledged in time, but a worker has it",
                    job->run_id);
        return true;
    }
    if (err)
        cv_log_warn("run %s: not blocked (%s); if its message reached the broker it runs",
                    job->run_id, why);
    if (cv_runs_forget_queued(api->mongo, job->run_id, why, sizeof(why)) != CV_OK)
        cv_log_warn("run %s: not queued, and its record stays: %s", job->run_id, why);
    return false;
}

/* A run request's optional body: this run's retry policy and, for Python
 * jobs, parameters laid over the job's. */
typedef struct run_request {
    int64_t max_attempts;    /* 0: the job's */
    int64_t backoff_seconds; /* 0: the job's */
    char *parameters;        /* owned (cJSON_free): JSON object text, or NULL */
} run_request;

/* Reads req's body (none is fine) into *opts. False, with the error in res,
 * when a field is wrong. */
static bool read_run_request(const cv_http_request *req, const bson_t *job_doc, const char *job_id,
                             run_request *opts, cv_http_response *res) {
    static const char *const fields[] = {"max_attempts", "backoff_seconds", "parameters", NULL};
    const char *kind = cv_mongo_doc_str(job_doc, "kind");
    cJSON *body;
    cv_verr verr;
    bool ok = false;

    if (req->body_len == 0)
        return true;
    if (!(body = cv_api_parse_body(req, res)))
        return false;
    if (cv_json_only(body, NULL, fields, "a run request", &verr) ||
        cv_json_get_int(body, NULL, "max_attempts", false, 1, CV_MAX_ATTEMPTS, &opts->max_attempts,
                        &verr) ||
        cv_json_get_int(body, NULL, "backoff_seconds", false, 1, 86400, &opts->backoff_seconds,
                        &verr) ||
        cv_json_get_doc(body, NULL, "parameters", CV_PARAMETERS_MAX_BYTES, &opts->parameters,
                        &verr))
        goto out;
    if (opts->parameters && cv_job_kind_parse(kind) != CV_JOB_KIND_PYTHON) {
        cv_verr_set(&verr, NULL, "parameters", "job %s is a %s job, which takes none", job_id,
                    kind ? kind : "sql_transfer");
        goto out;
    }
    ok = true;
out:
    if (!ok)
        cv_api_field_error(res, &verr);
    cJSON_Delete(body);
    return ok;
}

void cv_api_trigger_run(cv_api *api, const char *job_id, const cv_http_request *req,
                        cv_http_response *res) {
    char why[512], queued[CV_TIME_RFC3339_LEN];
    bson_t *job_doc = NULL, *project = NULL, *record = NULL;
    run_request opts = {0, 0, NULL};
    cv_job job;
    cv_event ev;
    char *msg = NULL;
    cv_err err;

    memset(&job, 0, sizeof(job));
    job_doc = cv_api_load_cached(api, CV_COLL_JOBS, "job", job_id, res);
    if (!job_doc)
        goto out;
    if (!read_run_request(req, job_doc, job_id, &opts, res))
        goto out;
    project = cv_api_load_cached(api, CV_COLL_PROJECTS, "project",
                                 cv_mongo_doc_str(job_doc, "project_id"), res);
    if (!project) {
        if (res->status == 404)
            cv_http_error(res, 409, "conflict", NULL, "the job's project no longer exists");
        goto out;
    }
    if (!cv_mongo_doc_bool(project, "active", true)) {
        cv_http_error(res, 409, "project_inactive", NULL,
                      "project %s is not active; activate it to run its jobs",
                      cv_mongo_doc_str(project, "_id"));
        goto out;
    }
    if ((err = cv_launch_build(job_doc, project, &job, why, sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    if (cv_id_new(job.run_id, sizeof(job.run_id)) != 0) {
        cv_api_internal_error(res, CV_ERR_IO, "cannot make an id");
        goto out;
    }
    snprintf(job.trigger, sizeof(job.trigger), "manual");
    if (opts.max_attempts)
        job.max_attempts = (int)opts.max_attempts;
    if (opts.backoff_seconds)
        job.backoff_seconds = (int)opts.backoff_seconds;
    job.run_parameters = opts.parameters; /* moved: carried by the message, laid over the job's */
    opts.parameters = NULL;
    msg = cv_job_encode(&job);
    if (!msg || cv_event_init(&ev, CV_EVENT_RUN_QUEUED) != CV_OK) {
        cv_api_internal_error(res, CV_ERR_NOMEM, "cannot encode the job message");
        goto out;
    }
    cv_event_from_job(&ev, &job);
    ev.time_ms = job.queued_at_ms;
    /* The record first, so that GET /runs/{id} answers as soon as the client
     * has its 202 and the worker's events find it; a run that cannot be
     * recorded is not queued. */
    if (!(record = cv_runs_queued_record(&ev))) {
        cv_api_internal_error(res, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    BSON_APPEND_UTF8(record, "created_by", cv_api_caller(req)->user);
    if ((err = cv_group_insert(api->runs, record, why, sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    cv_api_note_run(api, job.run_id, job.project_id);
    /* Keyed by job id: runs of one job stay in order on one partition. */
    err = cv_kafka_produce(api->producer, CV_TOPIC_JOBS, job.job_id, msg, strlen(msg), NULL,
                           CV_API_PUBLISH_TIMEOUT_MS, why, sizeof(why));
    if (err && !unsent_run_ran(api, &job)) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    publish_queued(api, &ev);
    cv_log_info("run %s of job %s queued", job.run_id, job.job_id);
    cv_time_format(job.queued_at_ms, queued, sizeof(queued));
    res->status = 202;
    res->body = cJSON_CreateObject();
    cJSON_AddStringToObject(res->body, "run_id", job.run_id);
    cJSON_AddStringToObject(res->body, "job_id", job.job_id);
    cJSON_AddStringToObject(res->body, "status", "queued");
    cJSON_AddStringToObject(res->body, "queued_at", queued);
    snprintf(res->location, sizeof(res->location), "/api/v1/runs/%s", job.run_id);
out:
    cv_job_release(&job);
    cJSON_free(opts.parameters);
    free(msg);
    bson_destroy(record);
    bson_destroy(project);
    bson_destroy(job_doc);
}

/* Asks the worker running (or about to run) a run to stop. The worker checks
 * the request between blocks of rows, rolls the destination back and ends the
 * run as cancelled; a run still queued is cancelled when a worker picks it up. */
void cv_api_cancel_run(cv_api *api, const char *run_id, const cv_http_request *req,
                       cv_http_response *res) {
    char why[512];
    bson_t *run = cv_api_load_doc(api, CV_COLL_RUNS, "run", run_id, res);
    const char *status;
    cv_err err;

    (void)req;
    if (!run)
        return;
    status = cv_mongo_doc_str(run, CV_RUN_F_STATUS);
    if (cv_run_name_is_final(status)) {
        cv_http_error(res, 409, "run_finished", NULL, "run %s has already finished (%s)", run_id,
                      status);
        goto out;
    }
    err = cv_runs_request_cancel(api->mongo, run_id, why, sizeof(why));
    if (err == CV_ERR_CONFLICT) {
        cv_http_error(res, 409, "run_finished", NULL, "run %s finished meanwhile", run_id);
        goto out;
    }
    if (err) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    /* A run no worker has claimed yet is kept from being claimed at all: the
     * worker that gets it ends it as cancelled without a look at the run. */
    if (status && strcmp(status, cv_run_status_name(CV_RUN_QUEUED)) == 0) {
        err = cv_lease_block(api->mongo, run_id, (int)cv_mongo_doc_int(run, CV_RUN_F_ATTEMPT, 1),
                             why, sizeof(why));
        /* CONFLICT: claimed meanwhile; a run longer than a second sees the flag */
        if (err && err != CV_ERR_CONFLICT)
            cv_log_warn("run %s: claims not blocked: %s", run_id, why);
    }
    cv_log_info("run %s: cancel requested", run_id);
    res->status = 202;
    res->body = cJSON_CreateObject();
    cJSON_AddStringToObject(res->body, "run_id", run_id);
    cJSON_AddStringToObject(res->body, "status", status ? status : "queued");
    cJSON_AddBoolToObject(res->body, "cancel_requested", 1);
out:
    bson_destroy(run);
}
