/* clock: the one way ocvm reads time, in microseconds of a given clock (CLOCK_MONOTONIC for
 * timeouts and rates, CLOCK_REALTIME only for what a user reads). Header only, no state. */
#pragma once

#include <stdint.h>
#include <time.h>

/* Microseconds on CLOCK. */
static inline uint64_t clock_usec(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
