#include "launcher/net_plan.h"

#include <errno.h>
#include <stdlib.h>

int net_plan_from_config(const struct vm_config *c, struct netsetup_plan *ret)
{
    *ret = (struct netsetup_plan){0};
    const struct vm_network *n = c->network;
    if (!n)
        return 0;
    struct netsetup_egress *egress = NULL;
    if (n->n_egress_allow > 0) {
        if (!(egress = calloc(n->n_egress_allow, sizeof(*egress))))
            return -ENOMEM;
        for (size_t i = 0; i < n->n_egress_allow; i++)
            egress[i] = (struct netsetup_egress){.host = n->egress_allow[i].host,
                                                 .ports = n->egress_allow[i].ports,
                                                 .n_ports = n->egress_allow[i].n_ports};
    }
    *ret = (struct netsetup_plan){
        .vm = c->name,
        .source = c->path,
        .bridge = n->bridge,
        .bridge_address = n->bridge_address,
        .tap = n->tap,
        .tap_queues = vm_config_tap_queues(c),
        .guest_address = n->guest_address,
        .uplink = n->uplink,
        .dns = n->dns,
        .gateway_port = c->gateway.guest_port,
        .egress = egress,
        .n_egress = n->n_egress_allow,
    };
    return 1;
}

void net_plan_done(struct netsetup_plan *p)
{
    free((void *)p->egress);
    *p = (struct netsetup_plan){0};
}
