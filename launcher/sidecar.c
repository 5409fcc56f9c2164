/* What runs beside an ocvm libvirt domain; see sidecar.h. */
#include "launcher/sidecar.h"

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "launcher/health.h"
#include "launcher/net_plan.h"
#include "launcher/notify.h"
#include "launcher/runtime_dir.h"
#include "launcher/secrets.h"
#include "launcher/state.h"
#include "launcher/virtiofsd.h"
#include "launcher/vm_user.h"
#include "launcher/vsock_host.h"
#include "netsetup/netsetup.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

enum { PROBE_INTERVAL_MS = 500, PROBE_TIMEOUT_MS = 3000 };

struct sidecar {
    const struct vm_config *c;
    const struct host_facts *hf;
    const char *user;
    uid_t uid;
    gid_t gid;
    sd_event *event;
    struct runtime_dir rd;
    char *socket_dir, *state_path;
    bool socket_dir_made; /* ours to remove: made after the runtime directory's lock was taken */
    struct netsetup net;
    bool net_up;
    struct virtiofsd_set fsd;
    sd_event_source **fsd_src; /* one child watch per virtiofsd */
    struct vsock_host *vsock;
    struct health_wait *wait; /* probing the gateway after the guest's READY */
    uint64_t ready_at;        /* CLOCK_MONOTONIC µs of the guest's READY */
    struct vm_state state;
};

int sidecar_socket_dir(const char *name, char **ret)
{
    const char *base = getenv("OCVM_LIBVIRT_DIR");
    return asprintf(ret, "%s/%s", base && *base ? base : SIDECAR_SOCKET_BASE, name) < 0 ? -ENOMEM
                                                                                        : 0;
}

int sidecar_host_facts(const struct vm_config *c, struct host_facts *ret)
{
    struct vm_config probe = *c; /* a shallow copy, only read */
    probe.machine.user = NULL;
    const char *key, *why;
    if (host_facts_resolve(&probe, ret, &key, &why) < 0) {
        log_error(NULL, "%s: %s", key, why);
        return -ENODEV;
    }
    return 0;
}

static void save_state(struct sidecar *s, const char *phase)
{
    snprintf(s->state.phase, sizeof(s->state.phase), "%s", phase);
    if (s->vsock)
        vsock_host_fill_state(s->vsock, &s->state);
    int r = state_write(s->state_path, &s->state);
    if (r < 0)
        log_warning(NULL, "write %s: %s", s->state_path, strerror(-r));
}

/* --- QEMU's way to a socket: a hard link in the socket directory, owned by the VM's user --- */

static int expose(struct sidecar *s, const char *socket)
{
    const char *base = strrchr(socket, '/');
    _cleanup_free_ char *link_path = NULL;
    if (!base || asprintf(&link_path, "%s/%s", s->socket_dir, base + 1) < 0)
        return -ENOMEM;
    if ((unlink(link_path) < 0 && errno != ENOENT) || link(socket, link_path) < 0 ||
        chown(link_path, s->uid, s->gid) < 0) {
        int r = negative_errno();
        log_error(NULL, "make %s for QEMU: %s%s", link_path, strerror(-r),
                  r == -EXDEV ? " (the socket and runtime directories must share a filesystem)"
                              : "");
        return r;
    }
    return 0;
}

static int make_socket_dir(struct sidecar *s)
{
    _cleanup_free_ char *base = strdup(s->socket_dir);
    char *slash = base ? strrchr(base, '/') : NULL;
    if (!slash)
        return -ENOMEM;
    *slash = '\0';
    if ((mkdir(base, 0755) < 0 && errno != EEXIST) ||
        (mkdir(s->socket_dir, 0710) < 0 && errno != EEXIST) ||
        chown(s->socket_dir, 0, s->gid) < 0 || chmod(s->socket_dir, 0710) < 0) {
        int r = negative_errno();
        log_error(NULL, "socket directory %s: %s", s->socket_dir, strerror(-r));
        return r;
    }
    s->socket_dir_made = true;
    return 0;
}

/* Removes the links in the socket directory, and the directory. */
static void remove_socket_dir(struct sidecar *s)
{
    _cleanup_free_ char *vsock = runtime_file_path(s->socket_dir, RUNTIME_VHOST_USER_VSOCK);
    if (vsock)
        unlink(vsock);
    for (size_t i = 0; i < s->c->n_shares; i++) {
        _cleanup_free_ char *fs = runtime_virtiofs_socket_path(s->socket_dir, s->c->shares[i].tag);
        if (fs)
            unlink(fs);
    }
    rmdir(s->socket_dir);
}

/* --- virtiofsd: a set per boot --- */

static int start_virtiofsd(struct sidecar *s);

static int on_virtiofsd_exit(sd_event_source *src, const siginfo_t *si, void *userdata)
{
    struct sidecar *s = userdata;
    virtiofsd_reaped(&s->fsd, si->si_pid);
    for (size_t i = 0; i < s->fsd.n; i++)
        if (s->fsd.pids[i] > 0)
            return 0; /* the others still serve their QEMU */
    log_info(NULL, "the virtiofs daemons ended with their QEMU: starting them for the next boot");
    if (start_virtiofsd(s) < 0)
        sd_event_exit(s->event, 1);
    save_state(s, "attached");
    return 0;
}

static void stop_virtiofsd(struct sidecar *s)
{
    for (size_t i = 0; s->fsd_src && i < s->fsd.n; i++)
        sd_event_source_disable_unref(s->fsd_src[i]);
    free(TAKE_PTR(s->fsd_src));
    virtiofsd_stop(&s->fsd);
}

static int start_virtiofsd(struct sidecar *s)
{
    stop_virtiofsd(s);
    _cleanup_free_ char *error = NULL;
    int r = virtiofsd_start(s->c, s->rd.path, s->user, &s->fsd, &error);
    if (r < 0) {
        log_error(NULL, "%s", error ? error : strerror(-r));
        return r;
    }
    if (s->fsd.n && !(s->fsd_src = calloc(s->fsd.n, sizeof(*s->fsd_src))))
        return -ENOMEM;
    for (size_t i = 0; i < s->fsd.n; i++)
        if ((r = sd_event_add_child(s->event, &s->fsd_src[i], s->fsd.pids[i], WEXITED,
                                    on_virtiofsd_exit, s)) < 0)
            return r;
    for (size_t i = 0; i < s->c->n_shares; i++) {
        if (s->c->shares[i].proto != SHARE_VIRTIOFS)
            continue;
        _cleanup_free_ char *sock = runtime_virtiofs_socket_path(s->rd.path, s->c->shares[i].tag);
        if (!sock || (r = expose(s, sock)) < 0)
            return sock ? r : -ENOMEM;
    }
    return 0;
}

/* --- the guest's READY, then the gateway through the chain --- */

static void on_gateway_probed(bool ok, const char *why, void *userdata)
{
    struct sidecar *s = userdata;
    health_wait_free(TAKE_PTR(s->wait));
    if (!ok) {
        log_warning(NULL, "the gateway did not answer %s through the chain within %u s: %s",
                    s->c->gateway.health_path, s->c->timeouts.ready_s, why);
        return;
    }
    uint64_t ms = (clock_usec(CLOCK_MONOTONIC) - s->ready_at) / 1000u;
    log_notice(NULL, "gateway healthy %.2f s after the guest's READY: http://%s/",
               (double)ms / 1000.0, s->c->gateway.host_listen);
    notify_status("guest ready, gateway healthy");
    save_state(s, "ready");
}

static void on_guest_notify(const struct guest_notify_msg *m, void *userdata)
{
    struct sidecar *s = userdata;
    if (*m->status)
        log_info("guest", "%s", m->status);
    if (m->stopping)
        save_state(s, "attached");
    if (!m->ready)
        return;
    log_info(NULL, "guest ready");
    health_wait_free(TAKE_PTR(s->wait));
    s->ready_at = clock_usec(CLOCK_MONOTONIC);
    int r = health_wait_start(s->event, vsock_host_gateway(s->vsock), s->c->gateway.health_path,
                              PROBE_INTERVAL_MS, PROBE_TIMEOUT_MS,
                              s->ready_at + s->c->timeouts.ready_s * 1000000ull, on_gateway_probed,
                              s, &s->wait);
    if (r < 0)
        log_warning(NULL, "probe the gateway: %s", strerror(-r));
}

/* QEMU 7.2 cannot reconnect a vhost-user-vsock device: the running guest's vsock is gone, and a
 * new backend waits for the next boot. */
static void on_backend_exit(pid_t pid, const char *how, void *userdata)
{
    struct sidecar *s = userdata;
    log_warning("vsock-backend",
                "the backend (pid %d) %s: a new one serves the next boot; a running domain "
                "keeps no vsock until then (virsh destroy %s; virsh start %s)",
                (int)pid, how, s->c->name, s->c->name);
    _cleanup_free_ char *sock = runtime_file_path(s->rd.path, RUNTIME_VHOST_USER_VSOCK);
    if (vsock_host_start_backend(s->vsock) < 0 || !sock || expose(s, sock) < 0)
        sd_event_exit(s->event, 1);
    save_state(s, "attached");
}

/* --- set-up and tear-down --- */

/* netsetup's network, its TAP made persistent and its fds closed, so that libvirt opens it by
 * name; netsetup.json records it for the cleanup after a crash. */
static int prepare_network(struct sidecar *s)
{
    _cleanup_free_ char *error = NULL, *json = NULL, *path = NULL;
    if (s->rd.stale_netsetup) {
        struct netsetup_state old;
        if (netsetup_state_from_json(s->rd.stale_netsetup, &old) == 0 &&
            netsetup_cleanup(&old, &error) < 0)
            log_warning("netsetup", "undo the last run's network: %s", error ? error : "?");
        free(TAKE_PTR(error));
    }
    struct netsetup_plan plan;
    int r = net_plan_from_config(s->c, &plan);
    if (r <= 0)
        return r;
    r = netsetup_up(&plan, &s->net, &error);
    net_plan_done(&plan);
    if (r < 0) {
        log_error("netsetup", "%s", error ? error : strerror(-r));
        return r;
    }
    s->net_up = true;
    if (ioctl(s->net.tap_fds[0], TUNSETPERSIST, 1) < 0) {
        log_error("netsetup", "make TAP %s persistent: %s", s->c->network->tap, strerror(errno));
        return negative_errno();
    }
    for (unsigned i = 0; i < s->net.n_tap_fds; i++)
        closep(&s->net.tap_fds[i]);
    s->net.n_tap_fds = 0;
    if (!(path = runtime_dir_file(&s->rd, RUNTIME_NETSETUP)) ||
        netsetup_state_to_json(&s->net.state, &json) < 0)
        return -ENOMEM;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || write(fd, json, strlen(json)) != (ssize_t)strlen(json))
        log_warning(NULL, "write %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    log_info("netsetup", "bridge %s, TAP %s (persistent, for libvirt), nft table inet ocvm_%s",
             s->c->network->bridge, s->c->network->tap, s->c->name);
    return 0;
}

static int prepare_vsock(struct sidecar *s)
{
    if (!s->c->vsock.enabled)
        return 0;
    _cleanup_free_ char *error = NULL;
    struct vsock_host_options vo = {.backend = s->hf->vsock,
                                    .runtime_dir = s->rd.path,
                                    .backend_user = s->user,
                                    .on_notify = on_guest_notify,
                                    .on_backend_exit = on_backend_exit,
                                    .userdata = s};
    int r = vsock_host_new(s->event, s->c, &vo, &s->vsock, &error);
    if (r < 0) {
        log_error(NULL, "%s", error ? error : strerror(-r));
        return r;
    }
    if (s->hf->vsock != VSOCK_BACKEND_USER)
        return 0;
    _cleanup_free_ char *sock = runtime_file_path(s->rd.path, RUNTIME_VHOST_USER_VSOCK);
    return sock ? expose(s, sock) : -ENOMEM;
}

static int prepare(struct sidecar *s)
{
    int r = runtime_dir_acquire(s->c->name, &s->rd);
    if (r < 0) {
        log_error(NULL, "runtime directory: %s",
                  r == -EBUSY ? "locked: the VM runs (ocvm up, or another ocvm attach)"
                              : strerror(-r));
        return r;
    }
    if (!(s->state_path = runtime_dir_file(&s->rd, RUNTIME_STATE)))
        return -ENOMEM;
    s->state.supervisor_pid = getpid();
    s->state.started_at_us = clock_usec(CLOCK_REALTIME);
    snprintf(s->state.accel, sizeof(s->state.accel), "%s", accel_to_string(s->hf->accel));
    snprintf(s->state.vsock, sizeof(s->state.vsock), "%s",
             s->c->vsock.enabled ? vsock_backend_to_string(s->hf->vsock) : "none");
    _cleanup_free_ char *error = NULL; /* names paths, never a secret */
    if ((r = make_socket_dir(s)) < 0 || (r = prepare_network(s)) < 0)
        return r;
    if ((r = secrets_stage(s->c, s->rd.path, s->user, &error)) < 0) {
        log_error("secrets", "%s", error ? error : strerror(-r));
        return r;
    }
    if ((r = start_virtiofsd(s)) < 0 || (r = prepare_vsock(s)) < 0)
        return r;
    save_state(s, "attached");
    return 0;
}

static void teardown(struct sidecar *s)
{
    health_wait_free(s->wait);
    stop_virtiofsd(s);
    vsock_host_free(s->vsock);
    if (s->net_up)
        netsetup_down(&s->net);
    if (s->socket_dir_made)
        remove_socket_dir(s);
    sd_event_unref(s->event);
    runtime_dir_release(&s->rd);
    free(s->socket_dir);
    free(s->state_path);
}

int sidecar_run(const struct vm_config *c, const struct host_facts *hf, const char *user)
{
    struct sidecar s = {.c = c, .hf = hf, .user = user, .rd = {.lock_fd = -1}};
    int r = vm_user_lookup(c->name, &s.uid, &s.gid);
    if (r < 0) {
        log_error(NULL, "no user %s: define the domain first (ocvm libvirt define %s)", user,
                  c->name);
        return 1;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* SIGTERM and SIGINT end the loop (sd-event's default for a signal without a handler) */
    if ((r = sd_event_new(&s.event)) < 0 ||
        (r = sd_event_add_signal(s.event, NULL, SIGTERM, NULL, NULL)) < 0 ||
        (r = sd_event_add_signal(s.event, NULL, SIGINT, NULL, NULL)) < 0)
        log_error(NULL, "event loop: %s", strerror(-r));
    else if ((r = sidecar_socket_dir(c->name, &s.socket_dir)) == 0)
        r = prepare(&s);
    if (r == 0) {
        log_notice(NULL, "attached: QEMU's sockets are in %s; start the domain (virsh start %s)",
                   s.socket_dir, c->name);
        notify_ready("attached: waiting for the domain");
        r = sd_event_loop(s.event);
        if (r < 0)
            log_error(NULL, "event loop: %s", strerror(-r));
        notify_stopping();
    } else if (r == -ENOMEM)
        log_error(NULL, "out of memory"); /* the rest is logged where it failed */
    teardown(&s);
    return r == 0 ? 0 : 1;
}
