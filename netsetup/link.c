#include "netsetup/link.h"

#include "common/cleanup.h"
#include "common/error.h"
#include "netsetup/cidr.h"
#include "netsetup/plan.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/route.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>

void nl_socket_freep(struct nl_sock **sk)
{
    if (*sk)
        nl_socket_free(*sk);
}
static void rtnl_link_putp(struct rtnl_link **l)
{
    if (*l)
        rtnl_link_put(*l);
}
static void rtnl_addr_putp(struct rtnl_addr **a)
{
    if (*a)
        rtnl_addr_put(*a);
}
static void nl_addr_putp(struct nl_addr **a)
{
    if (*a)
        nl_addr_put(*a);
}
static void nl_cache_freep(struct nl_cache **c)
{
    if (*c)
        nl_cache_free(*c);
}
#define _cleanup_link_ _cleanup_(rtnl_link_putp)
#define _cleanup_cache_ _cleanup_(nl_cache_freep)

/* libnl reports its own codes; callers get -errno. */
static int nl_errno(int nle)
{
    switch (nle < 0 ? -nle : nle) {
    case 0:
        return 0;
    case NLE_NOMEM:
        return -ENOMEM;
    case NLE_EXIST:
        return -EEXIST;
    case NLE_OBJ_NOTFOUND:
    case NLE_NODEV:
        return -ENODEV;
    case NLE_PERM:
        return -EPERM;
    case NLE_NOACCESS:
        return -EACCES;
    case NLE_BUSY:
        return -EBUSY;
    case NLE_INVAL:
        return -EINVAL;
    case NLE_RANGE:
        return -ERANGE;
    case NLE_OPNOTSUPP:
        return -EOPNOTSUPP;
    case NLE_AGAIN:
        return -EAGAIN;
    case NLE_AF_NOSUPPORT:
        return -EAFNOSUPPORT;
    default:
        return -EIO;
    }
}

/* Fails with "WHAT: <netlink error>" for the libnl code NLE. */
#define NL_FAIL(error, nle, fmt, ...)                                                              \
    error_setf(error, nl_errno(nle), fmt ": %s", __VA_ARGS__, nl_geterror(nle))

int link_socket_open(struct nl_sock **ret, char **error)
{
    _cleanup_(nl_socket_freep) struct nl_sock *sk = nl_socket_alloc();
    if (!sk)
        return -ENOMEM;
    int e = nl_connect(sk, NETLINK_ROUTE);
    if (e < 0)
        return NL_FAIL(error, e, "%s", "open a netlink socket");
    *ret = TAKE_PTR(sk);
    return 0;
}

int link_ifindex(struct nl_sock *sk, const char *name)
{
    _cleanup_link_ struct rtnl_link *l = NULL;
    int e = rtnl_link_get_kernel(sk, 0, name, &l);
    if (e < 0)
        return nl_errno(e) == -EIO ? -EIO : -ENODEV;
    return rtnl_link_get_ifindex(l);
}

/* Sets flags IFF_UP (and MTU when not 0) on link IFINDEX. */
static int link_up(struct nl_sock *sk, int ifindex, unsigned mtu)
{
    _cleanup_link_ struct rtnl_link *orig = rtnl_link_alloc();
    _cleanup_link_ struct rtnl_link *change = rtnl_link_alloc();
    if (!orig || !change)
        return -NLE_NOMEM;
    rtnl_link_set_ifindex(orig, ifindex);
    rtnl_link_set_flags(change, IFF_UP);
    if (mtu)
        rtnl_link_set_mtu(change, mtu);
    return rtnl_link_change(sk, orig, change, 0);
}

/* The IPv4 addresses of IFINDEX: sets *has_want when WANT is one, and OTHER to the first other. */
static int bridge_addresses(struct nl_sock *sk, int ifindex, struct cidr want, bool *has_want,
                            char other[CIDR_STRLEN])
{
    _cleanup_cache_ struct nl_cache *cache = NULL;
    int e = rtnl_addr_alloc_cache(sk, &cache);
    if (e < 0)
        return e;
    *has_want = false;
    other[0] = 0;
    for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
        struct rtnl_addr *a = (struct rtnl_addr *)o;
        struct nl_addr *local = rtnl_addr_get_local(a);
        if (rtnl_addr_get_ifindex(a) != ifindex || rtnl_addr_get_family(a) != AF_INET || !local ||
            nl_addr_get_len(local) != 4)
            continue;
        uint32_t be;
        memcpy(&be, nl_addr_get_binary_addr(local), 4);
        struct cidr got = {.addr = ntohl(be), .prefix = (unsigned)rtnl_addr_get_prefixlen(a)};
        if (got.addr == want.addr && got.prefix == want.prefix)
            *has_want = true;
        else if (!other[0])
            cidr_format(got, other);
    }
    return 0;
}

static int bridge_add_address(struct nl_sock *sk, int ifindex, const char *address)
{
    _cleanup_(rtnl_addr_putp) struct rtnl_addr *a = rtnl_addr_alloc();
    _cleanup_(nl_addr_putp) struct nl_addr *local = NULL;
    if (!a)
        return -NLE_NOMEM;
    int e = nl_addr_parse(address, AF_INET, &local);
    if (e < 0)
        return e;
    rtnl_addr_set_ifindex(a, ifindex);
    rtnl_addr_set_family(a, AF_INET);
    if ((e = rtnl_addr_set_local(a, local)) < 0)
        return e;
    rtnl_addr_set_prefixlen(a, (int)nl_addr_get_prefixlen(local));
    return rtnl_addr_add(sk, a, NLM_F_EXCL);
}

int link_bridge_setup(struct nl_sock *sk, const char *name, const char *address, int *ret_ifindex,
                      bool *ret_created, char **error)
{
    struct cidr want;
    if (cidr_parse(address, false, &want) < 0)
        return error_setf(error, -EINVAL, "bridge %s: \"%s\" is not an IPv4 address with a prefix",
                          name, address);
    *ret_created = false;
    _cleanup_link_ struct rtnl_link *l = NULL;
    int e = rtnl_link_get_kernel(sk, 0, name, &l);
    if (e >= 0) {
        if (!rtnl_link_is_bridge(l)) {
            const char *type = rtnl_link_get_type(l);
            return error_setf(error, -EEXIST, "link %s exists and is not a bridge (it is %s%s)",
                              name, type ? "a " : "a device without a type", type ? type : "");
        }
        int ifindex = rtnl_link_get_ifindex(l);
        bool has_want;
        char other[CIDR_STRLEN];
        if ((e = bridge_addresses(sk, ifindex, want, &has_want, other)) < 0)
            return NL_FAIL(error, e, "list the addresses of bridge %s", name);
        if (!has_want && other[0])
            return error_setf(
                error, -EEXIST,
                "bridge %s already exists with address %s, not %s (network.bridge_address)", name,
                other, address);
        if (!has_want)
            return error_setf(
                error, -EEXIST,
                "bridge %s already exists without address %s; ocvm adopts a bridge only "
                "when it has network.bridge_address",
                name, address);
        *ret_ifindex = ifindex;
        if (!(rtnl_link_get_flags(l) & IFF_UP) && (e = link_up(sk, ifindex, 0)) < 0)
            return NL_FAIL(error, e, "bring bridge %s up", name);
        return 0;
    }
    if (nl_errno(e) != -ENODEV)
        return NL_FAIL(error, e, "look up bridge %s", name);

    _cleanup_link_ struct rtnl_link *br = rtnl_link_bridge_alloc();
    if (!br)
        return -ENOMEM;
    rtnl_link_set_name(br, name);
    if ((e = rtnl_link_add(sk, br, NLM_F_CREATE | NLM_F_EXCL)) < 0)
        return NL_FAIL(error, e, "create bridge %s", name);
    *ret_created = true;
    int ifindex = link_ifindex(sk, name);
    if (ifindex < 0)
        return error_setf(error, ifindex, "bridge %s vanished after it was created", name);
    *ret_ifindex = ifindex;
    if ((e = bridge_add_address(sk, ifindex, address)) < 0)
        return NL_FAIL(error, e, "add address %s to bridge %s", address, name);
    if ((e = link_up(sk, ifindex, 0)) < 0)
        return NL_FAIL(error, e, "bring bridge %s up", name);
    return 0;
}

/* Opens one queue of TAP NAME. The first call creates the device. */
static int tap_open_queue(const char *name, bool multi_queue, int *ret_fd)
{
    _cleanup_close_ int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return negative_errno();
    struct ifreq ifr = {0};
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multi_queue ? IFF_MULTI_QUEUE : 0);
    if (strlen(name) >= sizeof(ifr.ifr_name))
        return -EINVAL;
    strcpy(ifr.ifr_name, name);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0)
        return negative_errno();
    if (strcmp(ifr.ifr_name, name) != 0)
        return -EINVAL;
    int hdr = (int)sizeof(struct virtio_net_hdr_mrg_rxbuf);
    if (ioctl(fd, TUNSETPERSIST, 0) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0)
        return negative_errno();
    *ret_fd = TAKE_FD(fd);
    return 0;
}

int link_tap_create(struct nl_sock *sk, const char *name, unsigned queues, const char *bridge,
                    int bridge_ifindex, int *fds, int *ret_ifindex, char **error)
{
    if (queues == 0 || queues > LINK_MAX_QUEUES)
        return error_setf(error, -EINVAL, "TAP %s: %u queues (1 to %d)", name, queues,
                          LINK_MAX_QUEUES);
    int r = link_ifindex(sk, name);
    if (r >= 0)
        return error_setf(error, -EEXIST,
                          "TAP %s: a link of that name exists already (is the VM "
                          "running, or is the name taken?)",
                          name);
    for (unsigned q = 0; q < queues; q++)
        fds[q] = -1;
    for (unsigned q = 0; q < queues; q++) {
        if ((r = tap_open_queue(name, queues > 1, &fds[q])) < 0) {
            if (q == 0)
                error_setf(error, r, "create TAP %s: %s", name, strerror(-r));
            else
                error_setf(error, r, "open queue %u of TAP %s: %s", q, name, strerror(-r));
            goto fail;
        }
    }
    if ((r = link_ifindex(sk, name)) < 0) {
        error_setf(error, r, "TAP %s vanished after it was created", name);
        goto fail;
    }
    *ret_ifindex = r;
    int e = rtnl_link_enslave_ifindex(sk, bridge_ifindex, *ret_ifindex);
    if (e < 0) {
        r = NL_FAIL(error, e, "attach TAP %s to bridge %s", name, bridge);
        goto fail;
    }
    if ((e = link_up(sk, *ret_ifindex, LINK_MTU)) < 0) {
        r = NL_FAIL(error, e, "set MTU %d on TAP %s and bring it up", LINK_MTU, name);
        goto fail;
    }
    return 0;
fail:
    for (unsigned q = 0; q < queues; q++)
        closep(&fds[q]), fds[q] = -1;
    return r;
}

int link_delete(struct nl_sock *sk, const char *name, int ifindex, char **error)
{
    _cleanup_link_ struct rtnl_link *l = NULL;
    if (ifindex <= 0)
        return 0;
    int e = rtnl_link_get_kernel(sk, ifindex, NULL, &l);
    if (e < 0)
        return nl_errno(e) == -ENODEV ? 0 : NL_FAIL(error, e, "look up link %s", name);
    const char *now = rtnl_link_get_name(l);
    if (!now || strcmp(now, name) != 0)
        return 0;
    if ((e = rtnl_link_delete(sk, l)) < 0 && nl_errno(e) != -ENODEV)
        return NL_FAIL(error, e, "delete link %s", name);
    return 0;
}

int link_bridge_ports(struct nl_sock *sk, int ifindex)
{
    _cleanup_cache_ struct nl_cache *cache = NULL;
    int e = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);
    if (e < 0)
        return nl_errno(e);
    int n = 0;
    for (struct nl_object *o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o))
        if (rtnl_link_get_master((struct rtnl_link *)o) == ifindex)
            n++;
    return n;
}

int link_default_route(struct nl_sock *sk, char **ret, char **error)
{
    _cleanup_cache_ struct nl_cache *routes = NULL;
    int e = rtnl_route_alloc_cache(sk, AF_INET, 0, &routes);
    if (e < 0)
        return NL_FAIL(error, e, "%s", "read the IPv4 routes");
    int best = 0;
    uint32_t best_metric = 0;
    for (struct nl_object *o = nl_cache_get_first(routes); o; o = nl_cache_get_next(o)) {
        struct rtnl_route *rt = (struct rtnl_route *)o;
        struct nl_addr *dst = rtnl_route_get_dst(rt);
        if (rtnl_route_get_table(rt) != RT_TABLE_MAIN || rtnl_route_get_type(rt) != RTN_UNICAST ||
            (dst && nl_addr_get_prefixlen(dst) != 0) || rtnl_route_get_nnexthops(rt) < 1)
            continue;
        int ifindex = rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(rt, 0));
        uint32_t metric = rtnl_route_get_priority(rt);
        if (ifindex > 0 && (best == 0 || metric < best_metric))
            best = ifindex, best_metric = metric;
    }
    if (best == 0)
        return error_setf(error, -ENETUNREACH,
                          "network.uplink is \"auto\" but there is no IPv4 default route; name the "
                          "interface in network.uplink");
    _cleanup_link_ struct rtnl_link *l = NULL;
    if ((e = rtnl_link_get_kernel(sk, best, NULL, &l)) < 0)
        return NL_FAIL(error, e, "look up the default route's interface (index %d)", best);
    if (!(*ret = strdup(rtnl_link_get_name(l))))
        return -ENOMEM;
    return 0;
}

static int forwarding_path(const char *name, char *buf, size_t size)
{
    if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return -EINVAL;
    int n = snprintf(buf, size, "/proc/sys/net/ipv4/conf/%s/forwarding", name);
    return n < 0 || (size_t)n >= size ? -EINVAL : 0;
}

int link_forwarding_get(const char *name)
{
    char path[96];
    int r = forwarding_path(name, path, sizeof(path));
    if (r < 0)
        return r;
    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f)
        return negative_errno();
    int c = fgetc(f);
    return c == '1' ? 1 : c == '0' ? 0 : -EIO;
}

int link_forwarding_set(const char *name, bool on)
{
    char path[96];
    int r = forwarding_path(name, path, sizeof(path));
    if (r < 0)
        return r;
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return negative_errno();
    if (write(fd, on ? "1\n" : "0\n", 2) != 2)
        return negative_errno();
    return 0;
}

static void audit_forwarding(const char *what, const char *name, struct diff_list *d)
{
    int f = link_forwarding_get(name);
    if (f < 0)
        diff_list_addf(d, "%s %s: cannot read its IPv4 forwarding switch: %s", what, name,
                       strerror(-f));
    else if (f == 0)
        diff_list_addf(d, "%s %s: IPv4 forwarding is off", what, name);
}

int link_audit(struct nl_sock *sk, const struct netsetup_plan *p, const char *uplink,
               struct diff_list *d)
{
    _cleanup_link_ struct rtnl_link *br = NULL, *tap = NULL, *up = NULL;
    struct cidr want;
    int bridge_ifindex = 0;
    if (rtnl_link_get_kernel(sk, 0, p->bridge, &br) < 0) {
        diff_list_addf(d, "bridge %s is missing", p->bridge);
    } else if (!rtnl_link_is_bridge(br)) {
        diff_list_addf(d, "link %s is not a bridge", p->bridge);
    } else {
        bridge_ifindex = rtnl_link_get_ifindex(br);
        bool has_want = false;
        char other[CIDR_STRLEN] = "";
        if (cidr_parse(p->bridge_address, false, &want) < 0 ||
            bridge_addresses(sk, bridge_ifindex, want, &has_want, other) < 0)
            diff_list_addf(d, "bridge %s: cannot read its addresses", p->bridge);
        else if (!has_want)
            diff_list_addf(d, "bridge %s: address %s is missing%s%s", p->bridge, p->bridge_address,
                           other[0] ? "; it has " : "", other);
        if (!(rtnl_link_get_flags(br) & IFF_UP))
            diff_list_addf(d, "bridge %s is down", p->bridge);
        audit_forwarding("bridge", p->bridge, d);
    }
    if (rtnl_link_get_kernel(sk, 0, p->tap, &tap) < 0) {
        diff_list_addf(d, "TAP %s is missing", p->tap);
    } else {
        const char *type = rtnl_link_get_type(tap);
        if (!type || strcmp(type, "tun") != 0)
            diff_list_addf(d, "link %s is not a TAP (it is %s)", p->tap, type ? type : "untyped");
        if (bridge_ifindex && rtnl_link_get_master(tap) != bridge_ifindex)
            diff_list_addf(d, "TAP %s is not a port of bridge %s", p->tap, p->bridge);
        if (rtnl_link_get_mtu(tap) != LINK_MTU)
            diff_list_addf(d, "TAP %s has MTU %u, want %d", p->tap, rtnl_link_get_mtu(tap),
                           LINK_MTU);
        if (!(rtnl_link_get_flags(tap) & IFF_UP))
            diff_list_addf(d, "TAP %s is down", p->tap);
    }
    if (rtnl_link_get_kernel(sk, 0, uplink, &up) < 0)
        diff_list_addf(d, "uplink %s is missing", uplink);
    else
        audit_forwarding("uplink", uplink, d);
    return d->error;
}
