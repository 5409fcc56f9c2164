#include "launcher/notify.h"

#include "common/cleanup.h"

#include <inttypes.h>
#include <stdbool.h>
#include <string.h>
#include <systemd/sd-daemon.h>

void notify_ready(const char *status)
{
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void notify_status(const char *status)
{
    sd_notifyf(0, "STATUS=%s", status);
}

void notify_progress(const char *status, bool starting)
{
    if (starting)
        sd_notifyf(0, "STATUS=%s\nEXTEND_TIMEOUT_USEC=%" PRIu64, status, NOTIFY_EXTEND_USEC);
    else
        notify_status(status);
}

void notify_stopping(void)
{
    sd_notify(0, "STOPPING=1");
}

uint64_t notify_watchdog_usec(void)
{
    uint64_t usec = 0;
    return sd_watchdog_enabled(0, &usec) > 0 ? usec : 0;
}

void notify_watchdog(void)
{
    sd_notify(0, "WATCHDOG=1");
}
