/* endpoint: every address form the config and `ocvm relay` accept gives the right fields, every
 * malformed one is refused with a reason, and endpoint_is_local tells loopback from the rest. */
#include "tests/support/run_suite.h"
#include "vsock/endpoint.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

static const struct valid_case {
    const char *in;
    enum endpoint_kind kind;
    const char *host, *path;
    uint32_t cid;
    uint16_t port;
} valid[] = {
    {"tcp:127.0.0.1:18789", ENDPOINT_TCP, "127.0.0.1", "", 0, 18789},
    {"tcp:0.0.0.0:1", ENDPOINT_TCP, "0.0.0.0", "", 0, 1},
    {"tcp:192.168.83.2:65535", ENDPOINT_TCP, "192.168.83.2", "", 0, 65535},
    {"tcp:[::1]:9000", ENDPOINT_TCP, "::1", "", 0, 9000},
    {"tcp:[fe80::1:2]:443", ENDPOINT_TCP, "fe80::1:2", "", 0, 443},
    {"unix:/run/ocvm/openclaw/relay.sock", ENDPOINT_UNIX, "", "/run/ocvm/openclaw/relay.sock", 0,
     0},
    {"unix:/tmp/a:b", ENDPOINT_UNIX, "", "/tmp/a:b", 0, 0}, /* a colon is part of the path */
    {"vsock:3:18789", ENDPOINT_VSOCK, "", "", 3, 18789},
    {"vsock:2:1", ENDPOINT_VSOCK, "", "", 2, 1},
    {"vsock:4294967294:65535", ENDPOINT_VSOCK, "", "", 4294967294u, 65535},
    {"hybrid:/run/ocvm/openclaw/vsock.sock:18789", ENDPOINT_HYBRID, "",
     "/run/ocvm/openclaw/vsock.sock", 0, 18789},
    {"hybrid:/tmp/a:b/v.sock:1024", ENDPOINT_HYBRID, "", "/tmp/a:b/v.sock", 0, 1024},
};

START_TEST(test_valid_forms)
{
    const struct valid_case *c = &valid[_i];
    struct endpoint e;
    const char *why = NULL;
    memset(&e, 0xaa, sizeof(e));
    ck_assert_msg(endpoint_parse(c->in, &e, &why) == 0, "%s rejected: %s", c->in, why);
    ck_assert_int_eq(e.kind, c->kind);
    ck_assert_str_eq(e.host, c->host);
    ck_assert_str_eq(e.path, c->path);
    ck_assert_uint_eq(e.cid, c->cid);
    ck_assert_uint_eq(e.port, c->port);
    char back[256];
    ck_assert_str_eq(endpoint_format(&e, back, sizeof(back)), c->in); /* and back again */
}
END_TEST

START_TEST(test_format_any_cid)
{
    struct endpoint e;
    const char *why;
    char back[64];
    ck_assert_int_eq(endpoint_parse("vsock:any:18789", &e, &why), 0);
    ck_assert_str_eq(endpoint_format(&e, back, sizeof(back)), "vsock:any:18789");
    ck_assert_str_eq(endpoint_format(&e, back, 8), "vsock:a"); /* truncated, terminated */
}
END_TEST

static const char *const invalid[] = {
    "",
    "tcp:",
    "tcp:127.0.0.1:0",
    "tcp:127.0.0.1:65536",
    "tcp:127.0.0.1:99999999999",
    "tcp:127.0.0.1:http",
    "tcp:127.0.0.1:80x",
    "tcp:127.0.0.1:-1",
    "tcp:127.0.0.1:+80",
    "tcp:127.0.0.1: 80",
    "tcp:127.0.0.1:",
    "tcp:127.0.0.1",
    "tcp::80",
    "tcp:localhost:80",
    "tcp:example.com:443",
    "tcp:127.1:80",
    "tcp:::1:80",
    "tcp:[::1]",
    "tcp:[::1]:",
    "tcp:[::1]x:80",
    "tcp:[]:80",
    "tcp:[127.0.0.1]:80",
    "tcp:[::1:80",
    "tcp:[fe80::1%eth0]:80",
    "TCP:127.0.0.1:80",
    "udp:127.0.0.1:53",
    "unix:",
    "unix:relative.sock",
    "unix:./relay.sock",
    "hybrid:/run/v.sock",
    "hybrid:/run/v.sock:",
    "hybrid:/run/v.sock:0",
    "hybrid:/run/v.sock:65536",
    "hybrid:/run/v.sock:port",
    "hybrid:relative.sock:1024",
    "hybrid::1024",
    "vsock:",
    "vsock:3",
    "vsock:3:",
    "vsock::80",
    "vsock:4294967295:80",
    "vsock:4294967296:80",
    "vsock:x:80",
    "vsock:3:0",
    "vsock:3:65536",
    "vsock:3:80:90",
    "vsock:-1:80",
};

START_TEST(test_invalid_forms)
{
    const char *in = invalid[_i];
    struct endpoint e = {.kind = ENDPOINT_VSOCK, .cid = 7, .port = 7};
    const char *why = NULL;
    ck_assert_msg(endpoint_parse(in, &e, &why) == -EINVAL, "\"%s\" accepted", in);
    ck_assert_msg(why && *why, "\"%s\" rejected without a reason", in);
    /* a failed parse leaves the caller's endpoint alone */
    ck_assert_int_eq(e.kind, ENDPOINT_VSOCK);
    ck_assert_uint_eq(e.cid, 7);
}
END_TEST

/* "unix:" followed by "/" and N-1 'a's: a path of N bytes. */
static char *unix_of_len(const char *prefix, size_t n, const char *suffix)
{
    size_t pl = strlen(prefix), sl = strlen(suffix);
    char *s = malloc(pl + n + sl + 1);
    ck_assert_ptr_nonnull(s);
    memcpy(s, prefix, pl);
    s[pl] = '/';
    memset(s + pl + 1, 'a', n - 1);
    memcpy(s + pl + n, suffix, sl + 1);
    return s;
}

START_TEST(test_unix_path_length)
{
    const size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1; /* 107 + NUL */
    struct endpoint e;
    const char *why = NULL;

    char *fits = unix_of_len("unix:", max, "");
    ck_assert_msg(endpoint_parse(fits, &e, &why) == 0, "a %zu-byte path rejected: %s", max, why);
    ck_assert_uint_eq(strlen(e.path), max);
    free(fits);

    char *too_long = unix_of_len("unix:", max + 1, "");
    why = NULL;
    ck_assert_int_eq(endpoint_parse(too_long, &e, &why), -EINVAL);
    ck_assert_ptr_nonnull(why);
    free(too_long);

    char *huge = unix_of_len("unix:", 5000, "");
    why = NULL;
    ck_assert_int_eq(endpoint_parse(huge, &e, &why), -EINVAL);
    ck_assert_ptr_nonnull(why);
    free(huge);

    /* hybrid paths get "_PORT" appended for guest-initiated connections; the result must fit */
    char *hybrid = unix_of_len("hybrid:", max, ":1024");
    why = NULL;
    ck_assert_int_eq(endpoint_parse(hybrid, &e, &why), -EINVAL);
    ck_assert_ptr_nonnull(why);
    free(hybrid);
    hybrid = unix_of_len("hybrid:", max - strlen("_65535") - 1, ":1024");
    ck_assert_msg(endpoint_parse(hybrid, &e, &why) == 0, "hybrid path with room rejected: %s", why);
    ck_assert_uint_eq(e.port, 1024);
    free(hybrid);
}
END_TEST

static const struct local_case {
    const char *in;
    bool local;
} locals[] = {
    {"tcp:127.0.0.1:80", true},
    {"tcp:127.1.2.3:80", true},
    {"tcp:127.255.255.254:80", true},
    {"tcp:[::1]:80", true},
    {"unix:/run/x.sock", true},
    {"hybrid:/run/v.sock:80", true},
    {"tcp:0.0.0.0:80", false},
    {"tcp:192.168.83.2:80", false},
    {"tcp:128.0.0.1:80", false},
    {"tcp:126.255.255.255:80", false},
    {"tcp:[::]:80", false},
    {"tcp:[::2]:80", false},
    {"vsock:3:80", false},
};

START_TEST(test_is_local)
{
    const struct local_case *c = &locals[_i];
    struct endpoint e;
    const char *why = NULL;
    ck_assert_msg(endpoint_parse(c->in, &e, &why) == 0, "%s: %s", c->in, why);
    ck_assert_msg(endpoint_is_local(&e) == c->local, "%s: expected %s", c->in,
                  c->local ? "local" : "not local");
}
END_TEST

static const struct hostport_case {
    const char *in;
    const char *host; /* NULL: must be rejected */
    uint16_t port;
} hostports[] = {
    {"127.0.0.1:18789", "127.0.0.1", 18789},
    {"0.0.0.0:1", "0.0.0.0", 1},
    {"[::1]:18789", "::1", 18789},
    {"[2001:db8::1]:65535", "2001:db8::1", 65535},
    {"", NULL, 0},
    {"127.0.0.1", NULL, 0},
    {"127.0.0.1:", NULL, 0},
    {":18789", NULL, 0},
    {"127.0.0.1:0", NULL, 0},
    {"127.0.0.1:65536", NULL, 0},
    {"127.0.0.1:abc", NULL, 0},
    {"localhost:18789", NULL, 0},
    {"::1:18789", NULL, 0},
    {"[::1]", NULL, 0},
    {"[::1]18789", NULL, 0},
    {"[localhost]:80", NULL, 0},
    {"127.0.0.1:80:90", NULL, 0},
    {"tcp:127.0.0.1:80", NULL, 0},
};

START_TEST(test_hostport)
{
    const struct hostport_case *c = &hostports[_i];
    char host[64] = "untouched";
    uint16_t port = 7;
    const char *why = NULL;
    int r = endpoint_parse_hostport(c->in, host, &port, &why);
    if (c->host) {
        ck_assert_msg(r == 0, "\"%s\" rejected: %s", c->in, why);
        ck_assert_str_eq(host, c->host);
        ck_assert_uint_eq(port, c->port);
    } else {
        ck_assert_msg(r == -EINVAL, "\"%s\" accepted", c->in);
        ck_assert_msg(why && *why, "\"%s\" rejected without a reason", c->in);
        ck_assert_str_eq(host, "untouched");
    }
}
END_TEST

START_TEST(test_hostport_long_host)
{
    char s[200];
    memset(s, '1', sizeof(s));
    strcpy(s + 150, ":80");
    char host[64] = "untouched";
    uint16_t port = 0;
    const char *why = NULL;
    ck_assert_int_eq(endpoint_parse_hostport(s, host, &port, &why), -EINVAL);
    ck_assert_ptr_nonnull(why);
    ck_assert_str_eq(host, "untouched");
}
END_TEST

START_TEST(test_kind_names)
{
    /* the names a user writes in the config are the ones printed back */
    ck_assert_str_eq(endpoint_kind_to_string(ENDPOINT_TCP), "tcp");
    ck_assert_str_eq(endpoint_kind_to_string(ENDPOINT_UNIX), "unix");
    ck_assert_str_eq(endpoint_kind_to_string(ENDPOINT_VSOCK), "vsock");
    ck_assert_str_eq(endpoint_kind_to_string(ENDPOINT_HYBRID), "hybrid");
    ck_assert_ptr_null(endpoint_kind_to_string(_ENDPOINT_KIND_MAX));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("endpoint");
    TCase *tc = tcase_create("parse");
    tcase_add_loop_test(tc, test_valid_forms, 0, sizeof(valid) / sizeof(valid[0]));
    tcase_add_test(tc, test_format_any_cid);
    tcase_add_loop_test(tc, test_invalid_forms, 0, sizeof(invalid) / sizeof(invalid[0]));
    tcase_add_test(tc, test_unix_path_length);
    tcase_add_loop_test(tc, test_is_local, 0, sizeof(locals) / sizeof(locals[0]));
    tcase_add_loop_test(tc, test_hostport, 0, sizeof(hostports) / sizeof(hostports[0]));
    tcase_add_test(tc, test_hostport_long_host);
    tcase_add_test(tc, test_kind_names);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
