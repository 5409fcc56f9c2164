/* rules: the static safety rules over a VM's config, checked before anything starts. Each rule
 * has a stable id (OCVM-P001 ...) and says what it prevents; docs/policy.md lists them. A rule
 * can be waived only by its `unsafe_*` key; a waived finding is still reported (a warning on
 * every start, in `ocvm status` and `ocvm check`). Pure but for P005, which looks at the
 * directories of Unix listeners. Owns its report; borrows the config. */
#pragma once

#include "config/vm_config.h"

#include <stdbool.h>
#include <stddef.h>

struct policy_rule {
    const char *id;         /* "OCVM-P001" */
    const char *title;      /* what it keeps true, one line */
    const char *unsafe_key; /* the key that waives it ("gateway.unsafe_remote_gateway"), or NULL */
};

/* Every rule, in id order. */
extern const struct policy_rule policy_rules[];
extern const size_t policy_n_rules;

struct policy_finding {
    const struct policy_rule *rule;
    char *key;    /* where in the config: "forwards[1].listen" */
    char *line;   /* "FILE:LINE:COL: KEY: what is wrong (why) [OCVM-P002]" */
    char *waiver; /* the unsafe_* key (with its index) that waived it, or NULL: a violation */
};

struct policy_report {
    struct policy_finding *findings;
    size_t n;
    size_t n_violations;  /* findings without a waiver */
    char **unsafe_in_use; /* every unsafe_* key set in the config (NULL-terminated) */
};

/* Checks C against every rule into *RET (free with policy_report_done). -ENOMEM only: a
 * violation is a finding, not an error. */
int policy_check(const struct vm_config *c, struct policy_report *ret);
void policy_report_done(struct policy_report *r);
/* The rule with ID, or NULL. */
const struct policy_rule *policy_rule_find(const char *id);
