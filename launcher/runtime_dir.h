/* runtime_dir: the per-VM directory (/run/ocvm/NAME for root, $XDG_RUNTIME_DIR/ocvm/NAME for
 * other users, $OCVM_RUNTIME_DIR/NAME when set) that holds the lock, the state file, QMP and
 * console sockets and logs. It is 0700, its sockets 0600. Whoever holds the lock owns the VM;
 * acquiring it clears what a dead supervisor left; releasing it removes the whole directory. */
#pragma once

#include <stdbool.h>

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
/* Removes what a dead supervisor left in PATH (only when nobody holds the lock). */
int runtime_dir_clean_stale(const char *path);
/* PATH/FILE, allocated. */
char *runtime_dir_file(const struct runtime_dir *rd, const char *file);
/* A listening SOCK_STREAM Unix socket at PATH, mode 0600, non-blocking, CLOEXEC. */
int runtime_dir_listen(const char *path, int *ret_fd);
