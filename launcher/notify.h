/* notify: how ocvm tells systemd about the VM: readiness, status, stopping and the watchdog, via
 * sd_notify (a no-op outside systemd). Log lines are common/log's. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

void notify_ready(const char *status);
void notify_status(const char *status);
/* STATUS=STATUS for a step of the boot; while STARTING (before the first READY=1) also
 * EXTEND_TIMEOUT_USEC=NOTIFY_EXTEND_USEC: the boot made progress, so systemd waits that much
 * longer than now, beyond TimeoutStartSec= if need be. A boot that stops making progress sends
 * none, and times out (docs/systemd.md). */
void notify_progress(const char *status, bool starting);
enum { NOTIFY_EXTEND_S = 60 };
#define NOTIFY_EXTEND_USEC ((uint64_t)NOTIFY_EXTEND_S * 1000000u)
void notify_stopping(void);
/* The watchdog interval systemd expects WATCHDOG=1 within (WatchdogSec=, passed as
 * WATCHDOG_USEC and meant for us by WATCHDOG_PID), in usec; 0 when there is none. */
uint64_t notify_watchdog_usec(void);
/* WATCHDOG=1: "still healthy". */
void notify_watchdog(void);
