/*
 * fuzz_job.c - libFuzzer harness for the job message decoder: any bytes are
 * refused with a reason or decoded; a decoded job encodes into a message
 * that decodes again.
 */
#include "cv_message.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cv_job job, again;
    cv_verr verr;
    char *text;

    if (cv_job_decode((const char *)data, size, &job, &verr) != CV_OK) {
        if (!verr.reason[0])
            abort(); /* a refusal always says why (the field may be "": a key "") */
        return 0;
    }
    text = cv_job_encode(&job);
    if (!text || cv_job_decode(text, strlen(text), &again, &verr) != CV_OK)
        abort();
    if (strcmp(job.run_id, again.run_id) != 0 || job.attempt != again.attempt ||
        job.job_version != again.job_version || strcmp(job.kind, again.kind) != 0)
        abort();
    if ((job.run_parameters == NULL) != (again.run_parameters == NULL) ||
        (job.run_parameters && strcmp(job.run_parameters, again.run_parameters) != 0))
        abort();
    cv_job_release(&again);
    free(text);
    cv_job_release(&job);
    return 0;
}
