/* qemu_proc: a VM's QEMU found without the supervisor's word (state.json gone, a supervisor
 * killed): by its command line, which carries `-name NAME,process=ocvm-NAME` and the console log
 * in the VM's runtime directory, and by who runs it (the configured QEMU binary, run by us or by
 * machine.user), never by a process name or command line alone; and stopped through a pidfd
 * opened before all of that is checked once more, so a pid reused meanwhile is never signalled. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* What a VM's QEMU is. */
struct qemu_proc_id {
    const char *name;   /* the VM's name (borrowed) */
    const char *rundir; /* its runtime directory (borrowed) */
    char *exe;          /* machine.qemu as execvp finds it, canonical; NULL: not found, no match */
    uid_t uids[2];      /* the real uids it may run as: ours, and machine.user's when we are root */
    size_t n_uids;
};

/* The QEMU of VM NAME (runtime directory RUNDIR) whose config says machine.qemu QEMU (a path, or
 * a name looked up in $PATH as the launcher's execvp does) and machine.user USER (NULL: none;
 * counted only when we are root, as host_facts does: QEMU runs as root, then drops to it). 0, or
 * -ENOMEM; a binary or user that does not exist is not an error: nothing runs as it. */
int qemu_proc_id_init(struct qemu_proc_id *ret, const char *name, const char *rundir,
                      const char *qemu, const char *user);
void qemu_proc_id_done(struct qemu_proc_id *id);

/* Whether CMDLINE (LEN bytes of NUL-ended words, as /proc/PID/cmdline holds them) is the QEMU of
 * VM NAME whose runtime directory is RUNDIR. Pure. */
bool qemu_proc_cmdline_matches(const char *cmdline, size_t len, const char *name,
                               const char *rundir);
/* Whether LINK (as /proc/PID/exe reads) is the binary WANT, also once WANT was replaced (a
 * package upgrade: LINK then ends in " (deleted)"). Pure. */
bool qemu_proc_exe_is(const char *link, const char *want);
/* Whether LINK (as /proc/PID/exe reads) is an ocvm binary, replaced since or not. Pure. */
bool qemu_proc_exe_is_ocvm(const char *link);
/* Whether PID is ID's QEMU: its command line, its binary and its real uid. */
bool qemu_proc_is(const struct qemu_proc_id *id, pid_t pid);
/* The pids of ID's QEMUs (at most MAX) into RET; returns how many, or -errno. */
int qemu_proc_find(const struct qemu_proc_id *id, pid_t *ret, size_t max);
/* The supervisor still running PID (a QEMU of the VM whose runtime directory is RUNDIR): PID's
 * parent when it holds RUNDIR's lock, or when it is an ocvm binary run by root or by us (its
 * directory was removed, or made again by someone else); else 0 (an orphan, reparented). */
pid_t qemu_proc_supervisor(pid_t pid, const char *rundir);
/* Stops PID, ID's QEMU: SIGTERM, then SIGKILL after GRACE_MS (0: SIGKILL at once), and waits up
 * to 5 s more for it to end. 0 once it has ended; -ESRCH when PID is not (or no longer) that
 * QEMU; -ETIMEDOUT; -errno. */
int qemu_proc_stop(const struct qemu_proc_id *id, pid_t pid, unsigned grace_ms);
