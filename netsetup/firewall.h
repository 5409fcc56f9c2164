/* firewall: the nft table of one VM, `table inet ocvm_NAME`, holding every rule ocvm needs and
 * nothing else: NAT of the VM subnet out of the uplink, the log of every new guest connection
 * (prefix "ocvm-NAME: "), DNS only to network.dns, the egress allow-list, no way in to the guest's
 * gateway port (from the host, the LAN or a DNAT), and the guest kept off the host's own services
 * except DNS and ping. firewall_render() is pure; the other calls are the effects around it:
 * resolving the egress hosts, applying and removing the table with libnftables (one transaction
 * each), and reading the live table back for the audit. */
#pragma once

#include "netsetup/plan.h"
#include "netsetup/ruleset_diff.h"

#include <stddef.h>
#include <stdint.h>

#define FIREWALL_TABLE_PREFIX "ocvm_"
/* Upper bound on (address, port) pairs in the egress set, whatever DNS answers. */
#define FIREWALL_EGRESS_MAX 4096

/* One allowed destination of network.egress.allow, after resolution. */
struct firewall_egress {
    uint32_t addr; /* IPv4, host byte order */
    uint16_t port;
};

/* What rendering needs beyond the plan: decided by effects, passed in as plain values. */
struct firewall_facts {
    const char *uplink;                   /* the resolved interface, never "auto" */
    const struct firewall_egress *egress; /* used only when the plan has an egress list */
    size_t n_egress;
};

/* "ocvm_NAME" into a new string. */
int firewall_table_name(const char *vm_name, char **ret);
/* The table definition for P as nft text. Pure. -EINVAL when a name or address cannot be put in
 * a rule. */
int firewall_render(const struct netsetup_plan *p, const struct firewall_facts *f, char **ret);

/* Resolves every egress host of P to its IPv4 addresses (getaddrinfo) and pairs each with the
 * rule's ports. A host that does not resolve is an error naming it (network.egress.allow[I]). */
int firewall_resolve_egress(const struct netsetup_plan *p, struct firewall_egress **ret,
                            size_t *ret_n, char **error);
/* Replaces (or creates) the VM's table with RULESET in one transaction: a second apply of the
 * same text leaves the same table. On failure *error holds nft's first error line. */
int firewall_apply(const char *vm_name, const char *ruleset, char **error);
/* Deletes the VM's table in one transaction; 0 also when it did not exist. */
int firewall_remove(const char *vm_name, char **error);
/* Number of ocvm_* tables in the inet family other than VM_NAME's (NULL: all of them). */
int firewall_count_tables(const char *except_vm_name, char **error);
/* Compares the live table with what RULESET makes (obtained by applying it in a scratch network
 * namespace of a child process, so nft itself normalises both sides) and appends one line per
 * difference to D. Needs CAP_SYS_ADMIN and CAP_NET_ADMIN. */
int firewall_audit(const char *vm_name, const char *ruleset, struct diff_list *d, char **error);
