#include "launcher/socket_activation.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "vsock/endpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>

/* LISTEN ("HOST:PORT", "[V6]:PORT") as a socket address; *why on failure. */
static int address_of(const char *listen, struct sockaddr_storage *ss, socklen_t *len,
                      const char **why)
{
    char host[64];
    uint16_t port;
    if (endpoint_parse_hostport(listen, host, &port, why) < 0)
        return -EINVAL;
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        *len = sizeof(*in);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *len = sizeof(*in6);
        return 0;
    }
    *why = "not a literal IPv4 or IPv6 address";
    return -EINVAL;
}

/* What FD is, for an error: "listening TCP 127.0.0.1:18790", "TCP [::1]:80 (not listening)",
 * "UDP 127.0.0.1:53", "Unix /run/x.sock", "not a socket". */
static void describe(int fd, char *buf, size_t size)
{
    int type = 0, listening = 0;
    socklen_t tl = sizeof(type), ll = sizeof(listening);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ll) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        snprintf(buf, size, "%s", errno == ENOTSOCK ? "not a socket" : strerror(errno));
        return;
    }
    const char *proto = type == SOCK_STREAM ? "TCP" : type == SOCK_DGRAM ? "UDP" : "raw";
    const char *state = type != SOCK_STREAM || listening ? "" : " (not listening)";
    char a[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
        snprintf(buf, size, "%s%s %s:%u%s", listening ? "listening " : "", proto, a,
                 ntohs(in->sin_port), state);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
        snprintf(buf, size, "%s%s [%s]:%u%s", listening ? "listening " : "", proto, a,
                 ntohs(in6->sin6_port), state);
    } else if (ss.ss_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
        size_t n = len > offsetof(struct sockaddr_un, sun_path)
                       ? strnlen(un->sun_path, len - offsetof(struct sockaddr_un, sun_path))
                       : 0;
        if (n && un->sun_path[0])
            snprintf(buf, size, "Unix %.*s", (int)n, un->sun_path);
        else
            snprintf(buf, size, "Unix (unnamed or abstract)");
    } else {
        snprintf(buf, size, "a socket of address family %d", (int)ss.ss_family);
    }
}

static void close_all(int n)
{
    for (int i = 0; i < n; i++)
        close(SD_LISTEN_FDS_START + i);
}

static void free_names(char **names)
{
    for (size_t i = 0; names && names[i]; i++)
        free(names[i]);
    free(names);
}

int socket_activation_take(const char *what, const char *listen, int *ret_fd, char **error)
{
    *ret_fd = -1;
    *error = NULL;
    char **names = NULL;
    int n = sd_listen_fds_with_names(1, &names);
    if (n < 0)
        return error_setf(error, n, "socket activation: LISTEN_FDS: %s", strerror(-n));
    if (n == 0) {
        free_names(names);
        return 0;
    }
    struct sockaddr_storage want;
    socklen_t want_len;
    const char *why;
    int r = address_of(listen, &want, &want_len, &why);
    if (r < 0) {
        error_setf(error, r, "socket activation: %s \"%s\": %s", what, listen, why);
        goto fail;
    }
    int taken = -1;
    for (int i = 0; i < n; i++) {
        int fd = SD_LISTEN_FDS_START + i;
        const char *name = names && names[i] ? names[i] : "unknown";
        char is[160];
        if (sd_is_socket_inet(fd, want.ss_family, SOCK_STREAM, 1, 0) > 0 &&
            sd_is_socket_sockaddr(fd, SOCK_STREAM, (struct sockaddr *)&want, want_len, 1) > 0 &&
            taken < 0) {
            taken = fd;
            continue;
        }
        describe(fd, is, sizeof(is));
        if (taken >= 0)
            r = error_setf(error, -EBADF,
                           "socket activation: systemd passed fd %d (\"%s\", %s) besides the one "
                           "for %s %s: ocvm listens on nothing else",
                           fd, name, is, what, listen);
        else
            r = error_setf(error,
                           strncmp(is, "listening TCP", 13) == 0 ? -EADDRNOTAVAIL : -ENOTSOCK,
                           "socket activation: systemd passed fd %d (\"%s\", %s), but %s is %s: "
                           "ListenStream= of the socket unit and %s must name the same address",
                           fd, name, is, what, listen, what);
        goto fail;
    }
    free_names(names);
    *ret_fd = taken;
    return 1;
fail:
    close_all(n);
    free_names(names);
    return r;
}
