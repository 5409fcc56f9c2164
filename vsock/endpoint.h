/* endpoint: the address forms the relay and the config speak: tcp:HOST:PORT (IPv4, or [IPv6]),
 * unix:PATH, vsock:CID:PORT (vsock:any:PORT to listen) and hybrid:PATH:PORT. Parsing is pure and
 * strict (bounded lengths, ports 1-65535, absolute Unix paths that fit sockaddr_un). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENDPOINT_VSOCK_CID_ANY                                                                     \
    UINT32_MAX /* vsock:any:PORT: listen on every CID (VMADDR_CID_ANY)                             \
                */

enum endpoint_kind {
    ENDPOINT_TCP,
    ENDPOINT_UNIX,
    ENDPOINT_VSOCK,
    ENDPOINT_HYBRID,
    _ENDPOINT_KIND_MAX
};

struct endpoint {
    enum endpoint_kind kind;
    char host[64];  /* tcp: literal address, without brackets */
    char path[108]; /* unix, hybrid */
    uint32_t cid;   /* vsock */
    uint16_t port;  /* tcp, vsock, hybrid */
};

/* Parses S; on failure returns -EINVAL and points *why at a static explanation. */
int endpoint_parse(const char *s, struct endpoint *ret, const char **why);
/* Parses HOST:PORT or [V6]:PORT (the form of gateway.host_listen). */
int endpoint_parse_hostport(const char *s, char host[static 64], uint16_t *port, const char **why);
/* True for a tcp endpoint on 127.0.0.0/8 or ::1, and for unix/hybrid (local by nature). */
bool endpoint_is_local(const struct endpoint *e);
/* E in the form endpoint_parse reads (vsock:any:PORT for ENDPOINT_VSOCK_CID_ANY), truncated to
 * fit BUF; returns BUF. */
const char *endpoint_format(const struct endpoint *e, char *buf, size_t size);
const char *endpoint_kind_to_string(enum endpoint_kind k);
