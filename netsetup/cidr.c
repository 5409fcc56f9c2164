#include "netsetup/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cidr_parse(const char *s, bool allow_bare, struct cidr *ret)
{
    char buf[INET_ADDRSTRLEN];
    const char *slash = strchr(s, '/');
    size_t len = slash ? (size_t)(slash - s) : strlen(s);
    unsigned prefix = 32;
    if (len == 0 || len >= sizeof(buf) || (!slash && !allow_bare))
        return -EINVAL;
    if (slash) {
        const char *p = slash + 1;
        if (*p < '0' || *p > '9' || (p[0] == '0' && p[1]) || strlen(p) > 2)
            return -EINVAL;
        char *end;
        unsigned long n = strtoul(p, &end, 10);
        if (*end || n < 1 || n > 32)
            return -EINVAL;
        prefix = (unsigned)n;
    }
    memcpy(buf, s, len);
    buf[len] = 0;
    struct in_addr a;
    if (inet_pton(AF_INET, buf, &a) != 1)
        return -EINVAL;
    *ret = (struct cidr){.addr = ntohl(a.s_addr), .prefix = prefix};
    return 0;
}

static uint32_t mask_of(unsigned prefix)
{
    return prefix == 0 ? 0 : ~0u << (32 - prefix);
}

struct cidr cidr_network(struct cidr c)
{
    return (struct cidr){.addr = c.addr & mask_of(c.prefix), .prefix = c.prefix};
}

bool cidr_contains(struct cidr c, uint32_t addr)
{
    return (addr & mask_of(c.prefix)) == (c.addr & mask_of(c.prefix));
}

const char *cidr_format_addr(uint32_t addr, char *buf)
{
    snprintf(buf, CIDR_STRLEN, "%u.%u.%u.%u", addr >> 24, (addr >> 16) & 0xff, (addr >> 8) & 0xff,
             addr & 0xff);
    return buf;
}

const char *cidr_format(struct cidr c, char *buf)
{
    uint32_t a = c.addr;
    snprintf(buf, CIDR_STRLEN, "%u.%u.%u.%u/%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff,
             a & 0xff, c.prefix & 63);
    return buf;
}
