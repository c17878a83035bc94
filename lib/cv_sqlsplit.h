/*
 * cv_sqlsplit.h - splits a script of SQL statements at its semicolons, the
 * ones outside string literals, quoted identifiers, dollar-quoted bodies
 * (PostgreSQL) and comments, so that each statement can be sent on its own.
 *
 * Pure functions over the caller's text, which they only read: any thread.
 */
#ifndef CV_SQLSPLIT_H
#define CV_SQLSPLIT_H

#include <stdbool.h>
#include <stddef.h>

/* Finds the next statement of `text` from *pos: true with [*start, *end) its
 * text (without the semicolon, surrounding white space trimmed) and *pos past
 * it; false when only white space, semicolons and comments are left.
 * `mariadb`: MariaDB's lexical rules too (a backslash escapes the next
 * character inside quotes, and # starts a comment), not PostgreSQL's or
 * SQLite's. */
bool cv_sqlsplit_next(const char *text, size_t *pos, size_t *start, size_t *end, bool mariadb);

/* How many statements cv_sqlsplit_next() finds in text. */
int cv_sqlsplit_count(const char *text, bool mariadb);

#endif
