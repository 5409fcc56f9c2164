/* One guest<->host stream connection; see vsock_conn.h. */
#include "vsock/vsock_conn.h"

#include "common/cleanup.h"
#include "common/error.h"

#include <errno.h>
#include <linux/virtio_vsock.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define IOV_BATCH 64

void vsock_conn_init(struct vsock_conn *c, int fd, uint32_t guest_cid, uint32_t buf_alloc)
{
    *c = (struct vsock_conn){.fd = fd, .guest_cid = guest_cid, .buf_alloc = buf_alloc};
}

void vsock_conn_done(struct vsock_conn *c)
{
    closep(&c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->buf_len = c->buf_head = 0;
}

void vsock_conn_peer_credit(struct vsock_conn *c, uint32_t buf_alloc, uint32_t fwd_cnt)
{
    c->peer_buf_alloc = buf_alloc;
    c->peer_fwd_cnt = fwd_cnt;
}

uint32_t vsock_conn_peer_free(const struct vsock_conn *c)
{
    /* Free-running counters: the difference is right across wrap-around. A guest claiming to
     * have consumed more than we sent makes this huge: then it gets nothing. */
    uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
    if (in_flight > c->peer_buf_alloc)
        return 0;
    return c->peer_buf_alloc - in_flight;
}

void vsock_conn_hdr(struct vsock_conn *c, uint16_t op, uint32_t flags, uint32_t len,
                    struct vsock_hdr *h)
{
    *h = (struct vsock_hdr){
        .src_cid = VSOCK_HOST_CID,
        .dst_cid = c->guest_cid,
        .src_port = c->local_port,
        .dst_port = c->peer_port,
        .len = len,
        .type = VIRTIO_VSOCK_TYPE_STREAM,
        .op = op,
        .flags = flags,
        .buf_alloc = c->buf_alloc,
        .fwd_cnt = c->fwd_cnt,
    };
    c->fwd_cnt_sent = c->fwd_cnt;
}

bool vsock_conn_credit_due(const struct vsock_conn *c)
{
    return c->fwd_cnt - c->fwd_cnt_sent >= c->buf_alloc / 4;
}

size_t vsock_conn_buffered(const struct vsock_conn *c)
{
    return c->buf_len;
}

/* Sends as much of IOV as the socket takes now; returns bytes sent or -errno. */
static ssize_t send_iov(int fd, const struct iovec *iov, unsigned n)
{
    size_t total = 0;
    while (n > 0) {
        unsigned k = n > IOV_BATCH ? IOV_BATCH : n;
        size_t want = 0;
        for (unsigned i = 0; i < k; i++)
            want += iov[i].iov_len;
        struct msghdr mh = {.msg_iov = (struct iovec *)iov, .msg_iovlen = k};
        ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || total > 0)
                break;
            return negative_errno();
        }
        total += (size_t)w;
        if ((size_t)w < want)
            break;
        iov += k;
        n -= k;
    }
    return (ssize_t)total;
}

/* Appends IOV minus its first SKIP bytes to the ring (the caller checked it fits). */
static void buf_put(struct vsock_conn *c, const struct iovec *iov, unsigned n, size_t skip)
{
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        p += skip;
        len -= skip;
        skip = 0;
        while (len > 0) {
            size_t tail = (c->buf_head + c->buf_len) % c->buf_alloc;
            size_t k = c->buf_alloc - tail;
            if (k > len)
                k = len;
            memcpy(c->buf + tail, p, k);
            c->buf_len += k;
            p += k;
            len -= k;
        }
    }
}

int vsock_conn_to_host(struct vsock_conn *c, const struct iovec *iov, unsigned n, size_t len)
{
    if (len > (size_t)c->buf_alloc - c->buf_len)
        return -ENOBUFS;
    c->rx_cnt += (uint32_t)len;
    size_t sent = 0;
    if (c->buf_len == 0) { /* nothing queued ahead of it: straight to the socket */
        ssize_t w = send_iov(c->fd, iov, n);
        if (w < 0)
            return (int)w;
        sent = (size_t)w;
        c->fwd_cnt += (uint32_t)sent;
    }
    if (sent == len)
        return 0;
    if (!c->buf) {
        c->buf = malloc(c->buf_alloc);
        if (!c->buf)
            return -ENOMEM;
        c->buf_head = 0;
    }
    buf_put(c, iov, n, sent);
    return 0;
}

int vsock_conn_flush(struct vsock_conn *c)
{
    while (c->buf_len > 0) {
        size_t first = c->buf_alloc - c->buf_head;
        if (first > c->buf_len)
            first = c->buf_len;
        struct iovec iov[2] = {{c->buf + c->buf_head, first}, {c->buf, c->buf_len - first}};
        ssize_t w = send_iov(c->fd, iov, iov[1].iov_len ? 2 : 1);
        if (w < 0)
            return (int)w;
        if (w == 0)
            return 0;
        c->buf_head = (c->buf_head + (size_t)w) % c->buf_alloc;
        c->buf_len -= (size_t)w;
        c->fwd_cnt += (uint32_t)w;
    }
    /* Idle connections keep no buffer. */
    free(c->buf);
    c->buf = NULL;
    c->buf_head = 0;
    return 0;
}

ssize_t vsock_conn_from_host(struct vsock_conn *c, const struct iovec *iov, unsigned n)
{
    if (n > IOV_BATCH)
        n = IOV_BATCH;
    for (;;) {
        ssize_t r = readv(c->fd, iov, (int)n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return negative_errno();
        c->tx_cnt += (uint32_t)r;
        return r;
    }
}

int vsock_hybrid_parse_connect(const char *s, size_t n, uint16_t *port)
{
    static const char prefix[] = "CONNECT ";
    size_t p = sizeof(prefix) - 1;
    if (n < p + 2 || memcmp(s, prefix, p) != 0 || s[n - 1] != '\n')
        return -EBADMSG;
    size_t digits = n - 1 - p;
    if (digits > 5 || s[p] == '0')
        return -EBADMSG;
    uint32_t v = 0;
    for (size_t i = p; i < n - 1; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EBADMSG;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return -EBADMSG;
    *port = (uint16_t)v;
    return 0;
}

int vsock_conn_read_line(struct vsock_conn *c, uint16_t *port)
{
    char peek[VSOCK_CONNECT_LINE_MAX];
    size_t room = sizeof(c->line) - c->line_len;
    if (room == 0)
        return -EBADMSG;
    ssize_t n = recv(c->fd, peek, room, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : negative_errno();
    if (n == 0)
        return -ECONNRESET;
    /* Consume up to and including the newline, never past it: what follows is stream data. */
    const char *nl = memchr(peek, '\n', (size_t)n);
    size_t take = nl ? (size_t)(nl - peek) + 1 : (size_t)n;
    ssize_t k = recv(c->fd, c->line + c->line_len, take, MSG_DONTWAIT);
    if (k != (ssize_t)take)
        return k < 0 ? negative_errno() : -EIO;
    c->line_len += take;
    if (!nl)
        return c->line_len == sizeof(c->line) ? -EBADMSG : 0;
    return vsock_hybrid_parse_connect(c->line, c->line_len, port) < 0 ? -EBADMSG : 1;
}

int vsock_hybrid_listen(const char *path, int *ret_fd)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int r = vsock_unix_replace_stale(path);
    if (r < 0)
        return r;
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return negative_errno();
    /* the owner's alone: whoever can connect reaches the guest's ports (or is its VMM) */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
        listen(fd, 128) < 0)
        return negative_errno();
    *ret_fd = TAKE_FD(fd);
    return 0;
}

int vsock_unix_replace_stale(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : negative_errno();
    if (!S_ISSOCK(st.st_mode))
        return -EEXIST;
    /* Someone still listening there (another backend for the same VM) keeps it. */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return negative_errno();
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == EAGAIN)
        return -EADDRINUSE;
    return unlink(path) < 0 ? negative_errno() : 0;
}

int vsock_hybrid_connect(const char *path, uint32_t port, int *ret_fd)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", path, port);
    if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return negative_errno();
    /* Unix sockets connect at once or fail (EAGAIN: backlog full): never in progress. */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return negative_errno();
    *ret_fd = TAKE_FD(fd);
    return 0;
}
