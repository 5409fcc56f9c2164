#include "launcher/qemu_proc.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "launcher/qemu_argv.h"
#include "launcher/runtime_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { CMDLINE_MAX = 64 * 1024, KILL_WAIT_MS = 5000 };

#define DELETED " (deleted)" /* what /proc/PID/exe adds once the binary was removed or replaced */

/* QEMU as qemu_exec()'s execvp finds it: a path as it is, a name in $PATH (glibc's default when
 * unset); canonical, as /proc/PID/exe reads. NULL in *RET when there is none; -ENOMEM. */
static int resolve_exe(const char *qemu, char **ret)
{
    *ret = NULL;
    if (strchr(qemu, '/')) {
        char *p = realpath(qemu, NULL);
        if (!p && qemu[0] == '/') /* gone since: the one still running was started from it */
            p = strdup(qemu);
        *ret = p;
        return p || errno != ENOMEM ? 0 : -ENOMEM;
    }
    const char *path = getenv("PATH");
    _cleanup_free_ char *copy = strdup(path ? path : "/bin:/usr/bin");
    if (!copy)
        return -ENOMEM;
    char *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        _cleanup_free_ char *p = NULL;
        struct stat st;
        if (d[0] != '/') /* relative to the supervisor's working directory: not known here */
            continue;
        if (asprintf(&p, "%s/%s", d, qemu) < 0)
            return -ENOMEM;
        if (access(p, X_OK) == 0 && stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            *ret = realpath(p, NULL);
            return *ret || errno != ENOMEM ? 0 : -ENOMEM;
        }
    }
    return 0;
}

int qemu_proc_id_init(struct qemu_proc_id *ret, const char *name, const char *rundir,
                      const char *qemu, const char *user)
{
    struct qemu_proc_id id = {.name = name, .rundir = rundir};
    int r = resolve_exe(qemu, &id.exe);
    if (r < 0)
        return r;
    id.uids[id.n_uids++] = geteuid();
    struct passwd *pw = geteuid() == 0 && user ? getpwnam(user) : NULL;
    if (pw && pw->pw_uid != geteuid())
        id.uids[id.n_uids++] = pw->pw_uid;
    *ret = id;
    return 0;
}

void qemu_proc_id_done(struct qemu_proc_id *id)
{
    free(id->exe);
    id->exe = NULL;
}

bool qemu_proc_exe_is(const char *link, const char *want)
{
    size_t n = strlen(want);
    return strncmp(link, want, n) == 0 && (link[n] == '\0' || strcmp(link + n, DELETED) == 0);
}

bool qemu_proc_exe_is_ocvm(const char *link)
{
    const char *base = strrchr(link, '/');
    base = base ? base + 1 : link;
    return strcmp(base, "ocvm") == 0 || strcmp(base, "ocvm" DELETED) == 0;
}

/* /proc/PID/exe into BUF (SIZE bytes); false when unreadable or too long. */
static bool read_exe(pid_t pid, char *buf, size_t size)
{
    char path[32];
    snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(path, buf, size);
    if (n < 0 || (size_t)n >= size)
        return false;
    buf[n] = '\0';
    return true;
}

/* PID's real uid and parent pid, from /proc/PID/status. */
static int read_status(pid_t pid, uid_t *ret_uid, pid_t *ret_ppid)
{
    char path[40], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f)
        return negative_errno();
    unsigned long uid = ULONG_MAX;
    int ppid = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "Uid:", 4) == 0 && sscanf(line + 4, "%lu", &uid) != 1)
            uid = ULONG_MAX;
        else if (strncmp(line, "PPid:", 5) == 0 && sscanf(line + 5, "%d", &ppid) != 1)
            ppid = -1;
    }
    if (uid == ULONG_MAX || ppid < 0)
        return -EIO;
    *ret_uid = (uid_t)uid;
    *ret_ppid = (pid_t)ppid;
    return 0;
}

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

bool qemu_proc_is(const struct qemu_proc_id *id, pid_t pid)
{
    char exe[PATH_MAX + sizeof(DELETED)];
    uid_t uid;
    pid_t ppid;
    if (!id->exe || read_status(pid, &uid, &ppid) < 0 || !read_exe(pid, exe, sizeof(exe)) ||
        !qemu_proc_exe_is(exe, id->exe))
        return false;
    bool ours = false;
    for (size_t i = 0; i < id->n_uids; i++)
        ours |= uid == id->uids[i];
    _cleanup_free_ char *buf = ours ? malloc(CMDLINE_MAX) : NULL;
    ssize_t n = buf ? read_cmdline(pid, buf, CMDLINE_MAX) : -ENOMEM;
    return n > 0 && qemu_proc_cmdline_matches(buf, (size_t)n, id->name, id->rundir);
}

int qemu_proc_find(const struct qemu_proc_id *id, pid_t *ret, size_t max)
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
        if (qemu_proc_is(id, (pid_t)pid))
            ret[found++] = (pid_t)pid;
    }
    closedir(d);
    return (int)found;
}

pid_t qemu_proc_supervisor(pid_t pid, const char *rundir)
{
    uid_t uid;
    pid_t ppid, holder;
    char exe[PATH_MAX + sizeof(DELETED)];
    if (read_status(pid, &uid, &ppid) < 0 || ppid <= 1)
        return 0;
    if (runtime_dir_lock_holder(rundir, &holder) == 0 && holder == ppid)
        return ppid;
    /* no holder shown here (its directory was removed), or another one (made again by a new
     * supervisor): the parent is still a supervisor if it is ocvm, run by root or by us */
    if (read_status(ppid, &uid, &holder) < 0 || (uid != 0 && uid != geteuid()) ||
        !read_exe(ppid, exe, sizeof(exe)) || !qemu_proc_exe_is_ocvm(exe))
        return 0;
    return ppid;
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

int qemu_proc_stop(const struct qemu_proc_id *id, pid_t pid, unsigned grace_ms)
{
    _cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return errno == ESRCH ? -ESRCH : negative_errno();
    /* checked after the pidfd is open: from here on PID cannot be another process */
    if (!qemu_proc_is(id, pid))
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
