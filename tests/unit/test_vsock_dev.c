/* vsock_dev: the virtio-vsock device driven through hand-built rx/tx rings (fake_guest) with
 * real Unix sockets on the host side. Good paths (guest and host connects, data both ways with
 * credit, half-close, credit requests) and hostile guests (bad chains, bad headers, protocol
 * violations): each bad packet is dropped with the right answer and the device keeps working. */

#include "tests/support/fake_guest.h"
#include "tests/support/loop_probe.h"
#include "tests/support/run_suite.h"
#include "vsock/backend_main.h"
#include "vsock/vsock_conn.h"
#include "vsock/vsock_dev.h"

#include <check.h>
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#define CID 3u
#define NUM 32u
#define RX_BUF 4096u
#define GUEST_BUF 65536u /* the guest's buf_alloc */

static struct fake_guest g;
static struct fake_ring rx, tx;
static sd_event *e;
static struct vsock_dev *d;
static char dir[48], uds[64];
static uint32_t guest_fwd; /* what the guest says it consumed */
static uint32_t dev_buf;   /* the device's buf_alloc */
/* how the device reaches host ports (NULL: the Unix sockets at uds_PORT) */
static int (*connect_host)(void *userdata, uint32_t port, int *ret_fd);

static void setup_cfg(uint32_t buf_alloc, unsigned max_conns, unsigned timeout_ms)
{
    ck_assert_int_eq(fg_init(&g, 3u * NUM * FG_SLOT_SIZE + (1u << 20)), 0);
    ck_assert_int_eq(fg_ring_init(&g, &rx, NUM, true), 0);
    ck_assert_int_eq(fg_ring_init(&g, &tx, NUM, true), 0);
    ck_assert_int_eq(sd_event_new(&e), 0);
    snprintf(dir, sizeof(dir), "/tmp/ocvm-vsock-dev-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_int_lt(snprintf(uds, sizeof(uds), "%s/v.sock", dir), (int)sizeof(uds));
    struct vsock_dev_config cfg = {.guest_cid = CID,
                                   .uds_path = uds,
                                   .buf_alloc = buf_alloc,
                                   .max_connections = max_conns,
                                   .connect_timeout_ms = timeout_ms,
                                   .connect_host = connect_host};
    ck_assert_int_eq(vsock_dev_new(e, &cfg, &d), 0);
    dev_buf = buf_alloc ? buf_alloc : 256u * 1024u;
    ck_assert_int_eq(vsock_dev_attach(d, &g.table, &rx.vq, &tx.vq), 0);
    fg_rx_post(&rx, NUM / 2, RX_BUF);
    guest_fwd = 0;
}

static void setup(void)
{
    setup_cfg(0, 0, 0);
}

static void teardown(void)
{
    vsock_dev_free(d);
    sd_event_unref(e);
    fg_ring_free(&rx);
    fg_ring_free(&tx);
    fg_free(&g);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void pump(void)
{
    for (int i = 0; i < 1000; i++)
        if (sd_event_run(e, 0) <= 0)
            break;
}

static void pump_for(unsigned ms)
{
    (void)sd_event_run(e, (uint64_t)ms * 1000u);
    pump();
}

static struct vsock_hdr hdr(uint16_t op, uint32_t sport, uint32_t dport, uint32_t len)
{
    return (struct vsock_hdr){.src_cid = CID,
                              .dst_cid = 2,
                              .src_port = sport,
                              .dst_port = dport,
                              .len = len,
                              .type = VIRTIO_VSOCK_TYPE_STREAM,
                              .op = op,
                              .buf_alloc = GUEST_BUF,
                              .fwd_cnt = guest_fwd};
}

/* Sends one packet on tx and checks the device handed the buffer back. */
static void tx_send(struct vsock_hdr h, const void *payload, size_t len)
{
    unsigned before = fg_used_pending(&tx);
    fg_tx(&tx, &h, payload, len);
    vsock_dev_kick(d, VSOCK_DEV_TX_QUEUE);
    pump();
    ck_assert_uint_eq(fg_used_pending(&tx), before + 1);
    uint32_t id, used_len;
    ck_assert(fg_used(&tx, &id, &used_len));
    ck_assert_uint_eq(used_len, 0);
}

static void tx_op(uint16_t op, uint32_t sport, uint32_t dport)
{
    tx_send(hdr(op, sport, dport, 0), NULL, 0);
}

/* Takes the next rx packet (and gives the guest a fresh buffer). */
static bool rx_get(struct vsock_hdr *h, void *buf, size_t cap, int *len)
{
    int n = fg_rx_take(&rx, h, buf, cap);
    if (n < 0)
        return false;
    fg_rx_post(&rx, 1, RX_BUF);
    vsock_dev_kick(d, VSOCK_DEV_RX_QUEUE);
    if (len)
        *len = n;
    return true;
}

static struct vsock_hdr expect_rx(uint16_t op, uint32_t sport, uint32_t dport)
{
    struct vsock_hdr h;
    static uint8_t buf[RX_BUF];
    pump();
    ck_assert_msg(rx_get(&h, buf, sizeof(buf), NULL), "no packet for the guest (wanted op %u)", op);
    ck_assert_msg(h.op == op, "op %u, wanted %u", h.op, op);
    ck_assert_uint_eq(h.src_cid, 2);
    ck_assert_uint_eq(h.dst_cid, CID);
    ck_assert_uint_eq(h.type, VIRTIO_VSOCK_TYPE_STREAM);
    ck_assert_uint_eq(h.src_port, sport);
    ck_assert_uint_eq(h.dst_port, dport);
    return h;
}

static void expect_no_rx(void)
{
    struct vsock_hdr h;
    uint8_t buf[64];
    pump();
    ck_assert_msg(!rx_get(&h, buf, sizeof(buf), NULL), "unexpected packet op %u", h.op);
}

static int listen_port(uint32_t port)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", uds, port);
    unlink(sa.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 16), 0);
    return fd;
}

/* A guest connection from guest port GPORT to host port HPORT; returns the host's end. */
static int guest_open(uint32_t gport, uint32_t hport)
{
    int lfd = listen_port(hport);
    tx_op(VIRTIO_VSOCK_OP_REQUEST, gport, hport);
    struct vsock_hdr h = expect_rx(VIRTIO_VSOCK_OP_RESPONSE, hport, gport);
    ck_assert_uint_eq(h.buf_alloc, dev_buf);
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    ck_assert_int_ge(fd, 0);
    close(lfd);
    return fd;
}

static int host_client(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", uds);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Non-blocking read of what is there: bytes, 0 at EOF (or reset), -1 when nothing. */
static ssize_t host_read(int fd, void *buf, size_t cap)
{
    pump();
    ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);
    if (n < 0 && errno == ECONNRESET)
        return 0; /* closed by the device with our bytes unread */
    return n < 0 ? -1 : n;
}

/* A host connection to guest port GPORT, accepted by the guest; *LOCAL is the host port. */
static int host_open(uint32_t gport, uint32_t *local)
{
    int fd = host_client();
    char line[32];
    int n = snprintf(line, sizeof(line), "CONNECT %u\n", gport);
    ck_assert_int_eq(send(fd, line, (size_t)n, 0), n);
    pump();
    struct vsock_hdr h;
    uint8_t buf[64];
    ck_assert(rx_get(&h, buf, sizeof(buf), NULL));
    ck_assert_uint_eq(h.op, VIRTIO_VSOCK_OP_REQUEST);
    ck_assert_uint_eq(h.dst_port, gport);
    ck_assert_uint_ge(h.src_port, 1u << 30);
    *local = h.src_port;
    tx_op(VIRTIO_VSOCK_OP_RESPONSE, gport, *local);
    char ok[32] = {0};
    ck_assert_int_gt(host_read(fd, ok, sizeof(ok) - 1), 0);
    snprintf(line, sizeof(line), "OK %u\n", *local);
    ck_assert_str_eq(ok, line);
    return fd;
}

static void expect_host_closed(int fd)
{
    char b[16];
    ck_assert_int_eq(host_read(fd, b, sizeof(b)), 0);
}

/* --- good paths --- */

START_TEST(guest_connect_and_data)
{
    int fd = guest_open(1234, 5000);
    tx_send(hdr(VIRTIO_VSOCK_OP_RW, 1234, 5000, 4), "ping", 4);
    char buf[16] = {0};
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), 4);
    ck_assert_str_eq(buf, "ping");

    ck_assert_int_eq(send(fd, "pong!", 5, 0), 5);
    pump();
    struct vsock_hdr h;
    int n;
    ck_assert(rx_get(&h, buf, sizeof(buf), &n));
    ck_assert_uint_eq(h.op, VIRTIO_VSOCK_OP_RW);
    ck_assert_uint_eq(h.len, 5);
    ck_assert_int_eq(n, 5);
    ck_assert_mem_eq(buf, "pong!", 5);
    ck_assert_uint_eq(h.fwd_cnt, 4); /* the 4 bytes we forwarded to the host */

    struct vsock_dev_stats st;
    vsock_dev_get_stats(d, &st);
    ck_assert_uint_eq(st.connections, 1);
    ck_assert_uint_eq(st.bytes_to_host, 4);
    ck_assert_uint_eq(st.bytes_to_guest, 5);
    close(fd);
}
END_TEST

START_TEST(guest_connect_refused)
{
    tx_op(VIRTIO_VSOCK_OP_REQUEST, 1234, 6000); /* nobody listens on uds_6000 */
    expect_rx(VIRTIO_VSOCK_OP_RST, 6000, 1234);
    expect_no_rx();
}
END_TEST

START_TEST(host_connect)
{
    uint32_t local;
    int fd = host_open(18789, &local);
    ck_assert_int_eq(send(fd, "GET /health", 11, 0), 11);
    pump();
    struct vsock_hdr h;
    char buf[64] = {0};
    int n;
    ck_assert(rx_get(&h, buf, sizeof(buf), &n));
    ck_assert_uint_eq(h.op, VIRTIO_VSOCK_OP_RW);
    ck_assert_uint_eq(h.src_port, local);
    ck_assert_uint_eq(h.dst_port, 18789);
    ck_assert_mem_eq(buf, "GET /health", 11);
    tx_send(hdr(VIRTIO_VSOCK_OP_RW, 18789, local, 6), "200 OK", 6);
    memset(buf, 0, sizeof(buf));
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), 6);
    ck_assert_str_eq(buf, "200 OK");
    close(fd);
    /* the client went away: the guest hears of it (SHUTDOWN, then RST once both ends end) */
    expect_rx(VIRTIO_VSOCK_OP_SHUTDOWN, local, 18789);
}
END_TEST

START_TEST(host_connect_pipelined)
{
    int fd = host_client();
    ck_assert_int_eq(send(fd, "CONNECT 80\nearly data", 21, 0), 21);
    pump();
    struct vsock_hdr h;
    char buf[64] = {0};
    ck_assert(rx_get(&h, buf, sizeof(buf), NULL));
    ck_assert_uint_eq(h.op, VIRTIO_VSOCK_OP_REQUEST);
    uint32_t local = h.src_port;
    expect_no_rx(); /* nothing before the guest accepts */
    tx_op(VIRTIO_VSOCK_OP_RESPONSE, 80, local);
    char ok[32] = {0}, want[32];
    snprintf(want, sizeof(want), "OK %u\n", local);
    ck_assert_int_eq(host_read(fd, ok, strlen(want)), (ssize_t)strlen(want));
    ck_assert_str_eq(ok, want);
    h = expect_rx(VIRTIO_VSOCK_OP_RW, local, 80);
    ck_assert_uint_eq(h.len, 10); /* the bytes after the line are stream data */
    close(fd);
}
END_TEST

START_TEST(host_connect_refused_by_guest)
{
    int fd = host_client();
    ck_assert_int_eq(send(fd, "CONNECT 81\n", 11, 0), 11);
    pump();
    struct vsock_hdr h;
    uint8_t buf[64];
    ck_assert(rx_get(&h, buf, sizeof(buf), NULL));
    ck_assert_uint_eq(h.op, VIRTIO_VSOCK_OP_REQUEST);
    tx_op(VIRTIO_VSOCK_OP_RST, 81, h.src_port);
    expect_host_closed(fd);
    expect_no_rx(); /* a RST is never answered */
    close(fd);
}
END_TEST

START_TEST(host_bad_lines)
{
    static const char *const bad[] = {
        "CONNECT 0\n", "CONNECT 65536\n",        "CONNECT 080\n", "CONNECT -1\n",
        "CONNECT\n",   "connect 80\n",           "CONNECT 80 \n", "CONNECT 80\r\n",
        "HELLO\n",     "CONNECT 123456789012\n", "CONNECT 8", /* then EOF */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int fd = host_client();
        ck_assert_int_eq(send(fd, bad[i], strlen(bad[i]), 0), (ssize_t)strlen(bad[i]));
        if (bad[i][strlen(bad[i]) - 1] != '\n')
            shutdown(fd, SHUT_WR);
        pump();
        char b[16];
        ck_assert_msg(host_read(fd, b, sizeof(b)) == 0, "%s: not closed", bad[i]);
        close(fd);
    }
    expect_no_rx();
    struct vsock_dev_stats st;
    vsock_dev_get_stats(d, &st);
    ck_assert_uint_eq(st.connections, 0);
}
END_TEST

START_TEST(host_line_timeout)
{
    teardown();
    setup_cfg(0, 0, 50);
    int fd = host_client(); /* sends nothing */
    int fd2 = host_client();
    ck_assert_int_eq(send(fd2, "CONNECT 99\n", 11, 0), 11);
    pump();
    struct vsock_hdr h = expect_rx(VIRTIO_VSOCK_OP_REQUEST, (1u << 30), 99);
    pump_for(150);
    expect_host_closed(fd);
    expect_host_closed(fd2);
    /* the guest never answered fd2's REQUEST: it is cancelled with a RST */
    expect_rx(VIRTIO_VSOCK_OP_RST, h.src_port, 99);
    close(fd);
    close(fd2);
}
END_TEST

START_TEST(credit_request)
{
    int fd = guest_open(1234, 5000);
    tx_send(hdr(VIRTIO_VSOCK_OP_RW, 1234, 5000, 3), "abc", 3);
    tx_op(VIRTIO_VSOCK_OP_CREDIT_REQUEST, 1234, 5000);
    struct vsock_hdr h = expect_rx(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 5000, 1234);
    ck_assert_uint_eq(h.buf_alloc, 256u * 1024u);
    ck_assert_uint_eq(h.fwd_cnt, 3);
    close(fd);
}
END_TEST

/* The host sends more than the guest has room for: the device waits for credit. */
START_TEST(credit_to_guest)
{
    int fd = guest_open(1234, 5000);
    /* the guest announces a 100-byte buffer */
    struct vsock_hdr upd = hdr(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 1234, 5000, 0);
    upd.buf_alloc = 100;
    tx_send(upd, NULL, 0);
    char data[300];
    for (int i = 0; i < 300; i++)
        data[i] = (char)i;
    ck_assert_int_eq(send(fd, data, sizeof(data), 0), 300);
    pump();
    struct vsock_hdr h;
    char buf[RX_BUF];
    int n, got = 0;
    while (rx_get(&h, buf + got, sizeof(buf) - (size_t)got, &n)) {
        ck_assert_uint_eq(h.op, VIRTIO_VSOCK_OP_RW);
        got += n;
        pump();
    }
    ck_assert_int_eq(got, 100); /* no more than advertised */
    upd.fwd_cnt = 100;          /* the guest application read it all */
    tx_send(upd, NULL, 0);
    pump();
    while (rx_get(&h, buf + got, sizeof(buf) - (size_t)got, &n)) {
        got += n;
        pump();
    }
    ck_assert_int_eq(got, 200);
    ck_assert_mem_eq(buf, data, 200);
    close(fd);
}
END_TEST

/* The guest sends while the host does not read: data is buffered up to the credit we gave; a
 * guest that respects it is never reset and every byte arrives in order. */
START_TEST(credit_from_guest)
{
    teardown();
    setup_cfg(16384, 0, 0);
    int fd = listen_port(5000);
    tx_op(VIRTIO_VSOCK_OP_REQUEST, 1234, 5000);
    struct vsock_hdr h = expect_rx(VIRTIO_VSOCK_OP_RESPONSE, 5000, 1234);
    int hfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    ck_assert_int_ge(hfd, 0);
    close(fd);

    uint32_t peer_buf = h.buf_alloc, peer_fwd = h.fwd_cnt, sent = 0;
    static uint8_t chunk[4096], in[4 << 20];
    size_t in_len = 0;
    uint32_t total = 3u << 20;
    while (sent < total) {
        uint32_t room = peer_buf - (sent - peer_fwd);
        if (room == 0) { /* wait for credit, reading the host side meanwhile */
            ssize_t n = host_read(hfd, in + in_len, sizeof(in) - in_len);
            ck_assert_int_gt(n, 0);
            in_len += (size_t)n;
            pump();
            while (fg_rx_take(&rx, &h, chunk, sizeof(chunk)) >= 0) {
                fg_rx_post(&rx, 1, RX_BUF);
                ck_assert_uint_eq(h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
                peer_fwd = h.fwd_cnt;
            }
            vsock_dev_kick(d, VSOCK_DEV_RX_QUEUE);
            continue;
        }
        uint32_t k = room < sizeof(chunk) ? room : sizeof(chunk);
        if (k > total - sent)
            k = total - sent;
        for (uint32_t i = 0; i < k; i++)
            chunk[i] = (uint8_t)((sent + i) * 7);
        tx_send(hdr(VIRTIO_VSOCK_OP_RW, 1234, 5000, k), chunk, k);
        sent += k;
    }
    for (;;) {
        ssize_t n = host_read(hfd, in + in_len, sizeof(in) - in_len);
        if (n <= 0)
            break;
        in_len += (size_t)n;
    }
    ck_assert_uint_eq(in_len, total);
    for (size_t i = 0; i < in_len; i++)
        if (in[i] != (uint8_t)(i * 7))
            ck_abort_msg("byte %zu differs", i);
    struct vsock_dev_stats st;
    vsock_dev_get_stats(d, &st);
    ck_assert_uint_eq(st.resets, 0);
    close(hfd);
}
END_TEST

/* A guest that ignores our credit while the host does not read is reset, not buffered forever. */
START_TEST(credit_overrun)
{
    teardown();
    setup_cfg(16384, 0, 0);
    int fd = guest_open(1234, 5000);
    static uint8_t chunk[65536];
    struct vsock_dev_stats st;
    for (int i = 0; i < 64; i++) {
        tx_send(hdr(VIRTIO_VSOCK_OP_RW, 1234, 5000, sizeof(chunk)), chunk, sizeof(chunk));
        vsock_dev_get_stats(d, &st);
        if (st.connections == 0)
            break;
    }
    ck_assert_uint_eq(st.connections, 0);
    struct vsock_hdr h;
    uint8_t buf[64];
    bool rst = false;
    while (rx_get(&h, buf, sizeof(buf), NULL))
        rst |= h.op == VIRTIO_VSOCK_OP_RST;
    ck_assert(rst);
    close(fd);
}
END_TEST

START_TEST(half_close_guest_first)
{
    int fd = guest_open(1234, 5000);
    tx_send(hdr(VIRTIO_VSOCK_OP_RW, 1234, 5000, 5), "hello", 5);
    struct vsock_hdr sh = hdr(VIRTIO_VSOCK_OP_SHUTDOWN, 1234, 5000, 0);
    sh.flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
    tx_send(sh, NULL, 0);
    char buf[16];
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), 5);
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), 0); /* EOF: shutdown(SHUT_WR) */
    /* the other direction still flows */
    ck_assert_int_eq(send(fd, "reply", 5, 0), 5);
    struct vsock_hdr h = expect_rx(VIRTIO_VSOCK_OP_RW, 5000, 1234);
    ck_assert_uint_eq(h.len, 5);
    /* the host finishes too: SHUTDOWN to the guest, then RST (both directions done) */
    shutdown(fd, SHUT_WR);
    h = expect_rx(VIRTIO_VSOCK_OP_SHUTDOWN, 5000, 1234);
    ck_assert_uint_eq(h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1234);
    struct vsock_dev_stats st;
    vsock_dev_get_stats(d, &st);
    ck_assert_uint_eq(st.connections, 0);
    close(fd);
}
END_TEST

START_TEST(half_close_host_first)
{
    uint32_t local;
    int fd = host_open(7000, &local);
    shutdown(fd, SHUT_WR);
    struct vsock_hdr h = expect_rx(VIRTIO_VSOCK_OP_SHUTDOWN, local, 7000);
    ck_assert_uint_eq(h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
    tx_send(hdr(VIRTIO_VSOCK_OP_RW, 7000, local, 3), "bye", 3);
    char buf[16] = {0};
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), 3);
    struct vsock_hdr sh = hdr(VIRTIO_VSOCK_OP_SHUTDOWN, 7000, local, 0);
    sh.flags = VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV;
    tx_send(sh, NULL, 0);
    expect_rx(VIRTIO_VSOCK_OP_RST, local, 7000);
    expect_host_closed(fd);
    close(fd);
}
END_TEST

/* The host closes while its data waits for credit the guest does not give: the guest gets a
 * reset at once, and the device lets go of the connection. */
START_TEST(host_gone_while_guest_stalls)
{
    uint32_t local;
    int fd = host_open(5000, &local);
    struct vsock_hdr upd = hdr(VIRTIO_VSOCK_OP_CREDIT_UPDATE, 5000, local, 0);
    upd.buf_alloc = 100;
    tx_send(upd, NULL, 0);
    char data[300] = {0};
    ck_assert_int_eq(send(fd, data, sizeof(data), 0), 300);
    pump();
    struct vsock_hdr h;
    char buf[RX_BUF];
    int n, got = 0;
    while (rx_get(&h, buf, sizeof(buf), &n)) {
        ck_assert_uint_eq(h.op, VIRTIO_VSOCK_OP_RW);
        got += n;
        pump();
    }
    ck_assert_int_eq(got, 100); /* 200 bytes wait for credit that never comes */
    close(fd);
    pump();
    expect_rx(VIRTIO_VSOCK_OP_RST, local, 5000);
    /* gone: a late credit update finds no connection (and gets a reset, not data) */
    upd.fwd_cnt = 100;
    tx_send(upd, NULL, 0);
    pump();
    h = expect_rx(VIRTIO_VSOCK_OP_RST, local, 5000);
}
END_TEST

/* A loopback TCP connection for the device's guest->host connect (as the broker gives it for a
 * forward to a TCP host port): the device gets one end, the test keeps the other here. */
static int tcp_peer = -1;
static int connect_tcp(void *userdata, uint32_t port, int *ret_fd)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(l, 0);
    ck_assert_int_eq(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(l, 1), 0);
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sa, &len), 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    tcp_peer = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(tcp_peer, 0);
    close(l);
    ck_assert_int_eq(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
    *ret_fd = fd;
    return 0;
}

/* The guest shuts both directions at once while the host side is still sending (the guest relay
 * died mid-reply): the host socket is closed with a reset (SO_LINGER 0), never half-closed first,
 * so that a relay in front passes on a cut, not a clean end. The bytes the guest sent before
 * still arrive. */
START_TEST(guest_cut_while_host_sends_resets_host)
{
    teardown();
    connect_host = connect_tcp;
    setup_cfg(0, 0, 0);
    connect_host = NULL;
    tx_op(VIRTIO_VSOCK_OP_REQUEST, 1234, 5000);
    expect_rx(VIRTIO_VSOCK_OP_RESPONSE, 5000, 1234);
    int fd = tcp_peer;
    ck_assert_int_eq(send(fd, "request", 7, 0), 7); /* the host sends, and does not end */
    pump();
    struct vsock_hdr h = expect_rx(VIRTIO_VSOCK_OP_RW, 5000, 1234);
    ck_assert_uint_eq(h.len, 7);
    tx_send(hdr(VIRTIO_VSOCK_OP_RW, 1234, 5000, 5), "parti", 5);
    struct vsock_hdr sh = hdr(VIRTIO_VSOCK_OP_SHUTDOWN, 1234, 5000, 0);
    sh.flags = VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV;
    tx_send(sh, NULL, 0);
    pump();
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1234);
    char buf[16];
    size_t got = 0;
    ssize_t n;
    while ((n = recv(fd, buf + got, sizeof(buf) - got, 0)) > 0)
        got += (size_t)n;
    int err = errno;
    ck_assert_msg(n < 0 && err == ECONNRESET, "the host socket ended with %s, not a reset",
                  n == 0 ? "a FIN" : strerror(err));
    ck_assert_uint_le(got, 5); /* what the guest sent, if the reset left it */
    close(fd);
    struct vsock_dev_stats st;
    vsock_dev_get_stats(d, &st);
    ck_assert_uint_eq(st.connections, 0);
}
END_TEST

/* The guest shuts both directions after the host has ended its side: a clean end, as before. */
START_TEST(guest_shut_both_after_host_eof_is_clean)
{
    int fd = guest_open(1234, 5000);
    shutdown(fd, SHUT_WR);
    struct vsock_hdr h = expect_rx(VIRTIO_VSOCK_OP_SHUTDOWN, 5000, 1234);
    ck_assert_uint_eq(h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
    tx_send(hdr(VIRTIO_VSOCK_OP_RW, 1234, 5000, 5), "reply", 5);
    struct vsock_hdr sh = hdr(VIRTIO_VSOCK_OP_SHUTDOWN, 1234, 5000, 0);
    sh.flags = VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV;
    tx_send(sh, NULL, 0);
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1234);
    char buf[16];
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), 5);
    ck_assert_int_eq(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), 0); /* a clean end */
    close(fd);
}
END_TEST

START_TEST(guest_rst_closes_host)
{
    int fd = guest_open(1234, 5000);
    tx_op(VIRTIO_VSOCK_OP_RST, 1234, 5000);
    expect_host_closed(fd);
    expect_no_rx();
    close(fd);
}
END_TEST

START_TEST(detach_closes_everything)
{
    int fd = guest_open(1234, 5000);
    uint32_t local;
    int fd2 = host_open(22, &local);
    vsock_dev_detach(d);
    expect_host_closed(fd);
    expect_host_closed(fd2);
    int fd3 = host_client(); /* no guest: refused at once, never a hang */
    expect_host_closed(fd3);
    close(fd);
    close(fd2);
    close(fd3);
    /* and back */
    ck_assert_int_eq(vsock_dev_attach(d, &g.table, &rx.vq, &tx.vq), 0);
    fd = guest_open(1235, 5001);
    close(fd);
}
END_TEST

START_TEST(connection_limit)
{
    teardown();
    setup_cfg(0, 2, 0);
    int a = guest_open(1, 5000);
    int b = guest_open(2, 5001);
    int lfd = listen_port(5002);
    tx_op(VIRTIO_VSOCK_OP_REQUEST, 3, 5002);
    expect_rx(VIRTIO_VSOCK_OP_RST, 5002, 3);
    int c = host_client();
    expect_host_closed(c);
    close(a);
    close(b);
    close(c);
    close(lfd);
}
END_TEST

/* Out of fds: the listener rests instead of waking the loop without end, and the waiting host
 * clients are accepted once fds are back. */
START_TEST(out_of_fds_pauses_accept)
{
    int fd[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_ge(fd[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", uds);
    struct rlimit rl, low;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    low = (struct rlimit){.rlim_cur = 3, .rlim_max = rl.rlim_max}; /* below what is open */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    for (int i = 0; i < 4; i++) /* the kernel queues them; accept4 fails with EMFILE */
        ck_assert_int_eq(connect(fd[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
    int dispatched = loop_wakeups(e, 300);
    ck_assert_msg(dispatched < 30, "the loop woke %d times in 300 ms", dispatched);
    struct vsock_dev_stats st;
    vsock_dev_get_stats(d, &st);
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    pump_for(150); /* past the rest */
    pump();
    vsock_dev_get_stats(d, &st);
    ck_assert_uint_eq(st.accepted, 4);
    for (int i = 0; i < 4; i++)
        close(fd[i]);
}
END_TEST

/* --- hostile guests --- */

static uint64_t bad_packets(void)
{
    struct vsock_dev_stats st;
    vsock_dev_get_stats(d, &st);
    return st.bad_packets;
}

/* Kicks tx after the test placed a chain by hand; the chain must come back with length 0. */
static void tx_kick_expect_dropped(uint16_t head)
{
    vsock_dev_kick(d, VSOCK_DEV_TX_QUEUE);
    pump();
    uint32_t id, len;
    ck_assert(fg_used(&tx, &id, &len));
    ck_assert_uint_eq(id, head);
    ck_assert_uint_eq(len, 0);
}

/* A descriptor holding header H, not yet made available. */
static uint16_t tx_hdr_desc(const struct vsock_hdr *h, uint32_t desc_len, uint16_t flags,
                            uint16_t next)
{
    uint16_t i = fg_next_desc(&tx);
    fg_put_hdr(&g, fg_slot(&tx, i), h);
    fg_desc(&tx, i, fg_slot(&tx, i), desc_len, flags, next);
    return i;
}

START_TEST(short_header)
{
    struct vsock_hdr h = hdr(VIRTIO_VSOCK_OP_REQUEST, 1, 5000, 0);
    uint16_t i = tx_hdr_desc(&h, 20, 0, 0); /* 20 of 44 bytes */
    fg_avail(&tx, i);
    tx_kick_expect_dropped(i);
    expect_no_rx(); /* nothing known about it: nothing to reset */
    ck_assert_uint_eq(bad_packets(), 1);
}
END_TEST

START_TEST(len_beyond_payload)
{
    int fd = guest_open(1234, 5000);
    /* claims 1000 bytes, carries 10 */
    struct vsock_hdr h = hdr(VIRTIO_VSOCK_OP_RW, 1234, 5000, 1000);
    fg_tx(&tx, &h, "0123456789", 10);
    tx_kick_expect_dropped((uint16_t)(tx.next_desc - 2));
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1234);
    expect_host_closed(fd);
    char buf[8];
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), 0); /* none of it reached the host */
    close(fd);
}
END_TEST

START_TEST(len_on_control_op)
{
    int lfd = listen_port(5000);
    struct vsock_hdr h = hdr(VIRTIO_VSOCK_OP_REQUEST, 1234, 5000, 4);
    fg_tx(&tx, &h, "junk", 4);
    vsock_dev_kick(d, VSOCK_DEV_TX_QUEUE);
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1234);
    ck_assert_int_lt(accept(lfd, NULL, NULL), 0); /* never connected */
    close(lfd);
}
END_TEST

START_TEST(bad_addresses)
{
    int lfd = listen_port(5000);
    struct vsock_hdr h = hdr(VIRTIO_VSOCK_OP_REQUEST, 1234, 5000, 0);
    h.src_cid = 7; /* not the guest's CID */
    tx_send(h, NULL, 0);
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1234);
    h = hdr(VIRTIO_VSOCK_OP_REQUEST, 1234, 5000, 0);
    h.dst_cid = 5; /* another VM */
    tx_send(h, NULL, 0);
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1234);
    h.dst_cid = 2 | (1ull << 32); /* reserved upper bits */
    tx_send(h, NULL, 0);
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1234);
    ck_assert_int_lt(accept(lfd, NULL, NULL), 0);
    ck_assert_uint_eq(bad_packets(), 3);
    close(lfd);
}
END_TEST

START_TEST(bad_op_and_type)
{
    int fd = guest_open(1234, 5000);
    tx_op(99, 1234, 5000); /* unknown op on a live connection: it is reset */
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1234);
    expect_host_closed(fd);
    close(fd);
    tx_op(VIRTIO_VSOCK_OP_INVALID, 1, 2);
    expect_rx(VIRTIO_VSOCK_OP_RST, 2, 1);
    struct vsock_hdr h = hdr(VIRTIO_VSOCK_OP_REQUEST, 1, 5000, 0);
    h.type = VIRTIO_VSOCK_TYPE_SEQPACKET; /* not offered */
    tx_send(h, NULL, 0);
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1);
    h.type = 77;
    tx_send(h, NULL, 0);
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1);
    h = hdr(VIRTIO_VSOCK_OP_RST, 1, 5000, 0);
    h.type = 77; /* a bad RST is not answered with a RST */
    tx_send(h, NULL, 0);
    expect_no_rx();
}
END_TEST

START_TEST(writable_in_tx)
{
    /* the header in a device-writable descriptor: no readable header at all */
    struct vsock_hdr h = hdr(VIRTIO_VSOCK_OP_REQUEST, 1, 5000, 0);
    uint16_t i = tx_hdr_desc(&h, VSOCK_HDR_SIZE, VRING_DESC_F_WRITE, 0);
    fg_avail(&tx, i);
    tx_kick_expect_dropped(i);
    expect_no_rx();
    /* a readable header, then a writable payload: reset by its header */
    int fd = guest_open(1234, 5000);
    h = hdr(VIRTIO_VSOCK_OP_RW, 1234, 5000, 4);
    uint16_t j = fg_next_desc(&tx);
    i = tx_hdr_desc(&h, VSOCK_HDR_SIZE, VRING_DESC_F_NEXT, j);
    fg_desc(&tx, j, fg_slot(&tx, j), 4, VRING_DESC_F_WRITE, 0);
    fg_avail(&tx, i);
    tx_kick_expect_dropped(i);
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1234);
    expect_host_closed(fd);
    close(fd);
}
END_TEST

START_TEST(bad_chains)
{
    int fd = guest_open(1234, 5000);
    uint16_t i = fg_next_desc(&tx);
    fg_desc(&tx, i, FG_GPA + g.size - 8, VSOCK_HDR_SIZE, 0, 0); /* outside guest memory */
    fg_avail(&tx, i);
    tx_kick_expect_dropped(i);
    i = fg_next_desc(&tx);
    fg_desc(&tx, i, UINT64_MAX - 20, VSOCK_HDR_SIZE, 0, 0); /* addr + len wraps */
    fg_avail(&tx, i);
    tx_kick_expect_dropped(i);
    struct vsock_hdr other = hdr(VIRTIO_VSOCK_OP_RW, 777, 888, 0);
    i = tx_hdr_desc(&other, VSOCK_HDR_SIZE, VRING_DESC_F_NEXT, 0);
    fg_desc(&tx, i, fg_slot(&tx, i), VSOCK_HDR_SIZE, VRING_DESC_F_NEXT, i); /* loop */
    fg_avail(&tx, i);
    tx_kick_expect_dropped(i);
    expect_rx(VIRTIO_VSOCK_OP_RST, 888, 777); /* its header names a (missing) connection */
    uint64_t t = fg_alloc(&g, 32, 16);
    fg_desc_at(&g, t, 0, t, 32, VRING_DESC_F_INDIRECT, 0); /* nested indirect */
    i = fg_next_desc(&tx);
    fg_desc(&tx, i, t, 32, VRING_DESC_F_INDIRECT, 0);
    fg_avail(&tx, i);
    tx_kick_expect_dropped(i);
    fg_avail(&tx, NUM + 3); /* head index out of range: nothing to give back */
    vsock_dev_kick(d, VSOCK_DEV_TX_QUEUE);
    pump();
    expect_no_rx(); /* none of them named a connection */
    /* the connection is untouched */
    tx_send(hdr(VIRTIO_VSOCK_OP_RW, 1234, 5000, 2), "ok", 2);
    char buf[4];
    ck_assert_int_eq(host_read(fd, buf, sizeof(buf)), 2);
    /* a good header followed by a descriptor outside memory: that connection is reset */
    struct vsock_hdr h = hdr(VIRTIO_VSOCK_OP_RW, 1234, 5000, 8);
    uint16_t j = fg_next_desc(&tx);
    i = tx_hdr_desc(&h, VSOCK_HDR_SIZE, VRING_DESC_F_NEXT, j);
    fg_desc(&tx, j, FG_GPA + g.size, 8, 0, 0);
    fg_avail(&tx, i);
    tx_kick_expect_dropped(i);
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1234);
    expect_host_closed(fd);
    ck_assert_uint_eq(bad_packets(), 6);
    close(fd);
}
END_TEST

START_TEST(tx_index_corrupt)
{
    fg_set_avail_idx(&tx, 1000);
    vsock_dev_kick(d, VSOCK_DEV_TX_QUEUE);
    pump();
    ck_assert_uint_eq(fg_used_pending(&tx), 0);
    expect_no_rx();
}
END_TEST

START_TEST(bad_rx_buffers)
{
    /* replace the posted rx buffers with hostile ones, then one good one */
    fg_ring_free(&rx);
    ck_assert_int_eq(fg_ring_init(&g, &rx, NUM, true), 0);
    ck_assert_int_eq(vsock_dev_attach(d, &g.table, &rx.vq, &tx.vq), 0);
    fg_desc(&rx, 0, fg_slot(&rx, 0), 100, 0, 0); /* readable: not for the device to write */
    fg_avail(&rx, 0);
    fg_desc(&rx, 1, fg_slot(&rx, 1), 20, VRING_DESC_F_WRITE, 0); /* smaller than a header */
    fg_avail(&rx, 1);
    fg_desc(&rx, 2, FG_GPA + g.size - 4, 100, VRING_DESC_F_WRITE, 0); /* outside memory */
    fg_avail(&rx, 2);
    fg_desc(&rx, 3, fg_slot(&rx, 3), 100, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 3); /* loop */
    fg_avail(&rx, 3);
    rx.next_desc = 4;
    fg_rx_post(&rx, 1, RX_BUF);
    tx_op(VIRTIO_VSOCK_OP_REQUEST, 1, 9999); /* refused: owes the guest a RST */
    pump();
    uint32_t id, len;
    for (uint32_t k = 0; k < 4; k++) {
        ck_assert(fg_used(&rx, &id, &len));
        ck_assert_uint_eq(id, k);
        ck_assert_uint_eq(len, 0);
    }
    expect_rx(VIRTIO_VSOCK_OP_RST, 9999, 1);
    ck_assert_uint_eq(bad_packets(), 4);
}
END_TEST

START_TEST(protocol_violations)
{
    tx_op(VIRTIO_VSOCK_OP_RW, 1, 5000); /* no such connection */
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1);
    tx_op(VIRTIO_VSOCK_OP_RST, 1, 5000); /* RST for nothing: silence */
    expect_no_rx();

    int fd = guest_open(1234, 5000);
    tx_op(VIRTIO_VSOCK_OP_RESPONSE, 1234, 5000); /* RESPONSE to a connection the guest made */
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1234);
    expect_host_closed(fd);
    close(fd);

    fd = guest_open(1234, 5000);
    struct vsock_hdr sh = hdr(VIRTIO_VSOCK_OP_SHUTDOWN, 1234, 5000, 0);
    sh.flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
    tx_send(sh, NULL, 0);
    tx_send(hdr(VIRTIO_VSOCK_OP_RW, 1234, 5000, 4), "late", 4); /* data after SHUTDOWN(SEND) */
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1234);
    close(fd);

    fd = guest_open(1234, 5000);
    sh.flags = 0x10; /* unknown flag */
    tx_send(sh, NULL, 0);
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1234);
    close(fd);

    fd = guest_open(1234, 5000);
    tx_op(VIRTIO_VSOCK_OP_REQUEST, 1234, 5000); /* REQUEST on a live connection */
    expect_rx(VIRTIO_VSOCK_OP_RST, 5000, 1234);
    expect_host_closed(fd);
    close(fd);
}
END_TEST

/* --- the hybrid CONNECT line and the command line --- */

START_TEST(connect_line)
{
    static const struct {
        const char *s;
        int port; /* -1: refused */
    } cases[] = {
        {"CONNECT 1\n", 1},
        {"CONNECT 65535\n", 65535},
        {"CONNECT 18789\n", 18789},
        {"CONNECT 0\n", -1},
        {"CONNECT 65536\n", -1},
        {"CONNECT 99999\n", -1},
        {"CONNECT 01\n", -1},
        {"CONNECT +1\n", -1},
        {"CONNECT 1 \n", -1},
        {"CONNECT  1\n", -1},
        {"CONNECT 1\r\n", -1},
        {"CONNECT 1", -1},
        {"CONNECT \n", -1},
        {"CONNECT\n", -1},
        {"connect 1\n", -1},
        {"CONNECT 123456\n", -1},
        {"", -1},
        {"\n", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint16_t port = 0;
        int r = vsock_hybrid_parse_connect(cases[i].s, strlen(cases[i].s), &port);
        if (cases[i].port < 0)
            ck_assert_msg(r < 0, "accepted %s", cases[i].s);
        else
            ck_assert_msg(r == 0 && port == cases[i].port, "refused %s", cases[i].s);
    }
    uint16_t port;
    ck_assert_int_lt(vsock_hybrid_parse_connect("CONNECT 1\0\n", 11, &port), 0);
}
END_TEST

static int run_main(const char *const *args)
{
    char *argv[16];
    int argc = 0;
    for (; args[argc]; argc++)
        argv[argc] = (char *)args[argc];
    argv[argc] = NULL;
    return vsock_backend_main(argc, argv);
}

START_TEST(command_line)
{
    char sock[96], other[96];
    snprintf(sock, sizeof(sock), "%s/vu.sock", dir);
    snprintf(other, sizeof(other), "%s/o.sock", dir);
    const char *const none[] = {"vsock-backend", NULL};
    const char *const bad_cid[] = {"vsock-backend", "--socket", sock, "--guest-cid", "2",
                                   "--uds",         other,      NULL};
    const char *const cid_text[] = {"vsock-backend", "--socket", sock, "--guest-cid", "3x",
                                    "--uds",         other,      NULL};
    const char *const extra[] = {"vsock-backend", "--socket", sock,   "--guest-cid", "3",
                                 "--uds",         other,      "more", NULL};
    const char *const same[] = {"vsock-backend", "--socket", sock, "--guest-cid", "3",
                                "--uds",         sock,       NULL};
    const char *const unknown[] = {"vsock-backend", "--cid", "3", NULL};
    const char *const help[] = {"vsock-backend", "--help", NULL};
    ck_assert_int_eq(run_main(none), 2);
    ck_assert_int_eq(run_main(bad_cid), 2);
    ck_assert_int_eq(run_main(cid_text), 2);
    ck_assert_int_eq(run_main(extra), 2);
    ck_assert_int_eq(run_main(same), 2);
    ck_assert_int_eq(run_main(unknown), 2);
    ck_assert_int_eq(run_main(help), 0);
    /* cannot listen: a plain file where the socket goes */
    FILE *f = fopen(sock, "w");
    fclose(f);
    const char *const taken[] = {"vsock-backend", "--socket", sock, "--guest-cid", "3",
                                 "--uds",         other,      NULL};
    ck_assert_int_eq(run_main(taken), 1);
    ck_assert_int_eq(access(other, F_OK), -1); /* nothing left behind */
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("vsock_dev");
    TCase *t = tcase_create("good");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, guest_connect_and_data);
    tcase_add_test(t, guest_connect_refused);
    tcase_add_test(t, host_connect);
    tcase_add_test(t, host_connect_pipelined);
    tcase_add_test(t, host_connect_refused_by_guest);
    tcase_add_test(t, host_bad_lines);
    tcase_add_test(t, host_line_timeout);
    tcase_add_test(t, credit_request);
    tcase_add_test(t, credit_to_guest);
    tcase_add_test(t, credit_from_guest);
    tcase_add_test(t, credit_overrun);
    tcase_add_test(t, half_close_guest_first);
    tcase_add_test(t, half_close_host_first);
    tcase_add_test(t, host_gone_while_guest_stalls);
    tcase_add_test(t, out_of_fds_pauses_accept);
    tcase_add_test(t, guest_rst_closes_host);
    tcase_add_test(t, guest_cut_while_host_sends_resets_host);
    tcase_add_test(t, guest_shut_both_after_host_eof_is_clean);
    tcase_add_test(t, detach_closes_everything);
    tcase_add_test(t, connection_limit);
    suite_add_tcase(s, t);

    TCase *h = tcase_create("hostile");
    tcase_add_checked_fixture(h, setup, teardown);
    tcase_add_test(h, short_header);
    tcase_add_test(h, len_beyond_payload);
    tcase_add_test(h, len_on_control_op);
    tcase_add_test(h, bad_addresses);
    tcase_add_test(h, bad_op_and_type);
    tcase_add_test(h, writable_in_tx);
    tcase_add_test(h, bad_chains);
    tcase_add_test(h, tx_index_corrupt);
    tcase_add_test(h, bad_rx_buffers);
    tcase_add_test(h, protocol_violations);
    suite_add_tcase(s, h);

    TCase *c = tcase_create("cli");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, connect_line);
    tcase_add_test(c, command_line);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
