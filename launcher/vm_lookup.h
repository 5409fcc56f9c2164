/* vm_lookup: what `status` and `down` know of a VM when they cannot trust state.json alone. The
 * supervisor is whoever holds RUNDIR/lock (the kernel's /proc/locks, else the pid it wrote in the
 * file); its QEMU is found by its command line (qemu_proc.h). A VM whose runtime directory was
 * removed under it is still found through its QEMU, whose parent is its supervisor; a QEMU whose
 * supervisor is dead is an orphan. */
#pragma once

#include "launcher/state.h"

#include <stdbool.h>
#include <sys/types.h>

enum { VM_LOOKUP_MAX_ORPHANS = 4 };

struct vm_lookup {
    bool running;                         /* a live supervisor owns the VM */
    bool have_state;                      /* st holds state.json as that supervisor wrote it */
    struct vm_state st;                   /* zero but for the pids when !have_state */
    pid_t supervisor_pid;                 /* 0: not running */
    pid_t qemu_pid;                       /* 0: none known */
    char why[200];                        /* how it was found when not by state.json, or "" */
    pid_t orphans[VM_LOOKUP_MAX_ORPHANS]; /* not running: QEMUs a dead supervisor left */
    unsigned n_orphans;
};

/* Looks VM NAME (runtime directory DIR) up. 0, or -errno when nothing could be read at all. */
int vm_lookup(const char *name, const char *dir, struct vm_lookup *ret);
/* Before a supervisor starts NAME's QEMU (holding the lock of DIR): stops each QEMU of NAME a dead
 * supervisor left (SIGTERM, SIGKILL after 2 s, through a pidfd), saying so. -EBUSY when one is
 * still run by a live supervisor (its directory was removed under it), -errno when one could not
 * be stopped: never a second QEMU beside it. Each refusal is logged, naming the pid. */
int vm_stop_orphans(const char *name, const char *dir);
