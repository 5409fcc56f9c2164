#include "launcher/config.h"

#include "launcher/json_pos.h"
#include "launcher/macro.h"
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
static const char *const vsock_backend_table[_VSOCK_BACKEND_MAX] = {
    [VSOCK_BACKEND_AUTO] = "auto", [VSOCK_BACKEND_KERNEL] = "kernel", [VSOCK_BACKEND_USER] = "user"};
static const char *const share_proto_table[_SHARE_PROTO_MAX] = {
    [SHARE_VIRTIOFS] = "virtiofs", [SHARE_9P] = "9p"};
static const char *const forward_dir_table[_FORWARD_DIR_MAX] = {
    [FORWARD_TO_GUEST] = "guest", [FORWARD_TO_HOST] = "host"};

#define TABLE_LOOKUP(table, v) ((unsigned)(v) < ELEMENTSOF(table) ? (table)[v] : NULL)
const char *machine_type_to_string(enum machine_type t) { return TABLE_LOOKUP(machine_type_table, t); }
const char *accel_to_string(enum accel a) { return TABLE_LOOKUP(accel_table, a); }
const char *vsock_backend_to_string(enum vsock_backend b) { return TABLE_LOOKUP(vsock_backend_table, b); }
const char *share_proto_to_string(enum share_proto p) { return TABLE_LOOKUP(share_proto_table, p); }
const char *forward_dir_to_string(enum forward_dir d) { return TABLE_LOOKUP(forward_dir_table, d); }

/* ---- the loader: walks jansson's tree, keeping the path for error positions ---- */

enum { MAX_DEPTH = 8 };

struct loader {
    const char *path, *text;
    size_t len;
    char *dir; /* directory of PATH, for relative file names */
    struct json_step steps[MAX_DEPTH];
    size_t depth;
    char *error;
};

static void push_key(struct loader *l, const char *key)
{
    if (l->depth < MAX_DEPTH)
        l->steps[l->depth] = (struct json_step){.key = key};
    l->depth++;
}

static void push_index(struct loader *l, size_t i)
{
    if (l->depth < MAX_DEPTH)
        l->steps[l->depth] = (struct json_step){.index = i};
    l->depth++;
}

static void pop(struct loader *l)
{
    l->depth--;
}

/* Records the first error, positioned at the current path, and returns -EINVAL. */
__attribute__((format(printf, 3, 4))) static int fail(struct loader *l, bool at_key,
                                                      const char *fmt, ...)
{
    if (l->error)
        return -EINVAL;
    size_t depth = l->depth < MAX_DEPTH ? l->depth : MAX_DEPTH;
    struct json_position pos = {1, 1};
    /* fall back to the nearest ancestor that exists in the text (e.g. for a missing key) */
    for (size_t d = depth + 1; d-- > 0;)
        if (json_pos_find(l->text, l->len, l->steps, d, at_key && d == depth, &pos) == 0)
            break;

    char name[256] = "";
    size_t off = 0;
    for (size_t i = 0; i < depth && off < sizeof(name); i++) {
        int r = l->steps[i].key
                    ? snprintf(name + off, sizeof(name) - off, "%s%s", i ? "." : "", l->steps[i].key)
                    : snprintf(name + off, sizeof(name) - off, "[%zu]", l->steps[i].index);
        if (r < 0)
            break;
        off += (size_t)r;
    }
    va_list ap;
    _cleanup_free_ char *msg = NULL;
    va_start(ap, fmt);
    int r = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (r < 0)
        return -ENOMEM;
    if (asprintf(&l->error, "%s:%u:%u: %s%s%s", l->path, pos.line, pos.column, name,
                 *name ? ": " : "", msg) < 0)
        l->error = NULL;
    return -EINVAL;
}

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "something else";
}

/* Refuses any member of OBJ not in KNOWN (NULL-terminated). */
static int check_keys(struct loader *l, json_t *obj, const char *const *known)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        bool ok = false;
        for (const char *const *k = known; *k; k++)
            if (strcmp(*k, key) == 0)
                ok = true;
        if (ok)
            continue;
        char list[256] = "";
        size_t off = 0;
        for (const char *const *k = known; *k && off < sizeof(list); k++) {
            int r = snprintf(list + off, sizeof(list) - off, "%s%s", k == known ? "" : ", ", *k);
            if (r > 0)
                off += (size_t)r;
        }
        push_key(l, key);
        int r = fail(l, true, "unknown key (expected one of: %s)", list);
        pop(l);
        return r;
    }
    return 0;
}

static bool has_control_chars(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

enum { OPT_NULLABLE = 1 << 0, OPT_REQUIRED = 1 << 1, OPT_NONEMPTY = 1 << 2 };

/* Reads string KEY of OBJ into *ret (strdup'd). Absent: DEF (may be NULL). */
static int get_string(struct loader *l, json_t *obj, const char *key, const char *def, int flags,
                      char **ret)
{
    json_t *v = json_object_get(obj, key);
    int r = 0;
    push_key(l, key);
    if (!v) {
        if (flags & OPT_REQUIRED)
            r = fail(l, false, "missing (this key is required)");
        else if (def && !(*ret = strdup(def)))
            r = -ENOMEM;
    } else if (json_is_null(v) && (flags & OPT_NULLABLE)) {
        *ret = NULL;
    } else if (!json_is_string(v)) {
        r = fail(l, false, "expected a string%s, got %s", flags & OPT_NULLABLE ? " or null" : "",
                 json_type_name(v));
    } else if (strlen(json_string_value(v)) != json_string_length(v) ||
               has_control_chars(json_string_value(v))) {
        r = fail(l, false, "must not contain control characters or NUL");
    } else if ((flags & OPT_NONEMPTY) && json_string_length(v) == 0) {
        r = fail(l, false, "must not be empty");
    } else if (!(*ret = strdup(json_string_value(v)))) {
        r = -ENOMEM;
    }
    pop(l);
    return r;
}

static int check_uint(struct loader *l, json_t *v, uint64_t min, uint64_t max, uint64_t *ret)
{
    if (!json_is_integer(v))
        return fail(l, false, "expected an integer from %llu to %llu, got %s",
                    (unsigned long long)min, (unsigned long long)max, json_type_name(v));
    json_int_t i = json_integer_value(v);
    if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
        return fail(l, false, "must be from %llu to %llu, got %lld", (unsigned long long)min,
                    (unsigned long long)max, (long long)i);
    *ret = (uint64_t)i;
    return 0;
}

static int get_uint(struct loader *l, json_t *obj, const char *key, uint64_t min, uint64_t max,
                    uint64_t def, uint64_t *ret)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *ret = def;
        return 0;
    }
    push_key(l, key);
    int r = check_uint(l, v, min, max, ret);
    pop(l);
    return r;
}

#define GET_UINT(l, obj, key, min, max, def, dst)                                                  \
    ({                                                                                             \
        uint64_t _v_;                                                                              \
        int _r_ = get_uint(l, obj, key, min, max, def, &_v_);                                      \
        if (_r_ == 0)                                                                              \
            (dst) = (__typeof__(dst))_v_;                                                          \
        _r_;                                                                                       \
    })

static int get_bool(struct loader *l, json_t *obj, const char *key, bool def, bool *ret)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *ret = def;
        return 0;
    }
    push_key(l, key);
    int r = 0;
    if (!json_is_boolean(v))
        r = fail(l, false, "expected true or false, got %s", json_type_name(v));
    else
        *ret = json_is_true(v);
    pop(l);
    return r;
}

static int get_enum(struct loader *l, json_t *obj, const char *key, const char *const *table,
                    size_t n, unsigned def, unsigned *ret)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *ret = def;
        return 0;
    }
    push_key(l, key);
    int r = -EINVAL;
    if (json_is_string(v))
        for (size_t i = 0; i < n; i++)
            if (strcmp(table[i], json_string_value(v)) == 0) {
                *ret = (unsigned)i;
                r = 0;
            }
    if (r < 0) {
        char list[128] = "";
        size_t off = 0;
        for (size_t i = 0; i < n && off < sizeof(list); i++) {
            int w = snprintf(list + off, sizeof(list) - off, "%s\"%s\"", i ? ", " : "", table[i]);
            if (w > 0)
                off += (size_t)w;
        }
        r = fail(l, false, "expected one of %s", list);
    }
    pop(l);
    return r;
}

#define GET_ENUM(l, obj, key, table, def, dst)                                                     \
    ({                                                                                             \
        unsigned _v_;                                                                              \
        int _r_ = get_enum(l, obj, key, table, ELEMENTSOF(table), def, &_v_);                      \
        if (_r_ == 0)                                                                              \
            (dst) = _v_;                                                                           \
        _r_;                                                                                       \
    })

/* Gets member KEY, which must be an object (or null when allowed). *ret NULL when absent/null. */
static int get_object(struct loader *l, json_t *obj, const char *key, bool nullable, json_t **ret)
{
    json_t *v = json_object_get(obj, key);
    *ret = NULL;
    if (!v || (nullable && json_is_null(v)))
        return 0;
    if (json_is_object(v)) {
        *ret = v;
        return 0;
    }
    push_key(l, key);
    int r = fail(l, false, "expected an object%s, got %s", nullable ? " or null" : "",
                 json_type_name(v));
    pop(l);
    return r;
}

static int get_array(struct loader *l, json_t *obj, const char *key, json_t **ret)
{
    json_t *v = json_object_get(obj, key);
    *ret = NULL;
    if (!v)
        return 0;
    if (json_is_array(v)) {
        *ret = v;
        return 0;
    }
    push_key(l, key);
    int r = fail(l, false, "expected an array, got %s", json_type_name(v));
    pop(l);
    return r;
}

/* Makes a file name absolute against the config's directory, and checks it is a readable file
 * (or a directory when WANT_DIR). Reports at KEY. */
static int resolve_file(struct loader *l, const char *key, char **path, bool want_dir)
{
    if (!*path)
        return 0;
    if ((*path)[0] != '/') {
        char *abs;
        if (asprintf(&abs, "%s/%s", l->dir, *path) < 0)
            return -ENOMEM;
        free(*path);
        *path = abs;
    }
    push_key(l, key);
    struct stat st;
    int r = 0;
    if (stat(*path, &st) < 0)
        r = fail(l, false, "%s: %s", *path, strerror(errno));
    else if (want_dir && !S_ISDIR(st.st_mode))
        r = fail(l, false, "%s: not a directory", *path);
    else if (!want_dir && !S_ISREG(st.st_mode))
        r = fail(l, false, "%s: not a regular file", *path);
    else if (access(*path, R_OK) < 0)
        r = fail(l, false, "%s: %s", *path, strerror(errno));
    pop(l);
    return r;
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

static int check_ifname(struct loader *l, const char *key, const char *value)
{
    if (ifname_is_valid(value))
        return 0;
    push_key(l, key);
    int r = fail(l, false, "\"%s\" is not a valid interface name (1-15 of A-Z a-z 0-9 - _ .)", value);
    pop(l);
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
    if (strlen(s) != 17 ||
        sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6)
        return -EINVAL;
    for (int i = 0; i < 6; i++)
        if (!isxdigit((unsigned char)s[i * 3]) || !isxdigit((unsigned char)s[i * 3 + 1]))
            return -EINVAL;
    if (b[0] & 1)
        return -EDOM; /* multicast */
    return 0;
}

/* ---- sections ---- */

static int load_machine(struct loader *l, json_t *root, struct vm_machine *m)
{
    static const char *const keys[] = {"type", "accel", "vcpu", "memory_mib", "qemu",
                                       "user", "extra_args", NULL};
    json_t *o, *extra;
    int r = get_object(l, root, "machine", false, &o);
    if (r < 0)
        return r;
    json_t *empty = o ? NULL : json_object();
    if (!o && !(o = empty))
        return -ENOMEM;
    push_key(l, "machine");
    if ((r = check_keys(l, o, keys)) < 0 ||
        (r = GET_ENUM(l, o, "type", machine_type_table, MACHINE_MICROVM, m->type)) < 0 ||
        (r = GET_ENUM(l, o, "accel", accel_table, ACCEL_AUTO, m->accel)) < 0 ||
        (r = GET_UINT(l, o, "vcpu", 1, 255, 2, m->vcpu)) < 0 ||
        (r = GET_UINT(l, o, "memory_mib", 128, 1024 * 1024, 2048, m->memory_mib)) < 0 ||
        (r = get_string(l, o, "qemu", "qemu-system-x86_64", OPT_NONEMPTY, &m->qemu)) < 0 ||
        (r = get_string(l, o, "user", NULL, OPT_NULLABLE | OPT_NONEMPTY, &m->user)) < 0 ||
        (r = get_array(l, o, "extra_args", &extra)) < 0)
        goto out;
    if (m->user && !getpwnam(m->user)) {
        push_key(l, "user");
        r = fail(l, false, "no such user \"%s\" on this host", m->user);
        pop(l);
        goto out;
    }
    size_t n = extra ? json_array_size(extra) : 0;
    if (!(m->extra_args = calloc(n + 1, sizeof(char *)))) {
        r = -ENOMEM;
        goto out;
    }
    push_key(l, "extra_args");
    for (size_t i = 0; i < n && r == 0; i++) {
        json_t *v = json_array_get(extra, i);
        push_index(l, i);
        if (!json_is_string(v))
            r = fail(l, false, "expected a string, got %s", json_type_name(v));
        else if (has_control_chars(json_string_value(v)) ||
                 strlen(json_string_value(v)) != json_string_length(v))
            r = fail(l, false, "must not contain control characters or NUL");
        else if (!(m->extra_args[i] = strdup(json_string_value(v))))
            r = -ENOMEM;
        pop(l);
    }
    pop(l);
out:
    pop(l);
    json_decref(empty);
    return r;
}

static int load_boot(struct loader *l, json_t *root, struct vm_boot *b)
{
    static const char *const keys[] = {"kernel", "initrd", "cmdline", NULL};
    json_t *o;
    int r = get_object(l, root, "boot", false, &o);
    if (r < 0)
        return r;
    if (!o) {
        push_key(l, "boot");
        r = fail(l, false, "missing (this key is required: it names the guest kernel)");
        pop(l);
        return r;
    }
    push_key(l, "boot");
    if ((r = check_keys(l, o, keys)) < 0 ||
        (r = get_string(l, o, "kernel", NULL, OPT_REQUIRED | OPT_NONEMPTY, &b->kernel)) < 0 ||
        (r = get_string(l, o, "initrd", NULL, OPT_NULLABLE | OPT_NONEMPTY, &b->initrd)) < 0 ||
        (r = get_string(l, o, "cmdline", "console=ttyS0 panic=-1", 0, &b->cmdline)) < 0 ||
        (r = resolve_file(l, "kernel", &b->kernel, false)) < 0 ||
        (r = resolve_file(l, "initrd", &b->initrd, false)) < 0)
        goto out;
out:
    pop(l);
    return r;
}

static int load_vsock(struct loader *l, json_t *root, struct vm_vsock *v)
{
    static const char *const keys[] = {"backend", "guest_cid", NULL};
    json_t *o, *raw = json_object_get(root, "vsock");
    int r = get_object(l, root, "vsock", true, &o);
    if (r < 0)
        return r;
    *v = (struct vm_vsock){.enabled = !json_is_null(raw), .backend = VSOCK_BACKEND_AUTO, .guest_cid = 3};
    if (!o)
        return 0;
    push_key(l, "vsock");
    if ((r = check_keys(l, o, keys)) == 0 &&
        (r = GET_ENUM(l, o, "backend", vsock_backend_table, VSOCK_BACKEND_AUTO, v->backend)) == 0)
        r = GET_UINT(l, o, "guest_cid", 3, UINT32_MAX - 1, 3, v->guest_cid);
    pop(l);
    return r;
}

/* An egress host is a DNS name or an IPv4 address or CIDR: it ends up in nft text. */
static int check_host(struct loader *l, const char *host)
{
    size_t n = strlen(host);
    bool ok = n > 0 && n <= 253 && host[0] != '-' && host[0] != '.';
    for (const char *p = host; *p && ok; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-./", *p))
            ok = false;
    if (ok)
        return 0;
    push_key(l, "host");
    int r = fail(l, false, "\"%s\" is not a host name or IPv4 address", host);
    pop(l);
    return r;
}

static int load_egress(struct loader *l, json_t *net, struct vm_network *n)
{
    static const char *const keys[] = {"allow", NULL};
    static const char *const rule_keys[] = {"host", "ports", NULL};
    json_t *o, *allow;
    int r = get_object(l, net, "egress", false, &o);
    if (r < 0 || !o)
        return r;
    push_key(l, "egress");
    if ((r = check_keys(l, o, keys)) < 0 || (r = get_array(l, o, "allow", &allow)) < 0 || !allow)
        goto out;
    size_t count = json_array_size(allow);
    if (count && !(n->egress_allow = calloc(count, sizeof(*n->egress_allow)))) {
        r = -ENOMEM;
        goto out;
    }
    push_key(l, "allow");
    for (size_t i = 0; i < count && r == 0; i++) {
        json_t *rule = json_array_get(allow, i), *ports;
        struct vm_egress_rule *e = &n->egress_allow[i];
        n->n_egress_allow = i + 1;
        push_index(l, i);
        if (!json_is_object(rule))
            r = fail(l, false, "expected an object {\"host\": ..., \"ports\": [...]}, got %s",
                     json_type_name(rule));
        else if ((r = check_keys(l, rule, rule_keys)) == 0 &&
                 (r = get_string(l, rule, "host", NULL, OPT_REQUIRED | OPT_NONEMPTY, &e->host)) == 0 &&
                 (r = check_host(l, e->host)) == 0 &&
                 (r = get_array(l, rule, "ports", &ports)) == 0) {
            size_t np = ports ? json_array_size(ports) : 0;
            push_key(l, "ports");
            if (np == 0)
                r = fail(l, false, "must list at least one port");
            else if (!(e->ports = calloc(np, sizeof(uint16_t))))
                r = -ENOMEM;
            for (size_t j = 0; j < np && r == 0; j++) {
                uint64_t p;
                push_index(l, j);
                if ((r = check_uint(l, json_array_get(ports, j), 1, 65535, &p)) == 0)
                    e->ports[e->n_ports++] = (uint16_t)p;
                pop(l);
            }
            pop(l);
        }
        pop(l);
    }
    pop(l);
out:
    pop(l);
    return r;
}

static int load_network(struct loader *l, json_t *root, struct vm_network **ret)
{
    static const char *const keys[] = {"bridge", "bridge_address", "tap", "guest_address", "mac",
                                       "uplink", "dns", "egress", NULL};
    json_t *v = json_object_get(root, "network");
    json_t *o;
    int r = get_object(l, root, "network", true, &o);
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
    push_key(l, "network");
    uint32_t br, guest, dns;
    unsigned prefix;
    if ((r = check_keys(l, o, keys)) < 0 ||
        (r = get_string(l, o, "bridge", "br-openclaw", 0, &n->bridge)) < 0 ||
        (r = get_string(l, o, "bridge_address", "192.168.83.1/24", 0, &n->bridge_address)) < 0 ||
        (r = get_string(l, o, "tap", "vm-openclaw", 0, &n->tap)) < 0 ||
        (r = get_string(l, o, "guest_address", "192.168.83.2", 0, &n->guest_address)) < 0 ||
        (r = get_string(l, o, "mac", "02:00:00:00:00:01", 0, &n->mac)) < 0 ||
        (r = get_string(l, o, "uplink", "auto", 0, &n->uplink)) < 0 ||
        (r = get_string(l, o, "dns", "192.168.83.1", 0, &n->dns)) < 0 ||
        (r = check_ifname(l, "bridge", n->bridge)) < 0 || (r = check_ifname(l, "tap", n->tap)) < 0 ||
        (strcmp(n->uplink, "auto") != 0 && (r = check_ifname(l, "uplink", n->uplink)) < 0))
        goto out;
    if (strcmp(n->bridge, n->tap) == 0) {
        push_key(l, "tap");
        r = fail(l, false, "must differ from network.bridge");
        pop(l);
    } else if (parse_cidr4(n->bridge_address, &br, &prefix) < 0) {
        push_key(l, "bridge_address");
        r = fail(l, false, "\"%s\" is not an IPv4 address with a prefix length from 1 to 30 "
                           "(e.g. 192.168.83.1/24)", n->bridge_address);
        pop(l);
    } else if (parse_ipv4(n->guest_address, &guest) < 0) {
        push_key(l, "guest_address");
        r = fail(l, false, "\"%s\" is not an IPv4 address", n->guest_address);
        pop(l);
    } else if (parse_ipv4(n->dns, &dns) < 0) {
        push_key(l, "dns");
        r = fail(l, false, "\"%s\" is not an IPv4 address", n->dns);
        pop(l);
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
            push_key(l, "bridge_address");
            r = fail(l, false, "\"%s\" is the network or broadcast address of its subnet",
                     n->bridge_address);
            pop(l);
            goto out;
        }
        if (why) {
            push_key(l, "guest_address");
            r = fail(l, false, "%s %s", n->guest_address, why);
            pop(l);
            goto out;
        }
        if ((r = check_mac(n->mac)) < 0) {
            push_key(l, "mac");
            if (r == -EDOM)
                r = fail(l, false, "\"%s\" is a multicast address (first octet must be even)",
                         n->mac);
            else
                r = fail(l, false, "\"%s\" is not a MAC address like 02:00:00:00:00:01", n->mac);
            pop(l);
            goto out;
        }
        r = load_egress(l, o, n);
    }
out:
    pop(l);
    json_decref(empty);
    return r;
}

static int load_gateway(struct loader *l, json_t *root, struct vm_gateway *g)
{
    static const char *const keys[] = {"guest_port", "host_listen", "health_path", NULL};
    json_t *o;
    int r = get_object(l, root, "gateway", false, &o);
    if (r < 0)
        return r;
    json_t *empty = o ? NULL : json_object();
    if (!o && !(o = empty))
        return -ENOMEM;
    push_key(l, "gateway");
    char host[64];
    uint16_t port;
    const char *why;
    if ((r = check_keys(l, o, keys)) < 0 ||
        (r = GET_UINT(l, o, "guest_port", 1, 65535, 18789, g->guest_port)) < 0 ||
        (r = get_string(l, o, "host_listen", "127.0.0.1:18789", 0, &g->host_listen)) < 0 ||
        (r = get_string(l, o, "health_path", "/health", 0, &g->health_path)) < 0)
        goto out;
    struct endpoint ep = {.kind = ENDPOINT_TCP};
    if (endpoint_parse_hostport(g->host_listen, host, &port, &why) < 0) {
        push_key(l, "host_listen");
        r = fail(l, false, "\"%s\": %s", g->host_listen, why);
        pop(l);
    } else if (memcpy(ep.host, host, sizeof(ep.host)), !endpoint_is_local(&ep)) {
        /* the whole point: the gateway is reachable from this host only */
        push_key(l, "host_listen");
        r = fail(l, false, "\"%s\" is not a loopback address: the gateway would be reachable "
                           "from the network", g->host_listen);
        pop(l);
    } else if (g->health_path[0] != '/' || strpbrk(g->health_path, " \t")) {
        push_key(l, "health_path");
        r = fail(l, false, "must be a URL path starting with '/' and without spaces");
        pop(l);
    }
out:
    pop(l);
    json_decref(empty);
    return r;
}

static int check_endpoint(struct loader *l, const char *key, const char *value)
{
    struct endpoint e;
    const char *why;
    int r = endpoint_parse(value, &e, &why);
    if (r == 0 && e.kind != ENDPOINT_VSOCK)
        return 0;
    if (r == 0)
        why = "a host endpoint cannot be vsock";
    push_key(l, key);
    r = fail(l, false, "\"%s\": %s", value, why);
    pop(l);
    return r;
}

static int load_forward(struct loader *l, json_t *o, struct vm_forward *f)
{
    static const char *const keys[] = {"to", "listen", "connect", "guest_port", NULL};
    int r;
    if (!json_is_object(o))
        return fail(l, false, "expected an object, got %s", json_type_name(o));
    if (!json_object_get(o, "to")) {
        push_key(l, "to");
        r = fail(l, false, "missing (\"guest\" or \"host\")");
        pop(l);
        return r;
    }
    if ((r = check_keys(l, o, keys)) < 0 ||
        (r = GET_ENUM(l, o, "to", forward_dir_table, FORWARD_TO_GUEST, f->to)) < 0 ||
        (r = GET_UINT(l, o, "guest_port", 1, 65535, 0, f->guest_port)) < 0)
        return r;
    const char *need = f->to == FORWARD_TO_GUEST ? "listen" : "connect";
    const char *forbid = f->to == FORWARD_TO_GUEST ? "connect" : "listen";
    if (json_object_get(o, forbid)) {
        push_key(l, forbid);
        r = fail(l, true, "not allowed with \"to\": \"%s\" (use \"%s\")",
                 forward_dir_to_string(f->to), need);
        pop(l);
        return r;
    }
    if (f->guest_port == 0) {
        push_key(l, "guest_port");
        r = fail(l, false, "missing (this key is required)");
        pop(l);
        return r;
    }
    char **dst = f->to == FORWARD_TO_GUEST ? &f->listen : &f->connect;
    if ((r = get_string(l, o, need, NULL, OPT_REQUIRED, dst)) < 0 ||
        (r = check_endpoint(l, need, *dst)) < 0)
        return r;
    struct endpoint e;
    const char *why;
    if (f->to == FORWARD_TO_GUEST && endpoint_parse(*dst, &e, &why) == 0 && !endpoint_is_local(&e)) {
        push_key(l, "listen");
        r = fail(l, false, "\"%s\" is not a loopback address: the guest port would be reachable "
                           "from the network", *dst);
        pop(l);
    }
    return r;
}

static int load_forwards(struct loader *l, json_t *root, struct vm_config *c)
{
    json_t *a;
    int r = get_array(l, root, "forwards", &a);
    if (r < 0 || !a)
        return r;
    size_t n = json_array_size(a);
    if (n && !c->vsock.enabled) {
        push_key(l, "forwards");
        r = fail(l, false, "forwards run over vsock, but \"vsock\" is null");
        pop(l);
        return r;
    }
    if (n && !(c->forwards = calloc(n, sizeof(*c->forwards))))
        return -ENOMEM;
    push_key(l, "forwards");
    for (size_t i = 0; i < n && r == 0; i++) {
        c->n_forwards = i + 1;
        push_index(l, i);
        r = load_forward(l, json_array_get(a, i), &c->forwards[i]);
        for (size_t j = 0; j < i && r == 0; j++) {
            const struct vm_forward *p = &c->forwards[j], *f = &c->forwards[i];
            if (p->to == f->to && p->guest_port == f->guest_port && f->to == FORWARD_TO_HOST) {
                push_key(l, "guest_port");
                r = fail(l, false, "guest port %u is already forwarded to the host by forwards[%zu]",
                         f->guest_port, j);
                pop(l);
            } else if (f->to == FORWARD_TO_GUEST && p->to == FORWARD_TO_GUEST &&
                       strcmp(p->listen, f->listen) == 0) {
                push_key(l, "listen");
                r = fail(l, false, "\"%s\" is already used by forwards[%zu]", f->listen, j);
                pop(l);
            }
        }
        pop(l);
    }
    pop(l);
    return r;
}

static int load_shares(struct loader *l, json_t *root, struct vm_config *c)
{
    static const char *const keys[] = {"tag", "source", "proto", "read_only", NULL};
    json_t *a;
    int r = get_array(l, root, "shares", &a);
    if (r < 0 || !a)
        return r;
    size_t n = json_array_size(a);
    if (n && !(c->shares = calloc(n, sizeof(*c->shares))))
        return -ENOMEM;
    push_key(l, "shares");
    for (size_t i = 0; i < n && r == 0; i++) {
        json_t *o = json_array_get(a, i);
        struct vm_share *s = &c->shares[i];
        c->n_shares = i + 1;
        push_index(l, i);
        if (!json_is_object(o))
            r = fail(l, false, "expected an object, got %s", json_type_name(o));
        else if ((r = check_keys(l, o, keys)) == 0 &&
                 (r = get_string(l, o, "tag", NULL, OPT_REQUIRED | OPT_NONEMPTY, &s->tag)) == 0 &&
                 (r = get_string(l, o, "source", NULL, OPT_REQUIRED | OPT_NONEMPTY, &s->source)) == 0 &&
                 (r = GET_ENUM(l, o, "proto", share_proto_table, SHARE_VIRTIOFS, s->proto)) == 0 &&
                 (r = get_bool(l, o, "read_only", true, &s->read_only)) == 0) {
            push_key(l, "tag");
            bool bad = strlen(s->tag) > 36;
            for (const char *p = s->tag; *p; p++)
                if (!isalnum((unsigned char)*p) && !strchr("-_.", *p))
                    bad = true;
            if (bad)
                r = fail(l, false, "\"%s\" must be 1-36 of A-Z a-z 0-9 - _ .", s->tag);
            for (size_t j = 0; j < i && r == 0; j++)
                if (strcmp(c->shares[j].tag, s->tag) == 0)
                    r = fail(l, false, "\"%s\" is already used by shares[%zu]", s->tag, j);
            pop(l);
            if (r == 0)
                r = resolve_file(l, "source", &s->source, true);
        }
        pop(l);
    }
    pop(l);
    return r;
}

static int load_restart_timeouts(struct loader *l, json_t *root, struct vm_config *c)
{
    static const char *const rkeys[] = {"max_restarts", "backoff_initial_ms", "backoff_max_ms", NULL};
    static const char *const tkeys[] = {"ready_s", "shutdown_s", NULL};
    json_t *o, *t;
    int r;
    if ((r = get_object(l, root, "restart", false, &o)) < 0 ||
        (r = get_object(l, root, "timeouts", false, &t)) < 0)
        return r;
    json_t *empty = json_object();
    if (!empty)
        return -ENOMEM;
    push_key(l, "restart");
    if ((r = check_keys(l, o ? o : empty, rkeys)) < 0 ||
        (r = GET_UINT(l, o ? o : empty, "max_restarts", 0, 1000, 5, c->restart.max_restarts)) < 0 ||
        (r = GET_UINT(l, o ? o : empty, "backoff_initial_ms", 1, 3600000, 500,
                      c->restart.backoff_initial_ms)) < 0 ||
        (r = GET_UINT(l, o ? o : empty, "backoff_max_ms", 1, 3600000, 30000,
                      c->restart.backoff_max_ms)) < 0)
        goto out;
    if (c->restart.backoff_max_ms < c->restart.backoff_initial_ms) {
        push_key(l, "backoff_initial_ms");
        r = fail(l, false, "must not exceed backoff_max_ms (%u)", c->restart.backoff_max_ms);
        pop(l);
        goto out;
    }
    pop(l);
    push_key(l, "timeouts");
    if ((r = check_keys(l, t ? t : empty, tkeys)) == 0 &&
        (r = GET_UINT(l, t ? t : empty, "ready_s", 1, 3600, 120, c->timeouts.ready_s)) == 0)
        r = GET_UINT(l, t ? t : empty, "shutdown_s", 1, 3600, 30, c->timeouts.shutdown_s);
out:
    pop(l);
    json_decref(empty);
    return r;
}

static int load_root(struct loader *l, json_t *root, struct vm_config *c)
{
    static const char *const keys[] = {"name", "machine", "boot", "vsock", "network", "gateway",
                                       "forwards", "shares", "restart", "timeouts", NULL};
    int r;
    if (!json_is_object(root))
        return fail(l, false, "the configuration must be a JSON object, got %s",
                    json_type_name(root));
    if ((r = check_keys(l, root, keys)) < 0 ||
        (r = get_string(l, root, "name", NULL, OPT_REQUIRED, &c->name)) < 0)
        return r;
    if (!config_name_is_valid(c->name)) {
        push_key(l, "name");
        r = fail(l, false, "\"%s\" must be 1-32 of A-Z a-z 0-9 - _, not starting with '-'", c->name);
        pop(l);
        return r;
    }
    if ((r = load_machine(l, root, &c->machine)) < 0 || (r = load_boot(l, root, &c->boot)) < 0 ||
        (r = load_vsock(l, root, &c->vsock)) < 0 || (r = load_network(l, root, &c->network)) < 0 ||
        (r = load_gateway(l, root, &c->gateway)) < 0 || (r = load_forwards(l, root, c)) < 0 ||
        (r = load_shares(l, root, c)) < 0 || (r = load_restart_timeouts(l, root, c)) < 0)
        return r;
    return 0;
}

void vm_config_free(struct vm_config *c)
{
    if (!c)
        return;
    free(c->path);
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
    free(c);
}

int config_load_text(const char *path, const char *text, size_t len, struct vm_config **ret,
                     char **error)
{
    *error = NULL;
    _cleanup_free_ char *pathcopy = strdup(path);
    if (!pathcopy)
        return -ENOMEM;
    struct loader l = {.path = path, .text = text, .len = len};
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
        if (asprintf(error, "%s:%d:%d: %s", path, jerr.line > 0 ? jerr.line : 1, col, jerr.text) < 0)
            *error = NULL;
        return -EINVAL;
    }
    struct vm_config *c = calloc(1, sizeof(*c));
    int r = -ENOMEM;
    const char *dir = dirname(pathcopy);
    char cwd[PATH_MAX];
    if (dir[0] != '/' && !getcwd(cwd, sizeof(cwd)))
        r = negative_errno();
    else if (c && (c->path = strdup(path)) &&
             asprintf(&l.dir, "%s%s%s", dir[0] == '/' ? "" : cwd, dir[0] == '/' ? "" : "/", dir) >= 0)
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
        if (asprintf(error, "%s: %s", path, strerror(-r)) < 0)
            *error = NULL;
        return r;
    }
    _cleanup_free_ char *buf = malloc(CONFIG_MAX_SIZE + 1);
    if (!buf)
        return -ENOMEM;
    size_t n = fread(buf, 1, CONFIG_MAX_SIZE + 1, f);
    if (ferror(f)) {
        int r = negative_errno();
        if (asprintf(error, "%s: %s", path, strerror(-r)) < 0)
            *error = NULL;
        return r;
    }
    if (n > CONFIG_MAX_SIZE) {
        if (asprintf(error, "%s: larger than %d bytes", path, CONFIG_MAX_SIZE) < 0)
            *error = NULL;
        return -EFBIG;
    }
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
