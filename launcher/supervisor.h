/* supervisor: owns one running VM: the runtime directory, the QEMU child (spawned with a fixed fd
 * layout, in its own session, dying with us), its QMP connection and stderr, the readiness stages,
 * restarts with exponential back-off, and the bounded stop (powerdown -> quit -> SIGKILL). All of
 * it runs on one sd-event loop; `supervisor_run` returns the process exit code. */
#pragma once

#include "config/vm_config.h"

#include <stdint.h>

struct supervisor_options {
    enum accel accel;         /* resolved */
    enum vsock_backend vsock; /* resolved */
    uint64_t t0_usec;         /* CLOCK_MONOTONIC when `up` started */
    unsigned long tsc_khz;    /* see host_facts_tsc_khz() */
    int ready_fd;             /* -1, or a pipe to the `up -d` parent: one byte 'R' or 'F' */
    int detached;             /* `up -d`: RUNDIR/supervisor.log gets a copy (run_log.h) */
    const char *qemu_user;    /* QEMU drops to this user (-runas), or NULL: runs as we do */
};

/* Runs VM C until it is stopped or gives up. 0: stopped cleanly; 1: failed. */
int supervisor_run(const struct vm_config *c, const struct supervisor_options *o);
