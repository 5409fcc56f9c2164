/* ocvm's VMs as libvirt domains, through the C API; see libvirt_domain.h. */
#include "launcher/libvirt_domain.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "launcher/libvirt_xml.h"

#include <errno.h>
#include <libvirt/virterror.h>
#include <string.h>

static inline void domain_freep(virDomainPtr *d)
{
    if (*d)
        virDomainFree(*d);
}
#define _cleanup_domain_ _cleanup_(domain_freep)

/* libvirt's last error as one line after WHAT; R is returned. */
static int failed(char **error, int r, const char *what)
{
    const char *msg = virGetLastErrorMessage();
    size_t n = msg ? strcspn(msg, "\n") : 0;
    return error_setf(error, r, "%s: %.*s", what, (int)n, msg ? msg : "unknown error");
}

/* libvirt prints every error to stderr unless told otherwise: the callers word them. */
static void quiet(void *userdata, virErrorPtr e) {}

int libvirt_domain_connect(const char *uri, bool read_only, virConnectPtr *ret, char **error)
{
    *error = NULL;
    if (virInitialize() < 0)
        return failed(error, -EIO, "libvirt");
    virSetErrorFunc(NULL, quiet);
    virConnectPtr c = read_only ? virConnectOpenReadOnly(uri) : virConnectOpen(uri);
    if (!c)
        return failed(error, -ECONNREFUSED, uri ? uri : "libvirt's default connection");
    *ret = c;
    return 0;
}

/* The domain named (or with the UUID) NAME into *RET; -ENOENT (*error: "no domain NAME") when
 * there is none, -EIO on another failure. */
static int lookup(virConnectPtr c, const char *name, virDomainPtr *ret, char **error)
{
    virDomainPtr d = virDomainLookupByName(c, name);
    if (!d && virGetLastErrorCode() == VIR_ERR_NO_DOMAIN)
        d = virDomainLookupByUUIDString(c, name);
    int code = virGetLastErrorCode();
    if (d) {
        *ret = d;
        return 0;
    }
    if (code == VIR_ERR_NO_DOMAIN || code == VIR_ERR_INVALID_ARG)
        return error_setf(error, -ENOENT, "no domain %s", name);
    return failed(error, -EIO, name);
}

/* True when D carries ocvm's metadata in its persistent definition. */
static bool has_ocvm_metadata(virDomainPtr d)
{
    _cleanup_free_ char *m = virDomainGetMetadata(d, VIR_DOMAIN_METADATA_ELEMENT, LIBVIRT_OCVM_NS,
                                                  VIR_DOMAIN_AFFECT_CONFIG);
    return m != NULL;
}

int libvirt_domain_info(virConnectPtr c, const char *name, struct libvirt_domain_info *ret,
                        char **error)
{
    *ret = (struct libvirt_domain_info){0};
    *error = NULL;
    _cleanup_domain_ virDomainPtr d = NULL;
    int r = lookup(c, name, &d, error);
    if (r == -ENOENT) {
        free(TAKE_PTR(*error));
        return 0;
    }
    if (r < 0)
        return r;
    int active = virDomainIsActive(d);
    if (active < 0 || virDomainGetUUIDString(d, ret->uuid) < 0)
        return failed(error, -EIO, name);
    ret->exists = true;
    ret->active = active > 0;
    ret->ocvm = has_ocvm_metadata(d);
    return 0;
}

int libvirt_domain_define(virConnectPtr c, const char *xml, char **error)
{
    *error = NULL;
    _cleanup_domain_ virDomainPtr d = virDomainDefineXMLFlags(c, xml, VIR_DOMAIN_DEFINE_VALIDATE);
    return d ? 0 : failed(error, -EINVAL, "define");
}

int libvirt_domain_undefine(virConnectPtr c, const char *name, char **error)
{
    *error = NULL;
    _cleanup_domain_ virDomainPtr d = NULL;
    int r = lookup(c, name, &d, error);
    if (r < 0)
        return r;
    if (!has_ocvm_metadata(d))
        return error_setf(error, -EPERM, "domain %s was not defined by ocvm: left alone", name);
    int active = virDomainIsActive(d);
    if (active < 0)
        return failed(error, -EIO, name);
    if (active)
        return error_setf(error, -EBUSY, "domain %s is running: `virsh shutdown %s` first", name,
                          name);
    return virDomainUndefine(d) < 0 ? failed(error, -EIO, "undefine") : 0;
}

int libvirt_domain_xml(virConnectPtr c, const char *domain, char **ret, char **error)
{
    *error = NULL;
    _cleanup_domain_ virDomainPtr d = NULL;
    int r = lookup(c, domain, &d, error);
    if (r < 0)
        return r;
    *ret = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
    return *ret ? 0 : failed(error, -EIO, domain);
}
