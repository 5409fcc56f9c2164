/* net_plan: the launcher's translation of a VM's config into netsetup's input. The plan borrows
 * the config's strings (keep the config alive while the plan is used); the only thing it owns is
 * the egress list it builds, released by net_plan_done(). */
#pragma once

#include "config/vm_config.h"
#include "netsetup/plan.h"

#include <stdbool.h>

/* Fills *RET from C. Returns 1 with a plan, 0 when C has no network ("network": null, *RET left
 * empty: pass NULL to netsetup), -ENOMEM. */
int net_plan_from_config(const struct vm_config *c, struct netsetup_plan *ret);
/* Frees what net_plan_from_config() allocated; *P is empty afterwards. */
void net_plan_done(struct netsetup_plan *p);
