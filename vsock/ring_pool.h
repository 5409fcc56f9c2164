/* ring_pool: the relay's buffers, lent to a flow only while they hold data, so an idle connection
 * holds none. Rings come in four classes (64 KiB, 256 KiB, 1 MiB, 4 MiB): a flow that fills its
 * ring earns the next one, and the classes above 64 KiB share one byte budget. Empty rings, and
 * the pipes of the splice mode, wait in the pool and go back to the system after a second unused.
 * The pool owns what it holds; a flow owns what it was lent until it puts it back. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum {
    RING_POOL_CLASSES = 4,
    RING_POOL_PER_CLASS = 16,         /* empty rings kept, per class */
    RING_POOL_PIPES = 64,             /* empty pipes kept */
    RING_POOL_PIPE_SIZE = 256 * 1024, /* bigger than the default 64 KiB: fewer calls per MiB */
};

/* A flow's ring: BUF is mapped only while it holds data; CLS, the class the flow has earned,
 * outlives it. */
struct ring {
    char *buf;
    size_t cap, head; /* the data starts at head and wraps at cap */
    unsigned cls;
};

struct ring_pool {
    struct {
        char *free[RING_POOL_PER_CLASS];
        size_t n;
    } rings[RING_POOL_CLASSES];    /* empty rings, by class */
    int pipes[RING_POOL_PIPES][2]; /* empty pipes */
    size_t n_pipes;
    size_t ring_bytes; /* capacity of the rings above class 0, lent or pooled */
    size_t budget;     /* the most ring_bytes may grow to */
    uint64_t used_ms;  /* last time a ring or pipe was taken */
};

void ring_pool_init(struct ring_pool *p, size_t budget);
/* Gives every pooled ring and pipe back to the system; lent ones stay with their flows. */
void ring_pool_release(struct ring_pool *p);
/* When the pool falls due for ring_pool_release (a second after the last take), or 0 while it
 * holds nothing. */
uint64_t ring_pool_idle_deadline_ms(const struct ring_pool *p);

/* Reads from FD into the free part of R, which holds QUEUED bytes, borrowing a ring first if R
 * has none (or is empty and has earned a bigger one). Returns what readv(2) does; -1 with errno
 * ENOMEM when no ring can be had. */
ssize_t ring_pool_fill(struct ring_pool *p, struct ring *r, size_t queued, int fd);
/* Sends the QUEUED bytes of R to FD; returns what sendmsg(2) does. */
ssize_t ring_pool_drain(struct ring *r, size_t queued, int fd);
/* Gives R's ring back: pooled when EMPTY and the pool has room, freed otherwise. */
void ring_pool_put_ring(struct ring_pool *p, struct ring *r, bool empty);

/* An empty non-blocking pipe, from the pool or new. */
int ring_pool_get_pipe(struct ring_pool *p, int *ret_read, int *ret_write);
/* Gives a pipe back: pooled when EMPTY and the pool has room, closed otherwise. */
void ring_pool_put_pipe(struct ring_pool *p, int read_fd, int write_fd, bool empty);
