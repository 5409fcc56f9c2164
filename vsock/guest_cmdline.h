/* guest_cmdline: what the host tells ocvm-guest on the kernel command line, read purely (no file,
 * no socket): the address of `systemd.set_credential=vmm.notify_socket:` that READY goes to, and
 * each `ocvm.relay=LISTEN,CONNECT`. The text is the guest's /proc/cmdline, NUL-terminated and
 * bounded by the caller; parameters are separated by spaces, tabs or newlines. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define GUEST_CMDLINE_NOTIFY_SOCKET "systemd.set_credential=vmm.notify_socket:"
#define GUEST_CMDLINE_RELAY "ocvm.relay="

/* Finds the last `systemd.set_credential=vmm.notify_socket:vsock[-stream]:CID:PORT` on the
 * kernel command line. -ENOENT when absent, -EINVAL when malformed. */
int guest_cmdline_notify_socket(const char *cmdline, uint32_t *ret_cid, uint32_t *ret_port);

/* One `ocvm.relay=LISTEN,CONNECT` parameter. */
struct guest_relay_param {
    const char *text;    /* the whole parameter, inside the command line (not NUL-terminated) */
    size_t len;          /* its length */
    char pair[256];      /* its value split at the first comma: "LISTEN\0CONNECT" */
    const char *connect; /* CONNECT, inside pair */
};

/* Reads the next `ocvm.relay=` at or after *POS into *RET and moves *POS past it: 1, or 0 when
 * there is none. -ENAMETOOLONG when the value does not fit pair; -EINVAL when it has no comma
 * (pair holds the value whole); with either, ret->text and ret->len name the parameter. */
int guest_cmdline_next_relay(const char **pos, struct guest_relay_param *ret);
