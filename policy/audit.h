/* audit: `ocvm check` against the live system, for what the static rules cannot see: the VM's
 * network and nft table as netsetup left them, who listens on the gateway's and the forwards'
 * host ports, the runtime directory's modes, whether the gateway port answers on the guest's TAP
 * address, QEMU's user and seccomp mode, the vsock backend's and virtiofsd's sandboxes. Each
 * finding has a stable id (OCVM-L001 ...) and a fix hint. Reads /proc, stats files, and makes one
 * TCP probe that is expected to fail. */
#pragma once

#include "config/vm_config.h"
#include "netsetup/plan.h"

#include <stddef.h>
#include <sys/types.h>

struct audit_input {
    const struct vm_config *c;
    const struct netsetup_plan *plan; /* the VM's network as planned; NULL: none */
    const char *runtime_dir;          /* the running VM's runtime directory */
    const char *const *private_files; /* files in it that must be the owner's alone (NULL-ended) */
    pid_t qemu_pid;                   /* the running QEMU, 0: none */
    pid_t backend_pid;                /* the user vsock backend's child, 0: none */
    pid_t relay_pid;                  /* the host relay's child, 0: none */
    pid_t supervisor_pid;             /* whose virtiofsd children are audited, 0: none */
    const char *secrets_dir;          /* the staged secrets (a read-only share), or NULL */
    unsigned probe_timeout_ms;        /* for the TAP probe; 0: 1000 */
};

struct audit_finding {
    const char *id; /* "OCVM-L002" */
    char *line;     /* "what is wrong; fix: what to do", without the id */
};

struct audit_report {
    struct audit_finding *findings;
    size_t n;
};

/* The live checks of IN into *RET (free with audit_report_done). -errno with *error (one line)
 * when a check could not be made at all. */
int audit_run(const struct audit_input *in, struct audit_report *ret, char **error);
void audit_report_done(struct audit_report *r);

/* For tests: whether the 32 hex digits of a /proc/net/tcp6 address (or the 8 of tcp) name a
 * loopback address (127.0.0.0/8, ::1, ::ffff:127.0.0.0/104). */
int audit_proc_addr_is_loopback(const char *hex);
