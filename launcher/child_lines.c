#include "launcher/child_lines.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Passes on every whole line in the buffer; with ALL, what is left too (also when the buffer
 * is full: a line longer than it is cut). */
static void drain(struct child_lines *cl, bool all)
{
    size_t start = 0;
    for (size_t i = 0; i < cl->len; i++) {
        if (cl->buf[i] != '\n')
            continue;
        cl->buf[i] = '\0';
        if (i > start)
            cl->line(cl->userdata, cl->buf + start, i - start);
        start = i + 1;
    }
    memmove(cl->buf, cl->buf + start, cl->len - start);
    cl->len -= start;
    if (cl->len > 0 && (all || cl->len == sizeof(cl->buf))) {
        size_t n = cl->len == sizeof(cl->buf) ? cl->len - 1 : cl->len;
        cl->buf[n] = '\0';
        cl->line(cl->userdata, cl->buf, n);
        cl->len = 0;
    }
}

bool child_lines_read(struct child_lines *cl, int fd)
{
    ssize_t n = read(fd, cl->buf + cl->len, sizeof(cl->buf) - cl->len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return false;
    if (n <= 0) {
        drain(cl, true);
        return true;
    }
    cl->len += (size_t)n;
    drain(cl, false);
    return false;
}

void child_lines_flush(struct child_lines *cl)
{
    drain(cl, true);
}

void child_exit_describe(const siginfo_t *si, char *buf, size_t size)
{
    if (si->si_code == CLD_EXITED)
        snprintf(buf, size, "exited with status %d", si->si_status);
    else
        snprintf(buf, size, "killed by signal %s", sigabbrev_np(si->si_status) ?: "?");
}
