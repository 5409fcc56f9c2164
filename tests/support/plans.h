/* plans: netsetup plans written out by hand for the netsetup unit suites, which link nothing of
 * config/ or launcher/. plan_openclaw() is what launcher/net_plan.c makes of examples/openclaw.json
 * (the defaults); test_net_plan checks that it still does. */
#pragma once

#include "netsetup/plan.h"

static inline struct netsetup_plan plan_openclaw(void)
{
    return (struct netsetup_plan){
        .vm = "openclaw",
        .source = "/etc/ocvm/openclaw.json",
        .bridge = "br-openclaw",
        .bridge_address = "192.168.83.1/24",
        .tap = "vm-openclaw",
        .tap_queues = 2,
        .guest_address = "192.168.83.2",
        .uplink = "auto",
        .dns = "192.168.83.1",
        .gateway_port = 18789,
    };
}
