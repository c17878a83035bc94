/*
 * test_message.c - the job.v1 and event.v1 contract in schemas/cv_message.c:
 * valid messages decode field by field, encode/decode round trips, and every
 * kind of bad message names the right field with the right reason. Also checks
 * that the JSON Schema files require the same fields as the C decoder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cv_message.h"
#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUN "0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7d"
#define JOB "1c6f1a6d-9e4b-4a68-8b62-7d2020d1af8e"
#define PROJ "2d70217e-af5c-4b79-9c73-8e3131e2b09f"
#define ORIG "3e81328f-b06d-4c8a-8d84-9f4242f3c1a0"
#define DEST "4f92439a-c17e-4d9b-9e95-a05353a4d2b1"

static const char valid_job[] =
    "{\"schema\":\"convutell.job.v1\",\"run_id\":\"" RUN "\",\"job_id\":\"" JOB
    "\",\"project_id\":\"" PROJ "\",\"kind\":\"sql_transfer\",\"attempt\":2,"
    "\"queued_at\":\"2026-11-28T04:50:00.250Z\",\"sql_transfer\":{\"origin_connection_id\":\"" ORIG
    "\",\"destination_connection_id\":\"" DEST "\",\"query\":\"SELECT 1\","
    "\"destination_table\":\"public.t\"}}";

/* Replaces the first occurrence of `from` in valid_job with `to`. */
static char *variant(const char *from, const char *to) {
    const char *at = strstr(valid_job, from);
    size_t len = strlen(valid_job) - strlen(from) + strlen(to) + 1;
    char *out = malloc(len);
    assert_non_null(at);
    snprintf(out, len, "%.*s%s%s", (int)(at - valid_job), valid_job, to, at + strlen(from));
    return out;
}

static void expect_invalid(const char *text, const char *field, const char *reason) {
    cv_job job;
    cv_verr verr;
    assert_int_equal(cv_job_decode(text, strlen(text), &job, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, field);
    assert_string_equal(verr.reason, reason);
    assert_null(job.query);
}

static void expect_variant_invalid(const char *from, const char *to, const char *field,
                                   const char *reason) {
    char *text = variant(from, to);
    expect_invalid(text, field, reason);
    free(text);
}

static void test_valid_job_decodes(void **state) {
    cv_job job;
    cv_verr verr;
    int64_t ms;
    (void)state;
    assert_int_equal(cv_job_decode(valid_job, strlen(valid_job), &job, &verr), CV_OK);
    assert_string_equal(job.run_id, RUN);
    assert_string_equal(job.job_id, JOB);
    assert_string_equal(job.project_id, PROJ);
    assert_string_equal(job.kind, "sql_transfer");
    assert_int_equal(job.attempt, 2);
    assert_int_equal(cv_time_parse("2026-11-28T04:50:00.250Z", &ms), 0);
    assert_int_equal(job.queued_at_ms, ms);
    assert_string_equal(job.origin_connection_id, ORIG);
    assert_string_equal(job.destination_connection_id, DEST);
    assert_string_equal(job.query, "SELECT 1");
    assert_string_equal(job.destination_table, "public.t");
    assert_int_equal(job.load.mode, CV_MODE_APPEND);
    cv_job_release(&job);
}

static void test_job_round_trip(void **state) {
    cv_job job, again;
    cv_verr verr;
    char *text;
    (void)state;
    char *upsert = variant("\"destination_table\":\"public.t\"",
                           "\"destination_table\":\"public.t\",\"mode\":\"upsert\","
                           "\"key\":[\"a\",\"b\"]");
    assert_int_equal(cv_job_decode(upsert, strlen(upsert), &job, &verr), CV_OK);
    free(upsert);
    text = cv_job_encode(&job);
    assert_non_null(text);
    assert_int_equal(cv_job_decode(text, strlen(text), &again, &verr), CV_OK);
    assert_string_equal(again.run_id, job.run_id);
    assert_string_equal(again.query, job.query);
    assert_int_equal(again.queued_at_ms, job.queued_at_ms);
    assert_int_equal(again.attempt, job.attempt);
    assert_int_equal(again.load.mode, CV_MODE_UPSERT);
    assert_int_equal(again.load.nkeys, 2);
    assert_string_equal(again.load.keys[1], "b");
    free(text);
    cv_job_release(&job);
    cv_job_release(&again);
}

static void test_bad_jobs_name_the_field(void **state) {
    (void)state;
    expect_variant_invalid("\"run_id\":\"" RUN "\",", "", "run_id", "is required");
    expect_variant_invalid(RUN, "not-a-uuid", "run_id",
                           "must be an id (a UUID such as "
                           "\"0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7d\")");
    expect_variant_invalid("convutell.job.v1", "convutell.job.v2", "schema",
                           "must be \"convutell.job.v1\", not \"convutell.job.v2\"");
    expect_variant_invalid("\"kind\"", "\"password\":\"x\",\"kind\"", "password",
                           "is not a field of convutell.job.v1");
    expect_variant_invalid("\"query\"", "\"password\":\"x\",\"query\"", "sql_transfer.password",
                           "is not a field of sql_transfer");
    expect_variant_invalid("\"attempt\":2", "\"attempt\":0", "attempt",
                           "must be between 1 and 1000");
    expect_variant_invalid("\"attempt\":2", "\"attempt\":1.5", "attempt", "must be an integer");
    expect_variant_invalid("\"attempt\":2", "\"attempt\":\"1\"", "attempt", "must be an integer");
    expect_variant_invalid("\"kind\":\"sql_transfer\"", "\"kind\":\"python\"", "kind",
                           "must be \"sql_transfer\", not \"python\"");
    expect_variant_invalid("2026-11-28T04:50:00.250Z", "2026-13-01T00:00:00Z", "queued_at",
                           "must be an RFC 3339 time such as \"2026-11-28T04:50:00.000Z\"");
    expect_variant_invalid("\"public.t\"", "\"t;drop\"", "sql_transfer.destination_table",
                           "must be a table name (letters, digits, underscores, optionally "
                           "schema.table)");
    expect_variant_invalid("\"SELECT 1\"", "\"\"", "sql_transfer.query", "must not be empty");
    expect_variant_invalid("\"public.t\"}", "\"public.t\",\"mode\":\"upsert\"}", "sql_transfer.key",
                           "is required with mode \"upsert\"");
    expect_invalid("{not json", "$", "not valid JSON (error near byte 2)");
    expect_invalid("[1]", "$", "must be a JSON object");
    expect_invalid("{} x", "$", "not valid JSON (error near byte 3)");
}

static void test_nul_and_oversized_messages(void **state) {
    char with_nul[] = "{\"schema\":\"x\0\"}";
    size_t big = CV_JOB_MAX_BYTES + 1;
    char *huge = malloc(big);
    cv_job job;
    cv_verr verr;
    char reason[128];
    (void)state;
    assert_int_equal(cv_job_decode(with_nul, sizeof(with_nul) - 1, &job, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.reason, "message contains a NUL byte");
    memset(huge, ' ', big);
    assert_int_equal(cv_job_decode(huge, big, &job, &verr), CV_ERR_INVALID);
    snprintf(reason, sizeof(reason), "message is %zu bytes, more than the limit of %d", big,
             CV_JOB_MAX_BYTES);
    assert_string_equal(verr.reason, reason);
    free(huge);
}

static void test_event_round_trip(void **state) {
    cv_event ev, back;
    cv_verr verr;
    char *text;
    (void)state;
    assert_int_equal(cv_event_init(&ev, CV_EVENT_RUN_FAILED), CV_OK);
    snprintf(ev.run_id, sizeof(ev.run_id), RUN);
    snprintf(ev.worker, sizeof(ev.worker), "w-1");
    ev.attempt = 3;
    ev.rows_read = 10;
    ev.rows_written = 0;
    ev.duration_ms = 1234;
    snprintf(ev.error_code, sizeof(ev.error_code), "origin_fetch");
    snprintf(ev.error_message, sizeof(ev.error_message), "ünïcode \"quoted\"");
    text = cv_event_encode(&ev);
    assert_non_null(text);
    assert_int_equal(cv_event_decode(text, strlen(text), &back, &verr), CV_OK);
    assert_string_equal(back.event_id, ev.event_id);
    assert_string_equal(back.type, "run.failed");
    assert_int_equal(back.time_ms, ev.time_ms);
    assert_string_equal(back.run_id, RUN);
    assert_string_equal(back.job_id, "");
    assert_int_equal(back.attempt, 3);
    assert_int_equal(back.rows_read, 10);
    assert_int_equal(back.rows_written, 0);
    assert_int_equal(back.duration_ms, 1234);
    assert_string_equal(back.error_code, "origin_fetch");
    assert_string_equal(back.error_message, "ünïcode \"quoted\"");
    free(text);
}

static void test_event_rules(void **state) {
    const char *no_run = "{\"schema\":\"convutell.event.v1\",\"event_id\":\"" RUN
                         "\",\"type\":\"run.started\",\"time\":\"2026-11-28T00:00:00Z\"}";
    const char *rejected = "{\"schema\":\"convutell.event.v1\",\"event_id\":\"" RUN
                           "\",\"type\":\"job.rejected\",\"time\":\"2026-11-28T00:00:00Z\","
                           "\"error\":{\"code\":\"invalid_message\",\"message\":\"x\"}}";
    const char *unknown = "{\"schema\":\"convutell.event.v1\",\"event_id\":\"" RUN
                          "\",\"type\":\"run.exploded\",\"time\":\"2026-11-28T00:00:00Z\"}";
    cv_event ev;
    cv_verr verr;
    (void)state;
    assert_int_equal(cv_event_decode(no_run, strlen(no_run), &ev, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, "run_id");
    assert_string_equal(verr.reason, "is required for run.started events");
    assert_int_equal(cv_event_decode(rejected, strlen(rejected), &ev, &verr), CV_OK);
    assert_string_equal(ev.run_id, "");
    assert_int_equal(cv_event_decode(unknown, strlen(unknown), &ev, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.reason, "\"run.exploded\" is not an event type");
    assert_true(cv_event_is_terminal("run.succeeded"));
    assert_false(cv_event_is_terminal("run.started"));
}

/* Reads a JSON file relative to the repository root (make runs from there). */
static cJSON *load_json(const char *path) {
    FILE *f = fopen(path, "rb");
    char *buf = malloc(1 << 16);
    size_t n;
    cJSON *root;
    assert_non_null(f);
    n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    root = cJSON_Parse(buf);
    free(buf);
    assert_non_null(root);
    return root;
}

static void expect_required(const cJSON *schema, const char *const *names) {
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(schema, "required"), *item;
    int n = 0;
    cJSON_ArrayForEach(item, req) {
        bool found = false;
        for (const char *const *p = names; *p; p++)
            found = found || strcmp(*p, item->valuestring) == 0;
        assert_true(found);
        n++;
    }
    for (const char *const *p = names; *p; p++)
        n--;
    assert_int_equal(n, 0);
}

static void test_schema_files_match_decoder(void **state) {
    static const char *const job_req[] = {"schema",     "run_id",       "job_id",
                                          "project_id", "kind",         "attempt",
                                          "queued_at",  "sql_transfer", NULL};
    static const char *const transfer_req[] = {"origin_connection_id", "destination_connection_id",
                                               "query", "destination_table", NULL};
    static const char *const event_req[] = {"schema", "event_id", "type", "time", NULL};
    cJSON *job = load_json("schemas/job.v1.json"), *event = load_json("schemas/event.v1.json");
    (void)state;
    expect_required(job, job_req);
    expect_required(cJSON_GetObjectItemCaseSensitive(
                        cJSON_GetObjectItemCaseSensitive(job, "properties"), "sql_transfer"),
                    transfer_req);
    expect_required(event, event_req);
    cJSON_Delete(job);
    cJSON_Delete(event);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_job_decodes),
        cmocka_unit_test(test_job_round_trip),
        cmocka_unit_test(test_bad_jobs_name_the_field),
        cmocka_unit_test(test_nul_and_oversized_messages),
        cmocka_unit_test(test_event_round_trip),
        cmocka_unit_test(test_event_rules),
        cmocka_unit_test(test_schema_files_match_decoder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
