/* The user vsock backend as a sandboxed child of the supervisor; see backend_child.h. */
#include "launcher/backend_child.h"

#include "launcher/child_lines.h"

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "launcher/argv.h"
#include "vsock/connect_broker.h"
#include "vsock/vsock_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

enum { STOP_GRACE_MS = 2000, LINES_PER_S = 50 };

/* The child's fixed fd layout: vhost-user listener, hybrid listener, its end of the broker. */
enum { CHILD_VHOST_USER_FD = 3, CHILD_UDS_FD = 4, CHILD_BROKER_FD = 5, CHILD_N_FDS = 3 };

struct backend_child {
    sd_event *event;
    char *exe; /* this program, run again as `ocvm vsock-backend` */
    char *vm_name, *vhost_user_path, *uds_path, *user;
    uint32_t guest_cid;
    backend_child_exit_fn on_exit;
    void *userdata;
    pid_t pid;
    sd_event_source *child_src, *broker_src, *err_src;
    unsigned started;
    char last_exit[96];
    struct child_lines lines_in; /* the child's stderr, line by line */
    struct log_ratelimit lines;
};

/* --- the child's stderr: its log lines, passed on to ours line by line --- */

/* One line the child wrote (already "ocvm: VM: vsock-backend: ..."), to our stderr: whatever our
 * stderr is now (the terminal, the journal, or supervisor.log once `up -d` has returned). A
 * child that a guest took over could write anything: control characters are replaced and the
 * lines per second are bounded. */
static void pass_line(void *userdata, char *line, size_t n)
{
    struct backend_child *b = userdata;
    if (n == 0)
        return;
    for (char *p = line; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    uint64_t held;
    if (log_ratelimit_pass(&b->lines, clock_usec(CLOCK_MONOTONIC) / 1000u, &held))
        fprintf(stderr, held ? "%s (%llu lines of the vsock backend suppressed)\n" : "%s\n", line,
                (unsigned long long)held);
}

static int on_child_stderr(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    struct backend_child *b = userdata;
    if (child_lines_read(&b->lines_in, fd))
        b->err_src = sd_event_source_disable_unref(b->err_src);
    return 0;
}

/* --- the child --- */

static int on_child_exit(sd_event_source *s, const siginfo_t *si, void *userdata)
{
    struct backend_child *b = userdata;
    pid_t pid = b->pid;
    b->child_src = sd_event_source_disable_unref(b->child_src); /* reaped by sd-event */
    b->broker_src = sd_event_source_disable_unref(b->broker_src);
    if (b->err_src) { /* its last words first */
        (void)child_lines_read(&b->lines_in, sd_event_source_get_io_fd(b->err_src));
        child_lines_flush(&b->lines_in);
        b->err_src = sd_event_source_disable_unref(b->err_src);
    }
    b->pid = 0;
    child_exit_describe(si, b->last_exit, sizeof(b->last_exit));
    if (b->on_exit)
        b->on_exit(pid, b->last_exit, b->userdata);
    return 0;
}

/* The child asks for guest->host connections: made here, where the runtime dir is reachable. */
static int on_broker(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    struct backend_child *b = userdata;
    if (connect_broker_serve(fd, b->uds_path) < 0) /* the child is gone, or broke the protocol */
        b->broker_src = sd_event_source_disable_unref(b->broker_src);
    return 0;
}

/* ocvm vsock-backend with its sockets as fds (see CHILD_*_FD). */
static int child_argv(const struct backend_child *b, struct argv *a)
{
    argv_add(a, "ocvm");
    argv_add(a, "vsock-backend");
    argv_add(a, "--socket");
    argv_add(a, b->vhost_user_path);
    argv_addf(a, "--socket-fd=%d", CHILD_VHOST_USER_FD);
    argv_add(a, "--uds");
    argv_add(a, b->uds_path);
    argv_addf(a, "--uds-fd=%d", CHILD_UDS_FD);
    argv_addf(a, "--connect-fd=%d", CHILD_BROKER_FD);
    argv_addf(a, "--guest-cid=%u", b->guest_cid);
    if (b->user) {
        argv_add(a, "--user");
        argv_add(a, b->user);
    }
    if (b->vm_name) {
        argv_add(a, "--vm");
        argv_add(a, b->vm_name);
    }
    return argv_error(a);
}

/* In the child, between fork and exec: fixed fds, stdout and stderr to ERR_FD, own session,
 * dies with PARENT. */
static _Noreturn void exec_child(const char *exe, char **argv, const int fds[CHILD_N_FDS],
                                 int err_fd, pid_t parent)
{
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    setsid(); /* Ctrl-C on the terminal reaches the supervisor alone, which stops it in order */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(127);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int high[CHILD_N_FDS];
    for (size_t i = 0; i < CHILD_N_FDS; i++)
        high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 100);
    if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 || dup2(err_fd, STDOUT_FILENO) < 0 ||
        dup2(err_fd, STDERR_FILENO) < 0)
        _exit(127);
    for (size_t i = 0; i < CHILD_N_FDS; i++)
        if (high[i] < 0 || dup2(high[i], CHILD_VHOST_USER_FD + (int)i) < 0) /* clears CLOEXEC */
            _exit(127);
    syscall(SYS_close_range, CHILD_VHOST_USER_FD + CHILD_N_FDS, ~0U, 0);
    execv(exe, argv);
    fprintf(stderr, "ocvm: vsock-backend: exec %s: %s\n", exe, strerror(errno));
    _exit(127);
}

/* Fresh listening sockets (0600, a stale one replaced) and the broker pair. */
static int make_sockets(struct backend_child *b, int fds[CHILD_N_FDS], int *ret_broker)
{
    int pair[2] = {-1, -1};
    int r = vsock_hybrid_listen(b->vhost_user_path, &fds[0]);
    if (r < 0)
        return r;
    if ((r = vsock_hybrid_listen(b->uds_path, &fds[1])) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
        r = r < 0 ? r : negative_errno();
        closep(&fds[0]);
        closep(&fds[1]);
        return r;
    }
    fds[2] = pair[1];
    *ret_broker = pair[0];
    return 0;
}

/* Watches the child PID: its exit, its broker requests on BROKER, its lines on ERR (both taken
 * on success). */
static int watch(struct backend_child *b, pid_t pid, int broker, int err)
{
    int r;
    if ((r = sd_event_add_child(b->event, &b->child_src, pid, WEXITED, on_child_exit, b)) < 0 ||
        (r = sd_event_add_io(b->event, &b->broker_src, broker, EPOLLIN, on_broker, b)) < 0 ||
        (r = sd_event_add_io(b->event, &b->err_src, err, EPOLLIN, on_child_stderr, b)) < 0) {
        b->child_src = sd_event_source_disable_unref(b->child_src);
        b->broker_src = sd_event_source_disable_unref(b->broker_src);
        return r;
    }
    sd_event_source_set_io_fd_own(b->broker_src, true);
    sd_event_source_set_io_fd_own(b->err_src, true);
    return 0;
}

static int spawn(struct backend_child *b, char **argv)
{
    int fds[CHILD_N_FDS] = {-1, -1, -1}, err[2];
    _cleanup_close_ int broker = -1;
    int r = make_sockets(b, fds, &broker);
    if (r < 0)
        return r;
    if (pipe2(err, O_CLOEXEC) < 0) {
        r = negative_errno();
        for (size_t i = 0; i < CHILD_N_FDS; i++)
            close(fds[i]);
        return r;
    }
    _cleanup_close_ int err_read = err[0];
    pid_t parent = getpid(), pid = fork();
    if (pid == 0)
        exec_child(b->exe, argv, fds, err[1], parent);
    r = pid < 0 ? negative_errno() : 0;
    for (size_t i = 0; i < CHILD_N_FDS; i++)
        close(fds[i]); /* the child's alone now: when it dies, they close */
    close(err[1]);
    if (r < 0)
        return r;
    fcntl(broker, F_SETFL, O_NONBLOCK);
    fcntl(err_read, F_SETFL, O_NONBLOCK);
    if ((r = watch(b, pid, broker, err_read)) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return r;
    }
    TAKE_FD(broker);
    TAKE_FD(err_read);
    b->pid = pid;
    b->started++;
    b->lines_in.len = 0;
    return 0;
}

int backend_child_start(struct backend_child *b)
{
    if (b->pid > 0)
        return 0;
    struct argv a;
    argv_init(&a);
    int r = child_argv(b, &a);
    if (r == 0)
        r = spawn(b, a.v);
    argv_done(&a);
    return r;
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

int backend_child_new(sd_event *e, const struct backend_child_config *cfg,
                      backend_child_exit_fn on_exit, void *userdata, struct backend_child **ret)
{
    struct backend_child *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->event = sd_event_ref(e);
    b->lines = (struct log_ratelimit)LOG_RATELIMIT_INIT(1000u, LINES_PER_S);
    b->lines_in = (struct child_lines){.line = pass_line, .userdata = b};
    b->guest_cid = cfg->guest_cid;
    b->on_exit = on_exit;
    b->userdata = userdata;
    b->exe = own_executable();
    b->vhost_user_path = strdup(cfg->vhost_user_path);
    b->uds_path = strdup(cfg->uds_path);
    b->vm_name = cfg->vm_name ? strdup(cfg->vm_name) : NULL;
    b->user = cfg->user ? strdup(cfg->user) : NULL;
    if (!b->exe || !b->vhost_user_path || !b->uds_path || (cfg->vm_name && !b->vm_name) ||
        (cfg->user && !b->user)) {
        backend_child_free(b);
        return -ENOMEM;
    }
    *ret = b;
    return 0;
}

/* SIGTERM, then SIGKILL once STOP_GRACE_MS have passed; reaps it. */
static void stop_child(pid_t pid)
{
    kill(pid, SIGTERM);
    for (unsigned waited = 0; waited < STOP_GRACE_MS; waited += 20) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return;
        nanosleep(&(struct timespec){.tv_nsec = 20 * 1000000L}, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

void backend_child_free(struct backend_child *b)
{
    if (!b)
        return;
    b->child_src = sd_event_source_disable_unref(b->child_src);
    b->broker_src = sd_event_source_disable_unref(b->broker_src);
    if (b->pid > 0)
        stop_child(b->pid);
    if (b->err_src) { /* what it said on its way out */
        (void)child_lines_read(&b->lines_in, sd_event_source_get_io_fd(b->err_src));
        child_lines_flush(&b->lines_in);
        b->err_src = sd_event_source_disable_unref(b->err_src);
    }
    if (b->started) { /* the files of the sockets made here */
        unlink(b->vhost_user_path);
        unlink(b->uds_path);
    }
    sd_event_unref(b->event);
    free(b->exe);
    free(b->vm_name);
    free(b->vhost_user_path);
    free(b->uds_path);
    free(b->user);
    free(b);
}

void backend_child_get_status(const struct backend_child *b, struct backend_child_status *ret)
{
    *ret = (struct backend_child_status){.pid = b->pid,
                                         .restarts = b->started > 0 ? b->started - 1 : 0};
    snprintf(ret->last_exit, sizeof(ret->last_exit), "%s", b->last_exit);
}
