/* plan: everything netsetup needs to know about one VM's network, as plain borrowed data. The
 * launcher fills it from the VM's config (launcher/net_plan.c); netsetup never sees the config.
 * Strings are borrowed from whoever filled the plan and must outlive every call that uses it. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* One entry of the egress allow-list: HOST (name or IPv4 literal) on these TCP/UDP ports. */
struct netsetup_egress {
    const char *host;
    const uint16_t *ports;
    size_t n_ports;
};

struct netsetup_plan {
    const char *vm;             /* VM name: table ocvm_VM, log prefix "ocvm-VM: " */
    const char *source;         /* where the plan came from (the config file), for messages */
    const char *bridge;         /* bridge name, created or adopted */
    const char *bridge_address; /* CIDR on the bridge, e.g. 192.168.83.1/24 */
    const char *tap;            /* TAP name */
    unsigned tap_queues;        /* one fd per queue, 1 to LINK_MAX_QUEUES */
    const char *guest_address;  /* the guest's IPv4 address on the bridge */
    const char *uplink;         /* interface name, or "auto": that of the default route */
    const char *dns;            /* the one resolver the guest may ask */
    uint16_t gateway_port;      /* the guest's gateway port: never reachable from outside */
    const struct netsetup_egress *egress; /* allowed destinations; none: all but refused ones */
    size_t n_egress;
};
