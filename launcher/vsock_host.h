/* vsock_host: the host end of one VM's vsock path, on the supervisor's sd-event loop: the
 * gateway listener (gateway.host_listen, opened once and kept across VM restarts so clients get
 * an immediate reset while the VM is down, never a hang), the extra forwards, the listener for the
 * guest's READY (vmm.notify_socket), and, for the user backend, ocvm's vhost-user vsock device
 * itself. The relay engine runs on its own epoll set, nested here as one IO source. */
#pragma once

#include "launcher/guest_notify.h"
#include "config/vm_config.h"
#include "vsock/relay.h"

#include <systemd/sd-event.h>

struct vsock_host_stats {
    struct relay_stats relay;
    uint64_t backend_resets, backend_bad_packets; /* user backend only */
};

struct vsock_host;

/* Opens everything for C (BACKEND resolved). On failure returns -errno and sets *error to one
 * line naming the object (caller frees). */
int vsock_host_new(sd_event *e, const struct vm_config *c, enum vsock_backend backend,
                   const char *runtime_dir, guest_notify_fn on_notify, void *userdata,
                   struct vsock_host **ret, char **error);
void vsock_host_free(struct vsock_host *h);
void vsock_host_get_stats(const struct vsock_host *h, struct vsock_host_stats *ret);
/* The endpoint the health probe connects to (the gateway listener). */
const struct endpoint *vsock_host_gateway(const struct vsock_host *h);
