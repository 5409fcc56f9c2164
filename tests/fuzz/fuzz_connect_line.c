/* libFuzzer target: both lines of the hybrid vsock handshake, as their readers take them from a
 * real socket. The host client's `CONNECT PORT\n` (vsock/vsock_conn.c: the user backend reads
 * it from whoever can reach the hybrid socket) and the backend's `OK N\n` reply
 * (vsock/endpoint_socket.c: the relay reads it). Input: byte 0 picks how the stream is cut into
 * writes (so a line can arrive in pieces), the rest is the stream. Checks: a line is accepted
 * exactly when it is the canonical text of its port, and neither reader takes a byte past the
 * newline (what follows is the connection's data). */
#include "vsock/endpoint_socket.h"
#include "vsock/vsock_conn.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define STREAM_MAX 256
#define REPLY_MAX 32 /* the relay's line buffer (relay.c HYBRID_LINE_MAX) */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What is left unread on FD must be exactly the stream after USED bytes. */
static void check_rest(int fd, const uint8_t *s, size_t n, size_t used)
{
    uint8_t buf[STREAM_MAX + 1];
    ssize_t k = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (k < 0)
        k = 0;
    if ((size_t)k != n - used || memcmp(buf, s + used, (size_t)k) != 0)
        abort();
}

static void connect_line(uint8_t cut, const uint8_t *s, size_t n)
{
    uint16_t port = 0;
    char canon[32];
    if (vsock_hybrid_parse_connect((const char *)s, n, &port) == 0) {
        snprintf(canon, sizeof(canon), "CONNECT %u\n", (unsigned)port);
        if (port == 0 || strlen(canon) != n || memcmp(canon, s, n) != 0)
            abort();
    }

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
        return;
    struct vsock_conn c;
    vsock_conn_init(&c, sv[0], 3, 65536);
    size_t chunk = 1 + (cut & 0x0f), sent = 0;
    int r = 0;
    while (r == 0 && sent < n) {
        size_t k = n - sent < chunk ? n - sent : chunk;
        if (send(sv[1], s + sent, k, MSG_NOSIGNAL) != (ssize_t)k)
            abort();
        sent += k;
        r = vsock_conn_read_line(&c, &port);
    }
    if (r == 0) {
        shutdown(sv[1], SHUT_WR);
        r = vsock_conn_read_line(&c, &port);
        if (r == 0)
            abort(); /* at EOF the reader must decide */
    }
    if (c.line_len > sizeof(c.line) || c.line_len > n || memcmp(c.line, s, c.line_len) != 0)
        abort();
    if (r == 1) {
        uint16_t direct;
        if (vsock_hybrid_parse_connect(c.line, c.line_len, &direct) < 0 || direct != port)
            abort();
        check_rest(sv[0], s, sent, c.line_len);
    }
    vsock_conn_done(&c);
    close(sv[1]);
}

static void ok_reply(uint8_t cut, const uint8_t *s, size_t n)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0)
        return;
    char line[REPLY_MAX];
    size_t len = 0, chunk = 1 + (cut >> 4), sent = 0;
    int r = -EAGAIN;
    while (r == -EAGAIN && sent < n) {
        size_t k = n - sent < chunk ? n - sent : chunk;
        if (send(sv[1], s + sent, k, MSG_NOSIGNAL) != (ssize_t)k)
            abort();
        sent += k;
        r = endpoint_socket_hybrid_reply(sv[0], line, sizeof(line), &len);
    }
    if (r == -EAGAIN) {
        shutdown(sv[1], SHUT_WR);
        r = endpoint_socket_hybrid_reply(sv[0], line, sizeof(line), &len);
        if (r == -EAGAIN)
            abort();
    }
    if (len > sizeof(line) || len > n || memcmp(line, s, len) != 0)
        abort();
    if (r == 0) {
        if (len < 5 || memcmp(line, "OK ", 3) != 0 || line[len - 1] != '\n')
            abort();
        check_rest(sv[0], s, sent, len);
    }
    close(sv[0]);
    close(sv[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size - 1 > STREAM_MAX)
        return 0;
    connect_line(data[0], data + 1, size - 1);
    ok_reply(data[0], data + 1, size - 1);
    return 0;
}
