/*
 * cv_launch.h - the job message of one run of a stored job. The API (manual
 * runs) and the scheduler (ticks) build runs the same way from the job's and
 * its project's documents, so a run looks the same whoever started it; only
 * `trigger` (and a scheduled run's `tick_at`) tell them apart.
 */
#ifndef CV_LAUNCH_H
#define CV_LAUNCH_H

#include "cv_err.h"
#include "cv_message.h"

#include <bson/bson.h>

/* Fills *job for a run of the stored job `job_doc` of project `project`:
 * kind, connections, query or script or statements, load options, and the
 * retry policy of the job's schedule (max_attempts 1 when it has none). The
 * caller sets run_id, trigger and tick. Strings are borrowed from job_doc,
 * which must outlive *job; release with cv_launch_release(). CV_ERR_INVALID
 * (reason in errbuf) when the stored job cannot be read. */
cv_err cv_launch_build(const bson_t *job_doc, const bson_t *project, cv_job *job, char *errbuf,
                       size_t errlen);

/* Frees what cv_launch_build() allocated and forgets the borrowed strings. */
void cv_launch_release(cv_job *job);

/* The document as cJSON (relaxed extended JSON), or NULL when out of memory. */
cJSON *cv_launch_doc_json(const bson_t *doc);

#endif
