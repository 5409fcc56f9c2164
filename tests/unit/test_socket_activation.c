/* socket_activation: which socket systemd passed is taken for gateway.host_listen, and what a
 * user reads when the passed sockets do not fit (the address they are bound to, and the one the
 * config names). Each case runs in a child of its own, which owns fds 3, 4, ... as systemd's
 * passed sockets would be. */
#include "common/cleanup.h"
#include "launcher/socket_activation.h"

#include "tests/support/run_suite.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

struct outcome {
    int r, fd;
    bool env_left; /* LISTEN_FDS still set afterwards */
    char error[512];
};

/* A TCP socket on 127.0.0.1:PORT (0: any), listening if LISTENING; its port in *ret_port. */
static int tcp_socket(uint16_t port, bool listening, uint16_t *ret_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(port)};
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&in, sizeof(in)), 0);
    if (listening)
        ck_assert_int_eq(listen(fd, 8), 0);
    socklen_t len = sizeof(in);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&in, &len), 0);
    if (ret_port)
        *ret_port = ntohs(in.sin_port);
    return fd;
}

/* socket_activation_take(LISTEN) in a child given FDS at 3, 4, ... with LISTEN_PID its own pid
 * (or PID_OFFSET beside it), LISTEN_FDS and LISTEN_FDNAMES=NAMES (NULL: none). */
static void take(const int *fds, int n, const char *names, int pid_offset, const char *listen,
                 struct outcome *ret)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int out = fcntl(p[1], F_DUPFD_CLOEXEC, 100);
        int high[8];
        for (int i = 0; i < n; i++)
            high[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 110);
        for (int i = 0; i < n; i++)
            dup2(high[i], 3 + i);
        char num[32];
        snprintf(num, sizeof(num), "%d", (int)getpid() + pid_offset);
        setenv("LISTEN_PID", num, 1);
        snprintf(num, sizeof(num), "%d", n);
        setenv("LISTEN_FDS", num, 1);
        if (names)
            setenv("LISTEN_FDNAMES", names, 1);
        struct outcome o = {0};
        _cleanup_free_ char *error = NULL;
        o.r = socket_activation_take("gateway.host_listen", listen, &o.fd, &error);
        o.env_left = getenv("LISTEN_FDS") != NULL;
        snprintf(o.error, sizeof(o.error), "%s", error ? error : "");
        (void)!write(out, &o, sizeof(o));
        _exit(0);
    }
    close(p[1]);
    ck_assert_int_eq(read(p[0], ret, sizeof(*ret)), (ssize_t)sizeof(*ret));
    close(p[0]);
    ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
}

START_TEST(nothing_passed_changes_nothing)
{
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    int fd = 7;
    _cleanup_free_ char *error = NULL;
    ck_assert_int_eq(socket_activation_take("gateway.host_listen", "127.0.0.1:18789", &fd, &error),
                     0);
    ck_assert_int_eq(fd, -1);
    ck_assert_ptr_null(error);

    /* sockets meant for another process (LISTEN_PID not ours) are not taken either */
    uint16_t port;
    int s = tcp_socket(0, true, &port);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%u", port);
    struct outcome o;
    take(&s, 1, "gateway", 1, want, &o);
    ck_assert_int_eq(o.r, 0);
    ck_assert_int_eq(o.fd, -1);
    close(s);
}
END_TEST

START_TEST(matching_socket_is_taken)
{
    uint16_t port;
    int s = tcp_socket(0, true, &port);
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%u", port);
    struct outcome o;
    take(&s, 1, "gateway", 0, want, &o);
    ck_assert_msg(o.r == 1, "%d: %s", o.r, o.error);
    ck_assert_int_eq(o.fd, 3);
    ck_assert_str_eq(o.error, "");
    ck_assert(!o.env_left); /* QEMU and the other children see no LISTEN_FDS */
    close(s);
}
END_TEST

START_TEST(other_address_names_both)
{
    uint16_t port;
    int s = tcp_socket(0, true, &port);
    struct outcome o;
    take(&s, 1, "gateway", 0, "127.0.0.1:1", &o);
    ck_assert_int_eq(o.r, -EADDRNOTAVAIL);
    char want[400];
    snprintf(want, sizeof(want),
             "socket activation: systemd passed fd 3 (\"gateway\", listening TCP 127.0.0.1:%u), "
             "but gateway.host_listen is 127.0.0.1:1: ListenStream= of the socket unit and "
             "gateway.host_listen must name the same address",
             port);
    ck_assert_str_eq(o.error, want);

    /* the same port on another address (a wildcard ListenStream=PORT) is not it either */
    int w = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in any = {.sin_family = AF_INET, .sin_port = 0};
    ck_assert_int_eq(bind(w, (struct sockaddr *)&any, sizeof(any)), 0);
    ck_assert_int_eq(listen(w, 1), 0);
    socklen_t len = sizeof(any);
    ck_assert_int_eq(getsockname(w, (struct sockaddr *)&any, &len), 0);
    char loop[64];
    snprintf(loop, sizeof(loop), "127.0.0.1:%u", ntohs(any.sin_port));
    take(&w, 1, NULL, 0, loop, &o);
    ck_assert_int_eq(o.r, -EADDRNOTAVAIL);
    ck_assert_msg(strstr(o.error, "(\"unknown\", listening TCP 0.0.0.0:") != NULL, "%s", o.error);
    close(s);
    close(w);
}
END_TEST

START_TEST(not_a_listening_tcp_socket)
{
    uint16_t port;
    int s = tcp_socket(0, false, &port);
    char want[64], line[400];
    snprintf(want, sizeof(want), "127.0.0.1:%u", port);
    struct outcome o;
    take(&s, 1, "gateway", 0, want, &o);
    ck_assert_int_eq(o.r, -ENOTSOCK);
    snprintf(line, sizeof(line), "(\"gateway\", TCP 127.0.0.1:%u (not listening)), but", port);
    ck_assert_msg(strstr(o.error, line) != NULL, "%s", o.error);
    close(s);

    int u = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof(un.sun_path), "/tmp/ocvm-test-sa-%d.sock", (int)getpid());
    unlink(un.sun_path);
    ck_assert_int_eq(bind(u, (struct sockaddr *)&un, sizeof(un)), 0);
    ck_assert_int_eq(listen(u, 1), 0);
    take(&u, 1, "gateway", 0, "127.0.0.1:18789", &o);
    ck_assert_int_eq(o.r, -ENOTSOCK);
    snprintf(line, sizeof(line),
             "(\"gateway\", Unix %s), but gateway.host_listen is 127.0.0.1:18789", un.sun_path);
    ck_assert_msg(strstr(o.error, line) != NULL, "%s", o.error);
    unlink(un.sun_path);
    close(u);
}
END_TEST

START_TEST(one_more_socket_is_refused)
{
    uint16_t port, other;
    int s[2] = {tcp_socket(0, true, &port), tcp_socket(0, true, &other)};
    char want[64], line[400];
    snprintf(want, sizeof(want), "127.0.0.1:%u", port);
    struct outcome o;
    take(s, 2, "gateway:extra", 0, want, &o);
    ck_assert_int_eq(o.r, -EBADF);
    ck_assert_int_eq(o.fd, -1);
    snprintf(line, sizeof(line),
             "socket activation: systemd passed fd 4 (\"extra\", listening TCP 127.0.0.1:%u) "
             "besides the one for gateway.host_listen 127.0.0.1:%u: ocvm listens on nothing else",
             other, port);
    ck_assert_str_eq(o.error, line);
    close(s[0]);
    close(s[1]);
}
END_TEST

START_TEST(bad_host_listen_is_said)
{
    uint16_t port;
    int s = tcp_socket(0, true, &port);
    struct outcome o;
    take(&s, 1, "gateway", 0, "localhost:18789", &o);
    ck_assert_int_eq(o.r, -EINVAL);
    ck_assert_msg(
        strncmp(o.error, "socket activation: gateway.host_listen \"localhost:18789\": ", 58) == 0,
        "%s", o.error);
    close(s);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("socket_activation");
    TCase *tc = tcase_create("socket_activation");
    tcase_add_test(tc, nothing_passed_changes_nothing);
    tcase_add_test(tc, matching_socket_is_taken);
    tcase_add_test(tc, other_address_names_both);
    tcase_add_test(tc, not_a_listening_tcp_socket);
    tcase_add_test(tc, one_more_socket_is_refused);
    tcase_add_test(tc, bad_host_listen_is_said);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
