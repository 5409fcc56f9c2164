#include "vsock/relay.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "common/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/param.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>

enum {
    RING_MIN = 64 * 1024, /* ring classes: 64 KiB, 256 KiB, 1 MiB, 4 MiB */
    RING_CLASSES = 4,
    RING_POOL_MAX = 16, /* per class */
    PIPE_SIZE = 256 * 1024,
    PIPE_POOL_MAX = 64,
    POOL_IDLE_MS = 1000, /* pooled rings and pipes unused this long are released */
    FAIL_LOG_MS = 5000,
    ACCEPT_PAUSE_MS = 100, /* out of fds: how long a listener rests before accepting again */
    QUANTUM = 8,
    ACCEPT_BATCH = 64,
    HYBRID_LINE_MAX = 32,
    MAX_EVENTS = 128
};

enum kind { KIND_LISTENER, KIND_SIDE, KIND_TIMER, KIND_SIGNAL };

struct tag {
    enum kind kind;
};

struct forward {
    struct tag tag;
    int fd;
    struct endpoint target;
    bool paused; /* out of fds: not watched until the relay's accept_resume_ms */
    struct forward *next;
};

/* One direction of a connection: bytes read from SRC wait for DST in a ring buffer, or with
 * relay_options.splice in a pipe. Both are lent from the relay's pools only while they hold data,
 * so an idle connection holds neither. A flow that fills its ring asks for the next size class:
 * bulk transfers move up to 4 MiB per system call, interactive ones stay at 64 KiB. */
struct flow {
    char *ring;
    size_t ring_cap, head; /* the data starts at head and wraps at ring_cap */
    size_t queued;         /* bytes in the ring or the pipe */
    unsigned cls;          /* the ring class this flow asks for */
    int pr, pw;            /* pipe, with use_pipe */
    bool use_pipe, src_eof, shut_done;
};

struct conn;
struct side {
    struct tag tag;
    int fd;
    bool readable, writable;
    struct conn *c;
};

enum conn_state { CONN_CONNECTING, CONN_HANDSHAKE, CONN_OPEN };

struct conn {
    struct side client, target;
    struct flow up, down; /* client -> target, target -> client */
    enum conn_state state;
    const struct forward *fwd;
    char line[HYBRID_LINE_MAX];
    size_t line_len;
    uint64_t deadline_ms;
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
    int spare_fd; /* /dev/null, held so that an accepted client can still get its target socket
                   * when the fd limit is reached (then accepting pauses) */
    struct tag timer_tag, signal_tag;
    struct forward *forwards;
    struct conn_list connecting, open, dead;
    struct conn *ready;
    int pool[PIPE_POOL_MAX][2]; /* empty pipes, lent to flows only while they hold data */
    size_t n_pool;
    struct {
        char *free[RING_POOL_MAX];
        size_t n;
    } rings[RING_CLASSES];    /* empty rings, by class */
    size_t ring_bytes;        /* capacity of the rings above class 0, lent or pooled */
    uint64_t pool_used_ms;    /* last time a ring or pipe was taken */
    uint64_t pool_release_ms; /* when unused pooled rings and pipes are released; 0: not due */
    uint64_t timer_armed_ms;  /* 0: not armed */
    uint64_t last_limit_log_ms;
    uint64_t last_fail_log_ms; /* failures to reach a target: one line per FAIL_LOG_MS at most */
    uint64_t accept_resume_ms; /* paused listeners are watched again then; 0: none paused */
    uint64_t last_accept_log_ms;
    uint64_t fails_unlogged;
    struct relay_stats stats;
    bool stop;
};

static uint64_t now_ms(void)
{
    return clock_usec(CLOCK_MONOTONIC) / 1000u;
}

__attribute__((format(printf, 2, 3))) static void relay_log(const struct relay *r, const char *fmt,
                                                            ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ocvm: %s: ", r->o.log_prefix);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
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
    bool pooled = r->n_pool > 0;
    for (unsigned c = 0; c < RING_CLASSES; c++)
        pooled = pooled || r->rings[c].n > 0;
    r->pool_release_ms = pooled ? r->pool_used_ms + POOL_IDLE_MS : 0;
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
    if (f->queued == 0 && r->n_pool < PIPE_POOL_MAX) {
        r->pool[r->n_pool][0] = f->pr;
        r->pool[r->n_pool][1] = f->pw;
        r->n_pool++;
    } else {
        close(f->pr);
        close(f->pw);
    }
    f->pr = f->pw = -1;
}

static int flow_get_pipe(struct relay *r, struct flow *f)
{
    r->pool_used_ms = now_ms();
    if (r->n_pool > 0) {
        r->n_pool--;
        f->pr = r->pool[r->n_pool][0];
        f->pw = r->pool[r->n_pool][1];
        return 0;
    }
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
        return negative_errno();
    /* bigger than the default 64 KiB: fewer system calls per MiB on bulk transfers */
    (void)fcntl(p[1], F_SETPIPE_SZ, PIPE_SIZE);
    f->pr = p[0];
    f->pw = p[1];
    return 0;
}

static unsigned ring_class(size_t cap)
{
    unsigned c = 0;
    while ((size_t)RING_MIN << (2 * c) < cap)
        c++;
    return c;
}

/* Rings are mapped, not malloc'ed: a freed ring goes back to the system at once (glibc would
 * raise its mmap threshold after the first free and keep the next ones in the heap). */
static char *ring_alloc(size_t cap)
{
    void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void ring_release(struct relay *r, char *ring, size_t cap)
{
    if (cap > RING_MIN)
        r->ring_bytes -= cap;
    munmap(ring, cap);
}

/* Gives F's ring back to the pool once it is empty (or frees it, on a connection's end). */
static void flow_put_ring(struct relay *r, struct flow *f)
{
    if (!f->ring)
        return;
    unsigned c = ring_class(f->ring_cap);
    if (f->queued == 0 && r->rings[c].n < RING_POOL_MAX)
        r->rings[c].free[r->rings[c].n++] = f->ring;
    else
        ring_release(r, f->ring, f->ring_cap);
    f->ring = NULL;
    f->ring_cap = f->head = 0;
}

/* The biggest ring up to F's class that the pool or the budget gives (64 KiB always). */
static int flow_get_ring(struct relay *r, struct flow *f)
{
    r->pool_used_ms = now_ms();
    for (unsigned c = f->cls + 1; c-- > 0;) {
        size_t cap = (size_t)RING_MIN << (2 * c);
        if (r->rings[c].n > 0) {
            f->ring = r->rings[c].free[--r->rings[c].n];
        } else if (c == 0 || r->ring_bytes + cap <= r->o.ring_budget) {
            if (!(f->ring = ring_alloc(cap)))
                continue;
            if (c > 0)
                r->ring_bytes += cap;
        } else {
            continue;
        }
        f->ring_cap = cap;
        f->head = 0;
        return 0;
    }
    return -ENOMEM;
}

static void pools_release(struct relay *r)
{
    while (r->n_pool > 0) {
        r->n_pool--;
        close(r->pool[r->n_pool][0]);
        close(r->pool[r->n_pool][1]);
    }
    for (unsigned c = 0; c < RING_CLASSES; c++)
        while (r->rings[c].n > 0)
            ring_release(r, r->rings[c].free[--r->rings[c].n], (size_t)RING_MIN << (2 * c));
}

static void flow_free(struct relay *r, struct flow *f)
{
    flow_put_pipe(r, f);
    flow_put_ring(r, f);
}

/* Ends C now (at the end of this dispatch its memory goes). RESET: abortive close (RST). */
static void conn_kill(struct relay *r, struct conn *c, bool reset)
{
    if (c->dead)
        return;
    if (reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->client.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
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

/* Reads from SRC into the free part of F's ring (one or two segments). */
static ssize_t ring_fill(struct relay *r, struct flow *f, struct side *src)
{
    if (f->ring && f->queued == 0 && ring_class(f->ring_cap) < f->cls)
        flow_put_ring(r, f); /* empty, and the flow has earned a bigger one */
    if (!f->ring) {
        int e = flow_get_ring(r, f);
        if (e < 0) {
            errno = -e;
            return -1;
        }
    }
    if (f->queued == 0)
        f->head = 0; /* one segment for the read */
    size_t tail = (f->head + f->queued) % f->ring_cap, space = f->ring_cap - f->queued;
    struct iovec iov[2] = {{f->ring + tail, MIN(space, f->ring_cap - tail)}, {f->ring, 0}};
    iov[1].iov_len = space - iov[0].iov_len;
    ssize_t n = readv(src->fd, iov, iov[1].iov_len ? 2 : 1);
    if (n > 0 && (size_t)n == space && f->cls < RING_CLASSES - 1)
        f->cls++; /* the source had more than the ring could take */
    return n;
}

/* Sends the ring's data (one or two segments) to DST. */
static ssize_t ring_drain(struct flow *f, struct side *dst)
{
    size_t first = MIN(f->queued, f->ring_cap - f->head);
    struct iovec iov[2] = {{f->ring + f->head, first}, {f->ring, f->queued - first}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = iov[1].iov_len ? 2 : 1};
    ssize_t n = sendmsg(dst->fd, &mh, MSG_NOSIGNAL);
    if (n > 0)
        f->head = (f->head + (size_t)n) % f->ring_cap;
    return n;
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
        size_t room = f->use_pipe ? PIPE_SIZE / 2 : (f->ring ? f->ring_cap / 2 : 0);
        if (f->queued <= room && !f->src_eof && src->readable) {
            ssize_t n;
            if (f->use_pipe) {
                if (f->pr < 0) {
                    int e = flow_get_pipe(r, f);
                    if (e < 0)
                        return e;
                }
                n = splice(src->fd, NULL, f->pw, NULL, PIPE_SIZE - f->queued,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (n < 0 && errno == EINVAL && f->queued == 0) {
                    f->use_pipe = false; /* this socket type cannot splice: copy instead */
                    flow_put_pipe(r, f);
                    continue;
                }
            } else {
                n = ring_fill(r, f, src);
            }
            if (n > 0) {
                f->queued += (size_t)n;
                progress = true;
            } else if (n == 0) {
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
                n = ring_drain(f, dst);
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
            flow_put_ring(r, f);
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

/* ---- endpoints ---- */

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

int relay_connect_endpoint(const struct endpoint *e, int *ret_fd, bool *in_progress)
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

int relay_listen_endpoint(const struct endpoint *e, int *ret_fd)
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
    if (!r->o.log_prefix)
        r->o.log_prefix = "relay";
    if (!r->o.ring_budget)
        r->o.ring_budget = 64u << 20;
    r->timer_tag.kind = KIND_TIMER;
    r->signal_tag.kind = KIND_SIGNAL;
    r->sigfd = -1;
    r->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
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
    pools_release(r);
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

int relay_add_forward(struct relay *r, const struct endpoint *listen, const struct endpoint *target)
{
    int fd;
    int e = relay_listen_endpoint(listen, &fd);
    return e < 0 ? e : relay_add_forward_fd(r, fd, target);
}

int relay_fd(const struct relay *r)
{
    return r->epfd;
}

void relay_get_stats(const struct relay *r, struct relay_stats *ret)
{
    *ret = r->stats;
    ret->ring_bytes = r->ring_bytes;
}

static void conn_open(struct relay *r, struct conn *c)
{
    list_remove(&r->connecting, c);
    c->state = CONN_OPEN;
    c->deadline_ms = now_ms() + r->o.idle_timeout_ms;
    list_append(&r->open, c);
    conn_pump(r, c);
}

/* Rate limit for a log line: true (and *LAST_MS set to now) when none was written in the last
 * EVERY_MS. */
static bool log_due(uint64_t *last_ms, uint64_t every_ms)
{
    uint64_t now = now_ms();
    if (*last_ms && now - *last_ms < every_ms)
        return false;
    *last_ms = now;
    return true;
}

static void conn_fail(struct relay *r, struct conn *c, int err, const char *what)
{
    r->stats.connect_failed++;
    /* one line, then silence for a while: a target that is down (a VM restarting) must not
     * flood the log with a line per client */
    if (!log_due(&r->last_fail_log_ms, FAIL_LOG_MS)) {
        r->fails_unlogged++;
    } else {
        char target[192];
        endpoint_format(&c->fwd->target, target, sizeof(target));
        if (r->fails_unlogged)
            relay_log(r, "cannot reach %s: %s: %s (and %" PRIu64 " more clients turned away)",
                      target, what, strerror(-err), r->fails_unlogged);
        else
            relay_log(r, "cannot reach %s: %s: %s", target, what, strerror(-err));
        r->fails_unlogged = 0;
    }
    conn_kill(r, c, true); /* the client gets a reset at once, never a hang */
}

/* Hybrid vsock: after connecting, send CONNECT PORT and read back "OK N\n". */
static void conn_handshake(struct relay *r, struct conn *c)
{
    while (c->line_len < sizeof(c->line)) {
        ssize_t n = recv(c->target.fd, c->line + c->line_len, 1, 0);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            conn_fail(r, c, n < 0 ? -errno : -ECONNRESET, "hybrid handshake");
            return;
        }
        if (c->line[c->line_len++] == '\n')
            break;
    }
    if (c->line_len < 5 || c->line[c->line_len - 1] != '\n' || strncmp(c->line, "OK ", 3) != 0) {
        conn_fail(r, c, -EPROTO, "hybrid handshake");
        return;
    }
    for (size_t i = 3; i + 1 < c->line_len; i++)
        if (c->line[i] < '0' || c->line[i] > '9') {
            conn_fail(r, c, -EPROTO, "hybrid handshake");
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
    if (c->fwd->target.kind != ENDPOINT_HYBRID) {
        conn_open(r, c);
        return;
    }
    char req[32];
    int n = snprintf(req, sizeof(req), "CONNECT %u\n", c->fwd->target.port);
    if (send(c->target.fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        conn_fail(r, c, -EIO, "hybrid CONNECT");
        return;
    }
    c->state = CONN_HANDSHAKE;
    conn_handshake(r, c);
}

static void pause_listener(struct relay *r, struct forward *f, int err);

static void accept_one(struct relay *r, struct forward *f, int cfd)
{
    if (r->stats.open >= r->o.max_connections) {
        r->stats.refused_limit++;
        if (log_due(&r->last_limit_log_ms, 1000))
            relay_log(r, "connection limit (%zu) reached: refusing new clients",
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
    bool in_progress;
    int e = relay_connect_endpoint(&f->target, &c->target.fd, &in_progress);
    if ((e == -EMFILE || e == -ENFILE) && r->spare_fd >= 0) {
        /* the client is in: give it the spare fd's place, and accept no more for now */
        close(r->spare_fd);
        r->spare_fd = -1;
        e = relay_connect_endpoint(&f->target, &c->target.fd, &in_progress);
        pause_listener(r, f, EMFILE);
    }
    if (e == 0)
        e = watch(r, c->target.fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &c->target.tag);
    if (e == 0)
        e = watch(r, cfd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &c->client.tag);
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
    if (log_due(&r->last_accept_log_ms, FAIL_LOG_MS))
        relay_log(r, "cannot accept clients: %s (%" PRIu64 " connections open); retrying",
                  strerror(err), r->stats.open);
}

static void resume_listeners(struct relay *r)
{
    r->accept_resume_ms = 0;
    if (r->spare_fd < 0 && (r->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        r->accept_resume_ms = now_ms() + ACCEPT_PAUSE_MS; /* still no fd to spare */
        return;
    }
    for (struct forward *f = r->forwards; f; f = f->next) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &f->tag};
        if (f->paused && epoll_ctl(r->epfd, EPOLL_CTL_MOD, f->fd, &ev) == 0)
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
        pools_release(r);
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

int relay_run(struct relay *r)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
        return negative_errno();
    r->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (r->sigfd < 0)
        return negative_errno();
    int e = watch(r, r->sigfd, EPOLLIN, &r->signal_tag);
    if (e < 0)
        return e;
    signal(SIGPIPE, SIG_IGN);
    while (!r->stop) {
        e = relay_dispatch(r, -1);
        if (e < 0)
            return e;
    }
    return 0;
}
