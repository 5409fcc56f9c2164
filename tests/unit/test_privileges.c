/* privileges: which capabilities the supervisor keeps for what it still does, how they read in
 * its log, and (as root, in a forked child) that a drop leaves exactly that set in the effective,
 * permitted and bounding sets, with no_new_privs; and that a directory given to another user is
 * emptied as that user. */
#include "launcher/privileges.h"
#include "tests/support/run_suite.h"

#include <check.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define CAP CAPS_BIT

START_TEST(test_set_follows_needs)
{
    struct privileges_needs none = {0}, net = {.network = true},
                            user = {.other_user = true, .network = true},
                            ro = {.virtiofsd_ro = true}, rw = {.virtiofsd_rw = true};
    ck_assert_uint_eq(privileges_supervisor_set(&none), 0);
    ck_assert_uint_eq(privileges_supervisor_set(&net), CAP(CAP_NET_ADMIN));
    ck_assert_uint_eq(privileges_supervisor_set(&user), CAP(CAP_NET_ADMIN) | CAP(CAP_KILL) |
                                                            CAP(CAP_SETUID) | CAP(CAP_SETGID) |
                                                            CAP(CAP_SETPCAP));
    /* a read-only share's virtiofsd: its chroot, and emptying its bounding set after it */
    ck_assert_uint_eq(privileges_supervisor_set(&ro), CAP(CAP_SYS_CHROOT) | CAP(CAP_SETPCAP));
    uint64_t f = privileges_supervisor_set(&rw);
    ck_assert_uint_eq(f, CAP(CAP_SYS_CHROOT) | CAP(CAP_SETPCAP) | CAP(CAP_CHOWN) |
                             CAP(CAP_DAC_OVERRIDE) | CAP(CAP_FOWNER) | CAP(CAP_FSETID) |
                             CAP(CAP_SETUID) | CAP(CAP_SETGID));
    /* never what nothing here needs */
    uint64_t all = f | privileges_supervisor_set(&user);
    ck_assert(!(all & (CAP(CAP_SYS_MODULE) | CAP(CAP_SYS_RAWIO) | CAP(CAP_SYS_PTRACE) |
                       CAP(CAP_NET_RAW) | CAP(CAP_BPF) | CAP(CAP_DAC_READ_SEARCH) |
                       CAP(CAP_SYS_BOOT) | CAP(CAP_NET_BIND_SERVICE) | CAP(CAP_SYS_ADMIN) |
                       CAP(CAP_MKNOD) | CAP(CAP_SETFCAP))));
}
END_TEST

START_TEST(test_format)
{
    char *s;
    ck_assert_int_eq(privileges_format(0, &s), 0);
    ck_assert_str_eq(s, "none");
    free(s);
    ck_assert_int_eq(privileges_format(CAP(CAP_NET_ADMIN) | CAP(CAP_KILL) | CAP(40) | CAP(63), &s),
                     0);
    ck_assert_str_eq(s, "cap_kill,cap_net_admin,cap_checkpoint_restore,cap_63");
    free(s);
}
END_TEST

static const char *status_field(const char *key, char *buf, size_t size)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    size_t klen = strlen(key);
    buf[0] = '\0';
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            snprintf(buf, size, "%s", line + klen + 2);
            buf[strcspn(buf, "\n")] = '\0';
        }
    if (f)
        fclose(f);
    return buf;
}

START_TEST(test_drop_as_root)
{
    if (geteuid() != 0)
        return; /* said by main() */
    uint64_t keep = CAP(CAP_NET_ADMIN) | CAP(CAP_KILL), kept = 0;
    const char *step = NULL;
    ck_assert_int_eq(privileges_drop(keep, &kept, &step), 0);
    ck_assert_uint_eq(kept, keep);
    char b[64];
    ck_assert_str_eq(status_field("CapEff", b, sizeof(b)), "0000000000001020");
    ck_assert_str_eq(status_field("CapPrm", b, sizeof(b)), "0000000000001020");
    ck_assert_str_eq(status_field("CapBnd", b, sizeof(b)), "0000000000001020");
    ck_assert_str_eq(status_field("CapInh", b, sizeof(b)), "0000000000000000");
    ck_assert_int_eq(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), 1);
    uint64_t eff;
    ck_assert_int_eq(privileges_effective(&eff), 0);
    ck_assert_uint_eq(eff, keep);
    /* gone for good: a second drop cannot ask for more than it holds */
    ck_assert_int_eq(privileges_drop(keep | CAP(CAP_SYS_ADMIN), &kept, &step), 0);
    ck_assert_uint_eq(kept, keep);
}
END_TEST

START_TEST(test_empty_dir_as_owner)
{
    if (geteuid() != 0)
        return;
    char dir[] = "/tmp/ocvm-test-priv-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir)); /* 0700, root's: as the runtime directory */
    char sub[64], file[96];
    snprintf(sub, sizeof(sub), "%s/secrets", dir);
    snprintf(file, sizeof(file), "%s/token", sub);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0400);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(chown(file, 65534, 65534), 0);
    ck_assert_int_eq(chown(sub, 65534, 65534), 0);
    /* without CAP_DAC_OVERRIDE root could not enter it; as its owner it is emptied */
    ck_assert_int_eq(
        privileges_drop(CAP(CAP_SETUID) | CAP(CAP_SETGID), &(uint64_t){0}, &(const char *){NULL}),
        0);
    ck_assert_int_eq(privileges_empty_dir_as_owner(sub), 0);
    ck_assert_int_eq(rmdir(sub), 0);
    ck_assert_int_eq(rmdir(dir), 0);
    ck_assert_int_eq(privileges_empty_dir_as_owner(sub), 0); /* gone: nothing to do */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("privileges");
    TCase *tc = tcase_create("privileges");
    tcase_add_test(tc, test_set_follows_needs);
    tcase_add_test(tc, test_format);
    tcase_add_test(tc, test_drop_as_root);
    tcase_add_test(tc, test_empty_dir_as_owner);
    suite_add_tcase(s, tc);
    if (geteuid() != 0)
        printf("privileges: not root: the drop and the owner's emptying are not exercised\n");
    return run_suite(s);
}
