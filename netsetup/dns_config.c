#include "netsetup/dns_config.h"

#include "netsetup/cidr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int dns_config_render(const struct netsetup_plan *p, char **ret)
{
    struct cidr br, dns;
    if (cidr_parse(p->bridge_address, false, &br) < 0 || cidr_parse(p->dns, true, &dns) < 0)
        return -EINVAL;
    char addr[CIDR_STRLEN], sub[CIDR_STRLEN];
    cidr_format_addr(br.addr, addr);
    cidr_format(cidr_network(br), sub);
    char *note = NULL;
    if (dns.addr != br.addr &&
        asprintf(&note,
                 "# Note: network.dns is %s, so the guest does not ask this resolver yet; set\n"
                 "# network.dns to %s in %s to use it (the firewall lets the guest reach\n"
                 "# only the resolver named there).\n",
                 p->dns, addr, p->source ? p->source : "the VM's config") < 0)
        return -ENOMEM;
    int r =
        asprintf(ret,
                 "# Unbound resolver for ocvm VM \"%s\": answers the guest on bridge %s and logs\n"
                 "# every lookup it makes. Install as /etc/unbound/unbound.conf.d/ocvm-%s.conf.\n"
                 "# ip-freebind lets Unbound start before `ocvm up` creates the bridge. Once an\n"
                 "# interface: line exists Unbound listens only where told, so keep one for the\n"
                 "# host's own lookups (127.0.0.1) if it serves those too.\n"
                 "%s"
                 "server:\n"
                 "    interface: %s\n"
                 "    ip-freebind: yes\n"
                 "    access-control: %s allow\n"
                 "    log-queries: yes\n"
                 "    log-replies: yes\n",
                 p->vm, p->bridge, p->vm, note ? note : "", addr, sub);
    free(note);
    return r < 0 ? -ENOMEM : 0;
}
