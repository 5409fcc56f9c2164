/* console_watch: says when RUNDIR/console.log cannot hold the guest's console. QEMU writes that
 * file itself (logfile= on the console chardev) and drops what a full file system refuses
 * without a word; this watch looks at the runtime directory's free space every few seconds and
 * says, once per streak, when console.log stops being able to grow, and when it can again, with
 * how long it could not and how much it grew meanwhile. It cannot count the bytes QEMU dropped
 * (docs/reliability.md "The console", limits). */
#pragma once

#include <systemd/sd-event.h>

enum { CONSOLE_WATCH_INTERVAL_MS = 2000, CONSOLE_WATCH_LOW_BYTES = 4096 };

struct console_watch;

/* Watches RUNTIME_DIR on loop E; NULL *ret on -ENOMEM. */
int console_watch_new(sd_event *e, const char *runtime_dir, struct console_watch **ret);
void console_watch_free(struct console_watch *w);
