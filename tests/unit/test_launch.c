/*
 * test_launch.c - a run of a stored job (runs/cv_launch.c) and the readers of
 * a job's stored parts (schemas/cv_message.c): a message names a job, and
 * the worker takes the definition from the stored job and its project, never
 * from the message. Messages naming no job of that project, a version not
 * kept, another kind, or parameters for a job that takes none are refused
 * with the field and the reason; an inactive project's job is known but may
 * not run. The load options and a Python job's parts are read by the same
 * functions for API bodies and stored jobs; their errors are checked here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_launch.h"
#include "cv_message.h"
#include "cv_mongo.h"

#include <bson/bson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUN "0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7d"
#define JOB "1c6f1a6d-9e4b-4a68-8b62-7d2020d1af8e"
#define PROJ "2d70217e-af5c-4b79-9c73-8e3131e2b09f"
#define OTHER "3e81328f-b06d-4c8a-8d84-9f4242f3c1a0"
#define ORIG "4f92439a-c17e-4d9b-9e95-a05353a4d2b1"
#define DEST "5aa3540b-d28f-4eac-8fa6-b16464b5e3c2"

static bson_t *doc(const char *json) {
    bson_error_t error;
    bson_t *b = bson_new_from_json((const uint8_t *)json, -1, &error);
    if (!b)
        fail_msg("%s: %s", json, error.message);
    return b;
}

static bson_t *project(bool active) {
    char json[512];
    snprintf(json, sizeof(json),
             "{\"_id\":\"" PROJ "\",\"active\":%s,\"origin_connection_id\":\"" ORIG
             "\",\"destination_connection_id\":\"" DEST "\"}",
             active ? "true" : "false");
    return doc(json);
}

static bson_t *transfer_job(void) {
    return doc("{\"_id\":\"" JOB "\",\"project_id\":\"" PROJ "\",\"kind\":\"sql_transfer\","
               "\"version\":2,\"query\":\"SELECT id FROM t\",\"destination_table\":\"public.t\","
               "\"mode\":\"upsert\",\"key\":[\"id\"],\"transform\":\"print(1)\"}");
}

static bson_t *python_job(void) {
    return doc("{\"_id\":\"" JOB "\",\"project_id\":\"" PROJ "\",\"kind\":\"python\","
               "\"script\":\"print(1)\\n\",\"parameters\":{\"day\":\"2026-11-28\",\"n\":1},"
               "\"timeout_seconds\":60,\"limits\":{\"memory_mb\":256}}");
}

/* A decoded message of run RUN for job JOB of project `project_id`, with
 * the optional members in `extra` (",\"kind\":\"sql\"" and so on). */
static void message(cv_job *job, const char *project_id, const char *extra) {
    char text[1024];
    cv_verr verr;
    snprintf(text, sizeof(text),
             "{\"schema\":\"convutell.job.v2\",\"run_id\":\"" RUN "\",\"job_id\":\"" JOB
             "\",\"project_id\":\"%s\",\"attempt\":1,\"queued_at\":\"2026-12-04T10:00:00Z\"%s}",
             project_id, extra);
    if (cv_job_decode(text, strlen(text), job, &verr) != CV_OK)
        fail_msg("%s: %s: %s", text, verr.field, verr.reason);
}

static void expect_refused(bson_t *job_doc, bson_t *proj, const char *project_id, const char *extra,
                           const char *field, const char *reason) {
    cv_job job;
    cv_verr verr = {"", ""};
    char why[256];

    message(&job, project_id, extra);
    assert_int_equal(cv_launch_resolve(job_doc, proj, &job, &verr, why, sizeof(why)),
                     CV_ERR_INVALID);
    assert_string_equal(verr.field, field);
    assert_string_equal(verr.reason, reason);
    assert_null(job.query);
    cv_job_release(&job);
}

static void test_definition_comes_from_the_store(void **state) {
    bson_t *job_doc = transfer_job(), *proj = project(true);
    cv_job job;
    cv_verr verr;
    char why[256], *encoded;
    (void)state;

    message(&job, PROJ, "");
    assert_int_equal(cv_launch_resolve(job_doc, proj, &job, &verr, why, sizeof(why)), CV_OK);
    assert_string_equal(job.kind, "sql_transfer");
    assert_int_equal(job.job_version, 2);
    assert_string_equal(job.origin_connection_id, ORIG);
    assert_string_equal(job.destination_connection_id, DEST);
    assert_string_equal(job.query, "SELECT id FROM t");
    assert_string_equal(job.transform, "print(1)");
    assert_string_equal(job.destination_table, "public.t");
    assert_int_equal(job.load.mode, CV_MODE_UPSERT);
    assert_string_equal(job.load.keys[0], "id");
    /* Copies the job owns: the stored document may go. */
    bson_destroy(job_doc);
    assert_string_equal(job.query, "SELECT id FROM t");
    /* What goes on to the retry topic names the version it ran. */
    encoded = cv_job_encode(&job);
    assert_non_null(strstr(encoded, "\"job_version\":2,\"kind\":\"sql_transfer\""));
    assert_null(strstr(encoded, "SELECT"));
    free(encoded);
    cv_job_release(&job);
    assert_null(job.query);
    assert_null(job.transform);
    bson_destroy(proj);
}

static void test_messages_naming_no_job_of_ours_are_refused(void **state) {
    bson_t *job_doc = transfer_job(), *proj = project(true);
    (void)state;
    expect_refused(NULL, proj, PROJ, "", "job_id", "names no stored job");
    expect_refused(job_doc, proj, OTHER, "", "project_id", "is not the project of job " JOB);
    expect_refused(job_doc, NULL, PROJ, "", "project_id", "names no stored project");
    expect_refused(job_doc, proj, PROJ, ",\"job_version\":1", "job_version",
                   "job " JOB " is at version 2; version 1 is not kept");
    expect_refused(job_doc, proj, PROJ, ",\"kind\":\"python\"", "kind",
                   "job " JOB " is a sql_transfer job, not python");
    expect_refused(job_doc, proj, PROJ, ",\"parameters\":{\"a\":1}", "parameters",
                   "job " JOB " is a sql_transfer job, which takes none");
    bson_destroy(job_doc);
    bson_destroy(proj);
}

static void test_inactive_project_is_known_but_may_not_run(void **state) {
    bson_t *job_doc = transfer_job(), *proj = project(false);
    cv_job job;
    cv_verr verr;
    char why[256];
    (void)state;
    message(&job, PROJ, ",\"job_version\":2,\"kind\":\"sql_transfer\"");
    assert_int_equal(cv_launch_resolve(job_doc, proj, &job, &verr, why, sizeof(why)),
                     CV_ERR_CONFLICT);
    assert_string_equal(why, "project " PROJ " is not active; activate it to run its jobs");
    assert_string_equal(job.kind, "sql_transfer"); /* filled: the run fails by its kind */
    cv_job_release(&job);
    bson_destroy(job_doc);
    bson_destroy(proj);
}

static void test_run_parameters_are_laid_over_the_stored_ones(void **state) {
    bson_t *job_doc = python_job(), *proj = project(true);
    cv_job job;
    cv_verr verr;
    char why[256], *encoded;
    (void)state;

    message(&job, PROJ, ",\"parameters\":{\"n\":{\"x\":[2]},\"extra\":true}");
    assert_int_equal(cv_launch_resolve(job_doc, proj, &job, &verr, why, sizeof(why)), CV_OK);
    assert_string_equal(job.python.script, "print(1)\n");
    assert_string_equal(job.python.parameters,
                        "{\"day\":\"2026-11-28\",\"n\":{\"x\":[2]},\"extra\":true}");
    assert_int_equal(job.python.timeout_seconds, 60);
    assert_int_equal(job.python.limits.memory_mb, 256);
    assert_int_equal(job.job_version, 1); /* a job stored without a version is at 1 */
    /* The retry carries the run's own parameters, not the merged ones. */
    encoded = cv_job_encode(&job);
    assert_non_null(strstr(encoded, "\"parameters\":{\"n\":{\"x\":[2]},\"extra\":true}}"));
    free(encoded);
    cv_job_release(&job);

    message(&job, PROJ, "");
    assert_int_equal(cv_launch_resolve(job_doc, proj, &job, &verr, why, sizeof(why)), CV_OK);
    assert_string_equal(job.python.parameters, "{\"day\":\"2026-11-28\",\"n\":1}");
    cv_job_release(&job);
    bson_destroy(job_doc);
    bson_destroy(proj);
}

static void test_build_takes_the_project_connection(void **state) {
    bson_t *job_doc = doc("{\"_id\":\"" JOB "\",\"project_id\":\"" PROJ "\",\"kind\":\"sql\","
                          "\"version\":5,\"statements\":\"VACUUM\",\"connection\":\"origin\","
                          "\"schedule\":{\"max_attempts\":4,\"backoff_seconds\":7}}");
    bson_t *proj = project(true);
    cv_job job;
    char why[256];
    (void)state;
    assert_int_equal(cv_launch_build(job_doc, proj, &job, why, sizeof(why)), CV_OK);
    assert_string_equal(job.kind, "sql");
    assert_int_equal(job.job_version, 5);
    assert_string_equal(job.sql_connection_id, ORIG);
    assert_string_equal(job.statements, "VACUUM");
    assert_int_equal(job.max_attempts, 4);
    assert_int_equal(job.backoff_seconds, 7);
    cv_job_release(&job);
    assert_null(job.statements);
    bson_destroy(job_doc);
    bson_destroy(proj);
}

/* ---- the stored parts' readers ---------------------------------------------- */

static void expect_load_invalid(const char *json, const char *field, const char *reason) {
    cJSON *obj = cJSON_Parse(json);
    cv_load_spec spec;
    cv_verr verr = {"", ""};
    assert_non_null(obj);
    assert_int_equal(cv_load_spec_decode(obj, "job", &spec, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, field);
    assert_string_equal(verr.reason, reason);
    cJSON_Delete(obj);
}

static void test_load_options(void **state) {
    cJSON *obj = cJSON_Parse("{\"mode\":\"upsert\",\"key\":[\"id\",\"day\"],"
                             "\"load_method\":\"insert\",\"batch_rows\":250000,"
                             "\"checkpoint_column\":\"id\",\"watermark_column\":\"at\","
                             "\"timeout_seconds\":90}");
    cJSON *back = cJSON_CreateObject();
    cv_load_spec spec;
    cv_verr verr;
    char *text;
    (void)state;
    assert_int_equal(cv_load_spec_decode(obj, NULL, &spec, &verr), CV_OK);
    assert_int_equal(spec.mode, CV_MODE_UPSERT);
    assert_int_equal(spec.nkeys, 2);
    assert_string_equal(spec.keys[1], "day");
    assert_int_equal(spec.method, CV_LOAD_INSERT);
    assert_true(spec.batch_rows == 250000);
    assert_string_equal(spec.checkpoint, "id");
    assert_string_equal(spec.watermark, "at");
    assert_int_equal(spec.timeout_seconds, 90);
    assert_int_equal(cv_load_spec_encode(&spec, back), 0);
    text = cJSON_PrintUnformatted(back);
    assert_string_equal(text, "{\"mode\":\"upsert\",\"load_method\":\"insert\","
                              "\"watermark_column\":\"at\",\"batch_rows\":250000,"
                              "\"checkpoint_column\":\"id\",\"timeout_seconds\":90,"
                              "\"key\":[\"id\",\"day\"]}");
    cJSON_free(text);
    cJSON_Delete(back);
    cJSON_Delete(obj);
    assert_string_equal(cv_load_mode_str(CV_MODE_REPLACE), "replace");
    assert_string_equal(cv_load_mode_str((cv_load_mode)7), "append");
    assert_string_equal(cv_load_method_str(CV_LOAD_INSERT), "insert");
    assert_string_equal(cv_load_method_str((cv_load_method)9), "auto");

    expect_load_invalid("{\"mode\":\"upsert\"}", "job.key", "is required with mode \"upsert\"");
    expect_load_invalid("{\"key\":[\"a\"]}", "job.key", "is only used with mode \"upsert\"");
    expect_load_invalid("{\"mode\":\"merge\"}", "job.mode",
                        "must be \"append\", \"replace\" or \"upsert\", not \"merge\"");
    expect_load_invalid("{\"load_method\":\"bcp\"}", "job.load_method",
                        "must be \"auto\", \"copy\", \"insert\" or \"load_data\", not \"bcp\"");
    expect_load_invalid("{\"load_method\":7}", "job.load_method", "must be a string");
    expect_load_invalid("{\"batch_rows\":5000}", "job.checkpoint_column",
                        "is required with batch_rows");
    expect_load_invalid("{\"checkpoint_column\":\"id\"}", "job.batch_rows",
                        "is required with checkpoint_column");
    expect_load_invalid("{\"batch_rows\":999,\"checkpoint_column\":\"id\"}", "job.batch_rows",
                        "must be between 1000 and 1000000000");
    expect_load_invalid(
        "{\"mode\":\"replace\",\"batch_rows\":5000,\"checkpoint_column\":\"id\"}", "job.batch_rows",
        "cannot be used with mode \"replace\" (readers would see the table half loaded)");
    expect_load_invalid("{\"batch_rows\":5000,\"checkpoint_column\":\"a;b\"}",
                        "job.checkpoint_column",
                        "must be a column name (letters, digits, underscores)");
    expect_load_invalid("{\"mode\":\"upsert\",\"key\":[\"a\",\"a\"]}", "job.key",
                        "names column \"a\" twice");
    expect_load_invalid("{\"mode\":\"upsert\",\"key\":[\"a.b\"]}", "job.key",
                        "must hold column names (letters, digits, underscores)");
    expect_load_invalid("{\"mode\":\"upsert\",\"key\":[]}", "job.key",
                        "must be an array of 1 to 16 column names");
}

static void expect_python_invalid(const char *json, const char *field, const char *reason) {
    cJSON *obj = cJSON_Parse(json);
    cv_python_spec spec;
    cv_verr verr = {"", ""};
    assert_non_null(obj);
    assert_int_equal(cv_python_spec_decode(obj, NULL, &spec, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, field);
    assert_string_equal(verr.reason, reason);
    assert_null(spec.script);
    assert_null(spec.parameters);
    cJSON_Delete(obj);
}

static void test_python_parts(void **state) {
    static const char full[] =
        "{\"script\":\"print(1)\\n\",\"parameters\":{\"day\":\"2026-11-28\",\"n\":[1,2]},"
        "\"timeout_seconds\":60,\"limits\":{\"cpu_seconds\":10,\"memory_mb\":256,"
        "\"open_files\":64,\"file_size_mb\":8,\"processes\":16}}";
    cJSON *obj = cJSON_Parse(full), *back = cJSON_CreateObject();
    cv_python_spec spec;
    cv_verr verr;
    char *text;
    (void)state;
    assert_int_equal(cv_python_spec_decode(obj, NULL, &spec, &verr), CV_OK);
    assert_string_equal(spec.script, "print(1)\n");
    assert_string_equal(spec.parameters, "{\"day\":\"2026-11-28\",\"n\":[1,2]}");
    assert_int_equal(spec.timeout_seconds, 60);
    assert_int_equal(spec.limits.cpu_seconds, 10);
    assert_int_equal(spec.limits.memory_mb, 256);
    assert_int_equal(spec.limits.open_files, 64);
    assert_int_equal(spec.limits.file_size_mb, 8);
    assert_int_equal(spec.limits.processes, 16);
    assert_int_equal(cv_python_spec_encode(&spec, back), 0);
    text = cJSON_PrintUnformatted(back);
    assert_string_equal(text, full); /* stored as read, byte for byte */
    cJSON_free(text);
    cv_python_spec_release(&spec);
    cJSON_Delete(back);
    cJSON_Delete(obj);

    expect_python_invalid("{\"timeout_seconds\":60}", "script", "is required");
    expect_python_invalid("{\"script\":\"\"}", "script", "must not be empty");
    expect_python_invalid("{\"script\":\"x\",\"limits\":{\"memory_mb\":8}}", "limits.memory_mb",
                          "must be between 32 and 65536");
    expect_python_invalid("{\"script\":\"x\",\"limits\":{\"threads\":8}}", "limits.threads",
                          "is not a field of limits");
    expect_python_invalid("{\"script\":\"x\",\"parameters\":[1]}", "parameters",
                          "must be an object");
    expect_python_invalid("{\"script\":\"x\",\"parameters\":{\"$where\":\"1\"}}", "parameters",
                          "has the key \"$where\": keys must not be empty, start with \"$\" or "
                          "hold a \".\"");
    expect_python_invalid("{\"script\":\"x\",\"parameters\":{\"a\":{\"b.c\":1}}}", "parameters.a",
                          "has the key \"b.c\": keys must not be empty, start with \"$\" or "
                          "hold a \".\"");
    expect_python_invalid("{\"script\":\"x\",\"timeout_seconds\":0}", "timeout_seconds",
                          "must be between 1 and 86400");
}

/* A job's version kept for the runs queued before a change, and the job again
 * from it: the same document, its _id the job's. */
static void test_versions_kept(void **state) {
    bson_t *job = doc("{\"_id\": \"6f1c2d3e-0000-4000-8000-000000000001\", \"project_id\": \"p\", "
                      "\"kind\": \"sql\", \"version\": 3, \"statements\": \"SELECT 1\"}");
    bson_t *kept = cv_launch_version_keep(job), *back = NULL, *plain;
    char key[CV_LAUNCH_VERSION_KEY_LEN], *a, *b;
    (void)state;
    cv_launch_version_key("6f1c2d3e-0000-4000-8000-000000000001", 3, key);
    assert_string_equal(key, "6f1c2d3e-0000-4000-8000-000000000001@3");
    assert_non_null(kept);
    assert_string_equal(cv_mongo_doc_str(kept, "_id"), key);
    assert_string_equal(cv_mongo_doc_str(kept, "job_id"), "6f1c2d3e-0000-4000-8000-000000000001");
    back = cv_launch_version_job(kept);
    assert_non_null(back);
    a = bson_as_relaxed_extended_json(job, NULL);
    b = bson_as_relaxed_extended_json(back, NULL);
    assert_string_equal(a, b);
    bson_free(a);
    bson_free(b);
    plain = doc("{\"_id\": \"x\"}"); /* not a kept version: no job_id */
    assert_null(cv_launch_version_job(plain));
    bson_destroy(plain);
    bson_destroy(back);
    bson_destroy(kept);
    bson_destroy(job);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_definition_comes_from_the_store),
        cmocka_unit_test(test_messages_naming_no_job_of_ours_are_refused),
        cmocka_unit_test(test_inactive_project_is_known_but_may_not_run),
        cmocka_unit_test(test_run_parameters_are_laid_over_the_stored_ones),
        cmocka_unit_test(test_build_takes_the_project_connection),
        cmocka_unit_test(test_load_options),
        cmocka_unit_test(test_python_parts),
        cmocka_unit_test(test_versions_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
