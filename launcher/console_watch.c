#include "launcher/console_watch.h"

#include "common/clock.h"
#include "common/log.h"
#include "launcher/runtime_dir.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

struct console_watch {
    char *dir, *log;
    sd_event_source *timer;
    bool full;            /* the last look found no room */
    uint64_t full_since;  /* CLOCK_MONOTONIC usec */
    off_t size_when_full; /* console.log's size then */
};

static off_t log_size(const struct console_watch *w)
{
    struct stat st;
    return stat(w->log, &st) == 0 ? st.st_size : -1;
}

static int on_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
    struct console_watch *w = userdata;
    struct statvfs sv;
    if (statvfs(w->dir, &sv) == 0) { /* a removed directory: runtime_dir_check's business */
        unsigned long long room = (unsigned long long)sv.f_bavail * sv.f_frsize;
        bool full = room < CONSOLE_WATCH_LOW_BYTES;
        if (full && !w->full) {
            w->full_since = clock_usec(CLOCK_MONOTONIC);
            w->size_when_full = log_size(w);
            log_msg(LOG_WARNING, "console",
                    "%s: its file system is full (%llu bytes free): what the guest writes on "
                    "its console from now on is lost from console.log, which QEMU writes and "
                    "drops without a word (ocvm console still shows it); said again when there "
                    "is room",
                    w->log, room);
        } else if (!full && w->full) {
            off_t now = log_size(w);
            log_msg(LOG_NOTICE, "console",
                    "%s: room again (%llu bytes free) after %.0f s full; it grew by %lld bytes "
                    "meanwhile: the guest's console output of that time may be missing from it",
                    w->log, room, (double)(clock_usec(CLOCK_MONOTONIC) - w->full_since) / 1e6,
                    (long long)(now >= 0 && w->size_when_full >= 0 ? now - w->size_when_full : 0));
        }
        w->full = full;
    }
    sd_event_source_set_time_relative(src, CONSOLE_WATCH_INTERVAL_MS * 1000u);
    sd_event_source_set_enabled(src, SD_EVENT_ONESHOT);
    return 0;
}

int console_watch_new(sd_event *e, const char *runtime_dir, struct console_watch **ret)
{
    *ret = NULL;
    struct console_watch *w = calloc(1, sizeof(*w));
    if (!w || !(w->dir = strdup(runtime_dir)) ||
        !(w->log = runtime_file_path(runtime_dir, RUNTIME_CONSOLE_LOG))) {
        console_watch_free(w);
        return -ENOMEM;
    }
    int r = sd_event_add_time_relative(e, &w->timer, CLOCK_MONOTONIC,
                                       CONSOLE_WATCH_INTERVAL_MS * 1000u, 0, on_timer, w);
    if (r < 0) {
        console_watch_free(w);
        return r;
    }
    *ret = w;
    return 0;
}

void console_watch_free(struct console_watch *w)
{
    if (!w)
        return;
    sd_event_source_disable_unref(w->timer);
    free(w->dir);
    free(w->log);
    free(w);
}
