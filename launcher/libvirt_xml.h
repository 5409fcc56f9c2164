/* libvirt_xml: one VM as libvirt domain XML, the same machine qemu_argv builds (kernel, initrd,
 * ocvm's kernel command line, memory, vCPUs, devices, shares, TAP, vsock) in libvirt's terms,
 * with ocvm's canonical config in <metadata> so nothing is lost on the way back
 * (libvirt_import.h). What libvirt 9.0 cannot say (the vhost-user vsock and virtiofs devices
 * that ocvm's own daemons serve, microvm's machine options) goes in <qemu:commandline>. Every
 * value is placed by libxml2's writer, so it is escaped. Pure: the caller resolves host facts
 * and paths first. */
#pragma once

#include "config/vm_config.h"

/* The namespace of ocvm's <metadata> element, <ocvm:config>, whose text is the config's JSON. */
#define LIBVIRT_OCVM_NS "urn:ocvm:libvirt:1"
/* libvirt's namespace of <qemu:commandline>. */
#define LIBVIRT_QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"

/* The host facts and paths a domain depends on, resolved by the caller. */
struct libvirt_plan {
    enum accel accel;          /* resolved: KVM (<domain type='kvm'>) or TCG ('qemu') */
    enum vsock_backend vsock;  /* resolved: KERNEL (native <vsock>) or USER (vhost-user) */
    unsigned long tsc_khz;     /* as struct qemu_plan's, for a TCG microvm guest; or 0 */
    const char *emulator;      /* QEMU's absolute path (<emulator>) */
    const char *socket_dir;    /* where QEMU finds the vhost-user sockets of ocvm's daemons */
    const char *console_log;   /* the serial console's log file */
    const char *seclabel_user; /* QEMU runs as this user and its group (static DAC label); NULL:
                                * as libvirt's default user */
    const char *uuid;          /* the UUID of the domain this one replaces, or NULL */
};

/* C's domain XML (allocated, NUL-terminated). -EINVAL when a value cannot be placed in a QEMU
 * option (a newline in a path) or the config holds a literal gateway token or password, which
 * every libvirt client could read in the metadata (*error says which); -ENOMEM. */
int libvirt_xml_from_config(const struct vm_config *c, const struct libvirt_plan *p, char **ret,
                            char **error);
