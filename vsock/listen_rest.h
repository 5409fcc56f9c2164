/* listen_rest: a listening socket on an sd-event loop whose accept fails for want of fds or
 * memory stays readable, and the loop would wake again at once, forever. listen_rest switches
 * such a listener off for LISTEN_REST_USEC instead (the clients wait in the backlog) and on
 * again after. Its timer is made up front: making one at that moment would need an fd too. */
#pragma once

#include <stdbool.h>
#include <systemd/sd-event.h>

#define LISTEN_REST_USEC 100000u

struct listen_rest {
    sd_event_source *listener; /* not owned */
    sd_event_source *timer;
};

/* Prepares LR for LISTENER (an IO source on an accepting socket). */
int listen_rest_init(struct listen_rest *lr, sd_event_source *listener);
void listen_rest_done(struct listen_rest *lr);
/* After accept failed with ERR (an errno): true if that is a shortage of fds or memory, and the
 * listener now rests; false for any other error (the caller handles it). */
bool listen_rest_after(struct listen_rest *lr, int err);
/* Ends a rest early without switching the listener on (its owner switched it off for a reason
 * of its own). */
void listen_rest_cancel(struct listen_rest *lr);
