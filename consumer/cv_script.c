/*
 * cv_script.c - the sandbox a Python job runs in (see cv_script.h).
 *
 * Everything the child needs (argument and environment arrays, the user to
 * switch to, the folder) is prepared before fork(): the worker has other
 * threads (librdkafka's, the MongoDB pool's), so between fork() and execve()
 * the child calls only async-signal-safe functions. The parent reads both
 * output pipes with poll(), splits lines into fixed buffers (memory does not
 * grow with the output), enforces the wall-clock limit and the stop request
 * on the whole process group, and removes the folder at the end.
 */
#define _GNU_SOURCE /* close_range, nftw's FTW_DEPTH */
#include "cv_script.h"

#include "cv_time.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cv_banned.h" /* last: it renames what the headers above declare */

#define DEFAULT(value, fallback) ((value) > 0 ? (value) : (fallback))
#define CHECK_EVERY_MS 200
#define DRAIN_MS 2000 /* after the group is killed, how long to wait for EOF */
#define MAX_ENV 64
#define MAX_DATA_LINE (64u << 20) /* longest stdout line in data mode */

/* A partial output line of one stream. */
typedef struct line_buf {
    char *data;
    size_t len;
    bool discarding; /* the line was cut: skip up to its newline */
} line_buf;

typedef struct runner {
    const cv_script_spec *spec;
    cv_script_result *res;
    size_t max_line;
    int rate, burst;
    double tokens;
    int64_t refilled_ms;
    bool memory_error, process_error, file_error, size_error;
    line_buf stream[3]; /* indexed by cv_script_stream */
    /* Data mode: stdout lines grow as needed. */
    char *data;
    size_t data_len, data_cap;
    bool data_failed; /* on_data() said stop, or a line was too long */
} runner;

/* Notices the messages with which Python reports a limit it ran into. */
static void scan_stderr(runner *r, const char *line, size_t len) {
    static const struct {
        const char *text;
        size_t offset;
    } marks[] = {
        {"MemoryError", offsetof(runner, memory_error)},
        {"BlockingIOError", offsetof(runner, process_error)},
        {"Resource temporarily unavailable", offsetof(runner, process_error)},
        {"Too many open files", offsetof(runner, file_error)},
        {"File too large", offsetof(runner, size_error)},
    };
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
        if (memmem(line, len, marks[i].text, strlen(marks[i].text)))
            *(bool *)((char *)r + marks[i].offset) = true;
}

/* Passes one line on if the rate limit (a token bucket) allows, else counts it. */
static void emit(runner *r, cv_script_stream stream, const char *line, size_t len, bool cut) {
    int64_t now = cv_time_mono_ms();

    if (stream == CV_SCRIPT_STDERR)
        scan_stderr(r, line, len);
    r->tokens += (double)(now - r->refilled_ms) * r->rate / 1000.0;
    if (r->tokens > r->burst)
        r->tokens = r->burst;
    r->refilled_ms = now;
    if (r->tokens < 1.0) {
        r->res->lines_dropped++;
        return;
    }
    r->tokens -= 1.0;
    r->res->lines++;
    if (r->spec->on_line)
        r->spec->on_line(r->spec->ctx, stream, line, len, cut);
}

/* Data mode: passes stdout on line by line, whole, to on_data(). `data` NULL
 * flushes a last line without its newline. */
static void take_data(runner *r, const char *data, size_t n) {
    if (r->data_failed)
        return;
    if (!data) {
        if (r->data_len && !r->spec->on_data(r->spec->ctx, r->data, r->data_len))
            r->data_failed = true;
        r->data_len = 0;
        return;
    }
    while (n > 0 && !r->data_failed) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;
        if (r->data_len + take > r->data_cap) {
            size_t cap = r->data_cap ? r->data_cap : 65536;
            char *grown;
            while (cap < r->data_len + take)
                cap *= 2;
            if (cap > MAX_DATA_LINE || !(grown = realloc(r->data, cap))) {
                r->data_failed = true;
                return;
            }
            r->data = grown;
            r->data_cap = cap;
        }
        memcpy(r->data + r->data_len, data, take);
        r->data_len += take;
        if (!nl)
            return;
        if (!r->spec->on_data(r->spec->ctx, r->data, r->data_len))
            r->data_failed = true;
        r->data_len = 0;
        data = nl + 1;
        n -= take + 1;
    }
}

/* Splits what a stream gave into lines; a line longer than max_line is passed
 * on cut and the rest of it skipped. `data` NULL flushes a last partial line. */
static void take_output(runner *r, cv_script_stream stream, const char *data, size_t n) {
    line_buf *b = &r->stream[stream];

    if (stream == CV_SCRIPT_STDOUT && r->spec->on_data) {
        take_data(r, data, n);
        return;
    }

    if (!data) {
        if (b->len && !b->discarding)
            emit(r, stream, b->data, b->len, false);
        b->len = 0;
        return;
    }
    while (n > 0) {
        const char *nl = memchr(data, '\n', n);
        size_t take = nl ? (size_t)(nl - data) : n;

        if (!b->discarding) {
            size_t room = r->max_line - b->len, copy = take < room ? take : room;
            memcpy(b->data + b->len, data, copy);
            b->len += copy;
            if (take > room) { /* too long: pass the first max_line bytes on */
                emit(r, stream, b->data, b->len, true);
                b->len = 0;
                b->discarding = true;
            }
        }
        if (!nl)
            return;
        if (!b->discarding)
            emit(r, stream, b->data, b->len, false);
        b->len = 0;
        b->discarding = false;
        data = nl + 1;
        n -= take + 1;
    }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* The uid and gid a root worker runs scripts as. */
static cv_err unprivileged_user(const char *name, uid_t *uid, gid_t *gid, const char **chosen,
                                char *errbuf, size_t errlen) {
    const char *names[] = {name ? name : "convutell-run", name ? NULL : "nobody", NULL};
    for (int i = 0; names[i]; i++) {
        struct passwd *pw = getpwnam(names[i]);
        if (pw && pw->pw_uid != 0) {
            *uid = pw->pw_uid;
            *gid = pw->pw_gid;
            *chosen = names[i];
            return CV_OK;
        }
    }
    return cv_err_set(errbuf, errlen, CV_ERR_CONFIG,
                      "the worker runs as root and there is no unprivileged user %s to run "
                      "scripts as (scripts/deps creates convutell-run)",
                      name ? name : "convutell-run or nobody");
}

/* Writes the script into dir/script.py. */
static cv_err write_script(const char *dir, const char *script, char *errbuf, size_t errlen) {
    char path[512];
    FILE *f;
    size_t len = strlen(script);

    snprintf(path, sizeof(path), "%s/script.py", dir);
    if (!(f = fopen(path, "w")))
        return cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot write the script: %s",
                          strerror(errno));
    if (fwrite(script, 1, len, f) != len || fclose(f) != 0)
        return cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot write the script: %s",
                          strerror(errno));
    return CV_OK;
}

static void set_limit(int resource, rlim_t soft, rlim_t hard) {
    struct rlimit rl = {.rlim_cur = soft, .rlim_max = hard};
    setrlimit(resource, &rl);
}

/* What the child tells the parent when it cannot get to the script: the step
 * that failed and its errno, through a close-on-exec pipe (a successful execve
 * closes it with nothing written). */
typedef struct child_failure {
    int step; /* 1 set up, 2 switch user, 3 execve */
    int error;
} child_failure;

static void child_fail(int report, int step) {
    child_failure f = {.step = step, .error = errno};
    ssize_t written = write(report, &f, sizeof(f));
    (void)written;
    _exit(127);
}

/* In the child, between fork() and execve(): async-signal-safe calls only. */
static void child(const cv_script_spec *spec, const char *dir, int out, int err, int null_fd,
                  int report, bool drop, uid_t uid, gid_t gid, const char *interpreter,
                  char *const *argv, char *const *envp) {
    const cv_script_limits *l = &spec->limits;
    rlim_t cpu = (rlim_t)DEFAULT(l->cpu_seconds, 600);
    rlim_t mb = 1024 * 1024;

    setsid(); /* its own session and process group, no controlling terminal */
    if (dup2(null_fd, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        child_fail(report, 1);
    /* Everything else goes, but the report pipe (close-on-exec) stays until execve. */
    if (report > 3 && close_range(3, (unsigned)report - 1, 0) != 0)
        child_fail(report, 1);
    if (close_range((unsigned)report + 1, ~0U, 0) != 0)
        child_fail(report, 1);
    if (chdir(dir) != 0)
        child_fail(report, 1);
    set_limit(RLIMIT_CPU, cpu, cpu + 1); /* SIGXCPU first, SIGKILL a second later */
    set_limit(RLIMIT_AS, (rlim_t)DEFAULT(l->memory_mb, 1024) * mb,
              (rlim_t)DEFAULT(l->memory_mb, 1024) * mb);
    set_limit(RLIMIT_NOFILE, (rlim_t)DEFAULT(l->open_files, 256),
              (rlim_t)DEFAULT(l->open_files, 256));
    set_limit(RLIMIT_FSIZE, (rlim_t)DEFAULT(l->file_size_mb, 1024) * mb,
              (rlim_t)DEFAULT(l->file_size_mb, 1024) * mb);
    set_limit(RLIMIT_NPROC, (rlim_t)DEFAULT(l->processes, 64), (rlim_t)DEFAULT(l->processes, 64));
    set_limit(RLIMIT_CORE, 0, 0);
    if (drop && (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0))
        child_fail(report, 2);
    if (drop && setuid(0) == 0) /* must not be able to come back */
        child_fail(report, 2);
    execve(interpreter, argv, envp);
    child_fail(report, 3);
}

cv_err cv_script_run(const cv_script_spec *spec, cv_script_result *res, char *errbuf,
                     size_t errlen) {
    const char *interpreter = spec->interpreter ? spec->interpreter : "/usr/bin/python3";
    char dir[] = "/tmp/convutell-run-XXXXXX", home[64];
    char isolated[] = "-I", script_py[] = "script.py";
    char path_env[] = "PATH=/usr/local/bin:/usr/bin:/bin", lang_env[] = "LANG=C.UTF-8";
    char *argv[] = {(char *)(uintptr_t)interpreter, isolated, script_py, NULL};
    char *envp[MAX_ENV + 4];
    int out[2] = {-1, -1}, err[2] = {-1, -1}, report[2] = {-1, -1}, in[2] = {-1, -1};
    int null_fd = -1, nenv = 0;
    char *stdin_buf = NULL;
    size_t stdin_len = 0, stdin_at = 0;
    bool stdin_done = !spec->feed;
    child_failure failure;
    ssize_t got;
    bool drop = geteuid() == 0, made_dir = false, reaped = false;
    bool open_streams[3] = {false, true, true};
    int64_t started, deadline, term_at = 0, next_check, reaped_at = 0;
    uid_t uid = 0;
    gid_t gid = 0;
    const char *run_as_name = "";
    runner r;
    pid_t pid = -1;
    int status = 0;
    cv_err rc = CV_OK;

    memset(res, 0, sizeof(*res));
    memset(&r, 0, sizeof(r));
    r.spec = spec;
    r.res = res;
    r.max_line = spec->max_line ? spec->max_line : 4096;
    r.rate = DEFAULT(spec->lines_per_second, 100);
    r.burst = DEFAULT(spec->burst, 1000);
    r.tokens = r.burst;
    /* Processes the script leaves behind are re-parented to the worker, not to
     * an init that may never reap them (each zombie would count against the
     * script user's process limit). */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (access(interpreter, X_OK) != 0)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "interpreter %s cannot be run: %s",
                          interpreter, strerror(errno));
    if (drop && (rc = unprivileged_user(spec->run_as, &uid, &gid, &run_as_name, errbuf, errlen)))
        return rc;
    for (int s = 1; s <= 2; s++)
        if (!(r.stream[s].data = malloc(r.max_line + 1))) {
            rc = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
            goto out;
        }
    if (!mkdtemp(dir)) {
        rc = cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot make a working folder: %s",
                        strerror(errno));
        goto out;
    }
    made_dir = true;
    if ((rc = write_script(dir, spec->script, errbuf, errlen)))
        goto out;
    if (drop) { /* the folder and the script belong to the script's user */
        char path[sizeof(dir) + 16];
        snprintf(path, sizeof(path), "%s/script.py", dir);
        if (chown(dir, uid, gid) != 0 || chown(path, uid, gid) != 0) {
            rc = cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot hand the folder over: %s",
                            strerror(errno));
            goto out;
        }
    }
    snprintf(home, sizeof(home), "HOME=%s", dir);
    envp[nenv++] = path_env;
    envp[nenv++] = home;
    envp[nenv++] = lang_env;
    for (int i = 0; spec->env && spec->env[i] && nenv < MAX_ENV; i++)
        envp[nenv++] = (char *)(uintptr_t)spec->env[i];
    envp[nenv] = NULL;
    /* Close-on-exec everywhere: another thread forking meanwhile must not keep
     * a pipe end open (the EOF would never come). */
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || pipe2(report, O_CLOEXEC) != 0 ||
        (spec->feed && pipe2(in, O_CLOEXEC) != 0) || (spec->feed && !(stdin_buf = malloc(65536))) ||
        (null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        rc = cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot make pipes: %s", strerror(errno));
        goto out;
    }

    started = cv_time_mono_ms();
    r.refilled_ms = started;
    pid = fork();
    if (pid < 0) {
        rc = cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot start the script: %s", strerror(errno));
        goto out;
    }
    if (pid == 0)
        child(spec, dir, out[1], err[1], spec->feed ? in[0] : null_fd, report[1], drop, uid, gid,
              interpreter, argv, envp);
    close(out[1]);
    close(err[1]);
    close(report[1]);
    out[1] = err[1] = report[1] = -1;
    if (spec->feed) {
        close(in[0]);
        in[0] = -1;
        fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
    }
    /* Nothing to read means execve succeeded (it closed the pipe). */
    while ((got = read(report[0], &failure, sizeof(failure))) < 0 && errno == EINTR)
        ;
    if (got == (ssize_t)sizeof(failure)) {
        static const char *const steps[] = {"", "set up its process", "switch to its user",
                                            "start"};
        waitpid(pid, &status, 0);
        rc = cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "cannot %s %s%s%s: %s",
                        steps[failure.step >= 1 && failure.step <= 3 ? failure.step : 0],
                        interpreter, drop ? " as user " : "", drop ? run_as_name : "",
                        strerror(failure.error));
        goto out;
    }
    deadline = started + (int64_t)DEFAULT(spec->limits.timeout_seconds, 3600) * 1000;
    next_check = started + CHECK_EVERY_MS;

    while (!reaped || open_streams[1] || open_streams[2]) {
        struct pollfd fds[3] = {{.fd = open_streams[1] ? out[0] : -1, .events = POLLIN},
                                {.fd = open_streams[2] ? err[0] : -1, .events = POLLIN},
                                {.fd = stdin_done ? -1 : in[1], .events = POLLOUT}};
        int64_t now;

        if (poll(fds, 3, 100) > 0) {
            if (fds[2].revents & (POLLOUT | POLLERR | POLLHUP)) {
                if (stdin_at == stdin_len) { /* refill from the feeder */
                    long got_bytes = spec->feed(spec->ctx, stdin_buf, 65536);
                    stdin_at = 0;
                    stdin_len = got_bytes > 0 ? (size_t)got_bytes : 0;
                    if (got_bytes < 0)
                        r.data_failed = true;
                    if (got_bytes <= 0)
                        stdin_done = true;
                }
                if (stdin_at < stdin_len) {
                    ssize_t n = write(in[1], stdin_buf + stdin_at, stdin_len - stdin_at);
                    if (n > 0)
                        stdin_at += (size_t)n;
                    else if (n < 0 && errno != EAGAIN && errno != EINTR)
                        stdin_done = true; /* the script closed its stdin (EPIPE) */
                }
                if (stdin_done) {
                    close(in[1]);
                    in[1] = -1;
                }
            }
            for (int i = 0; i < 2; i++) {
                char buf[65536];
                ssize_t n;
                if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                n = read(fds[i].fd, buf, sizeof(buf));
                if (n > 0) {
                    take_output(&r, (cv_script_stream)(i + 1), buf, (size_t)n);
                } else if (n == 0 || errno != EINTR) {
                    take_output(&r, (cv_script_stream)(i + 1), NULL, 0);
                    open_streams[i + 1] = false;
                }
            }
        }
        now = cv_time_mono_ms();
        if (r.data_failed && !res->aborted && !reaped) {
            res->aborted = true; /* the transfer refused its data: stop now */
            kill(-pid, SIGKILL);
        }
        if (!reaped && waitpid(pid, &status, WNOHANG) == pid) {
            reaped = true;
            reaped_at = now;
            kill(-pid, SIGKILL); /* what it left running in its group goes with it */
        }
        while (reaped && waitpid(-pid, NULL, WNOHANG) > 0) /* and is reaped here */
            ;
        if (reaped && now - reaped_at > DRAIN_MS)
            break; /* a process that left the group still holds a pipe */
        if (!reaped && !term_at && now >= deadline) {
            res->limit = "timeout_seconds";
            term_at = now;
            kill(-pid, SIGTERM);
        }
        if (!reaped && !term_at && spec->check && now >= next_check) {
            char why[256];
            next_check = now + CHECK_EVERY_MS;
            if (spec->check(spec->ctx, why, sizeof(why)) != CV_OK) {
                res->stopped = true;
                term_at = now;
                kill(-pid, SIGTERM);
            }
        }
        if (!reaped && term_at &&
            now - term_at >= (int64_t)DEFAULT(spec->limits.grace_seconds, 5) * 1000)
            kill(-pid, SIGKILL);
    }
    res->duration_ms = cv_time_mono_ms() - started;
    kill(-pid, SIGKILL);
    while (waitpid(-pid, NULL, 0) > 0) /* the group's last members, killed above */
        ;
    if (WIFEXITED(status)) {
        res->exit_code = WEXITSTATUS(status);
    } else {
        res->exit_code = -1;
        res->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
    if (r.data_failed)
        res->aborted = true;
    if (!res->limit && !res->stopped && !res->aborted && (res->exit_code != 0 || res->signal)) {
        if (res->signal == SIGXCPU || (res->signal == SIGKILL && !term_at))
            res->limit = "cpu_seconds"; /* the hard limit kills a second after the soft one */
        else if (res->signal == SIGXFSZ || r.size_error)
            res->limit = "file_size_mb";
        else if (r.memory_error)
            res->limit = "memory_mb";
        else if (r.process_error)
            res->limit = "processes";
        else if (r.file_error)
            res->limit = "open_files";
    }
out:
    if (out[0] >= 0)
        close(out[0]);
    if (out[1] >= 0)
        close(out[1]);
    if (err[0] >= 0)
        close(err[0]);
    if (err[1] >= 0)
        close(err[1]);
    if (null_fd >= 0)
        close(null_fd);
    if (report[0] >= 0)
        close(report[0]);
    if (in[0] >= 0)
        close(in[0]);
    if (in[1] >= 0)
        close(in[1]);
    free(stdin_buf);
    free(r.data);
    if (report[1] >= 0)
        close(report[1]);
    if (made_dir && nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && !rc)
        rc = cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot remove the working folder %s: %s", dir,
                        strerror(errno));
    free(r.stream[1].data);
    free(r.stream[2].data);
    return rc;
}

void cv_script_describe(const cv_script_spec *spec, const cv_script_result *res, char *out,
                        size_t outlen) {
    const cv_script_limits *l = &spec->limits;
    int value = 0;

    if (res->stopped) {
        snprintf(out, outlen, "stopped on request");
        return;
    }
    if (res->limit) {
        if (strcmp(res->limit, "timeout_seconds") == 0)
            value = DEFAULT(l->timeout_seconds, 3600);
        else if (strcmp(res->limit, "cpu_seconds") == 0)
            value = DEFAULT(l->cpu_seconds, 600);
        else if (strcmp(res->limit, "memory_mb") == 0)
            value = DEFAULT(l->memory_mb, 1024);
        else if (strcmp(res->limit, "open_files") == 0)
            value = DEFAULT(l->open_files, 256);
        else if (strcmp(res->limit, "file_size_mb") == 0)
            value = DEFAULT(l->file_size_mb, 1024);
        else if (strcmp(res->limit, "processes") == 0)
            value = DEFAULT(l->processes, 64);
        snprintf(out, outlen, "stopped by its limit %s = %d", res->limit, value);
        return;
    }
    if (res->signal)
        snprintf(out, outlen, "killed by signal %d (%s)", res->signal, strsignal(res->signal));
    else
        snprintf(out, outlen, "exited with status %d", res->exit_code);
}
