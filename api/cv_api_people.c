/*
 * cv_api_people.c - who is asking, and the routes of users, sessions and
 * tokens.
 *
 * Every route but GET /health, /healthz, /readyz, /openapi.json and POST /sessions wants a token:
 * an API token in `Authorization: Bearer cvt_...`, or a session, as a Bearer token or as the
 * `cv_session` cookie the login set. A cookie-authenticated write must echo the session's CSRF
 * value in `X-CSRF-Token`: another site can make a browser send the cookie, not read the value. A
 * token of scope "read" may only read.
 */
#include "cv_api_int.h"

#include "cv_log.h"
#include "cv_store.h"
#include "cv_throttle.h"
#include "cv_time.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define SESSION_COOKIE "cv_session"
#define TOKEN_DAYS_MAX 3650

const cv_caller *cv_api_caller(const cv_http_request *req) {
    return req->caller;
}

static void unauthorized(cv_http_response *res, bool invalid, const char *why) {
    snprintf(res->www_authenticate, sizeof(res->www_authenticate), "Bearer realm=\"convutell\"%s",
             invalid ? ", error=\"invalid_token\"" : "");
    cv_http_error(res, 401, "unauthorized", NULL, "%s", why);
}

bool cv_api_authenticate(cv_api *api, const cv_http_request *req, bool write, cv_caller *who,
                         cv_http_response *res) {
    const char *auth = cv_http_header(req, "Authorization");
    const char *token = NULL, *csrf;
    bool cookie = false;
    char why[512];
    cv_err err;

    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
        token = auth + 7;
        while (*token == ' ')
            token++;
    } else if (auth) {
        unauthorized(res, false, "the Authorization header must be \"Bearer <token>\"");
        return false;
    } else if ((token = cv_http_cookie(req, SESSION_COOKIE))) {
        cookie = true;
    }
    if (!token || !*token) {
        unauthorized(res, false,
                     "sign in first: send \"Authorization: Bearer <token>\" (POST "
                     "/api/v1/sessions or an API token)");
        return false;
    }
    if (strlen(token) >= CV_TOKEN_LEN) {
        unauthorized(res, true, "the token is not valid (unknown or revoked)");
        return false;
    }
    err =
        cv_people_resolve(api->mongo, api->people, token, cv_time_now_ms(), who, why, sizeof(why));
    if (err == CV_ERR_NOT_FOUND) {
        unauthorized(res, true, why);
        return false;
    }
    if (err) {
        cv_api_internal_error(res, err, why);
        return false;
    }
    if (write && !who->write) {
        cv_http_error(res, 403, "forbidden", NULL,
                      "this token's scope is read: %s %s needs a token of scope write", req->method,
                      req->path);
        return false;
    }
    csrf = cv_http_header(req, "X-CSRF-Token");
    if (write && cookie && (!csrf || !who->csrf[0] || strcmp(csrf, who->csrf) != 0)) {
        cv_http_error(res, 403, "csrf", NULL,
                      "a write signed in by cookie must send the session's csrf_token in "
                      "X-CSRF-Token");
        return false;
    }
    return true;
}

/* Answers 200 {"items": [...]}: the documents of collection matching filter
 * in sort's order (at most limit), each shown by view. */
static void answer_list(cv_api *api, const char *collection, const bson_t *filter,
                        const bson_t *sort, int64_t limit, cJSON *(*view)(const bson_t *),
                        cv_http_response *res) {
    bson_t *found = NULL, doc;
    bson_iter_t it;
    cJSON *items;
    char why[512];
    cv_err err;

    if ((err = cv_mongo_find(api->mongo, collection, filter, sort, limit, &found, why,
                             sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        return;
    }
    res->status = 200;
    res->body = cJSON_CreateObject();
    items = cJSON_AddArrayToObject(res->body, "items");
    CV_MONGO_EACH_DOC(found, it, doc) {
        cJSON_AddItemToArray(items, view(&doc));
    }
    bson_destroy(found);
}

/* ---- sessions ------------------------------------------------------------ */

/* Whether a login of name from peer may try now (cv_throttle.h); else
 * answers 429 with Retry-After. A store that does not answer lets it try:
 * the login itself will say so. */
static bool throttle_passes(cv_api *api, const char *name, const char *peer,
                            cv_http_response *res) {
    int64_t wait = 0;
    char why[512];

    if (cv_throttle_wait(api->mongo, name, peer, cv_time_now_ms(), &wait, why, sizeof(why)))
        cv_log_warn("login throttle not read: %s", why);
    if (wait <= 0)
        return true;
    res->retry_after = (int)((wait + 999) / 1000);
    cv_http_error(res, 429, "too_many_attempts", NULL,
                  "too many failed logins for this name or from this address: try again in %d s",
                  res->retry_after);
    return false;
}

/* Counts a failed login, or forgets the name's failures after a good one. */
static void throttle_count(cv_api *api, const char *name, const char *peer, bool failed) {
    char why[512];
    cv_err err =
        failed ? cv_throttle_failed(api->mongo, name, peer, cv_time_now_ms(), why, sizeof(why))
               : cv_throttle_passed(api->mongo, name, peer, why, sizeof(why));
    if (err)
        cv_log_warn("login throttle not written: %s", why);
}

/* POST /sessions {name, password}: a session token, also set as an HttpOnly
 * cookie for the web interface, and its CSRF value. */
void cv_api_create_session(cv_api *api, const char *id, const cv_http_request *req,
                           cv_http_response *res) {
    static const char *const fields[] = {"name", "password", NULL};
    char token[CV_TOKEN_LEN], token_id[CV_ID_LEN], csrf[CV_TOKEN_LEN], why[512];
    char expires[CV_TIME_RFC3339_LEN];
    cJSON *body = cv_api_parse_body(req, res);
    const char *name, *password;
    cv_token_spec spec = {.session = true, .write = true};
    char peer[CV_HTTP_PEER_LEN];
    bson_t *user = NULL;
    cv_verr verr;
    cv_err err;

    (void)id;
    if (!body)
        return;
    cv_http_peer(req, peer);
    if (cv_json_only(body, NULL, fields, "a login", &verr) ||
        cv_json_get_str(body, NULL, "name", true, CV_USER_NAME_MAX, &name, &verr) ||
        cv_json_get_str(body, NULL, "password", true, CV_PASSWORD_MAX, &password, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!throttle_passes(api, name, peer, res))
        goto out;
    err = cv_people_login(api->mongo, name, password, &user, why, sizeof(why));
    if (err == CV_ERR_NOT_FOUND || err == CV_ERR_CONFLICT) {
        cv_log_warn("login refused for '%.64s' from %s: %s", name, peer, why);
        if (err == CV_ERR_NOT_FOUND)
            throttle_count(api, name, peer, true);
        unauthorized(res, false, why);
        goto out;
    }
    if (!err)
        throttle_count(api, name, peer, false);
    spec.expires_ms = cv_time_now_ms() + CV_SESSION_MS;
    if (err ||
        (err = cv_people_issue(api->mongo, name, &spec, token, token_id, csrf, why, sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    cv_time_format(spec.expires_ms, expires, sizeof(expires));
    snprintf(res->set_cookie, sizeof(res->set_cookie),
             SESSION_COOKIE "=%s; HttpOnly; SameSite=Strict; Path=/; Max-Age=%lld", token,
             (long long)(CV_SESSION_MS / 1000));
    res->status = 201;
    res->body = cJSON_CreateObject();
    cJSON_AddStringToObject(res->body, "token", token);
    cJSON_AddStringToObject(res->body, "csrf_token", csrf);
    cJSON_AddStringToObject(res->body, "expires_at", expires);
    cJSON_AddStringToObject(res->body, "user", name);
    cJSON_AddBoolToObject(res->body, "admin", cv_mongo_doc_bool(user, "admin", false));
out:
    bson_destroy(user);
    cJSON_Delete(body);
}

/* DELETE /sessions: ends the session the request came with. */
void cv_api_delete_session(cv_api *api, const char *id, const cv_http_request *req,
                           cv_http_response *res) {
    const cv_caller *who = cv_api_caller(req);
    char why[512];
    cv_err err;

    (void)id;
    if (!who->session) {
        cv_http_error(res, 409, "conflict", NULL,
                      "this request came with an API token, not a session: revoke it with "
                      "DELETE /api/v1/tokens/%s",
                      who->token_id);
        return;
    }
    if ((err = cv_people_revoke(api->mongo, api->people, who->user, NULL, who->digest, why,
                                sizeof(why))) &&
        err != CV_ERR_NOT_FOUND) {
        cv_api_internal_error(res, err, why);
        return;
    }
    snprintf(res->set_cookie, sizeof(res->set_cookie),
             SESSION_COOKIE "=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    res->status = 204;
}

/* GET /sessions/current (open): who the request's token belongs to, `user` null when it has
 * no valid one (the web interface asks this first, without a failed request); for a
 * session, its CSRF value, which the page reads back after a reload (another site's page
 * cannot read it: CORS is off unless configured). */
void cv_api_current_session(cv_api *api, const char *id, const cv_http_request *req,
                            cv_http_response *res) {
    cv_http_response refused = {0};
    cv_caller who = {0};
    bool known = cv_api_authenticate(api, req, false, &who, &refused);

    (void)id;
    if (!known && refused.status != 401) { /* the store did not answer: say so */
        res->status = refused.status;
        res->body = refused.body;
        return;
    }
    cJSON_Delete(refused.body);
    res->status = 200;
    res->body = cJSON_CreateObject();
    if (!known) {
        cJSON_AddNullToObject(res->body, "user");
        return;
    }
    cJSON_AddStringToObject(res->body, "user", who.user);
    cJSON_AddBoolToObject(res->body, "admin", who.admin);
    cJSON_AddBoolToObject(res->body, "session", who.session);
    cJSON_AddStringToObject(res->body, "scope", who.write ? "write" : "read");
    cJSON_AddStringToObject(res->body, "token_id", who.token_id);
    if (who.session)
        cJSON_AddStringToObject(res->body, "csrf_token", who.csrf);
    else
        cJSON_AddNullToObject(res->body, "csrf_token");
}

/* ---- API tokens ---------------------------------------------------------- */

/* A stored token as GET /tokens shows it: never its digest (the stored _id). */
static cJSON *token_view(const bson_t *doc) {
    static const char *const keep[] = {"id", "name", "scope", "created_at", NULL};
    int64_t expires = cv_mongo_doc_int(doc, "expires_ms", 0);
    char stamp[CV_TIME_RFC3339_LEN];
    cJSON *out = cJSON_CreateObject();

    for (int i = 0; out && keep[i]; i++) {
        const char *v = cv_mongo_doc_str(doc, keep[i]);
        cJSON_AddStringToObject(out, keep[i], v ? v : "");
    }
    if (out && expires > 0) {
        cv_time_format(expires, stamp, sizeof(stamp));
        cJSON_AddStringToObject(out, "expires_at", stamp);
    } else if (out) {
        cJSON_AddNullToObject(out, "expires_at");
    }
    return out;
}

/* POST /tokens {name, scope?, expires_in_days?}: a personal API token, shown once. */
void cv_api_create_token(cv_api *api, const char *id, const cv_http_request *req,
                         cv_http_response *res) {
    static const char *const fields[] = {"name", "scope", "expires_in_days", NULL};
    const cv_caller *who = cv_api_caller(req);
    char token[CV_TOKEN_LEN], token_id[CV_ID_LEN], why[512], stamp[CV_TIME_RFC3339_LEN];
    cJSON *body = cv_api_parse_body(req, res);
    const char *name, *scope = "write";
    int64_t days = 0, now = cv_time_now_ms();
    cv_token_spec spec = {0};
    cv_verr verr;
    cv_err err;

    (void)id;
    if (!body)
        return;
    if (cv_json_only(body, NULL, fields, "a token", &verr) ||
        cv_json_get_str(body, NULL, "name", true, 200, &name, &verr) ||
        cv_json_get_str(body, NULL, "scope", false, 16, &scope, &verr) ||
        cv_json_get_int(body, NULL, "expires_in_days", false, 1, TOKEN_DAYS_MAX, &days, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!scope)
        scope = "write";
    if (strcmp(scope, "read") != 0 && strcmp(scope, "write") != 0) {
        cv_verr_set(&verr, NULL, "scope", "must be \"read\" or \"write\", not \"%s\"", scope);
        cv_api_field_error(res, &verr);
        goto out;
    }
    spec.name = name;
    spec.write = strcmp(scope, "write") == 0;
    spec.expires_ms = days ? now + days * 86400 * INT64_C(1000) : 0;
    if ((err = cv_people_issue(api->mongo, who->user, &spec, token, token_id, NULL, why,
                               sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    res->status = 201;
    res->body = cJSON_CreateObject();
    cJSON_AddStringToObject(res->body, "id", token_id);
    cJSON_AddStringToObject(res->body, "name", name);
    cJSON_AddStringToObject(res->body, "scope", scope);
    cJSON_AddStringToObject(res->body, "token", token);
    cv_time_format(now, stamp, sizeof(stamp));
    cJSON_AddStringToObject(res->body, "created_at", stamp);
    if (spec.expires_ms) {
        cv_time_format(spec.expires_ms, stamp, sizeof(stamp));
        cJSON_AddStringToObject(res->body, "expires_at", stamp);
    } else {
        cJSON_AddNullToObject(res->body, "expires_at");
    }
    snprintf(res->location, sizeof(res->location), "/api/v1/tokens/%s", token_id);
out:
    cJSON_Delete(body);
}

/* GET /tokens: the caller's API tokens (not their sessions), oldest first. */
void cv_api_list_tokens(cv_api *api, const char *id, const cv_http_request *req,
                        cv_http_response *res) {
    const cv_caller *who = cv_api_caller(req);
    bson_t filter = BSON_INITIALIZER, sort = BSON_INITIALIZER;

    (void)id;
    BSON_APPEND_UTF8(&filter, "user", who->user);
    BSON_APPEND_UTF8(&filter, "kind", "api");
    BSON_APPEND_INT32(&sort, "created_at", 1);
    answer_list(api, CV_COLL_TOKENS, &filter, &sort, 1000, token_view, res);
    bson_destroy(&filter);
    bson_destroy(&sort);
}

/* DELETE /tokens/{id}: revokes one of the caller's API tokens at once. */
void cv_api_delete_token(cv_api *api, const char *id, const cv_http_request *req,
                         cv_http_response *res) {
    const cv_caller *who = cv_api_caller(req);
    char why[512];
    cv_err err = cv_id_valid(id) ? cv_people_revoke(api->mongo, api->people, who->user, id, NULL,
                                                    why, sizeof(why))
                                 : CV_ERR_NOT_FOUND;

    if (err == CV_ERR_NOT_FOUND) {
        cv_http_error(res, 404, "not_found", NULL, "no token with id '%s'", id);
        return;
    }
    if (err) {
        cv_api_internal_error(res, err, why);
        return;
    }
    res->status = 204;
}

/* ---- users ----------------------------------------------------------------- */

/* A stored user as the API shows them: never the password's hash. */
static cJSON *user_view(const bson_t *doc) {
    cJSON *all = cv_api_doc_to_json(doc), *out = cJSON_CreateObject(), *v;
    static const char *const keep[] = {"display_name", "admin",      "disabled", "created_at",
                                       "updated_at",   "created_by", NULL};

    if (out && all && (v = cJSON_DetachItemFromObjectCaseSensitive(all, "id")))
        cJSON_AddItemToObject(out, "name", v);
    for (int i = 0; out && all && keep[i]; i++)
        if ((v = cJSON_DetachItemFromObjectCaseSensitive(all, keep[i])))
            cJSON_AddItemToObject(out, keep[i], v);
    cJSON_Delete(all);
    return out;
}

/* The user named `name` when the caller may see them (an administrator, or
 * themselves): else 404, as for no such user. */
static bson_t *load_user(cv_api *api, const cv_caller *who, const char *name,
                         cv_http_response *res) {
    bson_t *doc = NULL;
    char why[512];
    cv_err err = CV_ERR_NOT_FOUND;

    if (cv_people_name_ok(name) && (who->admin || strcmp(who->user, name) == 0))
        err = cv_mongo_find_id(api->mongo, CV_COLL_USERS, name, &doc, why, sizeof(why));
    if (err == CV_ERR_NOT_FOUND)
        cv_http_error(res, 404, "not_found", NULL, "no user named '%s'", name);
    else if (err)
        cv_api_internal_error(res, err, why);
    return err ? NULL : doc;
}

/* Reads an optional password member: CV_PASSWORD_MIN to CV_PASSWORD_MAX characters. */
static cv_err get_password(const cJSON *body, const char **password, cv_verr *verr) {
    cv_err err = cv_json_get_str(body, NULL, "password", false, CV_PASSWORD_MAX, password, verr);

    if (!err && *password && strlen(*password) < CV_PASSWORD_MIN)
        err = cv_verr_set(verr, NULL, "password", "must have at least %d characters",
                          CV_PASSWORD_MIN);
    return err;
}

/* POST /users {name, display_name?, password?, admin?} (administrators): a
 * password left out is made here and shown once. */
void cv_api_create_user(cv_api *api, const char *id, const cv_http_request *req,
                        cv_http_response *res) {
    static const char *const fields[] = {"name", "display_name", "password", "admin", NULL};
    const cv_caller *who = cv_api_caller(req);
    cJSON *body = cv_api_parse_body(req, res);
    const char *name, *display = NULL, *password = NULL;
    char made[32] = "", why[512];
    bool admin = false;
    bson_t *doc = NULL;
    cv_verr verr;
    cv_err err;

    (void)id;
    if (!body)
        return;
    if (cv_json_only(body, NULL, fields, "a user", &verr) ||
        cv_json_get_str(body, NULL, "name", true, CV_USER_NAME_MAX, &name, &verr) ||
        cv_json_get_str(body, NULL, "display_name", false, 200, &display, &verr) ||
        get_password(body, &password, &verr) ||
        cv_json_get_bool(body, NULL, "admin", false, &admin, &verr)) {
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!cv_people_name_ok(name)) {
        cv_verr_set(&verr, NULL, "name", "must be " CV_USER_NAME_RULE);
        cv_api_field_error(res, &verr);
        goto out;
    }
    if (!password) {
        cv_password_generate(made);
        password = made;
    }
    err =
        cv_people_add_user(api->mongo, name, display, password, admin, who->user, why, sizeof(why));
    if (err == CV_ERR_CONFLICT) {
        cv_http_error(res, 409, "conflict", "name", "%s", why);
        goto out;
    }
    if (err || (err = cv_mongo_find_id(api->mongo, CV_COLL_USERS, name, &doc, why, sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    res->status = 201;
    res->body = user_view(doc);
    if (made[0])
        cJSON_AddStringToObject(res->body, "password", made);
    snprintf(res->location, sizeof(res->location), "/api/v1/users/%s", name);
out:
    bson_destroy(doc);
    cJSON_Delete(body);
}

/* GET /users (administrators), by name. */
void cv_api_list_users(cv_api *api, const char *id, const cv_http_request *req,
                       cv_http_response *res) {
    bson_t filter = BSON_INITIALIZER, sort = BSON_INITIALIZER;

    (void)id;
    (void)req;
    BSON_APPEND_INT32(&sort, "_id", 1);
    answer_list(api, CV_COLL_USERS, &filter, &sort, 10000, user_view, res);
    bson_destroy(&filter);
    bson_destroy(&sort);
}

/* GET /users/{name}: an administrator sees anyone, a user themselves. */
void cv_api_get_user(cv_api *api, const char *id, const cv_http_request *req,
                     cv_http_response *res) {
    bson_t *doc = load_user(api, cv_api_caller(req), id, res);

    if (!doc)
        return;
    res->status = 200;
    res->body = user_view(doc);
    bson_destroy(doc);
}

/* What a PATCH of a user may change, and who may change it. */
typedef struct user_change {
    const char *display_name, *password;
    bool admin, disabled;
    bool set_admin, set_disabled;
} user_change;

static bool read_user_change(const cJSON *body, const cv_caller *who, const char *name,
                             user_change *c, cv_http_response *res) {
    static const char *const fields[] = {"display_name", "password", "admin", "disabled", NULL};
    bool self = strcmp(who->user, name) == 0;
    cv_verr verr;

    memset(c, 0, sizeof(*c));
    if (cv_json_only(body, NULL, fields, "a user change", &verr) ||
        cv_json_get_str(body, NULL, "display_name", false, 200, &c->display_name, &verr) ||
        get_password(body, &c->password, &verr) ||
        cv_json_get_bool(body, NULL, "admin", false, &c->admin, &verr) ||
        cv_json_get_bool(body, NULL, "disabled", false, &c->disabled, &verr)) {
        cv_api_field_error(res, &verr);
        return false;
    }
    c->set_admin = cJSON_HasObjectItem(body, "admin");
    c->set_disabled = cJSON_HasObjectItem(body, "disabled");
    if ((c->set_admin || c->set_disabled) && !who->admin) {
        cv_http_error(res, 403, "forbidden", NULL,
                      "only an administrator changes who is an administrator or disabled");
        return false;
    }
    if (self && ((c->set_admin && !c->admin) || (c->set_disabled && c->disabled))) {
        cv_http_error(res, 409, "conflict", NULL,
                      "administrators do not demote or disable themselves: ask another one");
        return false;
    }
    return true;
}

/* PATCH /users/{name}: display name and password (the user or an
 * administrator), admin and disabled (administrators). Disabling a user
 * revokes their tokens. */
void cv_api_patch_user(cv_api *api, const char *id, const cv_http_request *req,
                       cv_http_response *res) {
    const cv_caller *who = cv_api_caller(req);
    bson_t *doc = load_user(api, who, id, res), filter = BSON_INITIALIZER;
    bson_t update = BSON_INITIALIZER, set;
    char hash[CV_PASSWORD_HASH_LEN], why[512];
    cJSON *body = NULL;
    user_change c;
    cv_err err = CV_OK;

    if (!doc || !(body = cv_api_parse_body(req, res)) || !read_user_change(body, who, id, &c, res))
        goto out;
    if (c.password && (err = cv_password_hash(c.password, hash, why, sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    BSON_APPEND_UTF8(&filter, "_id", id);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    if (c.display_name)
        BSON_APPEND_UTF8(&set, "display_name", c.display_name);
    if (c.password)
        BSON_APPEND_UTF8(&set, "password_hash", hash);
    if (c.set_admin)
        BSON_APPEND_BOOL(&set, "admin", c.admin);
    if (c.set_disabled)
        BSON_APPEND_BOOL(&set, "disabled", c.disabled);
    cv_mongo_append_time(&set, "updated_at", cv_time_now_ms());
    bson_append_document_end(&update, &set);
    if ((err = cv_mongo_update(api->mongo, CV_COLL_USERS, &filter, &update, false, NULL, why,
                               sizeof(why))) ||
        (c.set_disabled && c.disabled &&
         (err = cv_people_revoke_all(api->mongo, api->people, id, why, sizeof(why))))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    cv_cache_drop(api->people, CV_COLL_USERS, id); /* admin or disabled: seen at once */
    bson_destroy(doc);
    doc = load_user(api, who, id, res);
    if (doc) {
        res->status = 200;
        res->body = user_view(doc);
    }
out:
    bson_destroy(doc);
    bson_destroy(&filter);
    bson_destroy(&update);
    cJSON_Delete(body);
}

/* DELETE /users/{name} (administrators, not themselves): the user and their
 * tokens go. */
void cv_api_delete_user(cv_api *api, const char *id, const cv_http_request *req,
                        cv_http_response *res) {
    const cv_caller *who = cv_api_caller(req);
    bson_t filter = BSON_INITIALIZER;
    int64_t deleted = 0;
    char why[512];
    cv_err err = CV_OK;

    if (strcmp(who->user, id) == 0) {
        cv_http_error(res, 409, "conflict", NULL,
                      "administrators do not delete themselves: ask another one");
        goto out;
    }
    BSON_APPEND_UTF8(&filter, "_id", id);
    if (!cv_people_name_ok(id) || (!(err = cv_mongo_delete_many(api->mongo, CV_COLL_USERS, &filter,
                                                                &deleted, why, sizeof(why))) &&
                                   deleted == 0)) {
        cv_http_error(res, 404, "not_found", NULL, "no user named '%s'", id);
        goto out;
    }
    if (err || (err = cv_people_revoke_all(api->mongo, api->people, id, why, sizeof(why)))) {
        cv_api_internal_error(res, err, why);
        goto out;
    }
    res->status = 204;
out:
    bson_destroy(&filter);
}
