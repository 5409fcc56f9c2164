/* backend_sandbox: what the vsock backend (and the host relay) gives up before it reads anything a
 * guest wrote. Once backend_sandbox_enter() returns 0 the process runs as USER (when it was root;
 * no supplementary groups), holds no capability in any set (the bounding set too, when it could
 * drop it: root can, an unprivileged process has nothing there to use), cannot gain any
 * (PR_SET_NO_NEW_PRIVS, not dumpable), and any system call outside the backend's list kills it with
 * SIGSYS (a seccomp filter built with libseccomp, default SCMP_ACT_KILL_PROCESS). A parent-death
 * signal set before survives the change of user. No filesystem call is on the list: the backend's
 * sockets are already open, and guest->host connections come from a broker (connect_broker.h)
 * unless `connects_itself`. */
#pragma once

#include <stdbool.h>

struct backend_sandbox {
    const char *user;     /* drop to this user when running as root; NULL: keep the uid */
    bool relay;           /* the host relay's list of calls instead of the backend's (see
                             relay_child_main.h); connects_itself is then ignored */
    bool connects_itself; /* also allow socket(AF_UNIX) + connect (guest->host connections to
                             UDS_PATH_PORT) and unlink (it removes the sockets it made) */
};

/* What the backend's and the relay's main() do: connects the journal's socket if logging goes
 * there (it cannot be opened once sandboxed), enters the sandbox, and logs the step that failed
 * (as STAGE). A test build (-DOCVM_TEST_HOOKS) with OCVM_TEST_FORBIDDEN_SYSCALL set then makes
 * a call outside the filter. */
int backend_sandbox_enter_logged(const struct backend_sandbox *sb, const char *stage);

/* Enters the sandbox; on failure returns -errno and sets *ret_step to what failed (a static
 * string, e.g. "setresuid"), and the caller must exit: part of it may be in force. */
int backend_sandbox_enter(const struct backend_sandbox *sb, const char **ret_step);
