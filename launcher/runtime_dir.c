#include "launcher/runtime_dir.h"

#include "common/cleanup.h"
#include "common/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

int runtime_dir_base(char **ret)
{
    const char *env = getenv("OCVM_RUNTIME_DIR");
    int r;
    if (env && *env)
        r = asprintf(ret, "%s", env);
    else if (geteuid() == 0)
        r = asprintf(ret, "/run/ocvm");
    else if ((env = getenv("XDG_RUNTIME_DIR")) && *env)
        r = asprintf(ret, "%s/ocvm", env);
    else
        return -ENXIO; /* an unprivileged user without a runtime directory */
    return r < 0 ? -ENOMEM : 0;
}

int runtime_dir_path(const char *name, char **ret)
{
    _cleanup_free_ char *base = NULL;
    int r = runtime_dir_base(&base);
    if (r < 0)
        return r;
    return asprintf(ret, "%s/%s", base, name) < 0 ? -ENOMEM : 0;
}

/* Removes what directory DFD holds (one level of subdirectory too: secrets/), but the lock at the
 * top (TOP). Takes DFD. */
static int remove_contents_at(int dfd, bool top)
{
    DIR *d = fdopendir(dfd); /* owns dfd from here */
    if (!d) {
        int r = negative_errno();
        close(dfd);
        return r;
    }
    int r = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            (top && strcmp(de->d_name, runtime_file_name(RUNTIME_LOCK)) == 0))
            continue;
        int flags = 0;
        if (top && de->d_type == DT_DIR) {
            int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
            int s = sub < 0 ? negative_errno() : remove_contents_at(sub, false);
            if (s < 0 && s != -ENOENT && r == 0)
                r = s;
            flags = AT_REMOVEDIR;
        }
        if (unlinkat(dirfd(d), de->d_name, flags) < 0 && errno != ENOENT && r == 0)
            r = negative_errno();
    }
    closedir(d);
    return r;
}

static int remove_contents(const char *path)
{
    int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    return dfd < 0 ? negative_errno() : remove_contents_at(dfd, true);
}

/* Our pid in the lock file we hold, for `status` and `down` when state.json is gone. */
static int write_lock_pid(int fd)
{
    char buf[16];
    int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0)
        return negative_errno();
    ssize_t w = pwrite(fd, buf, (size_t)n, 0);
    return w < 0 ? negative_errno() : w != n ? -EIO : 0;
}

int runtime_dir_acquire(const char *name, struct runtime_dir *ret)
{
    _cleanup_free_ char *base = NULL, *path = NULL, *lock = NULL;
    int r = runtime_dir_base(&base);
    if (r < 0)
        return r;
    if (mkdir(base, 0711) < 0 && errno != EEXIST)
        return negative_errno();
    if (asprintf(&path, "%s/%s", base, name) < 0 || !(lock = runtime_file_path(path, RUNTIME_LOCK)))
        return -ENOMEM;
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return negative_errno();
    struct stat st;
    if (lstat(path, &st) < 0)
        return negative_errno();
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
        return -EPERM; /* not ours: refuse to put sockets there */
    if (chmod(path, 0700) < 0)
        return negative_errno();
    _cleanup_close_ int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return negative_errno();
    if (flock(fd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? -EBUSY : negative_errno();
    /* A releasing supervisor unlinks the lock file before closing it: if we locked that
     * unlinked file, the lock protects nothing. Insist the file we hold is the one at the path. */
    struct stat held, now;
    if (fstat(fd, &held) < 0)
        return negative_errno();
    if (stat(lock, &now) < 0 || held.st_dev != now.st_dev || held.st_ino != now.st_ino)
        return -EBUSY;
    if ((r = write_lock_pid(fd)) < 0)
        return r;
    /* A dead supervisor's network record is handed to the caller before the rest goes. */
    _cleanup_free_ char *net_path = runtime_file_path(path, RUNTIME_NETSETUP);
    char *stale = NULL;
    if (!net_path)
        return -ENOMEM;
    _cleanup_fclose_ FILE *f = fopen(net_path, "re");
    if (f) {
        size_t len = 0;
        stale = calloc(1, 4097);
        if (stale && (len = fread(stale, 1, 4096, f)) == 0) {
            free(stale);
            stale = NULL;
        }
    }
    r = remove_contents(path); /* whatever a dead supervisor left */
    if (r < 0) {
        free(stale);
        return r;
    }
    ret->path = TAKE_PTR(path);
    ret->lock_fd = TAKE_FD(fd);
    ret->stale_netsetup = stale;
    return 0;
}

void runtime_dir_release(struct runtime_dir *rd)
{
    if (!rd->path)
        return;
    remove_contents(rd->path);
    _cleanup_free_ char *lock = NULL;
    if ((lock = runtime_file_path(rd->path, RUNTIME_LOCK)))
        unlink(lock);
    rmdir(rd->path);
    if (rd->lock_fd >= 0)
        close(rd->lock_fd);
    free(rd->path);
    free(rd->stale_netsetup);
    *rd = (struct runtime_dir){.lock_fd = -1};
}

int runtime_dir_is_locked(const char *path)
{
    _cleanup_free_ char *lock = NULL;
    if (!(lock = runtime_file_path(path, RUNTIME_LOCK)))
        return -ENOMEM;
    _cleanup_close_ int fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? 0 : negative_errno();
    if (flock(fd, LOCK_SH | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? 1 : negative_errno();
    return 0;
}

/* The pid /proc/locks gives for a FLOCK on DEV:INO, or 0. A line reads
 * "1: FLOCK  ADVISORY  WRITE 19237 fe:00:10969634 0 EOF" (a blocked waiter's begins "1: -> "). */
static pid_t proc_locks_holder(dev_t dev, ino_t ino)
{
    _cleanup_fclose_ FILE *f = fopen("/proc/locks", "re");
    char line[256];
    while (f && fgets(line, sizeof(line), f)) {
        char type[16], mode[16], access[16];
        int pid;
        unsigned maj, min;
        unsigned long long inode;
        if (strstr(line, "->") || sscanf(line, "%*d: %15s %15s %15s %d %x:%x:%llu", type, mode,
                                         access, &pid, &maj, &min, &inode) != 7)
            continue;
        if (strcmp(type, "FLOCK") == 0 && pid > 0 && inode == (unsigned long long)ino &&
            makedev(maj, min) == dev)
            return (pid_t)pid;
    }
    return 0;
}

int runtime_dir_lock_holder(const char *path, pid_t *ret)
{
    int r = runtime_dir_is_locked(path);
    if (r <= 0)
        return r < 0 ? r : -ESRCH;
    _cleanup_free_ char *lock = runtime_file_path(path, RUNTIME_LOCK);
    if (!lock)
        return -ENOMEM;
    _cleanup_close_ int fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0)
        return negative_errno();
    pid_t pid = proc_locks_holder(st.st_dev, st.st_ino);
    if (pid <= 0)
        return -ESRCH; /* held, by a process this pid namespace does not show */
    *ret = pid;
    return 0;
}

int runtime_dir_lock_pid_written(const char *path, pid_t *ret)
{
    _cleanup_free_ char *lock = runtime_file_path(path, RUNTIME_LOCK);
    if (!lock)
        return -ENOMEM;
    _cleanup_close_ int fd = open(lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return negative_errno();
    char buf[16] = "";
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int v;
    char end;
    if (n <= 0 || sscanf(buf, "%d%c", &v, &end) != 2 || end != '\n' || v <= 1)
        return -ESRCH;
    *ret = (pid_t)v;
    return 0;
}

int runtime_dir_check(struct runtime_dir *rd)
{
    _cleanup_free_ char *lock = runtime_file_path(rd->path, RUNTIME_LOCK);
    struct stat held, now;
    if (!lock)
        return -ENOMEM;
    if (fstat(rd->lock_fd, &held) < 0)
        return negative_errno();
    if (stat(lock, &now) == 0 && now.st_dev == held.st_dev && now.st_ino == held.st_ino)
        return 0; /* still ours */
    if (mkdir(rd->path, 0700) < 0 && errno != EEXIST)
        return negative_errno();
    struct stat st;
    if (lstat(rd->path, &st) < 0)
        return negative_errno();
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
        return -EPERM;
    _cleanup_close_ int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return negative_errno();
    if (flock(fd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? -EBUSY : negative_errno(); /* someone else's now */
    int r = write_lock_pid(fd);
    if (r < 0)
        return r;
    close(rd->lock_fd); /* its file is gone: it protected nothing any more */
    rd->lock_fd = TAKE_FD(fd);
    return 1;
}

int runtime_dir_clean_stale(const char *path)
{
    _cleanup_free_ char *lock = NULL;
    if (!(lock = runtime_file_path(path, RUNTIME_LOCK)))
        return -ENOMEM;
    _cleanup_close_ int fd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno != ENOENT)
        return negative_errno();
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? -EBUSY : negative_errno();
    int r = remove_contents(path);
    if (r < 0 && r != -ENOENT)
        return r;
    unlink(lock);
    if (rmdir(path) < 0 && errno != ENOENT)
        return negative_errno();
    return 0;
}

static const char *const runtime_file_names[_RUNTIME_FILE_MAX] = {
    [RUNTIME_LOCK] = "lock",
    [RUNTIME_STATE] = "state.json",
    [RUNTIME_NETSETUP] = "netsetup.json",
    [RUNTIME_SUPERVISOR_LOG] = "supervisor.log",
    [RUNTIME_QMP] = "qmp.sock",
    [RUNTIME_CONSOLE_SOCKET] = "console.sock",
    [RUNTIME_CONSOLE_LOG] = "console.log",
    [RUNTIME_CONSOLE_LOCK] = "console.lock",
    [RUNTIME_VHOST_USER_VSOCK] = "vhost-user-vsock.sock",
    [RUNTIME_HYBRID_VSOCK] = "vsock.sock",
    [RUNTIME_SECRETS] = "secrets",
};

const char *runtime_file_name(enum runtime_file file)
{
    return file < _RUNTIME_FILE_MAX ? runtime_file_names[file] : NULL;
}

char *runtime_file_path(const char *dir, enum runtime_file file)
{
    const char *name = runtime_file_name(file);
    char *s;
    return name && asprintf(&s, "%s/%s", dir, name) >= 0 ? s : NULL;
}

char *runtime_virtiofs_socket_path(const char *dir, const char *tag)
{
    char *s;
    return asprintf(&s, "%s/virtiofs-%s.sock", dir, tag) < 0 ? NULL : s;
}

char *runtime_dir_file(const struct runtime_dir *rd, enum runtime_file file)
{
    return runtime_file_path(rd->path, file);
}

int runtime_dir_listen(const char *path, int *ret_fd)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return negative_errno();
    if (unlink(path) < 0 && errno != ENOENT)
        return negative_errno();
    mode_t old = umask(0177);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0 || chmod(path, 0600) < 0 || listen(fd, 16) < 0)
        return negative_errno();
    *ret_fd = TAKE_FD(fd);
    return 0;
}
