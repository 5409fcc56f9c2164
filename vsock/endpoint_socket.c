#include "vsock/endpoint_socket.h"

#include "common/cleanup.h"
#include "common/error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int sockaddr_for(const struct endpoint *e, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    switch (e->kind) {
    case ENDPOINT_TCP: {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET, e->host, &in->sin_addr) == 1) {
            in->sin_family = AF_INET;
            in->sin_port = htons(e->port);
            *len = sizeof(*in);
        } else if (inet_pton(AF_INET6, e->host, &in6->sin6_addr) == 1) {
            in6->sin6_family = AF_INET6;
            in6->sin6_port = htons(e->port);
            *len = sizeof(*in6);
        } else {
            return -EINVAL;
        }
        return 0;
    }
    case ENDPOINT_UNIX:
    case ENDPOINT_HYBRID: {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        un->sun_family = AF_UNIX;
        if (strlen(e->path) >= sizeof(un->sun_path))
            return -ENAMETOOLONG;
        strcpy(un->sun_path, e->path);
        *len = sizeof(*un);
        return 0;
    }
    case ENDPOINT_VSOCK: {
        struct sockaddr_vm *vm = (struct sockaddr_vm *)ss;
        vm->svm_family = AF_VSOCK;
        vm->svm_cid = e->cid;
        vm->svm_port = e->port;
        *len = sizeof(*vm);
        return 0;
    }
    default:
        return -EINVAL;
    }
}

/* E's address in *SS and a non-blocking stream socket of its family: the fd, or -errno. */
static int socket_for(const struct endpoint *e, struct sockaddr_storage *ss, socklen_t *len)
{
    int r = sockaddr_for(e, ss, len);
    if (r < 0)
        return r;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    return fd < 0 ? negative_errno() : fd;
}

int endpoint_socket_connect(const struct endpoint *e, int *ret_fd, bool *in_progress)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (e->kind == ENDPOINT_VSOCK && e->cid == ENDPOINT_VSOCK_CID_ANY)
        return -EDESTADDRREQ; /* "any" is for listening */
    _cleanup_close_ int fd = socket_for(e, &ss, &len);
    if (fd < 0)
        return fd;
    if (e->kind == ENDPOINT_TCP) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
    }
    *in_progress = false;
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        if (errno != EINPROGRESS && errno != EAGAIN)
            return negative_errno();
        *in_progress = true;
    }
    *ret_fd = TAKE_FD(fd);
    return 0;
}

int endpoint_socket_listen(const struct endpoint *e, int *ret_fd)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (e->kind == ENDPOINT_HYBRID)
        return -EINVAL;
    _cleanup_close_ int fd = socket_for(e, &ss, &len);
    if (fd < 0)
        return fd;
    int one = 1;
    if (e->kind == ENDPOINT_TCP)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (e->kind == ENDPOINT_UNIX && unlink(e->path) < 0 && errno != ENOENT)
        return negative_errno();
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0)
        return negative_errno();
    *ret_fd = TAKE_FD(fd);
    return 0;
}

int endpoint_socket_hybrid_request(int fd, uint16_t port)
{
    char req[32];
    int n = snprintf(req, sizeof(req), "CONNECT %u\n", (unsigned)port);
    return send(fd, req, (size_t)n, MSG_NOSIGNAL) == n ? 0 : -EIO;
}

int endpoint_socket_hybrid_reply(int fd, char *line, size_t size, size_t *len)
{
    while (*len < size) {
        ssize_t n = recv(fd, line + *len, 1, 0);
        if (n < 0 && errno == EAGAIN)
            return -EAGAIN;
        if (n <= 0)
            return n < 0 ? negative_errno() : -ECONNRESET;
        if (line[(*len)++] == '\n')
            break;
    }
    if (*len < 5 || line[*len - 1] != '\n' || strncmp(line, "OK ", 3) != 0)
        return -EPROTO;
    for (size_t i = 3; i + 1 < *len; i++)
        if (line[i] < '0' || line[i] > '9')
            return -EPROTO;
    return 0;
}

bool endpoint_socket_is_self_connected(int fd)
{
    struct sockaddr_storage a, b;
    socklen_t la = sizeof(a), lb = sizeof(b);
    if (getsockname(fd, (struct sockaddr *)&a, &la) < 0 ||
        getpeername(fd, (struct sockaddr *)&b, &lb) < 0 || la != lb ||
        (a.ss_family != AF_INET && a.ss_family != AF_INET6))
        return false;
    return memcmp(&a, &b, la) == 0;
}
