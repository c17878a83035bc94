/*
 * cv_admin.h - `convutell admin`: what an operator does from the command
 * line, against the store the configuration names (no API needed):
 *
 *   convutell admin create-user --name NAME [--display-name TEXT] [--admin]
 *                               [--password-stdin] [--token-file PATH] [--exists-ok]
 *
 * creates a user (the first administrator comes this way) and prints a
 * generated one-time password, unless --password-stdin reads one from the
 * first line of standard input. --token-file also issues the user an API
 * token (scope write, no expiry) and writes it to PATH with mode 0600; with
 * --exists-ok a user that exists already is kept as it is and only gets the
 * token.
 *
 *   convutell admin rotate-secrets
 *
 * re-seals every connection string sealed under one of the old keys
 * (CONVUTELL_SECRET_KEYS_OLD) under the current one (CONVUTELL_SECRET_KEY),
 * prints the counts, and exits 1 when a string is left that no key given
 * opens, or one changed while it ran (run it again).
 *
 * Called from main() on the process's only thread.
 */
#ifndef CV_ADMIN_H
#define CV_ADMIN_H

#include "cv_config.h"

/* Runs `convutell admin ...` (argv[0] is "admin"); returns the exit status. */
int cv_admin_main(const cv_config *cfg, int argc, char **argv);

#endif
