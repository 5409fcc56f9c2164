/* guest_notify_parse: what the host takes from the guest's sd_notify text. READY=1 and
 * STOPPING=1 exactly; STATUS= and OCVM_STAGE= cut to their buffers with anything that is not
 * printable ASCII as '?'; unknown assignments ignored; a NUL refuses the whole message. */
#include "launcher/guest_notify.h"
#include "tests/support/run_suite.h"

#include <check.h>
#include <errno.h>
#include <string.h>

static struct guest_notify_msg parse_ok(const char *text)
{
    struct guest_notify_msg m;
    ck_assert_int_eq(guest_notify_parse(text, strlen(text), &m), 0);
    return m;
}

START_TEST(test_ready_status_and_stage)
{
    struct guest_notify_msg m =
        parse_ok("OCVM_STAGE=gateway /health answered\nSTATUS=waiting (15 s)\nREADY=1\n");
    ck_assert(m.ready);
    ck_assert(!m.stopping);
    ck_assert_str_eq(m.status, "waiting (15 s)");
    ck_assert_str_eq(m.stage, "gateway /health answered");
    m = parse_ok("OCVM_STAGE=init started"); /* no final newline */
    ck_assert(!m.ready);
    ck_assert_str_eq(m.stage, "init started");
    ck_assert_str_eq(m.status, "");
}
END_TEST

START_TEST(test_exact_flags_only)
{
    struct guest_notify_msg m = parse_ok("READY=11\nREADY=0\nSTOPPING=yes\nX_READY=1\n");
    ck_assert(!m.ready);
    ck_assert(!m.stopping);
    m = parse_ok("STOPPING=1\nOCVM_STAGE=\nFOO=bar\n");
    ck_assert(m.stopping);
    ck_assert_str_eq(m.stage, "");
}
END_TEST

START_TEST(test_untrusted_bytes)
{
    struct guest_notify_msg m = parse_ok("OCVM_STAGE=a\tb\x1b[31mc\xff\n");
    ck_assert_str_eq(m.stage, "a?b?[31mc?");
    char long_stage[300] = "OCVM_STAGE=";
    memset(long_stage + 11, 's', sizeof(long_stage) - 12);
    long_stage[sizeof(long_stage) - 1] = '\0';
    m = parse_ok(long_stage);
    ck_assert_uint_eq(strlen(m.stage), sizeof(m.stage) - 1);
    const char with_nul[] = "READY=1\n\0OCVM_STAGE=x\n";
    ck_assert_int_eq(guest_notify_parse(with_nul, sizeof(with_nul) - 1, &m), -EBADMSG);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("guest_notify");
    TCase *tc = tcase_create("guest_notify");
    tcase_add_test(tc, test_ready_status_and_stage);
    tcase_add_test(tc, test_exact_flags_only);
    tcase_add_test(tc, test_untrusted_bytes);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
