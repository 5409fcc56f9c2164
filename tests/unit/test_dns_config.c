/* dns_config: the Unbound snippet `ocvm dns-config NAME` prints, pinned for the example config by
 * tests/golden/openclaw.unbound (UPDATE_GOLDEN=1 regenerates it), and its variations. */
#include "launcher/config.h"
#include "launcher/macro.h"
#include "netsetup/dns_config.h"

#include "tests/support/golden.h"
#include "tests/support/run_suite.h"

#include <check.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static char tmpdir[] = "/tmp/ocvm-test-dns-XXXXXX";

static void setup(void)
{
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    char p[600];
    snprintf(p, sizeof(p), "%s/vmlinuz", tmpdir);
    FILE *f = fopen(p, "we");
    ck_assert_ptr_nonnull(f);
    fclose(f);
}

static void teardown(void)
{
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    strcpy(tmpdir, "/tmp/ocvm-test-dns-XXXXXX");
}

/* Loads a config whose "network" member is NETWORK (JSON text, or "null"). */
static struct vm_config *load(const char *network)
{
    char path[600];
    snprintf(path, sizeof(path), "/etc/ocvm/openclaw.json");
    _cleanup_free_ char *text = NULL;
    ck_assert_int_ge(asprintf(&text,
                              "{\"name\": \"openclaw\", \"boot\": {\"kernel\": \"%s/vmlinuz\"},"
                              " \"network\": %s}",
                              tmpdir, network),
                     0);
    struct vm_config *c = NULL;
    _cleanup_free_ char *err = NULL;
    ck_assert_msg(config_load_text(path, text, strlen(text), &c, &err) == 0, "%s", err);
    return c;
}

/* The example's network (the defaults): resolver on the bridge, the /24 allowed, logging on. */
START_TEST(golden_openclaw)
{
    struct vm_config *c = load("{}");
    _cleanup_free_ char *text = NULL;
    ck_assert_int_eq(dns_config_render(c, &text), 0);
    golden_check("openclaw.unbound", text);
    ck_assert_ptr_nonnull(strstr(text, "\nserver:\n    interface: 192.168.83.1\n"));
    ck_assert_ptr_nonnull(strstr(text, "\n    access-control: 192.168.83.0/24 allow\n"));
    ck_assert_ptr_nonnull(strstr(text, "\n    log-queries: yes\n    log-replies: yes\n"));
    ck_assert_ptr_null(strstr(text, "Note:"));
    vm_config_free(c);
}
END_TEST

START_TEST(other_subnet)
{
    struct vm_config *c = load("{\"bridge\": \"br-lab\", \"bridge_address\": \"10.250.7.1/28\","
                               " \"guest_address\": \"10.250.7.2\", \"dns\": \"10.250.7.1\"}");
    _cleanup_free_ char *text = NULL;
    ck_assert_int_eq(dns_config_render(c, &text), 0);
    ck_assert_ptr_nonnull(strstr(text, "    interface: 10.250.7.1\n"));
    ck_assert_ptr_nonnull(strstr(text, "    access-control: 10.250.7.0/28 allow\n"));
    ck_assert_ptr_nonnull(strstr(text, "on bridge br-lab"));
    vm_config_free(c);
}
END_TEST

/* With the guest pointed at another resolver the snippet still works, and says what to change. */
START_TEST(dns_elsewhere_is_pointed_out)
{
    struct vm_config *c = load("{\"dns\": \"192.0.2.53\"}");
    _cleanup_free_ char *text = NULL;
    ck_assert_int_eq(dns_config_render(c, &text), 0);
    ck_assert_ptr_nonnull(strstr(text, "# Note: network.dns is 192.0.2.53"));
    ck_assert_ptr_nonnull(strstr(text, "network.dns to 192.168.83.1 in /etc/ocvm/openclaw.json"));
    ck_assert_ptr_nonnull(strstr(text, "    interface: 192.168.83.1\n"));
    vm_config_free(c);
}
END_TEST

START_TEST(no_network)
{
    struct vm_config *c = load("null");
    char *text = NULL;
    ck_assert_int_eq(dns_config_render(c, &text), -EINVAL);
    ck_assert_ptr_null(text);
    vm_config_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dns_config");
    TCase *tc = tcase_create("render");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, golden_openclaw);
    tcase_add_test(tc, other_subnet);
    tcase_add_test(tc, dns_elsewhere_is_pointed_out);
    tcase_add_test(tc, no_network);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
