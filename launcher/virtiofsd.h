/* virtiofsd: one /usr/lib/qemu/virtiofsd per virtiofs share, started before each QEMU and gone
 * with it (virtiofsd exits when QEMU disconnects). ocvm opens the vhost-user listening socket
 * itself (RUNDIR/virtiofs-TAG.sock, 0600) and passes it with --fd, so QEMU never races its
 * creation. A read_only share is served from a read-only bind mount in a mount namespace of the
 * daemon's own: the kernel refuses writes, whatever the guest asks (virtiofsd has no such option).
 */
#pragma once

#include "config/vm_config.h"

#include <sys/types.h>

#define VIRTIOFSD_PATH "/usr/lib/qemu/virtiofsd"

struct virtiofsd_set {
    pid_t *pids; /* one per virtiofs share; 0 once reaped */
    size_t n;
};

/* Starts the daemons for C's virtiofs shares. On failure nothing is left running, and *error
 * names the share (caller frees). */
int virtiofsd_start(const struct vm_config *c, const char *runtime_dir, struct virtiofsd_set *set,
                    char **error);
/* SIGTERM, then after a grace SIGKILL, to any still running; reaps them. */
void virtiofsd_stop(struct virtiofsd_set *set);
/* Marks PID reaped if it is one of ours (the supervisor reaps every child). True if it was. */
bool virtiofsd_reaped(struct virtiofsd_set *set, pid_t pid);
