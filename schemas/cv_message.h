/*
 * cv_message.h - the message contract in C: encode, decode and validate job
 * messages (schemas/job.v2.json) and result events (schemas/event.v1.json).
 *
 * Job messages reach the workers from the API, the scheduler and from other
 * systems writing to convutell.jobs directly, so cv_job_decode() treats every
 * byte as untrusted and reports the first bad field. A job message names a
 * stored job (and the version of it the run is for) and carries only what a
 * run may set: its id, attempt, retry policy and a Python job's parameters.
 * The worker takes the query, transform, script or statements and the
 * connections from the store (runs/cv_launch.h), so writing to
 * convutell.jobs starts known jobs and cannot bring code of its own.
 *
 * Threads and ownership: pure functions over the caller's structs, any
 * thread. A cv_job owns its strings (release with cv_job_release()); a
 * cv_event is a value; encoded text is the caller's to free().
 */
#ifndef CV_MESSAGE_H
#define CV_MESSAGE_H

#include "cv_err.h"
#include "cv_id.h"
#include "cv_json.h"

#include <stdint.h>

#define CV_JOB_SCHEMA "convutell.job.v2"
#define CV_EVENT_SCHEMA "convutell.event.v1"
/* Larger job messages are rejected. Under the producers' message.max.bytes
 * (CV_KAFKA_MESSAGE_MAX, 1,000,000) with room to spare, so that a valid job's
 * copy on the retry topic, which adds a few fields, always fits. */
#define CV_JOB_MAX_BYTES 900000
#define CV_QUERY_MAX_BYTES (512 * 1024)
#define CV_MAX_ATTEMPT 1000

/* How rows are written into the destination table. */
typedef enum cv_load_mode {
    CV_MODE_APPEND = 0, /* insert the rows */
    CV_MODE_REPLACE,    /* empty the table and insert, in one transaction */
    CV_MODE_UPSERT      /* insert, or update the row with the same key */
} cv_load_mode;

/* How rows get into the destination. AUTO picks the fastest way the
 * destination's driver allows: COPY for PostgreSQL, LOAD DATA for MariaDB,
 * parameter arrays for the rest. */
typedef enum cv_load_method {
    CV_LOAD_AUTO = 0,
    CV_LOAD_COPY,     /* PostgreSQL COPY FROM STDIN through libpq */
    CV_LOAD_INSERT,   /* INSERT with ODBC parameter arrays, any database */
    CV_LOAD_LOAD_DATA /* MariaDB LOAD DATA LOCAL INFILE through libmariadb */
} cv_load_method;

#define CV_MAX_KEYS 16

typedef struct cv_load_spec {
    cv_load_mode mode;
    cv_load_method method;
    int nkeys;                  /* key columns, upsert only */
    char keys[CV_MAX_KEYS][64]; /* plain identifiers */
    char watermark[64];         /* incremental extraction column, "" for full loads */
    int64_t batch_rows;         /* commit about every so many rows, 0 = one transaction */
    char checkpoint[64];        /* column the batches are ordered and cut on */
    int timeout_seconds;        /* time limit of one attempt, 0 = none */
} cv_load_spec;

/* Reads the optional "mode" ("append" when absent, "replace", "upsert"),
 * "key" (array of column names, required with and only allowed with "upsert"),
 * "load_method" ("auto" when absent, "copy", "insert", "load_data"),
 * "batch_rows" (1000 to 1000000000) with "checkpoint_column" (a column name;
 * each needs the other, and neither goes with mode "replace"),
 * "watermark_column" (a column name of the query's result) and "timeout_seconds"
 * (1 to 86400) members of obj, reporting fields
 * under `prefix`. Used for API bodies and for job messages alike. */
cv_err cv_load_spec_decode(const cJSON *obj, const char *prefix, cv_load_spec *out, cv_verr *verr);

/* Adds "mode" (and "key" for upsert, "load_method" unless auto,
 * "watermark_column", "batch_rows", "checkpoint_column" and "timeout_seconds"
 * if set) to obj. Returns 0, -1 on allocation
 * failure. */
int cv_load_spec_encode(const cv_load_spec *spec, cJSON *obj);

/* "append", "replace" or "upsert". */
const char *cv_load_mode_str(cv_load_mode mode);

/* "auto", "copy", "insert" or "load_data". */
const char *cv_load_method_str(cv_load_method method);

/* Kind "python": a script the worker runs in its sandbox (consumer/cv_script.h). */
#define CV_SCRIPT_MAX_BYTES (512 * 1024)
#define CV_PARAMETERS_MAX_BYTES (64 * 1024)

/* Limits of one attempt of a Python job; 0 = the worker's default. */
typedef struct cv_python_limits {
    int cpu_seconds, memory_mb, open_files, file_size_mb, processes;
} cv_python_limits;

typedef struct cv_python_spec {
    char *script;        /* owned: the script's source */
    char *parameters;    /* owned: JSON object text, NULL when none */
    int timeout_seconds; /* wall clock of one attempt, 0 = the worker's default */
    cv_python_limits limits;
} cv_python_spec;

/* Reads "script" (required), "parameters" (an object), "timeout_seconds" (1 to
 * 86400) and "limits" (an object of cpu_seconds, memory_mb, open_files,
 * file_size_mb, processes) from obj, reporting fields under `prefix`. Used for
 * API bodies and job messages alike. On success release *out with
 * cv_python_spec_release(). */
cv_err cv_python_spec_decode(const cJSON *obj, const char *prefix, cv_python_spec *out,
                             cv_verr *verr);

/* Adds the members cv_python_spec_decode() reads to obj. 0, or -1 when out of memory. */
int cv_python_spec_encode(const cv_python_spec *spec, cJSON *obj);

/* Frees what cv_python_spec_decode() allocated. Accepts a zeroed spec. */
void cv_python_spec_release(cv_python_spec *spec);

/* The kinds of job, parsed once from their stored and message text. */
typedef enum cv_job_kind {
    CV_JOB_KIND_NONE,     /* no kind, or one Convutell does not know */
    CV_JOB_KIND_TRANSFER, /* "sql_transfer" */
    CV_JOB_KIND_PYTHON,   /* "python" */
    CV_JOB_KIND_SQL,      /* "sql" */
    CV_JOB_KIND_QUERY     /* "query": one statement of the SQL console, on convutell.queries
                             (consumer/cv_console.h), never a stored job */
} cv_job_kind;

/* The kind `text` names (NULL or unknown: CV_JOB_KIND_NONE). */
cv_job_kind cv_job_kind_parse(const char *text);

/* Its text ("sql_transfer", "python", "sql", "query"; "" for CV_JOB_KIND_NONE). */
const char *cv_job_kind_str(cv_job_kind kind);

typedef struct cv_job {
    /* What the message says. */
    char run_id[CV_ID_LEN];
    char job_id[CV_ID_LEN];
    char project_id[CV_ID_LEN];
    int job_version; /* the stored job's version this run is for; 0: its current one */
    char kind[32];   /* "sql_transfer", "python" or "sql"; "" when the message does not say */
    int attempt;     /* 1 for the first delivery of a run */
    int64_t queued_at_ms;
    /* Where the run came from: "manual" (the API), "schedule" (the scheduler)
     * or "external" (anything else writing to convutell.jobs); "" when the
     * message does not say, which counts as "external". */
    char trigger[16];
    int64_t tick_ms;       /* trigger "schedule": the tick this run is for; 0 otherwise */
    int max_attempts;      /* attempts before the run fails for good [1] */
    int backoff_seconds;   /* delay before the second attempt, doubled each time [60] */
    int64_t not_before_ms; /* a retry: not to run before this time; 0 for none */
    char *run_parameters;  /* owned: this run's parameters (JSON object text) or NULL */
    /* The definition: from the stored job (cv_launch.h), never from a message. */
    /* kind "sql_transfer" */
    char origin_connection_id[CV_ID_LEN];
    char destination_connection_id[CV_ID_LEN];
    char *query; /* owned; freed by cv_job_release() */
    char destination_table[128];
    cv_load_spec load;
    char *transform; /* owned: Python script the rows go through, NULL for none */
    /* kind "python" */
    cv_python_spec python;
    /* kind "sql": statements run in one transaction on one connection */
    char sql_connection_id[CV_ID_LEN];
    char *statements; /* owned */
} cv_job;

/* Decodes and validates a job message: the run's fields, not the definition
 * (a message of convutell.job.v1, which carried one, is refused by name). On
 * success *job is filled and must be released with cv_job_release(). On
 * CV_ERR_INVALID, *verr names the field and *job holds nothing that needs
 * releasing. CV_ERR_NOMEM on allocation failure. */
cv_err cv_job_decode(const char *data, size_t len, cv_job *job, cv_verr *verr);

/* Encodes a job message: the run's fields, job_version when set and kind when
 * known; never the definition. Returns a NUL-terminated string the caller frees with
 * free(), or NULL on allocation failure. */
char *cv_job_encode(const cv_job *job);

/* The delay before attempt `next` (2 or more) of a run: backoff_seconds *
 * 2^(next-2), capped at one day, times a random factor in [0.8, 1.2) so that
 * jobs that failed together do not retry together. In milliseconds. */
int64_t cv_job_retry_delay_ms(int backoff_seconds, int next);

/* Frees what cv_job_decode() allocated. Accepts a zeroed job. */
void cv_job_release(cv_job *job);

/* Event types. */
#define CV_EVENT_RUN_QUEUED "run.queued"
#define CV_EVENT_RUN_STARTED "run.started"
#define CV_EVENT_RUN_SUCCEEDED "run.succeeded"
#define CV_EVENT_RUN_FAILED "run.failed"
#define CV_EVENT_RUN_PROGRESS "run.progress"   /* rows so far, every few seconds */
#define CV_EVENT_RUN_CANCELLED "run.cancelled" /* stopped on request, rolled back */
#define CV_EVENT_RUN_TIMED_OUT "run.timed_out" /* over the job's time limit, rolled back */
#define CV_EVENT_JOB_REJECTED "job.rejected"   /* a message went to the dead-letter topic */
#define CV_EVENT_RUN_LOG "run.log"             /* one line a Python job wrote */
#define CV_EVENT_RUN_RETRYING "run.retrying"   /* an attempt failed; another one follows */
#define CV_MAX_ATTEMPTS 100                    /* highest max_attempts */
#define CV_LOG_LINE_MAX 4096                   /* longer lines are cut to this many bytes */

typedef struct cv_event {
    char event_id[CV_ID_LEN];
    char type[32];
    int64_t time_ms;
    char run_id[CV_ID_LEN];     /* "" when unknown (job.rejected of a garbled message) */
    char job_id[CV_ID_LEN];     /* "" when unknown */
    char project_id[CV_ID_LEN]; /* "" when unknown */
    char worker[128];           /* "" for events from the API */
    int attempt;                /* 0 when unknown */
    int64_t rows_read;          /* -1 when not applicable */
    int64_t rows_written;       /* -1 when not applicable */
    int64_t duration_ms;        /* -1 when not applicable */
    char error_code[64];        /* "" unless run.failed or job.rejected */
    char error_message[1024];
    char watermark[256];     /* run.succeeded of an incremental job: the new watermark */
    int64_t rows_per_second; /* run.progress: current rate; -1 when not applicable */
    int64_t rows_expected;   /* run.progress: the origin's estimate of its rows; -1 unknown */
    /* run.log */
    char stream[8]; /* "stdout" or "stderr" */
    char line[CV_LOG_LINE_MAX + 1];
    bool line_cut; /* the line was longer and cut to CV_LOG_LINE_MAX bytes */
    /* Final events of Python jobs. */
    int exit_code;         /* -1 when not applicable (or killed by a signal) */
    int64_t lines_dropped; /* output lines the rate limit dropped; -1 when not applicable */
    /* run.queued and run.started */
    char trigger[16];        /* "" when unknown */
    int64_t tick_ms;         /* 0 when not a scheduled run */
    int max_attempts;        /* 0 when unknown */
    int64_t next_attempt_ms; /* run.retrying: when the next attempt is due */
    int64_t queued_ms;       /* the run's queued_at (its job message's); 0 when unknown */
} cv_event;

/* Sets a fresh event id, the type and the current time; clears the rest
 * (counts to -1). Returns CV_ERR_IO if no random id could be made. */
cv_err cv_event_init(cv_event *ev, const char *type);

/* Copies run id, job id, project id, attempt, trigger, tick, max_attempts and
 * queued_at from a job into an event. */
void cv_event_from_job(cv_event *ev, const cv_job *job);

/* Encodes an event; caller frees the result with free(). NULL on NOMEM. */
char *cv_event_encode(const cv_event *ev);

/* Decodes and validates an event (the collector's input). */
cv_err cv_event_decode(const char *data, size_t len, cv_event *ev, cv_verr *verr);

#endif
