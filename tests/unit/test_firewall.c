/* firewall: the nft table of each example plan is pinned by a golden file in tests/golden/NAME.nft
 * (regenerate deliberately with UPDATE_GOLDEN=1); plus the rules a user relies on, read from the
 * rendered text, and what rendering refuses. Pure: nothing here touches the network or DNS (the
 * integration test feeds the same text to nft in a namespace). The plans are written out here;
 * test_net_plan checks that the example configs still make them. */
#include "common/cleanup.h"
#include "netsetup/firewall.h"
#include "netsetup/netsetup.h"

#include "tests/support/golden.h"
#include "tests/support/plans.h"
#include "tests/support/run_suite.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <string.h>

/* tests/configs/pass/egress.json as a plan. */
static const uint16_t egress_443[] = {443}, egress_three[] = {80, 443, 8443};
static const struct netsetup_egress egress_rules[] = {
    {"api.openai.com", egress_443, 1},
    {"203.0.113.7", egress_three, 3},
};
static struct netsetup_plan plan_egress(void)
{
    struct netsetup_plan p = plan_openclaw();
    p.vm = "egress";
    p.uplink = "eth0";
    p.egress = egress_rules;
    p.n_egress = ELEMENTSOF(egress_rules);
    return p;
}

static uint32_t ip(const char *s)
{
    struct in_addr a;
    ck_assert_int_eq(inet_pton(AF_INET, s, &a), 1);
    return ntohl(a.s_addr);
}

static char *render(const struct netsetup_plan *p, const char *uplink,
                    const struct firewall_egress *e, size_t n)
{
    struct firewall_facts f = {.uplink = uplink, .egress = e, .n_egress = n};
    char *text = NULL;
    ck_assert_int_eq(firewall_render(p, &f, &text), 0);
    return text;
}

START_TEST(golden_openclaw)
{
    struct netsetup_plan p = plan_openclaw();
    _cleanup_free_ char *text = render(&p, "eth0", NULL, 0);
    golden_check("openclaw.nft", text);
}
END_TEST

/* tests/configs/pass/egress.json, its host name "resolved" by hand: rendering never resolves. */
START_TEST(golden_egress_allow_list)
{
    struct netsetup_plan p = plan_egress();
    const struct firewall_egress e[] = {
        /* api.openai.com, as if it resolved to two addresses */
        {ip("198.51.100.11"), 443},
        {ip("198.51.100.10"), 443},
        /* 203.0.113.7 with its three ports, one pair given twice: the set has it once */
        {ip("203.0.113.7"), 80},
        {ip("203.0.113.7"), 443},
        {ip("203.0.113.7"), 8443},
        {ip("203.0.113.7"), 443},
    };
    _cleanup_free_ char *text = render(&p, p.uplink, e, ELEMENTSOF(e));
    golden_check("egress.nft", text);
    ck_assert_ptr_nonnull(strstr(text, "\t\t\t203.0.113.7 . 443,\n\t\t\t203.0.113.7 . 8443\n"));
    ck_assert_ptr_null(strstr(strstr(text, "203.0.113.7 . 443") + 1, "203.0.113.7 . 443"));
}
END_TEST

/* Every name, address and port of the network section shows up where it belongs. */
START_TEST(golden_custom_network)
{
    struct netsetup_plan p = {.vm = "lab-1",
                              .bridge = "br-lab",
                              .bridge_address = "10.250.7.1/28",
                              .tap = "vm-lab",
                              .tap_queues = 2,
                              .guest_address = "10.250.7.2",
                              .uplink = "wan0",
                              .dns = "192.0.2.53",
                              .gateway_port = 9999};
    _cleanup_free_ char *text = render(&p, "wan0", NULL, 0);
    golden_check("custom.nft", text);
}
END_TEST

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p += n)
        if ((p == text || p[-1] == '\t') && p[n] == '\n')
            return true;
    return false;
}

START_TEST(rules_a_user_relies_on)
{
    struct netsetup_plan p = plan_openclaw();
    _cleanup_free_ char *t = render(&p, "enp1s0", NULL, 0);
    /* one table, named after the VM */
    ck_assert_ptr_nonnull(strstr(t, "\ntable inet ocvm_openclaw {\n"));
    ck_assert_ptr_null(strstr(strstr(t, "table inet") + 1, "table inet"));
    /* NAT from the VM subnet out of the uplink only */
    ck_assert(has_line(t, "ip saddr 192.168.83.0/24 oifname \"enp1s0\" counter masquerade"));
    /* every new connection logged with the VM's prefix, in both guest chains */
    const char *log = "ct state new counter log prefix \"ocvm-openclaw: \"";
    ck_assert(has_line(t, log));
    ck_assert(has_line(strstr(t, "chain guest_out"), log));
    /* the gateway port: closed from the LAN (forward) and the host (output), DNAT refused */
    const char *gw =
        "oifname \"br-openclaw\" meta l4proto { tcp, udp } th dport 18789 counter drop";
    ck_assert(has_line(strstr(t, "chain forward"), gw));
    ck_assert(has_line(strstr(t, "chain output"), gw));
    ck_assert(
        has_line(t, "oifname \"br-openclaw\" ct direction original ct status dnat counter drop"));
    /* DNS only to network.dns; everything else from the guest allowed without an allow-list */
    ck_assert(has_line(
        t, "meta l4proto { tcp, udp } th dport 53 ip daddr != 192.168.83.1 counter goto refuse"));
    ck_assert(has_line(t, "oifname != \"enp1s0\" counter goto refuse"));
    ck_assert(has_line(strstr(t, "chain guest_out"), "accept"));
    ck_assert_ptr_null(strstr(t, "egress_allow"));
    /* rejected traffic is logged */
    ck_assert(has_line(t, "counter log prefix \"ocvm-openclaw: reject \" reject with icmpx "
                          "admin-prohibited"));
}
END_TEST

/* An allow-list with nothing resolved yet still closes the guest in: an empty set, then refuse. */
START_TEST(allow_list_without_addresses_rejects_everything)
{
    const struct netsetup_egress rule = {"192.0.2.1", egress_443, 1};
    struct netsetup_plan p = plan_openclaw();
    p.vm = "x";
    p.egress = &rule;
    p.n_egress = 1;
    _cleanup_free_ char *t = render(&p, "eth0", NULL, 0);
    ck_assert_ptr_nonnull(
        strstr(t, "\tset egress_allow {\n\t\ttype ipv4_addr . inet_service\n\t}\n"));
    const char *out = strstr(t, "chain guest_out");
    ck_assert(has_line(out, "meta l4proto { tcp, udp } ip daddr . th dport @egress_allow accept"));
    ck_assert(!has_line(out, "accept")); /* no catch-all accept: the rest goes to refuse */
}
END_TEST

START_TEST(render_refuses)
{
    struct netsetup_plan p = plan_openclaw();
    struct firewall_facts f = {.uplink = "eth0\" accept #"};
    char *text = NULL;
    ck_assert_int_eq(firewall_render(&p, &f, &text), -EINVAL); /* an uplink name from the kernel */
    f.uplink = NULL;
    ck_assert_int_eq(firewall_render(&p, &f, &text), -EINVAL);
    f.uplink = "eth0";
    p.bridge = "br\" accept";
    ck_assert_int_eq(firewall_render(&p, &f, &text), -EINVAL);
    p = plan_openclaw();
    p.dns = "192.168.83.0/24";
    ck_assert_int_eq(firewall_render(&p, &f, &text), -EINVAL);
    p = plan_openclaw();
    p.gateway_port = 0;
    ck_assert_int_eq(firewall_render(&p, &f, &text), -EINVAL);
    ck_assert_ptr_null(text);
}
END_TEST

/* No plan (a VM with "network": null): netsetup_up does nothing and hands out no fd. */
START_TEST(no_plan_no_network)
{
    char *err = NULL;
    struct netsetup n;
    ck_assert_int_eq(netsetup_up(NULL, &n, &err), 0);
    ck_assert_uint_eq(n.n_tap_fds, 0);
    ck_assert_int_eq(n.tap_fds[0], -1);
    ck_assert_int_eq(n.state.bridge_ifindex, 0);
    ck_assert_int_eq(n.state.table_applied, false);
    netsetup_down(&n);
    char **diffs = NULL;
    ck_assert_int_eq(netsetup_audit(NULL, &diffs, &err), 0);
    ck_assert_ptr_nonnull(diffs);
    ck_assert_ptr_null(diffs[0]);
    netsetup_differences_free(diffs);
}
END_TEST

START_TEST(table_name)
{
    _cleanup_free_ char *t = NULL;
    ck_assert_int_eq(firewall_table_name("openclaw", &t), 0);
    ck_assert_str_eq(t, "ocvm_openclaw");
    char *bad = NULL;
    ck_assert_int_eq(firewall_table_name("a b", &bad), -EINVAL);
    ck_assert_int_eq(firewall_table_name("", &bad), -EINVAL);
}
END_TEST

/* Literal addresses resolve without DNS; each address is paired with each port of its rule. */
START_TEST(resolve_literal_addresses)
{
    struct netsetup_plan p = plan_egress();
    /* keep only the literal rule */
    p.egress = &egress_rules[1];
    p.n_egress = 1;
    _cleanup_free_ char *err = NULL;
    _cleanup_free_ struct firewall_egress *e = NULL;
    size_t n = 0;
    ck_assert_int_eq(firewall_resolve_egress(&p, &e, &n, &err), 0);
    ck_assert_uint_eq(n, 3);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(e[i].addr, ip("203.0.113.7"));
    ck_assert_uint_eq(e[0].port, 80);
    ck_assert_uint_eq(e[1].port, 443);
    ck_assert_uint_eq(e[2].port, 8443);
}
END_TEST

START_TEST(state_json_round_trip)
{
    struct netsetup_state s = {.bridge_ifindex = 7,
                               .bridge_created = true,
                               .tap_ifindex = 9,
                               .uplink_forwarding_set = true,
                               .table_applied = true};
    strcpy(s.vm, "openclaw");
    strcpy(s.bridge, "br-openclaw");
    strcpy(s.tap, "vm-openclaw");
    strcpy(s.uplink, "eth0");
    _cleanup_free_ char *json = NULL;
    ck_assert_int_eq(netsetup_state_to_json(&s, &json), 0);
    struct netsetup_state back;
    ck_assert_int_eq(netsetup_state_from_json(json, &back), 0);
    ck_assert_mem_eq(&s, &back, sizeof(s));
    ck_assert_int_eq(netsetup_state_from_json("{\"vm\": \"x\"}", &back), -EINVAL);
    ck_assert_int_eq(netsetup_state_from_json("not json", &back), -EINVAL);
    _cleanup_free_ char *extra = strdup(json);
    extra[strlen(extra) - 1] = 0;
    _cleanup_free_ char *bad = NULL;
    ck_assert_int_ge(asprintf(&bad, "%s,\"more\":1}", extra), 0);
    ck_assert_int_eq(netsetup_state_from_json(bad, &back), -EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("firewall");
    TCase *tc = tcase_create("render");
    tcase_add_test(tc, golden_openclaw);
    tcase_add_test(tc, golden_egress_allow_list);
    tcase_add_test(tc, golden_custom_network);
    tcase_add_test(tc, rules_a_user_relies_on);
    tcase_add_test(tc, allow_list_without_addresses_rejects_everything);
    tcase_add_test(tc, render_refuses);
    tcase_add_test(tc, no_plan_no_network);
    tcase_add_test(tc, table_name);
    tcase_add_test(tc, resolve_literal_addresses);
    tcase_add_test(tc, state_json_round_trip);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
