/* ocvm-libvirt@NAME.service through systemd's D-Bus API; see sidecar_unit.h. */
#include "launcher/sidecar_unit.h"

#include "common/cleanup.h"
#include "common/error.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>

static inline void bus_flush_closep(sd_bus **b)
{
    sd_bus_flush_close_unref(*b);
}

/* Calls Manager.METHOD with SIGNATURE and its arguments; on failure *error names METHOD. */
static int manager_call(sd_bus *bus, const char *unit, char **error, const char *method,
                        const char *signature, ...)
{
    sd_bus_error e = SD_BUS_ERROR_NULL;
    sd_bus_message *m = NULL, *reply = NULL;
    va_list ap;
    int r = sd_bus_message_new_method_call(bus, &m, "org.freedesktop.systemd1",
                                           "/org/freedesktop/systemd1",
                                           "org.freedesktop.systemd1.Manager", method);
    if (r >= 0 && signature) {
        va_start(ap, signature);
        r = sd_bus_message_appendv(m, signature, ap);
        va_end(ap);
    }
    if (r >= 0)
        r = sd_bus_call(bus, m, 0, &e, &reply);
    if (r < 0)
        error_setf(error, r, "systemd %s %s: %s", method, unit,
                   e.message ? e.message : strerror(-r));
    sd_bus_error_free(&e);
    sd_bus_message_unref(m);
    sd_bus_message_unref(reply);
    return r < 0 ? r : 0;
}

static int open_bus(const char *name, char **unit, sd_bus **bus, char **error)
{
    *error = NULL;
    if (sd_booted() <= 0)
        return 0;
    if (asprintf(unit, "ocvm-libvirt@%s.service", name) < 0)
        return -ENOMEM;
    int r = sd_bus_open_system(bus);
    return r < 0 ? error_setf(error, r, "systemd's bus: %s", strerror(-r)) : 1;
}

int sidecar_unit_enable(const char *name, char **error)
{
    _cleanup_free_ char *unit = NULL;
    _cleanup_(bus_flush_closep) sd_bus *bus = NULL;
    int r = open_bus(name, &unit, &bus, error);
    if (r <= 0)
        return r;
    if ((r = manager_call(bus, unit, error, "EnableUnitFiles", "asbb", 1, unit, 0, 0)) < 0 ||
        (r = manager_call(bus, unit, error, "Reload", NULL)) < 0 ||
        (r = manager_call(bus, unit, error, "StartUnit", "ss", unit, "replace")) < 0)
        return r;
    return 1;
}

int sidecar_unit_disable(const char *name, char **error)
{
    _cleanup_free_ char *unit = NULL;
    _cleanup_(bus_flush_closep) sd_bus *bus = NULL;
    int r = open_bus(name, &unit, &bus, error);
    if (r <= 0)
        return r;
    if ((r = manager_call(bus, unit, error, "StopUnit", "ss", unit, "replace")) < 0 ||
        (r = manager_call(bus, unit, error, "DisableUnitFiles", "asb", 1, unit, 0)) < 0 ||
        (r = manager_call(bus, unit, error, "Reload", NULL)) < 0)
        return r;
    return 1;
}
