/* libFuzzer target: the vhost-user back-end fed a hostile front-end over a real socketpair.
 * Input: records of [u8 fds][u32 request][u32 flags][u16 size][size bytes], little-endian. The
 * low 4 bits of `fds` attach that many descriptors (bit 4: eventfds, else the 1 MiB guest memfd)
 * with SCM_RIGHTS; request 0xf00d instead writes the payload (after a u32 offset) into guest
 * memory, so the fuzzer can lay out rings. A fake device pops and returns every chain the rings
 * offer. After each input every fd the back-end received must be closed again. */
#include "vsock/vhost_user.h"

#include <dirent.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define MEM_SIZE (1u << 20)
#define POKE 0xf00du

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct dev {
    const struct vq_mem *mem;
    struct virtqueue *vqs;
};

static int get_config(void *ud, uint32_t off, uint8_t *buf, uint32_t n)
{
    if (off > 8 || n > 8 - off)
        return -EINVAL;
    memset(buf, 3, n);
    return 0;
}

static void live(void *ud, bool on, const struct vq_mem *mem, struct virtqueue *vqs)
{
    struct dev *d = ud;
    d->mem = on ? mem : NULL;
    d->vqs = on ? vqs : NULL;
}

static void kick(void *ud, unsigned q)
{
    struct dev *d = ud;
    if (!d->mem)
        return;
    struct vq_chain c;
    for (int i = 0; i < 64; i++) {
        int r = virtqueue_pop(&d->vqs[q], d->mem, &c);
        if (r == 0 || r == -EPROTO)
            break;
        for (unsigned k = 0; k < c.n_out + c.n_in; k++) /* touch every byte handed to us */
            if (c.seg[k].iov_len)
                ((volatile uint8_t *)c.seg[k].iov_base)[c.seg[k].iov_len - 1] ^= 0;
        if (c.has_head)
            virtqueue_push(&d->vqs[q], c.head, 0);
    }
    (void)virtqueue_notify(&d->vqs[q]);
}

static const struct vhost_user_device fake = {
    .n_queues = 3,
    .n_required = 2,
    .features = 1ull << VIRTIO_F_VERSION_1,
    .log_stage = "fuzz: vhost-user",
    .get_config = get_config,
    .live = live,
    .kick = kick,
};

static unsigned count_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    unsigned n = 0;
    while (dir && readdir(dir))
        n++;
    if (dir)
        closedir(dir);
    return n;
}

static void pump(sd_event *e)
{
    for (int i = 0; i < 256; i++)
        if (sd_event_run(e, 0) <= 0)
            break;
}

static void drain(int fd)
{
    char buf[4096];
    while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
        ;
}

static void send_record(int fd, int memfd, uint8_t spec, const uint8_t *hdr, const uint8_t *p,
                        uint16_t n)
{
    int fds[15];
    unsigned nfds = spec & 0x0f;
    for (unsigned i = 0; i < nfds; i++)
        fds[i] = spec & 0x10 ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : dup(memfd);
    struct iovec iov[2] = {{(void *)hdr, 12}, {(void *)p, n}};
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 15)];
    } ctl;
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = n ? 2 : 1};
    if (nfds) {
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        *c = (struct cmsghdr){.cmsg_len = CMSG_LEN(sizeof(int) * nfds),
                              .cmsg_level = SOL_SOCKET,
                              .cmsg_type = SCM_RIGHTS};
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    (void)sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    for (unsigned i = 0; i < nfds; i++)
        close(fds[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int memfd = -1;
    static uint8_t *mem;
    if (memfd < 0) {
        memfd = memfd_create("fuzz-guest", MFD_CLOEXEC);
        if (memfd < 0 || ftruncate(memfd, MEM_SIZE) < 0)
            abort();
        mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
        if (mem == MAP_FAILED)
            abort();
    }
    memset(mem, 0, MEM_SIZE);
    unsigned fds_before = count_fds();

    sd_event *e = NULL;
    struct vhost_user *v = NULL;
    struct dev d = {0};
    int sp[2];
    if (sd_event_new(&e) < 0 || vhost_user_new(e, &fake, &d, &v) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
        abort();
    if (vhost_user_adopt(v, sp[1]) < 0)
        abort();

    size_t at = 0;
    while (at + 15 <= size && vhost_user_connected(v)) {
        uint8_t spec = data[at];
        const uint8_t *hdr = data + at + 1;
        uint16_t n;
        memcpy(&n, data + at + 13, 2);
        at += 15;
        if (n > size - at)
            n = (uint16_t)(size - at);
        const uint8_t *p = data + at;
        at += n;
        uint32_t req;
        memcpy(&req, hdr, 4);
        if (req == POKE) {
            uint32_t off;
            if (n < 4)
                continue;
            memcpy(&off, p, 4);
            off %= MEM_SIZE;
            size_t k = n - 4u < MEM_SIZE - off ? n - 4u : MEM_SIZE - off;
            memcpy(mem + off, p + 4, k);
            continue;
        }
        uint8_t h[12];
        memcpy(h, hdr, 8);
        uint32_t sz = n; /* the header's size field says what was sent... */
        if (spec & 0x20)
            memcpy(&sz, hdr + 8, 4); /* ...unless the fuzzer lies about it */
        memcpy(h + 8, &sz, 4);
        send_record(sp[0], memfd, spec, h, p, n);
        pump(e);
        drain(sp[0]);
    }
    close(sp[0]);
    pump(e);
    vhost_user_free(v);
    sd_event_unref(e);
    if (count_fds() != fds_before)
        abort(); /* a received fd leaked */
    return 0;
}
