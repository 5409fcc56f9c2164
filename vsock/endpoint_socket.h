/* endpoint_socket: the sockets behind an endpoint, the effects around endpoint's pure parsing.
 * Every socket is a non-blocking, close-on-exec stream: connected (tcp with TCP_NODELAY, unix,
 * AF_VSOCK, or the Unix half of hybrid, whose `CONNECT PORT\n`/`OK N\n` exchange is here too) or
 * listening (tcp, unix, vsock). Owns nothing: each fd goes to the caller. */
#pragma once

#include "vsock/endpoint.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Opens a connected, non-blocking socket to E (AF_VSOCK, tcp, unix; hybrid: only the Unix part,
 * the CONNECT exchange is the caller's). *in_progress is set when connect() has not finished. */
int endpoint_socket_connect(const struct endpoint *e, int *ret_fd, bool *in_progress);
/* A listening, non-blocking socket on E (tcp, unix or vsock; a unix path is replaced). */
int endpoint_socket_listen(const struct endpoint *e, int *ret_fd);

/* True when connected TCP socket FD is connected to itself: a connect to a local port nobody
 * listens on succeeds that way when the kernel picks that very port as the source (TCP's
 * simultaneous open). Such a target is down. */
bool endpoint_socket_is_self_connected(int fd);

/* Hybrid vsock, once FD is connected to the hybrid path: asks for guest PORT (`CONNECT PORT\n`).
 * Returns 0, or -EIO when the line did not go out whole. */
int endpoint_socket_hybrid_request(int fd, uint16_t port);
/* Reads the reply into LINE (SIZE bytes, *LEN of them read so far) one byte at a time, so that
 * nothing past it is taken from the guest's stream. Returns 0 for `OK N\n`, -EAGAIN to wait for
 * more, -EPROTO for any other line, -ECONNRESET or -errno when the socket fails first. */
int endpoint_socket_hybrid_reply(int fd, char *line, size_t size, size_t *len);
