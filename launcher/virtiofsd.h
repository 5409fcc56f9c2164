/* virtiofsd: one /usr/lib/qemu/virtiofsd per virtiofs share, started before each QEMU and gone
 * with it (virtiofsd exits when QEMU disconnects). ocvm opens the vhost-user listening socket
 * itself (RUNDIR/virtiofs-TAG.sock, 0600) and passes it with --fd, so QEMU never races its
 * creation. It runs as the VM's user (QEMU's), chroot(2)ed into the source by its own
 * sandbox=chroot, for which it gets CAP_SYS_CHROOT alone as an ambient capability (a read-write
 * share also the ones it serves files as their owners with: virtiofsd_user_caps()). A read_only
 * share's daemon runs under a seccomp filter of ocvm's on top of virtiofsd's own, which fails
 * every call that would change a file with EROFS, whatever the guest asks (virtiofsd has no
 * read-only option). Without a user (QEMU as root) it runs as root in the same chroot sandbox.
 * docs/policy.md, "Privileges".
 */
#pragma once

#include "config/vm_config.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define VIRTIOFSD_PATH "/usr/lib/qemu/virtiofsd"

struct virtiofsd_set {
    pid_t *pids; /* one per virtiofs share; 0 once reaped */
    size_t n;
};

/* Starts the daemons for C's virtiofs shares, as USER (NULL: as this process, root).
 * On failure nothing is left running, and *error names the share or the user (caller frees). */
int virtiofsd_start(const struct vm_config *c, const char *runtime_dir, const char *user,
                    struct virtiofsd_set *set, char **error);
/* The capabilities a daemon running as the VM's user is given for a share (pure): the one who
 * starts it must hold them (privileges.c keeps them in the supervisor). */
uint64_t virtiofsd_user_caps(bool read_only);
/* Loads, into this process, the filter that fails every file change with EROFS (an open for
 * writing, creating or truncating; mkdir, unlink, rename, link, chmod, chown, utimes, xattrs...).
 * -errno. */
int virtiofsd_deny_writes(void);
/* SIGTERM, then after a grace SIGKILL, to any still running; reaps them. */
void virtiofsd_stop(struct virtiofsd_set *set);
/* Marks PID reaped if it is one of ours (the supervisor reaps every child). True if it was. */
bool virtiofsd_reaped(struct virtiofsd_set *set, pid_t pid);
