#include "tests/support/loop_probe.h"

#include "common/clock.h"

#include <time.h>

int loop_wakeups(sd_event *e, unsigned ms)
{
    int n = 0;
    uint64_t end = clock_usec(CLOCK_MONOTONIC) + (uint64_t)ms * 1000u;
    while (clock_usec(CLOCK_MONOTONIC) < end)
        if (sd_event_run(e, 50000) > 0)
            n++;
    return n;
}
