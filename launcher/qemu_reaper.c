#include "launcher/qemu_reaper.h"

#include "common/cleanup.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

enum { GRACE_MS = 5000 };

static _Noreturn void watch(int pidfd, int pipe_fd)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGTERM, SIG_DFL);
    struct pollfd p[2] = {{.fd = pidfd, .events = POLLIN}, {.fd = pipe_fd, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            _exit(1);
        if (p[0].revents) /* QEMU ended: nothing to watch */
            _exit(0);
        if (p[1].revents) /* the supervisor is gone */
            break;
    }
    syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0);
    if (poll(&p[0], 1, GRACE_MS) <= 0)
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    _exit(0);
}

int qemu_reaper_start(pid_t qemu_pid, pid_t *ret_pid, int *ret_fd)
{
    _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, qemu_pid, 0);
    if (pidfd < 0)
        return negative_errno();
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return negative_errno();
    _cleanup_close_ int rd = p[0], wr = p[1];
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return negative_errno();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the check below by accident */
        /* keep nothing of the supervisor's (its runtime-dir lock above all: a reaper holding
         * it would make a dead supervisor look alive) */
        int lo = pidfd < rd ? pidfd : rd, hi = pidfd < rd ? rd : pidfd;
        if (lo > 3)
            syscall(SYS_close_range, 3, lo - 1, 0);
        if (hi > lo + 1)
            syscall(SYS_close_range, lo + 1, hi - 1, 0);
        syscall(SYS_close_range, hi + 1, ~0U, 0);
        if (getppid() != parent) /* the supervisor died before we were set up */
            syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0);
        prctl(PR_SET_PDEATHSIG, 0); /* from here on the pipe tells us */
        watch(pidfd, rd);
    }
    *ret_pid = pid;
    *ret_fd = TAKE_FD(wr);
    return 0;
}
