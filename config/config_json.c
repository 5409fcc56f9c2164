/* A struct vm_config as canonical JSON; see config_json.h. */
#include "config/config_json.h"

#include "common/cleanup.h"

#include <errno.h>
#include <string.h>

/* An unsafe_* key's value: true, or NULL so that json_pack's "o*" leaves the key out. */
static json_t *set_only(bool v)
{
    return v ? json_true() : NULL;
}

static json_t *string_array(char **v)
{
    json_t *a = json_array();
    for (; a && v && *v; v++)
        if (json_array_append_new(a, json_string(*v)) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *machine_json(const struct vm_machine *m)
{
    return json_pack("{s:s,s:s,s:I,s:I,s:s,s:s?,s:o,s:o*,s:o*}", "type",
                     machine_type_to_string(m->type), "accel", accel_to_string(m->accel), "vcpu",
                     (json_int_t)m->vcpu, "memory_mib", (json_int_t)m->memory_mib, "qemu", m->qemu,
                     "user", m->user, "extra_args", string_array(m->extra_args),
                     "unsafe_qemu_as_root", set_only(m->unsafe_qemu_as_root), "unsafe_extra_args",
                     set_only(m->unsafe_extra_args));
}

static json_t *egress_json(const struct vm_network *n)
{
    json_t *allow = json_array();
    for (size_t i = 0; allow && i < n->n_egress_allow; i++) {
        const struct vm_egress_rule *e = &n->egress_allow[i];
        json_t *ports = json_array();
        for (size_t j = 0; ports && j < e->n_ports; j++)
            if (json_array_append_new(ports, json_integer(e->ports[j])) < 0)
                json_decref(TAKE_PTR(ports));
        if (json_array_append_new(allow, json_pack("{s:s,s:o}", "host", e->host, "ports", ports)) <
            0)
            json_decref(TAKE_PTR(allow));
    }
    return json_pack("{s:o}", "allow", allow);
}

static json_t *network_json(const struct vm_network *n)
{
    if (!n)
        return json_null();
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "bridge", n->bridge, "bridge_address",
                     n->bridge_address, "tap", n->tap, "guest_address", n->guest_address, "mac",
                     n->mac, "uplink", n->uplink, "dns", n->dns, "egress", egress_json(n));
}

static json_t *gateway_json(const struct vm_gateway *g)
{
    json_t *openclaw = json_loads(g->openclaw_json ? g->openclaw_json : "{}", 0, NULL);
    return json_pack("{s:I,s:s,s:s,s:I,s:I,s:I,s:o,s:o*,s:o*,s:o*,s:o*}", "guest_port",
                     (json_int_t)g->guest_port, "host_listen", g->host_listen, "health_path",
                     g->health_path, "probe_interval_s", (json_int_t)g->probe_interval_s,
                     "probe_failures", (json_int_t)g->probe_failures, "probe_restart_after",
                     (json_int_t)g->probe_restart_after, "openclaw", openclaw,
                     "unsafe_remote_gateway", set_only(g->unsafe_remote_gateway),
                     "unsafe_openclaw_bind", set_only(g->unsafe_openclaw_bind),
                     "unsafe_openclaw_auth", set_only(g->unsafe_openclaw_auth),
                     "unsafe_openclaw_tools", set_only(g->unsafe_openclaw_tools));
}

static json_t *forwards_json(const struct vm_config *c)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < c->n_forwards; i++) {
        const struct vm_forward *f = &c->forwards[i];
        bool to_guest = f->to == FORWARD_TO_GUEST;
        json_t *o = json_pack("{s:s,s:s,s:I,s:o*}", "to", forward_dir_to_string(f->to),
                              to_guest ? "listen" : "connect", to_guest ? f->listen : f->connect,
                              "guest_port", (json_int_t)f->guest_port, "unsafe_remote_listen",
                              set_only(f->unsafe_remote_listen));
        if (json_array_append_new(a, o) < 0)
            json_decref(TAKE_PTR(a));
    }
    return a;
}

/* The user's shares: ocvm's own secrets share is added at each start, never written. */
static json_t *shares_json(const struct vm_config *c)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < c->n_shares; i++) {
        const struct vm_share *s = &c->shares[i];
        if (strcmp(s->tag, SECRETS_SHARE_TAG) == 0)
            continue;
        json_t *o = json_pack("{s:s,s:s,s:s,s:b}", "tag", s->tag, "source", s->source, "proto",
                              share_proto_to_string(s->proto), "read_only", s->read_only);
        if (json_array_append_new(a, o) < 0)
            json_decref(TAKE_PTR(a));
    }
    return a;
}

static json_t *secrets_json(const struct vm_secrets *s)
{
    json_t *files = json_object();
    for (size_t i = 0; files && i < s->n_files; i++)
        if (json_object_set_new(files, s->files[i].name, json_string(s->files[i].path)) < 0)
            json_decref(TAKE_PTR(files));
    return json_pack("{s:s?,s:o}", "gateway_token", s->gateway_token, "files", files);
}

int config_json_object(const struct vm_config *c, json_t **ret)
{
    json_t *vsock = c->vsock.enabled ? json_pack("{s:s,s:I}", "backend",
                                                 vsock_backend_to_string(c->vsock.backend),
                                                 "guest_cid", (json_int_t)c->vsock.guest_cid)
                                     : json_null();
    json_t *o = json_pack(
        "{s:s,s:o,s:{s:s,s:s?,s:s,s:o*},s:o,s:o,s:o,s:o,s:o,s:o,s:{s:I,s:I,s:I},s:{s:I,s:I}}",
        "name", c->name, "machine", machine_json(&c->machine), "boot", "kernel", c->boot.kernel,
        "initrd", c->boot.initrd, "cmdline", c->boot.cmdline, "unsafe_cmdline",
        set_only(c->boot.unsafe_cmdline), "vsock", vsock, "network", network_json(c->network),
        "gateway", gateway_json(&c->gateway), "forwards", forwards_json(c), "shares",
        shares_json(c), "secrets", secrets_json(&c->secrets), "restart", "max_restarts",
        (json_int_t)c->restart.max_restarts, "backoff_initial_ms",
        (json_int_t)c->restart.backoff_initial_ms, "backoff_max_ms",
        (json_int_t)c->restart.backoff_max_ms, "timeouts", "ready_s",
        (json_int_t)c->timeouts.ready_s, "shutdown_s", (json_int_t)c->timeouts.shutdown_s);
    if (!o)
        return -ENOMEM;
    *ret = o;
    return 0;
}

int config_json_dump(const json_t *o, char **ret)
{
    _cleanup_free_ char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!s || asprintf(ret, "%s\n", s) < 0)
        return -ENOMEM;
    return 0;
}

int config_json_text(const struct vm_config *c, char **ret)
{
    json_t *o;
    int r = config_json_object(c, &o);
    if (r < 0)
        return r;
    r = config_json_dump(o, ret);
    json_decref(o);
    return r;
}
