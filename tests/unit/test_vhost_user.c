/* vhost_user: the back-end protocol spoken for real over a Unix socket, with memfd-backed guest
 * memory passed by SCM_RIGHTS, as QEMU does it. A recording fake device checks what the protocol
 * layer tells the device; one test runs the real vsock device behind it, end to end through the
 * rings. Hostile front-ends (oversized and malformed messages, too many fds, regions beyond the
 * file, unknown requests) are refused without a crash or an fd leak, and the server takes the
 * next front-end. */

#include "tests/support/loop_probe.h"
#include "tests/support/run_suite.h"
#include "vsock/vhost_user.h"
#include "vsock/vsock_dev.h"
#include "vsock/vsock_pkt.h"

#include <check.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/vhost_types.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>
#include <linux/virtio_vsock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MEM_SIZE (1u << 20)
#define UVA 0x7f5500000000ull
#define GPA 0x0ull
#define QSIZE 16u
/* ring layout inside guest memory, per queue q: 0x1000 * (1 + 4q) ... */
#define DESC(q) (0x1000u + 0x4000u * (q))
#define AVAIL(q) (DESC(q) + 0x1000u)
#define USED(q) (DESC(q) + 0x2000u)
#define BUFS 0x40000u

struct fake_dev {
    int live_calls, kicks[3];
    bool live;
    const struct vq_mem *mem;
    struct virtqueue *vqs;
};

static sd_event *e;
static struct vhost_user *v;
static struct fake_dev fd_dev;
static int fe = -1; /* the front-end's end of the socket */
static int memfd = -1;
static uint8_t *mem; /* the test's view of guest memory */
static int kickfd[2] = {-1, -1}, callfd[2] = {-1, -1};

static int fake_get_config(void *ud, uint32_t off, uint8_t *buf, uint32_t size)
{
    static const uint8_t cfg[8] = {3, 0, 0, 0, 0, 0, 0, 0};
    if (off > sizeof(cfg) || size > sizeof(cfg) - off)
        return -EINVAL;
    memcpy(buf, cfg + off, size);
    return 0;
}

static void fake_live(void *ud, bool live, const struct vq_mem *m, struct virtqueue *vqs)
{
    struct fake_dev *f = ud;
    f->live_calls++;
    f->live = live;
    f->mem = m;
    f->vqs = vqs;
}

static void fake_kick(void *ud, unsigned q)
{
    ((struct fake_dev *)ud)->kicks[q]++;
}

static const struct vhost_user_device fake = {
    .n_queues = 3,
    .n_required = 2,
    .features = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC),
    .log_stage = "test: vhost-user",
    .get_config = fake_get_config,
    .live = fake_live,
    .kick = fake_kick,
};

static unsigned count_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    unsigned n = 0;
    for (struct dirent *de; (de = readdir(dir));)
        n++;
    closedir(dir);
    return n;
}

static void pump(void)
{
    for (int i = 0; i < 1000; i++)
        if (sd_event_run(e, 0) <= 0)
            break;
}

static void setup_mem(void)
{
    memfd = memfd_create("guest", MFD_CLOEXEC);
    ck_assert_int_ge(memfd, 0);
    ck_assert_int_eq(ftruncate(memfd, MEM_SIZE), 0);
    mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    ck_assert_ptr_ne(mem, MAP_FAILED);
    for (int q = 0; q < 2; q++) {
        kickfd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        callfd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
}

static void setup(void)
{
    ck_assert_int_eq(sd_event_new(&e), 0);
    memset(&fd_dev, 0, sizeof(fd_dev));
    ck_assert_int_eq(vhost_user_new(e, &fake, &fd_dev, &v), 0);
    int sp[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    fe = sp[0];
    ck_assert_int_eq(vhost_user_adopt(v, sp[1]), 0);
    setup_mem();
}

static void teardown(void)
{
    vhost_user_free(v);
    sd_event_unref(e);
    if (fe >= 0)
        close(fe);
    munmap(mem, MEM_SIZE);
    close(memfd);
    for (int q = 0; q < 2; q++) {
        close(kickfd[q]);
        close(callfd[q]);
    }
}

static void send_msg(uint32_t req, uint32_t flags, const void *p, uint32_t size, const int *fds,
                     unsigned nfds)
{
    uint32_t h[3] = {req, flags, size};
    struct iovec iov[2] = {{h, sizeof(h)}, {(void *)p, size}};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 16)];
    } ctl;
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = size ? 2 : 1};
    if (nfds) {
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    ck_assert_int_eq(sendmsg(fe, &mh, MSG_NOSIGNAL), (ssize_t)(sizeof(h) + size));
}

struct reply {
    uint32_t req, flags, size;
    union {
        uint64_t u64;
        struct vhost_vring_state state;
        uint8_t bytes[512];
    } p;
};

/* Runs the back-end, then reads its reply; false when there is none. */
static bool recv_reply(struct reply *r)
{
    pump();
    memset(r, 0, sizeof(*r));
    if (recv(fe, r, 12, MSG_DONTWAIT) != 12)
        return false;
    ck_assert_uint_eq(r->flags, VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY);
    ck_assert_uint_le(r->size, sizeof(r->p));
    if (r->size)
        ck_assert_int_eq(recv(fe, &r->p, r->size, MSG_DONTWAIT), (ssize_t)r->size);
    return true;
}

static uint64_t get_u64(uint32_t req)
{
    send_msg(req, VHOST_USER_VERSION, NULL, 0, NULL, 0);
    struct reply r;
    ck_assert(recv_reply(&r));
    ck_assert_uint_eq(r.req, req);
    ck_assert_uint_eq(r.size, 8);
    return r.p.u64;
}

/* Sends REQ asking for an acknowledgement (REPLY_ACK); returns its value (0: success). */
static uint64_t acked(uint32_t req, const void *p, uint32_t size, const int *fds, unsigned nfds)
{
    send_msg(req, VHOST_USER_VERSION | VHOST_USER_FLAG_NEED_REPLY, p, size, fds, nfds);
    struct reply r;
    ck_assert_msg(recv_reply(&r), "no ack for %s", vhost_user_request_to_string(req));
    ck_assert_uint_eq(r.req, req);
    ck_assert_uint_eq(r.size, 8);
    return r.p.u64;
}

static bool frontend_dropped(void)
{
    pump();
    char c;
    ssize_t n = recv(fe, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    return n == 0 || (n < 0 && errno == ECONNRESET); /* reset: it left our bytes unread */
}

static void negotiate(void)
{
    uint64_t f = get_u64(VHOST_USER_GET_FEATURES);
    ck_assert(f & (1ull << VIRTIO_F_VERSION_1));
    ck_assert(f & (1ull << VHOST_USER_F_PROTOCOL_FEATURES));
    ck_assert(!(f & (1ull << VIRTIO_RING_F_EVENT_IDX)));
    uint64_t pf = get_u64(VHOST_USER_GET_PROTOCOL_FEATURES);
    ck_assert(pf & (1ull << VHOST_USER_PROTOCOL_F_CONFIG));
    ck_assert(pf & (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK));
    pf &= (1ull << VHOST_USER_PROTOCOL_F_CONFIG) | (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK);
    send_msg(VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_VERSION, &pf, 8, NULL, 0);
    send_msg(VHOST_USER_SET_OWNER, VHOST_USER_VERSION, NULL, 0, NULL, 0);
    ck_assert_uint_eq(acked(VHOST_USER_SET_FEATURES, &f, 8, NULL, 0), 0);
}

struct mem_msg {
    uint32_t n, pad;
    struct {
        uint64_t gpa, size, uva, off;
    } r[9];
};

static uint64_t set_mem(uint64_t size, uint64_t off)
{
    struct mem_msg m = {.n = 1, .r = {{GPA, size, UVA, off}}};
    return acked(VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, &memfd, 1);
}

static void setup_ring(unsigned q)
{
    struct vhost_vring_state s = {q, QSIZE};
    ck_assert_uint_eq(acked(VHOST_USER_SET_VRING_NUM, &s, sizeof(s), NULL, 0), 0);
    s.num = 0;
    ck_assert_uint_eq(acked(VHOST_USER_SET_VRING_BASE, &s, sizeof(s), NULL, 0), 0);
    struct vhost_vring_addr a = {.index = q,
                                 .desc_user_addr = UVA + DESC(q),
                                 .used_user_addr = UVA + USED(q),
                                 .avail_user_addr = UVA + AVAIL(q)};
    ck_assert_uint_eq(acked(VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
    uint64_t u = q;
    ck_assert_uint_eq(acked(VHOST_USER_SET_VRING_KICK, &u, 8, &kickfd[q], 1), 0);
    ck_assert_uint_eq(acked(VHOST_USER_SET_VRING_CALL, &u, 8, &callfd[q], 1), 0);
    s = (struct vhost_vring_state){q, 1};
    ck_assert_uint_eq(acked(VHOST_USER_SET_VRING_ENABLE, &s, sizeof(s), NULL, 0), 0);
}

START_TEST(handshake)
{
    negotiate();
    /* config space: the guest CID, little-endian */
    uint32_t cfg[3 + 2] = {0, 8, 0};
    send_msg(VHOST_USER_GET_CONFIG, VHOST_USER_VERSION, cfg, 12 + 8, NULL, 0);
    struct reply r;
    ck_assert(recv_reply(&r));
    ck_assert_uint_eq(r.size, 20);
    ck_assert_uint_eq(r.p.bytes[12], 3);
    ck_assert_uint_eq(set_mem(MEM_SIZE, 0), 0);
    setup_ring(0);
    ck_assert(!fd_dev.live);
    setup_ring(1);
    ck_assert(fd_dev.live);
    ck_assert_int_eq(fd_dev.live_calls, 1);
    ck_assert_ptr_eq(fd_dev.vqs[1].desc, fd_dev.mem->r[0].host + DESC(1)); /* via the table */
    ck_assert_uint_eq(fd_dev.mem->n, 1);
    ck_assert_int_eq(fd_dev.kicks[1], 1); /* started: buffers may be waiting */

    ck_assert_int_eq(eventfd_write(kickfd[1], 1), 0);
    pump();
    ck_assert_int_eq(fd_dev.kicks[1], 2);

    /* stopping a ring (guest reset) takes the device down and reports the ring position */
    fd_dev.vqs[1].last_avail = 5;
    struct vhost_vring_state s = {1, 0};
    send_msg(VHOST_USER_GET_VRING_BASE, VHOST_USER_VERSION, &s, sizeof(s), NULL, 0);
    ck_assert(recv_reply(&r));
    ck_assert_uint_eq(r.p.state.index, 1);
    ck_assert_uint_eq(r.p.state.num, 5);
    ck_assert(!fd_dev.live);
    ck_assert_int_eq(eventfd_write(kickfd[1], 1), 0);
    pump();
    ck_assert_int_eq(fd_dev.kicks[1], 2); /* a stopped ring is not processed */
    /* restarted */
    uint64_t u = 1;
    ck_assert_uint_eq(acked(VHOST_USER_SET_VRING_KICK, &u, 8, &kickfd[1], 1), 0);
    ck_assert(fd_dev.live);
}
END_TEST

START_TEST(rings_wait_for_enable)
{
    negotiate(); /* with VHOST_USER_F_PROTOCOL_FEATURES: rings start disabled */
    ck_assert_uint_eq(set_mem(MEM_SIZE, 0), 0);
    for (unsigned q = 0; q < 2; q++) {
        struct vhost_vring_state s = {q, QSIZE};
        acked(VHOST_USER_SET_VRING_NUM, &s, sizeof(s), NULL, 0);
        struct vhost_vring_addr a = {.index = q,
                                     .desc_user_addr = UVA + DESC(q),
                                     .used_user_addr = UVA + USED(q),
                                     .avail_user_addr = UVA + AVAIL(q)};
        acked(VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
        uint64_t u = q;
        acked(VHOST_USER_SET_VRING_KICK, &u, 8, &kickfd[q], 1);
    }
    ck_assert(!fd_dev.live);
    struct vhost_vring_state s = {0, 1};
    acked(VHOST_USER_SET_VRING_ENABLE, &s, sizeof(s), NULL, 0);
    s.index = 1;
    acked(VHOST_USER_SET_VRING_ENABLE, &s, sizeof(s), NULL, 0);
    ck_assert(fd_dev.live);
    s.num = 0;
    acked(VHOST_USER_SET_VRING_ENABLE, &s, sizeof(s), NULL, 0);
    ck_assert(!fd_dev.live);
}
END_TEST

START_TEST(new_mem_table_remaps)
{
    negotiate();
    ck_assert_uint_eq(set_mem(MEM_SIZE, 0), 0);
    setup_ring(0);
    setup_ring(1);
    ck_assert(fd_dev.live);
    /* the same memory at a different offset: rings are translated again, device stays live */
    ck_assert_int_eq(ftruncate(memfd, 2 * MEM_SIZE), 0);
    struct mem_msg m = {.n = 1, .r = {{GPA, MEM_SIZE, UVA, MEM_SIZE}}};
    ck_assert_uint_eq(acked(VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, &memfd, 1), 0);
    ck_assert(fd_dev.live);
    m.r[0].uva = UVA + 0x100000000ull; /* the rings no longer translate: the device stops */
    ck_assert_uint_eq(acked(VHOST_USER_SET_MEM_TABLE, &m, 8 + 32, &memfd, 1), 0);
    ck_assert(!fd_dev.live);
}
END_TEST

START_TEST(partial_messages)
{
    /* a header in two pieces, a payload in another: reassembled */
    uint32_t h[3] = {VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, 0};
    ck_assert_int_eq(send(fe, h, 5, 0), 5);
    pump();
    ck_assert_int_eq(send(fe, (char *)h + 5, 7, 0), 7);
    struct reply r;
    ck_assert(recv_reply(&r));
    ck_assert_uint_eq(r.req, VHOST_USER_GET_FEATURES);
    uint32_t h2[3] = {VHOST_USER_SET_PROTOCOL_FEATURES, VHOST_USER_VERSION, 8};
    uint64_t pf = 1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK;
    ck_assert_int_eq(send(fe, h2, 12, 0), 12);
    pump();
    ck_assert_int_eq(send(fe, &pf, 3, 0), 3);
    pump();
    ck_assert_int_eq(send(fe, (char *)&pf + 3, 5, 0), 5);
    pump();
    ck_assert_uint_eq(acked(VHOST_USER_SET_OWNER, NULL, 0, NULL, 0), 0); /* REPLY_ACK is on */
}
END_TEST

/* --- hostile front-ends --- */

START_TEST(oversized_message)
{
    unsigned before = count_fds();
    uint8_t big[4096] = {0};
    send_msg(VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION, big, sizeof(big), &memfd, 1);
    ck_assert(frontend_dropped());
    ck_assert(!vhost_user_connected(v));
    ck_assert_uint_eq(count_fds(), before - 1); /* its socket, and the fd it was sent, closed */
}
END_TEST

START_TEST(bad_flags)
{
    send_msg(VHOST_USER_GET_FEATURES, 0x2, NULL, 0, NULL, 0); /* version 2 */
    ck_assert(frontend_dropped());
}
END_TEST

START_TEST(reply_flag_in_request)
{
    send_msg(VHOST_USER_GET_FEATURES, VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY, NULL, 0, NULL, 0);
    ck_assert(frontend_dropped());
}
END_TEST

START_TEST(too_many_fds)
{
    unsigned before = count_fds();
    int fds[12];
    for (int i = 0; i < 12; i++)
        fds[i] = memfd;
    struct mem_msg m = {.n = 8};
    send_msg(VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION, &m, 8 + 8 * 32, fds, 12);
    ck_assert(frontend_dropped());
    ck_assert_uint_eq(count_fds(), before - 1); /* none of the 12 copies kept */
}
END_TEST

START_TEST(fds_where_none_belong)
{
    negotiate();
    unsigned before = count_fds();
    ck_assert_uint_ne(acked(VHOST_USER_SET_OWNER, NULL, 0, &memfd, 1), 0);
    ck_assert_uint_eq(count_fds(), before);
    uint64_t u = 0; /* KICK without an fd and without the NOFD flag */
    ck_assert_uint_ne(acked(VHOST_USER_SET_VRING_KICK, &u, 8, NULL, 0), 0);
    u = VHOST_USER_VRING_NOFD; /* polling: not supported */
    ck_assert_uint_ne(acked(VHOST_USER_SET_VRING_KICK, &u, 8, NULL, 0), 0);
    int two[2] = {kickfd[0], kickfd[1]};
    u = 0;
    ck_assert_uint_ne(acked(VHOST_USER_SET_VRING_CALL, &u, 8, two, 2), 0);
    ck_assert_uint_eq(count_fds(), before);
    ck_assert(vhost_user_connected(v));
}
END_TEST

START_TEST(mem_table_hostile)
{
    negotiate();
    unsigned before = count_fds();
    ck_assert_uint_ne(set_mem(MEM_SIZE + 4096, 0), 0);     /* beyond the file */
    ck_assert_uint_ne(set_mem(MEM_SIZE, 4096), 0);         /* offset pushes it beyond */
    ck_assert_uint_ne(set_mem(UINT64_MAX, 0), 0);          /* wraps */
    ck_assert_uint_ne(set_mem(4096, UINT64_MAX - 100), 0); /* offset wraps */
    ck_assert_uint_ne(set_mem(0, 0), 0);                   /* empty */
    struct mem_msg m = {.n = 9};
    ck_assert_uint_ne(acked(VHOST_USER_SET_MEM_TABLE, &m, 8 + 8 * 32, &memfd, 1), 0);
    m.n = 0;
    ck_assert_uint_ne(acked(VHOST_USER_SET_MEM_TABLE, &m, 8, NULL, 0), 0);
    m = (struct mem_msg){.n = 2, .r = {{0, 4096, UVA, 0}, {0x10000, 4096, UVA + 0x10000, 0}}};
    ck_assert_uint_ne(acked(VHOST_USER_SET_MEM_TABLE, &m, 8 + 2 * 32, &memfd, 1), 0); /* 1 fd */
    m.n = 1;
    ck_assert_uint_ne(acked(VHOST_USER_SET_MEM_TABLE, &m, 8 + 2 * 32, &memfd, 1), 0); /* size */
    m = (struct mem_msg){.n = 2, .r = {{0, 8192, UVA, 0}, {4096, 4096, UVA + 0x10000, 0}}};
    int two[2] = {memfd, memfd};
    ck_assert_uint_ne(acked(VHOST_USER_SET_MEM_TABLE, &m, 8 + 2 * 32, two, 2), 0); /* overlap */
    int pfd[2];
    ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
    m = (struct mem_msg){.n = 1, .r = {{0, 4096, UVA, 0}}};
    ck_assert_uint_ne(acked(VHOST_USER_SET_MEM_TABLE, &m, 40, &pfd[0], 1), 0); /* a pipe */
    close(pfd[0]);
    close(pfd[1]);
    ck_assert_uint_eq(count_fds(), before);
    ck_assert(vhost_user_connected(v));
    /* without REPLY_ACK requested, a bad table ends the session */
    struct mem_msg bad = {.n = 1, .r = {{0, 2 * MEM_SIZE, UVA, 0}}};
    send_msg(VHOST_USER_SET_MEM_TABLE, VHOST_USER_VERSION, &bad, 40, &memfd, 1);
    ck_assert(frontend_dropped());
}
END_TEST

START_TEST(bad_ring_requests)
{
    negotiate();
    struct vhost_vring_addr a = {.index = 0, .desc_user_addr = UVA + DESC(0)};
    ck_assert_uint_ne(acked(VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0); /* no mem */
    ck_assert_uint_eq(set_mem(MEM_SIZE, 0), 0);
    struct vhost_vring_state s = {8, QSIZE};
    ck_assert_uint_ne(acked(VHOST_USER_SET_VRING_NUM, &s, sizeof(s), NULL, 0), 0); /* index */
    s = (struct vhost_vring_state){0, 3};
    ck_assert_uint_ne(acked(VHOST_USER_SET_VRING_NUM, &s, sizeof(s), NULL, 0), 0); /* not 2^n */
    s = (struct vhost_vring_state){0, 65536};
    ck_assert_uint_ne(acked(VHOST_USER_SET_VRING_NUM, &s, sizeof(s), NULL, 0), 0);
    s = (struct vhost_vring_state){0, 70000};
    ck_assert_uint_ne(acked(VHOST_USER_SET_VRING_BASE, &s, sizeof(s), NULL, 0), 0);
    s = (struct vhost_vring_state){0, QSIZE};
    ck_assert_uint_eq(acked(VHOST_USER_SET_VRING_NUM, &s, sizeof(s), NULL, 0), 0);
    a = (struct vhost_vring_addr){.index = 0,
                                  .desc_user_addr = UVA + MEM_SIZE - 16, /* runs off the end */
                                  .used_user_addr = UVA + USED(0),
                                  .avail_user_addr = UVA + AVAIL(0)};
    ck_assert_uint_ne(acked(VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
    a.desc_user_addr = UVA + DESC(0);
    a.flags = 0x80; /* unknown flag */
    ck_assert_uint_ne(acked(VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0), 0);
    uint64_t u = 0x1ff00; /* bits beyond index and NOFD */
    ck_assert_uint_ne(acked(VHOST_USER_SET_VRING_CALL, &u, 8, NULL, 0), 0);
    uint64_t f = 1ull << 40; /* a feature we never offered */
    ck_assert_uint_ne(acked(VHOST_USER_SET_FEATURES, &f, 8, NULL, 0), 0);
    ck_assert_uint_ne(acked(VHOST_USER_SET_FEATURES, &f, 4, NULL, 0), 0); /* short payload */
    ck_assert(!fd_dev.live);
    ck_assert(vhost_user_connected(v));
}
END_TEST

START_TEST(config_hostile)
{
    negotiate();
    struct reply r;
    uint32_t c[3 + 64] = {4, 8, 0}; /* offset 4 + 8 bytes: beyond the 8-byte space */
    send_msg(VHOST_USER_GET_CONFIG, VHOST_USER_VERSION, c, 12 + 8, NULL, 0);
    ck_assert(recv_reply(&r));
    ck_assert_uint_eq(r.size, 0); /* an empty reply means failure */
    c[0] = 0;
    c[1] = 200; /* size field disagrees with the message size */
    send_msg(VHOST_USER_GET_CONFIG, VHOST_USER_VERSION, c, 12 + 8, NULL, 0);
    ck_assert(recv_reply(&r));
    ck_assert_uint_eq(r.size, 0);
    c[1] = 0xffffffff;
    send_msg(VHOST_USER_GET_CONFIG, VHOST_USER_VERSION, c, 12, NULL, 0);
    ck_assert(recv_reply(&r));
    ck_assert_uint_eq(r.size, 0);
    c[1] = 8;
    ck_assert_uint_ne(acked(VHOST_USER_SET_CONFIG, c, 12 + 8, NULL, 0), 0); /* read-only */
    ck_assert(vhost_user_connected(v));
}
END_TEST

START_TEST(unknown_request)
{
    negotiate();
    ck_assert_uint_ne(acked(99, NULL, 0, NULL, 0), 0);
    ck_assert_uint_ne(acked(VHOST_USER_SET_LOG_BASE, NULL, 0, NULL, 0), 0);
    ck_assert(vhost_user_connected(v));
    get_u64(VHOST_USER_GET_FEATURES);                           /* still talking */
    send_msg(0xdeadbeef, VHOST_USER_VERSION, NULL, 0, NULL, 0); /* no ack asked: dropped */
    ck_assert(frontend_dropped());
}
END_TEST

/* The session ends; the server accepts the next front-end (a restarted QEMU). */
/* Replaces the fixture's session with a server listening on DIR/vu.sock (DIR made from the
 * template); SA is filled in for a front-end to connect to. */
static void listen_afresh(char *dir, struct sockaddr_un *sa)
{
    vhost_user_free(v);
    close(fe);
    fe = -1;
    ck_assert_int_eq(vhost_user_new(e, &fake, &fd_dev, &v), 0);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
    snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/vu.sock", dir);
    ck_assert_int_eq(vhost_user_listen(v, sa->sun_path), 0);
}

START_TEST(reconnect)
{
    char dir[] = "/tmp/ocvm-vu-XXXXXX";
    struct sockaddr_un sa;
    listen_afresh(dir, &sa);
    const char *path = sa.sun_path;
    for (int round = 0; round < 3; round++) {
        fe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(connect(fe, (struct sockaddr *)&sa, sizeof(sa)), 0);
        pump();
        ck_assert(vhost_user_connected(v));
        negotiate();
        ck_assert_uint_eq(set_mem(MEM_SIZE, 0), 0);
        setup_ring(0);
        setup_ring(1);
        ck_assert(fd_dev.live);
        close(fe); /* QEMU went away */
        fe = -1;
        pump();
        ck_assert(!fd_dev.live);
        ck_assert(!vhost_user_connected(v));
    }
    vhost_user_free(v);
    v = NULL;
    ck_assert_int_eq(access(path, F_OK), -1); /* socket file removed */
    rmdir(dir);
    ck_assert_int_eq(vhost_user_new(e, &fake, &fd_dev, &v), 0);
}
END_TEST

/* A live socket is never stolen, a stale one is replaced, other files are left alone. */
START_TEST(listen_path_rules)
{
    char dir[] = "/tmp/ocvm-vu-XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/vu.sock", dir);
    struct vhost_user *other;
    ck_assert_int_eq(vhost_user_new(e, &fake, &fd_dev, &other), 0);
    ck_assert_int_eq(vhost_user_listen(other, path), 0);
    ck_assert_int_eq(vhost_user_listen(v, path), -EADDRINUSE);
    vhost_user_free(other);                  /* removes its socket file */
    int s = socket(AF_UNIX, SOCK_STREAM, 0); /* a stale socket file: bound, never listening */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, path);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(s);
    ck_assert_int_eq(vhost_user_listen(v, path), 0);
    vhost_user_free(v);
    ck_assert_int_eq(vhost_user_new(e, &fake, &fd_dev, &v), 0);
    int f = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    close(f);
    ck_assert_int_eq(vhost_user_listen(v, path), -EEXIST);
    ck_assert_int_eq(access(path, F_OK), 0); /* left alone */
    unlink(path);
    rmdir(dir);
}
END_TEST

/* Out of fds: the listener rests instead of waking the loop without end, and the waiting
 * front-end is taken once fds are back. */
START_TEST(out_of_fds_rests_the_listener)
{
    char dir[] = "/tmp/ocvm-vu-XXXXXX";
    struct sockaddr_un sa;
    listen_afresh(dir, &sa);
    fe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct rlimit rl, low;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    low = (struct rlimit){.rlim_cur = 3, .rlim_max = rl.rlim_max}; /* below what is open */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    ck_assert_int_eq(connect(fe, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int dispatched = loop_wakeups(e, 300);
    ck_assert_msg(dispatched < 30, "the loop woke %d times in 300 ms", dispatched);
    ck_assert(!vhost_user_connected(v));
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    (void)sd_event_run(e, 200000); /* the rest ends */
    pump();
    ck_assert(vhost_user_connected(v));
    vhost_user_free(v);
    v = NULL;
    rmdir(dir);
    ck_assert_int_eq(vhost_user_new(e, &fake, &fd_dev, &v), 0);
}
END_TEST

static void put_hdr(uint64_t off, uint16_t op, uint32_t sport, uint32_t dport)
{
    struct virtio_vsock_hdr h = {.src_cid = htole64(3),
                                 .dst_cid = htole64(2),
                                 .src_port = htole32(sport),
                                 .dst_port = htole32(dport),
                                 .type = htole16(VIRTIO_VSOCK_TYPE_STREAM),
                                 .op = htole16(op),
                                 .buf_alloc = htole32(65536)};
    memcpy(mem + off, &h, sizeof(h));
}

static void put_desc(unsigned q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags)
{
    struct vring_desc d = {htole64(addr), htole32(len), htole16(flags), 0};
    memcpy(mem + DESC(q) + 16u * i, &d, sizeof(d));
}

static void put_avail(unsigned q, uint16_t idx, uint16_t head)
{
    uint16_t h = htole16(head), i = htole16((uint16_t)(idx + 1));
    memcpy(mem + AVAIL(q) + 4 + 2u * (idx % QSIZE), &h, 2);
    __atomic_store_n((uint16_t *)(mem + AVAIL(q) + 2), i, __ATOMIC_RELEASE);
}

static uint16_t used_idx(unsigned q)
{
    return le16toh(__atomic_load_n((uint16_t *)(mem + USED(q) + 2), __ATOMIC_ACQUIRE));
}

static struct virtio_vsock_hdr rx_hdr(uint16_t i)
{
    struct vring_used_elem u;
    memcpy(&u, mem + USED(0) + 4 + 8u * i, sizeof(u));
    ck_assert_uint_ge(le32toh(u.len), sizeof(struct virtio_vsock_hdr));
    struct virtio_vsock_hdr h;
    memcpy(&h, mem + BUFS + 0x1000u * le32toh(u.id), sizeof(h));
    return h;
}

/* The real vsock device behind the protocol: QEMU's handshake, then packets through rings in
 * the memfd that both sides map. */
START_TEST(vsock_device_end_to_end)
{
    vhost_user_free(v);
    v = NULL;
    close(fe);
    char dir[] = "/tmp/ocvm-vu-XXXXXX", uds[64], vu[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(uds, sizeof(uds), "%s/v.sock", dir);
    snprintf(vu, sizeof(vu), "%s/vu.sock", dir);
    struct vsock_dev *dev;
    struct vsock_dev_config cfg = {.guest_cid = 3, .uds_path = uds, .vhost_user_path = vu};
    ck_assert_int_eq(vsock_dev_new(e, &cfg, &dev), 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strcpy(sa.sun_path, vu);
    fe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(fe, (struct sockaddr *)&sa, sizeof(sa)), 0);
    pump();
    negotiate();
    uint32_t c[5] = {0, 8, 0};
    send_msg(VHOST_USER_GET_CONFIG, VHOST_USER_VERSION, c, 20, NULL, 0);
    struct reply r;
    ck_assert(recv_reply(&r));
    ck_assert_uint_eq(r.size, 20);
    ck_assert_uint_eq(r.p.bytes[12], 3); /* guest_cid, le64 */
    ck_assert_uint_eq(set_mem(MEM_SIZE, 0), 0);
    setup_ring(0);
    setup_ring(1);
    ck_assert(vsock_dev_live(dev));

    for (uint16_t i = 0; i < 4; i++) { /* rx buffers */
        put_desc(0, i, GPA + BUFS + 0x1000u * i, 0x1000, VRING_DESC_F_WRITE);
        put_avail(0, i, i);
    }
    ck_assert_int_eq(eventfd_write(kickfd[0], 1), 0);
    /* a guest connection to host port 4242, where nobody listens: refused */
    put_hdr(BUFS + 0x10000, VIRTIO_VSOCK_OP_REQUEST, 1000, 4242);
    put_desc(1, 0, GPA + BUFS + 0x10000, 44, 0);
    put_avail(1, 0, 0);
    ck_assert_int_eq(eventfd_write(kickfd[1], 1), 0);
    pump();
    ck_assert_uint_eq(used_idx(1), 1);
    ck_assert_uint_eq(used_idx(0), 1);
    struct virtio_vsock_hdr h = rx_hdr(0);
    ck_assert_uint_eq(le16toh(h.op), VIRTIO_VSOCK_OP_RST);
    ck_assert_uint_eq(le32toh(h.src_port), 4242);
    ck_assert_uint_eq(le32toh(h.dst_port), 1000);
    ck_assert_uint_eq(le64toh(h.dst_cid), 3);
    eventfd_t ev;
    ck_assert_int_eq(eventfd_read(callfd[0], &ev), 0); /* the guest was interrupted */

    /* a host client asks for guest port 5555: the guest sees a REQUEST */
    strcpy(sa.sun_path, uds);
    int cl = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(cl, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(send(cl, "CONNECT 5555\n", 13, 0), 13);
    pump();
    ck_assert_uint_eq(used_idx(0), 2);
    h = rx_hdr(1);
    ck_assert_uint_eq(le16toh(h.op), VIRTIO_VSOCK_OP_REQUEST);
    ck_assert_uint_eq(le32toh(h.dst_port), 5555);

    /* QEMU goes away (guest shut down): the client is closed, the device stops */
    close(fe);
    fe = -1;
    pump();
    ck_assert(!vsock_dev_live(dev));
    char b;
    ck_assert_int_eq(recv(cl, &b, 1, MSG_DONTWAIT), 0);
    close(cl);
    vsock_dev_free(dev);
    ck_assert_int_eq(access(vu, F_OK), -1);
    ck_assert_int_eq(access(uds, F_OK), -1);
    rmdir(dir);
    ck_assert_int_eq(vhost_user_new(e, &fake, &fd_dev, &v), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("vhost_user");
    TCase *t = tcase_create("protocol");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, handshake);
    tcase_add_test(t, rings_wait_for_enable);
    tcase_add_test(t, new_mem_table_remaps);
    tcase_add_test(t, partial_messages);
    tcase_add_test(t, reconnect);
    tcase_add_test(t, listen_path_rules);
    tcase_add_test(t, out_of_fds_rests_the_listener);
    tcase_add_test(t, vsock_device_end_to_end);
    suite_add_tcase(s, t);
    TCase *h = tcase_create("hostile");
    tcase_add_checked_fixture(h, setup, teardown);
    tcase_add_test(h, oversized_message);
    tcase_add_test(h, bad_flags);
    tcase_add_test(h, reply_flag_in_request);
    tcase_add_test(h, too_many_fds);
    tcase_add_test(h, fds_where_none_belong);
    tcase_add_test(h, mem_table_hostile);
    tcase_add_test(h, bad_ring_requests);
    tcase_add_test(h, config_hostile);
    tcase_add_test(h, unknown_request);
    suite_add_tcase(s, h);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
