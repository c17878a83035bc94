/*
 * cv_admin.c - `convutell admin` (see cv_admin.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "cv_admin.h"

#include "cv_credential.h"
#include "cv_people.h"
#include "cv_secret.h"
#include "cv_store.h"

#include <fcntl.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

typedef struct create_args {
    const char *name, *display_name, *token_file;
    bool admin, password_stdin, exists_ok;
} create_args;

static int usage(void) {
    fprintf(stderr, "usage: convutell admin create-user --name NAME [--display-name TEXT] "
                    "[--admin]\n"
                    "                                   [--password-stdin] [--token-file PATH] "
                    "[--exists-ok]\n"
                    "       convutell admin rotate-secrets\n");
    return 2;
}

static bool parse(int argc, char **argv, create_args *a) {
    memset(a, 0, sizeof(*a));
    for (int i = 2; i < argc; i++) {
        const char *opt = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(opt, "--admin") == 0)
            a->admin = true;
        else if (strcmp(opt, "--password-stdin") == 0)
            a->password_stdin = true;
        else if (strcmp(opt, "--exists-ok") == 0)
            a->exists_ok = true;
        else if (strcmp(opt, "--name") == 0 && next)
            a->name = argv[++i];
        else if (strcmp(opt, "--display-name") == 0 && next)
            a->display_name = argv[++i];
        else if (strcmp(opt, "--token-file") == 0 && next)
            a->token_file = argv[++i];
        else
            return false;
    }
    return a->name != NULL;
}

/* The first line of stdin, without its newline, into out. */
static bool read_password(char *out, size_t outlen) {
    size_t n;

    if (!fgets(out, (int)outlen, stdin))
        return false;
    n = strcspn(out, "\r\n");
    out[n] = '\0';
    return true;
}

/* Writes token and a newline to path, readable by its owner only. */
static bool write_token(const char *path, const char *token) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = strlen(token);
    bool ok;

    if (fd < 0)
        return false;
    ok = fchmod(fd, 0600) == 0 && write(fd, token, len) == (ssize_t)len && write(fd, "\n", 1) == 1;
    return close(fd) == 0 && ok;
}

static int create_user(cv_mongo *m, const create_args *a) {
    char password[CV_PASSWORD_MAX + 2] = "", token[CV_TOKEN_LEN], id[CV_ID_LEN], why[512];
    cv_token_spec spec = {.name = "convutell admin", .write = true};
    bool made = false;
    cv_err err;

    if (!cv_people_name_ok(a->name)) {
        fprintf(stderr, "convutell admin: --name must be " CV_USER_NAME_RULE "\n");
        return 2;
    }
    if (a->password_stdin) {
        if (!read_password(password, sizeof(password)) || strlen(password) < CV_PASSWORD_MIN ||
            strlen(password) > CV_PASSWORD_MAX) {
            fprintf(stderr,
                    "convutell admin: the password on stdin must have %d to %d "
                    "characters\n",
                    CV_PASSWORD_MIN, CV_PASSWORD_MAX);
            return 2;
        }
    } else {
        cv_password_generate(password);
        made = true;
    }
    err = cv_people_add_user(m, a->name, a->display_name, password, a->admin, "convutell admin",
                             why, sizeof(why));
    if (err == CV_ERR_CONFLICT && a->exists_ok) {
        printf("user %s exists already; kept as it is\n", a->name);
        made = false;
    } else if (err) {
        fprintf(stderr, "convutell admin: %s\n", why);
        return 1;
    } else {
        printf("user %s created%s\n", a->name, a->admin ? " (administrator)" : "");
    }
    if (made)
        printf("password (shown once): %s\n", password);
    if (!a->token_file)
        return 0;
    if ((err = cv_people_issue(m, a->name, &spec, token, id, NULL, why, sizeof(why)))) {
        fprintf(stderr, "convutell admin: no token: %s\n", why);
        return 1;
    }
    if (!write_token(a->token_file, token)) {
        fprintf(stderr, "convutell admin: cannot write %s\n", a->token_file);
        return 1;
    }
    printf("API token %s written to %s (mode 0600)\n", id, a->token_file);
    return 0;
}

/* What a rotation did. */
typedef struct rotation {
    long total, resealed, current, changed, unreadable;
} rotation;

/* What holds a sealed secret: a collection, the field, and what a document is called. */
typedef struct sealed_kind {
    const char *collection, *field, *noun;
} sealed_kind;

static const sealed_kind sealed_kinds[] = {
    {CV_COLL_CONNECTIONS, "odbc_sealed", "connection"}, /* connection strings */
    {CV_COLL_WEBHOOKS, "secret_sealed", "webhook"},     /* webhooks' signing secrets */
};

/* Re-seals one document's secret under the current key if an old one
 * sealed it; counts what it found. */
static void rotate_one(const cv_config *cfg, cv_mongo *m, const sealed_kind *k, const bson_t *conn,
                       rotation *r) {
    const unsigned char(*old)[CV_SECRET_KEY_LEN] =
        (const unsigned char(*)[CV_SECRET_KEY_LEN])cfg->old_keys;
    const char *id = cv_mongo_doc_str(conn, "_id"), *sealed = cv_mongo_doc_str(conn, k->field);
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set;
    char *plain = NULL, *resealed = NULL, why[256];
    int64_t matched = 0;
    int by = -1;

    r->total++;
    if (!id || !sealed ||
        cv_secret_open_any(cfg->secret_key, old, cfg->n_old_keys, id, sealed, &plain, &by, why,
                           sizeof(why))) {
        fprintf(stderr, "%s %s: %s\n", k->noun, id ? id : "?", sealed ? why : "no sealed secret");
        r->unreadable++;
        goto out;
    }
    if (by == 0) {
        r->current++;
        goto out;
    }
    if (cv_secret_seal(cfg->secret_key, id, plain, &resealed, why, sizeof(why))) {
        fprintf(stderr, "%s %s: %s\n", k->noun, id, why);
        r->unreadable++;
        goto out;
    }
    /* Only over what was read: a document changed meanwhile is left alone. */
    BSON_APPEND_UTF8(&filter, "_id", id);
    BSON_APPEND_UTF8(&filter, k->field, sealed);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_UTF8(&set, k->field, resealed);
    bson_append_document_end(&update, &set);
    if (cv_mongo_update(m, k->collection, &filter, &update, false, &matched, why, sizeof(why))) {
        fprintf(stderr, "%s %s: %s\n", k->noun, id, why);
        r->unreadable++;
    } else if (matched == 0) {
        r->changed++;
    } else {
        r->resealed++;
    }
out:
    if (plain)
        explicit_bzero(plain, strlen(plain));
    free(plain);
    free(resealed);
    bson_destroy(&filter);
    bson_destroy(&update);
}

/* convutell admin rotate-secrets: every connection's string and every
 * webhook's secret sealed under the current key. Exit 0 when none is left
 * under another. */
static int rotate_secrets(const cv_config *cfg, cv_mongo *m) {
    bool left = false;
    char why[512];

    if (cv_config_require_secret(cfg, "rotation", why, sizeof(why))) {
        fprintf(stderr, "convutell admin: %s\n", why);
        return 78;
    }
    for (size_t i = 0; i < sizeof(sealed_kinds) / sizeof(sealed_kinds[0]); i++) {
        const sealed_kind *k = &sealed_kinds[i];
        bson_t *all = NULL, filter = BSON_INITIALIZER, sort = BSON_INITIALIZER, doc;
        rotation r = {0};
        bson_iter_t it;

        BSON_APPEND_INT32(&sort, "_id", 1);
        if (cv_mongo_find(m, k->collection, &filter, &sort, 0, &all, why, sizeof(why))) {
            fprintf(stderr, "convutell admin: %s\n", why);
            return 1;
        }
        CV_MONGO_EACH_DOC(all, it, doc) {
            rotate_one(cfg, m, k, &doc, &r);
        }
        bson_destroy(all);
        printf("%ss: %ld; re-sealed under the current key: %ld; already under it: %ld; "
               "changed meanwhile (run again): %ld; unreadable with the keys given: %ld\n",
               k->noun, r.total, r.resealed, r.current, r.changed, r.unreadable);
        left = left || r.unreadable || r.changed;
    }
    return left ? 1 : 0;
}

int cv_admin_main(const cv_config *cfg, int argc, char **argv) {
    create_args a;
    char why[512];
    bool rotate = argc == 2 && strcmp(argv[1], "rotate-secrets") == 0;
    cv_mongo *m;
    int rc;

    if (!rotate && (argc < 2 || strcmp(argv[1], "create-user") != 0 || !parse(argc, argv, &a)))
        return usage();
    if (cv_credential_init(why, sizeof(why)) != CV_OK ||
        !(m = cv_mongo_new(cfg->mongo_uri, cfg->mongo_db, "convutell-admin", why, sizeof(why)))) {
        fprintf(stderr, "convutell admin: %s\n", why);
        return 1;
    }
    rc = rotate ? rotate_secrets(cfg, m) : create_user(m, &a);
    cv_mongo_destroy(m);
    return rc;
}
