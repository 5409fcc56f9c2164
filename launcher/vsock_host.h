/* vsock_host: the host end of one VM's vsock path, on the supervisor's sd-event loop: the
 * gateway listener (gateway.host_listen, opened once and kept across VM restarts so clients get
 * an immediate reset while the VM is down, never a hang; or, socket-activated, the one systemd
 * passed, whose clients wait in its backlog while the guest is not up), the extra forwards, the
 * listener for the guest's READY (vmm.notify_socket), and, for the user backend, ocvm's vhost-user
 * vsock device as a sandboxed child process (launcher/backend_child.h). The listeners are opened
 * here and kept; the relay that accepts on them runs in a sandboxed child of its own
 * (launcher/relay_child.h). */
#pragma once

#include "launcher/backend_child.h"
#include "launcher/guest_notify.h"
#include "launcher/relay_child.h"
#include "launcher/state.h"
#include "config/vm_config.h"
#include "vsock/relay.h"

#include <systemd/sd-event.h>

struct vsock_host_stats {
    struct relay_stats relay;
    struct child_proc_status relay_child;
    struct child_proc_status backend; /* user backend only; all zero otherwise */
};

struct vsock_host_options {
    enum vsock_backend backend; /* resolved */
    const char *runtime_dir;
    const char *backend_user;  /* the user backend's child drops to it (QEMU's user), or NULL */
    guest_notify_fn on_notify; /* the guest's READY and STATUS */
    backend_child_exit_fn on_backend_exit; /* the user backend's child died */
    void *userdata;                        /* of both */
};

struct vsock_host;

/* Opens everything for C (the gateway listener: the socket systemd passed, if it did; see
 * socket_activation.h), and starts the user backend's child. On failure returns -errno and sets
 * *error to one line naming the object (caller frees). */
int vsock_host_new(sd_event *e, const struct vm_config *c, const struct vsock_host_options *o,
                   struct vsock_host **ret, char **error);
void vsock_host_free(struct vsock_host *h);
/* The user backend's child, spawned again if it died (each QEMU needs a live one to connect
 * to); 0 at once for the kernel backend. */
int vsock_host_start_backend(struct vsock_host *h);
/* The guest is gone (its QEMU exited): a socket-activated gateway listener holds its clients in
 * the backlog again until the next guest's READY. */
void vsock_host_guest_down(struct vsock_host *h);
void vsock_host_get_stats(const struct vsock_host *h, struct vsock_host_stats *ret);
/* The relay's figures and the backend's and the relay's processes, into ST (for state.json).
 * Returns true when any of them changed. */
bool vsock_host_fill_state(const struct vsock_host *h, struct vm_state *st);
/* The endpoint the health probe connects to (the gateway listener). */
const struct endpoint *vsock_host_gateway(const struct vsock_host *h);
