/* gateway_config: the OpenClaw config file ocvm renders for the guest's gateway. ocvm's secure
 * defaults for the example VM, and with a user's gateway.openclaw merged over them, against
 * golden files (tests/golden/openclaw-gateway*.json); the merge as `openclaw config patch` does it
 * (objects merge, null deletes, anything else replaces); the port following gateway.guest_port;
 * the token in its one place and in no error. */
#include "common/cleanup.h"
#include "config/config.h"
#include "policy/gateway_config.h"

#include "tests/support/golden.h"
#include "tests/support/run_suite.h"
#include "tests/support/vm_fixture.h"

#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>

/* 64 hex digits, as ocvm makes them; only ever a test value. */
#define TOKEN "5ec7e7000000000000000000000000000000000000000000000000000000c0de"

/* examples/openclaw.json (as vm.json), its gateway section given OPENCLAW as gateway.openclaw
 * (NULL: none). */
static struct vm_config *load_example(const char *openclaw)
{
    char *text = vm_fixture_read("examples/openclaw.json");
    /* the user QEMU runs as plays no part here, and need not exist on the test host */
    text = golden_replace(text, "\"user\": \"ocvm\"", "\"user\": null");
    if (openclaw) {
        const char *at = "\"health_path\": \"/readyz\"";
        ck_assert_ptr_nonnull(strstr(text, at));
        _cleanup_free_ char *with = NULL;
        ck_assert_int_ge(asprintf(&with, "%s,\n                \"openclaw\": %s", at, openclaw), 0);
        text = golden_replace(text, at, with);
    }
    struct vm_config *c = vm_fixture_load(text);
    free(text);
    return c;
}

/* Renders C with TOKEN, asserting success. */
static char *render(const struct vm_config *c, const char *token)
{
    char *json = NULL, *error = NULL;
    int r = gateway_config_render(c, token, &json, &error);
    ck_assert_msg(r == 0, "render: %d %s", r, error ? error : "");
    ck_assert_ptr_null(error);
    ck_assert_ptr_nonnull(json);
    return json;
}

static size_t count(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what))
        n++;
    return n;
}

/* The value at dotted PATH of the JSON text S (a new reference), or NULL. */
static json_t *value_at(const char *s, const char *path)
{
    json_t *root = json_loads(s, JSON_REJECT_DUPLICATES, NULL), *v = root;
    ck_assert_ptr_nonnull(root);
    _cleanup_free_ char *copy = strdup(path);
    for (char *save, *k = strtok_r(copy, ".", &save); k && v; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    json_incref(v);
    json_decref(root);
    return v;
}

START_TEST(defaults_golden)
{
    struct vm_config *c = load_example(NULL);
    _cleanup_free_ char *json = render(c, TOKEN);
    golden_check("openclaw-gateway.json", json);
    /* the token, once, where the gateway looks for it */
    ck_assert_uint_eq(count(json, TOKEN), 1);
    json_t *t = value_at(json, "gateway.auth.token");
    ck_assert_str_eq(json_string_value(t), TOKEN);
    json_decref(t);
    /* deterministic */
    _cleanup_free_ char *again = render(c, TOKEN);
    ck_assert_str_eq(json, again);
    vm_config_free(c);
}
END_TEST

/* A user's settings as docs/config.md shows them: a new section, nested objects merged key by
 * key, a list replaced, a default deleted with null, a default repeated. */
#define USER_SETTINGS                                                                              \
    "{\"agents\": {\"defaults\": {\"model\": {\"primary\": \"anthropic/claude-opus-4-6\"},\n"      \
    "                 \"workspace\": \"/home/openclaw/workspace\"}},\n"                            \
    "  \"gateway\": {\"auth\": {\"mode\": \"token\"},\n"                                           \
    "                \"controlUi\": {\"allowedOrigins\": [\"https://openclaw.example.org\"]},\n"   \
    "                \"terminal\": null},\n"                                                       \
    "  \"logging\": {\"level\": \"debug\"},\n"                                                     \
    "  \"tools\": {\"exec\": {\"applyPatch\": {\"enabled\": false}}, \"profile\": \"coding\"}}"

START_TEST(merged_golden)
{
    struct vm_config *c = load_example(USER_SETTINGS);
    _cleanup_free_ char *json = render(c, TOKEN);
    golden_check("openclaw-gateway-merged.json", json);
    ck_assert_uint_eq(count(json, TOKEN), 1);
    /* merged key by key: the user's key beside ocvm's */
    json_t *v = value_at(json, "tools.exec.applyPatch");
    ck_assert(json_is_false(json_object_get(v, "enabled")));
    ck_assert(json_is_true(json_object_get(v, "workspaceOnly")));
    json_decref(v);
    /* a list replaced whole, a default deleted */
    v = value_at(json, "gateway.controlUi.allowedOrigins");
    ck_assert_uint_eq(json_array_size(v), 1);
    json_decref(v);
    ck_assert_ptr_null(value_at(json, "gateway.terminal"));
    vm_config_free(c);
}
END_TEST

/* The gateway listens where the guest's relay connects: gateway.guest_port. */
START_TEST(port_follows_guest_port)
{
    struct vm_config *c = vm_fixture_load("{\"name\": \"vm\", \"boot\": {\"kernel\": \"KERNEL\"},\n"
                                          " \"gateway\": {\"guest_port\": 8080,\n"
                                          "  \"openclaw\": {\"gateway\": {\"port\": 8080}}}}");
    _cleanup_free_ char *json = render(c, TOKEN);
    json_t *port = value_at(json, "gateway.port");
    ck_assert_int_eq(json_integer_value(port), 8080);
    json_decref(port);
    vm_config_free(c);
}
END_TEST

/* RFC 7396, as `openclaw config patch`: null deletes (also inside a new object), anything but two
 * objects replaces. */
START_TEST(merge_rules)
{
    struct vm_config *c = vm_fixture_load(
        "{\"name\": \"vm\", \"boot\": {\"kernel\": \"KERNEL\"}, \"gateway\": {\"openclaw\":\n"
        " {\"hooks\": {\"enabled\": true, \"path\": null},\n"
        "  \"update\": \"x\",\n"
        "  \"discovery\": {\"mdns\": {\"mode\": {\"odd\": null, \"a\": 1}}},\n"
        "  \"gateway\": {\"trustedProxies\": [\"10.0.0.1\"], \"controlUi\": null}}}}");
    _cleanup_free_ char *json = render(c, TOKEN);
    json_t *root = json_loads(json, 0, NULL);
    ck_assert_ptr_nonnull(root);
    _cleanup_free_ char *hooks = json_dumps(json_object_get(root, "hooks"), JSON_COMPACT);
    ck_assert_str_eq(hooks, "{\"enabled\":true}");
    ck_assert_str_eq(json_string_value(json_object_get(root, "update")), "x");
    _cleanup_free_ char *mdns = json_dumps(json_object_get(root, "discovery"), JSON_COMPACT);
    ck_assert_str_eq(mdns, "{\"mdns\":{\"mode\":{\"a\":1}}}");
    json_t *gw = json_object_get(root, "gateway");
    _cleanup_free_ char *proxies = json_dumps(json_object_get(gw, "trustedProxies"), JSON_COMPACT);
    ck_assert_str_eq(proxies, "[\"10.0.0.1\"]");
    ck_assert_ptr_null(json_object_get(gw, "controlUi"));
    ck_assert_str_eq(json_string_value(json_object_get(gw, "bind")), "loopback");
    json_decref(root);
    vm_config_free(c);
}
END_TEST

/* A token of the user's replaces ocvm's, which then appears nowhere. */
START_TEST(user_token_replaces_ocvms)
{
    struct vm_config *c = vm_fixture_load(
        "{\"name\": \"vm\", \"boot\": {\"kernel\": \"KERNEL\"}, \"gateway\": {\"openclaw\":\n"
        " {\"gateway\": {\"auth\": {\"token\": \"users-own-token-of-thirty-two-chars\"}}}}}");
    _cleanup_free_ char *json = render(c, TOKEN);
    ck_assert_uint_eq(count(json, TOKEN), 0);
    ck_assert_uint_eq(count(json, "users-own-token-of-thirty-two-chars"), 1);
    vm_config_free(c);
}
END_TEST

/* An unusable token is refused with a line that never holds it. */
START_TEST(bad_tokens)
{
    struct vm_config *c = vm_fixture_load("{\"name\": \"vm\", \"boot\": {\"kernel\": \"KERNEL\"}}");
    static const char *const tokens[] = {"", "s3cr3t-with-newline\n", "s3cr3t\x01tail",
                                         "s3cr3t-not-utf8-\xff"};
    char *json = NULL, *error = NULL;
    ck_assert_int_eq(gateway_config_render(c, NULL, &json, &error), -EINVAL);
    ck_assert_str_eq(error, "no gateway token");
    free(error);
    for (size_t i = 0; i < ELEMENTSOF(tokens); i++) {
        error = NULL;
        ck_assert_int_eq(gateway_config_render(c, tokens[i], &json, &error), -EINVAL);
        ck_assert_ptr_null(json);
        ck_assert_ptr_nonnull(error);
        ck_assert_ptr_null(strstr(error, "s3cr3t"));
        ck_assert_ptr_null(strchr(error, '\n'));
        free(error);
    }
    vm_config_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gateway_config");
    TCase *tc = tcase_create("render");
    tcase_add_checked_fixture(tc, vm_fixture_setup, vm_fixture_teardown);
    tcase_add_test(tc, defaults_golden);
    tcase_add_test(tc, merged_golden);
    tcase_add_test(tc, port_follows_guest_port);
    tcase_add_test(tc, merge_rules);
    tcase_add_test(tc, user_token_replaces_ocvms);
    tcase_add_test(tc, bad_tokens);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
