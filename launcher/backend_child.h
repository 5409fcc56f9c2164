/* backend_child: the user vsock backend as a child process of the supervisor, so that the code
 * that parses rings a guest writes never runs in the root supervisor. The child is this program
 * (the file /proc/self/exe names) run again as `ocvm vsock-backend`, handed its two listening
 * sockets (vhost-user and hybrid, made here, 0600, in the runtime directory only the supervisor
 * can enter) and one end of a connect broker as fds; it drops to the VM's user and sandboxes itself
 * (vsock/backend_sandbox.h). Its guest->host connections are made here, in the supervisor
 * (vsock/connect_broker.h), as it cannot reach the runtime directory. It dies with the
 * supervisor (parent-death signal). When it dies first the owner is told; start() spawns the
 * next one on fresh sockets, and until then the hybrid socket refuses connections at once. */
#pragma once

#include "launcher/child_proc.h"

#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

struct backend_child_config {
    const char *vm_name;
    uint32_t guest_cid;
    const char *vhost_user_path, *uds_path; /* the sockets, made for each child */
    const char *user; /* the child drops to this user (we are root), or NULL: our own uid */
};

/* The child (pid PID) ended (HOW: "exited with status 1", "killed by signal KILL"). */
typedef void (*backend_child_exit_fn)(pid_t pid, const char *how, void *userdata);

struct backend_child;

/* Prepares (spawns nothing yet); the config's strings are copied. */
int backend_child_new(sd_event *e, const struct backend_child_config *cfg,
                      backend_child_exit_fn on_exit, void *userdata, struct backend_child **ret);
/* Spawns a child on fresh sockets unless one runs; 0 when one runs now. */
int backend_child_start(struct backend_child *b);
/* Stops the child (SIGTERM; SIGKILL after 2 s) and removes its socket files. */
void backend_child_free(struct backend_child *b);
void backend_child_get_status(const struct backend_child *b, struct child_proc_status *ret);
