#include "launcher/qemu_exec.h"

#include "launcher/child_proc.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "launcher/runtime_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

_Noreturn void qemu_exec(const struct argv *a, int err_fd)
{
    child_proc_reset_signals();
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    /* Move the fds to high numbers first so that no target number overwrites a source. */
    int high[16];
    size_t n = a->n_fds < ELEMENTSOF(high) ? a->n_fds : ELEMENTSOF(high);
    for (size_t i = 0; i < n; i++)
        high[i] = fcntl(a->fds[i].parent_fd, F_DUPFD_CLOEXEC, 100);
    if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 || dup2(err_fd, STDOUT_FILENO) < 0 ||
        dup2(err_fd, STDERR_FILENO) < 0)
        _exit(127);
    for (size_t i = 0; i < n; i++)
        if (high[i] < 0 || dup2(high[i], a->fds[i].child_fd) < 0) /* dup2 clears CLOEXEC */
            _exit(127);
    syscall(SYS_close_range, 3 + n, ~0U, 0);
    execvp(a->v[0], a->v);
    fprintf(stderr, "exec %s: %s\n", a->v[0], strerror(errno));
    _exit(127);
}

int qemu_exec_console_log(const char *runtime_dir)
{
    _cleanup_free_ char *path = runtime_file_path(runtime_dir, RUNTIME_CONSOLE_LOG);
    if (!path)
        return -ENOMEM;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fchmod(fd, 0600) < 0) {
        int r = negative_errno();
        if (fd >= 0)
            close(fd);
        return r;
    }
    close(fd);
    return 0;
}
