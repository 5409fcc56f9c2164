#include "policy/rules.h"

#include "common/cleanup.h"
#include "common/json_pos.h"
#include "netsetup/cidr.h"
#include "policy/gateway_config.h"
#include "vsock/endpoint.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const struct policy_rule policy_rules[] = {
    {"OCVM-P001", "the host relay listens on loopback only", "gateway.unsafe_remote_gateway"},
    {"OCVM-P002", "a forward to the guest listens on loopback only",
     "forwards[N].unsafe_remote_listen"},
    {"OCVM-P003",
     "the guest's relays stay inside it; its notify socket, shares and network come "
     "from ocvm alone",
     "boot.unsafe_cmdline"},
    {"OCVM-P004", "the gateway port is reached through gateway.host_listen alone", NULL},
    {"OCVM-P005", "a forward's Unix listener lives in a directory only its owner can write", NULL},
    {"OCVM-P006", "machine.extra_args adds nothing that reaches outside the VM",
     "machine.unsafe_extra_args"},
    {"OCVM-P007", "QEMU does not run as root", "machine.unsafe_qemu_as_root"},
    {"OCVM-P008", "the gateway listens on the guest's loopback only",
     "gateway.unsafe_openclaw_bind"},
    {"OCVM-P009", "the gateway lets in only clients that show a strong token or password",
     "gateway.unsafe_openclaw_auth"},
    {"OCVM-P010", "the agent's file and patch tools stay in its workspace; elevated tools stay off",
     "gateway.unsafe_openclaw_tools"},
    {"OCVM-P011", "gateway.openclaw uses no key name that OpenClaw refuses (from older guides)",
     NULL},
    {"OCVM-P012", "a secret file is its owner's alone (root or the user running ocvm)", NULL},
};
const size_t policy_n_rules = sizeof(policy_rules) / sizeof(policy_rules[0]);

const struct policy_rule *policy_rule_find(const char *id)
{
    for (size_t i = 0; i < policy_n_rules; i++)
        if (strcmp(policy_rules[i].id, id) == 0)
            return &policy_rules[i];
    return NULL;
}

/* "FILE:LINE:COL" of KEY ("forwards[1].listen") in C's text, or of its nearest ancestor there
 * (a key under gateway.openclaw that only the defaults hold), "FILE" when not even its first step
 * is there (a default). */
static char *locate(const struct vm_config *c, const char *key)
{
    enum { MAX_STEPS = 16 };
    struct json_step steps[MAX_STEPS];
    size_t n = 0;
    _cleanup_free_ char *copy = strdup(key);
    if (!copy)
        return NULL;
    for (char *p = copy; p && *p && n < MAX_STEPS;) {
        char *end = p + strcspn(p, ".[");
        char sep = *end;
        *end = 0;
        if (*p)
            steps[n++] = (struct json_step){.key = p};
        if (sep == '[' && n < MAX_STEPS) {
            steps[n++] = (struct json_step){.index = strtoul(end + 1, &end, 10)};
            end = strchr(end, ']');
            if (end && end[1] == '.')
                end++;
        }
        p = sep && end ? end + 1 : NULL;
    }
    struct json_position pos;
    char *s = NULL;
    while (c->text && n > 0 && json_pos_find(c->text, c->text_len, steps, n, false, &pos) < 0)
        n--;
    if (c->text && n > 0) {
        if (asprintf(&s, "%s:%u:%u", c->path, pos.line, pos.column) < 0)
            s = NULL;
    } else {
        s = strdup(c->path ? c->path : "(config)");
    }
    return s;
}

struct checker {
    const struct vm_config *c;
    struct policy_report *r;
    int error;
};

/* Records a finding of rule ID at KEY; WAIVER is the unsafe key that waives it, or NULL. */
__attribute__((format(printf, 5, 6))) static void
add(struct checker *k, const char *id, const char *key, const char *waiver, const char *fmt, ...)
{
    if (k->error)
        return;
    struct policy_report *r = k->r;
    struct policy_finding *v = reallocarray(r->findings, r->n + 1, sizeof(*v));
    if (!v) {
        k->error = -ENOMEM;
        return;
    }
    r->findings = v;
    struct policy_finding *f = &v[r->n];
    *f = (struct policy_finding){.rule = policy_rule_find(id)};
    _cleanup_free_ char *where = locate(k->c, key), *what = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&what, fmt, ap);
    va_end(ap);
    if (n < 0)
        what = NULL;
    if (!where || !what || !(f->key = strdup(key)) || (waiver && !(f->waiver = strdup(waiver))) ||
        asprintf(&f->line, "%s: %s: %s [%s%s%s]", where, key, what, id,
                 waiver ? ", waived by " : "", waiver ? waiver : "") < 0) {
        free(f->key);
        free(f->waiver);
        k->error = -ENOMEM;
        return;
    }
    r->n++;
    if (!waiver)
        r->n_violations++;
}

static void check_host_listen(struct checker *k)
{
    const struct vm_gateway *g = &k->c->gateway;
    struct endpoint e = {.kind = ENDPOINT_TCP};
    const char *why;
    if (endpoint_parse_hostport(g->host_listen, e.host, &e.port, &why) < 0 || endpoint_is_local(&e))
        return;
    add(k, "OCVM-P001", "gateway.host_listen",
        g->unsafe_remote_gateway ? "gateway.unsafe_remote_gateway" : NULL,
        "\"%s\" is not a loopback address: the gateway would be reachable from the network",
        g->host_listen);
}

static void check_forward_listeners(struct checker *k)
{
    for (size_t i = 0; i < k->c->n_forwards; i++) {
        const struct vm_forward *f = &k->c->forwards[i];
        struct endpoint e;
        const char *why;
        if (f->to != FORWARD_TO_GUEST || endpoint_parse(f->listen, &e, &why) < 0 ||
            endpoint_is_local(&e))
            continue;
        char key[64], waiver[64];
        snprintf(key, sizeof(key), "forwards[%zu].listen", i);
        snprintf(waiver, sizeof(waiver), "forwards[%zu].unsafe_remote_listen", i);
        add(k, "OCVM-P002", key, f->unsafe_remote_listen ? waiver : NULL,
            "\"%s\" is not a loopback address: guest port %u would be reachable from the network",
            f->listen, f->guest_port);
    }
}

/* Kernel parameters that only ocvm may set: they name the guest's readiness socket, shares and
 * network. (ocvm.relay= is judged on its endpoints: see relay_param_ok.) */
static const char *const managed_params[] = {
    "ocvm.ip=", "ocvm.gw=", "ocvm.dns=", "ocvm.share=", "systemd.set_credential=vmm.notify_socket:",
    "ip=",      NULL};

/* An extra guest relay "LISTEN,CONNECT" (LEN bytes at S) is fine when it stays inside the guest:
 * it listens on loopback or vsock, and connects to loopback. Sets *why otherwise. */
static bool relay_param_ok(const char *s, size_t len, const char **why)
{
    char buf[256];
    if (len >= sizeof(buf)) {
        *why = "too long";
        return false;
    }
    memcpy(buf, s, len);
    buf[len] = 0;
    char *comma = strchr(buf, ',');
    struct endpoint l, t;
    const char *ignored;
    if (!comma || (*comma = 0, endpoint_parse(buf, &l, &ignored) < 0) ||
        endpoint_parse(comma + 1, &t, &ignored) < 0) {
        *why = "not LISTEN,CONNECT endpoints";
        return false;
    }
    if (l.kind == ENDPOINT_TCP && !endpoint_is_local(&l)) {
        *why = "it listens beyond the guest's loopback: on the TAP network";
        return false;
    }
    if (t.kind != ENDPOINT_TCP || !endpoint_is_local(&t)) {
        *why = "it connects outside the guest's loopback";
        return false;
    }
    return true;
}

static void check_cmdline(struct checker *k)
{
    const char *s = k->c->boot.cmdline;
    const char *relay = "ocvm.relay=", *why;
    const char *waiver = k->c->boot.unsafe_cmdline ? "boot.unsafe_cmdline" : NULL;
    while (s && *s) {
        s += strspn(s, " \t");
        size_t len = strcspn(s, " \t");
        if (len > strlen(relay) && strncmp(s, relay, strlen(relay)) == 0 &&
            !relay_param_ok(s + strlen(relay), len - strlen(relay), &why))
            add(k, "OCVM-P003", "boot.cmdline", waiver,
                "\"%.*s\": %s; the guest's relays may only join its loopback to vsock or to "
                "its loopback",
                (int)len, s, why);
        for (const char *const *p = managed_params; *p && len; p++)
            if (len >= strlen(*p) && strncmp(s, *p, strlen(*p)) == 0) {
                add(k, "OCVM-P003", "boot.cmdline", waiver,
                    "\"%.*s\": ocvm sets the guest's %s itself; a second one could point it "
                    "elsewhere",
                    (int)len, s,
                    strncmp(*p, "systemd", 7) == 0   ? "readiness socket"
                    : strcmp(*p, "ocvm.share=") == 0 ? "shares"
                                                     : "network");
                break;
            }
        s += len;
    }
}

/* True when tcp endpoint E is an IPv4 address inside the VM's TAP subnet. */
static bool in_vm_subnet(const struct vm_config *c, const struct endpoint *e)
{
    struct cidr br;
    struct in_addr a;
    if (!c->network || e->kind != ENDPOINT_TCP || inet_pton(AF_INET, e->host, &a) != 1 ||
        cidr_parse(c->network->bridge_address, false, &br) < 0)
        return false;
    return cidr_contains(br, ntohl(a.s_addr));
}

static void check_gateway_port(struct checker *k)
{
    const struct vm_config *c = k->c;
    for (size_t i = 0; i < c->n_forwards; i++) {
        const struct vm_forward *f = &c->forwards[i];
        char key[64];
        if (f->to == FORWARD_TO_GUEST && f->guest_port == c->gateway.guest_port) {
            snprintf(key, sizeof(key), "forwards[%zu].guest_port", i);
            add(k, "OCVM-P004", key, NULL,
                "%u is the gateway's port: it is reached through gateway.host_listen alone, "
                "which OCVM-P001 keeps on loopback",
                f->guest_port);
        }
        const char *addr = f->to == FORWARD_TO_GUEST ? f->listen : f->connect;
        struct endpoint e;
        const char *why;
        if (addr && endpoint_parse(addr, &e, &why) == 0 && in_vm_subnet(c, &e)) {
            snprintf(key, sizeof(key), "forwards[%zu].%s", i,
                     f->to == FORWARD_TO_GUEST ? "listen" : "connect");
            add(k, "OCVM-P004", key, NULL,
                "\"%s\" is on the VM's TAP network (%s): the guest is reached over vsock, never "
                "over the TAP",
                addr, c->network->bridge_address);
        }
    }
}

static void check_unix_listeners(struct checker *k)
{
    for (size_t i = 0; i < k->c->n_forwards; i++) {
        const struct vm_forward *f = &k->c->forwards[i];
        struct endpoint e;
        const char *why;
        if (f->to != FORWARD_TO_GUEST || endpoint_parse(f->listen, &e, &why) < 0 ||
            e.kind != ENDPOINT_UNIX)
            continue;
        char dir[sizeof(e.path)], key[64];
        snprintf(dir, sizeof(dir), "%s", e.path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *(slash == dir ? slash + 1 : slash) = 0;
        snprintf(key, sizeof(key), "forwards[%zu].listen", i);
        struct stat st;
        if (stat(dir, &st) < 0)
            continue; /* not there (yet): binding will fail at start, naming it */
        if (!S_ISDIR(st.st_mode))
            add(k, "OCVM-P005", key, NULL, "%s is not a directory", dir);
        else if ((st.st_mode & 022) || (st.st_uid != 0 && st.st_uid != geteuid()))
            add(k, "OCVM-P005", key, NULL,
                "directory %s is writable by others (mode %04o, uid %u): another user could "
                "put their own socket there",
                dir, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
    }
}

/* QEMU options that open a path out of the VM (network, sockets, host devices, files, another
 * monitor), or undo ocvm's own settings (user, sandbox). Matched on the option's name, with one
 * or two leading dashes. */
static const char *const refused_options[] = {
    "netdev",     "net",      "nic",     "chardev",   "device",     "monitor",  "qmp",
    "qmp-pretty", "mon",      "serial",  "parallel",  "debugcon",   "gdb",      "s",
    "vnc",        "spice",    "display", "incoming",  "add-fd",     "fsdev",    "virtfs",
    "drive",      "blockdev", "hda",     "hdb",       "hdc",        "hdd",      "cdrom",
    "usbdevice",  "object",   "plugin",  "runas",     "sandbox",    "chroot",   "fw_cfg",
    "smbios",     "loadvm",   "pidfile", "daemonize", "readconfig", "audiodev", "bios",
    "L",          "kernel",   "initrd",  "append",    "machine",    "M",        "accel",
    "enable-kvm", "mem-path", NULL};

static void check_extra_args(struct checker *k)
{
    const struct vm_machine *m = &k->c->machine;
    for (size_t i = 0; m->extra_args && m->extra_args[i]; i++) {
        const char *a = m->extra_args[i];
        if (a[0] != '-')
            continue; /* a value: judged with its option */
        const char *name = a + (a[1] == '-' ? 2 : 1);
        size_t len = strcspn(name, "=");
        for (const char *const *p = refused_options; *p; p++)
            if (strlen(*p) == len && strncmp(name, *p, len) == 0) {
                char key[64];
                snprintf(key, sizeof(key), "machine.extra_args[%zu]", i);
                add(k, "OCVM-P006", key, m->unsafe_extra_args ? "machine.unsafe_extra_args" : NULL,
                    "\"%s\" is refused: ocvm alone sets QEMU's devices, chardevs, networks, "
                    "monitors, files and privileges (see docs/policy.md for the list)",
                    a);
                break;
            }
    }
}

static void check_qemu_user(struct checker *k)
{
    const struct vm_machine *m = &k->c->machine;
    const char *waiver = m->unsafe_qemu_as_root ? "machine.unsafe_qemu_as_root" : NULL;
    struct passwd *pw = m->user ? getpwnam(m->user) : NULL;
    if (pw && pw->pw_uid == 0)
        add(k, "OCVM-P007", "machine.user", waiver,
            "\"%s\" is root: QEMU parses what the guest writes and must not run with root's "
            "rights",
            m->user);
    else if (!m->user && geteuid() == 0)
        add(k, "OCVM-P007", "machine.user", waiver,
            "null keeps QEMU as the user running ocvm, and that is root here: QEMU parses what "
            "the guest writes and must not run with root's rights (leave the key out for the "
            "\"ocvm\" user)");
}

/* ---- gateway.openclaw: judged on the tree the gateway gets (policy/gateway_config.h), so a
 * default the user deleted (null) or replaced counts as much as a value the user wrote ---- */

/* The value at dotted PATH under ROOT, or NULL. */
static json_t *json_at(json_t *root, const char *path)
{
    while (root && *path) {
        size_t n = strcspn(path, ".");
        char key[64];
        if (n >= sizeof(key))
            return NULL;
        memcpy(key, path, n);
        key[n] = '\0';
        root = json_object_get(root, key);
        path += n + (path[n] == '.');
    }
    return root;
}

/* V as JSON on one line, cut to about 60 bytes, or "absent". Never called on a secret. */
static char *value_text(const json_t *v)
{
    if (!v)
        return strdup("absent");
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (s && strlen(s) > 60) {
        size_t cut = 56;
        while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
            cut--; /* not inside a UTF-8 sequence */
        strcpy(s + cut, "...");
    }
    return s;
}

static bool is_string(const json_t *v, const char *want)
{
    return json_is_string(v) && strcmp(json_string_value(v), want) == 0;
}

/* Characters of S once trimmed of white space, as OpenClaw counts them. */
static size_t secret_length(const char *s)
{
    size_t n = 0, end = 0;
    s += strspn(s, " \t\r\n");
    for (const char *p = s; *p; p++)
        if (((unsigned char)*p & 0xc0) != 0x80) {
            n++;
            if (!strchr(" \t\r\n", *p))
                end = n;
        }
    return end;
}

/* A finding of rule ID at gateway.openclaw.PATH about value V (NULL: absent), which should be
 * WANT: "V (ocvm's default: WANT): WHY". */
static void add_openclaw(struct checker *k, const char *id, const char *path, bool waived,
                         const json_t *v, const char *want, const char *why)
{
    char key[192];
    _cleanup_free_ char *value = value_text(v);
    const struct policy_rule *rule = policy_rule_find(id);
    if (!value || snprintf(key, sizeof(key), "gateway.openclaw.%s", path) >= (int)sizeof(key)) {
        k->error = k->error ?: -ENOMEM;
        return;
    }
    add(k, id, key, waived ? rule->unsafe_key : NULL, "%s%s%s%s: %s", value,
        want ? " (ocvm's default: " : "", want ? want : "", want ? ")" : "", why);
}

static void check_openclaw_bind(struct checker *k, json_t *m)
{
    bool waived = k->c->gateway.unsafe_openclaw_bind;
    json_t *bind = json_at(m, "gateway.bind"), *ts = json_at(m, "gateway.tailscale.mode");
    if (!is_string(bind, "loopback"))
        add_openclaw(k, "OCVM-P008", "gateway.bind", waived, bind, "\"loopback\"",
                     "the gateway would listen beyond the guest's loopback (OpenClaw's own "
                     "default, auto, binds 0.0.0.0 in a VM), a way in around ocvm's relay");
    if (ts && !is_string(ts, "off"))
        add_openclaw(k, "OCVM-P008", "gateway.tailscale.mode", waived, ts, NULL,
                     "Tailscale would publish the gateway beyond the guest's loopback");
}

static void check_openclaw_auth(struct checker *k, json_t *m, json_t *user)
{
    bool waived = k->c->gateway.unsafe_openclaw_auth;
    json_t *mode = json_at(m, "gateway.auth.mode");
    if (!is_string(mode, "token") && !is_string(mode, "password")) {
        add_openclaw(k, "OCVM-P009", "gateway.auth.mode", waived, mode, "\"token\"",
                     "the gateway would not ask its clients for a token or password");
    } else {
        /* ocvm's own token is not in M (the rules never see it): a token there is the user's */
        const char *which = json_string_value(mode);
        char path[32];
        snprintf(path, sizeof(path), "gateway.auth.%s", which);
        json_t *secret = json_at(m, path), *given = json_at(user, path);
        if (json_is_null(given) || (!secret && strcmp(which, "password") == 0))
            add_openclaw(k, "OCVM-P009", path, waived, given, NULL,
                         "the gateway would have no secret to check; leave gateway.auth.mode and "
                         "gateway.auth.token out, and ocvm gives it its own token");
        else if (json_is_string(secret) &&
                 secret_length(json_string_value(secret)) < GATEWAY_CONFIG_SECRET_MIN) {
            char key[64];
            snprintf(key, sizeof(key), "gateway.openclaw.%s", path);
            /* its length, never its value */
            add(k, "OCVM-P009", key, waived ? "gateway.unsafe_openclaw_auth" : NULL,
                "a %s of %zu characters, fewer than %d: it can be guessed; %s", which,
                secret_length(json_string_value(secret)), GATEWAY_CONFIG_SECRET_MIN,
                strcmp(which, "token") == 0
                    ? "leave it out, and ocvm gives the gateway its own (64 hex digits)"
                    : "use a longer one, or leave gateway.auth out for ocvm's own token");
        }
    }
    json_t *origins = json_at(m, "gateway.controlUi.allowedOrigins");
    for (size_t i = 0; i < json_array_size(origins); i++) {
        json_t *o = json_array_get(origins, i);
        char path[64];
        snprintf(path, sizeof(path), "gateway.controlUi.allowedOrigins[%zu]", i);
        if (is_string(o, "*"))
            add_openclaw(k, "OCVM-P009", path, waived, o, NULL,
                         "any web page open in a browser on the host could talk to the gateway");
    }
    json_t *fallback = json_at(m, "gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback");
    if (fallback && !json_is_false(fallback))
        add_openclaw(k, "OCVM-P009", "gateway.controlUi.dangerouslyAllowHostHeaderOriginFallback",
                     waived, fallback, NULL,
                     "the Control UI would take the Host header for the origin, which DNS "
                     "rebinding forges");
}

/* The tools settings at PREFIX ("tools", "agents.entries.ID.tools"). The global ones must hold
 * ocvm's values; an agent's may only repeat them (absent: the agent inherits). */
static void check_tools(struct checker *k, json_t *tools, const char *prefix, bool global)
{
    static const struct {
        const char *path;
        bool want;
        const char *why;
    } settings[] = {
        {"fs.workspaceOnly", true,
         "the agent's file tools would reach files outside its workspace, the gateway's token "
         "and keys among them"},
        {"exec.applyPatch.workspaceOnly", true,
         "apply_patch would write files outside the agent's workspace"},
        {"elevated.enabled", false,
         "the agent could run elevated commands, past the limits of its tool policy"},
    };
    bool waived = k->c->gateway.unsafe_openclaw_tools;
    for (size_t i = 0; i < ELEMENTSOF(settings); i++) {
        json_t *v = json_at(tools, settings[i].path);
        if ((!v && !global) || (settings[i].want ? json_is_true(v) : json_is_false(v)))
            continue;
        char path[160];
        snprintf(path, sizeof(path), "%s.%s", prefix, settings[i].path);
        add_openclaw(k, "OCVM-P010", path, waived, v, settings[i].want ? "true" : "false",
                     settings[i].why);
    }
}

/* An agent id as OpenClaw allows it (^[a-z0-9_][a-z0-9_-]{0,63}$): others it refuses itself. */
static bool agent_id_is_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64 || id[0] == '-')
        return false;
    for (const char *p = id; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789_-", *p))
            return false;
    return true;
}

/* Key names that older guides give and OpenClaw refuses (the gateway stops, exit 78), under
 * "tools" at PREFIX or at the top. */
static void check_refused_names(struct checker *k, json_t *m, json_t *tools, const char *prefix)
{
    static const struct {
        const char *path, *instead;
    } names[] = {
        {"tools.exec.workspaceOnly",
         "use tools.fs.workspaceOnly (file tools) and tools.exec.applyPatch.workspaceOnly"},
        {"tools.applyPatch", "use tools.exec.applyPatch"},
        {"gateway.auth.tokenFile",
         "leave the token to ocvm, or give gateway.auth.token as a SecretRef "
         "(secrets.providers)"},
    };
    for (size_t i = 0; i < ELEMENTSOF(names); i++) {
        bool in_tools = strncmp(names[i].path, "tools.", 6) == 0;
        if (prefix && !in_tools)
            continue;
        json_t *v = prefix ? json_at(tools, names[i].path + 6) : json_at(m, names[i].path);
        if (!v)
            continue;
        char key[192];
        snprintf(key, sizeof(key), "gateway.openclaw.%s%s%s", prefix ? prefix : "",
                 prefix ? "." : "", prefix ? names[i].path + 6 : names[i].path);
        add(k, "OCVM-P011", key, NULL,
            "OpenClaw has no such key, and its gateway stops at start on one (exit 78): %s",
            names[i].instead);
    }
}

static void check_openclaw(struct checker *k)
{
    json_t *m = NULL, *user = json_loads(k->c->gateway.openclaw_json ?: "{}", 0, NULL);
    _cleanup_free_ char *error = NULL;
    int r = user ? gateway_config_build(k->c, NULL, &m, &error) : -ENOMEM;
    if (r < 0) {
        json_decref(user);
        k->error = r;
        return;
    }
    check_openclaw_bind(k, m);
    check_openclaw_auth(k, m, user);
    check_tools(k, json_object_get(m, "tools"), "tools", true);
    /* each agent may override the tools settings: the same rule, and the same wrong names */
    json_t *agents = json_at(m, "agents.entries"), *agent;
    const char *id;
    json_object_foreach(agents, id, agent)
    {
        char prefix[96];
        snprintf(prefix, sizeof(prefix), "agents.entries.%s.tools", id);
        if (agent_id_is_valid(id))
            check_tools(k, json_object_get(agent, "tools"), prefix, false);
    }
    check_refused_names(k, m, NULL, NULL);
    json_object_foreach(agents, id, agent)
    {
        char prefix[96];
        snprintf(prefix, sizeof(prefix), "agents.entries.%s.tools", id);
        if (agent_id_is_valid(id))
            check_refused_names(k, m, json_object_get(agent, "tools"), prefix);
    }
    json_decref(m);
    json_decref(user);
}

/* Every unsafe_* key set, whether or not it waives anything now: each is said on every start. */
static int list_unsafe(const struct vm_config *c, char ***ret)
{
    char **v = calloc(8 + c->n_forwards, sizeof(char *));
    size_t n = 0;
    if (!v)
        return -ENOMEM;
    if (c->boot.unsafe_cmdline)
        v[n++] = strdup("boot.unsafe_cmdline");
    if (c->gateway.unsafe_openclaw_auth)
        v[n++] = strdup("gateway.unsafe_openclaw_auth");
    if (c->gateway.unsafe_openclaw_bind)
        v[n++] = strdup("gateway.unsafe_openclaw_bind");
    if (c->gateway.unsafe_openclaw_tools)
        v[n++] = strdup("gateway.unsafe_openclaw_tools");
    if (c->gateway.unsafe_remote_gateway)
        v[n++] = strdup("gateway.unsafe_remote_gateway");
    if (c->machine.unsafe_extra_args)
        v[n++] = strdup("machine.unsafe_extra_args");
    if (c->machine.unsafe_qemu_as_root)
        v[n++] = strdup("machine.unsafe_qemu_as_root");
    for (size_t i = 0; i < c->n_forwards; i++)
        if (c->forwards[i].unsafe_remote_listen &&
            asprintf(&v[n++], "forwards[%zu].unsafe_remote_listen", i) < 0)
            v[n - 1] = NULL;
    for (size_t i = 0; i < n; i++)
        if (!v[i]) {
            for (size_t j = 0; j < n; j++)
                free(v[j]);
            free(v);
            return -ENOMEM;
        }
    *ret = v;
    return 0;
}

/* The secrets' source files: owned by root or by us, no group or other bits (launcher/secrets.c
 * refuses them again when it stages them). */
static void check_secret_file(struct checker *k, const char *key, const char *path)
{
    struct stat st;
    if (!path || stat(path, &st) < 0)
        return; /* the loader checked it exists; gone since: staging says so */
    if (st.st_uid != 0 && st.st_uid != geteuid())
        add(k, "OCVM-P012", key, NULL,
            "%s is owned by uid %u: a secret must belong to root or to the user running ocvm", path,
            (unsigned)st.st_uid);
    else if (st.st_mode & 077)
        add(k, "OCVM-P012", key, NULL, "%s has mode %04o: others can read it (chmod 0600 %s)", path,
            (unsigned)(st.st_mode & 07777), path);
}

static void check_secrets(struct checker *k)
{
    const struct vm_secrets *s = &k->c->secrets;
    check_secret_file(k, "secrets.gateway_token", s->gateway_token);
    for (size_t i = 0; i < s->n_files; i++) {
        char key[96];
        snprintf(key, sizeof(key), "secrets.files.%s", s->files[i].name);
        check_secret_file(k, key, s->files[i].path);
    }
}

int policy_check(const struct vm_config *c, struct policy_report *ret)
{
    *ret = (struct policy_report){0};
    struct checker k = {.c = c, .r = ret};
    check_host_listen(&k);
    check_forward_listeners(&k);
    check_cmdline(&k);
    check_gateway_port(&k);
    check_unix_listeners(&k);
    check_extra_args(&k);
    check_qemu_user(&k);
    check_openclaw(&k);
    check_secrets(&k);
    if (!k.error)
        k.error = list_unsafe(c, &ret->unsafe_in_use);
    if (k.error)
        policy_report_done(ret);
    return k.error;
}

void policy_report_done(struct policy_report *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->findings[i].key);
        free(r->findings[i].line);
        free(r->findings[i].waiver);
    }
    free(r->findings);
    for (char **p = r->unsafe_in_use; p && *p; p++)
        free(*p);
    free(r->unsafe_in_use);
    *r = (struct policy_report){0};
}
