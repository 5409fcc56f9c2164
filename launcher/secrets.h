/* secrets: the files a VM's guest needs that nobody else may see (config key "secrets"), the
 * gateway token and the OpenClaw config rendered with it (policy/gateway_config.h). At each
 * `ocvm up` they are staged in RUNDIR/secrets (0700, files 0400, owned by QEMU's user when ocvm
 * runs as root) and reach the guest through a read-only virtiofs share, SECRETS_SHARE_TAG:
 * never through QEMU's argv, the kernel command line, a log, `ocvm status` or an error message,
 * which name paths, never contents. A source file must be its owner's alone (root's or the user
 * running ocvm). The gateway token, when no file is named for it, is made with getrandom(2)
 * (32 bytes, hex) and kept in the VM's state directory for the next start. */
#pragma once

#include "config/vm_config.h"

/* Longest secret file ocvm copies. */
#define SECRETS_MAX_SIZE (1u << 20)

/* The VM's state directory: $OCVM_STATE_DIR/NAME when set, /var/lib/ocvm/NAME for root, else
 * $XDG_STATE_HOME/ocvm/NAME or ~/.local/state/ocvm/NAME. */
int secrets_state_dir(const char *name, char **ret);
/* Adds the secrets share (source RUNDIR/secrets) to C, so that QEMU's argv and the virtiofsd
 * set include it; `ocvm cmdline` and `ocvm up` both call it. */
int secrets_plan_share(struct vm_config *c, const char *runtime_dir);
/* Whether C carries the secrets share (secrets_plan_share() was called: ocvm runs as root). */
bool secrets_planned(const struct vm_config *c);
/* The gateway token: read from secrets.gateway_token, or from the state directory, or made
 * there. At least 32 characters of printable ASCII. *error (one line) names a path only. */
int secrets_gateway_token(const struct vm_config *c, char **ret, char **error);
/* Stages every secret of C in RUNDIR/secrets, owned by OWNER (a user name, or NULL: ocvm's own
 * user). All or nothing: on failure the directory is removed. */
int secrets_stage(const struct vm_config *c, const char *runtime_dir, const char *owner,
                  char **error);
/* Reads secret file PATH (at most SECRETS_MAX_SIZE bytes) after checking it is a regular file,
 * owned by root or by us, and neither group- nor other-accessible. */
int secrets_read_file(const char *path, char **ret, size_t *ret_len, char **error);
