/* notify: how ocvm talks to whoever runs it. Log lines go to stderr as "ocvm: VM: message", or
 * natively to the journal (with PRIORITY and OCVM_VM fields) when stderr is the journal stream;
 * readiness and status go to systemd via sd_notify (a no-op outside systemd). */
#pragma once

#include <syslog.h>

void log_vm(int priority, const char *vm, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void notify_ready(const char *status);
void notify_status(const char *status);
void notify_stopping(void);
