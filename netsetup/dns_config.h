/* dns_config: the Unbound snippet that lets the host resolve, and log, every name the guest
 * looks up: listen on the bridge address, allow the VM subnet, log queries and replies. Pure;
 * printed by `ocvm dns-config NAME`. */
#pragma once

#include "netsetup/plan.h"

/* The snippet for P, ready for /etc/unbound/unbound.conf.d/ocvm-NAME.conf. -EINVAL when an address
 * does not parse. */
int dns_config_render(const struct netsetup_plan *p, char **ret);
