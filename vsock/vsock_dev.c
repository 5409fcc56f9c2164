/* The virtio-vsock device with hybrid Unix sockets on the host side; see vsock_dev.h. */
#include "vsock/vsock_dev.h"

#include "common/clock.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "vsock/listen_rest.h"
#include "vsock/vhost_user.h"
#include "vsock/vsock_conn.h"
#include "vsock/vsock_pkt.h"
#include "vsock/vsock_table.h"

#include <endian.h>
#include <stddef.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define LOG_STAGE "vsock-backend"
#define TX_BUDGET 256u /* tx chains per turn of the loop */
#define RX_IOV_MAX 64u
#define LOG_BURST 10u
#define LOG_WINDOW_MS 5000u

/* A connection and its place in the event loop. */
struct conn {
    struct vsock_conn vc; /* first: the table links vsock_conns */
    struct vsock_dev *dev;
    sd_event_source *io, *timer;
};

_Static_assert(offsetof(struct conn, vc) == 0, "struct conn starts with its vsock_conn");

static struct conn *conn_of(struct vsock_conn *vc)
{
    return (struct conn *)vc;
}

struct vsock_dev {
    sd_event *event;
    struct vsock_dev_config cfg;
    char *uds_path;
    int listen_fd;
    sd_event_source *listen_src, *tx_defer;
    struct listen_rest listen_rest; /* out of fds: the listener rests a while */
    struct vhost_user *vu;

    const struct vq_mem *mem; /* NULL while detached */
    struct virtqueue *rx, *tx;
    struct iovec *payload_buf; /* tx->num entries */
    struct vsock_table table;

    struct vsock_dev_stats stats;
    struct log_ratelimit guest_log; /* lines about guest misbehaviour */
};

static void rx_pump(struct vsock_dev *d);
static void conn_update_io(struct conn *c);

/* Guest misbehaviour is logged, but at most LOG_BURST lines per LOG_WINDOW_MS. */
static void dev_warn(struct vsock_dev *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void dev_warn(struct vsock_dev *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_ratelimitedv(&d->guest_log, LOG_WARNING, LOG_STAGE, fmt, ap);
    va_end(ap);
}

static bool attached(const struct vsock_dev *d)
{
    return d->mem != NULL;
}

/* --- connections --- */

static struct conn *conn_lookup(struct vsock_dev *d, uint32_t local, uint32_t peer)
{
    struct vsock_conn *vc = vsock_table_lookup(&d->table, local, peer);
    return vc ? conn_of(vc) : NULL;
}

/* Owes the guest a packet of kind WHAT on C. */
static void conn_mark(struct conn *c, unsigned what)
{
    vsock_table_mark(&c->dev->table, &c->vc, what);
}

static void conn_free(struct conn *c)
{
    struct vsock_dev *d = c->dev;
    vsock_table_remove(&d->table, &c->vc);
    c->io = sd_event_source_disable_unref(c->io);
    c->timer = sd_event_source_disable_unref(c->timer);
    vsock_conn_done(&c->vc);
    d->stats.connections = d->table.n;
    free(c);
}

/* Queues a RST for the guest port PEER from our port LOCAL. */
static void queue_rst(struct vsock_dev *d, uint32_t local, uint32_t peer)
{
    if (!attached(d))
        return;
    if (vsock_table_push_rst(&d->table, local, peer) < 0)
        dev_warn(d, "too many resets owed to the guest; dropping one for port %u", peer);
}

/* Ends C at once: the guest gets a RST (when it knows the connection), the host socket closes. */
static void conn_reset(struct conn *c)
{
    if (c->vc.state != VSOCK_CONN_HOST_LINE && !(c->vc.pending & VSOCK_PEND_REQUEST))
        queue_rst(c->dev, c->vc.local_port, c->vc.peer_port);
    conn_free(c);
}

static int on_conn_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
    struct conn *c = userdata;
    struct vsock_dev *d = c->dev;
    dev_warn(d, "host connection to guest port %u: %s", c->vc.peer_port,
             c->vc.state == VSOCK_CONN_HOST_LINE ? "no CONNECT line in time"
                                                 : "the guest did not answer in time");
    conn_reset(c);
    rx_pump(d);
    return 0;
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static int conn_new(struct vsock_dev *d, int fd, enum vsock_conn_state state, struct conn **ret)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    vsock_conn_init(&c->vc, fd, d->cfg.guest_cid, d->cfg.buf_alloc);
    c->vc.state = state;
    c->dev = d;
    vsock_table_add(&d->table, &c->vc);
    d->stats.connections = d->table.n;
    int r = sd_event_add_io(d->event, &c->io, fd, 0, on_conn_io, c);
    if (r >= 0 && state != VSOCK_CONN_ESTABLISHED)
        r = sd_event_add_time_relative(d->event, &c->timer, CLOCK_MONOTONIC,
                                       (uint64_t)d->cfg.connect_timeout_ms * 1000u, 0,
                                       on_conn_timeout, c);
    if (r < 0) {
        conn_free(c);
        return r;
    }
    *ret = c;
    return 0;
}

/* The events C's host socket is watched for, from its state. */
static void conn_update_io(struct conn *c)
{
    const struct vsock_conn *v = &c->vc;
    uint32_t ev = 0;
    if (v->state == VSOCK_CONN_HOST_LINE)
        ev = EPOLLIN;
    else if (v->state == VSOCK_CONN_ESTABLISHED) {
        if (!v->host_eof && !v->peer_shut_rcv && !(v->pending & VSOCK_PEND_DATA) &&
            vsock_conn_peer_free(v) > 0 && attached(c->dev))
            ev |= EPOLLIN;
        if (vsock_conn_buffered(v) > 0)
            ev |= EPOLLOUT;
    }
    /* Nothing wanted while the host side is still open (the guest gives no credit, or holds
     * data it has not taken): watch for a hang-up or an error only (epoll always reports those),
     * so that a host that goes away is noticed however long the guest stalls. Off once the host
     * has sent EOF: a hung-up socket would otherwise wake us forever. */
    bool watch_gone = !ev && v->state == VSOCK_CONN_ESTABLISHED && !v->host_eof;
    if (ev || watch_gone) {
        (void)sd_event_source_set_io_events(c->io, ev);
        (void)sd_event_source_set_enabled(c->io, SD_EVENT_ON);
    } else
        (void)sd_event_source_set_enabled(c->io, SD_EVENT_OFF);
}

/* Half-close bookkeeping; returns true when C is finished (and freed). */
static bool conn_check_done(struct conn *c)
{
    struct vsock_conn *v = &c->vc;
    /* The guest shut both directions at once while the host side still sends (the guest relay
     * died or dropped the connection mid-stream): a cut, not an end. Once the guest's last bytes
     * are out, the host socket is closed with SO_LINGER 0 (a reset on TCP; on the hybrid Unix
     * socket the whole hang-up in one event, which the host relay passes on as a reset), never
     * half-closed first: a relay that read the half-close alone would pass on a clean end. */
    if (v->peer_shut_send && v->peer_shut_rcv && !v->host_eof && !v->host_wr_shut) {
        if (vsock_conn_buffered(v) > 0)
            return false;
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        (void)setsockopt(v->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        conn_reset(c);
        return true;
    }
    if (v->peer_shut_send && !v->host_wr_shut && vsock_conn_buffered(v) == 0) {
        (void)shutdown(v->fd, SHUT_WR);
        v->host_wr_shut = true;
    }
    /* Both directions done: the guest's send side drained and closed on the host, and ours
     * ended (EOF sent) or the guest will not receive any more. */
    if (v->host_wr_shut && (v->host_eof || v->peer_shut_rcv)) {
        conn_reset(c);
        return true;
    }
    return false;
}

static void conn_established(struct conn *c)
{
    c->vc.state = VSOCK_CONN_ESTABLISHED;
    c->timer = sd_event_source_disable_unref(c->timer);
    conn_update_io(c);
}

/* Writes guest data on C's host socket, or buffers it; false when C was reset. */
static bool conn_guest_data(struct vsock_dev *d, struct conn *c, const struct vsock_pkt *p)
{
    int r = vsock_conn_to_host(&c->vc, p->payload, p->n_payload, p->hdr.len);
    if (r == -ENOBUFS)
        dev_warn(d, "guest port %u overran the credit it was given; resetting", c->vc.peer_port);
    if (r < 0) {
        conn_reset(c);
        return false;
    }
    d->stats.bytes_to_host += p->hdr.len;
    if (vsock_conn_credit_due(&c->vc))
        conn_mark(c, VSOCK_PEND_CREDIT);
    return true;
}

/* The guest accepted a host-initiated connection: tell the client `OK LOCALPORT\n`. */
static void conn_guest_response(struct conn *c)
{
    char line[32];
    int n = snprintf(line, sizeof(line), "OK %u\n", c->vc.local_port);
    ssize_t w = send(c->vc.fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w != n) {
        conn_reset(c); /* the client went away meanwhile */
        return;
    }
    conn_established(c);
}

static void conn_guest_shutdown(struct vsock_dev *d, struct conn *c, uint32_t flags)
{
    if (flags & ~(uint32_t)(VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND)) {
        dev_warn(d, "guest port %u: SHUTDOWN with unknown flags %#x; resetting", c->vc.peer_port,
                 flags);
        conn_reset(c);
        return;
    }
    if (flags & VIRTIO_VSOCK_SHUTDOWN_RCV)
        c->vc.peer_shut_rcv = true;
    if (flags & VIRTIO_VSOCK_SHUTDOWN_SEND)
        c->vc.peer_shut_send = true;
    if (!conn_check_done(c))
        conn_update_io(c);
}

/* A guest connection to host port P: connect to UDS_PATH_P now (Unix sockets do not linger
 * in progress), answer RESPONSE or RST. */
static void guest_connect(struct vsock_dev *d, const struct vsock_hdr *h)
{
    if (d->table.n >= d->cfg.max_connections) {
        dev_warn(d, "connection limit (%u) reached; refusing guest port %u", d->cfg.max_connections,
                 h->src_port);
        queue_rst(d, h->dst_port, h->src_port);
        return;
    }
    int fd;
    if ((d->cfg.connect_host ? d->cfg.connect_host(d->cfg.connect_host_userdata, h->dst_port, &fd)
                             : vsock_hybrid_connect(d->uds_path, h->dst_port, &fd)) < 0) {
        queue_rst(d, h->dst_port, h->src_port); /* nobody listens on PATH_P: refused */
        return;
    }
    struct conn *c;
    if (conn_new(d, fd, VSOCK_CONN_ESTABLISHED, &c) < 0) {
        queue_rst(d, h->dst_port, h->src_port);
        return;
    }
    c->vc.local_port = h->dst_port;
    c->vc.peer_port = h->src_port;
    vsock_conn_peer_credit(&c->vc, h->buf_alloc, h->fwd_cnt);
    vsock_table_hash(&d->table, &c->vc);
    d->stats.guest_connects++;
    conn_mark(c, VSOCK_PEND_RESPONSE);
    conn_update_io(c);
}

/* A well-formed packet from the guest. */
static void handle_packet(struct vsock_dev *d, const struct vsock_pkt *p)
{
    const struct vsock_hdr *h = &p->hdr;
    struct conn *c = conn_lookup(d, h->dst_port, h->src_port);
    if (!c) {
        if (h->op == VIRTIO_VSOCK_OP_REQUEST)
            guest_connect(d, h);
        else if (h->op != VIRTIO_VSOCK_OP_RST)
            queue_rst(d, h->dst_port, h->src_port);
        return;
    }
    vsock_conn_peer_credit(&c->vc, h->buf_alloc, h->fwd_cnt);
    bool established = c->vc.state == VSOCK_CONN_ESTABLISHED;
    switch (h->op) {
    case VIRTIO_VSOCK_OP_RST:
        conn_free(c); /* the guest gave up: no answer */
        return;
    case VIRTIO_VSOCK_OP_RESPONSE:
        if (c->vc.state == VSOCK_CONN_REQUESTING && !(c->vc.pending & VSOCK_PEND_REQUEST))
            conn_guest_response(c);
        else
            conn_reset(c);
        return;
    case VIRTIO_VSOCK_OP_SHUTDOWN:
        if (established)
            conn_guest_shutdown(d, c, h->flags);
        else
            conn_reset(c);
        return;
    case VIRTIO_VSOCK_OP_RW:
        if (!established || c->vc.peer_shut_send) {
            conn_reset(c);
            return;
        }
        if (!conn_guest_data(d, c, p))
            return;
        break;
    case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
        if (!established) {
            conn_reset(c);
            return;
        }
        conn_mark(c, VSOCK_PEND_CREDIT);
        break;
    case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
        break;
    default: /* REQUEST on a live connection: the guest lost track of it */
        conn_reset(c);
        return;
    }
    conn_update_io(c); /* new credit may let us read the host socket again */
}

/* A chain the guest got wrong: reset the connection it names, if its header says. */
static void handle_bad_chain(struct vsock_dev *d, const struct vq_chain *ch, int pop_err,
                             enum vsock_pkt_error perr, const struct vsock_pkt *p)
{
    d->stats.bad_packets++;
    const struct vsock_hdr *h = perr == VSOCK_PKT_SHORT ? NULL : &p->hdr;
    if (pop_err < 0)
        dev_warn(d, "dropped a malformed tx chain (head %u): %s", ch->head, strerror(-pop_err));
    else
        dev_warn(d, "dropped a bad packet (op %s, port %u -> %u): %s",
                 h ? vsock_op_to_string(h->op) : "?", h ? h->src_port : 0, h ? h->dst_port : 0,
                 vsock_pkt_error_to_string(perr));
    if (!h)
        return;
    struct conn *c = conn_lookup(d, h->dst_port, h->src_port);
    if (c)
        conn_reset(c);
    else if (h->op != VIRTIO_VSOCK_OP_RST)
        queue_rst(d, h->dst_port, h->src_port);
}

/* Takes up to TX_BUDGET packets from the tx queue; true when more may wait. */
static bool tx_process(struct vsock_dev *d)
{
    for (unsigned budget = 0; budget < TX_BUDGET && attached(d); budget++) {
        struct vq_chain ch;
        int r = virtqueue_pop(d->tx, d->mem, &ch);
        if (r == 0)
            return false;
        if (r == -EPROTO) {
            dev_warn(d, "tx ring index is corrupt; ignoring the ring until it is reset");
            return false;
        }
        struct vsock_pkt p;
        enum vsock_pkt_error perr = vsock_pkt_parse(&ch, d->cfg.guest_cid, d->payload_buf, &p);
        if (r < 0 || perr != VSOCK_PKT_OK)
            handle_bad_chain(d, &ch, r, perr, &p);
        else
            handle_packet(d, &p);
        /* The driver reuses the buffer only once it is back: after we are done with it. */
        if (ch.has_head && attached(d))
            virtqueue_push(d->tx, ch.head, 0);
    }
    return true;
}

static void tx_run(struct vsock_dev *d)
{
    bool more = tx_process(d);
    if (attached(d))
        (void)virtqueue_notify(d->tx);
    if (more)
        (void)sd_event_source_set_enabled(d->tx_defer, SD_EVENT_ONESHOT);
    rx_pump(d);
}

static int on_tx_defer(sd_event_source *s, void *userdata)
{
    tx_run(userdata);
    return 0;
}

/* --- host -> guest: filling rx buffers --- */

static uint32_t write_rst(struct vsock_dev *d, const struct vq_chain *ch, uint32_t local,
                          uint32_t peer)
{
    struct vsock_hdr h = {.src_cid = VSOCK_HOST_CID,
                          .dst_cid = d->cfg.guest_cid,
                          .src_port = local,
                          .dst_port = peer,
                          .type = VIRTIO_VSOCK_TYPE_STREAM,
                          .op = VIRTIO_VSOCK_OP_RST};
    (void)vsock_pkt_write_hdr(ch, &h);
    d->stats.resets++;
    return VSOCK_HDR_SIZE;
}

static uint32_t write_conn_hdr(struct conn *c, const struct vq_chain *ch, uint16_t op,
                               uint32_t flags, uint32_t len)
{
    struct vsock_hdr h;
    vsock_conn_hdr(&c->vc, op, flags, len, &h);
    (void)vsock_pkt_write_hdr(ch, &h);
    c->vc.pending &= ~VSOCK_PEND_CREDIT; /* every header carries our credit */
    return VSOCK_HDR_SIZE + len;
}

/* Reads host data for C straight into the guest's buffer. Returns bytes of the packet written,
 * 0 when there was nothing (the socket is watched again), or -1 when C was reset. */
static int conn_fill_data(struct conn *c, const struct vq_chain *ch)
{
    struct vsock_dev *d = c->dev;
    struct vsock_conn *v = &c->vc;
    uint32_t room = vsock_conn_peer_free(v);
    if (room > VSOCK_PKT_MAX_PAYLOAD)
        room = VSOCK_PKT_MAX_PAYLOAD;
    struct iovec iov[RX_IOV_MAX];
    unsigned n = room ? vsock_pkt_rx_space(ch, room, iov, RX_IOV_MAX) : 0;
    if (n == 0 || v->host_eof || v->peer_shut_rcv) {
        v->pending &= ~VSOCK_PEND_DATA;
        return 0;
    }
    ssize_t got = vsock_conn_from_host(v, iov, n);
    if (got == -EAGAIN) {
        v->pending &= ~VSOCK_PEND_DATA;
        return 0;
    }
    if (got < 0) {
        conn_reset(c);
        return -1;
    }
    if (got == 0) { /* the host client finished sending: half-close towards the guest */
        v->pending &= ~VSOCK_PEND_DATA;
        v->host_eof = true;
        return (int)write_conn_hdr(c, ch, VIRTIO_VSOCK_OP_SHUTDOWN, VIRTIO_VSOCK_SHUTDOWN_SEND, 0);
    }
    d->stats.bytes_to_guest += (uint64_t)got;
    return (int)write_conn_hdr(c, ch, VIRTIO_VSOCK_OP_RW, 0, (uint32_t)got);
}

/* The next packet C owes the guest, written into CH: bytes used, 0 for none, -1 if C is gone. */
static int conn_fill(struct conn *c, const struct vq_chain *ch)
{
    struct vsock_conn *v = &c->vc;
    if (v->pending & VSOCK_PEND_REQUEST) {
        v->pending &= ~VSOCK_PEND_REQUEST;
        return (int)write_conn_hdr(c, ch, VIRTIO_VSOCK_OP_REQUEST, 0, 0);
    }
    if (v->pending & VSOCK_PEND_RESPONSE) {
        v->pending &= ~VSOCK_PEND_RESPONSE;
        return (int)write_conn_hdr(c, ch, VIRTIO_VSOCK_OP_RESPONSE, 0, 0);
    }
    if (v->pending & VSOCK_PEND_DATA) {
        int r = conn_fill_data(c, ch);
        if (r != 0)
            return r;
    }
    if (v->pending & VSOCK_PEND_CREDIT)
        return (int)write_conn_hdr(c, ch, VIRTIO_VSOCK_OP_CREDIT_UPDATE, 0, 0);
    return 0;
}

/* One rx buffer for the next owed packet: true if it was used. */
static bool rx_fill_one(struct vsock_dev *d, const struct vq_chain *ch)
{
    uint32_t local, peer;
    if (vsock_table_pop_rst(&d->table, &local, &peer)) {
        virtqueue_push(d->rx, ch->head, write_rst(d, ch, local, peer));
        return true;
    }
    struct conn *c = conn_of(vsock_table_dequeue(&d->table));
    int n = conn_fill(c, ch);
    if (n < 0)
        return false; /* reset: its RST is queued now */
    if (n > 0 && c->vc.pending)
        vsock_table_queue(&d->table, &c->vc); /* round robin */
    if (n > 0)
        virtqueue_push(d->rx, ch->head, (uint32_t)n);
    if (!(n > 0 && c->vc.host_eof && conn_check_done(c)))
        conn_update_io(c);
    return n > 0;
}

static void rx_pump(struct vsock_dev *d)
{
    while (attached(d) && vsock_table_has_work(&d->table)) {
        struct vq_chain ch;
        int r = virtqueue_pop(d->rx, d->mem, &ch);
        if (r == 0)
            break; /* no buffers: the guest kicks when it adds some */
        if (r == -EPROTO) {
            dev_warn(d, "rx ring index is corrupt; ignoring the ring until it is reset");
            break;
        }
        if (r < 0 || ch.n_out > 0 || ch.in_bytes < VSOCK_HDR_SIZE) {
            d->stats.bad_packets++;
            dev_warn(d, "dropped a malformed rx buffer (head %u): %s", ch.head,
                     r < 0 ? strerror(-r) : "not a writable buffer of a header or more");
            if (ch.has_head)
                virtqueue_push(d->rx, ch.head, 0);
            continue;
        }
        if (!rx_fill_one(d, &ch))
            virtqueue_unpop(d->rx);
    }
    if (attached(d))
        (void)virtqueue_notify(d->rx);
}

/* --- host sockets --- */

static void conn_line(struct conn *c)
{
    struct vsock_dev *d = c->dev;
    uint16_t port;
    int r = vsock_conn_read_line(&c->vc, &port);
    if (r == 0)
        return;
    if (r < 0) {
        if (r == -EBADMSG)
            dev_warn(d, "host client: expected \"CONNECT PORT\\n\" (port 1-65535); closing");
        conn_free(c);
        return;
    }
    if (!attached(d)) {
        conn_free(c); /* no guest to connect to: an immediate close, never a hang */
        return;
    }
    c->vc.peer_port = port;
    c->vc.local_port = vsock_table_alloc_port(&d->table, port);
    c->vc.state = VSOCK_CONN_REQUESTING;
    vsock_table_hash(&d->table, &c->vc);
    conn_mark(c, VSOCK_PEND_REQUEST);
    conn_update_io(c);
    rx_pump(d);
}

static int on_conn_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    struct conn *c = userdata;
    struct vsock_dev *d = c->dev;
    if (c->vc.state == VSOCK_CONN_HOST_LINE) {
        conn_line(c);
        return 0;
    }
    uint32_t wanted = 0;
    (void)sd_event_source_get_io_events(s, &wanted);
    if (!wanted && (revents & (EPOLLHUP | EPOLLERR))) {
        /* the host went away while the guest was not taking its data: nobody is left to
         * deliver it to or to answer, so the guest gets a reset now, not whenever it reads */
        conn_reset(c);
        rx_pump(d);
        return 0;
    }
    if (vsock_conn_buffered(&c->vc) > 0 && (revents & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
        if (vsock_conn_flush(&c->vc) < 0) {
            conn_reset(c);
            rx_pump(d);
            return 0;
        }
        if (vsock_conn_credit_due(&c->vc))
            conn_mark(c, VSOCK_PEND_CREDIT);
        if (conn_check_done(c)) {
            rx_pump(d);
            return 0;
        }
    }
    if ((wanted & EPOLLIN) && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        conn_mark(c, VSOCK_PEND_DATA);
    conn_update_io(c);
    rx_pump(d);
    return 0;
}

static int on_listen(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    struct vsock_dev *d = userdata;
    int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (cfd < 0) {
        int err = errno;
        if (listen_rest_after(&d->listen_rest, err))
            dev_warn(d, "cannot accept host clients: %s; retrying", strerror(err));
        return 0;
    }
    if (!attached(d)) {
        close(cfd); /* the guest is not running */
        return 0;
    }
    if (d->table.n >= d->cfg.max_connections) {
        dev_warn(d, "connection limit (%u) reached; refusing a host client",
                 d->cfg.max_connections);
        close(cfd);
        return 0;
    }
    struct conn *c;
    if (conn_new(d, cfd, VSOCK_CONN_HOST_LINE, &c) < 0)
        return 0;
    d->stats.accepted++;
    conn_update_io(c);
    return 0;
}

/* --- transport side --- */

int vsock_dev_attach(struct vsock_dev *d, const struct vq_mem *mem, struct virtqueue *rx,
                     struct virtqueue *tx)
{
    vsock_dev_detach(d);
    struct iovec *buf = calloc(tx->num ? tx->num : 1, sizeof(*buf));
    if (!buf)
        return -ENOMEM;
    d->payload_buf = buf;
    d->mem = mem;
    d->rx = rx;
    d->tx = tx;
    return 0;
}

void vsock_dev_detach(struct vsock_dev *d)
{
    /* The guest is gone (reboot, QEMU restart): so are its connections. */
    d->mem = NULL;
    d->rx = d->tx = NULL;
    while (d->table.all)
        conn_free(conn_of(d->table.all));
    vsock_table_clear_rst(&d->table);
    free(d->payload_buf);
    d->payload_buf = NULL;
}

void vsock_dev_kick(struct vsock_dev *d, unsigned queue)
{
    if (!attached(d))
        return;
    if (queue == VSOCK_DEV_TX_QUEUE)
        tx_run(d);
    else if (queue == VSOCK_DEV_RX_QUEUE)
        rx_pump(d);
}

bool vsock_dev_live(const struct vsock_dev *d)
{
    return attached(d);
}

static int dev_get_config(void *userdata, uint32_t offset, uint8_t *buf, uint32_t size)
{
    struct vsock_dev *d = userdata;
    struct virtio_vsock_config cfg = {.guest_cid = htole64(d->cfg.guest_cid)};
    if (offset > sizeof(cfg) || size > sizeof(cfg) - offset)
        return -EINVAL;
    memcpy(buf, (const uint8_t *)&cfg + offset, size);
    return 0;
}

static void dev_live(void *userdata, bool live, const struct vq_mem *mem, struct virtqueue *vqs)
{
    struct vsock_dev *d = userdata;
    if (!live) {
        vsock_dev_detach(d);
        log_info(LOG_STAGE, "device stopped");
        return;
    }
    int r = vsock_dev_attach(d, mem, &vqs[VSOCK_DEV_RX_QUEUE], &vqs[VSOCK_DEV_TX_QUEUE]);
    if (r < 0)
        log_error(LOG_STAGE, "cannot start the device: %s", strerror(-r));
    else
        log_info(LOG_STAGE, "device running (guest cid %u)", d->cfg.guest_cid);
}

static void dev_kick(void *userdata, unsigned queue)
{
    vsock_dev_kick(userdata, queue);
}

static const struct vhost_user_device vsock_vhost_user_device = {
    .n_queues = 3, /* rx, tx, event (QEMU keeps the event queue to itself) */
    .n_required = 2,
    .features = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC),
    .log_stage = LOG_STAGE ": vhost-user",
    .get_config = dev_get_config,
    .live = dev_live,
    .kick = dev_kick,
};

/* --- lifetime --- */

static int dev_setup(struct vsock_dev *d, const struct vsock_dev_config *cfg)
{
    int r = 0;
    _cleanup_close_ int vhost_fd = cfg->take_fds ? cfg->vhost_user_fd : -1;
    if (cfg->take_fds)
        d->listen_fd = cfg->uds_fd;
    else
        r = vsock_hybrid_listen(d->uds_path, &d->listen_fd);
    if (r < 0)
        return r;
    r = sd_event_add_io(d->event, &d->listen_src, d->listen_fd, EPOLLIN, on_listen, d);
    if (r >= 0)
        r = listen_rest_init(&d->listen_rest, d->listen_src);
    if (r < 0)
        return r;
    r = sd_event_add_defer(d->event, &d->tx_defer, on_tx_defer, d);
    if (r < 0)
        return r;
    (void)sd_event_source_set_enabled(d->tx_defer, SD_EVENT_OFF);
    if (cfg->take_fds ? cfg->vhost_user_fd < 0 : !cfg->vhost_user_path)
        return 0;
    r = vhost_user_new(d->event, &vsock_vhost_user_device, d, &d->vu);
    if (r < 0)
        return r;
    return cfg->take_fds ? vhost_user_listen_fd(d->vu, TAKE_FD(vhost_fd), cfg->vhost_user_path)
                         : vhost_user_listen(d->vu, cfg->vhost_user_path);
}

/* With take_fds, the sockets are ours from the call on, even when it fails early. */
static int refuse(const struct vsock_dev_config *cfg, int r)
{
    if (cfg && cfg->take_fds) {
        if (cfg->uds_fd >= 0)
            close(cfg->uds_fd);
        if (cfg->vhost_user_fd >= 0)
            close(cfg->vhost_user_fd);
    }
    return r;
}

int vsock_dev_new(sd_event *e, const struct vsock_dev_config *cfg, struct vsock_dev **ret)
{
    if (!e || !cfg || !cfg->uds_path || cfg->guest_cid <= VSOCK_HOST_CID ||
        cfg->guest_cid == UINT32_MAX || (cfg->take_fds && cfg->uds_fd < 0) ||
        (cfg->vhost_user_path && strcmp(cfg->vhost_user_path, cfg->uds_path) == 0))
        return refuse(cfg, -EINVAL);
    struct vsock_dev *d = calloc(1, sizeof(*d));
    if (!d)
        return refuse(cfg, -ENOMEM);
    d->event = sd_event_ref(e);
    d->guest_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(LOG_WINDOW_MS, LOG_BURST);
    d->cfg = *cfg;
    d->cfg.uds_path = NULL;
    d->cfg.vhost_user_path = cfg->vhost_user_path;
    if (d->cfg.buf_alloc == 0)
        d->cfg.buf_alloc = 256u * 1024u;
    if (d->cfg.max_connections == 0)
        d->cfg.max_connections = 1024;
    if (d->cfg.connect_timeout_ms == 0)
        d->cfg.connect_timeout_ms = 10000;
    d->listen_fd = -1;
    vsock_table_init(&d->table);
    d->uds_path = strdup(cfg->uds_path);
    int r = d->uds_path ? dev_setup(d, cfg) : refuse(cfg, -ENOMEM);
    d->cfg.vhost_user_path = NULL; /* not kept: vhost_user has its own copy */
    if (r < 0) {
        vsock_dev_free(d);
        return r;
    }
    *ret = d;
    return 0;
}

void vsock_dev_free(struct vsock_dev *d)
{
    if (!d)
        return;
    vhost_user_free(d->vu); /* stops the device: detaches */
    vsock_dev_detach(d);
    d->tx_defer = sd_event_source_disable_unref(d->tx_defer);
    d->listen_src = sd_event_source_disable_unref(d->listen_src);
    listen_rest_done(&d->listen_rest);
    if (d->listen_fd >= 0) {
        close(d->listen_fd);
        if (!d->cfg.take_fds)
            unlink(d->uds_path);
    }
    free(d->uds_path);
    sd_event_unref(d->event);
    free(d);
}

void vsock_dev_get_stats(const struct vsock_dev *d, struct vsock_dev_stats *ret)
{
    *ret = d->stats;
}
