#include "vsock/listen_rest.h"

#include <errno.h>
#include <time.h>

static int on_rested(sd_event_source *s, uint64_t usec, void *userdata)
{
    struct listen_rest *lr = userdata;
    (void)sd_event_source_set_enabled(lr->listener, SD_EVENT_ON);
    return 0;
}

int listen_rest_init(struct listen_rest *lr, sd_event_source *listener)
{
    lr->listener = listener;
    int r = sd_event_add_time_relative(sd_event_source_get_event(listener), &lr->timer,
                                       CLOCK_MONOTONIC, LISTEN_REST_USEC, 0, on_rested, lr);
    if (r < 0)
        return r;
    return sd_event_source_set_enabled(lr->timer, SD_EVENT_OFF);
}

void listen_rest_done(struct listen_rest *lr)
{
    lr->timer = sd_event_source_disable_unref(lr->timer);
    lr->listener = NULL;
}

bool listen_rest_after(struct listen_rest *lr, int err)
{
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
        return false;
    if (!lr->timer || sd_event_source_set_time_relative(lr->timer, LISTEN_REST_USEC) < 0 ||
        sd_event_source_set_enabled(lr->timer, SD_EVENT_ONESHOT) < 0)
        return false;
    (void)sd_event_source_set_enabled(lr->listener, SD_EVENT_OFF);
    return true;
}

void listen_rest_cancel(struct listen_rest *lr)
{
    if (lr->timer)
        (void)sd_event_source_set_enabled(lr->timer, SD_EVENT_OFF);
}
