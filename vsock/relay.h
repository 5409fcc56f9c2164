/* relay: the event-driven byte relay on both sides of the gateway path. It accepts on listening
 * endpoints and connects each client to its forward's target (endpoint_socket.h), then moves bytes
 * both ways through rings lent by its ring_pool (or splice(2) pipes), with half-close,
 * back-pressure, connect and idle timeouts and a connection limit. No thread or fork per
 * connection: one epoll set, owned by the relay, that a caller may nest in its own loop. */
#pragma once

#include "vsock/endpoint.h"
#include "vsock/endpoint_socket.h" /* endpoint_socket_connect, endpoint_socket_listen */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct relay_options {
    size_t max_connections;      /* 0: 4096, or what RLIMIT_NOFILE allows if less */
    unsigned connect_timeout_ms; /* 0: 5000 */
    unsigned idle_timeout_ms;    /* 0: never */
    const char *log_stage;       /* what its log lines are about; NULL: "relay" */
    /* splice(2) through a pipe instead of copying through a ring, where both ends allow it;
     * slower end to end where it was measured (docs/benchmarks.md) */
    bool splice;
    /* bytes of ring buffers above the smallest (64 KiB) class, lent and pooled together;
     * 0: 64 MiB. Past it, flows copy through smaller rings. */
    size_t ring_budget;
    /* Asks for the socket to a forward's TARGET instead of connecting it (a sandboxed relay
     * whose parent connects for it): returns 0 once asked, or -errno; the answer is given to
     * relay_connect_done() with TOKEN, later, while the relay goes on with its other clients
     * (this client's connect timeout runs meanwhile). NULL: the relay connects itself. */
    int (*connect)(void *userdata, const struct endpoint *target, uint64_t token);
    void *connect_userdata;
    /* relay_options.connect's sockets to a hybrid target come with their `CONNECT PORT` line
     * already sent (the guest port is the connecting process's to name): the relay only reads
     * the reply. */
    bool connect_sends_hybrid_request;
    /* A process that may be killed (the host relay's child): every connection's sockets are
     * set to close with a reset (SO_LINGER 0) but when it ends in order, so that the relay's
     * death is never seen as a complete reply. */
    bool reset_if_killed;
    /* Where the counters go after each dispatch, for another process to read (shared memory;
     * relay_stats_page_read); NULL: nowhere. */
    struct relay_stats_page *publish;
};

struct relay_stats {
    uint64_t accepted, open, refused_limit, connect_failed, timeouts;
    uint64_t bytes_to_target, bytes_to_client;
    uint64_t ring_bytes; /* rings above 64 KiB held now, lent or pooled (see ring_budget) */
};

/* Counters shared with a reader in another process: SEQ is odd while the relay writes. */
struct relay_stats_page {
    uint32_t seq;
    struct relay_stats stats;
};

/* A consistent copy of P's counters (it retries while the writer is in the middle). */
void relay_stats_page_read(const struct relay_stats_page *p, struct relay_stats *ret);

/* A process that runs a relay ignores SIGPIPE (relay_run does): a peer gone while the relay
 * writes to it is an EPIPE, not a signal. */
struct relay;

int relay_new(const struct relay_options *o, struct relay **ret);
void relay_free(struct relay *r);
/* Listens on LISTEN (tcp or unix; a unix path is replaced) and forwards each client to TARGET. */
int relay_add_forward(struct relay *r, const struct endpoint *listen,
                      const struct endpoint *target);
/* The same with an already listening socket (socket activation, a listener kept across VM
 * restarts); the relay takes ownership of FD. */
int relay_add_forward_fd(struct relay *r, int fd, const struct endpoint *target);
/* Stops (HOLD) or starts again accepting on the listening socket FD of one of R's forwards: while
 * held, its clients wait in the listen backlog instead of being accepted (and refused by a target
 * that is not up yet). -EBADF if no forward listens on FD. */
int relay_hold_listener(struct relay *r, int fd, bool hold);
/* A new relay with R's options and a forward for each of R's, on a duplicate of its listening
 * socket; nothing else is shared (its own epoll set, no connections). For a process that keeps
 * the listeners open and runs the relay in a child it starts again when it dies. */
int relay_new_like(const struct relay *r, struct relay **ret);
/* Calls FN(USERDATA) from relay_dispatch whenever FD (not owned) is readable: another source in
 * the relay's own loop (a control socket). */
int relay_watch_fd(struct relay *r, int fd, void (*fn)(void *userdata), void *userdata);
/* The answer to relay_options.connect's request TOKEN: FD, a non-blocking stream socket,
 * connected or with its connect() in progress (hybrid's CONNECT exchange stays the relay's), or
 * ERROR (-errno, FD -1). The relay takes FD; an answer for a client that is gone (timed out,
 * left) closes it. */
void relay_connect_done(struct relay *r, uint64_t token, int fd, int error);
/* The epoll fd to watch (readable = work to do) when nesting the relay in another loop. */
int relay_fd(const struct relay *r);
/* Handles whatever is ready, waiting up to TIMEOUT_MS (-1: forever) for something. */
int relay_dispatch(struct relay *r, int timeout_ms);
/* Runs until SIGINT or SIGTERM. */
int relay_run(struct relay *r);
/* What relay_run does first, done now (a process about to forbid itself signal calls): SIGINT
 * and SIGTERM blocked and read from a signalfd, SIGPIPE ignored. */
int relay_prepare_run(struct relay *r);
/* Raises this process's soft RLIMIT_NOFILE to the hard limit (as root, both to fs.nr_open
 * first): every relayed connection holds two sockets, and 1024 is the usual soft limit. */
void relay_raise_fd_limit(void);
void relay_get_stats(const struct relay *r, struct relay_stats *ret);
