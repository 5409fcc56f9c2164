/* virtqueue: split virtqueues (virtio 1.x, "Split Virtqueues") living in guest memory that the
 * VMM shares with us, and the memory table that maps guest-physical and VMM-virtual addresses
 * onto our own mappings of that memory. The guest is untrusted: every address and length is
 * checked against the table (overflow-safe, never spanning regions) before it is touched,
 * descriptor chains are bounded by the queue size, indirect tables are validated, and nothing
 * outside the mapped regions is ever read or written. Little-endian accessors, acquire/release
 * ordering on the ring indexes. Owns its eventfds (kick, call, err) and its segment buffer. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VQ_MEM_MAX_REGIONS 8
#define VQ_MAX_SIZE 32768u

struct vq_mem_region {
    uint64_t gpa;   /* guest-physical address of the first byte */
    uint64_t uva;   /* the VMM's virtual address of it (ring addresses are given in these) */
    uint64_t size;  /* bytes */
    uint8_t *host;  /* our mapping of the first byte */
    void *map_base; /* what to munmap (page aligned), or NULL when the memory is not ours */
    size_t map_len;
};

struct vq_mem {
    struct vq_mem_region r[VQ_MEM_MAX_REGIONS];
    unsigned n;
};

/* Our pointer to guest-physical [GPA, GPA+LEN), or NULL unless it lies inside one region. */
void *vq_mem_gpa(const struct vq_mem *m, uint64_t gpa, uint64_t len);
/* The same for a VMM-virtual address range. */
void *vq_mem_uva(const struct vq_mem *m, uint64_t uva, uint64_t len);
/* Maps SIZE bytes of FD at OFFSET as the region at GPA/UVA (shared, read-write). Checks the
 * arithmetic, that FD is a regular file (memfd) long enough, and that the guest range overlaps
 * no other region. Does not take FD. */
int vq_mem_add_fd(struct vq_mem *m, uint64_t gpa, uint64_t uva, uint64_t size, int fd,
                  uint64_t offset);
/* Adds memory we do not own (tests, fuzzing): the same checks, no mapping. */
int vq_mem_add_host(struct vq_mem *m, uint64_t gpa, uint64_t uva, uint64_t size, void *host);
/* Unmaps every region we mapped and empties the table. */
void vq_mem_clear(struct vq_mem *m);

/* One descriptor chain: device-readable segments first (out), then device-writable (in). */
struct vq_chain {
    uint16_t head; /* descriptor index to hand back with virtqueue_push() */
    bool has_head; /* false when the avail ring named no valid descriptor */
    unsigned n_out, n_in;
    const struct iovec *seg; /* n_out + n_in entries, owned by the queue, valid until next pop */
    uint64_t out_bytes, in_bytes;
};

struct virtqueue {
    uint16_t num;                           /* queue size; 0 until set */
    uint64_t desc_uva, avail_uva, used_uva; /* as the VMM gave them */
    bool addr_set;
    uint8_t *desc; /* our pointers, NULL while the addresses do not translate */
    uint8_t *avail;
    uint8_t *used;
    uint16_t last_avail; /* next avail ring entry to take */
    uint16_t used_idx;   /* next used ring entry to fill */
    bool indirect;       /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
    bool enabled;
    bool need_notify; /* pushed since the last virtqueue_notify() */
    int kick_fd, call_fd, err_fd;
    struct iovec *segs; /* num entries */
};

void virtqueue_init(struct virtqueue *vq);
/* Closes the eventfds, frees the buffers, and returns to the state of virtqueue_init(). */
void virtqueue_reset(struct virtqueue *vq);
/* NUM must be a power of two, 1..VQ_MAX_SIZE. */
int virtqueue_set_num(struct virtqueue *vq, unsigned num);
void virtqueue_set_addr(struct virtqueue *vq, uint64_t desc, uint64_t avail, uint64_t used);
/* Translates the ring addresses through M (again after a new table); -EFAULT when a ring is
 * not wholly inside one region or misaligned, leaving the queue unmapped. */
int virtqueue_map(struct virtqueue *vq, const struct vq_mem *m);
void virtqueue_set_base(struct virtqueue *vq, uint16_t idx);
/* Takes ownership of FD (-1 to clear). */
void virtqueue_set_kick(struct virtqueue *vq, int fd);
void virtqueue_set_call(struct virtqueue *vq, int fd);
void virtqueue_set_err(struct virtqueue *vq, int fd);
/* Mapped and started (kick fd set) and enabled. */
bool virtqueue_ready(const struct virtqueue *vq);
/* Takes the next available chain into *C. Returns 1 with a chain, 0 when the ring is empty,
 * -EPROTO when the avail index is impossible (nothing taken: stop using the ring), and for a
 * malformed chain (taken, to be handed back with length 0 when C->has_head): -EINVAL (head index
 * out of range), -EFAULT (address outside guest memory), -ELOOP (loop), -E2BIG (longer than the
 * queue), -EBADMSG (bad indirect table, or a readable segment after a writable one). On error
 * C holds the well-formed segments found before the fault. */
int virtqueue_pop(struct virtqueue *vq, const struct vq_mem *m, struct vq_chain *c);
/* Puts the chain just popped back (the device found nothing to put in it). */
void virtqueue_unpop(struct virtqueue *vq);
/* Hands HEAD back to the driver with LEN bytes written; the used index is published with
 * release ordering after the element. */
void virtqueue_push(struct virtqueue *vq, uint16_t head, uint32_t len);
/* Signals the call eventfd if anything was pushed and the driver did not suppress interrupts. */
int virtqueue_notify(struct virtqueue *vq);
/* Consumes a pending kick (reads the eventfd). */
void virtqueue_drain_kick(const struct virtqueue *vq);
