/*
 * cv_api_compat.c - POST /CreateProjects, the original Convutell's route,
 * so that scripts written for it keep working (also at
 * /api/v1/CreateProjects; signed in like every route).
 *
 * Its body {"name_project", "dt_last_run", "fl_active", "connection_origin1",
 * "connection_origin2"} is read under its own names, then made a project as
 * POST /api/v1/projects makes one: name_project the name, the two connection
 * ids the origin and the destination, fl_active 0 or 1 whether it is active,
 * dt_last_run kept as the project's last_run_at. An error names the field
 * as the original body calls it.
 */
#include "cv_api_int.h"

#include "cv_json.h"
#include "cv_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

/* The original body's names beside today's. */
static const char *const renamed[][2] = {{"name_project", "name"},
                                         {"connection_origin1", "origin_connection_id"},
                                         {"connection_origin2", "destination_connection_id"},
                                         {"fl_active", "active"},
                                         {"dt_last_run", "last_run_at"}};
#define NRENAMED 5

/* dt_last_run as stored time: RFC 3339, or "YYYY-MM-DD HH:MM:SS[.fff]" (UTC)
 * as the original wrote it. */
static bool last_run(const char *text, int64_t *ms) {
    char copy[64];
    size_t len = strlen(text);

    if (cv_time_parse(text, ms) == 0)
        return true;
    if (len < 19 || len > 40 || text[10] != ' ')
        return false;
    snprintf(copy, sizeof(copy), "%sZ", text);
    copy[10] = 'T';
    return cv_time_parse(copy, ms) == 0;
}

/* Today's body from the original one; false having answered 422. */
static cJSON *translate(const cJSON *body, cv_http_response *res) {
    static const char *const fields[] = {"name_project",       "dt_last_run",        "fl_active",
                                         "connection_origin1", "connection_origin2", NULL};
    const char *name, *origin, *dest, *dt = NULL;
    int64_t active = 1, last_ms = 0;
    char when[CV_TIME_RFC3339_LEN];
    cJSON *out;
    cv_verr verr;

    if (cv_json_only(body, NULL, fields, "a CreateProjects body", &verr) ||
        cv_json_get_str(body, NULL, "name_project", true, 200, &name, &verr) ||
        cv_json_get_id(body, NULL, "connection_origin1", true, &origin, &verr) ||
        cv_json_get_id(body, NULL, "connection_origin2", true, &dest, &verr) ||
        cv_json_get_int(body, NULL, "fl_active", false, 0, 1, &active, &verr) ||
        cv_json_get_str(body, NULL, "dt_last_run", false, 40, &dt, &verr))
        goto bad;
    if (dt && !last_run(dt, &last_ms)) {
        cv_verr_set(&verr, NULL, "dt_last_run",
                    "must be a time such as \"2026-12-05 10:00:00\" or 2026-12-05T10:00:00Z");
        goto bad;
    }
    if (!(out = cJSON_CreateObject())) {
        cv_http_error(res, 500, "internal", NULL, "out of memory");
        return NULL;
    }
    cJSON_AddStringToObject(out, "name", name);
    cJSON_AddStringToObject(out, "origin_connection_id", origin);
    cJSON_AddStringToObject(out, "destination_connection_id", dest);
    cJSON_AddBoolToObject(out, "active", active == 1);
    if (dt) {
        cv_time_format(last_ms, when, sizeof(when));
        cJSON_AddStringToObject(out, "last_run_at", when);
    }
    return out;
bad:
    cv_api_field_error(res, &verr);
    return NULL;
}

/* An error about today's field is about the original's. */
static void rename_error(cv_http_response *res) {
    cJSON *error = cJSON_GetObjectItemCaseSensitive(res->body, "error");
    cJSON *field = cJSON_GetObjectItemCaseSensitive(error, "field");
    cJSON *message = cJSON_GetObjectItemCaseSensitive(error, "message");
    char text[1024];

    for (int i = 0; cJSON_IsString(field) && i < NRENAMED; i++) {
        size_t n = strlen(renamed[i][1]);
        if (strcmp(field->valuestring, renamed[i][1]) != 0)
            continue;
        cJSON_SetValuestring(field, renamed[i][0]);
        if (cJSON_IsString(message) && strncmp(message->valuestring, renamed[i][1], n) == 0) {
            snprintf(text, sizeof(text), "%s%s", renamed[i][0], message->valuestring + n);
            cJSON_SetValuestring(message, text);
        }
        return;
    }
}

void cv_api_create_projects_compat(cv_api *api, const char *id_unused, const cv_http_request *req,
                                   cv_http_response *res) {
    cJSON *body = cv_api_parse_body(req, res), *made = NULL;
    cv_http_request modern = *req;
    char *text = NULL;

    (void)id_unused;
    if (!body || !(made = translate(body, res)))
        goto out;
    if (!(text = cJSON_PrintUnformatted(made))) {
        cv_http_error(res, 500, "internal", NULL, "out of memory");
        goto out;
    }
    modern.body = text;
    modern.body_len = strlen(text);
    cv_api_create_project(api, NULL, &modern, res);
    if (res->status != 201)
        rename_error(res);
out:
    cJSON_free(text);
    cJSON_Delete(made);
    cJSON_Delete(body);
}
