/* backend_sandbox and connect_broker: the sandboxed vsock backend (`ocvm vsock-backend` with its
 * sockets as fds, as `ocvm up` runs it) dies of SIGSYS on a call outside its filter (the trigger
 * exists only in this test's build, -DOCVM_TEST_HOOKS), serves and stops cleanly inside it, and
 * shows in /proc what it gave up: no capabilities, no_new_privs, a seccomp filter, and (as root)
 * another user. The broker connects UDS_PATH_PORT for it and nothing else, and survives a
 * misbehaving backend. */
#include "common/cleanup.h"
#include "tests/support/proc_status.h"
#include "tests/support/run_suite.h"
#include "tests/support/sanitized.h"
#include "vsock/backend_main.h"
#include "vsock/backend_sandbox.h"
#include "vsock/connect_broker.h"
#include "vsock/vsock_conn.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64], vu[96], uds[96];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ocvm-test-sandbox-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(vu, sizeof(vu), "%s/vu.sock", dir);
    snprintf(uds, sizeof(uds), "%s/v.sock", dir);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* In a child: `ocvm vsock-backend` as `ocvm up` starts it (listening sockets at 3 and 4, the
 * broker's end at 5); returns its pid, and the supervisor's end of the broker in *broker. */
static pid_t start_backend(bool forbidden, int *broker)
{
    int pair[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int a, b;
        if (vsock_hybrid_listen(vu, &a) < 0 || vsock_hybrid_listen(uds, &b) < 0 || dup2(a, 3) < 0 ||
            dup2(b, 4) < 0 || dup2(pair[1], 5) < 0)
            _exit(120);
        if (forbidden)
            setenv("OCVM_TEST_FORBIDDEN_SYSCALL", "1", 1);
        char *argv[] = {"vsock-backend", "--socket", vu,           "--socket-fd=3",
                        "--uds",         uds,        "--uds-fd=4", "--connect-fd=5",
                        "--guest-cid=3", "--user",   "nobody",     NULL};
        _exit(vsock_backend_main(ELEMENTSOF(argv) - 1, argv)); /* _exit: no atexit handlers */
    }
    close(pair[1]);
    *broker = pair[0];
    return pid;
}

static int wait_status(pid_t pid)
{
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return st;
}

/* Connects to the hybrid socket once it listens (the child made it). */
static int connect_uds(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", uds);
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
            return fd;
        close(fd);
        usleep(10000);
    }
    ck_abort_msg("the backend never listened on %s", uds);
    return -1;
}

START_TEST(forbidden_call_kills_the_backend)
{
    int broker;
    pid_t pid = start_backend(true, &broker);
    int st = wait_status(pid);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
                  "expected death by SIGSYS, got status 0x%x", st);
    close(broker);
}
END_TEST

START_TEST(sandboxed_backend_serves_and_stops)
{
#ifdef SANITIZED
    /* AddressSanitizer's allocator and exit-time leak check make calls outside the filter */
    fprintf(stderr, "skip: sandboxed_backend_serves_and_stops under AddressSanitizer\n");
    return;
#endif
    int broker;
    pid_t pid = start_backend(false, &broker);
    /* no guest yet: a host client is closed at once, not left hanging */
    int fd = connect_uds();
    ck_assert_int_eq(write(fd, "CONNECT 18789\n", 14), 14);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 5000), 1);
    char c;
    ck_assert_int_le(read(fd, &c, 1), 0);
    close(fd);

    char v[128];
    proc_status_line(pid, "NoNewPrivs", v, sizeof(v));
    ck_assert_str_eq(v, "1");
    proc_status_line(pid, "Seccomp", v, sizeof(v));
    ck_assert_str_eq(v, "2");
    proc_status_line(pid, "CapEff", v, sizeof(v));
    ck_assert_str_eq(v, "0000000000000000");
    proc_status_line(pid, "CapPrm", v, sizeof(v));
    ck_assert_str_eq(v, "0000000000000000");
    if (geteuid() == 0) {
        proc_status_line(pid, "CapBnd", v, sizeof(v));
        ck_assert_str_eq(v, "0000000000000000");
        proc_status_line(pid, "Uid", v, sizeof(v));
        ck_assert_str_eq(v, "65534\t65534\t65534\t65534");
        proc_status_line(pid, "Groups", v, sizeof(v));
        ck_assert_str_eq(v, "");
    }
    /* SIGTERM: its clean stop stays inside the filter */
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    int st = wait_status(pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
    /* it leaves the socket files to whoever made them */
    ck_assert_int_eq(access(uds, F_OK), 0);
    ck_assert_int_eq(access(vu, F_OK), 0);
    close(broker);
}
END_TEST

/* The backend's side of a broker round trip, in a child: exit 0 when the socket it got is
 * connected to PATH_7 (it reads "hi"), 10 + errno otherwise. */
static pid_t ask_in_child(int fd, uint32_t port)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct connect_broker_client c = {.fd = fd, .timeout_ms = 5000};
        int conn;
        int r = connect_broker_ask(&c, port, &conn);
        if (r < 0)
            _exit(10 + (-r > 100 ? 100 : -r));
        char buf[2];
        struct pollfd p = {.fd = conn, .events = POLLIN};
        _exit(poll(&p, 1, 5000) == 1 && read(conn, buf, 2) == 2 && memcmp(buf, "hi", 2) == 0 ? 0
                                                                                             : 1);
    }
    return pid;
}

/* Serves FD until the child PID has exited; returns its exit status. */
static int serve_until_exit(int fd, pid_t pid)
{
    for (;;) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 200;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) == 1)
            ck_assert_int_eq(connect_broker_serve(fd, connect_broker_hybrid_port, uds), 0);
    }
}

START_TEST(broker_connects_path_port)
{
    int pair[2], listener;
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    char path7[128];
    snprintf(path7, sizeof(path7), "%s_7", uds);
    ck_assert_int_eq(vsock_hybrid_listen(path7, &listener), 0);
    pid_t pid = ask_in_child(pair[1], 7);
    /* the broker answers; then the host service behind PATH_7 accepts and speaks */
    struct pollfd p = {.fd = pair[0], .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 5000), 1);
    ck_assert_int_eq(connect_broker_serve(pair[0], connect_broker_hybrid_port, uds), 0);
    p.fd = listener;
    ck_assert_int_eq(poll(&p, 1, 5000), 1);
    int a = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_int_ge(a, 0);
    ck_assert_int_eq(write(a, "hi", 2), 2);
    ck_assert_int_eq(serve_until_exit(pair[0], pid), 0);
    close(a);

    /* nobody listens on PATH_8: the error comes back, at once */
    pid = ask_in_child(pair[1], 8);
    ck_assert_int_eq(serve_until_exit(pair[0], pid), 10 + ENOENT);
    close(listener);
    close(pair[0]);
    close(pair[1]);
}
END_TEST

START_TEST(broker_survives_a_misbehaving_backend)
{
    int pair[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    /* a request of the wrong size gets an error reply; an fd sent along is not kept */
    int extra = open("/dev/null", O_RDONLY | O_CLOEXEC), before = open("/dev/null", O_RDONLY);
    ck_assert_int_ge(extra, 0);
    close(before);
    char junk[3] = "abc";
    struct iovec iov = {.iov_base = junk, .iov_len = sizeof(junk)};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = &control,
                       .msg_controllen = sizeof(control)};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &extra, sizeof(int));
    ck_assert_int_eq(sendmsg(pair[1], &m, 0), 3);
    ck_assert_int_eq(connect_broker_serve(pair[0], connect_broker_hybrid_port, uds), 0);
    int next = open("/dev/null", O_RDONLY); /* the lowest free number: the fd sent was not kept */
    ck_assert_int_eq(next, before);
    close(next);
    close(extra);
    uint32_t reply[2];
    ck_assert_int_eq(recv(pair[1], reply, sizeof(reply), MSG_DONTWAIT), sizeof(reply));
    ck_assert_int_eq((int32_t)reply[1], -EBADMSG);
    /* the backend gone: the broker says so */
    close(pair[1]);
    ck_assert_int_eq(connect_broker_serve(pair[0], connect_broker_hybrid_port, uds), -ECONNRESET);
    close(pair[0]);
}
END_TEST

START_TEST(sandbox_without_a_user_keeps_the_uid)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(p[1]);
        const char *step;
        struct backend_sandbox sb = {0};
        if (backend_sandbox_enter(&sb, &step) < 0)
            _exit(1);
        char c;
        int code = read(p[0], &c, 1) == 0 ? 0 : 2; /* read: inside the filter; waits for us */
        syscall(SYS_exit_group, code); /* not _exit(): a sanitizer's _exit calls sigaltstack */
    }
    close(p[0]);
    char v[128], want[64];
    usleep(200000);
    proc_status_line(pid, "Seccomp", v, sizeof(v));
    ck_assert_str_eq(v, "2");
    proc_status_line(pid, "Uid", v, sizeof(v));
    snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", getuid(), getuid(), getuid(), getuid());
    ck_assert_str_eq(v, want);
    close(p[1]);
    int st = wait_status(pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("backend_sandbox");
    TCase *tc = tcase_create("backend_sandbox");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, forbidden_call_kills_the_backend);
    tcase_add_test(tc, sandboxed_backend_serves_and_stops);
    tcase_add_test(tc, broker_connects_path_port);
    tcase_add_test(tc, broker_survives_a_misbehaving_backend);
    tcase_add_test(tc, sandbox_without_a_user_keeps_the_uid);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
