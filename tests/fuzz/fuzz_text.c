/*
 * fuzz_text.c - libFuzzer harness for the text checks at the edges: a request
 * body's UTF-8 and NUL check, and log escaping, whose output is always
 * UTF-8 without a control character (one record, one line).
 */
#include "cv_json.h"
#include "cv_log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1), out[4096];
    const char *what = "";
    size_t at = 0, n;

    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (!cv_json_text_ok(text, size, &at, &what) && (at == 0 || at > size || !what[0]))
        abort();
    n = cv_log_escape(text, out, sizeof(out));
    if (n != strlen(out))
        abort();
    for (size_t i = 0; i < n;) {
        const unsigned char *c = (const unsigned char *)out + i;
        size_t len = cv_json_utf8_len(c, n - i);
        if (len == 0 || c[0] < 0x20 || c[0] == 0x7f || (c[0] == 0xC2 && c[1] < 0xA0))
            abort(); /* not UTF-8, or a C0, DEL or C1 control */
        i += len;
    }
    free(text);
    return 0;
}
