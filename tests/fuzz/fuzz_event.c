/*
 * fuzz_event.c - libFuzzer harness for the event decoder (the collector's
 * input): refused with a reason or decoded, and a decoded event encodes into
 * one that decodes again.
 */
#include "cv_message.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cv_event ev, again;
    cv_verr verr;
    char *text;

    if (cv_event_decode((const char *)data, size, &ev, &verr) != CV_OK) {
        if (!verr.reason[0])
            abort(); /* a refusal always says why (the field may be "": a key "") */
        return 0;
    }
    text = cv_event_encode(&ev);
    if (!text || cv_event_decode(text, strlen(text), &again, &verr) != CV_OK)
        abort();
    if (strcmp(ev.event_id, again.event_id) != 0 || strcmp(ev.type, again.type) != 0)
        abort();
    free(text);
    return 0;
}
