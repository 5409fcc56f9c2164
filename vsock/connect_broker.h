/* connect_broker: guest->host connections made for a sandboxed vsock backend by the process that
 * can reach the host's sockets (the supervisor, which owns the runtime directory). Over a
 * SOCK_SEQPACKET pair the backend asks for port P and waits, bounded, for the connected socket
 * (passed with SCM_RIGHTS) or an errno; the broker connects UDS_PATH_P and nothing else, the very
 * socket the backend would have connected itself. Requests are validated by size, file
 * descriptors sent to the broker are discarded, and a late reply is recognised by its sequence
 * number and dropped. */
#pragma once

#include <stdint.h>

struct connect_broker_client {
    int fd;       /* the backend's end of the pair */
    uint32_t seq; /* of the last request */
    int timeout_ms;
};

/* Backend side: connects guest->host PORT through the broker; the socket in *ret_fd
 * (non-blocking, close-on-exec), or -errno (-ETIMEDOUT: no answer in time). */
int connect_broker_ask(struct connect_broker_client *c, uint32_t port, int *ret_fd);

/* Broker side: answers the requests waiting on FD (non-blocking), at most a bounded number per
 * call. Returns 0, or -errno when FD is done for (-ECONNRESET: the backend went away). */
int connect_broker_serve(int fd, const char *uds_path);
