/* The host relay as a sandboxed child of the supervisor; see relay_child.h. */
#include "launcher/relay_child.h"

#include "launcher/child_proc.h"

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "launcher/argv.h"
#include "vsock/connect_broker.h"
#include "vsock/endpoint_socket.h"
#include "vsock/relay_child_main.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

/* A child is started again RESPAWN_MS after it died; one that died within STEADY_MS of its start
 * waits twice as long as the last, up to RESPAWN_MAX_MS: a relay that cannot start does not
 * fill the log. */
enum { RESPAWN_MS = 1000, RESPAWN_MAX_MS = 30000, STEADY_MS = 10000 };

/* The child's fixed fd layout: its end of the broker, of the control socket, the counters'
 * memfd, then the listeners in order. */
enum { CHILD_BROKER_FD = 3, CHILD_CONTROL_FD = 4, CHILD_STATS_FD = 5, CHILD_FIRST_FD = 6 };

struct forward {
    int fd;
    struct endpoint target;
};

struct relay_child {
    struct child_proc proc; /* `ocvm relay-child` */
    char *vm_name, *user;
    struct relay_options limits;
    struct forward forwards[RELAY_CHILD_MAX_FORWARDS];
    size_t n;
    uint64_t held; /* bit i: forwards[i] is held */
    int stats_fd, control;
    struct relay_stats_page *page; /* the running child's counters */
    struct relay_stats past;       /* the dead children's, added up */
    sd_event_source *broker_src, *respawn_src;
    uint64_t started_us; /* the running child's start (CLOCK_MONOTONIC) */
    unsigned respawn_ms; /* the wait before the next start */
    bool stopping;
};

/* The child asks for forward KEY's target: connected here, where everything is reachable. */
static int connect_target(void *userdata, uint32_t key, int *ret_fd)
{
    struct relay_child *c = userdata;
    bool in_progress;
    if (key >= c->n)
        return -EINVAL;
    const struct endpoint *t = &c->forwards[key].target;
    int fd = -1, r = endpoint_socket_connect(t, &fd, &in_progress);
    if (r < 0 || t->kind != ENDPOINT_HYBRID) {
        *ret_fd = fd;
        return r;
    }
    /* the guest port is named here, not by the relay: a relay taken over could otherwise
     * reach any port the guest listens on. A Unix connect is done at once, or refused
     * (EAGAIN: the backend's backlog is full). */
    if (in_progress)
        r = -EAGAIN;
    else
        r = endpoint_socket_hybrid_request(fd, t->port);
    if (r < 0) {
        close(fd);
        return r;
    }
    *ret_fd = fd;
    return 0;
}

static int on_broker(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    struct relay_child *c = userdata;
    if (connect_broker_serve(fd, connect_target, c) < 0) {
        /* the child is gone, or broke the protocol: a relay that cannot reach its targets is
         * no use, and the next one gets a new broker */
        c->broker_src = sd_event_source_disable_unref(c->broker_src);
        if (c->proc.pid > 0)
            kill(c->proc.pid, SIGKILL);
    }
    return 0;
}

static int on_respawn(sd_event_source *s, uint64_t usec, void *userdata)
{
    struct relay_child *c = userdata;
    c->respawn_src = sd_event_source_disable_unref(c->respawn_src);
    int r = relay_child_start(c);
    if (r < 0) {
        log_error("relay", "start the relay again: %s; trying again in %d ms", strerror(-r),
                  RESPAWN_MAX_MS);
        (void)sd_event_add_time_relative(c->proc.event, &c->respawn_src, CLOCK_MONOTONIC,
                                         RESPAWN_MAX_MS * 1000u, 0, on_respawn, c);
    } else {
        log_notice("relay", "the relay started again (pid %d)", (int)c->proc.pid);
    }
    return 0;
}

/* Adds FROM's counts to TO's; what is open now and the rings held are not counts. */
static void add_counters(struct relay_stats *to, const struct relay_stats *from)
{
    to->accepted += from->accepted;
    to->refused_limit += from->refused_limit;
    to->connect_failed += from->connect_failed;
    to->timeouts += from->timeouts;
    to->bytes_to_target += from->bytes_to_target;
    to->bytes_to_client += from->bytes_to_client;
}

/* Its connections are gone with it; its counters join the past ones (but what was open). */
static void on_child_exit(struct child_proc *p, pid_t pid, const char *how)
{
    struct relay_child *c = p->owner;
    c->broker_src = sd_event_source_disable_unref(c->broker_src);
    closep(&c->control);
    struct relay_stats last;
    relay_stats_page_read(c->page, &last);
    add_counters(&c->past, &last);
    memset(c->page, 0, sizeof(*c->page));
    if (c->stopping)
        return;
    bool steady = clock_usec(CLOCK_MONOTONIC) - c->started_us >= STEADY_MS * 1000u;
    c->respawn_ms = steady || !c->respawn_ms             ? RESPAWN_MS
                    : c->respawn_ms * 2 > RESPAWN_MAX_MS ? RESPAWN_MAX_MS
                                                         : c->respawn_ms * 2;
    log_warning("relay",
                "the relay (pid %d) %s; starting it again in %u ms (clients wait in "
                "the backlog meanwhile)",
                (int)pid, how, c->respawn_ms);
    int r = sd_event_add_time_relative(p->event, &c->respawn_src, CLOCK_MONOTONIC,
                                       c->respawn_ms * 1000u, 0, on_respawn, c);
    if (r < 0)
        log_error("relay", "cannot start the relay again: %s", strerror(-r));
}

static int child_argv(const struct relay_child *c, struct argv *a)
{
    char target[192];
    argv_add(a, "ocvm");
    argv_add(a, "relay-child");
    for (size_t i = 0; i < c->n; i++)
        argv_addf(a, "--forward=%d=%s", CHILD_FIRST_FD + (int)i,
                  endpoint_format(&c->forwards[i].target, target, sizeof(target)));
    for (size_t i = 0; i < c->n; i++)
        if (c->held >> i & 1)
            argv_addf(a, "--held=%zu", i);
    argv_addf(a, "--connect-fd=%d", CHILD_BROKER_FD);
    argv_addf(a, "--control-fd=%d", CHILD_CONTROL_FD);
    argv_addf(a, "--stats-fd=%d", CHILD_STATS_FD);
    if (c->limits.max_connections)
        argv_addf(a, "--max-connections=%zu", c->limits.max_connections);
    if (c->limits.connect_timeout_ms)
        argv_addf(a, "--connect-timeout-ms=%u", c->limits.connect_timeout_ms);
    if (c->limits.idle_timeout_ms)
        argv_addf(a, "--idle-timeout-ms=%u", c->limits.idle_timeout_ms);
    if (c->user) {
        argv_add(a, "--user");
        argv_add(a, c->user);
    }
    if (c->vm_name) {
        argv_add(a, "--vm");
        argv_add(a, c->vm_name);
    }
    return argv_error(a);
}

static int spawn(struct relay_child *c, char **argv)
{
    int broker[2] = {-1, -1}, control[2] = {-1, -1};
    int fds[3 + RELAY_CHILD_MAX_FORWARDS];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, broker) < 0)
        return negative_errno();
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, control) < 0) {
        int r = negative_errno();
        close(broker[0]);
        close(broker[1]);
        return r;
    }
    fds[0] = broker[1];
    fds[1] = control[1];
    fds[2] = c->stats_fd;
    for (size_t i = 0; i < c->n; i++)
        fds[3 + i] = c->forwards[i].fd;
    int r = child_proc_spawn(&c->proc, argv, fds, 3 + c->n);
    close(broker[1]);
    close(control[1]);
    if (r < 0) {
        close(broker[0]);
        close(control[0]);
        return r;
    }
    fcntl(broker[0], F_SETFL, O_NONBLOCK);
    if ((r = sd_event_add_io(c->proc.event, &c->broker_src, broker[0], EPOLLIN, on_broker, c)) <
        0) {
        close(broker[0]);
        close(control[0]);
        child_proc_stop(&c->proc);
        return r;
    }
    sd_event_source_set_io_fd_own(c->broker_src, true);
    c->control = control[0];
    c->started_us = clock_usec(CLOCK_MONOTONIC);
    return 0;
}

int relay_child_start(struct relay_child *c)
{
    if (c->proc.pid > 0)
        return 0;
    c->respawn_src = sd_event_source_disable_unref(c->respawn_src);
    struct argv a;
    argv_init(&a);
    int r = child_argv(c, &a);
    if (r == 0)
        r = spawn(c, a.v);
    argv_done(&a);
    return r;
}

int relay_child_hold(struct relay_child *c, int fd, bool hold)
{
    size_t i = 0;
    while (i < c->n && c->forwards[i].fd != fd)
        i++;
    if (i == c->n)
        return -EBADF;
    uint64_t bit = UINT64_C(1) << i;
    c->held = hold ? c->held | bit : c->held & ~bit;
    if (c->control < 0) /* none runs: the next one starts so (--held) */
        return 0;
    struct relay_child_control m = {.held = c->held};
    ssize_t n = send(c->control, &m, sizeof(m), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
        return 0; /* it died, not yet reaped: the next one starts so (--held) */
    if (n != sizeof(m))
        return n < 0 ? negative_errno() : -EIO;
    return 0;
}

int relay_child_add_forward(struct relay_child *c, int fd, const struct endpoint *target)
{
    if (c->n == RELAY_CHILD_MAX_FORWARDS || c->proc.started) {
        close(fd);
        return c->proc.started ? -EBUSY : -E2BIG;
    }
    c->forwards[c->n++] = (struct forward){.fd = fd, .target = *target};
    return 0;
}

int relay_child_new(sd_event *e, const char *vm_name, const char *user,
                    const struct relay_options *limits, struct relay_child **ret)
{
    struct relay_child *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    if (limits)
        c->limits = (struct relay_options){.max_connections = limits->max_connections,
                                           .connect_timeout_ms = limits->connect_timeout_ms,
                                           .idle_timeout_ms = limits->idle_timeout_ms};
    c->control = -1;
    c->stats_fd = memfd_create("ocvm-relay-stats", MFD_CLOEXEC);
    int r = c->stats_fd < 0 ? negative_errno() : 0;
    if (r == 0 && ftruncate(c->stats_fd, sizeof(*c->page)) < 0)
        r = negative_errno();
    if (r == 0) {
        void *p = mmap(NULL, sizeof(*c->page), PROT_READ | PROT_WRITE, MAP_SHARED, c->stats_fd, 0);
        if (p == MAP_FAILED)
            r = negative_errno();
        else
            c->page = p;
    }
    if (r == 0)
        r = child_proc_init(&c->proc, e, "relay", on_child_exit, c);
    if (r == 0 &&
        ((vm_name && !(c->vm_name = strdup(vm_name))) || (user && !(c->user = strdup(user)))))
        r = -ENOMEM;
    if (r < 0) {
        relay_child_free(c);
        return r;
    }
    *ret = c;
    return 0;
}

void relay_child_free(struct relay_child *c)
{
    if (!c)
        return;
    c->stopping = true;
    c->respawn_src = sd_event_source_disable_unref(c->respawn_src);
    c->broker_src = sd_event_source_disable_unref(c->broker_src);
    if (c->proc.event)
        child_proc_done(&c->proc);
    closep(&c->control);
    for (size_t i = 0; i < c->n; i++)
        close(c->forwards[i].fd);
    if (c->page)
        munmap(c->page, sizeof(*c->page));
    if (c->stats_fd >= 0)
        close(c->stats_fd);
    free(c->vm_name);
    free(c->user);
    free(c);
}

void relay_child_get_stats(const struct relay_child *c, struct relay_stats *ret,
                           struct child_proc_status *status)
{
    struct relay_stats now;
    relay_stats_page_read(c->page, &now);
    *ret = c->past;
    add_counters(ret, &now);
    ret->open = now.open;
    ret->ring_bytes = now.ring_bytes;
    child_proc_get_status(&c->proc, status);
}

pid_t relay_child_pid(const struct relay_child *c)
{
    return c->proc.pid;
}
