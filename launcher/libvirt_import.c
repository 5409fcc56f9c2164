/* A libvirt domain's XML back into an ocvm config; see libvirt_import.h. The domain is first read
 * into a JSON object of the config's shape holding only what the domain says ("what it says");
 * that is the config, or is laid over ocvm's metadata. */
#include "launcher/libvirt_import.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "config/config_json.h"
#include "config/vm_config.h"
#include "launcher/libvirt_xml.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdarg.h>
#include <string.h>

static inline void xml_freep(xmlChar **p)
{
    xmlFree(*p);
}
#define _cleanup_xml_ _cleanup_(xml_freep)

/* Lines, NULL-terminated. */
struct notes {
    char **v;
    size_t n;
};

struct import {
    json_t *says; /* what the domain says, in the config's shape */
    json_t *tail; /* what ocvm's tail of the kernel command line says of the network */
    json_t *ro;   /* tag -> read-only, from ocvm.share= */
    json_t *shares;
    struct notes notes;
    struct notes alone; /* what ocvm's metadata carries when there is one: said without it */
    int r;              /* sticky -ENOMEM of the notes */
    unsigned n_vsock;
};

static void add_line(struct import *im, struct notes *to, char *line)
{
    char **v = line ? reallocarray(to->v, to->n + 2, sizeof(char *)) : NULL;
    if (!v) {
        free(line);
        im->r = -ENOMEM;
        return;
    }
    v[to->n++] = line;
    v[to->n] = NULL;
    to->v = v;
}

static void add_notev(struct import *im, struct notes *to, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void add_notev(struct import *im, struct notes *to, const char *fmt, va_list ap)
{
    char *line = NULL;
    if (im->r == 0 && vasprintf(&line, fmt, ap) < 0)
        line = NULL;
    if (im->r == 0)
        add_line(im, to, line);
}

/* An element or value not carried over. */
static void note(struct import *im, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct import *im, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_notev(im, &im->notes, fmt, ap);
    va_end(ap);
}

/* What the XML alone cannot carry, but ocvm's metadata does. */
static void note_alone(struct import *im, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note_alone(struct import *im, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_notev(im, &im->alone, fmt, ap);
    va_end(ap);
}

static void notes_free(struct notes *n)
{
    for (size_t i = 0; i < n->n; i++)
        free(n->v[i]);
    free(n->v);
    *n = (struct notes){0};
}

/* --- XML access --- */

static bool is(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && !n->ns && xmlStrEqual(n->name, BAD_CAST name);
}

static bool in_ns(const xmlNode *n, const char *ns)
{
    return n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
           xmlStrEqual(n->ns->href, BAD_CAST ns);
}

static xmlNode *child(const xmlNode *n, const char *name)
{
    for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
        if (is(c, name))
            return c;
    return NULL;
}

/* The attribute, or NULL; the caller frees with xmlFree (_cleanup_xml_). */
static xmlChar *attr(const xmlNode *n, const char *name)
{
    return n ? xmlGetNoNsProp(n, BAD_CAST name) : NULL;
}

static bool attr_is(const xmlNode *n, const char *name, const char *value)
{
    _cleanup_xml_ xmlChar *v = attr(n, name);
    return v && xmlStrEqual(v, BAD_CAST value);
}

/* The text of N as a JSON string (NULL: none). */
static json_t *text_json(const xmlNode *n)
{
    _cleanup_xml_ xmlChar *t = n ? xmlNodeGetContent(n) : NULL;
    return t ? json_string((const char *)t) : NULL;
}

/* Sets SECTION.KEY (SECTION made when missing; NULL: the top) of O to V (taken). */
static void set(json_t *o, const char *section, const char *key, json_t *v)
{
    json_t *s = section ? json_object_get(o, section) : o;
    if (!json_is_object(s)) {
        s = json_object();
        json_object_set_new(o, section, s);
    }
    json_object_set_new(s, key, v ? v : json_null());
}

/* --- ocvm's kernel command line, its tail split off (qemu_kernel_cmdline() appends it) --- */

static bool ours(const char *tok, size_t n)
{
    static const char *const prefixes[] = {"tsc_early_khz=",
                                           "ocvm.ip=",
                                           "ocvm.gw=",
                                           "ocvm.dns=",
                                           "ocvm.relay=",
                                           "ocvm.share=",
                                           "systemd.set_credential=vmm.notify_socket:"};
    if (n == 8 && strncmp(tok, "reboot=t", 8) == 0)
        return true;
    for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
        if (n > strlen(prefixes[i]) && strncmp(tok, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* Where ocvm's tail starts in S: the words from there on are all ocvm's. */
static size_t tail_start(const char *s)
{
    size_t end = strlen(s), start = end;
    while (end > 0) {
        size_t e = end;
        while (e > 0 && s[e - 1] == ' ')
            e--;
        size_t b = e;
        while (b > 0 && s[b - 1] != ' ')
            b--;
        if (b == e || !ours(s + b, e - b))
            break;
        start = b > 0 ? b - 1 : 0; /* the space ocvm put before it */
        end = b;
    }
    return start;
}

/* "ocvm.relay=vsock:any:P,tcp:127.0.0.1:P" (to the guest) or "ocvm.relay=tcp:127.0.0.1:P,
 * vsock:2:P" (to the host): sets *port and *to_guest. */
static bool parse_relay(const char *w, unsigned *port, bool *to_guest)
{
    unsigned a, b;
    int n = -1;
    if (sscanf(w, "ocvm.relay=vsock:any:%u,tcp:127.0.0.1:%u%n", &a, &b, &n) == 2 && n > 0 &&
        !w[n] && a == b && a && a <= 65535)
        *to_guest = true;
    else if (sscanf(w, "ocvm.relay=tcp:127.0.0.1:%u,vsock:2:%u%n", &a, &b, &n) == 2 && n > 0 &&
             !w[n] && a == b && a && a <= 65535)
        *to_guest = false;
    else
        return false;
    *port = a;
    return true;
}

/* What ocvm's tail says: the gateway's guest port (the first relay), forwards (whose host side
 * the domain does not hold), the guest's addresses (into IM->tail), read-only shares (IM->ro). */
static void read_tail(struct import *im, const char *tail)
{
    _cleanup_free_ char *copy = strdup(tail);
    bool gateway_seen = false;
    char *save = NULL;
    for (char *w = copy ? strtok_r(copy, " ", &save) : NULL; w; w = strtok_r(NULL, " ", &save)) {
        unsigned port;
        bool to_guest;
        if (parse_relay(w, &port, &to_guest)) {
            if (!gateway_seen && to_guest) {
                gateway_seen = true;
                set(im->says, "gateway", "guest_port", json_integer(port));
            } else
                note_alone(
                    im,
                    "a forward %s guest port %u: its host side is not in the domain; add it to "
                    "\"forwards\"",
                    to_guest ? "to" : "from", port);
        } else if (strncmp(w, "ocvm.ip=", 8) == 0) {
            char *slash = strchr(w + 8, '/');
            json_object_set_new(im->tail, "prefix", json_string(slash ? slash : "/24"));
            if (slash)
                *slash = '\0';
            json_object_set_new(im->tail, "guest_address", json_string(w + 8));
        } else if (strncmp(w, "ocvm.gw=", 8) == 0)
            json_object_set_new(im->tail, "gw", json_string(w + 8));
        else if (strncmp(w, "ocvm.dns=", 9) == 0)
            json_object_set_new(im->tail, "dns", json_string(w + 9));
        else if (strncmp(w, "ocvm.share=", 11) == 0) {
            char *comma = strchr(w + 11, ',');
            if (comma)
                *comma = '\0';
            json_object_set_new(im->ro, w + 11,
                                json_boolean(comma && strcmp(comma + 1, "ro") == 0));
        }
    }
    if (!copy)
        im->r = -ENOMEM;
}

/* --- the parts of the domain --- */

/* N's text as a decimal from 1 to MAX. */
static int uint_text(const xmlNode *n, unsigned max, unsigned *ret)
{
    _cleanup_xml_ xmlChar *t = xmlNodeGetContent(n);
    unsigned v;
    int end = -1;
    if (!t || !isdigit(t[0]) || sscanf((const char *)t, "%u%n", &v, &end) != 1 || t[end] ||
        v == 0 || v > max)
        return -EINVAL;
    *ret = v;
    return 0;
}

static int memory_mib(const xmlNode *n, uint64_t *ret)
{
    static const struct {
        const char *unit;
        uint64_t bytes;
    } units[] = {{"b", 1},           {"bytes", 1},       {"KB", 1000},      {"k", 1024},
                 {"KiB", 1024},      {"MB", 1000000},    {"M", 1 << 20},    {"MiB", 1 << 20},
                 {"GB", 1000000000}, {"G", 1u << 30},    {"GiB", 1u << 30}, {"TB", 1000000000000},
                 {"T", 1ull << 40},  {"TiB", 1ull << 40}};
    _cleanup_xml_ xmlChar *unit = attr(n, "unit"), *text = xmlNodeGetContent(n);
    uint64_t mult = 0, v;
    for (size_t i = 0; i < ELEMENTSOF(units); i++)
        if (!unit ? strcmp(units[i].unit, "KiB") == 0 : xmlStrEqual(unit, BAD_CAST units[i].unit))
            mult = units[i].bytes;
    int end = -1;
    if (!mult || !text || !isdigit(text[0]) ||
        sscanf((const char *)text, "%" SCNu64 "%n", &v, &end) != 1 || text[end] ||
        v > UINT64_MAX / mult)
        return -EINVAL;
    *ret = v * mult / (1 << 20);
    return 0;
}

static void read_os(struct import *im, const xmlNode *os)
{
    xmlNode *type = child(os, "type");
    _cleanup_xml_ xmlChar *machine = attr(type, "machine");
    const char *m = (const char *)machine;
    if (m && strcmp(m, "microvm") == 0)
        set(im->says, "machine", "type", json_string("microvm"));
    else {
        set(im->says, "machine", "type", json_string("q35"));
        if (!m || (strcmp(m, "q35") != 0 && strncmp(m, "pc-q35-", 7) != 0))
            note(im, "<os><type machine='%s'>: ocvm runs microvm or q35; q35 taken", m ? m : "");
    }
    set(im->says, "boot", "kernel", text_json(child(os, "kernel")));
    set(im->says, "boot", "initrd", text_json(child(os, "initrd")));
    for (xmlNode *c = os->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && !is(c, "type") && !is(c, "kernel") && !is(c, "initrd") &&
            !is(c, "cmdline") && !is(c, "boot"))
            note(im, "<os><%s>: not carried over (ocvm boots boot.kernel directly)", c->name);
}

/* The kernel command line without ocvm's tail, and what the tail said. */
static void read_cmdline(struct import *im, const xmlNode *os)
{
    _cleanup_xml_ xmlChar *t = xmlNodeGetContent(child(os, "cmdline"));
    const char *s = t ? (const char *)t : "";
    size_t start = tail_start(s);
    set(im->says, "boot", "cmdline", json_stringn(s, start));
    read_tail(im, s + start);
}

static void read_interface(struct import *im, const xmlNode *n, bool *seen)
{
    _cleanup_xml_ xmlChar *type = attr(n, "type"), *dev = attr(child(n, "target"), "dev"),
                          *mac = attr(child(n, "mac"), "address"),
                          *bridge = attr(child(n, "source"), "bridge");
    const char *t = type ? (const char *)type : "";
    if (*seen || (strcmp(t, "ethernet") != 0 && strcmp(t, "bridge") != 0)) {
        note(im, "<interface type='%s'>: not carried over (%s)", t,
             *seen ? "ocvm gives a VM one TAP" : "ocvm's TAP is an ethernet or bridge interface");
        return;
    }
    *seen = true;
    if (dev)
        set(im->says, "network", "tap", json_string((const char *)dev));
    if (mac)
        set(im->says, "network", "mac", json_string((const char *)mac));
    if (bridge)
        set(im->says, "network", "bridge", json_string((const char *)bridge));
    if (!json_object_get(im->says, "network"))
        json_object_set_new(im->says, "network", json_object());
}

static void read_filesystem(struct import *im, const xmlNode *n)
{
    _cleanup_xml_ xmlChar *type = attr(n, "type"), *driver = attr(child(n, "driver"), "type"),
                          *dir = attr(child(n, "source"), "dir"),
                          *tag = attr(child(n, "target"), "dir");
    if (!type || !xmlStrEqual(type, BAD_CAST "mount") || !dir || !tag) {
        note(im, "<filesystem type='%s'>: not carried over (ocvm shares host directories)",
             type ? (const char *)type : "mount");
        return;
    }
    bool virtiofs = driver && xmlStrEqual(driver, BAD_CAST "virtiofs");
    json_array_append_new(im->shares,
                          json_pack("{s:s,s:s,s:s,s:b}", "tag", (const char *)tag, "source",
                                    (const char *)dir, "proto", virtiofs ? "virtiofs" : "9p",
                                    "read_only", child(n, "readonly") != NULL));
}

static void read_vsock(struct import *im, const xmlNode *n)
{
    xmlNode *cid = child(n, "cid");
    _cleanup_xml_ xmlChar *address = attr(cid, "address");
    uint32_t v = 0;
    int end = -1;
    im->n_vsock++;
    if (address && !attr_is(cid, "auto", "yes") &&
        sscanf((const char *)address, "%" SCNu32 "%n", &v, &end) == 1 && !address[end] && v > 2)
        set(im->says, "vsock", "guest_cid", json_integer(v));
    else
        note(im, "<vsock>: no fixed CID; 3 taken");
    set(im->says, "vsock", "backend", json_string("kernel"));
}

static void read_devices(struct import *im, const xmlNode *devices)
{
    static const char *const own[] = {"controller", "serial",     "console",
                                      "input",      "memballoon", "rng"}; /* ocvm makes its own */
    bool interface_seen = false;
    for (xmlNode *d = devices->children; d; d = d->next) {
        if (d->type != XML_ELEMENT_NODE)
            continue;
        bool skip = false;
        for (size_t i = 0; i < ELEMENTSOF(own); i++)
            skip = skip || is(d, own[i]);
        if (skip)
            continue;
        if (is(d, "emulator"))
            set(im->says, "machine", "qemu", text_json(d));
        else if (is(d, "interface"))
            read_interface(im, d, &interface_seen);
        else if (is(d, "filesystem"))
            read_filesystem(im, d);
        else if (is(d, "vsock"))
            read_vsock(im, d);
        else
            note(im, "<devices><%s>: not carried over%s", d->name,
                 is(d, "disk") ? " (ocvm boots boot.kernel; host directories go in shares)"
                 : is(d, "graphics") || is(d, "video") ? " (ocvm's VMs have a serial console)"
                                                       : "");
    }
}

/* --- <qemu:commandline> --- */

/* A -device value's DRIVER, and its chardev= and tag= (each allocated, or NULL): plain
 * "driver,key=value,..." or JSON. */
struct device {
    char *driver, *chardev, *tag;
};

static void device_done(struct device *d)
{
    free(d->driver);
    free(d->chardev);
    free(d->tag);
}

static char *plain_value(const char *v, const char *key)
{
    const char *p = strstr(v, key);
    return p ? strndup(p + strlen(key), strcspn(p + strlen(key), ",")) : NULL;
}

static void parse_device(const char *v, struct device *ret)
{
    *ret = (struct device){0};
    if (v[0] != '{') {
        ret->driver = strndup(v, strcspn(v, ","));
        ret->chardev = plain_value(v, ",chardev=");
        ret->tag = plain_value(v, ",tag=");
        return;
    }
    json_t *o = json_loads(v, 0, NULL);
    const char *keys[] = {"driver", "chardev", "tag"};
    char **dst[] = {&ret->driver, &ret->chardev, &ret->tag};
    for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
        const char *s = json_string_value(json_object_get(o, keys[i]));
        *dst[i] = s ? strdup(s) : NULL;
    }
    json_decref(o);
}

static bool is_vhost_user(const struct device *d)
{
    return d->driver && (strncmp(d->driver, "vhost-user-vsock-", 17) == 0 ||
                         strncmp(d->driver, "vhost-user-fs-", 14) == 0);
}

/* A -device pair: a vhost-user vsock or fs device (ocvm's daemons serve them: counted, noted) or
 * microvm's i8042. True when consumed. */
static bool own_device(struct import *im, const char *value)
{
    struct device d;
    parse_device(value, &d);
    bool own = is_vhost_user(&d) || (d.driver && strcmp(d.driver, "i8042") == 0);
    if (own && strncmp(d.driver, "vhost-user-vsock-", 17) == 0) {
        im->n_vsock++;
        set(im->says, "vsock", "backend", json_string("user"));
    } else if (own && strncmp(d.driver, "vhost-user-fs-", 14) == 0 &&
               (!d.tag || strcmp(d.tag, SECRETS_SHARE_TAG) != 0))
        note_alone(im,
                   "virtiofs share \"%s\" in <qemu:commandline>: its source directory is not in "
                   "the domain; add it to \"shares\"",
                   d.tag ? d.tag : "");
    device_done(&d);
    return own;
}

/* An argument pair of ocvm's own (the vhost-user devices and their sockets, microvm's options):
 * consumed. CHARDEVS: the ids the vhost-user devices use. */
static bool own_pair(struct import *im, const char *a, const char *next, const json_t *chardevs)
{
    if (strcmp(a, "-chardev") == 0) {
        _cleanup_free_ char *id = plain_value(next, ",id=");
        return id && json_object_get(chardevs, id);
    }
    if (strcmp(a, "-global") == 0)
        return strcmp(next, "virtio-mmio.force-legacy=false") == 0;
    if (strcmp(a, "-machine") == 0)
        return strcmp(next, "rtc=on,pic=off") == 0 || strcmp(next, "rtc=on,pic=off,pit=off") == 0;
    return strcmp(a, "-device") == 0 && own_device(im, next);
}

/* The chardev ids the vhost-user devices among VALUES use (an object used as a set). */
static json_t *vhost_user_chardevs(xmlChar *const *values, size_t n)
{
    json_t *ids = json_object();
    for (size_t i = 0; ids && i + 1 < n; i++) {
        struct device d = {0};
        if (values[i] && values[i + 1] && xmlStrEqual(values[i], BAD_CAST "-device"))
            parse_device((const char *)values[i + 1], &d);
        if (is_vhost_user(&d) && d.chardev)
            json_object_set_new(ids, d.chardev, json_true());
        device_done(&d);
    }
    return ids;
}

static void read_commandline(struct import *im, const xmlNode *cl)
{
    xmlChar *values[512];
    size_t n = 0;
    bool cut = false;
    for (xmlNode *a = cl->children; a; a = a->next)
        if (in_ns(a, LIBVIRT_QEMU_NS) && xmlStrEqual(a->name, BAD_CAST "arg")) {
            if (n < ELEMENTSOF(values))
                values[n++] = attr(a, "value");
            else
                cut = true;
        } else if (a->type == XML_ELEMENT_NODE)
            note(im, "<qemu:commandline><qemu:%s>: not carried over", a->name);
    if (cut)
        note(im, "<qemu:commandline>: only the first %zu arguments read", n);
    json_t *extra = json_array(), *chardevs = vhost_user_chardevs(values, n);
    for (size_t i = 0; i < n; i++) {
        if (values[i] && i + 1 < n && values[i + 1] &&
            own_pair(im, (const char *)values[i], (const char *)values[i + 1], chardevs))
            i++;
        else if (values[i])
            json_array_append_new(extra, json_string((const char *)values[i]));
    }
    for (size_t i = 0; i < n; i++)
        xmlFree(values[i]);
    json_decref(chardevs);
    set(im->says, "machine", "extra_args", extra);
}

/* --- the whole domain --- */

static bool lifecycle_as_ocvm(const xmlNode *n)
{
    _cleanup_xml_ xmlChar *t = xmlNodeGetContent(n);
    const char *want = is(n, "on_poweroff") ? "destroy" : "restart";
    return t && xmlStrEqual(t, BAD_CAST want);
}

static void read_domain(struct import *im, const xmlNode *dom)
{
    static const char *const ignored[] = {"uuid",     "title",    "description", "metadata",
                                          "features", "cpu",      "clock",       "memoryBacking",
                                          "seclabel", "resource", "pm",          "currentMemory"};
    for (xmlNode *n = dom->children; n; n = n->next) {
        bool skip = false;
        for (size_t i = 0; i < ELEMENTSOF(ignored); i++)
            skip = skip || is(n, ignored[i]);
        uint64_t mib;
        unsigned vcpu;
        if (n->type != XML_ELEMENT_NODE || skip)
            continue;
        if (is(n, "name"))
            set(im->says, NULL, "name", text_json(n));
        else if (is(n, "memory") && memory_mib(n, &mib) == 0)
            set(im->says, "machine", "memory_mib", json_integer((json_int_t)mib));
        else if (is(n, "vcpu") && uint_text(n, 255, &vcpu) == 0)
            set(im->says, "machine", "vcpu", json_integer(vcpu));
        else if (is(n, "os")) {
            read_os(im, n);
            read_cmdline(im, n);
        } else if (is(n, "devices"))
            read_devices(im, n);
        else if (in_ns(n, LIBVIRT_QEMU_NS) && xmlStrEqual(n->name, BAD_CAST "commandline"))
            read_commandline(im, n);
        else if (is(n, "on_poweroff") || is(n, "on_reboot") || is(n, "on_crash")) {
            if (!lifecycle_as_ocvm(n))
                note(im, "<%s>: ocvm's is %s", n->name,
                     is(n, "on_poweroff") ? "destroy" : "restart");
        } else
            note(im, "<%s>: not carried over", n->name);
    }
}

/* --- what the domain says, completed (no metadata), or laid over the metadata --- */

static void finish_network(struct import *im)
{
    json_t *net = json_object_get(im->says, "network");
    const char *gw = json_string_value(json_object_get(im->tail, "gw"));
    const char *prefix = json_string_value(json_object_get(im->tail, "prefix"));
    if (!net) {
        if (json_object_size(im->tail))
            note(im, "ocvm.ip=, ocvm.gw=, ocvm.dns= on the kernel command line, but no interface: "
                     "not carried over");
        return;
    }
    json_t *v;
    if ((v = json_object_get(im->tail, "guest_address")))
        json_object_set(net, "guest_address", v);
    if ((v = json_object_get(im->tail, "dns")))
        json_object_set(net, "dns", v);
    if (gw) {
        _cleanup_free_ char *cidr = NULL;
        if (asprintf(&cidr, "%s%s", gw, prefix ? prefix : "/24") < 0)
            im->r = -ENOMEM;
        else
            json_object_set_new(net, "bridge_address", json_string(cidr));
    }
}

static void finish_shares(struct import *im)
{
    size_t i;
    json_t *s;
    json_array_foreach(im->shares, i, s)
    {
        json_t *ro = json_object_get(im->ro, json_string_value(json_object_get(s, "tag")));
        if (ro)
            json_object_set(s, "read_only", ro);
    }
    if (json_array_size(im->shares))
        json_object_set(im->says, "shares", im->shares);
}

/* Completes what the domain says into a config of its own (DOM: the <domain> element). */
static void finish_alone(struct import *im, const xmlNode *dom)
{
    _cleanup_xml_ xmlChar *type = attr(dom, "type");
    bool kvm = type && xmlStrEqual(type, BAD_CAST "kvm");
    if (!kvm && !(type && xmlStrEqual(type, BAD_CAST "qemu")))
        note(im, "<domain type='%s'>: ocvm runs kvm or qemu (TCG); accel \"auto\" taken",
             type ? (const char *)type : "");
    set(im->says, "machine", "accel", json_string(kvm ? "kvm" : type ? "tcg" : "auto"));
    json_t *vsock = json_object_get(im->says, "vsock");
    if (!vsock) {
        note_alone(
            im, "no vsock device: the gateway cannot be reached from the host (\"vsock\": null)");
        json_object_set_new(im->says, "vsock", json_null());
    } else if (!json_object_get(vsock, "guest_cid")) {
        note_alone(
            im, "the vhost-user vsock device's CID is its backend's, not in the domain: 3 taken");
        json_object_set_new(vsock, "guest_cid", json_integer(3));
    }
    if (!json_object_get(im->says, "network"))
        json_object_set_new(im->says, "network", json_null());
}

/* The keys of the config a domain can change after ocvm defined it. */
static const struct {
    const char *section, *key;
} overlaid[] = {
    {NULL, "name"},
    {"machine", "type"},
    {"machine", "vcpu"},
    {"machine", "memory_mib"},
    {"machine", "extra_args"},
    {"boot", "kernel"},
    {"boot", "initrd"},
    {"boot", "cmdline"},
    {"vsock", "guest_cid"},
    {"network", "tap"},
    {"network", "mac"},
    {"network", "bridge"},
    {"network", "guest_address"},
    {"network", "bridge_address"},
    {"network", "dns"},
    {"gateway", "guest_port"},
};

/* Lays what the domain says over ocvm's metadata META, noting each value that differs. */
static void overlay(struct import *im, json_t *meta)
{
    for (size_t i = 0; i < ELEMENTSOF(overlaid); i++) {
        const char *sec = overlaid[i].section, *key = overlaid[i].key;
        json_t *ds = sec ? json_object_get(im->says, sec) : im->says;
        json_t *ms = sec ? json_object_get(meta, sec) : meta;
        json_t *d = json_object_get(ds, key), *m = json_object_get(ms, key);
        if (!d || !json_is_object(ms) || json_equal(d, m))
            continue;
        _cleanup_free_ char *dt = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY);
        _cleanup_free_ char *mt = m ? json_dumps(m, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        note(im, "%s%s%s: %s in the domain, %s in ocvm's metadata: the domain's taken",
             sec ? sec : "", sec ? "." : "", key, dt ? dt : "?", mt ? mt : "absent");
        json_object_set(ms, key, d);
    }
    bool dnet = json_is_object(json_object_get(im->says, "network"));
    bool mnet = json_is_object(json_object_get(meta, "network"));
    if (dnet != mnet)
        note(im, "%s: ocvm's metadata kept",
             dnet ? "an interface, but \"network\": null in "
                    "ocvm's metadata"
                  : "no interface in the domain, but a \"network\"");
}

/* The text of ocvm's <metadata><ocvm:config>, or NULL. */
static xmlChar *metadata_text(const xmlNode *dom)
{
    for (xmlNode *m = child(dom, "metadata") ? child(dom, "metadata")->children : NULL; m;
         m = m->next)
        if (in_ns(m, LIBVIRT_OCVM_NS) && xmlStrEqual(m->name, BAD_CAST "config"))
            return xmlNodeGetContent(m);
    return NULL;
}

static int parse_failed(char **error)
{
    const xmlError *e = xmlGetLastError();
    if (!e)
        return error_setf(error, -EINVAL, "domain XML: not well-formed");
    size_t n = e->message ? strcspn(e->message, "\n") : 0;
    return error_setf(error, -EINVAL, "domain XML:%d: %.*s", e->line, (int)n,
                      e->message ? e->message : "");
}

static int import_doc(struct import *im, const xmlNode *dom, struct libvirt_import *ret,
                      char **error)
{
    read_domain(im, dom);
    if (im->r < 0)
        return im->r;
    if (!json_string_value(json_object_get(json_object_get(im->says, "boot"), "kernel")))
        return error_setf(error, -EINVAL,
                          "the domain has no <os><kernel>: ocvm boots a kernel directly (firmware "
                          "and disk boot cannot be carried over)");
    if (im->n_vsock > 1)
        return error_setf(error, -EINVAL,
                          "the domain has %u vsock devices: an ocvm VM has one (its CID is the "
                          "guest's address)",
                          im->n_vsock);
    finish_network(im);
    finish_shares(im);
    json_t *result = im->says;
    _cleanup_xml_ xmlChar *meta_text = metadata_text(dom);
    json_t *meta =
        meta_text ? json_loads((const char *)meta_text, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (meta_text && !json_is_object(meta)) {
        json_decref(meta);
        return error_setf(error, -EINVAL, "ocvm's <metadata> is not a JSON config object");
    }
    if (meta) {
        overlay(im, meta);
        result = meta;
    } else {
        finish_alone(im, dom);
        for (size_t i = 0; i < im->alone.n; i++)
            add_line(im, &im->notes, TAKE_PTR(im->alone.v[i]));
    }
    int r = im->r < 0 ? im->r : config_json_dump(result, &ret->json);
    json_decref(meta);
    ret->from_metadata = meta != NULL;
    return r;
}

int libvirt_import_xml(const char *xml, size_t len, struct libvirt_import *ret, char **error)
{
    *ret = (struct libvirt_import){0};
    *error = NULL;
    if (len > LIBVIRT_XML_MAX)
        return error_setf(error, -EFBIG, "domain XML: larger than %u bytes", LIBVIRT_XML_MAX);
    /* no network, no entity substitution, no DTD: a domain needs none of them */
    xmlDoc *doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc)
        return parse_failed(error);
    const xmlNode *dom = xmlDocGetRootElement(doc);
    int r;
    if (doc->intSubset || !dom || !is(dom, "domain"))
        r = error_setf(error, -EINVAL, "domain XML: %s",
                       doc->intSubset ? "a DOCTYPE is not accepted" : "the root is not <domain>");
    else {
        struct import im = {.says = json_object(),
                            .tail = json_object(),
                            .ro = json_object(),
                            .shares = json_array()};
        r = im.says && im.tail && im.ro && im.shares ? import_doc(&im, dom, ret, error) : -ENOMEM;
        json_decref(im.says);
        json_decref(im.tail);
        json_decref(im.ro);
        json_decref(im.shares);
        notes_free(&im.alone);
        ret->notes = TAKE_PTR(im.notes.v);
        ret->n_notes = im.notes.n;
    }
    xmlFreeDoc(doc);
    if (r < 0)
        libvirt_import_done(ret);
    return r;
}

void libvirt_import_done(struct libvirt_import *r)
{
    free(r->json);
    for (size_t i = 0; i < r->n_notes; i++)
        free(r->notes[i]);
    free(r->notes);
    *r = (struct libvirt_import){0};
}
