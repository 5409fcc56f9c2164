/* qemu_argv: the argv for each example config is pinned by a golden file in tests/golden/
 * (regenerate deliberately with UPDATE_GOLDEN=1), plus the escaping and fd-layout rules. */
#include "config/config.h"
#include "common/cleanup.h"
#include "launcher/qemu_argv.h"

#include "tests/support/golden.h"
#include "tests/support/run_suite.h"
#include "tests/support/vm_fixture.h"

#include <check.h>
#include <errno.h>
#include <string.h>

/* A stand-in in the fixture directory (NAME) and the host path it stands for in a config. */
struct host_path {
    const char *name, *host;
};

/* The argv of C with plan P, its stand-ins rewritten back to the config's own host paths (the
 * N of PATHS) so the golden file shows what a user would get. */
static char *render(const struct vm_config *c, const struct qemu_plan *p,
                    const struct host_path *paths, size_t n)
{
    struct argv a;
    argv_init(&a);
    ck_assert_int_eq(qemu_argv_build(c, p, &a), 0);
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    for (size_t i = 0; i < a.n; i++)
        fprintf(m, "%s\n", a.v[i]);
    fclose(m);
    argv_done(&a);
    for (size_t i = 0; i < n; i++) {
        _cleanup_free_ char *stand_in = NULL;
        ck_assert_int_ge(asprintf(&stand_in, "%s/%s", vm_fixture_dir(), paths[i].name), 0);
        out = golden_replace(out, stand_in, paths[i].host);
    }
    return golden_replace(out, SOURCE_DIR, "SOURCE_DIR");
}

static const struct host_path openclaw_paths[] = {
    {"vmlinuz", "/var/lib/ocvm/openclaw/vmlinuz"},
    {"initrd.img", "/var/lib/ocvm/openclaw/initrd.img"},
    {"share", "/run/openclaw-secrets"}};

/* EXAMPLE (its host paths, PATHS, at stand-ins) rendered with plan P, no fds passed and the TAP
 * queues the config asks for, must equal the golden file GOLDEN. */
static void check_example(const char *example, const struct host_path *paths, size_t n,
                          struct qemu_plan p, const char *golden)
{
    struct vm_config *c = vm_fixture_load_example(example);
    p.qmp_fd = p.console_fd = -1;
    p.tap_queues = qemu_tap_queues(c);
    _cleanup_free_ char *got = render(c, &p, paths, n);
    golden_check(golden, got);
    vm_config_free(c);
}

START_TEST(golden_openclaw_tcg_kernel_vsock)
{
    check_example("openclaw.json", openclaw_paths, ELEMENTSOF(openclaw_paths),
                  (struct qemu_plan){.accel = ACCEL_TCG,
                                     .vsock = VSOCK_BACKEND_KERNEL,
                                     .runtime_dir = "/run/ocvm/openclaw",
                                     .tsc_khz = 2096015,
                                     .qemu_user = "ocvm"},
                  "openclaw-tcg-kernel.argv");
}
END_TEST

START_TEST(golden_openclaw_kvm_user_vsock)
{
    check_example("openclaw.json", openclaw_paths, ELEMENTSOF(openclaw_paths),
                  (struct qemu_plan){.accel = ACCEL_KVM,
                                     .vsock = VSOCK_BACKEND_USER,
                                     .runtime_dir = "/run/ocvm/openclaw"},
                  "openclaw-kvm-user.argv");
}
END_TEST

START_TEST(golden_demo)
{
    /* the demo's kernel is built later: point it at stand-ins */
    static const struct host_path paths[] = {{"vmlinuz", "../build/guest/vmlinuz"},
                                             {"initrd.img", "../build/guest/initrd.img"}};
    check_example("demo.json", paths, ELEMENTSOF(paths),
                  (struct qemu_plan){.accel = ACCEL_TCG,
                                     .vsock = VSOCK_BACKEND_USER,
                                     .runtime_dir = "/run/ocvm/demo",
                                     .tsc_khz = 2096015},
                  "demo.argv");
}
END_TEST

/* q35 with 4 vCPUs: PCI device names, multi-queue TAP with vectors = 2N+2, romfile=, 9p. */
START_TEST(golden_q35_multiqueue_9p)
{
    struct vm_config *c = vm_fixture_load_as(
        "/etc/ocvm/big.json",
        "{\"name\": \"big\", \"machine\": {\"type\": \"q35\", \"vcpu\": 4, \"user\": \"nobody\","
        " \"extra_args\": [\"-msg\", \"timestamp=on\"]},"
        " \"boot\": {\"kernel\": \"KERNEL\"},"
        " \"vsock\": {\"backend\": \"kernel\", \"guest_cid\": 7},"
        " \"shares\": [{\"tag\": \"data\", \"source\": \"TMP/share\", \"proto\": \"9p\","
        " \"read_only\": false}]}");
    int taps[4] = {10, 11, 12, 13};
    struct qemu_plan p = {.accel = ACCEL_KVM,
                          .vsock = VSOCK_BACKEND_KERNEL,
                          .runtime_dir = "/run/ocvm/big",
                          .qmp_fd = 20,
                          .console_fd = 21,
                          .tap_fds = taps,
                          .tap_queues = qemu_tap_queues(c),
                          .qemu_user = c->machine.user};
    static const struct host_path paths[] = {{"vmlinuz", "/var/lib/big/vmlinuz"},
                                             {"share", "/srv/big-data"}};
    _cleanup_free_ char *got = render(c, &p, paths, ELEMENTSOF(paths));
    golden_check("q35-multiqueue-9p.argv", got);
    vm_config_free(c);
}
END_TEST

START_TEST(fd_layout_is_fixed)
{
    struct vm_config *c =
        vm_fixture_load_as("/x.json", "{\"name\": \"n\", \"boot\": {\"kernel\": \"KERNEL\"}}");
    int taps[2] = {40, 41};
    struct qemu_plan p = {.accel = ACCEL_TCG,
                          .vsock = VSOCK_BACKEND_USER,
                          .runtime_dir = "/r",
                          .qmp_fd = 30,
                          .console_fd = 31,
                          .tap_fds = taps,
                          .tap_queues = 2};
    struct argv a;
    argv_init(&a);
    ck_assert_int_eq(qemu_argv_build(c, &p, &a), 0);
    ck_assert_uint_eq(a.n_fds, 4);
    int want_parent[] = {30, 31, 40, 41};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(a.fds[i].child_fd, 3 + (int)i);
        ck_assert_int_eq(a.fds[i].parent_fd, want_parent[i]);
    }
    bool found = false;
    for (size_t i = 0; i < a.n; i++)
        if (strcmp(a.v[i], "tap,id=net0,fds=5:6") == 0)
            found = true;
    ck_assert_msg(found, "multi-queue TAP must refer to child fds 5:6");
    argv_done(&a);
    vm_config_free(c);
}
END_TEST

START_TEST(commas_doubled_newlines_refused)
{
    char *e = NULL;
    ck_assert_int_eq(qemu_opt_escape("/run/a,b,,c", &e), 0);
    ck_assert_str_eq(e, "/run/a,,b,,,,c");
    free(e);
    ck_assert_int_eq(qemu_opt_escape("/run/a\nb", &e), -EINVAL);

    /* a runtime directory with a comma cannot smuggle an option into -chardev */
    struct vm_config *c =
        vm_fixture_load_as("/x.json", "{\"name\": \"n\", \"boot\": {\"kernel\": \"KERNEL\"}}");
    struct qemu_plan p = {.accel = ACCEL_TCG,
                          .vsock = VSOCK_BACKEND_USER,
                          .runtime_dir = "/r,server=off",
                          .qmp_fd = -1,
                          .console_fd = -1};
    struct argv a;
    argv_init(&a);
    ck_assert_int_eq(qemu_argv_build(c, &p, &a), 0);
    bool found = false;
    for (size_t i = 0; i < a.n; i++)
        if (strcmp(a.v[i], "socket,id=vsock0,path=/r,,server=off/vhost-user-vsock.sock") == 0)
            found = true;
    ck_assert(found);
    argv_done(&a);
    struct qemu_plan bad = p;
    bad.runtime_dir = "/r\nx";
    argv_init(&a);
    ck_assert_int_eq(qemu_argv_build(c, &bad, &a), -EINVAL);
    argv_done(&a);
    vm_config_free(c);
}
END_TEST

START_TEST(kernel_cmdline_additions)
{
    struct vm_config *c = vm_fixture_load_as(
        "/x.json",
        "{\"name\": \"n\","
        " \"boot\": {\"kernel\": \"KERNEL\", \"cmdline\": \"console=ttyS0 reboot=k\"},"
        " \"network\": {\"bridge_address\": \"10.9.0.1/16\", \"guest_address\": \"10.9.3.4\","
        " \"dns\": \"10.9.0.1\"}, \"vsock\": null}");
    _cleanup_free_ char *cmdline = NULL;
    struct qemu_plan p = {.accel = ACCEL_KVM, .tsc_khz = 2096015};
    ck_assert_int_eq(qemu_kernel_cmdline(c, &p, &cmdline), 0);
    /* the user's own reboot= wins; the guest learns its address, prefix, gateway and DNS */
    ck_assert_str_eq(
        cmdline, "console=ttyS0 reboot=k ocvm.ip=10.9.3.4/16 ocvm.gw=10.9.0.1 ocvm.dns=10.9.0.1");
    free(cmdline);
    /* TCG on microvm: the guest is told the TSC rate it cannot calibrate */
    p.accel = ACCEL_TCG;
    ck_assert_int_eq(qemu_kernel_cmdline(c, &p, &cmdline), 0);
    ck_assert_str_eq(cmdline, "console=ttyS0 reboot=k tsc_early_khz=2096015 ocvm.ip=10.9.3.4/16 "
                              "ocvm.gw=10.9.0.1 ocvm.dns=10.9.0.1");
    free(cmdline);
    vm_config_free(c);
    /* with vsock: where to send READY, and the relays the guest must run */
    c = vm_fixture_load_as(
        "/x.json", "{\"name\": \"n\", \"boot\": {\"kernel\": \"KERNEL\", \"cmdline\": \"quiet\"},"
                   " \"network\": null, \"gateway\": {\"guest_port\": 8080},"
                   " \"forwards\": [{\"to\": \"host\", \"guest_port\": 99,"
                   " \"connect\": \"tcp:127.0.0.1:99\"}]}");
    p.accel = ACCEL_KVM;
    ck_assert_int_eq(qemu_kernel_cmdline(c, &p, &cmdline), 0);
    ck_assert_str_eq(cmdline,
                     "quiet reboot=t systemd.set_credential=vmm.notify_socket:vsock-stream:2:18788 "
                     "ocvm.relay=vsock:any:8080,tcp:127.0.0.1:8080 "
                     "ocvm.relay=tcp:127.0.0.1:99,vsock:2:99");
    vm_config_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("qemu_argv");
    TCase *t = tcase_create("argv");
    tcase_add_checked_fixture(t, vm_fixture_setup, vm_fixture_teardown);
    tcase_add_test(t, golden_openclaw_tcg_kernel_vsock);
    tcase_add_test(t, golden_openclaw_kvm_user_vsock);
    tcase_add_test(t, golden_demo);
    tcase_add_test(t, golden_q35_multiqueue_9p);
    tcase_add_test(t, fd_layout_is_fixed);
    tcase_add_test(t, commas_doubled_newlines_refused);
    tcase_add_test(t, kernel_cmdline_additions);
    suite_add_tcase(s, t);
    return run_suite(s);
}
