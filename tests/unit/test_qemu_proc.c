/* qemu_proc: a VM's QEMU is recognised by its whole command line (the -name tag and the console
 * log in its runtime directory), never by a process name or a prefix of another VM's. */
#include "launcher/qemu_proc.h"
#include "tests/support/run_suite.h"

#include <check.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

/* WORDS joined as /proc/PID/cmdline holds them; returns the length. */
static size_t cmdline(char *buf, size_t size, const char *const *words)
{
    size_t len = 0;
    for (; *words; words++) {
        size_t n = strlen(*words) + 1;
        ck_assert_uint_le(len + n, size);
        memcpy(buf + len, *words, n);
        len += n;
    }
    return len;
}

static const char *const good[] = {
    "qemu-system-x86_64",
    "-name",
    "demo,process=ocvm-demo",
    "-chardev",
    "socket,id=console,fd=4,server=on,wait=off,logfile=/run/ocvm/demo/console.log,logappend=on",
    NULL};

START_TEST(test_matches_its_own)
{
    char buf[1024];
    size_t n = cmdline(buf, sizeof(buf), good);
    ck_assert(qemu_proc_cmdline_matches(buf, n, "demo", "/run/ocvm/demo"));
}
END_TEST

START_TEST(test_refuses_others)
{
    char buf[1024];
    size_t n = cmdline(buf, sizeof(buf), good);
    /* another VM, or the same name under another runtime directory (another user, a test) */
    ck_assert(!qemu_proc_cmdline_matches(buf, n, "dem", "/run/ocvm/dem"));
    ck_assert(!qemu_proc_cmdline_matches(buf, n, "demo", "/tmp/x/run/demo"));
    ck_assert(!qemu_proc_cmdline_matches(buf, n, "demo", "/run/ocvm/de"));
    ck_assert(!qemu_proc_cmdline_matches(buf, n, "demo", "/run/ocvm"));
    /* the -name tag alone, or the path alone, is not enough */
    const char *const no_log[] = {"qemu-system-x86_64", "-name", "demo,process=ocvm-demo", NULL};
    n = cmdline(buf, sizeof(buf), no_log);
    ck_assert(!qemu_proc_cmdline_matches(buf, n, "demo", "/run/ocvm/demo"));
    const char *const no_name[] = {"sh", "-c", "logfile=/run/ocvm/demo/console.log,", NULL};
    n = cmdline(buf, sizeof(buf), no_name);
    ck_assert(!qemu_proc_cmdline_matches(buf, n, "demo", "/run/ocvm/demo"));
    /* the tag must follow -name, whole */
    const char *const loose[] = {"x",
                                 "demo,process=ocvm-demo",
                                 "-name",
                                 "demo,process=ocvm-demox",
                                 "logfile=/run/ocvm/demo/console.log,",
                                 NULL};
    n = cmdline(buf, sizeof(buf), loose);
    ck_assert(!qemu_proc_cmdline_matches(buf, n, "demo", "/run/ocvm/demo"));
    /* a cut-off last word is not read past its end */
    n = cmdline(buf, sizeof(buf), good);
    ck_assert(!qemu_proc_cmdline_matches(buf, n - 1, "demo", "/run/ocvm/demo"));
}
END_TEST

/* A runtime directory with a comma is matched in its escaped form, as QEMU's option holds it. */
START_TEST(test_escaped_dir)
{
    const char *const w[] = {"q", "-name", "a,process=ocvm-a",
                             "socket,logfile=/t/x,,y/a/console.log,logappend=on", NULL};
    char buf[512];
    size_t n = cmdline(buf, sizeof(buf), w);
    ck_assert(qemu_proc_cmdline_matches(buf, n, "a", "/t/x,y/a"));
}
END_TEST

/* Nothing here is anyone's QEMU; a pid that is not one is never signalled. */
START_TEST(test_find_and_stop_nothing)
{
    pid_t pids[4];
    ck_assert_int_eq(qemu_proc_find("nosuchvm", "/nonexistent/ocvm/nosuchvm", pids, 4), 0);
    ck_assert_int_eq(qemu_proc_stop(getpid(), "nosuchvm", "/nonexistent/ocvm/nosuchvm", 0), -ESRCH);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("qemu_proc");
    TCase *tc = tcase_create("qemu_proc");
    tcase_add_test(tc, test_matches_its_own);
    tcase_add_test(tc, test_refuses_others);
    tcase_add_test(tc, test_escaped_dir);
    tcase_add_test(tc, test_find_and_stop_nothing);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
