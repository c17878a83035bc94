/*
 * cv_odbc_int.h - what cv_odbc.c and cv_odbcstmt.c share: a connection's
 * handles and the translation of diagnostics. Not for other modules.
 */
#ifndef CV_ODBC_INT_H
#define CV_ODBC_INT_H

#include "cv_odbc.h"

#include <sql.h>
#include <sqlext.h>
#include <stdbool.h>

struct cv_odbc_conn {
    SQLHENV env;
    SQLHDBC dbc;
    bool connected;
    bool in_txn;
    char quote;
    char dbms[64];
    char *pg_session; /* PostgreSQL: SET statements restoring what the driver set */
};

/* Formats the diagnostic records of a handle as "what: SQLSTATE: message;
 * ..." into errbuf; returns CV_ERR_ODBC. */
cv_err cv_odbc_diag(SQLSMALLINT type, SQLHANDLE handle, const char *what, char *errbuf,
                    size_t errlen);

#endif
