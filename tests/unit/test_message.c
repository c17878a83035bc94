/*
 * test_message.c - the message contract in schemas/cv_message.c: job.v2 and
 * event.v1. A valid job decodes field by field; jobs and events survive an
 * encode/decode round trip unchanged; every kind of bad message names the
 * right field with the exact reason; and the JSON Schema files
 * (schemas/job.v2.json, schemas/event.v1.json) are checked against the C
 * decoder itself: each field the schema requires is one the decoder requires,
 * each optional field is one it accepts, and it accepts no other.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cv_message.h"
#include "cv_run.h"
#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RUN "0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7d"
#define JOB "1c6f1a6d-9e4b-4a68-8b62-7d2020d1af8e"
#define PROJ "2d70217e-af5c-4b79-9c73-8e3131e2b09f"
#define EVID "5aa3540b-d28f-4eac-8fa6-b16464b5e3c2"

/* 2026-11-28T04:50:00.250Z */
#define QUEUED_MS INT64_C(1795841400250)

static const char valid_job[] =
    "{\"schema\":\"convutell.job.v2\",\"run_id\":\"" RUN "\",\"job_id\":\"" JOB
    "\",\"project_id\":\"" PROJ "\",\"job_version\":3,\"kind\":\"python\",\"attempt\":2,"
    "\"queued_at\":\"2026-11-28T04:50:00.250Z\",\"parameters\":{\"day\":\"2026-11-28\","
    "\"n\":[1,{\"k\":null}]}}";

/* Returns a copy of `base` with the first occurrence of `from` replaced by
 * `to`; the caller frees it. */
static char *variant_of(const char *base, const char *from, const char *to) {
    const char *at = strstr(base, from);
    size_t len = strlen(base) - strlen(from) + strlen(to) + 1;
    char *out = malloc(len);

    assert_non_null(at);
    assert_non_null(out);
    snprintf(out, len, "%.*s%s%s", (int)(at - base), base, to, at + strlen(from));
    return out;
}

static char *variant(const char *from, const char *to) {
    return variant_of(valid_job, from, to);
}

static void expect_invalid_len(const char *data, size_t len, const char *field,
                               const char *reason) {
    cv_job job;
    cv_verr verr = {"", ""};

    assert_int_equal(cv_job_decode(data, len, &job, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, field);
    assert_string_equal(verr.reason, reason);
    assert_null(job.run_parameters); /* nothing left to release */
}

static void expect_invalid(const char *text, const char *field, const char *reason) {
    expect_invalid_len(text, strlen(text), field, reason);
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
    (void)state;
    assert_int_equal(cv_job_decode(valid_job, strlen(valid_job), &job, &verr), CV_OK);
    assert_string_equal(job.run_id, RUN);
    assert_string_equal(job.job_id, JOB);
    assert_string_equal(job.project_id, PROJ);
    assert_int_equal(job.job_version, 3);
    assert_string_equal(job.kind, "python");
    assert_int_equal(job.attempt, 2);
    assert_int_equal(job.queued_at_ms, QUEUED_MS);
    assert_string_equal(job.run_parameters, "{\"day\":\"2026-11-28\",\"n\":[1,{\"k\":null}]}");
    /* The definition never comes from a message. */
    assert_null(job.query);
    assert_null(job.python.script);
    assert_null(job.statements);
    assert_string_equal(job.origin_connection_id, "");
    cv_job_release(&job);
    assert_null(job.run_parameters);
    cv_job_release(&job); /* releasing twice is harmless */

    /* The least a message says: no version, kind or parameters. */
    static const char least[] =
        "{\"schema\":\"convutell.job.v2\",\"run_id\":\"" RUN "\",\"job_id\":\"" JOB
        "\",\"project_id\":\"" PROJ "\",\"attempt\":1,\"queued_at\":\"2026-11-28T04:50:00Z\"}";
    assert_int_equal(cv_job_decode(least, strlen(least), &job, &verr), CV_OK);
    assert_int_equal(job.job_version, 0);
    assert_string_equal(job.kind, "");
    assert_null(job.run_parameters);
    cv_job_release(&job);
}

/* Decodes `text`, encodes the result, decodes that again and compares every
 * byte of the two jobs (the decoder zeroes the struct, so unused bytes match). */
static void round_trip(const char *text) {
    cv_job job, again;
    cv_verr verr;
    char *encoded, *encoded_again;

    assert_int_equal(cv_job_decode(text, strlen(text), &job, &verr), CV_OK);
    encoded = cv_job_encode(&job);
    assert_non_null(encoded);
    assert_int_equal(cv_job_decode(encoded, strlen(encoded), &again, &verr), CV_OK);
    assert_int_equal(again.queued_at_ms, job.queued_at_ms);
    encoded_again = cv_job_encode(&again);
    assert_non_null(encoded_again);
    assert_string_equal(encoded_again, encoded);
    if (job.run_parameters)
        assert_string_equal(again.run_parameters, job.run_parameters);
    cv_job_release(&job);
    cv_job_release(&again);
    assert_memory_equal(&again, &job, sizeof(job));
    free(encoded);
    free(encoded_again);
}

static void test_job_round_trip(void **state) {
    cv_job job;
    cv_verr verr;
    char *text, *encoded;
    (void)state;
    round_trip(valid_job);
    text = variant(",\"parameters\":{\"day\":\"2026-11-28\",\"n\":[1,{\"k\":null}]}", "");
    round_trip(text);
    free(text);
    text = variant("\"job_version\":3,\"kind\":\"python\",", "");
    round_trip(text);
    free(text);
    text = variant("\"day\"", "\"\\u00fc \\\"x\\\"\"");
    round_trip(text);
    free(text);

    /* The wire form is part of the contract: fields, order and time format. */
    assert_int_equal(cv_job_decode(valid_job, strlen(valid_job), &job, &verr), CV_OK);
    encoded = cv_job_encode(&job);
    assert_string_equal(encoded, valid_job);
    free(encoded);
    cv_job_release(&job);
}

static void test_bad_jobs_name_the_field(void **state) {
    char deep[512];
    size_t n = 0;
    (void)state;
    expect_variant_invalid("\"run_id\":\"" RUN "\",", "", "run_id", "is required");
    expect_variant_invalid("\"run_id\":\"" RUN "\"", "\"run_id\":null", "run_id", "is required");
    expect_variant_invalid(RUN, "not-a-uuid", "run_id",
                           "must be an id (a UUID such as "
                           "\"0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7d\")");
    expect_variant_invalid(JOB, "1c6f1a6d-9e4b-4a68-8b62-7d2020d1af8g", "job_id",
                           "must be an id (a UUID such as "
                           "\"0b5e0f5c-8d3a-4f57-9a51-6c1f1f0c9e7d\")");
    expect_variant_invalid("\"project_id\":\"" PROJ "\"", "\"project_id\":42", "project_id",
                           "must be a string");
    expect_variant_invalid("convutell.job.v2", "convutell.job.v3", "schema",
                           "must be \"convutell.job.v2\", not \"convutell.job.v3\"");
    /* The first version carried the definition: refused by name. */
    expect_variant_invalid("convutell.job.v2", "convutell.job.v1", "schema",
                           "\"convutell.job.v1\" messages carried a job's query, script or "
                           "statements and are no longer run; send \"convutell.job.v2\", which "
                           "names a stored job");
    expect_variant_invalid("\"schema\":\"convutell.job.v2\",", "", "schema", "is required");
    expect_variant_invalid("\"kind\"", "\"password\":\"x\",\"kind\"", "password",
                           "is not a field of convutell.job.v2");
    /* A definition in a message is no field of it. */
    expect_variant_invalid("\"kind\"", "\"sql_transfer\":{\"query\":\"DELETE FROM t\"},\"kind\"",
                           "sql_transfer", "is not a field of convutell.job.v2");
    expect_variant_invalid("\"kind\"", "\"query\":\"DELETE FROM t\",\"kind\"", "query",
                           "is not a field of convutell.job.v2");
    expect_variant_invalid("\"kind\"", "\"python\":{\"script\":\"import os\"},\"kind\"", "python",
                           "is not a field of convutell.job.v2");
    expect_variant_invalid("\"job_version\":3", "\"job_version\":0", "job_version",
                           "must be between 1 and 2147483647");
    expect_variant_invalid("\"job_version\":3", "\"job_version\":\"3\"", "job_version",
                           "must be an integer");
    expect_variant_invalid("\"attempt\":2", "\"attempt\":0", "attempt",
                           "must be between 1 and 1000");
    expect_variant_invalid("\"attempt\":2", "\"attempt\":1001", "attempt",
                           "must be between 1 and 1000");
    expect_variant_invalid("\"attempt\":2", "\"attempt\":1.5", "attempt", "must be an integer");
    expect_variant_invalid("\"attempt\":2", "\"attempt\":\"1\"", "attempt", "must be an integer");
    expect_variant_invalid(
        "\"kind\":\"python\"", "\"kind\":\"shell\"", "kind",
        "must be \"sql_transfer\", \"python\", \"sql\" or \"query\", not \"shell\"");
    expect_variant_invalid("2026-11-28T04:50:00.250Z", "2026-13-01T00:00:00Z", "queued_at",
                           "must be an RFC 3339 time such as \"2026-11-28T04:50:00.000Z\"");
    expect_variant_invalid("2026-11-28T04:50:00.250Z", "2026-11-28T04:50:00", "queued_at",
                           "must be an RFC 3339 time such as \"2026-11-28T04:50:00.000Z\"");
    /* Parameters are kept as a document: the store's rules for keys, and a depth. */
    expect_variant_invalid("{\"day\":\"2026-11-28\",\"n\":[1,{\"k\":null}]}", "[1]", "parameters",
                           "must be an object");
    expect_variant_invalid("\"day\"", "\"$where\"", "parameters",
                           "has the key \"$where\": keys must not be empty, start with \"$\" or "
                           "hold a \".\"");
    expect_variant_invalid("\"day\"", "\"a.b\"", "parameters",
                           "has the key \"a.b\": keys must not be empty, start with \"$\" or "
                           "hold a \".\"");
    expect_variant_invalid("{\"k\":null}", "{\"\":1}", "parameters.n[]",
                           "has the key \"\": keys must not be empty, start with \"$\" or "
                           "hold a \".\"");
    /* 21 levels deep is one too many; the field names the path down to it. */
    for (int levels = 20; levels <= 21; levels++) {
        char *text;
        n = 0;
        for (int i = 0; i < levels; i++)
            n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"a\":");
        n += (size_t)snprintf(deep + n, sizeof(deep) - n, "1");
        for (int i = 0; i < levels; i++)
            n += (size_t)snprintf(deep + n, sizeof(deep) - n, "}");
        text = variant("{\"day\":\"2026-11-28\",\"n\":[1,{\"k\":null}]}", deep);
        if (levels == 20) {
            cv_job job;
            cv_verr verr;
            assert_int_equal(cv_job_decode(text, strlen(text), &job, &verr), CV_OK);
            cv_job_release(&job);
        } else {
            expect_invalid(text, "parameters.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a",
                           "is nested more than 20 levels deep");
        }
        free(text);
    }
}

static void test_malformed_messages(void **state) {
    char *text, reason[64];
    (void)state;
    expect_invalid("{not json", "$", "not valid JSON (error near byte 2)");
    expect_invalid("", "$", "not valid JSON (error near byte 0)");
    expect_invalid("[1]", "$", "must be a JSON object");
    expect_invalid("\"just a string\"", "$", "must be a JSON object");
    expect_invalid("{} x", "$", "not valid JSON (error near byte 3)");
    /* Trailing garbage after an otherwise valid job. */
    text = malloc(sizeof(valid_job) + 2);
    assert_non_null(text);
    snprintf(text, sizeof(valid_job) + 2, "%s{}", valid_job);
    snprintf(reason, sizeof(reason), "not valid JSON (error near byte %zu)", strlen(valid_job));
    expect_invalid(text, "$", reason);
    free(text);
}

static void test_nul_and_oversized_messages(void **state) {
    char with_nul[] = "{\"schema\":\"x\0\"}";
    size_t big = CV_JOB_MAX_BYTES + 1;
    char *huge = malloc(big);
    cv_job job;
    cv_verr verr;
    char reason[128];
    (void)state;
    assert_non_null(huge);
    expect_invalid_len(with_nul, sizeof(with_nul) - 1, "$", "message contains a NUL byte");
    /* A valid job padded with white space to exactly the limit is accepted... */
    memset(huge, ' ', big);
    memcpy(huge, valid_job, strlen(valid_job));
    assert_int_equal(cv_job_decode(huge, CV_JOB_MAX_BYTES, &job, &verr), CV_OK);
    assert_string_equal(job.run_id, RUN);
    cv_job_release(&job);
    /* ...and one byte more is not. */
    snprintf(reason, sizeof(reason), "message is %zu bytes, more than the limit of %d", big,
             CV_JOB_MAX_BYTES);
    expect_invalid_len(huge, big, "$", reason);
    assert_string_equal(reason, "message is 900001 bytes, more than the limit of 900000");
    free(huge);
}

/* Kafka payloads are not NUL-terminated: decode from a buffer of exactly the
 * message's length (ASan reports any read past its end). */
static void test_unterminated_buffers(void **state) {
    size_t len = strlen(valid_job);
    char *exact = malloc(len);
    cv_job job;
    cv_verr verr;
    (void)state;
    assert_non_null(exact);
    memcpy(exact, valid_job, len);
    assert_int_equal(cv_job_decode(exact, len, &job, &verr), CV_OK);
    assert_string_equal(job.job_id, JOB);
    cv_job_release(&job);
    /* Every prefix of the message is invalid JSON and read within bounds. */
    for (size_t n = len - 1; n > 0; n -= 7) {
        char *part = malloc(n);
        assert_non_null(part);
        memcpy(part, valid_job, n);
        assert_int_equal(cv_job_decode(part, n, &job, &verr), CV_ERR_INVALID);
        assert_string_equal(verr.field, "$");
        assert_null(job.run_parameters);
        free(part);
        if (n < 7)
            break;
    }
    free(exact);
}

static void fill_event(cv_event *ev, const char *type) {
    assert_int_equal(cv_event_init(ev, type), CV_OK);
    ev->time_ms = QUEUED_MS;
    snprintf(ev->run_id, sizeof(ev->run_id), RUN);
    snprintf(ev->job_id, sizeof(ev->job_id), JOB);
    snprintf(ev->project_id, sizeof(ev->project_id), PROJ);
    snprintf(ev->worker, sizeof(ev->worker), "host-1-4242");
    ev->attempt = 3;
    ev->rows_read = 10;
    ev->rows_written = 0;
    ev->duration_ms = 1234;
}

static void test_event_init_and_from_job(void **state) {
    cv_event ev;
    cv_job job;
    cv_verr verr;
    int64_t before = cv_time_now_ms(), after;
    (void)state;
    assert_int_equal(cv_event_init(&ev, CV_EVENT_RUN_STARTED), CV_OK);
    after = cv_time_now_ms();
    assert_true(cv_id_valid(ev.event_id));
    assert_string_equal(ev.type, "run.started");
    assert_in_range(ev.time_ms, before, after);
    assert_string_equal(ev.run_id, "");
    assert_int_equal(ev.attempt, 0);
    assert_int_equal(ev.rows_read, -1);
    assert_int_equal(ev.rows_written, -1);
    assert_int_equal(ev.duration_ms, -1);
    assert_string_equal(ev.error_code, "");
    assert_int_equal(cv_job_decode(valid_job, strlen(valid_job), &job, &verr), CV_OK);
    cv_event_from_job(&ev, &job);
    assert_string_equal(ev.run_id, RUN);
    assert_string_equal(ev.job_id, JOB);
    assert_string_equal(ev.project_id, PROJ);
    assert_int_equal(ev.attempt, 2);
    cv_job_release(&job);
}

static void test_event_round_trip(void **state) {
    cv_event ev, back;
    cv_verr verr;
    char *text;
    (void)state;
    fill_event(&ev, CV_EVENT_RUN_FAILED);
    snprintf(ev.error_code, sizeof(ev.error_code), "origin_fetch");
    snprintf(ev.error_message, sizeof(ev.error_message), "ünïcode \"quoted\"\n;{}");
    text = cv_event_encode(&ev);
    assert_non_null(text);
    assert_non_null(strstr(text, ",\"error\":{\"code\":\"origin_fetch\",\"message\":"));
    assert_int_equal(cv_event_decode(text, strlen(text), &back, &verr), CV_OK);
    assert_string_equal(back.event_id, ev.event_id);
    assert_string_equal(back.type, "run.failed");
    assert_int_equal(back.time_ms, QUEUED_MS);
    assert_string_equal(back.run_id, RUN);
    assert_string_equal(back.job_id, JOB);
    assert_string_equal(back.project_id, PROJ);
    assert_string_equal(back.worker, "host-1-4242");
    assert_int_equal(back.attempt, 3);
    assert_int_equal(back.rows_read, 10);
    assert_int_equal(back.rows_written, 0);
    assert_int_equal(back.duration_ms, 1234);
    assert_string_equal(back.error_code, "origin_fetch");
    assert_string_equal(back.error_message, "ünïcode \"quoted\"\n;{}");
    assert_memory_equal(&back, &ev, sizeof(ev)); /* and nothing else changed */
    assert_true(cv_run_is_final(cv_run_event_target(back.type)));
    free(text);

    /* A progress report with the rate and the origin's estimate of the rows. */
    fill_event(&ev, CV_EVENT_RUN_PROGRESS);
    ev.rows_per_second = 2500;
    ev.rows_expected = 5000000;
    text = cv_event_encode(&ev);
    assert_non_null(strstr(text, ",\"rows_per_second\":2500,\"rows_expected\":5000000"));
    assert_int_equal(cv_event_decode(text, strlen(text), &back, &verr), CV_OK);
    assert_int_equal(back.rows_expected, 5000000);
    assert_memory_equal(&back, &ev, sizeof(ev));
    free(text);
}

static void test_event_round_trip_minimal(void **state) {
    cv_event ev, back;
    cv_verr verr;
    char *text;
    (void)state;
    /* A job.rejected event of a garbled message knows no run: only the
     * required fields go on the wire, and the decoder gives the "unknown"
     * values back. */
    assert_int_equal(cv_event_init(&ev, CV_EVENT_JOB_REJECTED), CV_OK);
    snprintf(ev.event_id, sizeof(ev.event_id), EVID);
    ev.time_ms = 0;
    snprintf(ev.error_code, sizeof(ev.error_code), "invalid_message");
    snprintf(ev.error_message, sizeof(ev.error_message), "$: must be a JSON object");
    text = cv_event_encode(&ev);
    assert_string_equal(text, "{\"schema\":\"convutell.event.v1\",\"event_id\":\"" EVID
                              "\",\"type\":\"job.rejected\",\"time\":\"1970-01-01T00:00:00.000Z\","
                              "\"error\":{\"code\":\"invalid_message\","
                              "\"message\":\"$: must be a JSON object\"}}");
    assert_int_equal(cv_event_decode(text, strlen(text), &back, &verr), CV_OK);
    assert_memory_equal(&back, &ev, sizeof(ev));
    assert_int_equal(back.rows_read, -1);
    assert_int_equal(back.rows_expected, -1);
    assert_int_equal(back.attempt, 0);
    assert_int_equal(cv_run_event_target(back.type), CV_RUN_NONE); /* moves no run */
    free(text);
}

/*
 * BUG (schemas/cv_message.c, cv_event_encode, the "message" member of "error"):
 * an event with an error code but an empty error message (the worker sends
 * one when a failing stage left no diagnostic text in its errbuf) is encoded
 * with "message":"", which cv_event_decode rejects ("error.message: must not
 * be empty", as schemas/event.v1.json's minLength 1 says). The collector then
 * files the run.failed event under rejected_events and the run never ends.
 * The encoder should leave "message" out when error_message is empty.
 */
static void test_bug_event_with_empty_error_message_round_trips(void **state) {
    cv_event ev, back;
    cv_verr verr = {"", ""};
    cv_err err;
    char *text;
    (void)state;
    fill_event(&ev, CV_EVENT_RUN_FAILED);
    snprintf(ev.error_code, sizeof(ev.error_code), "destination_commit");
    text = cv_event_encode(&ev);
    assert_non_null(text);
    err = cv_event_decode(text, strlen(text), &back, &verr);
    free(text);
    if (err != CV_OK)
        fail_msg("the encoded event does not decode: %s: %s", verr.field, verr.reason);
    assert_string_equal(back.error_code, "destination_commit");
    assert_string_equal(back.error_message, "");
}

static void expect_event_invalid(const char *text, const char *field, const char *reason) {
    cv_event ev;
    cv_verr verr = {"", ""};
    assert_int_equal(cv_event_decode(text, strlen(text), &ev, &verr), CV_ERR_INVALID);
    assert_string_equal(verr.field, field);
    assert_string_equal(verr.reason, reason);
}

#define EVENT_HEAD "{\"schema\":\"convutell.event.v1\",\"event_id\":\"" EVID "\","

static void test_event_rules(void **state) {
    const char *rejected = EVENT_HEAD "\"type\":\"job.rejected\",\"time\":\"2026-11-28T00:00:00Z\","
                                      "\"error\":{\"code\":\"invalid_message\",\"message\":\"x\"}}";
    cv_event ev;
    cv_verr verr;
    (void)state;
    expect_event_invalid(EVENT_HEAD "\"type\":\"run.started\",\"time\":\"2026-11-28T00:00:00Z\"}",
                         "run_id", "is required for run.started events");
    expect_event_invalid(EVENT_HEAD "\"type\":\"run.succeeded\",\"time\":\"2026-11-28T00:00:00Z\"}",
                         "run_id", "is required for run.succeeded events");
    assert_int_equal(cv_event_decode(rejected, strlen(rejected), &ev, &verr), CV_OK);
    assert_string_equal(ev.type, "job.rejected");
    assert_string_equal(ev.run_id, "");
    assert_string_equal(ev.error_code, "invalid_message");
    assert_string_equal(ev.error_message, "x");
    expect_event_invalid(EVENT_HEAD "\"type\":\"run.exploded\",\"time\":\"2026-11-28T00:00:00Z\","
                                    "\"run_id\":\"" RUN "\"}",
                         "type", "\"run.exploded\" is not an event type");
    expect_event_invalid("{\"schema\":\"convutell.job.v1\"}", "schema",
                         "must be \"convutell.event.v1\", not \"convutell.job.v1\"");
    expect_event_invalid(EVENT_HEAD "\"type\":\"run.started\",\"time\":\"yesterday\"}", "time",
                         "must be an RFC 3339 time such as \"2026-11-28T04:50:00.000Z\"");
    expect_event_invalid(EVENT_HEAD "\"type\":\"run.started\",\"time\":\"2026-11-28T00:00:00Z\","
                                    "\"run_id\":\"" RUN "\",\"rows_read\":-1}",
                         "rows_read", "must be between 0 and 9007199254740992");
    expect_event_invalid(EVENT_HEAD "\"type\":\"run.started\",\"time\":\"2026-11-28T00:00:00Z\","
                                    "\"run_id\":\"" RUN "\",\"error\":{\"message\":\"m\"}}",
                         "error.code", "is required");
    expect_event_invalid(EVENT_HEAD "\"type\":\"run.started\",\"time\":\"2026-11-28T00:00:00Z\","
                                    "\"run_id\":\"" RUN "\",\"error\":{\"code\":\"c\",\"at\":1}}",
                         "error.at", "is not a field of error");
    expect_event_invalid(EVENT_HEAD "\"type\":\"run.started\",\"time\":\"2026-11-28T00:00:00Z\","
                                    "\"run_id\":\"" RUN "\",\"password\":\"x\"}",
                         "password", "is not a field of convutell.event.v1");
    expect_event_invalid("[]", "$", "must be a JSON object");
}

/* A script's empty output line is a log line like any other (found by
 * tests/fuzz/fuzz_event.c: an empty line encoded, then refused); a line goes
 * with its stream. */
static void test_event_log_lines(void **state) {
    const char *empty = EVENT_HEAD "\"type\":\"run.log\",\"time\":\"2026-11-28T00:00:00Z\","
                                   "\"run_id\":\"" RUN "\",\"stream\":\"stdout\",\"line\":\"\"}";
    cv_event ev, back;
    cv_verr verr;
    char *text;
    (void)state;
    assert_int_equal(cv_event_decode(empty, strlen(empty), &ev, &verr), CV_OK);
    assert_string_equal(ev.stream, "stdout");
    assert_string_equal(ev.line, "");
    text = cv_event_encode(&ev);
    assert_non_null(text);
    assert_int_equal(cv_event_decode(text, strlen(text), &back, &verr), CV_OK);
    free(text);
    assert_string_equal(back.line, "");
    expect_event_invalid(EVENT_HEAD "\"type\":\"run.log\",\"time\":\"2026-11-28T00:00:00Z\","
                                    "\"run_id\":\"" RUN "\",\"stream\":\"stdout\"}",
                         "line", "is required with stream");
    expect_event_invalid(EVENT_HEAD "\"type\":\"run.log\",\"time\":\"2026-11-28T00:00:00Z\","
                                    "\"run_id\":\"" RUN "\",\"line\":\"x\"}",
                         "stream", "is required with line");
    expect_event_invalid(EVENT_HEAD "\"type\":\"run.log\",\"time\":\"2026-11-28T00:00:00Z\","
                                    "\"run_id\":\"" RUN "\",\"stream\":\"stdout\",\"line\":7}",
                         "line", "must be a string");
}

/* ---- the JSON Schema files against the decoder ---------------------------- */

/* Reads and parses a JSON file relative to the repository root (the runner
 * starts the tests there). The caller frees the result with cJSON_Delete(). */
static cJSON *load_json(const char *path) {
    FILE *f = fopen(path, "rb");
    char *buf;
    long size;
    cJSON *root;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    assert_true(size > 0);
    rewind(f);
    buf = malloc((size_t)size + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
    buf[size] = '\0';
    fclose(f);
    root = cJSON_Parse(buf);
    free(buf);
    assert_non_null(root);
    return root;
}

static const cJSON *member(const cJSON *obj, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

static bool in_string_array(const cJSON *array, const char *name) {
    const cJSON *item;
    cJSON_ArrayForEach(item, array) {
        if (cJSON_IsString(item) && strcmp(item->valuestring, name) == 0)
            return true;
    }
    return false;
}

/* The names in the schema's "required", plus, with `conditional`, those in
 * "then"."required" (event.v1 requires run_id of all but job.rejected). */
/* Whether the schema requires `name`, counting the requirements of `branch`,
 * the conditional part ("then") that applies to the message, if any. */
static bool schema_requires(const cJSON *schema, const char *name, const cJSON *branch) {
    return in_string_array(member(schema, "required"), name) ||
           (branch && in_string_array(member(branch, "required"), name));
}

typedef cv_err (*decode_fn)(const char *text, cv_verr *verr);

static cv_err decode_job(const char *text, cv_verr *verr) {
    cv_job job;
    cv_err err = cv_job_decode(text, strlen(text), &job, verr);
    cv_job_release(&job);
    return err;
}

static cv_err decode_event(const char *text, cv_verr *verr) {
    cv_event ev;
    return cv_event_decode(text, strlen(text), &ev, verr);
}

static cv_err decode_root(decode_fn decode, const cJSON *root, cv_verr *verr) {
    char *text = cJSON_PrintUnformatted(root);
    cv_err err;
    assert_non_null(text);
    err = decode(text, verr);
    free(text);
    return err;
}

/*
 * `obj` is a member of the valid message `root` (or root itself) described by
 * `schema`. For each property the schema lists: without it the message must
 * fail with "<path>: is required..." exactly when the schema requires it, and
 * with a value of the wrong type the decoder must complain about that field
 * (not call it unknown). Every member of the valid message must be a listed
 * property, so a field the decoder needs cannot be missing from the schema.
 */
static void check_contract(const cJSON *schema, cJSON *root, cJSON *obj, const char *prefix,
                           decode_fn decode, const cJSON *branch) {
    const cJSON *properties = member(schema, "properties"), *prop, *item;
    cv_verr verr;
    char path[128];
    int nrequired = 0;

    assert_true(cJSON_IsObject(properties));
    assert_true(cJSON_IsFalse(member(schema, "additionalProperties")));
    assert_int_equal(decode_root(decode, root, &verr), CV_OK);
    cJSON_ArrayForEach(item, obj) {
        assert_non_null(member(properties, item->string));
    }
    cJSON_ArrayForEach(prop, properties) {
        const char *name = prop->string;
        bool required = schema_requires(schema, name, branch);
        cJSON *saved = cJSON_DetachItemFromObjectCaseSensitive(obj, name);

        snprintf(path, sizeof(path), "%s%s%s", prefix ? prefix : "", prefix ? "." : "", name);
        nrequired += required;
        if (required) {
            assert_non_null(saved); /* the valid message has every required field */
            assert_int_equal(decode_root(decode, root, &verr), CV_ERR_INVALID);
            assert_string_equal(verr.field, path);
            assert_memory_equal(verr.reason, "is required", strlen("is required"));
        } else {
            assert_int_equal(decode_root(decode, root, &verr), CV_OK);
        }
        assert_non_null(cJSON_AddArrayToObject(obj, name)); /* wrong type for every field */
        assert_int_equal(decode_root(decode, root, &verr), CV_ERR_INVALID);
        assert_string_equal(verr.field, path);
        assert_null(strstr(verr.reason, "is not a field of"));
        cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
        if (saved)
            cJSON_AddItemToObject(obj, name, saved);
    }
    assert_int_equal(decode_root(decode, root, &verr), CV_OK);
    /* Every name in "required" is a property (checked above through nrequired). */
    assert_int_equal(nrequired, cJSON_GetArraySize(member(schema, "required")) +
                                    (branch ? cJSON_GetArraySize(member(branch, "required")) : 0));
}

static void expect_required_list(const cJSON *schema, const char *const *names) {
    const cJSON *required = member(schema, "required");
    int n = 0;
    for (const char *const *p = names; *p; p++, n++)
        assert_true(in_string_array(required, *p));
    assert_int_equal(cJSON_GetArraySize(required), n);
}

static void test_log_and_exit_events_round_trip(void **state) {
    cv_event ev, back;
    cv_verr verr;
    char *text;
    (void)state;
    assert_int_equal(cv_event_init(&ev, CV_EVENT_RUN_LOG), CV_OK);
    snprintf(ev.run_id, sizeof(ev.run_id), RUN);
    snprintf(ev.stream, sizeof(ev.stream), "stderr");
    snprintf(ev.line, sizeof(ev.line), "Traceback \"x\"\t\xc3\xa9");
    ev.line_cut = true;
    text = cv_event_encode(&ev);
    assert_int_equal(cv_event_decode(text, strlen(text), &back, &verr), CV_OK);
    assert_string_equal(back.stream, "stderr");
    assert_string_equal(back.line, ev.line);
    assert_true(back.line_cut);
    assert_int_equal(back.exit_code, -1);
    assert_int_equal(back.lines_dropped, -1);
    assert_int_equal(cv_run_event_target(CV_EVENT_RUN_LOG),
                     CV_RUN_NONE); /* a log line changes no run */
    free(text);

    assert_int_equal(cv_event_init(&ev, CV_EVENT_RUN_FAILED), CV_OK);
    snprintf(ev.run_id, sizeof(ev.run_id), RUN);
    ev.exit_code = 3;
    ev.lines_dropped = 998000;
    text = cv_event_encode(&ev);
    assert_non_null(strstr(text, "\"exit_code\":3,\"lines_dropped\":998000"));
    assert_int_equal(cv_event_decode(text, strlen(text), &back, &verr), CV_OK);
    assert_int_equal(back.exit_code, 3);
    assert_int_equal(back.lines_dropped, 998000);
    assert_false(back.line_cut);
    free(text);
}

static void test_job_schema_matches_decoder(void **state) {
    static const char *const job_required[] = {"schema",  "run_id",    "job_id", "project_id",
                                               "attempt", "queued_at", NULL};
    cJSON *schema = load_json("schemas/job.v2.json");
    cJSON *root = cJSON_Parse(valid_job);
    (void)state;
    assert_non_null(root);
    assert_string_equal(member(schema, "$id")->valuestring, CV_JOB_SCHEMA);
    assert_string_equal(
        member(member(member(schema, "properties"), "schema"), "const")->valuestring,
        CV_JOB_SCHEMA);
    expect_required_list(schema, job_required);
    /* Optional fields present, so each one's absence and wrong type is tried
     * (trigger and tick_at depend on each other: tests/unit/test_scheduler.c). */
    cJSON_AddNumberToObject(root, "max_attempts", 3);
    cJSON_AddNumberToObject(root, "backoff_seconds", 5);
    cJSON_AddStringToObject(root, "not_before", "2026-11-28T04:51:00Z");
    check_contract(schema, root, root, NULL, decode_job, NULL);
    cJSON_Delete(root);
    cJSON_Delete(schema);
}

static void test_event_schema_matches_decoder(void **state) {
    static const char *const event_required[] = {"schema", "event_id", "type", "time", NULL};
    cJSON *schema = load_json("schemas/event.v1.json");
    const cJSON *types = member(member(schema, "properties"), "type"), *type;
    cv_event ev;
    cJSON *root;
    char *text;
    (void)state;
    assert_string_equal(member(schema, "$id")->valuestring, CV_EVENT_SCHEMA);
    expect_required_list(schema, event_required);
    /* Every type the schema lists decodes, and every type the header names is listed. */
    cJSON_ArrayForEach(type, member(types, "enum")) {
        char sample[512];
        cv_verr verr;
        snprintf(sample, sizeof(sample),
                 EVENT_HEAD "\"type\":\"%s\",\"time\":\"2026-11-28T00:00:00Z\",\"run_id\":\"" RUN
                            "\"}",
                 type->valuestring);
        if (cv_event_decode(sample, strlen(sample), &ev, &verr) != CV_OK)
            fail_msg("event type %s: %s: %s", type->valuestring, verr.field, verr.reason);
        assert_string_equal(ev.type, type->valuestring);
    }
    assert_true(in_string_array(member(types, "enum"), CV_EVENT_RUN_QUEUED));
    assert_true(in_string_array(member(types, "enum"), CV_EVENT_RUN_STARTED));
    assert_true(in_string_array(member(types, "enum"), CV_EVENT_RUN_SUCCEEDED));
    assert_true(in_string_array(member(types, "enum"), CV_EVENT_RUN_FAILED));
    assert_true(in_string_array(member(types, "enum"), CV_EVENT_JOB_REJECTED));
    /* Every field the encoder can write is set in this run.failed event. */
    fill_event(&ev, CV_EVENT_RUN_FAILED);
    snprintf(ev.error_code, sizeof(ev.error_code), "origin_query");
    snprintf(ev.error_message, sizeof(ev.error_message), "syntax error");
    text = cv_event_encode(&ev);
    root = cJSON_Parse(text);
    assert_non_null(root);
    check_contract(schema, root, root, NULL, decode_event, member(schema, "then"));
    check_contract(member(member(schema, "properties"), "error"), root,
                   cJSON_GetObjectItemCaseSensitive(root, "error"), "error", decode_event, NULL);
    cJSON_Delete(root);
    cJSON_Delete(schema);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_job_decodes),
        cmocka_unit_test(test_job_round_trip),
        cmocka_unit_test(test_bad_jobs_name_the_field),
        cmocka_unit_test(test_log_and_exit_events_round_trip),
        cmocka_unit_test(test_malformed_messages),
        cmocka_unit_test(test_nul_and_oversized_messages),
        cmocka_unit_test(test_unterminated_buffers),
        cmocka_unit_test(test_event_init_and_from_job),
        cmocka_unit_test(test_event_round_trip),
        cmocka_unit_test(test_event_round_trip_minimal),
        cmocka_unit_test(test_bug_event_with_empty_error_message_round_trips),
        cmocka_unit_test(test_event_rules),
        cmocka_unit_test(test_event_log_lines),
        cmocka_unit_test(test_job_schema_matches_decoder),
        cmocka_unit_test(test_event_schema_matches_decoder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
