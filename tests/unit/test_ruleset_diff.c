/* ruleset_diff: what `ocvm check` says when the live nft table is not the one the config makes.
 * The listings here are shaped like libnftables' own (JSON, and text with "# handle N"). */
#include "common/cleanup.h"
#include "netsetup/ruleset_diff.h"
#include "tests/support/run_suite.h"

#include <check.h>
#include <errno.h>
#include <string.h>

#define R_ACCEPT_A                                                                                 \
    "[{\"match\": {\"op\": \"==\", \"left\": {\"meta\": {\"key\": \"iifname\"}}, \"right\": "      \
    "\"a\"}}, {\"accept\": null}]"
#define R_DROP_X                                                                                   \
    "[{\"match\": {\"op\": \"==\", \"left\": {\"meta\": {\"key\": \"iifname\"}}, \"right\": "      \
    "\"x\"}}, {\"counter\": null}, {\"drop\": null}]"
#define R_LOG "[{\"log\": {\"prefix\": \"ocvm-t: \"}}]"

/* A listing of table t: set s with ELEMS, chain forward with POLICY and rules RULES (JSON array
 * items, each {"rule": ...} with handles from 10 up). */
static char *json_listing(const char *elems, const char *policy, const char *rules)
{
    char *s = NULL;
    ck_assert_int_ge(
        asprintf(&s,
                 "{\"nftables\": [{\"metainfo\": {\"version\": \"1.0.6\"}},"
                 " {\"table\": {\"family\": \"inet\", \"name\": \"t\", \"handle\": 1}},"
                 " {\"set\": {\"family\": \"inet\", \"name\": \"s\", \"table\": \"t\", \"type\": "
                 "[\"ipv4_addr\", \"inet_service\"], \"handle\": 2, \"elem\": [%s]}},"
                 " {\"chain\": {\"family\": \"inet\", \"table\": \"t\", \"name\": \"forward\", "
                 "\"handle\": 3, \"type\": \"filter\", \"hook\": \"forward\", \"prio\": 0, "
                 "\"policy\": \"%s\"}},"
                 " {\"chain\": {\"family\": \"inet\", \"table\": \"t\", \"name\": \"refuse\", "
                 "\"handle\": 4}}%s%s]}",
                 elems, policy, *rules ? ", " : "", rules),
        0);
    return s;
}

static char *rule(const char *chain, int handle, const char *expr)
{
    char *s = NULL;
    ck_assert_int_ge(
        asprintf(&s,
                 "{\"rule\": {\"family\": \"inet\", \"table\": \"t\", \"chain\": \"%s\","
                 " \"handle\": %d, \"expr\": %s}}",
                 chain, handle, expr),
        0);
    return s;
}

static const char *want_text = "table inet t { # handle 1\n"
                               "\tchain forward { # handle 3\n"
                               "\t\ttype filter hook forward priority filter; policy accept;\n"
                               "\t\tiifname \"a\" accept # handle 10\n"
                               "\t\tlog prefix \"ocvm-t: \" # handle 11\n"
                               "\t}\n"
                               "}\n";

static char *want_json(void)
{
    _cleanup_free_ char *a = rule("forward", 10, R_ACCEPT_A), *b = rule("forward", 11, R_LOG);
    _cleanup_free_ char *rules = NULL;
    ck_assert_int_ge(asprintf(&rules, "%s, %s", a, b), 0);
    return json_listing("{\"concat\": [\"1.2.3.4\", 443]}", "accept", rules);
}

static size_t diff(const char *live_json, const char *live_text, struct diff_list *d)
{
    _cleanup_free_ char *w = want_json();
    ck_assert_int_eq(ruleset_diff(w, want_text, live_json, live_text, "t: ", d), 0);
    return d->n;
}

START_TEST(same_table_no_difference)
{
    /* other handles, same rules */
    _cleanup_free_ char *a = rule("forward", 20, R_ACCEPT_A), *b = rule("forward", 21, R_LOG);
    _cleanup_free_ char *rules = NULL;
    ck_assert_int_ge(asprintf(&rules, "%s, %s", a, b), 0);
    _cleanup_free_ char *live = json_listing("{\"concat\": [\"1.2.3.4\", 443]}", "accept", rules);
    struct diff_list d = {0};
    ck_assert_uint_eq(diff(live, NULL, &d), 0);
    ck_assert_ptr_null(d.v);
    diff_list_done(&d);
}
END_TEST

START_TEST(added_and_removed_rules)
{
    /* the log rule deleted, a drop rule inserted before the accept */
    _cleanup_free_ char *x = rule("forward", 30, R_DROP_X), *a = rule("forward", 10, R_ACCEPT_A);
    _cleanup_free_ char *rules = NULL;
    ck_assert_int_ge(asprintf(&rules, "%s, %s", x, a), 0);
    _cleanup_free_ char *live = json_listing("{\"concat\": [\"1.2.3.4\", 443]}", "accept", rules);
    const char *live_text = "table inet t { # handle 1\n"
                            "\tchain forward { # handle 3\n"
                            "\t\ttype filter hook forward priority filter; policy accept;\n"
                            "\t\tiifname \"x\" counter drop # handle 30\n"
                            "\t\tiifname \"a\" accept # handle 10\n"
                            "\t}\n"
                            "}\n";
    struct diff_list d = {0};
    ck_assert_uint_eq(diff(live, live_text, &d), 2);
    ck_assert_str_eq(d.v[0], "t: chain forward: unexpected rule: iifname \"x\" counter drop");
    ck_assert_str_eq(d.v[1], "t: chain forward: missing rule: log prefix \"ocvm-t: \"");
    ck_assert_ptr_null(d.v[2]);
    diff_list_done(&d);
}
END_TEST

/* Without the text listing a rule is shown as nft's JSON. */
START_TEST(rule_shown_as_json_without_text)
{
    _cleanup_free_ char *a = rule("forward", 10, R_ACCEPT_A);
    _cleanup_free_ char *live = json_listing("{\"concat\": [\"1.2.3.4\", 443]}", "accept", a);
    struct diff_list d = {0};
    _cleanup_free_ char *w = want_json();
    ck_assert_int_eq(ruleset_diff(w, NULL, live, NULL, "", &d), 0);
    ck_assert_uint_eq(d.n, 1);
    ck_assert_str_eq(d.v[0], "chain forward: missing rule: [{\"log\":{\"prefix\":\"ocvm-t: \"}}]");
    diff_list_done(&d);
}
END_TEST

START_TEST(chain_policy_changed)
{
    _cleanup_free_ char *a = rule("forward", 10, R_ACCEPT_A), *b = rule("forward", 11, R_LOG);
    _cleanup_free_ char *rules = NULL;
    ck_assert_int_ge(asprintf(&rules, "%s, %s", a, b), 0);
    _cleanup_free_ char *live = json_listing("{\"concat\": [\"1.2.3.4\", 443]}", "drop", rules);
    struct diff_list d = {0};
    ck_assert_uint_eq(diff(live, NULL, &d), 1);
    ck_assert_str_eq(d.v[0], "t: chain forward is type filter hook forward priority 0 policy drop, "
                             "want type filter hook forward priority 0 policy accept");
    diff_list_done(&d);
}
END_TEST

START_TEST(set_elements)
{
    _cleanup_free_ char *a = rule("forward", 10, R_ACCEPT_A), *b = rule("forward", 11, R_LOG);
    _cleanup_free_ char *rules = NULL;
    ck_assert_int_ge(asprintf(&rules, "%s, %s", a, b), 0);
    _cleanup_free_ char *live = json_listing("{\"concat\": [\"9.9.9.9\", 53]}", "accept", rules);
    struct diff_list d = {0};
    ck_assert_uint_eq(diff(live, NULL, &d), 2);
    ck_assert_str_eq(d.v[0], "t: set s: missing element 1.2.3.4 . 443");
    ck_assert_str_eq(d.v[1], "t: set s: unexpected element 9.9.9.9 . 53");
    diff_list_done(&d);
}
END_TEST

START_TEST(missing_and_unexpected_objects)
{
    const char *live =
        "{\"nftables\": [{\"table\": {\"family\": \"inet\", \"name\": \"t\"}},"
        " {\"chain\": {\"family\": \"inet\", \"table\": \"t\", \"name\": \"extra\"}},"
        " {\"set\": {\"family\": \"inet\", \"name\": \"other\", \"table\": \"t\"}}]}";
    struct diff_list d = {0};
    ck_assert_uint_eq(diff(live, NULL, &d), 5);
    ck_assert_str_eq(d.v[0], "t: set s is missing");
    ck_assert_str_eq(d.v[1], "t: unexpected set other");
    ck_assert_str_eq(d.v[2], "t: chain forward is missing");
    ck_assert_str_eq(d.v[3], "t: chain refuse is missing");
    ck_assert_str_eq(d.v[4], "t: unexpected chain extra");
    ck_assert_ptr_null(d.v[5]);
    diff_list_done(&d);
}
END_TEST

START_TEST(bad_json)
{
    struct diff_list d = {0};
    _cleanup_free_ char *w = want_json();
    ck_assert_int_eq(ruleset_diff(w, NULL, "{\"nftables\": 3}", NULL, "", &d), -EINVAL);
    ck_assert_int_eq(ruleset_diff("not json", NULL, w, NULL, "", &d), -EINVAL);
    ck_assert_uint_eq(d.n, 0);
    diff_list_done(&d);
}
END_TEST

START_TEST(list_steal)
{
    struct diff_list d = {0};
    char **v = diff_list_steal(&d);
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_null(v[0]);
    free(v);
    diff_list_addf(&d, "a %d", 1);
    diff_list_addf(&d, "b");
    v = diff_list_steal(&d);
    ck_assert_str_eq(v[0], "a 1");
    ck_assert_str_eq(v[1], "b");
    ck_assert_ptr_null(v[2]);
    ck_assert_uint_eq(d.n, 0);
    free(v[0]);
    free(v[1]);
    free(v);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ruleset_diff");
    TCase *tc = tcase_create("diff");
    tcase_add_test(tc, same_table_no_difference);
    tcase_add_test(tc, added_and_removed_rules);
    tcase_add_test(tc, rule_shown_as_json_without_text);
    tcase_add_test(tc, chain_policy_changed);
    tcase_add_test(tc, set_elements);
    tcase_add_test(tc, missing_and_unexpected_objects);
    tcase_add_test(tc, bad_json);
    tcase_add_test(tc, list_steal);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
