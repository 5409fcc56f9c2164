#include "launcher/notify.h"

#include "common/cleanup.h"

#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

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

void log_vm(int priority, const char *vm, const char *fmt, ...)
{
    va_list ap;
    _cleanup_free_ char *msg = NULL;
    va_start(ap, fmt);
    int r = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (r < 0)
        return;
    if (stderr_is_journal()) {
        sd_journal_send("MESSAGE=ocvm: %s%s%s", vm ? vm : "", vm ? ": " : "", msg, "PRIORITY=%i",
                        priority, "OCVM_VM=%s", vm ? vm : "", "SYSLOG_IDENTIFIER=ocvm", NULL);
        return;
    }
    fprintf(stderr, "ocvm: %s%s%s\n", vm ? vm : "", vm ? ": " : "", msg);
}

void notify_ready(const char *status)
{
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void notify_status(const char *status)
{
    sd_notifyf(0, "STATUS=%s", status);
}

void notify_stopping(void)
{
    sd_notify(0, "STOPPING=1");
}
