/* guest_notify: the host end of systemd's vmm.notify_socket protocol. The guest (systemd, or
 * `ocvm-guest notify`) connects over vsock to the host's port GUEST_NOTIFY_PORT and writes
 * sd_notify text ("READY=1\nSTATUS=...\n"), then closes. With the user backend that arrives as
 * a Unix connection on RUNDIR/vsock.sock_PORT. Each message is bounded; nothing in it is trusted.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

enum { GUEST_NOTIFY_PORT = 18788, GUEST_NOTIFY_MAX = 4096 };

struct guest_notify_msg {
    bool ready, stopping;
    char status[128]; /* printable ASCII only; empty if none */
    char stage[64];   /* OCVM_STAGE=: a readiness stage the guest passed (its init's own
                       * milestones: "init", "gateway started", "/health answered") */
};

/* Parses one message (newline-separated assignments; unknown ones ignored). -EBADMSG if it holds
 * a NUL or is not text. */
int guest_notify_parse(const char *buf, size_t len, struct guest_notify_msg *ret);

struct guest_notify;
typedef void (*guest_notify_fn)(const struct guest_notify_msg *m, void *userdata);
/* Serves LISTEN_FD (a listening socket, taken over) on E; FN is called per complete message. */
int guest_notify_new(sd_event *e, int listen_fd, guest_notify_fn fn, void *userdata,
                     struct guest_notify **ret);
void guest_notify_free(struct guest_notify *g);
