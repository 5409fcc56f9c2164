/* dns_config: the Unbound snippet `ocvm dns-config NAME` prints, pinned for the example config by
 * tests/golden/openclaw.unbound (UPDATE_GOLDEN=1 regenerates it), and its variations. */
#include "common/cleanup.h"
#include "netsetup/dns_config.h"

#include "tests/support/golden.h"
#include "tests/support/plans.h"
#include "tests/support/run_suite.h"

#include <check.h>
#include <errno.h>
#include <string.h>

/* The example's network (the defaults): resolver on the bridge, the /24 allowed, logging on. */
START_TEST(golden_openclaw)
{
    struct netsetup_plan p = plan_openclaw();
    _cleanup_free_ char *text = NULL;
    ck_assert_int_eq(dns_config_render(&p, &text), 0);
    golden_check("openclaw.unbound", text);
    ck_assert_ptr_nonnull(strstr(text, "\nserver:\n    interface: 192.168.83.1\n"));
    ck_assert_ptr_nonnull(strstr(text, "\n    access-control: 192.168.83.0/24 allow\n"));
    ck_assert_ptr_nonnull(strstr(text, "\n    log-queries: yes\n    log-replies: yes\n"));
    ck_assert_ptr_null(strstr(text, "Note:"));
}
END_TEST

START_TEST(other_subnet)
{
    struct netsetup_plan p = plan_openclaw();
    p.bridge = "br-lab";
    p.bridge_address = "10.250.7.1/28";
    p.guest_address = "10.250.7.2";
    p.dns = "10.250.7.1";
    _cleanup_free_ char *text = NULL;
    ck_assert_int_eq(dns_config_render(&p, &text), 0);
    ck_assert_ptr_nonnull(strstr(text, "    interface: 10.250.7.1\n"));
    ck_assert_ptr_nonnull(strstr(text, "    access-control: 10.250.7.0/28 allow\n"));
    ck_assert_ptr_nonnull(strstr(text, "on bridge br-lab"));
}
END_TEST

/* With the guest pointed at another resolver the snippet still works, and says what to change. */
START_TEST(dns_elsewhere_is_pointed_out)
{
    struct netsetup_plan p = plan_openclaw();
    p.dns = "192.0.2.53";
    _cleanup_free_ char *text = NULL;
    ck_assert_int_eq(dns_config_render(&p, &text), 0);
    ck_assert_ptr_nonnull(strstr(text, "# Note: network.dns is 192.0.2.53"));
    ck_assert_ptr_nonnull(strstr(text, "network.dns to 192.168.83.1 in /etc/ocvm/openclaw.json"));
    ck_assert_ptr_nonnull(strstr(text, "    interface: 192.168.83.1\n"));
    /* without a source the note still says where */
    p.source = NULL;
    _cleanup_free_ char *text2 = NULL;
    ck_assert_int_eq(dns_config_render(&p, &text2), 0);
    ck_assert_ptr_nonnull(strstr(text2, "network.dns to 192.168.83.1 in the VM's config"));
}
END_TEST

/* An address that does not parse renders nothing. */
START_TEST(bad_address)
{
    struct netsetup_plan p = plan_openclaw();
    p.bridge_address = "192.168.83.1";
    char *text = NULL;
    ck_assert_int_eq(dns_config_render(&p, &text), -EINVAL);
    ck_assert_ptr_null(text);
    p = plan_openclaw();
    p.dns = "resolver.example";
    ck_assert_int_eq(dns_config_render(&p, &text), -EINVAL);
    ck_assert_ptr_null(text);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dns_config");
    TCase *tc = tcase_create("render");
    tcase_add_test(tc, golden_openclaw);
    tcase_add_test(tc, other_subnet);
    tcase_add_test(tc, dns_elsewhere_is_pointed_out);
    tcase_add_test(tc, bad_address);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
