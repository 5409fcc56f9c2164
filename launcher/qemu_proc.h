/* qemu_proc: a VM's QEMU found without the supervisor's word (state.json gone, a supervisor
 * killed): by its command line, which carries `-name NAME,process=ocvm-NAME` and the console log
 * in the VM's runtime directory, never by a process name alone; and stopped through a pidfd
 * opened before the command line is checked once more, so a pid reused meanwhile is never
 * signalled. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Whether CMDLINE (LEN bytes of NUL-ended words, as /proc/PID/cmdline holds them) is the QEMU of
 * VM NAME whose runtime directory is RUNDIR. Pure. */
bool qemu_proc_cmdline_matches(const char *cmdline, size_t len, const char *name,
                               const char *rundir);
/* The pids of the QEMUs of NAME (at most MAX) into RET; returns how many, or -errno. */
int qemu_proc_find(const char *name, const char *rundir, pid_t *ret, size_t max);
/* PID's parent when it runs the same executable as we do (an ocvm supervisor still owns PID),
 * else 0 (an orphan, reparented). */
pid_t qemu_proc_supervisor(pid_t pid);
/* Stops PID, NAME's QEMU: SIGTERM, then SIGKILL after GRACE_MS (0: SIGKILL at once), and waits
 * up to 5 s more for it to end. 0 once it has ended; -ESRCH when PID is not (or no longer) that
 * QEMU; -ETIMEDOUT; -errno. */
int qemu_proc_stop(pid_t pid, const char *name, const char *rundir, unsigned grace_ms);
