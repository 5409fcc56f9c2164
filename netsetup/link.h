/* link: the bridge and the TAP of one VM, made with libnl-route-3 and /dev/net/tun, plus the
 * per-interface IPv4 forwarding switch and the uplink found from the default route. A bridge is
 * created, or adopted when it already exists as a bridge carrying exactly the configured address;
 * a TAP is always new, not persistent, and lives as long as its fds. Every failure names the link
 * and the netlink error in *error (allocated, one line). */
#pragma once

#include "netsetup/ruleset_diff.h"

#include <stdbool.h>

struct nl_sock;
struct netsetup_plan;

/* The TAP's MTU: that of the guest's virtio-net, which the guest does not change. */
#define LINK_MTU 1500
/* Most TAP queues (one fd each) a VM gets; qemu_tap_queues() never asks for more. */
#define LINK_MAX_QUEUES 8

/* A connected NETLINK_ROUTE socket (close with nl_socket_freep). */
int link_socket_open(struct nl_sock **ret, char **error);
void nl_socket_freep(struct nl_sock **sk);

/* Ifindex of link NAME, or -ENODEV. */
int link_ifindex(struct nl_sock *sk, const char *name);
/* Creates bridge NAME with ADDRESS (CIDR) and brings it up, or adopts an existing bridge that has
 * ADDRESS (brought up if it was down). Another address, no address, or a link that is not a
 * bridge: -EEXIST, nothing changed. *ret_created is set as soon as the bridge exists, so a caller
 * can undo a half-done call. */
int link_bridge_setup(struct nl_sock *sk, const char *name, const char *address, int *ret_ifindex,
                      bool *ret_created, char **error);
/* Creates TAP NAME (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, IFF_MULTI_QUEUE when QUEUES > 1), one O_CLOEXEC
 * fd per queue in FDS[0..QUEUES-1], not persistent, enslaved to BRIDGE, MTU LINK_MTU, up. -EEXIST
 * when a link NAME exists already. On failure no fd is left open, so the TAP is gone. */
int link_tap_create(struct nl_sock *sk, const char *name, unsigned queues, const char *bridge,
                    int bridge_ifindex, int *fds, int *ret_ifindex, char **error);
/* Deletes link IFINDEX if it still exists under NAME; 0 when it is gone (or is another link now).
 */
int link_delete(struct nl_sock *sk, const char *name, int ifindex, char **error);
/* Number of links enslaved to bridge IFINDEX. */
int link_bridge_ports(struct nl_sock *sk, int ifindex);
/* The interface of the IPv4 default route with the lowest metric (main table). */
int link_default_route(struct nl_sock *sk, char **ret, char **error);

/* /proc/sys/net/ipv4/conf/NAME/forwarding: 0 or 1, or -errno. */
int link_forwarding_get(const char *name);
int link_forwarding_set(const char *name, bool on);

/* Appends to D how the live links differ from what P wants while its VM runs: bridge (type,
 * address, up, forwarding), TAP (type, master, MTU, up), uplink (exists, forwarding). */
int link_audit(struct nl_sock *sk, const struct netsetup_plan *p, const char *uplink,
               struct diff_list *d);
