#include "vsock/relay.h"

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "vsock/endpoint_socket.h"
#include "vsock/ring_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

enum {
    FAIL_LOG_MS = 5000,
    ACCEPT_PAUSE_MS = 100, /* out of fds: how long a listener rests before accepting again */
    QUANTUM = 8,
    ACCEPT_BATCH = 64,
    HYBRID_LINE_MAX = 32,
    MAX_EVENTS = 128
};

enum kind { KIND_LISTENER, KIND_SIDE, KIND_TIMER, KIND_SIGNAL, KIND_EXTRA };

struct tag {
    enum kind kind;
};

struct forward {
    struct tag tag;
    int fd;
    struct endpoint target;
    bool paused; /* out of fds: not watched until the relay's accept_resume_ms */
    bool held;   /* relay_hold_listener: not watched until released; clients wait in the backlog */
    struct forward *next;
};

/* One direction of a connection: bytes read from SRC wait for DST in a ring buffer, or with
 * relay_options.splice in a pipe. Both are lent from the relay's ring_pool only while they hold
 * data, so an idle connection holds neither. A flow that fills its ring asks for the next size
 * class: bulk transfers move up to 4 MiB per system call, interactive ones stay at 64 KiB. */
struct flow {
    struct ring ring;
    size_t queued; /* bytes in the ring or the pipe */
    int pr, pw;    /* pipe, with use_pipe */
    bool use_pipe, src_eof, shut_done;
};

/* relay_watch_fd */
struct extra {
    struct tag tag;
    void (*fn)(void *userdata);
    void *userdata;
    struct extra *next;
};

struct conn;
struct side {
    struct tag tag;
    int fd;
    bool readable, writable;
    struct conn *c;
};

/* ASKED: relay_options.connect asked for the target socket, no answer yet */
enum conn_state { CONN_ASKED, CONN_CONNECTING, CONN_HANDSHAKE, CONN_OPEN };

struct conn {
    struct side client, target;
    struct flow up, down; /* client -> target, target -> client */
    enum conn_state state;
    const struct forward *fwd;
    char line[HYBRID_LINE_MAX];
    size_t line_len;
    uint64_t deadline_ms;
    uint64_t token;           /* CONN_ASKED: relay_options.connect's */
    struct conn *prev, *next; /* in connecting or open list, ordered by deadline */
    struct conn *ready_next;  /* in the ready list: more work to do without a new event */
    bool in_ready, dead;
};

struct conn_list {
    struct conn *head, *tail;
};

struct relay {
    struct relay_options o;
    int epfd, timerfd, sigfd;
    int spare_fd; /* an eventfd, held so that an accepted client can still get its target socket
                   * when the fd limit is reached (then accepting pauses) */
    struct tag timer_tag, signal_tag;
    struct forward *forwards;
    struct extra *extras;
    struct conn_list connecting, open, dead;
    struct conn *ready;
    struct ring_pool pool;    /* the rings and pipes lent to flows */
    uint64_t pool_release_ms; /* when unused pooled rings and pipes are released; 0: not due */
    uint64_t timer_armed_ms;  /* 0: not armed */
    struct log_ratelimit limit_log;
    struct log_ratelimit fail_log; /* failures to reach a target: one line per FAIL_LOG_MS */
    uint64_t accept_resume_ms;     /* paused listeners are watched again then; 0: none paused */
    struct log_ratelimit accept_log;
    struct relay_stats stats;
    uint64_t tokens; /* the last relay_options.connect token */
    bool stop;
};

static uint64_t now_ms(void)
{
    return clock_usec(CLOCK_MONOTONIC) / 1000u;
}

/* ---- lists ---- */

static void list_remove(struct conn_list *l, struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (l->head == c)
        l->head = c->next;
    else
        return; /* not in this list */
    if (c->next)
        c->next->prev = c->prev;
    else
        l->tail = c->prev;
    c->prev = c->next = NULL;
}

static void list_append(struct conn_list *l, struct conn *c)
{
    c->prev = l->tail;
    c->next = NULL;
    if (l->tail)
        l->tail->next = c;
    else
        l->head = c;
    l->tail = c;
}

static void arm_timer(struct relay *r)
{
    uint64_t when = 0;
    if (r->connecting.head)
        when = r->connecting.head->deadline_ms;
    if (r->open.head && r->o.idle_timeout_ms && (when == 0 || r->open.head->deadline_ms < when))
        when = r->open.head->deadline_ms;
    /* pools left unused go back to the system: an idle relay holds its listeners alone */
    r->pool_release_ms = ring_pool_idle_deadline_ms(&r->pool);
    if (r->pool_release_ms && (when == 0 || r->pool_release_ms < when))
        when = r->pool_release_ms;
    if (r->accept_resume_ms && (when == 0 || r->accept_resume_ms < when))
        when = r->accept_resume_ms;
    if (when == 0 || (r->timer_armed_ms && r->timer_armed_ms <= when))
        return; /* nothing to time, or an earlier wake-up is already set (it re-arms) */
    uint64_t now = now_ms(), delay = when > now ? when - now : 1;
    struct itimerspec its = {
        .it_value = {.tv_sec = (time_t)(delay / 1000), .tv_nsec = (long)(delay % 1000) * 1000000L}};
    if (timerfd_settime(r->timerfd, 0, &its, NULL) == 0)
        r->timer_armed_ms = when;
}

/* ---- connections ---- */

/* Gives F's pipe back to the pool (only an empty pipe can be shared) or closes it. */
static void flow_put_pipe(struct relay *r, struct flow *f)
{
    if (f->pr < 0)
        return;
    ring_pool_put_pipe(&r->pool, f->pr, f->pw, f->queued == 0);
    f->pr = f->pw = -1;
}

static void flow_free(struct relay *r, struct flow *f)
{
    flow_put_pipe(r, f);
    ring_pool_put_ring(&r->pool, &f->ring, f->queued == 0);
}

/* SO_LINGER 0 on C's sockets (ON), so that closing them sends a reset; or the ordinary close. */
static void set_linger_reset(struct conn *c, bool on)
{
    struct linger lg = {.l_onoff = on, .l_linger = 0};
    setsockopt(c->client.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    if (c->target.fd >= 0)
        setsockopt(c->target.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/* Ends C now (at the end of this dispatch its memory goes). RESET: abortive close (RST) of both
 * sides, so that neither takes a cut stream for a finished one (a no-op on Unix and vsock
 * sockets, which have no RST). */
static void conn_kill(struct relay *r, struct conn *c, bool reset)
{
    if (c->dead)
        return;
    if (reset || r->o.reset_if_killed) /* on, or (an orderly end) off again */
        set_linger_reset(c, reset);
    list_remove(c->state == CONN_OPEN ? &r->open : &r->connecting, c);
    close(c->client.fd);
    if (c->target.fd >= 0)
        close(c->target.fd);
    c->client.fd = c->target.fd = -1;
    flow_free(r, &c->up);
    flow_free(r, &c->down);
    c->dead = true;
    r->stats.open--;
    list_append(&r->dead, c);
}

static void reap(struct relay *r)
{
    struct conn *c;
    while ((c = r->dead.head)) {
        list_remove(&r->dead, c);
        free(c);
    }
}

static void mark_ready(struct relay *r, struct conn *c)
{
    if (c->in_ready || c->dead)
        return;
    c->in_ready = true;
    c->ready_next = r->ready;
    r->ready = c;
}

/* The hybrid vsock socket SRC ended by hanging up altogether, not by a half-close, while the
 * relay still had a direction open towards it: a cut stream (see on_side). on_side sees it when
 * EPOLLHUP comes before the pump reads the end; a pump that is already reading (woken by the
 * last data, or from the ready list) reads the end first, and asks here. A peer's close() makes
 * POLLHUP visible by the time read() returns 0; a half-close never does. */
static bool hybrid_hung_up(const struct side *src)
{
    const struct conn *c = src->c;
    struct pollfd p = {.fd = src->fd};
    return src == &c->target && c->fwd->target.kind == ENDPOINT_HYBRID && !c->up.shut_done &&
           poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
}

/* Moves what it can from SRC to DST through F. Returns 1 if it stopped with work left, 0 when
 * it is waiting for an event, -errno on a connection error. */
static int flow_pump(struct relay *r, struct flow *f, struct side *src, struct side *dst,
                     uint64_t *counter)
{
    for (int i = 0; i < QUANTUM; i++) {
        bool progress = false;
        /* top up while under half full; with a pipe an EAGAIN is then ambiguous (source dry, or
         * a pipe whose slots hold small buffers), which FIONREAD on the source settles */
        size_t room = f->use_pipe ? RING_POOL_PIPE_SIZE / 2 : (f->ring.buf ? f->ring.cap / 2 : 0);
        if (f->queued <= room && !f->src_eof && src->readable) {
            ssize_t n;
            if (f->use_pipe) {
                if (f->pr < 0) {
                    int e = ring_pool_get_pipe(&r->pool, &f->pr, &f->pw);
                    if (e < 0)
                        return e;
                }
                n = splice(src->fd, NULL, f->pw, NULL, RING_POOL_PIPE_SIZE - f->queued,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n < 0 && errno == EINVAL && f->queued == 0) {
                    f->use_pipe = false; /* this socket type cannot splice: copy instead */
                    flow_put_pipe(r, f);
                    continue;
                }
            } else {
                n = ring_pool_fill(&r->pool, &f->ring, f->queued, src->fd);
            }
            if (n > 0) {
                f->queued += (size_t)n;
                progress = true;
            } else if (n == 0) {
                if (hybrid_hung_up(src))
                    return -ECONNRESET; /* a cut stream: conn_pump resets the client */
                f->src_eof = true;
                progress = true;
            } else if (errno == EAGAIN) {
                /* a ring read that found no data proves the source dry; a pipe needs FIONREAD
                 * when it holds data (never a stall on an ET loop) */
                int avail = 1;
                if (!f->use_pipe || f->queued == 0 ||
                    (ioctl(src->fd, FIONREAD, &avail) == 0 && avail == 0))
                    src->readable = false;
            } else if (errno != EINTR) {
                return negative_errno();
            }
        }
        if (f->queued > 0 && dst->writable) {
            ssize_t n;
            if (f->use_pipe)
                n = splice(f->pr, NULL, dst->fd, NULL, f->queued,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            else
                n = ring_pool_drain(&f->ring, f->queued, dst->fd);
            if (n > 0) {
                f->queued -= (size_t)n;
                *counter += (uint64_t)n;
                progress = true;
            } else if (n < 0 && errno == EAGAIN) {
                dst->writable = false;
            } else if (n < 0 && errno != EINTR) {
                return negative_errno();
            }
        }
        if (f->queued == 0 && (!src->readable || f->src_eof)) {
            flow_put_pipe(r, f); /* idle connections hold no pipe and no ring */
            ring_pool_put_ring(&r->pool, &f->ring, f->queued == 0);
        }
        if (f->src_eof && f->queued == 0 && !f->shut_done) {
            f->shut_done = true; /* half-close: the other direction keeps flowing */
            if (shutdown(dst->fd, SHUT_WR) < 0 && errno != ENOTCONN)
                return negative_errno();
        }
        if (!progress)
            return 0;
    }
    return 1;
}

static void conn_pump(struct relay *r, struct conn *c)
{
    if (c->dead || c->state != CONN_OPEN)
        return;
    int a = flow_pump(r, &c->up, &c->client, &c->target, &r->stats.bytes_to_target);
    int b = a < 0 ? 0 : flow_pump(r, &c->down, &c->target, &c->client, &r->stats.bytes_to_client);
    if (a < 0 || b < 0) {
        conn_kill(r, c, true);
        return;
    }
    if (c->up.shut_done && c->down.shut_done) {
        conn_kill(r, c, false);
        return;
    }
    if (r->o.idle_timeout_ms) { /* activity: to the back of the idle queue */
        list_remove(&r->open, c);
        c->deadline_ms = now_ms() + r->o.idle_timeout_ms;
        list_append(&r->open, c);
    }
    if (a > 0 || b > 0)
        mark_ready(r, c);
}

/* ---- relay ---- */

static int watch(struct relay *r, int fd, uint32_t events, struct tag *tag)
{
    struct epoll_event ev = {.events = events, .data.ptr = tag};
    return epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? negative_errno() : 0;
}

int relay_new(const struct relay_options *o, struct relay **ret)
{
    struct relay *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->o = *o;
    if (!r->o.max_connections) {
        /* two sockets per connection: what the fd limit allows, up to 4096 */
        struct rlimit rl;
        r->o.max_connections = 4096;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            (rl.rlim_cur - 64) / 2 < r->o.max_connections)
            r->o.max_connections = rl.rlim_cur > 96 ? (rl.rlim_cur - 64) / 2 : 16;
    }
    if (!r->o.connect_timeout_ms)
        r->o.connect_timeout_ms = 5000;
    if (!r->o.log_stage)
        r->o.log_stage = "relay";
    r->fail_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(FAIL_LOG_MS, 1);
    r->limit_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(1000, 1);
    r->accept_log = (struct log_ratelimit)LOG_RATELIMIT_INIT(FAIL_LOG_MS, 1);
    if (!r->o.ring_budget)
        r->o.ring_budget = 64u << 20;
    ring_pool_init(&r->pool, r->o.ring_budget);
    r->timer_tag.kind = KIND_TIMER;
    r->signal_tag.kind = KIND_SIGNAL;
    r->sigfd = -1;
    r->spare_fd = eventfd(0, EFD_CLOEXEC); /* opens no file: allowed in a sandbox */
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    r->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    int e = 0;
    if (r->epfd < 0 || r->timerfd < 0)
        e = negative_errno();
    else
        e = watch(r, r->timerfd, EPOLLIN, &r->timer_tag);
    if (e < 0) {
        relay_free(r);
        return e;
    }
    *ret = r;
    return 0;
}

void relay_free(struct relay *r)
{
    if (!r)
        return;
    while (r->connecting.head)
        conn_kill(r, r->connecting.head, false);
    while (r->open.head)
        conn_kill(r, r->open.head, false);
    reap(r);
    for (struct forward *f = r->forwards, *next; f; f = next) {
        next = f->next;
        close(f->fd);
        free(f);
    }
    for (struct extra *x = r->extras, *next; x; x = next) {
        next = x->next;
        free(x);
    }
    ring_pool_release(&r->pool);
    if (r->sigfd >= 0)
        close(r->sigfd);
    if (r->spare_fd >= 0)
        close(r->spare_fd);
    if (r->timerfd >= 0)
        close(r->timerfd);
    if (r->epfd >= 0)
        close(r->epfd);
    free(r);
}

int relay_add_forward_fd(struct relay *r, int fd, const struct endpoint *target)
{
    struct forward *f = calloc(1, sizeof(*f));
    if (!f) {
        close(fd);
        return -ENOMEM;
    }
    *f = (struct forward){.tag = {KIND_LISTENER}, .fd = fd, .target = *target, .next = r->forwards};
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int e = watch(r, fd, EPOLLIN, &f->tag);
    if (e < 0) {
        close(fd);
        free(f);
        return e;
    }
    r->forwards = f;
    return 0;
}

int relay_hold_listener(struct relay *r, int fd, bool hold)
{
    struct forward *f = r->forwards;
    while (f && f->fd != fd)
        f = f->next;
    if (!f)
        return -EBADF;
    if (f->held == hold)
        return 0;
    /* a paused listener is watched again by resume_listeners(), which leaves a held one be */
    struct epoll_event ev = {.events = hold || f->paused ? 0 : EPOLLIN, .data.ptr = &f->tag};
    if (epoll_ctl(r->epfd, EPOLL_CTL_MOD, f->fd, &ev) < 0)
        return negative_errno();
    f->held = hold;
    return 0;
}

int relay_add_forward(struct relay *r, const struct endpoint *listen, const struct endpoint *target)
{
    int fd;
    int e = endpoint_socket_listen(listen, &fd);
    return e < 0 ? e : relay_add_forward_fd(r, fd, target);
}

int relay_new_like(const struct relay *r, struct relay **ret)
{
    struct relay *n;
    int e = relay_new(&r->o, &n);
    if (e < 0)
        return e;
    /* the forwards are a list built by prepending: add them back to front to keep their order */
    size_t count = 0;
    for (const struct forward *f = r->forwards; f; f = f->next)
        count++;
    for (size_t i = count; i > 0 && e >= 0; i--) {
        const struct forward *f = r->forwards;
        for (size_t k = 1; k < i; k++)
            f = f->next;
        int fd = fcntl(f->fd, F_DUPFD_CLOEXEC, 3);
        e = fd < 0 ? negative_errno() : relay_add_forward_fd(n, fd, &f->target);
    }
    if (e < 0) {
        relay_free(n);
        return e;
    }
    *ret = n;
    return 0;
}

int relay_watch_fd(struct relay *r, int fd, void (*fn)(void *userdata), void *userdata)
{
    struct extra *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    *x = (struct extra){.tag = {KIND_EXTRA}, .fn = fn, .userdata = userdata, .next = r->extras};
    int e = watch(r, fd, EPOLLIN, &x->tag);
    if (e < 0) {
        free(x);
        return e;
    }
    r->extras = x;
    return 0;
}

int relay_fd(const struct relay *r)
{
    return r->epfd;
}

void relay_get_stats(const struct relay *r, struct relay_stats *ret)
{
    *ret = r->stats;
    ret->ring_bytes = r->pool.ring_bytes;
}

/* A sequence count: odd while the counters change; a reader that saw it change reads again. */
static void publish_stats(struct relay *r)
{
    struct relay_stats_page *p = r->o.publish;
    uint32_t seq = __atomic_load_n(&p->seq, __ATOMIC_RELAXED);
    __atomic_store_n(&p->seq, seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    relay_get_stats(r, &p->stats);
    __atomic_store_n(&p->seq, seq + 2, __ATOMIC_RELEASE);
}

void relay_stats_page_read(const struct relay_stats_page *p, struct relay_stats *ret)
{
    for (unsigned tries = 0;; tries++) {
        uint32_t seq = __atomic_load_n(&p->seq, __ATOMIC_ACQUIRE);
        *ret = p->stats;
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (!(seq & 1) && __atomic_load_n(&p->seq, __ATOMIC_RELAXED) == seq)
            return;
        if (tries > 1000) /* a writer that died mid-write: its last figures, as they are */
            return;
    }
}

static void conn_open(struct relay *r, struct conn *c)
{
    list_remove(&r->connecting, c);
    c->state = CONN_OPEN;
    c->deadline_ms = now_ms() + r->o.idle_timeout_ms;
    list_append(&r->open, c);
    conn_pump(r, c);
}

static void conn_fail(struct relay *r, struct conn *c, int err, const char *what)
{
    r->stats.connect_failed++;
    /* one line, then silence for a while: a target that is down (a VM restarting) must not
     * flood the log with a line per client */
    uint64_t held;
    if (log_ratelimit_pass(&r->fail_log, now_ms(), &held)) {
        char target[192];
        endpoint_format(&c->fwd->target, target, sizeof(target));
        if (held)
            log_warning(r->o.log_stage,
                        "cannot reach %s: %s: %s (and %" PRIu64 " more clients turned away)",
                        target, what, strerror(-err), held);
        else
            log_warning(r->o.log_stage, "cannot reach %s: %s: %s", target, what, strerror(-err));
    }
    conn_kill(r, c, true); /* the client gets a reset at once, never a hang */
}

/* Hybrid vsock: after connecting, send CONNECT PORT and read back "OK N\n". */
static void conn_handshake(struct relay *r, struct conn *c)
{
    int e = endpoint_socket_hybrid_reply(c->target.fd, c->line, sizeof(c->line), &c->line_len);
    if (e == -EAGAIN)
        return;
    if (e < 0) {
        conn_fail(r, c, e, "hybrid handshake");
        return;
    }
    conn_open(r, c);
}

static void conn_connected(struct relay *r, struct conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->target.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
        conn_fail(r, c, err ? -err : negative_errno(), "connect");
        return;
    }
    if (endpoint_socket_is_self_connected(c->target.fd)) { /* nothing listens there */
        conn_fail(r, c, -ECONNREFUSED, "connect");
        return;
    }
    if (c->fwd->target.kind != ENDPOINT_HYBRID) {
        conn_open(r, c);
        return;
    }
    int e = r->o.connect && r->o.connect_sends_hybrid_request
                ? 0
                : endpoint_socket_hybrid_request(c->target.fd, c->fwd->target.port);
    if (e < 0) {
        conn_fail(r, c, e, "hybrid CONNECT");
        return;
    }
    c->state = CONN_HANDSHAKE;
    conn_handshake(r, c);
}

static void pause_listener(struct relay *r, struct forward *f, int err);

/* The target socket's fd is open (connected, or its connect() in progress): both sides are
 * watched, and the first EPOLLOUT settles it (at once when it is). */
static int watch_sides(struct relay *r, struct conn *c)
{
    if (r->o.reset_if_killed) /* both sockets reset if this process dies with them open */
        set_linger_reset(c, true);
    int e = watch(r, c->target.fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &c->target.tag);
    if (e == 0 && c->state == CONN_ASKED) /* the client is watched already */
        c->state = CONN_CONNECTING;
    else if (e == 0)
        e = watch(r, c->client.fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &c->client.tag);
    return e;
}

void relay_connect_done(struct relay *r, uint64_t token, int fd, int error)
{
    struct conn *c = r->connecting.head;
    while (c && !(c->state == CONN_ASKED && c->token == token))
        c = c->next;
    if (!c) { /* its client is gone */
        if (fd >= 0)
            close(fd);
        return;
    }
    if (fd < 0) {
        conn_fail(r, c, error < 0 ? error : -EIO, "connect");
        return;
    }
    c->target.fd = fd;
    int e = watch_sides(r, c);
    if (e < 0)
        conn_fail(r, c, e, "connect");
}

/* relay_options.connect: the client waits, watched, for the answer (relay_connect_done). */
static void ask_target(struct relay *r, struct conn *c)
{
    c->state = CONN_ASKED;
    c->token = ++r->tokens;
    int e = watch(r, c->client.fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &c->client.tag);
    if (e == 0)
        e = r->o.connect(r->o.connect_userdata, &c->fwd->target, c->token);
    if (e < 0)
        conn_fail(r, c, e, "connect");
}

static void accept_one(struct relay *r, struct forward *f, int cfd)
{
    if (r->stats.open >= r->o.max_connections) {
        r->stats.refused_limit++;
        log_ratelimited(&r->limit_log, LOG_WARNING, r->o.log_stage,
                        "connection limit (%zu) reached: refusing new clients",
                        r->o.max_connections);
        close(cfd);
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(cfd);
        return;
    }
    *c = (struct conn){
        .client = {.tag = {KIND_SIDE}, .fd = cfd, .c = c},
        .target = {.tag = {KIND_SIDE}, .fd = -1, .c = c},
        .up = {.pr = -1, .pw = -1, .use_pipe = r->o.splice},
        .down = {.pr = -1, .pw = -1, .use_pipe = r->o.splice},
        .fwd = f,
        .deadline_ms = now_ms() + r->o.connect_timeout_ms,
    };
    r->stats.accepted++;
    r->stats.open++;
    list_append(&r->connecting, c);
    if (r->o.connect) {
        ask_target(r, c);
        return;
    }
    c->state = CONN_CONNECTING;
    bool in_progress;
    int e = endpoint_socket_connect(&f->target, &c->target.fd, &in_progress);
    if ((e == -EMFILE || e == -ENFILE) && r->spare_fd >= 0) {
        /* the client is in: give it the spare fd's place, and accept no more for now */
        close(r->spare_fd);
        r->spare_fd = -1;
        e = endpoint_socket_connect(&f->target, &c->target.fd, &in_progress);
        pause_listener(r, f, EMFILE);
    }
    if (e == 0)
        e = watch_sides(r, c);
    if (e < 0) {
        conn_fail(r, c, e, "connect");
        return;
    }
    if (!in_progress)
        conn_connected(r, c);
}

/* Out of fds (or memory) for accept: a level-triggered listener would wake the loop again at
 * once, so it rests for ACCEPT_PAUSE_MS (the clients wait in the backlog) and the log says so. */
static void pause_listener(struct relay *r, struct forward *f, int err)
{
    struct epoll_event ev = {.events = 0, .data.ptr = &f->tag};
    if (epoll_ctl(r->epfd, EPOLL_CTL_MOD, f->fd, &ev) < 0)
        return;
    f->paused = true;
    r->accept_resume_ms = now_ms() + ACCEPT_PAUSE_MS;
    log_ratelimited(&r->accept_log, LOG_WARNING, r->o.log_stage,
                    "cannot accept clients: %s (%" PRIu64 " connections open); retrying",
                    strerror(err), r->stats.open);
}

static void resume_listeners(struct relay *r)
{
    r->accept_resume_ms = 0;
    if (r->spare_fd < 0 && (r->spare_fd = eventfd(0, EFD_CLOEXEC)) < 0) {
        r->accept_resume_ms = now_ms() + ACCEPT_PAUSE_MS; /* still no fd to spare */
        return;
    }
    for (struct forward *f = r->forwards; f; f = f->next) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &f->tag};
        if (f->paused && (f->held || epoll_ctl(r->epfd, EPOLL_CTL_MOD, f->fd, &ev) == 0))
            f->paused = false;
    }
}

static void on_listener(struct relay *r, struct forward *f)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int cfd = accept4(f->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                pause_listener(r, f, errno);
            return; /* EAGAIN, or a client that left already */
        }
        accept_one(r, f, cfd);
    }
}

static void on_side(struct relay *r, struct side *s, uint32_t events)
{
    struct conn *c = s->c;
    if (c->dead)
        return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        s->readable = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        s->writable = true;
    if (s == &c->target && c->state == CONN_CONNECTING) {
        if (s->writable || (events & (EPOLLERR | EPOLLHUP)))
            conn_connected(r, c);
        return;
    }
    if (s == &c->target && c->state == CONN_HANDSHAKE) {
        if (s->readable)
            conn_handshake(r, c);
        return;
    }
    /* A reset must end the connection even when the relay is not reading from that side (its
     * data waits behind a peer that does not read) and has nothing to write to it. */
    int err = 0;
    socklen_t len = sizeof(err);
    if ((events & EPOLLERR) && getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err) {
        conn_kill(r, c, true);
        return;
    }
    /* The hybrid vsock socket hung up altogether while the relay still had a direction open
     * towards it: the stream was cut, not finished. A Unix peer cannot send a reset, and the
     * vsock backend hangs up like this only when the guest resets the connection or the backend
     * dies (an orderly end comes as a half-close first). Passed on as a FIN, the cut would look
     * like a complete reply: the client gets a reset (and not what the dead side left unread,
     * which reading would pass on with the FIN). Another Unix peer that writes its reply and
     * closes has ended as such services do: a clean end, read to the last byte by conn_pump. */
    const struct flow *towards = s == &c->target ? &c->up : &c->down;
    if ((events & EPOLLHUP) && s == &c->target && c->fwd->target.kind == ENDPOINT_HYBRID &&
        !towards->shut_done) {
        conn_kill(r, c, true);
        return;
    }
    conn_pump(r, c);
}

static void on_timer(struct relay *r)
{
    uint64_t ticks;
    (void)!read(r->timerfd, &ticks, sizeof(ticks));
    r->timer_armed_ms = 0;
    uint64_t now = now_ms();
    struct conn *c;
    while ((c = r->connecting.head) && c->deadline_ms <= now) {
        r->stats.timeouts++;
        conn_fail(r, c, -ETIMEDOUT, "connect");
    }
    while (r->o.idle_timeout_ms && (c = r->open.head) && c->deadline_ms <= now) {
        r->stats.timeouts++;
        conn_kill(r, c, false);
    }
    if (r->pool_release_ms && r->pool_release_ms <= now) {
        ring_pool_release(&r->pool);
        r->pool_release_ms = 0;
    }
    if (r->accept_resume_ms && r->accept_resume_ms <= now)
        resume_listeners(r);
}

int relay_dispatch(struct relay *r, int timeout_ms)
{
    struct epoll_event ev[MAX_EVENTS];
    int n = epoll_wait(r->epfd, ev, MAX_EVENTS, r->ready ? 0 : timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : negative_errno();
    for (int i = 0; i < n; i++) {
        struct tag *t = ev[i].data.ptr;
        switch (t->kind) {
        case KIND_LISTENER:
            on_listener(r, (struct forward *)t);
            break;
        case KIND_SIDE:
            on_side(r, (struct side *)t, ev[i].events);
            break;
        case KIND_TIMER:
            on_timer(r);
            break;
        case KIND_SIGNAL:
            r->stop = true;
            break;
        case KIND_EXTRA: {
            struct extra *x = (struct extra *)t;
            x->fn(x->userdata);
            break;
        }
        }
    }
    /* connections that used their quantum: one more round each, after the new events */
    struct conn *ready = r->ready;
    r->ready = NULL;
    while (ready) {
        struct conn *c = ready;
        ready = c->ready_next;
        c->in_ready = false;
        conn_pump(r, c);
    }
    reap(r);
    arm_timer(r);
    if (r->o.publish)
        publish_stats(r);
    return n;
}

void relay_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    unsigned long nr_open = 0;
    FILE *f = fopen("/proc/sys/fs/nr_open", "re");
    if (f) {
        if (fscanf(f, "%lu", &nr_open) != 1)
            nr_open = 0;
        fclose(f);
    }
    if (geteuid() == 0 && nr_open > rl.rlim_max) {
        struct rlimit big = {.rlim_cur = nr_open, .rlim_max = nr_open};
        if (setrlimit(RLIMIT_NOFILE, &big) == 0)
            return;
    }
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

int relay_prepare_run(struct relay *r)
{
    if (r->sigfd >= 0)
        return 0;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
        return negative_errno();
    int fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0)
        return negative_errno();
    int e = watch(r, fd, EPOLLIN, &r->signal_tag);
    if (e < 0) {
        close(fd);
        return e;
    }
    r->sigfd = fd;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int relay_run(struct relay *r)
{
    int e = relay_prepare_run(r);
    if (e < 0)
        return e;
    while (!r->stop) {
        e = relay_dispatch(r, -1);
        if (e < 0)
            return e;
    }
    return 0;
}
