/* The vsock backend's sandbox; see backend_sandbox.h. */
#include "vsock/backend_sandbox.h"

#include "common/cleanup.h"
#include "common/caps.h"
#include "common/error.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pwd.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* What the backend calls once its sockets are open, found by running it: strace -f of `ocvm up`
 * with the demo guest (boot, READY over vsock, health probes, forwards both ways, 64 MiB echoed
 * through the chain, a QEMU restart, SIGTERM), in a -DOCVM_SECCOMP_AUDIT build (see below).
 * Nothing opens a path, execs, forks or changes credentials.
 *   sd-event:        epoll_wait (and epoll_pwait, epoll_pwait2, the forms other libsystemd
 *                    versions use), epoll_ctl, read (signalfd, timerfd), timerfd_settime,
 *                    signalfd4 (its signal sources freed at exit)
 *   vhost-user:      accept4, recvmsg (with QEMU's fds), sendmsg, fcntl (F_GETFL and F_SETFL
 *                    only), newfstatat and fstat (of the guest memory fds), mmap (shared guest
 *                    memory; never PROT_EXEC), munmap
 *   rings:           read, write (kick and call eventfds)
 *   host sockets:    accept4, recvfrom, readv, sendmsg, sendto (both without MSG_FASTOPEN, sendto
 *                    on a connected socket only), shutdown, close, setsockopt
 *                    (SOL_SOCKET SO_LINGER only: a connection the guest cut is closed with a
 *                    reset, vsock_dev.c conn_check_done)
 *   connect broker:  sendto, poll, recvmsg
 *   memory:          brk, mmap (no PROT_EXEC), munmap, mremap (malloc, realloc)
 *   logging:         write (stderr), sendto (the journal, connected before)
 *   always:          exit_group, restart_syscall (a poll resumed after SIGSTOP/SIGCONT),
 *                    clock_gettime (when the vDSO cannot read the clock)
 * With connects_itself also socket (AF_UNIX only), connect and unlink. */
static const int allowed[] = {
    SCMP_SYS(accept4),         SCMP_SYS(brk),        SCMP_SYS(clock_gettime),
    SCMP_SYS(close),           SCMP_SYS(epoll_ctl),  SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_pwait2),    SCMP_SYS(epoll_wait), SCMP_SYS(exit_group),
    SCMP_SYS(fstat),           SCMP_SYS(mremap),     SCMP_SYS(munmap),
    SCMP_SYS(newfstatat),      SCMP_SYS(poll),       SCMP_SYS(read),
    SCMP_SYS(readv),           SCMP_SYS(recvfrom),   SCMP_SYS(recvmsg),
    SCMP_SYS(restart_syscall), SCMP_SYS(shutdown),   SCMP_SYS(signalfd4),
    SCMP_SYS(timerfd_settime), SCMP_SYS(write),
};
static const int allowed_connecting[] = {SCMP_SYS(connect), SCMP_SYS(unlink)};

/* The host relay (`ocvm relay-child`, vsock/relay_child_main.c), its listeners, its broker and
 * its signalfd already open (relay_prepare_run), found the same way (curl and a 64 MiB echo
 * through the gateway forward, a guest->host forward, a client that hangs up mid-stream,
 * SIGTERM). It connects nothing itself: every target socket comes from the broker
 * (connect_broker.h), so it has no socket, connect or file call at all.
 *   relay loop:      epoll_wait (epoll_pwait, epoll_pwait2), epoll_ctl, timerfd_settime, read
 *                    (timerfd, signalfd), eventfd2 (the fd it keeps spare), poll (a hybrid
 *                    target's hang-up)
 *   connections:     accept4, readv, writev, recvfrom (the hybrid reply), shutdown, close,
 *                    getsockname and getpeername (a TCP target connected to itself),
 *                    getsockopt (SOL_SOCKET SO_ERROR only), setsockopt (SOL_SOCKET SO_LINGER
 *                    only)
 *   connect broker:  sendto (connected, no MSG_FASTOPEN, as every sendto), recvmsg
 *   memory:          brk, mmap (no PROT_EXEC), munmap, mremap (rings)
 *   logging:         write (stderr)
 *   always:          exit_group, restart_syscall, clock_gettime
 * No sendmsg (it could pass an fd to a Unix target), no fcntl, no signal call; the hybrid
 * CONNECT line is sent by the supervisor, which connects the hybrid socket: the relay cannot
 * pick a guest port. */
static const int allowed_relay[] = {
    SCMP_SYS(accept4),       SCMP_SYS(brk),
    SCMP_SYS(clock_gettime), SCMP_SYS(close),
    SCMP_SYS(epoll_ctl),     SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_pwait2),  SCMP_SYS(epoll_wait),
    SCMP_SYS(eventfd2),      SCMP_SYS(exit_group),
    SCMP_SYS(getpeername),   SCMP_SYS(getsockname),
    SCMP_SYS(mremap),        SCMP_SYS(munmap),
    SCMP_SYS(poll),          SCMP_SYS(read),
    SCMP_SYS(readv),         SCMP_SYS(recvfrom),
    SCMP_SYS(recvmsg),       SCMP_SYS(restart_syscall),
    SCMP_SYS(shutdown),      SCMP_SYS(timerfd_settime),
    SCMP_SYS(write),         SCMP_SYS(writev),
};

/* A development build with -DOCVM_SECCOMP_AUDIT logs a call outside the list (to the audit log,
 * SCMP_ACT_LOG) instead of dying on it: run it under strace -f to see what a change needs. */
#ifdef OCVM_SECCOMP_AUDIT
#define DEFAULT_ACTION SCMP_ACT_LOG
#else
#define DEFAULT_ACTION SCMP_ACT_KILL_PROCESS
#endif

static int install_filter(const struct backend_sandbox *sb)
{
    scmp_filter_ctx ctx = seccomp_init(DEFAULT_ACTION);
    if (!ctx)
        return -ENOMEM;
    int r = 0;
    const int *list = sb->relay ? allowed_relay : allowed;
    size_t n = sb->relay ? ELEMENTSOF(allowed_relay) : ELEMENTSOF(allowed);
    for (size_t i = 0; r == 0 && i < n; i++)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, list[i], 0);
    /* sendto on a connected socket only, and never with MSG_FASTOPEN: that would connect a
     * TCP socket the relay holds (one whose target refused it, say) to an address of the
     * caller's choosing */
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sendto), 2,
                             SCMP_A3(SCMP_CMP_MASKED_EQ, MSG_FASTOPEN, 0), SCMP_A4(SCMP_CMP_EQ, 0));
    /* the backend's messages (vhost-user replies with fds, its host sockets); the relay sends
     * none: its bytes go out with writev, and it passes no fd to anyone */
    if (r == 0 && !sb->relay)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sendmsg), 1,
                             SCMP_A2(SCMP_CMP_MASKED_EQ, MSG_FASTOPEN, 0));
    /* a connect's outcome (SO_ERROR), no other socket option read */
    if (r == 0 && sb->relay)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(getsockopt), 2,
                             SCMP_A1(SCMP_CMP_EQ, SOL_SOCKET), SCMP_A2(SCMP_CMP_EQ, SO_ERROR));
    /* the file status flags (non-blocking), nothing else fcntl can do; the relay needs none */
    if (r == 0 && !sb->relay)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                             SCMP_A1(SCMP_CMP_EQ, F_GETFL));
    if (r == 0 && !sb->relay)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
                             SCMP_A1(SCMP_CMP_EQ, F_SETFL));
    /* a reset on close (SO_LINGER 0), no other socket option */
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(setsockopt), 2,
                             SCMP_A1(SCMP_CMP_EQ, SOL_SOCKET), SCMP_A2(SCMP_CMP_EQ, SO_LINGER));
    /* memory, never code: mmap without PROT_EXEC (and no mprotect at all) */
    if (r == 0)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                             SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    bool connects = sb->connects_itself && !sb->relay;
    for (size_t i = 0; r == 0 && connects && i < ELEMENTSOF(allowed_connecting); i++)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed_connecting[i], 0);
    if (r == 0 && connects)
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
                             SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
    if (r == 0)
        r = seccomp_load(ctx);
    seccomp_release(ctx);
    return r;
}

/* The bounding set, when this process may change it (CAP_SETPCAP); else it holds nothing there
 * it could use: no capability in its other sets, and no new privileges. */
static int drop_bounding_set(void)
{
    struct caps c;
    int r = caps_get(&c);
    if (r < 0)
        return r;
    return c.effective & CAPS_BIT(CAP_SETPCAP) ? caps_drop_bounding(0) : 0;
}

#define STEP(what, expr)                                                                           \
    do {                                                                                           \
        int r_ = (expr);                                                                           \
        if (r_ < 0) {                                                                              \
            *ret_step = (what);                                                                    \
            return r_;                                                                             \
        }                                                                                          \
    } while (0)

int backend_sandbox_enter(const struct backend_sandbox *sb, const char **ret_step)
{
    int pdeathsig = 0;
    pid_t parent = getppid();
    STEP("PR_GET_PDEATHSIG", prctl(PR_GET_PDEATHSIG, &pdeathsig) < 0 ? negative_errno() : 0);
    struct passwd *pw = NULL;
    if (sb->user && geteuid() == 0) {
        errno = 0;
        pw = getpwnam(sb->user);
        STEP("look up the user", pw ? 0 : errno ? negative_errno() : -ENOENT);
    }
    STEP("drop the bounding set", drop_bounding_set());
    STEP("clear the ambient set",
         prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL
             ? negative_errno()
             : 0);
    if (pw)
        STEP("change user", caps_change_user(pw->pw_uid, pw->pw_gid));
    STEP("clear the capabilities", caps_set(&(struct caps){0}));
    /* a change of user clears the parent-death signal: set it again, and catch a parent that
     * died in between */
    if (pdeathsig) {
        STEP("PR_SET_PDEATHSIG", prctl(PR_SET_PDEATHSIG, pdeathsig) < 0 ? negative_errno() : 0);
        STEP("parent alive", getppid() == parent ? 0 : -ESRCH);
    }
    STEP("PR_SET_DUMPABLE", prctl(PR_SET_DUMPABLE, 0) < 0 ? negative_errno() : 0);
    STEP("PR_SET_NO_NEW_PRIVS", prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ? negative_errno() : 0);
    STEP("seccomp filter", install_filter(sb));
    return 0;
}

int backend_sandbox_enter_logged(const struct backend_sandbox *sb, const char *stage)
{
    log_journal_connect();
#ifdef OCVM_TEST_HOOKS
    /* test builds only (tests/unit/test_backend_sandbox.c, test_relay_child.c): a call outside
     * the filter, open(2) or, with "fastopen", a TCP Fast Open sendto to 127.0.0.1:9 (what
     * would connect a socket the relay holds to an address of its choosing) */
    const char *forbidden = getenv("OCVM_TEST_FORBIDDEN_SYSCALL");
    int tcp = forbidden && strcmp(forbidden, "fastopen") == 0
                  ? socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)
                  : -1;
#endif
    const char *step = NULL;
    int r = backend_sandbox_enter(sb, &step);
    if (r < 0) {
        log_error(stage, "sandbox: %s: %s", step, strerror(-r));
        return r;
    }
#ifdef OCVM_TEST_HOOKS
    if (tcp >= 0) {
        struct sockaddr_in sa = {
            .sin_family = AF_INET, .sin_port = htons(9), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        (void)!sendto(tcp, "x", 1, MSG_FASTOPEN, (struct sockaddr *)&sa, sizeof(sa));
    } else if (forbidden) {
        (void)!open("/", O_RDONLY | O_CLOEXEC);
    }
#endif
    return 0;
}
