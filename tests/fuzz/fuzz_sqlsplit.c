/*
 * fuzz_sqlsplit.c - libFuzzer harness for the SQL splitter, with PostgreSQL's
 * and SQLite's lexical rules and with MariaDB's: every statement lies inside
 * the text, in order, and the splitter always moves on.
 */
#include "cv_sqlsplit.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    size_t len;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    len = strlen(text);
    for (int mariadb = 0; mariadb < 2; mariadb++) {
        size_t pos = 0, start, end, last = 0;
        while (cv_sqlsplit_next(text, &pos, &start, &end, mariadb)) {
            if (start < last || start >= end || end > len || pos <= start || pos > len)
                abort();
            last = end;
        }
    }
    free(text);
    return 0;
}
