/*
 * cv_members.h - who may do what in a project: its members and their roles.
 *
 * A project document keeps its members in `members`, an array of
 * {user, role} in the order they were added, and `members_version`, which
 * every change increments: a change is written only over the version it was
 * computed from, so two owners changing members at once cannot both remove
 * the last other owner. A project always keeps at least one owner.
 *
 * Roles, each allowing what the ones below it do:
 *   owner   everything: sharing, deleting, the project's interpreter and
 *           whether jobs see its connections;
 *   editor  jobs, schedules and the project's connections;
 *   runner  starts and cancels runs;
 *   viewer  reads runs, logs and definitions, never a connection's secret.
 * An instance administrator acts as an owner of every project.
 *
 * Threads and ownership: any thread; nothing returned needs freeing.
 */
#ifndef CV_MEMBERS_H
#define CV_MEMBERS_H

#include "cv_err.h"
#include "cv_mongo.h"

#include <bson/bson.h>

typedef enum cv_role {
    CV_ROLE_NONE = 0, /* not a member: the project is not there for them */
    CV_ROLE_VIEWER,
    CV_ROLE_RUNNER,
    CV_ROLE_EDITOR,
    CV_ROLE_OWNER,
} cv_role;

#define CV_ROLE_NAMES "\"owner\", \"editor\", \"runner\" or \"viewer\""
#define CV_MEMBERS_MAX 1000 /* members of one project */

/* The role named s, or CV_ROLE_NONE for anything else (NULL too). */
cv_role cv_role_parse(const char *s);

/* The name of a role ("none" for CV_ROLE_NONE). */
const char *cv_role_str(cv_role role);

/* user's role in the project document, CV_ROLE_NONE when not a member. */
cv_role cv_members_role(const bson_t *project, const char *user);

/* Appends the members of a new project, owner alone, and their version. */
void cv_members_append_first(bson_t *project, const char *owner);

/* A change of a project's members. */
typedef enum cv_member_op {
    CV_MEMBER_ADD,    /* a new member with a role */
    CV_MEMBER_CHANGE, /* a member's role */
    CV_MEMBER_REMOVE, /* a member gone */
} cv_member_op;

/* Changes the members of project_id: op on user, with role for ADD and
 * CHANGE. The reason in errbuf on:
 * - CV_ERR_NOT_FOUND: no such project, or (CHANGE, REMOVE) user is no member;
 * - CV_ERR_CONFLICT: (ADD) user is a member already, or the change would
 *   leave the project without an owner, or CV_MEMBERS_MAX members;
 * - CV_ERR_MONGO. */
cv_err cv_members_set(cv_mongo *m, const char *project_id, const char *user, cv_member_op op,
                      cv_role role, char *errbuf, size_t errlen);

#endif
