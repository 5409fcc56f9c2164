/* `ocvm relay LISTEN CONNECT`: the relay engine on its own, a drop-in for the socat lines
 * `socat TCP-LISTEN:18789,bind=127.0.0.1,fork VSOCK-CONNECT:3:18789` and the reverse. */
#include "launcher/cli.h"

#include "common/log.h"

#include "vsock/relay.h"

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

static int verb_relay(int argc, char **argv)
{
    static const struct option opts[] = {
        {"unsafe-listen-any", no_argument, NULL, 'U'},
        {"max-connections", required_argument, NULL, 'm'},
        {"connect-timeout-ms", required_argument, NULL, 'c'},
        {"idle-timeout-s", required_argument, NULL, 'i'},
        {"splice", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct relay_options o = {.log_stage = "relay"};
    bool any = false;
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
                "[--connect-timeout-ms N] [--idle-timeout-s N] [--splice] LISTEN CONNECT\n");
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
    relay_raise_fd_limit();
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
            "  -h, --help              print this help\n"
            "Options may come before or after the endpoints.\n",
    .run = verb_relay,
};
