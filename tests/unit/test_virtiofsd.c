/* virtiofsd: the capabilities its daemon gets as the VM's user, and the filter that makes a
 * read-only share read-only whatever the guest asks: in a forked child under the filter, every
 * way to change a file fails with EROFS, and reading still works. */
#include "launcher/virtiofsd.h"
#include "common/caps.h"
#include "tests/support/run_suite.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

START_TEST(test_user_caps)
{
    /* its chroot, and emptying its own bounding set after it */
    ck_assert_uint_eq(virtiofsd_user_caps(true), CAPS_BIT(CAP_SYS_CHROOT) | CAPS_BIT(CAP_SETPCAP));
    uint64_t rw = virtiofsd_user_caps(false);
    ck_assert(rw & CAPS_BIT(CAP_SYS_CHROOT));
    ck_assert(rw & CAPS_BIT(CAP_SETUID));
    /* never device nodes or file capabilities on the host, never the mount namespace's */
    ck_assert(!(rw & (CAPS_BIT(CAP_MKNOD) | CAPS_BIT(CAP_SETFCAP) | CAPS_BIT(CAP_SYS_ADMIN))));
}
END_TEST

/* In the child: each step's failure is its exit status (the step's number). */
static int child(const char *dir)
{
    char file[256], other[256], sub[256];
    snprintf(file, sizeof(file), "%s/file", dir);
    snprintf(other, sizeof(other), "%s/other", dir);
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    if (virtiofsd_deny_writes() < 0)
        return 1;
    int step = 10;
#define EROFS_OR_EXIT(call)                                                                        \
    do {                                                                                           \
        errno = 0;                                                                                 \
        if ((call) != -1 || errno != EROFS)                                                        \
            return step;                                                                           \
        step++;                                                                                    \
    } while (0)
    EROFS_OR_EXIT(open(file, O_WRONLY));
    EROFS_OR_EXIT(open(file, O_RDWR));
    EROFS_OR_EXIT(open(file, O_RDONLY | O_TRUNC));
    EROFS_OR_EXIT(open(other, O_RDONLY | O_CREAT, 0600));
    EROFS_OR_EXIT(openat(AT_FDCWD, file, O_WRONLY | O_APPEND));
    EROFS_OR_EXIT(creat(other, 0600));
    EROFS_OR_EXIT(mkdir(sub, 0700));
    EROFS_OR_EXIT(unlink(file));
    EROFS_OR_EXIT(rename(file, other));
    EROFS_OR_EXIT(link(file, other));
    EROFS_OR_EXIT(symlink(file, other));
    EROFS_OR_EXIT(chmod(file, 0777));
    EROFS_OR_EXIT(chown(file, 1, 1));
    EROFS_OR_EXIT(truncate(file, 0));
    EROFS_OR_EXIT(utimes(file, NULL));
    EROFS_OR_EXIT(rmdir(dir));
    EROFS_OR_EXIT(syscall(SYS_openat2, AT_FDCWD, file, NULL, 0) == -1 && errno == ENOSYS
                      ? (errno = EROFS, -1)
                      : 0);
    /* reading is untouched */
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    char b[16] = {0};
    if (fd < 0 || read(fd, b, sizeof(b)) != 5 || strcmp(b, "hello") != 0)
        return 50;
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_size != 5)
        return 51;
    close(fd);
    return 0;
}

START_TEST(test_deny_writes)
{
    char dir[] = "/tmp/ocvm-test-vfs-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char file[256];
    snprintf(file, sizeof(file), "%s/file", dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fputs("hello", f);
    fclose(f);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(child(dir));
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "the child died (signal %d)", WTERMSIG(status));
    ck_assert_msg(WEXITSTATUS(status) == 0, "step %d was not refused as it should be",
                  WEXITSTATUS(status));
    /* and nothing changed */
    struct stat st;
    ck_assert_int_eq(stat(file, &st), 0);
    ck_assert_int_eq(st.st_size, 5);
    char other[256];
    snprintf(other, sizeof(other), "%s/other", dir);
    ck_assert_int_eq(access(other, F_OK), -1);
    ck_assert_int_eq(unlink(file), 0);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("virtiofsd");
    TCase *tc = tcase_create("virtiofsd");
    tcase_add_test(tc, test_user_caps);
    tcase_add_test(tc, test_deny_writes);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
