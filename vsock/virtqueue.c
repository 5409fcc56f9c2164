/* Split virtqueues in untrusted shared guest memory; see virtqueue.h. */
#include "vsock/virtqueue.h"

#include "common/cleanup.h"
#include "common/error.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Ring layout (virtio 1.x 2.7): offsets inside struct vring_avail / vring_used. */
#define AVAIL_FLAGS 0
#define AVAIL_IDX 2
#define AVAIL_RING 4
#define USED_FLAGS 0
#define USED_IDX 2
#define USED_RING 4
#define DESC_SIZE 16u

static void *region_translate(const struct vq_mem_region *r, uint64_t base, uint64_t addr,
                              uint64_t len)
{
    if (addr < base)
        return NULL;
    uint64_t off = addr - base;
    if (off >= r->size || len > r->size - off)
        return NULL;
    return r->host + off;
}

void *vq_mem_gpa(const struct vq_mem *m, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < m->n; i++) {
        void *p = region_translate(&m->r[i], m->r[i].gpa, gpa, len);
        if (p)
            return p;
    }
    return NULL;
}

void *vq_mem_uva(const struct vq_mem *m, uint64_t uva, uint64_t len)
{
    for (unsigned i = 0; i < m->n; i++) {
        void *p = region_translate(&m->r[i], m->r[i].uva, uva, len);
        if (p)
            return p;
    }
    return NULL;
}

/* [a, a+size) must not wrap: the last byte is a + size - 1. */
static bool range_ok(uint64_t a, uint64_t size)
{
    return size > 0 && size - 1 <= UINT64_MAX - a;
}

static bool ranges_overlap(uint64_t a, uint64_t an, uint64_t b, uint64_t bn)
{
    return a <= b + (bn - 1) && b <= a + (an - 1);
}

static int region_check(const struct vq_mem *m, uint64_t gpa, uint64_t uva, uint64_t size)
{
    if (m->n >= VQ_MEM_MAX_REGIONS)
        return -E2BIG;
    if (!range_ok(gpa, size) || !range_ok(uva, size) || size > SIZE_MAX)
        return -EINVAL;
    for (unsigned i = 0; i < m->n; i++)
        if (ranges_overlap(gpa, size, m->r[i].gpa, m->r[i].size))
            return -EINVAL;
    return 0;
}

int vq_mem_add_host(struct vq_mem *m, uint64_t gpa, uint64_t uva, uint64_t size, void *host)
{
    int r = region_check(m, gpa, uva, size);
    if (r < 0)
        return r;
    m->r[m->n++] = (struct vq_mem_region){.gpa = gpa, .uva = uva, .size = size, .host = host};
    return 0;
}

int vq_mem_add_fd(struct vq_mem *m, uint64_t gpa, uint64_t uva, uint64_t size, int fd,
                  uint64_t offset)
{
    int r = region_check(m, gpa, uva, size);
    if (r < 0)
        return r;
    if (!range_ok(offset, size) || offset + size > (uint64_t)INT64_MAX)
        return -EINVAL;

    struct stat st;
    if (fstat(fd, &st) < 0)
        return negative_errno();
    /* A short file would turn guest accesses into SIGBUS: memfd and tmpfs files only. */
    if (!S_ISREG(st.st_mode))
        return -EBADF;
    if ((uint64_t)st.st_size < offset + size)
        return -ERANGE;

    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t aligned = offset & ~(page - 1);
    uint64_t delta = offset - aligned;
    if (size > SIZE_MAX - delta)
        return -EINVAL;
    size_t len = (size_t)(size + delta);
    void *base =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, (off_t)aligned);
    if (base == MAP_FAILED)
        return negative_errno();
    m->r[m->n++] = (struct vq_mem_region){.gpa = gpa,
                                          .uva = uva,
                                          .size = size,
                                          .host = (uint8_t *)base + delta,
                                          .map_base = base,
                                          .map_len = len};
    return 0;
}

void vq_mem_clear(struct vq_mem *m)
{
    for (unsigned i = 0; i < m->n; i++)
        if (m->r[i].map_base)
            munmap(m->r[i].map_base, m->r[i].map_len);
    memset(m, 0, sizeof(*m));
}

void virtqueue_init(struct virtqueue *vq)
{
    memset(vq, 0, sizeof(*vq));
    vq->kick_fd = vq->call_fd = vq->err_fd = -1;
}

void virtqueue_reset(struct virtqueue *vq)
{
    closep(&vq->kick_fd);
    closep(&vq->call_fd);
    closep(&vq->err_fd);
    free(vq->segs);
    virtqueue_init(vq);
}

int virtqueue_set_num(struct virtqueue *vq, unsigned num)
{
    if (num == 0 || num > VQ_MAX_SIZE || (num & (num - 1)) != 0)
        return -EINVAL;
    struct iovec *segs = calloc(num, sizeof(*segs));
    if (!segs)
        return -ENOMEM;
    free(vq->segs);
    vq->segs = segs;
    vq->num = (uint16_t)num;
    vq->desc = vq->avail = vq->used = NULL; /* sizes changed: map again */
    return 0;
}

void virtqueue_set_addr(struct virtqueue *vq, uint64_t desc, uint64_t avail, uint64_t used)
{
    vq->desc_uva = desc;
    vq->avail_uva = avail;
    vq->used_uva = used;
    vq->addr_set = true;
    vq->desc = vq->avail = vq->used = NULL;
}

int virtqueue_map(struct virtqueue *vq, const struct vq_mem *m)
{
    vq->desc = vq->avail = vq->used = NULL;
    if (!vq->addr_set || vq->num == 0)
        return -EINVAL;
    uint64_t n = vq->num;
    /* Include used_event/avail_event: the driver allocates them whatever was negotiated. */
    uint8_t *d = vq_mem_uva(m, vq->desc_uva, DESC_SIZE * n);
    uint8_t *a = vq_mem_uva(m, vq->avail_uva, AVAIL_RING + 2 * n + 2);
    uint8_t *u = vq_mem_uva(m, vq->used_uva, USED_RING + 8 * n + 2);
    if (!d || !a || !u)
        return -EFAULT;
    /* The index fields are accessed atomically: insist on the spec's alignment. */
    if ((uintptr_t)d % 16 || (uintptr_t)a % 2 || (uintptr_t)u % 4)
        return -EFAULT;
    vq->desc = d;
    vq->avail = a;
    vq->used = u;
    return 0;
}

void virtqueue_set_base(struct virtqueue *vq, uint16_t idx)
{
    vq->last_avail = idx;
    vq->used_idx = idx;
}

void virtqueue_set_kick(struct virtqueue *vq, int fd)
{
    closep(&vq->kick_fd);
    vq->kick_fd = fd;
}

void virtqueue_set_call(struct virtqueue *vq, int fd)
{
    closep(&vq->call_fd);
    vq->call_fd = fd;
}

void virtqueue_set_err(struct virtqueue *vq, int fd)
{
    closep(&vq->err_fd);
    vq->err_fd = fd;
}

bool virtqueue_ready(const struct virtqueue *vq)
{
    return vq->desc && vq->avail && vq->used && vq->kick_fd >= 0 && vq->enabled;
}

static uint16_t load_le16_acquire(const uint8_t *p)
{
    return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE));
}

static uint16_t load_le16(const uint8_t *p)
{
    return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED));
}

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};

/* One copy of a descriptor out of shared memory: the guest may rewrite it meanwhile. */
static struct desc read_desc(const uint8_t *table, uint32_t i)
{
    struct vring_desc raw;
    memcpy(&raw, table + (size_t)i * DESC_SIZE, sizeof(raw));
    return (struct desc){le64toh(raw.addr), le32toh(raw.len), le16toh(raw.flags),
                         le16toh(raw.next)};
}

struct walk {
    const uint8_t *table;
    uint32_t table_n; /* entries in TABLE */
    uint32_t steps;   /* descriptors visited in TABLE */
    bool indirect;
};

static int chain_add(struct virtqueue *vq, const struct vq_mem *m, struct vq_chain *c,
                     const struct desc *d)
{
    if (c->n_out + c->n_in >= vq->num)
        return -E2BIG;
    void *p = vq_mem_gpa(m, d->addr, d->len);
    if (!p)
        return -EFAULT;
    if (d->flags & VRING_DESC_F_WRITE) {
        c->in_bytes += d->len;
        vq->segs[c->n_out + c->n_in++] = (struct iovec){p, d->len};
    } else {
        if (c->n_in > 0)
            return -EBADMSG; /* readable after writable */
        c->out_bytes += d->len;
        vq->segs[c->n_out++] = (struct iovec){p, d->len};
    }
    return 0;
}

/* Switches W to the indirect table D points at. */
static int enter_indirect(const struct virtqueue *vq, const struct vq_mem *m, struct walk *w,
                          const struct desc *d)
{
    if (!vq->indirect || w->indirect || (d->flags & VRING_DESC_F_NEXT))
        return -EBADMSG;
    if (d->len == 0 || d->len % DESC_SIZE || d->len / DESC_SIZE > vq->num)
        return -EBADMSG;
    const uint8_t *t = vq_mem_gpa(m, d->addr, d->len);
    if (!t)
        return -EFAULT;
    *w = (struct walk){.table = t, .table_n = d->len / DESC_SIZE, .indirect = true};
    return 0;
}

static int chain_walk(struct virtqueue *vq, const struct vq_mem *m, struct vq_chain *c)
{
    struct walk w = {.table = vq->desc, .table_n = vq->num};
    uint32_t i = c->head;
    for (;;) {
        if (++w.steps > w.table_n)
            return -ELOOP;
        struct desc d = read_desc(w.table, i);
        if (d.flags & VRING_DESC_F_INDIRECT) {
            int r = enter_indirect(vq, m, &w, &d);
            if (r < 0)
                return r;
            i = 0;
            continue;
        }
        if (d.len > 0) {
            int r = chain_add(vq, m, c, &d);
            if (r < 0)
                return r;
        }
        if (!(d.flags & VRING_DESC_F_NEXT))
            return 0;
        i = d.next;
        if (i >= w.table_n)
            return -EBADMSG;
    }
}

int virtqueue_pop(struct virtqueue *vq, const struct vq_mem *m, struct vq_chain *c)
{
    *c = (struct vq_chain){.seg = vq->segs};
    if (!vq->desc || !vq->avail || !vq->used)
        return -EPROTO;
    uint16_t avail_idx = load_le16_acquire(vq->avail + AVAIL_IDX);
    uint16_t pending = (uint16_t)(avail_idx - vq->last_avail);
    if (pending == 0)
        return 0;
    if (pending > vq->num)
        return -EPROTO;

    uint16_t head = load_le16(vq->avail + AVAIL_RING + 2u * (vq->last_avail & (vq->num - 1u)));
    vq->last_avail++;
    if (head >= vq->num)
        return -EINVAL;
    c->head = head;
    c->has_head = true;
    int r = chain_walk(vq, m, c);
    return r < 0 ? r : 1;
}

void virtqueue_unpop(struct virtqueue *vq)
{
    vq->last_avail--;
}

void virtqueue_push(struct virtqueue *vq, uint16_t head, uint32_t len)
{
    struct vring_used_elem e = {.id = htole32(head), .len = htole32(len)};
    memcpy(vq->used + USED_RING + 8u * (vq->used_idx & (vq->num - 1u)), &e, sizeof(e));
    vq->used_idx++;
    /* The element must be visible before the index that publishes it. */
    __atomic_store_n((uint16_t *)(vq->used + USED_IDX), htole16(vq->used_idx), __ATOMIC_RELEASE);
    vq->need_notify = true;
}

int virtqueue_notify(struct virtqueue *vq)
{
    if (!vq->need_notify)
        return 0;
    vq->need_notify = false;
    if (!vq->avail)
        return 0;
    /* Order the used index store before reading the driver's suppression flag. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (load_le16(vq->avail + AVAIL_FLAGS) & VRING_AVAIL_F_NO_INTERRUPT)
        return 0;
    if (vq->call_fd < 0)
        return 0;
    if (eventfd_write(vq->call_fd, 1) < 0 && errno != EAGAIN)
        return negative_errno();
    return 0;
}

void virtqueue_drain_kick(const struct virtqueue *vq)
{
    eventfd_t v;
    if (vq->kick_fd >= 0)
        (void)eventfd_read(vq->kick_fd, &v);
}
