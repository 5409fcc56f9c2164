/* vsock_pkt: the virtio-vsock packet (struct virtio_vsock_hdr, little-endian, then the payload)
 * as it sits in a descriptor chain. Parses a guest->host (tx) chain into a checked header and
 * payload segments, and writes host->guest packets into rx chains. Pure: it touches only the
 * chain's segments, which virtqueue has already bounded to guest memory; the header is copied
 * out once, so the guest cannot change it between check and use. No policy about connections. */
#pragma once

#include "vsock/virtqueue.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VSOCK_HOST_CID 2u
#define VSOCK_HDR_SIZE 44u
/* The largest payload one packet may carry (the Linux driver's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE). */
#define VSOCK_PKT_MAX_PAYLOAD (64u * 1024u)

/* The header in host byte order. */
struct vsock_hdr {
    uint64_t src_cid, dst_cid;
    uint32_t src_port, dst_port;
    uint32_t len;
    uint16_t type, op;
    uint32_t flags;
    uint32_t buf_alloc, fwd_cnt;
};

enum vsock_pkt_error {
    VSOCK_PKT_OK,
    VSOCK_PKT_SHORT,    /* fewer readable bytes than a header: nothing is known about it */
    VSOCK_PKT_WRITABLE, /* a device-writable segment in a tx chain */
    VSOCK_PKT_TYPE,     /* not VIRTIO_VSOCK_TYPE_STREAM */
    VSOCK_PKT_OP,       /* unknown op */
    VSOCK_PKT_ADDR,     /* src_cid is not the guest's, or dst_cid is not the host */
    VSOCK_PKT_LEN,      /* len beyond the payload present, too large, or payload on a non-RW op */
    _VSOCK_PKT_ERROR_MAX,
};

struct vsock_pkt {
    struct vsock_hdr hdr;
    struct iovec *payload; /* n_payload segments covering exactly hdr.len bytes */
    unsigned n_payload;
};

/* Parses the readable segments of C, sent by the guest with GUEST_CID. PAYLOAD_BUF must have
 * room for C->n_out entries. Returns VSOCK_PKT_OK, or the first problem found; P->hdr is valid
 * for every result but VSOCK_PKT_SHORT. */
enum vsock_pkt_error vsock_pkt_parse(const struct vq_chain *c, uint32_t guest_cid,
                                     struct iovec *payload_buf, struct vsock_pkt *p);
const char *vsock_pkt_error_to_string(enum vsock_pkt_error e);
const char *vsock_op_to_string(uint16_t op);

/* Writes H (host order) at the start of C's writable segments; -ENOBUFS when they hold fewer
 * than VSOCK_HDR_SIZE bytes or C has readable segments. */
int vsock_pkt_write_hdr(const struct vq_chain *c, const struct vsock_hdr *h);
/* Fills OUT (room for MAX_IOV) with the writable space after the header, at most MAX bytes;
 * returns the number of segments. */
unsigned vsock_pkt_rx_space(const struct vq_chain *c, size_t max, struct iovec *out,
                            unsigned max_iov);
