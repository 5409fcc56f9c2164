/* guest_cmdline: ocvm-guest finds the notify socket (the last one wins) and every ocvm.relay= pair
 * on the kernel command line the host wrote, and names a malformed one instead of guessing. */
#include "tests/support/run_suite.h"
#include "vsock/guest_cmdline.h"

#include <check.h>
#include <errno.h>
#include <string.h>

START_TEST(test_notify_socket)
{
    uint32_t cid = 0, port = 0;
    ck_assert_int_eq(
        guest_cmdline_notify_socket(
            "console=ttyS0 systemd.set_credential=vmm.notify_socket:vsock-stream:2:18788 "
            "quiet",
            &cid, &port),
        0);
    ck_assert_uint_eq(cid, 2);
    ck_assert_uint_eq(port, 18788);
    ck_assert_int_eq(
        guest_cmdline_notify_socket("systemd.set_credential=vmm.notify_socket:vsock:3:1"
                                    "\tsystemd.set_credential=vmm.notify_socket:"
                                    "vsock:2:9\n",
                                    &cid, &port),
        0);
    ck_assert_uint_eq(cid, 2); /* the last one */
    ck_assert_uint_eq(port, 9);
}
END_TEST

START_TEST(test_notify_socket_refused)
{
    uint32_t cid, port;
    ck_assert_int_eq(guest_cmdline_notify_socket("console=ttyS0 quiet", &cid, &port), -ENOENT);
    ck_assert_int_eq(guest_cmdline_notify_socket("", &cid, &port), -ENOENT);
    static const char *const bad[] = {
        "systemd.set_credential=vmm.notify_socket:unix:/run/x",
        "systemd.set_credential=vmm.notify_socket:vsock-stream:2",
        "systemd.set_credential=vmm.notify_socket:vsock-stream:2:",
        "systemd.set_credential=vmm.notify_socket:vsock-stream:4294967296:1",
        "systemd.set_credential=vmm.notify_socket:vsock:x:1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(guest_cmdline_notify_socket(bad[i], &cid, &port) == -EINVAL, "%s", bad[i]);
}
END_TEST

START_TEST(test_relays)
{
    const char *line =
        "console=ttyS0 ocvm.relay=vsock:any:18789,tcp:127.0.0.1:18789 ocvm.share=x,ro"
        " ocvm.relay=vsock:any:9000,unix:/run/a,b.sock";
    const char *p = line;
    struct guest_relay_param prm;
    ck_assert_int_eq(guest_cmdline_next_relay(&p, &prm), 1);
    ck_assert_str_eq(prm.pair, "vsock:any:18789");
    ck_assert_str_eq(prm.connect, "tcp:127.0.0.1:18789");
    ck_assert_int_eq(guest_cmdline_next_relay(&p, &prm), 1);
    ck_assert_str_eq(prm.pair, "vsock:any:9000");
    ck_assert_str_eq(prm.connect, "unix:/run/a,b.sock"); /* split at the first comma */
    ck_assert_int_eq(guest_cmdline_next_relay(&p, &prm), 0);
    ck_assert_int_eq(guest_cmdline_next_relay(&p, &prm), 0);
}
END_TEST

START_TEST(test_relay_refused)
{
    const char *p = "quiet ocvm.relay= ocvm.relay=vsock:any:1 ocvm.relay=a,b";
    struct guest_relay_param prm;
    ck_assert_int_eq(guest_cmdline_next_relay(&p, &prm), -EINVAL); /* the empty one is skipped */
    ck_assert_str_eq(prm.pair, "vsock:any:1");
    ck_assert_int_eq((int)prm.len, (int)strlen("ocvm.relay=vsock:any:1"));
    ck_assert_int_eq(guest_cmdline_next_relay(&p, &prm), 1);

    char long_line[400] = "ocvm.relay=vsock:any:1,unix:/";
    memset(long_line + strlen(long_line), 'a', 300);
    p = long_line;
    ck_assert_int_eq(guest_cmdline_next_relay(&p, &prm), -ENAMETOOLONG);
    ck_assert_ptr_eq(prm.text, long_line);
    ck_assert_int_eq((int)prm.len, (int)strlen(long_line));
    ck_assert_int_eq(guest_cmdline_next_relay(&p, &prm), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("guest_cmdline");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_notify_socket);
    tcase_add_test(tc, test_notify_socket_refused);
    tcase_add_test(tc, test_relays);
    tcase_add_test(tc, test_relay_refused);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
