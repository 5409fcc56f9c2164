/* The user vsock backend as a sandboxed child of the supervisor; see backend_child.h. */
#include "launcher/backend_child.h"

#include "launcher/child_proc.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "launcher/argv.h"
#include "vsock/connect_broker.h"
#include "vsock/vsock_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>

/* The child's fixed fd layout: vhost-user listener, hybrid listener, its end of the broker. */
enum { CHILD_VHOST_USER_FD = 3, CHILD_UDS_FD = 4, CHILD_BROKER_FD = 5, CHILD_N_FDS = 3 };

struct backend_child {
    struct child_proc proc; /* `ocvm vsock-backend` */
    char *vm_name, *vhost_user_path, *uds_path, *user;
    uint32_t guest_cid;
    backend_child_exit_fn on_exit;
    void *userdata;
    sd_event_source *broker_src;
};

static void on_child_exit(struct child_proc *p, pid_t pid, const char *how)
{
    struct backend_child *b = p->owner;
    b->broker_src = sd_event_source_disable_unref(b->broker_src);
    if (b->on_exit)
        b->on_exit(pid, how, b->userdata);
}

/* The child asks for guest->host connections: made here, where the runtime dir is reachable. */
static int on_broker(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
    struct backend_child *b = userdata;
    if (connect_broker_serve(fd, connect_broker_hybrid_port, b->uds_path) <
        0) /* the child is gone, or broke the protocol */
        b->broker_src = sd_event_source_disable_unref(b->broker_src);
    return 0;
}

/* ocvm vsock-backend with its sockets as fds (see CHILD_*_FD). */
static int child_argv(const struct backend_child *b, struct argv *a)
{
    argv_add(a, "ocvm");
    argv_add(a, "vsock-backend");
    argv_add(a, "--socket");
    argv_add(a, b->vhost_user_path);
    argv_addf(a, "--socket-fd=%d", CHILD_VHOST_USER_FD);
    argv_add(a, "--uds");
    argv_add(a, b->uds_path);
    argv_addf(a, "--uds-fd=%d", CHILD_UDS_FD);
    argv_addf(a, "--connect-fd=%d", CHILD_BROKER_FD);
    argv_addf(a, "--guest-cid=%u", b->guest_cid);
    if (b->user) {
        argv_add(a, "--user");
        argv_add(a, b->user);
    }
    if (b->vm_name) {
        argv_add(a, "--vm");
        argv_add(a, b->vm_name);
    }
    return argv_error(a);
}

/* Fresh listening sockets (0600, a stale one replaced) and the broker pair. */
static int make_sockets(struct backend_child *b, int fds[CHILD_N_FDS], int *ret_broker)
{
    int pair[2] = {-1, -1};
    int r = vsock_hybrid_listen(b->vhost_user_path, &fds[0]);
    if (r < 0)
        return r;
    if ((r = vsock_hybrid_listen(b->uds_path, &fds[1])) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
        r = r < 0 ? r : negative_errno();
        closep(&fds[0]);
        closep(&fds[1]);
        return r;
    }
    fds[2] = pair[1];
    *ret_broker = pair[0];
    return 0;
}

static int spawn(struct backend_child *b, char **argv)
{
    int fds[CHILD_N_FDS] = {-1, -1, -1};
    _cleanup_close_ int broker = -1;
    int r = make_sockets(b, fds, &broker);
    if (r < 0)
        return r;
    r = child_proc_spawn(&b->proc, argv, fds, CHILD_N_FDS);
    for (size_t i = 0; i < CHILD_N_FDS; i++)
        close(fds[i]); /* the child's alone now: when it dies, they close */
    if (r < 0)
        return r;
    fcntl(broker, F_SETFL, O_NONBLOCK);
    if ((r = sd_event_add_io(b->proc.event, &b->broker_src, broker, EPOLLIN, on_broker, b)) < 0) {
        child_proc_stop(&b->proc);
        return r;
    }
    sd_event_source_set_io_fd_own(b->broker_src, true);
    TAKE_FD(broker);
    return 0;
}

int backend_child_start(struct backend_child *b)
{
    if (b->proc.pid > 0)
        return 0;
    struct argv a;
    argv_init(&a);
    int r = child_argv(b, &a);
    if (r == 0)
        r = spawn(b, a.v);
    argv_done(&a);
    return r;
}

int backend_child_new(sd_event *e, const struct backend_child_config *cfg,
                      backend_child_exit_fn on_exit, void *userdata, struct backend_child **ret)
{
    struct backend_child *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    if (child_proc_init(&b->proc, e, "vsock backend", on_child_exit, b) < 0) {
        free(b);
        return -ENOMEM;
    }
    b->guest_cid = cfg->guest_cid;
    b->on_exit = on_exit;
    b->userdata = userdata;
    b->vhost_user_path = strdup(cfg->vhost_user_path);
    b->uds_path = strdup(cfg->uds_path);
    b->vm_name = cfg->vm_name ? strdup(cfg->vm_name) : NULL;
    b->user = cfg->user ? strdup(cfg->user) : NULL;
    if (!b->vhost_user_path || !b->uds_path || (cfg->vm_name && !b->vm_name) ||
        (cfg->user && !b->user)) {
        backend_child_free(b);
        return -ENOMEM;
    }
    *ret = b;
    return 0;
}

void backend_child_free(struct backend_child *b)
{
    if (!b)
        return;
    b->broker_src = sd_event_source_disable_unref(b->broker_src);
    unsigned started = b->proc.started;
    child_proc_done(&b->proc);
    if (started) { /* the files of the sockets made here */
        unlink(b->vhost_user_path);
        unlink(b->uds_path);
    }
    free(b->vm_name);
    free(b->vhost_user_path);
    free(b->uds_path);
    free(b->user);
    free(b);
}

void backend_child_get_status(const struct backend_child *b, struct child_proc_status *ret)
{
    child_proc_get_status(&b->proc, ret);
}
