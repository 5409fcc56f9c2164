/* audit: the live findings of `ocvm check`, each made by a real state of this machine: a
 * listener beyond loopback on the gateway's port (in a network namespace of the test's own), a
 * runtime directory or file others can use, a "QEMU" that runs as root without seccomp (this
 * test process stands in for it). The boot test (tests/boot/chain.sh) makes the network ones
 * against a running VM. */
#include "common/cleanup.h"
#include "config/config.h"
#include "policy/audit.h"

#include "tests/support/run_suite.h"
#include "tests/support/vm_fixture.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>

static void run(const struct audit_input *in, struct audit_report *r)
{
    _cleanup_free_ char *err = NULL;
    ck_assert_msg(audit_run(in, r, &err) == 0, "%s", err);
    for (size_t i = 0; i < r->n; i++)
        fprintf(stderr, "finding: %s %s\n", r->findings[i].id, r->findings[i].line);
}

START_TEST(proc_addresses)
{
    ck_assert_int_eq(audit_proc_addr_is_loopback("0100007F"), 1); /* 127.0.0.1 */
    ck_assert_int_eq(audit_proc_addr_is_loopback("0200007F"), 1); /* 127.0.0.2 */
    ck_assert_int_eq(audit_proc_addr_is_loopback("00000000"), 0); /* 0.0.0.0 */
    ck_assert_int_eq(audit_proc_addr_is_loopback("0253A8C0"), 0); /* 192.168.83.2 */
    ck_assert_int_eq(audit_proc_addr_is_loopback("00000000000000000000000001000000"), 1); /* ::1 */
    ck_assert_int_eq(audit_proc_addr_is_loopback("00000000000000000000000000000000"), 0); /* :: */
    ck_assert_int_eq(audit_proc_addr_is_loopback("0000000000000000FFFF00000100007F"), 1);
    ck_assert_int_eq(audit_proc_addr_is_loopback("0000000000000000FFFF00000253A8C0"), 0);
    ck_assert_int_eq(audit_proc_addr_is_loopback("0100007"), -EINVAL);
    ck_assert_int_eq(audit_proc_addr_is_loopback("0100007X"), -EINVAL);
}
END_TEST

/* Listens on ADDR (IPv4 or IPv6 text) PORT, in this test's own network namespace. */
static int listen_on(int family, const char *addr, uint16_t port)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *sa = (struct sockaddr_in *)&ss;
        sa->sin_family = AF_INET;
        sa->sin_port = htons(port);
        inet_pton(AF_INET, addr, &sa->sin_addr);
        len = sizeof(*sa);
    } else {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;
        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons(port);
        inet_pton(AF_INET6, addr, &sa->sin6_addr);
        len = sizeof(*sa);
    }
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    ck_assert_int_ge(fd, 0);
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&ss, len), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    return fd;
}

START_TEST(listener_beyond_loopback)
{
    if (unshare(CLONE_NEWNET) < 0) {
        fprintf(stderr, "skip: no network namespace (%s)\n", strerror(errno));
        return;
    }
    /* a new namespace's loopback starts down */
    struct ifreq ifr = {.ifr_flags = IFF_UP};
    strcpy(ifr.ifr_name, "lo");
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(ioctl(s, SIOCSIFFLAGS, &ifr), 0);
    close(s);
    struct vm_config *c =
        vm_fixture_load("{\"name\": \"vm\", \"boot\": {\"kernel\": \"KERNEL\"},"
                        " \"gateway\": {\"host_listen\": \"127.0.0.1:18789\"},"
                        " \"forwards\": [{\"to\": \"guest\", \"listen\": \"tcp:127.0.0.1:9000\", "
                        "\"guest_port\": 9000}]}");
    struct audit_input in = {.c = c};
    struct audit_report r;
    /* ocvm's own listeners, on loopback: nothing to say */
    int a = listen_on(AF_INET, "127.0.0.1", 18789), b = listen_on(AF_INET6, "::1", 9000);
    run(&in, &r);
    ck_assert_uint_eq(r.n, 0);
    audit_report_done(&r);
    /* someone else's, on every address, for both ports */
    int d = listen_on(AF_INET6, "::", 18789), e = listen_on(AF_INET, "0.0.0.0", 9000);
    run(&in, &r);
    ck_assert_uint_eq(r.n, 2);
    ck_assert_str_eq(r.findings[0].id, "OCVM-L002");
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "the gateway's port 18789 is listened on "
                                                     "beyond loopback (IPv6 address "));
    ck_assert_str_eq(r.findings[1].id, "OCVM-L002");
    ck_assert_ptr_nonnull(strstr(r.findings[1].line, "forwards[0]'s port 9000 is listened on "
                                                     "beyond loopback (IPv4 address 00000000)"));
    audit_report_done(&r);
    close(a);
    close(b);
    close(d);
    close(e);
    vm_config_free(c);
}
END_TEST

START_TEST(runtime_dir_modes)
{
    struct vm_config *c = vm_fixture_load("{\"name\": \"vm\", \"boot\": {\"kernel\": \"KERNEL\"}}");
    char dir[700], file[800];
    snprintf(dir, sizeof(dir), "%s/run", vm_fixture_dir());
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    snprintf(file, sizeof(file), "%s/state.json", dir);
    FILE *f = fopen(file, "we");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(chmod(file, 0600), 0);
    static const char *const files[] = {"state.json", "qmp.sock", NULL};
    struct audit_input in = {.c = c, .runtime_dir = dir, .private_files = files};
    struct audit_report r;
    run(&in, &r);
    ck_assert_uint_eq(r.n, 0); /* a file that is not there (qmp.sock) is not a finding */
    audit_report_done(&r);
    ck_assert_int_eq(chmod(file, 0644), 0);
    ck_assert_int_eq(chmod(dir, 0755), 0);
    run(&in, &r);
    ck_assert_uint_eq(r.n, 2);
    ck_assert_str_eq(r.findings[0].id, "OCVM-L003");
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "has mode 0755"));
    ck_assert_ptr_nonnull(strstr(r.findings[1].line, "state.json has mode 0644"));
    audit_report_done(&r);
    vm_config_free(c);
}
END_TEST

/* This test process stands in for QEMU: as root, without seccomp, it is two findings. */
START_TEST(qemu_user_and_seccomp)
{
    struct vm_config *c = vm_fixture_load("{\"name\": \"vm\", \"boot\": {\"kernel\": \"KERNEL\"},"
                                          " \"machine\": {\"user\": null}}");
    struct audit_input in = {.c = c, .qemu_pid = getpid()};
    struct audit_report r;
    run(&in, &r);
    size_t want = (geteuid() == 0) + 1;
    ck_assert_uint_eq(r.n, want);
    if (geteuid() == 0)
        ck_assert_ptr_nonnull(strstr(r.findings[0].line, "runs as root"));
    ck_assert_str_eq(r.findings[want - 1].id, "OCVM-L005");
    ck_assert_ptr_nonnull(
        strstr(r.findings[want - 1].line, "without a seccomp filter (Seccomp: 0)"));
    audit_report_done(&r);
    vm_config_free(c);
    /* a configured user that is not the one QEMU runs as */
    c = vm_fixture_load(
        "{\"name\": \"vm\", \"boot\": {\"kernel\": \"KERNEL\"}, \"machine\": {\"user\": "
        "\"nobody\"}}");
    in.c = c;
    run(&in, &r);
    ck_assert_ptr_nonnull(strstr(r.findings[0].line, "not as machine.user nobody"));
    audit_report_done(&r);
    vm_config_free(c);
}
END_TEST

/* A child running as nobody stands in for QEMU: the kernel it boots, made writable to it (by
 * mode, or through its directory), is a finding; the files as a user installs them are not. */
START_TEST(boot_files_writable_by_qemu_user)
{
    if (geteuid() != 0) {
        fprintf(stderr, "skip: needs root to run a stand-in as another user\n");
        return;
    }
    struct passwd *pw = getpwnam("nobody");
    ck_assert_ptr_nonnull(pw);
    uid_t uid = pw->pw_uid; /* getpwnam's buffer is the audit's too */
    gid_t gid = pw->pw_gid;
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (setgid(gid) < 0 || setuid(uid) < 0)
            _exit(1);
        close(p[1]);
        char b;
        (void)!read(p[0], &b, 1); /* until the test is done with it */
        _exit(0);
    }
    close(p[0]);
    char bootdir[700], kernel[800];
    snprintf(bootdir, sizeof(bootdir), "%s/boot", vm_fixture_dir());
    snprintf(kernel, sizeof(kernel), "%s/vmlinuz", bootdir);
    ck_assert_int_eq(mkdir(bootdir, 0755), 0);
    FILE *f = fopen(kernel, "we");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(chmod(kernel, 0644), 0);
    _cleanup_free_ char *json = NULL;
    ck_assert_int_ge(asprintf(&json, "{\"name\": \"vm\", \"boot\": {\"kernel\": \"%s\"}}", kernel),
                     0);
    struct vm_config *c = vm_fixture_load(json);
    struct audit_input in = {.c = c, .qemu_pid = pid};
    struct audit_report r;
    run(&in, &r);
    size_t base = r.n; /* L005: no seccomp in the stand-in */
    for (size_t i = 0; i < r.n; i++)
        ck_assert_str_ne(r.findings[i].id, "OCVM-L006");
    audit_report_done(&r);
    ck_assert_int_eq(chmod(kernel, 0666), 0);
    run(&in, &r);
    ck_assert_uint_eq(r.n, base + 1);
    ck_assert_str_eq(r.findings[base].id, "OCVM-L006");
    ck_assert_ptr_nonnull(
        strstr(r.findings[base].line, "/boot/vmlinuz is writable by QEMU's user"));
    audit_report_done(&r);
    ck_assert_int_eq(chmod(kernel, 0644), 0);
    ck_assert_int_eq(chown(bootdir, uid, gid), 0);
    run(&in, &r);
    ck_assert_uint_eq(r.n, base + 1);
    ck_assert_ptr_nonnull(strstr(r.findings[base].line, "/boot (the directory holding it) is "
                                                        "writable by QEMU's user"));
    audit_report_done(&r);
    close(p[1]);
    waitpid(pid, NULL, 0);
    vm_config_free(c);
}
END_TEST

/* This test process stands in for the vsock backend: it is neither unprivileged nor sandboxed. */
START_TEST(backend_not_sandboxed)
{
    struct vm_config *c = vm_fixture_load("{\"name\": \"vm\", \"boot\": {\"kernel\": \"KERNEL\"}}");
    struct audit_input in = {.c = c, .backend_pid = getpid()};
    struct audit_report r;
    run(&in, &r);
    size_t want = (geteuid() == 0) + 1;
    ck_assert_uint_eq(r.n, want);
    if (geteuid() == 0)
        ck_assert_ptr_nonnull(strstr(r.findings[0].line, "the vsock backend (pid"));
    ck_assert_str_eq(r.findings[want - 1].id, "OCVM-L007");
    ck_assert_ptr_nonnull(strstr(r.findings[want - 1].line, "is not sandboxed ("));
    ck_assert_ptr_nonnull(
        strstr(r.findings[want - 1].line, "NoNewPrivs 0, Seccomp 0; want 0, 1, 2"));
    audit_report_done(&r);
    vm_config_free(c);
}
END_TEST

/* The same process as the host relay: OCVM-L009, with the relay named. */
START_TEST(relay_not_sandboxed)
{
    struct vm_config *c = vm_fixture_load("{\"name\": \"vm\", \"boot\": {\"kernel\": \"KERNEL\"}}");
    struct audit_input in = {.c = c, .relay_pid = getpid()};
    struct audit_report r;
    run(&in, &r);
    size_t want = (geteuid() == 0) + 1;
    ck_assert_uint_eq(r.n, want);
    for (size_t i = 0; i < want; i++) {
        ck_assert_str_eq(r.findings[i].id, "OCVM-L009");
        ck_assert_ptr_nonnull(strstr(r.findings[i].line, "the host relay (pid"));
    }
    ck_assert_ptr_nonnull(strstr(r.findings[want - 1].line, "is not sandboxed ("));
    audit_report_done(&r);
    vm_config_free(c);
}
END_TEST

/* A child of this process named NAME, chroot(2)ed into ROOT unless NULL, waiting on a pipe; its
 * pid (the write end in *HOLD). */
static pid_t named_child_in(const char *name, const char *root, int *hold)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[1]);
        if (root && chroot(root) < 0)
            _exit(1);
        prctl(PR_SET_NAME, name);
        char b;
        (void)!read(p[0], &b, 1);
        _exit(0);
    }
    close(p[0]);
    *hold = p[1];
    /* wait until the child has renamed itself */
    char path[64], comm[32] = "";
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    for (int i = 0; i < 200 && strncmp(comm, name, strlen(name)) != 0; i++) {
        FILE *f = fopen(path, "re");
        if (f) {
            (void)!fgets(comm, sizeof(comm), f);
            fclose(f);
        }
        usleep(5000);
    }
    return pid;
}

static pid_t named_child(const char *name, int *hold)
{
    return named_child_in(name, NULL, hold);
}

/* A virtiofsd chroot(2)ed into the staged secrets (a read-only share) may keep no capability;
 * one in another directory (a read-write share) may keep what serving files takes. */
START_TEST(virtiofsd_read_only_share_wants_no_capability)
{
    if (geteuid() != 0) {
        fprintf(stderr,
                "skip: virtiofsd_read_only_share_wants_no_capability needs root (chroot)\n");
        return;
    }
    struct vm_config *c = vm_fixture_load("{\"name\": \"vm\", \"boot\": {\"kernel\": \"KERNEL\"}}");
    char dir[] = "/tmp/ocvm-test-audit-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    int hold;
    pid_t fsd = named_child_in("virtiofsd", dir, &hold);
    struct audit_input in = {.c = c, .supervisor_pid = getpid(), .secrets_dir = dir};
    struct audit_report r;
    run(&in, &r);
    ck_assert_uint_eq(r.n, 2); /* root, and not sandboxed */
    ck_assert_ptr_nonnull(strstr(r.findings[1].line, "virtiofsd of a read-only share (pid"));
    ck_assert_ptr_nonnull(strstr(r.findings[1].line, "; want 0, 1, 2)"));
    audit_report_done(&r);
    in.secrets_dir = "/nonexistent"; /* then it is a read-write share's */
    run(&in, &r);
    ck_assert_uint_eq(r.n, 2);
    ck_assert_ptr_null(strstr(r.findings[1].line, "read-only"));
    ck_assert_ptr_nonnull(strstr(r.findings[1].line, "; want at most db, 1, 2)"));
    audit_report_done(&r);
    close(hold);
    waitpid(fsd, NULL, 0);
    rmdir(dir);
    vm_config_free(c);
}
END_TEST

/* A child of the "supervisor" (this process) named virtiofsd, unsandboxed, at the host's root;
 * another child under another name is not looked at. */
START_TEST(virtiofsd_not_sandboxed)
{
    struct vm_config *c = vm_fixture_load("{\"name\": \"vm\", \"boot\": {\"kernel\": \"KERNEL\"}}");
    int hold_other, hold_fsd;
    pid_t other = named_child("not-virtiofsd", &hold_other);
    struct audit_input in = {.c = c, .supervisor_pid = getpid()};
    struct audit_report r;
    run(&in, &r);
    ck_assert_uint_eq(r.n, 0);
    audit_report_done(&r);
    pid_t fsd = named_child("virtiofsd", &hold_fsd);
    run(&in, &r);
    size_t want = (geteuid() == 0) + 2;
    ck_assert_uint_eq(r.n, want);
    char pidstr[32];
    snprintf(pidstr, sizeof(pidstr), "(pid %d)", (int)fsd);
    for (size_t i = 0; i < r.n; i++) {
        ck_assert_str_eq(r.findings[i].id, "OCVM-L008");
        ck_assert_ptr_nonnull(strstr(r.findings[i].line, pidstr));
    }
    if (geteuid() == 0)
        ck_assert_ptr_nonnull(strstr(r.findings[0].line, "runs as root"));
    ck_assert_ptr_nonnull(strstr(r.findings[want - 2].line, "NoNewPrivs 0, Seccomp 0"));
    ck_assert_ptr_nonnull(strstr(r.findings[want - 1].line, "its root is /, not the share"));
    audit_report_done(&r);
    close(hold_fsd);
    close(hold_other);
    waitpid(fsd, NULL, 0);
    waitpid(other, NULL, 0);
    vm_config_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("audit");
    TCase *tc = tcase_create("live");
    tcase_add_checked_fixture(tc, vm_fixture_setup, vm_fixture_teardown);
    tcase_add_test(tc, proc_addresses);
    tcase_add_test(tc, listener_beyond_loopback);
    tcase_add_test(tc, runtime_dir_modes);
    tcase_add_test(tc, qemu_user_and_seccomp);
    tcase_add_test(tc, boot_files_writable_by_qemu_user);
    tcase_add_test(tc, backend_not_sandboxed);
    tcase_add_test(tc, relay_not_sandboxed);
    tcase_add_test(tc, virtiofsd_read_only_share_wants_no_capability);
    tcase_add_test(tc, virtiofsd_not_sandboxed);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
