/* relay_load: the load generator and server for bench/relay. Not part of ocvm.
 *   relay_load serve PORT                 epoll server: first byte of a connection picks the mode
 *                                         ('B' discard + 8-byte word digest at EOF, 'F' the same
 *                                         with a byte-at-a-time digest, 'P' echo, 'C' one byte
 *                                         then close, 'H' never read, close when the peer goes)
 *   relay_load bulk PORT MIB [bytewise]   send MIB MiB, print MiB/s; checks the digest. bytewise:
 *                                         the server digests byte by byte (a peer that works on
 *                                         every byte, like a real service, instead of memcpy speed)
 *   relay_load pingpong PORT N            N one-byte round trips; prints p50 and p99 in us
 *   relay_load connrate PORT CONC TOTAL   TOTAL connect+byte+close with CONC in flight; conns/s
 *   relay_load idle PORT N                open N echo connections, print "ready", hold until stdin
 * EOF
 *   relay_load abuse PORT N               N clients that vanish with a reset mid-transfer: half
 *                                         to a server that never reads (after filling what
 *                                         buffers take), half in the middle of a digest
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A digest cheap enough not to be the bottleneck (8 bytes per multiply): the stream is taken
 * as 64-bit little-endian words; a partial word waits in *carry until it is complete. */
struct digest {
    uint64_t h;
    unsigned char carry[8];
    size_t n_carry;
};

static void digest_init(struct digest *d)
{
    *d = (struct digest){.h = 0xcbf29ce484222325ull};
}

static uint64_t fnv_bytes(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static void digest_update(struct digest *d, const unsigned char *p, size_t n)
{
    while (n > 0 && d->n_carry > 0 && d->n_carry < 8) {
        d->carry[d->n_carry++] = *p++;
        n--;
        if (d->n_carry == 8) {
            uint64_t w;
            memcpy(&w, d->carry, 8);
            d->h = (d->h ^ w) * 0x100000001b3ull;
            d->n_carry = 0;
        }
    }
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        d->h = (d->h ^ w) * 0x100000001b3ull;
    }
    memcpy(d->carry, p, n);
    d->n_carry += n;
}

static uint64_t digest_final(struct digest *d)
{
    for (size_t i = 0; i < d->n_carry; i++)
        d->h = (d->h ^ d->carry[i]) * 0x100000001b3ull;
    return d->h;
}

static int connect_port(int port, int nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        perror("connect");
        exit(1);
    }
    return fd;
}

struct sconn {
    int fd;
    char mode;
    struct digest d;
};

static int serve(int port)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 4096) < 0) {
        perror("serve");
        return 1;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    static unsigned char buf[1 << 18];
    for (;;) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            struct sconn *c = evs[i].data.ptr;
            if (c && c->mode == 'H') { /* never read: only notice the peer going */
                if (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                    close(c->fd);
                    free(c);
                }
                continue;
            }
            if (!c) {
                int fd;
                while ((fd = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
                    c = calloc(1, sizeof(*c));
                    c->fd = fd;
                    digest_init(&c->d);
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    struct epoll_event e2 = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e2);
                }
                continue;
            }
            ssize_t r = read(c->fd, buf, sizeof(buf));
            if (r < 0 && errno == EAGAIN)
                continue;
            size_t off = 0;
            if (r > 0 && !c->mode) {
                c->mode = (char)buf[0];
                off = 1;
                if (c->mode == 'C') {
                    (void)!write(c->fd, "c", 1);
                    r = 0;
                } else if (c->mode == 'H') {
                    struct epoll_event e2 = {.events = EPOLLRDHUP | EPOLLET, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e2);
                    continue;
                }
            }
            if (r <= 0) {
                if (c->mode == 'B' || c->mode == 'F') {
                    uint64_t h = c->mode == 'B' ? digest_final(&c->d) : c->d.h;
                    (void)!write(c->fd, &h, sizeof(h));
                }
                close(c->fd);
                free(c);
                continue;
            }
            if (c->mode == 'B')
                digest_update(&c->d, buf + off, (size_t)r - off);
            else if (c->mode == 'F')
                c->d.h = fnv_bytes(c->d.h, buf + off, (size_t)r - off);
            else if (c->mode == 'P' && (size_t)r > off)
                (void)!write(c->fd, buf + off, (size_t)r - off);
        }
    }
}

static int bulk(int port, long mib, bool bytewise)
{
    int fd = connect_port(port, 0);
    static unsigned char buf[1 << 20];
    uint64_t x = 88172645463325252ull;
    struct digest d;
    digest_init(&d);
    for (size_t i = 0; i < sizeof(buf); i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(buf + i, &x, 8);
    }
    uint64_t h = 0xcbf29ce484222325ull;
    for (long i = 0; i < mib; i++) /* the digest of MIB copies of the same random MiB */
        if (bytewise)
            h = fnv_bytes(h, buf, sizeof(buf));
        else
            digest_update(&d, buf, sizeof(buf));
    if (!bytewise)
        h = digest_final(&d);
    double t0 = now_s();
    (void)!write(fd, bytewise ? "F" : "B", 1);
    for (long i = 0; i < mib; i++) {
        size_t off = 0;
        while (off < sizeof(buf)) {
            ssize_t n = write(fd, buf + off, sizeof(buf) - off);
            if (n <= 0) {
                perror("bulk write");
                return 1;
            }
            off += (size_t)n;
        }
    }
    shutdown(fd, SHUT_WR);
    uint64_t got = 0;
    if (read(fd, &got, sizeof(got)) != sizeof(got) || got != h) {
        fprintf(stderr, "bulk: digest mismatch: data corrupted\n");
        return 1;
    }
    double dt = now_s() - t0;
    printf("%.1f\n", (double)mib / dt);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int pingpong(int port, long n)
{
    int fd = connect_port(port, 0);
    (void)!write(fd, "P", 1);
    double *t = calloc((size_t)n, sizeof(double));
    char c = 'x';
    for (long i = 0; i < n; i++) {
        double t0 = now_s();
        if (write(fd, &c, 1) != 1 || read(fd, &c, 1) != 1) {
            perror("pingpong");
            return 1;
        }
        t[i] = (now_s() - t0) * 1e6;
    }
    qsort(t, (size_t)n, sizeof(double), cmp_double);
    printf("%.1f %.1f\n", t[n / 2], t[n * 99 / 100]);
    return 0;
}

static int connrate(int port, int conc, long total)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    long started = 0, done = 0, failed = 0;
    double t0 = now_s();
    int inflight = 0;
    while (done < total) {
        while (inflight < conc && started < total) {
            int fd = connect_port(port, 1);
            struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            started++;
            inflight++;
        }
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 10000);
        if (n == 0) {
            fprintf(stderr, "connrate: stalled\n");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (evs[i].events & EPOLLOUT) {
                if (write(fd, "C", 1) == 1) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
                    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                    continue;
                }
            } else {
                char c;
                if (read(fd, &c, 1) != 1)
                    failed++;
            }
            close(fd);
            inflight--;
            done++;
        }
    }
    double dt = now_s() - t0;
    if (failed)
        fprintf(stderr, "connrate: %ld of %ld failed\n", failed, total);
    printf("%.0f\n", (double)total / dt);
    return failed ? 1 : 0;
}

static int idle(int port, long n)
{
    for (long i = 0; i < n; i++) {
        int fd = connect_port(port, 0);
        char c = 'i';
        if (write(fd, "Pi", 2) != 2 || read(fd, &c, 1) != 1) {
            fprintf(stderr, "idle: connection %ld failed\n", i);
            return 1;
        }
    }
    printf("ready\n");
    fflush(stdout);
    char buf[16];
    while (read(0, buf, sizeof(buf)) > 0)
        ;
    return 0;
}

static int abuse(int port, long n)
{
    static unsigned char buf[1 << 20];
    struct linger rst = {.l_onoff = 1, .l_linger = 0};
    for (long i = 0; i < n; i++) {
        int fd = connect_port(port, 0);
        buf[0] = i % 2 ? 'H' : 'B';
        if (i % 2) { /* fill what the relay and the kernel take, then vanish */
            fcntl(fd, F_SETFL, O_NONBLOCK);
            for (int k = 0; k < 64 && send(fd, buf, sizeof(buf), MSG_NOSIGNAL) > 0; k++)
                ;
        } else { /* vanish halfway through a transfer */
            (void)!send(fd, buf, sizeof(buf) / 4, MSG_NOSIGNAL);
        }
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
        close(fd);
    }
    printf("%ld\n", n);
    return 0;
}

int main(int argc, char **argv)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (argc == 3 && !strcmp(argv[1], "serve"))
        return serve(atoi(argv[2]));
    if ((argc == 4 || argc == 5) && !strcmp(argv[1], "bulk"))
        return bulk(atoi(argv[2]), atol(argv[3]), argc == 5 && !strcmp(argv[4], "bytewise"));
    if (argc == 4 && !strcmp(argv[1], "pingpong"))
        return pingpong(atoi(argv[2]), atol(argv[3]));
    if (argc == 5 && !strcmp(argv[1], "connrate"))
        return connrate(atoi(argv[2]), atoi(argv[3]), atol(argv[4]));
    if (argc == 4 && !strcmp(argv[1], "idle"))
        return idle(atoi(argv[2]), atol(argv[3]));
    if (argc == 4 && !strcmp(argv[1], "abuse"))
        return abuse(atoi(argv[2]), atol(argv[3]));
    fprintf(stderr, "usage: see the top of bench/relay_load.c\n");
    return 2;
}
