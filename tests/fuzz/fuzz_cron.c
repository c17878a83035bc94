/*
 * fuzz_cron.c - libFuzzer harness for cron expressions: parsed or refused
 * with a reason; a parsed one's next time is later than the time given.
 */
#include "cv_cron.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1), err[256] = "";
    cv_cron cron;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (cv_cron_parse(text, &cron, err, sizeof(err)) == CV_OK) {
        int64_t at = 1796515200000; /* 2026-12-04T00:00:00Z */
        int64_t next = cv_cron_next(&cron, at);
        if (next >= 0 && next <= at)
            abort();
    } else if (!err[0]) {
        abort();
    }
    free(text);
    return 0;
}
