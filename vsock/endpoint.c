#include "vsock/endpoint.h"

#include "common/parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const endpoint_kind_table[_ENDPOINT_KIND_MAX] = {
    [ENDPOINT_TCP] = "tcp",
    [ENDPOINT_UNIX] = "unix",
    [ENDPOINT_VSOCK] = "vsock",
    [ENDPOINT_HYBRID] = "hybrid",
};

const char *endpoint_kind_to_string(enum endpoint_kind k)
{
    return k < _ENDPOINT_KIND_MAX ? endpoint_kind_table[k] : NULL;
}

static int parse_port(const char *s, uint16_t *ret, const char **why)
{
    uint32_t v;
    if (decimal_u32(s, strlen(s), 65535, &v) < 0 || v == 0) {
        *why = "port must be a number from 1 to 65535";
        return -EINVAL;
    }
    *ret = (uint16_t)v;
    return 0;
}

int endpoint_parse_hostport(const char *s, char host[static 64], uint16_t *port, const char **why)
{
    const char *colon;
    size_t hlen;
    const char *h = s;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            *why = "expected [IPV6]:PORT";
            return -EINVAL;
        }
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) {
            *why = "expected HOST:PORT";
            return -EINVAL;
        }
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= 64) {
        *why = "host must be an IP address";
        return -EINVAL;
    }
    char tmp[64];
    memcpy(tmp, h, hlen);
    tmp[hlen] = '\0';
    unsigned char addr[16];
    bool v6 = *s == '[';
    if (inet_pton(v6 ? AF_INET6 : AF_INET, tmp, addr) != 1) {
        *why = v6 ? "host is not an IPv6 address"
                  : "host is not an IPv4 address (write IPv6 as [ADDR])";
        return -EINVAL;
    }
    if (parse_port(colon + 1, port, why) < 0)
        return -EINVAL;
    memcpy(host, tmp, hlen + 1);
    return 0;
}

/* Splits "PATH:PORT" at the last colon. */
static int parse_path_port(const char *s, struct endpoint *e, bool want_port, const char **why)
{
    const char *end = s + strlen(s);
    if (want_port) {
        const char *colon = strrchr(s, ':');
        if (!colon) {
            *why = "expected PATH:PORT";
            return -EINVAL;
        }
        uint32_t v;
        if (decimal_u32(colon + 1, strlen(colon + 1), UINT32_MAX, &v) < 0) {
            *why = "vsock port must be a number";
            return -EINVAL;
        }
        if (v == 0 || v > 65535) {
            *why = "port must be a number from 1 to 65535";
            return -EINVAL;
        }
        e->port = (uint16_t)v;
        end = colon;
    }
    size_t len = (size_t)(end - s);
    if (len == 0 || s[0] != '/') {
        *why = "socket path must be absolute";
        return -EINVAL;
    }
    /* hybrid paths get "_PORT" appended for guest-initiated connections: keep room for it */
    if (len >= sizeof(e->path) - (want_port ? 7 : 0)) {
        *why = "socket path is too long for a Unix socket";
        return -EINVAL;
    }
    memcpy(e->path, s, len);
    e->path[len] = '\0';
    return 0;
}

int endpoint_parse(const char *s, struct endpoint *ret, const char **why)
{
    struct endpoint e = {0};
    if (strncmp(s, "tcp:", 4) == 0) {
        e.kind = ENDPOINT_TCP;
        if (endpoint_parse_hostport(s + 4, e.host, &e.port, why) < 0)
            return -EINVAL;
    } else if (strncmp(s, "unix:", 5) == 0) {
        e.kind = ENDPOINT_UNIX;
        if (parse_path_port(s + 5, &e, false, why) < 0)
            return -EINVAL;
    } else if (strncmp(s, "hybrid:", 7) == 0) {
        e.kind = ENDPOINT_HYBRID;
        if (parse_path_port(s + 7, &e, true, why) < 0)
            return -EINVAL;
    } else if (strncmp(s, "vsock:", 6) == 0) {
        e.kind = ENDPOINT_VSOCK;
        const char *colon = strchr(s + 6, ':');
        char cid[16];
        size_t n = colon ? (size_t)(colon - (s + 6)) : 0;
        if (!colon || n == 0 || n >= sizeof(cid)) {
            *why = "expected vsock:CID:PORT";
            return -EINVAL;
        }
        memcpy(cid, s + 6, n);
        cid[n] = '\0';
        if (strcmp(cid, "any") == 0)
            e.cid = ENDPOINT_VSOCK_CID_ANY; /* listening only */
        else if (decimal_u32(cid, strlen(cid), UINT32_MAX - 1, &e.cid) < 0) {
            *why = "vsock CID must be a number below 4294967295, or \"any\"";
            return -EINVAL;
        }
        if (parse_port(colon + 1, &e.port, why) < 0)
            return -EINVAL;
    } else {
        *why = "expected tcp:HOST:PORT, unix:PATH, vsock:CID:PORT or hybrid:PATH:PORT";
        return -EINVAL;
    }
    *ret = e;
    return 0;
}

const char *endpoint_format(const struct endpoint *e, char *buf, size_t size)
{
    switch (e->kind) {
    case ENDPOINT_TCP:
        snprintf(buf, size, strchr(e->host, ':') ? "tcp:[%s]:%u" : "tcp:%s:%u", e->host,
                 (unsigned)e->port);
        break;
    case ENDPOINT_UNIX:
        snprintf(buf, size, "unix:%s", e->path);
        break;
    case ENDPOINT_VSOCK:
        if (e->cid == ENDPOINT_VSOCK_CID_ANY)
            snprintf(buf, size, "vsock:any:%u", (unsigned)e->port);
        else
            snprintf(buf, size, "vsock:%" PRIu32 ":%u", e->cid, (unsigned)e->port);
        break;
    case ENDPOINT_HYBRID:
        snprintf(buf, size, "hybrid:%s:%u", e->path, (unsigned)e->port);
        break;
    default:
        snprintf(buf, size, "?");
    }
    return buf;
}

bool endpoint_is_local(const struct endpoint *e)
{
    if (e->kind == ENDPOINT_UNIX || e->kind == ENDPOINT_HYBRID)
        return true;
    if (e->kind != ENDPOINT_TCP)
        return false;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, e->host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, e->host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}
