/*
 * cv_members.c - a project's members and their roles (see cv_members.h).
 */
#include "cv_members.h"

#include "cv_store.h"
#include "cv_time.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

static const char *const role_names[] = {"none", "viewer", "runner", "editor", "owner"};

cv_role cv_role_parse(const char *s) {
    for (int r = CV_ROLE_VIEWER; s && r <= CV_ROLE_OWNER; r++)
        if (strcmp(s, role_names[r]) == 0)
            return (cv_role)r;
    return CV_ROLE_NONE;
}

const char *cv_role_str(cv_role role) {
    return role >= CV_ROLE_NONE && role <= CV_ROLE_OWNER ? role_names[role] : "none";
}

/* Calls fn for each well-formed {user, role} of the project's members, in
 * order, until it returns false. */
static void each_member(const bson_t *project, bool (*fn)(void *, const char *, cv_role),
                        void *ctx) {
    bson_iter_t it, arr;

    if (!bson_iter_init_find(&it, project, "members") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr))
        return;
    while (bson_iter_next(&arr)) {
        bson_t member;
        if (!cv_mongo_iter_doc(&arr, &member))
            continue;
        const char *user = cv_mongo_doc_str(&member, "user");
        cv_role role = cv_role_parse(cv_mongo_doc_str(&member, "role"));
        if (user && role != CV_ROLE_NONE && !fn(ctx, user, role))
            return;
    }
}

typedef struct role_of {
    const char *user;
    cv_role role;
} role_of;

static bool find_role(void *ctx, const char *user, cv_role role) {
    role_of *r = ctx;
    if (strcmp(user, r->user) != 0)
        return true;
    r->role = role;
    return false;
}

cv_role cv_members_role(const bson_t *project, const char *user) {
    role_of r = {user, CV_ROLE_NONE};

    if (project && user)
        each_member(project, find_role, &r);
    return r.role;
}

static void append_member(bson_t *arr, uint32_t i, const char *user, cv_role role) {
    char index[16];
    const char *key;
    bson_t m;

    bson_uint32_to_string(i, &key, index, sizeof(index));
    bson_append_document_begin(arr, key, -1, &m);
    BSON_APPEND_UTF8(&m, "user", user);
    BSON_APPEND_UTF8(&m, "role", cv_role_str(role));
    bson_append_document_end(arr, &m);
}

void cv_members_append_first(bson_t *project, const char *owner) {
    bson_t arr;

    BSON_APPEND_ARRAY_BEGIN(project, "members", &arr);
    append_member(&arr, 0, owner, CV_ROLE_OWNER);
    bson_append_array_end(project, &arr);
    BSON_APPEND_INT64(project, "members_version", 1);
}

/* The members after a change, built while walking the old ones. */
typedef struct change {
    const char *user;
    cv_member_op op;
    cv_role role;
    bson_t *out; /* the new members array */
    uint32_t n;  /* members written to out */
    int owners;  /* owners in out */
    bool found;  /* user was a member */
} change;

static bool apply(void *ctx, const char *user, cv_role role) {
    change *c = ctx;

    if (strcmp(user, c->user) == 0) {
        c->found = true;
        if (c->op == CV_MEMBER_REMOVE)
            return true;
        if (c->op == CV_MEMBER_CHANGE)
            role = c->role;
    }
    append_member(c->out, c->n++, user, role);
    c->owners += role == CV_ROLE_OWNER;
    return true;
}

/* One attempt: reads the project, writes the change over the version read.
 * *raced when another change came in between (try again). */
static cv_err try_set(cv_mongo *m, const char *project_id, change *c, bool *raced, char *errbuf,
                      size_t errlen) {
    bson_t *project = NULL, arr = BSON_INITIALIZER, filter = BSON_INITIALIZER;
    bson_t update = BSON_INITIALIZER, set;
    int64_t version, matched = 0;
    cv_err err;

    *raced = false;
    if ((err = cv_mongo_find_id(m, CV_COLL_PROJECTS, project_id, &project, errbuf, errlen))) {
        if (err == CV_ERR_NOT_FOUND)
            cv_err_set(errbuf, errlen, err, "no project with id '%s'", project_id);
        goto out;
    }
    c->out = &arr;
    c->n = 0;
    c->owners = 0;
    c->found = false;
    each_member(project, apply, c);
    if (c->op == CV_MEMBER_ADD && c->found) {
        err = cv_err_set(errbuf, errlen, CV_ERR_CONFLICT,
                         "%s is a member already: change their role with PATCH", c->user);
        goto out;
    }
    if (c->op != CV_MEMBER_ADD && !c->found) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOT_FOUND, "%s is not a member of this project",
                         c->user);
        goto out;
    }
    if (c->op == CV_MEMBER_ADD) {
        if (c->n >= CV_MEMBERS_MAX) {
            err = cv_err_set(errbuf, errlen, CV_ERR_CONFLICT, "a project has at most %d members",
                             CV_MEMBERS_MAX);
            goto out;
        }
        append_member(&arr, c->n++, c->user, c->role);
        c->owners += c->role == CV_ROLE_OWNER;
    }
    if (c->owners == 0) {
        err = cv_err_set(errbuf, errlen, CV_ERR_CONFLICT,
                         "a project keeps at least one owner: make another member owner first");
        goto out;
    }
    version = cv_mongo_doc_int(project, "members_version", 0);
    BSON_APPEND_UTF8(&filter, "_id", project_id);
    if (version > 0) {
        BSON_APPEND_INT64(&filter, "members_version", version);
    } else {
        cv_mongo_append_absent(&filter, "members_version");
    }
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_ARRAY(&set, "members", &arr);
    BSON_APPEND_INT64(&set, "members_version", version + 1);
    cv_mongo_append_time(&set, "updated_at", cv_time_now_ms());
    bson_append_document_end(&update, &set);
    err = cv_mongo_update(m, CV_COLL_PROJECTS, &filter, &update, false, &matched, errbuf, errlen);
    *raced = !err && matched == 0;
out:
    bson_destroy(project);
    bson_destroy(&arr);
    bson_destroy(&filter);
    bson_destroy(&update);
    return err;
}

cv_err cv_members_set(cv_mongo *m, const char *project_id, const char *user, cv_member_op op,
                      cv_role role, char *errbuf, size_t errlen) {
    change c = {.user = user, .op = op, .role = role};
    bool raced = true;
    cv_err err = CV_OK;

    for (int attempt = 0; attempt < 8 && raced; attempt++)
        if ((err = try_set(m, project_id, &c, &raced, errbuf, errlen)))
            return err;
    if (raced)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFLICT,
                          "the members of this project keep changing: try again");
    return CV_OK;
}
