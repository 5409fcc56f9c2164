#include "netsetup/netsetup.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "netsetup/firewall.h"

#include <errno.h>
#include <jansson.h>
#include <netlink/socket.h>
#include <stdarg.h>
#include <string.h>

static int copy_name(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n == 0 || n >= size)
        return -EINVAL;
    memcpy(dst, src, n + 1);
    return 0;
}

/* Everything decided before anything is touched: the uplink, the egress addresses, the rules. */
static int plan(const struct netsetup_plan *n, struct nl_sock *sk, char **ret_uplink,
                char **ret_ruleset, char **error)
{
    _cleanup_free_ char *uplink = NULL;
    _cleanup_free_ struct firewall_egress *egress = NULL;
    size_t n_egress = 0;
    int r;
    if (strcmp(n->uplink, "auto") == 0) {
        if ((r = link_default_route(sk, &uplink, error)) < 0)
            return r;
    } else {
        if (!(uplink = strdup(n->uplink)))
            return -ENOMEM;
        if ((r = link_ifindex(sk, uplink)) < 0)
            return error_setf(error, r, "network.uplink %s: %s", uplink,
                              r == -ENODEV ? "no such interface" : strerror(-r));
    }
    if (strcmp(uplink, n->bridge) == 0 || strcmp(uplink, n->tap) == 0)
        return error_setf(error, -EINVAL, "network.uplink %s is the VM's own %s%s", uplink,
                          strcmp(uplink, n->bridge) == 0 ? "bridge" : "TAP",
                          strcmp(n->uplink, "auto") == 0 ? " (found from the default route)" : "");
    if ((r = firewall_resolve_egress(n, &egress, &n_egress, error)) < 0)
        return r;
    struct firewall_facts f = {.uplink = uplink, .egress = egress, .n_egress = n_egress};
    if ((r = firewall_render(n, &f, ret_ruleset)) < 0)
        return error_setf(error, r, "render the nft table of %s: %s", n->vm, strerror(-r));
    *ret_uplink = TAKE_PTR(uplink);
    return 0;
}

/* Turns IPv4 forwarding on for NAME; *was_set says whether it was off before. */
static int forwarding_on(const char *what, const char *name, bool *was_set, char **error)
{
    int f = link_forwarding_get(name);
    if (f < 0)
        return error_setf(error, f, "read IPv4 forwarding of %s %s: %s", what, name, strerror(-f));
    if (f == 1)
        return 0;
    int r = link_forwarding_set(name, true);
    if (r < 0)
        return error_setf(error, r, "turn on IPv4 forwarding of %s %s: %s", what, name,
                          strerror(-r));
    *was_set = true;
    return 0;
}

static void close_fds(struct netsetup *n)
{
    for (unsigned q = 0; q < LINK_MAX_QUEUES; q++) {
        closep(&n->tap_fds[q]);
        n->tap_fds[q] = -1;
    }
    n->n_tap_fds = 0;
}

static void netsetup_clear(struct netsetup *n)
{
    *n = (struct netsetup){0};
    for (unsigned q = 0; q < LINK_MAX_QUEUES; q++)
        n->tap_fds[q] = -1;
}

int netsetup_up(const struct netsetup_plan *n, struct netsetup *ret, char **error)
{
    netsetup_clear(ret);
    if (!n)
        return 0;
    struct netsetup_state *s = &ret->state;
    unsigned queues = n->tap_queues;
    if (copy_name(s->vm, sizeof(s->vm), n->vm) < 0 ||
        copy_name(s->bridge, sizeof(s->bridge), n->bridge) < 0 ||
        copy_name(s->tap, sizeof(s->tap), n->tap) < 0)
        return error_setf(error, -EINVAL, "network: a name is empty or too long");
    if (queues == 0 || queues > LINK_MAX_QUEUES)
        return error_setf(error, -EINVAL, "TAP %s: %u queues (1 to %d)", n->tap, queues,
                          LINK_MAX_QUEUES);

    _cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
    _cleanup_free_ char *uplink = NULL, *ruleset = NULL;
    int r = link_socket_open(&sk, error);
    if (r < 0 || (r = plan(n, sk, &uplink, &ruleset, error)) < 0)
        return r;
    if (copy_name(s->uplink, sizeof(s->uplink), uplink) < 0)
        return error_setf(error, -EINVAL, "uplink %s: name too long", uplink);

    if ((r = link_bridge_setup(sk, n->bridge, n->bridge_address, &s->bridge_ifindex,
                               &s->bridge_created, error)) < 0 ||
        (r = link_tap_create(sk, n->tap, queues, n->bridge, s->bridge_ifindex, ret->tap_fds,
                             &s->tap_ifindex, error)) < 0)
        goto fail;
    ret->n_tap_fds = queues;
    if ((r = firewall_apply(n->vm, ruleset, error)) < 0)
        goto fail;
    s->table_applied = true;
    /* Forwarding comes last, once the table filters it. IPv4 checks the switch of the interface a
     * packet arrives on: the bridge's for the guest's packets, the uplink's for the replies (NAT
     * is undone before routing). The global switch (net.ipv4.ip_forward, conf/all) is not
     * needed and is left alone. */
    if ((r = forwarding_on("bridge", n->bridge, &s->bridge_forwarding_set, error)) < 0 ||
        (r = forwarding_on("uplink", uplink, &s->uplink_forwarding_set, error)) < 0)
        goto fail;
    return 0;
fail:
    close_fds(ret);
    _cleanup_free_ char *ignored = NULL;
    (void)netsetup_cleanup(s, &ignored);
    netsetup_clear(ret);
    return r;
}

int netsetup_cleanup(const struct netsetup_state *s, char **error)
{
    int first = 0;
    _cleanup_free_ char *e = NULL;
#define STEP(expr)                                                                                 \
    do {                                                                                           \
        int _r = (expr);                                                                           \
        if (_r < 0 && first == 0) {                                                                \
            first = _r;                                                                            \
            *error = TAKE_PTR(e);                                                                  \
        }                                                                                          \
        free(e);                                                                                   \
        e = NULL;                                                                                  \
    } while (0)

    /* Forwarding off first, so nothing is forwarded once the table is gone. The uplink's switch
     * is turned back off only when no other VM's table is left (another VM may use it). */
    if (s->uplink_forwarding_set && s->uplink[0] && firewall_count_tables(s->vm, &e) == 0) {
        int r = link_forwarding_set(s->uplink, false);
        STEP(r < 0 && r != -ENOENT ? error_setf(&e, r, "turn off IPv4 forwarding of uplink %s: %s",
                                                s->uplink, strerror(-r))
                                   : 0);
    }
    free(e);
    e = NULL;
    if (s->bridge_forwarding_set && s->bridge[0]) {
        int r = link_forwarding_set(s->bridge, false);
        STEP(r < 0 && r != -ENOENT ? error_setf(&e, r, "turn off IPv4 forwarding of bridge %s: %s",
                                                s->bridge, strerror(-r))
                                   : 0);
    }
    if (s->table_applied)
        STEP(firewall_remove(s->vm, &e));
    if (s->tap_ifindex > 0 || (s->bridge_created && s->bridge_ifindex > 0)) {
        _cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
        int r = link_socket_open(&sk, &e);
        STEP(r);
        if (r == 0 && s->tap_ifindex > 0)
            STEP(link_delete(sk, s->tap, s->tap_ifindex, &e));
        if (r == 0 && s->bridge_created && s->bridge_ifindex > 0) {
            int ports = link_bridge_ports(sk, s->bridge_ifindex);
            if (ports < 0)
                STEP(error_setf(&e, ports, "list the ports of bridge %s: %s", s->bridge,
                                strerror(-ports)));
            else if (ports == 0)
                STEP(link_delete(sk, s->bridge, s->bridge_ifindex, &e));
        }
    }
#undef STEP
    return first;
}

void netsetup_down(struct netsetup *n)
{
    close_fds(n);
    _cleanup_free_ char *ignored = NULL;
    (void)netsetup_cleanup(&n->state, &ignored);
    netsetup_clear(n);
}

int netsetup_audit(const struct netsetup_plan *p, char ***ret_differences, char **error)
{
    struct diff_list d = {0};
    if (p) {
        _cleanup_(nl_socket_freep) struct nl_sock *sk = NULL;
        _cleanup_free_ char *uplink = NULL, *ruleset = NULL;
        int r = link_socket_open(&sk, error);
        if (r < 0 || (r = plan(p, sk, &uplink, &ruleset, error)) < 0 ||
            (r = link_audit(sk, p, uplink, &d)) < 0 ||
            (r = firewall_audit(p->vm, ruleset, &d, error)) < 0) {
            diff_list_done(&d);
            return r;
        }
    }
    if (d.error < 0) {
        diff_list_done(&d);
        return -ENOMEM;
    }
    size_t count = d.n;
    if (!(*ret_differences = diff_list_steal(&d)))
        return -ENOMEM;
    return (int)count;
}

void netsetup_differences_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

int netsetup_state_to_json(const struct netsetup_state *s, char **ret)
{
    json_t *o = json_pack("{s:s, s:s, s:i, s:b, s:s, s:i, s:s, s:b, s:b, s:b}", "vm", s->vm,
                          "bridge", s->bridge, "bridge_ifindex", s->bridge_ifindex,
                          "bridge_created", s->bridge_created, "tap", s->tap, "tap_ifindex",
                          s->tap_ifindex, "uplink", s->uplink, "bridge_forwarding_set",
                          s->bridge_forwarding_set, "uplink_forwarding_set",
                          s->uplink_forwarding_set, "table_applied", s->table_applied);
    if (!o)
        return -ENOMEM;
    *ret = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return *ret ? 0 : -ENOMEM;
}

int netsetup_state_from_json(const char *text, struct netsetup_state *ret)
{
    json_error_t err;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (!o)
        return -EINVAL;
    const char *vm, *bridge, *tap, *uplink;
    int bi, ti, bc, bf, uf, ta;
    struct netsetup_state s = {0};
    int r =
        json_unpack_ex(o, &err, JSON_STRICT, "{s:s, s:s, s:i, s:b, s:s, s:i, s:s, s:b, s:b, s:b}",
                       "vm", &vm, "bridge", &bridge, "bridge_ifindex", &bi, "bridge_created", &bc,
                       "tap", &tap, "tap_ifindex", &ti, "uplink", &uplink, "bridge_forwarding_set",
                       &bf, "uplink_forwarding_set", &uf, "table_applied", &ta);
    if (r == 0 &&
        (copy_name(s.vm, sizeof(s.vm), vm) < 0 ||
         (*bridge && copy_name(s.bridge, sizeof(s.bridge), bridge) < 0) ||
         (*tap && copy_name(s.tap, sizeof(s.tap), tap) < 0) ||
         (*uplink && copy_name(s.uplink, sizeof(s.uplink), uplink) < 0) || bi < 0 || ti < 0))
        r = -1;
    json_decref(o);
    if (r < 0)
        return -EINVAL;
    s.bridge_ifindex = bi;
    s.tap_ifindex = ti;
    s.bridge_created = bc;
    s.bridge_forwarding_set = bf;
    s.uplink_forwarding_set = uf;
    s.table_applied = ta;
    *ret = s;
    return 0;
}
