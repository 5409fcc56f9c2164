/* relay: real sockets on loopback and in a temp dir, the relay running in its own thread. */

#include "tests/support/run_suite.h"
#include "vsock/relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/param.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

/* ---- harness ---- */

struct running {
    struct relay *r;
    pthread_t thread;
    atomic_bool stop;
};

static void *relay_thread(void *p)
{
    struct running *rt = p;
    while (!atomic_load(&rt->stop))
        relay_dispatch(rt->r, 20);
    return NULL;
}

static void rt_start(struct running *rt)
{
    atomic_store(&rt->stop, false);
    ck_assert_int_eq(pthread_create(&rt->thread, NULL, relay_thread, rt), 0);
}

static void rt_pause(struct running *rt)
{
    atomic_store(&rt->stop, true);
    pthread_join(rt->thread, NULL);
}

/* Stats with the relay paused (no data race), then resumed. */
static struct relay_stats rt_stats(struct running *rt)
{
    struct relay_stats s;
    rt_pause(rt);
    relay_get_stats(rt->r, &s);
    rt_start(rt);
    return s;
}

static int tcp_listener(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fd, 1024), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* ECONNRESET: the relay accepted and turned the client away (target down, limit, hybrid
     * refusal) before connect() returned; the fd then reads as closed, which callers check */
    ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno == ECONNRESET,
                  "connect to port %u: %s", port, strerror(errno));
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

/* A relay from a fresh loopback port to TARGET; returns the port clients use. */
static uint16_t relay_to(struct running *rt, const struct relay_options *o,
                         const struct endpoint *target)
{
    uint16_t port;
    ck_assert_int_eq(relay_new(o, &rt->r), 0);
    ck_assert_int_eq(relay_add_forward_fd(rt->r, tcp_listener(&port), target), 0);
    rt_start(rt);
    return port;
}

static void rt_free(struct running *rt)
{
    rt_pause(rt);
    relay_free(rt->r);
}

static struct endpoint tcp_ep(uint16_t port)
{
    struct endpoint e = {.kind = ENDPOINT_TCP, .port = port};
    strcpy(e.host, "127.0.0.1");
    return e;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* ---- servers (each serves one connection per accept, in its own thread) ---- */

enum server_mode { SERVE_HASH, SERVE_HASH_UNEVEN, SERVE_BYE_AFTER_EOF, SERVE_HOLD, SERVE_ECHO };
struct server {
    int lfd;
    enum server_mode mode;
    int max_clients;
    pthread_t thread;
    int held[64];
    int n_held;
};

static void *echo_thread(void *p)
{
    int fd = (int)(intptr_t)p;
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        if (write(fd, buf, (size_t)n) != n)
            break;
    close(fd);
    return NULL;
}

/* Reads of odd sizes, with pauses: the relay's rings fill, drain in part and wrap. Answers the
 * digest of what it read at EOF. */
static void *hash_uneven_thread(void *p)
{
    int fd = (int)(intptr_t)p;
    unsigned char buf[65536];
    uint64_t h = 0xcbf29ce484222325ull;
    ssize_t n;
    for (unsigned k = 1; (n = read(fd, buf, 1 + (k * 7919u) % sizeof(buf))) > 0; k++) {
        h = fnv(h, buf, (size_t)n);
        if (k % 64 == 0)
            usleep(1000);
    }
    (void)!write(fd, &h, sizeof(h));
    close(fd);
    return NULL;
}

static void *server_thread(void *p)
{
    struct server *s = p;
    for (int i = 0; i < s->max_clients; i++) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE)) { /* a test that starves fds */
            usleep(10000);
            i--;
            continue;
        }
        if (fd < 0)
            break;
        static unsigned char buf[65536];
        ssize_t n;
        uint64_t h = 0xcbf29ce484222325ull;
        switch (s->mode) {
        case SERVE_HASH:
            while ((n = read(fd, buf, sizeof(buf))) > 0)
                h = fnv(h, buf, (size_t)n);
            (void)!write(fd, &h, sizeof(h));
            close(fd);
            break;
        case SERVE_HASH_UNEVEN: { /* one thread per client, like SERVE_ECHO */
            pthread_t t;
            if (pthread_create(&t, NULL, hash_uneven_thread, (void *)(intptr_t)fd) == 0)
                pthread_detach(t);
            else
                close(fd);
            break;
        }
        case SERVE_BYE_AFTER_EOF:
            while ((n = read(fd, buf, sizeof(buf))) > 0)
                ;
            (void)!write(fd, "bye\n", 4);
            close(fd);
            break;
        case SERVE_ECHO: { /* one thread per client: they are served at the same time */
            pthread_t t;
            if (pthread_create(&t, NULL, echo_thread, (void *)(intptr_t)fd) == 0)
                pthread_detach(t);
            else
                close(fd);
            break;
        }
        case SERVE_HOLD:
            if (s->n_held < 64)
                s->held[s->n_held++] = fd;
            break;
        }
    }
    return NULL;
}

static uint16_t server_start(struct server *s, enum server_mode mode, int max_clients)
{
    uint16_t port;
    *s = (struct server){.lfd = tcp_listener(&port), .mode = mode, .max_clients = max_clients};
    ck_assert_int_eq(pthread_create(&s->thread, NULL, server_thread, s), 0);
    return port;
}

static void server_stop(struct server *s)
{
    shutdown(s->lfd, SHUT_RDWR); /* wakes accept() */
    pthread_join(s->thread, NULL);
    close(s->lfd);
    for (int i = 0; i < s->n_held; i++)
        close(s->held[i]);
}

/* True if FD sees EOF or a reset within MS. */
static bool closed_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) <= 0)
        return false;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* ---- tests ---- */

/* _i: 0 ring buffers, 1 splice through a pipe, 2 ring buffers to an uneven, pausing reader */
START_TEST(bulk_64mib_arrives_intact)
{
    struct server s;
    struct running rt;
    struct relay_options o = {.splice = _i == 1};
    struct endpoint t = tcp_ep(server_start(&s, _i == 2 ? SERVE_HASH_UNEVEN : SERVE_HASH, 1));
    int fd = tcp_connect(relay_to(&rt, &o, &t));
    unsigned char *buf = malloc(1 << 20);
    uint64_t x = 0x9e3779b97f4a7c15ull, h = 0xcbf29ce484222325ull;
    for (int chunk = 0; chunk < 64; chunk++) {
        for (size_t i = 0; i < (1 << 20); i += 8) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            memcpy(buf + i, &x, 8);
        }
        h = fnv(h, buf, 1 << 20);
        size_t off = 0;
        while (off < (1 << 20)) {
            ssize_t n = write(fd, buf + off, (1 << 20) - off);
            ck_assert_int_gt(n, 0);
            off += (size_t)n;
        }
    }
    shutdown(fd, SHUT_WR);
    uint64_t got = 0;
    ck_assert_int_eq(read(fd, &got, sizeof(got)), sizeof(got));
    ck_assert_msg(got == h, "digest differs: the relay changed the data");
    close(fd);
    server_stop(&s);
    struct relay_stats st = rt_stats(&rt);
    ck_assert_uint_eq(st.bytes_to_target, 64u << 20);
    ck_assert_uint_eq(st.bytes_to_client, 8);
    rt_free(&rt);
    free(buf);
}
END_TEST

/* Rings grow only within the budget, and an idle relay gives them all back. */
START_TEST(rings_stay_within_the_budget_and_are_released)
{
    struct server s;
    struct running rt;
    struct relay_options o = {.ring_budget = 1u << 20};
    struct endpoint t = tcp_ep(server_start(&s, SERVE_HASH_UNEVEN, 4));
    uint16_t port = relay_to(&rt, &o, &t);
    int fd[4];
    for (int i = 0; i < 4; i++)
        fd[i] = tcp_connect(port);
    static unsigned char buf[1 << 20];
    uint64_t peak = 0;
    for (int round = 0; round < 16; round++) {
        for (int i = 0; i < 4; i++)
            for (size_t off = 0; off < sizeof(buf);) {
                ssize_t n = write(fd[i], buf + off, sizeof(buf) - off);
                ck_assert_int_gt(n, 0);
                off += (size_t)n;
            }
        uint64_t held = rt_stats(&rt).ring_bytes;
        ck_assert_msg(held <= (1u << 20), "%llu bytes of rings with a 1 MiB budget",
                      (unsigned long long)held);
        peak = MAX(peak, held);
    }
    ck_assert_msg(peak > 0, "no flow ever grew its ring");
    uint64_t h = 0xcbf29ce484222325ull, got;
    for (int round = 0; round < 16; round++)
        h = fnv(h, buf, sizeof(buf));
    for (int i = 0; i < 4; i++) {
        shutdown(fd[i], SHUT_WR);
        ck_assert_int_eq(read(fd[i], &got, sizeof(got)), sizeof(got));
        ck_assert_msg(got == h, "client %d: digest differs", i);
        close(fd[i]);
    }
    uint64_t left = 1;
    for (int tries = 0; tries < 100 && left; tries++) {
        usleep(30000);
        left = rt_stats(&rt).ring_bytes;
    }
    ck_assert_msg(left == 0, "an idle relay still holds %llu bytes of rings",
                  (unsigned long long)left);
    rt_free(&rt);
    server_stop(&s);
}
END_TEST

START_TEST(half_close_keeps_the_other_direction)
{
    struct server s;
    struct running rt;
    struct relay_options o = {0};
    struct endpoint t = tcp_ep(server_start(&s, SERVE_BYE_AFTER_EOF, 1));
    int fd = tcp_connect(relay_to(&rt, &o, &t));
    ck_assert_int_eq(write(fd, "hello", 5), 5);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0); /* our FIN must reach the server as EOF ... */
    char buf[8] = {0};
    ck_assert_int_eq(read(fd, buf, sizeof(buf)), 4); /* ... while its reply still reaches us */
    ck_assert_str_eq(buf, "bye\n");
    ck_assert_int_eq(read(fd, buf, sizeof(buf)), 0);
    close(fd);
    server_stop(&s);
    rt_free(&rt);
}
END_TEST

START_TEST(slow_reader_gets_back_pressure)
{
    struct server s;
    struct running rt;
    struct relay_options o = {0};
    struct endpoint t = tcp_ep(server_start(&s, SERVE_HOLD, 1));
    int fd = tcp_connect(relay_to(&rt, &o, &t));
    static char buf[65536];
    size_t total = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 500) == 0)
            break; /* blocked: the relay stopped reading */
        ssize_t n = send(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0)
            total += (size_t)n;
        ck_assert_msg(total < (128u << 20), "relay buffered without bound");
    }
    /* what the kernel holds (send and receive buffers on both hops, autotuned up to about
     * 20-30 MiB on loopback under load) plus one relay pipe of 256 KiB: bounded, far below what a
     * relay that read without bound would have taken by now (the loop stops that at 128 MiB) */
    ck_assert_msg(total < (48u << 20), "accepted %zu bytes from a client whose server never reads",
                  total);
    close(fd);
    server_stop(&s);
    rt_free(&rt);
}
END_TEST

START_TEST(target_down_resets_client_at_once)
{
    uint16_t dead;
    close(tcp_listener(&dead)); /* a port nobody listens on */
    struct running rt;
    struct relay_options o = {0};
    struct endpoint t = tcp_ep(dead);
    int fd = tcp_connect(relay_to(&rt, &o, &t));
    ck_assert_msg(closed_within(fd, 1000), "client not told within 1 s that the target is down");
    close(fd);
    ck_assert_uint_eq(rt_stats(&rt).connect_failed, 1);
    rt_free(&rt);
}
END_TEST

START_TEST(connection_limit_refuses_and_recovers)
{
    struct server s;
    struct running rt;
    struct relay_options o = {.max_connections = 4};
    struct endpoint t = tcp_ep(server_start(&s, SERVE_ECHO, 64));
    uint16_t port = relay_to(&rt, &o, &t);
    int fds[4];
    for (int i = 0; i < 4; i++) {
        fds[i] = tcp_connect(port);
        char c = 'x';
        ck_assert_int_eq(write(fds[i], &c, 1), 1); /* wait until each is really relayed */
        ck_assert_int_eq(read(fds[i], &c, 1), 1);
    }
    int extra = tcp_connect(port);
    ck_assert_msg(closed_within(extra, 1000), "fifth client not refused");
    close(extra);
    ck_assert_uint_eq(rt_stats(&rt).refused_limit, 1);
    close(fds[0]);
    int again = -1;
    for (int tries = 0; tries < 50; tries++) { /* the relay sees the close soon */
        again = tcp_connect(port);
        char c = 'y';
        if (write(again, &c, 1) == 1 && read(again, &c, 1) == 1 && c == 'y')
            break;
        close(again);
        again = -1;
        usleep(20000);
    }
    ck_assert_msg(again >= 0, "no room again after a client left");
    close(again);
    for (int i = 1; i < 4; i++)
        close(fds[i]);
    rt_free(&rt);
    server_stop(&s);
}
END_TEST

/* Issue 5's acceptance scenario: 10,000 connections opened and closed (normal exchanges, clients
 * that vanish mid-transfer, clients that never send, a target that is down), then clients of a
 * server that never reads, which either reset while their data sits in the relay or are cut off
 * when that server goes away. The relay must stay up with exactly the fds it had before. */
START_TEST(same_fds_after_10000_connections_and_abuse)
{
    struct server s, hold;
    struct running rt;
    struct relay_options o = {0};
    struct endpoint t = tcp_ep(server_start(&s, SERVE_ECHO, 20000));
    uint16_t port = relay_to(&rt, &o, &t);
    uint16_t dead;
    close(tcp_listener(&dead));
    struct endpoint td = tcp_ep(dead), th = tcp_ep(server_start(&hold, SERVE_HOLD, 64));
    uint16_t dead_port, hold_port;
    ck_assert_int_eq(relay_add_forward_fd(rt.r, tcp_listener(&dead_port), &td), 0);
    ck_assert_int_eq(relay_add_forward_fd(rt.r, tcp_listener(&hold_port), &th), 0);
    static char buf[200000];
    int before = count_fds();
    struct linger rst = {.l_onoff = 1, .l_linger = 0};
    for (int i = 0; i < 10000; i++) {
        int fd = tcp_connect(i % 4 == 3 ? dead_port : port);
        switch (i % 4) {
        case 0: /* a normal exchange */
            ck_assert_int_eq(write(fd, "ping", 4), 4);
            ck_assert_int_eq(read(fd, buf, 4), 4);
            break;
        case 1: /* a client that vanishes mid-transfer, with a reset */
            (void)!send(fd, buf, sizeof(buf), MSG_DONTWAIT);
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
            break;
        case 2: /* opened and closed without a byte */
            break;
        case 3:
            ck_assert_msg(closed_within(fd, 1000), "client %d not told the target is down", i);
            break;
        }
        close(fd);
    }
    /* a server that never reads: clients fill every buffer on the way, until they block */
    int stuck[4];
    for (int i = 0; i < 4; i++) {
        stuck[i] = tcp_connect(hold_port);
        for (;;) {
            struct pollfd p = {.fd = stuck[i], .events = POLLOUT};
            if (poll(&p, 1, 100) == 0)
                break;
            ck_assert_int_gt(send(stuck[i], buf, sizeof(buf), MSG_DONTWAIT), 0);
        }
    }
    for (int i = 0; i < 2; i++) { /* half give up, with a reset */
        setsockopt(stuck[i], SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
        close(stuck[i]);
    }
    /* the relay drops them at once, though it was not reading from them (their data is stuck
     * behind a server that never reads) */
    uint64_t open_now = 0;
    for (int tries = 0; tries < 100; tries++) {
        if ((open_now = rt_stats(&rt).open) == 2)
            break;
        usleep(20000);
    }
    ck_assert_msg(open_now == 2, "%llu connections open after 2 of 4 stuck clients reset",
                  (unsigned long long)open_now);
    server_stop(&hold); /* the server goes: the other half are told so */
    before--;           /* its listener */
    for (int i = 2; i < 4; i++) {
        ck_assert_msg(closed_within(stuck[i], 2000), "client %d of a vanished server not told", i);
        close(stuck[i]);
    }
    int after = -1;
    struct relay_stats st = {0};
    /* an idle relay closes its pooled pipes after a second: then exactly the fds it had */
    for (int tries = 0; tries < 150; tries++) {
        st = rt_stats(&rt);
        after = count_fds();
        if (st.open == 0 && after == before)
            break;
        usleep(20000);
    }
    ck_assert_uint_eq(st.open, 0);
    ck_assert_int_eq(after, before);
    ck_assert_uint_ge(st.accepted, 10000 + 4);
    rt_free(&rt);
    server_stop(&s);
}
END_TEST

/* A hybrid vsock peer: reads "CONNECT N\n", answers REPLY (or nothing), then echoes. */
struct hybrid_peer {
    int lfd;
    const char *reply;
    char got[32];
    pthread_t thread;
};

static void *hybrid_thread(void *p)
{
    struct hybrid_peer *h = p;
    int fd = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t n = 0;
    while (n + 1 < sizeof(h->got) && read(fd, h->got + n, 1) == 1 && h->got[n++] != '\n')
        ;
    if (!h->reply) {
        char c;
        (void)!read(fd, &c, 1); /* never answers; waits for the relay to give up */
        close(fd);
        return NULL;
    }
    (void)!write(fd, h->reply, strlen(h->reply));
    char buf[4096];
    ssize_t r;
    while ((r = read(fd, buf, sizeof(buf))) > 0)
        (void)!write(fd, buf, (size_t)r);
    close(fd);
    return NULL;
}

static struct endpoint hybrid_start(struct hybrid_peer *h, const char *dir, const char *reply)
{
    struct endpoint e = {.kind = ENDPOINT_HYBRID, .port = 18789};
    snprintf(e.path, sizeof(e.path), "%s/vsock.sock", dir);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, e.path);
    *h =
        (struct hybrid_peer){.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), .reply = reply};
    unlink(e.path);
    ck_assert_int_eq(bind(h->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(h->lfd, 8), 0);
    ck_assert_int_eq(pthread_create(&h->thread, NULL, hybrid_thread, h), 0);
    return e;
}

START_TEST(hybrid_connect_ok_then_data)
{
    char dir[] = "/tmp/ocvm-relay-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct hybrid_peer h;
    struct endpoint t = hybrid_start(&h, dir, "OK 1073741824\n");
    struct running rt;
    struct relay_options o = {0};
    int fd = tcp_connect(relay_to(&rt, &o, &t));
    ck_assert_int_eq(write(fd, "abc", 3), 3);
    char buf[4] = {0};
    ck_assert_int_eq(read(fd, buf, 3), 3);
    ck_assert_str_eq(buf, "abc");
    ck_assert_str_eq(h.got, "CONNECT 18789\n");
    close(fd);
    pthread_join(h.thread, NULL);
    close(h.lfd);
    rt_free(&rt);
    unlink(t.path);
    rmdir(dir);
}
END_TEST

START_TEST(hybrid_refusal_and_silence_reset_the_client)
{
    char dir[] = "/tmp/ocvm-relay-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct hybrid_peer h;
    struct endpoint t = hybrid_start(&h, dir, "ERR no listener\n");
    struct running rt;
    struct relay_options o = {.connect_timeout_ms = 300};
    int fd = tcp_connect(relay_to(&rt, &o, &t));
    ck_assert_msg(closed_within(fd, 1000), "a refused CONNECT must reset the client");
    close(fd);
    pthread_join(h.thread, NULL);
    close(h.lfd);
    rt_free(&rt);

    t = hybrid_start(&h, dir, NULL); /* accepts, never answers */
    fd = tcp_connect(relay_to(&rt, &o, &t));
    ck_assert_msg(!closed_within(fd, 100), "gave up before the connect timeout");
    ck_assert_msg(closed_within(fd, 1500),
                  "a silent peer must be given up after the connect timeout");
    close(fd);
    ck_assert_uint_eq(rt_stats(&rt).timeouts, 1);
    rt_free(&rt);
    pthread_join(h.thread, NULL);
    close(h.lfd);
    unlink(t.path);
    rmdir(dir);
}
END_TEST

START_TEST(idle_connections_are_closed)
{
    struct server s;
    struct running rt;
    struct relay_options o = {.idle_timeout_ms = 300};
    struct endpoint t = tcp_ep(server_start(&s, SERVE_ECHO, 1));
    int fd = tcp_connect(relay_to(&rt, &o, &t));
    ck_assert_int_eq(write(fd, "x", 1), 1);
    char c;
    ck_assert_int_eq(read(fd, &c, 1), 1);
    ck_assert_msg(!closed_within(fd, 100), "closed while still fresh");
    ck_assert_msg(closed_within(fd, 2000), "idle connection not closed");
    close(fd);
    rt_free(&rt);
    server_stop(&s);
}
END_TEST

START_TEST(unix_to_unix)
{
    char dir[] = "/tmp/ocvm-relay-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct endpoint listen = {.kind = ENDPOINT_UNIX}, target = {.kind = ENDPOINT_UNIX};
    snprintf(listen.path, sizeof(listen.path), "%s/in.sock", dir);
    snprintf(target.path, sizeof(target.path), "%s/out.sock", dir);
    int lfd;
    ck_assert_int_eq(endpoint_socket_listen(&target, &lfd), 0);
    struct running rt;
    struct relay_options o = {0};
    ck_assert_int_eq(relay_new(&o, &rt.r), 0);
    ck_assert_int_eq(relay_add_forward(rt.r, &listen, &target), 0);
    rt_start(&rt);
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, listen.path);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(write(c, "over unix", 9), 9);
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 2000), 1);
    int s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    char buf[16] = {0};
    ck_assert_int_eq(read(s, buf, sizeof(buf)), 9);
    ck_assert_str_eq(buf, "over unix");
    close(s);
    close(c);
    close(lfd);
    rt_free(&rt);
    unlink(listen.path);
    unlink(target.path);
    rmdir(dir);
}
END_TEST

/* The vsock side of the host relay is a Unix socket (hybrid), which cannot send a reset: the
 * backend closes it when the guest resets the connection or when the backend dies. A target that
 * hangs up altogether while the client still sends must reach a TCP client as a reset, never as
 * a clean end that makes a cut reply look complete; a target that half-closes, or that closes
 * after the client has finished, is a clean end. _i: 0 the hybrid target closes mid-reply
 * (reset), 1 it half-closes (clean EOF), 2 it closes after the client's own FIN (clean EOF);
 * 3 a plain Unix target (a service, not the vsock backend) writes its reply and closes: that is
 * how such services end, and the client gets the whole reply and a clean EOF. */
START_TEST(unix_target_hangup_resets_tcp_client)
{
    char dir[] = "/tmp/ocvm-relay-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    bool hybrid = _i < 3;
    struct endpoint listen_ep = {.kind = ENDPOINT_UNIX}, target;
    snprintf(listen_ep.path, sizeof(listen_ep.path), "%s/vsock.sock", dir);
    target = listen_ep;
    if (hybrid)
        target.kind = ENDPOINT_HYBRID, target.port = 18789;
    int lfd;
    ck_assert_int_eq(endpoint_socket_listen(&listen_ep, &lfd), 0);
    struct running rt;
    struct relay_options o = {0};
    int fd = tcp_connect(relay_to(&rt, &o, &target));
    ck_assert_int_eq(write(fd, "GET / HTTP/1.1\r\n\r\n", 18), 18);
    if (_i == 2)
        ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 2000), 1);
    int t = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    char buf[64] = {0};
    if (hybrid) { /* the backend's side of the handshake */
        ck_assert_int_eq(read(t, buf, sizeof(buf)), 14);
        ck_assert_int_eq(memcmp(buf, "CONNECT 18789\n", 14), 0);
        ck_assert_int_eq(write(t, "OK 1\n", 5), 5);
    }
    ck_assert_int_eq(read(t, buf, sizeof(buf)), 18); /* all read: close() itself sends no reset */
    if (_i == 2) {                                   /* the client's FIN has reached the target */
        p = (struct pollfd){.fd = t, .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, 2000), 1);
        ck_assert_int_eq(read(t, buf, sizeof(buf)), 0);
    }
    ck_assert_int_eq(write(t, "HTTP/1.1 200 OK\r\n", 17), 17);
    if (_i == 1)
        ck_assert_int_eq(shutdown(t, SHUT_WR), 0);
    else
        close(t);
    /* what the client sees after the bytes that made it: the end, or a reset */
    ssize_t n;
    size_t got = 0;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0)
        got += (size_t)n;
    if (_i == 0)
        ck_assert_msg(n < 0 && errno == ECONNRESET,
                      "a target that hung up mid-stream reached the client as %s after %zu bytes",
                      n == 0 ? "a clean EOF" : strerror(errno), got);
    else
        ck_assert_msg(n == 0 && got == 17, "clean end expected: got %zd (%s) after %zu bytes", n,
                      n < 0 ? strerror(errno) : "EOF", got);
    close(fd);
    if (_i == 1)
        close(t);
    close(lfd);
    rt_free(&rt);
    unlink(target.path);
    rmdir(dir);
}
END_TEST

/* Out of fds: the relay neither spins on its listener nor gives up, and accepts the waiting
 * clients once fds are free again. */
START_TEST(out_of_fds_pauses_accept_then_recovers)
{
    struct server s;
    struct running rt;
    struct relay_options o = {.max_connections = 1000};
    struct endpoint t = tcp_ep(server_start(&s, SERVE_ECHO, 100));
    uint16_t port = relay_to(&rt, &o, &t);
    int fd[8];
    for (int i = 0; i < 8; i++)
        ck_assert_int_ge(fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), 0);
    /* room for one relayed connection: the relay's two sockets and the server's one */
    struct rlimit rl, low;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    low = (struct rlimit){.rlim_cur = (rlim_t)count_fds() + 3, .rlim_max = rl.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < 8; i++) /* the kernel completes them; the relay cannot accept them all */
        ck_assert_int_eq(connect(fd[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    usleep(500000);
    getrusage(RUSAGE_SELF, &ru1);
    long cpu_ms = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1000 +
                  (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1000 +
                  (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1000 +
                  (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1000;
    ck_assert_msg(cpu_ms < 200, "the relay spun on its listener: %ld ms of CPU in 500 ms", cpu_ms);
    ck_assert_uint_le(rt_stats(&rt).accepted, 4);       /* the rest wait in the backlog */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0); /* fds again: everyone is served */
    for (int i = 0; i < 8; i++) {
        struct timeval tv = {.tv_sec = 5};
        setsockopt(fd[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        char buf[4];
        ck_assert_int_eq(send(fd[i], "ping", 4, MSG_NOSIGNAL), 4);
        ck_assert_msg(read(fd[i], buf, 4) == 4, "client %d not served: %s", i, strerror(errno));
        close(fd[i]);
    }
    ck_assert_uint_eq(rt_stats(&rt).connect_failed, 0); /* nobody was turned away */
    rt_free(&rt);
    server_stop(&s);
}
END_TEST

/* A held listener (relay_hold_listener: a socket-activated gateway while the guest is not up)
 * accepts nobody: its client is neither served nor reset but waits in the backlog, and is served
 * once the listener is released. */
START_TEST(held_listener_keeps_clients_waiting)
{
    struct server s;
    struct running rt;
    struct relay_options o = {0};
    struct endpoint t = tcp_ep(server_start(&s, SERVE_ECHO, 10));
    uint16_t port;
    int lfd = tcp_listener(&port);
    ck_assert_int_eq(relay_new(&o, &rt.r), 0);
    ck_assert_int_eq(relay_add_forward_fd(rt.r, lfd, &t), 0);
    ck_assert_int_eq(relay_hold_listener(rt.r, lfd, true), 0);
    ck_assert_int_eq(relay_hold_listener(rt.r, lfd + 100, true), -EBADF); /* no such listener */
    rt_start(&rt);
    int fd = tcp_connect(port);
    ck_assert_int_eq(send(fd, "ping", 4, MSG_NOSIGNAL), 4);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ck_assert_msg(poll(&p, 1, 500) == 0, "a held listener's client was answered or reset");
    ck_assert_uint_eq(rt_stats(&rt).accepted, 0);
    rt_pause(&rt);
    ck_assert_int_eq(relay_hold_listener(rt.r, lfd, false), 0);
    rt_start(&rt);
    char buf[4];
    ck_assert_msg(read(fd, buf, 4) == 4, "not served once released: %s", strerror(errno));
    ck_assert(memcmp(buf, "ping", 4) == 0);
    close(fd);
    rt_free(&rt);
    server_stop(&s);
}
END_TEST

/* tcp:[::1]:PORT on both sides: IPv6 listen, connect and data both ways. */
START_TEST(ipv6_to_ipv6)
{
    struct endpoint lep = {.kind = ENDPOINT_TCP}, target = {.kind = ENDPOINT_TCP};
    strcpy(lep.host, "::1");
    strcpy(target.host, "::1");
    int tfd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    socklen_t len = sizeof(sa);
    if (tfd < 0 || bind(tfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        ck_assert_msg(errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL, "IPv6 bind: %s",
                      strerror(errno));
        fprintf(stderr, "ipv6_to_ipv6: skipped, this host has no IPv6 loopback\n");
        if (tfd >= 0)
            close(tfd);
        return;
    }
    ck_assert_int_eq(listen(tfd, 8), 0);
    ck_assert_int_eq(getsockname(tfd, (struct sockaddr *)&sa, &len), 0);
    target.port = ntohs(sa.sin6_port);
    int lfd;
    ck_assert_int_eq(endpoint_socket_listen(&lep, &lfd), 0);
    len = sizeof(sa);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    ck_assert_int_eq(sa.sin6_family, AF_INET6);
    struct running rt;
    struct relay_options o = {0};
    ck_assert_int_eq(relay_new(&o, &rt.r), 0);
    ck_assert_int_eq(relay_add_forward_fd(rt.r, lfd, &target), 0);
    rt_start(&rt);
    int c = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(write(c, "over ipv6", 9), 9);
    struct sockaddr_in6 peer;
    len = sizeof(peer);
    int s = accept4(tfd, (struct sockaddr *)&peer, &len, SOCK_CLOEXEC);
    ck_assert_int_ge(s, 0);
    ck_assert_int_eq(memcmp(&peer.sin6_addr, &in6addr_loopback, sizeof(peer.sin6_addr)), 0);
    char buf[16] = {0};
    ck_assert_int_eq(read(s, buf, sizeof(buf)), 9);
    ck_assert_str_eq(buf, "over ipv6");
    ck_assert_int_eq(write(s, "back", 4), 4);
    ck_assert_int_eq(read(c, buf, sizeof(buf)), 4);
    ck_assert_int_eq(memcmp(buf, "back", 4), 0);
    close(s);
    close(c);
    close(tfd);
    rt_free(&rt);
}
END_TEST

/* A connect to a local port nobody listens on can succeed against itself, when the kernel picks
 * that port as the source (simultaneous open): the relay must see such a target as down. */
START_TEST(self_connection_is_seen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0); /* to itself */
    ck_assert(endpoint_socket_is_self_connected(fd));
    close(fd);
    uint16_t port;
    int l = tcp_listener(&port), c = tcp_connect(port);
    ck_assert(!endpoint_socket_is_self_connected(c));
    close(c);
    close(l);
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Suite *s = suite_create("relay");
    TCase *t = tcase_create("relay");
    tcase_set_timeout(t, 60);
    tcase_add_loop_test(t, bulk_64mib_arrives_intact, 0, 3);
    tcase_add_test(t, rings_stay_within_the_budget_and_are_released);
    tcase_add_test(t, half_close_keeps_the_other_direction);
    tcase_add_test(t, slow_reader_gets_back_pressure);
    tcase_add_test(t, target_down_resets_client_at_once);
    tcase_add_loop_test(t, unix_target_hangup_resets_tcp_client, 0, 4);
    tcase_add_test(t, self_connection_is_seen);
    tcase_add_test(t, connection_limit_refuses_and_recovers);
    tcase_add_test(t, same_fds_after_10000_connections_and_abuse);
    tcase_add_test(t, hybrid_connect_ok_then_data);
    tcase_add_test(t, hybrid_refusal_and_silence_reset_the_client);
    tcase_add_test(t, idle_connections_are_closed);
    tcase_add_test(t, unix_to_unix);
    tcase_add_test(t, ipv6_to_ipv6);
    tcase_add_test(t, out_of_fds_pauses_accept_then_recovers);
    tcase_add_test(t, held_listener_keeps_clients_waiting);
    suite_add_tcase(s, t);
    return run_suite(s);
}
