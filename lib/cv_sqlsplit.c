/*
 * cv_sqlsplit.c - a small lexer that knows where SQL statements end: it skips
 * '...', "...", `...`, $tag$...$tag$ (PostgreSQL), -- line comments, block
 * comments and, for MariaDB, # line comments, and stops at the first
 * semicolon outside them.
 */
#include "cv_sqlsplit.h"

#include <ctype.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* Index just past the quoted run that starts at text[i] with `quote`. */
static size_t skip_quoted(const char *text, size_t i, char quote, bool mariadb) {
    for (i++; text[i]; i++) {
        if (mariadb && text[i] == '\\' && quote != '`' && text[i + 1]) {
            i++;
        } else if (text[i] == quote) {
            if (text[i + 1] != quote) /* a doubled quote stands for one */
                return i + 1;
            i++;
        }
    }
    return i;
}

/* Index just past a PostgreSQL dollar-quoted body starting at text[i] ('$'),
 * or i itself if this '$' does not open one ($1 parameters, names with $). */
static size_t skip_dollar(const char *text, size_t i) {
    size_t tag_end = i + 1, taglen;
    const char *close;

    while (isalnum((unsigned char)text[tag_end]) || text[tag_end] == '_')
        tag_end++;
    if (text[tag_end] != '$' || (tag_end > i + 1 && isdigit((unsigned char)text[i + 1])))
        return i;
    taglen = tag_end + 1 - i;
    for (close = text + tag_end + 1; (close = strchr(close, '$')); close++)
        if (strncmp(close, text + i, taglen) == 0)
            return (size_t)(close - text) + taglen;
    return strlen(text);
}

/* Index past the white space and comments at text[i]. */
static size_t skip_blank(const char *text, size_t i, bool mariadb) {
    for (;;) {
        if (isspace((unsigned char)text[i])) {
            i++;
        } else if ((text[i] == '-' && text[i + 1] == '-') || (mariadb && text[i] == '#')) {
            while (text[i] && text[i] != '\n')
                i++;
        } else if (text[i] == '/' && text[i + 1] == '*') {
            const char *end = strstr(text + i + 2, "*/");
            i = end ? (size_t)(end - text) + 2 : strlen(text);
        } else {
            return i;
        }
    }
}

bool cv_sqlsplit_next(const char *text, size_t *pos, size_t *start, size_t *end, bool mariadb) {
    size_t i = *pos;

    for (;;) {
        i = skip_blank(text, i, mariadb);
        if (text[i] != ';')
            break;
        i++;
    }
    if (!text[i]) {
        *pos = i;
        return false;
    }
    *start = i;
    while (text[i] && text[i] != ';') {
        char c = text[i];
        if (c == '\'' || c == '"' || c == '`') {
            i = skip_quoted(text, i, c, mariadb);
        } else if (c == '$') {
            size_t after = skip_dollar(text, i);
            i = after > i ? after : i + 1;
        } else if ((c == '-' && text[i + 1] == '-') || (c == '/' && text[i + 1] == '*') ||
                   (mariadb && c == '#')) {
            i = skip_blank(text, i, mariadb);
        } else {
            i++;
        }
    }
    *end = i;
    while (*end > *start && isspace((unsigned char)text[*end - 1]))
        (*end)--;
    *pos = text[i] ? i + 1 : i;
    return true;
}

int cv_sqlsplit_count(const char *text, bool mariadb) {
    size_t pos = 0, start, end;
    int n = 0;

    while (cv_sqlsplit_next(text, &pos, &start, &end, mariadb))
        n++;
    return n;
}
