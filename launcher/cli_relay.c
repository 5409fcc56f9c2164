/* `ocvm relay LISTEN CONNECT`: the relay engine on its own, a drop-in for the socat lines
 * `socat TCP-LISTEN:18789,bind=127.0.0.1,fork VSOCK-CONNECT:3:18789` and the reverse. */
#include "launcher/cli.h"

#include "common/log.h"

#include "launcher/relay_child.h"
#include "vsock/relay.h"

#include <signal.h>
#include <systemd/sd-event.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <errno.h>
#include <getopt.h>
#include <string.h>

static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v > max)
        return -EINVAL;
    *ret = v;
    return 0;
}

/* The long name of option C in OPTS (argv may hold "--max-connections=lots"). */
static const char *option_name(const struct option *opts, int c)
{
    for (; opts->name; opts++)
        if (opts->val == c)
            return opts->name;
    return "?";
}

static int on_stop(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
    return sd_event_exit(sd_event_source_get_event(s), 0);
}

/* --sandbox: the listener stays here, the relay runs in a sandboxed child as `ocvm up` runs the
 * host relay (launcher/relay_child.h), and this process connects each target for it. */
static int run_sandboxed(const struct relay_options *o, const struct endpoint *listen,
                         const struct endpoint *target, const char *listen_s, const char *target_s)
{
    sd_event *e = NULL;
    struct relay_child *rc = NULL;
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGCHLD); /* sd-event watches the child through it */
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    int fd, r = sd_event_new(&e);
    if (r >= 0 && (r = sd_event_add_signal(e, NULL, SIGTERM, on_stop, NULL)) >= 0)
        r = sd_event_add_signal(e, NULL, SIGINT, on_stop, NULL);
    if (r >= 0)
        r = relay_child_new(e, NULL, geteuid() == 0 ? "nobody" : NULL, o, &rc);
    if (r < 0) {
        log_error("relay", "%s", strerror(-r));
    } else if ((r = endpoint_socket_listen(listen, &fd)) < 0 ||
               (r = relay_child_add_forward(rc, fd, target)) < 0) {
        log_error("relay", "listen on %s: %s", listen_s, strerror(-r));
    } else if ((r = relay_child_start(rc)) < 0) {
        log_error("relay", "start the sandboxed relay: %s", strerror(-r));
    } else {
        log_info("relay", "%s -> %s (sandboxed child, pid %d)", listen_s, target_s,
                 (int)relay_child_pid(rc));
        r = sd_event_loop(e);
        if (r < 0)
            log_error("relay", "%s", strerror(-r));
    }
    relay_child_free(rc);
    sd_event_unref(e);
    if (listen->kind == ENDPOINT_UNIX)
        unlink(listen->path);
    return r < 0 ? EXIT_FAILED : EXIT_OK;
}

static int verb_relay(int argc, char **argv)
{
    static const struct option opts[] = {
        {"unsafe-listen-any", no_argument, NULL, 'U'},
        {"max-connections", required_argument, NULL, 'm'},
        {"connect-timeout-ms", required_argument, NULL, 'c'},
        {"idle-timeout-s", required_argument, NULL, 'i'},
        {"splice", no_argument, NULL, 's'},
        {"sandbox", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct relay_options o = {.log_stage = "relay"};
    bool any = false, sandbox = false;
    unsigned long v;
    int c;
    optind = 0;
    while ((c = cli_getopt(&cli_verb_relay, argc, argv, ":h", opts)) != -1) {
        switch (c) {
        case 'h':
            return EXIT_OK;
        case 'U':
            any = true;
            break;
        case 's':
            o.splice = true;
            break;
        case 'S':
            sandbox = true;
            break;
        case 'm':
            if (parse_uint(optarg, 1000000, &v) < 0 || v == 0)
                goto bad_value;
            o.max_connections = v;
            break;
        case 'c':
            if (parse_uint(optarg, 3600000, &v) < 0 || v == 0)
                goto bad_value;
            o.connect_timeout_ms = (unsigned)v;
            break;
        case 'i':
            if (parse_uint(optarg, 86400 * 7, &v) < 0)
                goto bad_value;
            o.idle_timeout_ms = (unsigned)(v * 1000);
            break;
        case '?':
            cli_option_error(&cli_verb_relay, "unknown option", argc, argv);
            return EXIT_USAGE;
        default: /* ':', reported */
            return EXIT_USAGE;
        bad_value:
            fprintf(stderr, "ocvm relay: --%s: \"%s\" is not a valid number\n",
                    option_name(opts, c), optarg);
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 2) {
        fprintf(stderr,
                "usage: ocvm relay [--unsafe-listen-any] [--max-connections N] "
                "[--connect-timeout-ms N] [--idle-timeout-s N] [--splice | --sandbox] LISTEN "
                "CONNECT\n");
        return EXIT_USAGE;
    }
    struct endpoint listen, target;
    const char *why;
    if (endpoint_parse(argv[optind], &listen, &why) < 0) {
        fprintf(stderr, "ocvm relay: LISTEN \"%s\": %s\n", argv[optind], why);
        return EXIT_USAGE;
    }
    if (listen.kind == ENDPOINT_HYBRID) {
        fprintf(stderr,
                "ocvm relay: LISTEN \"%s\": cannot listen on a hybrid endpoint "
                "(listen on unix:PATH_PORT instead)\n",
                argv[optind]);
        return EXIT_USAGE;
    }
    if (endpoint_parse(argv[optind + 1], &target, &why) < 0) {
        fprintf(stderr, "ocvm relay: CONNECT \"%s\": %s\n", argv[optind + 1], why);
        return EXIT_USAGE;
    }
    if (listen.kind == ENDPOINT_TCP && !endpoint_is_local(&listen) && !any) {
        fprintf(stderr,
                "ocvm relay: LISTEN \"%s\" is not a loopback address: the gateway would be "
                "reachable from the network (--unsafe-listen-any to do it anyway)\n",
                argv[optind]);
        return EXIT_USAGE;
    }
    if (sandbox && o.splice) {
        fprintf(stderr, "ocvm relay: --splice and --sandbox do not go together (the sandbox "
                        "allows no pipe or splice call)\n");
        return EXIT_USAGE;
    }
    relay_raise_fd_limit();
    if (sandbox)
        return run_sandboxed(&o, &listen, &target, argv[optind], argv[optind + 1]);
    struct relay *r;
    int e = relay_new(&o, &r);
    if (e == 0 && (e = relay_add_forward(r, &listen, &target)) < 0)
        log_error("relay", "listen on %s: %s", argv[optind], strerror(-e));
    else if (e < 0)
        log_error("relay", "%s", strerror(-e));
    if (e == 0) {
        log_info("relay", "%s -> %s", argv[optind], argv[optind + 1]);
        e = relay_run(r);
        if (e < 0)
            log_error("relay", "%s", strerror(-e));
        if (listen.kind == ENDPOINT_UNIX)
            unlink(listen.path);
    }
    relay_free(r);
    return e < 0 ? EXIT_FAILED : EXIT_OK;
}

const struct cli_verb cli_verb_relay = {
    .name = "relay",
    .synopsis = "relay LISTEN CONNECT",
    .summary = "a relay on its own: a drop-in for socat",
    .help = "usage: ocvm relay [OPTIONS] LISTEN CONNECT\n"
            "Accept connections on LISTEN and relay each to CONNECT, both ways, until\n"
            "SIGTERM. Endpoints: tcp:HOST:PORT ([V6] for IPv6), unix:PATH, vsock:CID:PORT;\n"
            "for CONNECT also hybrid:PATH:PORT (a \"CONNECT PORT\" line on a Unix socket).\n"
            "  --unsafe-listen-any     listen on an address that is not loopback\n"
            "  --max-connections N     at most N clients at once (default 4096, or fewer\n"
            "                          when the open file limit is low)\n"
            "  --connect-timeout-ms N  give up reaching CONNECT after N ms (default 5000)\n"
            "  --idle-timeout-s N      close a connection idle for N s (default: never)\n"
            "  --splice                move bytes with splice(2) through a pipe\n"
            "  --sandbox               relay in a child process as `ocvm up` does: no\n"
            "                          capability (as root: user nobody), no_new_privs, a\n"
            "                          seccomp filter; this process keeps the listener,\n"
            "                          connects each target for it, and starts it again\n"
            "                          if it dies\n"
            "  -h, --help              print this help\n"
            "Options may come before or after the endpoints.\n",
    .run = verb_relay,
};
