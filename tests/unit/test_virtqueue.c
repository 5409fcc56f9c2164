/* virtqueue: split rings in untrusted guest memory, built by hand (tests/support/fake_guest).
 * Every hostile layout must be refused with the documented error and without touching memory
 * outside the region (run under ASan: the "guest memory" is one malloc'd block). */
#include "tests/support/fake_guest.h"
#include "tests/support/run_suite.h"
#include "vsock/virtqueue.h"

#include <check.h>
#include <errno.h>
#include <linux/virtio_ring.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#define MEM_SIZE (4u << 20)
#define NUM 8

static struct fake_guest g;
static struct fake_ring r;

static void setup(void)
{
    ck_assert_int_eq(fg_init(&g, 10u * FG_SLOT_SIZE + MEM_SIZE), 0);
    ck_assert_int_eq(fg_ring_init(&g, &r, NUM, true), 0);
}

static void teardown(void)
{
    fg_ring_free(&r);
    fg_free(&g);
}

static int pop(struct vq_chain *c)
{
    return virtqueue_pop(&r.vq, &g.table, c);
}

START_TEST(good_chain)
{
    fg_desc(&r, 0, fg_slot(&r, 0), 44, VRING_DESC_F_NEXT, 3);
    fg_desc(&r, 3, fg_slot(&r, 3), 100, VRING_DESC_F_NEXT, 5);
    fg_desc(&r, 5, fg_slot(&r, 5), 200, VRING_DESC_F_WRITE, 0);
    memcpy(fg_ptr(&g, fg_slot(&r, 0)), "hello", 5);
    fg_avail(&r, 0);

    struct vq_chain c;
    ck_assert_int_eq(pop(&c), 1);
    ck_assert_uint_eq(c.head, 0);
    ck_assert_uint_eq(c.n_out, 2);
    ck_assert_uint_eq(c.n_in, 1);
    ck_assert_uint_eq(c.out_bytes, 144);
    ck_assert_uint_eq(c.in_bytes, 200);
    ck_assert_ptr_eq(c.seg[0].iov_base, fg_ptr(&g, fg_slot(&r, 0)));
    ck_assert_mem_eq(c.seg[0].iov_base, "hello", 5);
    ck_assert_int_eq(pop(&c), 0); /* empty now */

    virtqueue_push(&r.vq, c.head, 7);
    uint32_t id, len;
    ck_assert(fg_used(&r, &id, &len));
    ck_assert_uint_eq(id, 0);
    ck_assert_uint_eq(len, 7);
    ck_assert_int_eq(virtqueue_notify(&r.vq), 0);
    eventfd_t v;
    ck_assert_int_eq(eventfd_read(r.vq.call_fd, &v), 0);
    ck_assert_uint_eq(v, 1);
}
END_TEST

START_TEST(notify_suppressed)
{
    fg_desc(&r, 0, fg_slot(&r, 0), 10, 0, 0);
    fg_avail(&r, 0);
    uint16_t flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);
    memcpy(fg_ptr(&g, r.avail), &flags, 2);
    struct vq_chain c;
    ck_assert_int_eq(pop(&c), 1);
    virtqueue_push(&r.vq, c.head, 0);
    ck_assert_int_eq(virtqueue_notify(&r.vq), 0);
    eventfd_t v;
    ck_assert_int_eq(eventfd_read(r.vq.call_fd, &v), -1); /* nothing signalled */
    ck_assert_int_eq(errno, EAGAIN);
}
END_TEST

START_TEST(index_wraps)
{
    virtqueue_set_base(&r.vq, 65534);
    r.avail_idx = 65534;
    uint16_t used = htole16(65534);
    memcpy(fg_ptr(&g, r.used + 2), &used, 2);
    r.used_seen = 65534;
    for (int i = 0; i < 4; i++) {
        fg_desc(&r, (uint16_t)i, fg_slot(&r, (uint16_t)i), 8, 0, 0);
        fg_avail(&r, (uint16_t)i);
        struct vq_chain c;
        ck_assert_int_eq(pop(&c), 1);
        ck_assert_uint_eq(c.head, (unsigned)i);
        virtqueue_push(&r.vq, c.head, 0);
        uint32_t id, len;
        ck_assert(fg_used(&r, &id, &len));
        ck_assert_uint_eq(id, (unsigned)i);
    }
    ck_assert_uint_eq(r.vq.last_avail, 2);
}
END_TEST

START_TEST(zero_length_skipped)
{
    fg_desc(&r, 0, 0xdead0000, 0, VRING_DESC_F_NEXT, 1); /* no bytes: address never used */
    fg_desc(&r, 1, fg_slot(&r, 1), 16, 0, 0);
    fg_avail(&r, 0);
    struct vq_chain c;
    ck_assert_int_eq(pop(&c), 1);
    ck_assert_uint_eq(c.n_out, 1);
    ck_assert_uint_eq(c.out_bytes, 16);
}
END_TEST

/* Expects the next pop to fail with ERR after taking head HEAD. */
static void expect_drop(int err, uint16_t head)
{
    struct vq_chain c;
    ck_assert_int_eq(pop(&c), err);
    ck_assert(c.has_head);
    ck_assert_uint_eq(c.head, head);
    uint16_t before = r.vq.last_avail;
    ck_assert_int_eq(pop(&c), 0); /* the bad chain was consumed, nothing else pending */
    ck_assert_uint_eq(r.vq.last_avail, before);
}

START_TEST(outside_region)
{
    fg_desc(&r, 0, FG_GPA + g.size, 1, 0, 0); /* first byte past the end */
    fg_avail(&r, 0);
    expect_drop(-EFAULT, 0);
    fg_desc(&r, 1, FG_GPA + g.size - 10, 11, 0, 0); /* last byte past the end */
    fg_avail(&r, 1);
    expect_drop(-EFAULT, 1);
    fg_desc(&r, 2, FG_GPA - 1, 4, 0, 0); /* before the start */
    fg_avail(&r, 2);
    expect_drop(-EFAULT, 2);
    fg_desc(&r, 3, 0, 4096, 0, 0); /* guest address 0: not in the table */
    fg_avail(&r, 3);
    expect_drop(-EFAULT, 3);
}
END_TEST

START_TEST(addr_len_overflow)
{
    fg_desc(&r, 0, UINT64_MAX - 10, 100, 0, 0);
    fg_avail(&r, 0);
    expect_drop(-EFAULT, 0);
    fg_desc(&r, 1, FG_GPA + 16, UINT32_MAX, 0, 0);
    fg_avail(&r, 1);
    expect_drop(-EFAULT, 1);
    /* a valid first segment, then a bad one: the good prefix is kept for the caller */
    fg_desc(&r, 2, fg_slot(&r, 2), 44, VRING_DESC_F_NEXT, 4);
    fg_desc(&r, 4, UINT64_MAX, 1, 0, 0);
    fg_avail(&r, 2);
    struct vq_chain c;
    ck_assert_int_eq(pop(&c), -EFAULT);
    ck_assert_uint_eq(c.n_out, 1);
    ck_assert_uint_eq(c.out_bytes, 44);
}
END_TEST

START_TEST(loop)
{
    fg_desc(&r, 0, fg_slot(&r, 0), 8, VRING_DESC_F_NEXT, 1);
    fg_desc(&r, 1, fg_slot(&r, 1), 8, VRING_DESC_F_NEXT, 0);
    fg_avail(&r, 0);
    expect_drop(-ELOOP, 0);
    fg_desc(&r, 2, fg_slot(&r, 2), 8, VRING_DESC_F_NEXT, 2); /* itself */
    fg_avail(&r, 2);
    expect_drop(-ELOOP, 2);
    /* the same loop with zero-length descriptors (nothing collected, still bounded) */
    fg_desc(&r, 3, 0, 0, VRING_DESC_F_NEXT, 4);
    fg_desc(&r, 4, 0, 0, VRING_DESC_F_NEXT, 3);
    fg_avail(&r, 3);
    expect_drop(-ELOOP, 3);
}
END_TEST

START_TEST(next_out_of_range)
{
    fg_desc(&r, 0, fg_slot(&r, 0), 8, VRING_DESC_F_NEXT, NUM);
    fg_avail(&r, 0);
    expect_drop(-EBADMSG, 0);
    fg_desc(&r, 1, fg_slot(&r, 1), 8, VRING_DESC_F_NEXT, 0xffff);
    fg_avail(&r, 1);
    expect_drop(-EBADMSG, 1);
}
END_TEST

START_TEST(head_out_of_range)
{
    fg_avail(&r, NUM);
    struct vq_chain c;
    ck_assert_int_eq(pop(&c), -EINVAL);
    ck_assert(!c.has_head);
    fg_avail(&r, 0xffff);
    ck_assert_int_eq(pop(&c), -EINVAL);
    ck_assert(!c.has_head);
}
END_TEST

START_TEST(avail_idx_jump)
{
    fg_set_avail_idx(&r, NUM + 1); /* more entries than the ring has */
    struct vq_chain c;
    ck_assert_int_eq(pop(&c), -EPROTO);
    ck_assert_uint_eq(r.vq.last_avail, 0);
    fg_set_avail_idx(&r, 0xffff); /* "went backwards" */
    ck_assert_int_eq(pop(&c), -EPROTO);
}
END_TEST

START_TEST(readable_after_writable)
{
    fg_desc(&r, 0, fg_slot(&r, 0), 44, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    fg_desc(&r, 1, fg_slot(&r, 1), 44, 0, 0);
    fg_avail(&r, 0);
    expect_drop(-EBADMSG, 0);
}
END_TEST

START_TEST(indirect_good)
{
    uint64_t t = fg_alloc(&g, 16 * 3, 16);
    fg_desc_at(&g, t, 0, fg_slot(&r, 1), 44, VRING_DESC_F_NEXT, 2);
    fg_desc_at(&g, t, 2, fg_slot(&r, 2), 10, VRING_DESC_F_NEXT, 1);
    fg_desc_at(&g, t, 1, fg_slot(&r, 3), 64, VRING_DESC_F_WRITE, 0);
    /* the write flag on the pointer descriptor is ignored, as the spec requires */
    fg_desc(&r, 0, t, 48, VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, 0);
    fg_avail(&r, 0);
    struct vq_chain c;
    ck_assert_int_eq(pop(&c), 1);
    ck_assert_uint_eq(c.n_out, 2);
    ck_assert_uint_eq(c.n_in, 1);
    ck_assert_uint_eq(c.out_bytes, 54);
    /* direct descriptors, then one indirect table: allowed */
    fg_desc(&r, 4, fg_slot(&r, 4), 44, VRING_DESC_F_NEXT, 5);
    fg_desc(&r, 5, t, 48, VRING_DESC_F_INDIRECT, 0);
    fg_avail(&r, 4);
    ck_assert_int_eq(pop(&c), 1);
    ck_assert_uint_eq(c.n_out, 3);
}
END_TEST

START_TEST(indirect_hostile)
{
    uint64_t t = fg_alloc(&g, 16 * 4, 16);
    fg_desc_at(&g, t, 0, fg_slot(&r, 1), 8, 0, 0);

    fg_desc(&r, 0, FG_GPA + g.size - 16, 32, VRING_DESC_F_INDIRECT, 0); /* table out of bounds */
    fg_avail(&r, 0);
    expect_drop(-EFAULT, 0);
    fg_desc(&r, 1, UINT64_MAX - 15, 32, VRING_DESC_F_INDIRECT, 0); /* wraps */
    fg_avail(&r, 1);
    expect_drop(-EFAULT, 1);
    fg_desc(&r, 2, t, 20, VRING_DESC_F_INDIRECT, 0); /* not a multiple of 16 */
    fg_avail(&r, 2);
    expect_drop(-EBADMSG, 2);
    fg_desc(&r, 3, t, 0, VRING_DESC_F_INDIRECT, 0); /* empty */
    fg_avail(&r, 3);
    expect_drop(-EBADMSG, 3);
    fg_desc(&r, 4, t, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 5); /* INDIRECT + NEXT */
    fg_avail(&r, 4);
    expect_drop(-EBADMSG, 4);
    fg_desc(&r, 5, t, 16u * (NUM + 1), VRING_DESC_F_INDIRECT, 0); /* larger than the queue */
    fg_avail(&r, 5);
    expect_drop(-EBADMSG, 5);

    fg_desc_at(&g, t, 1, t, 16, VRING_DESC_F_INDIRECT, 0); /* nested */
    fg_desc(&r, 6, t + 16, 16, VRING_DESC_F_INDIRECT, 0);
    fg_avail(&r, 6);
    expect_drop(-EBADMSG, 6);

    /* a loop inside a two-entry table (its entries 0 and 1 are t[2] and t[3]) */
    fg_desc_at(&g, t, 2, fg_slot(&r, 2), 8, VRING_DESC_F_NEXT, 1);
    fg_desc_at(&g, t, 3, fg_slot(&r, 3), 8, VRING_DESC_F_NEXT, 0);
    fg_desc(&r, 7, t + 32, 32, VRING_DESC_F_INDIRECT, 0);
    fg_avail(&r, 7);
    expect_drop(-ELOOP, 7);

    fg_desc_at(&g, t, 2, fg_slot(&r, 2), 8, VRING_DESC_F_NEXT, 9); /* next beyond the table */
    fg_desc(&r, 0, t + 32, 32, VRING_DESC_F_INDIRECT, 0);
    fg_avail(&r, 0);
    expect_drop(-EBADMSG, 0);
}
END_TEST

START_TEST(indirect_not_negotiated)
{
    r.vq.indirect = false;
    uint64_t t = fg_alloc(&g, 16, 16);
    fg_desc_at(&g, t, 0, fg_slot(&r, 1), 8, 0, 0);
    fg_desc(&r, 0, t, 16, VRING_DESC_F_INDIRECT, 0);
    fg_avail(&r, 0);
    expect_drop(-EBADMSG, 0);
}
END_TEST

START_TEST(chain_longer_than_queue)
{
    /* NUM direct descriptors, the last pointing at a full indirect table: NUM-1 + NUM
     * segments, more than a chain may have */
    uint64_t t = fg_alloc(&g, 16u * NUM, 16);
    for (uint16_t i = 0; i < NUM; i++)
        fg_desc_at(&g, t, i, fg_slot(&r, i), 4, i + 1 < NUM ? VRING_DESC_F_NEXT : 0,
                   (uint16_t)(i + 1));
    for (uint16_t i = 0; i + 1 < NUM; i++)
        fg_desc(&r, i, fg_slot(&r, i), 4, VRING_DESC_F_NEXT, (uint16_t)(i + 1));
    fg_desc(&r, NUM - 1, t, 16u * NUM, VRING_DESC_F_INDIRECT, 0);
    fg_avail(&r, 0);
    expect_drop(-E2BIG, 0);
}
END_TEST

START_TEST(ring_mapping)
{
    struct virtqueue vq;
    virtqueue_init(&vq);
    ck_assert_int_eq(virtqueue_set_num(&vq, 6), -EINVAL);
    ck_assert_int_eq(virtqueue_set_num(&vq, 0), -EINVAL);
    ck_assert_int_eq(virtqueue_set_num(&vq, 65536), -EINVAL);
    ck_assert_int_eq(virtqueue_set_num(&vq, 32768), 0);
    ck_assert_int_eq(virtqueue_set_num(&vq, 16), 0);
    ck_assert_int_eq(virtqueue_map(&vq, &g.table), -EINVAL); /* no addresses yet */
    /* a used ring running past the end of memory */
    virtqueue_set_addr(&vq, FG_UVA, FG_UVA + 4096, FG_UVA + g.size - 16);
    ck_assert_int_eq(virtqueue_map(&vq, &g.table), -EFAULT);
    ck_assert(!virtqueue_ready(&vq));
    virtqueue_set_addr(&vq, FG_UVA + 8, FG_UVA + 4096, FG_UVA + 8192); /* misaligned table */
    ck_assert_int_eq(virtqueue_map(&vq, &g.table), -EFAULT);
    virtqueue_set_addr(&vq, FG_GPA, FG_GPA + 4096, FG_GPA + 8192); /* guest-physical: wrong */
    ck_assert_int_eq(virtqueue_map(&vq, &g.table), -EFAULT);
    virtqueue_set_addr(&vq, FG_UVA, FG_UVA + 4096, FG_UVA + 8192);
    ck_assert_int_eq(virtqueue_map(&vq, &g.table), 0);
    struct vq_chain c;
    ck_assert_int_eq(virtqueue_pop(&vq, &g.table, &c), 0);
    virtqueue_reset(&vq);
    ck_assert_int_eq(virtqueue_pop(&vq, &g.table, &c), -EPROTO); /* unmapped */
}
END_TEST

START_TEST(mem_table)
{
    static uint8_t a[4096], b[4096];
    struct vq_mem m = {0};
    ck_assert_int_eq(vq_mem_add_host(&m, 0x1000, 0x10000, sizeof(a), a), 0);
    ck_assert_int_eq(vq_mem_add_host(&m, 0x1800, 0x20000, sizeof(b), b), -EINVAL); /* overlap */
    ck_assert_int_eq(vq_mem_add_host(&m, UINT64_MAX - 10, 0x20000, 4096, b), -EINVAL);
    ck_assert_int_eq(vq_mem_add_host(&m, 0x3000, UINT64_MAX, 2, b), -EINVAL);
    ck_assert_int_eq(vq_mem_add_host(&m, 0x3000, 0x20000, 0, b), -EINVAL);
    ck_assert_int_eq(vq_mem_add_host(&m, 0x2000, 0x20000, sizeof(b), b), 0); /* adjacent */
    ck_assert_ptr_eq(vq_mem_gpa(&m, 0x1000, 4096), a);
    ck_assert_ptr_eq(vq_mem_gpa(&m, 0x1fff, 1), a + 4095);
    ck_assert_ptr_null(vq_mem_gpa(&m, 0x1fff, 2)); /* never spans two regions */
    ck_assert_ptr_eq(vq_mem_gpa(&m, 0x2000, 1), b);
    ck_assert_ptr_null(vq_mem_gpa(&m, 0x3000, 1));
    ck_assert_ptr_null(vq_mem_gpa(&m, 0xfff, 1));
    ck_assert_ptr_null(vq_mem_gpa(&m, 0x1000, UINT64_MAX));
    ck_assert_ptr_eq(vq_mem_uva(&m, 0x20010, 16), b + 16);
    ck_assert_ptr_null(vq_mem_uva(&m, 0x1000, 1));
    for (unsigned i = 2; i < VQ_MEM_MAX_REGIONS; i++)
        ck_assert_int_eq(vq_mem_add_host(&m, 0x10000u * (i + 1), 0, 16, b), 0);
    ck_assert_int_eq(vq_mem_add_host(&m, 0x900000, 0, 16, b), -E2BIG);
    vq_mem_clear(&m);
}
END_TEST

START_TEST(mem_fd)
{
    int fd = memfd_create("guest", MFD_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    long page = sysconf(_SC_PAGESIZE);
    ck_assert_int_eq(ftruncate(fd, 4 * page), 0);
    ck_assert_int_eq(pwrite(fd, "ABCD", 4, page + 100), 4);
    struct vq_mem m = {0};
    /* beyond the end of the file: refused (touching it would SIGBUS) */
    ck_assert_int_eq(vq_mem_add_fd(&m, 0, 0x10000, 4 * page, fd, page), -ERANGE);
    ck_assert_int_eq(vq_mem_add_fd(&m, 0, 0x10000, UINT64_MAX, fd, 0), -EINVAL);
    ck_assert_int_eq(vq_mem_add_fd(&m, 0, 0x10000, 16, fd, UINT64_MAX - 8), -EINVAL);
    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    ck_assert_int_eq(vq_mem_add_fd(&m, 0, 0x10000, 16, pipefd[0], 0), -EBADF);
    close(pipefd[0]);
    close(pipefd[1]);
    ck_assert_uint_eq(m.n, 0);
    /* an unaligned offset maps the right bytes */
    ck_assert_int_eq(vq_mem_add_fd(&m, 0x100000, 0x10000, 2 * page, fd, page + 96), 0);
    ck_assert_mem_eq(vq_mem_gpa(&m, 0x100004, 4), "ABCD", 4);
    vq_mem_clear(&m);
    ck_assert_uint_eq(m.n, 0);
    close(fd);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("virtqueue");
    TCase *t = tcase_create("rings");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, good_chain);
    tcase_add_test(t, notify_suppressed);
    tcase_add_test(t, index_wraps);
    tcase_add_test(t, zero_length_skipped);
    tcase_add_test(t, outside_region);
    tcase_add_test(t, addr_len_overflow);
    tcase_add_test(t, loop);
    tcase_add_test(t, next_out_of_range);
    tcase_add_test(t, head_out_of_range);
    tcase_add_test(t, avail_idx_jump);
    tcase_add_test(t, readable_after_writable);
    tcase_add_test(t, indirect_good);
    tcase_add_test(t, indirect_hostile);
    tcase_add_test(t, indirect_not_negotiated);
    tcase_add_test(t, chain_longer_than_queue);
    tcase_add_test(t, ring_mapping);
    tcase_add_test(t, mem_table);
    tcase_add_test(t, mem_fd);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return run_suite(suite());
}
