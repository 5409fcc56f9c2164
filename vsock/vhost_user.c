/* The back-end side of vhost-user; see vhost_user.h. */
#include "vsock/vhost_user.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "vsock/listen_rest.h"
#include "vsock/vsock_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vhost_types.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#define VIRTIO_RING_F_INDIRECT_DESC_BIT 28

struct vu_hdr {
    uint32_t request, flags, size;
};
_Static_assert(sizeof(struct vu_hdr) == VHOST_USER_HDR_SIZE, "vhost-user header");

struct vu_region {
    uint64_t gpa, size, uva, mmap_offset;
};

struct vu_mem {
    uint32_t nregions, padding;
    struct vu_region r[VQ_MEM_MAX_REGIONS];
};

struct vu_config {
    uint32_t offset, size, flags;
    uint8_t region[VHOST_USER_MAX_CONFIG];
};
#define VU_CONFIG_HDR 12u

union vu_payload {
    uint64_t u64;
    struct vhost_vring_state state;
    struct vhost_vring_addr addr;
    struct vu_mem mem;
    struct vu_config config;
};

struct vu_kick {
    struct vhost_user *v;
    unsigned idx;
    sd_event_source *src;
};

struct vhost_user {
    sd_event *event;
    struct vhost_user_device dev;
    void *userdata;
    const char *log_stage;

    int listen_fd;
    sd_event_source *listen_src;
    struct listen_rest listen_rest; /* out of fds: the listener rests a while */
    bool rest_logged;               /* said so once, until an accept works again */
    char *path;                     /* of the listening socket, for log lines */
    bool owns_path;                 /* made here: removed when freed */

    int fd; /* the front-end, or -1 */
    sd_event_source *io;
    struct vu_hdr hdr; /* the message being received */
    union vu_payload payload;
    size_t have;
    int fds[VHOST_USER_MAX_FDS];
    unsigned n_fds;

    uint64_t features, protocol_features;
    struct vq_mem mem;
    struct virtqueue vq[VHOST_USER_MAX_QUEUES];
    struct vu_kick kick[VHOST_USER_MAX_QUEUES];
    bool enable_req[VHOST_USER_MAX_QUEUES];
    bool live;
};

/* A reply body, when the request defines one. */
struct vu_reply {
    bool has_body;
    uint32_t size;
    union vu_payload p;
};

static const char *const request_names[] = {
    [VHOST_USER_GET_FEATURES] = "GET_FEATURES",
    [VHOST_USER_SET_FEATURES] = "SET_FEATURES",
    [VHOST_USER_SET_OWNER] = "SET_OWNER",
    [VHOST_USER_RESET_OWNER] = "RESET_OWNER",
    [VHOST_USER_SET_MEM_TABLE] = "SET_MEM_TABLE",
    [VHOST_USER_SET_LOG_BASE] = "SET_LOG_BASE",
    [VHOST_USER_SET_LOG_FD] = "SET_LOG_FD",
    [VHOST_USER_SET_VRING_NUM] = "SET_VRING_NUM",
    [VHOST_USER_SET_VRING_ADDR] = "SET_VRING_ADDR",
    [VHOST_USER_SET_VRING_BASE] = "SET_VRING_BASE",
    [VHOST_USER_GET_VRING_BASE] = "GET_VRING_BASE",
    [VHOST_USER_SET_VRING_KICK] = "SET_VRING_KICK",
    [VHOST_USER_SET_VRING_CALL] = "SET_VRING_CALL",
    [VHOST_USER_SET_VRING_ERR] = "SET_VRING_ERR",
    [VHOST_USER_GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
    [VHOST_USER_SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES",
    [VHOST_USER_GET_QUEUE_NUM] = "GET_QUEUE_NUM",
    [VHOST_USER_SET_VRING_ENABLE] = "SET_VRING_ENABLE",
    [VHOST_USER_GET_CONFIG] = "GET_CONFIG",
    [VHOST_USER_SET_CONFIG] = "SET_CONFIG",
    [VHOST_USER_RESET_DEVICE] = "RESET_DEVICE",
};

const char *vhost_user_request_to_string(uint32_t request)
{
    if (request < ELEMENTSOF(request_names) && request_names[request])
        return request_names[request];
    return "unknown request";
}

static void vu_log(const struct vhost_user *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void vu_log(const struct vhost_user *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_msgv(LOG_WARNING, v->log_stage, fmt, ap);
    va_end(ap);
}

static const uint64_t offered_protocol_features = (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
                                                  (1ull << VHOST_USER_PROTOCOL_F_CONFIG) |
                                                  (1ull << VHOST_USER_PROTOCOL_F_RESET_DEVICE);

static uint64_t offered_features(const struct vhost_user *v)
{
    return v->dev.features | (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
}

/* Tells the device when the required rings all run, and when they stop. */
static void update_live(struct vhost_user *v)
{
    bool live = v->fd >= 0 && v->dev.n_required > 0;
    for (unsigned i = 0; i < v->dev.n_required && live; i++)
        live = virtqueue_ready(&v->vq[i]);
    if (live == v->live)
        return;
    v->live = live;
    v->dev.live(v->userdata, live, &v->mem, v->vq);
    /* Buffers may already be waiting: the driver kicked before we started. */
    for (unsigned i = 0; live && v->live && i < v->dev.n_required; i++)
        v->dev.kick(v->userdata, i);
}

/* Without VHOST_USER_F_PROTOCOL_FEATURES rings run as soon as they start; with it they wait for
 * SET_VRING_ENABLE. */
static void update_enabled(struct vhost_user *v)
{
    bool pf = v->features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
    for (unsigned i = 0; i < v->dev.n_queues; i++)
        v->vq[i].enabled = pf ? v->enable_req[i] : true;
}

static int on_kick(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    struct vu_kick *k = userdata;
    struct vhost_user *v = k->v;
    virtqueue_drain_kick(&v->vq[k->idx]);
    if (v->live && k->idx < v->dev.n_required)
        v->dev.kick(v->userdata, k->idx);
    return 0;
}

static void stop_ring(struct vhost_user *v, unsigned i)
{
    v->kick[i].src = sd_event_source_disable_unref(v->kick[i].src);
    virtqueue_set_kick(&v->vq[i], -1);
}

/* Back to the state after connect: rings stopped and forgotten (the memory table stays). */
static void reset_rings(struct vhost_user *v)
{
    for (unsigned i = 0; i < VHOST_USER_MAX_QUEUES; i++) {
        stop_ring(v, i);
        virtqueue_reset(&v->vq[i]);
        v->enable_req[i] = false;
    }
    update_live(v);
}

static void close_msg_fds(struct vhost_user *v)
{
    for (unsigned i = 0; i < v->n_fds; i++)
        closep(&v->fds[i]);
    v->n_fds = 0;
}

void vhost_user_disconnect(struct vhost_user *v)
{
    if (v->fd < 0)
        return;
    v->io = sd_event_source_disable_unref(v->io);
    closep(&v->fd);
    v->fd = -1;
    close_msg_fds(v);
    v->have = 0;
    update_live(v); /* the device lets go of the rings before they are unmapped */
    reset_rings(v);
    vq_mem_clear(&v->mem);
    v->features = v->protocol_features = 0;
    if (v->listen_src)
        (void)sd_event_source_set_enabled(v->listen_src, SD_EVENT_ON);
}

static int send_reply(struct vhost_user *v, const union vu_payload *p, uint32_t size)
{
    struct vu_hdr h = {.request = v->hdr.request,
                       .flags = VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY,
                       .size = size};
    struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)p, size}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = size ? 2 : 1};
    ssize_t n = sendmsg(v->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0)
        return negative_errno();
    return (size_t)n == sizeof(h) + size ? 0 : -EIO;
}

static void reply_u64(struct vu_reply *rep, uint64_t value)
{
    rep->has_body = true;
    rep->size = sizeof(uint64_t);
    rep->p.u64 = value;
}

static int check_ring_index(const struct vhost_user *v, uint32_t idx)
{
    return idx < v->dev.n_queues ? 0 : -ERANGE;
}

static int on_set_features(struct vhost_user *v)
{
    uint64_t f = v->payload.u64;
    if (f & ~offered_features(v))
        return -EINVAL;
    v->features = f;
    for (unsigned i = 0; i < v->dev.n_queues; i++)
        v->vq[i].indirect = f & (1ull << VIRTIO_RING_F_INDIRECT_DESC_BIT);
    update_enabled(v);
    update_live(v);
    return 0;
}

static int on_set_protocol_features(struct vhost_user *v)
{
    if (v->payload.u64 & ~offered_protocol_features)
        return -EINVAL;
    v->protocol_features = v->payload.u64;
    return 0;
}

static int on_set_mem_table(struct vhost_user *v)
{
    const struct vu_mem *m = &v->payload.mem;
    if (v->hdr.size < 8 || m->nregions == 0 || m->nregions > VQ_MEM_MAX_REGIONS ||
        v->hdr.size != 8 + m->nregions * sizeof(struct vu_region) || v->n_fds != m->nregions)
        return -EINVAL;

    struct vq_mem table = {0};
    for (unsigned i = 0; i < m->nregions; i++) {
        const struct vu_region *r = &m->r[i];
        int k = vq_mem_add_fd(&table, r->gpa, r->uva, r->size, v->fds[i], r->mmap_offset);
        if (k < 0) {
            vq_mem_clear(&table);
            return k;
        }
    }
    /* Swap in place: the device's pointer to v->mem stays valid; rings are translated again. */
    struct vq_mem old = v->mem;
    v->mem = table;
    for (unsigned i = 0; i < v->dev.n_queues; i++)
        if (v->vq[i].addr_set)
            (void)virtqueue_map(&v->vq[i], &v->mem);
    update_live(v);
    vq_mem_clear(&old);
    return 0;
}

static int on_set_vring_num(struct vhost_user *v)
{
    const struct vhost_vring_state *s = &v->payload.state;
    int r = check_ring_index(v, s->index);
    if (r < 0)
        return r;
    struct virtqueue *vq = &v->vq[s->index];
    if (vq->kick_fd >= 0)
        return -EBUSY;
    r = virtqueue_set_num(vq, s->num);
    if (r < 0)
        return r;
    if (vq->addr_set)
        (void)virtqueue_map(vq, &v->mem);
    return 0;
}

static int on_set_vring_addr(struct vhost_user *v)
{
    const struct vhost_vring_addr *a = &v->payload.addr;
    int r = check_ring_index(v, a->index);
    if (r < 0)
        return r;
    /* Dirty logging (VHOST_VRING_F_LOG) needs VHOST_F_LOG_ALL, which is not offered. */
    if (a->flags & ~(1u << VHOST_VRING_F_LOG))
        return -EINVAL;
    struct virtqueue *vq = &v->vq[a->index];
    virtqueue_set_addr(vq, a->desc_user_addr, a->avail_user_addr, a->used_user_addr);
    r = virtqueue_map(vq, &v->mem);
    update_live(v);
    return r;
}

static int on_set_vring_base(struct vhost_user *v)
{
    const struct vhost_vring_state *s = &v->payload.state;
    int r = check_ring_index(v, s->index);
    if (r < 0)
        return r;
    if (s->num > UINT16_MAX)
        return -EINVAL;
    if (v->vq[s->index].kick_fd >= 0)
        return -EBUSY;
    virtqueue_set_base(&v->vq[s->index], (uint16_t)s->num);
    return 0;
}

static int on_get_vring_base(struct vhost_user *v, struct vu_reply *rep)
{
    const struct vhost_vring_state *s = &v->payload.state;
    int r = check_ring_index(v, s->index);
    if (r < 0)
        return r;
    unsigned i = s->index;
    stop_ring(v, i);
    update_live(v);
    rep->has_body = true;
    rep->size = sizeof(struct vhost_vring_state);
    rep->p.state = (struct vhost_vring_state){.index = i, .num = v->vq[i].last_avail};
    return 0;
}

/* SET_VRING_KICK/CALL/ERR: u64 = index | NOFD flag; the fd, unless NOFD, is in the message. */
static int on_set_vring_fd(struct vhost_user *v)
{
    uint64_t u = v->payload.u64;
    if (u & ~(uint64_t)(0xffu | VHOST_USER_VRING_NOFD))
        return -EINVAL;
    unsigned i = (unsigned)(u & 0xffu);
    bool nofd = u & VHOST_USER_VRING_NOFD;
    int r = check_ring_index(v, i);
    if (r < 0)
        return r;
    if (v->n_fds != (nofd ? 0u : 1u))
        return -EINVAL;
    int fd = nofd ? -1 : v->fds[0];

    switch (v->hdr.request) {
    case VHOST_USER_SET_VRING_CALL:
        virtqueue_set_call(&v->vq[i], fd);
        break;
    case VHOST_USER_SET_VRING_ERR:
        virtqueue_set_err(&v->vq[i], fd);
        break;
    default: /* KICK: polling (NOFD) is not supported */
        if (nofd)
            return -EOPNOTSUPP;
        stop_ring(v, i);
        r = sd_event_add_io(v->event, &v->kick[i].src, fd, EPOLLIN, on_kick, &v->kick[i]);
        if (r < 0)
            return r;
        virtqueue_set_kick(&v->vq[i], fd);
        break;
    }
    if (!nofd)
        v->fds[0] = -1; /* taken */
    update_live(v);
    return 0;
}

static int on_set_vring_enable(struct vhost_user *v)
{
    const struct vhost_vring_state *s = &v->payload.state;
    int r = check_ring_index(v, s->index);
    if (r < 0)
        return r;
    if (s->num > 1)
        return -EINVAL;
    v->enable_req[s->index] = s->num == 1;
    update_enabled(v);
    update_live(v);
    return 0;
}

static void on_get_config(struct vhost_user *v, struct vu_reply *rep)
{
    struct vu_config *c = &v->payload.config;
    rep->has_body = true;
    rep->size = 0; /* an empty reply tells the front-end it failed */
    if (v->hdr.size < VU_CONFIG_HDR || c->size > VHOST_USER_MAX_CONFIG ||
        v->hdr.size != VU_CONFIG_HDR + c->size)
        return;
    if (v->dev.get_config(v->userdata, c->offset, c->region, c->size) < 0)
        return;
    rep->size = v->hdr.size;
    memcpy(&rep->p.config, c, v->hdr.size);
}

/* The payload size each request must have (-1: checked by its handler), and whether it may
 * carry file descriptors. */
static int expected_size(uint32_t request, bool *fds_ok)
{
    *fds_ok = false;
    switch (request) {
    case VHOST_USER_GET_FEATURES:
    case VHOST_USER_SET_OWNER:
    case VHOST_USER_RESET_OWNER:
    case VHOST_USER_GET_PROTOCOL_FEATURES:
    case VHOST_USER_GET_QUEUE_NUM:
    case VHOST_USER_RESET_DEVICE:
        return 0;
    case VHOST_USER_SET_FEATURES:
    case VHOST_USER_SET_PROTOCOL_FEATURES:
        return sizeof(uint64_t);
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR:
        *fds_ok = true;
        return sizeof(uint64_t);
    case VHOST_USER_SET_VRING_NUM:
    case VHOST_USER_SET_VRING_BASE:
    case VHOST_USER_GET_VRING_BASE:
    case VHOST_USER_SET_VRING_ENABLE:
        return sizeof(struct vhost_vring_state);
    case VHOST_USER_SET_VRING_ADDR:
        return sizeof(struct vhost_vring_addr);
    case VHOST_USER_SET_MEM_TABLE:
        *fds_ok = true;
        return -1;
    default:
        return -1;
    }
}

/* Runs one request; fills REP when the request has a reply of its own. */
static int dispatch(struct vhost_user *v, struct vu_reply *rep)
{
    bool fds_ok;
    int want = expected_size(v->hdr.request, &fds_ok);
    if ((want >= 0 && v->hdr.size != (uint32_t)want) || (!fds_ok && v->n_fds > 0))
        return -EINVAL;

    switch (v->hdr.request) {
    case VHOST_USER_GET_FEATURES:
        reply_u64(rep, offered_features(v));
        return 0;
    case VHOST_USER_SET_FEATURES:
        return on_set_features(v);
    case VHOST_USER_GET_PROTOCOL_FEATURES:
        reply_u64(rep, offered_protocol_features);
        return 0;
    case VHOST_USER_SET_PROTOCOL_FEATURES:
        return on_set_protocol_features(v);
    case VHOST_USER_SET_OWNER:
        return 0;
    case VHOST_USER_RESET_OWNER: /* deprecated: "disable all rings" */
    case VHOST_USER_RESET_DEVICE:
        reset_rings(v);
        v->features = 0;
        return 0;
    case VHOST_USER_GET_QUEUE_NUM:
        reply_u64(rep, v->dev.n_queues);
        return 0;
    case VHOST_USER_SET_MEM_TABLE:
        return on_set_mem_table(v);
    case VHOST_USER_SET_VRING_NUM:
        return on_set_vring_num(v);
    case VHOST_USER_SET_VRING_ADDR:
        return on_set_vring_addr(v);
    case VHOST_USER_SET_VRING_BASE:
        return on_set_vring_base(v);
    case VHOST_USER_GET_VRING_BASE:
        return on_get_vring_base(v, rep);
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR:
        return on_set_vring_fd(v);
    case VHOST_USER_SET_VRING_ENABLE:
        return on_set_vring_enable(v);
    case VHOST_USER_GET_CONFIG:
        on_get_config(v, rep);
        return 0;
    case VHOST_USER_SET_CONFIG: /* the vsock config space is read-only */
        return -EPERM;
    default:
        return -EOPNOTSUPP;
    }
}

/* Handles the complete message in v->hdr/v->payload. A failure the front-end asked to hear
 * about (REPLY_ACK) is answered; any other failure ends the session (returned). */
static int handle_message(struct vhost_user *v)
{
    struct vu_reply rep = {0};
    int r = dispatch(v, &rep);
    close_msg_fds(v);
    if (r < 0)
        vu_log(v, "%s (%u): %s", vhost_user_request_to_string(v->hdr.request), v->hdr.request,
               strerror(-r));
    if (rep.has_body && r >= 0)
        return send_reply(v, &rep.p, rep.size);
    bool ack = (v->hdr.flags & VHOST_USER_FLAG_NEED_REPLY) &&
               (v->protocol_features & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK));
    if (ack) {
        union vu_payload p = {.u64 = r < 0 ? 1 : 0};
        return send_reply(v, &p, sizeof(uint64_t));
    }
    return r;
}

static int check_header(const struct vu_hdr *h)
{
    if ((h->flags & 0x3u) != VHOST_USER_VERSION)
        return -EPROTO;
    if (h->flags & ~(0x3u | VHOST_USER_FLAG_NEED_REPLY))
        return -EPROTO;
    if (h->size > sizeof(union vu_payload))
        return -EMSGSIZE;
    return 0;
}

/* Keeps the fds of one control message; more than VHOST_USER_MAX_FDS is an error. */
static int take_fds(struct vhost_user *v, struct msghdr *mh)
{
    int r = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        const uint8_t *data = CMSG_DATA(c);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, data + i * sizeof(int), sizeof(int));
            if (v->n_fds < VHOST_USER_MAX_FDS)
                v->fds[v->n_fds++] = fd;
            else {
                close(fd);
                r = -E2BIG;
            }
        }
    }
    if (mh->msg_flags & MSG_CTRUNC)
        r = -E2BIG; /* the kernel dropped fds that did not fit */
    return r;
}

/* Reads what is missing of the current message. 1: progress, 0: nothing to read, <0: error. */
static int read_some(struct vhost_user *v)
{
    uint8_t *dst;
    size_t want;
    if (v->have < VHOST_USER_HDR_SIZE) {
        dst = (uint8_t *)&v->hdr + v->have;
        want = VHOST_USER_HDR_SIZE - v->have;
    } else {
        dst = (uint8_t *)&v->payload + (v->have - VHOST_USER_HDR_SIZE);
        want = VHOST_USER_HDR_SIZE + v->hdr.size - v->have;
    }
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * VHOST_USER_MAX_FDS)];
    } ctl;
    struct iovec iov = {dst, want};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl)};
    ssize_t n = recvmsg(v->fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : negative_errno();
    int r = take_fds(v, &mh);
    if (r < 0)
        return r;
    if (n == 0)
        return -ECONNRESET;
    v->have += (size_t)n;
    if (v->have == VHOST_USER_HDR_SIZE) {
        r = check_header(&v->hdr);
        if (r < 0)
            return r;
    }
    return 1;
}

static bool message_complete(const struct vhost_user *v)
{
    return v->have >= VHOST_USER_HDR_SIZE && v->have == VHOST_USER_HDR_SIZE + v->hdr.size;
}

static int on_frontend(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    struct vhost_user *v = userdata;
    /* A bounded number of messages per wakeup keeps the loop fair to the data path. */
    for (unsigned budget = 0; budget < 64 && v->fd >= 0; budget++) {
        int r = read_some(v);
        if (r == 0)
            return 0;
        if (r < 0) {
            if (r == -ECONNRESET)
                vu_log(v, "front-end disconnected");
            else
                vu_log(v, "bad message from the front-end: %s; closing the session", strerror(-r));
            vhost_user_disconnect(v);
            return 0;
        }
        if (!message_complete(v))
            continue;
        r = handle_message(v);
        v->have = 0;
        memset(&v->payload, 0, sizeof(v->payload));
        if (r < 0) {
            vu_log(v, "closing the session");
            vhost_user_disconnect(v);
            return 0;
        }
    }
    return 0;
}

int vhost_user_adopt(struct vhost_user *v, int fd)
{
    if (v->fd >= 0) {
        close(fd);
        return -EBUSY;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        int r = negative_errno();
        close(fd);
        return r;
    }
    int r = sd_event_add_io(v->event, &v->io, fd, EPOLLIN, on_frontend, v);
    if (r < 0) {
        close(fd);
        return r;
    }
    v->fd = fd;
    v->have = 0;
    /* One front-end at a time: a second one waits in the backlog until this session ends. */
    if (v->listen_src)
        (void)sd_event_source_set_enabled(v->listen_src, SD_EVENT_OFF);
    listen_rest_cancel(&v->listen_rest);
    return 0;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    struct vhost_user *v = userdata;
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) {
        int err = errno;
        if (listen_rest_after(&v->listen_rest, err)) {
            if (!v->rest_logged)
                vu_log(v, "accept on %s: %s; retrying", v->path, strerror(err));
            v->rest_logged = true;
        } else if (err != EAGAIN && err != EINTR && err != ECONNABORTED)
            vu_log(v, "accept on %s: %s", v->path, strerror(err));
        return 0;
    }
    v->rest_logged = false;
    int r = vhost_user_adopt(v, c);
    if (r < 0)
        vu_log(v, "cannot serve the front-end: %s", strerror(-r));
    else
        vu_log(v, "front-end connected on %s", v->path);
    return 0;
}

/* Serves front-ends that connect to the listening socket FD (taken), named NAME in log lines;
 * OWNS_PATH: NAME is a file this server made, removed when it is freed. */
static int listen_on(struct vhost_user *v, int fd, const char *name, bool owns_path)
{
    _cleanup_close_ int lfd = fd;
    _cleanup_free_ char *p = strdup(name);
    if (!p)
        return -ENOMEM;
    int r = sd_event_add_io(v->event, &v->listen_src, lfd, EPOLLIN, on_accept, v);
    if (r >= 0 && (r = listen_rest_init(&v->listen_rest, v->listen_src)) < 0)
        v->listen_src = sd_event_source_disable_unref(v->listen_src);
    if (r < 0)
        return r;
    if (v->fd >= 0)
        (void)sd_event_source_set_enabled(v->listen_src, SD_EVENT_OFF);
    v->listen_fd = TAKE_FD(lfd);
    v->path = TAKE_PTR(p);
    v->owns_path = owns_path;
    return 0;
}

int vhost_user_listen(struct vhost_user *v, const char *path)
{
    if (v->listen_fd >= 0)
        return -EBUSY;
    if (!path || !*path)
        return -ENAMETOOLONG;
    int fd;
    int r = vsock_hybrid_listen(path, &fd); /* the same kind of listener: Unix, stale replaced */
    if (r < 0)
        return r;
    r = listen_on(v, fd, path, true);
    if (r < 0)
        unlink(path);
    return r;
}

int vhost_user_listen_fd(struct vhost_user *v, int fd, const char *name)
{
    if (v->listen_fd >= 0) {
        close(fd);
        return -EBUSY;
    }
    return listen_on(v, fd, name && *name ? name : "its socket", false);
}

int vhost_user_new(sd_event *e, const struct vhost_user_device *dev, void *userdata,
                   struct vhost_user **ret)
{
    if (!e || !dev || dev->n_queues == 0 || dev->n_queues > VHOST_USER_MAX_QUEUES ||
        dev->n_required > dev->n_queues || !dev->get_config || !dev->live || !dev->kick)
        return -EINVAL;
    struct vhost_user *v = calloc(1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    v->event = sd_event_ref(e);
    v->dev = *dev;
    v->userdata = userdata;
    v->log_stage = dev->log_stage;
    v->listen_fd = v->fd = -1;
    for (unsigned i = 0; i < VHOST_USER_MAX_FDS; i++)
        v->fds[i] = -1;
    for (unsigned i = 0; i < VHOST_USER_MAX_QUEUES; i++) {
        virtqueue_init(&v->vq[i]);
        v->kick[i] = (struct vu_kick){.v = v, .idx = i};
    }
    *ret = v;
    return 0;
}

void vhost_user_free(struct vhost_user *v)
{
    if (!v)
        return;
    vhost_user_disconnect(v);
    reset_rings(v);
    listen_rest_done(&v->listen_rest);
    v->listen_src = sd_event_source_disable_unref(v->listen_src);
    closep(&v->listen_fd);
    if (v->path && v->owns_path)
        unlink(v->path);
    free(v->path);
    sd_event_unref(v->event);
    free(v);
}

bool vhost_user_connected(const struct vhost_user *v)
{
    return v->fd >= 0;
}
