/*
 * cv_web.c - the web interface's files, read once and served from memory.
 */
#include "cv_web.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define WEB_FILES_MAX 256
#define WEB_FILE_MAX (16u << 20)  /* bytes of one file */
#define WEB_TOTAL_MAX (64u << 20) /* bytes of the whole build */
#define WEB_NAME_MAX 128
#define CACHE_PAGE "no-cache"
#define CACHE_ASSET "public, max-age=31536000, immutable"

typedef struct web_file {
    char name[WEB_NAME_MAX]; /* "index.html", or an asset's name (without "assets/") */
    const char *type;
    char *data, *gz; /* gz: its gzip copy, or NULL */
    size_t len, gz_len;
} web_file;

struct cv_web {
    web_file files[WEB_FILES_MAX];
    size_t n;
    size_t total;
};

static const char *type_of(const char *name) {
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".woff2", "font/woff2"},
        {".json", "application/json"},
        {".map", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');

    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* Reads the whole of path into *data (NUL-terminated, *len without it). */
static cv_err slurp(const char *path, char **data, size_t *len, char *errbuf, size_t errlen) {
    FILE *f = fopen(path, "rb");
    struct stat st;
    cv_err err = CV_OK;

    *data = NULL;
    if (!f)
        return cv_err_set(errbuf, errlen, CV_ERR_NOT_FOUND, "%s: cannot open it", path);
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > WEB_FILE_MAX) {
        err = cv_err_set(errbuf, errlen, CV_ERR_INVALID, "%s: not a file of at most %u bytes", path,
                         WEB_FILE_MAX);
        goto out;
    }
    *len = (size_t)st.st_size;
    if (!(*data = malloc(*len + 1))) {
        err = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (fread(*data, 1, *len, f) != *len) {
        err = cv_err_set(errbuf, errlen, CV_ERR_INVALID, "%s: short read", path);
        goto out;
    }
    (*data)[*len] = '\0';
out:
    if (err) {
        free(*data);
        *data = NULL;
    }
    fclose(f);
    return err;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Adds dir/name as `name` (and dir/name.gz when there is one). */
static cv_err add_file(cv_web *w, const char *dir, const char *name, char *errbuf, size_t errlen) {
    char path[PATH_MAX];
    web_file *f;
    cv_err err;

    if (w->n == WEB_FILES_MAX)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "%s: more than %d files", dir,
                          WEB_FILES_MAX);
    if (strlen(name) >= WEB_NAME_MAX)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "%s/%s: a name of %d bytes or more", dir,
                          name, WEB_NAME_MAX);
    f = &w->files[w->n];
    snprintf(f->name, sizeof(f->name), "%s", name);
    f->type = type_of(name);
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "%s: too long a path", dir);
    if ((err = slurp(path, &f->data, &f->len, errbuf, errlen)))
        return err;
    w->n++;
    if (snprintf(path, sizeof(path), "%s/%s.gz", dir, name) < (int)sizeof(path) &&
        access(path, F_OK) == 0 && (err = slurp(path, &f->gz, &f->gz_len, errbuf, errlen)))
        return err;
    w->total += f->len + f->gz_len;
    if (w->total > WEB_TOTAL_MAX)
        return cv_err_set(errbuf, errlen, CV_ERR_INVALID, "%s: more than %u bytes in all", dir,
                          WEB_TOTAL_MAX);
    return CV_OK;
}

/* The folder the build is in: dir, or the first candidate beside the executable. */
static cv_err find_dir(const char *dir, char out[PATH_MAX], char *errbuf, size_t errlen) {
    static const char *const beside[] = {"web", "../share/convutell/web"};
    char exe[PATH_MAX - 32], index[PATH_MAX + 16];
    ssize_t n;
    char *slash;

    if (dir[0]) {
        snprintf(out, PATH_MAX, "%s", dir);
        return CV_OK;
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n >= (ssize_t)sizeof(exe) - 1)
        n = 0; /* too long to be sure of */
    if (n <= 0)
        return cv_err_set(errbuf, errlen, CV_ERR_NOT_FOUND,
                          "no CONVUTELL_WEB_DIR, and the executable's folder is unknown");
    exe[n] = '\0';
    if ((slash = strrchr(exe, '/')))
        *slash = '\0';
    for (size_t i = 0; i < sizeof(beside) / sizeof(beside[0]); i++) {
        snprintf(out, PATH_MAX, "%s/%s", exe, beside[i]);
        snprintf(index, sizeof(index), "%s/index.html", out);
        if (access(index, R_OK) == 0)
            return CV_OK;
    }
    return cv_err_set(errbuf, errlen, CV_ERR_NOT_FOUND,
                      "no web build beside the executable (%s/web): run `make web`, or set "
                      "CONVUTELL_WEB_DIR",
                      exe);
}

cv_err cv_web_load(const char *dir, cv_web **out, char *errbuf, size_t errlen) {
    char root[PATH_MAX], assets[PATH_MAX + 8];
    cv_web *w = calloc(1, sizeof(*w));
    struct dirent *e;
    DIR *d = NULL;
    cv_err err;

    *out = NULL;
    if (!w)
        return cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
    if ((err = find_dir(dir, root, errbuf, errlen)) ||
        (err = add_file(w, root, "index.html", errbuf, errlen)))
        goto out;
    snprintf(assets, sizeof(assets), "%s/assets", root);
    if (!(d = opendir(assets)))
        goto out; /* a page with no assets of its own */
    while (!err && (e = readdir(d)))
        if (e->d_name[0] != '.' && !ends_with(e->d_name, ".gz"))
            err = add_file(w, assets, e->d_name, errbuf, errlen);
out:
    if (d)
        closedir(d);
    if (err)
        cv_web_destroy(w);
    else
        *out = w;
    return err;
}

void cv_web_destroy(cv_web *w) {
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->files[i].data);
        free(w->files[i].gz);
    }
    free(w);
}

bool cv_web_path(const char *path) {
    return strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0 ||
           strncmp(path, "/assets/", 8) == 0;
}

static const web_file *find(const cv_web *w, const char *name) {
    for (size_t i = 0; w && i < w->n; i++)
        if (strcmp(w->files[i].name, name) == 0)
            return &w->files[i];
    return NULL;
}

/* Whether the request's Accept-Encoding takes gzip (and does not refuse it with q=0). */
static bool takes_gzip(const cv_http_request *req) {
    const char *accept = cv_http_header(req, "Accept-Encoding"), *at;

    if (!accept || !(at = strstr(accept, "gzip")))
        return false;
    at += 4;
    while (*at == ' ')
        at++;
    if (strncmp(at, ";q=0", 4) != 0)
        return true;
    at += 4 + (at[4] == '.');
    while (*at == '0')
        at++;
    return *at >= '1' && *at <= '9'; /* q=0.5 takes it, q=0 and q=0.000 refuse it */
}

void cv_web_answer(const cv_web *w, const cv_http_request *req, cv_http_response *res) {
    bool page = strncmp(req->path, "/assets/", 8) != 0;
    const char *name = page ? "index.html" : req->path + 8;
    const web_file *f;

    if (strcmp(req->method, "GET") != 0) {
        snprintf(res->allow, sizeof(res->allow), "GET, HEAD");
        cv_http_error(res, 405, "method_not_allowed", NULL, "%s %s is not supported; use GET, HEAD",
                      req->method, req->path);
        return;
    }
    if (!(f = strchr(name, '/') ? NULL : find(w, name))) {
        if (!w)
            cv_http_error(res, 404, "not_found", NULL,
                          "this API runs without its web interface: build it with `make web`, "
                          "or set CONVUTELL_WEB_DIR");
        else
            cv_http_error(res, 404, "not_found", NULL, "no file %s in the web interface",
                          req->path);
        return;
    }
    res->status = 200;
    res->file = (cv_http_file){.data = f->data,
                               .len = f->len,
                               .content_type = f->type,
                               .cache_control = page ? CACHE_PAGE : CACHE_ASSET,
                               .vary_encoding = f->gz != NULL};
    if (f->gz && takes_gzip(req)) {
        res->file.data = f->gz;
        res->file.len = f->gz_len;
        res->file.encoding = "gzip";
    }
}
