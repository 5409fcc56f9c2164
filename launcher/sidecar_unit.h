/* sidecar_unit: the systemd unit that runs a libvirt domain's sidecar (`ocvm attach NAME`,
 * sidecar.h): ocvm-libvirt@NAME.service, enabled and started by `ocvm libvirt define`, stopped
 * and disabled by `undefine`, through systemd's D-Bus API (sd-bus). Where systemd is not PID 1
 * nothing is done and the caller is told, so it can say how to run the sidecar by hand. */
#pragma once

#include <stdbool.h>

/* Enables and starts the instance for VM NAME: 1 done, 0 no systemd here; on failure *error is
 * one line. */
int sidecar_unit_enable(const char *name, char **error);
/* Stops and disables it: 1 done, 0 no systemd here. */
int sidecar_unit_disable(const char *name, char **error);
