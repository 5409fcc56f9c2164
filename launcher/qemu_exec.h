/* qemu_exec: the QEMU child's side of a spawn, between fork and exec: the fixed fd layout (the
 * fds of `struct argv` at their child numbers, nothing else inherited), its own session, death
 * with the supervisor (PR_SET_PDEATHSIG), default signals; and the console log made for it
 * before, the owner's alone. */
#pragma once

#include "launcher/argv.h"

/* In the forked child: sets it up as above and execs A; stdout and stderr go to ERR_FD. */
_Noreturn void qemu_exec(const struct argv *a, int err_fd);
/* RUNTIME_DIR/console.log, created 0600 if missing: QEMU opens it with its own umask and keeps
 * the mode of a file that exists. */
int qemu_exec_console_log(const char *runtime_dir);
