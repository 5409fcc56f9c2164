/* libvirt_domain: ocvm's VMs as libvirt domains, through the libvirt C API (no virsh): a
 * connection, what a named domain is (ocvm's or not, running or not, its UUID), define with
 * libvirt's own schema validation, undefine, and a domain's persistent XML for import. A domain
 * ocvm did not define (no ocvm <metadata>, libvirt_xml.h) is never replaced or removed here.
 * libvirt's messages come back as one line in *error; nothing is printed. */
#pragma once

#include <libvirt/libvirt.h>
#include <stdbool.h>

struct libvirt_domain_info {
    bool exists, ocvm, active;
    char uuid[VIR_UUID_STRING_BUFLEN]; /* when it exists */
};

/* Opens URI (NULL: libvirt's default), read-only when asked. */
int libvirt_domain_connect(const char *uri, bool read_only, virConnectPtr *ret, char **error);
static inline void libvirt_domain_disconnectp(virConnectPtr *c)
{
    if (*c)
        virConnectClose(*c);
}
/* What the domain NAME is; not existing is not an error. */
int libvirt_domain_info(virConnectPtr c, const char *name, struct libvirt_domain_info *ret,
                        char **error);
/* Defines XML (validated against libvirt's schema). Replacing a domain is the caller's decision,
 * taken with libvirt_domain_info() first. */
int libvirt_domain_define(virConnectPtr c, const char *xml, char **error);
/* Undefines NAME: -ENOENT when there is none, -EPERM when ocvm did not define it, -EBUSY while it
 * runs (it stays defined). */
int libvirt_domain_undefine(virConnectPtr c, const char *name, char **error);
/* The persistent XML of the domain named (or with the UUID) DOMAIN; -ENOENT when none. */
int libvirt_domain_xml(virConnectPtr c, const char *domain, char **ret, char **error);
