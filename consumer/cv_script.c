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

/* One script being run: its folder, its process group, the pipes to it and
 * what the parent's loop watches. Every descriptor is -1 when closed. */
typedef struct proc {
    const cv_script_spec *spec;
    cv_script_result *res;
    runner r;
    const char *interpreter;
    char dir[sizeof("/tmp/convutell-run-XXXXXX")];
    bool made_dir;
    bool drop; /* the worker is root: the script runs as uid/gid (run_as_name) */
    uid_t uid;
    gid_t gid;
    const char *run_as_name;
    int out[2], err[2], report[2], in[2], null_fd;
    char *stdin_buf; /* data mode: what the feeder gave and the script has not read */
    size_t stdin_len, stdin_at;
    bool stdin_done;
    bool open_streams[3]; /* indexed by cv_script_stream */
    pid_t pid;
    int status;
    bool reaped;
    int64_t started, deadline, term_at, next_check, reaped_at;
} proc;

/* In the child, between fork() and execve(): async-signal-safe calls only. */
static void child(const proc *p, char *const *argv, char *const *envp) {
    const cv_script_limits *l = &p->spec->limits;
    rlim_t cpu = (rlim_t)DEFAULT(l->cpu_seconds, 600);
    rlim_t mb = 1024 * 1024;
    int report = p->report[1];

    setsid(); /* its own session and process group, no controlling terminal */
    if (dup2(p->spec->feed ? p->in[0] : p->null_fd, 0) < 0 || dup2(p->out[1], 1) < 0 ||
        dup2(p->err[1], 2) < 0)
        child_fail(report, 1);
    /* Everything else goes, but the report pipe (close-on-exec) stays until execve. */
    if (report > 3 && close_range(3, (unsigned)report - 1, 0) != 0)
        child_fail(report, 1);
    if (close_range((unsigned)report + 1, ~0U, 0) != 0)
        child_fail(report, 1);
    if (chdir(p->dir) != 0)
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
    if (p->drop && (setgroups(0, NULL) != 0 || setgid(p->gid) != 0 || setuid(p->uid) != 0))
        child_fail(report, 2);
    if (p->drop && setuid(0) == 0) /* must not be able to come back */
        child_fail(report, 2);
    execve(p->interpreter, argv, envp);
    child_fail(report, 3);
}

/* Makes the script's folder with the script in it, handed to the script's
 * user when the worker is root. */
static cv_err make_folder(proc *p, char *errbuf, size_t errlen) {
    char path[sizeof(p->dir) + 16];
    cv_err rc;

    snprintf(p->dir, sizeof(p->dir), "/tmp/convutell-run-XXXXXX");
    if (!mkdtemp(p->dir))
        return cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot make a working folder: %s",
                          strerror(errno));
    p->made_dir = true;
    if ((rc = write_script(p->dir, p->spec->script, errbuf, errlen)))
        return rc;
    snprintf(path, sizeof(path), "%s/script.py", p->dir);
    if (p->drop && (chown(p->dir, p->uid, p->gid) != 0 || chown(path, p->uid, p->gid) != 0))
        return cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot hand the folder over: %s",
                          strerror(errno));
    return CV_OK;
}

/* The pipes to the child, close-on-exec everywhere: another thread forking
 * meanwhile must not keep a pipe end open (the EOF would never come). */
static cv_err open_pipes(proc *p, char *errbuf, size_t errlen) {
    const cv_script_spec *spec = p->spec;

    if (pipe2(p->out, O_CLOEXEC) != 0 || pipe2(p->err, O_CLOEXEC) != 0 ||
        pipe2(p->report, O_CLOEXEC) != 0 || (spec->feed && pipe2(p->in, O_CLOEXEC) != 0) ||
        (spec->feed && !(p->stdin_buf = malloc(65536))) ||
        (p->null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
        return cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot make pipes: %s", strerror(errno));
    return CV_OK;
}

static void close_fd(int *fd) {
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Starts the child and waits until it has started the interpreter (or says
 * why it could not). */
static cv_err spawn(proc *p, char *const *argv, char *const *envp, char *errbuf, size_t errlen) {
    static const char *const steps[] = {"", "set up its process", "switch to its user", "start"};
    child_failure failure;
    ssize_t got;

    p->started = cv_time_mono_ms();
    p->r.refilled_ms = p->started;
    p->pid = fork();
    if (p->pid < 0)
        return cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot start the script: %s",
                          strerror(errno));
    if (p->pid == 0)
        child(p, argv, envp);
    close_fd(&p->out[1]);
    close_fd(&p->err[1]);
    close_fd(&p->report[1]);
    if (p->spec->feed) {
        close_fd(&p->in[0]);
        fcntl(p->in[1], F_SETFL, fcntl(p->in[1], F_GETFL) | O_NONBLOCK);
    }
    /* Nothing to read means execve succeeded (it closed the pipe). */
    while ((got = read(p->report[0], &failure, sizeof(failure))) < 0 && errno == EINTR)
        ;
    if (got == (ssize_t)sizeof(failure)) {
        waitpid(p->pid, &p->status, 0);
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "cannot %s %s%s%s: %s",
                          steps[failure.step >= 1 && failure.step <= 3 ? failure.step : 0],
                          p->interpreter, p->drop ? " as user " : "", p->drop ? p->run_as_name : "",
                          strerror(failure.error));
    }
    p->deadline = p->started + (int64_t)DEFAULT(p->spec->limits.timeout_seconds, 3600) * 1000;
    p->next_check = p->started + CHECK_EVERY_MS;
    return CV_OK;
}

/* Data mode: writes what the feeder gives to the script's stdin as far as
 * the pipe takes it, and closes stdin at the feeder's end (or when the
 * script closed it). */
static void feed_stdin(proc *p) {
    if (p->stdin_at == p->stdin_len) { /* refill from the feeder */
        long got = p->spec->feed(p->spec->ctx, p->stdin_buf, 65536);
        p->stdin_at = 0;
        p->stdin_len = got > 0 ? (size_t)got : 0;
        if (got < 0)
            p->r.data_failed = true;
        if (got <= 0)
            p->stdin_done = true;
    }
    if (p->stdin_at < p->stdin_len) {
        ssize_t n = write(p->in[1], p->stdin_buf + p->stdin_at, p->stdin_len - p->stdin_at);
        if (n > 0)
            p->stdin_at += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            p->stdin_done = true; /* the script closed its stdin (EPIPE) */
    }
    if (p->stdin_done)
        close_fd(&p->in[1]);
}

/* Waits up to 100 ms for the pipes and moves what they have. */
static void pump_pipes(proc *p) {
    struct pollfd fds[3] = {{.fd = p->open_streams[1] ? p->out[0] : -1, .events = POLLIN},
                            {.fd = p->open_streams[2] ? p->err[0] : -1, .events = POLLIN},
                            {.fd = p->stdin_done ? -1 : p->in[1], .events = POLLOUT}};

    if (poll(fds, 3, 100) <= 0)
        return;
    if (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))
        feed_stdin(p);
    for (int i = 0; i < 2; i++) {
        char buf[65536];
        ssize_t n;
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        n = read(fds[i].fd, buf, sizeof(buf));
        if (n > 0) {
            take_output(&p->r, (cv_script_stream)(i + 1), buf, (size_t)n);
        } else if (n == 0 || errno != EINTR) {
            take_output(&p->r, (cv_script_stream)(i + 1), NULL, 0);
            p->open_streams[i + 1] = false;
        }
    }
}

/* The parent's checks after each wait: the child's end, the time limit, the
 * stop request, the grace after SIGTERM. False once the loop is to stop
 * although a pipe is still open (a process that left the group holds it). */
static bool watch(proc *p) {
    const cv_script_spec *spec = p->spec;
    int64_t now = cv_time_mono_ms();

    if (p->r.data_failed && !p->res->aborted && !p->reaped) {
        p->res->aborted = true; /* the transfer refused its data: stop now */
        kill(-p->pid, SIGKILL);
    }
    if (!p->reaped && waitpid(p->pid, &p->status, WNOHANG) == p->pid) {
        p->reaped = true;
        p->reaped_at = now;
        kill(-p->pid, SIGKILL); /* what it left running in its group goes with it */
    }
    while (p->reaped && waitpid(-p->pid, NULL, WNOHANG) > 0) /* and is reaped here */
        ;
    if (p->reaped)
        return now - p->reaped_at <= DRAIN_MS;
    if (!p->term_at && now >= p->deadline) {
        p->res->limit = "timeout_seconds";
        p->term_at = now;
        kill(-p->pid, SIGTERM);
    }
    if (!p->term_at && spec->check && now >= p->next_check) {
        char why[256];
        p->next_check = now + CHECK_EVERY_MS;
        if (spec->check(spec->ctx, why, sizeof(why)) != CV_OK) {
            p->res->stopped = true;
            p->term_at = now;
            kill(-p->pid, SIGTERM);
        }
    }
    if (p->term_at && now - p->term_at >= (int64_t)DEFAULT(spec->limits.grace_seconds, 5) * 1000)
        kill(-p->pid, SIGKILL);
    return true;
}

/* Fills the result from how the child ended: its exit code or signal, and
 * the limit it ran into when the signal or its stderr names one. */
static void classify(proc *p) {
    cv_script_result *res = p->res;
    int status = p->status;

    if (WIFEXITED(status)) {
        res->exit_code = WEXITSTATUS(status);
    } else {
        res->exit_code = -1;
        res->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
    if (p->r.data_failed)
        res->aborted = true;
    if (res->limit || res->stopped || res->aborted || (res->exit_code == 0 && !res->signal))
        return;
    if (res->signal == SIGXCPU || (res->signal == SIGKILL && !p->term_at))
        res->limit = "cpu_seconds"; /* the hard limit kills a second after the soft one */
    else if (res->signal == SIGXFSZ || p->r.size_error)
        res->limit = "file_size_mb";
    else if (p->r.memory_error)
        res->limit = "memory_mb";
    else if (p->r.process_error)
        res->limit = "processes";
    else if (p->r.file_error)
        res->limit = "open_files";
}

/* Closes what is open, frees the buffers and removes the folder (an error
 * only when that fails and nothing failed before). */
static cv_err proc_end(proc *p, cv_err rc, char *errbuf, size_t errlen) {
    int *fds[] = {&p->out[0],    &p->out[1],    &p->err[0], &p->err[1], &p->null_fd,
                  &p->report[0], &p->report[1], &p->in[0],  &p->in[1]};

    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        close_fd(fds[i]);
    free(p->stdin_buf);
    free(p->r.data);
    free(p->r.stream[1].data);
    free(p->r.stream[2].data);
    if (p->made_dir && nftw(p->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && !rc)
        rc = cv_err_set(errbuf, errlen, CV_ERR_IO, "cannot remove the working folder %s: %s",
                        p->dir, strerror(errno));
    return rc;
}

static void proc_init(proc *p, const cv_script_spec *spec, cv_script_result *res) {
    memset(p, 0, sizeof(*p));
    memset(res, 0, sizeof(*res));
    p->spec = spec;
    p->res = res;
    p->interpreter = spec->interpreter ? spec->interpreter : "/usr/bin/python3";
    p->drop = geteuid() == 0;
    p->run_as_name = "";
    p->out[0] = p->out[1] = p->err[0] = p->err[1] = -1;
    p->report[0] = p->report[1] = p->in[0] = p->in[1] = p->null_fd = -1;
    p->stdin_done = !spec->feed;
    p->open_streams[1] = p->open_streams[2] = true;
    p->r.spec = spec;
    p->r.res = res;
    p->r.max_line = spec->max_line ? spec->max_line : 4096;
    p->r.rate = DEFAULT(spec->lines_per_second, 100);
    p->r.burst = DEFAULT(spec->burst, 1000);
    p->r.tokens = p->r.burst;
}

cv_err cv_script_run(const cv_script_spec *spec, cv_script_result *res, char *errbuf,
                     size_t errlen) {
    char isolated[] = "-I", script_py[] = "script.py", home[64];
    char path_env[] = "PATH=/usr/local/bin:/usr/bin:/bin", lang_env[] = "LANG=C.UTF-8";
    char *argv[4], *envp[MAX_ENV + 4];
    int nenv = 0;
    proc p;
    cv_err rc = CV_OK;

    proc_init(&p, spec, res);
    /* Processes the script leaves behind are re-parented to the worker, not to
     * an init that may never reap them (each zombie would count against the
     * script user's process limit). */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (access(p.interpreter, X_OK) != 0)
        return cv_err_set(errbuf, errlen, CV_ERR_CONFIG, "interpreter %s cannot be run: %s",
                          p.interpreter, strerror(errno));
    if (p.drop &&
        (rc = unprivileged_user(spec->run_as, &p.uid, &p.gid, &p.run_as_name, errbuf, errlen)))
        return rc;
    for (int s = 1; s <= 2; s++)
        if (!(p.r.stream[s].data = malloc(p.r.max_line + 1))) {
            rc = cv_err_set(errbuf, errlen, CV_ERR_NOMEM, "out of memory");
            goto out;
        }
    if ((rc = make_folder(&p, errbuf, errlen)) || (rc = open_pipes(&p, errbuf, errlen)))
        goto out;
    argv[0] = (char *)(uintptr_t)p.interpreter;
    argv[1] = isolated;
    argv[2] = script_py;
    argv[3] = NULL;
    snprintf(home, sizeof(home), "HOME=%s", p.dir);
    envp[nenv++] = path_env;
    envp[nenv++] = home;
    envp[nenv++] = lang_env;
    for (int i = 0; spec->env && spec->env[i] && nenv < MAX_ENV; i++)
        envp[nenv++] = (char *)(uintptr_t)spec->env[i];
    envp[nenv] = NULL;
    if ((rc = spawn(&p, argv, envp, errbuf, errlen)))
        goto out;
    while (!p.reaped || p.open_streams[1] || p.open_streams[2]) {
        pump_pipes(&p);
        if (!watch(&p))
            break;
    }
    res->duration_ms = cv_time_mono_ms() - p.started;
    kill(-p.pid, SIGKILL);
    while (waitpid(-p.pid, NULL, 0) > 0) /* the group's last members, killed above */
        ;
    classify(&p);
out:
    return proc_end(&p, rc, errbuf, errlen);
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
