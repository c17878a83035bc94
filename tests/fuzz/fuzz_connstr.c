/*
 * fuzz_connstr.c - libFuzzer harness for the connection-string masker: any
 * text is masked or refused with where; a masked string parses again and
 * masks to itself. What parses also strips (cv_connstr_strip), and a stripped
 * string strips and masks to itself: no secret is left in it.
 */
#include "cv_connstr.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1), *masked = NULL, *twice = NULL, err[256];
    char *stripped = NULL, *again = NULL, *remasked = NULL;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (cv_connstr_mask(text, &masked, err, sizeof(err)) == CV_OK) {
        if (cv_connstr_mask(masked, &twice, err, sizeof(err)) != CV_OK ||
            strcmp(masked, twice) != 0)
            abort();
        if (cv_connstr_strip(text, &stripped, err, sizeof(err)) != CV_OK ||
            cv_connstr_strip(stripped, &again, err, sizeof(err)) != CV_OK ||
            strcmp(stripped, again) != 0 ||
            cv_connstr_mask(stripped, &remasked, err, sizeof(err)) != CV_OK ||
            strcmp(stripped, remasked) != 0)
            abort();
    } else if (!err[0]) {
        abort();
    }
    free(remasked);
    free(again);
    free(stripped);
    free(twice);
    free(masked);
    free(text);
    return 0;
}
