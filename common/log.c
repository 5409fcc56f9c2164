#include "common/log.h"

#include "common/clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

static struct {
    char program[32];
    char vm[65];
    pid_t qemu_pid; /* OCVM_PID_QEMU=, or 0: none */
    int max_level;
    bool journal;
    int journal_fd; /* connected once (log_journal_connect), or -1: a socket per line */
    char journal_socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
} log_state = {
    .program = "ocvm",
    .max_level = LOG_INFO,
    .journal_fd = -1,
    .journal_socket = "/run/systemd/journal/socket",
};

static const char *const level_names[] = {[LOG_ERR] = "err",
                                          [LOG_WARNING] = "warning",
                                          [LOG_NOTICE] = "notice",
                                          [LOG_INFO] = "info",
                                          [LOG_DEBUG] = "debug"};

static void copy(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

/* systemd sets JOURNAL_STREAM=DEV:INODE for the stream it connected to stderr. */
static bool stderr_is_journal(void)
{
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
        return false;
    return st.st_dev == dev && st.st_ino == ino;
}

void log_setup(const char *program)
{
    copy(log_state.program, sizeof(log_state.program), program);
    const char *level = getenv("OCVM_LOG_LEVEL");
    for (size_t i = 0; level && i < sizeof(level_names) / sizeof(level_names[0]); i++)
        if (level_names[i] && strcmp(level, level_names[i]) == 0)
            log_state.max_level = (int)i;
    log_state.journal = stderr_is_journal();
}

void log_set_vm(const char *vm)
{
    copy(log_state.vm, sizeof(log_state.vm), vm);
}

void log_set_qemu_pid(pid_t pid)
{
    log_state.qemu_pid = pid > 0 ? pid : 0;
}

void log_set_max_level(int level)
{
    log_state.max_level = level;
}

int log_get_max_level(void)
{
    return log_state.max_level;
}

void log_set_journal_socket(const char *path)
{
    copy(log_state.journal_socket, sizeof(log_state.journal_socket), path);
    log_state.journal = stderr_is_journal();
}

static void journal_address(struct sockaddr_un *sa)
{
    *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
    memcpy(sa->sun_path, log_state.journal_socket, strlen(log_state.journal_socket));
}

void log_journal_connect(void)
{
    if (!log_state.journal || log_state.journal_fd >= 0)
        return;
    struct sockaddr_un sa;
    journal_address(&sa);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        log_state.journal_fd = fd;
        return;
    }
    if (fd >= 0)
        close(fd);
    log_state.journal = false; /* stderr it is, then */
}

/* One datagram of the journal's native protocol: KEY=VALUE lines. LINE holds no newline (the
 * message is one line by construction: newlines in it are replaced before). */
static int journal_send(int level, const char *stage, const char *line)
{
    char *text = NULL;
    char pid[32] = "";
    if (log_state.qemu_pid > 0)
        snprintf(pid, sizeof(pid), "OCVM_PID_QEMU=%d\n", (int)log_state.qemu_pid);
    int n = asprintf(&text,
                     "PRIORITY=%d\nSYSLOG_IDENTIFIER=%s\nMESSAGE=%s\nOCVM_VM=%s\nOCVM_STAGE=%s\n%s",
                     level, log_state.program, line, log_state.vm, stage ? stage : "", pid);
    if (n < 0)
        return -ENOMEM;
    int r = 0;
    if (log_state.journal_fd >= 0) {
        if (send(log_state.journal_fd, text, (size_t)n, MSG_NOSIGNAL) < 0)
            r = -errno;
        free(text);
        return r;
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
    } else {
        struct sockaddr_un sa;
        journal_address(&sa);
        if (sendto(fd, text, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            r = -errno;
        close(fd);
    }
    free(text);
    return r;
}

void log_msgv(int level, const char *stage, const char *fmt, va_list ap)
{
    if (level > log_state.max_level)
        return;
    int saved = errno;
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0) {
        errno = saved;
        return;
    }
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    char *line = NULL;
    const char *vm = log_state.vm;
    if (asprintf(&line, "%s: %s%s%s%s%s", log_state.program, vm, *vm ? ": " : "",
                 stage ? stage : "", stage ? ": " : "", msg) >= 0) {
        if (!log_state.journal || journal_send(level, stage, line) < 0)
            fprintf(stderr, "%s\n", line);
        free(line);
    }
    free(msg);
    errno = saved;
}

void log_msg(int level, const char *stage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_msgv(level, stage, fmt, ap);
    va_end(ap);
}

bool log_ratelimit_pass(struct log_ratelimit *rl, uint64_t now_ms, uint64_t *ret_held_back)
{
    if (rl->window_start_ms == 0 || now_ms - rl->window_start_ms >= rl->interval_ms) {
        rl->window_start_ms = now_ms ? now_ms : 1;
        rl->in_window = 0;
    }
    if (rl->in_window >= rl->burst) {
        rl->held_back++;
        return false;
    }
    rl->in_window++;
    if (ret_held_back)
        *ret_held_back = rl->held_back;
    rl->held_back = 0;
    return true;
}

bool log_ratelimitedv(struct log_ratelimit *rl, int level, const char *stage, const char *fmt,
                      va_list ap)
{
    uint64_t held;
    if (level > log_state.max_level ||
        !log_ratelimit_pass(rl, clock_usec(CLOCK_MONOTONIC) / 1000u, &held))
        return false;
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        return false;
    if (held > 0)
        log_msg(level, stage, "%s (%llu similar messages suppressed)", msg,
                (unsigned long long)held);
    else
        log_msg(level, stage, "%s", msg);
    free(msg);
    return true;
}

bool log_ratelimited(struct log_ratelimit *rl, int level, const char *stage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool r = log_ratelimitedv(rl, level, stage, fmt, ap);
    va_end(ap);
    return r;
}
