/*
 * convutell.c - the one binary, with a subcommand per service:
 *
 *   convutell api        REST API (api/)
 *   convutell worker     job consumer (consumer/cv_worker.c)
 *   convutell collector  event consumer that writes MongoDB (consumer/cv_collector.c)
 *   convutell scheduler  schedules, retries and leases (producer/cv_scheduler.c)
 *   convutell admin      users from the command line (cmd/cv_admin.c)
 *   convutell routes     the API's routes and who may call each
 *   convutell version    the version and the revision built from
 *   convutell login, projects, jobs, run, runs, logs, query, schedule, health:
 *                        a client of the API for people and scripts (cv_cli.h)
 *
 * CV_VERSION and CV_REVISION come from $(BUILD)/gen/cv_version.h, which the
 * Makefile writes and includes first (-include).
 *
 * Each service loads the configuration (lib/cv_config.c), stops at start-up with
 * one line if it is wrong, makes sure the store has its indexes (lib/cv_store.c)
 * and runs until SIGINT or SIGTERM.
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_admin.h"
#include "cv_api.h"
#include "cv_cli.h"
#include "cv_collector.h"
#include "cv_config.h"
#include "cv_log.h"
#include "cv_metrics.h"
#include "cv_scheduler.h"
#include "cv_store.h"
#include "cv_worker.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

static volatile sig_atomic_t stop_requested;
static const char *log_file; /* CONVUTELL_LOG_FILE, or NULL */

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

/* Points stderr (where every log line goes) at the log file, opened again:
 * after logrotate moved it, the next lines go to a new file. Only
 * async-signal-safe calls: it is also the SIGHUP handler. */
static int open_log(void) {
    int fd = open(log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

    if (fd < 0)
        return -1;
    if (fd != STDERR_FILENO) {
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    return 0;
}

static void on_hangup(int sig) {
    int saved = errno;

    (void)sig;
    if (log_file)
        open_log();
    errno = saved;
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_hangup; /* not a stop: a service manager's HUP reopens the log */
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Creates the store's indexes beside the service: at once when MongoDB
 * answers, else every two seconds until it does, so that a service started
 * before its database still starts (and the indexes follow). */
typedef struct store_prep {
    const cv_config *cfg;
    const char *service;
} store_prep;

static void *prepare_store(void *arg) {
    const store_prep *p = arg;
    char why[512], app[64];
    cv_mongo *m;
    int tries = 0;

    snprintf(app, sizeof(app), "convutell-%s-indexes", p->service);
    if (!(m = cv_mongo_new(p->cfg->mongo_uri, p->cfg->mongo_db, app, why, sizeof(why)))) {
        cv_log_warn("indexes not created: %s", why);
        return NULL;
    }
    while (!stop_requested && cv_store_prepare(m, why, sizeof(why)) != CV_OK) {
        if (tries++ == 0)
            cv_log_warn("indexes not created yet (trying again every 2 s): %s", why);
        for (int i = 0; i < 20 && !stop_requested; i++)
            nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }
    if (!stop_requested && tries > 0)
        cv_log_info("indexes created");
    cv_mongo_destroy(m);
    return NULL;
}

static int usage(FILE *out) {
    fprintf(out, "usage: convutell <command>\n\n"
                 "commands:\n"
                 "  api        serve the REST API\n"
                 "  worker     run jobs from the convutell.jobs topic\n"
                 "  collector  store events from convutell.events in MongoDB\n"
                 "  scheduler  start scheduled runs, hold retries, expire leases\n"
                 "  admin      create-user --name NAME [--admin] ... (see README.md)\n"
                 "  routes     list the API's routes and who may call each\n"
                 "  version    show the version and the revision built from\n"
                 "  help       show this text\n\n"
                 "client commands (the API at --url, CONVUTELL_URL or ~/.config/convutell/url):\n"
                 "  login      [--name NAME] [--password-stdin]: keep an API token\n"
                 "  projects   ls\n"
                 "  jobs       ls PROJECT | show JOB\n"
                 "  run        JOB [--follow] [--param KEY=VALUE]...\n"
                 "  runs       ls JOB [--status S] | show RUN | cancel RUN\n"
                 "  logs       RUN [--follow] [--grep TEXT]\n"
                 "  query      PROJECT --origin|--destination SQL [--csv] [--max-rows N]\n"
                 "  schedule   JOB --cron EXPR [--tz ZONE] | --every SECONDS | --pause | "
                 "--resume | --off\n"
                 "  health     [URL]: exit 0 when URL (the API's /api/v1/healthz) answers 2xx\n"
                 "  (--json on any of them: the API's answers as JSON)\n\n"

                 "Configuration comes from the environment and ./.env; see README.md.\n");
    return out == stdout ? 0 : 2;
}

static void print_route(void *ctx, const char *method, const char *path, const char *access,
                        const char *scope, const char *role) {
    (void)ctx;
    printf("%-6s /api/v1/%-28s %-9s %-10s %s\n", method, path, access, scope, role);
}

int main(int argc, char **argv) {
    char errbuf[1024] = "";
    const char *cmd = argc > 1 ? argv[1] : "";
    cv_config cfg;
    cv_err err = CV_OK;
    store_prep prep;
    pthread_t prep_thread;
    bool prep_started = false;
    int rc = 1;

    if (argc >= 2 && cv_cli_is_command(cmd))
        return cv_cli_main(argc - 1, argv + 1);
    if (argc < 2 || (argc != 2 && strcmp(cmd, "admin") != 0))
        return usage(stderr);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0)
        return usage(stdout);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("convutell %s (%s)\n", CV_VERSION, CV_REVISION);
        return 0;
    }
    if (strcmp(cmd, "routes") == 0) {
        cv_api_each_route(print_route, NULL);
        return 0;
    }
    if (strcmp(cmd, "admin") == 0) {
        cv_config_forget_driver_env();
        if (cv_config_load(&cfg, errbuf, sizeof(errbuf)) != CV_OK) {
            fprintf(stderr, "convutell admin: configuration error: %s\n", errbuf);
            return 78;
        }
        return cv_admin_main(&cfg, argc - 1, argv + 1);
    }
    if (strcmp(cmd, "api") != 0 && strcmp(cmd, "worker") != 0 && strcmp(cmd, "collector") != 0 &&
        strcmp(cmd, "scheduler") != 0) {
        fprintf(stderr, "convutell: unknown command '%s'\n", cmd);
        return usage(stderr);
    }
    /* No connection borrows this process's credentials (make run's stack
     * exports PGUSER, PGPASSWORD, ...): before any thread starts. */
    cv_config_forget_driver_env();
    /* Text moves through ODBC as UTF-8; drivers that convert consult the locale. */
    setlocale(LC_CTYPE, "C.UTF-8");
    if (cv_config_load(&cfg, errbuf, sizeof(errbuf)) != CV_OK ||
        (strcmp(cmd, "collector") != 0 && strcmp(cmd, "scheduler") != 0 &&
         cv_config_require_secret(&cfg, cmd, errbuf, sizeof(errbuf)) != CV_OK)) {
        fprintf(stderr, "convutell %s: configuration error: %s\n", cmd, errbuf);
        return 78; /* EX_CONFIG: supervisors should not restart in a loop */
    }
    if (cfg.log_file[0]) {
        log_file = cfg.log_file;
        if (open_log() != 0) {
            fprintf(stderr,
                    "convutell %s: configuration error: CONVUTELL_LOG_FILE: cannot open "
                    "%s: %s\n",
                    cmd, cfg.log_file, strerror(errno));
            return 78;
        }
    }
    cv_log_init(cmd, (cv_log_level)cfg.log_level, cfg.log_json);
    install_signals();
    cv_config_describe(&cfg, cmd, errbuf, sizeof(errbuf));
    cv_log_info("convutell %s (%s) %s starting: %s", CV_VERSION, CV_REVISION, cmd, errbuf);
    errbuf[0] = '\0';
    if (cfg.metrics_host[0] &&
        cv_metrics_serve(cfg.metrics_host, cfg.metrics_port, errbuf, sizeof(errbuf)) != CV_OK) {
        fprintf(stderr, "convutell %s: CONVUTELL_METRICS_ADDR: %s\n", cmd, errbuf);
        return 1;
    }
    prep = (store_prep){.cfg = &cfg, .service = cmd};
    prep_started = pthread_create(&prep_thread, NULL, prepare_store, &prep) == 0;
    if (!prep_started)
        cv_log_warn("indexes not created: cannot start a thread");

    if (strcmp(cmd, "api") == 0) {
        cv_api *api = cv_api_new(&cfg, errbuf, sizeof(errbuf));
        if (!api)
            goto fail;
        err = cv_api_run(api, &stop_requested);
        cv_api_destroy(api);
    } else if (strcmp(cmd, "worker") == 0) {
        cv_worker *w = cv_worker_new(&cfg, errbuf, sizeof(errbuf));
        if (!w)
            goto fail;
        err = cv_worker_run(w, &stop_requested, errbuf, sizeof(errbuf));
        cv_worker_destroy(w);
    } else if (strcmp(cmd, "scheduler") == 0) {
        cv_scheduler *s = cv_scheduler_new(&cfg, errbuf, sizeof(errbuf));
        if (!s)
            goto fail;
        err = cv_scheduler_run(s, &stop_requested, errbuf, sizeof(errbuf));
        cv_scheduler_destroy(s);
    } else {
        cv_collector *c = cv_collector_new(&cfg, errbuf, sizeof(errbuf));
        if (!c)
            goto fail;
        err = cv_collector_run(c, &stop_requested, errbuf, sizeof(errbuf));
        cv_collector_destroy(c);
    }
    if (err) {
        cv_log_error("stopped: %s: %s", cv_err_str(err), errbuf);
        goto out;
    }
    cv_log_info("stopped");
    rc = 0;
    goto out;
fail:
    cv_log_error("cannot start: %s", errbuf);
out:
    stop_requested = 1; /* also ends the index thread's retries */
    if (prep_started)
        pthread_join(prep_thread, NULL);
    cv_metrics_serve_stop();
    return rc;
}
