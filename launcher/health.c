#include "launcher/health.h"

#include "common/clock.h"
#include "vsock/relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

struct health_probe {
    sd_event_source *io, *timer;
    int fd;
    char request[512];
    size_t req_len, req_off;
    char reply[256];
    size_t reply_len;
    health_done_fn done;
    void *userdata;
    char why[128];
};

int health_parse_status(const char *buf, size_t len)
{
    /* "HTTP/1.x NNN " */
    if (len < 13 || strncmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
        buf[8] != ' ')
        return -EBADMSG;
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return -EBADMSG;
        code = code * 10 + (buf[i] - '0');
    }
    if (buf[12] != ' ' && buf[12] != '\r')
        return -EBADMSG;
    return code;
}

static void finish(struct health_probe *p, bool ok, const char *why)
{
    p->io = sd_event_source_disable_unref(p->io);
    p->timer = sd_event_source_disable_unref(p->timer);
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    if (why && why != p->why)
        snprintf(p->why, sizeof(p->why), "%s", why);
    health_done_fn done = p->done;
    p->done = NULL;
    if (done)
        done(p, ok, ok ? NULL : p->why, p->userdata);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    struct health_probe *p = userdata;
    if (p->req_off < p->req_len) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err) {
            snprintf(p->why, sizeof(p->why), "connect: %s", strerror(err));
            finish(p, false, p->why);
            return 0;
        }
        ssize_t n = send(fd, p->request + p->req_off, p->req_len - p->req_off, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) {
            snprintf(p->why, sizeof(p->why), "send: %s", strerror(errno));
            finish(p, false, p->why);
            return 0;
        }
        if (n > 0)
            p->req_off += (size_t)n;
        if (p->req_off == p->req_len)
            sd_event_source_set_io_events(s, EPOLLIN);
        return 0;
    }
    ssize_t n = recv(fd, p->reply + p->reply_len, sizeof(p->reply) - 1 - p->reply_len, 0);
    if (n < 0 && errno == EAGAIN)
        return 0;
    if (n > 0)
        p->reply_len += (size_t)n;
    if (p->reply_len >= 13 || n <= 0) {
        int code = health_parse_status(p->reply, p->reply_len);
        if (code >= 200 && code < 300) {
            finish(p, true, NULL);
        } else if (code > 0) {
            snprintf(p->why, sizeof(p->why), "the gateway answered HTTP %d", code);
            finish(p, false, p->why);
        } else if (n < 0 && p->reply_len == 0) { /* a reset: the chain was cut somewhere */
            snprintf(p->why, sizeof(p->why), "no reply: %s", strerror(errno));
            finish(p, false, p->why);
        } else {
            finish(p, false,
                   n == 0 && p->reply_len == 0 ? "connection closed without a reply"
                                               : "not an HTTP reply");
        }
    }
    return 0;
}

static int on_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
    finish(userdata, false, "no reply in time");
    return 0;
}

int health_probe_start(sd_event *e, const struct endpoint *target, const char *path,
                       unsigned timeout_ms, health_done_fn done, void *userdata,
                       struct health_probe **ret)
{
    struct health_probe *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    *p = (struct health_probe){.fd = -1, .done = done, .userdata = userdata};
    if (target->kind != ENDPOINT_TCP && target->kind != ENDPOINT_UNIX) {
        free(p);
        return -EAFNOSUPPORT;
    }
    int n = 0, r;
    int m = snprintf(p->request + n, sizeof(p->request) - (size_t)n,
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nUser-Agent: ocvm-health\r\n"
                     "Connection: close\r\n\r\n",
                     path);
    if (m < 0 || (size_t)(n + m) >= sizeof(p->request)) {
        free(p);
        return -ENAMETOOLONG;
    }
    p->req_len = (size_t)(n + m);
    bool in_progress;
    if ((r = endpoint_socket_connect(target, &p->fd, &in_progress)) < 0 ||
        (r = sd_event_add_io(e, &p->io, p->fd, EPOLLOUT, on_io, p)) < 0 ||
        (r = sd_event_add_time_relative(e, &p->timer, CLOCK_MONOTONIC, (uint64_t)timeout_ms * 1000u,
                                        0, on_timeout, p)) < 0) {
        p->done = NULL;
        health_probe_free(p);
        return r;
    }
    *ret = p;
    return 0;
}

void health_probe_free(struct health_probe *p)
{
    if (!p)
        return;
    p->done = NULL;
    finish(p, false, NULL);
    free(p);
}

struct health_wait {
    sd_event *event;
    struct endpoint target;
    char *path;
    unsigned interval_ms, timeout_ms;
    uint64_t deadline;
    struct health_probe *probe;
    sd_event_source *timer;
    health_wait_fn done;
    void *userdata;
    char why[128];
};

static void wait_probe(struct health_wait *w);

static int on_wait_timer(sd_event_source *src, uint64_t usec, void *userdata)
{
    struct health_wait *w = userdata;
    w->timer = sd_event_source_disable_unref(w->timer);
    wait_probe(w);
    return 0;
}

/* The last probe failed (w->why says why): again after the interval, or give up. */
static void wait_again(struct health_wait *w)
{
    if ((w->deadline && clock_usec(CLOCK_MONOTONIC) >= w->deadline) ||
        sd_event_add_time_relative(w->event, &w->timer, CLOCK_MONOTONIC,
                                   (uint64_t)w->interval_ms * 1000u, 0, on_wait_timer, w) < 0)
        w->done(false, w->why, w->userdata);
}

static void on_wait_probe(struct health_probe *p, bool ok, const char *why, void *userdata)
{
    struct health_wait *w = userdata;
    snprintf(w->why, sizeof(w->why), "%s", ok ? "" : why); /* WHY may live in the probe */
    health_probe_free(w->probe); /* safe: the probe is finished before it calls back */
    w->probe = NULL;
    if (ok)
        w->done(true, "", w->userdata);
    else
        wait_again(w);
}

static void wait_probe(struct health_wait *w)
{
    int r = health_probe_start(w->event, &w->target, w->path, w->timeout_ms, on_wait_probe, w,
                               &w->probe);
    if (r < 0) {
        snprintf(w->why, sizeof(w->why), "%s", strerror(-r));
        wait_again(w);
    }
}

int health_wait_start(sd_event *e, const struct endpoint *target, const char *path,
                      unsigned interval_ms, unsigned timeout_ms, uint64_t deadline_usec,
                      health_wait_fn done, void *userdata, struct health_wait **ret)
{
    struct health_wait *w = calloc(1, sizeof(*w));
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return -ENOMEM;
    }
    w->event = e;
    w->target = *target;
    w->interval_ms = interval_ms;
    w->timeout_ms = timeout_ms;
    w->deadline = deadline_usec;
    w->done = done;
    w->userdata = userdata;
    *ret = w;
    wait_probe(w); /* may call DONE: *ret is set first */
    return 0;
}

const char *health_wait_why(const struct health_wait *w)
{
    return w ? w->why : "";
}

void health_wait_free(struct health_wait *w)
{
    if (!w)
        return;
    health_probe_free(w->probe);
    sd_event_source_disable_unref(w->timer);
    free(w->path);
    free(w);
}
