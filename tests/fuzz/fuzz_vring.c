/* libFuzzer target: the descriptor-chain walker (virtqueue) and the packet parser (vsock_pkt)
 * on a guest memory image the fuzzer controls entirely. Input: byte 0 picks the queue size
 * (2..32) and whether indirect descriptors were negotiated, bytes 1-2 the starting ring index,
 * the rest is guest memory from guest-physical GPA_BASE: descriptor table at +0, avail ring at
 * +0x200, used ring at +0x300, buffers anywhere. The memory is a malloc'd block of exactly the
 * input's size, so ASan flags any access outside it. */
#include "vsock/virtqueue.h"
#include "vsock/vsock_pkt.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GPA_BASE 0x10000u
#define UVA_BASE 0x7f0000000000ull
#define DESC_OFF 0x0u
#define AVAIL_OFF 0x200u
#define USED_OFF 0x300u
#define MIN_MEM 0x400u
#define GUEST_CID 3u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 || size - 3 < MIN_MEM || size - 3 > (1u << 20))
        return 0;
    unsigned num = 2u << (data[0] % 5);
    bool indirect = data[0] & 0x80;
    uint16_t base = (uint16_t)(data[1] | data[2] << 8);
    size_t mem_size = size - 3;
    uint8_t *mem = malloc(mem_size);
    if (!mem)
        return 0;
    memcpy(mem, data + 3, mem_size);

    struct vq_mem table = {0};
    struct virtqueue vq;
    virtqueue_init(&vq);
    if (vq_mem_add_host(&table, GPA_BASE, UVA_BASE, mem_size, mem) < 0 ||
        virtqueue_set_num(&vq, num) < 0)
        goto out;
    virtqueue_set_addr(&vq, UVA_BASE + DESC_OFF, UVA_BASE + AVAIL_OFF, UVA_BASE + USED_OFF);
    if (virtqueue_map(&vq, &table) < 0)
        goto out;
    virtqueue_set_base(&vq, base);
    vq.indirect = indirect;
    vq.enabled = true;

    struct iovec *payload = calloc(num, sizeof(*payload));
    for (unsigned i = 0; payload && i < 4 * num; i++) {
        struct vq_chain c;
        int r = virtqueue_pop(&vq, &table, &c);
        if (r == 0 || r == -EPROTO)
            break;
        struct vsock_pkt p;
        enum vsock_pkt_error e = vsock_pkt_parse(&c, GUEST_CID, payload, &p);
        uint32_t used = 0;
        if (e == VSOCK_PKT_OK) {
            size_t sum = 0; /* the payload must lie within the chain, hence in memory */
            for (unsigned k = 0; k < p.n_payload; k++)
                for (size_t j = 0; j < p.payload[k].iov_len; j++)
                    sum += ((const uint8_t *)p.payload[k].iov_base)[j];
            (void)sum;
        } else if (r == 1 && c.n_out == 0) { /* an rx buffer: write a packet into it */
            struct vsock_hdr h = {.src_cid = 2, .dst_cid = GUEST_CID, .op = 5, .type = 1};
            struct iovec space[8];
            unsigned n = vsock_pkt_rx_space(&c, 4096, space, 8);
            for (unsigned k = 0; k < n; k++) {
                memset(space[k].iov_base, 0xab, space[k].iov_len);
                h.len += (uint32_t)space[k].iov_len;
            }
            if (vsock_pkt_write_hdr(&c, &h) == 0)
                used = VSOCK_HDR_SIZE + h.len;
        }
        if (c.has_head)
            virtqueue_push(&vq, c.head, used);
    }
    free(payload);
out:
    virtqueue_reset(&vq);
    free(mem);
    return 0;
}
