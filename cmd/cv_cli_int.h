/*
 * cv_cli_int.h - what the client commands' files share (cv_cli.h says what
 * the commands are): the call to the API and its event streams
 * (cv_cli_http.c), tables and the progress bar (cv_cli_show.c), and the
 * commands themselves (cv_cli.c, cv_cli_runs.c).
 *
 * Every function prints what went wrong to stderr itself, in words a person
 * can act on, and returns false (or NULL); the caller then exits 1.
 */
#ifndef CV_CLI_INT_H
#define CV_CLI_INT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CLI_URL_MAX 512
#define CLI_TOKEN_MAX 256

typedef struct cli {
    char url[CLI_URL_MAX];     /* the API's base, without a trailing slash */
    char token[CLI_TOKEN_MAX]; /* "" before `login` */
    bool json;                 /* --json: answers printed as they came */
    bool bar;                  /* stderr is a terminal: a bar, not progress lines */
} cli;

/* ---- cv_cli_http.c ---------------------------------------------------------- */

/* One answer of the API: its status and its body parsed (NULL when empty or
 * not JSON). Free with cli_answer_free(). */
typedef struct cli_answer {
    long status;
    cJSON *body;
} cli_answer;

/* Calls the API: method on /api/v1<path> with body (JSON, may be NULL). True
 * when an answer came, whatever its status; false (said on stderr) when the
 * API could not be reached. */
bool cli_call(const cli *c, const char *method, const char *path, const cJSON *body, cli_answer *a);

/* cli_call() that also wants a 2xx: anything else is said on stderr from the
 * answer's error body ("not signed in: run `convutell login`" for a 401) and
 * gives NULL. The body is the caller's. */
cJSON *cli_request(const cli *c, const char *method, const char *path, const cJSON *body);

void cli_answer_free(cli_answer *a);

/* Writes the answer of GET /api/v1<path> to out as it streams (a CSV export).
 * False, said on stderr, unless it was 200. */
bool cli_download(const cli *c, const char *path, FILE *out);

/* One Server-Sent Event: its type ("run", "progress", "log", "event", "end")
 * and its data parsed. Return false to stop reading. */
typedef bool (*cli_on_event)(void *ctx, const char *type, const cJSON *data);

/* Reads GET /api/v1<path> as Server-Sent Events until the stream ends or the
 * callback says stop. last_id (CLI_EVENT_ID_MAX bytes) holds the id of the
 * last event read: given again, the stream starts after it (Last-Event-ID).
 * False, said on stderr, when it could not be read. */
#define CLI_EVENT_ID_MAX 128
bool cli_stream(const cli *c, const char *path, char *last_id, cli_on_event on_event, void *ctx);

/* GET url (any, not only the API's): 0 for a 2xx answer within 5 s, else 1
 * with the reason on stderr. For health checks. */
int cli_probe(const char *url);

/* A path piece made safe for a URL (percent-encoded); caller frees. */
char *cli_escape(const char *text);

/* ---- cv_cli_show.c ---------------------------------------------------------- */

/* A table printed with its columns aligned: a header row, then rows. */
typedef struct cli_table {
    int ncols;
    size_t nrows, cap;
    char **cells; /* nrows x ncols, owned */
} cli_table;

void cli_table_init(cli_table *t, int ncols, const char *const *header);
/* Adds a row of ncols values (NULL shows as "-"). */
void cli_table_add(cli_table *t, const char *const *row);
void cli_table_print(cli_table *t, FILE *out);
void cli_table_free(cli_table *t);

/* The text of obj[key] for a table: strings as they are, numbers whole,
 * true/false, "-" when absent or null. Valid until the next call (one buffer
 * per slot: 8 slots in turn). */
const char *cli_text(const cJSON *obj, const char *key);

/* A JSON value on stdout, indented (--json). */
void cli_print_json(const cJSON *v);

/* 1234567 as "1,234,567". */
void cli_count(int64_t n, char *out, size_t outlen);

/* Milliseconds as "0.4 s", "12.3 s", "2:05", "1:02:05". */
void cli_duration(int64_t ms, char *out, size_t outlen);

/* The progress line: a bar when the total is known (total > 0), the rows,
 * the rate, the time so far and, with a total, the time left. On a terminal
 * it redraws one line (cli_bar_clear() makes room for a log line); else it
 * prints a plain line. */
void cli_bar_draw(const cli *c, int64_t rows, int64_t total, int64_t per_second,
                  int64_t elapsed_ms);
void cli_bar_clear(const cli *c);

/* ---- cv_cli.c and cv_cli_runs.c: the commands ---------------------------------- */

/* The id of a project or job given by id or by name (NULL, said on stderr,
 * when none or several have that name); caller frees. `project` is the
 * project a job's name is looked up in (NULL: every project's). */
char *cli_find_project(const cli *c, const char *name);
char *cli_find_job(const cli *c, const char *name);

int cli_run(cli *c, int argc, char **argv);
int cli_runs(cli *c, int argc, char **argv);
int cli_logs(cli *c, int argc, char **argv);
int cli_query(cli *c, int argc, char **argv);

/* Prints a usage line for `what` to stderr; returns 2. */
int cli_usage(const char *what);

#endif
