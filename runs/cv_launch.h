/*
 * cv_launch.h - a run of a stored job. The API (manual runs) and the
 * scheduler (ticks) build runs the same way from the job's and its project's
 * documents, so a run looks the same whoever started it; only `trigger` (and
 * a scheduled run's `tick_at`) tell them apart. The worker checks the message
 * it gets against the same documents and takes the definition from them
 * (cv_launch_resolve()). Nothing here reads the store: the callers pass the
 * documents, so the rules are unit-tested on their own.
 *
 * Pure functions over the caller's documents: any thread. A cv_job filled
 * here owns its strings, like any cv_job (cv_job_release()).
 */
#ifndef CV_LAUNCH_H
#define CV_LAUNCH_H

#include "cv_err.h"
#include "cv_message.h"

#include <bson/bson.h>

/* Fills *job for a run of the stored job `job_doc` of project `project`:
 * kind, connections, query or script or statements, load options, and the
 * retry policy of the job's schedule (max_attempts 1 when it has none). The
 * caller sets run_id, trigger and tick. *job owns copies of its strings
 * (release it with cv_job_release(), like any cv_job). CV_ERR_INVALID (reason
 * in errbuf) when the stored job cannot be read; CV_ERR_NOMEM. */
cv_err cv_launch_build(const bson_t *job_doc, const bson_t *project, cv_job *job, char *errbuf,
                       size_t errlen);

/* Checks the decoded message *job against the stored job it names (job_doc,
 * NULL when there is none) and that job's project (NULL when there is none),
 * then fills in the definition from them as copies *job owns (released with
 * cv_job_release()): kind, connections, query, transform, load options,
 * script, statements, and job_version. A run's parameters are laid over the
 * job's stored ones, key by key at the top level.
 * - CV_ERR_INVALID, *verr naming the message's field: the message names no
 *   job of ours (no such job, another project, a version not kept, another
 *   kind, parameters for a job that takes none): dead-letter it.
 * - CV_ERR_CONFLICT, reason in errbuf: the job is known but its project is
 *   not active; *job is filled, and the run fails.
 * - CV_ERR_NOMEM. */
cv_err cv_launch_resolve(const bson_t *job_doc, const bson_t *project, cv_job *job, cv_verr *verr,
                         char *errbuf, size_t errlen);

/* Versions of a job kept for the runs queued before a change (`job_versions`):
 * the key "<job id>@<version>", the document kept for a stored job (its _id
 * that key, the job's id in job_id, the rest as it was) and the stored job
 * again from a kept one (NULL when out of memory, or not a kept version). */
#define CV_LAUNCH_VERSION_KEY_LEN (CV_ID_LEN + 16)
void cv_launch_version_key(const char *job_id, int version, char *out);
bson_t *cv_launch_version_keep(const bson_t *job_doc);
bson_t *cv_launch_version_job(const bson_t *kept);

/* The document as cJSON (relaxed extended JSON), or NULL when out of memory. */
cJSON *cv_launch_doc_json(const bson_t *doc);

#endif
