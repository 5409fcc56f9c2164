/* child_proc: a helper process of the supervisor (the vsock backend, the host relay), which is
 * this program (the file /proc/self/exe names) run again as one of its verbs, handed a fixed set
 * of fds at 3, 4, ... and nothing else open. It runs in its own session (Ctrl-C on the terminal
 * reaches the supervisor alone, which stops it in order), dies with the supervisor (parent-death
 * signal), and what it writes on stdout and stderr is passed on to our stderr line by line, with
 * control characters replaced and at most LINES_PER_S lines a second: a child a guest took over
 * could write anything. Its end is reported to the owner. */
#pragma once

#include "common/log.h"
#include "launcher/child_lines.h"

#include <stddef.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

struct child_proc;
/* The child PID ended (HOW: "exited with status 1", "killed by signal KILL"). */
typedef void (*child_proc_exit_fn)(struct child_proc *p, pid_t pid, const char *how);

struct child_proc {
    sd_event *event;
    const char *what; /* for our own lines about it: "vsock-backend" */
    char *exe;
    child_proc_exit_fn on_exit;
    void *owner;
    pid_t pid;          /* 0 while none runs */
    unsigned started;   /* children spawned so far */
    char last_exit[96]; /* how the last one ended, or "" */
    sd_event_source *child_src, *err_src;
    struct child_lines lines_in;
    struct log_ratelimit lines;
};

/* In a forked child before its exec: no signal blocked or handled, a session of its own (Ctrl-C
 * on the terminal reaches the supervisor alone, which stops its children in order). */
void child_proc_reset_signals(void);

/* What `ocvm status` says of a child: its pid (0 while none runs), the children started after the
 * first, and how the last one ended ("killed by signal SYS"), or "". */
struct child_proc_status {
    pid_t pid;
    unsigned restarts;
    char last_exit[96];
};

void child_proc_get_status(const struct child_proc *p, struct child_proc_status *ret);

/* Prepares P (spawns nothing). WHAT is kept, not copied. */
int child_proc_init(struct child_proc *p, sd_event *e, const char *what, child_proc_exit_fn on_exit,
                    void *owner);
/* Spawns `EXE ARGV...` with FDS[i] as fd 3+i (N of them; our copies stay ours to close). */
int child_proc_spawn(struct child_proc *p, char **argv, const int *fds, size_t n);
/* Stops the child if one runs (SIGTERM; SIGKILL after 2 s), reaps it and passes on its last
 * lines; on_exit is not called. */
void child_proc_stop(struct child_proc *p);
/* Stops the child and frees what P holds. */
void child_proc_done(struct child_proc *p);
