/* virtio-vsock packets in descriptor chains; see vsock_pkt.h. */
#include "vsock/vsock_pkt.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_vsock.h>
#include <string.h>

_Static_assert(sizeof(struct virtio_vsock_hdr) == VSOCK_HDR_SIZE, "virtio_vsock_hdr layout");

static const char *const error_table[_VSOCK_PKT_ERROR_MAX] = {
    [VSOCK_PKT_OK] = "ok",
    [VSOCK_PKT_SHORT] = "chain shorter than a header",
    [VSOCK_PKT_WRITABLE] = "device-writable buffer in a tx chain",
    [VSOCK_PKT_TYPE] = "socket type is not stream",
    [VSOCK_PKT_OP] = "unknown op",
    [VSOCK_PKT_ADDR] = "wrong source or destination CID",
    [VSOCK_PKT_LEN] = "payload length does not match the buffers",
};

const char *vsock_pkt_error_to_string(enum vsock_pkt_error e)
{
    return (unsigned)e < _VSOCK_PKT_ERROR_MAX ? error_table[e] : "?";
}

const char *vsock_op_to_string(uint16_t op)
{
    static const char *const ops[] = {
        [VIRTIO_VSOCK_OP_INVALID] = "INVALID",
        [VIRTIO_VSOCK_OP_REQUEST] = "REQUEST",
        [VIRTIO_VSOCK_OP_RESPONSE] = "RESPONSE",
        [VIRTIO_VSOCK_OP_RST] = "RST",
        [VIRTIO_VSOCK_OP_SHUTDOWN] = "SHUTDOWN",
        [VIRTIO_VSOCK_OP_RW] = "RW",
        [VIRTIO_VSOCK_OP_CREDIT_UPDATE] = "CREDIT_UPDATE",
        [VIRTIO_VSOCK_OP_CREDIT_REQUEST] = "CREDIT_REQUEST",
    };
    return op < sizeof(ops) / sizeof(ops[0]) ? ops[op] : "?";
}

/* Copies LEN bytes starting at byte OFF of segments SEG[0..N) into DST; returns bytes copied. */
static size_t gather(const struct iovec *seg, unsigned n, size_t off, void *dst, size_t len)
{
    size_t done = 0;
    for (unsigned i = 0; i < n && done < len; i++) {
        if (off >= seg[i].iov_len) {
            off -= seg[i].iov_len;
            continue;
        }
        size_t k = seg[i].iov_len - off;
        if (k > len - done)
            k = len - done;
        memcpy((uint8_t *)dst + done, (const uint8_t *)seg[i].iov_base + off, k);
        done += k;
        off = 0;
    }
    return done;
}

/* Points OUT at LEN bytes from byte OFF of SEG[0..N); returns the number of segments. */
static unsigned slice(const struct iovec *seg, unsigned n, size_t off, size_t len,
                      struct iovec *out, unsigned max_out)
{
    unsigned k = 0;
    for (unsigned i = 0; i < n && len > 0 && k < max_out; i++) {
        if (off >= seg[i].iov_len) {
            off -= seg[i].iov_len;
            continue;
        }
        size_t take = seg[i].iov_len - off;
        if (take > len)
            take = len;
        out[k++] = (struct iovec){(uint8_t *)seg[i].iov_base + off, take};
        len -= take;
        off = 0;
    }
    return k;
}

static void hdr_from_le(const struct virtio_vsock_hdr *raw, struct vsock_hdr *h)
{
    *h = (struct vsock_hdr){
        .src_cid = le64toh(raw->src_cid),
        .dst_cid = le64toh(raw->dst_cid),
        .src_port = le32toh(raw->src_port),
        .dst_port = le32toh(raw->dst_port),
        .len = le32toh(raw->len),
        .type = le16toh(raw->type),
        .op = le16toh(raw->op),
        .flags = le32toh(raw->flags),
        .buf_alloc = le32toh(raw->buf_alloc),
        .fwd_cnt = le32toh(raw->fwd_cnt),
    };
}

enum vsock_pkt_error vsock_pkt_parse(const struct vq_chain *c, uint32_t guest_cid,
                                     struct iovec *payload_buf, struct vsock_pkt *p)
{
    struct virtio_vsock_hdr raw;
    *p = (struct vsock_pkt){.payload = payload_buf};
    if (c->out_bytes < VSOCK_HDR_SIZE ||
        gather(c->seg, c->n_out, 0, &raw, sizeof(raw)) != sizeof(raw))
        return VSOCK_PKT_SHORT;
    hdr_from_le(&raw, &p->hdr);
    const struct vsock_hdr *h = &p->hdr;

    if (c->n_in > 0)
        return VSOCK_PKT_WRITABLE;
    if (h->type != VIRTIO_VSOCK_TYPE_STREAM)
        return VSOCK_PKT_TYPE;
    if (h->op < VIRTIO_VSOCK_OP_REQUEST || h->op > VIRTIO_VSOCK_OP_CREDIT_REQUEST)
        return VSOCK_PKT_OP;
    if (h->src_cid != guest_cid || h->dst_cid != VSOCK_HOST_CID)
        return VSOCK_PKT_ADDR;
    if (h->len > VSOCK_PKT_MAX_PAYLOAD || h->len > c->out_bytes - VSOCK_HDR_SIZE)
        return VSOCK_PKT_LEN;
    if (h->op != VIRTIO_VSOCK_OP_RW && h->len != 0)
        return VSOCK_PKT_LEN;
    p->n_payload = slice(c->seg, c->n_out, VSOCK_HDR_SIZE, h->len, payload_buf, c->n_out);
    return VSOCK_PKT_OK;
}

int vsock_pkt_write_hdr(const struct vq_chain *c, const struct vsock_hdr *h)
{
    if (c->n_out > 0 || c->in_bytes < VSOCK_HDR_SIZE)
        return -ENOBUFS;
    struct virtio_vsock_hdr raw = {
        .src_cid = htole64(h->src_cid),
        .dst_cid = htole64(h->dst_cid),
        .src_port = htole32(h->src_port),
        .dst_port = htole32(h->dst_port),
        .len = htole32(h->len),
        .type = htole16(h->type),
        .op = htole16(h->op),
        .flags = htole32(h->flags),
        .buf_alloc = htole32(h->buf_alloc),
        .fwd_cnt = htole32(h->fwd_cnt),
    };
    const uint8_t *src = (const uint8_t *)&raw;
    size_t done = 0;
    for (unsigned i = 0; i < c->n_in && done < sizeof(raw); i++) {
        size_t k = c->seg[i].iov_len;
        if (k > sizeof(raw) - done)
            k = sizeof(raw) - done;
        memcpy(c->seg[i].iov_base, src + done, k);
        done += k;
    }
    return 0;
}

unsigned vsock_pkt_rx_space(const struct vq_chain *c, size_t max, struct iovec *out,
                            unsigned max_iov)
{
    if (c->n_out > 0 || c->in_bytes <= VSOCK_HDR_SIZE)
        return 0;
    return slice(c->seg, c->n_in, VSOCK_HDR_SIZE, max, out, max_iov);
}
