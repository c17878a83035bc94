/*
 * cv_script.h - runs another person's Python script so that nothing it does can
 * hurt the worker: its own process group and session, a fresh temporary
 * working folder removed afterwards, no inherited descriptor beyond 0-2, a
 * minimal environment, resource limits, an unprivileged user when the worker
 * is root, and a wall-clock limit enforced with SIGTERM then SIGKILL to the
 * whole group. Its output comes back line by line, cut and rate-limited, so a
 * flood cannot swamp the worker or what it publishes to.
 *
 * One call runs one script to its end and blocks the calling thread meanwhile.
 * The calling process becomes a child subreaper (PR_SET_CHILD_SUBREAPER), so
 * that what a script leaves running is re-parented to it and reaped here.
 */
#ifndef CV_SCRIPT_H
#define CV_SCRIPT_H

#include "cv_err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits of one run; 0 takes the default in brackets. */
typedef struct cv_script_limits {
    int timeout_seconds; /* wall clock [3600]; then SIGTERM to the group */
    int grace_seconds;   /* from SIGTERM to SIGKILL [5] */
    int cpu_seconds;     /* RLIMIT_CPU [600] */
    int memory_mb;       /* RLIMIT_AS, address space of each process [1024] */
    int open_files;      /* RLIMIT_NOFILE [256] */
    int file_size_mb;    /* RLIMIT_FSIZE, largest file written [1024] */
    int processes;       /* RLIMIT_NPROC, processes of the user [64] */
} cv_script_limits;

/* The output streams, as on_line() names them. */
typedef enum cv_script_stream { CV_SCRIPT_STDOUT = 1, CV_SCRIPT_STDERR = 2 } cv_script_stream;

typedef struct cv_script_spec {
    const char *interpreter; /* absolute path; NULL = /usr/bin/python3 */
    const char *script;      /* the script's source text */
    /* Extra environment ("NAME=value", NULL-terminated, may be NULL). The script
     * sees these and PATH, HOME (its working folder) and LANG, nothing else. */
    const char *const *env;
    cv_script_limits limits;
    /* The user to run as when the worker is root: NULL = "convutell-run",
     * falling back to "nobody". A root worker never runs a script as root. */
    const char *run_as;
    /* Output: each line without its newline, at most max_line bytes (`cut`
     * when it was longer); at most lines_per_second lines on average with
     * bursts of `burst`, the others dropped and counted. Called on the
     * calling thread. */
    void (*on_line)(void *ctx, cv_script_stream stream, const char *line, size_t len, bool cut);
    /* Called about every 200 ms; a non-zero return (CV_ERR_CANCELLED) stops
     * the script like the time limit does, with its errbuf text as reason. */
    cv_err (*check)(void *ctx, char *errbuf, size_t errlen);
    void *ctx;
    /* Data mode (a transform), both optional. feed() supplies stdin: it copies
     * up to len bytes into buf and returns how many, 0 at the end (stdin is
     * then closed) or -1 to stop the script. on_data() takes stdout instead
     * of on_line(): every line whole (up to 64 MiB), never rate-limited;
     * false stops the script. A stop from either sets res->aborted. */
    long (*feed)(void *ctx, char *buf, size_t len);
    bool (*on_data)(void *ctx, const char *line, size_t len);
    size_t max_line;      /* [4096] */
    int lines_per_second; /* [100] */
    int burst;            /* [1000] */
} cv_script_spec;

typedef struct cv_script_result {
    int exit_code;         /* exit status, or -1 when a signal ended it */
    int signal;            /* the signal that ended it, or 0 */
    const char *limit;     /* the limit that stopped it ("timeout_seconds", "cpu_seconds",
                              "memory_mb", "open_files", "file_size_mb", "processes") or NULL */
    bool stopped;          /* check() asked for the stop */
    bool aborted;          /* feed() or on_data() asked for the stop */
    int64_t lines;         /* lines passed to on_line() */
    int64_t lines_dropped; /* lines the rate limit dropped */
    int64_t duration_ms;
} cv_script_result;

/* Runs the script to its end (or its stop) and fills *res. CV_OK whenever it
 * ran, whatever its exit status; an error only when it could not be started
 * (no interpreter, no unprivileged user for a root worker, no temporary
 * folder), with the reason in errbuf. */
cv_err cv_script_run(const cv_script_spec *spec, cv_script_result *res, char *errbuf,
                     size_t errlen);

/* A one-line reason for a run that did not succeed ("exited with status 3",
 * "stopped by its time limit (timeout_seconds = 2)", ...), into out. */
void cv_script_describe(const cv_script_spec *spec, const cv_script_result *res, char *out,
                        size_t outlen);

#endif
