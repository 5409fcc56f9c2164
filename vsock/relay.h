/* relay: the event-driven byte relay used on both sides of the gateway path. It accepts on one
 * or more listening endpoints and, per client, connects to the forward's target (tcp, unix,
 * AF_VSOCK, or hybrid vsock via `CONNECT PORT\n`/`OK N\n`), then moves bytes both ways through
 * pooled ring buffers that grow with a bulk transfer (or, with .splice, with splice(2) through a
 * pipe), with half-close, bounded buffers (back-pressure), connect and idle timeouts and a
 * connection limit. No thread or fork per
 * connection: one epoll set, owned by the relay, that a caller may nest in its own loop. */
#pragma once

#include "vsock/endpoint.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct relay_options {
    size_t max_connections;      /* 0: 4096, or what RLIMIT_NOFILE allows if less */
    unsigned connect_timeout_ms; /* 0: 5000 */
    unsigned idle_timeout_ms;    /* 0: never */
    const char *log_prefix;      /* e.g. "relay" or "openclaw: relay" */
    /* splice(2) through a pipe instead of copying through a ring, where both ends allow it;
     * slower end to end where it was measured (docs/benchmarks.md) */
    bool splice;
    /* bytes of ring buffers above the smallest (64 KiB) class, lent and pooled together;
     * 0: 64 MiB. Past it, flows copy through smaller rings. */
    size_t ring_budget;
};

struct relay_stats {
    uint64_t accepted, open, refused_limit, connect_failed, timeouts;
    uint64_t bytes_to_target, bytes_to_client;
    uint64_t ring_bytes; /* rings above 64 KiB held now, lent or pooled (see ring_budget) */
};

struct relay;

int relay_new(const struct relay_options *o, struct relay **ret);
void relay_free(struct relay *r);
/* Listens on LISTEN (tcp or unix; a unix path is replaced) and forwards each client to TARGET. */
int relay_add_forward(struct relay *r, const struct endpoint *listen,
                      const struct endpoint *target);
/* The same with an already listening socket (socket activation, a listener kept across VM
 * restarts); the relay takes ownership of FD. */
int relay_add_forward_fd(struct relay *r, int fd, const struct endpoint *target);
/* The epoll fd to watch (readable = work to do) when nesting the relay in another loop. */
int relay_fd(const struct relay *r);
/* Handles whatever is ready, waiting up to TIMEOUT_MS (-1: forever) for something. */
int relay_dispatch(struct relay *r, int timeout_ms);
/* Runs until SIGINT or SIGTERM. */
int relay_run(struct relay *r);
/* Raises this process's soft RLIMIT_NOFILE to the hard limit (as root, both to fs.nr_open
 * first): every relayed connection holds two sockets, and 1024 is the usual soft limit. */
void relay_raise_fd_limit(void);
void relay_get_stats(const struct relay *r, struct relay_stats *ret);
/* Opens a connected, non-blocking socket to E (AF_VSOCK, tcp, unix; hybrid: only the Unix part,
 * the CONNECT exchange is the caller's). *in_progress is set when connect() has not finished. */
int relay_connect_endpoint(const struct endpoint *e, int *ret_fd, bool *in_progress);
/* A listening, non-blocking socket on E (tcp, unix or vsock). */
int relay_listen_endpoint(const struct endpoint *e, int *ret_fd);
