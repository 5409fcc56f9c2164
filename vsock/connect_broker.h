/* connect_broker: connections made for a sandboxed child (the vsock backend, the host relay) by
 * the process that can reach the host's sockets (the supervisor, which owns the runtime
 * directory). Over a SOCK_SEQPACKET pair the child asks for a number KEY and waits, bounded, for
 * the socket (passed with SCM_RIGHTS) or an errno; what KEY names is the broker's to say and
 * nothing else is ever connected (the backend: guest->host port P, UDS_PATH_P; the relay: its
 * forward number K, that forward's target). Requests are validated by size, file descriptors
 * sent to the broker are discarded, and a late reply is recognised by its sequence number and
 * dropped. */
#pragma once

#include <stdint.h>

struct connect_broker_client {
    int fd;       /* the backend's end of the pair */
    uint32_t seq; /* of the last request */
    int timeout_ms;
};

/* Child side: asks for KEY's socket; it comes in *ret_fd (non-blocking, close-on-exec), or -errno
 * (-ETIMEDOUT: no answer in time; -EMFILE: it came, but no fd was free to receive it). */
int connect_broker_ask(struct connect_broker_client *c, uint32_t key, int *ret_fd);

/* Child side, without waiting (the host relay): sends the request for KEY, its sequence number
 * in *ret_seq; -EAGAIN when the pair holds too many unanswered ones already. */
int connect_broker_send(struct connect_broker_client *c, uint32_t key, uint32_t *ret_seq);
/* Reads the next reply if one waits: returns 1 with its sequence number in *ret_seq and either
 * the socket in *ret_fd (*ret_error 0) or *ret_error (-errno, *ret_fd -1); 0 when none waits;
 * -errno when the pair failed (-ECONNRESET: the broker went away). A malformed reply is
 * skipped. */
int connect_broker_next(struct connect_broker_client *c, uint32_t *ret_seq, int *ret_fd,
                        int *ret_error);

/* Broker side: opens the socket KEY names into *ret_fd, or returns -errno. */
typedef int (*connect_broker_fn)(void *userdata, uint32_t key, int *ret_fd);
/* Answers the requests waiting on FD (non-blocking) with FN, at most a bounded number per call.
 * Returns 0, or -errno when FD is done for (-ECONNRESET: the child went away). */
int connect_broker_serve(int fd, connect_broker_fn fn, void *userdata);
/* The backend's FN: guest->host port KEY, the hybrid listener USERDATA (UDS_PATH) _KEY. */
int connect_broker_hybrid_port(void *userdata, uint32_t key, int *ret_fd);
