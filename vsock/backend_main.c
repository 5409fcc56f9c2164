/* `ocvm vsock-backend --socket SOCK --guest-cid N --uds PATH`: the vhost-user vsock device on
 * its own, like rust-vmm's vhost-device-vsock. Listens on SOCK for the VMM and on PATH for hybrid
 * host connections (or takes both sockets already listening, from a supervisor), sandboxes itself
 * (backend_sandbox.h) before it reads anything from a guest, and runs until SIGTERM or SIGINT,
 * then removes the sockets it made. Exit codes: 0 after a signal, 1 when it cannot start, 2 for
 * a usage error. */
#include "vsock/backend_main.h"

#include "common/log.h"
#include "common/parse.h"
#include "vsock/backend_sandbox.h"
#include "vsock/connect_broker.h"
#include "vsock/vsock_dev.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#define PREFIX "ocvm: vsock-backend: " /* of its usage errors */
#define STAGE "vsock-backend"          /* of its log lines */

static const char usage_text[] =
    "usage: ocvm vsock-backend --socket SOCK --guest-cid N --uds PATH [OPTIONS]\n"
    "  --socket SOCK     vhost-user socket the VMM connects to (-chardev socket,path=SOCK)\n"
    "  --guest-cid N     the guest's vsock CID (3-4294967294)\n"
    "  --uds PATH        hybrid vsock socket: host clients send \"CONNECT PORT\\n\" here;\n"
    "                    guest connections to host port P go to PATH_P\n"
    "  --socket-fd N, --uds-fd M\n"
    "                    SOCK and PATH are already listening as fds N and M (both given):\n"
    "                    take them, and leave the files in place at exit\n"
    "  --connect-fd K    ask the broker on fd K (SOCK_SEQPACKET) to connect PATH_P, instead\n"
    "                    of connecting it here\n"
    "  --user USER       run as USER once the sockets are open (when started as root)\n"
    "  --vm NAME         the VM's name, for log lines\n"
    "Before it reads from a guest it drops every capability, sets no_new_privs and installs a\n"
    "seccomp filter of the calls it uses; any other call kills it (SIGSYS).\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PREFIX, stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see --help)\n", stderr);
    va_end(ap);
    return 2;
}

/* Decimal, no sign, no leading zeros, 3..UINT32_MAX-1. */
static int parse_cid(const char *s, uint32_t *ret)
{
    if (s[0] == '0' && s[1])
        return -EINVAL;
    uint32_t v;
    int r = decimal_u32(s, strlen(s), UINT32_MAX - 1, &v);
    if (r < 0)
        return r;
    if (v <= 2)
        return -ERANGE;
    *ret = v;
    return 0;
}

static int parse_fd(const char *s, int *ret)
{
    return parse_inherited_fd(s, strlen(s), ret);
}

static bool path_ok(const char *p)
{
    struct sockaddr_un sa;
    return *p && strlen(p) < sizeof(sa.sun_path);
}

/* FD is an open socket of TYPE (AF_UNIX), listening when LISTENING. */
static bool socket_fd_ok(int fd, int type, bool listening)
{
    int v = 0;
    socklen_t len = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0 || v != AF_UNIX)
        return false;
    len = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0 || v != type)
        return false;
    len = sizeof(v);
    return !listening || (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v == 1);
}

struct backend_args {
    const char *socket, *uds, *user, *vm;
    uint32_t cid;
    int socket_fd, uds_fd, connect_fd; /* -1: not given */
    bool help;
};

static int parse_option(int o, struct backend_args *a, bool *have_cid)
{
    switch (o) {
    case 's':
        a->socket = optarg;
        return 0;
    case 'u':
        a->uds = optarg;
        return 0;
    case 'c':
        if (parse_cid(optarg, &a->cid) < 0)
            return usage_error("--guest-cid: expected a number from 3 to 4294967294, got '%s'",
                               optarg);
        *have_cid = true;
        return 0;
    case 'S':
    case 'U':
    case 'K':
        if (parse_fd(optarg, o == 'S' ? &a->socket_fd : o == 'U' ? &a->uds_fd : &a->connect_fd) < 0)
            return usage_error("%s: expected a file descriptor number (3 or more), got '%s'",
                               o == 'S'   ? "--socket-fd"
                               : o == 'U' ? "--uds-fd"
                                          : "--connect-fd",
                               optarg);
        return 0;
    case 'W':
        a->user = optarg;
        return 0;
    case 'V':
        if (!is_vm_name(optarg))
            return usage_error("--vm: '%s' is not a VM name", optarg);
        a->vm = optarg;
        return 0;
    case 'h':
        a->help = true;
        return 0;
    default:
        return -1; /* the caller names the option */
    }
}

static int parse_args(int argc, char **argv, struct backend_args *a)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'}, {"guest-cid", required_argument, NULL, 'c'},
        {"uds", required_argument, NULL, 'u'},    {"socket-fd", required_argument, NULL, 'S'},
        {"uds-fd", required_argument, NULL, 'U'}, {"connect-fd", required_argument, NULL, 'K'},
        {"user", required_argument, NULL, 'W'},   {"vm", required_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {0},
    };
    bool have_cid = false;
    *a = (struct backend_args){.socket_fd = -1, .uds_fd = -1, .connect_fd = -1};
    optind = 0; /* the caller may have run getopt already */
    opterr = 0;
    int o, r;
    while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        if ((r = parse_option(o, a, &have_cid)) < 0)
            return usage_error("unknown option or missing value: '%s'",
                               argv[optind - 1] ? argv[optind - 1] : "");
        if (r > 0 || a->help)
            return r;
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!a->socket || !have_cid || !a->uds)
        return usage_error("%s", "--socket, --guest-cid and --uds are all required");
    if (!path_ok(a->socket))
        return usage_error("--socket: '%s' is empty or too long for a Unix socket", a->socket);
    if (!path_ok(a->uds))
        return usage_error("--uds: '%s' is empty or too long for a Unix socket", a->uds);
    if (strcmp(a->socket, a->uds) == 0)
        return usage_error("--socket and --uds must differ (both are '%s')", a->socket);
    if ((a->socket_fd < 0) != (a->uds_fd < 0))
        return usage_error("%s", "--socket-fd and --uds-fd go together");
    if (a->socket_fd >= 0 &&
        (a->socket_fd == a->uds_fd || a->socket_fd == a->connect_fd || a->uds_fd == a->connect_fd))
        return usage_error("%s", "--socket-fd, --uds-fd and --connect-fd must differ");
    if (a->socket_fd >= 0 && (!socket_fd_ok(a->socket_fd, SOCK_STREAM, true) ||
                              !socket_fd_ok(a->uds_fd, SOCK_STREAM, true)))
        return usage_error("%s", "--socket-fd and --uds-fd must be listening Unix stream sockets");
    if (a->connect_fd >= 0 && !socket_fd_ok(a->connect_fd, SOCK_SEQPACKET, false))
        return usage_error("%s", "--connect-fd must be a Unix SOCK_SEQPACKET socket");
    return 0;
}

static int on_warm_up(sd_event_source *s, uint64_t usec, void *userdata)
{
    return 0;
}

/* What sd-event does lazily, the first time it arms a CLOCK_MONOTONIC timer (the device's
 * timers), done now, while files may still be opened: it makes that clock's timerfd and reads
 * /proc/sys/kernel/random/boot_id (to perturb its wake-ups). Runs before the device exists, so
 * nothing is dispatched. */
static int warm_up_loop(sd_event *e)
{
    sd_event_source *t = NULL;
    int r =
        sd_event_add_time_relative(e, &t, CLOCK_MONOTONIC, 3600u * 1000000u, 0, on_warm_up, NULL);
    if (r >= 0)
        r = sd_event_run(e, 0);
    sd_event_source_disable_unref(t);
    return r < 0 ? r : 0;
}

static int broker_connect(void *userdata, uint32_t port, int *ret_fd)
{
    return connect_broker_ask(userdata, port, ret_fd);
}

/* Gives up what the device does not need (see backend_sandbox.h), before the loop runs. */
static int sandbox(const struct backend_args *a)
{
    struct backend_sandbox sb = {.user = a->user, .connects_itself = a->connect_fd < 0};
    return backend_sandbox_enter_logged(&sb, STAGE);
}

int vsock_backend_main(int argc, char **argv)
{
    struct backend_args a;
    int r = parse_args(argc, argv, &a);
    if (r != 0)
        return r;
    if (a.help) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (a.vm)
        log_set_vm(a.vm);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    sd_event *e = NULL;
    struct vsock_dev *d = NULL;
    struct connect_broker_client broker = {.fd = a.connect_fd, .timeout_ms = 2000};
    struct vsock_dev_config cfg = {
        .guest_cid = a.cid,
        .uds_path = a.uds,
        .vhost_user_path = a.socket,
        .take_fds = a.socket_fd >= 0,
        .uds_fd = a.uds_fd,
        .vhost_user_fd = a.socket_fd,
        .connect_host = a.connect_fd >= 0 ? broker_connect : NULL,
        .connect_host_userdata = &broker,
    };
    r = sd_event_new(&e);
    if (r >= 0)
        r = sd_event_add_signal(e, NULL, SIGTERM, NULL, NULL);
    if (r >= 0)
        r = sd_event_add_signal(e, NULL, SIGINT, NULL, NULL);
    if (r >= 0)
        r = warm_up_loop(e);
    if (r < 0) {
        log_error(STAGE, "event loop: %s", strerror(-r));
        sd_event_unref(e);
        return 1;
    }
    r = vsock_dev_new(e, &cfg, &d);
    if (r < 0) {
        log_error(STAGE, "listen on %s and %s: %s", a.socket, a.uds, strerror(-r));
        sd_event_unref(e);
        return 1;
    }
    bool drops_user = a.user && geteuid() == 0;
    if (sandbox(&a) < 0) {
        vsock_dev_free(d);
        sd_event_unref(e);
        return 1;
    }
    log_info(STAGE, "listening on %s (guest cid %u, hybrid socket %s)%s%s", a.socket, a.cid, a.uds,
             drops_user ? " as " : "", drops_user ? a.user : "");
    r = sd_event_loop(e);
    vsock_dev_free(d);
    sd_event_unref(e);
    if (r < 0) {
        log_error(STAGE, "event loop: %s", strerror(-r));
        return 1;
    }
    log_info(STAGE, "stopped");
    return 0;
}
