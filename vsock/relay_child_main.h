/* relay_child_main: the `ocvm relay-child` verb, the host relay as the supervisor runs it: a
 * child process handed its listening sockets as fds, that sandboxes itself (backend_sandbox.h,
 * the relay's list of calls) before it accepts anyone, asks the supervisor's connect broker for
 * every target socket (connect_broker.h), publishes its counters in a shared page
 * (relay_stats_page) and takes "hold these listeners" from a control socket. Not for people to
 * type: launcher/relay_child.h starts it. */
#pragma once

#include <stdint.h>

/* The control socket's one message (SOCK_SEQPACKET, parent to child): bit I set holds the I-th
 * --forward's listener (its clients wait in the backlog), clear accepts on it. */
struct relay_child_control {
    uint64_t held;
};

enum { RELAY_CHILD_MAX_FORWARDS = 64 };

/* argv[0] is the verb's name; then --forward FD=TARGET (once per listener, in order, TARGET in
 * endpoint form), --connect-fd K, and optionally --control-fd C, --stats-fd S (a memfd at least
 * a page long), --held I (hold the I-th forward from the start), --user USER, --vm NAME, and
 * the relay's limits --max-connections N, --connect-timeout-ms N, --idle-timeout-ms N.
 * Returns the exit code: 0 after SIGTERM/SIGINT, 1 when it cannot start, 2 on a usage error. */
int relay_child_main(int argc, char **argv);
