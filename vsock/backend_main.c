/* `ocvm vsock-backend --socket SOCK --guest-cid N --uds PATH`: the vhost-user vsock device on
 * its own, like rust-vmm's vhost-device-vsock. Listens on SOCK for the VMM and on PATH for hybrid
 * host connections, and runs until SIGTERM or SIGINT, then removes its sockets. Exit codes: 0
 * after a signal, 1 when it cannot start, 2 for a usage error. */
#include "vsock/backend_main.h"

#include "common/log.h"
#include "common/parse.h"
#include "vsock/vsock_dev.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <systemd/sd-event.h>

#define PREFIX "ocvm: vsock-backend: " /* of its usage errors */
#define STAGE "vsock-backend"          /* of its log lines */

static const char usage_text[] =
    "usage: ocvm vsock-backend --socket SOCK --guest-cid N --uds PATH\n"
    "  --socket SOCK     vhost-user socket the VMM connects to (-chardev socket,path=SOCK)\n"
    "  --guest-cid N     the guest's vsock CID (3-4294967294)\n"
    "  --uds PATH        hybrid vsock socket: host clients send \"CONNECT PORT\\n\" here;\n"
    "                    guest connections to host port P go to PATH_P\n";

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

static bool path_ok(const char *p)
{
    struct sockaddr_un sa;
    return *p && strlen(p) < sizeof(sa.sun_path);
}

struct backend_args {
    const char *socket, *uds;
    uint32_t cid;
    bool help;
};

static int parse_args(int argc, char **argv, struct backend_args *a)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"guest-cid", required_argument, NULL, 'c'},
        {"uds", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool have_cid = false;
    optind = 0; /* the caller may have run getopt already */
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (o) {
        case 's':
            a->socket = optarg;
            break;
        case 'u':
            a->uds = optarg;
            break;
        case 'c':
            if (parse_cid(optarg, &a->cid) < 0)
                return usage_error("--guest-cid: expected a number from 3 to 4294967294, got '%s'",
                                   optarg);
            have_cid = true;
            break;
        case 'h':
            a->help = true;
            return 0;
        default:
            return usage_error("unknown option or missing value: '%s'",
                               argv[optind - 1] ? argv[optind - 1] : "");
        }
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
    return 0;
}

int vsock_backend_main(int argc, char **argv)
{
    struct backend_args a = {0};
    int r = parse_args(argc, argv, &a);
    if (r != 0)
        return r;
    if (a.help) {
        fputs(usage_text, stdout);
        return 0;
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    sd_event *e = NULL;
    struct vsock_dev *d = NULL;
    r = sd_event_new(&e);
    if (r >= 0)
        r = sd_event_add_signal(e, NULL, SIGTERM, NULL, NULL);
    if (r >= 0)
        r = sd_event_add_signal(e, NULL, SIGINT, NULL, NULL);
    if (r < 0) {
        log_error(STAGE, "event loop: %s", strerror(-r));
        sd_event_unref(e);
        return 1;
    }
    struct vsock_dev_config cfg = {
        .guest_cid = a.cid, .uds_path = a.uds, .vhost_user_path = a.socket};
    r = vsock_dev_new(e, &cfg, &d);
    if (r < 0) {
        log_error(STAGE, "listen on %s and %s: %s", a.socket, a.uds, strerror(-r));
        sd_event_unref(e);
        return 1;
    }
    log_info(STAGE, "listening on %s (guest cid %u, hybrid socket %s)", a.socket, a.cid, a.uds);
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
