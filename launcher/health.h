/* health: one HTTP GET of the gateway's health path, made through the whole relay chain (host
 * listener -> vsock -> guest relay -> gateway), on sd-event. It reports 2xx or why not; the
 * caller retries. The reply is bounded (only the status line is read). */
#pragma once

#include "vsock/endpoint.h"

#include <systemd/sd-event.h>

struct health_probe;
/* OK: the gateway answered 2xx. Otherwise WHY says what happened (static or in the probe). */
typedef void (*health_done_fn)(struct health_probe *p, bool ok, const char *why, void *userdata);

/* Starts a probe of http://TARGET/PATH (TARGET: tcp or unix); DONE is called exactly once, unless
 * freed before. */
int health_probe_start(sd_event *e, const struct endpoint *target, const char *path,
                       unsigned timeout_ms, health_done_fn done, void *userdata,
                       struct health_probe **ret);
void health_probe_free(struct health_probe *p);
/* Parses an HTTP status line ("HTTP/1.1 200 OK\r\n"...): the status code, or -EBADMSG. */
int health_parse_status(const char *buf, size_t len);
