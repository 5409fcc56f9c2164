/* vsock_dev: ocvm's user-space virtio-vsock device. Rx queue 0 and tx queue 1 are served here
 * (QEMU keeps the event queue); the host side is Firecracker-style "hybrid vsock" over Unix
 * sockets: a host client connects to UDS_PATH and sends `CONNECT PORT\n` to reach guest port
 * PORT (answered `OK LOCALPORT\n` once the guest accepts), and a guest connection to host port P
 * goes to the Unix socket UDS_PATH_P. Owns the connection table, each connection's host socket,
 * credit-based flow control both ways, half-close, and (when given a socket path) the vhost-user
 * server QEMU connects to. Runs on the caller's sd-event loop, no threads. The guest is
 * untrusted: a malformed chain or packet resets the connection it names (RST) and is logged at
 * a bounded rate; the backend never crashes on it. */
#pragma once

#include "vsock/virtqueue.h"

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#define VSOCK_DEV_RX_QUEUE 0u
#define VSOCK_DEV_TX_QUEUE 1u

struct vsock_dev_config {
    uint32_t guest_cid;          /* 3..0xfffffffe */
    const char *uds_path;        /* hybrid socket: listened on; guest->host goes to PATH_PORT */
    const char *vhost_user_path; /* listen here for the VMM; NULL: none (tests attach queues) */
    /* take_fds: the two sockets are already listening (made by a supervisor that owns their
     * directory): uds_fd and vhost_user_fd (-1: none) are taken, even on failure, the paths only
     * name them in log lines, and the files are left in place on free */
    bool take_fds;
    int uds_fd, vhost_user_fd;
    /* Guest->host connections to PORT, made by someone else (a broker): the connected socket in
     * *ret_fd, or -errno (the guest gets a RST). NULL: the device connects UDS_PATH_PORT. */
    int (*connect_host)(void *userdata, uint32_t port, int *ret_fd);
    void *connect_host_userdata;
    uint32_t buf_alloc;          /* receive buffer per connection advertised to the guest;
                                    0: 256 KiB */
    unsigned max_connections;    /* 0: 1024 */
    unsigned connect_timeout_ms; /* CONNECT line and guest RESPONSE; 0: 10000 */
};

struct vsock_dev_stats {
    uint64_t connections;    /* open now */
    uint64_t accepted;       /* host-initiated, total */
    uint64_t guest_connects; /* guest-initiated, total */
    uint64_t bytes_to_guest, bytes_to_host;
    uint64_t resets;      /* RSTs sent to the guest */
    uint64_t bad_packets; /* malformed chains and packets from the guest */
};

struct vsock_dev;

/* Creates the device: listens on cfg->uds_path and, when set, on cfg->vhost_user_path (or takes
 * the sockets already listening there, with cfg->take_fds). */
int vsock_dev_new(sd_event *e, const struct vsock_dev_config *cfg, struct vsock_dev **ret);
/* Closes every connection and socket and removes the socket files it created. */
void vsock_dev_free(struct vsock_dev *d);
void vsock_dev_get_stats(const struct vsock_dev *d, struct vsock_dev_stats *ret);
/* True while a front-end has the rx and tx queues running. */
bool vsock_dev_live(const struct vsock_dev *d);

/* Transport side (vhost_user calls these; tests call them with hand-built rings): the queues
 * run (MEM, RX, TX stay valid until detach), stopped, or were kicked. */
int vsock_dev_attach(struct vsock_dev *d, const struct vq_mem *mem, struct virtqueue *rx,
                     struct virtqueue *tx);
void vsock_dev_detach(struct vsock_dev *d);
void vsock_dev_kick(struct vsock_dev *d, unsigned queue);
