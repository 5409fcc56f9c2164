/* privileges: what the root supervisor keeps once `ocvm up` has made everything only root can
 * make (the network and its TAP fds, the listeners, the staged secrets). It stays uid 0 (QEMU
 * and the vsock backend are exec'd as root and drop to machine.user themselves), but holds only
 * the capabilities a running VM still needs (privileges_supervisor_set()), in its effective,
 * permitted and bounding sets alike, none inheritable or ambient, and sets no_new_privs: what it
 * execs afterwards (QEMU on a restart, a new backend, virtiofsd) gets that set and nothing more.
 * docs/policy.md ("Privileges") says why each capability stays. */
#pragma once

#include "common/caps.h"
#include "config/vm_config.h"

#include <stdbool.h>
#include <stdint.h>

/* What the running VM still does that needs a capability. */
struct privileges_needs {
    bool network;      /* a TAP network to undo at exit: CAP_NET_ADMIN */
    bool other_user;   /* children that change user (QEMU -runas, the backend): CAP_SETUID,
                          CAP_SETGID, CAP_SETPCAP (they drop their bounding set), CAP_KILL (to
                          signal them once they run as that user) */
    bool virtiofsd_ro; /* a read-only virtiofs share: its daemon, started before each QEMU as
                          the VM's user, gets CAP_SYS_CHROOT (its chroot sandbox) and
                          CAP_SETPCAP (it empties its bounding set) */
    bool virtiofsd_rw; /* a read-write one: also what it serves files as their owners with
                          (CHOWN DAC_OVERRIDE FOWNER FSETID; SETUID SETGID are kept anyway) */
};

/* The capabilities the supervisor keeps for NEEDS (pure). */
uint64_t privileges_supervisor_set(const struct privileges_needs *needs);
/* SET as "cap_kill,cap_net_admin" (in capability order; "none" when empty); caller frees. */
int privileges_format(uint64_t set, char **ret);
/* The effective capability set of this process. */
int privileges_effective(uint64_t *ret);
/* Keeps SET (intersected with what this process holds) in the effective, permitted and bounding
 * sets, clears the inheritable and ambient sets, sets no_new_privs; *ret_kept is what it kept.
 * On failure -errno and *ret_step names what failed ("drop the bounding set", "capset", ...). */
int privileges_drop(uint64_t set, uint64_t *ret_kept, const char **ret_step);
/* Empties directory DIR (files only) as the user and group owning it: the supervisor, without
 * CAP_DAC_OVERRIDE, cannot enter a 0700 directory it gave to QEMU's user (the staged secrets).
 * 0 also when DIR does not exist. */
int privileges_empty_dir_as_owner(const char *dir);
/* The supervisor's step once the start is made: as root, keeps what VM C needs (QEMU drops to
 * QEMU_USER; NULL: QEMU runs as root, which needs root's capabilities, and nothing is dropped).
 * Logs what it kept, or why it failed (the caller stops the start). */
int privileges_supervisor_drop(const struct vm_config *c, const char *qemu_user);
