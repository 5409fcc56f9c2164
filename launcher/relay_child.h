/* relay_child: the host relay (the gateway listener and the forwards) as a sandboxed child
 * process of the supervisor, so that the code that accepts clients and moves their bytes never
 * runs with the supervisor's root and capabilities. The listening sockets stay open here, made
 * (or taken from systemd) by the caller; each child gets duplicates, runs as the VM's user with no
 * capability, no_new_privs and the relay's seccomp filter (`ocvm relay-child`,
 * vsock/relay_child_main.h), and asks this side for every target socket (a connect broker:
 * only the forwards' own targets are ever connected, here, where the runtime directory and the
 * host's sockets are reachable; to the hybrid socket the `CONNECT PORT` line goes from here too,
 * so the relay cannot choose a guest port). When a child dies its connections end; the next one
 * starts a second later (longer, up to 30 s, while children keep dying young), and meanwhile
 * clients wait in the listeners' backlogs. Its counters come through a shared page and add up
 * across children. */
#pragma once

#include "launcher/child_proc.h"
#include "vsock/endpoint.h"
#include "vsock/relay.h"

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

struct relay_child;

/* Prepares (spawns nothing yet). USER: the child drops to it (we are root), or NULL. LIMITS:
 * the relay's max_connections, connect_timeout_ms and idle_timeout_ms (0: its defaults), or
 * NULL; its other options are not for a sandboxed child (no splice). */
int relay_child_new(sd_event *e, const char *vm_name, const char *user,
                    const struct relay_options *limits, struct relay_child **ret);
/* Adds a forward: clients accepted on the listening socket FD (taken, even on failure) go to
 * TARGET. Before the first start only. */
int relay_child_add_forward(struct relay_child *c, int fd, const struct endpoint *target);
/* Spawns the child unless one runs. */
int relay_child_start(struct relay_child *c);
/* Holds (clients wait in its backlog) or releases the forward listening on FD. -EBADF if none
 * does. */
int relay_child_hold(struct relay_child *c, int fd, bool hold);
/* The running child's pid, or 0. */
pid_t relay_child_pid(const struct relay_child *c);
/* Stops the child (SIGTERM; SIGKILL after 2 s) and closes the listeners. */
void relay_child_free(struct relay_child *c);
/* The counters of every child so far (open: the running one's), and the child's state. */
void relay_child_get_stats(const struct relay_child *c, struct relay_stats *ret,
                           struct child_proc_status *status);
