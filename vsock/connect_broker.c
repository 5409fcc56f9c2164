/* Connections brokered for a sandboxed child; see connect_broker.h. */
#include "vsock/connect_broker.h"

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/error.h"
#include "vsock/vsock_conn.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

enum { SERVE_BATCH = 64 };

struct broker_request {
    uint32_t seq, key;
};
struct broker_reply {
    uint32_t seq;
    int32_t error; /* 0: the socket comes with it */
};

/* One reply, and the fd that came with it (-1 if none). */
static int recv_reply(int fd, struct broker_reply *ret, int *ret_fd)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct iovec iov = {.iov_base = ret, .iov_len = sizeof(*ret)};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = &control,
                       .msg_controllen = sizeof(control)};
    *ret_fd = -1;
    ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0)
        return negative_errno();
    if (n == 0)
        return -ECONNRESET;
    if (m.msg_flags & MSG_CTRUNC) /* no fd free here: the socket is lost */
        return n == sizeof(*ret) ? -EMFILE : -EBADMSG;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int)))
        memcpy(ret_fd, CMSG_DATA(c), sizeof(int));
    if (n != sizeof(*ret) || (m.msg_flags & MSG_TRUNC)) {
        if (*ret_fd >= 0)
            close(*ret_fd);
        *ret_fd = -1;
        return -EBADMSG;
    }
    return 0;
}

int connect_broker_send(struct connect_broker_client *c, uint32_t key, uint32_t *ret_seq)
{
    struct broker_request q = {.seq = ++c->seq, .key = key};
    ssize_t n = send(c->fd, &q, sizeof(q), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0)
        return negative_errno();
    if (n != sizeof(q))
        return -EIO;
    *ret_seq = q.seq;
    return 0;
}

int connect_broker_next(struct connect_broker_client *c, uint32_t *ret_seq, int *ret_fd,
                        int *ret_error)
{
    for (;;) {
        struct broker_reply a;
        int fd, r = recv_reply(c->fd, &a, &fd);
        if (r == -EAGAIN)
            return 0;
        if (r == -EBADMSG)
            continue;
        if (r < 0 && r != -EMFILE)
            return r;
        *ret_seq = a.seq;
        *ret_fd = -1;
        *ret_error = r; /* -EMFILE: it came, but no fd was free to take it */
        if (r == 0 && a.error == 0 && fd >= 0)
            *ret_fd = fd;
        else if (r == 0) {
            if (fd >= 0)
                close(fd);
            *ret_error = a.error < 0 ? a.error : -EIO;
        }
        return 1;
    }
}

int connect_broker_ask(struct connect_broker_client *c, uint32_t key, int *ret_fd)
{
    uint32_t want;
    int r = connect_broker_send(c, key, &want);
    if (r < 0)
        return r;
    uint64_t deadline = clock_usec(CLOCK_MONOTONIC) + (uint64_t)c->timeout_ms * 1000u;
    for (;;) {
        uint64_t now = clock_usec(CLOCK_MONOTONIC);
        if (now >= deadline)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int n = poll(&p, 1, (int)((deadline - now + 999) / 1000));
        if (n < 0 && errno != EINTR)
            return negative_errno();
        if (n <= 0)
            continue;
        uint32_t seq;
        int fd, error;
        while ((r = connect_broker_next(c, &seq, &fd, &error)) > 0) {
            if (seq == want) {
                *ret_fd = fd;
                return error;
            }
            if (fd >= 0) /* the answer to a request that timed out */
                close(fd);
        }
        if (r < 0)
            return r;
    }
}

static void send_reply(int fd, uint32_t seq, int error, int conn_fd)
{
    struct broker_reply a = {.seq = seq, .error = error};
    struct iovec iov = {.iov_base = &a, .iov_len = sizeof(a)};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (conn_fd >= 0) {
        memset(&control, 0, sizeof(control));
        m.msg_control = &control;
        m.msg_controllen = sizeof(control);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &conn_fd, sizeof(int));
    }
    /* a backend that does not read its replies loses them (it times out), never blocks us */
    (void)sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
}

int connect_broker_hybrid_port(void *userdata, uint32_t key, int *ret_fd)
{
    return vsock_hybrid_connect(userdata, key, ret_fd);
}

int connect_broker_serve(int fd, connect_broker_fn fn, void *userdata)
{
    for (unsigned i = 0; i < SERVE_BATCH; i++) {
        struct broker_request q;
        struct iovec iov = {.iov_base = &q, .iov_len = sizeof(q)};
        /* no control buffer: file descriptors the backend might send are discarded */
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : negative_errno();
        if (n == 0)
            return -ECONNRESET;
        if (n != sizeof(q) || (m.msg_flags & MSG_TRUNC)) {
            send_reply(fd, 0, -EBADMSG, -1);
            continue;
        }
        _cleanup_close_ int conn = -1;
        int r = fn(userdata, q.key, &conn);
        send_reply(fd, q.seq, r < 0 ? r : 0, r < 0 ? -1 : conn);
    }
    return 0;
}
