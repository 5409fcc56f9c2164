/* liveness: what the supervisor concludes from the gateway health probes it keeps making after
 * the VM is ready. Pure: it counts failures in a row and says when the VM turns degraded, when it
 * recovers, and when it must be restarted; the supervisor does the probing, the telling and the
 * killing. One struct per VM, reset at each boot. */
#pragma once

#include <stdbool.h>

enum liveness_event {
    LIVENESS_HEALTHY,        /* the probe succeeded; it was not degraded */
    LIVENESS_RECOVERED,      /* the probe succeeded after the VM had been marked degraded */
    LIVENESS_FAILING,        /* a failure, not yet probe_failures in a row */
    LIVENESS_DEGRADED,       /* this failure made probe_failures in a row: degraded from now on */
    LIVENESS_STILL_DEGRADED, /* one more failure while degraded, not yet time to restart */
    LIVENESS_RESTART,        /* probe_restart_after failures in a row: restart the VM */
};

struct liveness {
    unsigned degrade_after; /* failures in a row that make the VM degraded (>= 1) */
    unsigned restart_after; /* failures in a row that restart it; 0: never */
    unsigned failures;      /* in a row, now */
    bool degraded;
    char why[128]; /* the last failed probe's reason; "" after a success */
};

/* A fresh count for a new boot: healthy, no failures. */
void liveness_init(struct liveness *l, unsigned degrade_after, unsigned restart_after);
/* Records one probe's outcome (WHY: why it failed, ignored when OK) and says what it means. */
enum liveness_event liveness_record(struct liveness *l, bool ok, const char *why);
/* One line for logs, `ocvm status` and systemd's STATUS=: "N probe(s) failed in a row: WHY". */
int liveness_describe(const struct liveness *l, char *buf, unsigned size);
