/* The connection set of the vsock device; see vsock_table.h. */
#include "vsock/vsock_table.h"

#include <errno.h>
#include <string.h>

void vsock_table_init(struct vsock_table *t)
{
    memset(t, 0, sizeof(*t));
    t->next_local_port = VSOCK_LOCAL_PORT_FIRST;
}

static unsigned bucket_of(uint32_t local, uint32_t peer)
{
    return (local * 2654435761u ^ peer * 40503u) % VSOCK_TABLE_BUCKETS;
}

void vsock_table_add(struct vsock_table *t, struct vsock_conn *c)
{
    c->aprev = NULL;
    c->anext = t->all;
    if (t->all)
        t->all->aprev = c;
    t->all = c;
    t->n++;
}

static void unhash(struct vsock_table *t, struct vsock_conn *c)
{
    if (!c->hashed)
        return;
    struct vsock_conn **p = &t->bucket[bucket_of(c->local_port, c->peer_port)];
    while (*p && *p != c)
        p = &(*p)->hnext;
    if (*p)
        *p = c->hnext;
    c->hnext = NULL;
    c->hashed = false;
}

static void unqueue(struct vsock_table *t, struct vsock_conn *c)
{
    if (!c->in_pending)
        return;
    if (c->pprev)
        c->pprev->pnext = c->pnext;
    else
        t->pend_head = c->pnext;
    if (c->pnext)
        c->pnext->pprev = c->pprev;
    else
        t->pend_tail = c->pprev;
    c->pnext = c->pprev = NULL;
    c->in_pending = false;
}

void vsock_table_remove(struct vsock_table *t, struct vsock_conn *c)
{
    unhash(t, c);
    unqueue(t, c);
    if (c->aprev)
        c->aprev->anext = c->anext;
    else if (t->all == c)
        t->all = c->anext;
    if (c->anext)
        c->anext->aprev = c->aprev;
    c->anext = c->aprev = NULL;
    t->n--;
}

void vsock_table_hash(struct vsock_table *t, struct vsock_conn *c)
{
    unsigned b = bucket_of(c->local_port, c->peer_port);
    c->hnext = t->bucket[b];
    t->bucket[b] = c;
    c->hashed = true;
}

struct vsock_conn *vsock_table_lookup(const struct vsock_table *t, uint32_t local, uint32_t peer)
{
    for (struct vsock_conn *c = t->bucket[bucket_of(local, peer)]; c; c = c->hnext)
        if (c->local_port == local && c->peer_port == peer)
            return c;
    return NULL;
}

uint32_t vsock_table_alloc_port(struct vsock_table *t, uint32_t peer)
{
    /* Terminates: far fewer connections than ports. */
    for (;;) {
        uint32_t p = t->next_local_port++;
        if (t->next_local_port == UINT32_MAX)
            t->next_local_port = VSOCK_LOCAL_PORT_FIRST;
        if (!vsock_table_lookup(t, p, peer))
            return p;
    }
}

void vsock_table_queue(struct vsock_table *t, struct vsock_conn *c)
{
    if (c->in_pending)
        return;
    c->pprev = t->pend_tail;
    c->pnext = NULL;
    if (t->pend_tail)
        t->pend_tail->pnext = c;
    else
        t->pend_head = c;
    t->pend_tail = c;
    c->in_pending = true;
}

void vsock_table_mark(struct vsock_table *t, struct vsock_conn *c, unsigned what)
{
    c->pending |= what;
    vsock_table_queue(t, c);
}

struct vsock_conn *vsock_table_dequeue(struct vsock_table *t)
{
    struct vsock_conn *c = t->pend_head;
    if (c)
        unqueue(t, c);
    return c;
}

bool vsock_table_has_work(const struct vsock_table *t)
{
    return t->rst_len > 0 || t->pend_head != NULL;
}

int vsock_table_push_rst(struct vsock_table *t, uint32_t local, uint32_t peer)
{
    if (t->rst_len == VSOCK_TABLE_RST_MAX)
        return -ENOBUFS;
    unsigned i = (t->rst_head + t->rst_len++) % VSOCK_TABLE_RST_MAX;
    t->rst[i].local = local;
    t->rst[i].peer = peer;
    return 0;
}

bool vsock_table_pop_rst(struct vsock_table *t, uint32_t *local, uint32_t *peer)
{
    if (t->rst_len == 0)
        return false;
    *local = t->rst[t->rst_head].local;
    *peer = t->rst[t->rst_head].peer;
    t->rst_head = (t->rst_head + 1) % VSOCK_TABLE_RST_MAX;
    t->rst_len--;
    return true;
}

void vsock_table_clear_rst(struct vsock_table *t)
{
    t->rst_head = t->rst_len = 0;
}
