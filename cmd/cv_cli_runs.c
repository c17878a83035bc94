/*
 * cv_cli_runs.c - the client commands about runs (see cv_cli.h): start one
 * and follow it (a progress bar on a terminal, its log, the exit status of
 * its end), list and show them, cancel one, read a run's log, and the SQL
 * console's queries.
 */
#define _GNU_SOURCE /* strcasestr */
#include "cv_cli_int.h"

#include "cv_run.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

static int64_t number(const cJSON *obj, const char *key, int64_t otherwise) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : otherwise;
}

static void sleep_ms(long ms) {
    nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L}, NULL);
}

/* ---- following a run -------------------------------------------------------- */

typedef struct follow {
    cli *c;
    const char *grep; /* only log lines holding this (any case); NULL: all */
    bool logs_only;   /* `logs --follow`: no bar, no summary */
    bool drawn;       /* a progress line is shown */
    bool ended;       /* the stream's "end" came */
    char last_id[CLI_EVENT_ID_MAX];
    int64_t rows, total, rate, elapsed_ms;
    char status[32];
} follow;

static void print_log(follow *f, const cJSON *ev) {
    const char *line = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "line"));
    const char *stream = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ev, "stream"));

    if (!line || (f->grep && !strcasestr(line, f->grep)))
        return;
    if (f->drawn)
        cli_bar_clear(f->c);
    fprintf(stream && strcmp(stream, "stderr") == 0 && !f->logs_only ? stderr : stdout, "%s\n",
            line);
    fflush(stdout);
    if (f->drawn && f->c->bar)
        cli_bar_draw(f->c, f->rows, f->total, f->rate, f->elapsed_ms);
}

static bool on_event(void *ctx, const char *type, const cJSON *data) {
    follow *f = ctx;

    if (strcmp(type, "log") == 0) {
        print_log(f, data);
    } else if (strcmp(type, "progress") == 0 && !f->logs_only) {
        f->rows = number(data, "rows_read", f->rows);
        f->total = number(data, "rows_expected", f->total);
        f->rate = number(data, "rows_per_second", f->rate);
        f->elapsed_ms = number(data, "duration_ms", f->elapsed_ms);
        f->drawn = true;
        cli_bar_draw(f->c, f->rows, f->total, f->rate, f->elapsed_ms);
    } else if (strcmp(type, "run") == 0 || strcmp(type, "end") == 0) {
        snprintf(f->status, sizeof(f->status), "%s", cli_text(data, "status"));
    }
    f->ended = f->ended || strcmp(type, "end") == 0;
    return !f->ended;
}

/* Reads the run's stream until its "end": a stream lasts an hour at most, and
 * a longer run is followed on a new one, from the last event read (a second
 * apart, so that a server that cuts streams short is not asked in a loop). */
static bool stream_to_end(cli *c, const char *path, follow *f) {
    for (int i = 0; !f->ended; i++) {
        if (i > 0)
            sleep_ms(1000);
        if (!cli_stream(c, path, f->last_id, on_event, f))
            return false;
    }
    return true;
}

/* The run as it ended: the stream's end can come a moment before the run's
 * document says so, so it is read again until it does (10 s at most). */
static cJSON *final_run(cli *c, const char *path) {
    cJSON *run = NULL;

    for (int tries = 0; tries < 100; tries++) {
        cJSON_Delete(run);
        if (!(run = cli_request(c, "GET", path, NULL)) ||
            cv_run_name_is_final(cli_text(run, "status")))
            return run;
        sleep_ms(100);
    }
    return run;
}

/* Follows run_id to its end; the exit status: 0 when it succeeded. */
static int follow_run(cli *c, const char *run_id) {
    char path[256], rows[32], written[32], took[32];
    follow f = {.c = c};
    cJSON *run;
    const cJSON *error;
    int rc;

    snprintf(path, sizeof(path), "/runs/%s/stream", run_id);
    if (!c->bar && !c->json)
        fprintf(stderr, "following run %s\n", run_id);
    if (!stream_to_end(c, path, &f))
        return 1;
    snprintf(path, sizeof(path), "/runs/%s", run_id);
    if (!(run = final_run(c, path)))
        return 1;
    if (f.drawn) { /* the bar ends at the final count */
        int64_t read = number(run, "rows_read", f.rows);
        bool ok = strcmp(cli_text(run, "status"), "succeeded") == 0;
        cli_bar_draw(c, read, ok && f.total > 0 ? read : f.total, f.rate,
                     number(run, "duration_ms", f.elapsed_ms));
        if (c->bar)
            fputc('\n', stderr);
    }
    rc = strcmp(cli_text(run, "status"), "succeeded") == 0 ? 0 : 1;
    if (c->json) {
        cli_print_json(run);
    } else {
        cli_count(number(run, "rows_read", 0), rows, sizeof(rows));
        cli_count(number(run, "rows_written", 0), written, sizeof(written));
        cli_duration(number(run, "duration_ms", 0), took, sizeof(took));
        error = cJSON_GetObjectItemCaseSensitive(run, "error");
        if (rc == 0)
            fprintf(stderr, "run %s succeeded: %s rows read, %s written, in %s\n", run_id, rows,
                    written, took);
        else
            fprintf(stderr, "run %s %s: %s: %s\n", run_id, cli_text(run, "status"),
                    cli_text(error, "code"), cli_text(error, "message"));
    }
    cJSON_Delete(run);
    return rc;
}

/* --param KEY=VALUE: VALUE as JSON when it is JSON (42, true, "x", [1]), else as text. */
static bool add_param(cJSON *params, const char *arg) {
    const char *eq = strchr(arg, '=');
    char key[256];
    cJSON *value;

    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(key)) {
        fprintf(stderr, "convutell: --param wants KEY=VALUE, not \"%s\"\n", arg);
        return false;
    }
    snprintf(key, sizeof(key), "%.*s", (int)(eq - arg), arg);
    if (!(value = cJSON_Parse(eq + 1)))
        value = cJSON_CreateString(eq + 1);
    cJSON_DeleteItemFromObjectCaseSensitive(params, key);
    cJSON_AddItemToObject(params, key, value);
    return true;
}

int cli_run(cli *c, int argc, char **argv) {
    const char *use = "run JOB [--follow] [--param KEY=VALUE]...";
    cJSON *body = cJSON_CreateObject(), *params = cJSON_CreateObject(), *got = NULL;
    bool follow_it = false;
    char path[256], *id = NULL;
    int rc = 1;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0) {
            follow_it = true;
        } else if (strcmp(argv[i], "--param") == 0 && i + 1 < argc) {
            if (!add_param(params, argv[++i]))
                goto out;
        } else {
            rc = cli_usage(use);
            goto out;
        }
    }
    if (argc < 2 || argv[1][0] == '-') {
        rc = cli_usage(use);
        goto out;
    }
    if (!(id = cli_find_job(c, argv[1])))
        goto out;
    if (cJSON_GetArraySize(params) > 0) {
        cJSON_AddItemToObject(body, "parameters", params);
        params = NULL;
    }
    snprintf(path, sizeof(path), "/jobs/%s/runs", id);
    if (!(got = cli_request(c, "POST", path, body)))
        goto out;
    if (follow_it) {
        rc = follow_run(c, cli_text(got, "run_id"));
    } else {
        if (c->json) {
            cli_print_json(got);
        } else {
            printf("%s\n", cli_text(got, "run_id"));
            fprintf(stderr, "run %s %s; follow it with `convutell logs %s --follow`\n",
                    cli_text(got, "run_id"), cli_text(got, "status"), cli_text(got, "run_id"));
        }
        rc = 0;
    }
out:
    free(id);
    cJSON_Delete(body);
    cJSON_Delete(params);
    cJSON_Delete(got);
    return rc;
}

/* ---- runs ls / show / cancel ------------------------------------------------ */

static void print_run(const cJSON *run) {
    static const char *const keys[] = {"id",         "job_id",      "project_id",   "status",
                                       "trigger",    "attempt",     "max_attempts", "queued_at",
                                       "started_at", "finished_at", "rows_read",    "rows_written",
                                       "worker",     "exit_code",   "watermark",    NULL};
    const cJSON *error = cJSON_GetObjectItemCaseSensitive(run, "error");
    char took[32];
    cli_table t;

    cli_table_init(&t, 2, (const char *const[]){"FIELD", "VALUE"});
    for (int i = 0; keys[i]; i++)
        if (cJSON_GetObjectItemCaseSensitive(run, keys[i]))
            cli_table_add(&t, (const char *const[]){keys[i], cli_text(run, keys[i])});
    if (cJSON_GetObjectItemCaseSensitive(run, "duration_ms")) {
        cli_duration(number(run, "duration_ms", 0), took, sizeof(took));
        cli_table_add(&t, (const char *const[]){"duration", took});
    }
    if (cJSON_IsObject(error)) {
        cli_table_add(&t, (const char *const[]){"error", cli_text(error, "code")});
        cli_table_add(&t, (const char *const[]){"message", cli_text(error, "message")});
    }
    cli_table_print(&t, stdout);
    cli_table_free(&t);
}

static int runs_ls(cli *c, const char *job, const char *status) {
    char path[512], took[32], rows[32], *id = cli_find_job(c, job);
    char *wanted = status ? cli_escape(status) : NULL;
    const cJSON *r;
    cJSON *page;
    cli_table t;

    if (!id) {
        free(wanted);
        return 1;
    }
    snprintf(path, sizeof(path), "/jobs/%s/runs?limit=50%s%s", id, wanted ? "&status=" : "",
             wanted ? wanted : "");
    free(id);
    free(wanted);
    if (!(page = cli_request(c, "GET", path, NULL)))
        return 1;
    if (c->json) {
        cli_print_json(page);
    } else {
        cli_table_init(
            &t, 6, (const char *const[]){"ID", "STATUS", "TRIGGER", "QUEUED", "DURATION", "ROWS"});
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(page, "runs")) {
            bool timed = cJSON_GetObjectItemCaseSensitive(r, "duration_ms") != NULL;
            if (timed)
                cli_duration(number(r, "duration_ms", 0), took, sizeof(took));
            cli_count(number(r, "rows_written", number(r, "rows_read", 0)), rows, sizeof(rows));
            cli_table_add(&t, (const char *const[]){
                                  cli_text(r, "id"), cli_text(r, "status"), cli_text(r, "trigger"),
                                  cli_text(r, "queued_at"), timed ? took : "-", rows});
        }
        cli_table_print(&t, stdout);
        cli_table_free(&t);
    }
    cJSON_Delete(page);
    return 0;
}

int cli_runs(cli *c, int argc, char **argv) {
    const char *use = "runs ls JOB [--status STATUS] | runs show RUN | runs cancel RUN";
    char path[256], *escaped;
    cJSON *got;

    if (argc == 3 && strcmp(argv[1], "ls") == 0)
        return runs_ls(c, argv[2], NULL);
    if (argc == 5 && strcmp(argv[1], "ls") == 0 && strcmp(argv[3], "--status") == 0)
        return runs_ls(c, argv[2], argv[4]);
    if (argc != 3 || (strcmp(argv[1], "show") != 0 && strcmp(argv[1], "cancel") != 0))
        return cli_usage(use);
    if (!(escaped = cli_escape(argv[2])))
        return 1;
    snprintf(path, sizeof(path), strcmp(argv[1], "show") == 0 ? "/runs/%s" : "/runs/%s/cancel",
             escaped);
    free(escaped);
    if (!(got = cli_request(c, strcmp(argv[1], "show") == 0 ? "GET" : "POST", path, NULL)))
        return 1;
    if (c->json) {
        cli_print_json(got);
    } else if (strcmp(argv[1], "show") == 0) {
        print_run(got);
    } else {
        printf("cancel asked for run %s (%s)\n", cli_text(got, "run_id"), cli_text(got, "status"));
    }
    cJSON_Delete(got);
    return 0;
}

/* ---- logs ------------------------------------------------------------------- */

int cli_logs(cli *c, int argc, char **argv) {
    const char *use = "logs RUN [--follow] [--grep TEXT]";
    follow f = {.c = c, .logs_only = true};
    bool follow_it = false;
    char path[1024], *run, *q = NULL, *cursor = NULL;
    const cJSON *ev;
    cJSON *page;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0)
            follow_it = true;
        else if (strcmp(argv[i], "--grep") == 0 && i + 1 < argc)
            f.grep = argv[++i];
        else
            return cli_usage(use);
    }
    if (argc < 2 || argv[1][0] == '-' || !(run = cli_escape(argv[1])))
        return cli_usage(use);
    if (follow_it) {
        snprintf(path, sizeof(path), "/runs/%s/stream", run);
        free(run);
        return stream_to_end(c, path, &f) ? 0 : 1;
    }
    q = f.grep ? cli_escape(f.grep) : NULL;
    for (;;) {
        snprintf(path, sizeof(path), "/runs/%s/events?type=run.log&limit=1000%s%s%s%s", run,
                 q ? "&q=" : "", q ? q : "", cursor ? "&cursor=" : "", cursor ? cursor : "");
        free(cursor);
        cursor = NULL;
        if (!(page = cli_request(c, "GET", path, NULL)))
            break;
        cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(page, "events")) {
            if (c->json) {
                char *text = cJSON_PrintUnformatted(ev);
                if (text)
                    puts(text);
                free(text);
            } else {
                print_log(&f, ev);
            }
        }
        const char *next = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(page, "next"));
        cursor = next ? cli_escape(next) : NULL;
        cJSON_Delete(page);
        if (!cursor)
            break;
    }
    free(run);
    free(q);
    return page ? 0 : 1;
}

/* ---- the SQL console --------------------------------------------------------- */

static void print_rows(const cJSON *result) {
    const cJSON *col, *row, *v;
    int ncols = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(result, "columns")), i = 0;
    const char **cells = calloc((size_t)(ncols > 0 ? ncols : 1), sizeof(*cells));
    char **owned = calloc((size_t)(ncols > 0 ? ncols : 1), sizeof(*owned));
    cli_table t;

    if (!cells || !owned || ncols == 0) {
        free(cells);
        free(owned);
        return;
    }
    cJSON_ArrayForEach(col, cJSON_GetObjectItemCaseSensitive(result, "columns")) {
        cells[i++] = cli_text(col, "name");
    }
    cli_table_init(&t, ncols, cells);
    cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(result, "rows")) {
        i = 0;
        cJSON_ArrayForEach(v, row) {
            if (i >= ncols)
                break;
            owned[i] = cJSON_IsString(v) ? NULL
                       : cJSON_IsNull(v) ? NULL
                                         : cJSON_PrintUnformatted(v);
            cells[i] = cJSON_IsString(v) ? v->valuestring : cJSON_IsNull(v) ? "NULL" : owned[i];
            i++;
        }
        while (i < ncols)
            cells[i++] = NULL;
        cli_table_add(&t, cells);
        for (i = 0; i < ncols; i++) {
            free(owned[i]);
            owned[i] = NULL;
        }
    }
    cli_table_print(&t, stdout);
    cli_table_free(&t);
    free(cells);
    free(owned);
}

/* Asks again until the query run ends. */
static cJSON *wait_query(cli *c, cJSON *result) {
    char path[256];

    while (result && !cv_run_name_is_final(cli_text(result, "status"))) {
        snprintf(path, sizeof(path), "/query-runs/%s?wait_seconds=10", cli_text(result, "id"));
        cJSON_Delete(result);
        result = cli_request(c, "GET", path, NULL);
    }
    return result;
}

int cli_query(cli *c, int argc, char **argv) {
    const char *use = "query PROJECT --origin|--destination SQL [--csv] [--max-rows N]";
    const char *side = NULL, *sql = NULL, *max_rows = NULL;
    char path[512], took[32], *id = NULL;
    cJSON *body = NULL, *result = NULL;
    bool csv = false;
    int rc = 1;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--origin") == 0 || strcmp(argv[i], "--destination") == 0)
            side = argv[i] + 2;
        else if (strcmp(argv[i], "--csv") == 0)
            csv = true;
        else if (strcmp(argv[i], "--max-rows") == 0 && i + 1 < argc)
            max_rows = argv[++i];
        else if (!sql && argv[i][0] != '-')
            sql = argv[i];
        else
            return cli_usage(use);
    }
    if (argc < 2 || !side || !sql)
        return cli_usage(use);
    if (!(id = cli_find_project(c, argv[1])))
        return 1;
    body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "connection", side);
    cJSON_AddStringToObject(body, "sql", sql);
    /* A CSV export is for all the rows: as many as the console keeps. */
    if (max_rows || csv)
        cJSON_AddNumberToObject(body, "max_rows", max_rows ? strtod(max_rows, NULL) : 1000000);
    snprintf(path, sizeof(path), "/projects/%s/queries/run", id);
    if (!(result = wait_query(c, cli_request(c, "POST", path, body))))
        goto out;
    if (strcmp(cli_text(result, "status"), "succeeded") != 0) {
        const cJSON *error = cJSON_GetObjectItemCaseSensitive(result, "error");
        fprintf(stderr, "convutell: the query %s: %s: %s\n", cli_text(result, "status"),
                cli_text(error, "code"), cli_text(error, "message"));
        goto out;
    }
    if (csv) {
        snprintf(path, sizeof(path), "/query-runs/%s/rows?format=csv", cli_text(result, "id"));
        rc = cli_download(c, path, stdout) ? 0 : 1;
        goto out;
    }
    if (c->json) {
        cli_print_json(result);
    } else {
        print_rows(result);
        cli_duration(number(result, "elapsed_ms", 0), took, sizeof(took));
        fprintf(stderr, "(%d rows%s, %s)\n",
                cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(result, "rows")),
                cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "truncated"))
                    ? ", truncated: more with --csv or --max-rows"
                    : "",
                took);
    }
    rc = 0;
out:
    free(id);
    cJSON_Delete(body);
    cJSON_Delete(result);
    return rc;
}
