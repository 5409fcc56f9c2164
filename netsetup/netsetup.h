/* netsetup: the network of one VM, all or nothing, for the supervisor.
 *   netsetup_up()      bridge (created, or adopted if it exists with the same address), TAP with
 *                      one fd per queue (for QEMU's -netdev tap,fd=/fds=), nft table inet
 *                      ocvm_NAME, then IPv4 forwarding on the bridge and the uplink only. Any
 *                      failure undoes what this call did and returns one error line.
 *   netsetup_down()    closes the TAP fds (the TAP goes with them) and undoes the rest.
 *   netsetup_cleanup() the same from a saved struct netsetup_state, after a crash.
 *   netsetup_audit()   how the live links and table differ from the plan (`ocvm check`).
 * Its input is a struct netsetup_plan (netsetup/plan.h) that the launcher fills from the config.
 * Needs CAP_NET_ADMIN (the audit also CAP_SYS_ADMIN). No plan (a VM without network): no-op. */
#pragma once

#include "netsetup/link.h"
#include "netsetup/plan.h"

#include <net/if.h>
#include <stdbool.h>

/* What netsetup_up() made, as plain data: save it (netsetup_state_to_json) to undo after a crash.
 */
struct netsetup_state {
    char vm[65];
    char bridge[IFNAMSIZ];
    int bridge_ifindex;  /* 0: no bridge made or adopted */
    bool bridge_created; /* removed on down only then, and only when no port is left */
    char tap[IFNAMSIZ];
    int tap_ifindex; /* 0: no TAP */
    char uplink[IFNAMSIZ];
    bool bridge_forwarding_set; /* forwarding was off and netsetup turned it on */
    bool uplink_forwarding_set;
    bool table_applied;
};

struct netsetup {
    struct netsetup_state state;
    int tap_fds[LINK_MAX_QUEUES]; /* O_CLOEXEC: make them inheritable right before exec */
    unsigned n_tap_fds;           /* the plan's tap_queues; 0 without a network */
};

/* Sets up P's network into *RET (P NULL: nothing to do). On failure nothing made is left, and
 * *error holds one line naming the object (e.g. "bridge br-openclaw already exists with address
 * 10.0.0.1/24, not 192.168.83.1/24 (network.bridge_address)"). */
int netsetup_up(const struct netsetup_plan *p, struct netsetup *ret, char **error);
/* Undoes netsetup_up(), best effort; N is empty afterwards (a second call does nothing). */
void netsetup_down(struct netsetup *n);
/* Undoes what S records: forwarding switches, table, TAP (if something still holds it), bridge
 * (if created here and portless). Every step is tried; returns the first error. */
int netsetup_cleanup(const struct netsetup_state *s, char **error);

/* Compares the live network of a running VM with its plan P (NULL: no network, nothing to
 * compare): returns the number of differences (0: all as wanted) and a NULL-terminated list of
 * lines in *ret_differences (free with netsetup_differences_free), or -errno with *error when it
 * could not check. */
int netsetup_audit(const struct netsetup_plan *p, char ***ret_differences, char **error);
void netsetup_differences_free(char **v);

/* The state as one JSON object, and back (strict: -EINVAL on anything unexpected). */
int netsetup_state_to_json(const struct netsetup_state *s, char **ret);
int netsetup_state_from_json(const char *text, struct netsetup_state *ret);
