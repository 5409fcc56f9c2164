/* loop_probe: how busy an sd-event loop is with nothing to do, for tests that check a
 * listener does not spin. */
#pragma once

#include <systemd/sd-event.h>

/* Runs E for MS milliseconds; returns how many of its iterations dispatched something. */
int loop_wakeups(sd_event *e, unsigned ms);
