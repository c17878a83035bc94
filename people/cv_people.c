/*
 * cv_people.c - users and tokens in the store (see cv_people.h).
 */
#include "cv_people.h"

#include "cv_store.h"
#include "cv_time.h"

#include <stdio.h>
#include <string.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

bool cv_people_name_ok(const char *name) {
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > CV_USER_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

cv_err cv_people_add_user(cv_mongo *m, const char *name, const char *display_name,
                          const char *password, bool admin, const char *by, char *errbuf,
                          size_t errlen) {
    char hash[CV_PASSWORD_HASH_LEN];
    bson_t doc = BSON_INITIALIZER;
    int64_t now = cv_time_now_ms();
    cv_err err;

    if ((err = cv_password_hash(password, hash, errbuf, errlen)))
        return err;
    BSON_APPEND_UTF8(&doc, "_id", name);
    BSON_APPEND_UTF8(&doc, "display_name", display_name && *display_name ? display_name : name);
    BSON_APPEND_UTF8(&doc, "password_hash", hash);
    BSON_APPEND_BOOL(&doc, "admin", admin);
    BSON_APPEND_BOOL(&doc, "disabled", false);
    cv_mongo_append_time(&doc, "created_at", now);
    cv_mongo_append_time(&doc, "updated_at", now);
    BSON_APPEND_UTF8(&doc, "created_by", by ? by : "");
    err = cv_mongo_insert(m, CV_COLL_USERS, &doc, errbuf, errlen);
    if (err == CV_ERR_CONFLICT)
        cv_err_set(errbuf, errlen, err, "a user named %s exists already", name);
    bson_destroy(&doc);
    return err;
}

/* Stores a new hash of password for user (its limits changed). */
static void rehash(cv_mongo *m, const char *name, const char *password) {
    char hash[CV_PASSWORD_HASH_LEN], why[256];
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;

    if (cv_password_hash(password, hash, why, sizeof(why)) == CV_OK) {
        BSON_APPEND_UTF8(&filter, "_id", name);
        BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
        BSON_APPEND_UTF8(&set, "password_hash", hash);
        bson_append_document_end(&update, &set);
        cv_mongo_update(m, CV_COLL_USERS, &filter, &update, false, NULL, why, sizeof(why));
    }
    bson_destroy(&filter);
    bson_destroy(&update);
}

cv_err cv_people_login(cv_mongo *m, const char *name, const char *password, bson_t **user,
                       char *errbuf, size_t errlen) {
    /* A hash of nothing: an unknown name costs what a wrong password does, so
     * the time of an answer does not tell which names exist. */
    static const char decoy[] = "$argon2id$v=19$m=262144,t=3,p=1$c29tZXNhbHRzb21lc2FsdA$"
                                "dGhpcyBpcyBub3QgYSByZWFsIGhhc2ggb2YgYW55dGhpbmc";
    bson_t *doc = NULL;
    const char *hash;
    cv_err err;

    *user = NULL;
    if (!cv_people_name_ok(name)) /* no user can have it: nothing to hide */
        return cv_err_set(errbuf, errlen, CV_ERR_NOT_FOUND, "the name or the password is wrong");
    err = cv_mongo_find_id(m, CV_COLL_USERS, name, &doc, errbuf, errlen);
    if (err && err != CV_ERR_NOT_FOUND)
        return err;
    hash = doc ? cv_mongo_doc_str(doc, "password_hash") : decoy;
    if (!cv_password_verify(hash ? hash : decoy, password) || !doc) {
        bson_destroy(doc);
        return cv_err_set(errbuf, errlen, CV_ERR_NOT_FOUND, "the name or the password is wrong");
    }
    if (cv_mongo_doc_bool(doc, "disabled", false)) {
        bson_destroy(doc);
        return cv_err_set(errbuf, errlen, CV_ERR_CONFLICT, "user %s is disabled", name);
    }
    if (cv_password_needs_rehash(hash))
        rehash(m, name, password);
    *user = doc;
    return CV_OK;
}

cv_err cv_people_issue(cv_mongo *m, const char *user, const cv_token_spec *spec,
                       char token[CV_TOKEN_LEN], char id[CV_ID_LEN], char csrf[CV_TOKEN_LEN],
                       char *errbuf, size_t errlen) {
    char digest[CV_DIGEST_LEN];
    bson_t doc = BSON_INITIALIZER;
    cv_err err;

    cv_token_new(spec->session ? CV_TOKEN_PREFIX_SESSION : CV_TOKEN_PREFIX_API, token);
    cv_token_digest(token, digest);
    if (cv_id_new(id, CV_ID_LEN) != 0)
        return cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot make an id");
    BSON_APPEND_UTF8(&doc, "_id", digest);
    BSON_APPEND_UTF8(&doc, "id", id);
    BSON_APPEND_UTF8(&doc, "user", user);
    BSON_APPEND_UTF8(&doc, "kind", spec->session ? "session" : "api");
    BSON_APPEND_UTF8(&doc, "name", spec->name ? spec->name : "");
    BSON_APPEND_UTF8(&doc, "scope", spec->session || spec->write ? "write" : "read");
    BSON_APPEND_INT64(&doc, "expires_ms", spec->expires_ms);
    cv_mongo_append_time(&doc, "created_at", cv_time_now_ms());
    if (spec->session) {
        cv_token_new("", csrf);
        BSON_APPEND_UTF8(&doc, "csrf", csrf);
    }
    err = cv_mongo_insert(m, CV_COLL_TOKENS, &doc, errbuf, errlen);
    bson_destroy(&doc);
    return err;
}

/* Copies s into a fixed field ("" for NULL), cut to its size. */
static void copy_field(char *dst, size_t size, const char *s) {
    snprintf(dst, size, "%s", s ? s : "");
}

/* A document by id, through cache when there is one. */
static cv_err find(cv_mongo *m, cv_cache *cache, const char *collection, const char *id,
                   bson_t **out, char *errbuf, size_t errlen) {
    return cache ? cv_cache_find_id(cache, m, collection, id, out, errbuf, errlen)
                 : cv_mongo_find_id(m, collection, id, out, errbuf, errlen);
}

cv_err cv_people_resolve(cv_mongo *m, cv_cache *cache, const char *token, int64_t now_ms,
                         cv_caller *who, char *errbuf, size_t errlen) {
    bson_t *tok = NULL, *user = NULL;
    int64_t expires;
    cv_err err;

    memset(who, 0, sizeof(*who));
    cv_token_digest(token, who->digest);
    if ((err = find(m, cache, CV_COLL_TOKENS, who->digest, &tok, errbuf, errlen))) {
        if (err == CV_ERR_NOT_FOUND)
            cv_err_set(errbuf, errlen, err, "the token is not valid (unknown or revoked)");
        return err;
    }
    expires = cv_mongo_doc_int(tok, "expires_ms", 0);
    if (expires > 0 && now_ms >= expires) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOT_FOUND, "the token has expired");
        goto out;
    }
    copy_field(who->user, sizeof(who->user), cv_mongo_doc_str(tok, "user"));
    copy_field(who->token_id, sizeof(who->token_id), cv_mongo_doc_str(tok, "id"));
    copy_field(who->csrf, sizeof(who->csrf), cv_mongo_doc_str(tok, "csrf"));
    who->session =
        strcmp(cv_mongo_doc_str(tok, "kind") ? cv_mongo_doc_str(tok, "kind") : "", "session") == 0;
    who->write =
        strcmp(cv_mongo_doc_str(tok, "scope") ? cv_mongo_doc_str(tok, "scope") : "", "write") == 0;
    if ((err = find(m, cache, CV_COLL_USERS, who->user, &user, errbuf, errlen))) {
        if (err == CV_ERR_NOT_FOUND)
            cv_err_set(errbuf, errlen, err, "the token's user no longer exists");
        goto out;
    }
    if (cv_mongo_doc_bool(user, "disabled", false)) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOT_FOUND, "user %s is disabled", who->user);
        goto out;
    }
    who->admin = cv_mongo_doc_bool(user, "admin", false);
out:
    bson_destroy(tok);
    bson_destroy(user);
    return err;
}

/* The digests (_id) of the tokens matching filter, each dropped from cache. */
static cv_err drop_tokens(cv_mongo *m, cv_cache *cache, const bson_t *filter, int64_t *found,
                          char *errbuf, size_t errlen) {
    bson_t *docs = NULL, doc;
    bson_iter_t it;
    cv_err err = cv_mongo_find(m, CV_COLL_TOKENS, filter, NULL, 0, &docs, errbuf, errlen);

    *found = 0;
    if (err)
        return err;
    CV_MONGO_EACH_DOC(docs, it, doc) {
        const char *digest = cv_mongo_doc_str(&doc, "_id");
        if (cache && digest)
            cv_cache_drop(cache, CV_COLL_TOKENS, digest);
        (*found)++;
    }
    bson_destroy(docs);
    return CV_OK;
}

cv_err cv_people_revoke(cv_mongo *m, cv_cache *cache, const char *user, const char *id,
                        const char *digest, char *errbuf, size_t errlen) {
    bson_t filter = BSON_INITIALIZER;
    int64_t found = 0;
    cv_err err;

    BSON_APPEND_UTF8(&filter, "user", user);
    if (id)
        BSON_APPEND_UTF8(&filter, "id", id);
    if (digest)
        BSON_APPEND_UTF8(&filter, "_id", digest);
    if (!(err = drop_tokens(m, cache, &filter, &found, errbuf, errlen)) && found > 0)
        err = cv_mongo_delete_many(m, CV_COLL_TOKENS, &filter, NULL, errbuf, errlen);
    bson_destroy(&filter);
    if (!err && found == 0)
        err = cv_err_set(errbuf, errlen, CV_ERR_NOT_FOUND, "token %s does not exist", id ? id : "");
    return err;
}

cv_err cv_people_revoke_all(cv_mongo *m, cv_cache *cache, const char *user, char *errbuf,
                            size_t errlen) {
    bson_t filter = BSON_INITIALIZER;
    int64_t found;
    cv_err err;

    if (cache)
        cv_cache_drop(cache, CV_COLL_USERS, user);
    BSON_APPEND_UTF8(&filter, "user", user);
    if (!(err = drop_tokens(m, cache, &filter, &found, errbuf, errlen)))
        err = cv_mongo_delete_many(m, CV_COLL_TOKENS, &filter, NULL, errbuf, errlen);
    bson_destroy(&filter);
    return err;
}
