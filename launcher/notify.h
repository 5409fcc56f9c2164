/* notify: how ocvm tells systemd about the VM: readiness, status, stopping and the watchdog, via
 * sd_notify (a no-op outside systemd). Log lines are common/log's. */
#pragma once

#include <stdint.h>
#include <syslog.h>

void notify_ready(const char *status);
void notify_status(const char *status);
void notify_stopping(void);
/* The watchdog interval systemd expects WATCHDOG=1 within (WatchdogSec=, passed as
 * WATCHDOG_USEC and meant for us by WATCHDOG_PID), in usec; 0 when there is none. */
uint64_t notify_watchdog_usec(void);
/* WATCHDOG=1: "still healthy". */
void notify_watchdog(void);
