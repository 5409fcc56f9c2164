/* vhost_user: the back-end side of the vhost-user protocol (QEMU docs/interop/vhost-user.rst)
 * for one virtio device. It listens on a Unix socket, serves one front-end (QEMU) at a time, and
 * owns what the front-end hands over: the guest memory table (mmap'd from the fds it passes)
 * and the device's split virtqueues with their kick/call eventfds. Every message is validated
 * (header flags and version, bounded size, exact payload size, fd count, ring index, region
 * bounds). A malformed stream or a front-end that goes away drops the session (rings stopped,
 * memory unmapped) and the server accepts the next front-end, so a rebooted guest or a restarted
 * QEMU reconnects. Runs on the caller's sd-event loop. */
#pragma once

#include "vsock/virtqueue.h"

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#define VHOST_USER_MAX_QUEUES 8

/* Message ids (front-end requests) this back-end knows. */
enum vhost_user_request {
    VHOST_USER_GET_FEATURES = 1,
    VHOST_USER_SET_FEATURES = 2,
    VHOST_USER_SET_OWNER = 3,
    VHOST_USER_RESET_OWNER = 4,
    VHOST_USER_SET_MEM_TABLE = 5,
    VHOST_USER_SET_LOG_BASE = 6,
    VHOST_USER_SET_LOG_FD = 7,
    VHOST_USER_SET_VRING_NUM = 8,
    VHOST_USER_SET_VRING_ADDR = 9,
    VHOST_USER_SET_VRING_BASE = 10,
    VHOST_USER_GET_VRING_BASE = 11,
    VHOST_USER_SET_VRING_KICK = 12,
    VHOST_USER_SET_VRING_CALL = 13,
    VHOST_USER_SET_VRING_ERR = 14,
    VHOST_USER_GET_PROTOCOL_FEATURES = 15,
    VHOST_USER_SET_PROTOCOL_FEATURES = 16,
    VHOST_USER_GET_QUEUE_NUM = 17,
    VHOST_USER_SET_VRING_ENABLE = 18,
    VHOST_USER_GET_CONFIG = 24,
    VHOST_USER_SET_CONFIG = 25,
    VHOST_USER_RESET_DEVICE = 34,
};

#define VHOST_USER_F_PROTOCOL_FEATURES 30
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_F_CONFIG 9
#define VHOST_USER_PROTOCOL_F_RESET_DEVICE 13

#define VHOST_USER_VERSION 0x1u
#define VHOST_USER_FLAG_REPLY (1u << 2)
#define VHOST_USER_FLAG_NEED_REPLY (1u << 3)
#define VHOST_USER_HDR_SIZE 12u
#define VHOST_USER_MAX_FDS 8u
#define VHOST_USER_MAX_CONFIG 256u
#define VHOST_USER_VRING_NOFD (1u << 8)

/* What the device behind the protocol provides; the callbacks get USERDATA. */
struct vhost_user_device {
    unsigned n_queues;     /* vrings the front-end may set up, <= VHOST_USER_MAX_QUEUES */
    unsigned n_required;   /* queues 0..n_required-1 must run for the device to be live */
    uint64_t features;     /* virtio feature bits offered (the protocol-features bit is added) */
    const char *log_stage; /* what log lines are about, e.g. "vsock-backend: vhost-user" */
    /* Copies SIZE bytes of config space from OFFSET; -EINVAL when out of range. */
    int (*get_config)(void *userdata, uint32_t offset, uint8_t *buf, uint32_t size);
    /* The required rings all run (MEM and VQS stay valid until live(false)), or one stopped. */
    void (*live)(void *userdata, bool live, const struct vq_mem *mem, struct virtqueue *vqs);
    /* The driver kicked QUEUE (or it just started); only called while live. */
    void (*kick)(void *userdata, unsigned queue);
};

struct vhost_user;

int vhost_user_new(sd_event *e, const struct vhost_user_device *dev, void *userdata,
                   struct vhost_user **ret);
/* Stops the session, closes the sockets and removes the socket file it created. */
void vhost_user_free(struct vhost_user *v);
/* Listens on PATH. A stale socket there is replaced; a live one is -EADDRINUSE, anything else
 * -EEXIST. */
int vhost_user_listen(struct vhost_user *v, const char *path);
/* Listens on FD, a listening socket someone else made (taken, closed on failure too); NAME (its
 * path) names it in log lines, and its file is not removed. */
int vhost_user_listen_fd(struct vhost_user *v, int fd, const char *name);
/* Serves an already connected front-end socket (inherited fd, socketpair); takes FD. -EBUSY
 * while another front-end is being served. */
int vhost_user_adopt(struct vhost_user *v, int fd);
bool vhost_user_connected(const struct vhost_user *v);
/* Ends the current session, if any, as if the front-end had gone away. */
void vhost_user_disconnect(struct vhost_user *v);
const char *vhost_user_request_to_string(uint32_t request);
