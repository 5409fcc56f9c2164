#include "config/config.h"

#include "common/json_reader.h"
#include "common/cleanup.h"
#include "common/error.h"
#include "vsock/endpoint.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

/* ---- enum tables: one per enum, shared by parser and printers ---- */

static const char *const machine_type_table[_MACHINE_TYPE_MAX] = {
    [MACHINE_MICROVM] = "microvm", [MACHINE_Q35] = "q35"};
static const char *const accel_table[_ACCEL_MAX] = {
    [ACCEL_AUTO] = "auto", [ACCEL_KVM] = "kvm", [ACCEL_TCG] = "tcg"};
static const char *const vsock_backend_table[_VSOCK_BACKEND_MAX] = {[VSOCK_BACKEND_AUTO] = "auto",
                                                                    [VSOCK_BACKEND_KERNEL] =
                                                                        "kernel",
                                                                    [VSOCK_BACKEND_USER] = "user"};
static const char *const share_proto_table[_SHARE_PROTO_MAX] = {
    [SHARE_VIRTIOFS] = "virtiofs", [SHARE_9P] = "9p"};
static const char *const forward_dir_table[_FORWARD_DIR_MAX] = {
    [FORWARD_TO_GUEST] = "guest", [FORWARD_TO_HOST] = "host"};

#define TABLE_LOOKUP(table, v) ((unsigned)(v) < ELEMENTSOF(table) ? (table)[v] : NULL)
const char *machine_type_to_string(enum machine_type t)
{
    return TABLE_LOOKUP(machine_type_table, t);
}
const char *accel_to_string(enum accel a)
{
    return TABLE_LOOKUP(accel_table, a);
}
const char *vsock_backend_to_string(enum vsock_backend b)
{
    return TABLE_LOOKUP(vsock_backend_table, b);
}
const char *share_proto_to_string(enum share_proto p)
{
    return TABLE_LOOKUP(share_proto_table, p);
}
const char *forward_dir_to_string(enum forward_dir d)
{
    return TABLE_LOOKUP(forward_dir_table, d);
}

/* ---- value checks ---- */

bool config_name_is_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 32 || name[0] == '-')
        return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return false;
    return true;
}

static bool ifname_is_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 15 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_.", *p))
            return false;
    return true;
}

static int check_ifname(struct json_reader *l, const char *key, const char *value)
{
    if (ifname_is_valid(value))
        return 0;
    jr_push_key(l, key);
    int r = jr_fail(l, false, "\"%s\" is not a valid interface name (1-15 of A-Z a-z 0-9 - _ .)",
                    value);
    jr_pop(l);
    return r;
}

static int parse_ipv4(const char *s, uint32_t *ret)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1)
        return -EINVAL;
    *ret = ntohl(a.s_addr);
    return 0;
}

static int parse_cidr4(const char *s, uint32_t *addr, unsigned *prefix)
{
    const char *slash = strchr(s, '/');
    char ip[INET_ADDRSTRLEN];
    if (!slash || (size_t)(slash - s) >= sizeof(ip))
        return -EINVAL;
    memcpy(ip, s, (size_t)(slash - s));
    ip[slash - s] = '\0';
    char *end;
    errno = 0;
    unsigned long p = strtoul(slash + 1, &end, 10);
    if (errno || *end || end == slash + 1 || p < 1 || p > 30 || !isdigit((unsigned char)slash[1]))
        return -EINVAL;
    *prefix = (unsigned)p;
    return parse_ipv4(ip, addr);
}

static int check_mac(const char *s)
{
    unsigned b[6];
    char tail;
    if (strlen(s) != 17 || sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4],
                                  &b[5], &tail) != 6)
        return -EINVAL;
    for (int i = 0; i < 6; i++)
        if (!isxdigit((unsigned char)s[i * 3]) || !isxdigit((unsigned char)s[i * 3 + 1]))
            return -EINVAL;
    if (b[0] & 1)
        return -EDOM; /* multicast */
    return 0;
}

/* ---- sections ---- */

static int load_machine(struct json_reader *l, json_t *root, struct vm_machine *m)
{
    static const char *const keys[] = {"type",
                                       "accel",
                                       "vcpu",
                                       "memory_mib",
                                       "qemu",
                                       "user",
                                       "extra_args",
                                       "unsafe_qemu_as_root",
                                       "unsafe_extra_args",
                                       NULL};
    json_t *o, *extra;
    int r = jr_get_object(l, root, "machine", false, &o);
    if (r < 0)
        return r;
    json_t *empty = o ? NULL : json_object();
    if (!o && !(o = empty))
        return -ENOMEM;
    jr_push_key(l, "machine");
    if ((r = jr_check_keys(l, o, keys)) < 0 ||
        (r = JR_GET_ENUM(l, o, "type", machine_type_table, MACHINE_MICROVM, m->type)) < 0 ||
        (r = JR_GET_ENUM(l, o, "accel", accel_table, ACCEL_AUTO, m->accel)) < 0 ||
        (r = JR_GET_UINT(l, o, "vcpu", 1, 255, 2, m->vcpu)) < 0 ||
        (r = JR_GET_UINT(l, o, "memory_mib", 128, 1024 * 1024, 2048, m->memory_mib)) < 0 ||
        (r = jr_get_string(l, o, "qemu", "qemu-system-x86_64", JR_NONEMPTY, &m->qemu)) < 0 ||
        (r = jr_get_string(l, o, "user", "ocvm", JR_NULLABLE | JR_NONEMPTY, &m->user)) < 0 ||
        (r = jr_get_array(l, o, "extra_args", &extra)) < 0 ||
        (r = jr_get_bool(l, o, "unsafe_qemu_as_root", false, &m->unsafe_qemu_as_root)) < 0 ||
        (r = jr_get_bool(l, o, "unsafe_extra_args", false, &m->unsafe_extra_args)) < 0)
        goto out;
    /* A user named here must exist; the default ("ocvm") is checked when QEMU is started, with
     * a line that says how to create it (launcher/host_facts.c). */
    if (m->user && json_object_get(o, "user") && !getpwnam(m->user)) {
        jr_push_key(l, "user");
        r = jr_fail(l, false, "no such user \"%s\" on this host", m->user);
        jr_pop(l);
        goto out;
    }
    size_t n = extra ? json_array_size(extra) : 0;
    if (!(m->extra_args = calloc(n + 1, sizeof(char *)))) {
        r = -ENOMEM;
        goto out;
    }
    jr_push_key(l, "extra_args");
    for (size_t i = 0; i < n && r == 0; i++) {
        json_t *v = json_array_get(extra, i);
        jr_push_index(l, i);
        if (!json_is_string(v))
            r = jr_fail(l, false, "expected a string, got %s", jr_type_name(v));
        else if (jr_has_control_chars(json_string_value(v)) ||
                 strlen(json_string_value(v)) != json_string_length(v))
            r = jr_fail(l, false, "must not contain control characters or NUL");
        else if (!(m->extra_args[i] = strdup(json_string_value(v))))
            r = -ENOMEM;
        jr_pop(l);
    }
    jr_pop(l);
out:
    jr_pop(l);
    json_decref(empty);
    return r;
}

static int load_boot(struct json_reader *l, json_t *root, struct vm_boot *b)
{
    static const char *const keys[] = {"kernel", "initrd", "cmdline", "unsafe_cmdline", NULL};
    json_t *o;
    int r = jr_get_object(l, root, "boot", false, &o);
    if (r < 0)
        return r;
    if (!o) {
        jr_push_key(l, "boot");
        r = jr_fail(l, false, "missing (this key is required: it names the guest kernel)");
        jr_pop(l);
        return r;
    }
    jr_push_key(l, "boot");
    if ((r = jr_check_keys(l, o, keys)) < 0 ||
        (r = jr_get_string(l, o, "kernel", NULL, JR_REQUIRED | JR_NONEMPTY, &b->kernel)) < 0 ||
        (r = jr_get_string(l, o, "initrd", NULL, JR_NULLABLE | JR_NONEMPTY, &b->initrd)) < 0 ||
        (r = jr_get_string(l, o, "cmdline", "console=ttyS0 panic=-1", 0, &b->cmdline)) < 0 ||
        (r = jr_get_bool(l, o, "unsafe_cmdline", false, &b->unsafe_cmdline)) < 0 ||
        (r = jr_resolve_file(l, "kernel", &b->kernel, false)) < 0 ||
        (r = jr_resolve_file(l, "initrd", &b->initrd, false)) < 0)
        goto out;
out:
    jr_pop(l);
    return r;
}

static int load_vsock(struct json_reader *l, json_t *root, struct vm_vsock *v)
{
    static const char *const keys[] = {"backend", "guest_cid", NULL};
    json_t *o, *raw = json_object_get(root, "vsock");
    int r = jr_get_object(l, root, "vsock", true, &o);
    if (r < 0)
        return r;
    *v = (struct vm_vsock){
        .enabled = !json_is_null(raw), .backend = VSOCK_BACKEND_AUTO, .guest_cid = 3};
    if (!o)
        return 0;
    jr_push_key(l, "vsock");
    if ((r = jr_check_keys(l, o, keys)) == 0 &&
        (r = JR_GET_ENUM(l, o, "backend", vsock_backend_table, VSOCK_BACKEND_AUTO, v->backend)) ==
            0)
        r = JR_GET_UINT(l, o, "guest_cid", 3, UINT32_MAX - 1, 3, v->guest_cid);
    jr_pop(l);
    return r;
}

/* An egress host is a DNS name or an IPv4 address or CIDR: it ends up in nft text. */
static int check_host(struct json_reader *l, const char *host)
{
    size_t n = strlen(host);
    bool ok = n > 0 && n <= 253 && host[0] != '-' && host[0] != '.';
    for (const char *p = host; *p && ok; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-./", *p))
            ok = false;
    if (ok)
        return 0;
    jr_push_key(l, "host");
    int r = jr_fail(l, false, "\"%s\" is not a host name or IPv4 address", host);
    jr_pop(l);
    return r;
}

static int load_egress(struct json_reader *l, json_t *net, struct vm_network *n)
{
    static const char *const keys[] = {"allow", NULL};
    static const char *const rule_keys[] = {"host", "ports", NULL};
    json_t *o, *allow;
    int r = jr_get_object(l, net, "egress", false, &o);
    if (r < 0 || !o)
        return r;
    jr_push_key(l, "egress");
    if ((r = jr_check_keys(l, o, keys)) < 0 || (r = jr_get_array(l, o, "allow", &allow)) < 0 ||
        !allow)
        goto out;
    size_t count = json_array_size(allow);
    if (count && !(n->egress_allow = calloc(count, sizeof(*n->egress_allow)))) {
        r = -ENOMEM;
        goto out;
    }
    jr_push_key(l, "allow");
    for (size_t i = 0; i < count && r == 0; i++) {
        json_t *rule = json_array_get(allow, i), *ports;
        struct vm_egress_rule *e = &n->egress_allow[i];
        n->n_egress_allow = i + 1;
        jr_push_index(l, i);
        if (!json_is_object(rule))
            r = jr_fail(l, false, "expected an object {\"host\": ..., \"ports\": [...]}, got %s",
                        jr_type_name(rule));
        else if ((r = jr_check_keys(l, rule, rule_keys)) == 0 &&
                 (r = jr_get_string(l, rule, "host", NULL, JR_REQUIRED | JR_NONEMPTY, &e->host)) ==
                     0 &&
                 (r = check_host(l, e->host)) == 0 &&
                 (r = jr_get_array(l, rule, "ports", &ports)) == 0) {
            size_t np = ports ? json_array_size(ports) : 0;
            jr_push_key(l, "ports");
            if (np == 0)
                r = jr_fail(l, false, "must list at least one port");
            else if (!(e->ports = calloc(np, sizeof(uint16_t))))
                r = -ENOMEM;
            for (size_t j = 0; j < np && r == 0; j++) {
                uint64_t p;
                jr_push_index(l, j);
                if ((r = jr_check_uint(l, json_array_get(ports, j), 1, 65535, &p)) == 0)
                    e->ports[e->n_ports++] = (uint16_t)p;
                jr_pop(l);
            }
            jr_pop(l);
        }
        jr_pop(l);
    }
    jr_pop(l);
out:
    jr_pop(l);
    return r;
}

static int load_network(struct json_reader *l, json_t *root, struct vm_network **ret)
{
    static const char *const keys[] = {
        "bridge", "bridge_address", "tap", "guest_address", "mac", "uplink", "dns", "egress", NULL};
    json_t *v = json_object_get(root, "network");
    json_t *o;
    int r = jr_get_object(l, root, "network", true, &o);
    if (r < 0)
        return r;
    if (v && json_is_null(v)) {
        *ret = NULL;
        return 0;
    }
    struct vm_network *n = calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    *ret = n; /* owned by the config from here on, freed with it */
    json_t *empty = o ? NULL : json_object();
    if (!o && !(o = empty))
        return -ENOMEM;
    jr_push_key(l, "network");
    uint32_t br, guest, dns;
    unsigned prefix;
    if ((r = jr_check_keys(l, o, keys)) < 0 ||
        (r = jr_get_string(l, o, "bridge", "br-openclaw", 0, &n->bridge)) < 0 ||
        (r = jr_get_string(l, o, "bridge_address", "192.168.83.1/24", 0, &n->bridge_address)) < 0 ||
        (r = jr_get_string(l, o, "tap", "vm-openclaw", 0, &n->tap)) < 0 ||
        (r = jr_get_string(l, o, "guest_address", "192.168.83.2", 0, &n->guest_address)) < 0 ||
        (r = jr_get_string(l, o, "mac", "02:00:00:00:00:01", 0, &n->mac)) < 0 ||
        (r = jr_get_string(l, o, "uplink", "auto", 0, &n->uplink)) < 0 ||
        (r = jr_get_string(l, o, "dns", "192.168.83.1", 0, &n->dns)) < 0 ||
        (r = check_ifname(l, "bridge", n->bridge)) < 0 ||
        (r = check_ifname(l, "tap", n->tap)) < 0 ||
        (strcmp(n->uplink, "auto") != 0 && (r = check_ifname(l, "uplink", n->uplink)) < 0))
        goto out;
    if (strcmp(n->bridge, n->tap) == 0) {
        jr_push_key(l, "tap");
        r = jr_fail(l, false, "must differ from network.bridge");
        jr_pop(l);
    } else if (parse_cidr4(n->bridge_address, &br, &prefix) < 0) {
        jr_push_key(l, "bridge_address");
        r = jr_fail(l, false,
                    "\"%s\" is not an IPv4 address with a prefix length from 1 to 30 "
                    "(e.g. 192.168.83.1/24)",
                    n->bridge_address);
        jr_pop(l);
    } else if (parse_ipv4(n->guest_address, &guest) < 0) {
        jr_push_key(l, "guest_address");
        r = jr_fail(l, false, "\"%s\" is not an IPv4 address", n->guest_address);
        jr_pop(l);
    } else if (parse_ipv4(n->dns, &dns) < 0) {
        jr_push_key(l, "dns");
        r = jr_fail(l, false, "\"%s\" is not an IPv4 address", n->dns);
        jr_pop(l);
    } else {
        uint32_t mask = prefix ? ~0u << (32 - prefix) : 0;
        const char *why = NULL;
        if ((guest & mask) != (br & mask))
            why = "is not in the subnet of network.bridge_address";
        else if (guest == br)
            why = "must differ from the bridge's own address";
        else if ((guest & ~mask) == 0 || (guest & ~mask) == ~mask)
            why = "is the network or broadcast address of the subnet";
        else if ((br & ~mask) == 0 || (br & ~mask) == ~mask) {
            jr_push_key(l, "bridge_address");
            r = jr_fail(l, false, "\"%s\" is the network or broadcast address of its subnet",
                        n->bridge_address);
            jr_pop(l);
            goto out;
        }
        if (why) {
            jr_push_key(l, "guest_address");
            r = jr_fail(l, false, "%s %s", n->guest_address, why);
            jr_pop(l);
            goto out;
        }
        if ((r = check_mac(n->mac)) < 0) {
            jr_push_key(l, "mac");
            if (r == -EDOM)
                r = jr_fail(l, false, "\"%s\" is a multicast address (first octet must be even)",
                            n->mac);
            else
                r = jr_fail(l, false, "\"%s\" is not a MAC address like 02:00:00:00:00:01", n->mac);
            jr_pop(l);
            goto out;
        }
        r = load_egress(l, o, n);
    }
out:
    jr_pop(l);
    json_decref(empty);
    return r;
}

/* gateway.openclaw, an object kept as compact JSON with sorted keys for policy/, which judges it
 * (OCVM-P008...) and renders it over ocvm's defaults. The one key ocvm owns outright is
 * gateway.port, where the guest's relay connects: it comes from gateway.guest_port. */
static int load_openclaw(struct json_reader *l, json_t *o, struct vm_gateway *g)
{
    json_t *oc;
    int r = jr_get_object(l, o, "openclaw", false, &oc);
    if (r < 0)
        return r;
    json_t *port = json_object_get(json_object_get(oc, "gateway"), "port");
    if (port && (!json_is_integer(port) || json_integer_value(port) != g->guest_port)) {
        jr_push_key(l, "openclaw");
        jr_push_key(l, "gateway");
        jr_push_key(l, "port");
        r = jr_fail(l, false,
                    "ocvm sets it to gateway.guest_port (%u), where the guest's relay connects: "
                    "set that instead",
                    g->guest_port);
        jr_pop(l);
        jr_pop(l);
        jr_pop(l);
        return r;
    }
    g->openclaw_json = oc ? json_dumps(oc, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}");
    return g->openclaw_json ? 0 : -ENOMEM;
}

static int load_gateway(struct json_reader *l, json_t *root, struct vm_gateway *g)
{
    static const char *const keys[] = {"guest_port",
                                       "host_listen",
                                       "health_path",
                                       "probe_interval_s",
                                       "probe_failures",
                                       "probe_restart_after",
                                       "openclaw",
                                       "unsafe_remote_gateway",
                                       "unsafe_openclaw_bind",
                                       "unsafe_openclaw_auth",
                                       "unsafe_openclaw_tools",
                                       NULL};
    json_t *o;
    int r = jr_get_object(l, root, "gateway", false, &o);
    if (r < 0)
        return r;
    json_t *empty = o ? NULL : json_object();
    if (!o && !(o = empty))
        return -ENOMEM;
    jr_push_key(l, "gateway");
    char host[64];
    uint16_t port;
    const char *why;
    if ((r = jr_check_keys(l, o, keys)) < 0 ||
        (r = JR_GET_UINT(l, o, "guest_port", 1, 65535, 18789, g->guest_port)) < 0 ||
        (r = jr_get_string(l, o, "host_listen", "127.0.0.1:18789", 0, &g->host_listen)) < 0 ||
        (r = jr_get_string(l, o, "health_path", "/readyz", 0, &g->health_path)) < 0 ||
        (r = JR_GET_UINT(l, o, "probe_interval_s", 0, 3600, 10, g->probe_interval_s)) < 0 ||
        (r = JR_GET_UINT(l, o, "probe_failures", 1, 1000, 3, g->probe_failures)) < 0 ||
        (r = JR_GET_UINT(l, o, "probe_restart_after", 0, 1000, 6, g->probe_restart_after)) < 0 ||
        (r = jr_get_bool(l, o, "unsafe_remote_gateway", false, &g->unsafe_remote_gateway)) < 0 ||
        (r = jr_get_bool(l, o, "unsafe_openclaw_bind", false, &g->unsafe_openclaw_bind)) < 0 ||
        (r = jr_get_bool(l, o, "unsafe_openclaw_auth", false, &g->unsafe_openclaw_auth)) < 0 ||
        (r = jr_get_bool(l, o, "unsafe_openclaw_tools", false, &g->unsafe_openclaw_tools)) < 0 ||
        (r = load_openclaw(l, o, g)) < 0)
        goto out;
    /* that it listens on loopback only is a policy rule (OCVM-P001), checked by policy/ */
    if (endpoint_parse_hostport(g->host_listen, host, &port, &why) < 0) {
        jr_push_key(l, "host_listen");
        r = jr_fail(l, false, "\"%s\": %s", g->host_listen, why);
        jr_pop(l);
    } else if (g->health_path[0] != '/' || strpbrk(g->health_path, " \t")) {
        jr_push_key(l, "health_path");
        r = jr_fail(l, false, "must be a URL path starting with '/' and without spaces");
        jr_pop(l);
    } else if (g->probe_restart_after && g->probe_restart_after < g->probe_failures) {
        /* a restart comes after the VM was marked degraded, never before */
        jr_push_key(l, "probe_restart_after");
        r = jr_fail(l, false, "must be 0 (never) or at least probe_failures (%u)",
                    g->probe_failures);
        jr_pop(l);
    }
out:
    jr_pop(l);
    json_decref(empty);
    return r;
}

static int check_endpoint(struct json_reader *l, const char *key, const char *value)
{
    struct endpoint e;
    const char *why;
    int r = endpoint_parse(value, &e, &why);
    if (r == 0 && e.kind != ENDPOINT_VSOCK)
        return 0;
    if (r == 0)
        why = "a host endpoint cannot be vsock";
    jr_push_key(l, key);
    r = jr_fail(l, false, "\"%s\": %s", value, why);
    jr_pop(l);
    return r;
}

static int load_forward(struct json_reader *l, json_t *o, struct vm_forward *f)
{
    static const char *const keys[] = {
        "to", "listen", "connect", "guest_port", "unsafe_remote_listen", NULL};
    int r;
    if (!json_is_object(o))
        return jr_fail(l, false, "expected an object, got %s", jr_type_name(o));
    if (!json_object_get(o, "to")) {
        jr_push_key(l, "to");
        r = jr_fail(l, false, "missing (\"guest\" or \"host\")");
        jr_pop(l);
        return r;
    }
    if ((r = jr_check_keys(l, o, keys)) < 0 ||
        (r = JR_GET_ENUM(l, o, "to", forward_dir_table, FORWARD_TO_GUEST, f->to)) < 0 ||
        (r = JR_GET_UINT(l, o, "guest_port", 1, 65535, 0, f->guest_port)) < 0 ||
        (r = jr_get_bool(l, o, "unsafe_remote_listen", false, &f->unsafe_remote_listen)) < 0)
        return r;
    const char *need = f->to == FORWARD_TO_GUEST ? "listen" : "connect";
    const char *forbid = f->to == FORWARD_TO_GUEST ? "connect" : "listen";
    if (json_object_get(o, forbid)) {
        jr_push_key(l, forbid);
        r = jr_fail(l, true, "not allowed with \"to\": \"%s\" (use \"%s\")",
                    forward_dir_to_string(f->to), need);
        jr_pop(l);
        return r;
    }
    if (f->guest_port == 0) {
        jr_push_key(l, "guest_port");
        r = jr_fail(l, false, "missing (this key is required)");
        jr_pop(l);
        return r;
    }
    char **dst = f->to == FORWARD_TO_GUEST ? &f->listen : &f->connect;
    /* that a listener is on loopback only is a policy rule (OCVM-P002), checked by policy/ */
    if ((r = jr_get_string(l, o, need, NULL, JR_REQUIRED, dst)) < 0 ||
        (r = check_endpoint(l, need, *dst)) < 0)
        return r;
    return 0;
}

static int load_forwards(struct json_reader *l, json_t *root, struct vm_config *c)
{
    json_t *a;
    int r = jr_get_array(l, root, "forwards", &a);
    if (r < 0 || !a)
        return r;
    size_t n = json_array_size(a);
    if (n && !c->vsock.enabled) {
        jr_push_key(l, "forwards");
        r = jr_fail(l, false, "forwards run over vsock, but \"vsock\" is null");
        jr_pop(l);
        return r;
    }
    if (n && !(c->forwards = calloc(n, sizeof(*c->forwards))))
        return -ENOMEM;
    jr_push_key(l, "forwards");
    for (size_t i = 0; i < n && r == 0; i++) {
        c->n_forwards = i + 1;
        jr_push_index(l, i);
        r = load_forward(l, json_array_get(a, i), &c->forwards[i]);
        for (size_t j = 0; j < i && r == 0; j++) {
            const struct vm_forward *p = &c->forwards[j], *f = &c->forwards[i];
            if (p->to == f->to && p->guest_port == f->guest_port && f->to == FORWARD_TO_HOST) {
                jr_push_key(l, "guest_port");
                r = jr_fail(l, false,
                            "guest port %u is already forwarded to the host by forwards[%zu]",
                            f->guest_port, j);
                jr_pop(l);
            } else if (f->to == FORWARD_TO_GUEST && p->to == FORWARD_TO_GUEST &&
                       strcmp(p->listen, f->listen) == 0) {
                jr_push_key(l, "listen");
                r = jr_fail(l, false, "\"%s\" is already used by forwards[%zu]", f->listen, j);
                jr_pop(l);
            }
        }
        jr_pop(l);
    }
    jr_pop(l);
    return r;
}

static int load_shares(struct json_reader *l, json_t *root, struct vm_config *c)
{
    static const char *const keys[] = {"tag", "source", "proto", "read_only", NULL};
    json_t *a;
    int r = jr_get_array(l, root, "shares", &a);
    if (r < 0 || !a)
        return r;
    size_t n = json_array_size(a);
    if (n && !(c->shares = calloc(n, sizeof(*c->shares))))
        return -ENOMEM;
    jr_push_key(l, "shares");
    for (size_t i = 0; i < n && r == 0; i++) {
        json_t *o = json_array_get(a, i);
        struct vm_share *s = &c->shares[i];
        c->n_shares = i + 1;
        jr_push_index(l, i);
        if (!json_is_object(o))
            r = jr_fail(l, false, "expected an object, got %s", jr_type_name(o));
        else if ((r = jr_check_keys(l, o, keys)) == 0 &&
                 (r = jr_get_string(l, o, "tag", NULL, JR_REQUIRED | JR_NONEMPTY, &s->tag)) == 0 &&
                 (r = jr_get_string(l, o, "source", NULL, JR_REQUIRED | JR_NONEMPTY, &s->source)) ==
                     0 &&
                 (r = JR_GET_ENUM(l, o, "proto", share_proto_table, SHARE_VIRTIOFS, s->proto)) ==
                     0 &&
                 (r = jr_get_bool(l, o, "read_only", true, &s->read_only)) == 0) {
            jr_push_key(l, "tag");
            bool bad = strlen(s->tag) > 36;
            for (const char *p = s->tag; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr("-_.", *p))
                    bad = true;
            if (bad)
                r = jr_fail(l, false, "\"%s\" must be 1-36 of A-Z a-z 0-9 - _ .", s->tag);
            else if (strcmp(s->tag, SECRETS_SHARE_TAG) == 0)
                r = jr_fail(l, false, "\"%s\" is ocvm's own share (\"secrets\" fills it)", s->tag);
            for (size_t j = 0; j < i && r == 0; j++)
                if (strcmp(c->shares[j].tag, s->tag) == 0)
                    r = jr_fail(l, false, "\"%s\" is already used by shares[%zu]", s->tag, j);
            jr_pop(l);
            if (r == 0)
                r = jr_resolve_file(l, "source", &s->source, true);
        }
        jr_pop(l);
    }
    jr_pop(l);
    return r;
}

/* A name the guest sees the secret under: a plain file name, not one ocvm writes itself. */
static bool secret_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || s[0] == '.' || strcmp(s, SECRETS_TOKEN_FILE) == 0 ||
        strcmp(s, SECRETS_OPENCLAW_FILE) == 0)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("-_.", *s))
            return false;
    return true;
}

static int load_secret_files(struct json_reader *l, json_t *files, struct vm_secrets *sec)
{
    size_t n = json_object_size(files);
    if (n && !(sec->files = calloc(n, sizeof(*sec->files))))
        return -ENOMEM;
    const char *name;
    json_t *v;
    int r = 0;
    jr_push_key(l, "files");
    json_object_foreach(files, name, v)
    {
        struct vm_secret *f = &sec->files[sec->n_files];
        if (!secret_name_ok(name)) {
            jr_push_key(l, name);
            r = jr_fail(l, true,
                        "\"%s\" is not a secret name (1-64 of A-Z a-z 0-9 _ . -, not starting "
                        "with '.', not %s or %s)",
                        name, SECRETS_TOKEN_FILE, SECRETS_OPENCLAW_FILE);
            jr_pop(l);
            break;
        }
        if (!(f->name = strdup(name))) {
            r = -ENOMEM;
            break;
        }
        sec->n_files++;
        if ((r = jr_get_string(l, files, name, NULL, JR_REQUIRED | JR_NONEMPTY, &f->path)) < 0 ||
            (r = jr_resolve_file(l, name, &f->path, false)) < 0)
            break;
    }
    jr_pop(l);
    return r;
}

static int load_secrets(struct json_reader *l, json_t *root, struct vm_secrets *sec)
{
    static const char *const keys[] = {"gateway_token", "files", NULL};
    json_t *o, *files;
    int r = jr_get_object(l, root, "secrets", false, &o);
    if (r < 0 || !o)
        return r;
    jr_push_key(l, "secrets");
    if ((r = jr_check_keys(l, o, keys)) == 0 &&
        (r = jr_get_string(l, o, "gateway_token", NULL, JR_NULLABLE | JR_NONEMPTY,
                           &sec->gateway_token)) == 0 &&
        (r = jr_resolve_file(l, "gateway_token", &sec->gateway_token, false)) == 0 &&
        (r = jr_get_object(l, o, "files", false, &files)) == 0 && files)
        r = load_secret_files(l, files, sec);
    jr_pop(l);
    return r;
}

static int load_restart_timeouts(struct json_reader *l, json_t *root, struct vm_config *c)
{
    static const char *const rkeys[] = {"max_restarts", "backoff_initial_ms", "backoff_max_ms",
                                        NULL};
    static const char *const tkeys[] = {"ready_s", "shutdown_s", NULL};
    json_t *o, *t;
    int r;
    if ((r = jr_get_object(l, root, "restart", false, &o)) < 0 ||
        (r = jr_get_object(l, root, "timeouts", false, &t)) < 0)
        return r;
    json_t *empty = json_object();
    if (!empty)
        return -ENOMEM;
    jr_push_key(l, "restart");
    if ((r = jr_check_keys(l, o ? o : empty, rkeys)) < 0 ||
        (r = JR_GET_UINT(l, o ? o : empty, "max_restarts", 0, 1000, 5, c->restart.max_restarts)) <
            0 ||
        (r = JR_GET_UINT(l, o ? o : empty, "backoff_initial_ms", 1, 3600000, 500,
                         c->restart.backoff_initial_ms)) < 0 ||
        (r = JR_GET_UINT(l, o ? o : empty, "backoff_max_ms", 1, 3600000, 30000,
                         c->restart.backoff_max_ms)) < 0)
        goto out;
    if (c->restart.backoff_max_ms < c->restart.backoff_initial_ms) {
        jr_push_key(l, "backoff_initial_ms");
        r = jr_fail(l, false, "must not exceed backoff_max_ms (%u)", c->restart.backoff_max_ms);
        jr_pop(l);
        goto out;
    }
    jr_pop(l);
    jr_push_key(l, "timeouts");
    if ((r = jr_check_keys(l, t ? t : empty, tkeys)) == 0 &&
        (r = JR_GET_UINT(l, t ? t : empty, "ready_s", 1, 3600, 120, c->timeouts.ready_s)) == 0)
        r = JR_GET_UINT(l, t ? t : empty, "shutdown_s", 1, 3600, 30, c->timeouts.shutdown_s);
out:
    jr_pop(l);
    json_decref(empty);
    return r;
}

static int load_root(struct json_reader *l, json_t *root, struct vm_config *c)
{
    static const char *const keys[] = {"name",    "machine",  "boot",     "vsock",
                                       "network", "gateway",  "forwards", "shares",
                                       "restart", "timeouts", "secrets",  NULL};
    int r;
    if (!json_is_object(root))
        return jr_fail(l, false, "the configuration must be a JSON object, got %s",
                       jr_type_name(root));
    if ((r = jr_check_keys(l, root, keys)) < 0 ||
        (r = jr_get_string(l, root, "name", NULL, JR_REQUIRED, &c->name)) < 0)
        return r;
    if (!config_name_is_valid(c->name)) {
        jr_push_key(l, "name");
        r = jr_fail(l, false, "\"%s\" must be 1-32 of A-Z a-z 0-9 - _, not starting with '-'",
                    c->name);
        jr_pop(l);
        return r;
    }
    if ((r = load_machine(l, root, &c->machine)) < 0 || (r = load_boot(l, root, &c->boot)) < 0 ||
        (r = load_vsock(l, root, &c->vsock)) < 0 || (r = load_network(l, root, &c->network)) < 0 ||
        (r = load_gateway(l, root, &c->gateway)) < 0 || (r = load_forwards(l, root, c)) < 0 ||
        (r = load_shares(l, root, c)) < 0 || (r = load_secrets(l, root, &c->secrets)) < 0 ||
        (r = load_restart_timeouts(l, root, c)) < 0)
        return r;
    return 0;
}

void vm_config_free(struct vm_config *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->text);
    free(c->name);
    free(c->machine.qemu);
    free(c->machine.user);
    for (char **a = c->machine.extra_args; a && *a; a++)
        free(*a);
    free(c->machine.extra_args);
    free(c->boot.kernel);
    free(c->boot.initrd);
    free(c->boot.cmdline);
    if (c->network) {
        struct vm_network *n = c->network;
        free(n->bridge);
        free(n->bridge_address);
        free(n->tap);
        free(n->guest_address);
        free(n->mac);
        free(n->uplink);
        free(n->dns);
        for (size_t i = 0; i < n->n_egress_allow; i++) {
            free(n->egress_allow[i].host);
            free(n->egress_allow[i].ports);
        }
        free(n->egress_allow);
        free(n);
    }
    free(c->gateway.host_listen);
    free(c->gateway.health_path);
    free(c->gateway.openclaw_json);
    for (size_t i = 0; i < c->n_forwards; i++) {
        free(c->forwards[i].listen);
        free(c->forwards[i].connect);
    }
    free(c->forwards);
    for (size_t i = 0; i < c->n_shares; i++) {
        free(c->shares[i].tag);
        free(c->shares[i].source);
    }
    free(c->shares);
    free(c->secrets.gateway_token);
    for (size_t i = 0; i < c->secrets.n_files; i++) {
        free(c->secrets.files[i].name);
        free(c->secrets.files[i].path);
    }
    free(c->secrets.files);
    free(c);
}

int config_load_text(const char *path, const char *text, size_t len, struct vm_config **ret,
                     char **error)
{
    *error = NULL;
    _cleanup_free_ char *pathcopy = strdup(path);
    if (!pathcopy)
        return -ENOMEM;
    struct json_reader l = {.path = path, .text = text, .len = len};
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* jansson points at the last character of the token it names ("near 'TOKEN'"):
         * point at its first character instead, where the reader's eye should go */
        int col = jerr.column > 0 ? jerr.column : 1;
        const char *near = strstr(jerr.text, "near '");
        const char *end = near ? strrchr(jerr.text, '\'') : NULL;
        if (near && end > near + 6 && col > (int)(end - (near + 6)) - 1)
            col -= (int)(end - (near + 6)) - 1;
        for (char *p = jerr.text; *p; p++) /* the token may hold a newline: keep one line */
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                *p = '?';
        return error_setf(error, -EINVAL, "%s:%d:%d: %s", path, jerr.line > 0 ? jerr.line : 1, col,
                          jerr.text);
    }
    struct vm_config *c = calloc(1, sizeof(*c));
    int r = -ENOMEM;
    if (c)
        c->text_len = len;
    const char *dir = dirname(pathcopy);
    char cwd[PATH_MAX];
    if (dir[0] != '/' && !getcwd(cwd, sizeof(cwd)))
        r = negative_errno();
    else if (c && (c->path = strdup(path)) && (c->text = strndup(text, len)) &&
             asprintf(&l.dir, "%s%s%s", dir[0] == '/' ? "" : cwd, dir[0] == '/' ? "" : "/", dir) >=
                 0)
        r = load_root(&l, root, c);
    else
        l.dir = NULL;
    json_decref(root);
    free(l.dir);
    if (r < 0) {
        vm_config_free(c);
        if (l.error) {
            *error = l.error;
            return -EINVAL;
        }
        *error = strdup(strerror(-r));
        return r;
    }
    *ret = c;
    return 0;
}

enum { CONFIG_MAX_SIZE = 1 << 20 };

int config_load(const char *path, struct vm_config **ret, char **error)
{
    *error = NULL;
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f) {
        int r = negative_errno();
        return error_setf(error, r, "%s: %s", path, strerror(-r));
    }
    _cleanup_free_ char *buf = malloc(CONFIG_MAX_SIZE + 1);
    if (!buf)
        return -ENOMEM;
    size_t n = fread(buf, 1, CONFIG_MAX_SIZE + 1, f);
    if (ferror(f)) {
        int r = negative_errno();
        return error_setf(error, r, "%s: %s", path, strerror(-r));
    }
    if (n > CONFIG_MAX_SIZE)
        return error_setf(error, -EFBIG, "%s: larger than %d bytes", path, CONFIG_MAX_SIZE);
    return config_load_text(path, buf, n, ret, error);
}

int config_path_for_name(const char *name, char **ret)
{
    if (!config_name_is_valid(name))
        return -EINVAL;
    const char *dir = getenv("OCVM_CONFIG_DIR");
    if (!dir || !*dir)
        dir = CONFIG_DIR_DEFAULT;
    return asprintf(ret, "%s/%s.json", dir, name) < 0 ? -ENOMEM : 0;
}

int vm_config_add_share(struct vm_config *c, const char *tag, const char *source, bool read_only)
{
    for (size_t i = 0; i < c->n_shares; i++)
        if (strcmp(c->shares[i].tag, tag) == 0)
            return -EEXIST;
    struct vm_share *v = reallocarray(c->shares, c->n_shares + 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    c->shares = v;
    struct vm_share s = {.proto = SHARE_VIRTIOFS, .read_only = read_only};
    if (!(s.tag = strdup(tag)) || !(s.source = strdup(source))) {
        free(s.tag);
        return -ENOMEM;
    }
    c->shares[c->n_shares++] = s;
    return 0;
}
