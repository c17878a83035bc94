/*
 * cv_connstr.h - ODBC connection strings read by their grammar, for showing
 * them without their secrets.
 *
 * The grammar (SQLDriverConnect): attributes separated by ';', each
 * `key=value`; a value in braces may hold ';' and '=' and writes '}' as "}}";
 * white space around keys and attributes is allowed, as are empty
 * attributes (";;"). Anything else does not parse: an attribute without '=',
 * an empty key, a '{' never closed, text after a closing '}'.
 *
 * Secrets: the value of a key that is PWD or Password, or that contains
 * "pwd", "passw", "secret" or "token" (any case: SSLPassword, AuthToken,
 * ClientSecret of other drivers); and inside psqlODBC's Pqopt (libpq options,
 * `key=value` separated by spaces, values maybe in single quotes) the value
 * of such a key (password=...).
 *
 * Pure functions; any thread.
 */
#ifndef CV_CONNSTR_H
#define CV_CONNSTR_H

#include "cv_err.h"

#include <stdbool.h>
#include <stddef.h>

#define CV_CONNSTR_MASK "********"

/* A copy of odbc with every secret value replaced by CV_CONNSTR_MASK (its
 * length hidden too), everything else as written. CV_OK with *out to free();
 * CV_ERR_INVALID with what does not parse and where ("'{' at byte 9 is never
 * closed"); CV_ERR_NOMEM. */
cv_err cv_connstr_mask(const char *odbc, char **out, char *errbuf, size_t errlen);

/* A copy of odbc without credentials: every attribute whose value is a
 * secret, and UID, User, Username and Pqopt (which may name a user), left out
 * whole with their ';'; everything else as written. Errors as
 * cv_connstr_mask(). */
cv_err cv_connstr_strip(const char *odbc, char **out, char *errbuf, size_t errlen);

#endif
