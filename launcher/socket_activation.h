/* socket_activation: the listening sockets systemd passes to `ocvm up` (LISTEN_FDS, LISTEN_PID,
 * LISTEN_FDNAMES; systemd/ocvm-gateway@.socket), matched by address to the one ocvm would
 * otherwise open itself, so that the port exists before the VM does. Without LISTEN_FDS meant for
 * this process nothing is taken and nothing changes. */
#pragma once

/* Takes the sockets systemd passed (and unsets LISTEN_*: no child sees them). None: returns 0 and
 * *ret_fd = -1. Else exactly one, a listening TCP socket bound to LISTEN (HOST:PORT, named WHAT in
 * errors, e.g. "gateway.host_listen"), is ours: returns 1 and it (close-on-exec) in *ret_fd. A
 * passed socket bound elsewhere, one that is not a listening TCP socket, or one more than that,
 * is an error: -EADDRNOTAVAIL, -ENOTSOCK or -EBADF, every passed fd closed, and *error set to one
 * line naming both addresses (caller frees). */
int socket_activation_take(const char *what, const char *listen, int *ret_fd, char **error);
