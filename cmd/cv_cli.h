/*
 * cv_cli.h - `convutell` as a client of its API, for people at a terminal and
 * for scripts:
 *
 *   convutell login [--name NAME] [--password-stdin] [--url URL]
 *   convutell projects ls
 *   convutell jobs ls PROJECT | jobs show JOB
 *   convutell run JOB [--follow] [--param KEY=VALUE]...
 *   convutell runs ls JOB | runs show RUN | runs cancel RUN
 *   convutell logs RUN [--follow] [--grep TEXT]
 *   convutell query PROJECT --origin|--destination SQL [--csv] [--max-rows N]
 *   convutell schedule JOB --cron EXPR [--tz ZONE] | --every SECONDS | --pause
 *                          | --resume | --off
 *   convutell health [URL]
 *
 * with --json (the API's answers as they are) and --url anywhere. The API's
 * address comes from --url, CONVUTELL_URL, ~/.config/convutell/url, or
 * http://127.0.0.1:8080; the token from CONVUTELL_TOKEN or
 * ~/.config/convutell/token (which `login` writes, mode 0600, and which is
 * refused when others may read it). A project or job may be named by its id or
 * by its name. `health` GETs URL (default the API's /api/v1/healthz) for a
 * container's health check, without a token: 0 for a 2xx answer. Exit status: 0 done (a run
 * followed to success), 1 failed (the run failed, the API refused, the API cannot be reached), 2 a
 * wrong command line.
 *
 * Called from main() on the process's only thread.
 */
#ifndef CV_CLI_H
#define CV_CLI_H

#include <stdbool.h>

/* Whether `name` is one of the commands above. */
bool cv_cli_is_command(const char *name);

/* Runs the command argv[0] (argc >= 1); returns the exit status. */
int cv_cli_main(int argc, char **argv);

#endif
