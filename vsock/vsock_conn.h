/* vsock_conn: one stream connection between a guest vsock port and a host Unix socket. It keeps
 * the connection's state, the credit accounting of both directions (virtio-vsock "Buffer Space
 * Management": never send the guest more than it advertised, never accept more than we did),
 * the bounded buffer for guest data the host socket could not take yet, the half-close flags,
 * and reads the hybrid `CONNECT PORT\n` line of host-initiated connections. It knows nothing of
 * rings or of the event loop: vsock_dev drives it. Owns its fd and buffer. */
#pragma once

#include "vsock/vsock_pkt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

enum vsock_conn_state {
    VSOCK_CONN_HOST_LINE,  /* host client accepted, waiting for its CONNECT line */
    VSOCK_CONN_REQUESTING, /* REQUEST owed or sent to the guest, waiting for RESPONSE */
    VSOCK_CONN_ESTABLISHED,
};

/* Packets owed to the guest on this connection (vsock_conn.pending). */
enum {
    VSOCK_PEND_REQUEST = 1u << 0,
    VSOCK_PEND_RESPONSE = 1u << 1,
    VSOCK_PEND_DATA = 1u << 2, /* the host socket is readable */
    VSOCK_PEND_CREDIT = 1u << 3,
};

#define VSOCK_CONNECT_LINE_MAX 16 /* "CONNECT 65535\n" is 14 */

struct vsock_conn {
    enum vsock_conn_state state;
    int fd;
    uint32_t guest_cid;
    uint32_t local_port; /* host side: src_port of our packets */
    uint32_t peer_port;  /* guest side */
    unsigned pending;

    /* host -> guest: what the guest advertised, and what we sent it */
    uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
    /* guest -> host: our receive buffer, bytes taken from the guest, bytes written to fd, and
     * the fwd_cnt the guest last heard from us */
    uint32_t buf_alloc, rx_cnt, fwd_cnt, fwd_cnt_sent;
    uint8_t *buf; /* ring of buf_alloc bytes, allocated when first needed */
    size_t buf_head, buf_len;

    bool peer_shut_send; /* the guest will send no more */
    bool peer_shut_rcv;  /* the guest will receive no more */
    bool host_eof;       /* read EOF on fd; SHUTDOWN(SEND) sent to the guest */
    bool host_wr_shut;   /* shutdown(fd, SHUT_WR) done */

    char line[VSOCK_CONNECT_LINE_MAX];
    size_t line_len;

    /* links of the vsock_table that holds the connection */
    struct vsock_conn *hnext, *pnext, *pprev, *anext, *aprev;
    bool hashed, in_pending;
};

void vsock_conn_init(struct vsock_conn *c, int fd, uint32_t guest_cid, uint32_t buf_alloc);
/* Closes the fd and frees the buffer. */
void vsock_conn_done(struct vsock_conn *c);

/* Records the credit the guest advertised in a packet's header. */
void vsock_conn_peer_credit(struct vsock_conn *c, uint32_t buf_alloc, uint32_t fwd_cnt);
/* Bytes the guest can take now (0 when its figures are inconsistent). */
uint32_t vsock_conn_peer_free(const struct vsock_conn *c);
/* The header of a packet on this connection, carrying our credit (which the guest now knows). */
void vsock_conn_hdr(struct vsock_conn *c, uint16_t op, uint32_t flags, uint32_t len,
                    struct vsock_hdr *h);
/* True when the guest should hear about buffer space we freed (a quarter of buf_alloc). */
bool vsock_conn_credit_due(const struct vsock_conn *c);
size_t vsock_conn_buffered(const struct vsock_conn *c);

/* Guest payload for the host socket: written now as far as the socket takes it, the rest kept.
 * -ENOBUFS when it exceeds the credit we gave (the guest broke flow control), -EPIPE etc. when
 * the host socket failed. */
int vsock_conn_to_host(struct vsock_conn *c, const struct iovec *iov, unsigned n, size_t len);
/* Writes buffered data; 0 (possibly some left) or -errno. */
int vsock_conn_flush(struct vsock_conn *c);
/* Reads host data into IOV for the guest: >0 bytes (counted as sent), 0 at EOF, -EAGAIN,
 * -errno. */
ssize_t vsock_conn_from_host(struct vsock_conn *c, const struct iovec *iov, unsigned n);

/* Parses "CONNECT PORT\n" (exactly, PORT decimal 1..65535, no leading zeros). */
int vsock_hybrid_parse_connect(const char *s, size_t n, uint16_t *port);
/* Reads the CONNECT line without consuming anything after it. 1 with *PORT set, 0 when more is
 * needed, -EBADMSG for a bad or overlong line, -ECONNRESET at EOF, -errno. */
int vsock_conn_read_line(struct vsock_conn *c, uint16_t *port);

/* The hybrid socket's ends: listens on PATH (a stale socket there is replaced, anything else
 * is -EEXIST), or connects to PATH_PORT for a guest connection to host port PORT. Non-blocking,
 * close-on-exec. */
int vsock_hybrid_listen(const char *path, int *ret_fd);
int vsock_hybrid_connect(const char *path, uint32_t port, int *ret_fd);
/* Removes a stale Unix socket at PATH (nobody accepts on it) so that it can be bound again;
 * -EADDRINUSE while something listens there, -EEXIST for a file that is not a socket. */
int vsock_unix_replace_stale(const char *path);
