/* qemu_argv: the argv for each example config is pinned by a golden file in tests/golden/
 * (regenerate deliberately with UPDATE_GOLDEN=1), plus the escaping and fd-layout rules. */
#include "config/config.h"
#include "common/cleanup.h"
#include "launcher/qemu_argv.h"

#include "tests/support/golden.h"
#include "tests/support/run_suite.h"

#include <check.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static char tmpdir[] = "/tmp/ocvm-test-argv-XXXXXX";

/* Loads an example with its host paths pointed at stand-ins that exist here; the argv is then
 * rewritten back to the example's own paths so the golden file shows what a user would get. */
static struct vm_config *load_example(const char *name, char **host_paths, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/examples/%s", SOURCE_DIR, name);
    char *text = golden_read_file(path);
    ck_assert_msg(text, "cannot read %s", path);
    for (size_t i = 0; i < n; i++) {
        char stand_in[600];
        snprintf(stand_in, sizeof(stand_in), "%s/stand-in-%zu", tmpdir, i);
        text = golden_replace(text, host_paths[i], stand_in);
    }
    struct vm_config *c = NULL;
    _cleanup_free_ char *err = NULL;
    int r = config_load_text(path, text, strlen(text), &c, &err);
    free(text);
    ck_assert_msg(r == 0, "%s: %s", name, err);
    return c;
}

static char *render(const struct vm_config *c, const struct qemu_plan *p, char **host_paths,
                    size_t n)
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
        char stand_in[600];
        snprintf(stand_in, sizeof(stand_in), "%s/stand-in-%zu", tmpdir, i);
        out = golden_replace(out, stand_in, host_paths[i]);
    }
    return golden_replace(out, SOURCE_DIR, "SOURCE_DIR");
}

static void setup(void)
{
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    for (int i = 0; i < 4; i++) {
        char p[600];
        snprintf(p, sizeof(p), "%s/stand-in-%d", tmpdir, i);
        FILE *f = fopen(p, "we");
        fclose(f);
    }
    /* a share source must be a directory */
    char p[600];
    snprintf(p, sizeof(p), "%s/stand-in-1", tmpdir);
    unlink(p);
    mkdir(p, 0700);
}

static void teardown(void)
{
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
    strcpy(tmpdir, "/tmp/ocvm-test-argv-XXXXXX");
}

static char *openclaw_paths[] = {"/var/lib/ocvm/openclaw/vmlinuz", "/run/openclaw-secrets"};

/* EXAMPLE (its file paths replaced by PATHS) rendered with plan P, no fds passed and the TAP
 * queues the config asks for, must equal the golden file GOLDEN. */
static void check_example(const char *example, char **paths, size_t n, struct qemu_plan p,
                          const char *golden)
{
    struct vm_config *c = load_example(example, paths, n);
    p.qmp_fd = p.console_fd = -1;
    p.tap_queues = qemu_tap_queues(c);
    _cleanup_free_ char *got = render(c, &p, paths, n);
    golden_check(golden, got);
    vm_config_free(c);
}

START_TEST(golden_openclaw_tcg_kernel_vsock)
{
    check_example("openclaw.json", openclaw_paths, 2,
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
    check_example("openclaw.json", openclaw_paths, 2,
                  (struct qemu_plan){.accel = ACCEL_KVM,
                                     .vsock = VSOCK_BACKEND_USER,
                                     .runtime_dir = "/run/ocvm/openclaw"},
                  "openclaw-kvm-user.argv");
}
END_TEST

START_TEST(golden_demo)
{
    /* the demo's kernel is built later: point it at stand-ins */
    char *paths[] = {"../build/guest/vmlinuz", "/unused", "../build/guest/initrd.img"};
    check_example("demo.json", paths, 3,
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
    char kernel[600], share[600], text[2048];
    snprintf(kernel, sizeof(kernel), "%s/stand-in-0", tmpdir);
    snprintf(share, sizeof(share), "%s/stand-in-1", tmpdir);
    snprintf(
        text, sizeof(text),
        "{\"name\": \"big\", \"machine\": {\"type\": \"q35\", \"vcpu\": 4, \"user\": \"nobody\","
        " \"extra_args\": [\"-msg\", \"timestamp=on\"]},"
        " \"boot\": {\"kernel\": \"%s\"}, \"vsock\": {\"backend\": \"kernel\", \"guest_cid\": 7},"
        " \"shares\": [{\"tag\": \"data\", \"source\": \"%s\", \"proto\": \"9p\", \"read_only\": "
        "false}]}",
        kernel, share);
    struct vm_config *c = NULL;
    _cleanup_free_ char *err = NULL;
    ck_assert_msg(config_load_text("/etc/ocvm/big.json", text, strlen(text), &c, &err) == 0, "%s",
                  err);
    int taps[4] = {10, 11, 12, 13};
    struct qemu_plan p = {.accel = ACCEL_KVM,
                          .vsock = VSOCK_BACKEND_KERNEL,
                          .runtime_dir = "/run/ocvm/big",
                          .qmp_fd = 20,
                          .console_fd = 21,
                          .tap_fds = taps,
                          .tap_queues = qemu_tap_queues(c),
                          .qemu_user = c->machine.user};
    char *paths[] = {"/var/lib/big/vmlinuz", "/srv/big-data"};
    _cleanup_free_ char *got = render(c, &p, paths, 2);
    golden_check("q35-multiqueue-9p.argv", got);
    vm_config_free(c);
}
END_TEST

START_TEST(fd_layout_is_fixed)
{
    char kernel[600], text[1024];
    snprintf(kernel, sizeof(kernel), "%s/stand-in-0", tmpdir);
    snprintf(text, sizeof(text), "{\"name\": \"n\", \"boot\": {\"kernel\": \"%s\"}}", kernel);
    struct vm_config *c = NULL;
    _cleanup_free_ char *err = NULL;
    ck_assert_int_eq(config_load_text("/x.json", text, strlen(text), &c, &err), 0);
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
    char kernel[600], text[1024];
    snprintf(kernel, sizeof(kernel), "%s/stand-in-0", tmpdir);
    snprintf(text, sizeof(text), "{\"name\": \"n\", \"boot\": {\"kernel\": \"%s\"}}", kernel);
    struct vm_config *c = NULL;
    _cleanup_free_ char *err = NULL;
    ck_assert_int_eq(config_load_text("/x.json", text, strlen(text), &c, &err), 0);
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
    char kernel[600], text[1024];
    snprintf(kernel, sizeof(kernel), "%s/stand-in-0", tmpdir);
    snprintf(
        text, sizeof(text),
        "{\"name\": \"n\", \"boot\": {\"kernel\": \"%s\", \"cmdline\": \"console=ttyS0 reboot=k\"},"
        " \"network\": {\"bridge_address\": \"10.9.0.1/16\", \"guest_address\": \"10.9.3.4\","
        " \"dns\": \"10.9.0.1\"}, \"vsock\": null}",
        kernel);
    struct vm_config *c = NULL;
    _cleanup_free_ char *err = NULL, *cmdline = NULL;
    ck_assert_msg(config_load_text("/x.json", text, strlen(text), &c, &err) == 0, "%s", err);
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
    snprintf(text, sizeof(text),
             "{\"name\": \"n\", \"boot\": {\"kernel\": \"%s\", \"cmdline\": \"quiet\"}, "
             "\"network\": null,"
             " \"gateway\": {\"guest_port\": 8080}, \"forwards\": [{\"to\": \"host\", "
             "\"guest_port\": 99,"
             " \"connect\": \"tcp:127.0.0.1:99\"}]}",
             kernel);
    ck_assert_msg(config_load_text("/x.json", text, strlen(text), &c, &err) == 0, "%s", err);
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
    tcase_add_checked_fixture(t, setup, teardown);
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
