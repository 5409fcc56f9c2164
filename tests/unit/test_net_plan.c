/* net_plan: the launcher's translation of a config into netsetup's plan. The example configs
 * must make the plans the netsetup suites pin (tests/support/plans.h), and through them the same
 * golden nft tables and Unbound snippet: config -> plan -> netsetup, end to end, pure. */
#include "common/cleanup.h"
#include "config/config.h"
#include "launcher/net_plan.h"
#include "netsetup/dns_config.h"
#include "netsetup/firewall.h"
#include "netsetup/netsetup.h"

#include "tests/support/golden.h"
#include "tests/support/plans.h"
#include "tests/support/run_suite.h"
#include "tests/support/vm_fixture.h"

#include <check.h>
#include <errno.h>
#include <string.h>

static char *render(const struct netsetup_plan *p, const char *uplink)
{
    struct firewall_facts f = {.uplink = uplink};
    char *text = NULL;
    ck_assert_int_eq(firewall_render(p, &f, &text), 0);
    return text;
}

#define assert_same_str(a, b) ck_assert_str_eq((a) ? (a) : "(null)", (b) ? (b) : "(null)")

/* examples/openclaw.json is the plan the netsetup suites write out by hand, field by field. */
START_TEST(openclaw_example_makes_the_pinned_plan)
{
    struct vm_config *c = vm_fixture_load_example("openclaw.json");
    struct netsetup_plan p, want = plan_openclaw();
    ck_assert_int_eq(net_plan_from_config(c, &p), 1);
    assert_same_str(p.vm, want.vm);
    assert_same_str(p.source, want.source);
    assert_same_str(p.bridge, want.bridge);
    assert_same_str(p.bridge_address, want.bridge_address);
    assert_same_str(p.tap, want.tap);
    ck_assert_uint_eq(p.tap_queues, want.tap_queues);
    assert_same_str(p.guest_address, want.guest_address);
    assert_same_str(p.uplink, want.uplink);
    assert_same_str(p.dns, want.dns);
    ck_assert_uint_eq(p.gateway_port, want.gateway_port);
    ck_assert_uint_eq(p.n_egress, 0);
    ck_assert_ptr_null(p.egress);
    _cleanup_free_ char *nft = render(&p, "eth0");
    golden_check("openclaw.nft", nft);
    _cleanup_free_ char *unbound = NULL;
    ck_assert_int_eq(dns_config_render(&p, &unbound), 0);
    golden_check("openclaw.unbound", unbound);
    net_plan_done(&p);
    ck_assert_ptr_null(p.vm);
    vm_config_free(c);
}
END_TEST

/* The allow-list arrives whole: hosts and ports in order. */
START_TEST(egress_allow_list)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/tests/configs/pass/egress.json", SOURCE_DIR);
    struct vm_config *c = NULL;
    _cleanup_free_ char *err = NULL;
    ck_assert_msg(config_load(path, &c, &err) == 0, "%s", err);
    struct netsetup_plan p;
    ck_assert_int_eq(net_plan_from_config(c, &p), 1);
    ck_assert_str_eq(p.uplink, "eth0");
    ck_assert_uint_eq(p.n_egress, 2);
    ck_assert_str_eq(p.egress[0].host, "api.openai.com");
    ck_assert_uint_eq(p.egress[0].n_ports, 1);
    ck_assert_uint_eq(p.egress[0].ports[0], 443);
    ck_assert_str_eq(p.egress[1].host, "203.0.113.7");
    ck_assert_uint_eq(p.egress[1].n_ports, 3);
    ck_assert_uint_eq(p.egress[1].ports[2], 8443);
    net_plan_done(&p);
    vm_config_free(c);
}
END_TEST

/* Every name, address and port of the network section reaches the table. */
START_TEST(custom_network)
{
    struct vm_config *c = vm_fixture_load(
        "{\"name\": \"lab-1\", \"boot\": {\"kernel\": \"KERNEL\"},"
        " \"network\": {\"bridge\": \"br-lab\", \"bridge_address\": \"10.250.7.1/28\","
        " \"tap\": \"vm-lab\", \"guest_address\": \"10.250.7.2\", \"uplink\": \"wan0\","
        " \"dns\": \"192.0.2.53\"}, \"gateway\": {\"guest_port\": 9999}}");
    struct netsetup_plan p;
    ck_assert_int_eq(net_plan_from_config(c, &p), 1);
    _cleanup_free_ char *text = render(&p, "wan0");
    golden_check("custom.nft", text);
    net_plan_done(&p);
    vm_config_free(c);
}
END_TEST

/* One TAP queue per vCPU, at most 8. */
START_TEST(tap_queues_follow_vcpus)
{
    struct vm_config *c = vm_fixture_load("{\"name\": \"q\", \"boot\": {\"kernel\": \"KERNEL\"},"
                                          " \"machine\": {\"vcpu\": 12}}");
    struct netsetup_plan p;
    ck_assert_int_eq(net_plan_from_config(c, &p), 1);
    ck_assert_uint_eq(p.tap_queues, 8);
    net_plan_done(&p);
    vm_config_free(c);
}
END_TEST

/* The demo VM has "network": null: no plan, so netsetup is never asked. */
START_TEST(demo_has_no_network)
{
    struct vm_config *c = vm_fixture_load_example("demo.json");
    ck_assert_ptr_null(c->network);
    struct netsetup_plan p;
    ck_assert_int_eq(net_plan_from_config(c, &p), 0);
    ck_assert_ptr_null(p.vm);
    net_plan_done(&p);
    vm_config_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("net_plan");
    TCase *tc = tcase_create("from_config");
    tcase_add_checked_fixture(tc, vm_fixture_setup, vm_fixture_teardown);
    tcase_add_test(tc, openclaw_example_makes_the_pinned_plan);
    tcase_add_test(tc, egress_allow_list);
    tcase_add_test(tc, custom_network);
    tcase_add_test(tc, tap_queues_follow_vcpus);
    tcase_add_test(tc, demo_has_no_network);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
