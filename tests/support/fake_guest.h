/* fake_guest: a hand-made virtio driver for unit tests and fuzzing. A malloc'd buffer plays
 * guest memory behind a one-region vq_mem (guest-physical FG_GPA, VMM-virtual FG_UVA); split
 * rings are laid out in it; helpers write descriptors and avail entries the way a driver does
 * (or any way a hostile one likes) and read back the used ring. Every descriptor slot has its own
 * data buffer, so packets can be posted without bookkeeping. */
#pragma once

#include "vsock/virtqueue.h"
#include "vsock/vsock_pkt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FG_GPA 0x40000000ull
#define FG_UVA 0x7f1200000000ull
#define FG_SLOT_SIZE (VSOCK_PKT_MAX_PAYLOAD + 4096u)

struct fake_guest {
    uint8_t *mem;
    size_t size, brk;
    struct vq_mem table;
};

struct fake_ring {
    struct fake_guest *g;
    struct virtqueue vq;
    uint16_t num;
    uint64_t desc, avail, used; /* guest-physical */
    uint64_t slot;              /* guest-physical address of slot 0's buffer */
    uint16_t avail_idx, used_seen, next_desc;
};

int fg_init(struct fake_guest *g, size_t size);
void fg_free(struct fake_guest *g);
/* Guest-physical address of N fresh bytes (zeroed), aligned to ALIGN. */
uint64_t fg_alloc(struct fake_guest *g, size_t n, size_t align);
void *fg_ptr(struct fake_guest *g, uint64_t gpa);

/* Lays out a ring of NUM entries and sets VQ up as a front-end would (addresses, kick and call
 * eventfds, enabled). */
int fg_ring_init(struct fake_guest *g, struct fake_ring *r, unsigned num, bool indirect);
void fg_ring_free(struct fake_ring *r);
/* Data buffer of descriptor slot I (FG_SLOT_SIZE bytes). */
uint64_t fg_slot(const struct fake_ring *r, uint16_t i);
uint16_t fg_next_desc(struct fake_ring *r);
void fg_desc(struct fake_ring *r, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
             uint16_t next);
/* Writes a descriptor into an indirect table at guest-physical TABLE. */
void fg_desc_at(struct fake_guest *g, uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
                uint16_t flags, uint16_t next);
/* Publishes HEAD in the avail ring. */
void fg_avail(struct fake_ring *r, uint16_t head);
void fg_set_avail_idx(struct fake_ring *r, uint16_t idx);
/* Takes the next used element; false when there is none. */
bool fg_used(struct fake_ring *r, uint32_t *id, uint32_t *len);
/* Number of used elements not yet taken. */
unsigned fg_used_pending(const struct fake_ring *r);

/* Writes H, little-endian, at guest-physical GPA. */
void fg_put_hdr(struct fake_guest *g, uint64_t gpa, const struct vsock_hdr *h);
/* A tx packet as the Linux driver sends it: header descriptor, then a payload descriptor. */
uint16_t fg_tx(struct fake_ring *r, const struct vsock_hdr *h, const void *payload, size_t len);
/* N rx buffers of header + SIZE bytes, as two writable descriptors each. */
void fg_rx_post(struct fake_ring *r, unsigned n, size_t size);
/* The next packet the device put in an rx buffer: payload length, or -1 when there is none. */
int fg_rx_take(struct fake_ring *r, struct vsock_hdr *h, void *payload, size_t cap);
