/* The probe verdicts after ready; see liveness.h. */
#include "launcher/liveness.h"

#include <stdio.h>
#include <string.h>

void liveness_init(struct liveness *l, unsigned degrade_after, unsigned restart_after)
{
    *l = (struct liveness){.degrade_after = degrade_after ? degrade_after : 1,
                           .restart_after = restart_after};
}

enum liveness_event liveness_record(struct liveness *l, bool ok, const char *why)
{
    if (ok) {
        bool was = l->degraded;
        l->failures = 0;
        l->degraded = false;
        l->why[0] = '\0';
        return was ? LIVENESS_RECOVERED : LIVENESS_HEALTHY;
    }
    snprintf(l->why, sizeof(l->why), "%s", why && *why ? why : "unknown failure");
    if (l->failures < ~0u)
        l->failures++;
    if (l->restart_after && l->failures >= l->restart_after) {
        l->degraded = true; /* until the new boot's liveness_init() */
        return LIVENESS_RESTART;
    }
    if (l->degraded)
        return LIVENESS_STILL_DEGRADED;
    if (l->failures >= l->degrade_after) {
        l->degraded = true;
        return LIVENESS_DEGRADED;
    }
    return LIVENESS_FAILING;
}

int liveness_describe(const struct liveness *l, char *buf, unsigned size)
{
    return snprintf(buf, size, "%u health probe%s failed in a row: %s", l->failures,
                    l->failures == 1 ? "" : "s", l->why);
}
