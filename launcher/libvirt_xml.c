/* A VM's config as libvirt domain XML; see libvirt_xml.h. The import is in libvirt_import.c. */
#include "launcher/libvirt_xml.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "config/config_json.h"
#include "launcher/argv.h"
#include "launcher/qemu_argv.h"
#include "launcher/runtime_dir.h"

#include <errno.h>
#include <jansson.h>
#include <libxml/xmlwriter.h>
#include <string.h>

/* q35: the PCI slots on pcie.0 of the devices given in <qemu:commandline>, clear of libvirt's
 * root ports (0x1-0x7 as it adds them) and the ICH9 functions at 0x1f */
enum { Q35_FIRST_SLOT = 0x10 };

/* libxml2's writer with a sticky error: after one failure every call is a no-op. */
struct xw {
    xmlTextWriterPtr w;
    int r;
};

static void xw_check(struct xw *x, int rc)
{
    if (rc < 0 && x->r == 0)
        x->r = -ENOMEM;
}

static void xw_start(struct xw *x, const char *name)
{
    if (x->r == 0)
        xw_check(x, xmlTextWriterStartElement(x->w, BAD_CAST name));
}

static void xw_end(struct xw *x)
{
    if (x->r == 0)
        xw_check(x, xmlTextWriterEndElement(x->w));
}

static void xw_attr(struct xw *x, const char *name, const char *value)
{
    if (x->r == 0)
        xw_check(x, xmlTextWriterWriteAttribute(x->w, BAD_CAST name, BAD_CAST value));
}

static void xw_text(struct xw *x, const char *text)
{
    if (x->r == 0)
        xw_check(x, xmlTextWriterWriteString(x->w, BAD_CAST text));
}

/* <NAME>TEXT</NAME> */
static void xw_elem(struct xw *x, const char *name, const char *text)
{
    xw_start(x, name);
    xw_text(x, text);
    xw_end(x);
}

/* <NAME ATTR='VALUE'/>, or <NAME/> when ATTR is NULL */
static void xw_empty(struct xw *x, const char *name, const char *attr, const char *value)
{
    xw_start(x, name);
    if (attr)
        xw_attr(x, attr, value);
    xw_end(x);
}

static void xw_addr_mmio(struct xw *x, const struct vm_config *c)
{
    if (c->machine.type == MACHINE_MICROVM)
        xw_empty(x, "address", "type", "virtio-mmio");
}

/* --- the parts libvirt expresses itself --- */

static void write_os(struct xw *x, const struct vm_config *c, const char *cmdline)
{
    xw_start(x, "os");
    xw_start(x, "type");
    xw_attr(x, "arch", "x86_64");
    xw_attr(x, "machine", machine_type_to_string(c->machine.type));
    xw_text(x, "hvm");
    xw_end(x);
    xw_elem(x, "kernel", c->boot.kernel);
    if (c->boot.initrd)
        xw_elem(x, "initrd", c->boot.initrd);
    xw_elem(x, "cmdline", cmdline);
    xw_end(x);
}

static void write_machine(struct xw *x, const struct vm_config *c, const struct libvirt_plan *p)
{
    char n[32];
    snprintf(n, sizeof(n), "%llu", (unsigned long long)c->machine.memory_mib);
    xw_start(x, "memory");
    xw_attr(x, "unit", "MiB");
    xw_text(x, n);
    xw_end(x);
    if (qemu_shared_memory(c, p->vsock)) { /* vhost-user daemons map guest RAM */
        xw_start(x, "memoryBacking");
        xw_empty(x, "source", "type", "memfd");
        xw_empty(x, "access", "mode", "shared");
        xw_end(x);
    }
    snprintf(n, sizeof(n), "%u", c->machine.vcpu);
    xw_start(x, "vcpu");
    xw_attr(x, "placement", "static");
    xw_text(x, n);
    xw_end(x);
}

static void write_cpu(struct xw *x, const struct libvirt_plan *p)
{
    xw_start(x, "features");
    xw_empty(x, "acpi", NULL, NULL);
    xw_end(x);
    xw_start(x, "cpu");
    if (p->accel == ACCEL_KVM) { /* QEMU's -cpu host,+x2apic,-sgx */
        xw_attr(x, "mode", "host-passthrough");
        xw_attr(x, "check", "none");
        xw_start(x, "feature");
        xw_attr(x, "policy", "require");
        xw_attr(x, "name", "x2apic");
        xw_end(x);
        xw_start(x, "feature");
        xw_attr(x, "policy", "disable");
        xw_attr(x, "name", "sgx");
        xw_end(x);
    } else {
        xw_attr(x, "mode", "maximum");
        xw_attr(x, "check", "none");
    }
    xw_end(x);
    xw_empty(x, "clock", "offset", "utc");
    /* as under ocvm up: a guest that powers off stays off; a reboot or a panic (panic=-1,
     * reboot=t) brings it back */
    xw_elem(x, "on_poweroff", "destroy");
    xw_elem(x, "on_reboot", "restart");
    xw_elem(x, "on_crash", "restart");
}

static void write_console(struct xw *x, const struct libvirt_plan *p)
{
    xw_start(x, "serial");
    xw_attr(x, "type", "pty");
    xw_start(x, "log");
    xw_attr(x, "file", p->console_log);
    xw_attr(x, "append", "on");
    xw_end(x);
    xw_start(x, "target");
    xw_attr(x, "type", "isa-serial");
    xw_attr(x, "port", "0");
    xw_empty(x, "model", "name", "isa-serial");
    xw_end(x);
    xw_end(x);
    xw_start(x, "console");
    xw_attr(x, "type", "pty");
    xw_start(x, "target");
    xw_attr(x, "type", "serial");
    xw_attr(x, "port", "0");
    xw_end(x);
    xw_end(x);
}

/* The TAP netsetup made (ocvm attach), opened by name: libvirt neither creates nor removes it. */
static void write_interface(struct xw *x, const struct vm_config *c)
{
    if (!c->network)
        return;
    unsigned queues = vm_config_tap_queues(c);
    xw_start(x, "interface");
    xw_attr(x, "type", "ethernet");
    xw_empty(x, "mac", "address", c->network->mac);
    xw_start(x, "target");
    xw_attr(x, "dev", c->network->tap);
    xw_attr(x, "managed", "no");
    xw_end(x);
    xw_empty(x, "model", "type", "virtio");
    if (queues > 1) {
        char n[16];
        snprintf(n, sizeof(n), "%u", queues);
        xw_empty(x, "driver", "queues", n);
    }
    if (c->machine.type == MACHINE_Q35)
        xw_empty(x, "rom", "enabled", "no"); /* as romfile= in the argv: no iPXE ROM */
    xw_addr_mmio(x, c);
    xw_end(x);
}

/* 9p shares (virtiofs ones are ocvm's own daemons, in <qemu:commandline>). security_model=none,
 * as in the argv, is libvirt's accessmode 'squash'. */
static void write_9p(struct xw *x, const struct vm_config *c)
{
    for (size_t i = 0; i < c->n_shares; i++) {
        const struct vm_share *s = &c->shares[i];
        if (s->proto != SHARE_9P)
            continue;
        xw_start(x, "filesystem");
        xw_attr(x, "type", "mount");
        xw_attr(x, "accessmode", "squash");
        xw_empty(x, "driver", "type", "path");
        xw_empty(x, "source", "dir", s->source);
        xw_empty(x, "target", "dir", s->tag);
        if (s->read_only)
            xw_empty(x, "readonly", NULL, NULL);
        xw_addr_mmio(x, c);
        xw_end(x);
    }
}

static void write_devices(struct xw *x, const struct vm_config *c, const struct libvirt_plan *p)
{
    xw_start(x, "devices");
    xw_elem(x, "emulator", p->emulator);
    xw_start(x, "controller"); /* none: microvm has no USB, and ocvm's VMs use none */
    xw_attr(x, "type", "usb");
    xw_attr(x, "model", "none");
    xw_end(x);
    write_console(x, p);
    write_interface(x, c);
    write_9p(x, c);
    if (c->vsock.enabled && p->vsock == VSOCK_BACKEND_KERNEL) {
        char cid[16];
        snprintf(cid, sizeof(cid), "%u", c->vsock.guest_cid);
        xw_start(x, "vsock");
        xw_attr(x, "model", "virtio");
        xw_start(x, "cid");
        xw_attr(x, "auto", "no");
        xw_attr(x, "address", cid);
        xw_end(x);
        xw_addr_mmio(x, c);
        xw_end(x);
    }
    xw_start(x, "rng");
    xw_attr(x, "model", "virtio");
    xw_start(x, "backend");
    xw_attr(x, "model", "random");
    xw_text(x, "/dev/urandom");
    xw_end(x);
    xw_addr_mmio(x, c);
    xw_end(x);
    xw_empty(x, "memballoon", "model", "none");
    xw_end(x);
}

/* --- <qemu:commandline>: what libvirt 9.0 cannot say --- */

/* -chardev socket,id=ID,path=PATH with PATH's commas doubled. */
static void add_chardev(struct argv *a, const char *id, const char *path)
{
    _cleanup_free_ char *e = NULL;
    int r = qemu_opt_escape(path, &e);
    if (r < 0) {
        argv_fail(a, r);
        return;
    }
    argv_add(a, "-chardev");
    argv_addf(a, "socket,id=%s,path=%s", id, e);
}

/* -device DRIVER,chardev=ID,id=ID[,tag=TAG]: microvm's virtio-mmio form, or on q35 the JSON form
 * with a fixed slot on pcie.0 (libvirt would otherwise hand the slot to one of its devices). */
static void add_device(struct argv *a, const struct vm_config *c, const char *stem, const char *id,
                       const char *tag, unsigned *slot)
{
    argv_add(a, "-device");
    if (c->machine.type == MACHINE_MICROVM) {
        argv_addf(a, "%s-device,chardev=%s,id=%s%s%s", stem, id, id, tag ? ",tag=" : "",
                  tag ? tag : "");
        return;
    }
    char driver[48], addr[16];
    snprintf(driver, sizeof(driver), "%s-pci", stem);
    snprintf(addr, sizeof(addr), "0x%x", (*slot)++);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s*}", "driver", driver, "chardev", id, "id", id,
                          "bus", "pcie.0", "addr", addr, "tag", tag);
    _cleanup_free_ char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (!s)
        argv_fail(a, -ENOMEM);
    else
        argv_add(a, s);
}

static void add_microvm(struct argv *a, const struct vm_config *c, const struct libvirt_plan *p)
{
    if (c->machine.type != MACHINE_MICROVM)
        return;
    /* merged into libvirt's own -machine microvm: as qemu_argv (pit=off hangs TCG boots) */
    argv_add(a, "-machine");
    argv_addf(a, "rtc=on,pic=off%s", p->accel == ACCEL_KVM ? ",pit=off" : "");
    argv_add(a, "-global"); /* vhost-user refuses legacy virtio-mmio devices */
    argv_add(a, "virtio-mmio.force-legacy=false");
    argv_add(a, "-device"); /* ctrl-alt-del over QMP */
    argv_add(a, "i8042");
}

static int build_commandline(const struct vm_config *c, const struct libvirt_plan *p,
                             struct argv *a)
{
    unsigned slot = Q35_FIRST_SLOT;
    add_microvm(a, c, p);
    if (c->vsock.enabled && p->vsock == VSOCK_BACKEND_USER) {
        _cleanup_free_ char *sock = runtime_file_path(p->socket_dir, RUNTIME_VHOST_USER_VSOCK);
        if (!sock)
            return -ENOMEM;
        add_chardev(a, "ocvm-vsock0", sock);
        add_device(a, c, "vhost-user-vsock", "ocvm-vsock0", NULL, &slot);
    }
    for (size_t i = 0; i < c->n_shares; i++) {
        const struct vm_share *s = &c->shares[i];
        if (s->proto != SHARE_VIRTIOFS)
            continue;
        _cleanup_free_ char *sock = runtime_virtiofs_socket_path(p->socket_dir, s->tag);
        char id[32];
        snprintf(id, sizeof(id), "ocvm-fs%zu", i);
        if (!sock)
            return -ENOMEM;
        add_chardev(a, id, sock);
        add_device(a, c, "vhost-user-fs", id, s->tag, &slot);
    }
    for (char **e = c->machine.extra_args; e && *e; e++)
        argv_add(a, *e);
    return argv_error(a);
}

static void write_commandline(struct xw *x, const struct argv *a)
{
    if (a->n == 0)
        return;
    if (x->r == 0)
        xw_check(x,
                 xmlTextWriterStartElementNS(x->w, BAD_CAST "qemu", BAD_CAST "commandline", NULL));
    for (size_t i = 0; i < a->n; i++)
        if (x->r == 0) {
            xw_check(x, xmlTextWriterStartElementNS(x->w, BAD_CAST "qemu", BAD_CAST "arg", NULL));
            xw_attr(x, "value", a->v[i]);
            xw_end(x);
        }
    xw_end(x);
}

/* --- <metadata> --- */

/* A literal gateway.auth.token or .password in gateway.openclaw would be in the metadata, which
 * every libvirt client may read (virsh dumpxml on a read-only connection): refused. */
static int check_no_literal_secret(const struct vm_config *c, char **error)
{
    json_t *oc = json_loads(c->gateway.openclaw_json ? c->gateway.openclaw_json : "{}", 0, NULL);
    if (!oc)
        return -ENOMEM;
    json_t *auth = json_object_get(json_object_get(oc, "gateway"), "auth");
    const char *which = json_is_string(json_object_get(auth, "token"))      ? "token"
                        : json_is_string(json_object_get(auth, "password")) ? "password"
                                                                            : NULL;
    json_decref(oc);
    if (!which)
        return 0;
    return error_setf(error, -EINVAL,
                      "%s: gateway.openclaw.gateway.auth.%s: a literal secret would be in the "
                      "domain's metadata, readable by every libvirt client: leave the token to "
                      "ocvm (secrets.gateway_token) or give a SecretRef",
                      c->path ? c->path : c->name, which);
}

/* TEXT as element content with '&', '<' and '>' escaped, and nothing else: the JSON's quotes
 * stay readable (the writer's own escaping turns each into &quot;). JSON text holds no control
 * characters but newlines (jansson escapes them in strings). */
static void xw_text_readable(struct xw *x, const char *text)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    for (const char *p = text; f && *p; p++) {
        if (*p == '&' || *p == '<' || *p == '>')
            fputs(*p == '&' ? "&amp;" : *p == '<' ? "&lt;" : "&gt;", f);
        else
            fputc(*p, f);
    }
    if (!f || fclose(f) != 0)
        x->r = x->r ? x->r : -ENOMEM;
    else if (x->r == 0)
        xw_check(x, xmlTextWriterWriteRaw(x->w, BAD_CAST s));
    free(s);
}

static void write_metadata(struct xw *x, const char *json)
{
    xw_start(x, "metadata");
    if (x->r == 0)
        xw_check(x, xmlTextWriterStartElementNS(x->w, BAD_CAST "ocvm", BAD_CAST "config",
                                                BAD_CAST LIBVIRT_OCVM_NS));
    xw_text_readable(x, json);
    xw_end(x);
    xw_end(x);
}

static void write_seclabel(struct xw *x, const struct libvirt_plan *p)
{
    if (!p->seclabel_user)
        return;
    _cleanup_free_ char *label = NULL;
    if (asprintf(&label, "%s:%s", p->seclabel_user, p->seclabel_user) < 0) {
        x->r = x->r ? x->r : -ENOMEM;
        return;
    }
    /* QEMU runs as the VM's own user: no other libvirt guest can reach its sockets. relabel no:
     * libvirt would otherwise hand the kernel and initrd to that user while the domain runs, and
     * a QEMU a guest took over could rewrite them for the next boot (they need only be readable
     * by it); libvirt still gives the domain's own directory to it. */
    xw_start(x, "seclabel");
    xw_attr(x, "type", "static");
    xw_attr(x, "model", "dac");
    xw_attr(x, "relabel", "no");
    xw_elem(x, "label", label);
    xw_end(x);
}

static void write_domain(struct xw *x, const struct vm_config *c, const struct libvirt_plan *p,
                         const char *json, const char *cmdline, const struct argv *args)
{
    _cleanup_free_ char *description = NULL;
    if (asprintf(&description,
                 "ocvm VM %s: its vsock backend, host relay and virtiofs daemons run in `ocvm "
                 "attach %s` (ocvm-libvirt@%s.service); ocvm's config is in <metadata>",
                 c->name, c->name, c->name) < 0)
        x->r = -ENOMEM;
    xw_start(x, "domain");
    xw_attr(x, "type", p->accel == ACCEL_KVM ? "kvm" : "qemu");
    if (args->n && x->r == 0)
        xw_check(
            x, xmlTextWriterWriteAttribute(x->w, BAD_CAST "xmlns:qemu", BAD_CAST LIBVIRT_QEMU_NS));
    xw_elem(x, "name", c->name);
    if (p->uuid)
        xw_elem(x, "uuid", p->uuid);
    if (description)
        xw_elem(x, "description", description);
    write_metadata(x, json);
    write_machine(x, c, p);
    write_os(x, c, cmdline);
    write_cpu(x, p);
    write_devices(x, c, p);
    write_seclabel(x, p);
    write_commandline(x, args);
    xw_end(x);
}

int libvirt_xml_from_config(const struct vm_config *c, const struct libvirt_plan *p, char **ret,
                            char **error)
{
    *error = NULL;
    int r = check_no_literal_secret(c, error);
    if (r < 0)
        return r;
    struct qemu_plan qp = {.accel = p->accel, .vsock = p->vsock, .tsc_khz = p->tsc_khz};
    _cleanup_free_ char *json = NULL, *cmdline = NULL;
    if ((r = config_json_text(c, &json)) < 0 || (r = qemu_kernel_cmdline(c, &qp, &cmdline)) < 0)
        return r;
    struct argv args;
    argv_init(&args);
    if ((r = build_commandline(c, p, &args)) < 0) {
        argv_done(&args);
        return r == -EINVAL ? error_setf(error, r, "a socket path holds a newline") : r;
    }
    xmlBufferPtr buf = xmlBufferCreate();
    struct xw x = {.w = buf ? xmlNewTextWriterMemory(buf, 0) : NULL};
    if (!x.w)
        x.r = -ENOMEM;
    else {
        xmlTextWriterSetIndent(x.w, 1);
        xmlTextWriterSetIndentString(x.w, BAD_CAST "  ");
        write_domain(&x, c, p, json, cmdline, &args);
        if (x.r == 0)
            xw_check(&x, xmlTextWriterEndDocument(x.w));
        xmlFreeTextWriter(x.w); /* flushes into BUF */
    }
    argv_done(&args);
    if (x.r == 0 && !(*ret = strndup((const char *)xmlBufferContent(buf), xmlBufferLength(buf))))
        x.r = -ENOMEM;
    if (buf)
        xmlBufferFree(buf);
    return x.r;
}
