/*
 * cv_people.h - users and their tokens, as the store keeps them.
 *
 * A user is a document of `users` whose _id is their name: names are
 * permanent (a display name can change), and the store's unique _id makes two
 * users of one name impossible. Their password is an Argon2id hash
 * (cv_credential.h); a disabled user's tokens stop working at their next
 * request.
 *
 * A token is a document of `tokens` whose _id is the SHA-256 of the token: an
 * API token ("cvt_", a name, a scope, an optional expiry) or a session ("cvs_",
 * made by a login, with the CSRF value its cookie-authenticated writes must
 * echo). The token itself is never stored.
 *
 * Threads and ownership: every function may be called from any thread (the
 * MongoDB client is the caller's, and is thread-safe); documents returned are
 * the caller's to bson_destroy().
 */
#ifndef CV_PEOPLE_H
#define CV_PEOPLE_H

#include "cv_cache.h"
#include "cv_credential.h"
#include "cv_err.h"
#include "cv_id.h"
#include "cv_members.h"
#include "cv_mongo.h"

#include <stdbool.h>
#include <stdint.h>

#define CV_USER_NAME_MAX 64
#define CV_SESSION_MS (12 * 3600 * INT64_C(1000)) /* a login lasts 12 hours */

/* Who is asking: the user behind a valid token, and what the token allows. */
typedef struct cv_caller {
    char user[CV_USER_NAME_MAX + 1];
    bool admin;
    bool session;               /* a login's token (the web interface) */
    bool write;                 /* the token may change things (scope "write") */
    char token_id[CV_ID_LEN];   /* the token's public id */
    char digest[CV_DIGEST_LEN]; /* the token's SHA-256: its _id in the store */
    char csrf[CV_TOKEN_LEN];    /* sessions: what cookie-authenticated writes echo */
    /* Set by the API's router for a route on one project's resource: */
    char project_id[CV_ID_LEN]; /* the project the route's resource belongs to, or "" */
    cv_role role;               /* the caller's role there (an administrator: owner) */
} cv_caller;

/* Whether name is a user name: CV_USER_NAME_RULE, as errors say it. */
#define CV_USER_NAME_RULE "1 to 64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
bool cv_people_name_ok(const char *name);

/* Adds a user. password (CV_PASSWORD_MIN to CV_PASSWORD_MAX characters,
 * checked by the caller) is hashed here. CV_ERR_CONFLICT when the name is
 * taken. */
cv_err cv_people_add_user(cv_mongo *m, const char *name, const char *display_name,
                          const char *password, bool admin, const char *by, char *errbuf,
                          size_t errlen);

/* Checks a login: CV_OK with *user (the user's document) when the password is
 * right and the user is enabled, rehashing the password when its hash was
 * made with older limits. CV_ERR_NOT_FOUND for an unknown name or a wrong
 * password alike; CV_ERR_CONFLICT for a disabled user. */
cv_err cv_people_login(cv_mongo *m, const char *name, const char *password, bson_t **user,
                       char *errbuf, size_t errlen);

/* What a new token is. */
typedef struct cv_token_spec {
    bool session;       /* a login's token; else an API token */
    const char *name;   /* API tokens: what it is for */
    bool write;         /* scope "write" (sessions always) */
    int64_t expires_ms; /* 0: never (API tokens only) */
} cv_token_spec;

/* Issues a token to user: the token (shown once), its public id and, for a
 * session, its CSRF value (csrf may be NULL otherwise). */
cv_err cv_people_issue(cv_mongo *m, const char *user, const cv_token_spec *spec,
                       char token[CV_TOKEN_LEN], char id[CV_ID_LEN], char csrf[CV_TOKEN_LEN],
                       char *errbuf, size_t errlen);

/* Finds who a token belongs to at now_ms. CV_ERR_NOT_FOUND (with the reason
 * in errbuf: unknown, expired, revoked, or the user disabled or gone) when it
 * lets nobody in. The token's and the user's documents are read through
 * cache (may be NULL: from the store every time). */
cv_err cv_people_resolve(cv_mongo *m, cv_cache *cache, const char *token, int64_t now_ms,
                         cv_caller *who, char *errbuf, size_t errlen);

/* Revokes a token: by its public id among user's tokens (id) or by its digest
 * (a session ending itself), and drops it from cache (may be NULL).
 * CV_ERR_NOT_FOUND when there is no such token. */
cv_err cv_people_revoke(cv_mongo *m, cv_cache *cache, const char *user, const char *id,
                        const char *digest, char *errbuf, size_t errlen);

/* Revokes every token of user (disabled or deleted) and drops them and the
 * user from cache (may be NULL). */
cv_err cv_people_revoke_all(cv_mongo *m, cv_cache *cache, const char *user, char *errbuf,
                            size_t errlen);

#endif
