#include "launcher/vsock_host.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "launcher/runtime_dir.h"
#include "launcher/socket_activation.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

struct vsock_host {
    struct backend_child *backend; /* user backend, or NULL */
    struct relay_child *relay;     /* the host relay, a sandboxed child */
    struct guest_notify *notify;
    struct endpoint gateway;
    int gateway_fd; /* the listener systemd passed (socket activation), the relay's; or -1 */
    char *uds_path;
    guest_notify_fn on_notify;
    void *userdata;
};

/* A socket-activated gateway listener accepts only while the guest is up: from its READY to its
 * QEMU's exit. Meanwhile clients wait in the backlog, as they did before ocvm started. */
static void hold_gateway(struct vsock_host *h, bool hold)
{
    if (h->gateway_fd < 0)
        return;
    int r = relay_child_hold(h->relay, h->gateway_fd, hold);
    if (r < 0)
        log_msg(LOG_WARNING, "relay", "%s the gateway listener %s:%u: %s",
                hold ? "hold" : "release", h->gateway.host, h->gateway.port, strerror(-r));
}

static void on_guest_notify(const struct guest_notify_msg *m, void *userdata)
{
    struct vsock_host *h = userdata;
    if (m->ready)
        hold_gateway(h, false);
    h->on_notify(m, h->userdata);
}

/* Where host-initiated connections to guest PORT go, for this backend. */
static void guest_target(const struct vsock_host *h, const struct vm_config *c,
                         enum vsock_backend backend, uint16_t port, struct endpoint *ret)
{
    *ret = (struct endpoint){.port = port};
    if (backend == VSOCK_BACKEND_USER) {
        ret->kind = ENDPOINT_HYBRID;
        snprintf(ret->path, sizeof(ret->path), "%s", h->uds_path);
    } else {
        ret->kind = ENDPOINT_VSOCK;
        ret->cid = c->vsock.guest_cid;
    }
}

/* Where guest-initiated connections to host PORT arrive: PATH_PORT (user) or vsock (kernel). */
static int host_listener(const struct vsock_host *h, enum vsock_backend backend, unsigned port,
                         int *ret_fd)
{
    if (backend == VSOCK_BACKEND_USER) {
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s_%u", h->uds_path, port) < 0)
            return -ENOMEM;
        return runtime_dir_listen(path, ret_fd);
    }
    struct endpoint e = {
        .kind = ENDPOINT_VSOCK, .cid = ENDPOINT_VSOCK_CID_ANY, .port = (uint16_t)port};
    return endpoint_socket_listen(&e, ret_fd);
}

/* A listener on LISTEN (tcp or unix) for the relay, whose clients go to TARGET. */
static int add_forward(struct vsock_host *h, const struct endpoint *listen,
                       const struct endpoint *target)
{
    int fd;
    int r = endpoint_socket_listen(listen, &fd);
    return r < 0 ? r : relay_child_add_forward(h->relay, fd, target);
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        error_setf(error, r, __VA_ARGS__);                                                         \
        goto fail;                                                                                 \
    } while (0)

/* The user backend: a sandboxed child, started now (see backend_child.h). */
static int start_backend(struct vsock_host *h, sd_event *e, const struct vm_config *c,
                         const struct vsock_host_options *o, char **error)
{
    _cleanup_free_ char *vhost = runtime_file_path(o->runtime_dir, RUNTIME_VHOST_USER_VSOCK);
    if (!vhost)
        return -ENOMEM;
    struct backend_child_config bc = {.vm_name = c->name,
                                      .guest_cid = c->vsock.guest_cid,
                                      .vhost_user_path = vhost,
                                      .uds_path = h->uds_path,
                                      .user = o->backend_user};
    int r = backend_child_new(e, &bc, o->on_backend_exit, o->userdata, &h->backend);
    if (r < 0 || (r = backend_child_start(h->backend)) < 0)
        return error_setf(error, r, "vsock backend on %s: %s", vhost, strerror(-r));
    return 0;
}

int vsock_host_new(sd_event *e, const struct vm_config *c, const struct vsock_host_options *o,
                   struct vsock_host **ret, char **error)
{
    *error = NULL;
    struct vsock_host *h = calloc(1, sizeof(*h));
    int r = -ENOMEM, fd = -1;
    const char *why;
    enum vsock_backend backend = o->backend;
    if (!h || !(h->uds_path = runtime_file_path(o->runtime_dir, RUNTIME_HYBRID_VSOCK))) {
        free(h);
        return -ENOMEM;
    }
    h->gateway_fd = -1;
    h->on_notify = o->on_notify;
    h->userdata = o->userdata;
    /* the child inherits the fd limit: raise it first */
    relay_raise_fd_limit();
    if (backend == VSOCK_BACKEND_USER && (r = start_backend(h, e, c, o, error)) < 0)
        goto fail;
    if ((r = host_listener(h, backend, GUEST_NOTIFY_PORT, &fd)) < 0)
        FAIL("listen for the guest's READY on port %u: %s", GUEST_NOTIFY_PORT, strerror(-r));
    r = guest_notify_new(e, fd, on_guest_notify, h, &h->notify);
    if (r < 0)
        FAIL("guest READY listener: %s", strerror(-r));
    /* a gateway client costs two fds in the relay (its socket, the one to the backend or the
     * kernel's vsock): the relay's default */
    /* the relay opens no file: without a VM user (QEMU as root, unsafe) it is nobody */
    const char *relay_user = o->backend_user ? o->backend_user : geteuid() == 0 ? "nobody" : NULL;
    if ((r = relay_child_new(e, c->name, relay_user, NULL, &h->relay)) < 0)
        FAIL("relay: %s", strerror(-r));
    h->gateway.kind = ENDPOINT_TCP;
    if (endpoint_parse_hostport(c->gateway.host_listen, h->gateway.host, &h->gateway.port, &why) <
        0) {
        r = -EINVAL;
        FAIL("gateway.host_listen \"%s\": %s", c->gateway.host_listen, why);
    }
    struct endpoint target;
    guest_target(h, c, backend, c->gateway.guest_port, &target);
    if ((r = socket_activation_take("gateway.host_listen", c->gateway.host_listen, &fd, error)) < 0)
        goto fail;
    if (r > 0) { /* held until the guest's READY (hold_gateway) */
        if ((r = relay_child_add_forward(h->relay, fd, &target)) < 0 ||
            (r = relay_child_hold(h->relay, fd, true)) < 0)
            FAIL("gateway.host_listen %s (from systemd): %s", c->gateway.host_listen, strerror(-r));
        h->gateway_fd = fd;
        log_msg(LOG_INFO, "relay",
                "gateway.host_listen %s: the socket systemd passed (fd %d); its clients wait in "
                "the backlog until the guest is ready",
                c->gateway.host_listen, fd);
    } else if ((r = add_forward(h, &h->gateway, &target)) < 0) {
        FAIL("gateway.host_listen %s: %s", c->gateway.host_listen, strerror(-r));
    }
    for (size_t i = 0; i < c->n_forwards; i++) {
        const struct vm_forward *f = &c->forwards[i];
        struct endpoint ep;
        if (f->to == FORWARD_TO_GUEST) {
            if (endpoint_parse(f->listen, &ep, &why) < 0) {
                r = -EINVAL;
                FAIL("forwards[%zu].listen \"%s\": %s", i, f->listen, why);
            }
            guest_target(h, c, backend, f->guest_port, &target);
            if ((r = add_forward(h, &ep, &target)) < 0)
                FAIL("forwards[%zu].listen %s: %s", i, f->listen, strerror(-r));
        } else {
            if (endpoint_parse(f->connect, &ep, &why) < 0) {
                r = -EINVAL;
                FAIL("forwards[%zu].connect \"%s\": %s", i, f->connect, why);
            }
            if ((r = host_listener(h, backend, f->guest_port, &fd)) < 0 ||
                (r = relay_child_add_forward(h->relay, fd, &ep)) < 0)
                FAIL("forwards[%zu]: listen for guest port %u: %s", i, f->guest_port, strerror(-r));
        }
    }
    if ((r = relay_child_start(h->relay)) < 0)
        FAIL("relay: start its process: %s", strerror(-r));
    *ret = h;
    return 0;
fail:
    vsock_host_free(h);
    return r;
}

void vsock_host_free(struct vsock_host *h)
{
    if (!h)
        return;
    relay_child_free(h->relay);
    guest_notify_free(h->notify);
    backend_child_free(h->backend);
    free(h->uds_path);
    free(h);
}

void vsock_host_get_stats(const struct vsock_host *h, struct vsock_host_stats *ret)
{
    *ret = (struct vsock_host_stats){0};
    relay_child_get_stats(h->relay, &ret->relay, &ret->relay_child);
    if (h->backend)
        backend_child_get_status(h->backend, &ret->backend);
}

static void fill_child(struct vm_child_state *dst, const struct child_proc_status *src)
{
    dst->pid = src->pid;
    dst->restarts = src->restarts;
    snprintf(dst->last_exit, sizeof(dst->last_exit), "%s", src->last_exit);
}

bool vsock_host_fill_state(const struct vsock_host *h, struct vm_state *st)
{
    struct vsock_host_stats x;
    vsock_host_get_stats(h, &x);
    struct vm_relay_figures relay = st->relay;
    struct vm_child_state backend = st->vsock_backend, host_relay = st->host_relay;
    st->relay = (struct vm_relay_figures){
        .open = x.relay.open,
        .accepted = x.relay.accepted,
        .bytes_to_guest = x.relay.bytes_to_target,
        .bytes_to_host = x.relay.bytes_to_client,
        .errors = x.relay.connect_failed + x.relay.timeouts + x.relay.refused_limit,
    };
    fill_child(&st->vsock_backend, &x.backend);
    fill_child(&st->host_relay, &x.relay_child);
    return memcmp(&relay, &st->relay, sizeof(relay)) != 0 ||
           memcmp(&backend, &st->vsock_backend, sizeof(backend)) != 0 ||
           memcmp(&host_relay, &st->host_relay, sizeof(host_relay)) != 0;
}

void vsock_host_guest_down(struct vsock_host *h)
{
    hold_gateway(h, true);
}

int vsock_host_start_backend(struct vsock_host *h)
{
    return h->backend ? backend_child_start(h->backend) : 0;
}

const struct endpoint *vsock_host_gateway(const struct vsock_host *h)
{
    return &h->gateway;
}
