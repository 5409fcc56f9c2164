/* vsock_table: the device's set of connections. It links every connection (for teardown),
 * hashes the ones the guest knows by (local port, guest port), keeps the round-robin queue of
 * connections that owe the guest a packet, and a bounded queue of RSTs owed to the guest for no
 * live connection. It holds pointers only (links live in struct vsock_conn): the connections
 * belong to vsock_dev. Pure bookkeeping, no I/O. */
#pragma once

#include "vsock/vsock_conn.h"

#include <stdbool.h>
#include <stdint.h>

#define VSOCK_TABLE_BUCKETS 256u
#define VSOCK_TABLE_RST_MAX 256u
#define VSOCK_LOCAL_PORT_FIRST (1u << 30) /* ports of host-initiated connections */

struct vsock_table {
    struct vsock_conn *bucket[VSOCK_TABLE_BUCKETS];
    struct vsock_conn *all;
    struct vsock_conn *pend_head, *pend_tail;
    unsigned n;
    uint32_t next_local_port;
    struct {
        uint32_t local, peer;
    } rst[VSOCK_TABLE_RST_MAX];
    unsigned rst_head, rst_len;
};

void vsock_table_init(struct vsock_table *t);
void vsock_table_add(struct vsock_table *t, struct vsock_conn *c);
/* Unlinks C from everything it is in. */
void vsock_table_remove(struct vsock_table *t, struct vsock_conn *c);
/* Makes C findable by its ports (set them first). */
void vsock_table_hash(struct vsock_table *t, struct vsock_conn *c);
struct vsock_conn *vsock_table_lookup(const struct vsock_table *t, uint32_t local, uint32_t peer);
/* A local port for a new host-initiated connection to guest port PEER, unused with it. */
uint32_t vsock_table_alloc_port(struct vsock_table *t, uint32_t peer);
/* C owes the guest packets WHAT (VSOCK_PEND_*): queued at the tail unless already queued. */
void vsock_table_mark(struct vsock_table *t, struct vsock_conn *c, unsigned what);
void vsock_table_queue(struct vsock_table *t, struct vsock_conn *c);
/* Takes the connection at the head of the queue, or NULL. */
struct vsock_conn *vsock_table_dequeue(struct vsock_table *t);
/* Anything owed to the guest: queued connections or RSTs. */
bool vsock_table_has_work(const struct vsock_table *t);
/* -ENOBUFS when VSOCK_TABLE_RST_MAX are already owed. */
int vsock_table_push_rst(struct vsock_table *t, uint32_t local, uint32_t peer);
bool vsock_table_pop_rst(struct vsock_table *t, uint32_t *local, uint32_t *peer);
void vsock_table_clear_rst(struct vsock_table *t);
