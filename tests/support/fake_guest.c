/* A hand-made virtio driver for the tests; see fake_guest.h. */
#include "tests/support/fake_guest.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

int fg_init(struct fake_guest *g, size_t size)
{
    memset(g, 0, sizeof(*g));
    g->mem = aligned_alloc(4096, size);
    if (!g->mem)
        return -ENOMEM;
    memset(g->mem, 0, size);
    g->size = size;
    return vq_mem_add_host(&g->table, FG_GPA, FG_UVA, size, g->mem);
}

void fg_free(struct fake_guest *g)
{
    free(g->mem);
    memset(g, 0, sizeof(*g));
}

uint64_t fg_alloc(struct fake_guest *g, size_t n, size_t align)
{
    size_t at = (g->brk + align - 1) / align * align;
    if (at > g->size || n > g->size - at)
        abort();
    g->brk = at + n;
    memset(g->mem + at, 0, n);
    return FG_GPA + at;
}

void *fg_ptr(struct fake_guest *g, uint64_t gpa)
{
    return g->mem + (gpa - FG_GPA);
}

int fg_ring_init(struct fake_guest *g, struct fake_ring *r, unsigned num, bool indirect)
{
    memset(r, 0, sizeof(*r));
    r->g = g;
    r->num = (uint16_t)num;
    r->desc = fg_alloc(g, 16u * num, 16);
    r->avail = fg_alloc(g, 6u + 2u * num, 2);
    r->used = fg_alloc(g, 6u + 8u * num, 4);
    r->slot = fg_alloc(g, (size_t)FG_SLOT_SIZE * num, 64);
    virtqueue_init(&r->vq);
    int k = virtqueue_set_num(&r->vq, num);
    if (k < 0)
        return k;
    virtqueue_set_addr(&r->vq, r->desc - FG_GPA + FG_UVA, r->avail - FG_GPA + FG_UVA,
                       r->used - FG_GPA + FG_UVA);
    k = virtqueue_map(&r->vq, &g->table);
    if (k < 0)
        return k;
    virtqueue_set_base(&r->vq, 0);
    virtqueue_set_kick(&r->vq, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    virtqueue_set_call(&r->vq, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    r->vq.indirect = indirect;
    r->vq.enabled = true;
    return 0;
}

void fg_ring_free(struct fake_ring *r)
{
    virtqueue_reset(&r->vq);
}

uint64_t fg_slot(const struct fake_ring *r, uint16_t i)
{
    return r->slot + (uint64_t)i * FG_SLOT_SIZE;
}

uint16_t fg_next_desc(struct fake_ring *r)
{
    uint16_t i = r->next_desc;
    r->next_desc = (uint16_t)((r->next_desc + 1) % r->num);
    return i;
}

void fg_desc_at(struct fake_guest *g, uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
                uint16_t flags, uint16_t next)
{
    struct vring_desc d = {htole64(addr), htole32(len), htole16(flags), htole16(next)};
    memcpy(fg_ptr(g, table + 16u * i), &d, sizeof(d));
}

void fg_desc(struct fake_ring *r, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
             uint16_t next)
{
    fg_desc_at(r->g, r->desc, i, addr, len, flags, next);
}

void fg_set_avail_idx(struct fake_ring *r, uint16_t idx)
{
    uint16_t v = htole16(idx);
    __atomic_store_n((uint16_t *)fg_ptr(r->g, r->avail + 2), v, __ATOMIC_RELEASE);
}

void fg_avail(struct fake_ring *r, uint16_t head)
{
    uint16_t v = htole16(head);
    memcpy(fg_ptr(r->g, r->avail + 4u + 2u * (r->avail_idx % r->num)), &v, 2);
    r->avail_idx++;
    fg_set_avail_idx(r, r->avail_idx);
}

unsigned fg_used_pending(const struct fake_ring *r)
{
    uint16_t idx;
    memcpy(&idx, r->g->mem + (r->used + 2 - FG_GPA), 2);
    return (uint16_t)(le16toh(idx) - r->used_seen);
}

bool fg_used(struct fake_ring *r, uint32_t *id, uint32_t *len)
{
    if (fg_used_pending(r) == 0)
        return false;
    struct vring_used_elem e;
    memcpy(&e, fg_ptr(r->g, r->used + 4u + 8u * (r->used_seen % r->num)), sizeof(e));
    r->used_seen++;
    *id = le32toh(e.id);
    *len = le32toh(e.len);
    return true;
}

static void put_hdr(void *dst, const struct vsock_hdr *h)
{
    struct {
        uint64_t src_cid, dst_cid;
        uint32_t src_port, dst_port, len;
        uint16_t type, op;
        uint32_t flags, buf_alloc, fwd_cnt;
    } __attribute__((packed))
    raw = {htole64(h->src_cid),   htole64(h->dst_cid), htole32(h->src_port), htole32(h->dst_port),
           htole32(h->len),       htole16(h->type),    htole16(h->op),       htole32(h->flags),
           htole32(h->buf_alloc), htole32(h->fwd_cnt)};
    _Static_assert(sizeof(raw) == VSOCK_HDR_SIZE, "header size");
    memcpy(dst, &raw, sizeof(raw));
}

void fg_put_hdr(struct fake_guest *g, uint64_t gpa, const struct vsock_hdr *h)
{
    put_hdr(fg_ptr(g, gpa), h);
}

static void get_hdr(const void *src, struct vsock_hdr *h)
{
    const uint8_t *p = src;
    uint64_t q;
    uint32_t w;
    uint16_t s;
    memcpy(&q, p, 8), h->src_cid = le64toh(q);
    memcpy(&q, p + 8, 8), h->dst_cid = le64toh(q);
    memcpy(&w, p + 16, 4), h->src_port = le32toh(w);
    memcpy(&w, p + 20, 4), h->dst_port = le32toh(w);
    memcpy(&w, p + 24, 4), h->len = le32toh(w);
    memcpy(&s, p + 28, 2), h->type = le16toh(s);
    memcpy(&s, p + 30, 2), h->op = le16toh(s);
    memcpy(&w, p + 32, 4), h->flags = le32toh(w);
    memcpy(&w, p + 36, 4), h->buf_alloc = le32toh(w);
    memcpy(&w, p + 40, 4), h->fwd_cnt = le32toh(w);
}

uint16_t fg_tx(struct fake_ring *r, const struct vsock_hdr *h, const void *payload, size_t len)
{
    uint16_t a = fg_next_desc(r);
    put_hdr(fg_ptr(r->g, fg_slot(r, a)), h);
    if (len == 0) {
        fg_desc(r, a, fg_slot(r, a), VSOCK_HDR_SIZE, 0, 0);
    } else {
        uint16_t b = fg_next_desc(r);
        memcpy(fg_ptr(r->g, fg_slot(r, b)), payload, len);
        fg_desc(r, a, fg_slot(r, a), VSOCK_HDR_SIZE, VRING_DESC_F_NEXT, b);
        fg_desc(r, b, fg_slot(r, b), (uint32_t)len, 0, 0);
    }
    fg_avail(r, a);
    return a;
}

void fg_rx_post(struct fake_ring *r, unsigned n, size_t size)
{
    for (unsigned i = 0; i < n; i++) {
        uint16_t a = fg_next_desc(r);
        uint16_t b = fg_next_desc(r);
        fg_desc(r, a, fg_slot(r, a), VSOCK_HDR_SIZE, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, b);
        fg_desc(r, b, fg_slot(r, b), (uint32_t)size, VRING_DESC_F_WRITE, 0);
        fg_avail(r, a);
    }
}

int fg_rx_take(struct fake_ring *r, struct vsock_hdr *h, void *payload, size_t cap)
{
    uint32_t id, len;
    if (!fg_used(r, &id, &len))
        return -1;
    if (len < VSOCK_HDR_SIZE || id >= r->num)
        return -1;
    struct vring_desc d;
    memcpy(&d, fg_ptr(r->g, r->desc + 16u * id), sizeof(d));
    get_hdr(fg_ptr(r->g, le64toh(d.addr)), h);
    size_t n = len - VSOCK_HDR_SIZE;
    if (n > 0) {
        uint16_t next = le16toh(d.next);
        memcpy(&d, fg_ptr(r->g, r->desc + 16u * next), sizeof(d));
        memcpy(payload, fg_ptr(r->g, le64toh(d.addr)), n < cap ? n : cap);
    }
    return (int)n;
}
