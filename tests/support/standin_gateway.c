/* standin-gateway: stands in for the OpenClaw gateway in tests and in the demo guest.
 * A single-threaded epoll HTTP/1.1 server (one request per connection, `Connection: close`).
 * Like the real gateway it answers only loopback peers (127.0.0.0/8, ::1, ::ffff:127.x); others
 * get 403. GET /health and GET /readyz (the real gateway's readiness path, which the stand-in
 * is from the start) → {"ok":true,"peer":"ADDR"}; POST /echo streams its body back unchanged
 * (same Content-Length) through one 64 KiB buffer per connection, so an /echo client must read
 * while it sends; anything else 404. Request heads are capped at 8 KiB (431 beyond), malformed
 * ones get 400. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"

#define DEFAULT_LISTEN "127.0.0.1:18789"
#define HEAD_MAX 8192            /* request line + headers */
#define IO_BUF (64 * 1024)       /* echo buffer per connection */
#define CONN_MAX 1024            /* beyond this, new connections are closed at once */
#define IO_BUDGET 16             /* syscalls per connection per wake-up, for fairness */
#define IDLE_TIMEOUT_MS 30000    /* no progress for this long: drop the connection */
#define LINGER_TIMEOUT_MS 2000   /* after the response: wait this long for the peer's EOF */
#define LINGER_MAX (1024 * 1024) /* ... and discard at most this much of what it still sends */
#define CONTENT_LENGTH_MAX (UINT64_C(1) << 40)

enum conn_state {
    CONN_HEAD,    /* reading the request head */
    CONN_ECHO,    /* streaming the /echo body back */
    CONN_RESPOND, /* writing a fixed response */
    CONN_LINGER,  /* response sent, write side shut: draining until the peer closes */
};

struct conn {
    struct conn *prev, *next;
    int fd;
    uint32_t events; /* current epoll interest */
    enum conn_state state;
    bool local;
    char peer[INET6_ADDRSTRLEN];
    uint64_t last_ms;   /* last progress, for the idle sweep */
    uint64_t remaining; /* CONN_ECHO: body bytes still to read; CONN_LINGER: bytes to discard */
    size_t head_len;
    size_t out_off, out_len; /* pending output in buf */
    char head[HEAD_MAX];
    char buf[IO_BUF];
};

struct server {
    int epfd, lfd;
    struct conn *first, *last;
    size_t nconn;
    bool accept_paused; /* out of fds: listener removed from epoll until a connection closes */
};

struct request {
    const char *method, *path; /* NUL-terminated inside conn.head */
    bool has_length, chunked;
    uint64_t length;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- addresses ---------------------------------------------------------------------------- */

/* Parses HOST:PORT or [HOST]:PORT with a literal IPv4 or IPv6 host. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(s, ':'), *h = s;
    size_t hlen;
    char *end;
    unsigned long port;

    if (!colon || colon == s)
        return -EINVAL;
    hlen = (size_t)(colon - s);
    if (s[0] == '[') {
        if (hlen < 3 || s[hlen - 1] != ']')
            return -EINVAL;
        h++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host))
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || !isdigit((unsigned char)colon[1]) || port > 65535)
        return -EINVAL;

    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        *len = sizeof(*sin);
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*sin6);
    } else {
        return -EINVAL;
    }
    return 0;
}

/* Formats the peer and tells whether it is loopback (127/8, ::1, ::ffff:127.0.0.0/104). */
static bool peer_describe(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &sin->sin_addr, out, (socklen_t)outlen);
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, out, (socklen_t)outlen);
        return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && sin6->sin6_addr.s6_addr[12] == 127);
    }
    snprintf(out, outlen, "unknown");
    return false;
}

/* ---- HTTP --------------------------------------------------------------------------------- */

static bool is_tchar(char c)
{
    return isalnum((unsigned char)c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Parses a complete request head (NUL-terminated, its final CRLF CRLF cut to one CRLF) in
 * place. Returns 0, or the HTTP status to answer with. */
static int request_parse(char *head, struct request *req)
{
    char *line = head, *eol, *sp;

    *req = (struct request){0};
    eol = strstr(line, "\r\n");
    *eol = '\0';
    /* METHOD SP TARGET SP HTTP/1.x */
    req->method = line;
    sp = strchr(line, ' ');
    if (!sp || sp == line)
        return 400;
    *sp = '\0';
    for (const char *p = req->method; *p; p++)
        if (!is_tchar(*p))
            return 400;
    req->path = sp + 1;
    sp = strchr(req->path, ' ');
    if (req->path[0] != '/' || !sp)
        return 400;
    *sp = '\0';
    for (const char *p = req->path; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return 400;
    if (strcmp(sp + 1, "HTTP/1.1") != 0 && strcmp(sp + 1, "HTTP/1.0") != 0)
        return 400;
    sp = strchr(req->path, '?'); /* the query plays no part in routing */
    if (sp)
        *sp = '\0';

    for (line = eol + 2; *line; line = eol + 2) {
        char *name = line, *value, *end;

        eol = strstr(line, "\r\n");
        *eol = '\0';
        value = strchr(line, ':');
        if (!value || value == name) /* also rejects obsolete line folding */
            return 400;
        *value++ = '\0';
        for (const char *p = name; *p; p++)
            if (!is_tchar(*p))
                return 400;
        value += strspn(value, " \t");
        end = value + strlen(value);
        while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        for (const char *p = value; *p; p++)
            if (((unsigned char)*p < ' ' && *p != '\t') || *p == 0x7f)
                return 400;

        if (strcasecmp(name, "Content-Length") == 0) {
            uint64_t v = 0;
            if (!*value)
                return 400;
            for (const char *p = value; *p; p++) {
                if (!isdigit((unsigned char)*p) || v > CONTENT_LENGTH_MAX)
                    return 400;
                v = v * 10 + (uint64_t)(*p - '0');
            }
            if (v > CONTENT_LENGTH_MAX || (req->has_length && v != req->length))
                return 400;
            req->has_length = true;
            req->length = v;
        } else if (strcasecmp(name, "Transfer-Encoding") == 0) {
            req->chunked = true;
        }
    }
    if (req->has_length && req->chunked) /* RFC 9112 6.3: a smuggling attempt */
        return 400;
    return 0;
}

static const struct {
    int code;
    const char *reason, *error; /* status line text; "error" in the JSON body */
} statuses[] = {
    {200, "OK", NULL},
    {400, "Bad Request", "bad request"},
    {403, "Forbidden", "non-local peer"},
    {404, "Not Found", "not found"},
    {411, "Length Required", "content-length required"},
    {431, "Request Header Fields Too Large", "request head too large"},
    {501, "Not Implemented", "transfer-encoding not supported"},
};

static size_t status_index(int code)
{
    for (size_t i = 0; i < ELEMENTSOF(statuses); i++)
        if (statuses[i].code == code)
            return i;
    return 1; /* not reached: every code used is in the table */
}

/* Queues a complete response with a small JSON body and moves to CONN_RESPOND. */
static void conn_respond_json(struct conn *c, int status, const char *json)
{
    int n = snprintf(c->buf, sizeof(c->buf),
                     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                     status, statuses[status_index(status)].reason, strlen(json) + 1, json);
    c->out_off = 0;
    c->out_len = n > 0 && (size_t)n < sizeof(c->buf) ? (size_t)n : 0;
    c->state = CONN_RESPOND;
}

static void conn_respond_error(struct conn *c, int status)
{
    char json[128];

    snprintf(json, sizeof(json), "{\"ok\":false,\"error\":\"%s\"}",
             statuses[status_index(status)].error);
    conn_respond_json(c, status, json);
}

/* The head is complete: its first head_end bytes (0: it overflowed HEAD_MAX) are the request
 * head, anything after them is body. Routes the request and queues the answer. */
static void conn_dispatch(struct conn *c, size_t head_end)
{
    struct request req;
    char json[256];
    int status;

    if (!c->local) {
        snprintf(json, sizeof(json), "{\"ok\":false,\"error\":\"non-local peer\",\"peer\":\"%s\"}",
                 c->peer);
        conn_respond_json(c, 403, json);
        return;
    }
    if (head_end == 0) {
        conn_respond_error(c, 431);
        return;
    }
    if (memchr(c->head, '\0', head_end)) {
        conn_respond_error(c, 400);
        return;
    }
    c->head[head_end - 2] = '\0'; /* keep one CRLF so every line ends with one */
    status = request_parse(c->head, &req);
    if (status) {
        conn_respond_error(c, status);
        return;
    }
    if ((strcmp(req.path, "/health") == 0 || strcmp(req.path, "/readyz") == 0) &&
        strcmp(req.method, "GET") == 0) {
        snprintf(json, sizeof(json), "{\"ok\":true,\"peer\":\"%s\"}", c->peer);
        conn_respond_json(c, 200, json);
        return;
    }
    if (strcmp(req.path, "/echo") != 0 || strcmp(req.method, "POST") != 0) {
        conn_respond_error(c, 404);
        return;
    }
    if (req.chunked) {
        conn_respond_error(c, 501);
        return;
    }
    if (!req.has_length) {
        conn_respond_error(c, 411);
        return;
    }
    /* Response head, then whatever part of the body came in with the request head. */
    size_t early = c->head_len - head_end;
    if (early > req.length)
        early = (size_t)req.length; /* a pipelined request after the body: ignored */
    int n = snprintf(c->buf, sizeof(c->buf),
                     "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     "Content-Length: %" PRIu64 "\r\nConnection: close\r\n\r\n",
                     req.length);
    memcpy(c->buf + n, c->head + head_end, early); /* n + HEAD_MAX < IO_BUF */
    c->out_off = 0;
    c->out_len = (size_t)n + early;
    c->remaining = req.length - early;
    c->state = CONN_ECHO;
}

/* ---- connections -------------------------------------------------------------------------- */

static int conn_want(struct server *s, struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};

    if (c->events == events)
        return 0;
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        return negative_errno();
    c->events = events;
    return 0;
}

static void server_listen_resume(struct server *s)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};

    if (s->accept_paused && epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->lfd, &ev) == 0)
        s->accept_paused = false;
}

static void conn_free(struct server *s, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->first = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        s->last = c->prev;
    close(c->fd); /* also removes it from epoll */
    free(c);
    s->nconn--;
    server_listen_resume(s);
}

/* Reads what the current state wants; returns the recv() result. */
static ssize_t conn_recv(struct conn *c)
{
    switch (c->state) {
    case CONN_HEAD:
        return recv(c->fd, c->head + c->head_len, sizeof(c->head) - 1 - c->head_len, 0);
    case CONN_ECHO:
        return recv(c->fd, c->buf, c->remaining < IO_BUF ? (size_t)c->remaining : IO_BUF, 0);
    default:
        return recv(c->fd, c->buf, IO_BUF, 0);
    }
}

/* Takes n > 0 freshly read bytes. Returns 0, or <0 to drop the connection. */
static int conn_consume(struct conn *c, size_t n)
{
    char *end;

    switch (c->state) {
    case CONN_HEAD:
        c->head_len += n;
        c->head[c->head_len] = '\0';
        end = memmem(c->head, c->head_len, "\r\n\r\n", 4);
        if (end)
            conn_dispatch(c, (size_t)(end + 4 - c->head));
        else if (c->head_len == sizeof(c->head) - 1)
            conn_dispatch(c, 0); /* 431, or 403 for a non-local peer */
        return 0;
    case CONN_ECHO:
        c->out_len = n;
        c->remaining -= n;
        return 0;
    case CONN_LINGER:
        if (n >= c->remaining)
            return -EMSGSIZE;
        c->remaining -= n;
        return 0;
    default:
        return 0;
    }
}

/* Does all the I/O that can be done now. Returns 0 to keep the connection, <0 to drop it. */
static int conn_run(struct server *s, struct conn *c)
{
    for (int budget = IO_BUDGET; budget > 0; budget--) {
        ssize_t n;
        int r;

        if (c->out_off < c->out_len) {
            n = send(c->fd, c->buf + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
            if (n < 0 && errno == EAGAIN)
                return conn_want(s, c, EPOLLOUT);
            if (n < 0 && errno != EINTR)
                return negative_errno();
            if (n > 0) {
                c->out_off += (size_t)n;
                c->last_ms = now_ms();
            }
            continue;
        }
        c->out_off = c->out_len = 0;

        if (c->state == CONN_ECHO && c->remaining == 0)
            c->state = CONN_RESPOND; /* body echoed: end like any response */
        if (c->state == CONN_RESPOND) {
            /* Half-close, then read until the peer closes: closing with unread input would
             * send a reset that can destroy the response before the peer reads it. */
            (void)shutdown(c->fd, SHUT_WR);
            c->state = CONN_LINGER;
            c->remaining = LINGER_MAX;
            c->last_ms = now_ms();
        }

        n = conn_recv(c);
        if (n < 0 && errno == EAGAIN)
            return conn_want(s, c, EPOLLIN);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return negative_errno();
        if (n == 0) /* EOF: the normal end in CONN_LINGER, a cut-short request otherwise */
            return -ECONNRESET;
        c->last_ms = now_ms();
        r = conn_consume(c, (size_t)n);
        if (r < 0)
            return r;
    }
    return 0; /* budget spent: level-triggered epoll calls us again */
}

static void server_accept(struct server *s)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        int fd = accept4(s->lfd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct conn *c;

        if (fd < 0) {
            if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) &&
                s->nconn > 0 && epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->lfd, NULL) == 0)
                s->accept_paused = true; /* resumed when a connection closes */
            return;                      /* EAGAIN, or a transient error (ECONNABORTED...) */
        }
        if (s->nconn >= CONN_MAX || !(c = calloc(1, sizeof(*c)))) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->local = peer_describe(&ss, c->peer, sizeof(c->peer));
        c->last_ms = now_ms();
        c->events = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->prev = s->last;
        if (s->last)
            s->last->next = c;
        else
            s->first = c;
        s->last = c;
        s->nconn++;
    }
}

/* Drops connections that made no progress for too long. */
static void server_sweep(struct server *s)
{
    uint64_t now = now_ms();

    for (struct conn *c = s->first, *next; c; c = next) {
        uint64_t limit = c->state == CONN_LINGER ? LINGER_TIMEOUT_MS : IDLE_TIMEOUT_MS;
        next = c->next;
        if (now - c->last_ms > limit)
            conn_free(s, c);
    }
}

static int server_open(struct server *s, const struct sockaddr_storage *ss, socklen_t len)
{
    _cleanup_close_ int lfd = -1, epfd = -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    int one = 1;

    lfd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        return negative_errno();
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(lfd, (const struct sockaddr *)ss, len) < 0 || listen(lfd, SOMAXCONN) < 0)
        return negative_errno();
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0)
        return negative_errno();
    *s = (struct server){.epfd = TAKE_FD(epfd), .lfd = TAKE_FD(lfd)};
    return 0;
}

static int server_run(struct server *s)
{
    uint64_t next_sweep = now_ms() + 1000;

    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(s->epfd, evs, (int)ELEMENTSOF(evs), 1000);

        if (n < 0 && errno != EINTR)
            return negative_errno();
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (!c)
                server_accept(s);
            else if (conn_run(s, c) < 0)
                conn_free(s, c);
        }
        if (now_ms() >= next_sweep) {
            server_sweep(s);
            next_sweep = now_ms() + 1000;
        }
    }
}

int main(int argc, char **argv)
{
    const char *listen_arg = DEFAULT_LISTEN;
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct server s;
    int r;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen_arg = argv[++i];
        } else if (strncmp(argv[i], "--listen=", 9) == 0) {
            listen_arg = argv[i] + 9;
        } else {
            fprintf(stderr, "usage: standin-gateway [--listen HOST:PORT] (default %s)\n",
                    DEFAULT_LISTEN);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }
    if (parse_listen(listen_arg, &ss, &sslen) < 0) {
        fprintf(stderr, "standin-gateway: --listen %s: want IPV4:PORT or [IPV6]:PORT\n",
                listen_arg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Room for CONN_MAX connections whatever the inherited soft limit (often 1024). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < CONN_MAX + 64) {
        rl.rlim_cur = rl.rlim_max < CONN_MAX + 64 ? rl.rlim_max : CONN_MAX + 64;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    r = server_open(&s, &ss, sslen);
    if (r < 0) {
        fprintf(stderr, "standin-gateway: listen on %s: %s\n", listen_arg, strerror(-r));
        return 1;
    }
    fprintf(stderr, "standin-gateway: listening on %s\n", listen_arg);
    r = server_run(&s);
    fprintf(stderr, "standin-gateway: epoll_wait: %s\n", strerror(-r));
    return 1;
}
