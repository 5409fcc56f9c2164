/* config: what a user sees of the loader. Every default of ARCHITECTURE.md's configuration when
 * only name and boot.kernel are given; a full configuration read back key by key; relative file
 * names resolved against the configuration's directory; and, for each kind of mistake, the exact
 * one-line "FILE:LINE:COL: key.path: message" that is printed. The tests share one temporary
 * directory holding a dummy kernel, initrd and share directory; "vm.json" in it is the name the
 * texts are loaded as.
 *
 * Test texts are written with ' for " (JSON has no single quotes) so that they stay readable;
 * load() turns them back before parsing. Columns count characters, 1-based. */
#include "config/config.h"
#include "tests/support/run_suite.h"
#include "tests/support/vm_fixture.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The temporary directory is the fixture's (tests/support/vm_fixture.h), its vm.json the name
 * config_load_text reports: one for the whole run, made before and removed after srunner_run_all
 * (main), so that it goes away even when a forked test fails before its teardown. */
static struct vm_config *cfg; /* the result of the last load(), freed by teardown */
static char *err;             /* the error of the last load(), freed by teardown */

static void path_in_tmp(char *buf, size_t size, const char *name)
{
    int n = snprintf(buf, size, "%s/%s", vm_fixture_dir(), name);
    ck_assert(n > 0 && (size_t)n < size);
}

static void setup(void)
{
    cfg = NULL;
    err = NULL;
}

static void teardown(void)
{
    vm_config_free(cfg);
    cfg = NULL;
    free(err);
    err = NULL;
    unlink(vm_fixture_config_path()); /* written by test_config_load_reads_file */
}

/* Loads TEXT (with ' for ") as if read from the fixture's vm.json. */
static int load(const char *text)
{
    char *json = strdup(text);
    ck_assert_ptr_nonnull(json);
    for (char *p = json; *p; p++)
        if (*p == '\'')
            *p = '"';
    vm_config_free(cfg);
    cfg = NULL;
    free(err);
    err = NULL;
    int r = config_load_text(vm_fixture_config_path(), json, strlen(json), &cfg, &err);
    free(json);
    return r;
}

static void load_ok(const char *text)
{
    int r = load(text);
    ck_assert_msg(r == 0, "expected the configuration to load, got %d: %s", r, err ? err : "");
    ck_assert_ptr_nonnull(cfg);
}

/* Asserts that TEXT is refused with exactly "DIR/vm.json:" WHERE_WHAT, on one line. */
#define ck_assert_config_error(text, where_what)                                                   \
    do {                                                                                           \
        int _r = load(text);                                                                       \
        ck_assert_int_eq(_r, -EINVAL);                                                             \
        ck_assert_ptr_null(cfg);                                                                   \
        ck_assert_ptr_nonnull(err);                                                                \
        char *_want;                                                                               \
        ck_assert_int_ge(asprintf(&_want, "%s:%s", vm_fixture_config_path(), (where_what)), 0);    \
        ck_assert_str_eq(err, _want);                                                              \
        free(_want);                                                                               \
        ck_assert_ptr_null(strchr(err, '\n'));                                                     \
    } while (0)

/* The smallest configuration ARCHITECTURE.md allows: name and boot.kernel, then TAIL. */
#define MINIMAL_WITH(tail)                                                                         \
    "{\n"                                                                                          \
    "  'name': 'openclaw',\n"                                                                      \
    "  'boot': { 'kernel': 'vmlinuz' }" tail "\n"                                                  \
    "}\n"

/* ---- loading ---- */

START_TEST(test_defaults)
{
    load_ok(MINIMAL_WITH(""));
    char kernel[192];
    path_in_tmp(kernel, sizeof(kernel), "vmlinuz");

    ck_assert_str_eq(cfg->path, vm_fixture_config_path());
    ck_assert_str_eq(cfg->name, "openclaw");

    ck_assert_int_eq(cfg->machine.type, MACHINE_MICROVM);
    ck_assert_int_eq(cfg->machine.accel, ACCEL_AUTO);
    ck_assert_uint_eq(cfg->machine.vcpu, 2);
    ck_assert_uint_eq(cfg->machine.memory_mib, 2048);
    ck_assert_str_eq(cfg->machine.qemu, "qemu-system-x86_64");
    ck_assert_str_eq(cfg->machine.user, "ocvm"); /* QEMU never runs as root by default */
    ck_assert_ptr_nonnull(cfg->machine.extra_args);
    ck_assert_ptr_null(cfg->machine.extra_args[0]);
    /* no safety rule is waived unless a config says so */
    ck_assert(!cfg->machine.unsafe_qemu_as_root);
    ck_assert(!cfg->machine.unsafe_extra_args);
    ck_assert(!cfg->gateway.unsafe_remote_gateway);

    ck_assert_str_eq(cfg->boot.kernel, kernel);
    ck_assert_ptr_null(cfg->boot.initrd);
    ck_assert_str_eq(cfg->boot.cmdline, "console=ttyS0 panic=-1");

    ck_assert(cfg->vsock.enabled);
    ck_assert_int_eq(cfg->vsock.backend, VSOCK_BACKEND_AUTO);
    ck_assert_uint_eq(cfg->vsock.guest_cid, 3);

    ck_assert_ptr_nonnull(cfg->network);
    ck_assert_str_eq(cfg->network->bridge, "br-openclaw");
    ck_assert_str_eq(cfg->network->bridge_address, "192.168.83.1/24");
    ck_assert_str_eq(cfg->network->tap, "vm-openclaw");
    ck_assert_str_eq(cfg->network->guest_address, "192.168.83.2");
    ck_assert_str_eq(cfg->network->mac, "02:00:00:00:00:01");
    ck_assert_str_eq(cfg->network->uplink, "auto");
    ck_assert_str_eq(cfg->network->dns, "192.168.83.1");
    ck_assert_uint_eq(cfg->network->n_egress_allow, 0);

    ck_assert_uint_eq(cfg->gateway.guest_port, 18789);
    ck_assert_str_eq(cfg->gateway.host_listen, "127.0.0.1:18789");
    ck_assert_str_eq(cfg->gateway.health_path, "/readyz");
    ck_assert_uint_eq(cfg->gateway.probe_interval_s, 10);
    ck_assert_uint_eq(cfg->gateway.probe_failures, 3);
    ck_assert_uint_eq(cfg->gateway.probe_restart_after, 6);

    ck_assert_uint_eq(cfg->n_forwards, 0);
    ck_assert_uint_eq(cfg->n_shares, 0);

    ck_assert_uint_eq(cfg->restart.max_restarts, 5);
    ck_assert_uint_eq(cfg->restart.backoff_initial_ms, 500);
    ck_assert_uint_eq(cfg->restart.backoff_max_ms, 30000);
    ck_assert_uint_eq(cfg->timeouts.ready_s, 120);
    ck_assert_uint_eq(cfg->timeouts.shutdown_s, 30);
}
END_TEST

/* ARCHITECTURE.md's example, every key written out, as a user would copy it. */
START_TEST(test_canonical_config_loads)
{
    load_ok(
        "{\n"
        "  'name': 'openclaw',\n"
        "  'machine':  { 'type': 'microvm', 'accel': 'auto', 'vcpu': 2, 'memory_mib': 2048,\n"
        "                'qemu': 'qemu-system-x86_64', 'user': null, 'extra_args': [] },\n"
        "  'boot':     { 'kernel': 'vmlinuz', 'initrd': null,\n"
        "                'cmdline': 'console=ttyS0 panic=-1' },\n"
        "  'vsock':    { 'backend': 'auto', 'guest_cid': 3 },\n"
        "  'network':  { 'bridge': 'br-openclaw', 'bridge_address': '192.168.83.1/24',\n"
        "                'tap': 'vm-openclaw', 'guest_address': '192.168.83.2',\n"
        "                'mac': '02:00:00:00:00:01', 'uplink': 'auto', 'dns': '192.168.83.1',\n"
        "                'egress': { 'allow': [] } },\n"
        "  'gateway':  { 'guest_port': 18789, 'host_listen': '127.0.0.1:18789',\n"
        "                'health_path': '/health' },\n"
        "  'forwards': [ { 'to': 'guest', 'listen': 'tcp:127.0.0.1:9000', 'guest_port': 9000 },\n"
        "                { 'to': 'host', 'guest_port': 18790,\n"
        "                  'connect': 'tcp:127.0.0.1:18790' } ],\n"
        "  'shares':   [ { 'tag': 'secrets', 'source': 'share', 'proto': 'virtiofs',\n"
        "                  'read_only': true } ],\n"
        "  'restart':  { 'max_restarts': 5, 'backoff_initial_ms': 500,\n"
        "                'backoff_max_ms': 30000 },\n"
        "  'timeouts': { 'ready_s': 120, 'shutdown_s': 30 }\n"
        "}\n");
    char share[192];
    path_in_tmp(share, sizeof(share), "share");

    ck_assert_str_eq(cfg->name, "openclaw");
    ck_assert(cfg->vsock.enabled);
    ck_assert_ptr_nonnull(cfg->network);
    ck_assert_uint_eq(cfg->n_forwards, 2);
    ck_assert_int_eq(cfg->forwards[0].to, FORWARD_TO_GUEST);
    ck_assert_str_eq(cfg->forwards[0].listen, "tcp:127.0.0.1:9000");
    ck_assert_ptr_null(cfg->forwards[0].connect);
    ck_assert_uint_eq(cfg->forwards[0].guest_port, 9000);
    ck_assert_int_eq(cfg->forwards[1].to, FORWARD_TO_HOST);
    ck_assert_ptr_null(cfg->forwards[1].listen);
    ck_assert_str_eq(cfg->forwards[1].connect, "tcp:127.0.0.1:18790");
    ck_assert_uint_eq(cfg->forwards[1].guest_port, 18790);
    ck_assert_uint_eq(cfg->n_shares, 1);
    ck_assert_str_eq(cfg->shares[0].tag, "secrets");
    ck_assert_str_eq(cfg->shares[0].source, share);
    ck_assert_int_eq(cfg->shares[0].proto, SHARE_VIRTIOFS);
    ck_assert(cfg->shares[0].read_only);
}
END_TEST

/* Every value that differs from its default is read, not replaced by the default. */
START_TEST(test_values_override_defaults)
{
    load_ok("{\n"
            "  'name': 'my_vm-2',\n"
            "  'machine': { 'type': 'q35', 'accel': 'kvm', 'vcpu': 8, 'memory_mib': 4096,\n"
            "               'qemu': '/usr/local/bin/qemu', 'user': 'root',\n"
            "               'extra_args': ['-cpu', 'host'] },\n"
            "  'boot': { 'kernel': 'vmlinuz', 'initrd': 'initrd.img', 'cmdline': 'quiet' },\n"
            "  'vsock': { 'backend': 'user', 'guest_cid': 42 },\n"
            "  'network': { 'bridge': 'br0', 'bridge_address': '10.1.0.1/30', 'tap': 'tap0',\n"
            "               'guest_address': '10.1.0.2', 'mac': '02:aa:bb:cc:dd:ee',\n"
            "               'uplink': 'eth0', 'dns': '9.9.9.9',\n"
            "               'egress': { 'allow': [ { 'host': 'api.example.com',\n"
            "                                        'ports': [443, 8443] } ] } },\n"
            "  'gateway': { 'guest_port': 8080, 'host_listen': '[::1]:8081',\n"
            "               'health_path': '/healthz', 'probe_interval_s': 0,\n"
            "               'probe_failures': 1, 'probe_restart_after': 0 },\n"
            "  'shares': [ { 'tag': 'data', 'source': 'share', 'proto': '9p',\n"
            "                'read_only': false } ],\n"
            "  'restart': { 'max_restarts': 0, 'backoff_initial_ms': 100,\n"
            "               'backoff_max_ms': 100 },\n"
            "  'timeouts': { 'ready_s': 600, 'shutdown_s': 5 }\n"
            "}\n");
    char initrd[192];
    path_in_tmp(initrd, sizeof(initrd), "initrd.img");

    ck_assert_str_eq(cfg->name, "my_vm-2");
    ck_assert_int_eq(cfg->machine.type, MACHINE_Q35);
    ck_assert_int_eq(cfg->machine.accel, ACCEL_KVM);
    ck_assert_uint_eq(cfg->machine.vcpu, 8);
    ck_assert_uint_eq(cfg->machine.memory_mib, 4096);
    ck_assert_str_eq(cfg->machine.qemu, "/usr/local/bin/qemu");
    ck_assert_str_eq(cfg->machine.user, "root");
    ck_assert_str_eq(cfg->machine.extra_args[0], "-cpu");
    ck_assert_str_eq(cfg->machine.extra_args[1], "host");
    ck_assert_ptr_null(cfg->machine.extra_args[2]);
    ck_assert_str_eq(cfg->boot.initrd, initrd);
    ck_assert_str_eq(cfg->boot.cmdline, "quiet");
    ck_assert_int_eq(cfg->vsock.backend, VSOCK_BACKEND_USER);
    ck_assert_uint_eq(cfg->vsock.guest_cid, 42);
    ck_assert_str_eq(cfg->network->bridge, "br0");
    ck_assert_str_eq(cfg->network->bridge_address, "10.1.0.1/30");
    ck_assert_str_eq(cfg->network->tap, "tap0");
    ck_assert_str_eq(cfg->network->guest_address, "10.1.0.2");
    ck_assert_str_eq(cfg->network->mac, "02:aa:bb:cc:dd:ee");
    ck_assert_str_eq(cfg->network->uplink, "eth0");
    ck_assert_str_eq(cfg->network->dns, "9.9.9.9");
    ck_assert_uint_eq(cfg->network->n_egress_allow, 1);
    ck_assert_str_eq(cfg->network->egress_allow[0].host, "api.example.com");
    ck_assert_uint_eq(cfg->network->egress_allow[0].n_ports, 2);
    ck_assert_uint_eq(cfg->network->egress_allow[0].ports[0], 443);
    ck_assert_uint_eq(cfg->network->egress_allow[0].ports[1], 8443);
    ck_assert_uint_eq(cfg->gateway.guest_port, 8080);
    ck_assert_str_eq(cfg->gateway.host_listen, "[::1]:8081");
    ck_assert_str_eq(cfg->gateway.health_path, "/healthz");
    ck_assert_uint_eq(cfg->gateway.probe_interval_s, 0);
    ck_assert_uint_eq(cfg->gateway.probe_failures, 1);
    ck_assert_uint_eq(cfg->gateway.probe_restart_after, 0);
    ck_assert_int_eq(cfg->shares[0].proto, SHARE_9P);
    ck_assert(!cfg->shares[0].read_only);
    ck_assert_uint_eq(cfg->restart.max_restarts, 0);
    ck_assert_uint_eq(cfg->restart.backoff_initial_ms, 100);
    ck_assert_uint_eq(cfg->restart.backoff_max_ms, 100);
    ck_assert_uint_eq(cfg->timeouts.ready_s, 600);
    ck_assert_uint_eq(cfg->timeouts.shutdown_s, 5);
}
END_TEST

/* The unsafe_* keys are read where they belong; a non-loopback listener loads (policy/ judges it).
 */
START_TEST(test_unsafe_keys)
{
    load_ok(
        MINIMAL_WITH(",\n  'machine': { 'unsafe_qemu_as_root': true, 'unsafe_extra_args': true },\n"
                     "  'gateway': { 'host_listen': '0.0.0.0:1', 'unsafe_remote_gateway': true },\n"
                     "  'forwards': [ { 'to': 'guest', 'listen': 'tcp:0.0.0.0:9', 'guest_port': 9,"
                     " 'unsafe_remote_listen': true } ]"));
    ck_assert(cfg->machine.unsafe_qemu_as_root);
    ck_assert(cfg->machine.unsafe_extra_args);
    ck_assert(cfg->gateway.unsafe_remote_gateway);
    ck_assert(cfg->forwards[0].unsafe_remote_listen);
    ck_assert_str_eq(cfg->gateway.host_listen, "0.0.0.0:1");
    ck_assert_ptr_nonnull(cfg->text);
    ck_assert_uint_eq(cfg->text_len, strlen(cfg->text));
    ck_assert_ptr_nonnull(strstr(cfg->text, "unsafe_remote_gateway"));
}
END_TEST

/* gateway.openclaw is kept for policy/ as compact JSON with sorted keys ("{}" when absent); its
 * waivers are read beside unsafe_remote_gateway. */
START_TEST(test_gateway_openclaw)
{
    load_ok(MINIMAL_WITH(""));
    ck_assert_str_eq(cfg->gateway.openclaw_json, "{}");
    ck_assert(!cfg->gateway.unsafe_openclaw_bind);
    ck_assert(!cfg->gateway.unsafe_openclaw_auth);
    ck_assert(!cfg->gateway.unsafe_openclaw_tools);
    load_ok(MINIMAL_WITH(",\n  'gateway': { 'openclaw': { 'tools': { 'fs': { 'workspaceOnly': "
                         "false } },\n    'gateway': { 'bind': 'lan', 'port': 18789 } },\n"
                         "    'unsafe_openclaw_bind': true, 'unsafe_openclaw_auth': true,\n"
                         "    'unsafe_openclaw_tools': true }"));
    ck_assert_str_eq(cfg->gateway.openclaw_json, "{\"gateway\":{\"bind\":\"lan\",\"port\":18789},"
                                                 "\"tools\":{\"fs\":{\"workspaceOnly\":false}}}");
    ck_assert(cfg->gateway.unsafe_openclaw_bind);
    ck_assert(cfg->gateway.unsafe_openclaw_auth);
    ck_assert(cfg->gateway.unsafe_openclaw_tools);
}
END_TEST

START_TEST(test_error_gateway_openclaw)
{
    ck_assert_config_error(MINIMAL_WITH(",\n  'gateway': { 'openclaw': [] }"),
                           "4:28: gateway.openclaw: expected an object, got an array");
    ck_assert_config_error(MINIMAL_WITH(",\n  'gateway': { 'openclaw': null }"),
                           "4:28: gateway.openclaw: expected an object, got null");
    ck_assert_config_error(MINIMAL_WITH(",\n  'gateway': { 'unsafe_openclaw_auth': 'yes' }"),
                           "4:40: gateway.unsafe_openclaw_auth: expected true or false, got a "
                           "string");
    /* the gateway's port is where the guest's relay connects: gateway.guest_port alone sets it */
    ck_assert_config_error(MINIMAL_WITH(",\n  'gateway': { 'guest_port': 9000,\n"
                                        "    'openclaw': { 'gateway': { 'port': 9001 } } }"),
                           "5:40: gateway.openclaw.gateway.port: ocvm sets it to "
                           "gateway.guest_port (9000), where the guest's relay connects: set that "
                           "instead");
    /* the probe after ready: bounds, and a restart never before the VM was marked degraded */
    ck_assert_config_error(MINIMAL_WITH(",\n  'gateway': { 'probe_failures': 0 }"),
                           "4:34: gateway.probe_failures: must be from 1 to 1000, got 0");
    ck_assert_config_error(MINIMAL_WITH(",\n  'gateway': { 'probe_interval_s': 3601 }"),
                           "4:36: gateway.probe_interval_s: must be from 0 to 3600, got 3601");
    ck_assert_config_error(
        MINIMAL_WITH(",\n  'gateway': { 'probe_failures': 4, 'probe_restart_after': 2 }"),
        "4:60: gateway.probe_restart_after: must be 0 (never) or at least probe_failures (4)");
    ck_assert_config_error(MINIMAL_WITH(",\n  'gateway': { 'openclaw_': {} }"),
                           "4:16: gateway.openclaw_: unknown key (expected one of: guest_port, "
                           "host_listen, health_path, probe_interval_s, probe_failures, "
                           "probe_restart_after, openclaw, unsafe_remote_gateway, "
                           "unsafe_openclaw_bind, unsafe_openclaw_auth, unsafe_openclaw_tools)");
}
END_TEST

START_TEST(test_vsock_null_means_no_vsock)
{
    load_ok(MINIMAL_WITH(",\n  'vsock': null"));
    ck_assert(!cfg->vsock.enabled);
    load_ok(MINIMAL_WITH(",\n  'vsock': {}"));
    ck_assert(cfg->vsock.enabled);
}
END_TEST

START_TEST(test_network_null_means_no_tap)
{
    load_ok(MINIMAL_WITH(",\n  'network': null"));
    ck_assert_ptr_null(cfg->network);
    load_ok(MINIMAL_WITH(",\n  'network': {}"));
    ck_assert_ptr_nonnull(cfg->network);
    ck_assert_str_eq(cfg->network->tap, "vm-openclaw");
}
END_TEST

/* A file name in the configuration means the same wherever ocvm is started from. */
START_TEST(test_relative_paths_resolve_against_config_dir)
{
    char old_cwd[4096];
    ck_assert_ptr_nonnull(getcwd(old_cwd, sizeof(old_cwd)));
    ck_assert_int_eq(chdir("/"), 0);
    load_ok("{\n"
            "  'name': 'openclaw',\n"
            "  'boot': { 'kernel': 'vmlinuz', 'initrd': 'initrd.img' },\n"
            "  'shares': [ { 'tag': 'data', 'source': 'share' } ]\n"
            "}\n");
    ck_assert_int_eq(chdir(old_cwd), 0);
    char want[192];
    path_in_tmp(want, sizeof(want), "vmlinuz");
    ck_assert_str_eq(cfg->boot.kernel, want);
    path_in_tmp(want, sizeof(want), "initrd.img");
    ck_assert_str_eq(cfg->boot.initrd, want);
    path_in_tmp(want, sizeof(want), "share");
    ck_assert_str_eq(cfg->shares[0].source, want);
}
END_TEST

START_TEST(test_absolute_paths_are_kept)
{
    char kernel[192], text[512];
    path_in_tmp(kernel, sizeof(kernel), "vmlinuz");
    snprintf(text, sizeof(text), "{ 'name': 'openclaw', 'boot': { 'kernel': '%s' } }", kernel);
    load_ok(text);
    ck_assert_str_eq(cfg->boot.kernel, kernel);
}
END_TEST

START_TEST(test_config_load_reads_file)
{
    FILE *f = fopen(vm_fixture_config_path(), "we");
    ck_assert_ptr_nonnull(f);
    fputs("{ \"name\": \"fromfile\", \"boot\": { \"kernel\": \"vmlinuz\" } }\n", f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(config_load(vm_fixture_config_path(), &cfg, &err), 0);
    ck_assert_ptr_null(err);
    ck_assert_str_eq(cfg->name, "fromfile");
    ck_assert_str_eq(cfg->path, vm_fixture_config_path());
}
END_TEST

START_TEST(test_config_load_missing_file)
{
    char path[192], want[256];
    path_in_tmp(path, sizeof(path), "nope.json");
    ck_assert_int_eq(config_load(path, &cfg, &err), -ENOENT);
    ck_assert_ptr_null(cfg);
    ck_assert_ptr_nonnull(err);
    snprintf(want, sizeof(want), "%s: No such file or directory", path);
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_config_load_directory)
{
    ck_assert_int_lt(config_load(vm_fixture_dir(), &cfg, &err), 0);
    ck_assert_ptr_null(cfg);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strncmp(err, vm_fixture_dir(), strlen(vm_fixture_dir())) == 0,
                  "error does not name the path: %s", err);
    ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

/* ---- errors: the exact line a user reads ---- */

START_TEST(test_error_syntax)
{
    ck_assert_config_error("{\n"
                           "  'name': 'openclaw',\n"
                           "  'boot': { 'kernel': 'vmlinuz' },\n"
                           "}\n",
                           "4:1: string or '}' expected near '}'");
}
END_TEST

START_TEST(test_error_unknown_key_top_level)
{
    ck_assert_config_error(MINIMAL_WITH(",\n  'cpus': 4"),
                           "4:3: cpus: unknown key (expected one of: name, machine, boot, vsock, "
                           "network, gateway, forwards, shares, restart, timeouts, secrets)");
}
END_TEST

START_TEST(test_error_unknown_key_nested)
{
    ck_assert_config_error(MINIMAL_WITH(",\n  'machine': { 'vcpu': 2, 'memory': 4096 }"),
                           "4:27: machine.memory: unknown key (expected one of: type, accel, vcpu, "
                           "memory_mib, qemu, user, extra_args, unsafe_qemu_as_root, "
                           "unsafe_extra_args)");
    ck_assert_config_error(MINIMAL_WITH(",\n  'network': { 'egress': { 'allow': [\n"
                                        "    { 'host': '1.2.3.4', 'ports': [1], 'port': 2 } ] } }"),
                           "5:40: network.egress.allow[0].port: unknown key (expected one of: "
                           "host, ports)");
}
END_TEST

START_TEST(test_error_wrong_type)
{
    ck_assert_config_error(MINIMAL_WITH(",\n  'machine': { 'vcpu': '2' }"),
                           "4:24: machine.vcpu: expected an integer from 1 to 255, got a string");
    ck_assert_config_error(MINIMAL_WITH(",\n  'shares': {}"),
                           "4:13: shares: expected an array, got an object");
    ck_assert_config_error(MINIMAL_WITH(",\n  'network': 'br0'"),
                           "4:14: network: expected an object or null, got a string");
}
END_TEST

START_TEST(test_error_vcpu_zero)
{
    ck_assert_config_error(MINIMAL_WITH(",\n  'machine': { 'vcpu': 0 }"),
                           "4:24: machine.vcpu: must be from 1 to 255, got 0");
}
END_TEST

START_TEST(test_error_memory_127)
{
    ck_assert_config_error(MINIMAL_WITH(",\n  'machine': { 'memory_mib': 127 }"),
                           "4:30: machine.memory_mib: must be from 128 to 1048576, got 127");
}
END_TEST

START_TEST(test_error_guest_cid_2)
{
    ck_assert_config_error(MINIMAL_WITH(",\n  'vsock': { 'guest_cid': 2 }"),
                           "4:27: vsock.guest_cid: must be from 3 to 4294967294, got 2");
}
END_TEST

START_TEST(test_error_port_range)
{
    ck_assert_config_error(MINIMAL_WITH(",\n  'gateway': { 'guest_port': 0 }"),
                           "4:30: gateway.guest_port: must be from 1 to 65535, got 0");
    ck_assert_config_error(MINIMAL_WITH(",\n  'gateway': { 'guest_port': 65536 }"),
                           "4:30: gateway.guest_port: must be from 1 to 65535, got 65536");
}
END_TEST

START_TEST(test_error_missing_name)
{
    ck_assert_config_error("{\n  'boot': { 'kernel': 'vmlinuz' }\n}\n",
                           "1:1: name: missing (this key is required)");
}
END_TEST

START_TEST(test_error_missing_kernel)
{
    ck_assert_config_error("{\n  'name': 'openclaw',\n  'boot': { 'initrd': null }\n}\n",
                           "3:11: boot.kernel: missing (this key is required)");
    ck_assert_config_error("{\n  'name': 'openclaw'\n}\n",
                           "1:1: boot: missing (this key is required: it names the guest kernel)");
}
END_TEST

START_TEST(test_error_kernel_file_missing)
{
    char want[256];
    snprintf(want, sizeof(want), "3:23: boot.kernel: %s/vmlinuz-6.1: No such file or directory",
             vm_fixture_dir());
    ck_assert_config_error("{\n  'name': 'openclaw',\n  'boot': { 'kernel': 'vmlinuz-6.1' }\n}\n",
                           want);
}
END_TEST

/* jansson reports a duplicate key as a syntax error; only the line is asserted here, see the
 * corpus notes: its column is the end of the key and it names no key path. */
START_TEST(test_error_duplicate_key)
{
    ck_assert_int_eq(load(MINIMAL_WITH(",\n  'machine': { 'vcpu': 2, 'vcpu': 4 }")), -EINVAL);
    ck_assert_ptr_null(cfg);
    ck_assert_ptr_nonnull(err);
    char want[160];
    snprintf(want, sizeof(want), "%s:4:", vm_fixture_config_path());
    ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "not at line 4: %s", err);
    ck_assert_ptr_nonnull(strstr(err, "duplicate"));
    ck_assert_ptr_nonnull(strstr(err, "\"vcpu\""));
    ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

START_TEST(test_error_bad_mac)
{
    ck_assert_config_error(MINIMAL_WITH(",\n  'network': { 'mac': '02:00:00:00:00' }"),
                           "4:23: network.mac: \"02:00:00:00:00\" is not a MAC address like "
                           "02:00:00:00:00:01");
    ck_assert_config_error(MINIMAL_WITH(",\n  'network': { 'mac': '03:00:00:00:00:01' }"),
                           "4:23: network.mac: \"03:00:00:00:00:01\" is a multicast address (first "
                           "octet must be even)");
}
END_TEST

START_TEST(test_error_guest_outside_bridge_subnet)
{
    ck_assert_config_error(MINIMAL_WITH(",\n  'network': { 'bridge_address': '10.0.0.1/24',\n"
                                        "               'guest_address': '10.0.1.2' }"),
                           "5:33: network.guest_address: 10.0.1.2 is not in the subnet of "
                           "network.bridge_address");
}
END_TEST

START_TEST(test_error_bad_endpoint_in_forwards)
{
    ck_assert_config_error(MINIMAL_WITH(",\n  'forwards': [\n"
                                        "    { 'to': 'guest', 'listen': 'tcp:localhost:9000',"
                                        " 'guest_port': 9000 } ]"),
                           "5:32: forwards[0].listen: \"tcp:localhost:9000\": host is not an IPv4 "
                           "address (write IPv6 as [ADDR])");
    ck_assert_config_error(MINIMAL_WITH(",\n  'forwards': [\n"
                                        "    { 'to': 'host', 'guest_port': 1, 'connect': "
                                        "'vsock:2:1' } ]"),
                           "5:49: forwards[0].connect: \"vsock:2:1\": a host endpoint cannot be "
                           "vsock");
}
END_TEST

START_TEST(test_error_duplicate_share_tag)
{
    ck_assert_config_error(MINIMAL_WITH(",\n  'shares': [ { 'tag': 'data', 'source': 'share' },\n"
                                        "              { 'tag': 'data', 'source': 'share' } ]"),
                           "5:24: shares[1].tag: \"data\" is already used by shares[0]");
}
END_TEST

/* The first mistake in check order is the one reported; the rest are not appended. */
START_TEST(test_error_only_first)
{
    ck_assert_config_error(MINIMAL_WITH(",\n  'machine': { 'vcpu': 0, 'memory_mib': 1 }"),
                           "4:24: machine.vcpu: must be from 1 to 255, got 0");
}
END_TEST

/* ---- names and tables ---- */

START_TEST(test_name_rules)
{
    ck_assert(config_name_is_valid("openclaw"));
    ck_assert(config_name_is_valid("a_b-9"));
    ck_assert(config_name_is_valid("abcdefghijklmnopqrstuvwxyz012345"));   /* 32 */
    ck_assert(!config_name_is_valid("abcdefghijklmnopqrstuvwxyz0123456")); /* 33 */
    ck_assert(!config_name_is_valid(""));
    ck_assert(!config_name_is_valid("-x"));
    ck_assert(!config_name_is_valid("../etc"));
    ck_assert(!config_name_is_valid("a b"));
}
END_TEST

START_TEST(test_path_for_name)
{
    char *p = NULL;
    unsetenv("OCVM_CONFIG_DIR");
    ck_assert_int_eq(config_path_for_name("openclaw", &p), 0);
    ck_assert_str_eq(p, "/etc/ocvm/openclaw.json");
    free(p);
    char want[192];
    path_in_tmp(want, sizeof(want), "demo.json");
    ck_assert_int_eq(setenv("OCVM_CONFIG_DIR", vm_fixture_dir(), 1), 0);
    ck_assert_int_eq(config_path_for_name("demo", &p), 0);
    ck_assert_str_eq(p, want);
    free(p);
    unsetenv("OCVM_CONFIG_DIR");
    ck_assert_int_eq(config_path_for_name("../passwd", &p), -EINVAL);
}
END_TEST

START_TEST(test_enum_strings)
{
    ck_assert_str_eq(machine_type_to_string(MACHINE_MICROVM), "microvm");
    ck_assert_str_eq(machine_type_to_string(MACHINE_Q35), "q35");
    ck_assert_str_eq(accel_to_string(ACCEL_TCG), "tcg");
    ck_assert_str_eq(vsock_backend_to_string(VSOCK_BACKEND_KERNEL), "kernel");
    ck_assert_str_eq(share_proto_to_string(SHARE_9P), "9p");
    ck_assert_str_eq(forward_dir_to_string(FORWARD_TO_HOST), "host");
    ck_assert_ptr_null(machine_type_to_string(_MACHINE_TYPE_MAX));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *load_tc = tcase_create("load");
    tcase_add_checked_fixture(load_tc, setup, teardown);
    tcase_add_test(load_tc, test_defaults);
    tcase_add_test(load_tc, test_canonical_config_loads);
    tcase_add_test(load_tc, test_values_override_defaults);
    tcase_add_test(load_tc, test_unsafe_keys);
    tcase_add_test(load_tc, test_gateway_openclaw);
    tcase_add_test(load_tc, test_vsock_null_means_no_vsock);
    tcase_add_test(load_tc, test_network_null_means_no_tap);
    tcase_add_test(load_tc, test_relative_paths_resolve_against_config_dir);
    tcase_add_test(load_tc, test_absolute_paths_are_kept);
    tcase_add_test(load_tc, test_config_load_reads_file);
    tcase_add_test(load_tc, test_config_load_missing_file);
    tcase_add_test(load_tc, test_config_load_directory);
    tcase_add_test(load_tc, test_name_rules);
    tcase_add_test(load_tc, test_path_for_name);
    tcase_add_test(load_tc, test_enum_strings);
    suite_add_tcase(s, load_tc);

    TCase *err_tc = tcase_create("errors");
    tcase_add_checked_fixture(err_tc, setup, teardown);
    tcase_add_test(err_tc, test_error_syntax);
    tcase_add_test(err_tc, test_error_unknown_key_top_level);
    tcase_add_test(err_tc, test_error_unknown_key_nested);
    tcase_add_test(err_tc, test_error_wrong_type);
    tcase_add_test(err_tc, test_error_vcpu_zero);
    tcase_add_test(err_tc, test_error_memory_127);
    tcase_add_test(err_tc, test_error_guest_cid_2);
    tcase_add_test(err_tc, test_error_port_range);
    tcase_add_test(err_tc, test_error_gateway_openclaw);
    tcase_add_test(err_tc, test_error_missing_name);
    tcase_add_test(err_tc, test_error_missing_kernel);
    tcase_add_test(err_tc, test_error_kernel_file_missing);
    tcase_add_test(err_tc, test_error_duplicate_key);
    tcase_add_test(err_tc, test_error_bad_mac);
    tcase_add_test(err_tc, test_error_guest_outside_bridge_subnet);
    tcase_add_test(err_tc, test_error_bad_endpoint_in_forwards);
    tcase_add_test(err_tc, test_error_duplicate_share_tag);
    tcase_add_test(err_tc, test_error_only_first);
    suite_add_tcase(s, err_tc);

    int r = vm_fixture_make();
    if (r < 0) {
        fprintf(stderr, "test_config: cannot make a temporary directory: %s\n", strerror(-r));
        return EXIT_FAILURE;
    }
    int status = run_suite(s);
    if (vm_fixture_remove() < 0) {
        fprintf(stderr, "test_config: cannot remove %s\n", vm_fixture_dir());
        status = EXIT_FAILURE;
    }
    return status;
}
