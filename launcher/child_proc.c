/* A helper process of the supervisor; see child_proc.h. */
#include "launcher/child_proc.h"

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { STOP_GRACE_MS = 2000, LINES_PER_S = 50, MAX_FDS = 8 + 64 };

/* One line the child wrote (already "ocvm: VM: STAGE: ..."), to our stderr: whatever our stderr
 * is now (the terminal, the journal, or supervisor.log once `up -d` has returned). */
static void pass_line(void *userdata, char *line, size_t n)
{
    struct child_proc *p = userdata;
    if (n == 0)
        return;
    for (char *c = line; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    if (line[0] == '<') /* journald reads "<N>" there as the line's priority (emerg: to walls) */
        line[0] = '?';
    uint64_t held;
    if (log_ratelimit_pass(&p->lines, clock_usec(CLOCK_MONOTONIC) / 1000u, &held))
        fprintf(stderr, held ? "%s (%llu lines of the %s suppressed)\n" : "%s\n", line,
                (unsigned long long)held, p->what);
}

/* What is left on the stderr pipe, and the pipe's source gone. */
static void last_lines(struct child_proc *p)
{
    if (!p->err_src)
        return;
    (void)child_lines_read(&p->lines_in, sd_event_source_get_io_fd(p->err_src));
    child_lines_flush(&p->lines_in);
    p->err_src = sd_event_source_disable_unref(p->err_src);
}

static int on_stderr(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    struct child_proc *p = userdata;
    if (child_lines_read(&p->lines_in, fd))
        p->err_src = sd_event_source_disable_unref(p->err_src);
    return 0;
}

static int on_exit_signal(sd_event_source *s, const siginfo_t *si, void *userdata)
{
    struct child_proc *p = userdata;
    pid_t pid = p->pid;
    p->child_src = sd_event_source_disable_unref(p->child_src); /* reaped by sd-event */
    last_lines(p);                                              /* its last words first */
    p->pid = 0;
    child_exit_describe(si, p->last_exit, sizeof(p->last_exit));
    if (p->on_exit)
        p->on_exit(p, pid, p->last_exit);
    return 0;
}

/* In the child, between fork and exec: FDS at 3.., stdout and stderr to ERR_FD, own session,
 * dies with PARENT. */
void child_proc_reset_signals(void)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    setsid();
}

static _Noreturn void exec_child(const struct child_proc *p, char **argv, const int *fds, size_t n,
                                 int err_fd, pid_t parent)
{
    child_proc_reset_signals();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(127);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int high[MAX_FDS];
    for (size_t i = 0; i < n; i++)
        high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3 + (int)n);
    if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 || dup2(err_fd, STDOUT_FILENO) < 0 ||
        dup2(err_fd, STDERR_FILENO) < 0)
        _exit(127);
    for (size_t i = 0; i < n; i++)
        if (high[i] < 0 || dup2(high[i], 3 + (int)i) < 0) /* clears CLOEXEC */
            _exit(127);
    syscall(SYS_close_range, 3 + (unsigned)n, ~0U, 0);
    execv(p->exe, argv);
    fprintf(stderr, "ocvm: %s: exec %s: %s\n", p->what, p->exe, strerror(errno));
    _exit(127);
}

int child_proc_spawn(struct child_proc *p, char **argv, const int *fds, size_t n)
{
    int err[2], r;
    if (n > MAX_FDS)
        return -EINVAL;
    if (pipe2(err, O_CLOEXEC) < 0)
        return negative_errno();
    _cleanup_close_ int err_read = err[0];
    pid_t parent = getpid(), pid = fork();
    if (pid == 0)
        exec_child(p, argv, fds, n, err[1], parent);
    close(err[1]);
    if (pid < 0)
        return negative_errno();
    fcntl(err_read, F_SETFL, O_NONBLOCK);
    if ((r = sd_event_add_child(p->event, &p->child_src, pid, WEXITED, on_exit_signal, p)) < 0 ||
        (r = sd_event_add_io(p->event, &p->err_src, err_read, EPOLLIN, on_stderr, p)) < 0) {
        p->child_src = sd_event_source_disable_unref(p->child_src);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return r;
    }
    sd_event_source_set_io_fd_own(p->err_src, true);
    TAKE_FD(err_read);
    p->pid = pid;
    p->started++;
    p->lines_in.len = 0;
    return 0;
}

/* The path of this program: what /proc/self/exe names (under valgrind: the program valgrind
 * runs, not valgrind's own), or /proc/self/exe itself once the file was replaced (an upgrade):
 * the child runs the same code as its parent either way. */
static char *own_executable(void)
{
    char buf[4096];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n <= 0 || (size_t)n >= sizeof(buf) - 1)
        return strdup("/proc/self/exe");
    buf[n] = '\0';
    if (buf[0] != '/' || (n > 10 && strcmp(buf + n - 10, " (deleted)") == 0))
        return strdup("/proc/self/exe");
    return strdup(buf);
}

int child_proc_init(struct child_proc *p, sd_event *e, const char *what, child_proc_exit_fn on_exit,
                    void *owner)
{
    *p = (struct child_proc){.what = what, .on_exit = on_exit, .owner = owner};
    p->lines = (struct log_ratelimit)LOG_RATELIMIT_INIT(1000u, LINES_PER_S);
    p->lines_in = (struct child_lines){.line = pass_line, .userdata = p};
    if (!(p->exe = own_executable()))
        return -ENOMEM;
    p->event = sd_event_ref(e);
    return 0;
}

void child_proc_stop(struct child_proc *p)
{
    p->child_src = sd_event_source_disable_unref(p->child_src);
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        bool gone = false;
        for (unsigned waited = 0; !gone && waited < STOP_GRACE_MS; waited += 20) {
            gone = waitpid(p->pid, NULL, WNOHANG) == p->pid;
            if (!gone)
                nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000L}, NULL);
        }
        if (!gone) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
        }
        p->pid = 0;
    }
    last_lines(p); /* what it said on its way out */
}

void child_proc_get_status(const struct child_proc *p, struct child_proc_status *ret)
{
    *ret =
        (struct child_proc_status){.pid = p->pid, .restarts = p->started > 0 ? p->started - 1 : 0};
    snprintf(ret->last_exit, sizeof(ret->last_exit), "%s", p->last_exit);
}

void child_proc_done(struct child_proc *p)
{
    child_proc_stop(p);
    sd_event_unref(p->event);
    p->event = NULL;
    free(p->exe);
    p->exe = NULL;
}
