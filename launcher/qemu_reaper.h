/* qemu_reaper: makes a QEMU that changed its user (-runas) still die with its supervisor. The
 * kernel clears PR_SET_PDEATHSIG on a credential change, so such a QEMU would outlive a killed
 * supervisor. A small child of the supervisor (still root, with the parent-death signal set)
 * holds a pidfd of QEMU and the read end of a pipe only the supervisor writes to: when the pipe
 * closes (the supervisor is gone) it stops QEMU (SIGTERM, then SIGKILL); when QEMU ends, it ends.
 */
#pragma once

#include <sys/types.h>

/* Starts the reaper for QEMU_PID; *ret_pid is the reaper (reap it), *ret_fd the pipe end
 * the supervisor keeps open for as long as it lives. */
int qemu_reaper_start(pid_t qemu_pid, pid_t *ret_pid, int *ret_fd);
