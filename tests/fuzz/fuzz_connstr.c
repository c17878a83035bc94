/*
 * fuzz_connstr.c - libFuzzer harness for the connection-string masker: any
 * text is masked or refused with where; a masked string parses again and
 * masks to itself.
 */
#include "cv_connstr.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1), *masked = NULL, *twice = NULL, err[256];

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (cv_connstr_mask(text, &masked, err, sizeof(err)) == CV_OK) {
        if (cv_connstr_mask(masked, &twice, err, sizeof(err)) != CV_OK ||
            strcmp(masked, twice) != 0)
            abort();
    } else if (!err[0]) {
        abort();
    }
    free(twice);
    free(masked);
    free(text);
    return 0;
}
