/* accel: decides the facts about this host that the QEMU command line depends on, so that
 * qemu_argv stays pure. KVM is chosen for "auto" only when the CPU advertises vmx/svm and a
 * probe VM really runs on /dev/kvm (a KVM that opens but cannot run a guest is not chosen); the
 * kernel vsock backend only when /dev/vhost-vsock opens. */
#pragma once

#include "config/vm_config.h"

/* Resolves WANT (auto/kvm/tcg) to KVM or TCG. For an explicit "kvm" that cannot work, returns
 * -ENODEV and sets *why (static string). For "auto", *why says why TCG was picked, if it was. */
int accel_resolve(enum accel want, enum accel *ret, const char **why);
/* Runs a tiny real-mode guest (one HLT) on /dev/kvm; 0 if it exited with KVM_EXIT_HLT. */
int accel_kvm_probe(const char **why);
/* The host's TSC frequency in kHz (rdtsc against CLOCK_MONOTONIC_RAW over 20 ms), or 0 when it
 * cannot be known (no constant TSC, not x86). Under TCG the guest's TSC is the host's, and a
 * microvm guest (no HPET, no PM timer) may fail to calibrate it and hang at boot unless told. */
unsigned long accel_tsc_khz(void);
/* Resolves WANT (auto/kernel/user) to KERNEL or USER; -ENODEV for "kernel" without
 * /dev/vhost-vsock. */
int accel_vsock_resolve(enum vsock_backend want, enum vsock_backend *ret, const char **why);
