#include "launcher/run_log.h"

#include "common/cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What the supervisor writes on its stderr to talk to the thread: a NUL (never in a log line)
 * and one of these, in one write (atomic on a pipe); the thread answers on its ack pipe. */
enum { CMD_DETACH = 'D', CMD_QUIT = 'Q' };

struct run_log {
    char *name;
    int pipe_r; /* the other end is our stderr */
    int ack_r, ack_w;
    int caller_fd; /* the terminal or the `up -d` pipe, or -1 */
    int kept_fd;   /* NAME.log, or -1 */
    size_t kept_bytes;
    char *kept_path;
    int rundir_fd; /* RUNDIR/supervisor.log, or -1 */
    bool rundir_failing;
    pthread_t thread;
    bool running;
};

int run_log_path(const char *name, char **ret)
{
    const char *env = getenv("OCVM_LOG_DIR");
    int r;
    if (env && *env)
        r = asprintf(ret, "%s/%s.log", env, name);
    else if (geteuid() == 0)
        r = asprintf(ret, "/var/log/ocvm/%s.log", name);
    else if ((env = getenv("XDG_STATE_HOME")) && *env)
        r = asprintf(ret, "%s/ocvm/%s.log", env, name);
    else if ((env = getenv("HOME")) && *env)
        r = asprintf(ret, "%s/.local/state/ocvm/%s.log", env, name);
    else
        return -ENXIO;
    return r < 0 ? -ENOMEM : 0;
}

/* systemd sets JOURNAL_STREAM=DEV:INODE for the stream it connected to stderr (as common/log.c
 * decides; it keeps that to itself). */
static bool stderr_is_journal(void)
{
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
        return false;
    return st.st_dev == dev && st.st_ino == ino;
}

/* mkdir -p of PATH's parent; what it makes is 0700. */
static int make_parent(const char *path)
{
    _cleanup_free_ char *dir = strdup(path);
    if (!dir)
        return -ENOMEM;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* A fresh NAME.log; the one there becomes NAME.log.1. No allocation: the thread calls it. */
static int open_kept(struct run_log *l)
{
    char old[4096];
    if ((size_t)snprintf(old, sizeof(old), "%s.1", l->kept_path) >= sizeof(old))
        return -ENAMETOOLONG;
    if (rename(l->kept_path, old) < 0 && errno != ENOENT)
        return -errno;
    int fd = open(l->kept_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (l->kept_fd >= 0)
        close(l->kept_fd);
    l->kept_fd = fd;
    l->kept_bytes = 0;
    return 0;
}

static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

static void copy_out(struct run_log *l, const char *buf, size_t n);

/* The kept log failed: said once, on the other copies (never on our stderr, which this thread
 * itself must drain). */
static void drop_kept(struct run_log *l, int r)
{
    close(l->kept_fd);
    l->kept_fd = -1;
    char line[4200];
    int n =
        snprintf(line, sizeof(line), "ocvm: %s: %s: %s: the rest of this run is not kept there\n",
                 l->name, l->kept_path, strerror(-r));
    if (n > 0)
        copy_out(l, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void copy_out(struct run_log *l, const char *buf, size_t n)
{
    if (n == 0)
        return;
    if (l->caller_fd >= 0 && write_all(l->caller_fd, buf, n) < 0) {
        close(l->caller_fd); /* the caller went away (EPIPE): the logs go on */
        l->caller_fd = -1;
    }
    if (l->rundir_fd >= 0) /* a full runtime directory: this copy misses lines, the others not */
        l->rundir_failing = write_all(l->rundir_fd, buf, n) < 0;
    if (l->kept_fd >= 0) {
        int r = write_all(l->kept_fd, buf, n);
        if (r < 0)
            drop_kept(l, r);
        else if ((l->kept_bytes += n) >= RUN_LOG_MAX_BYTES && (r = open_kept(l)) < 0)
            drop_kept(l, r); /* else the first MiB of this run is NAME.log.1 now */
    }
}

static void *pump(void *userdata)
{
    struct run_log *l = userdata;
    char buf[16384];
    for (;;) {
        ssize_t n = read(l->pipe_r, buf, sizeof(buf) - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        size_t start = 0;
        for (size_t i = 0; i < (size_t)n; i++) {
            if (buf[i] != '\0')
                continue;
            copy_out(l, buf + start, i - start);
            start = i + 1;
            char cmd; /* the command came in the same write as its NUL: it is there */
            if (i + 1 < (size_t)n)
                cmd = buf[++i];
            else if (read(l->pipe_r, &cmd, 1) != 1)
                return NULL;
            start = i + 1;
            if (cmd == CMD_DETACH && l->caller_fd >= 0) {
                close(l->caller_fd);
                l->caller_fd = -1;
            }
            (void)!write(l->ack_w, &cmd, 1);
            if (cmd == CMD_QUIT) /* what a child writes after this has no reader */
                return NULL;
        }
        copy_out(l, buf + start, (size_t)n - start);
    }
}

/* Has the thread copy everything written before, then do CMD. */
static void command(struct run_log *l, char cmd)
{
    const char m[2] = {'\0', cmd};
    char ack;
    fflush(stderr);
    if (write_all(STDERR_FILENO, m, sizeof(m)) < 0)
        return;
    while (read(l->ack_r, &ack, 1) < 0 && errno == EINTR)
        ;
}

static void free_log(struct run_log *l)
{
    int fds[] = {l->pipe_r, l->ack_r, l->ack_w, l->caller_fd, l->kept_fd, l->rundir_fd};
    for (size_t i = 0; i < ELEMENTSOF(fds); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(l->kept_path);
    free(l->name);
    free(l);
}

static int fail(struct run_log *l, int r, char **ret_error, const char *what)
{
    if (asprintf(ret_error, "%s: %s", what, strerror(-r)) < 0)
        *ret_error = NULL;
    free_log(l);
    return r;
}

int run_log_open(const char *name, const char *rundir_log, struct run_log **ret, char **ret_error)
{
    *ret = NULL;
    if (stderr_is_journal())
        return 0;
    struct run_log *l = calloc(1, sizeof(*l));
    if (!l || !(l->name = strdup(name))) {
        free(l);
        return -ENOMEM;
    }
    l->pipe_r = l->ack_r = l->ack_w = l->caller_fd = l->kept_fd = l->rundir_fd = -1;
    int p[2], a[2];
    if (pipe2(a, O_CLOEXEC) < 0)
        return fail(l, -errno, ret_error, "pipe");
    l->ack_r = a[0];
    l->ack_w = a[1];
    if (rundir_log &&
        (l->rundir_fd =
             open(rundir_log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600)) < 0) {
        int r = -errno;
        _cleanup_free_ char *what = NULL;
        return fail(l, r, ret_error, asprintf(&what, "open %s", rundir_log) < 0 ? "open" : what);
    }
    int r = run_log_path(name, &l->kept_path);
    if (r == 0 && ((r = make_parent(l->kept_path)) < 0 || (r = open_kept(l)) < 0))
        fprintf(stderr, "ocvm: %s: the log of this run is not kept in %s: %s\n", name, l->kept_path,
                strerror(-r));
    if (pipe2(p, O_CLOEXEC) < 0)
        return fail(l, -errno, ret_error, "pipe");
    l->pipe_r = p[0];
    fflush(stderr);
    if ((l->caller_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3)) < 0) {
        close(p[1]);
        return fail(l, -errno, ret_error, "dup stderr");
    }
    sigset_t all, old; /* the thread takes no signal: the supervisor's loop has them all */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r = -pthread_create(&l->thread, NULL, pump, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r < 0) {
        close(p[1]);
        return fail(l, r, ret_error, "start the log thread");
    }
    l->running = true;
    dup2(p[1], STDERR_FILENO); /* inheritable: our children write their lines there too */
    close(p[1]);
    *ret = l;
    return 0;
}

void run_log_detach_caller(struct run_log *l)
{
    if (l && l->running)
        command(l, CMD_DETACH);
}

const char *run_log_kept_path(const struct run_log *l)
{
    return l && l->kept_fd >= 0 ? l->kept_path : NULL;
}

void run_log_close(struct run_log *l)
{
    if (!l)
        return;
    if (l->running) {
        command(l, CMD_QUIT);
        pthread_join(l->thread, NULL);
    }
    if (l->caller_fd >= 0) { /* a foreground `up`: what comes after us (a sanitizer) is seen */
        dup2(l->caller_fd, STDERR_FILENO);
    } else { /* `up -d`: the rest goes to the kept log (a sanitizer's report at exit) */
        int fd = l->kept_fd >= 0 ? l->kept_fd : l->rundir_fd;
        if (fd >= 0)
            dup2(fd, STDERR_FILENO);
    }
    free_log(l);
}
