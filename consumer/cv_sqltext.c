/*
 * cv_sqltext.c - the SQL text of a transfer. See cv_sqltext.h.
 */
#include "cv_sqltext.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

int cv_sqltext_quote_ident(const char *name, char quote, bool split_schema, char *out,
                           size_t outlen) {
    size_t o = 0;

#define PUT(c)                                                                                     \
    do {                                                                                           \
        if (o + 1 >= outlen)                                                                       \
            return -1;                                                                             \
        out[o++] = (c);                                                                            \
    } while (0)

    PUT(quote);
    for (const char *p = name; *p; p++) {
        if (split_schema && *p == '.') {
            PUT(quote);
            PUT('.');
            PUT(quote);
            continue;
        }
        if (*p == quote)
            PUT(quote);
        PUT(*p);
    }
    PUT(quote);
#undef PUT
    out[o] = '\0';
    return 0;
}

/* Appends the quoted name to b (b fails if the name is too long). */
static void add_ident(cv_buf *b, const char *name, char quote, bool split_schema) {
    char ident[300];
    if (cv_sqltext_quote_ident(name, quote, split_schema, ident, sizeof(ident)) != 0)
        b->failed = true;
    else
        cv_buf_adds(b, ident);
}

/* True if `name` is one of the load's key columns. */
static bool is_key(const cv_load_spec *load, const char *name) {
    for (int i = 0; i < load->nkeys; i++)
        if (strcmp(load->keys[i], name) == 0)
            return true;
    return false;
}

char *cv_sqltext_bare_query(const char *query) {
    size_t n = strlen(query);
    char *out;

    while (n && (query[n - 1] == ';' || query[n - 1] == ' ' || query[n - 1] == '\n' ||
                 query[n - 1] == '\t' || query[n - 1] == '\r'))
        n--;
    out = malloc(n + 2);
    if (out) {
        memcpy(out, query, n);
        out[n] = '\n';
        out[n + 1] = '\0';
    }
    return out;
}

/* "a", "b", "c": the columns, quoted. */
static void columns(cv_buf *b, const cv_odbc_col *cols, int ncols, char quote) {
    for (int i = 0; i < ncols; i++) {
        if (i)
            cv_buf_adds(b, ", ");
        add_ident(b, cols[i].name, quote, false);
    }
}

/* The SET list of an upsert: every non-key column = the incoming value, as the
 * dialect spells it ("excluded.x" or "VALUES(x)"). False if all are keys. */
static bool upsert_set(cv_buf *b, const cv_odbc_col *cols, int ncols, const cv_load_spec *load,
                       char quote, cv_dialect dialect) {
    bool any = false;

    for (int i = 0; i < ncols; i++) {
        const char *name = cols[i].name;
        if (is_key(load, name))
            continue;
        cv_buf_adds(b, any ? ", " : "");
        add_ident(b, name, quote, false);
        if (dialect == CV_DIALECT_MARIADB) {
            cv_buf_adds(b, " = VALUES(");
            add_ident(b, name, quote, false);
            cv_buf_adds(b, ")");
        } else {
            cv_buf_adds(b, " = excluded.");
            add_ident(b, name, quote, false);
        }
        any = true;
    }
    return any;
}

/* ON CONFLICT (k) DO UPDATE SET ... / ON DUPLICATE KEY UPDATE ... */
static void upsert_clause(cv_buf *b, const cv_odbc_col *cols, int ncols, const cv_load_spec *load,
                          char quote, cv_dialect dialect) {
    cv_buf set = {0};
    bool any = upsert_set(&set, cols, ncols, load, quote, dialect);

    if (set.failed)
        b->failed = true;
    if (dialect == CV_DIALECT_MARIADB) {
        cv_buf_adds(b, " ON DUPLICATE KEY UPDATE ");
        if (any) {
            cv_buf_adds(b, set.data);
        } else { /* nothing to update: a no-op assignment keeps the row */
            add_ident(b, load->keys[0], quote, false);
            cv_buf_adds(b, " = ");
            add_ident(b, load->keys[0], quote, false);
        }
    } else {
        cv_buf_adds(b, " ON CONFLICT (");
        for (int i = 0; i < load->nkeys; i++) {
            cv_buf_adds(b, i ? ", " : "");
            add_ident(b, load->keys[i], quote, false);
        }
        cv_buf_adds(b, any ? ") DO UPDATE SET " : ") DO NOTHING");
        if (any)
            cv_buf_adds(b, set.data);
    }
    cv_buf_free(&set);
}

char *cv_sqltext_window_query(const char *bare_query, const cv_sqltext_window *w) {
    cv_buf b = {0};

    cv_buf_adds(&b, "SELECT * FROM (");
    cv_buf_adds(&b, bare_query);
    cv_buf_adds(&b, ") cv_src WHERE 1 = 1");
    if (w->watermark && w->empty) {
        cv_buf_adds(&b, " AND 1 = 0");
    } else if (w->watermark) {
        if (w->from) {
            cv_buf_adds(&b, " AND ");
            cv_buf_adds(&b, w->watermark);
            cv_buf_adds(&b, " >= ?");
        }
        cv_buf_adds(&b, " AND ");
        cv_buf_adds(&b, w->watermark);
        cv_buf_adds(&b, " < ?");
    }
    if (w->checkpoint && w->after) {
        cv_buf_adds(&b, " AND ");
        cv_buf_adds(&b, w->checkpoint);
        cv_buf_adds(&b, " > ?");
    }
    if (w->checkpoint && w->ordered) {
        cv_buf_adds(&b, " ORDER BY ");
        cv_buf_adds(&b, w->checkpoint);
    }
    return cv_buf_take(&b);
}

char *cv_sqltext_wrap(const char *head, const char *bare_query, const char *tail) {
    cv_buf b = {0};

    cv_buf_adds(&b, "SELECT ");
    cv_buf_adds(&b, head);
    cv_buf_adds(&b, " FROM (");
    cv_buf_adds(&b, bare_query);
    cv_buf_adds(&b, ") cv_src");
    cv_buf_adds(&b, tail);
    return cv_buf_take(&b);
}

char *cv_sqltext_create_table(const char *table, const cv_odbc_col *cols, int ncols,
                              const char *const *types, const cv_load_spec *load, char quote) {
    cv_buf b = {0};

    cv_buf_adds(&b, "CREATE TABLE ");
    add_ident(&b, table, quote, true);
    cv_buf_adds(&b, " (");
    for (int c = 0; c < ncols; c++) {
        cv_buf_adds(&b, c ? ", " : "");
        add_ident(&b, cols[c].name, quote, false);
        cv_buf_adds(&b, " ");
        cv_buf_adds(&b, types[c]);
        if (is_key(load, cols[c].name))
            cv_buf_adds(&b, " NOT NULL");
    }
    if (load->nkeys) {
        cv_buf_adds(&b, ", PRIMARY KEY (");
        for (int i = 0; i < load->nkeys; i++) {
            cv_buf_adds(&b, i ? ", " : "");
            add_ident(&b, load->keys[i], quote, false);
        }
        cv_buf_adds(&b, ")");
    }
    cv_buf_adds(&b, ")");
    return cv_buf_take(&b);
}

char *cv_sqltext_delete_all(const char *table, char quote) {
    cv_buf b = {0};

    cv_buf_adds(&b, "DELETE FROM ");
    add_ident(&b, table, quote, true);
    return cv_buf_take(&b);
}

char *cv_sqltext_stage(const char *table, const cv_odbc_col *cols, int ncols, char quote,
                       bool postgres) {
    cv_buf b = {0};

    if (postgres) {
        cv_buf_adds(&b, "CREATE TEMP TABLE " CV_SQLTEXT_STAGE_TABLE " (LIKE ");
        add_ident(&b, table, '"', true);
        cv_buf_adds(&b, ") ON COMMIT DROP");
    } else {
        cv_buf_adds(&b, "CREATE TEMPORARY TABLE " CV_SQLTEXT_STAGE_TABLE " AS SELECT ");
        columns(&b, cols, ncols, quote);
        cv_buf_adds(&b, " FROM ");
        add_ident(&b, table, quote, true);
        cv_buf_adds(&b, " LIMIT 0");
    }
    return cv_buf_take(&b);
}

char *cv_sqltext_copy(const char *target, const cv_odbc_col *cols, int ncols) {
    cv_buf b = {0};

    cv_buf_adds(&b, "COPY ");
    cv_buf_adds(&b, target);
    cv_buf_adds(&b, " (");
    columns(&b, cols, ncols, '"');
    cv_buf_adds(&b, ") FROM STDIN");
    return cv_buf_take(&b);
}

char *cv_sqltext_load_data(const char *target, const cv_odbc_col *cols, int ncols, char quote) {
    cv_buf b = {0};
    char var[32];
    bool any_binary = false;

    cv_buf_adds(&b, "LOAD DATA LOCAL INFILE 'convutell' INTO TABLE ");
    cv_buf_adds(&b, target);
    cv_buf_adds(&b, " CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' "
                    "LINES TERMINATED BY '\\n' (");
    for (int c = 0; c < ncols; c++) {
        cv_buf_adds(&b, c ? ", " : "");
        if (cols[c].binary) {
            snprintf(var, sizeof(var), "@cv_hex%d", c);
            cv_buf_adds(&b, var);
            any_binary = true;
        } else {
            add_ident(&b, cols[c].name, quote, false);
        }
    }
    cv_buf_adds(&b, ")");
    for (int c = 0, n = 0; any_binary && c < ncols; c++) {
        if (!cols[c].binary)
            continue;
        cv_buf_adds(&b, n++ ? ", " : " SET ");
        add_ident(&b, cols[c].name, quote, false);
        snprintf(var, sizeof(var), " = UNHEX(@cv_hex%d)", c);
        cv_buf_adds(&b, var);
    }
    return cv_buf_take(&b);
}

char *cv_sqltext_insert(const char *target, const cv_odbc_col *cols, int ncols, char quote,
                        const cv_load_spec *load, cv_dialect dialect) {
    cv_buf b = {0};

    cv_buf_adds(&b, "INSERT INTO ");
    cv_buf_adds(&b, target);
    cv_buf_adds(&b, " (");
    columns(&b, cols, ncols, quote);
    cv_buf_adds(&b, ") VALUES (");
    for (int i = 0; i < ncols; i++)
        cv_buf_adds(&b, i ? ", ?" : "?");
    cv_buf_adds(&b, ")");
    if (load->mode == CV_MODE_UPSERT)
        upsert_clause(&b, cols, ncols, load, quote, dialect);
    return cv_buf_take(&b);
}

char *cv_sqltext_merge(const char *table, const cv_odbc_col *cols, int ncols, char quote,
                       const cv_load_spec *load, cv_dialect dialect) {
    cv_buf b = {0};

    cv_buf_adds(&b, "INSERT INTO ");
    add_ident(&b, table, quote, true);
    cv_buf_adds(&b, " (");
    columns(&b, cols, ncols, quote);
    cv_buf_adds(&b, ") SELECT ");
    columns(&b, cols, ncols, quote);
    cv_buf_adds(&b, " FROM " CV_SQLTEXT_STAGE_TABLE);
    upsert_clause(&b, cols, ncols, load, quote, dialect);
    return cv_buf_take(&b);
}
