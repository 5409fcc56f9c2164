/* child_lines: what a child process (QEMU, the vsock backend) writes on its stderr pipe, cut into
 * lines for the supervisor's log; and how a child ended, in words. A line longer than the buffer
 * goes on in pieces; what is left when the pipe ends goes on too. No empty line is passed. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

enum { CHILD_LINES_MAX = 1024 };

struct child_lines {
    void (*line)(void *userdata, char *line, size_t len); /* LINE is NUL-terminated, no '\n' */
    void *userdata;
    char buf[CHILD_LINES_MAX];
    size_t len;
};

/* Reads what FD (non-blocking) holds and passes on each whole line. Returns true when the pipe
 * has ended (what was left is passed on): the caller drops its event source. */
bool child_lines_read(struct child_lines *cl, int fd);
/* Passes on what is left, as a last line (a child that is gone). */
void child_lines_flush(struct child_lines *cl);

/* "exited with status N" or "killed by signal NAME", for a child's SIGCHLD SI. */
void child_exit_describe(const siginfo_t *si, char *buf, size_t size);
