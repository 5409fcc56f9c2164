/* `ocvm relay-child`: the host relay in its own sandboxed process; see relay_child_main.h. */
#include "vsock/relay_child_main.h"

#include "common/error.h"
#include "common/log.h"
#include "common/parse.h"
#include "vsock/backend_sandbox.h"
#include "vsock/connect_broker.h"
#include "vsock/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PREFIX "ocvm: relay-child: " /* of its usage errors */
#define STAGE "relay"                /* of its log lines */
#define COMM "ocvm-relay"            /* its process name */

struct child_args {
    struct endpoint targets[RELAY_CHILD_MAX_FORWARDS];
    int fds[RELAY_CHILD_MAX_FORWARDS];
    size_t n;
    int connect_fd, control_fd, stats_fd; /* -1: not given */
    uint64_t held;
    const char *user, *vm;
    struct relay_options o; /* the limits; the rest is set here */
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PREFIX, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

/* FD=TARGET: a listening stream socket (TCP or Unix), and where its clients go. */
static int parse_forward(const char *s, struct child_args *a)
{
    const char *eq = strchr(s, '='), *why;
    if (a->n == RELAY_CHILD_MAX_FORWARDS)
        return usage_error("--forward: more than %d", RELAY_CHILD_MAX_FORWARDS);
    if (!eq || parse_inherited_fd(s, (size_t)(eq - s), &a->fds[a->n]) < 0)
        return usage_error("--forward '%s': expected FD=TARGET, FD 3 or more", s);
    if (endpoint_parse(eq + 1, &a->targets[a->n], &why) < 0)
        return usage_error("--forward '%s': target: %s", s, why);
    int v = 0;
    socklen_t len = sizeof(v);
    if (getsockopt(a->fds[a->n], SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 || v != 1)
        return usage_error("--forward '%s': fd %d is not a listening socket", s, a->fds[a->n]);
    for (size_t i = 0; i < a->n; i++)
        if (a->fds[i] == a->fds[a->n])
            return usage_error("--forward '%s': fd %d is given twice", s, a->fds[i]);
    a->n++;
    return 0;
}

static int parse_fd_option(const char *name, const char *s, int *ret)
{
    if (parse_inherited_fd(s, strlen(s), ret) < 0)
        return usage_error("%s: expected a file descriptor number (3 or more), got '%s'", name, s);
    return 0;
}

static int parse_args(int argc, char **argv, struct child_args *a)
{
    static const struct option opts[] = {
        {"forward", required_argument, NULL, 'f'},
        {"connect-fd", required_argument, NULL, 'K'},
        {"control-fd", required_argument, NULL, 'C'},
        {"stats-fd", required_argument, NULL, 'S'},
        {"held", required_argument, NULL, 'H'},
        {"user", required_argument, NULL, 'W'},
        {"vm", required_argument, NULL, 'V'},
        {"max-connections", required_argument, NULL, 'm'},
        {"connect-timeout-ms", required_argument, NULL, 'c'},
        {"idle-timeout-ms", required_argument, NULL, 'i'},
        {0},
    };
    *a = (struct child_args){.connect_fd = -1, .control_fd = -1, .stats_fd = -1};
    optind = 0;
    opterr = 0;
    int o, r = 0;
    uint32_t v;
    while (r == 0 && (o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        switch (o) {
        case 'f':
            r = parse_forward(optarg, a);
            break;
        case 'K':
            r = parse_fd_option("--connect-fd", optarg, &a->connect_fd);
            break;
        case 'C':
            r = parse_fd_option("--control-fd", optarg, &a->control_fd);
            break;
        case 'S':
            r = parse_fd_option("--stats-fd", optarg, &a->stats_fd);
            break;
        case 'H':
            if (decimal_u32(optarg, strlen(optarg), RELAY_CHILD_MAX_FORWARDS - 1, &v) < 0)
                return usage_error("--held: expected a forward's number, got '%s'", optarg);
            a->held |= UINT64_C(1) << v;
            break;
        case 'W':
            a->user = optarg;
            break;
        case 'm':
        case 'c':
        case 'i':
            if (decimal_u32(optarg, strlen(optarg), INT32_MAX, &v) < 0 || v == 0)
                return usage_error("--%s: expected a number from 1, got '%s'",
                                   o == 'm'   ? "max-connections"
                                   : o == 'c' ? "connect-timeout-ms"
                                              : "idle-timeout-ms",
                                   optarg);
            if (o == 'm')
                a->o.max_connections = v;
            else if (o == 'c')
                a->o.connect_timeout_ms = v;
            else
                a->o.idle_timeout_ms = v;
            break;
        case 'V':
            if (!is_vm_name(optarg))
                return usage_error("--vm: '%s' is not a VM name", optarg);
            a->vm = optarg;
            break;
        default:
            return usage_error("unknown option or missing value: '%s'",
                               argv[optind - 1] ? argv[optind - 1] : "");
        }
    }
    if (r)
        return r;
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (a->n == 0 || a->connect_fd < 0)
        return usage_error("%s", "--forward (at least one) and --connect-fd are required");
    if (a->n < 64 && a->held >> a->n)
        return usage_error("--held: forward %u does not exist (%zu given)",
                           (unsigned)(63 - __builtin_clzll(a->held)), a->n);
    return 0;
}

/* At most this many target sockets asked for and not answered: their requests and replies fit
 * the pair's buffers, so neither side ever finds it full (the broker drops a reply it cannot
 * send at once). The rest wait here, in order. */
enum { MAX_ASKED = 64 };

struct asked {
    uint32_t seq;
    uint64_t token;
};

struct waiting {
    uint32_t key;
    uint64_t token;
    struct waiting *next;
};

struct child {
    struct relay *relay;
    struct child_args *a;
    struct connect_broker_client broker;
    struct asked asked[MAX_ASKED];
    size_t n_asked;
    struct waiting *wait_head, *wait_tail;
};

static bool same_endpoint(const struct endpoint *x, const struct endpoint *y)
{
    return x->kind == y->kind && x->port == y->port && x->cid == y->cid &&
           strcmp(x->host, y->host) == 0 && strcmp(x->path, y->path) == 0;
}

static int send_ask(struct child *c, uint32_t key, uint64_t token)
{
    uint32_t seq;
    int r = connect_broker_send(&c->broker, key, &seq);
    if (r < 0)
        return r;
    c->asked[c->n_asked++] = (struct asked){.seq = seq, .token = token};
    return 0;
}

/* The relay's connect: the broker opens forward K's target, K the first forward with TARGET;
 * the answer comes to on_broker(). */
static int broker_connect(void *userdata, const struct endpoint *target, uint64_t token)
{
    struct child *c = userdata;
    size_t k = 0;
    while (k < c->a->n && !same_endpoint(&c->a->targets[k], target))
        k++;
    if (k == c->a->n)
        return -EINVAL;
    if (c->n_asked < MAX_ASKED && !c->wait_head)
        return send_ask(c, (uint32_t)k, token);
    struct waiting *w = malloc(sizeof(*w));
    if (!w)
        return -ENOMEM;
    *w = (struct waiting){.key = (uint32_t)k, .token = token};
    if (c->wait_tail)
        c->wait_tail->next = w;
    else
        c->wait_head = w;
    c->wait_tail = w;
    return 0;
}

/* The broker's answers, to the relay; then the waiting requests, as room is made. */
static void on_broker(void *userdata)
{
    struct child *c = userdata;
    uint32_t seq;
    int fd, error, r;
    while ((r = connect_broker_next(&c->broker, &seq, &fd, &error)) > 0) {
        size_t i = 0;
        while (i < c->n_asked && c->asked[i].seq != seq)
            i++;
        if (i == c->n_asked) { /* never asked: a broker gone wrong */
            if (fd >= 0)
                close(fd);
            continue;
        }
        uint64_t token = c->asked[i].token;
        c->asked[i] = c->asked[--c->n_asked];
        relay_connect_done(c->relay, token, fd, error);
    }
    if (r < 0) {
        log_info(STAGE, "the supervisor is gone (%s): stopping", strerror(-r));
        _exit(0);
    }
    while (c->wait_head && c->n_asked < MAX_ASKED) {
        struct waiting *w = c->wait_head;
        if (!(c->wait_head = w->next))
            c->wait_tail = NULL;
        if ((r = send_ask(c, w->key, w->token)) < 0)
            relay_connect_done(c->relay, w->token, -1, r);
        free(w);
    }
}

static void apply_held(struct child *c, uint64_t held)
{
    for (size_t i = 0; i < c->a->n; i++) {
        int r = relay_hold_listener(c->relay, c->a->fds[i], held >> i & 1);
        if (r < 0)
            log_warning(STAGE, "%s forward %zu: %s", held >> i & 1 ? "hold" : "release", i,
                        strerror(-r));
    }
}

/* The supervisor holds or releases listeners; when it is gone, so is this relay. */
static void on_control(void *userdata)
{
    struct child *c = userdata;
    struct relay_child_control m;
    ssize_t n = recv(c->a->control_fd, &m, sizeof(m), MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n == 0 || n < 0) {
        log_info(STAGE, "the supervisor is gone: stopping");
        _exit(0);
    }
    if (n != sizeof(m)) {
        log_warning(STAGE, "control: a message of %zd bytes ignored", n);
        return;
    }
    apply_held(c, m.held);
}

/* The page the counters go to: S, a memfd (mapped shared), or none. */
static int map_stats(int fd, struct relay_stats_page **ret)
{
    struct stat st;
    *ret = NULL;
    if (fd < 0)
        return 0;
    if (fstat(fd, &st) < 0)
        return negative_errno();
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size < sizeof(struct relay_stats_page))
        return -EINVAL;
    void *p =
        mmap(NULL, sizeof(struct relay_stats_page), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return negative_errno();
    close(fd);
    *ret = p;
    return 0;
}

/* Gives up what the relay does not need (backend_sandbox.h, the relay's list), before it
 * accepts anyone. */
static int sandbox(const struct child_args *a)
{
    (void)prctl(PR_SET_NAME, COMM);
    struct backend_sandbox sb = {.user = a->user, .relay = true};
    return backend_sandbox_enter_logged(&sb, STAGE);
}

int relay_child_main(int argc, char **argv)
{
    struct child_args a;
    int r = parse_args(argc, argv, &a);
    if (r != 0)
        return r;
    if (a.vm)
        log_set_vm(a.vm);
    struct child c = {.a = &a, .broker = {.fd = a.connect_fd}};
    struct relay_stats_page *page;
    if ((r = map_stats(a.stats_fd, &page)) < 0) {
        log_error(STAGE, "--stats-fd %d: %s", a.stats_fd,
                  r == -EINVAL ? "not a file of a page or more" : strerror(-r));
        return 1;
    }
    /* two fds per connection, and some to spare: no more, so that a relay taken over cannot
     * hold the parent's sockets by the million */
    relay_raise_fd_limit();
    size_t max = a.o.max_connections ? a.o.max_connections : 4096;
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_max > 2 * max + 128) {
        nofile.rlim_cur = nofile.rlim_max = 2 * max + 128;
        (void)setrlimit(RLIMIT_NOFILE, &nofile);
    }
    struct relay_options o = a.o;
    o.log_stage = STAGE;
    o.connect = broker_connect;
    o.connect_userdata = &c;
    o.connect_sends_hybrid_request = true; /* the supervisor names the guest port */
    o.reset_if_killed = true;
    o.publish = page;
    if ((r = relay_new(&o, &c.relay)) < 0) {
        log_error(STAGE, "%s", strerror(-r));
        return 1;
    }
    for (size_t i = 0; i < a.n && r >= 0; i++) {
        int fd = a.fds[i];
        a.fds[i] = -1; /* the relay owns it now, even on failure */
        if ((r = relay_add_forward_fd(c.relay, fd, &a.targets[i])) >= 0)
            a.fds[i] = fd;
    }
    if (r >= 0)
        r = relay_watch_fd(c.relay, a.connect_fd, on_broker, &c);
    if (r >= 0 && a.control_fd >= 0)
        r = relay_watch_fd(c.relay, a.control_fd, on_control, &c);
    if (r < 0) {
        log_error(STAGE, "listeners: %s", strerror(-r));
        relay_free(c.relay);
        return 1;
    }
    apply_held(&c, a.held);
    if ((r = relay_prepare_run(c.relay)) < 0) { /* no signal call once sandboxed */
        log_error(STAGE, "signals: %s", strerror(-r));
        relay_free(c.relay);
        return 1;
    }
    bool drops_user = a.user && geteuid() == 0;
    if (sandbox(&a) < 0) {
        relay_free(c.relay);
        return 1;
    }
    log_info(STAGE, "relaying %zu listener%s%s%s", a.n, a.n == 1 ? "" : "s",
             drops_user ? " as " : "", drops_user ? a.user : "");
    r = relay_run(c.relay);
    relay_free(c.relay);
    for (struct waiting *w = c.wait_head, *next; w; w = next) {
        next = w->next;
        free(w);
    }
    if (r < 0) {
        log_error(STAGE, "%s", strerror(-r));
        return 1;
    }
    return 0;
}
