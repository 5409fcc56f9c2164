#include "launcher/qemu_proc.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "launcher/qemu_argv.h"
#include "launcher/runtime_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

enum { CMDLINE_MAX = 64 * 1024, KILL_WAIT_MS = 5000 };

bool qemu_proc_cmdline_matches(const char *cmdline, size_t len, const char *name,
                               const char *rundir)
{
    _cleanup_free_ char *tag = NULL, *log = NULL, *esc = NULL, *want = NULL;
    if (asprintf(&tag, "%s,process=ocvm-%s", name, name) < 0 ||
        !(log = runtime_file_path(rundir, RUNTIME_CONSOLE_LOG)) || qemu_opt_escape(log, &esc) < 0 ||
        asprintf(&want, "logfile=%s,", esc) < 0)
        return false;
    bool named = false, in_dir = false;
    const char *prev = NULL;
    for (size_t off = 0; off < len;) {
        const char *w = cmdline + off;
        size_t n = strnlen(w, len - off);
        if (n == len - off)
            break; /* an unended word: not a command line we know */
        if (prev && strcmp(prev, "-name") == 0 && strcmp(w, tag) == 0)
            named = true;
        if (strstr(w, want))
            in_dir = true;
        prev = w;
        off += n + 1;
    }
    return named && in_dir;
}

/* /proc/PID/cmdline into BUF (SIZE bytes); its length, or -errno. */
static ssize_t read_cmdline(pid_t pid, char *buf, size_t size)
{
    char path[32];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return negative_errno();
    size_t len = 0;
    ssize_t n;
    while (len < size && (n = read(fd, buf + len, size - len)) > 0)
        len += (size_t)n;
    return (ssize_t)len;
}

static bool is_vm_qemu(pid_t pid, const char *name, const char *rundir)
{
    _cleanup_free_ char *buf = malloc(CMDLINE_MAX);
    ssize_t n = buf ? read_cmdline(pid, buf, CMDLINE_MAX) : -ENOMEM;
    return n > 0 && qemu_proc_cmdline_matches(buf, (size_t)n, name, rundir);
}

int qemu_proc_find(const char *name, const char *rundir, pid_t *ret, size_t max)
{
    DIR *d = opendir("/proc");
    if (!d)
        return negative_errno();
    size_t found = 0;
    struct dirent *de;
    while (found < max && (de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1 || pid == getpid())
            continue;
        if (is_vm_qemu((pid_t)pid, name, rundir))
            ret[found++] = (pid_t)pid;
    }
    closedir(d);
    return (int)found;
}

pid_t qemu_proc_supervisor(pid_t pid)
{
    char path[40], line[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f || !fgets(line, sizeof(line), f))
        return 0;
    const char *p = strrchr(line, ')'); /* the name in parentheses may hold anything */
    int ppid;
    if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1 || ppid <= 1)
        return 0;
    struct stat ours, theirs;
    snprintf(path, sizeof(path), "/proc/%d/exe", ppid);
    bool same = stat("/proc/self/exe", &ours) == 0 && stat(path, &theirs) == 0 &&
                ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino;
    return same ? (pid_t)ppid : 0;
}

static int wait_pidfd(int pidfd, unsigned ms)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    int r;
    do
        r = poll(&p, 1, (int)ms);
    while (r < 0 && errno == EINTR);
    return r > 0 ? 0 : r == 0 ? -ETIMEDOUT : negative_errno();
}

int qemu_proc_stop(pid_t pid, const char *name, const char *rundir, unsigned grace_ms)
{
    _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return errno == ESRCH ? -ESRCH : negative_errno();
    /* checked after the pidfd is open: from here on PID cannot be another process */
    if (!is_vm_qemu(pid, name, rundir))
        return -ESRCH;
    if (grace_ms) {
        if (syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0) < 0 && errno != ESRCH)
            return negative_errno();
        if (wait_pidfd(pidfd, grace_ms) == 0)
            return 0;
    }
    if (syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
        return negative_errno();
    return wait_pidfd(pidfd, KILL_WAIT_MS);
}
