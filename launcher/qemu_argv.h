/* qemu_argv: turns a struct vm_config plus the host facts decided elsewhere (accelerator, vsock
 * backend, runtime paths, open fds) into QEMU's argv. Pure: touches no file, process or clock, so
 * `ocvm cmdline` and the golden tests see exactly what `ocvm up` runs. The child's fd layout is
 * fixed: QMP listener at 3, console listener at 4, then one fd per TAP queue. */
#pragma once

#include "launcher/argv.h"
#include "config/vm_config.h"

struct qemu_plan {
    enum accel accel;         /* resolved: ACCEL_KVM or ACCEL_TCG */
    enum vsock_backend vsock; /* resolved: KERNEL or USER (ignored when vsock is disabled) */
    const char *runtime_dir;  /* sockets and logs live here */
    int qmp_fd, console_fd;   /* listening sockets in the parent, or -1 when only planning */
    const int *tap_fds;       /* one per queue; NULL when only planning */
    unsigned tap_queues;      /* 0 when there is no network */
    unsigned long tsc_khz;    /* host TSC for a TCG microvm guest's tsc_early_khz=, or 0 */
    const char *qemu_user;    /* -runas USER (ocvm runs as root), or NULL: QEMU runs as ocvm */
};

/* Number of TAP queues for C: one per vCPU, up to 8, when there is a network; else 0. */
unsigned qemu_tap_queues(const struct vm_config *c);
/* The kernel command line QEMU gets: boot.cmdline plus what ocvm adds (reboot=t, the TSC rate
 * for TCG microvm guests, the guest network). */
int qemu_kernel_cmdline(const struct vm_config *c, const struct qemu_plan *p, char **ret);
/* True when guest RAM must be a shareable memfd: a vhost-user device (the user vsock backend with
 * resolved backend VSOCK, a virtiofs share) maps it. */
bool qemu_shared_memory(const struct vm_config *c, enum vsock_backend vsock);
/* Appends VALUE to A with every ',' doubled (QEMU's option syntax); fails on '\n'. */
int qemu_opt_escape(const char *value, char **ret);
/* Builds the whole argv into A (initialised by the caller). Returns argv_error(A). */
int qemu_argv_build(const struct vm_config *c, const struct qemu_plan *p, struct argv *a);
