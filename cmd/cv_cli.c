/*
 * cv_cli.c - the client commands (see cv_cli.h): the options every command
 * takes, where the API and the token are, `login`, and the commands about
 * projects, jobs and schedules. Runs, logs and the SQL console are in
 * cv_cli_runs.c.
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_cli.h"

#include "cv_cli_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define LIST_MAX 10000 /* items a list command reads at most, page by page */

static const char *const commands[] = {"login", "projects", "jobs",     "run",    "runs",
                                       "logs",  "query",    "schedule", "health", NULL};

bool cv_cli_is_command(const char *name) {
    for (int i = 0; commands[i]; i++)
        if (strcmp(name, commands[i]) == 0)
            return true;
    return false;
}

int cli_usage(const char *what) {
    fprintf(stderr, "usage: convutell %s\n", what);
    return 2;
}

/* ~/.config/convutell/<name> (XDG_CONFIG_HOME when set). False without a home. */
static bool config_path(const char *name, char *out, size_t outlen) {
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");

    if (xdg && *xdg)
        snprintf(out, outlen, "%s/convutell/%s", xdg, name);
    else if (home && *home)
        snprintf(out, outlen, "%s/.config/convutell/%s", home, name);
    else
        return false;
    return true;
}

/* The first line of a small file into out; false when it cannot be read. */
static bool read_line(const char *path, char *out, size_t outlen) {
    FILE *f = fopen(path, "r");
    bool ok = f && fgets(out, (int)outlen, f) != NULL;

    if (f)
        fclose(f);
    if (ok)
        out[strcspn(out, "\r\n")] = '\0';
    return ok && out[0];
}

/* The API's address and the token, as cv_cli.h says. False, said on stderr,
 * when the token file may be read by others. */
static bool locate(cli *c, const char *url) {
    char path[1024];
    const char *v;
    struct stat st;

    if (url)
        snprintf(c->url, sizeof(c->url), "%s", url);
    else if ((v = getenv("CONVUTELL_URL")) && *v)
        snprintf(c->url, sizeof(c->url), "%s", v);
    else if (!config_path("url", path, sizeof(path)) || !read_line(path, c->url, sizeof(c->url)))
        snprintf(c->url, sizeof(c->url), "http://127.0.0.1:8080");
    c->url[strcspn(c->url, "\r\n")] = '\0';
    while (c->url[0] && c->url[strlen(c->url) - 1] == '/')
        c->url[strlen(c->url) - 1] = '\0';

    if ((v = getenv("CONVUTELL_TOKEN")) && *v) {
        snprintf(c->token, sizeof(c->token), "%s", v);
        return true;
    }
    if (!config_path("token", path, sizeof(path)) || stat(path, &st) != 0)
        return true; /* none yet: a 401 will say to log in */
    if (st.st_mode & 077) {
        fprintf(stderr,
                "convutell: %s may be read by others (mode %04o): `chmod 600 %s`, "
                "or log in again\n",
                path, (unsigned)(st.st_mode & 07777), path);
        return false;
    }
    read_line(path, c->token, sizeof(c->token));
    return true;
}

/* Writes text and a newline to path with mode 0600, its folder 0700. */
static bool save_private(const char *path, const char *text) {
    char dir[1024];
    char *slash;
    FILE *f;
    int fd;

    snprintf(dir, sizeof(dir), "%s", path);
    for (slash = strchr(dir + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return false;
        *slash = '/';
    }
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || fchmod(fd, 0600) != 0 || !(f = fdopen(fd, "w"))) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    fprintf(f, "%s\n", text);
    return fclose(f) == 0;
}

/* A line from the terminal (not echoed when secret), or from stdin without one. */
static bool ask(const char *prompt, bool secret, char *out, size_t outlen) {
    FILE *tty = fopen("/dev/tty", "r+");
    FILE *in = tty ? tty : stdin;
    struct termios was, quiet;
    bool hidden = false, ok;

    if (tty) {
        /* Echo off before the prompt shows: nothing typed after it is echoed. */
        if (secret && tcgetattr(fileno(tty), &was) == 0) {
            quiet = was;
            quiet.c_lflag &= (tcflag_t) ~(ECHO | ECHONL);
            hidden = tcsetattr(fileno(tty), TCSAFLUSH, &quiet) == 0;
        }
        fputs(prompt, tty);
        fflush(tty);
    }
    ok = fgets(out, (int)outlen, in) != NULL;
    if (hidden) {
        tcsetattr(fileno(tty), TCSAFLUSH, &was);
        fputc('\n', tty);
    }
    if (tty)
        fclose(tty);
    if (ok)
        out[strcspn(out, "\r\n")] = '\0';
    return ok && out[0];
}

/* convutell login: a session for the name and password, an API token made
 * with it and saved, the session ended. */
static int cmd_login(cli *c, int argc, char **argv, bool url_given) {
    char name[128] = "", password[1024] = "", host[128] = "cli", path[1024], label[200];
    bool from_stdin = false;
    cJSON *body = NULL, *session = NULL, *token = NULL;
    cli session_cli = *c;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            snprintf(name, sizeof(name), "%s", argv[++i]);
        else if (strcmp(argv[i], "--password-stdin") == 0)
            from_stdin = true;
        else
            return cli_usage("login [--name NAME] [--password-stdin] [--url URL]");
    }
    if (!config_path("token", path, sizeof(path))) {
        fprintf(stderr, "convutell: no HOME to keep the token in: set CONVUTELL_TOKEN instead\n");
        goto out;
    }
    if (!name[0] && !ask("User name: ", false, name, sizeof(name))) {
        fprintf(stderr, "convutell: a user name is needed (--name)\n");
        goto out;
    }
    if (from_stdin ? !fgets(password, sizeof(password), stdin)
                   : !ask("Password: ", true, password, sizeof(password))) {
        fprintf(stderr, "convutell: no password given\n");
        goto out;
    }
    password[strcspn(password, "\r\n")] = '\0';
    body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "name", name);
    cJSON_AddStringToObject(body, "password", password);
    session_cli.token[0] = '\0';
    if (!(session = cli_request(&session_cli, "POST", "/sessions", body)))
        goto out;
    snprintf(session_cli.token, sizeof(session_cli.token), "%s", cli_text(session, "token"));
    gethostname(host, sizeof(host) - 1);
    snprintf(label, sizeof(label), "convutell login on %.120s", host);
    cJSON_Delete(body);
    body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "name", label);
    cJSON_AddStringToObject(body, "scope", "write");
    token = cli_request(&session_cli, "POST", "/tokens", body);
    cJSON_Delete(cli_request(&session_cli, "DELETE", "/sessions", NULL));
    if (!token)
        goto out;
    if (!save_private(path, cli_text(token, "token"))) {
        fprintf(stderr, "convutell: cannot write %s: %s\n", path, strerror(errno));
        goto out;
    }
    if (url_given && config_path("url", path, sizeof(path)) && !save_private(path, c->url)) {
        fprintf(stderr, "convutell: cannot write %s: %s\n", path, strerror(errno));
        goto out;
    }
    config_path("token", path, sizeof(path));
    printf("signed in to %s as %s; API token \"%s\" (%s) saved in %s\n", c->url, name, label,
           cli_text(token, "id"), path);
    rc = 0;
out:
    memset(password, 0, sizeof(password));
    cJSON_Delete(body);
    cJSON_Delete(session);
    cJSON_Delete(token);
    return rc;
}

/* Every item of a paged list (its `key` array), following `next` up to
 * LIST_MAX items. path already holds its query ('?' or not). */
static cJSON *fetch_all(const cli *c, const char *path, const char *key) {
    cJSON *all = cJSON_CreateArray(), *page, *item;
    char *cursor = NULL, url[2048];

    for (;;) {
        snprintf(url, sizeof(url), "%s%slimit=100%s%s", path, strchr(path, '?') ? "&" : "?",
                 cursor ? "&cursor=" : "", cursor ? cursor : "");
        free(cursor);
        cursor = NULL;
        if (!(page = cli_request(c, "GET", url, NULL))) {
            cJSON_Delete(all);
            return NULL;
        }
        cJSON *items = cJSON_DetachItemFromObjectCaseSensitive(page, key);
        while (items && (item = cJSON_DetachItemFromArray(items, 0)))
            cJSON_AddItemToArray(all, item);
        cJSON_Delete(items);
        const char *next = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(page, "next"));
        if (next && cJSON_GetArraySize(all) < LIST_MAX)
            cursor = cli_escape(next);
        cJSON_Delete(page);
        if (!cursor)
            return all;
    }
}

/* Whether a GET of /<kind>/<name> answers 200 (name is an id). */
static char *by_id(const cli *c, const char *kind, const char *name) {
    char path[512];
    char *escaped = cli_escape(name);
    cli_answer a;
    bool found;

    snprintf(path, sizeof(path), "/%s/%s", kind, escaped ? escaped : "");
    free(escaped);
    if (!cli_call(c, "GET", path, NULL, &a))
        return NULL;
    found = a.status == 200;
    cli_answer_free(&a);
    return found ? strdup(name) : NULL;
}

/* The one item of list whose "name" is name: its id. */
static char *one_named(cJSON *list, const char *what, const char *name, char **id) {
    const cJSON *item;
    int n = 0;

    cJSON_ArrayForEach(item, list) {
        if (strcmp(cli_text(item, "name"), name) == 0 && n++ == 0)
            *id = strdup(cli_text(item, "id"));
    }
    if (n > 1) {
        fprintf(stderr, "convutell: %d %ss are named \"%s\": give the id\n", n, what, name);
        free(*id);
        *id = NULL;
    }
    return *id;
}

char *cli_find_project(const cli *c, const char *name) {
    char path[512], *escaped, *id = NULL;
    cJSON *list;

    if ((id = by_id(c, "projects", name)))
        return id;
    escaped = cli_escape(name);
    snprintf(path, sizeof(path), "/projects?q=%s", escaped ? escaped : "");
    free(escaped);
    if (!(list = fetch_all(c, path, "projects")))
        return NULL;
    if (!one_named(list, "project", name, &id))
        fprintf(stderr, "convutell: no project has the id or name \"%s\" (that you may see)\n",
                name);
    cJSON_Delete(list);
    return id;
}

char *cli_find_job(const cli *c, const char *name) {
    char path[512], *escaped, *id = NULL;
    cJSON *projects, *jobs = cJSON_CreateArray(), *item;
    const cJSON *p;

    if ((id = by_id(c, "jobs", name)) || !(projects = fetch_all(c, "/projects", "projects"))) {
        cJSON_Delete(jobs);
        return id;
    }
    escaped = cli_escape(name);
    cJSON_ArrayForEach(p, projects) {
        snprintf(path, sizeof(path), "/projects/%s/jobs?q=%s", cli_text(p, "id"),
                 escaped ? escaped : "");
        cJSON *some = fetch_all(c, path, "jobs");
        while (some && (item = cJSON_DetachItemFromArray(some, 0)))
            cJSON_AddItemToArray(jobs, item);
        cJSON_Delete(some);
    }
    free(escaped);
    if (!one_named(jobs, "job", name, &id))
        fprintf(stderr, "convutell: no job has the id or name \"%s\" (that you may see)\n", name);
    cJSON_Delete(projects);
    cJSON_Delete(jobs);
    return id;
}

static int cmd_projects(cli *c, int argc, char **argv) {
    cli_table t;
    const cJSON *p;
    cJSON *list;

    if (argc != 2 || strcmp(argv[1], "ls") != 0)
        return cli_usage("projects ls");
    if (!(list = fetch_all(c, "/projects", "projects")))
        return 1;
    if (c->json) {
        cli_print_json(list);
    } else {
        cli_table_init(&t, 4, (const char *const[]){"ID", "NAME", "ACTIVE", "CREATED"});
        cJSON_ArrayForEach(p, list) {
            cli_table_add(&t,
                          (const char *const[]){cli_text(p, "id"), cli_text(p, "name"),
                                                cli_text(p, "active"), cli_text(p, "created_at")});
        }
        cli_table_print(&t, stdout);
        cli_table_free(&t);
    }
    cJSON_Delete(list);
    return 0;
}

/* A job's schedule in a few words: "0 3 * * * Europe/Zurich", "every 60 s". */
static void schedule_words(const cJSON *s, char *out, size_t outlen) {
    const cJSON *cron = cJSON_GetObjectItemCaseSensitive(s, "cron");
    const char *paused =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "paused")) ? ", paused" : "";

    if (!cJSON_IsObject(s))
        snprintf(out, outlen, "-");
    else if (cJSON_IsString(cron))
        snprintf(out, outlen, "%s %s%s", cron->valuestring, cli_text(s, "timezone"), paused);
    else
        snprintf(out, outlen, "every %s s%s", cli_text(s, "interval_seconds"), paused);
}

static void show_job(const cJSON *job) {
    static const char *const keys[] = {"id",
                                       "name",
                                       "project_id",
                                       "kind",
                                       "version",
                                       "query",
                                       "destination_table",
                                       "mode",
                                       "load_method",
                                       "key",
                                       "watermark_column",
                                       "batch_rows",
                                       "statements",
                                       "connection",
                                       "script",
                                       "timeout_seconds",
                                       "created_at",
                                       "created_by",
                                       "updated_at",
                                       NULL};
    char words[256];
    cli_table t;

    cli_table_init(&t, 2, (const char *const[]){"FIELD", "VALUE"});
    for (int i = 0; keys[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(job, keys[i]);
        char *text = NULL;
        if (!v)
            continue;
        if (cJSON_IsArray(v) || cJSON_IsObject(v))
            text = cJSON_PrintUnformatted(v);
        cli_table_add(&t, (const char *const[]){keys[i], text ? text : cli_text(job, keys[i])});
        free(text);
    }
    schedule_words(cJSON_GetObjectItemCaseSensitive(job, "schedule"), words, sizeof(words));
    cli_table_add(&t, (const char *const[]){"schedule", words});
    cli_table_print(&t, stdout);
    cli_table_free(&t);
}

static int cmd_jobs(cli *c, int argc, char **argv) {
    char path[512], words[256], *id = NULL;
    const cJSON *j;
    cJSON *got = NULL;
    cli_table t;
    bool ls = argc == 3 && strcmp(argv[1], "ls") == 0;
    bool show = argc == 3 && strcmp(argv[1], "show") == 0;

    if (!ls && !show)
        return cli_usage("jobs ls PROJECT | jobs show JOB");
    if (!(id = ls ? cli_find_project(c, argv[2]) : cli_find_job(c, argv[2])))
        return 1;
    snprintf(path, sizeof(path), ls ? "/projects/%s/jobs" : "/jobs/%s", id);
    free(id);
    if (!(got = ls ? fetch_all(c, path, "jobs") : cli_request(c, "GET", path, NULL)))
        return 1;
    if (c->json) {
        cli_print_json(got);
    } else if (show) {
        show_job(got);
    } else {
        cli_table_init(&t, 5, (const char *const[]){"ID", "NAME", "KIND", "SCHEDULE", "VERSION"});
        cJSON_ArrayForEach(j, got) {
            schedule_words(cJSON_GetObjectItemCaseSensitive(j, "schedule"), words, sizeof(words));
            cli_table_add(&t, (const char *const[]){cli_text(j, "id"), cli_text(j, "name"),
                                                    cli_text(j, "kind"), words,
                                                    cli_text(j, "version")});
        }
        cli_table_print(&t, stdout);
        cli_table_free(&t);
    }
    cJSON_Delete(got);
    return 0;
}

/* The schedule as PUT takes it: what GET gave, without what the API works out. */
static cJSON *schedule_body(cJSON *current) {
    static const char *const derived[] = {"job_id",  "anchor_at",       "next_run_at",
                                          "version", "next_fire_times", NULL};

    for (int i = 0; derived[i]; i++)
        cJSON_DeleteItemFromObjectCaseSensitive(current, derived[i]);
    return current;
}

static int cmd_schedule(cli *c, int argc, char **argv) {
    const char *use = "schedule JOB --cron EXPR [--tz ZONE] | --every SECONDS | --pause | "
                      "--resume | --off";
    const char *cron = NULL, *tz = NULL, *every = NULL, *toggle = NULL;
    char path[512], words[256], *id;
    cJSON *body = NULL, *got = NULL;
    const cJSON *t;
    int rc = 1;

    if (argc < 3)
        return cli_usage(use);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--cron") == 0 && i + 1 < argc)
            cron = argv[++i];
        else if (strcmp(argv[i], "--tz") == 0 && i + 1 < argc)
            tz = argv[++i];
        else if (strcmp(argv[i], "--every") == 0 && i + 1 < argc)
            every = argv[++i];
        else if (!toggle && (strcmp(argv[i], "--pause") == 0 || strcmp(argv[i], "--resume") == 0 ||
                             strcmp(argv[i], "--off") == 0))
            toggle = argv[i];
        else
            return cli_usage(use);
    }
    if (!!cron + !!every + !!toggle != 1 || (tz && !cron))
        return cli_usage(use);
    if (!(id = cli_find_job(c, argv[1])))
        return 1;
    snprintf(path, sizeof(path), "/jobs/%s/schedule", id);
    free(id);
    if (toggle && strcmp(toggle, "--off") == 0) {
        if (!(got = cli_request(c, "DELETE", path, NULL)))
            return 1;
        if (c->json)
            cli_print_json(got);
        else
            printf("schedule of job %s removed\n", cli_text(got, "job_id"));
        cJSON_Delete(got);
        return 0;
    }
    if (toggle) {
        if (!(body = cli_request(c, "GET", path, NULL)))
            return 1;
        schedule_body(body);
        cJSON_ReplaceItemInObjectCaseSensitive(body, "paused",
                                               cJSON_CreateBool(strcmp(toggle, "--pause") == 0));
    } else {
        body = cJSON_CreateObject();
        if (cron)
            cJSON_AddStringToObject(body, "cron", cron);
        if (tz)
            cJSON_AddStringToObject(body, "timezone", tz);
        if (every) {
            char *end;
            double seconds = strtod(every, &end);
            if (*end || end == every) {
                fprintf(stderr, "convutell: --every wants a number of seconds, not \"%s\"\n",
                        every);
                goto out;
            }
            cJSON_AddNumberToObject(body, "interval_seconds", seconds);
        }
    }
    if (!(got = cli_request(c, "PUT", path, body)))
        goto out;
    if (c->json) {
        cli_print_json(got);
    } else {
        schedule_words(got, words, sizeof(words));
        printf("schedule of job %s: %s\nnext:\n", cli_text(got, "job_id"), words);
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(got, "next_fire_times")) {
            printf("  %s\n", cJSON_GetStringValue(t) ? cJSON_GetStringValue(t) : "?");
        }
    }
    rc = 0;
out:
    cJSON_Delete(body);
    cJSON_Delete(got);
    return rc;
}

int cv_cli_main(int argc, char **argv) {
    const char *url = NULL;
    cli c;
    int n = 0, rc;

    memset(&c, 0, sizeof(c));
    /* The options every command takes, wherever they are. */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            c.json = true;
        else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
            url = argv[++i];
        else
            argv[n++] = argv[i];
    }
    argc = n;
    c.bar = isatty(STDERR_FILENO) == 1;
    if (!locate(&c, url) || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    if (strcmp(argv[0], "health") == 0 && argc <= 2) {
        char healthz[CLI_URL_MAX + 32];
        snprintf(healthz, sizeof(healthz), "%s/api/v1/healthz", c.url);
        rc = cli_probe(argc == 2 ? argv[1] : healthz);
    } else if (strcmp(argv[0], "health") == 0)
        rc = cli_usage("health [URL]");
    else if (strcmp(argv[0], "login") == 0)
        rc = cmd_login(&c, argc, argv, url != NULL || getenv("CONVUTELL_URL"));
    else if (strcmp(argv[0], "projects") == 0)
        rc = cmd_projects(&c, argc, argv);
    else if (strcmp(argv[0], "jobs") == 0)
        rc = cmd_jobs(&c, argc, argv);
    else if (strcmp(argv[0], "schedule") == 0)
        rc = cmd_schedule(&c, argc, argv);
    else if (strcmp(argv[0], "run") == 0)
        rc = cli_run(&c, argc, argv);
    else if (strcmp(argv[0], "runs") == 0)
        rc = cli_runs(&c, argc, argv);
    else if (strcmp(argv[0], "logs") == 0)
        rc = cli_logs(&c, argc, argv);
    else
        rc = cli_query(&c, argc, argv);
    curl_global_cleanup();
    return rc;
}
