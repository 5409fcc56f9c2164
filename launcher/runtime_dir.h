/* runtime_dir: the per-VM directory (/run/ocvm/NAME for root, $XDG_RUNTIME_DIR/ocvm/NAME for
 * other users, $OCVM_RUNTIME_DIR/NAME when set) that holds the lock, the state file, QMP and
 * console sockets and logs. It is 0700, its sockets 0600. Whoever holds the lock owns the VM;
 * acquiring it clears what a dead supervisor left; releasing it removes the whole directory.
 * It owns the names of the files in it: every other module asks it for a path. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/* The files of a VM's runtime directory. */
enum runtime_file {
    RUNTIME_LOCK,             /* "lock": flock()ed by the supervisor */
    RUNTIME_STATE,            /* "state.json": what `ocvm status` reads */
    RUNTIME_NETSETUP,         /* "netsetup.json": what to undo after a crash */
    RUNTIME_SUPERVISOR_LOG,   /* "supervisor.log": stderr of a detached supervisor */
    RUNTIME_QMP,              /* "qmp.sock" */
    RUNTIME_CONSOLE_SOCKET,   /* "console.sock": `ocvm console` attaches here */
    RUNTIME_CONSOLE_LOG,      /* "console.log": the serial console, as QEMU wrote it */
    RUNTIME_CONSOLE_LOCK,     /* "console.lock": held (fcntl) by the one attached `ocvm console` */
    RUNTIME_VHOST_USER_VSOCK, /* "vhost-user-vsock.sock": QEMU's end of the user backend */
    RUNTIME_HYBRID_VSOCK,     /* "vsock.sock": the hybrid socket host clients CONNECT on */
    RUNTIME_SECRETS,          /* "secrets/": staged secrets, shared read-only (secrets.h) */
    _RUNTIME_FILE_MAX,
};

struct runtime_dir {
    char *path;
    int lock_fd;
    char *stale_netsetup; /* netsetup.json a dead supervisor left (to undo its network), or NULL */
};

int runtime_dir_base(char **ret);
int runtime_dir_path(const char *name, char **ret);
/* Creates and locks the directory for NAME. -EBUSY when another supervisor holds it. */
int runtime_dir_acquire(const char *name, struct runtime_dir *ret);
/* Removes every file in the directory, the directory itself, and drops the lock. */
void runtime_dir_release(struct runtime_dir *rd);
/* 1 if a live supervisor holds the lock of PATH, 0 if not (stale or absent). */
int runtime_dir_is_locked(const char *path);
/* The pid of the process holding the lock of PATH, found without state.json: the kernel's
 * /proc/locks entry for the lock file's inode. -ESRCH when nobody holds it, or when the kernel
 * does not show the holder here (it runs in another pid namespace): never a pid to signal that
 * was not verified. */
int runtime_dir_lock_holder(const char *path, pid_t *ret);
/* The pid the holder wrote into PATH's lock file, unverified (it may be another pid namespace's,
 * or stale): to show, never to signal. -ESRCH when there is none. */
int runtime_dir_lock_pid_written(const char *path, pid_t *ret);
/* Whether RD's directory and lock file are still the ones we hold; if the directory was removed
 * under us (or its lock replaced), makes it again with a new lock file, held and holding our pid.
 * 0: nothing to do; 1: remade (the caller writes its files again); -errno. */
int runtime_dir_check(struct runtime_dir *rd);
/* Removes what a dead supervisor left in PATH (only when nobody holds the lock). */
int runtime_dir_clean_stale(const char *path);
/* The name of FILE in the directory, e.g. "state.json". */
const char *runtime_file_name(enum runtime_file file);
/* DIR/NAME of FILE, allocated; NULL when out of memory. Pure. */
char *runtime_file_path(const char *dir, enum runtime_file file);
/* DIR/virtiofs-TAG.sock: the socket of the virtiofsd serving share TAG. Pure. */
char *runtime_virtiofs_socket_path(const char *dir, const char *tag);
/* runtime_file_path() in RD's directory. */
char *runtime_dir_file(const struct runtime_dir *rd, enum runtime_file file);
/* A listening SOCK_STREAM Unix socket at PATH, mode 0600, non-blocking, CLOEXEC. */
int runtime_dir_listen(const char *path, int *ret_fd);
