/* notify: how ocvm tells systemd about the VM: readiness, status and stopping, via sd_notify (a
 * no-op outside systemd). Log lines are common/log's. */
#pragma once

#include <syslog.h>

void notify_ready(const char *status);
void notify_status(const char *status);
void notify_stopping(void);
