/* run_log: where a supervisor's words go. Once the runtime directory is ours, stderr (the
 * supervisor's and its children's) is a pipe, and one thread that does nothing else copies what
 * comes out of it, as it comes, to: the caller (the terminal of `ocvm up` for the whole run, the
 * pipe to an `ocvm up -d` until its verdict), the VM's kept log (run_log_path; it survives a
 * failed start; the run before is NAME.log.1, and a run past RUN_LOG_MAX_BYTES goes on in a fresh
 * NAME.log) and, for `up -d`, RUNDIR/supervisor.log. A copy that fails (a full file system) costs
 * that copy alone: the others, the caller first, still get every line. Under systemd's journal
 * nothing changes: the journal keeps the lines. */
#pragma once

#include <stddef.h>

enum { RUN_LOG_MAX_BYTES = 1024 * 1024 };

struct run_log;

/* The kept log of VM NAME: $OCVM_LOG_DIR/NAME.log, else /var/log/ocvm/NAME.log for root, else
 * $XDG_STATE_HOME/ocvm/NAME.log or ~/.local/state/ocvm/NAME.log. -ENXIO: no home to put it in. */
int run_log_path(const char *name, char **ret);

/* Makes stderr the pipe and starts the copying; RUNDIR_LOG (or NULL) is one more copy. *ret is
 * NULL when stderr is the journal (nothing to do). A kept log that cannot be made is said once
 * and done without; the rest failing is an error (*ret_error says what). */
int run_log_open(const char *name, const char *rundir_log, struct run_log **ret, char **ret_error);
/* The caller has its verdict (`up -d`): what we wrote so far reaches it, then its fd is closed;
 * later lines go to the logs only. */
void run_log_detach_caller(struct run_log *l);
/* The kept log's path, or NULL when there is none. */
const char *run_log_kept_path(const struct run_log *l);
/* Copies what we wrote, gives stderr back to the caller (if still attached), frees. */
void run_log_close(struct run_log *l);
