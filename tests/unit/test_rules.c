/* rules: every static policy rule refuses what it names, points at the key (FILE:LINE:COL) and
 * carries its id; its unsafe_* key turns the violation into a waived finding, and every unsafe_*
 * key set is listed. A clean config (the examples) has no finding. */
#include "common/cleanup.h"
#include "config/config.h"
#include "policy/rules.h"

#include "tests/support/run_suite.h"
#include "tests/support/vm_fixture.h"

#include <check.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The checked report of JSON (loaded as vm.json in the fixture directory, KERNEL and TMP standing
 * for its kernel file and itself): N findings of which N_VIOLATIONS are not waived. */
static void check(const char *json, size_t n, size_t n_violations, struct policy_report *ret)
{
    struct vm_config *c = vm_fixture_load(json);
    ck_assert_int_eq(policy_check(c, ret), 0);
    vm_config_free(c);
    for (size_t i = 0; i < ret->n; i++)
        fprintf(stderr, "finding: %s\n", ret->findings[i].line);
    ck_assert_uint_eq(ret->n, n);
    ck_assert_uint_eq(ret->n_violations, n_violations);
}

/* Finding I reads "vm.json:LINE_COL: TAIL" (the temp dir's path removed). */
static void assert_line(const struct policy_report *r, size_t i, const char *want)
{
    const char *line = r->findings[i].line, *dir = vm_fixture_dir();
    size_t skip = strlen(dir) + 1;
    ck_assert_int_eq(strncmp(line, dir, strlen(dir)), 0);
    ck_assert_str_eq(line + skip, want);
}

#define HEAD "{\"name\": \"vm\", \"boot\": {\"kernel\": \"KERNEL\"},\n"
#define HEAD_NO_BOOT "{\"name\": \"vm\",\n"

START_TEST(examples_are_clean)
{
    static const char *const files[] = {"examples/openclaw.json", "examples/demo.json",
                                        "tests/configs/pass/forwards.json",
                                        "tests/configs/pass/egress.json"};
    for (size_t i = 0; i < ELEMENTSOF(files); i++) {
        struct vm_config *c = vm_fixture_load_file(files[i]);
        struct policy_report r;
        ck_assert_int_eq(policy_check(c, &r), 0);
        ck_assert_msg(r.n == 0, "%s: %s", files[i], r.n ? r.findings[0].line : "");
        ck_assert_ptr_null(r.unsafe_in_use[0]);
        policy_report_done(&r);
        vm_config_free(c);
    }
}
END_TEST

START_TEST(p001_host_listen)
{
    struct policy_report r;
    check(HEAD "\"gateway\": {\"host_listen\": \"0.0.0.0:18789\"}}", 1, 1, &r);
    assert_line(&r, 0,
                "vm.json:2:28: gateway.host_listen: \"0.0.0.0:18789\" is not a loopback address: "
                "the gateway would be reachable from the network [OCVM-P001]");
    ck_assert_str_eq(r.findings[0].rule->id, "OCVM-P001");
    ck_assert_ptr_null(r.findings[0].waiver);
    policy_report_done(&r);
    check(HEAD "\"gateway\": {\"host_listen\": \"[::]:18789\", \"unsafe_remote_gateway\": true}}",
          1, 0, &r);
    ck_assert_str_eq(r.findings[0].waiver, "gateway.unsafe_remote_gateway");
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "[OCVM-P001, waived by "
                                                     "gateway.unsafe_remote_gateway]"));
    ck_assert_str_eq(r.unsafe_in_use[0], "gateway.unsafe_remote_gateway");
    ck_assert_ptr_null(r.unsafe_in_use[1]);
    policy_report_done(&r);
    /* loopback in any form passes */
    check(HEAD "\"gateway\": {\"host_listen\": \"127.0.0.2:18789\"}}", 0, 0, &r);
    policy_report_done(&r);
    check(HEAD "\"gateway\": {\"host_listen\": \"[::1]:18789\"}}", 0, 0, &r);
    policy_report_done(&r);
}
END_TEST

START_TEST(p002_forward_listen)
{
    struct policy_report r;
    check(HEAD "\"forwards\": [{\"to\": \"guest\", \"listen\": \"tcp:127.0.0.1:9000\", "
               "\"guest_port\": 9000},\n"
               " {\"to\": \"guest\", \"listen\": \"tcp:192.0.2.1:9001\", \"guest_port\": 9001},\n"
               " {\"to\": \"guest\", \"listen\": \"tcp:[::]:9002\", \"guest_port\": 9002, "
               "\"unsafe_remote_listen\": true}]}",
          2, 1, &r);
    assert_line(&r, 0,
                "vm.json:3:28: forwards[1].listen: \"tcp:192.0.2.1:9001\" is not a loopback "
                "address: guest port 9001 would be reachable from the network [OCVM-P002]");
    ck_assert_str_eq(r.findings[1].key, "forwards[2].listen");
    ck_assert_str_eq(r.findings[1].waiver, "forwards[2].unsafe_remote_listen");
    ck_assert_str_eq(r.unsafe_in_use[0], "forwards[2].unsafe_remote_listen");
    policy_report_done(&r);
}
END_TEST

START_TEST(p003_managed_kernel_parameters)
{
    struct policy_report r;
    /* a relay that sends the gateway's vsock port elsewhere, or opens it on the TAP network */
    check(HEAD_NO_BOOT "\"boot\": {\"kernel\": \"KERNEL\", \"cmdline\": \"console=ttyS0 "
                       "ocvm.relay=vsock:any:18789,tcp:10.0.0.5:18789 "
                       "ocvm.relay=tcp:0.0.0.0:8000,tcp:127.0.0.1:18789 quiet\"}}",
          2, 2, &r);
    ck_assert_ptr_nonnull(strstr(r.findings[0].line,
                                 "boot.cmdline: \"ocvm.relay=vsock:any:18789,tcp:10.0.0.5:18789\":"
                                 " it connects outside the guest's loopback"));
    ck_assert_ptr_nonnull(strstr(r.findings[1].line, "it listens beyond the guest's loopback"));
    ck_assert_ptr_nonnull(strstr(r.findings[1].line, "[OCVM-P003]"));
    policy_report_done(&r);
    /* ocvm's own parameters */
    check(HEAD_NO_BOOT
          "\"boot\": {\"kernel\": \"KERNEL\", \"cmdline\": \"systemd.set_credential="
          "vmm.notify_socket:vsock-stream:2:9 ip=dhcp ocvm.share=x ocvm.dns=1.1.1.1\"}}",
          4, 4, &r);
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "sets the guest's readiness socket itself"));
    policy_report_done(&r);
    /* relays inside the guest, and look-alikes, are fine */
    check(HEAD_NO_BOOT "\"boot\": {\"kernel\": \"KERNEL\", \"cmdline\": \"console=ttyS0 "
                       "ocvm.relay=tcp:127.0.0.1:18790,tcp:127.0.0.1:18789 "
                       "ocvm.relay=vsock:any:9000,tcp:[::1]:9000 myocvm.ip=1 noip=1\"}}",
          0, 0, &r);
    policy_report_done(&r);
}
END_TEST

START_TEST(p004_gateway_port_only_through_host_listen)
{
    struct policy_report r;
    check(HEAD
          "\"network\": {},\n"
          "\"forwards\": [{\"to\": \"guest\", \"listen\": \"tcp:127.0.0.1:8000\", "
          "\"guest_port\": 18789},\n"
          " {\"to\": \"host\", \"guest_port\": 18790, \"connect\": \"tcp:192.168.83.2:18789\"}]}",
          2, 2, &r);
    ck_assert_str_eq(r.findings[0].key, "forwards[0].guest_port");
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "18789 is the gateway's port"));
    ck_assert_str_eq(r.findings[1].key, "forwards[1].connect");
    ck_assert_ptr_nonnull(
        strstr(r.findings[1].line, "is on the VM's TAP network (192.168.83.1/24)"));
    ck_assert_ptr_nonnull(strstr(r.findings[1].line, "[OCVM-P004]"));
    policy_report_done(&r);
    /* without a network there is no TAP subnet to refuse */
    check(HEAD "\"network\": null, \"forwards\": [{\"to\": \"host\", \"guest_port\": 18790, "
               "\"connect\": \"tcp:192.168.83.2:18789\"}]}",
          0, 0, &r);
    policy_report_done(&r);
}
END_TEST

START_TEST(p005_unix_listener_directory)
{
    char open_dir[700], closed_dir[700];
    snprintf(open_dir, sizeof(open_dir), "%s/open", vm_fixture_dir());
    snprintf(closed_dir, sizeof(closed_dir), "%s/closed", vm_fixture_dir());
    ck_assert_int_eq(mkdir(open_dir, 0700), 0);
    ck_assert_int_eq(chmod(open_dir, 0777), 0);
    ck_assert_int_eq(mkdir(closed_dir, 0700), 0);
    struct policy_report r;
    check(HEAD
          "\"forwards\": [{\"to\": \"guest\", \"listen\": \"unix:TMP/closed/a.sock\", "
          "\"guest_port\": 9000},\n"
          " {\"to\": \"guest\", \"listen\": \"unix:TMP/open/b.sock\", \"guest_port\": 9001},\n"
          " {\"to\": \"guest\", \"listen\": \"unix:TMP/missing/c.sock\", \"guest_port\": 9002}]}",
          1, 1, &r);
    ck_assert_str_eq(r.findings[0].key, "forwards[1].listen");
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "/open is writable by others (mode 0777"));
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "[OCVM-P005]"));
    policy_report_done(&r);
}
END_TEST

START_TEST(p006_extra_args)
{
    struct policy_report r;
    check(HEAD "\"machine\": {\"extra_args\": [\"-rtc\", \"base=utc\", \"-netdev\", "
               "\"user,id=n0,hostfwd=tcp::18789-:18789\", \"--chardev=socket,id=x,path=/tmp/s\", "
               "\"-global\", \"virtio-mmio.force-legacy=false\", \"-qmp\", \"tcp:0.0.0.0:4444\", "
               "\"-S\"]}}",
          3, 3, &r);
    ck_assert_str_eq(r.findings[0].key, "machine.extra_args[2]");
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "\"-netdev\" is refused"));
    ck_assert_str_eq(r.findings[1].key, "machine.extra_args[4]");
    ck_assert_str_eq(r.findings[2].key, "machine.extra_args[7]");
    ck_assert_ptr_nonnull(strstr(r.findings[2].line, "[OCVM-P006]"));
    policy_report_done(&r);
    check(HEAD "\"machine\": {\"extra_args\": [\"-device\", \"virtio-rng-device\"], "
               "\"unsafe_extra_args\": true}}",
          1, 0, &r);
    ck_assert_str_eq(r.findings[0].waiver, "machine.unsafe_extra_args");
    policy_report_done(&r);
}
END_TEST

START_TEST(p007_qemu_as_root)
{
    struct policy_report r;
    check(HEAD "\"machine\": {\"user\": \"root\"}}", 1, 1, &r);
    assert_line(&r, 0,
                "vm.json:2:21: machine.user: \"root\" is root: QEMU parses what the guest writes "
                "and must not run with root's rights [OCVM-P007]");
    policy_report_done(&r);
    check(HEAD "\"machine\": {\"user\": \"root\", \"unsafe_qemu_as_root\": true}}", 1, 0, &r);
    policy_report_done(&r);
    check(HEAD "\"machine\": {\"user\": \"nobody\"}}", 0, 0, &r);
    policy_report_done(&r);
    /* the default user ("ocvm") is never root */
    check(HEAD "\"machine\": {}}", 0, 0, &r);
    policy_report_done(&r);
    /* null keeps QEMU as ocvm's own user: root when ocvm runs as root */
    bool root = geteuid() == 0;
    check(HEAD "\"machine\": {\"user\": null}}", root, root, &r);
    if (root)
        ck_assert_ptr_nonnull(strstr(r.findings[0].line,
                                     "null keeps QEMU as the user running ocvm, "
                                     "and that is root here"));
    policy_report_done(&r);
}
END_TEST

/* HEAD with gateway.openclaw set to USER (and TAIL inside "gateway"). */
#define OPENCLAW(user, tail) HEAD "\"gateway\": {\"openclaw\": " user tail "}}"

START_TEST(p008_openclaw_bind)
{
    struct policy_report r;
    check(OPENCLAW("{\"gateway\": {\"bind\": \"lan\"}}", ""), 1, 1, &r);
    assert_line(&r, 0,
                "vm.json:2:46: gateway.openclaw.gateway.bind: \"lan\" (ocvm's default: "
                "\"loopback\"): the gateway would listen beyond the guest's loopback (OpenClaw's "
                "own default, auto, binds 0.0.0.0 in a VM), a way in around ocvm's relay "
                "[OCVM-P008]");
    ck_assert_str_eq(r.findings[0].rule->id, "OCVM-P008");
    policy_report_done(&r);
    /* a default deleted (null) or replaced counts as much as a value written */
    check(OPENCLAW("{\"gateway\": {\"bind\": null}}", ""), 1, 1, &r);
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "vm.json:2:46: gateway.openclaw.gateway.bind: "
                                                     "absent (ocvm's default: \"loopback\")"));
    policy_report_done(&r);
    check(OPENCLAW("{\"gateway\": \"all\"}", ""), 2, 2, &r);
    ck_assert_str_eq(r.findings[0].key, "gateway.openclaw.gateway.bind");
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "vm.json:2:37: ")); /* at "all" */
    ck_assert_str_eq(r.findings[1].rule->id, "OCVM-P009");
    policy_report_done(&r);
    check(OPENCLAW("{\"gateway\": {\"tailscale\": {\"mode\": \"funnel\"}}}", ""), 1, 1, &r);
    ck_assert_ptr_nonnull(strstr(r.findings[0].line,
                                 "gateway.openclaw.gateway.tailscale.mode: \"funnel\": Tailscale "
                                 "would publish the gateway beyond the guest's loopback "
                                 "[OCVM-P008]"));
    policy_report_done(&r);
    /* waived, and said */
    check(OPENCLAW("{\"gateway\": {\"bind\": \"auto\"}}", ", \"unsafe_openclaw_bind\": true"), 1, 0,
          &r);
    ck_assert_str_eq(r.findings[0].waiver, "gateway.unsafe_openclaw_bind");
    ck_assert_ptr_nonnull(
        strstr(r.findings[0].line, "[OCVM-P008, waived by gateway.unsafe_openclaw_bind]"));
    ck_assert_str_eq(r.unsafe_in_use[0], "gateway.unsafe_openclaw_bind");
    policy_report_done(&r);
    /* ocvm's values, written out, are clean */
    check(
        OPENCLAW("{\"gateway\": {\"bind\": \"loopback\", \"tailscale\": {\"mode\": \"off\"}}}", ""),
        0, 0, &r);
    policy_report_done(&r);
}
END_TEST

START_TEST(p009_openclaw_auth)
{
    struct policy_report r;
    check(OPENCLAW("{\"gateway\": {\"auth\": {\"mode\": \"none\"}}}", ""), 1, 1, &r);
    assert_line(&r, 0,
                "vm.json:2:55: gateway.openclaw.gateway.auth.mode: \"none\" (ocvm's default: "
                "\"token\"): the gateway would not ask its clients for a token or password "
                "[OCVM-P009]");
    policy_report_done(&r);
    check(OPENCLAW("{\"gateway\": {\"auth\": {\"mode\": \"trusted-proxy\"}}}", ""), 1, 1, &r);
    policy_report_done(&r);
    /* a short token: its length is said, never the token */
    check(OPENCLAW("{\"gateway\": {\"auth\": {\"token\": \"s3cr3t-but-short\"}}}", ""), 1, 1, &r);
    assert_line(&r, 0,
                "vm.json:2:56: gateway.openclaw.gateway.auth.token: a token of 16 characters, "
                "fewer than 32: it can be guessed; leave it out, and ocvm gives the gateway its "
                "own (64 hex digits) [OCVM-P009]");
    ck_assert_ptr_null(strstr(r.findings[0].line, "s3cr3t"));
    policy_report_done(&r);
    /* ocvm's token deleted */
    check(OPENCLAW("{\"gateway\": {\"auth\": {\"token\": null}}}", ""), 1, 1, &r);
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "gateway.auth.token: null: the gateway would "
                                                     "have no secret to check"));
    policy_report_done(&r);
    /* password mode needs a password, a long one */
    check(OPENCLAW("{\"gateway\": {\"auth\": {\"mode\": \"password\"}}}", ""), 1, 1, &r);
    ck_assert_str_eq(r.findings[0].key, "gateway.openclaw.gateway.auth.password");
    policy_report_done(&r);
    check(OPENCLAW("{\"gateway\": {\"auth\": {\"mode\": \"password\", \"password\": \"hunter2\"}}}",
                   ""),
          1, 1, &r);
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "a password of 7 characters, fewer than 32"));
    ck_assert_ptr_null(strstr(r.findings[0].line, "hunter2"));
    policy_report_done(&r);
    /* origins any web page can claim */
    check(OPENCLAW("{\"gateway\": {\"controlUi\": {\"allowedOrigins\": [\"https://localhost:8443\","
                   " \"*\"], \"dangerouslyAllowHostHeaderOriginFallback\": true}}}",
                   ""),
          2, 2, &r);
    ck_assert_str_eq(r.findings[0].key, "gateway.openclaw.gateway.controlUi.allowedOrigins[1]");
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "vm.json:2:97: "));
    ck_assert_str_eq(r.findings[1].key,
                     "gateway.openclaw.gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback");
    policy_report_done(&r);
    /* waived */
    check(OPENCLAW("{\"gateway\": {\"auth\": {\"mode\": \"none\"}}}",
                   ", \"unsafe_openclaw_auth\": true"),
          1, 0, &r);
    ck_assert_str_eq(r.findings[0].waiver, "gateway.unsafe_openclaw_auth");
    policy_report_done(&r);
    /* clean: a long token or password of the user's, or a SecretRef */
    check(OPENCLAW("{\"gateway\": {\"auth\": {\"token\": \"0123456789abcdef0123456789abcdef\"}}}",
                   ""),
          0, 0, &r);
    policy_report_done(&r);
    check(OPENCLAW("{\"gateway\": {\"auth\": {\"mode\": \"password\", \"password\": {\"source\": "
                   "\"env\", \"provider\": \"default\", \"id\": \"GW_PASSWORD\"}}}}",
                   ""),
          0, 0, &r);
    policy_report_done(&r);
}
END_TEST

START_TEST(p010_openclaw_tools)
{
    struct policy_report r;
    check(OPENCLAW("{\"tools\": {\"fs\": {\"workspaceOnly\": false},\n"
                   " \"exec\": {\"applyPatch\": {\"workspaceOnly\": false}},\n"
                   " \"elevated\": {\"enabled\": true}}}",
                   ""),
          3, 3, &r);
    assert_line(&r, 0,
                "vm.json:2:60: gateway.openclaw.tools.fs.workspaceOnly: false (ocvm's default: "
                "true): the agent's file tools would reach files outside its workspace, the "
                "gateway's token and keys among them [OCVM-P010]");
    assert_line(&r, 1,
                "vm.json:3:43: gateway.openclaw.tools.exec.applyPatch.workspaceOnly: false "
                "(ocvm's default: true): apply_patch would write files outside the agent's "
                "workspace [OCVM-P010]");
    assert_line(&r, 2,
                "vm.json:4:26: gateway.openclaw.tools.elevated.enabled: true (ocvm's default: "
                "false): the agent could run elevated commands, past the limits of its tool "
                "policy [OCVM-P010]");
    policy_report_done(&r);
    /* deleted: OpenClaw's own defaults are not ocvm's */
    check(OPENCLAW("{\"tools\": null}", ""), 3, 3, &r);
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "vm.json:2:35: gateway.openclaw.tools.fs."
                                                     "workspaceOnly: absent (ocvm's default: "));
    policy_report_done(&r);
    /* an agent's own tools settings: the same rule */
    check(OPENCLAW("{\"agents\": {\"entries\": {\"main\": {\"tools\": {\"fs\": {\"workspaceOnly\": "
                   "false}}},\n \"ok\": {\"tools\": {\"elevated\": {\"enabled\": false}}}}}}",
                   ""),
          1, 1, &r);
    ck_assert_str_eq(r.findings[0].key,
                     "gateway.openclaw.agents.entries.main.tools.fs.workspaceOnly");
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "vm.json:2:92: "));
    policy_report_done(&r);
    check(OPENCLAW("{\"tools\": {\"elevated\": {\"enabled\": true}}}",
                   ", \"unsafe_openclaw_tools\": true"),
          1, 0, &r);
    ck_assert_str_eq(r.findings[0].waiver, "gateway.unsafe_openclaw_tools");
    ck_assert_str_eq(r.unsafe_in_use[0], "gateway.unsafe_openclaw_tools");
    policy_report_done(&r);
    check(OPENCLAW("{\"tools\": {\"fs\": {\"workspaceOnly\": true}, \"profile\": \"coding\"}}", ""),
          0, 0, &r);
    policy_report_done(&r);
}
END_TEST

/* Names from older guides that OpenClaw refuses at start (exit 78): refused before, with the right
 * name, and no unsafe_* key turns that into a warning. */
START_TEST(p011_openclaw_refused_names)
{
    struct policy_report r;
    check(OPENCLAW("{\"tools\": {\"exec\": {\"workspaceOnly\": true}, \"applyPatch\": {}},\n"
                   " \"gateway\": {\"auth\": {\"tokenFile\": \"/run/token\"}},\n"
                   " \"agents\": {\"entries\": {\"main\": {\"tools\": {\"exec\": "
                   "{\"workspaceOnly\": true}}}}}}",
                   ", \"unsafe_openclaw_tools\": true, \"unsafe_openclaw_auth\": true"),
          4, 4, &r);
    assert_line(&r, 0,
                "vm.json:2:62: gateway.openclaw.tools.exec.workspaceOnly: OpenClaw has no such "
                "key, and its gateway stops at start on one (exit 78): use tools.fs.workspaceOnly "
                "(file tools) and tools.exec.applyPatch.workspaceOnly [OCVM-P011]");
    ck_assert_str_eq(r.findings[1].key, "gateway.openclaw.tools.applyPatch");
    ck_assert_ptr_nonnull(strstr(r.findings[1].line, "use tools.exec.applyPatch [OCVM-P011]"));
    ck_assert_str_eq(r.findings[2].key, "gateway.openclaw.gateway.auth.tokenFile");
    ck_assert_str_eq(r.findings[3].key,
                     "gateway.openclaw.agents.entries.main.tools.exec.workspaceOnly");
    ck_assert_ptr_null(r.findings[3].waiver);
    /* the keys are set all the same, and said */
    ck_assert_str_eq(r.unsafe_in_use[0], "gateway.unsafe_openclaw_auth");
    ck_assert_str_eq(r.unsafe_in_use[1], "gateway.unsafe_openclaw_tools");
    ck_assert_ptr_null(r.unsafe_in_use[2]);
    policy_report_done(&r);
}
END_TEST

/* An unsafe key that waives nothing is still listed: it is said on every start. */
START_TEST(unsafe_keys_are_listed)
{
    struct policy_report r;
    check(HEAD "\"machine\": {\"unsafe_qemu_as_root\": true, \"unsafe_extra_args\": false},\n"
               "\"gateway\": {\"unsafe_remote_gateway\": true}}",
          0, 0, &r);
    ck_assert_str_eq(r.unsafe_in_use[0], "gateway.unsafe_remote_gateway");
    ck_assert_str_eq(r.unsafe_in_use[1], "machine.unsafe_qemu_as_root");
    ck_assert_ptr_null(r.unsafe_in_use[2]);
    policy_report_done(&r);
}
END_TEST

/* A secret file must be its owner's alone; its name names the key, its path the file. */
START_TEST(p012_secret_files)
{
    char key[700], token[700];
    snprintf(key, sizeof(key), "%s/api.key", vm_fixture_dir());
    snprintf(token, sizeof(token), "%s/gateway.token", vm_fixture_dir());
    FILE *f = fopen(key, "we");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_ptr_nonnull(f = fopen(token, "we"));
    fclose(f);
    ck_assert_int_eq(chmod(key, 0644), 0);
    ck_assert_int_eq(chmod(token, 0600), 0);
    struct policy_report r;
    check(HEAD "\"secrets\": {\"gateway_token\": \"TMP/gateway.token\",\n"
               "  \"files\": {\"api_key\": \"TMP/api.key\"}}}",
          1, 1, &r);
    ck_assert_str_eq(r.findings[0].key, "secrets.files.api_key");
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "/api.key has mode 0644: others can read it"));
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "[OCVM-P012]"));
    policy_report_done(&r);
    ck_assert_int_eq(chmod(key, 0640), 0); /* the group is "others" too */
    ck_assert_int_eq(chmod(token, 0604), 0);
    check(HEAD "\"secrets\": {\"gateway_token\": \"TMP/gateway.token\",\n"
               "  \"files\": {\"api_key\": \"TMP/api.key\"}}}",
          2, 2, &r);
    ck_assert_str_eq(r.findings[0].key, "secrets.gateway_token");
    policy_report_done(&r);
    ck_assert_int_eq(chmod(key, 0400), 0);
    ck_assert_int_eq(chmod(token, 0600), 0);
    check(HEAD "\"secrets\": {\"gateway_token\": \"TMP/gateway.token\",\n"
               "  \"files\": {\"api_key\": \"TMP/api.key\"}}}",
          0, 0, &r);
    policy_report_done(&r);
}
END_TEST

START_TEST(rule_table)
{
    ck_assert_uint_ge(policy_n_rules, 7);
    for (size_t i = 0; i < policy_n_rules; i++) {
        char want[32];
        snprintf(want, sizeof(want), "OCVM-P%03zu", i + 1);
        ck_assert_str_eq(policy_rules[i].id, want); /* stable, in order, none skipped */
        ck_assert_ptr_eq(policy_rule_find(want), &policy_rules[i]);
    }
    ck_assert_ptr_null(policy_rule_find("OCVM-P999"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rules");
    TCase *tc = tcase_create("static");
    tcase_add_checked_fixture(tc, vm_fixture_setup, vm_fixture_teardown);
    tcase_add_test(tc, examples_are_clean);
    tcase_add_test(tc, p001_host_listen);
    tcase_add_test(tc, p002_forward_listen);
    tcase_add_test(tc, p003_managed_kernel_parameters);
    tcase_add_test(tc, p004_gateway_port_only_through_host_listen);
    tcase_add_test(tc, p005_unix_listener_directory);
    tcase_add_test(tc, p006_extra_args);
    tcase_add_test(tc, p007_qemu_as_root);
    tcase_add_test(tc, p008_openclaw_bind);
    tcase_add_test(tc, p009_openclaw_auth);
    tcase_add_test(tc, p010_openclaw_tools);
    tcase_add_test(tc, p011_openclaw_refused_names);
    tcase_add_test(tc, unsafe_keys_are_listed);
    tcase_add_test(tc, p012_secret_files);
    tcase_add_test(tc, rule_table);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
