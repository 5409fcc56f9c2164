/* host_facts: what this host can do that a VM's QEMU command line depends on, found once per
 * `ocvm up` (or `ocvm cmdline`) so that qemu_argv stays pure. KVM is chosen for "auto" only when
 * the CPU advertises vmx/svm and a probe VM really runs on /dev/kvm (a KVM that opens but cannot
 * run a guest is not chosen); the kernel vsock backend only when /dev/vhost-vsock opens; under
 * TCG, the host's TSC rate for the guest's tsc_early_khz=. */
#pragma once

#include "config/vm_config.h"

struct host_facts {
    enum accel accel;         /* KVM or TCG */
    const char *tcg_why;      /* accel "auto" fell back to TCG: why (static string); else NULL */
    enum vsock_backend vsock; /* KERNEL or USER (USER when the VM has no vsock) */
    unsigned long tsc_khz;    /* under TCG: the host TSC in kHz, 0 when unknown; 0 under KVM */
    const char *qemu_user;    /* QEMU drops to this user (machine.user, when ocvm runs as root);
                               * NULL: QEMU runs as ocvm itself. Borrowed from the config. */
};

/* The facts VM C needs. For an explicit choice this host cannot honour (accel "kvm" without a
 * usable KVM, vsock.backend "kernel" without /dev/vhost-vsock) returns -ENODEV, and for a
 * machine.user that does not exist -ENOENT, with *ret_key the config key and *ret_why the
 * reason (static strings). */
int host_facts_resolve(const struct vm_config *c, struct host_facts *ret, const char **ret_key,
                       const char **ret_why);

/* Runs a tiny real-mode guest (one HLT) on /dev/kvm; 0 if it exited with KVM_EXIT_HLT. */
int host_facts_kvm_probe(const char **why);
/* The host's TSC frequency in kHz (rdtsc against CLOCK_MONOTONIC_RAW over 20 ms), or 0 when it
 * cannot be known (no constant TSC, not x86). Under TCG the guest's TSC is the host's, and a
 * microvm guest (no HPET, no PM timer) may fail to calibrate it and hang at boot unless told. */
unsigned long host_facts_tsc_khz(void);
