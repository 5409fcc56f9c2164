/* vm_lookup: what `status` and `down` know of a VM when they cannot trust state.json alone. The
 * supervisor is whoever holds RUNDIR/lock, as the kernel's /proc/locks shows it (a holder it does
 * not show, in another pid namespace, is named but never signalled); its QEMU is found by its
 * command line, binary and user (qemu_proc.h). A VM whose runtime directory was removed under it
 * is still found through its QEMU, whose parent is its supervisor (an ocvm run by root or by
 * us); a QEMU whose supervisor is dead is an orphan. */
#pragma once

#include "config/vm_config.h"
#include "launcher/qemu_proc.h"
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

/* The QEMU of VM NAME whose runtime directory is DIR, as its config says: C when given, else the
 * file CONFIG_PATH, else NAME's file in the config directory; machine.qemu's and machine.user's
 * defaults when none can be read. Release with qemu_proc_id_done(). 0 or -ENOMEM. */
int vm_lookup_qemu_id(const struct vm_config *c, const char *name, const char *config_path,
                      const char *dir, struct qemu_proc_id *ret);
/* Looks ID's VM up. 0, or -errno when nothing could be read at all. */
int vm_lookup(const struct qemu_proc_id *id, struct vm_lookup *ret);
/* Whether SUP is still the supervisor of ID's VM: the holder of its runtime directory's lock,
 * or, when nobody holds it, the parent of one of its QEMUs that is ocvm run by root or by us.
 * Asked again once a pidfd on SUP is open, before it is signalled (its pid may have been reused).
 */
bool vm_lookup_supervisor_is(const struct qemu_proc_id *id, pid_t sup);
/* Before a supervisor starts C's QEMU (holding the lock of DIR): stops each QEMU of the VM a dead
 * supervisor left (SIGTERM, SIGKILL after 2 s, through a pidfd), saying so. -EBUSY when one is
 * still run by a live supervisor (its directory was removed under it), -errno when one could not
 * be stopped: never a second QEMU beside it. Each refusal is logged, naming the pid. */
int vm_stop_orphans(const struct vm_config *c, const char *dir);
