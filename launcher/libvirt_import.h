/* libvirt_import: a libvirt domain's XML read back into an ocvm config, as JSON for the config
 * loader to check. With ocvm's <metadata> (libvirt_xml.h) the config is that one, but for what
 * the domain itself now says otherwise (memory, vCPUs, kernel, initrd, kernel command line,
 * machine type, TAP, MAC, extra QEMU arguments: someone ran `virsh edit`), which wins and is
 * noted. Without it the config is built from the domain: kernel, initrd, command line (ocvm's own
 * additions split off again: the gateway port, guest addresses, read-only shares), memory, vCPUs,
 * the vsock device and its CID, the first interface, the shares, extra QEMU arguments. Every
 * element it cannot carry over is one note. Pure; the input is bounded and parsed without the
 * network, entities or a DTD. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Domain XML larger than this is refused (a domain is a few KiB). */
#define LIBVIRT_XML_MAX (4u << 20)

struct libvirt_import {
    char *json;         /* the VM's config (canonical layout when from metadata), NUL-terminated */
    bool from_metadata; /* ocvm's metadata was there */
    char **notes; /* NULL-terminated: one line per element not carried over, or value changed */
    size_t n_notes;
};

/* Reads domain XML into *RET. -EINVAL with *error (one line) for XML that is not one domain, a
 * domain without <os><kernel> (ocvm boots a kernel directly), more than one vsock device, or
 * metadata that is not a config object; -EFBIG over LIBVIRT_XML_MAX; -ENOMEM. */
int libvirt_import_xml(const char *xml, size_t len, struct libvirt_import *ret, char **error);
void libvirt_import_done(struct libvirt_import *r);
