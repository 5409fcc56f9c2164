/* relay_child_main: the host relay as `ocvm up` runs it (`ocvm relay-child`, its listener, broker,
 * control socket and counters' memfd as fds) dies of SIGSYS on a call outside its filter (the
 * trigger exists only in this test's build, -DOCVM_TEST_HOOKS); inside it, it relays a client
 * through a socket the broker made, publishes its counters, holds and releases a listener when
 * told, shows in /proc what it gave up, and stops on SIGTERM. Bad arguments are usage errors. */
#include "common/cleanup.h"
#include "tests/support/proc_status.h"
#include "tests/support/run_suite.h"
#include "tests/support/sanitized.h"
#include "vsock/connect_broker.h"
#include "vsock/endpoint_socket.h"
#include "vsock/relay.h"
#include "vsock/relay_child_main.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* A listening TCP socket on 127.0.0.1, a port the kernel picks. */
static int tcp_listener(uint16_t *ret_port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 256), 0); /* many_clients_at_once: all of them at once */
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *ret_port = ntohs(sa.sin_port);
    return fd;
}

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

struct harness {
    pid_t pid;
    int broker, control; /* our ends */
    struct relay_stats_page *page;
    uint16_t listen_port, target_port;
    int target; /* where the relay's clients go: a listener here */
};

/* The broker's side: key 0 is the target, nothing else is. */
static int open_target(void *userdata, uint32_t key, int *ret_fd)
{
    struct harness *h = userdata;
    if (key != 0)
        return -EINVAL;
    struct endpoint e = {.kind = ENDPOINT_TCP, .port = h->target_port};
    snprintf(e.host, sizeof(e.host), "127.0.0.1");
    bool in_progress;
    return endpoint_socket_connect(&e, ret_fd, &in_progress);
}

/* Forks `ocvm relay-child` as relay_child.c starts it: broker 3, control 4, stats 5, listener 6. */
static void start_with(struct harness *h, const char *forbidden, const char *extra)
{
    int broker[2], control[2];
    int listener = tcp_listener(&h->listen_port);
    h->target = tcp_listener(&h->target_port);
    int stats = memfd_create("stats", MFD_CLOEXEC);
    ck_assert_int_eq(ftruncate(stats, 4096), 0);
    h->page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, stats, 0);
    ck_assert_ptr_ne(h->page, MAP_FAILED);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, broker), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, control), 0);
    h->pid = fork();
    ck_assert_int_ge(h->pid, 0);
    if (h->pid == 0) {
        int from[] = {broker[1], control[1], stats, listener};
        for (int i = 0; i < 4; i++) /* above 3-6 first: one may be another's place */
            if ((from[i] = fcntl(from[i], F_DUPFD, 20)) < 0)
                _exit(120);
        for (int i = 0; i < 4; i++)
            if (dup2(from[i], 3 + i) < 0)
                _exit(120);
        if (forbidden)
            setenv("OCVM_TEST_FORBIDDEN_SYSCALL", forbidden, 1);
        char forward[64];
        snprintf(forward, sizeof(forward), "--forward=6=tcp:127.0.0.1:%u", h->target_port);
        char *argv[] = {"relay-child",    forward,        "--connect-fd=3",
                        "--control-fd=4", "--stats-fd=5", "--user",
                        "nobody",         (char *)extra,  NULL};
        _exit(relay_child_main(extra ? 8 : 7, argv)); /* _exit: no atexit handlers */
    }
    close(broker[1]);
    close(control[1]);
    close(stats);
    close(listener);
    h->broker = broker[0];
    h->control = control[0];
}

static void start(struct harness *h, bool forbidden, const char *extra)
{
    start_with(h, forbidden ? "1" : NULL, extra);
}

static int wait_status(pid_t pid)
{
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return st;
}

/* Serves the broker until a request came (true) or MS passed (false). */
static bool serve_broker(struct harness *h, int ms)
{
    struct pollfd p = {.fd = h->broker, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0)
        return false;
    ck_assert_int_eq(connect_broker_serve(h->broker, open_target, h), 0);
    return true;
}

static void set_held(struct harness *h, uint64_t held)
{
    struct relay_child_control m = {.held = held};
    ck_assert_int_eq(send(h->control, &m, sizeof(m), 0), (ssize_t)sizeof(m));
}

START_TEST(forbidden_call_kills_the_relay)
{
    struct harness h;
    start(&h, true, NULL);
    int st = wait_status(h.pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "expected death by SIGSYS, got 0x%x",
                  st);
}
END_TEST

/* TCP Fast Open would connect a socket the relay holds (one its target refused) to any address:
 * sendto with MSG_FASTOPEN is outside the filter. */
START_TEST(fast_open_kills_the_relay)
{
    struct harness h;
    start_with(&h, "fastopen", NULL);
    int st = wait_status(h.pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "expected death by SIGSYS, got 0x%x",
                  st);
}
END_TEST

/* One client: accepted by the child, its target socket from the broker, bytes both ways. */
static void one_client(struct harness *h, const char *what)
{
    int client = tcp_connect(h->listen_port);
    ck_assert_msg(serve_broker(h, 5000), "%s: no broker request", what);
    struct pollfd p = {.fd = h->target, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 5000), 1);
    int server = accept4(h->target, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(server, 0);
    char buf[16] = {0};
    ck_assert_int_eq(write(client, "hello", 5), 5);
    ck_assert_int_eq(read(server, buf, sizeof(buf)), 5);
    ck_assert_str_eq(buf, "hello");
    ck_assert_int_eq(write(server, "world!", 6), 6);
    memset(buf, 0, sizeof(buf));
    ck_assert_int_eq(read(client, buf, sizeof(buf)), 6);
    ck_assert_str_eq(buf, "world!");
    close(client);
    close(server);
}

START_TEST(sandboxed_relay_relays_holds_and_stops)
{
#ifdef SANITIZED
    /* AddressSanitizer's allocator and exit-time leak check make calls outside the filter */
    fprintf(stderr, "skip: sandboxed_relay_relays_holds_and_stops under AddressSanitizer\n");
    return;
#endif
    struct harness h;
    start(&h, false, NULL);
    one_client(&h, "first client");
    struct relay_stats st;
    for (int i = 0; i < 200; i++) { /* published after the dispatch that moved the bytes */
        relay_stats_page_read(h.page, &st);
        if (st.bytes_to_client == 6)
            break;
        usleep(10000);
    }
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(st.bytes_to_target, 5);
    ck_assert_uint_eq(st.bytes_to_client, 6);

    char v[128];
    proc_status_line(h.pid, "NoNewPrivs", v, sizeof(v));
    ck_assert_str_eq(v, "1");
    proc_status_line(h.pid, "Seccomp", v, sizeof(v));
    ck_assert_str_eq(v, "2");
    proc_status_line(h.pid, "CapEff", v, sizeof(v));
    ck_assert_str_eq(v, "0000000000000000");
    proc_status_line(h.pid, "Name", v, sizeof(v));
    ck_assert_str_eq(v, "ocvm-relay");
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("nobody");
        ck_assert_ptr_nonnull(pw);
        char want[64];
        snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", pw->pw_uid, pw->pw_uid, pw->pw_uid,
                 pw->pw_uid);
        proc_status_line(h.pid, "Uid", v, sizeof(v));
        ck_assert_str_eq(v, want);
        proc_status_line(h.pid, "CapBnd", v, sizeof(v));
        ck_assert_str_eq(v, "0000000000000000");
    }

    /* held: a client waits in the backlog, and nothing is asked of the broker */
    set_held(&h, 1);
    usleep(100000); /* the child takes the message before the client comes */
    int client = tcp_connect(h.listen_port);
    ck_assert_msg(!serve_broker(&h, 500), "a held listener's client was accepted");
    set_held(&h, 0);
    ck_assert_msg(serve_broker(&h, 5000), "a released listener's client was not accepted");
    struct pollfd p = {.fd = h.target, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 5000), 1);
    int server = accept4(h.target, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(server, 0);
    close(server);
    close(client);

    ck_assert_int_eq(kill(h.pid, SIGTERM), 0);
    int status = wait_status(h.pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status 0x%x", status);
}
END_TEST

/* The broker refuses what it does not name: the relay gives its client a reset, and goes on. */
static int refuse(void *userdata, uint32_t key, int *ret_fd)
{
    return -ECONNREFUSED;
}

START_TEST(refused_target_resets_the_client)
{
#ifdef SANITIZED
    fprintf(stderr, "skip: refused_target_resets_the_client under AddressSanitizer\n");
    return;
#endif
    struct harness h;
    start(&h, false, NULL);
    int client = tcp_connect(h.listen_port);
    struct pollfd p = {.fd = h.broker, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 5000), 1);
    ck_assert_int_eq(connect_broker_serve(h.broker, refuse, &h), 0);
    char c;
    struct pollfd pc = {.fd = client, .events = POLLIN};
    ck_assert_int_eq(poll(&pc, 1, 5000), 1);
    ck_assert_int_lt(read(client, &c, 1), 1); /* reset or EOF, never a hang */
    close(client);
    one_client(&h, "the next client"); /* still relaying */
    kill(h.pid, SIGTERM);
    wait_status(h.pid);
}
END_TEST

/* The relay killed mid-stream: its client gets a reset, never an end that looks complete. */
START_TEST(killed_relay_resets_its_clients)
{
#ifdef SANITIZED
    fprintf(stderr, "skip: killed_relay_resets_its_clients under AddressSanitizer\n");
    return;
#endif
    struct harness h;
    start(&h, false, NULL);
    int client = tcp_connect(h.listen_port);
    ck_assert(serve_broker(&h, 5000));
    struct pollfd p = {.fd = h.target, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 5000), 1);
    int server = accept4(h.target, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(server, 0);
    char buf[8];
    ck_assert_int_eq(write(server, "part", 4), 4);
    ck_assert_int_eq(read(client, buf, sizeof(buf)), 4);
    kill(h.pid, SIGKILL);
    wait_status(h.pid);
    errno = 0;
    ssize_t n = read(client, buf, sizeof(buf));
    ck_assert_msg(n < 0 && errno == ECONNRESET, "read %zd (%s): not a reset", n, strerror(errno));
    close(client);
    close(server);
}
END_TEST

/* A late answer: the client timed out meanwhile (and got a reset); the socket that comes for it
 * is dropped, and the relay goes on. */
START_TEST(late_answer_for_a_client_gone)
{
#ifdef SANITIZED
    fprintf(stderr, "skip: late_answer_for_a_client_gone under AddressSanitizer\n");
    return;
#endif
    struct harness h;
    start(&h, false, "--connect-timeout-ms=300");
    int client = tcp_connect(h.listen_port);
    struct pollfd p = {.fd = h.broker, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 5000), 1); /* asked, and not answered yet */
    struct pollfd pc = {.fd = client, .events = POLLIN};
    ck_assert_int_eq(poll(&pc, 1, 5000), 1);
    char b;
    ck_assert_int_lt(read(client, &b, 1), 1); /* timed out: reset or EOF */
    close(client);
    ck_assert_int_eq(connect_broker_serve(h.broker, open_target, &h), 0); /* the late answer */
    struct pollfd pt = {.fd = h.target, .events = POLLIN};
    if (poll(&pt, 1, 1000) == 1) { /* the dropped socket reached the target: it ends at once */
        int server = accept4(h.target, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(server, 0);
        struct pollfd ps = {.fd = server, .events = POLLIN};
        ck_assert_int_eq(poll(&ps, 1, 5000), 1);
        ck_assert_int_le(read(server, &b, 1), 0);
        close(server);
    }
    one_client(&h, "the next client");
    kill(h.pid, SIGTERM);
    ck_assert_int_eq(wait_status(h.pid), 0);
}
END_TEST

/* More clients at once than the child asks for at a time (64): the rest wait their turn, in
 * order, and every one is served. */
START_TEST(many_clients_at_once)
{
#ifdef SANITIZED
    fprintf(stderr, "skip: many_clients_at_once under AddressSanitizer\n");
    return;
#endif
    enum { N = 150 };
    struct harness h;
    start(&h, false, NULL);
    int clients[N], servers[N], accepted = 0;
    for (int i = 0; i < N; i++) {
        clients[i] = tcp_connect(h.listen_port);
        ck_assert_int_eq(write(clients[i], "x", 1), 1);
    }
    fcntl(h.target, F_SETFL, O_NONBLOCK); /* accept until none waits */
    for (int rounds = 0; accepted < N && rounds < 200; rounds++) {
        struct pollfd p[2] = {{.fd = h.broker, .events = POLLIN},
                              {.fd = h.target, .events = POLLIN}};
        if (poll(p, 2, 100) == 0)
            continue;
        if (p[0].revents)
            ck_assert_int_eq(connect_broker_serve(h.broker, open_target, &h), 0);
        while (p[1].revents && accepted < N) {
            int fd = accept4(h.target, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd < 0)
                break;
            servers[accepted++] = fd;
        }
    }
    ck_assert_msg(accepted == N, "%d of %d target connections", accepted, N);
    for (int i = 0; i < N; i++) { /* each target connection echoes its client's byte */
        char b;
        struct pollfd ps = {.fd = servers[i], .events = POLLIN};
        ck_assert_int_eq(poll(&ps, 1, 5000), 1);
        ck_assert_int_eq(read(servers[i], &b, 1), 1);
        ck_assert_int_eq(write(servers[i], &b, 1), 1);
    }
    for (int i = 0; i < N; i++) {
        char b = 0;
        ck_assert_int_eq(read(clients[i], &b, 1), 1);
        ck_assert_int_eq(b, 'x');
        close(clients[i]);
        close(servers[i]);
    }
    kill(h.pid, SIGTERM);
    ck_assert_int_eq(wait_status(h.pid), 0);
}
END_TEST

static int run_args(char **argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    return relay_child_main(argc, argv);
}

START_TEST(bad_arguments_are_usage_errors)
{
    uint16_t port;
    int l = tcp_listener(&port);
    int pair[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    char fwd[64], conn[32], notlistening[64];
    snprintf(fwd, sizeof(fwd), "--forward=%d=tcp:127.0.0.1:1", l);
    snprintf(conn, sizeof(conn), "--connect-fd=%d", pair[1]);
    snprintf(notlistening, sizeof(notlistening), "--forward=%d=tcp:127.0.0.1:1", pair[0]);
    ck_assert_int_eq(run_args((char *[]){"relay-child", fwd, NULL}), 2);  /* no broker */
    ck_assert_int_eq(run_args((char *[]){"relay-child", conn, NULL}), 2); /* no forward */
    ck_assert_int_eq(run_args((char *[]){"relay-child", notlistening, conn, NULL}), 2);
    ck_assert_int_eq(run_args((char *[]){"relay-child", "--forward=2=tcp:127.0.0.1:1", conn, NULL}),
                     2);
    ck_assert_int_eq(run_args((char *[]){"relay-child", "--forward=99=nonsense:1", conn, NULL}), 2);
    ck_assert_int_eq(run_args((char *[]){"relay-child", fwd, conn, "--held=1", NULL}), 2);
    ck_assert_int_eq(run_args((char *[]){"relay-child", fwd, fwd, conn, NULL}), 2); /* twice */
    ck_assert_int_eq(run_args((char *[]){"relay-child", fwd, conn, "--vm=bad name", NULL}), 2);
    ck_assert_int_eq(run_args((char *[]){"relay-child", fwd, conn, "extra", NULL}), 2);
    close(l);
    close(pair[0]);
    close(pair[1]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("relay_child");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, forbidden_call_kills_the_relay);
    tcase_add_test(tc, fast_open_kills_the_relay);
    tcase_add_test(tc, sandboxed_relay_relays_holds_and_stops);
    tcase_add_test(tc, refused_target_resets_the_client);
    tcase_add_test(tc, bad_arguments_are_usage_errors);
    tcase_add_test(tc, late_answer_for_a_client_gone);
    tcase_add_test(tc, killed_relay_resets_its_clients);
    tcase_add_test(tc, many_clients_at_once);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
