/* dns_config: the Unbound snippet that lets the host resolve, and log, every name the guest
 * looks up: listen on the bridge address, allow the VM subnet, log queries and replies. Pure;
 * printed by `ocvm dns-config NAME`. */
#pragma once

#include "launcher/vm_config.h"

/* The snippet for C, ready for /etc/unbound/unbound.conf.d/ocvm-NAME.conf. -EINVAL when C has no
 * network ("network": null) or an address that does not parse. */
int dns_config_render(const struct vm_config *c, char **ret);
