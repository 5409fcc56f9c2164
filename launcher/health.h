/* health: one HTTP GET of the gateway's health path, made through the whole relay chain (host
 * listener -> vsock -> guest relay -> gateway), on sd-event. It reports 2xx or why not; the
 * reply is bounded (only the status line is read). A health_wait repeats it until the gateway
 * answers, or a deadline passes. */
#pragma once

#include "vsock/endpoint.h"

#include <stdint.h>
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

struct health_wait;
/* OK once the gateway answered 2xx; else the deadline passed, WHY being the last probe's reason. */
typedef void (*health_wait_fn)(bool ok, const char *why, void *userdata);

/* Probes http://TARGET/PATH now, then again INTERVAL_MS after each failure, each probe bounded by
 * TIMEOUT_MS, until one answers 2xx or, when DEADLINE_USEC (CLOCK_MONOTONIC) is not 0, that time
 * has passed. DONE is called once, last (it may free the wait), unless freed before. */
int health_wait_start(sd_event *e, const struct endpoint *target, const char *path,
                      unsigned interval_ms, unsigned timeout_ms, uint64_t deadline_usec,
                      health_wait_fn done, void *userdata, struct health_wait **ret);
/* Why the last probe failed ("" before one did). */
const char *health_wait_why(const struct health_wait *w);
void health_wait_free(struct health_wait *w);
