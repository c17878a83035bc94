/*
 * cv_id.c - random UUIDs from getrandom(2).
 */
#define _GNU_SOURCE
#include "cv_id.h"

#include <stdio.h>
#include <sys/random.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

int cv_id_new(char *buf, size_t len) {
    unsigned char b[16];
    size_t got = 0;

    if (len < CV_ID_LEN)
        return -1;
    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n < 0)
            return -1;
        got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(buf, len, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return 0;
}

bool cv_id_valid(const char *text) {
    if (!text)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = text[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return text[36] == '\0';
}
