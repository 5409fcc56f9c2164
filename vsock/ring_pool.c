#include "vsock/ring_pool.h"

#include "common/clock.h"
#include "common/error.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/param.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum {
    RING_MIN = 64 * 1024, /* ring classes: 64 KiB, 256 KiB, 1 MiB, 4 MiB */
    POOL_IDLE_MS = 1000,  /* pooled rings and pipes unused this long are released */
};

static uint64_t now_ms(void)
{
    return clock_usec(CLOCK_MONOTONIC) / 1000u;
}

void ring_pool_init(struct ring_pool *p, size_t budget)
{
    *p = (struct ring_pool){.budget = budget};
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

static void ring_release(struct ring_pool *p, char *ring, size_t cap)
{
    if (cap > RING_MIN)
        p->ring_bytes -= cap;
    munmap(ring, cap);
}

void ring_pool_put_ring(struct ring_pool *p, struct ring *r, bool empty)
{
    if (!r->buf)
        return;
    unsigned c = ring_class(r->cap);
    if (empty && p->rings[c].n < RING_POOL_PER_CLASS)
        p->rings[c].free[p->rings[c].n++] = r->buf;
    else
        ring_release(p, r->buf, r->cap);
    r->buf = NULL;
    r->cap = r->head = 0;
}

/* The biggest ring up to R's class that the pool or the budget gives (64 KiB always). */
static int ring_get(struct ring_pool *p, struct ring *r)
{
    p->used_ms = now_ms();
    for (unsigned c = r->cls + 1; c-- > 0;) {
        size_t cap = (size_t)RING_MIN << (2 * c);
        if (p->rings[c].n > 0) {
            r->buf = p->rings[c].free[--p->rings[c].n];
        } else if (c == 0 || p->ring_bytes + cap <= p->budget) {
            if (!(r->buf = ring_alloc(cap)))
                continue;
            if (c > 0)
                p->ring_bytes += cap;
        } else {
            continue;
        }
        r->cap = cap;
        r->head = 0;
        return 0;
    }
    return -ENOMEM;
}

ssize_t ring_pool_fill(struct ring_pool *p, struct ring *r, size_t queued, int fd)
{
    if (r->buf && queued == 0 && ring_class(r->cap) < r->cls)
        ring_pool_put_ring(p, r, true); /* empty, and the flow has earned a bigger one */
    if (!r->buf) {
        int e = ring_get(p, r);
        if (e < 0) {
            errno = -e;
            return -1;
        }
    }
    if (queued == 0)
        r->head = 0; /* one segment for the read */
    size_t tail = (r->head + queued) % r->cap, space = r->cap - queued;
    struct iovec iov[2] = {{r->buf + tail, MIN(space, r->cap - tail)}, {r->buf, 0}};
    iov[1].iov_len = space - iov[0].iov_len;
    ssize_t n = readv(fd, iov, iov[1].iov_len ? 2 : 1);
    if (n > 0 && (size_t)n == space && r->cls < RING_POOL_CLASSES - 1)
        r->cls++; /* the source had more than the ring could take */
    return n;
}

ssize_t ring_pool_drain(struct ring *r, size_t queued, int fd)
{
    size_t first = MIN(queued, r->cap - r->head);
    struct iovec iov[2] = {{r->buf + r->head, first}, {r->buf, queued - first}};
    /* writev, not sendmsg: a sandboxed relay may not send fds (SIGPIPE is ignored, relay.h) */
    ssize_t n = writev(fd, iov, iov[1].iov_len ? 2 : 1);
    if (n > 0)
        r->head = (r->head + (size_t)n) % r->cap;
    return n;
}

int ring_pool_get_pipe(struct ring_pool *p, int *ret_read, int *ret_write)
{
    p->used_ms = now_ms();
    if (p->n_pipes > 0) {
        p->n_pipes--;
        *ret_read = p->pipes[p->n_pipes][0];
        *ret_write = p->pipes[p->n_pipes][1];
        return 0;
    }
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0)
        return negative_errno();
    (void)fcntl(fds[1], F_SETPIPE_SZ, RING_POOL_PIPE_SIZE);
    *ret_read = fds[0];
    *ret_write = fds[1];
    return 0;
}

void ring_pool_put_pipe(struct ring_pool *p, int read_fd, int write_fd, bool empty)
{
    /* only an empty pipe can be shared */
    if (empty && p->n_pipes < RING_POOL_PIPES) {
        p->pipes[p->n_pipes][0] = read_fd;
        p->pipes[p->n_pipes][1] = write_fd;
        p->n_pipes++;
    } else {
        close(read_fd);
        close(write_fd);
    }
}

void ring_pool_release(struct ring_pool *p)
{
    while (p->n_pipes > 0) {
        p->n_pipes--;
        close(p->pipes[p->n_pipes][0]);
        close(p->pipes[p->n_pipes][1]);
    }
    for (unsigned c = 0; c < RING_POOL_CLASSES; c++)
        while (p->rings[c].n > 0)
            ring_release(p, p->rings[c].free[--p->rings[c].n], (size_t)RING_MIN << (2 * c));
}

uint64_t ring_pool_idle_deadline_ms(const struct ring_pool *p)
{
    bool pooled = p->n_pipes > 0;
    for (unsigned c = 0; c < RING_POOL_CLASSES; c++)
        pooled = pooled || p->rings[c].n > 0;
    return pooled ? p->used_ms + POOL_IDLE_MS : 0;
}
